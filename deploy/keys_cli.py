"""``neurohand keys``: registered from here so the dispatcher's module list stays one entry per command group."""

from .runtime import register_keys as register

__all__ = ["register"]
