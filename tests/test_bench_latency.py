"""``neurohand bench latency``: the commands scored against the truth, the delay estimator, the budget."""

import json

import numpy as np
import pytest

from neurohand.bench_latency import bench_latency, budget_ms, half_movement_ms, lag_ms, replay
from neurohand.cli import main
from neurohand.decoder.latency_defaults import DEFAULT_LEAD_MS, DEFAULT_SMOOTHING_MS
from neurohand.decoder.postprocess import PostConfig


def smooth_signals(rng, n, cols=5, width=15):
    x = rng.normal(size=(n + 4 * width, cols))
    k = np.hanning(4 * width)
    return np.stack([np.convolve(x[:, j], k / k.sum(), mode="valid")[:n] for j in range(cols)], axis=1)


@pytest.mark.parametrize("hop_ms, shift", [(10.0, 7), (10.0, -3), (20.0, 3), (10.0, 0)])
def test_the_delay_estimator_recovers_a_known_lag(rng, hop_ms, shift):
    truth = smooth_signals(rng, 3000)
    late = np.roll(truth, shift, axis=0) + rng.normal(0, 0.05 * truth.std(), truth.shape)  # shift > 0: behind
    assert lag_ms(truth[50:-50], late[50:-50], hop_ms) == pytest.approx(shift * hop_ms)


def test_onset_to_half_movement_is_measured_on_the_commands(rng):
    fs, glove = 1000.0, 100.0
    ramp = 50  # glove samples: a 500 ms minimum-jerk ramp to 0.8 on the index finger
    t = np.arange(20000)
    onsets, intent = [], np.zeros((len(t), 5))
    for s in range(2000, 18000, 4000):
        x = np.clip((t - s) / (ramp / glove * fs), 0, 1)
        intent[:, 1] = np.maximum(intent[:, 1], 0.8 * (10 * x ** 3 - 15 * x ** 4 + 6 * x ** 5) * (t < s + 2500))
        onsets.append((s, ramp, np.array([0, 0.8, 0.1, 0, 0])))
    end = t[9::10]  # 10 ms frames
    run = {"frame_end": end, "commands": np.roll(intent, 40, axis=0)[end]}  # 40 ms behind
    h = half_movement_ms(run, onsets, fs, glove)
    assert h["movements"] == 4 and h["missed"] == 0
    assert h["intent_median_ms"] == pytest.approx(250.0)
    assert 40.0 <= h["lag_median_ms"] < 50.0  # within one frame
    run["commands"] = np.zeros_like(run["commands"])
    assert half_movement_ms(run, onsets, fs, glove)["missed"] == 4


def test_the_budget_adds_up_the_stages(adapted_bundle, short_rec):
    b = budget_ms(adapted_bundle, 1.5)
    fc = adapted_bundle.feature_config
    assert b["window"] == fc.window_ms / 2 and b["hop"] == fc.hop_ms and b["software"] == 1.5
    assert b["smoothing"] == 0.0  # exported with the default: no smoother
    smoothed = budget_ms(adapted_bundle, 1.5, post=PostConfig(smoothing_ms=30.0))
    assert 20.0 < smoothed["smoothing"] < 30.0  # a 30 ms smoother at 10 ms hops: 10 (1 - a) / a = 25.3 ms
    assert b["filter_group_delay"] > 0
    assert b["total"] == pytest.approx(sum(v for k, v in b.items() if k != "total"))
    run = replay(adapted_bundle, short_rec)
    assert run["commands"].shape == run["truth"].shape == (len(run["frame_end"]), 5)
    assert np.all(np.diff(run["frame_end"]) > 0) and run["frame_end"][-1] < short_rec.n_samples


def test_a_data_folder_without_ninapro_is_one_line(tmp_path, capsys):
    capsys.readouterr()
    assert main(["bench", "latency", "--data", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Invalid value for '--data'" in err and "S2_A1_E1.mat" in err


@pytest.mark.slow
def test_the_latency_json_has_its_keys_on_a_tiny_simulation():
    out = json.loads(json.dumps(bench_latency(minutes=2.5, epochs=1, sim_channels=4, sim_fs_hz=4000.0)))
    assert out["benchmark"] == "latency" and [r["data"] for r in out["results"]] == ["sim"]
    assert out["skipped"][0]["data"] == "ninapro" and "--data" in out["skipped"][0]["reason"]
    r = out["results"][0]
    for key in ("r2", "pearson_r", "delay_ms", "budget_ms", "decoder_output", "software_ms", "half_movement"):
        assert key in r
    assert set(r["budget_ms"]) == {"filter_group_delay", "window", "hop", "smoothing", "software", "total"}
    assert -1.0 <= r["pearson_r"] <= 1.0 and abs(r["delay_ms"]) <= 500 and r["delay_ms"] % r["hop_ms"] == 0
    assert r["half_movement"]["movements"] + r["half_movement"]["missed"] > 0
    # trained and exported with the defaults: the nerve kind's window and lead, no smoothing, as the contract says
    assert (r["window_ms"], r["lead_ms"], r["smoothing_ms"]) == (50.0, DEFAULT_LEAD_MS["nerve"], DEFAULT_SMOOTHING_MS)
    assert r["budget_ms"]["smoothing"] == 0.0 and r["budget_ms"]["window"] == 25.0


def test_without_json_a_table_shows_every_result_and_what_was_skipped(monkeypatch, capsys):
    from neurohand import bench_latency as bl

    budget = {"filter_group_delay": 0.14, "window": 50.0, "hop": 10.0, "smoothing": 25.3, "software": 0.3,
              "total": 85.7}
    row = {"data": "sim", "seed": 0, "r2": 0.931, "pearson_r": 0.97, "delay_ms": 60.0, "budget_ms": budget,
           "decoder_output": {"r2": 0.94, "pearson_r": 0.974, "delay_ms": 30.0},
           "half_movement": {"command_median_ms": 305.0, "intent_median_ms": 232.5}}
    seen = {}

    def fake(**kw):
        seen.update(kw)
        return {"benchmark": "latency", "engine": "numpy", "results": [row],
                "skipped": [{"data": "ninapro", "reason": "no --data folder given"}]}

    monkeypatch.setattr(bl, "bench_latency", fake)
    capsys.readouterr()
    assert main(["bench", "latency", "--seeds", "0-2", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert seen["seeds"] == [0, 1, 2] and seen["epochs"] == 3 and seen["data_dir"] is None
    for text in ("sim", "0.931", "60", "85.7", "25.3", "305 (232)", "skipped ninapro: no --data folder given"):
        assert text in out
