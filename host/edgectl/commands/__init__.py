"""The edgectl commands, one module per area; edgectl.cli registers them on the group."""
