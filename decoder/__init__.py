"""Device-side decoding: causal filters, feature frames, feature adaptation, engines, recordings.

Everything in this package runs on the Jetson: no torch, no ``neurohand.training`` imports.
"""
