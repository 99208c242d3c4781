"""movierec: reproducible deep-learning movie recommendation on MovieLens."""

__version__ = "0.1.0"
