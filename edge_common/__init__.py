"""What the services (``shared``) and the edge programs (``edge_ai``) both need, on the standard
library alone: the rule set that keeps secrets out of logs (``redaction``) and the log line
formatter built on it (``log_format``). Every AI package ships it beside ``edge_ai``; it imports
neither ``shared`` nor ``edge_ai``."""
