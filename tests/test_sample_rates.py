"""Any sample rate an amplifier uses: window and hop in whole samples, recorded, and the same on the device.

Research amplifiers sample at 2048 Hz (OT Bioelettronica, MindMedia), 1925.93 Hz (Delsys Trigno), 1111.11 Hz and
4000 Hz; 20 ms is a whole number of samples at none but the last.
"""

import json
import os
import re

import numpy as np
import pytest

from neurohand.decoder.bundle_check import check_frame_timing
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.feature_config import FeatureConfig, default_feature_config, ms_to_samples
from neurohand.decoder.features import FeatureExtractor
from neurohand.training.config import FeatureChoice, TrainConfig, with_overrides

RATES = (2048.0, 1925.93, 1111.11, 4000.0)


def emg_like(fs_hz, rng, *, n_channels=4, reps=4, trial_s=2.0, rest_s=1.0):
    """Arrays of an EMG session: rest, two movements interleaved, each repeated ``reps`` times.

    Each movement raises the amplitude of its own pair of channels and flexes its own fingers; the signal is
    white noise times that amplitude, plus 50 Hz hum.
    """
    gains = np.array([[1.0, 0.6, 0.1, 0.1], [0.1, 0.2, 1.0, 0.7]])[:, :n_channels]
    flex = np.array([[1.0, 1.0, 0.2, 0.0, 0.0], [0.0, 0.1, 0.9, 1.0, 1.0]])
    n_trial, n_rest = int(round(trial_s * fs_hz)), int(round(rest_s * fs_hz))
    ramp = np.sin(np.pi * np.arange(n_trial) / n_trial) ** 2
    amp, labels, positions, repetitions = [], [], [], []
    for r in range(1, reps + 1):
        for k in range(2):
            amp += [0.05 + ramp[:, None] * gains[k], np.full((n_rest, n_channels), 0.05)]
            labels += [np.where(ramp > 0.3, k + 1, 0), np.zeros(n_rest, int)]
            positions += [ramp[:, None] * flex[k], np.zeros((n_rest, 5))]
            repetitions += [np.full(n_trial + n_rest, r)]
    amp = np.concatenate(amp)
    t = np.arange(len(amp)) / fs_hz
    signals = amp * rng.normal(size=amp.shape) + 0.02 * np.sin(2 * np.pi * 50.0 * t)[:, None]
    return {"signals": signals.astype(np.float32), "labels": np.concatenate(labels),
            "positions": np.concatenate(positions), "reps": np.concatenate(repetitions)}


@pytest.mark.parametrize("fs_hz,hop", [(2048.0, 41), (1925.93, 39), (1111.11, 22), (4000.0, 80), (1000.0, 20)])
def test_default_emg_config_is_in_whole_samples_at_any_rate(fs_hz, hop):
    cfg = default_feature_config("emg", fs_hz=fs_hz)
    t = cfg.timing(fs_hz)
    assert (t["hop_samples"], t["window_samples"]) == (hop, 10 * hop)
    assert t["hop_ms"] == cfg.hop_ms == pytest.approx(hop * 1000.0 / fs_hz, rel=1e-12)
    assert cfg.window_ms == pytest.approx(10 * cfg.hop_ms, rel=1e-12)
    ex = FeatureExtractor(FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))), fs_hz=fs_hz, n_channels=3)
    assert (ex.hop_samples, ex.window_samples) == (hop, 10 * hop)  # what the device rebuilds from the JSON
    if fs_hz == 1000.0:
        assert (cfg.hop_ms, cfg.window_ms) == (20.0, 200.0)  # already whole: unchanged


def test_a_hop_of_fractional_samples_is_refused_with_the_nearest_valid_ones():
    with pytest.raises(InvalidValueError, match=re.escape(
            "Invalid value for 'hop_ms': 20.0 ms at fs_hz=2048.0 is 40.96 samples; expected a whole number >= 1; "
            "nearest valid: 19.53125 ms (40 samples) or 20.01953125 ms (41 samples)")):
        FeatureExtractor(default_feature_config("emg"), fs_hz=2048.0, n_channels=2)
    assert ms_to_samples("hop_ms", 15.625, 2048.0) == 32


def test_explicit_window_and_hop_are_kept_or_refused():
    base = default_feature_config("emg", fs_hz=2048.0)
    cfg = FeatureChoice(hop_ms=15.625).apply(base, 2048.0)  # 32 samples; the window stays about 200 ms in hops
    assert cfg.samples_at(2048.0) == (32, 13 * 32) and cfg.hop_ms == 15.625
    with pytest.raises(InvalidValueError, match=r"'hop_ms'.*nearest valid: 19\.53125 ms \(40 samples\)"):
        FeatureChoice(hop_ms=20.0).apply(base, 2048.0)
    with pytest.raises(InvalidValueError, match=re.escape(
            "'window_ms': 200.0 ms at fs_hz=2048.0 is 12.8 hops of 32 samples; expected a whole number >= 1; "
            "nearest valid: 187.5 ms (12 hops) or 203.125 ms (13 hops)")):
        FeatureChoice(hop_ms=15.625, window_ms=200.0).apply(base, 2048.0)
    with pytest.raises(InvalidValueError, match=r"'window_ms': 100\.1 ms at fs_hz=1000\.0 is 5\.005 hops of 20 "):
        FeatureChoice(window_ms=100.1).apply(default_feature_config("emg", fs_hz=1000.0), 1000.0)
    cfg = FeatureChoice(window_ms=100.0, hop_ms=25.0, names=("mav", "log_wl")).apply(
        default_feature_config("emg", fs_hz=1000.0), 1000.0)
    assert (cfg.window_ms, cfg.hop_ms, cfg.features) == (100.0, 25.0, ("mav", "log_wl"))
    with pytest.raises(InvalidValueError, match="Invalid value for 'features': allowed 'mav'.*got 'power'"):
        with_overrides(TrainConfig(), {"features.names": ("mav", "power")})


def test_a_contract_whose_frame_timing_differs_from_the_extractor_is_refused():
    contract = {"fs_hz": 2048.0, "frame_timing": {"hop_samples": 41, "window_samples": 410}}
    check_frame_timing(contract, 41, 410)
    check_frame_timing({"fs_hz": 2048.0}, 40, 400)  # exported before frame_timing: the extractor rules
    with pytest.raises(InvalidValueError, match="hop of 41 and a window of 410 samples .* gives 40 and 400"):
        check_frame_timing(contract, 40, 400)


@pytest.mark.slow
@pytest.mark.parametrize("fs_hz", RATES)
def test_import_train_export_and_decode_live_at_amplifier_rates(fs_hz, tmp_path, capsys, monkeypatch):
    import rich.console

    from neurohand.cli import main
    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.session_file import read_recording
    from neurohand.decoder.stream import StreamDecoder
    from neurohand.deploy.runtime import NoneSink, Runtime, RuntimeConfig
    from neurohand.deploy.sources import RecordingSource

    rng = np.random.default_rng(int(fs_hz))
    np.savez(tmp_path / "emg.npz", **emg_like(fs_hz, rng))
    session, model_dir, bundle_dir = (str(tmp_path / n) for n in ("emg.h5", "model", "bundle"))
    assert main(["import", "npz", str(tmp_path / "emg.npz"), "--out", session, "--fs-hz", repr(fs_hz),
                 "--labels-key", "labels", "--positions-key", "positions", "--repetitions-key", "reps"]) == 0
    real_console, bar_out = rich.console.Console, []

    def console(*args, **kw):  # the progress bar on stderr as on a terminal, into a buffer
        if kw.get("stderr"):
            import io

            bar_out.append(io.StringIO())
            return real_console(file=bar_out[-1], force_terminal=True, width=160)
        return real_console(*args, **kw)

    monkeypatch.setattr(rich.console, "Console", console)
    capsys.readouterr()
    # the defaults: no window, hop or feature option
    assert main(["train", session, "--out", model_dir, "--epochs", "3", "--hidden", "8", "--layers", "1",
                 "--seq-len", "40", "--device", "cpu", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    meta = json.load(open(os.path.join(model_dir, "model.json")))
    hop = int(round(20.0 * fs_hz / 1000.0))
    timing = meta["frame_timing"]
    assert (timing["hop_samples"], timing["window_samples"]) == (hop, 10 * hop)
    assert timing["hop_ms"] == meta["feature_config"]["hop_ms"] == pytest.approx(hop * 1000.0 / fs_hz, rel=1e-12)
    for name in ("gru", "wiener", "kalman", "lda"):  # every decoder's validation score, printed to a pipe
        assert re.search(r"\b{}\b.*\d\.\d{{3}}".format(name), out), out
        assert name in meta["val_scores"]
    # the bar counted the epochs of both phases against their own totals
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", bar_out[0].getvalue())
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) epochs", text)]
    assert counts and all(a <= b for a, b in counts) and "nan" not in text
    assert (meta["epochs_run"], 3) in counts
    if meta["refit_epochs"]:
        assert (meta["refit_epochs"], meta["best_epoch"]) in counts

    assert main(["export", model_dir, "--out", bundle_dir]) == 0
    capsys.readouterr()
    assert main(["export", model_dir, "--out", bundle_dir]) == 2  # an existing bundle is never silently replaced
    assert "already holds a bundle: export into a new folder, or give --overwrite" in capsys.readouterr().err
    assert main(["export", model_dir, "--out", bundle_dir, "--overwrite"]) == 0
    bundle = Bundle(bundle_dir)
    assert bundle.contract["frame_timing"] == timing
    extractor = bundle.feature_extractor()
    assert (extractor.hop_samples, extractor.window_samples) == (hop, 10 * hop)

    rec = read_recording(session)
    assert rec.fs_hz == fs_hz
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=hop, fast=True), NoneSink(), record_frames=True,
                 config=RuntimeConfig(engine="numpy"))
    stats = rt.run()
    assert stats.frames == len(extractor.transform(rec.signals)) > 0 and not stats.faults
    live = np.array([f["positions"] for f in rt.frames])
    dec = StreamDecoder(bundle, engine="numpy")
    stream = dec.new_stream()
    chunks = [dec.process(stream, rec.signals[i:i + 37]) for i in range(0, rec.n_samples, 37)]
    offline = np.concatenate([c.positions for c in chunks if len(c.positions)])
    assert np.allclose(live, offline, atol=1e-5)  # the stream in odd chunks decodes what the runtime did


@pytest.mark.slow
def test_train_window_hop_and_features_from_the_command_line(tmp_path, capsys):
    from neurohand.cli import main

    np.savez(tmp_path / "emg.npz", **emg_like(1000.0, np.random.default_rng(5), reps=3))
    session, model_dir = str(tmp_path / "emg.h5"), str(tmp_path / "model")
    assert main(["import", "npz", str(tmp_path / "emg.npz"), "--out", session, "--fs-hz", "1000",
                 "--labels-key", "labels", "--repetitions-key", "reps"]) == 0
    assert main(["train", session, "--out", model_dir, "--epochs", "2", "--hidden", "8", "--layers", "1",
                 "--seq-len", "30", "--device", "cpu", "--window-ms", "100", "--hop-ms", "25",
                 "--features", "mav,log_wl", "--quiet"]) == 0
    meta = json.load(open(os.path.join(model_dir, "model.json")))
    fc = meta["feature_config"]
    assert (fc["window_ms"], fc["hop_ms"], fc["features"]) == (100.0, 25.0, ["mav", "log_wl"])
    assert meta["train_config"]["features"] == {"window_ms": 100.0, "hop_ms": 25.0, "names": ["mav", "log_wl"]}
    assert meta["model_config"]["n_features"] == 2 * 4
    capsys.readouterr()
    assert main(["train", session, "--out", model_dir, "--hop-ms", "2.5", "--window-ms", "100", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--hop-ms': 2.5 ms at fs_hz=1000.0 is 2.5 samples" in err and "nearest valid: 2 ms" in err
