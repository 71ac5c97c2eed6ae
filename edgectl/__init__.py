"""edgectl: the command line of the edge platform."""
