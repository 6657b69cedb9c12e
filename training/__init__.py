"""Clinic side: the torch recurrent decoder, its data, training loop, metrics, classic baselines and reports.

Submodules that need torch import it themselves; ``training.metrics`` and ``training.data`` do not.
"""
