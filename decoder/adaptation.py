"""Causal running re-normalisation of feature frames: this session's statistics mapped onto the training session's.

Between sessions the electrodes move, their impedance and gain change, and the same movement gives features with
another mean and spread. The adapter keeps a running per-feature mean and variance of the frames it has seen and
maps each frame so that the current session's statistics land on the training session's:

``y[t] = m0 + s0 * (x[t] - m[t]) / s[t]``

with ``m0``, ``s0`` the training frames' mean and standard deviation (the *prior*, carried by the model) and
``m[t]``, ``s[t]`` running estimates that include frame ``t`` (causal: ``y[t]`` uses frames ``<= t`` only). They
start at the prior, which counts as ``prior_s`` seconds of frames, and follow an exponential average with time
constant ``horizon_s`` once ``horizon_s - prior_s`` seconds have been seen:

``a[k] = max(1 / (n0 + k + 1), 1 / n_h)``, ``d = clip(x - m, +-c max(sqrt(v), s0 / limit_sd))``, ``m += a d``,
``v = (1 - a) (v + a d**2)``

(``n0``, ``n_h`` are the two durations in frames; ``k`` counts frames seen; ``c`` is ``clip_sd``). The clip makes
the estimates robust to glitches: a frame ``1e25`` away moves them as little as one ``c`` running deviations away,
so one bad frame cannot pin them for hours; a non-finite value leaves its feature's estimates untouched (and comes
out non-finite, for the runtime's checks to see). For the output the estimates are bounded:
``|m[t] - m0| <= limit_sd * s0`` and ``s0 / limit_sd <= s[t] <= limit_sd * s0``, so a long rest cannot amplify
noise by more than ``limit_sd``. The same code runs over a recording offline (training, evaluation) and
frame by frame live; any split into blocks gives the same frames.

The adaptation assumes the mix of movements over ``horizon_s`` resembles the training session's, as it does when the
patient runs the calibration protocol or uses the hand throughout the day. A long stretch of one posture pulls the
estimates towards it, within the bounds above.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Tuple

import numpy as np

from .errors import InvalidValueError
from .validation import check_positive, invalid_value


@dataclass(frozen=True)
class AdaptationConfig:
    """How fast the running statistics move.

    Parameters
    ----------
    prior_s : float
        Weight of the training statistics, in seconds of frames: until ``horizon_s - prior_s`` seconds have been
        seen the estimates are the plain average of the prior (counted as ``prior_s`` seconds) and the frames.
    horizon_s : float
        Time constant of the exponential average after that (seconds). At least ``prior_s``.
    limit_sd : float
        Bound on the estimates used for the output: the mean within ``limit_sd`` training standard deviations of
        the training mean, the spread within a factor ``limit_sd`` of the training spread. Greater than 1.
    clip_sd : float
        A frame's pull on the estimates is clipped at ``clip_sd`` running standard deviations (module docstring).
        Greater than 1; large enough that ordinary frames are never clipped (the 3DC sessions reach 18.6, with a
        running deviation floored at ``s0 / limit_sd``).
    """

    prior_s: float = 30.0
    horizon_s: float = 60.0
    limit_sd: float = 2.0
    clip_sd: float = 25.0

    def __post_init__(self) -> None:
        check_positive("prior_s", self.prior_s)
        check_positive("horizon_s", self.horizon_s)
        check_positive("limit_sd", self.limit_sd)
        if self.horizon_s < self.prior_s:
            raise invalid_value("horizon_s", "expected at least prior_s={}, got {}".format(
                self.prior_s, self.horizon_s))
        for name in ("limit_sd", "clip_sd"):
            if getattr(self, name) <= 1.0:
                raise InvalidValueError("Invalid value for {!r}: expected a factor > 1, got {}".format(
                    name, getattr(self, name)))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "AdaptationConfig":
        """Inverse of :meth:`to_dict`; every field must be present (a model states its adaptation in full).

        Raises
        ------
        ValueError
            Missing or unknown keys, or values that are not numbers.
        """
        keys = tuple(f.name for f in fields(cls))
        if not isinstance(d, dict) or set(d) != set(keys):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise InvalidValueError("Invalid adaptation config: expected the keys {}, got {}".format(list(keys), got))
        return cls(**{k: check_positive(k, d[k]) for k in keys})


@dataclass(frozen=True)
class AdaptationState:
    """Per-stream state of a :class:`FeatureAdapter`; ``process`` returns a new one.

    Attributes
    ----------
    mean, var : np.ndarray, shape (n_features,), float64
        Running estimates (unbounded).
    n_frames : int
        Frames seen.
    """

    mean: np.ndarray
    var: np.ndarray
    n_frames: int = 0


class FeatureAdapter:
    """Maps feature frames of the current session onto the training session's statistics (module docstring).

    Parameters
    ----------
    config : AdaptationConfig
    hop_ms : float
        Spacing of the frames.
    mean, std : np.ndarray, shape (n_features,)
        The training frames' statistics (the prior).
    """

    def __init__(self, config: AdaptationConfig, *, hop_ms: float, mean: np.ndarray, std: np.ndarray) -> None:
        check_positive("hop_ms", hop_ms)
        self.config = config
        self.mean0 = np.asarray(mean, np.float64)
        self.std0 = np.asarray(std, np.float64)
        if self.mean0.ndim != 1 or self.std0.shape != self.mean0.shape or self.mean0.size == 0:
            raise InvalidValueError(
                "Invalid adaptation prior: expected mean and std of shape (n_features,), got {} and "
                "{}".format(self.mean0.shape, self.std0.shape))
        if not (np.all(np.isfinite(self.std0)) and np.all(self.std0 > 0) and np.all(np.isfinite(self.mean0))):
            raise InvalidValueError("Invalid adaptation prior: expected finite means and positive standard deviations")
        self.prior_frames = config.prior_s * 1000.0 / float(hop_ms)
        self.horizon_frames = config.horizon_s * 1000.0 / float(hop_ms)
        if self.horizon_frames < 1.0:
            raise invalid_value(
                "horizon_s", "expected at least one frame ({} ms), got {} s".format(
                hop_ms, config.horizon_s))
        lim = config.limit_sd
        self._lo_m, self._hi_m = self.mean0 - lim * self.std0, self.mean0 + lim * self.std0
        self._lo_s, self._hi_s = self.std0 / lim, self.std0 * lim

    @property
    def n_features(self) -> int:
        """Length of a frame."""
        return int(self.mean0.size)

    def new_state(self) -> AdaptationState:
        """State of a new session: the estimates at the prior."""
        return AdaptationState(self.mean0.copy(), self.std0 ** 2, 0)

    def process(self, state: AdaptationState, frames: np.ndarray) -> Tuple[np.ndarray, AdaptationState]:
        """Adapt a block of consecutive frames.

        Parameters
        ----------
        state : AdaptationState
            From :meth:`new_state` or the previous call (not modified).
        frames : np.ndarray, shape (n, n_features)

        Returns
        -------
        adapted : np.ndarray, shape (n, n_features), float32
        state : AdaptationState
        """
        x = np.asarray(frames, np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidValueError("Invalid frames for the feature adapter: expected shape (n, {}), got {}".format(
                self.n_features, x.shape))
        n, k = len(x), int(state.n_frames)
        m, v = state.mean.copy(), state.var.copy()
        alpha = np.maximum(1.0 / (self.prior_frames + k + 1 + np.arange(n)), 1.0 / self.horizon_frames)
        finite = np.isfinite(x).all(axis=1)
        c = self.config.clip_sd
        means, variances = np.empty_like(x), np.empty_like(x)
        for t in range(n):  # the recursion; everything else is done for the whole block below
            a = alpha[t]
            d = x[t] - m
            if not finite[t]:  # only the finite features move: a step of 0 leaves the others' m and v as they are
                ok = np.isfinite(d)
                d[~ok] = 0.0
                a = np.where(ok, a, 0.0)
            bound = np.sqrt(v)
            np.maximum(bound, self._lo_s, out=bound)  # a feature that was flat for hours can still move
            bound *= c
            np.clip(d, -bound, bound, out=d)
            ad = a * d
            m += ad
            ad *= d
            v += ad
            v *= 1.0 - a
            means[t], variances[t] = m, v
        np.clip(means, self._lo_m, self._hi_m, out=means)
        s = np.clip(np.sqrt(variances), self._lo_s, self._hi_s)
        out = (x - means) / s * self.std0 + self.mean0
        return out.astype(np.float32), AdaptationState(m, v, k + n)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready description: the config and the prior (what a model folder and a bundle carry)."""
        return {"config": self.config.to_dict(), "mean": self.mean0.tolist(), "std": self.std0.tolist()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any], *, hop_ms: float) -> "FeatureAdapter":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            ``d`` is not a dict with ``config``, ``mean`` and ``std``, or any of them is malformed.
        """
        if not isinstance(d, dict) or set(d) != {"config", "mean", "std"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise InvalidValueError(
                "Invalid adaptation: expected the keys ['config', 'mean', 'std'], got {}".format(got))
        try:
            mean, std = np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64)
        except (TypeError, ValueError):
            raise InvalidValueError("Invalid adaptation prior: 'mean' and 'std' must be lists of numbers") from None
        return cls(AdaptationConfig.from_dict(d["config"]), hop_ms=hop_ms, mean=mean, std=std)
