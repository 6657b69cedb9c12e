"""Raw-EMG feature sets on the 14 3DC people: LDA validation accuracy per set, then the chosen set on test.

``python experiments/emg_features.py [--data ../shared/data] [--participants 1-5,13-20,22] [--sets a,b,...]
[--no-test] [--json]`` (about 7 minutes on a 2-core CPU). For each participant and candidate set, frames are built
by the device's extractor (``default_feature_config('emg', fs_hz=1000)`` with the set's features), an LDA (the
project's baseline: standardised frames, scikit-learn's ``lsqr`` solver with Ledoit-Wolf shrinkage, nothing tuned)
is fitted on ``train/`` repetitions 1-3 and scored (frame accuracy) on repetition 4: the validation split. Of the
sets without a threshold in signal units (:func:`eligible`), the one with the best mean validation accuracy is
chosen; only then are the chosen set, the previous default and LibEMG's LS9 fitted on all of ``train/`` and scored
on ``test/`` (``--no-test`` leaves the test sessions unread).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.errors import NeurohandError
from neurohand.decoder.feature_config import FeatureConfig, default_feature_config
from neurohand.decoder.validation import parse_index_ranges
from neurohand.training.baselines import LdaDecoder
from neurohand.training.data import FrameSet, build_frames
from neurohand.training.importers import import_3dc

from common import main, need_data, parser

PARTICIPANTS = (1, 2, 3, 4, 5, 13, 14, 15, 16, 17, 18, 19, 20, 22)
OLD_DEFAULT = ("mav", "rms", "wl", "zc", "ssc", "logvar", "log_bandpower")
LS9 = ("lscore", "mfl", "msr", "wamp", "zc", "rms", "iav", "dasdv", "var")
LOG_TD = ("log_mav", "log_wl", "logvar", "zc", "ssc", "log_bandpower")
REL = {"wamp_relative": True, "wamp_threshold": 1.0}  # count differences above the window's RMS difference
# name -> (features, other FeatureConfig fields); the filters, window and hop are the EMG default's.
CANDIDATES: Dict[str, Tuple[Tuple[str, ...], Dict[str, Any]]] = {
    "old_default": (OLD_DEFAULT, {}),
    "htd": (("mav", "zc", "ssc", "wl"), {}),
    "ls4": (("lscore", "mfl", "msr", "wamp"), REL),
    "ls9": (LS9, {"wamp_threshold": 2e-3}),  # LibEMG's default threshold: in ADC counts it counts every difference
    "ls9_abs20": (LS9, {"wamp_threshold": 20.0}),  # about 2x the resting |difference| of 3DC, in ADC counts
    "ls9_rel": (LS9, REL),
    "ls9+bp": (LS9 + ("log_bandpower",), REL),
    "old+new": (OLD_DEFAULT + ("lscore", "mfl", "msr", "wamp", "iav", "dasdv", "var"), REL),
    "old+ls4": (OLD_DEFAULT + ("lscore", "msr", "wamp"), REL),
    "log_td": (LOG_TD, {}),
    "log_td+ls": (LOG_TD + ("lscore", "msr", "wamp"), REL),
    "log_td+ls_abs": (LOG_TD + ("lscore", "msr", "wamp"), {"wamp_threshold": 20.0}),
    "log_td+ls_rel0.5": (LOG_TD + ("lscore", "msr", "wamp"), {"wamp_relative": True, "wamp_threshold": 0.5}),
    "log_td+ls_rel2": (LOG_TD + ("lscore", "msr", "wamp"), {"wamp_relative": True, "wamp_threshold": 2.0}),
}
TESTED = ("old_default", "ls9")  # scored on test beside the chosen set


def eligible(name: str) -> bool:
    """Whether a set may become the default: no threshold in signal units (ADC counts here, microvolts elsewhere).

    ``zc`` and ``ssc`` run at the default's threshold of 0; a ``wamp`` counts against the window's own RMS
    difference. The 3DC-tuned absolute thresholds are scored for comparison only.
    """
    features, extra = CANDIDATES[name]
    return "wamp" not in features or bool(extra.get("wamp_relative"))


def config_of(name: str) -> FeatureConfig:
    """Return the EMG default at 1 kHz with candidate ``name``'s features."""
    features, extra = CANDIDATES[name]
    return replace(default_feature_config("emg", fs_hz=1000.0), features=features, **extra)


def participant_dir(data_dir: str, p: int) -> str:
    """Folder of 3DC participant ``p`` (1-5 in ``3dc_p1-5``, 13-22 in ``3dc_p13-22``)."""
    sub = "3dc_p1-5" if p <= 5 else "3dc_p13-22"
    return need_data(os.path.join(data_dir, sub, "Participant{}".format(p)), "3DC participant")


def lda_accuracy(train: FrameSet, test: FrameSet) -> float:
    """Frame accuracy on ``test`` of the project's LDA fitted on ``train`` with Ledoit-Wolf shrinkage (not tuned)."""
    lda = LdaDecoder.fit(train, train, shrinkages=("auto",))
    return float(np.mean(lda.predict(test) == test.labels))


def validation_accuracy(frames: FrameSet) -> float:
    """Fit on repetitions 1-3, score on repetition 4."""
    return lda_accuracy(frames.subset(frames.repetitions <= 3), frames.subset(frames.repetitions == 4))


def run(data_dir: str, *, participants: Sequence[int] = PARTICIPANTS, sets: Optional[Sequence[str]] = None,
        test: bool = True, log: Callable[[str], None] = lambda m: None) -> Dict[str, Any]:
    """Score every set on each participant's validation split, choose the best mean, then score it on test."""
    sets = list(sets or CANDIDATES)
    for s in sets:
        if s not in CANDIDATES:
            raise NeurohandError("Unknown feature set {!r}; expected some of {}".format(s, ", ".join(CANDIDATES)))
    dirs = {p: participant_dir(data_dir, p) for p in participants}
    val: Dict[str, Dict[str, float]] = {s: {} for s in sets}
    for p in participants:
        rec = import_3dc(os.path.join(dirs[p], "train"))
        for s in sets:
            val[s][str(p)] = validation_accuracy(build_frames([rec], config_of(s)))
        log("participant {}: {}".format(p, " ".join("{} {:.3f}".format(s, val[s][str(p)]) for s in sets)))
    mean_val = {s: float(np.mean(list(val[s].values()))) for s in sets}
    pool = [s for s in sets if eligible(s)]
    if not pool:
        raise NeurohandError("None of {} may become a default (each has a threshold in signal units)".format(sets))
    chosen = max(pool, key=lambda s: mean_val[s])
    out: Dict[str, Any] = {
        "experiment": "emg_features", "participants": list(participants), "validation": "train/ repetitions 1-3 -> 4",
        "sets": {s: {"features": list(CANDIDATES[s][0]), "eligible": eligible(s), **CANDIDATES[s][1]} for s in sets},
        "validation_accuracy": val, "mean_validation_accuracy": mean_val, "chosen": chosen,
        "wins_over_old_default": {s: int(sum(val[s][k] > val["old_default"][k] for k in val[s]))
                                  for s in sets} if "old_default" in sets else None,
    }
    if test:  # read only now, after the choice
        tested = [chosen] + [s for s in TESTED if s != chosen]
        acc: Dict[str, Dict[str, float]] = {s: {} for s in tested}
        for p in participants:
            tr, te = import_3dc(os.path.join(dirs[p], "train")), import_3dc(os.path.join(dirs[p], "test"))
            for s in tested:
                cfg = config_of(s)
                acc[s][str(p)] = lda_accuracy(build_frames([tr], cfg), build_frames([te], cfg))
            log("participant {} test: {}".format(p, " ".join("{} {:.3f}".format(s, acc[s][str(p)]) for s in tested)))
        out["test_accuracy"] = acc
        out["mean_test_accuracy"] = {s: float(np.mean(list(acc[s].values()))) for s in tested}
    return out


def show(result: Dict[str, Any]) -> None:
    """Print validation accuracy per participant and set, then the test figures."""
    from rich.console import Console
    from rich.table import Table

    sets = list(result["validation_accuracy"])
    t = Table(title="3DC LDA frame accuracy, validation (train/ repetitions 1-3 -> 4); chosen: {} (* a threshold in "
                    "signal units: not eligible)".format(result["chosen"]))
    t.add_column("participant")
    for s in sets:
        t.add_column(s + ("" if result["sets"][s]["eligible"] else "*"), justify="right")
    for p in result["participants"]:
        t.add_row(str(p), *["{:.3f}".format(result["validation_accuracy"][s][str(p)]) for s in sets])
    t.add_row("mean", *["{:.3f}".format(result["mean_validation_accuracy"][s]) for s in sets])
    Console().print(t)
    if "test_accuracy" in result:
        tested = list(result["test_accuracy"])
        t = Table(title="Test (train/ -> test/), scored after the choice")
        t.add_column("participant")
        for s in tested:
            t.add_column(s, justify="right")
        for p in result["participants"]:
            t.add_row(str(p), *["{:.3f}".format(result["test_accuracy"][s][str(p)]) for s in tested])
        t.add_row("mean", *["{:.3f}".format(result["mean_test_accuracy"][s]) for s in tested])
        Console().print(t)


def build():
    """Command-line options."""
    p = parser("experiments/emg_features.py", __doc__.splitlines()[0], data=True)
    p.add_argument("--participants", default="1-5,13-20,22", help="3DC participants (default all 14: 1-5,13-20,22)")
    p.add_argument("--sets", default=None, help="candidate sets, comma-separated (default all: {})".format(
        ", ".join(CANDIDATES)))
    p.add_argument("--no-test", dest="test", action="store_false", help="leave the test sessions unread")
    return p


def _run(a) -> Dict[str, Any]:
    if a.overrides:
        raise NeurohandError("--set changes training settings; this script trains no network (use --sets)")
    sets = [s.strip() for s in a.sets.split(",") if s.strip()] if a.sets else None
    return run(a.data, participants=list(parse_index_ranges("--participants", a.participants)), sets=sets,
               test=a.test, log=lambda m: print(m, file=sys.stderr) if not a.json else None)


if __name__ == "__main__":
    sys.exit(main(build, _run, show))
