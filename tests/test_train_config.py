"""TrainConfig's nested settings, with_overrides, the CLI's mapping onto them, and model folders of format 2."""

import json
import os
import shutil
from dataclasses import fields, is_dataclass

import numpy as np
import pytest

from neurohand.decoder.adaptation import AdaptationConfig
from neurohand.decoder.errors import InvalidValueError
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.config import (
    FLAT_LAYOUT,
    AdaptationPolicy,
    ArchitectureConfig,
    TrainConfig,
    with_overrides,
)
from neurohand.training.model_dir import MODEL_FORMAT_VERSION, ModelFormatError, load_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT2 = os.path.join(ROOT, "tests", "data", "model_format2")  # written by neurohand before TrainConfig was nested
# what that code's evaluate() gave for the folder on the recording of test_a_format2_model_folder_loads_and_evaluates
FORMAT2_R2, FORMAT2_ACCURACY = -2.2778378356941245, 0.023069207622868605


def _paths(obj, prefix=""):
    out = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        out += _paths(value, prefix + f.name + ".") if is_dataclass(value) else [prefix + f.name]
    return out


def test_every_flat_name_of_format2_is_a_setting_and_every_setting_but_the_new_ones_had_one():
    paths = _paths(TrainConfig())
    assert set(FLAT_LAYOUT.values()) <= set(paths)
    assert set(paths) - set(FLAT_LAYOUT.values()) == {  # new: settable from now on
        "adaptation.config.clip_sd", "features.window_ms", "features.hop_ms", "features.names",
        "loss.target_lead_ms"}
    old = json.load(open(os.path.join(FORMAT2, "model.json")))["train_config"]
    assert set(old) == set(FLAT_LAYOUT)


def test_the_flat_layout_migrates_and_the_nested_one_round_trips():
    old = json.load(open(os.path.join(FORMAT2, "model.json")))["train_config"]
    cfg = TrainConfig.from_dict(old)
    assert (cfg.model.hidden, cfg.model.layers, cfg.model.lda_front_end) == (8, 1, False)
    assert (cfg.batches.seq_len, cfg.batches.burn_in, cfg.batches.batch_size) == (40, 5, 8)
    assert (cfg.schedule.epochs, cfg.schedule.min_epochs, cfg.augmentation.noise_std, cfg.seed) == (2, 1, 0.25, 3)
    assert cfg.adaptation == AdaptationPolicy(mode="on", config=AdaptationConfig(prior_s=1.5, horizon_s=4.0))
    assert cfg.refit.enabled and cfg.refit.average_epochs == 4 and cfg.refit.parallel
    for name, path in FLAT_LAYOUT.items():
        value = cfg
        for part in path.split("."):
            value = getattr(value, part)
        assert value == old[name], name
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    newer = cfg.to_dict()
    newer["schedule"]["warmup"] = 3  # a setting of a newer neurohand: ignored, as the flat reader ignored them
    newer["curriculum"] = {"stages": 2}
    assert TrainConfig.from_dict(newer) == cfg


def test_with_overrides_takes_setting_paths_and_top_level_keywords():
    base = TrainConfig()
    cfg = with_overrides(base, {"model.hidden": 16, "schedule.epochs": None, "adaptation.config.clip_sd": 9.0},
                         seed=4, device=None)
    assert cfg.model.hidden == 16 and cfg.seed == 4 and cfg.adaptation.config.clip_sd == 9.0
    assert cfg.schedule == base.schedule and cfg.device == "auto"  # None leaves a setting alone
    assert with_overrides(base, seed=2).seed == 2  # as training/experiments.py calls it
    assert with_overrides(base, model=ArchitectureConfig(cell="lstm")).cell == "lstm"
    # the settings of one part change together: a prior longer than the old horizon is fine with the new horizon
    cfg = with_overrides(base, {"adaptation.config.prior_s": 90.0, "adaptation.config.horizon_s": 120.0})
    assert (cfg.adaptation.config.prior_s, cfg.adaptation.config.horizon_s) == (90.0, 120.0)
    with pytest.raises(InvalidValueError, match="Unknown training setting 'model.hiden'; expected one of"):
        with_overrides(base, {"model.hiden": 3})
    with pytest.raises(InvalidValueError, match="Unknown training setting 'epochs'"):
        with_overrides(base, epochs=3)
    with pytest.raises(ValueError, match="'horizon_s': expected at least prior_s=90"):
        with_overrides(base, {"adaptation.config.prior_s": 90.0})
    with pytest.raises(ValueError, match="Invalid value for 'hidden'"):
        ArchitectureConfig(hidden=0)
    with pytest.raises(InvalidValueError, match="'model': expected ArchitectureConfig, got"):
        TrainConfig(model={"hidden": 3})


def test_the_train_command_line_maps_onto_the_nested_settings():
    from neurohand.cli import build_parser
    from neurohand.training.cli import train_config_from_args

    parser = build_parser()
    assert train_config_from_args(parser.parse_args(["train", "s.h5", "--out", "m"])) == TrainConfig()
    args = parser.parse_args(["train", "s.h5", "--out", "m", "--model", "lstm", "--hidden", "8", "--layers", "3",
                              "--epochs", "5", "--seq-len", "50", "--device", "cpu", "--seed", "2",
                              "--no-lda-front-end", "--no-class-pool", "--adapt", "off", "--adapt-prior-s", "90",
                              "--adapt-horizon-s", "120", "--lead-ms", "40"])
    cfg = train_config_from_args(args)
    assert cfg.loss.target_lead_ms == 40.0
    assert cfg.model == ArchitectureConfig(cell="lstm", hidden=8, layers=3, lda_front_end=False, class_pool=False)
    assert (cfg.schedule.epochs, cfg.batches.seq_len, cfg.device, cfg.seed) == (5, 50, "cpu", 2)
    assert cfg.adaptation == AdaptationPolicy(mode="off", config=AdaptationConfig(prior_s=90.0, horizon_s=120.0))


def test_a_format2_model_folder_loads_and_evaluates(tmp_path):
    from neurohand.training.evaluate import evaluate

    model, meta = load_model_dir(FORMAT2)
    assert meta["format_version"] == 2 and model.config.hidden == 8
    assert meta["train_config"] == TrainConfig.from_dict(
        json.load(open(os.path.join(FORMAT2, "model.json")))["train_config"]).to_dict()  # migrated on loading
    test = simulate_recording(SimulatorConfig(minutes=0.5, n_channels=6, fs_hz=4000.0, seed=7, day=1))
    gru = evaluate(FORMAT2, [test])["decoders"]["gru"]
    assert gru["r2_mean"] == pytest.approx(FORMAT2_R2, rel=1e-5)
    assert gru["accuracy"] == pytest.approx(FORMAT2_ACCURACY, rel=1e-5)


def test_a_format2_model_folder_exports_and_recalibrates(tmp_path):
    from neurohand.training.export import export_bundle
    from neurohand.training.recalibrate import RecalibrationConfig, recalibrate

    bundle = export_bundle(FORMAT2, str(tmp_path / "b"))
    assert bundle.contract["model"]["hidden"] == 8
    day2 = simulate_recording(SimulatorConfig(minutes=0.5, n_channels=6, fs_hz=4000.0, seed=7, day=2))
    out = str(tmp_path / "r")
    recalibrate(FORMAT2, [day2], out, config=RecalibrationConfig(epochs=1), log=lambda m: None)
    model, meta = load_model_dir(out)
    saved = json.load(open(os.path.join(out, "model.json")))
    assert saved["format_version"] == MODEL_FORMAT_VERSION == 3
    cfg = TrainConfig.from_dict(saved["train_config"])  # the old settings, written in the new layout
    assert (cfg.batches.seq_len, cfg.batches.burn_in, cfg.augmentation.noise_std) == (40, 5, 0.25)
    assert (cfg.schedule.epochs, cfg.refit.enabled, cfg.device) == (1, False, "cpu")
    assert np.isfinite(model.feature_mean.numpy()).all()


def test_a_model_folder_from_a_newer_format_or_with_a_broken_train_config_is_refused(tmp_path):
    for name, change in (("newer", {"format_version": MODEL_FORMAT_VERSION + 1}),
                         ("broken", {"train_config": {"model": {"hidden": 0}}})):
        d = str(tmp_path / name)
        shutil.copytree(FORMAT2, d)
        meta = json.load(open(os.path.join(d, "model.json")))
        meta.update(change)
        json.dump(meta, open(os.path.join(d, "model.json"), "w"))
        with pytest.raises(ModelFormatError, match="newer neurohand" if name == "newer" else "'train_config' is inv"):
            load_model_dir(d)


@pytest.mark.parametrize("lead", [-1.0, float("nan"), 1500.0])
def test_a_target_lead_outside_0_to_1000_ms_is_refused(lead):
    with pytest.raises(InvalidValueError, match="Invalid value for 'target_lead_ms'"):
        with_overrides(TrainConfig(), {"loss.target_lead_ms": lead})


def test_a_target_lead_takes_the_positions_and_classes_that_far_after_each_frame():
    """Frames keep their features; their targets come from ``lead`` later, the last ones held at the recording's end."""
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    rec = simulate_recording(SimulatorConfig(minutes=0.1, n_channels=4, fs_hz=2000.0, seed=1))
    fcfg = config_for_recording(rec)
    now = build_frames([rec], fcfg)
    ahead = build_frames([rec], fcfg, target_lead_ms=60.0)
    np.testing.assert_array_equal(now.features, ahead.features)
    k = int(round(60.0 / now.hop_ms))  # 60 ms is a whole number of hops here
    assert k >= 1 and 60.0 == k * now.hop_ms
    np.testing.assert_allclose(ahead.positions[:-k], now.positions[k:], atol=1e-6)
    np.testing.assert_array_equal(ahead.labels[:-k], now.labels[k:])
    ends = rec.n_samples - 1
    np.testing.assert_allclose(ahead.positions[-1], rec.positions_at(np.array([ends]))[0], atol=1e-6)
