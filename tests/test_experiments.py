"""The experiment scripts in experiments/ (the application layer): options, a short run of each kind, errors."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from neurohand.training.train import TrainConfig, with_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")
SCRIPTS = ["ninapro", "threedc", "sim", "recalibration", "lead", "emg_features", "recalibration_real", "pretrain_lopo",
           "adapt_settings", "behaviour_fingerprint"]
FAST = with_overrides(TrainConfig(), {"model.hidden": 16, "model.layers": 1, "schedule.epochs": 3,
                                     "batches.seq_len": 40, "batches.burn_in": 5, "batches.batch_size": 8,
                                     "schedule.max_steps_per_epoch": 4, "schedule.patience": 5,
                                     "adaptation.mode": "on"})  # as tests/test_train.py's


def load(name):
    if EXPERIMENTS not in sys.path:
        sys.path.insert(0, EXPERIMENTS)  # as when run: the script's folder is on the path, for `import common`
    spec = importlib.util.spec_from_file_location("experiments_" + name, os.path.join(EXPERIMENTS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script(*args, **kw):
    return subprocess.run([sys.executable] + list(args), capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_prints_its_help(name, tmp_path):
    r = script(os.path.join(EXPERIMENTS, name + ".py"), "--help", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "--json" in r.stdout and "--set" in r.stdout and "--out" in r.stdout


def test_experiments_import_only_neurohand_and_the_standard_library():
    import ast

    allowed = {"neurohand", "common", "pretrain_lopo", "numpy", "rich", "__future__", "argparse", "dataclasses",
               "hashlib", "io", "json", "os", "subprocess", "sys", "time", "typing"}
    for name in SCRIPTS + ["common"]:
        tree = ast.parse(open(os.path.join(EXPERIMENTS, name + ".py")).read())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for m in mods:
                assert m.split(".")[0] in allowed, (name, m)


def test_the_default_output_folder_is_ignored_by_git():
    common = load("common")
    assert common.DEFAULT_OUT == os.path.join(EXPERIMENTS, "out")
    r = subprocess.run(["git", "check-ignore", "-q", os.path.join(common.DEFAULT_OUT, "x", "model.json")], cwd=ROOT)
    assert r.returncode == 0


def test_set_overrides_training_settings_by_their_type():
    common = load("common")
    args = common.parser("x", "x").parse_args(["--set", "adaptation.mode=off", "--set", "model.class_pool=false",
                                               "--set", "batches.seq_ms=2000", "--set", "refit.average_epochs=8",
                                               "--set", "batches.seq_len=none", "--set", "adaptation.config.clip_sd=9"])
    cfg = common.train_config(args)
    assert (cfg.adaptation.mode, cfg.model.class_pool, cfg.batches.seq_ms, cfg.refit.average_epochs,
            cfg.batches.seq_len, cfg.adaptation.config.clip_sd) == ("off", False, 2000.0, 8, None, 9.0)
    for bad in ("no_such=1", "class_pool=false", "model.nothing=1", "model.hidden"):
        with pytest.raises(common.NeurohandError, match="KEY a setting path"):
            common.train_config(common.parser("x", "x").parse_args(["--set", bad]))


def test_a_missing_data_folder_is_one_line_and_exit_code_2(tmp_path):
    r = script(os.path.join(EXPERIMENTS, "ninapro.py"), "--data", str(tmp_path / "nowhere"), "--out",
               str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "No NinaPro DB1 recording" in r.stderr and "--data" in r.stderr


@pytest.mark.slow
def test_sim_runs_end_to_end(tmp_path):
    res = load("sim").run(str(tmp_path), minutes=2.2, config=FAST)
    assert res["experiment"] == "sim" and len(res["test_repetitions"]) == 2
    assert {"gru", "wiener", "kalman", "lda"} == set(res["decoders"])
    assert os.path.exists(res["report"])


@pytest.mark.slow
def test_threedc_reports_each_seed_and_their_mean(tmp_path, threedc_dir):
    data = os.path.dirname(threedc_dir)
    cfg = with_overrides(FAST, {"schedule.epochs": 1, "schedule.max_steps_per_epoch": 2, "adaptation.mode": "off"})
    res = load("threedc").run(data, str(tmp_path), participants=(2,), seeds=(0, 1), config=cfg)
    assert res["seeds"] == [0, 1] and set(res["accuracy_by_seed"]) == {"0", "1"}
    by_seed = [res["accuracy_by_seed"][s]["2"]["gru"] for s in ("0", "1")]
    assert by_seed[0] != by_seed[1]  # two seeds, two models
    assert res["accuracy"]["2"]["gru"] == pytest.approx(np.mean(by_seed))
    lda = res["accuracy_by_seed"]["0"]["2"]["lda"]
    assert res["accuracy_by_seed"]["1"]["2"]["lda"] == lda  # LDA does not depend on the seed
    assert res["wins_by_seed"] == {s: int(res["accuracy_by_seed"][s]["2"]["gru"] > lda) for s in ("0", "1")}
    assert os.path.isfile(os.path.join(str(tmp_path), "3dc_seed1", "3dc_p2", "report", "report.html"))


@pytest.mark.slow
def test_lead_scores_each_lead_on_the_validation_repetition(tmp_path, ninapro_file):
    data = os.path.dirname(os.path.dirname(ninapro_file))
    cfg = with_overrides(FAST, {"schedule.epochs": 1, "schedule.max_steps_per_epoch": 2, "adaptation.mode": "off"})
    res = load("lead").run(data, str(tmp_path), leads=(0.0, 100.0), seeds=(0,), config=cfg)
    assert res["validation_repetition"] == 7 and [r["lead_ms"] for r in res["rows"]] == [0.0, 100.0]
    for r in res["rows"]:
        assert -10 < r["gru"]["r2"] <= 1 and r["gru"]["delay_ms"] is not None
    import json

    meta = json.load(open(os.path.join(str(tmp_path), "lead100_seed0", "model", "model.json")))
    assert meta["train_config"]["loss"]["target_lead_ms"] == 100.0


@pytest.mark.slow
@pytest.mark.timeout(900)  # two data sets trained and replayed: about 2 minutes on 2 free cores
def test_latency_sweep_scores_the_commands_of_each_window_lead_and_smoothing(tmp_path, ninapro_file):
    data = os.path.dirname(os.path.dirname(ninapro_file))
    cfg = with_overrides(FAST, {"schedule.epochs": 1, "schedule.max_steps_per_epoch": 2, "adaptation.mode": "off"})
    mod = load("latency_sweep")
    res = mod.run(data, str(tmp_path), sets=("ninapro", "sim"), windows=(50.0,), leads=(120.0,), sim_leads=(30.0,),
                  smoothings=(0.0, 100.0), seeds=(0,), config=cfg,
                  sim={"minutes": 3.0, "n_channels": 4, "fs_hz": 2000.0}, log=lambda m: None)
    assert [(r["data"], r["lead_ms"], r["smoothing_ms"]) for r in res["rows"]] == [
        ("ninapro", 120.0, 0.0), ("ninapro", 120.0, 100.0), ("sim", 30.0, 0.0), ("sim", 30.0, 100.0)]
    assert res["splits"]["ninapro"] == "train 1-6, validate 7"
    assert res["splits"]["sim"].startswith("train 1-") and "out of view" in res["splits"]["sim"]
    for plain, smooth in (res["rows"][:2], res["rows"][2:]):
        assert plain["budget_ms"]["window"] == 25.0 and plain["budget_ms"]["smoothing"] == 0.0
        assert smooth["budget_ms"]["smoothing"] > 80.0  # hop (1 - a) / a for 100 ms at 10 ms hops: 95.1 ms
        assert plain["decoder_output"] == smooth["decoder_output"]
    import json

    meta = json.load(open(os.path.join(str(tmp_path), "sweep", "ninapro_w50_lead120_seed0", "model", "model.json")))
    assert meta["train_config"]["loss"]["target_lead_ms"] == 120.0 and meta["feature_config"]["window_ms"] == 50.0
    bundle = json.load(open(os.path.join(str(tmp_path), "sweep", "ninapro_w50_lead120_seed0", "bundle", "bundle.json")))
    assert bundle["contract"]["training"]["target_lead_ms"] == 120.0  # the choices travel with the bundle
    assert bundle["contract"]["feature_config"]["window_ms"] == 50.0
    saved = tmp_path / "rows.json"
    saved.write_text(json.dumps(res))
    assert mod.main(mod.build, mod._run, mod.show, ["--from-json", str(saved), "--plot", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 10000


@pytest.mark.slow
def test_recalibration_real_sets_the_unchanged_recalibrated_and_fresh_decoders_side_by_side(tmp_path, threedc_dir):
    data = os.path.dirname(threedc_dir)
    cfg = with_overrides(FAST, {"schedule.epochs": 1, "schedule.max_steps_per_epoch": 2, "adaptation.mode": "off"})
    res = load("recalibration_real").run(data, str(tmp_path), sets=("3dc",), people={"3dc": [2]}, seed=0,
                                         config=cfg)
    r = res["sets"]["3dc"]
    row = r["rows"][0]
    assert r["metric"] == "accuracy" and r["classic"] == "lda" and r["people"] == 1
    assert row["kept"] in ("source", "renormalise", "fine_tune")
    assert row["held_out"][row["kept"]] == max(row["held_out"].values()) >= row["held_out"]["source"]
    assert 0 <= row["unchanged"] <= 1 and 0 <= row["recalibrated"] <= 1 and 0 <= row["fresh_classic"] <= 1
    assert 40 < row["recalibration_data_s"] < 80  # one cycle of eleven 5-second gestures
    assert r["not_worse"] == int(row["recalibrated"] >= row["unchanged"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pretrain_lopo_holds_people_out_of_the_base(tmp_path, threedc_dir):
    data = os.path.dirname(threedc_dir)
    if not os.path.isdir(os.path.join(data, "3dc_p13-22")):
        pytest.skip("3DC participants 13-22 not found beside {}".format(threedc_dir))
    cfg = with_overrides(FAST, {"schedule.epochs": 1, "schedule.max_steps_per_epoch": 2, "adaptation.mode": "off"})
    mod = load("pretrain_lopo")
    assert mod.folds_of(mod.PEOPLE["3dc"], 5)[0] == [1, 2, 3]
    res = mod.run(data, str(tmp_path), data_set="3dc", n_folds=7, folds=[1], amounts=[1, 2], seed=0, config=cfg)
    assert res["pretrain"][0]["held_out"] == [1, 2]
    import json

    base = json.load(open(os.path.join(str(tmp_path), "pretrain_lopo", "3dc", "fold1", "base", "model.json")))
    assert "3dc-participant1" not in base["base"]["people"] and len(base["base"]["people"]) == 12
    rows = {(r["person"], r["amount"]): r for r in res["rows"]}
    assert set(rows) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert "scratch" not in rows[(1, 1)] and 0 <= rows[(1, 2)]["scratch"] <= 1 and 0 <= rows[(2, 2)]["classic"] <= 1
    assert all(0 <= r["pretrained"] <= 1 for r in rows.values())
    # a second process collects the folds written so far; a rerun reuses the fold's base and models, training nothing
    again = mod.collect(str(tmp_path), data_set="3dc", n_folds=7, amounts=[1, 2], seed=0)
    assert again["rows"] == res["rows"] and again["folds"] == [1]
    mod.train = lambda *a, **k: pytest.fail("a finished model was trained again")
    assert mod.run(data, str(tmp_path), data_set="3dc", n_folds=7, folds=[1], amounts=[1, 2], seed=0,
                   config=cfg)["rows"] == res["rows"]
    # the adaptation's candidates, on a person the base has not seen, scored on their other cycles of train/
    sweep = load("adapt_settings").run(data, str(tmp_path), base=os.path.join(str(tmp_path), "pretrain_lopo", "3dc",
                                                                               "fold1", "base"),
                                       data_set="3dc", people=[2], amount=1, config=cfg)
    assert set(sweep["means"]) == set(sweep["candidates"]) and all(0 <= m["validation"] <= 1
                                                                    for m in sweep["means"].values())

def test_emg_features_refuses_unknown_sets_and_training_settings(tmp_path):
    r = script(os.path.join(EXPERIMENTS, "emg_features.py"), "--sets", "old_default,kurtosis", "--data", str(tmp_path))
    assert r.returncode == 2 and "Unknown feature set 'kurtosis'" in r.stderr
    r = script(os.path.join(EXPERIMENTS, "emg_features.py"), "--set", "adaptation.mode=off")
    assert r.returncode == 2 and "trains no network" in r.stderr
    mod = load("emg_features")
    for name in mod.CANDIDATES:  # every candidate is a valid configuration
        assert mod.config_of(name).signal_kind == "emg"
    assert not mod.eligible("ls9") and not mod.eligible("ls9_abs20")  # thresholds in ADC counts
    assert mod.eligible("ls9_rel") and mod.eligible("old_default") and mod.eligible("log_td")


@pytest.mark.slow
def test_emg_features_chooses_on_validation_then_scores_test(threedc_dir):
    data = os.path.dirname(threedc_dir)
    if not os.path.isdir(os.path.join(data, "3dc_p13-22")):
        pytest.skip("3DC participants 13-22 not found under {}".format(data))
    mod = load("emg_features")
    res = mod.run(data, participants=(2, 13), sets=("old_default", "ls9_abs20", "log_td+ls"))
    assert res["validation"] == "train/ repetitions 1-3 -> 4" and res["participants"] == [2, 13]
    means = res["mean_validation_accuracy"]
    assert res["chosen"] == max((s for s in means if res["sets"][s]["eligible"]), key=means.get)
    assert not res["sets"]["ls9_abs20"]["eligible"]
    for by_p in res["validation_accuracy"].values():
        assert set(by_p) == {"2", "13"} and all(0.5 < a <= 1.0 for a in by_p.values())
    assert list(res["test_accuracy"])[0] == res["chosen"] and set(res["test_accuracy"]) >= {"old_default", "ls9"}
    assert res["mean_test_accuracy"]["old_default"] == pytest.approx(np.mean(list(
        res["test_accuracy"]["old_default"].values())))
    quiet = mod.run(data, participants=(2,), sets=("old_default",), test=False)
    assert "test_accuracy" not in quiet and quiet["validation_accuracy"]["old_default"]["2"] == \
        res["validation_accuracy"]["old_default"]["2"]
