"""neurohand build-engine, verify and doctor: here (no TensorRT, no GPU) and under the fakes (tests/fakes/)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.deploy import device_commands
from tests.fakes.harness import fake_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bundle_and_session(tmp_path_factory, small_sim):
    """A GRU bundle with a pooled class output behind the feature adaptation, and a session file for it."""
    from neurohand.decoder.adaptation import AdaptationConfig
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.decoder.session_file import write_recording
    from neurohand.training.data import build_frames
    from neurohand.training.export import export_bundle
    from tests.test_export_engines import make_model_dir

    root = tmp_path_factory.mktemp("device_cmds")
    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    make_model_dir(str(root / "m"), small_sim, frames, n_classes=len(small_sim.class_names), layers=2, hidden=16,
                   class_pool=True, adapt=AdaptationConfig(prior_s=2.0, horizon_s=8.0, limit_sd=3.0))
    b = export_bundle(str(root / "m"), str(root / "b"))
    assert b.contract["model"]["class_pool"] and b.feature_adapter() is not None
    session = str(root / "s.h5")
    write_recording(small_sim, session)
    return b.path, session


@pytest.fixture
def bundle_dir(bundle_and_session, tmp_path):
    import shutil

    dst = str(tmp_path / "b")
    shutil.copytree(bundle_and_session[0], dst, ignore=shutil.ignore_patterns("engine-*"))
    return dst


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as it is, whatever fake an earlier test left importable: no TensorRT."""
    monkeypatch.delenv("NEUROHAND_LIBCUDART", raising=False)
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_doctor_here_says_plainly_what_is_missing(no_gpu, capsys):
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "TensorRT: not installed" in out
    assert "NOT READY to decode on TensorRT:" in out
    assert "  - no TensorRT: the tensorrt Python package is not installed." in out
    # a machine without libcudart says so; one with a CUDA runtime but no driver or GPU (this one) says that
    assert "  - no CUDA runtime: " in out or "  - no GPU: " in out
    assert "meanwhile neurohand run decodes on: onnxruntime, numpy" in out


def test_doctor_ready_under_the_fakes(use_fakes, bundle_dir, tmp_path, monkeypatch, capsys):
    use_fakes("8.2", FAKE_CUDA_GPU_NAME="NVIDIA Tegra X1", FAKE_CUDA_CC="5.3", FAKE_CUDA_RUNTIME_VERSION="10020",
              FAKE_CUDA_DRIVER_VERSION="10020")
    nvp = tmp_path / "bin" / "nvpmodel"
    nvp.parent.mkdir()
    nvp.write_text("#!/bin/sh\necho 'NV Power Mode: MAXN'\necho 0\n")
    nvp.chmod(0o755)
    monkeypatch.setenv("PATH", str(nvp.parent) + os.pathsep + os.environ["PATH"])
    port = tmp_path / "ttyTHS1"
    port.write_text("")
    monkeypatch.setattr(device_commands, "SERIAL_PATTERNS", (str(tmp_path / "ttyTHS*"),))
    # TensorRT and a GPU, but no engine for the bundle: not ready, and the command to run is named
    assert main(["doctor", "--bundle", bundle_dir]) == 1
    out = capsys.readouterr().out
    assert "  - no TensorRT engine for this bundle on this GPU: run neurohand build-engine {} --precision " \
           "fp16|fp32".format(bundle_dir) in out
    assert main(["build-engine", bundle_dir, "--precision", "fp16"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--bundle", bundle_dir]) == 0
    out = capsys.readouterr().out
    for line in ("TensorRT: 8.2.1.8", "CUDA runtime: 10.2 (", "CUDA driver: 10.2",
                 "GPU 0: NVIDIA Tegra X1, compute capability 5.3", "power mode: NV Power Mode: MAXN; 0",
                 "serial ports: " + str(port), "engines usable now: tensorrt, onnxruntime, numpy",
                 "READY: TensorRT decodes {} on this GPU".format(bundle_dir)):
        assert line in out, line
    assert "NVIDIA Tegra X1 5.3, TensorRT 8.2.1.8, fp16" in out
    assert "NOT READY" not in out


def test_build_engine_command(use_fakes, bundle_dir, capsys):
    trt = use_fakes("10")
    assert main(["build-engine", bundle_dir, "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote {}".format(os.path.join(bundle_dir, "engine-orin-sm87-trt10.3.0.30-fp32-")))
    assert "neurohand verify {} --session SESSION.h5".format(bundle_dir) in out
    assert len(trt.BUILDS) == 1 and trt.BUILDS[0]["flags"] == []


def test_build_engine_here_is_one_line_and_exit_2(no_gpu, bundle_dir, capsys):
    assert main(["build-engine", bundle_dir, "--precision", "fp32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurohand build-engine: error: cannot build a TensorRT engine here: the tensorrt Python "
                          "package is not installed")
    assert len(err.strip().splitlines()) == 1
    assert not [f for f in os.listdir(bundle_dir) if f.startswith("engine-")]


def test_build_engine_needs_an_explicit_precision(bundle_dir, capsys):
    with pytest.raises(SystemExit):
        main(["build-engine", bundle_dir])
    assert "--precision" in capsys.readouterr().err


def test_verify_here_compares_onnxruntime_with_numpy(no_gpu, bundle_and_session, capsys):
    bundle, session = bundle_and_session
    assert main(["verify", bundle, "--session", session, "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "pooled class output" in out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith(("numpy", "onnxruntime", "tensorrt"))}
    assert set(rows) == {"numpy", "onnxruntime"}
    assert rows["numpy"].endswith("reference") and rows["onnxruntime"].endswith("PASS")
    assert "note: tensorrt: cannot run here: the tensorrt Python package is not installed" in out
    assert "PASS: 1 engine(s) agree with the numpy reference" in out


def test_verify_checks_the_whole_session_unless_told_and_says_what_it_does_first(no_gpu, bundle_and_session, capsys):
    """It checked only the first 30 s, and printed nothing while it computed the features (20 s on a Nano)."""
    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.recording import Recording
    from neurohand.decoder.session_file import read_recording, write_recording

    bundle, short = bundle_and_session
    rec, b = read_recording(short), Bundle(bundle)
    session = short.replace(".h5", "-twice.h5")  # longer than the old 30 s
    write_recording(Recording(np.concatenate([rec.signals, rec.signals]), rec.fs_hz, channel_names=rec.channel_names),
                    session)
    assert main(["verify", bundle, "--session", session]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "computing the features of {} ...".format(session)
    ex = b.feature_extractor()
    n = len(ex.process(ex.new_state(), np.concatenate([rec.signals, rec.signals]))[0])  # every frame of both halves
    assert "{}: {} frames ({:.0f} s)".format(session, n, n * b.hop_samples / b.fs_hz) in lines[1], lines[1]
    assert lines[-1] == "PASS: 1 engine(s) agree with the numpy reference over {} frames".format(n)
    assert main(["verify", bundle, "--session", session, "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    first = len(ex.process(ex.new_state(), rec.signals[:int(b.fs_hz)])[0])
    assert "(its first 1 s)" in out and "over {} frames".format(first) in out
    assert main(["verify", bundle, "--session", session, "--seconds", "0"]) == 2
    assert "Invalid value for '--seconds'" in capsys.readouterr().err


def test_verify_every_engine_under_the_fakes(use_fakes, bundle_dir, bundle_and_session, capsys, monkeypatch):
    use_fakes("8.5")
    session = bundle_and_session[1]
    assert main(["verify", bundle_dir, "--session", session, "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "note: tensorrt: No TensorRT engine is built for this model on Orin" in out
    for p in ("fp32", "fp16"):
        assert main(["build-engine", bundle_dir, "--precision", p]) == 0
    capsys.readouterr()
    assert main(["verify", bundle_dir, "--session", session, "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("tensorrt")]
    assert [r.split()[1] for r in rows] == ["fp32", "fp16"] and all(r.endswith("PASS") for r in rows)
    assert " 2e-02 " in rows[1] and " 1e-03 " in rows[0]
    assert "PASS: 3 engine(s) agree" in out
    # beyond its tolerance an engine fails, and so does the command
    monkeypatch.setitem(device_commands.TOLERANCES, "fp16", 1e-7)
    assert main(["verify", bundle_dir, "--session", session, "--seconds", "2"]) == 1
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if ln.startswith("tensorrt fp16")][0].endswith("FAIL")
    assert "FAIL: 1 of 3 engines differ from the numpy reference beyond tolerance" in out


def test_device_commands_run_without_torch(fake_cudart_path, bundle_and_session, tmp_path):
    """On the device: doctor, build-engine and verify through the console entry point, torch never imported."""
    import shutil

    bundle = str(tmp_path / "b")
    shutil.copytree(bundle_and_session[0], bundle)
    code = ("import sys\nfrom neurohand.cli import main\n"
            "rcs = [main(a) for a in ([\"doctor\", \"--bundle\", sys.argv[1]],\n"
            "       [\"build-engine\", sys.argv[1], \"--precision\", \"fp32\"],\n"
            "       [\"verify\", sys.argv[1], \"--session\", sys.argv[2], \"--seconds\", \"1\"],\n"
            "       [\"doctor\", \"--bundle\", sys.argv[1]])]\n"
            "print('rcs', rcs, 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, bundle, bundle_and_session[1]], cwd=os.path.dirname(ROOT),
                       env=fake_env(fake_cudart_path, "10"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "rcs [1, 0, 0, 0] False", r.stdout
