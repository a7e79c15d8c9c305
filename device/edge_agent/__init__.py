"""edge_agent: the on-board inference agent of edgectl.

Runs on the board with numpy, the standard library and (optionally) a LiteRT
runtime. Never import host or converter code from here.
"""

__version__ = "0.1.0"
