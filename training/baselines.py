"""Classic decoders trained on exactly the same frames and splits as the recurrent decoder.

- **Wiener filter**: ridge regression over causally lagged feature frames; the number of lags,
  their spacing and the ridge strength are tuned on the validation split.
- **Kalman filter** (Wu et al. 2003): state = finger positions (and velocities) with linear dynamics, observation =
  the features (PCA-reduced) as a linear function of the state; parameters by least squares, filtering in numpy.
  Tuned on validation: velocities in the state or not, the PCA dimension, and a scale on the process noise
  (smoothness against responsiveness).
- **LDA** for the class head (scikit-learn, shrinkage tuned on validation) on the current frame.

Every fitted decoder is saved as plain arrays (``.npz``, no pickle) and predicts from those arrays alone.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .data import FrameSet
from .metrics import r2_per_finger

# (number of lags, spacing in frames)
LAG_GRID: Tuple[Tuple[int, int], ...] = ((1, 1), (3, 2), (5, 2), (5, 5), (10, 3), (10, 5), (20, 5), (20, 10))
ALPHA_GRID: Tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)
PCA_GRID: Tuple[int, ...] = (5, 10, 20, 40, 80)
PROCESS_NOISE_GRID: Tuple[float, ...] = (0.01, 0.1, 1.0)
SHRINK_GRID: Tuple[object, ...] = ("auto", 0.01, 0.1, 0.5)


def lagged(features: np.ndarray, slices: Sequence[slice], n_lags: int, spacing: int) -> np.ndarray:
    """Causal lag stack: row t holds frames t, t - spacing, ..., within its segment (zeros before its start).

    Returns
    -------
    np.ndarray, shape (n, n_features * n_lags)
    """
    n, F = features.shape
    out = np.zeros((n, F * n_lags), np.float32)
    for s in slices:
        x = features[s]
        for k in range(n_lags):
            d = k * spacing
            if d < len(x):
                out[s.start + d:s.stop, k * F:(k + 1) * F] = x[: len(x) - d]
    return out


def lagged_gram(z: np.ndarray, slices: Sequence[slice], n_lags: int, spacing: int, yc: np.ndarray, *,
                cache: Optional[Dict[int, np.ndarray]] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred normal equations of ridge over :func:`lagged` frames, without building the lagged matrix.

    Block ``(i, j)`` of ``X.T @ X`` (lags ``d_i <= d_j`` frames, ``tau = d_j - d_i``) is the lag-``tau``
    cross-product of the frames, ``sum_u z[u + tau] z[u]'`` over each segment, less its last ``d_i`` terms (rows
    whose longer lag falls before the segment start are zeros in :func:`lagged`). That costs one ``(F, F)`` product
    per distinct lag difference instead of one ``(F * n_lags)``-wide product, and the cross-products are shared by
    every lag layout through ``cache``. Same sums as centring the lagged matrix, up to rounding order.

    Parameters
    ----------
    z : np.ndarray, shape (n, F), float64
    slices : sequence of slice
        Segments (the lag stack restarts at each).
    n_lags, spacing : int
    yc : np.ndarray, shape (n, m)
        Centred targets.
    cache : dict, optional
        Lag-``tau`` cross-products by ``tau``, for this ``z`` and ``slices`` only.

    Returns
    -------
    gram : np.ndarray, shape (F * n_lags, F * n_lags)
        ``Xc.T @ Xc`` with ``Xc`` the lagged matrix less its column means.
    rhs : np.ndarray, shape (F * n_lags, m)
        ``Xc.T @ yc``.
    x_mean : np.ndarray, shape (F * n_lags,)
        Column means of the lagged matrix.
    """
    cache = {} if cache is None else cache
    n, F = z.shape
    p = F * n_lags
    gram = np.empty((p, p))
    rhs = np.zeros((p, yc.shape[1]))
    x_sum = np.zeros(p)
    for i in range(n_lags):
        d = i * spacing
        for s in slices:  # frame u of a segment feeds lag block i at row u + d
            if s.stop - s.start > d:
                x_sum[i * F:(i + 1) * F] += z[s.start:s.stop - d].sum(axis=0)
                rhs[i * F:(i + 1) * F] += z[s.start:s.stop - d].T @ yc[s.start + d:s.stop]
    for tau_i in range(n_lags):
        tau = tau_i * spacing
        if tau not in cache:
            cache[tau] = sum((z[s.start + tau:s.stop].T @ z[s.start:s.stop - tau] for s in slices
                              if s.stop - s.start > tau), np.zeros((F, F)))
        for i in range(n_lags - tau_i):
            j = i + tau_i
            dj = j * spacing
            block = cache[tau].copy()
            for s in slices:  # less the terms u >= L - d_j of each segment, which the lag stack holds as zeros
                u0 = max(s.start, s.stop - dj)
                if s.stop - tau > u0:
                    block -= z[u0 + tau:s.stop].T @ z[u0:s.stop - tau]
            gram[i * F:(i + 1) * F, j * F:(j + 1) * F] = block
            gram[j * F:(j + 1) * F, i * F:(i + 1) * F] = block.T
    x_mean = x_sum / n
    gram -= n * np.outer(x_mean, x_mean)
    return gram, rhs, x_mean


def _standardise(train: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    return mean, np.where(std > 1e-9, std, 1.0)


class WienerDecoder:
    """Ridge regression over lagged frames; parameters are arrays."""

    name = "wiener"

    def __init__(self, mean: np.ndarray, std: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 n_lags: int, spacing: int, alpha: float) -> None:
        self.mean, self.std, self.coef, self.intercept = mean, std, coef, intercept
        self.n_lags, self.spacing, self.alpha = int(n_lags), int(spacing), float(alpha)

    @classmethod
    def fit(cls, train: FrameSet, val: FrameSet) -> "WienerDecoder":
        """Tune lags and ridge strength on ``val``, then keep the best fit.

        Ridge regression with an intercept (the same estimator as scikit-learn's ``Ridge``), solved from the centred
        Gram matrix, which :func:`lagged_gram` builds once per lag layout from lag cross-products of the frames; each
        strength of the grid then costs one Cholesky solve.
        """
        from scipy.linalg import LinAlgError, LinAlgWarning, solve

        mean, std = _standardise(train.features)
        zt = ((train.features - mean) / std).astype(np.float32)
        zv = ((val.features - mean) / std).astype(np.float32)
        y = train.positions.astype(np.float64)
        best = (-np.inf, None)
        z64, y_mean, slices = zt.astype(np.float64), y.mean(axis=0), train.segment_slices()
        yc = y - y_mean
        cross: Dict[int, np.ndarray] = {}  # lag cross-products shared by the layouts
        for n_lags, spacing in LAG_GRID:
            gram, rhs, x_mean = lagged_gram(z64, slices, n_lags, spacing, yc, cache=cross)
            Xv = lagged(zv, val.segment_slices(), n_lags, spacing)
            for alpha in ALPHA_GRID:
                reg = gram + alpha * len(gram) * np.eye(len(gram))
                try:
                    with warnings.catch_warnings():  # the weakest strengths may be ill-conditioned: scored anyway
                        warnings.simplefilter("ignore", LinAlgWarning)
                        coef = solve(reg, rhs, assume_a="pos").T  # (5, n_inputs)
                except LinAlgError:
                    continue
                intercept = y_mean - coef @ x_mean
                score = float(np.mean(r2_per_finger(val.positions, np.clip(Xv @ coef.T + intercept, 0, 1))))
                if score > best[0]:
                    best = (score, (n_lags, spacing, alpha, coef, intercept))
        n_lags, spacing, alpha, coef, intercept = best[1]
        return cls(mean, std, coef.astype(np.float32), intercept.astype(np.float32), n_lags, spacing, alpha)

    def predict(self, frames: FrameSet) -> np.ndarray:
        """Positions, shape (n, 5), clipped to 0..1."""
        z = (frames.features - self.mean) / self.std
        X = lagged(z.astype(np.float32), frames.segment_slices(), self.n_lags, self.spacing)
        return np.clip(X @ self.coef.T + self.intercept, 0.0, 1.0)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Parameters as named arrays."""
        return {"mean": self.mean, "std": self.std, "coef": self.coef, "intercept": self.intercept,
                "n_lags": np.array(self.n_lags), "spacing": np.array(self.spacing), "alpha": np.array(self.alpha)}

    @classmethod
    def from_arrays(cls, a: Dict[str, np.ndarray]) -> "WienerDecoder":
        """Inverse of :meth:`to_arrays`."""
        return cls(a["mean"], a["std"], a["coef"], a["intercept"], int(a["n_lags"]), int(a["spacing"]),
                   float(a["alpha"]))

    def describe(self) -> str:
        """Chosen hyper-parameters."""
        return "ridge over {} lags every {} frames, alpha {:g}".format(self.n_lags, self.spacing, self.alpha)


class KalmanDecoder:
    """Linear-Gaussian state-space decoder (Wu et al. 2003) over PCA-reduced features."""

    name = "kalman"

    def __init__(self, mean: np.ndarray, std: np.ndarray, pca: np.ndarray, A: np.ndarray, W: np.ndarray,
                 H: np.ndarray, Q: np.ndarray, x0: np.ndarray, P0: np.ndarray) -> None:
        self.mean, self.std, self.pca = mean, std, pca
        self.A, self.W, self.H, self.Q, self.x0, self.P0 = A, W, H, Q, x0, P0

    @staticmethod
    def _states(pos: np.ndarray, slices: Sequence[slice], velocity: bool) -> Tuple[np.ndarray, np.ndarray]:
        """State [pos, (vel,) 1] per frame and a mask of frames that have a predecessor in the segment."""
        vel = np.zeros_like(pos)
        has_prev = np.zeros(len(pos), bool)
        for s in slices:
            vel[s.start + 1:s.stop] = pos[s.start + 1:s.stop] - pos[s.start:s.stop - 1]
            has_prev[s.start + 1:s.stop] = True
        cols = [pos, vel] if velocity else [pos]
        return np.hstack(cols + [np.ones((len(pos), 1))]), has_prev

    @classmethod
    def _candidates(cls, train: FrameSet, dims: Sequence[int]):
        """Every model of the tuning grid, sharing what does not change across it.

        Per state layout the dynamics (A, process-noise covariance, prior) are one fit; the observation model of a
        PCA size is the first ``k`` rows of the largest one (least squares solves each column on its own).
        """
        mean, std = _standardise(train.features)
        z = (train.features - mean) / std
        _, _, vt = np.linalg.svd(z[:: max(1, len(z) // 20000)], full_matrices=False)  # principal axes
        k_max = max(dims)
        pca_all = vt[:k_max].T.astype(np.float64)  # (F, k_max)
        obs_all = z @ pca_all
        for velocity in (False, True):
            X, has_prev = cls._states(train.positions.astype(np.float64), train.segment_slices(), velocity)
            cur, prev = X[has_prev], X[np.flatnonzero(has_prev) - 1]
            A = np.linalg.lstsq(prev, cur, rcond=None)[0].T
            A[-1] = 0.0
            A[-1, -1] = 1.0  # the constant stays constant
            res = cur - prev @ A.T
            W_unit = np.cov(res[:, :-1].T)
            H_all = np.linalg.lstsq(X, obs_all, rcond=None)[0].T  # (k_max, state)
            Q_all = np.cov((obs_all - X @ H_all.T).T).reshape(k_max, k_max)
            x0 = X.mean(axis=0)
            P0 = np.pad(np.cov(X[:, :-1].T), ((0, 1), (0, 1)))
            for k in dims:
                H, Q = H_all[:k].copy(), Q_all[:k, :k] + 1e-6 * np.eye(k)
                for w_scale in PROCESS_NOISE_GRID:
                    W = np.pad(w_scale * W_unit + 1e-9 * np.eye(X.shape[1] - 1), ((0, 1), (0, 1)))
                    yield cls(mean, std, pca_all[:, :k].copy(), A.copy(), W, H, Q, x0.copy(), P0.copy())

    @classmethod
    def fit(cls, train: FrameSet, val: FrameSet) -> "KalmanDecoder":
        """Tune the state, PCA dimension and process-noise scale on ``val``."""
        best = (-np.inf, None)
        dims = sorted({min(k, train.n_features) for k in PCA_GRID})
        for m in cls._candidates(train, dims):
            score = float(np.mean(r2_per_finger(val.positions, m.predict(val))))
            if score > best[0]:
                best = (score, m)
        return best[1]

    def gains(self, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """Kalman gains and state transitions of the first ``n`` frames after a (re)start.

        The covariance recursion does not depend on the observations, so every segment shares one gain schedule;
        it converges within a few hundred frames, after which the last gain is repeated (the steady-state filter).
        The filtered state is then ``x_t = M_t x_{t-1} + K_t o_t`` with ``M_t = (I - K_t H) A``.

        Returns
        -------
        K : np.ndarray, shape (m, state, k)
        M : np.ndarray, shape (m, state, state)
            ``m <= n`` entries; frame ``t >= m`` uses the last one.
        """
        A, W, H = self.A, self.W, self.H
        eye = np.eye(len(self.x0))
        # information form (push-through identity): K = (I + P G)^-1 P H' Q^-1 with G = H' Q^-1 H, which solves a
        # state-sized system instead of an observation-sized one and holds for a singular prior (the constant state)
        HtQi = np.linalg.solve(self.Q, H).T  # (state, k)
        G = HtQi @ H
        P = self.P0.copy()
        Ks: List[np.ndarray] = []
        Ms: List[np.ndarray] = []
        for _ in range(max(int(n), 1)):
            P = A @ P @ A.T + W
            P = np.linalg.solve(eye + P @ G, P)
            K = P @ HtQi
            if Ks and np.max(np.abs(K - Ks[-1])) <= 1e-13 * max(np.max(np.abs(K)), 1e-300):
                break  # converged to machine precision: the rest of the schedule is this gain
            Ks.append(K)
            Ms.append((eye - K @ H) @ A)
        return np.array(Ks), np.array(Ms)

    def predict(self, frames: FrameSet) -> np.ndarray:
        """Return filtered positions, shape (n, 5), clipped to 0..1; the filter restarts at each segment.

        All segments are filtered together, one frame index at a time, with the shared gain schedule
        (:meth:`gains`): the same estimates as the textbook predict/update loop per frame.
        """
        obs = ((frames.features - self.mean) / self.std) @ self.pca
        out = np.zeros((len(obs), 5))
        slices = frames.segment_slices()
        if not slices:
            return out
        longest = max(s.stop - s.start for s in slices)
        K, M = self.gains(longest)
        starts = np.array([s.start for s in slices])
        lengths = np.array([s.stop - s.start for s in slices])
        x = np.repeat(self.x0[None, :], len(slices), axis=0)  # (segments, state)
        steady = obs @ K[-1].T  # every frame's observation term once the gain has converged
        for t in range(longest):
            live = lengths > t
            if not live.all():
                starts, lengths, x = starts[live], lengths[live], x[live]
            rows = starts + t
            if t < len(K) - 1:
                x = x @ M[t].T + obs[rows] @ K[t].T
            else:
                x = x @ M[-1].T + steady[rows]
            out[rows] = x[:, :5]
        return np.clip(out, 0.0, 1.0)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Parameters as named arrays."""
        return {k: getattr(self, k) for k in ("mean", "std", "pca", "A", "W", "H", "Q", "x0", "P0")}

    @classmethod
    def from_arrays(cls, a: Dict[str, np.ndarray]) -> "KalmanDecoder":
        """Inverse of :meth:`to_arrays`."""
        return cls(*(a[k] for k in ("mean", "std", "pca", "A", "W", "H", "Q", "x0", "P0")))

    def describe(self) -> str:
        """Chosen hyper-parameters."""
        state = "5 positions + 5 velocities" if len(self.x0) > 6 else "5 positions"
        return "Kalman filter, state = {}, {} PCA observations".format(state, self.pca.shape[1])


class LdaDecoder:
    """Linear discriminant analysis on the current frame; decision = argmax(z @ coef.T + intercept)."""

    name = "lda"

    def __init__(self, mean: np.ndarray, std: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 classes: np.ndarray, shrinkage: str) -> None:
        self.mean, self.std, self.coef, self.intercept, self.classes = mean, std, coef, intercept, classes
        self.shrinkage = str(shrinkage)

    @classmethod
    def fit(cls, train: FrameSet, val: FrameSet, *, shrinkages: Sequence[object] = SHRINK_GRID) -> "LdaDecoder":
        """Tune the shrinkage on ``val`` among ``shrinkages`` (one value: nothing is tuned, ``val`` is unused)."""
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        mean, std = _standardise(train.features)
        zt, zv = (train.features - mean) / std, (val.features - mean) / std
        best = (-np.inf, None)
        for shrink in shrinkages:
            m = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrink).fit(zt, train.labels)
            acc = float(np.mean(m.predict(zv) == val.labels)) if len(shrinkages) > 1 else 0.0
            if acc > best[0]:
                best = (acc, (shrink, m))
        shrink, m = best[1]
        coef, intercept = m.coef_, m.intercept_
        if len(m.classes_) == 2:  # binary LDA has one discriminant; make it two columns
            coef = np.vstack([-coef, coef]) / 2
            intercept = np.array([-intercept[0], intercept[0]]) / 2
        return cls(mean, std, coef.astype(np.float64), intercept.astype(np.float64), m.classes_.astype(np.int64),
                   str(shrink))

    def predict(self, frames: FrameSet) -> np.ndarray:
        """Class per frame, shape (n,)."""
        z = (frames.features - self.mean) / self.std
        return self.classes[np.argmax(z @ self.coef.T + self.intercept, axis=1)]

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Parameters as named arrays."""
        return {"mean": self.mean, "std": self.std, "coef": self.coef, "intercept": self.intercept,
                "classes": self.classes, "shrinkage": np.array(self.shrinkage)}

    @classmethod
    def from_arrays(cls, a: Dict[str, np.ndarray]) -> "LdaDecoder":
        """Inverse of :meth:`to_arrays`."""
        return cls(a["mean"], a["std"], a["coef"], a["intercept"], a["classes"], str(a["shrinkage"]))

    def describe(self) -> str:
        """Chosen hyper-parameters."""
        return "LDA on the current frame, shrinkage {}".format(self.shrinkage)


BASELINES = {"wiener": WienerDecoder, "kalman": KalmanDecoder, "lda": LdaDecoder}


def fit_baselines(train: FrameSet, val: FrameSet) -> Dict[str, object]:
    """Fit every baseline the labels allow: Wiener and Kalman with positions, LDA with classes."""
    out: Dict[str, object] = {}
    if train.positions is not None:
        out["wiener"] = WienerDecoder.fit(train, val)
        out["kalman"] = KalmanDecoder.fit(train, val)
    if train.labels is not None and len(np.unique(train.labels)) > 1:
        out["lda"] = LdaDecoder.fit(train, val)
    return out


def save_baselines(path: str, baselines: Dict[str, object]) -> None:
    """Write all baselines to one ``.npz`` (keys ``<name>/<array>``)."""
    arrays = {}
    for name, b in baselines.items():
        for k, v in b.to_arrays().items():
            arrays["{}/{}".format(name, k)] = np.asarray(v)
    np.savez(path, **arrays)


def load_baselines(path: str) -> Dict[str, object]:
    """Read what :func:`save_baselines` wrote (``allow_pickle=False``)."""
    grouped: Dict[str, Dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            name, arr = key.split("/", 1)
            grouped.setdefault(name, {})[arr] = z[key]
    return {name: BASELINES[name].from_arrays(a) for name, a in grouped.items()}


def baseline_names(baselines: Dict[str, object]) -> List[str]:
    """Names in report order."""
    return [n for n in ("wiener", "kalman", "lda") if n in baselines]


