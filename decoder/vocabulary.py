"""The project's fixed names, defined once: the five fingers in output order and the signal kinds."""

FINGERS = ("thumb", "index", "middle", "ring", "little")
"""Finger order of every position, target and command array (column j of shape (..., 5))."""

SIGNAL_KINDS = ("nerve", "emg", "envelope")
"""``nerve``: intrafascicular nerve recordings; ``emg``: raw surface EMG; ``envelope``: EMG already rectified and
smoothed by the electrodes (NinaPro DB1)."""
