"""Data: release registry, download, parsing, split, matrices, sequences."""
