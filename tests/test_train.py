import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from neurohand.cli import main
from neurohand.decoder.latency_defaults import DEFAULT_LEAD_MS
from neurohand.decoder.recording import Recording
from neurohand.decoder.session_file import write_recording
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.config import (
    AdaptationPolicy,
    ArchitectureConfig,
    BatchConfig,
    ScheduleConfig,
    TrainConfig,
    with_overrides,
)
from neurohand.training.data import TrainingDataError, build_frames, validation_split
from neurohand.training.evaluate import evaluate
from neurohand.training.model_dir import load_model_dir
from neurohand.training.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = TrainConfig(model=ArchitectureConfig(hidden=16, layers=1),
                   batches=BatchConfig(seq_len=40, burn_in=5, batch_size=8),
                   schedule=ScheduleConfig(epochs=3, max_steps_per_epoch=4, patience=5),
                   adaptation=AdaptationPolicy(mode="on"))


@pytest.fixture(scope="module")
def sim_train():
    return simulate_recording(SimulatorConfig(minutes=1.6, n_channels=6, fs_hz=4000.0, seed=7))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sim_train):
    d = str(tmp_path_factory.mktemp("model"))
    res = train([sim_train], d, config=FAST, progress=False, log=lambda m: None)
    return d, res


def test_train_writes_a_model_folder_without_pickle(trained):
    d, res = trained
    assert sorted(os.listdir(d)) == ["baselines.npz", "model.json", "model.safetensors"]
    meta = json.load(open(os.path.join(d, "model.json")))
    assert meta["format"] == "neurohand-model" and meta["model_config"]["cell"] == "gru"
    assert meta["n_channels"] == 6 and meta["fs_hz"] == 4000.0
    assert len(meta["history"]) == res.epochs_run >= 1
    assert meta["training_windows"] == {"seq_len": 40, "batch_size": 8}
    # no lead asked for: the signal kind's default, written down as the number it trained with
    assert FAST.loss.target_lead_ms is None
    assert meta["train_config"]["loss"]["target_lead_ms"] == DEFAULT_LEAD_MS["nerve"]
    assert set(meta["baselines"]) == {"wiener", "kalman", "lda"}
    with open(os.path.join(d, "model.safetensors"), "rb") as f:
        assert b"\x80\x04" not in f.read(64)  # not a pickle stream
    model, meta2 = load_model_dir(d)
    assert model.config.n_features == len(meta2["normalisation"]["mean"])
    np.testing.assert_allclose(model.feature_mean.numpy(), meta2["normalisation"]["mean"], rtol=1e-6)


def test_training_runs_behind_the_feature_adaptation_and_records_its_prior(trained, sim_train):
    from neurohand.decoder.adaptation import AdaptationConfig
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import adapt_frames, build_frames, normalisation
    from neurohand.training.model_dir import adapter_of

    d, _ = trained
    model, meta = load_model_dir(d)
    assert meta["adaptation"]["config"] == AdaptationConfig().to_dict()
    assert meta["adaptation_decision"]["on"] and meta["adaptation_decision"]["adapt"] == "on"
    raw = build_frames([sim_train], config_for_recording(sim_train))
    mean, std = normalisation(raw.features)
    np.testing.assert_allclose(meta["adaptation"]["mean"], mean, rtol=1e-6)  # the prior: the raw training frames
    np.testing.assert_allclose(meta["adaptation"]["std"], std, rtol=1e-6)
    adapted = adapt_frames(raw, adapter_of(meta)).features
    # the refit model is normalised to the adapted frames it was trained on, not to the raw ones
    np.testing.assert_allclose(model.feature_mean.numpy(), adapted.mean(0), rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(adapted - raw.features) / std) > 0.05


@pytest.mark.slow
def test_the_class_output_is_pooled_with_the_lda_baseline(trained, sim_train, tmp_path):
    from scipy.special import log_softmax

    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.baselines import load_baselines
    from neurohand.training.data import adapt_frames, build_frames
    from neurohand.training.model_dir import adapter_of

    # a session with finger positions keeps its class head alone
    _, meta = load_model_dir(trained[0])
    assert not meta["model_config"]["class_pool"]
    # a class-only session (as 3DC) pools it with the LDA baseline
    gestures = replace(sim_train, positions=None, position_index=None)
    d = str(tmp_path / "classes")
    train([gestures], d, config=FAST, progress=False, log=lambda m: None)
    model, meta = load_model_dir(d)
    assert meta["model_config"]["class_pool"] and model.pools_classes
    lda = load_baselines(os.path.join(d, "baselines.npz"))["lda"]
    frames = adapt_frames(build_frames([gestures], config_for_recording(gestures)), adapter_of(meta))
    x = frames.features[:500].astype(np.float64)
    # the pool scores the model's normalised frame exactly as the saved LDA baseline scores the raw one
    z = (x - model.feature_mean.double().numpy()) / model.feature_std.double().numpy()
    pool_scores = z @ model.pool_weight.double().numpy().T + model.pool_bias.double().numpy()
    lda_scores = np.empty_like(pool_scores)
    lda_scores[:, lda.classes] = ((x - lda.mean) / lda.std) @ lda.coef.T + lda.intercept
    np.testing.assert_allclose(pool_scores, lda_scores, rtol=1e-4, atol=1e-3)
    # the class output is the product of the two: taking LDA's log-posterior away leaves a normalised distribution
    # (the head's), and it is not LDA's alone
    with torch.no_grad():
        _, pooled, _ = model(torch.as_tensor(frames.features[:500])[None])
    head_logp = pooled[0].double().numpy() - log_softmax(pool_scores, axis=1)
    np.testing.assert_allclose(np.exp(head_logp).sum(1), 1.0, rtol=1e-3)
    assert np.max(np.abs(head_logp - log_softmax(pool_scores, axis=1))) > 0.1


def test_a_subset_never_joins_frames_across_a_gap():
    from neurohand.training.data import FrameSet

    n = 12
    fs = FrameSet(features=np.arange(n, dtype=np.float32)[:, None], positions=None, labels=None,
                  repetitions=np.repeat([1, 2, 3], 4), segment=np.repeat([5, 9], [10, 2]), hop_ms=10.0,
                  class_names=("rest",))
    sub = fs.subset(fs.repetitions != 2)  # repetition 2 sits inside segment 5: its two sides are not continuous
    assert [(s.start, s.stop) for s in sub.segment_slices()] == [(0, 4), (4, 6), (6, 8)]
    assert [(s.start, s.stop) for s in fs.subset(fs.repetitions != 3).segment_slices()] == [(0, 8)]
    assert len(fs.subset(np.zeros(n, bool)).segment_slices()) == 0


@pytest.mark.slow
def test_training_is_reproducible_for_a_seed(tmp_path, sim_train):
    a = train([sim_train], str(tmp_path / "a"), config=FAST, progress=False, fit_classic=False, log=lambda m: None)
    b = train([sim_train], str(tmp_path / "b"), config=FAST, progress=False, fit_classic=False, log=lambda m: None)
    ma, _ = load_model_dir(a.model_dir)
    mb, _ = load_model_dir(b.model_dir)
    for (k, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        torch.testing.assert_close(va, vb, msg=k)


@pytest.mark.slow
def test_parallel_refit_equals_the_refit_after_the_first_phase(tmp_path, sim_train):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the second process trains on one thread: compare like with like
    try:
        seq = train([sim_train], str(tmp_path / "seq"), config=with_overrides(FAST, {"refit.parallel": False}),
                    progress=False, fit_classic=False, log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    par = train([sim_train], str(tmp_path / "par"), config=FAST, progress=False, fit_classic=False,
                log=lambda m: None)
    assert seq.refit_epochs == par.refit_epochs == seq.best_epoch >= 1
    ms, _ = load_model_dir(seq.model_dir)
    mp, _ = load_model_dir(par.model_dir)
    for (k, vs), (_, vp) in zip(ms.state_dict().items(), mp.state_dict().items()):
        torch.testing.assert_close(vs, vp, msg=k)
    # the refit learned from the validation repetition too: not the first phase's weights
    assert not torch.equal(mp.state_dict()["rnn.weight_hh_l0"], _phase1_weights(sim_train, tmp_path))


def _phase1_weights(rec, tmp_path):
    res = train([rec], str(tmp_path / "norefit"), config=with_overrides(FAST, {"refit.enabled": False}), progress=False,
                fit_classic=False, log=lambda m: None)
    return load_model_dir(res.model_dir)[0].state_dict()["rnn.weight_hh_l0"]


def test_a_failed_refit_process_says_why(sim_train):
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.parallel_refit import ParallelRefit

    frames = build_frames([sim_train], config_for_recording(sim_train))
    worker = ParallelRefit(config=with_overrides(FAST, {"batches.seq_len": 10 ** 6}), frames=frames,
                           fcfg=config_for_recording(sim_train), n_channels=6, n_classes=len(frames.class_names))
    try:
        with pytest.raises(RuntimeError, match="refit process failed: TrainingDataError: No continuous stretch"):
            worker.result(1)
    finally:
        worker.close()


@pytest.mark.slow
def test_the_refit_process_waits_when_ahead_and_fits_the_baselines_meanwhile(sim_train):
    import time

    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.baselines import fit_baselines
    from neurohand.training.parallel_refit import LEAD_EPOCHS, ParallelRefit

    fcfg = config_for_recording(sim_train)
    frames = build_frames([sim_train], fcfg)
    worker = ParallelRefit(config=with_overrides(FAST, {"schedule.epochs": 6}), frames=frames, fcfg=fcfg, n_channels=6,
                           n_classes=len(frames.class_names))
    try:
        worker.on_phase1_epoch(1, None, True)  # the first phase's best stays at epoch 1
        deadline = time.monotonic() + 120
        while worker._claim.value == 0 and time.monotonic() < deadline:  # it reaches epoch 1 + LEAD_EPOCHS
            time.sleep(0.1)
        assert not worker.claim_baselines()  # the worker has them: the parent must not fit them again
        state = worker.result(1)
    finally:
        worker.close()
    assert LEAD_EPOCHS >= 1 and set(state) >= {"rnn.weight_hh_l0"}
    train_f, val_f, _ = validation_split(frames, fraction=FAST.val_fraction)
    expected = fit_baselines(train_f, val_f)
    assert set(worker.baselines) == set(expected) == {"wiener", "kalman", "lda"}
    for name in expected:
        assert worker.baselines[name].describe() == expected[name].describe()


def test_a_refit_process_killed_while_it_waits_never_blocks_the_parent(sim_train):
    import time

    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.parallel_refit import LEAD_EPOCHS, ParallelRefit

    fcfg = config_for_recording(sim_train)
    frames = build_frames([sim_train], fcfg)
    worker = ParallelRefit(config=with_overrides(FAST, {"schedule.epochs": 6}), frames=frames, fcfg=fcfg, n_channels=6,
                           n_classes=len(frames.class_names), fit_classic=False)
    try:
        worker.on_phase1_epoch(1, None, True)
        deadline = time.monotonic() + 300  # starting the worker (importing torch) is slow on a loaded machine
        reported = 0
        while reported < 1 + LEAD_EPOCHS and time.monotonic() < deadline:  # it reports an epoch, then waits there
            if worker._from_worker.poll(0.2):
                kind, payload = worker._from_worker.recv()  # the test reads the reports in the parent's place:
                worker._started = worker._started or kind == "ready"  # ("ready", ...) first, then ("epoch", n)
                reported = payload if kind == "epoch" else reported
        assert reported == 1 + LEAD_EPOCHS
        worker._proc.kill()  # the OOM killer, say
        worker._proc.join()
        t0 = time.monotonic()
        worker.on_phase1_epoch(2, None, True)  # the parent goes on with its first phase
        assert worker.claim_baselines()  # and fits the baselines itself
        with pytest.raises(RuntimeError, match="the refit process ended without a result"):
            worker.result(2)
        assert time.monotonic() - t0 < 10
    finally:
        worker.close()


def test_ctrl_c_keeps_the_best_checkpoint(tmp_path, sim_train, monkeypatch):
    import neurohand.training.loop as loop

    calls = {"n": 0}
    real = loop.evaluate_frames

    def eval_then_interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "evaluate_frames", eval_then_interrupt)
    res = train([sim_train], str(tmp_path / "m"), config=FAST, progress=False, fit_classic=False,
                log=lambda m: None)
    assert res.interrupted and res.best_epoch == 1
    meta = json.load(open(tmp_path / "m" / "model.json"))
    assert meta["interrupted"] is True and meta["best_epoch"] == 1


@pytest.mark.slow
def test_class_only_recordings_train_through_the_lda_front_end_and_save_a_plain_decoder(tmp_path, sim_train):
    classes_only = replace(sim_train, positions=None, position_index=None)
    ranks = {}
    for front_end in (True, False):
        res = train([classes_only], str(tmp_path / str(front_end)),
                    config=with_overrides(FAST, {"model.lda_front_end": front_end}), progress=False, fit_classic=False,
                    log=lambda m: None)
        model, meta = load_model_dir(res.model_dir)  # a plain decoder: loads with its saved config
        assert meta["model_config"]["projection"] == 0 and meta["model_config"]["positions"] is False
        w_ih = model.rnn.weight_ih_l0.detach().double().numpy()
        assert w_ih.shape == (3 * FAST.model.hidden, model.config.n_features)
        ranks[front_end] = np.linalg.matrix_rank(w_ih, tol=1e-5 * np.abs(w_ih).max())
        assert 0 <= evaluate(res.model_dir, [classes_only])["decoders"]["gru"]["accuracy"] <= 1
    from neurohand.decoder.feature_config import config_for_recording

    present = len(np.unique(build_frames([classes_only], config_for_recording(classes_only)).labels))
    # the front end's projection (classes present - 1 coordinates) folded into the first layer bounds its rank
    assert ranks[True] == present - 1 < ranks[False]


def test_bad_training_input_says_what_to_do(tmp_path, sim_train, rng):
    unlabeled = Recording(signals=rng.normal(size=(40000, 6)), fs_hz=4000.0)
    with pytest.raises(TrainingDataError, match="No usable labels"):
        train([unlabeled], str(tmp_path / "x"), config=FAST, progress=False)
    other = simulate_recording(SimulatorConfig(minutes=0.2, n_channels=4, fs_hz=4000.0, seed=1))
    with pytest.raises(TrainingDataError, match="has 4 channels but recording 0 has 6"):
        train([sim_train, other], str(tmp_path / "x"), config=FAST, progress=False)
    one_rep = simulate_recording(SimulatorConfig(minutes=0.3, n_channels=6, fs_hz=4000.0, seed=1))
    with pytest.raises(TrainingDataError, match="Too little data for a validation split"):
        train([one_rep], str(tmp_path / "x"), config=FAST, progress=False)


def test_training_windows_are_a_duration():
    assert TrainConfig().batches.windows(10.0) == (400, 16)  # nerve and envelope frames: 4 s, 6400 frames a step
    assert TrainConfig().batches.windows(20.0) == (200, 32)  # EMG frames
    assert BatchConfig(seq_len=50).windows(10.0) == (50, 128)
    assert BatchConfig(seq_len=50, batch_size=4).windows(20.0) == (50, 4)
    assert BatchConfig().windows(10.0, longest=250) == (250, 26)  # a session paused often: down to 2 s
    assert BatchConfig().windows(10.0, longest=120) == (200, 32)  # shorter still: WindowSampler says what to do
    assert BatchConfig(seq_len=300).windows(10.0, longest=120) == (300, 21)  # explicit: as asked
    with pytest.raises(ValueError, match="'burn_in': must be < the 40-frame training window, got 40"):
        BatchConfig(seq_ms=400.0, burn_in=40).windows(10.0)
    with pytest.raises(ValueError, match="seq_len"):
        BatchConfig(seq_len=0)


def test_validation_split_is_by_repetition(sim_train):
    from neurohand.decoder.feature_config import config_for_recording

    frames = build_frames([sim_train], config_for_recording(sim_train))
    tr, val, reps = validation_split(frames)
    assert reps == [max(np.unique(frames.repetitions))]
    assert not set(np.unique(tr.repetitions)) & set(reps)
    assert len(tr) + len(val) == len(frames)


def test_evaluate_reports_every_decoder(trained, tmp_path):
    d, _ = trained
    test = simulate_recording(SimulatorConfig(minutes=0.5, n_channels=6, fs_hz=4000.0, seed=7, day=1))
    out = evaluate(d, [test], report_dir=str(tmp_path / "rep"))
    assert set(out["decoders"]) == {"gru", "wiener", "kalman", "lda"}
    # the evaluation runs the test frames through the model's adaptation: without it every decoder scores otherwise
    plain = str(tmp_path / "plain")
    shutil.copytree(d, plain)
    meta = json.load(open(os.path.join(plain, "model.json")))
    meta["adaptation"] = None
    json.dump(meta, open(os.path.join(plain, "model.json"), "w"))
    out_plain = evaluate(plain, [test])
    for name, key in (("gru", "r2_mean"), ("wiener", "r2_mean"), ("lda", "accuracy")):
        assert out_plain["decoders"][name][key] != out["decoders"][name][key]
    keys = {"r2_mean", "r2_per_finger", "pearson_r_mean", "rmse_mean", "accuracy", "macro_f1", "delay_ms"}
    for r in out["decoders"].values():
        assert keys <= set(r)
    assert out["decoders"]["lda"]["r2_mean"] is None and out["decoders"]["wiener"]["accuracy"] is None
    for f in ("report.html", "traces.png", "r2_per_finger.png", "confusion_gru.png", "training_curves.png",
              "latency.png"):
        assert os.path.getsize(tmp_path / "rep" / f) > 0
    html = open(tmp_path / "rep" / "report.html").read()
    assert "http" not in html.replace("http-equiv", "")  # self-contained, opens offline


def test_evaluate_refuses_a_mismatched_recording(trained, rng):
    d, _ = trained
    wrong = Recording(signals=rng.normal(size=(4000, 5)), fs_hz=4000.0)
    with pytest.raises(TrainingDataError, match="has 5 channels; the model expects 6"):
        evaluate(d, [wrong])


@pytest.mark.slow
def test_train_and_evaluate_cli_json(tmp_path, sim_train, capsys):
    path = str(tmp_path / "s.h5")
    write_recording(sim_train, path)
    model = str(tmp_path / "m")
    assert main(["train", path, "--out", model, "--epochs", "1", "--hidden", "8", "--layers", "1",
                 "--seq-len", "40", "--model", "lstm", "--quiet", "--adapt", "on", "--adapt-prior-s", "1.5",
                 "--adapt-horizon-s", "4"]) == 0
    capsys.readouterr()
    adaptation = json.load(open(os.path.join(model, "model.json")))["adaptation"]["config"]
    assert (adaptation["prior_s"], adaptation["horizon_s"]) == (1.5, 4.0)
    assert main(["evaluate", model, path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["decoders"]) == {"lstm", "wiener", "kalman", "lda"}
    r = out["decoders"]["lstm"]
    assert isinstance(r["r2_mean"], float) and len(r["r2_per_finger"]) == 5
    assert isinstance(r["accuracy"], float) and isinstance(r["delay_ms"], float)


@pytest.mark.slow
def test_torchrun_two_process_gloo(tmp_path, sim_train):
    """DistributedDataParallel on CPU: the same command, two processes, gloo backend."""
    path = str(tmp_path / "s.h5")
    write_recording(sim_train, path)
    model = str(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "neurohand", "train", path, "--out", model, "--epochs", "2", "--hidden", "8", "--layers", "1",
           "--seq-len", "40", "--quiet", "--no-baselines", "--no-lda-front-end", "--device", "cpu"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 processes" in r.stderr
    meta = json.load(open(os.path.join(model, "model.json")))
    assert meta["epochs_run"] >= 1 and meta["train_config"]["model"]["lda_front_end"] is False


def test_gain_augmentation_matches_recomputed_features(rng):
    """Scaling a channel's raw signal by g equals applying the gain law to its features."""
    from neurohand.decoder.feature_config import FeatureConfig
    from neurohand.decoder.features import FeatureExtractor
    from neurohand.decoder.filters import FilterConfig
    from neurohand.training.augment import apply_gains, gain_law

    cfg = FeatureConfig(filters=FilterConfig(bandpass_hz=(20.0, 200.0)), window_ms=100.0, hop_ms=20.0,
                        features=("mav", "rms", "wl", "logvar", "log_bandpower", "iav", "var", "msr", "dasdv", "mfl",
                                  "lscore", "wamp"), bands_hz=((20.0, 100.0),), log_floor=1e-12, wamp_threshold=1.0,
                        wamp_relative=True)
    x = rng.normal(size=(2000, 3))
    g = np.array([0.5, 1.0, 2.0])
    ex = FeatureExtractor(cfg, fs_hz=1000.0, n_channels=3)
    base, scaled = ex.transform(x), ex.transform(x * g)
    law = tuple(torch.as_tensor(a) for a in gain_law(cfg, 3))
    law = (law[0], law[1].float(), law[2].float())
    got = apply_gains(torch.as_tensor(base)[None], torch.as_tensor(np.log(g), dtype=torch.float32)[None], law)[0]
    np.testing.assert_allclose(got.numpy(), scaled, rtol=1e-3, atol=1e-3)


def test_training_errors_are_neurohand_errors():
    from neurohand.decoder.errors import InvalidValueError, NeurohandError
    from neurohand.training.model_dir import ModelFormatError

    for cls in (TrainingDataError, ModelFormatError):
        assert issubclass(cls, InvalidValueError) and issubclass(cls, NeurohandError) and issubclass(cls, ValueError)
    with pytest.raises(InvalidValueError, match="'burn_in': must be < the 40-frame training window"):
        BatchConfig(seq_ms=400.0, burn_in=40).windows(10.0)
    with pytest.raises(ModelFormatError, match="model.json is missing"):
        load_model_dir(ROOT)
