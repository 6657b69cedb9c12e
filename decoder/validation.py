"""Input validation in one place, with messages that name what was expected.

Modelled on MNE's ``_check_option``: every user-facing check raises ``ValueError`` (or ``TypeError``)
with the parameter name, what is allowed and what was given. Never ``assert`` for user input.
"""

from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .errors import InvalidTypeError, InvalidValueError


def invalid_value(name: str, message: str, *, extra: Optional[str] = None) -> InvalidValueError:
    """Build the error for a bad value, in the one shape ``Invalid value for 'name': <message>[; <extra>]``.

    Parameters
    ----------
    name : str
        The parameter, option (``'--hand'``) or field.
    message : str
        What was expected and what was given.
    extra : str, optional
        A hint on how to fix it.

    Returns
    -------
    InvalidValueError
        To be raised by the caller.
    """
    text = "Invalid value for {!r}: {}".format(name, message)
    return InvalidValueError(text if extra is None else "{}; {}".format(text, extra))


def check_option(name: str, value: Any, allowed: Iterable[Any], *, extra: Optional[str] = None) -> Any:
    """Check that ``value`` is one of ``allowed``.

    Returns
    -------
    value
        The value, unchanged.

    Raises
    ------
    ValueError
        ``Invalid value for 'name': allowed 'a', 'b', got 'c'``.
    """
    allowed = tuple(allowed)
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise invalid_value(name, "allowed {}, got {!r}".format(options, value), extra=extra)
    return value


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check that a scalar is finite and positive (or non-negative with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidTypeError("{!r} must be a number, got {!r}".format(name, value)) from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise InvalidValueError("Invalid value for {!r}: expected {}, got {!r}".format(name, need, value))
    return v


def check_int(name: str, value: Any, *, minimum: Optional[int] = None) -> int:
    """Check that ``value`` is an integer, optionally at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTypeError("{!r} must be an integer, got {!r}".format(name, value))
    if minimum is not None and value < minimum:
        raise InvalidValueError(
            "Invalid value for {!r}: expected an integer >= {}, got {}".format(name, minimum, value))
    return int(value)


def check_signal(
    name: str,
    data: Any,
    *,
    n_channels: Optional[int] = None,
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Check a signal block of shape (n_samples, n_channels).

    Parameters
    ----------
    name : str
        Name used in error messages.
    data : array_like, shape (n_samples, n_channels)
        Samples, one row per sample.
    n_channels : int, optional
        Required number of channels.
    allow_nonfinite : bool
        If False (default), NaN or inf raise.

    Returns
    -------
    np.ndarray, shape (n_samples, n_channels)
        The input as an array (not copied when already an ndarray of a float dtype).
    """
    arr = np.asarray(data)
    if arr.ndim == 2 and arr.dtype.kind == "f" and (n_channels is None or arr.shape[1] == n_channels):
        # fast path for the live loop: one reduction decides
        if allow_nonfinite or np.isfinite(arr).all():
            return arr
    if arr.ndim != 2:
        raise InvalidValueError(
            "{!r} must have shape (n_samples, n_channels), got an array with shape {}".format(name, arr.shape)
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidTypeError("{!r} must hold numbers, got dtype {}".format(name, arr.dtype))
    if n_channels is not None and arr.shape[1] != n_channels:
        raise InvalidValueError(
            "{!r} must have {} channels (shape (n_samples, {})), got {} channels".format(
                name, n_channels, n_channels, arr.shape[1]
            )
        )
    if not allow_nonfinite and arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidValueError(
            "{!r} contains NaN or inf (first at sample {}, channel {}); expected finite samples".format(
                name, int(bad[0]), int(bad[1])
            )
        )
    return arr


def parse_index_ranges(name: str, text: str, *, maximum: int = 65535) -> Sequence[int]:
    """Parse ``"1-7"``, ``"1,3,5"`` or ``"1-3,8"`` into a sorted list of integers in ``0..maximum``.

    The bound is checked before a range is expanded: ``0-100000000`` is an error, not a 100-million-element list.
    """
    out = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo_s, hi_s = part.split("-", 1)
                lo, hi = int(lo_s), int(hi_s)
                if hi < lo:
                    raise ValueError
            else:
                lo = hi = int(part)
        except ValueError:
            raise InvalidValueError(
                "Invalid value for {!r}: expected ranges like '1-7' or '1,3,5', got {!r}".format(name, text)
            ) from None
        if lo < 0 or hi > maximum:
            raise InvalidValueError("Invalid value for {!r}: indices in 0..{}, got {!r}".format(name, maximum, part))
        out.update(range(lo, hi + 1))
    if not out:
        raise InvalidValueError("Invalid value for {!r}: no indices in {!r}".format(name, text))
    return sorted(out)
