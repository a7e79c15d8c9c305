"""Data sets edgectl knows: loaders for the original file formats and a synthetic generator."""
