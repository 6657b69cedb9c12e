"""Pre-trained bases (issue 26): per-recording normalisation, the base record, refusals, adapting with --init."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from neurohand.decoder.feature_config import config_for_recording
from neurohand.decoder.session_file import write_recording
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.config import TrainConfig, with_overrides
from neurohand.training.data import TrainingDataError, build_frames, normalisation, select_repetitions
from neurohand.training.loop import build_model
from neurohand.training.model_dir import load_model_dir
from neurohand.training.pretrain import (
    ADAPT_SCHEDULE,
    adapt_config,
    check_serves,
    init_from_base,
    load_base,
    normalise_per_recording,
)
from neurohand.training.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = with_overrides(TrainConfig(), {"model.hidden": 8, "model.layers": 1, "schedule.epochs": 1,
                                      "schedule.min_epochs": 1, "schedule.max_steps_per_epoch": 2,
                                      "refit.enabled": False}, device="cpu")


def person(seed, gain=1.0):
    """A simulated person: another seed is other electrodes and units; ``gain`` scales every channel."""
    rec = simulate_recording(SimulatorConfig(minutes=0.8, n_channels=4, fs_hz=2000.0, seed=seed))
    md = dict(rec.metadata, patient_id="sim-{}".format(seed))
    return replace(rec, signals=(rec.signals * gain).astype(rec.signals.dtype), metadata=md)


@pytest.fixture(scope="module")
def people():
    return [person(11), person(12, gain=3.0), person(13, gain=0.5)]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, people):
    d = str(tmp_path_factory.mktemp("base") / "base")
    train(people, d, config=TINY, progress=False, log=lambda m: None, source_files=["a.h5", "b.h5", "c.h5"],
          pretraining=True)
    return d


def test_each_recording_is_z_scored_by_its_own_statistics(people):
    frames = build_frames(people, config_for_recording(people[0]))
    z = normalise_per_recording(frames)
    for r in range(len(people)):
        m = frames.recording == r
        np.testing.assert_allclose(z.features[m].mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z.features[m].std(0), 1.0, atol=1e-3)
        mean, std = normalisation(frames.features[m])
        np.testing.assert_allclose(z.features[m], (frames.features[m] - mean) / std, rtol=1e-5, atol=1e-5)
    # a gain scales MAV and WL and shifts log-variance: their z-scores do not move (ZC and SSC count against
    # thresholds in microvolts, so a gain changes them)
    fcfg = config_for_recording(people[0])
    assert fcfg.features == ("mav", "wl", "zc", "ssc", "logvar")
    louder = build_frames([replace(people[0], signals=people[0].signals * 10.0)], fcfg)
    one = build_frames([people[0]], fcfg)
    invariant = np.r_[0:8, 16:20]  # mav, wl, logvar of the 4 channels
    np.testing.assert_allclose(normalise_per_recording(louder).features[:, invariant],
                               normalise_per_recording(one).features[:, invariant], atol=2e-3)


def test_the_base_records_what_it_was_trained_on(base_dir, people):
    base = load_base(base_dir)
    b = base.record
    assert b["people"] == ["sim-11", "sim-12", "sim-13"] and b["n_recordings"] == 3
    assert (b["signal_kind"], b["n_channels"], b["fs_hz"]) == ("nerve", 4, 2000.0)
    assert b["class_names"] == list(people[0].class_names) and b["normalisation"] == "per recording"
    assert b["files"] == [os.path.abspath(f) for f in ("a.h5", "b.h5", "c.h5")]
    assert base.meta["train_config"]["model"]["lda_front_end"] is False
    assert base.meta["train_config"]["adaptation"]["mode"] == "off" and base.meta["adaptation"] is None
    assert not os.path.exists(os.path.join(base_dir, "baselines.npz"))  # no classic decoder on pooled z-scores


def test_a_recording_the_base_cannot_serve_is_refused_in_one_line(base_dir, people):
    base = load_base(base_dir)
    check_serves(base, [people[0]], ["p.h5"])
    wrong_rate = simulate_recording(SimulatorConfig(minutes=0.1, n_channels=4, fs_hz=4000.0, seed=1))
    with pytest.raises(TrainingDataError, match=r"^The base '.*base' was pre-trained on 4 channels at 2000 Hz \(3 "
                                                r"people\); 'x.h5' has 4 channels at 4000 Hz: pre-train a base on "
                                                r"recordings like it, or train from scratch without --init$"):
        check_serves(base, [wrong_rate], ["x.h5"])
    with pytest.raises(TrainingDataError, match="pre-trained on nerve signals .* has emg signals"):
        check_serves(base, [replace(people[0], signal_kind="emg")], ["e.h5"])
    renamed = replace(people[0], class_names=tuple("c{}".format(i) for i in range(len(people[0].class_names))))
    with pytest.raises(TrainingDataError, match="has classes c0, c1"):
        check_serves(base, [renamed], ["r.h5"])
    with pytest.raises(TrainingDataError, match="has no finger positions"):
        check_serves(base, [replace(people[0], positions=None, position_index=None)], ["g.h5"])
    model_dir = os.path.join(os.path.dirname(base_dir), "person")
    train([people[0]], model_dir, config=TINY, progress=False, fit_classic=False, log=lambda m: None)
    with pytest.raises(TrainingDataError, match="is a person's model, not a pre-trained base"):
        load_base(model_dir)


def test_the_adapted_model_starts_as_the_base_on_the_persons_z_scores(base_dir, people):
    """init_from_base composes the normalisations: raw frames in, exactly what the base gives their z-scores."""
    base = load_base(base_dir)
    newcomer = person(21, gain=7.0)
    frames = build_frames([newcomer], base.feature_config)
    model = init_from_base(build_model(with_overrides(TINY, {"model.lda_front_end": False}), frames,
                                       len(newcomer.class_names), torch.device("cpu"), seed_offset=0), base)
    z = normalise_per_recording(frames).features
    model.eval()  # no dropout
    with torch.no_grad():
        got = model(torch.as_tensor(frames.features)[None])
        want = base.model(torch.as_tensor(z)[None])
    np.testing.assert_allclose(got[0].numpy(), want[0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1].numpy(), want[1].numpy(), rtol=1e-4, atol=1e-3)


def test_train_init_adapts_every_weight_and_records_the_base(tmp_path, base_dir, people):
    out = str(tmp_path / "adapted")
    newcomer = person(22, gain=2.0)
    train([newcomer], out, config=with_overrides(TINY, {"model.hidden": 32}), progress=False, fit_classic=False,
          log=lambda m: None, init=base_dir)
    model, meta = load_model_dir(out)
    base = load_base(base_dir)
    assert model.config.hidden == base.model.config.hidden == 8  # the base's architecture, not the config's
    assert meta["init"] == {"base": os.path.abspath(base_dir), "people": ["sim-11", "sim-12", "sim-13"],
                            "n_recordings": 3}
    assert "base" not in meta and meta["feature_config"] == base.meta["feature_config"]
    assert not torch.equal(model.rnn.weight_hh_l0, base.model.rnn.weight_hh_l0)  # fine-tuned, not frozen
    # --init trains on exactly the schedule it is given (adapt_config() is the one chosen for adapting)
    assert meta["train_config"]["schedule"] == TINY.to_dict()["schedule"]
    # one repetition of the newcomer is enough: the end of every stretch validates
    one = str(tmp_path / "one")
    res = train([select_repetitions(newcomer, [1])], one, config=TINY, progress=False, fit_classic=False,
                log=lambda m: None, init=base_dir)
    assert res.best_epoch >= 1 and load_model_dir(one)[1]["val_repetitions"] == []
    with pytest.raises(TrainingDataError, match="Too little data for a validation split"):
        train([select_repetitions(newcomer, [1])], str(tmp_path / "scratch"), config=TINY, progress=False,
              fit_classic=False, log=lambda m: None)


def test_the_adaptation_schedule_leaves_what_the_user_set():
    from neurohand.cli import build_parser
    from neurohand.training.cli import train_config_from_args

    assert adapt_config() == with_overrides(TrainConfig(), ADAPT_SCHEDULE)
    assert adapt_config(TINY) == with_overrides(TINY, ADAPT_SCHEDULE)
    parse = build_parser(["train"]).parse_args
    assert train_config_from_args(parse(["train", "s.h5", "--out", "m", "--init", "b"])) == adapt_config()
    # an option given wins, even one equal to the ordinary default (--epochs 30 is 30, not the adaptation's 10)
    given = train_config_from_args(parse(["train", "s.h5", "--out", "m", "--init", "b", "--epochs", "30"]))
    assert given.schedule.epochs == 30 and given.schedule.lr == adapt_config().schedule.lr
    given = train_config_from_args(parse(["train", "s.h5", "--out", "m", "--init", "b", "--epochs", "4"]))
    assert given.schedule.epochs == 4 and given == with_overrides(adapt_config(), {"schedule.epochs": 4})
    assert train_config_from_args(parse(["train", "s.h5", "--out", "m"])) == TrainConfig()


def test_the_commands_pretrain_and_init(tmp_path, people, capsys):
    from neurohand.cli import main

    files = []
    for i, p in enumerate(people):
        files.append(str(tmp_path / "p{}.h5".format(i)))
        write_recording(p, files[-1])
    args = ["--epochs", "1", "--hidden", "8", "--layers", "1", "--quiet", "--device", "cpu"]
    assert main(["pretrain"] + files + ["--out", str(tmp_path / "B")] + args) == 0
    out = capsys.readouterr().out
    assert "wrote base {}".format(tmp_path / "B") in out
    assert "pre-trained on 3 recordings of 3 people: sim-11, sim-12, sim-13" in out
    assert "nerve signals, 4 channels at 2000 Hz, classes rest," in out
    assert main(["train", files[0], "--init", str(tmp_path / "B"), "--out", str(tmp_path / "M"), "--epochs", "1",
                 "--quiet", "--no-baselines", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert json.load(open(str(tmp_path / "M" / "model.json")))["init"]["base"] == str(tmp_path / "B")
    assert main(["train", files[0], "--init", str(tmp_path / "B"), "--out", str(tmp_path / "M2"), "--hidden",
                 "64"]) == 2
    assert "Invalid value for '--hidden': the base given by --init sets the architecture and the features" in \
        capsys.readouterr().err
    assert main(["train", files[0], "--init", str(tmp_path / "M"), "--out", str(tmp_path / "M3")]) == 2
    assert "is a person's model, not a pre-trained base" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrain_under_torchrun_with_two_processes(tmp_path, people):
    """The same command on a cluster: DistributedDataParallel, two CPU processes, gloo."""
    files = []
    for i, p in enumerate(people):
        files.append(str(tmp_path / "p{}.h5".format(i)))
        write_recording(p, files[-1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29541",
           "-m", "neurohand", "pretrain"] + files + ["--out", str(tmp_path / "B"), "--epochs", "2", "--hidden", "8",
                                                     "--layers", "1", "--seq-len", "40", "--quiet", "--device", "cpu"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 processes" in r.stderr
    base = load_base(str(tmp_path / "B"))
    assert base.record["people"] == ["sim-11", "sim-12", "sim-13"] and base.meta["epochs_run"] >= 1
