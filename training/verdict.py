"""Is a newly trained decoder ready for the patient's hand? One pure decision, shared by the report and ``calibrate``.

The candidate (the recurrent decoder, what the bundle exports) is compared, on the same held-out repetition, with
the best classic decoder (Wiener or Kalman for finger positions, LDA for classes) and with the patient's current
version, and its scores are checked against stated thresholds. A difference smaller than ``tolerance`` (0.005, half
the last digit the report shows) counts as equal; anything worse than that is worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple

from neurohand.decoder.vocabulary import FINGERS

REGRESSION_BASELINES = ("wiener", "kalman")
CLASS_BASELINES = ("lda",)


@dataclass(frozen=True)
class Thresholds:
    """What "ready" means, on the held-out repetition.

    ``finger_r2``: every finger's R² at least this (0.5: the decoded position explains half of the finger's
    movement; the thumb of NinaPro DB1 reaches 0.58). ``class_accuracy``: the fraction of frames whose movement
    class is right (0.8; LDA reaches 0.79 on NinaPro DB1, the recurrent decoder 0.84). ``tolerance``: differences
    below it, in R² or accuracy, count as equal.
    """

    finger_r2: float = 0.5
    class_accuracy: float = 0.8
    tolerance: float = 0.005


@dataclass(frozen=True)
class Decision:
    """The outcome: ``accept`` (the default answer to offer), one-line ``summary`` and every ``reasons`` behind it."""

    accept: bool
    summary: str
    reasons: Tuple[str, ...] = ()
    finger_pass: Tuple[Optional[bool], ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        """All reasons in one sentence ('' when there is none)."""
        return "; ".join(self.reasons)


def _score(m: Optional[Mapping[str, Any]], key: str) -> Optional[float]:
    v = None if m is None else m.get(key)
    return None if v is None else float(v)


def _best(baselines: Mapping[str, Mapping[str, Any]], names: Tuple[str, ...], key: str
          ) -> Optional[Tuple[str, float]]:
    scored = [(n, _score(baselines.get(n), key)) for n in names]
    scored = [(n, v) for n, v in scored if v is not None]
    return max(scored, key=lambda nv: nv[1]) if scored else None


def decide(candidate: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]],
           current: Optional[Mapping[str, Any]] = None, *, current_name: str = "the current version",
           thresholds: Optional[Thresholds] = None) -> Decision:
    """Decide whether ``candidate`` should become the patient's model.

    Parameters
    ----------
    candidate : mapping
        The recurrent decoder's metrics (``neurohand evaluate --json`` per decoder): ``r2_mean``,
        ``r2_per_finger`` (5 values), ``accuracy``; None where it does not decode that output.
    baselines : mapping
        Classic decoders' metrics by name (``wiener``, ``kalman``, ``lda``) on the same frames.
    current : mapping, optional
        The patient's current version's metrics on the same frames; None when there is none.
    current_name : str
        How to name the current version ("v002").
    thresholds : Thresholds, optional
        Default: ``Thresholds()``.

    Returns
    -------
    Decision
        ``accept`` is False when the candidate is worse (by more than the tolerance) than the best classic decoder
        or than the current version, or misses a threshold; the summary reads "ready: ..." or "not ready: ...".
    """
    thresholds = thresholds or Thresholds()
    tol = thresholds.tolerance
    reasons: List[str] = []
    r2, acc = _score(candidate, "r2_mean"), _score(candidate, "accuracy")
    per_finger = candidate.get("r2_per_finger")
    finger_pass: Tuple[Optional[bool], ...] = ()
    if r2 is None and acc is None:
        return Decision(False, "not ready: the decoder scored nothing on the held-out repetition",
                        ("no finger positions or classes to score",))
    if per_finger is not None:
        finger_pass = tuple(float(v) >= thresholds.finger_r2 for v in per_finger)
        failing = [f for f, ok in zip(FINGERS, finger_pass) if not ok]
        if failing:
            reasons.append("{} below R² {:.2f} ({})".format(
                ", ".join(failing), thresholds.finger_r2,
                ", ".join("{:.2f}".format(float(v)) for v, ok in zip(per_finger, finger_pass) if not ok)))
    if acc is not None and acc < thresholds.class_accuracy:
        reasons.append("class accuracy {:.2f} below {:.2f}".format(acc, thresholds.class_accuracy))
    for key, names, label in (("r2_mean", REGRESSION_BASELINES, "finger R²"),
                              ("accuracy", CLASS_BASELINES, "class accuracy")):
        mine = _score(candidate, key)
        best = _best(baselines, names, key)
        if mine is not None and best is not None and mine < best[1] - tol:
            reasons.append("{} {:.2f} is worse than {}'s {:.2f}".format(label, mine, best[0], best[1]))
    better_than = ""
    if current is not None:
        deltas = []
        for key, label in (("r2_mean", "finger R²"), ("accuracy", "class accuracy")):
            mine, theirs = _score(candidate, key), _score(current, key)
            if mine is None or theirs is None:
                continue
            deltas.append(mine - theirs)
            if mine < theirs - tol:
                reasons.append("{} {:.2f} is worse than {}'s {:.2f}".format(label, mine, current_name, theirs))
        if deltas and min(deltas) >= -tol:
            better_than = "; {} {} by {:.2f}".format(
                "better than" if min(deltas) > tol else "as good as", current_name, max(min(deltas), 0.0))
    scores = ", ".join(s for s in (None if r2 is None else "finger R² {:.2f}".format(r2),
                                   None if acc is None else "class accuracy {:.2f}".format(acc)) if s)
    if reasons:
        return Decision(False, "not ready: " + "; ".join(reasons), tuple(reasons), finger_pass)
    return Decision(True, "ready: " + scores + better_than, (), finger_pass)
