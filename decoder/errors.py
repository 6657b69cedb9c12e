"""The one error base for every expected failure, so callers and the command line can tell them from bugs.

The command line prints a :class:`NeurohandError` (or an ``OSError``) as one line and exits 2; anything else is a
bug and shows its traceback. The subclasses also derive from the built-in they refine, so ``except ValueError``
keeps working for callers that do not know neurohand's types.
"""


class NeurohandError(Exception):
    """Base of every expected failure: bad input, a file that is not what it claims, a device that will not talk."""


class InvalidValueError(NeurohandError, ValueError):
    """A value, file or option is not what was expected (the message names what was)."""


class InvalidTypeError(NeurohandError, TypeError):
    """A value has the wrong type (the message names the expected one)."""


class MissingKeyError(NeurohandError, KeyError):
    """A named item (a channel, an array in a file, a model version) does not exist."""

    def __str__(self) -> str:
        # KeyError quotes its message; this is a sentence, not a key
        return str(self.args[0]) if self.args else ""


class DeviceError(NeurohandError, RuntimeError):
    """An accelerator, engine or external device failed in an expected way (not installed, no GPU, no answer)."""
