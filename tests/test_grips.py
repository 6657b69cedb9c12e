"""A gesture model (classes only) moves the hand through grips: the table, its seal in the bundle, the decoding,
the log, and a trained gesture bundle driving the simulated hand on a pseudo-terminal."""

import dataclasses
import json
import os
import shutil
import threading
import time

import numpy as np
import pytest

from neurohand.decoder.bundle import Bundle, BundleError
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.grips import GRIPS, GripTable, grip_for_name, grip_table, grip_table_from_contract
from neurohand.decoder.postprocess import SAFE_POSTURE, PostConfig
from neurohand.decoder.stream import StreamDecoder

NAMES = ("rest", "Power Grip", "open-hand", "wrist_flexion", "pinch", "key", "point", "tripod")


def test_class_names_read_as_grips_and_anything_else_holds():
    assert [grip_for_name(n) for n in NAMES] == ["rest", "power", "open", "hold", "pinch", "key", "point", "tripod"]
    assert grip_for_name("neutral") == "rest" and grip_for_name("chuck_grip") == "tripod"
    assert grip_for_name("class3") == "hold"
    t = grip_table(NAMES)
    assert t.postures[1] == GRIPS["power"] and t.postures[3] is None and t.min_probability == 0.6


def test_a_table_can_change_any_class_and_refuses_what_cannot_be_a_posture():
    t = grip_table(NAMES, overrides={"wrist_flexion": "power", "rest": "hold", "point": [0.1, 0.2, 0.3, 0.4, 0.5]},
                   min_probability=0.8)
    assert t.grips[:4] == ("hold", "power", "open", "power") and t.grips[6] == "custom"
    assert t.postures[6] == (0.1, 0.2, 0.3, 0.4, 0.5) and t.postures[0] is None
    with pytest.raises(InvalidValueError, match=r"Invalid value for 'grips': class names of the model .*got 'fist'"):
        grip_table(NAMES, overrides={"fist": "power"})
    for bad in ("squeeze", [0.1, 0.2], [0.1, 0.2, 0.3, 0.4, 1.5], [0.1, 0.2, 0.3, 0.4, float("nan")]):
        with pytest.raises(InvalidValueError, match=r"'grips.classes.rest': a grip \(rest, open, power, pinch, key, "
                                                    r"point, tripod\), 'hold' or 5 numbers in 0..1"):
            grip_table(NAMES, overrides={"rest": bad})
    with pytest.raises(InvalidValueError, match=r"'min_probability': 0.5 to 1, got 0.3"):
        grip_table(NAMES, min_probability=0.3)  # below 0.5 two classes could both switch


def test_a_class_switches_the_grip_only_when_confident_and_not_to_hold():
    t = grip_table(("rest", "power_grip", "wrist_flexion"))
    assert t.choose(np.array([0.1, 0.8, 0.1]), -1) == 1
    assert t.choose(np.array([0.3, 0.5, 0.2]), 0) == 0  # not confident: the grip stays
    assert t.choose(np.array([0.05, 0.05, 0.9]), 1) == 1  # a class that holds: the grip stays
    assert t.choose(np.array([0.6, 0.3, 0.1]), 1) == 0  # at the threshold exactly: switches


def test_the_table_round_trips_through_the_contract_and_a_malformed_one_is_refused():
    t = grip_table(NAMES, overrides={"point": [0.1, 0.2, 0.3, 0.4, 0.5]})
    assert grip_table_from_contract(json.loads(json.dumps(t.to_contract())), NAMES) == t
    c = t.to_contract()
    c["classes"][0]["posture"] = None  # 'rest' without its posture
    with pytest.raises(InvalidValueError, match=r"'grips.rest': a posture unless the grip is 'hold'"):
        grip_table_from_contract(c, NAMES)
    with pytest.raises(InvalidValueError, match=r"one entry per class \(8\)"):
        grip_table_from_contract({"min_probability": 0.6, "classes": c["classes"][:3]}, NAMES)


@pytest.fixture(scope="module")
def with_grips(adapted_bundle, tmp_path_factory):
    """The adapted (untrained) bundle as a gesture model with grips."""
    from tests.test_export_engines import forge

    path = str(tmp_path_factory.mktemp("grips") / "b")
    shutil.copytree(adapted_bundle.path, path)
    table = grip_table(adapted_bundle.class_names)
    forge(path, lambda c: c["model"].update(positions=False) or c.update(grips=table.to_contract()))
    return Bundle(path)


def test_grips_are_sealed_and_only_for_gesture_models(adapted_bundle, with_grips, tmp_path):
    from tests.test_export_engines import forge

    assert with_grips.grip_table() == grip_table(adapted_bundle.class_names)
    assert adapted_bundle.grip_table() is None
    path = str(tmp_path / "edited")
    shutil.copytree(with_grips.path, path)
    meta = json.load(open(os.path.join(path, "bundle.json")))
    meta["contract"]["grips"]["classes"][6]["posture"] = [1.0] * 5  # edited after export
    json.dump(meta, open(os.path.join(path, "bundle.json"), "w"))
    with pytest.raises(BundleError, match="bundle.json"):
        Bundle(path)
    path = str(tmp_path / "positions")
    shutil.copytree(with_grips.path, path)
    forge(path, lambda c: c["model"].update(positions=True))
    with pytest.raises(BundleError, match="the contract has 'grips' but the model decodes finger positions"):
        Bundle(path)


def test_the_commands_move_to_each_confident_class_grip_within_the_velocity_limit(gesture_bundle):
    """Decoded with the rest gate off: every command stays within the velocity limit of the one before, holds the
    hold posture until a class chooses a grip, and each grip held long enough is reached."""
    bundle, rec = gesture_bundle
    table = bundle.grip_table()
    post = PostConfig(rest_gate=1.0, smoothing_ms=0.0)
    decoder = StreamDecoder(bundle, engine="numpy", post=post)
    stream = decoder.new_stream()
    decoder.reset(stream, command=SAFE_POSTURE)
    out = decoder.process(stream, rec.signals)
    g = out.grip_classes
    chosen = [k for k in set(g.tolist()) if k >= 0]
    assert len(chosen) >= 3, chosen
    step = decoder.post.max_step + 1e-9
    path = np.vstack([np.asarray(SAFE_POSTURE)[None], out.commands])
    assert np.all(np.abs(np.diff(path, axis=0)) <= step)
    first = int(np.argmax(g >= 0))
    assert np.allclose(out.commands[:first], SAFE_POSTURE)  # before any grip: the hold posture
    for k in chosen:  # within any run of one grip long enough to travel the whole range, the grip is reached
        runs = np.flatnonzero(np.diff(np.r_[False, g == k, False].astype(int)))
        for a, b in zip(runs[::2], runs[1::2]):
            if b - a > 1.0 / decoder.post.max_step + 5:
                np.testing.assert_allclose(out.commands[b - 1], table.postures[k], atol=post.deadband + 1e-9)


@pytest.fixture(scope="module")
def gesture_bundle(tmp_path_factory):
    """A gesture model trained on a simulated patient without the glove (classes only), exported with its default
    grips; and a held-out session of the same patient."""
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
    from neurohand.training.config import TrainConfig, with_overrides
    from neurohand.training.export import export_bundle
    from neurohand.training.train import train

    root = tmp_path_factory.mktemp("gesture")
    recs = [dataclasses.replace(simulate_recording(SimulatorConfig(minutes=m, n_channels=4, fs_hz=4000.0, seed=3,
                                                                   session=s)), positions=None, position_index=None)
            for s, m in ((1, 1.5), (2, 0.3))]
    config = with_overrides(TrainConfig(), {"schedule.epochs": 3, "model.hidden": 16}, device="cpu")
    train([recs[0]], str(root / "m"), config=config, progress=False, fit_classic=True, log=lambda m: None)
    return export_bundle(str(root / "m"), str(root / "b")), recs[1]


@pytest.mark.slow
def test_a_gesture_bundle_drives_the_simulated_hand_through_its_grips(gesture_bundle, tmp_path, Hand):
    from neurohand.decoder.session_file import write_recording
    from neurohand.deploy.runlog import JsonLog
    from neurohand.deploy.runtime import HandSink, Runtime, RuntimeConfig
    from neurohand.deploy.sources import open_source
    bundle, rec = gesture_bundle
    table = bundle.grip_table()
    assert table is not None and {table.grips[k] for k in range(len(table.grips))} >= {"rest", "power", "pinch"}
    session = str(tmp_path / "s.h5")
    write_recording(rec, session)
    seen = []
    with Hand() as hand:
        stop = threading.Event()

        def watch():  # what the hand did, not what was sent
            while not stop.is_set():
                seen.append(hand.positions / 1000.0)
                time.sleep(0.01)

        threading.Thread(target=watch, daemon=True).start()
        rt = Runtime(bundle, open_source("replay:" + session, chunk_samples=bundle.hop_samples), HandSink(hand.port),
                     json_log=JsonLog(str(tmp_path / "run.jsonl")), config=RuntimeConfig(engine="numpy"))
        rt.run(seconds=12.0)
        stop.set()
    frames = [r for r in map(json.loads, open(str(tmp_path / "run.jsonl"))) if "command" in r]
    assert frames and all("positions" not in f and "grip" in f for f in frames)  # no untrained positions logged
    grips = [f["grip"] for f in frames]
    held = {}  # grip -> longest run (frames)
    run = 1
    for a, b in zip(grips, grips[1:] + [None]):
        if a == b:
            run += 1
            continue
        held[a] = max(held.get(a, 0), run)
        run = 1
    seen = np.array(seen)
    distance = {g: float(np.min(np.abs(seen - np.asarray(GRIPS[g])).max(axis=1))) for g in held if g is not None}
    # the hand went through three grips or more, and reached each one chosen for half a second or more (but 'rest':
    # the rest gate holds the hand where it is while rest is very probable)
    assert sum(d < 0.05 for d in distance.values()) >= 3, (held, distance)
    long = [g for g, n in held.items() if g not in (None, "rest") and n * bundle.feature_config.hop_ms >= 500.0]
    assert all(distance[g] < 0.05 for g in long), (held, distance)
    assert rt.stats.faults == {} or sum(rt.stats.faults.values()) == 0, rt.stats.faults


def test_export_prints_the_grips_and_takes_a_toml(gesture_bundle, tmp_path, capsys):
    from neurohand.cli import main

    model_dir = os.path.join(os.path.dirname(gesture_bundle[0].path), "m")
    toml = tmp_path / "grips.toml"
    toml.write_text('min_probability = 0.75\n[classes]\nthumb_flexion = "key"\npoint = [0.1, 0.2, 0.3, 0.4, 0.5]\n')
    assert main(["export", model_dir, "--out", str(tmp_path / "b"), "--grips", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "grips (a class switches the grip at probability 0.75 or above):" in out
    assert "  thumb_flexion -> key (0.5, 0.9, 0.9, 0.9, 0.9)" in out and "  index_flexion -> hold" in out
    assert "  point -> custom (0.1, 0.2, 0.3, 0.4, 0.5)" in out
    assert Bundle(str(tmp_path / "b")).grip_table().postures[1] == GRIPS["key"]
    toml.write_text('[classes]\nfist = "power"\n')
    assert main(["export", model_dir, "--out", str(tmp_path / "c"), "--grips", str(toml)]) == 2
    assert "Invalid value for 'grips': class names of the model" in capsys.readouterr().err


def test_grips_for_a_model_that_decodes_fingers_are_refused(tmp_path, capsys):
    from neurohand.cli import main
    from tests.test_export_engines import make_model_dir

    assert isinstance(GripTable(("hold",), (None,)), GripTable)
    toml = tmp_path / "g.toml"
    toml.write_text("[classes]\n")
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
    from neurohand.training.data import build_frames

    rec = simulate_recording(SimulatorConfig(minutes=0.05, n_channels=4, fs_hz=2000.0))
    make_model_dir(str(tmp_path / "m"), rec, build_frames([rec], config_for_recording(rec)).features, hidden=8,
                   n_classes=len(rec.class_names))
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "b"), "--grips", str(toml)]) == 2
    assert "--grips is for a gesture model (classes only)" in capsys.readouterr().err
