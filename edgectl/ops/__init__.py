"""Operator verbs of ``edgectl`` (edges, deployments, decisions, nodes, optimizer controls,
rollouts), one module per noun; ``client`` holds what they share."""
