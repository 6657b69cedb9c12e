"""Delay against accuracy in the report: the device's post-processing, scored at each smoothing."""

import numpy as np

from neurohand.decoder.postprocess import SAFE_POSTURE, PostConfig
from neurohand.decoder.stream import StreamDecoder
from neurohand.training.latency_tradeoff import commands_for, plot_tradeoff, smoothing_tradeoff


def smooth_walk(rng, n, hop_ms=10.0):
    """Finger positions moving like a hand: a random walk low-passed to about 1 Hz, within 0.1..0.9."""
    from scipy.signal import butter, sosfilt

    x = np.cumsum(rng.normal(size=(n, 5)), axis=0)
    x = sosfilt(butter(2, 1.0, fs=1000.0 / hop_ms, output="sos"), x, axis=0)
    x -= x.min(axis=0)
    return 0.1 + 0.8 * x / x.max(axis=0)


def test_the_commands_are_the_stream_decoders(short_rec, adapted_bundle):
    """One code path: the report's commands are what the device sends for the same decoded frames."""
    decoder = StreamDecoder(adapted_bundle, engine="numpy")
    stream = decoder.new_stream()
    decoder.reset(stream, command=SAFE_POSTURE)  # as the runtime and the latency benchmark start
    got = decoder.process(stream, short_rec.signals)
    n = len(got.positions)
    mine = commands_for(got.positions, got.class_probabilities[:, 0], [slice(0, n)],
                        adapted_bundle.feature_config.hop_ms, adapted_bundle.post_config())
    np.testing.assert_allclose(mine, got.commands, atol=1e-12)


def test_more_smoothing_costs_delay(rng):
    truth = smooth_walk(rng, 3000)
    noisy = np.clip(truth + 0.05 * rng.normal(size=truth.shape), 0, 1)
    points = smoothing_tradeoff(truth, noisy, np.zeros(len(truth)), [slice(0, 1500), slice(1500, 3000)], 10.0,
                                smoothings=(0.0, 30.0, 100.0))
    raw, s0, s30, s100 = points
    assert raw["smoothing_ms"] is None and raw["delay_ms"] == 0.0 and raw["r2"] > 0.9
    assert [p["smoothing_ms"] for p in points[1:]] == [0.0, 30.0, 100.0]
    assert s0["delay_ms"] <= s30["delay_ms"] < s100["delay_ms"]  # the smoother's delay, hop (1 - a) / a
    assert s100["delay_ms"] >= 60.0
    assert s30["r2"] > s0["r2"]  # what smoothing buys: less noise
    perfect = smoothing_tradeoff(truth, truth, np.zeros(len(truth)), [slice(0, 3000)], 10.0,
                                 smoothings=(0.0, 30.0, 100.0))
    assert perfect[1]["r2"] > perfect[2]["r2"] > perfect[3]["r2"]  # what it costs: lagging a moving hand


def test_the_gate_holds_while_rest_is_certain(rng):
    truth = smooth_walk(rng, 400)
    rest = np.zeros(400)
    rest[200:] = 0.99
    cmd = commands_for(truth, rest, [slice(0, 400)], 10.0, PostConfig(smoothing_ms=0.0))
    assert np.all(cmd[200:] == cmd[199])
    assert np.all(np.abs(np.diff(cmd, axis=0)) <= 4.0 * 0.01 + 1e-12)  # the velocity limit, from the safe posture


def test_the_plot_is_written(tmp_path, rng):
    truth = smooth_walk(rng, 1000)
    points = smoothing_tradeoff(truth, truth, np.zeros(1000), [slice(0, 1000)], 10.0)
    plot_tradeoff(str(tmp_path / "latency.png"), points, chosen_ms=30.0)
    assert (tmp_path / "latency.png").stat().st_size > 5000
