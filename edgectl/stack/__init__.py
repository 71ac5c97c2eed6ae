"""`edgectl up`: the whole suite on one machine (database, four services, two edge agents, demo
fleet)."""
