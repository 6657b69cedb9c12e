"""The LDA front end: for recordings labelled with classes only, the recurrent core reads discriminant coordinates.

With gesture labels and no finger positions (3DC, a gesture-only calibration), a GRU fed all the feature frames
learns the training session too well: on 3DC it reached 98.6 % on its own session and lost whole classes after a
5-minute break, where LDA, whose shared-covariance boundary leans only on directions that separate the classes,
held. Reading the frames through LDA's discriminant projection (one coordinate fewer than the classes present,
fitted on the training frames with Ledoit-Wolf shrinkage, then frozen) keeps the GRU to those directions and leaves
it what LDA lacks: the past. The projection is linear and the recurrent core's first step is linear in its input,
so for saving the two are folded into one input matrix
(:meth:`training.model.RecurrentDecoder.without_fixed_projection`): the saved model is an ordinary decoder and
export, engines and recalibration do not know it existed.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .data import FrameSet


def applies(frames: FrameSet, n_classes: int) -> bool:
    """Whether the front end is used: class labels with at least 3 classes present, no finger positions."""
    return frames.positions is None and frames.labels is not None and n_classes >= 3 \
        and len(np.unique(frames.labels)) >= 3


def lda_projection(frames: FrameSet, mean: np.ndarray, std: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Fit the discriminant projection of normalised frames, each coordinate scaled to zero mean, unit variance.

    Parameters
    ----------
    frames : FrameSet
        Training frames with labels.
    mean, std : np.ndarray, shape (n_features,)
        The model's normalisation; the projection acts on ``(features - mean) / std``.

    Returns
    -------
    weight : np.ndarray, shape (k, n_features), float32
        ``k = min(classes present - 1, n_features)``, less any direction without variance on these frames.
    bias : np.ndarray, shape (k,), float32
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    z = (frames.features.astype(np.float64) - mean) / std
    k = min(len(np.unique(frames.labels)) - 1, z.shape[1])
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(z, frames.labels)
    weight = lda.scalings_[:, :k].T
    proj = z @ weight.T
    scale = proj.std(axis=0)
    keep = scale > 1e-6 * scale.max()  # a degenerate direction would be blown up by the scaling
    weight, proj, scale = weight[keep], proj[:, keep], scale[keep]
    weight = weight / scale[:, None]
    bias = -proj.mean(axis=0) / scale
    return weight.astype(np.float32), bias.astype(np.float32)
