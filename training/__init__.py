"""Clinic side: the torch recurrent decoder, its training, metrics, baselines, reports and export to bundles.

Submodules that need torch import it themselves; ``training.metrics`` and ``training.data`` do not.
"""
