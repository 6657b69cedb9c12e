"""Device-side decoding: causal filters, feature frames, recordings.

Everything in this package runs on the Jetson: no torch, no ``training`` imports, Python 3.8 syntax.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
