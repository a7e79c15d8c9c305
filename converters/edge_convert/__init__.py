"""edge_convert: trained models -> board-ready artifacts (TL2cgen C libraries, TFLite INT8) and bundles.

One module per model family. Imports the agent (for the manifest schema and the
shared preprocessing) but never the host CLI.
"""


class ConversionError(Exception):
    """A model could not be converted, compiled, or failed its parity check; or a bundle could not be signed."""
