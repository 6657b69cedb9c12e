"""Feature-space augmentation that follows the physics of the features.

A change of electrode contact or skin impedance multiplies a channel's signal by a gain ``g``. Amplitude features
(``mav``, ``iav``, ``rms``, ``wl``, ``dasdv``, ``lscore``, ``mean``) then scale by ``g``, ``var`` by ``g**2`` and
``msr`` by ``sqrt(g)``; log-power features shift by ``log g`` (``logmean``, ``log_mav``, ``log_wl``; ``log10 g`` for
``mfl``) or ``2 log g`` (``logvar``, ``log_bandpower``); thresholded counts (``zc``, ``ssc``, ``wamp``) are left as
they are (exact for a relative ``wamp``). Applying
random per-channel gains to the raw features of a training window is therefore the same as recording that window
with slightly different electrodes, without recomputing features.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch

from neurohand.decoder.feature_config import FeatureConfig

_SCALE = {"mav": 1.0, "rms": 1.0, "wl": 1.0, "mean": 1.0, "iav": 1.0, "dasdv": 1.0, "lscore": 1.0, "var": 2.0,
          "msr": 0.5}
_LOG_SHIFT = {"logmean": 1.0, "logvar": 2.0, "log_bandpower": 2.0, "log_mav": 1.0, "log_wl": 1.0,
              "mfl": 1.0 / math.log(10.0)}


def gain_law(config: FeatureConfig, n_channels: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How each frame entry responds to a per-channel log-gain.

    Returns
    -------
    channel : np.ndarray, shape (n_features,), int64
        Channel of each entry.
    scale : np.ndarray, shape (n_features,)
        Exponent of ``g`` that multiplies the entry (1 for amplitudes, 0 otherwise).
    shift : np.ndarray, shape (n_features,)
        Multiple of ``log g`` added to the entry (1 or 2 for log powers, 0 otherwise).
    """
    channel, scale, shift = [], [], []
    for f in config.features:
        repeats = len(config.bands_hz) if f == "log_bandpower" else 1
        for _ in range(repeats):
            channel += list(range(n_channels))
            scale += [_SCALE.get(f, 0.0)] * n_channels
            shift += [_LOG_SHIFT.get(f, 0.0)] * n_channels
    return np.array(channel, np.int64), np.array(scale), np.array(shift)


def apply_gains(x: torch.Tensor, log_gain: torch.Tensor, law: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
                ) -> torch.Tensor:
    """Raw features ``x`` (batch, time, n_features) under per-window channel log-gains (batch, n_channels)."""
    channel, scale, shift = law
    lg = log_gain[:, channel][:, None, :]  # (batch, 1, n_features)
    return x * torch.exp(lg * scale) + lg * shift
