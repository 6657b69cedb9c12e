"""Delay against accuracy: a decoder's outputs post-processed as the device does, at several smoothings.

The device's :class:`~neurohand.decoder.postprocess.PostProcessor` (the one ``neurohand run`` uses) turns the
decoder's positions into commands, from the safe posture at each segment's start; each smoothing gives one point,
the commands' R^2 against their delay behind the true positions. The report draws the curve and marks the bundle's
choice.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from neurohand.decoder.postprocess import SAFE_POSTURE, PostConfig, PostProcessor, PostState

from .metrics import decoding_delay_ms, r2_per_finger

SMOOTHINGS_MS = (0.0, 10.0, 30.0, 60.0, 100.0)
"""The smoothings the report scores (ms; 0: none)."""


def commands_for(positions: np.ndarray, rest_probability: np.ndarray, slices: Sequence[slice], hop_ms: float,
                 post: PostConfig) -> np.ndarray:
    """Post-process decoded positions into commands as the device does.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, 5)
    rest_probability : np.ndarray, shape (n_frames,)
        P(rest) per frame (zeros for a model with no classes: nothing is gated).
    slices : sequence of slice
        The recording segments; each starts from the safe posture, as the runtime does.

    Returns
    -------
    np.ndarray, shape (n_frames, 5)
    """
    pp = PostProcessor(post, hop_ms=hop_ms)
    out = np.empty((len(positions), 5))
    for sl in slices:
        state = PostState(command=np.array(SAFE_POSTURE, float))
        for i in range(sl.start, sl.stop):
            out[i], state = pp.step(state, positions[i], float(rest_probability[i]))
    return out


def smoothing_tradeoff(truth: np.ndarray, positions: np.ndarray, rest_probability: np.ndarray,
                       slices: Sequence[slice], hop_ms: float, *,
                       smoothings: Sequence[float] = SMOOTHINGS_MS) -> List[Dict[str, float]]:
    """Score the commands at each smoothing: ``[{"smoothing_ms", "r2", "delay_ms"}]``, plus the decoder's own output.

    The first entry, ``smoothing_ms`` None, is the decoder's output before any post-processing.
    """
    points = [{"smoothing_ms": None, "r2": float(np.mean(r2_per_finger(truth, positions))),
               "delay_ms": decoding_delay_ms(truth, positions, hop_ms)}]
    for s in smoothings:
        cmd = commands_for(positions, rest_probability, slices, hop_ms, PostConfig(smoothing_ms=float(s)))
        points.append({"smoothing_ms": float(s), "r2": float(np.mean(r2_per_finger(truth, cmd))),
                       "delay_ms": decoding_delay_ms(truth, cmd, hop_ms)})
    return points


def plot_tradeoff(path: str, points: Sequence[Dict[str, Any]], *, chosen_ms: Optional[float] = None,
                  title: str = "Delay against accuracy of the commands") -> None:
    """Draw R^2 against delay, one labelled point per smoothing; ``chosen_ms`` (the bundle's) is ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    raw = [p for p in points if p["smoothing_ms"] is None]
    post = [p for p in points if p["smoothing_ms"] is not None]
    ax.plot([p["delay_ms"] for p in post], [p["r2"] for p in post], "o-", color="tab:blue",
            label="commands (device post-processing)")
    for p in post:
        ax.annotate("{:g} ms".format(p["smoothing_ms"]), (p["delay_ms"], p["r2"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
        if chosen_ms is not None and p["smoothing_ms"] == float(chosen_ms):
            ax.plot([p["delay_ms"]], [p["r2"]], "o", ms=13, mfc="none", mec="tab:red", label="default smoothing")
    for p in raw:
        ax.plot([p["delay_ms"]], [p["r2"]], "s", color="black", label="decoder output, before post-processing")
    ax.set_xlabel("delay behind the true movement (ms)")
    ax.set_ylabel("R$^2$ (1 = perfect)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
