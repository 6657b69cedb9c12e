"""``--reps`` on train/evaluate/recalibrate, ``neurohand recalibrate`` from session files, and evaluate's messages
and table (issue 20)."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.decoder.session_file import write_recording
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.config import TrainConfig, with_overrides
from neurohand.training.data import TrainingDataError, format_ranges, select_repetitions
from neurohand.training.train import train
from tests.test_data_errors import run_cli

TINY = with_overrides(TrainConfig(), {"model.hidden": 8, "model.layers": 1, "schedule.epochs": 1,
                                      "schedule.min_epochs": 1, "schedule.max_steps_per_epoch": 2,
                                      "refit.enabled": False}, device="cpu")


def neurohand(*args, cwd=None):
    exe = os.path.join(os.path.dirname(sys.executable), "neurohand")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "neurohand"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def day1():
    return simulate_recording(SimulatorConfig(minutes=1.5, n_channels=4, fs_hz=4000.0, seed=3))


@pytest.fixture(scope="module")
def files(tmp_path_factory, day1):
    """A trained model folder and two session files of the same patient (day 1, day 2)."""
    d = tmp_path_factory.mktemp("reps")
    write_recording(day1, str(d / "day1.h5"))
    day2 = simulate_recording(SimulatorConfig(minutes=1.0, n_channels=4, fs_hz=4000.0, seed=3, day=2))
    write_recording(day2, str(d / "day2.h5"))
    train([day1], str(d / "model"), config=TINY, progress=False, fit_classic=False, log=lambda m: None)
    return {"dir": d, "model": str(d / "model"), "day1": str(d / "day1.h5"), "day2": str(d / "day2.h5"),
            "day2_rec": day2}


def test_select_repetitions_keeps_only_those_and_names_what_a_session_has(day1):
    reps = sorted(int(r) for r in np.unique(day1.repetitions) if r > 0)
    assert len(reps) >= 3
    one = select_repetitions(day1, [reps[1]])
    assert set(np.unique(one.repetitions)) == {reps[1]}
    assert one.n_samples == int((day1.repetitions == reps[1]).sum())
    both = select_repetitions(day1, [reps[0], reps[2], 99])  # a repetition the session lacks is ignored
    assert set(np.unique(both.repetitions)) == {reps[0], reps[2]} and len(both.segment_starts) >= 2
    with pytest.raises(TrainingDataError, match=r"Invalid value for '--reps': day1 has none of repetitions 7-9; "
                                                r"it has repetitions {}$".format(format_ranges(reps))):
        select_repetitions(day1, [7, 8, 9], name="day1")
    assert format_ranges([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"


@pytest.mark.parametrize("command", ["train", "evaluate", "recalibrate"])
def test_reps_that_select_nothing_are_one_line(files, tmp_path, capsys, command):
    args = {"train": ["train", files["day1"], "--out", str(tmp_path / "m")],
            "evaluate": ["evaluate", files["model"], files["day1"]],
            "recalibrate": ["recalibrate", files["model"], files["day1"], "--out", str(tmp_path / "r")]}[command]
    rc, err = run_cli(capsys, *(args + ["--reps", "40-41"]))
    assert rc == 2 and "Invalid value for '--reps': '{}' has none of repetitions 40-41; it has repetitions 1-".format(
        files["day1"]) in err
    rc, err = run_cli(capsys, *(args + ["--reps", "two"]))
    assert rc == 2 and "Invalid value for '--reps': expected ranges like '1-7' or '1,3,5', got 'two'" in err


def test_train_needs_two_repetitions_of_the_selection(files, tmp_path, capsys):
    rc, err = run_cli(capsys, "train", files["day1"], "--out", str(tmp_path / "m"), "--reps", "2,9")
    assert rc == 2 and "Invalid value for '--reps': '2,9' leaves 1 repetition(s) (2); training (its last repetition " \
                       "is the validation split) needs at least 2" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_train_takes_only_the_given_repetitions(files, tmp_path):
    out = str(tmp_path / "m")
    assert main(["train", files["day1"], "--out", out, "--reps", "1-2", "--epochs", "1", "--hidden", "8",
                 "--layers", "1", "--no-baselines", "--quiet"]) == 0
    meta = json.load(open(os.path.join(out, "model.json")))
    assert meta["val_repetitions"] == [2]  # the last of the two it was given, not of the session's


def test_evaluate_takes_only_the_given_repetitions(files, capsys):
    capsys.readouterr()
    assert main(["evaluate", files["model"], files["day1"], "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["test_frames"]
    assert main(["evaluate", files["model"], files["day1"], "--reps", "2", "--json"]) == 0
    two = json.loads(capsys.readouterr().out)["test_frames"]
    assert 0 < two < every / 2


@pytest.mark.slow
def test_recalibrate_from_files_then_evaluate_export_and_run(files):
    """The issue's must-show, as a user types it: recalibrate on repetition 1, evaluate on repetition 2."""
    d = str(files["dir"])
    r = neurohand("recalibrate", "model", "day2.h5", "--reps", "1", "--out", "R", "--epochs", "2", "--quiet", cwd=d)
    assert r.returncode == 0, r.stderr
    meta = json.load(open(os.path.join(d, "R", "model.json")))
    kept = meta["recalibration"]["kept"]
    # the source and each candidate side by side on the held-out part, the kept one marked
    assert "held out for the choice: the last 30 % of each continuous stretch" in r.stdout
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("  ")}
    assert set(rows) >= {"source", "renormalise", "fine_tune"} and rows[kept].endswith("<- kept")
    assert "wrote R from repetitions 1: " in r.stdout
    assert meta["recalibrated_from"] == files["model"]
    assert meta["recalibration"]["trained_parameters"] == (
        ["rnn.bias_ih_l0", "rnn.weight_ih_l0"] if kept == "fine_tune" else [])
    assert "repetition column" not in r.stdout + r.stderr
    r = neurohand("evaluate", "R", "day2.h5", "--reps", "2", "--json", cwd=d)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["test_frames"] > 0 and out["decoders"]["gru"]["r2_mean"] is not None
    r = neurohand("export", "R", "--out", "B", cwd=d)
    assert r.returncode == 0, r.stderr
    r = neurohand("run", "--bundle", "B", "--source", "replay:day2.h5", "--fast", "--engine", "numpy", "--seconds",
                  "2", "--hand", "none", cwd=d)
    assert r.returncode == 0, r.stderr


def test_recalibrate_refuses_its_own_model_folder_and_other_classes(files, tmp_path, capsys):
    rc, err = run_cli(capsys, "recalibrate", files["model"], files["day2"], "--out", files["model"])
    assert rc == 2 and "needs a folder of its own" in err
    renamed = replace(files["day2_rec"], class_names=tuple("c{}".format(i) for i in range(
        len(files["day2_rec"].class_names))))
    write_recording(renamed, str(tmp_path / "renamed.h5"))
    rc, err = run_cli(capsys, "recalibrate", files["model"], str(tmp_path / "renamed.h5"), "--out",
                      str(tmp_path / "r"))
    assert rc == 2 and "Recalibration recording 0" in err and "re-import it with --class-names rest," in err


def test_evaluate_says_how_to_fix_differing_class_names(files, tmp_path, capsys, day1):
    model_names = list(day1.class_names)
    generic = ["rest"] + ["class{}".format(i) for i in range(1, len(model_names))]
    write_recording(replace(files["day2_rec"], class_names=tuple(generic)), str(tmp_path / "t.h5"))
    rc, err = run_cli(capsys, "evaluate", files["model"], str(tmp_path / "t.h5"))
    assert rc == 2
    assert "has classes {}; the model was trained on {}: if they are the same movements in the same order, " \
           "re-import it with --class-names {}".format(", ".join(generic), ", ".join(model_names),
                                                      ",".join(model_names)) in err
    fewer = files["day2_rec"].select_samples(files["day2_rec"].labels < 3)
    write_recording(replace(fewer, class_names=tuple(model_names[:3])), str(tmp_path / "f.h5"))
    rc, err = run_cli(capsys, "evaluate", files["model"], str(tmp_path / "f.h5"))
    assert rc == 2 and "they are different movement sets (3 classes against {})".format(len(model_names)) in err


def test_the_evaluate_table_shows_only_columns_with_values():
    from rich.console import Console

    from neurohand.training.evaluate import results_table

    classes_only = {"gru": {"r2_mean": None, "pearson_r_mean": None, "rmse_mean": None, "delay_ms": None,
                            "accuracy": 0.8123, "macro_f1": 0.7}, "lda": {"accuracy": 0.75, "macro_f1": 0.74}}
    console = Console(width=60, record=True)
    console.print(results_table(classes_only, "test frames: 10"))
    text = console.export_text()
    assert "accuracy" in text and "macro F1" in text and "0.812" in text
    assert "R²" not in text and "RMSE" not in text and "…" not in text
    both = dict(classes_only, wiener={"r2_mean": 0.5, "pearson_r_mean": 0.7, "rmse_mean": 0.2, "delay_ms": 30.0})
    console = Console(width=80, record=True)  # narrow: headers wrap, values are never cut
    console.print(results_table(both, "t"))
    text = console.export_text()
    assert "…" not in text and " 30 " in text and "30.000" not in text and "0.812" in text  # the delay in whole ms
    console = Console(width=120, record=True)
    console.print(results_table(both, "t"))
    text = console.export_text()
    for header in ("decoder", "finger R²", "Pearson r", "RMSE (0..1)", "delay (ms)", "class accuracy", "macro F1"):
        assert header in text


def test_every_command_prints_scores_in_one_table():
    """train, evaluate and calibrate printed three tables: 'R^2 / class accuracy / delay (ms)', 'R2 / accuracy /
    delay ms' with '20.000', and 'R²' in percent."""
    from rich.console import Console

    from neurohand.calibration.tables import metrics_table
    from neurohand.training.evaluate import results_table
    from neurohand.training.summary import scores_table

    scores = {"gru": {"r2_mean": 0.81234, "delay_ms": 20.0, "accuracy": 0.9},
              "wiener": {"r2_mean": 0.7, "delay_ms": 40.0}, "lda": {"accuracy": 0.95}}
    texts = []
    for table in (scores_table(scores, title="t"), results_table(scores, "t"), metrics_table(scores, "t")):
        console = Console(width=120, record=True)
        console.print(table)
        texts.append(console.export_text())
    assert texts[0] == texts[1] == texts[2]
    assert "finger R²" in texts[0] and "0.812*" in texts[0] and " 20 " in texts[0] and "0.950*" in texts[0]


def test_training_files_with_differing_class_names_say_how_to_agree(day1):
    from neurohand.training.data import check_compatible

    names = tuple("c{}".format(i) for i in range(len(day1.class_names)))
    with pytest.raises(TrainingDataError, match="Recording 1 has classes c0, c1, .*; recording 0 has rest, .*: if "
                                                "they are the same movements in the same order, re-import it with "
                                                "--class-names rest,.* \\(or re-import recording 0 with "
                                                "--class-names c0,c1,"):
        check_compatible([day1, replace(day1, class_names=names)])
