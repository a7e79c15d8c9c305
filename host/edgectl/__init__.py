"""edgectl: the host side. Builds bundles, deploys them to boards, runs and measures them."""

__version__ = "0.1.0"
