"""Runtime drivers: how the master makes a desired workload run on an edge.

``RuntimeDriver`` (base.py) is the interface; the agent (agent.py), Kubernetes (kubernetes.py,
with its objects in manifests.py) and Docker (docker.py) drivers implement it. The reconcile
loop gets the one a cluster's ``runtime`` names from ``reconcile.drivers.DriverSet``.
"""
