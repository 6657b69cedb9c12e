"""The accept decision: the deployed decoder is the best one, or the clinician is told why not."""

import pytest

from neurohand.training.verdict import Thresholds, decide

GOOD = {"r2_mean": 0.90, "r2_per_finger": [0.85, 0.9, 0.92, 0.91, 0.92], "accuracy": 0.90}
BASELINES = {"wiener": {"r2_mean": 0.80, "accuracy": None}, "kalman": {"r2_mean": 0.70, "accuracy": None},
             "lda": {"r2_mean": None, "accuracy": 0.85}}


def test_a_model_better_than_everything_is_ready():
    d = decide(GOOD, BASELINES, {"r2_mean": 0.87, "accuracy": 0.86}, current_name="v002")
    assert d.accept and d.reasons == ()
    assert d.summary == "ready: finger R² 0.90, class accuracy 0.90; better than v002 by 0.03"
    assert d.finger_pass == (True,) * 5


def test_a_poorly_trained_gru_is_rejected_for_wiener():
    poor = {"r2_mean": 0.40, "r2_per_finger": [0.3, 0.45, 0.5, 0.4, 0.35], "accuracy": None}
    d = decide(poor, {"wiener": {"r2_mean": 0.89}, "kalman": {"r2_mean": 0.81}})
    assert not d.accept
    assert d.summary.startswith("not ready: ")
    assert "finger R² 0.40 is worse than wiener's 0.89" in d.reason
    assert "thumb, index, ring, little below R² 0.50" in d.reason
    assert d.finger_pass == (False, False, True, False, False)


def test_a_slightly_worse_recalibration_is_rejected_and_ties_are_not():
    worse = dict(GOOD, r2_mean=0.89)
    d = decide(worse, BASELINES, {"r2_mean": 0.90, "accuracy": 0.90}, current_name="v001")
    assert not d.accept and d.reason == "finger R² 0.89 is worse than v001's 0.90"
    tie = dict(GOOD, r2_mean=0.898)  # within the stated tolerance (0.005): equal
    d = decide(tie, BASELINES, {"r2_mean": 0.90, "accuracy": 0.90}, current_name="v001")
    assert d.accept and d.summary.endswith("as good as v001 by 0.00")
    assert not decide(tie, BASELINES, {"r2_mean": 0.90, "accuracy": 0.90},
                      thresholds=Thresholds(tolerance=0.0)).accept


def test_classes_are_held_to_lda_and_the_accuracy_threshold():
    cls_only = {"r2_mean": None, "r2_per_finger": None, "accuracy": 0.82}
    d = decide(cls_only, {"lda": {"accuracy": 0.86}})
    assert not d.accept and d.reason == "class accuracy 0.82 is worse than lda's 0.86"
    d = decide(dict(cls_only, accuracy=0.7), {"lda": {"accuracy": 0.6}})
    assert not d.accept and d.reason == "class accuracy 0.70 below 0.80"
    d = decide(cls_only, {"lda": {"accuracy": 0.80}})
    assert d.accept and d.summary == "ready: class accuracy 0.82" and d.finger_pass == ()


@pytest.mark.parametrize("missing", [{}, {"r2_mean": None, "accuracy": None}])
def test_a_decoder_that_scored_nothing_is_not_ready(missing):
    d = decide(missing, BASELINES)
    assert not d.accept and d.summary.startswith("not ready: ")
