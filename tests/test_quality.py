import numpy as np

from neurohand.calibration.quality import QualityThresholds, check_recording
from neurohand.decoder.recording import Recording


def test_simulated_session_is_usable_and_modulated(small_sim):
    out = check_recording(small_sim)
    assert out["verdict"] in ("ok", "warn")
    mods = [max(r.modulation.values()) for r in out["channels"] if r.modulation]
    assert len(mods) == small_sim.n_channels and max(mods) > 1.5  # fingers modulate the nerve activity


def test_flat_saturated_and_mains_channels_are_named(small_sim):
    x = small_sim.signals.copy()
    x[:, 1] = 0.0  # disconnected
    t = np.arange(len(x)) / small_sim.fs_hz
    x[:, 2] += 400.0 * np.sin(2 * np.pi * 50.0 * t)  # a floating reference picks up mains (below saturation)
    x[:, 3] = np.clip(x[:, 3] * 50, -500, 500)  # clipped amplifier
    from dataclasses import replace

    rec = replace(small_sim, signals=x)
    out = check_recording(rec, thresholds=QualityThresholds(saturation=500.0))
    by_name = {r.name: r for r in out["channels"]}
    names = rec.channel_names
    assert by_name[names[1]].verdict == "bad" and "flat" in by_name[names[1]].problems[0]
    assert by_name[names[2]].verdict in ("warn", "bad") and "mains" in " ".join(by_name[names[2]].problems)
    assert by_name[names[3]].verdict == "bad" and "saturated" in " ".join(by_name[names[3]].problems)
    assert out["verdict"] == "bad" and names[1] in out["summary"]
    clean = by_name[names[0]]
    assert clean.mains_ratio < 5.0 < by_name[names[2]].mains_ratio


def test_envelope_recordings_skip_the_filters():
    rng = np.random.default_rng(0)
    rec = Recording(signals=np.abs(rng.normal(size=(2000, 2))), fs_hz=100.0, signal_kind="envelope",
                    labels=np.zeros(2000, int))
    out = check_recording(rec)
    assert out["verdict"] == "ok"
