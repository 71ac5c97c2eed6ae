"""Edges behind NAT: the master publishes a notice on MQTT, the agent pulls its desired set and
reports what it runs (the ``agent-pull`` runtime)."""
