"""The edge agent: runs the platform's AI workloads as supervised processes on an edge box without
Kubernetes."""

AGENT_VERSION = "0.1.0"
