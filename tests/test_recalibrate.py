import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from neurohand.decoder.feature_config import config_for_recording
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.config import TrainConfig, with_overrides
from neurohand.training.data import TrainingDataError, adapt_frames, build_frames
from neurohand.training.loop import evaluate_frames
from neurohand.training.model_dir import adapter_of, load_model_dir
from neurohand.training.recalibrate import (
    RecalibrationConfig,
    choose,
    frozen_core_unchanged,
    holdout_mask,
    input_layer_parameters,
    recalibrate,
)
from neurohand.training.train import train

TINY = with_overrides(TrainConfig(), {"model.hidden": 16, "model.layers": 2, "schedule.epochs": 2,
                                      "schedule.min_epochs": 1, "schedule.max_steps_per_epoch": 3,
                                      "adaptation.mode": "on"}, device="cpu")
ONE_EPOCH = with_overrides(TrainConfig(), {"model.hidden": 8, "model.layers": 1, "schedule.epochs": 1,
                                           "schedule.min_epochs": 1, "schedule.max_steps_per_epoch": 2}, device="cpu")


@pytest.fixture(scope="module")
def day1():
    return simulate_recording(SimulatorConfig(minutes=1.5, n_channels=8, fs_hz=5000.0, seed=3))


@pytest.fixture(scope="module")
def day1_model(tmp_path_factory, day1):
    d = str(tmp_path_factory.mktemp("recal") / "day1")
    train([day1], d, config=TINY, progress=False, fit_classic=False, log=lambda m: None)
    return d


@pytest.fixture(scope="module")
def day2():
    return simulate_recording(SimulatorConfig(minutes=0.3, n_channels=8, fs_hz=5000.0, seed=3, day=2))


FINE_TUNE = RecalibrationConfig(epochs=2, strategies=("fine_tune",), keep="new")


def fit_part(rec, frames):
    """The frames recalibration adapts on (the rest is held out to choose)."""
    fcfg = config_for_recording(rec)
    gap = int(round(fcfg.window_ms / fcfg.hop_ms)) - 1
    return frames.subset(holdout_mask(frames, fraction=0.3, gap_frames=gap)[0])


def test_only_the_input_layer_and_normalisation_change(tmp_path, day1_model, day2):
    out = str(tmp_path / "recal")
    res = recalibrate(day1_model, [day2], out, config=FINE_TUNE, log=lambda m: None)
    assert res.kept == "fine_tune" and res.fine_tune_epochs >= 1
    before, _ = load_model_dir(day1_model)
    after, meta = load_model_dir(out)
    assert frozen_core_unchanged(before, after)
    assert input_layer_parameters(before) == ["rnn.weight_ih_l0", "rnn.bias_ih_l0"]
    assert not torch.equal(before.rnn.weight_ih_l0, after.rnn.weight_ih_l0)
    assert torch.equal(before.rnn.weight_hh_l0, after.rnn.weight_hh_l0)
    assert torch.equal(before.position_head.weight, after.position_head.weight)
    # the adaptation's prior is the adapted-on part's raw feature statistics, the normalisation its adapted frames'
    raw = build_frames([day2], config_for_recording(day2))
    np.testing.assert_allclose(meta["adaptation"]["mean"], fit_part(day2, raw).features.mean(0), rtol=1e-4,
                               atol=1e-5)
    adapted = fit_part(day2, adapt_frames(raw, adapter_of(meta))).features
    np.testing.assert_allclose(after.feature_mean.numpy(), adapted.mean(0), rtol=1e-4, atol=1e-5)
    assert meta["adaptation"]["config"] == json.load(open(os.path.join(day1_model, "model.json")))["adaptation"][
        "config"]
    assert meta["recalibrated_from"] == os.path.abspath(day1_model)
    assert meta["recalibration"]["trained_parameters"] == ["rnn.bias_ih_l0", "rnn.weight_ih_l0"]
    assert meta["train_config"]["model"]["hidden"] == 16  # same model, same format: it exports like any other
    with open(os.path.join(out, "model.json")) as f:
        assert json.load(f)["model_config"] == json.load(open(os.path.join(day1_model, "model.json")))["model_config"]


def test_recalibration_keeps_the_day1_statistics_or_the_absence_of_an_adaptation(tmp_path, day1, day1_model, day2):
    raw = build_frames([day2], config_for_recording(day2))
    # renormalise=False: the day-1 prior and normalisation stay, only the input layer moves
    kept = str(tmp_path / "kept")
    recalibrate(day1_model, [day2], kept, config=RecalibrationConfig(epochs=1, renormalise=False, keep="new"),
                log=lambda m: None)
    meta1 = json.load(open(os.path.join(day1_model, "model.json")))
    meta = json.load(open(os.path.join(kept, "model.json")))
    assert meta["adaptation"] == meta1["adaptation"] and meta["normalisation"] == meta1["normalisation"]
    assert meta["adaptation_decision"]["on"] and meta["adaptation_decision"]["reason"].endswith("with its prior")
    # a model trained without the adaptation is recalibrated without one: normalised to the new session's raw frames
    plain = str(tmp_path / "plain")
    train([day1], plain, config=with_overrides(ONE_EPOCH, {"adaptation.mode": "off"}),
          progress=False, fit_classic=False, log=lambda m: None)
    out = str(tmp_path / "plain_recal")
    recalibrate(plain, [day2], out, config=RecalibrationConfig(epochs=1, keep="new"), log=lambda m: None)
    after, meta = load_model_dir(out)
    assert meta["adaptation"] is None and not meta["adaptation_decision"]["on"]
    np.testing.assert_allclose(after.feature_mean.numpy(), fit_part(day2, raw).features.mean(0), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.slow
def test_a_pooled_class_output_is_refitted_on_the_new_session(tmp_path, day1):

    from neurohand.training.baselines import load_baselines

    # gesture-only sessions; day 2 long enough for LDA's validation split (two repetitions)
    longer_day2 = simulate_recording(SimulatorConfig(minutes=1.0, n_channels=8, fs_hz=5000.0, seed=3, day=2))
    d1, d2 = (replace(r, positions=None, position_index=None) for r in (day1, longer_day2))
    m1 = str(tmp_path / "m1")
    train([d1], m1, config=ONE_EPOCH, progress=False, log=lambda m: None)
    out = str(tmp_path / "r")
    res = recalibrate(m1, [d2], out, config=RecalibrationConfig(strategies=("refit_pool",), keep="new"),
                      log=lambda m: None)
    assert res.kept == "refit_pool"
    before, _ = load_model_dir(m1)
    after, _ = load_model_dir(out)
    assert before.pools_classes and after.pools_classes
    # the pool now scores the day-2 frames as the LDA fitted on day 2 does, not as day 1's
    lda = load_baselines(os.path.join(out, "baselines.npz"))["lda"]
    x = adapt_frames(build_frames([d2], config_for_recording(d2)), adapter_of(json.load(
        open(os.path.join(out, "model.json"))))).features[:300].astype(np.float64)
    z = (x - after.feature_mean.double().numpy()) / after.feature_std.double().numpy()
    scores = z @ after.pool_weight.double().numpy().T + after.pool_bias.double().numpy()
    expected = np.empty_like(scores)
    expected[:, lda.classes] = ((x - lda.mean) / lda.std) @ lda.coef.T + lda.intercept
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)
    assert not torch.equal(before.pool_weight, after.pool_weight)


@pytest.mark.slow
def test_projection_models_adapt_the_projection(tmp_path, day1, day2):
    d = str(tmp_path / "p")
    train([day1], d, config=with_overrides(ONE_EPOCH, {"model.projection": 12}),
          progress=False, fit_classic=False, log=lambda m: None)
    recalibrate(d, [day2], str(tmp_path / "r"), config=RecalibrationConfig(
        epochs=1, train_heads=True, strategies=("fine_tune",), keep="new"), log=lambda m: None)
    a, _ = load_model_dir(d)
    b, meta = load_model_dir(str(tmp_path / "r"))
    trained = meta["recalibration"]["trained_parameters"]
    assert "proj.0.weight" in trained and "position_head.weight" in trained and "rnn.weight_ih_l0" not in trained
    assert frozen_core_unchanged(a, b, trained=trained) and torch.equal(a.rnn.weight_ih_l0, b.rnn.weight_ih_l0)


def test_mismatched_recording_is_refused(tmp_path, day1_model):
    other = simulate_recording(SimulatorConfig(minutes=0.1, n_channels=4, fs_hz=5000.0, seed=3, day=2))
    with pytest.raises(TrainingDataError, match="4 channels at 5000 Hz but the model expects 8"):
        recalibrate(day1_model, [other], str(tmp_path / "x"), log=lambda m: None)


def test_options_are_validated():
    with pytest.raises(ValueError, match="epochs"):
        RecalibrationConfig(epochs=0)
    with pytest.raises(ValueError, match="Invalid value for 'strategies': allowed .*'fine_tune'.*, got 'everything'"):
        RecalibrationConfig(strategies=("everything",))
    with pytest.raises(ValueError, match="Invalid value for 'keep'"):
        RecalibrationConfig(keep="newest")
    with pytest.raises(ValueError, match="holdout_fraction"):
        RecalibrationConfig(holdout_fraction=0.8)


def test_the_best_on_the_held_out_part_is_kept_and_a_tie_keeps_the_source():
    scores = (("source", 0.90), ("renormalise", 0.95), ("fine_tune", 0.95))
    assert choose(scores) == "renormalise"  # of equal scores the smaller change
    assert choose((("source", 0.95), ("renormalise", 0.95), ("fine_tune", 0.94))) == "source"
    assert choose((("source", 0.95), ("fine_tune", 0.60))) == "source"
    assert choose((("source", 0.95), ("fine_tune", 0.60)), keep="new") == "fine_tune"
    assert choose((("source", 0.95),), keep="new") == "source"
    with pytest.raises(ValueError, match="Invalid value for 'keep': allowed 'better', 'new', got 'best'"):
        choose(scores, keep="best")


def test_the_saved_model_is_the_one_scored_and_never_below_the_source(tmp_path, day1_model, day2):
    out = str(tmp_path / "r")
    res = recalibrate(day1_model, [day2], out, config=RecalibrationConfig(epochs=2), log=lambda m: None)
    assert [n for n, _ in res.scores] == ["source", "renormalise", "fine_tune"]
    assert res.score_of(res.kept) == max(s for _, s in res.scores) >= res.score_of("source")
    # the saved folder, scored again on the held-out part, gives the kept model's figure
    model, meta = load_model_dir(out)
    raw = build_frames([day2], config_for_recording(day2))
    fcfg = config_for_recording(day2)
    held = holdout_mask(raw, fraction=0.3, gap_frames=int(round(fcfg.window_ms / fcfg.hop_ms)) - 1)[1]
    again = evaluate_frames(model, adapt_frames(raw, adapter_of(meta)).subset(held), torch.device("cpu"))
    assert again["r2_mean"] == pytest.approx(res.score_of(res.kept), abs=1e-6)
    assert meta["recalibration"]["kept"] == res.kept and meta["recalibration"]["scores"] == dict(res.scores)
    assert "<- kept" in [line for line in res.lines() if line.strip().startswith(res.kept)][0]


def test_a_tie_keeps_the_source_bit_for_bit(tmp_path, day1_model, day2):
    """A step of 1e-12 moves no float32 weight: the fine-tuned candidate equals the source and the tie keeps it."""
    still = RecalibrationConfig(epochs=1, lr=1e-12, strategies=("fine_tune",), renormalise=False)
    out = str(tmp_path / "tie")
    res = recalibrate(day1_model, [day2], out, config=still, log=lambda m: None)
    assert res.score_of("fine_tune") == res.score_of("source") and res.kept == "source"
    before, meta1 = load_model_dir(day1_model)
    after, meta = load_model_dir(out)
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert meta["adaptation"] == meta1["adaptation"] and meta["recalibration"]["trained_parameters"] == []
    forced = recalibrate(day1_model, [day2], str(tmp_path / "forced"), config=replace(still, keep="new"),
                         log=lambda m: None)
    assert forced.kept == "fine_tune"


def test_the_held_out_part_is_the_last_repetition_or_the_end_of_each_stretch(day2):
    raw = build_frames([day2], config_for_recording(day2))
    raw = replace(raw, repetitions=np.where(np.arange(len(raw)) < len(raw) // 2, 1, 2))
    reps = [1, 2]
    fit_mask, held, what = holdout_mask(raw, fraction=0.3, gap_frames=9)
    assert what == "repetition {}".format(reps[-1])
    assert np.all(raw.repetitions[held] == reps[-1]) and not np.any(fit_mask & held)
    assert set(np.unique(raw.repetitions[fit_mask])) == set(reps[:-1])
    one = replace(raw, repetitions=np.where(raw.repetitions > 0, 1, 0))
    fit_mask, held, what = holdout_mask(one, fraction=0.3, gap_frames=9)
    assert what == "the last 30 % of each continuous stretch"
    for s in one.segment_slices():
        n, k = s.stop - s.start, int(round(0.3 * (s.stop - s.start)))
        if n - k - 9 < 1:
            continue
        assert held[s.stop - k:s.stop].all() and not held[s.start:s.stop - k].any()
        assert fit_mask[s.start:s.stop - k - 9].all() and not fit_mask[s.stop - k - 9:s.stop].any()
    tiny = one.subset(np.arange(len(one)) < 5)
    with pytest.raises(TrainingDataError, match="Too little data to recalibrate: the last 30 % of each continuous "
                                                "stretch leaves 0 frames to adapt on and 0 to check"):
        holdout_mask(tiny, fraction=0.3, gap_frames=9)


def test_the_command_offers_the_modules_choices_and_refuses_others(tmp_path, day1_model, capsys):
    from neurohand.cli import main
    from neurohand.decoder.session_file import write_recording
    from neurohand.training import recal_cli
    from neurohand.training.recalibrate import KEEP, STRATEGIES

    assert recal_cli.KEEP == KEEP and recal_cli.STRATEGIES == STRATEGIES  # the CLI's copies (no torch at start-up)
    path = str(tmp_path / "d2.h5")
    write_recording(simulate_recording(SimulatorConfig(minutes=0.2, n_channels=8, fs_hz=5000.0, seed=3, day=2)),
                    path)
    assert main(["recalibrate", day1_model, path, "--out", str(tmp_path / "r"), "--strategies", "renormalise,all"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Invalid value for 'strategies': allowed 'renormalise', 'refit_pool', " \
                                   "'fine_tune', got 'all'" in err
