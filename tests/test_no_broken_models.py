"""Issue 19.8: training and export refuse to produce a model that cannot decode, naming the cause."""

import os

import numpy as np
import pytest

from neurohand.cli import main


def test_a_session_with_absurd_samples_is_refused_before_training(tmp_path, small_sim, capsys):
    """The red team's attack: ten 1e25 samples gave NaN weights, and train and export both succeeded."""
    from dataclasses import replace

    from neurohand.decoder.session_file import write_recording

    sig = np.array(small_sim.signals, copy=True)
    sig[1000:1010, 3] = 1e25
    path = str(tmp_path / "s.h5")
    write_recording(replace(small_sim, signals=sig), path)
    capsys.readouterr()
    assert main(["train", path, "--out", str(tmp_path / "m"), "--epochs", "1", "--quiet", "--no-baselines"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "has 10 non-finite or absurd samples (|x| > 1e+09): sample 1000 channel 3 = 1e+25" in err
    assert not os.path.exists(str(tmp_path / "m" / "model.safetensors"))


def _model_dir_with(tmp_path, rec, tensor, value):
    """A saved model folder for ``rec`` whose ``tensor`` was then overwritten with ``value`` on disk."""
    from safetensors.numpy import load_file, save_file

    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames
    from tests.test_export_engines import make_model_dir

    frames = build_frames([rec], config_for_recording(rec)).features
    m = str(tmp_path / "m")
    make_model_dir(m, rec, frames, n_classes=len(rec.class_names), hidden=8, layers=1)
    st = load_file(os.path.join(m, "model.safetensors"))
    st[tensor][:] = value
    save_file(st, os.path.join(m, "model.safetensors"))
    return m


def test_export_refuses_non_finite_weights(tmp_path, small_sim, capsys):
    m = _model_dir_with(tmp_path, small_sim, "rnn.weight_hh_l0", np.nan)
    capsys.readouterr()
    assert main(["export", m, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "holds non-finite weights (NaN or infinity) in rnn_weight_hh_l0: this model cannot decode" in err
    assert err.count("\n") == 1 and not os.path.exists(str(tmp_path / "b" / "bundle.json"))


def test_save_model_dir_refuses_non_finite_weights(tmp_path, small_sim):
    import torch

    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import TrainingDataError, build_frames
    from tests.test_export_engines import make_model_dir

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    orig = torch.nn.Module.state_dict

    def poisoned(self, *a, **k):
        sd = orig(self, *a, **k)
        if "class_head.bias" in sd:
            sd["class_head.bias"] = sd["class_head.bias"] * float("nan")
        return sd

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.Module, "state_dict", poisoned)
        with pytest.raises(TrainingDataError, match="non-finite weights .* in class_head.bias"):
            make_model_dir(str(tmp_path / "m"), small_sim, frames, n_classes=len(small_sim.class_names), hidden=8,
                           layers=1)
    assert not os.path.exists(str(tmp_path / "m" / "model.safetensors"))


def test_export_refuses_a_model_whose_outputs_are_not_finite(tmp_path, small_sim, capsys):
    """Finite weights, NaN outputs (a zero feature std): NaN > tolerance was False, so parity 'passed'."""
    m = _model_dir_with(tmp_path, small_sim, "feature_std", 0.0)
    capsys.readouterr()
    assert main(["export", m, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "Exported graph differs from PyTorch by inf" in err and "bundle not written" in err
    assert err.count("\n") == 1 and not os.path.exists(str(tmp_path / "b"))
