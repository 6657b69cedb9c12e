"""The device side on real old interpreters: Python 3.6 (JetPack 4.6) and 3.8 (JetPack 5), installed as on a Jetson.

``make device-venvs`` (part of ``make test``) builds ``.venv-py36`` and ``.venv-py38`` from pyenv's interpreters with
deploy/requirements/jetpack4.txt (resp. jetpack5.txt) and the device wheel. Each venv present here is checked: every
device module imports without torch or the desktop side, ``neurohand run`` on bundles exported by this (desktop)
process decodes a desktop-written session as this process does, and desktop-written session files read back intact
with the venv's h5py (3.1 with HDF5 1.12 on 3.6). An absent venv skips, saying why; with
``NEUROHAND_REQUIRE_DEVICE_VENVS=1`` (CI) it fails instead.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.test_device_rules import check_import_report, cli_files, device_modules, import_check_code, runtime_files

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENVS = {"py36": ((3, 6), "jetpack4.txt"), "py38": ((3, 8), "jetpack5.txt")}
BUNDLES = ("gru", "lstm", "pooled")
# Decoded positions (0..1) of the venv against this process. Both run the same float32 filters, features and
# recurrent steps, but with other numpy/scipy/onnxruntime builds (numpy 1.19 vs 2.x SIMD loops for exp/tanh,
# another BLAS): single-precision rounding differences of ~1e-7 per operation, carried by the recurrent state over
# the session. The engines' own parity tolerance (tests/test_export_engines.py: torch vs onnxruntime vs numpy) is
# 1e-4. Measured over 2991 frames: at most 5e-7 on 3.6 (numpy 1.19.4, onnxruntime 1.10), 0 with numpy on 3.8;
# 1e-5 leaves a 20-fold margin and is still far below what a wrong filter, feature, state or weight gives (>1e-2).
ATOL = 1e-5


def _stale_files(name):
    """Device files whose installed copy in the venv differs from the checkout's."""
    site = os.path.join(ROOT, ".venv-" + name, "lib", "python{}.{}".format(*VENVS[name][0]), "site-packages")
    stale = []
    for rel in runtime_files() + cli_files():
        installed = os.path.join(site, "neurohand", rel)
        with open(os.path.join(ROOT, rel), "rb") as f:
            if not os.path.exists(installed) or open(installed, "rb").read() != f.read():
                stale.append(rel)
    return stale


def _venv_python(name):
    path = os.path.join(ROOT, ".venv-" + name, "bin", "python")
    why = None
    if not os.path.exists(os.path.join(ROOT, ".venv-" + name, ".installed")):
        why = ".venv-{} is absent: make device-venvs builds it (needs Python {}.{} from pyenv)".format(
            name, *VENVS[name][0])
    elif _stale_files(name):
        why = ".venv-{} holds an older wheel than the checkout (changed: {}): make device-venvs".format(
            name, ", ".join(_stale_files(name)[:3]))
    if why:
        if os.environ.get("NEUROHAND_REQUIRE_DEVICE_VENVS") == "1":
            pytest.fail(why + " (NEUROHAND_REQUIRE_DEVICE_VENVS=1)")
        pytest.skip(why)
    return path


@pytest.fixture(scope="module", params=sorted(VENVS))
def venv(request):
    """(name, python) of a device venv."""
    return request.param, _venv_python(request.param)


def run_in(args, cwd, timeout=300):
    """Run a venv's python (or a script beside it) in ``cwd`` outside the repository, with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder outside the repository, so the venvs import the installed wheel, not the checkout."""
    return str(tmp_path_factory.mktemp("old_pythons"))


@pytest.fixture(scope="module")
def session(work, small_sim):
    """A desktop-written session file (and its recording)."""
    from neurohand.decoder.session_file import write_recording

    path = os.path.join(work, "session.h5")
    write_recording(small_sim, path)
    return path, small_sim


@pytest.fixture(scope="module")
def bundles(work, small_sim):
    """GRU, two-layer LSTM, and a GRU whose class output is pooled with LDA behind the feature adaptation."""
    from neurohand.decoder.adaptation import AdaptationConfig
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames
    from neurohand.training.export import export_bundle
    from tests.test_export_engines import make_model_dir

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    kinds = {"gru": dict(cell="gru", layers=1), "lstm": dict(cell="lstm", layers=2),
             "pooled": dict(cell="gru", layers=1, class_pool=True, adapt=AdaptationConfig())}
    out = {}
    for name, kw in kinds.items():
        model_dir, bundle_dir = os.path.join(work, "m-" + name), os.path.join(work, "b-" + name)
        make_model_dir(model_dir, small_sim, frames, hidden=8, n_classes=len(small_sim.class_names), **kw)
        bundle = export_bundle(model_dir, bundle_dir)
        assert bundle.contract["model"]["cell"] == kw["cell"]
        assert bundle.contract["model"]["class_pool"] == (name == "pooled")
        assert (bundle.feature_adapter() is not None) == (name == "pooled")
        out[name] = bundle_dir
    return out


@pytest.fixture(scope="module")
def desktop_decoding(bundles, session):
    """This process's decoding of the session with each bundle: positions and commands, frame by frame."""
    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.stream import StreamDecoder
    from neurohand.deploy.runtime import SAFE_POSTURE

    out = {}
    for name, path in bundles.items():
        decoder = StreamDecoder(Bundle(path), engine="numpy")
        stream = decoder.new_stream()
        decoder.reset(stream, command=SAFE_POSTURE)  # the runtime starts from the safe posture, within the limit
        frames = decoder.process(stream, session[1].signals)
        out[name] = frames.positions, frames.commands
    return out


def test_device_modules_import_without_torch_or_the_desktop_side(venv, work):
    name, python = venv
    r = run_in([python, "-c", "import sys, neurohand; print(sys.version_info[:2], neurohand.__file__)"], work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(VENVS[name][0])) and os.path.join(".venv-" + name, "lib") in r.stdout, r.stdout
    r = run_in([python, "-c", import_check_code(device_modules())], work)
    assert r.returncode == 0, r.stderr
    check_import_report(r.stdout)
    r = run_in([python, "-c", "import torch"], work)
    assert r.returncode != 0, "torch is installed in .venv-" + name
    # --engine auto (the default) looks for TensorRT first: on 3.6 too, without it, it falls back
    r = run_in([python, "-c", "from neurohand.decoder.engines import available_engines; print(available_engines())"],
               work)
    assert r.returncode == 0 and r.stdout.strip() == "['onnxruntime', 'numpy']", r.stdout + r.stderr
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    r = run_in([neurohand, "--help"], work)
    assert r.returncode == 0 and " run " in r.stdout and " train " in r.stdout, r.stdout + r.stderr


def test_a_desktop_command_is_one_clear_line(venv, work, session):
    """``neurohand evaluate`` needs the desktop side: on 3.6 it says which Python, on 3.8 which extra."""
    name, python = venv
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    r = run_in([neurohand, "evaluate", os.path.join(work, "no-model"), session[0]], work)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ("needs Python 3.8 or later" if name == "py36" else "neurohand[train]") in r.stderr, r.stderr
    # export imports nothing newer than 3.6 before onnx: on 3.6 the missing onnx must not send the user to an extra
    # that cannot install there
    r = run_in([neurohand, "export", os.path.join(work, "no-model"), "--out", os.path.join(work, "no-bundle")], work)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ("needs the desktop side: Python 3.8 or later" if name == "py36" else "pip install 'neurohand[train]'") \
        in r.stderr, r.stderr


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
@pytest.mark.parametrize("kind", BUNDLES)
def test_run_decodes_the_session_as_the_desktop_does(venv, work, bundles, session, desktop_decoding, kind, engine):
    name, python = venv
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    log = os.path.join(work, "run-{}-{}-{}.jsonl".format(name, kind, engine))
    r = run_in([neurohand, "run", "--bundle", bundles[kind], "--source", "replay:" + session[0],
                           "--engine", engine, "--fast", "--log", log], work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "engine {}:".format(engine) in r.stdout, r.stdout
    with open(log) as f:
        lines = [json.loads(line) for line in f]
    # appended JSON lines: events and frames as they happen, the summary last
    summary = [line for line in lines if "summary" in line][-1]["summary"]
    frames = [line for line in lines if "command" in line]
    assert summary["faults"] == {} and summary["state"] != "safe", summary
    positions, commands = desktop_decoding[kind]
    n = len(frames)
    # the whole session, as fast as possible: every frame it decoded is compared
    assert n == summary["frames"] and n >= min(len(positions), 500), (n, len(positions))
    got_pos = np.array([f["positions"] for f in frames])
    got_cmd = np.array([f["command"] for f in frames])
    err = float(np.max(np.abs(got_pos - positions[:n])))
    assert err <= ATOL, "positions differ by up to {:.2e} over {} frames".format(err, n)
    err_cmd = float(np.max(np.abs(got_cmd - commands[:n])))
    assert err_cmd <= ATOL + 0.0005, "commands differ by up to {:.2e} over {} frames".format(err_cmd, n)
    print("{} {} {}: {} frames, max |diff| positions {:.1e}, commands {:.1e}".format(name, kind, engine, n, err,
                                                                                     err_cmd))


_READ_BACK = """
import json, sys
import numpy as np
from neurohand.decoder.session_file import read_recording
r = read_recording(sys.argv[1])
arrays = {k: getattr(r, k) for k in ("signals", "labels", "repetitions", "positions", "position_index",
                                     "segment_starts") if getattr(r, k) is not None}
arrays.update({"cues." + k: r.cues[k] for k in r.cues.dtype.names})  # plain arrays: any numpy reads them
np.savez(sys.argv[2], **arrays)
import h5py
print(json.dumps({"fs_hz": r.fs_hz, "signal_kind": r.signal_kind, "units": r.units, "metadata": r.metadata,
                  "class_names": list(r.class_names), "channel_names": list(r.channel_names),
                  "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}))
"""

_KILLED_WRITER = """
import os, sys
from neurohand.decoder.session_file import SessionWriter, read_recording
rec = read_recording(sys.argv[1])
w = SessionWriter(sys.argv[2], fs_hz=rec.fs_hz, n_channels=rec.n_channels, signal_kind=rec.signal_kind,
                  channel_names=rec.channel_names, units=rec.units, class_names=rec.class_names,
                  metadata=rec.metadata)
w.append_recording(rec)
w.flush()
os._exit(0)  # killed while recording: the file is still marked open for SWMR writing
"""


def test_desktop_session_files_read_back_intact(venv, work, session):
    """A finished session file and one whose (SWMR) writer was killed, both written by this process's h5py."""
    from neurohand.decoder.session_file import read_recording

    name, python = venv
    path, _ = session
    crashed = os.path.join(work, "crashed-{}.h5".format(name))
    r = subprocess.run([sys.executable, "-c", _KILLED_WRITER, path, crashed], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for f in (path, crashed):
        out = os.path.join(work, "back-{}-{}.npz".format(name, os.path.basename(f)))
        r = run_in([python, "-c", _READ_BACK, f, out], work)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout.strip().splitlines()[-1])
        ref = read_recording(f)
        back = np.load(out)
        expected = {k: getattr(ref, k) for k in ("signals", "labels", "repetitions", "positions", "position_index",
                                                 "segment_starts") if getattr(ref, k) is not None}
        expected.update({"cues." + k: ref.cues[k] for k in ref.cues.dtype.names})
        assert sorted(back.files) == sorted(expected) and len(ref.cues) > 0
        for k, v in expected.items():
            np.testing.assert_array_equal(back[k], v, err_msg=k)
            assert back[k].dtype == v.dtype, k
        assert back["signals"].shape == (ref.n_samples, ref.n_channels) and ref.n_samples > 0
        assert info["fs_hz"] == ref.fs_hz and info["signal_kind"] == ref.signal_kind and info["units"] == ref.units
        assert info["metadata"] == ref.metadata
        assert tuple(info["class_names"]) == ref.class_names and tuple(info["channel_names"]) == ref.channel_names
        if name == "py36":
            assert info["h5py"] == "3.1.0", info


def test_doctor_and_verify_run_on_the_device_python(venv, work, bundles, session):
    """``neurohand doctor`` explains why this machine is not ready for TensorRT (no TensorRT, no GPU) and what still
    decodes; ``neurohand verify`` checks the engines it has against numpy on a desktop-written session."""
    name, python = venv
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    r = run_in([neurohand, "doctor", "--bundle", bundles["pooled"]], work)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Python {}.{}".format(*VENVS[name][0]) in r.stdout
    assert "NOT READY" in r.stdout and "no TensorRT" in r.stdout, r.stdout
    assert "onnxruntime, numpy" in r.stdout, r.stdout
    r = run_in([neurohand, "verify", bundles["pooled"], "--session", session[0], "--seconds", "5"], work)
    assert r.returncode == 0 and "PASS" in r.stdout and "FAIL" not in r.stdout, r.stdout + r.stderr


def test_the_pipeline_bench_runs_on_the_device_python(venv, work, bundles, session):
    """``neurohand bench pipeline`` times the loop where it runs: given a bundle (a relative path) and a recording,
    on the device's Python; without a bundle it needs the desktop side and says so in one line."""
    import json

    name, python = venv
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    r = run_in([neurohand, "bench", "pipeline", "--bundle", os.path.basename(bundles["gru"]), "--session",
                session[0], "--seconds", "2", "--json"], work)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["frames"] > 0 and out["torch_imported"] is False and out["engine"] == "onnxruntime", out
    r = run_in([neurohand, "bench", "pipeline", "--seconds", "2"], work)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("a bundle folder is needed on Python 3.6" if name == "py36" else "neurohand[train]") in r.stderr


def test_the_service_unit_is_written_for_the_device_python(venv, work):
    """``neurohand service install`` on the device: the unit starts this venv's neurohand."""
    import shlex

    name, python = venv
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    r = run_in([neurohand, "service", "install", "--patient", "P1", "--print"], work)
    assert r.returncode == 0, r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(line[len("ExecStart="):])
    assert argv[0] == neurohand and argv[1] == "run", argv


def test_a_signed_bundle_is_verified_on_the_device_python(venv, work, bundles, session, tmp_path):
    """The device's cryptography (40.0.2 on 3.6) verifies a desktop signature; a change after signing is refused."""
    import shutil

    from neurohand.decoder.signature import generate_key, sign_bundle

    name, python = venv
    neurohand = os.path.join(os.path.dirname(python), "neurohand")
    b = str(tmp_path / "b")
    shutil.copytree(bundles["pooled"], b)
    key, pub, key_id = generate_key(str(tmp_path / "clinic"))
    os.makedirs(str(tmp_path / "trusted"))
    shutil.copy(pub, str(tmp_path / "trusted"))
    sign_bundle(b, key)  # on the desktop Python
    run = [neurohand, "run", "--bundle", b, "--source", "replay:" + session[0], "--engine", "numpy", "--seconds", "1",
           "--fast", "--trusted-keys", str(tmp_path / "trusted")]
    r = run_in(run, work)
    assert r.returncode == 0 and "signed by trusted key {}".format(key_id) in r.stderr, r.stdout + r.stderr
    assert "Warning" not in r.stderr, r.stderr  # cryptography's deprecation notice for 3.6 stays out of the journal
    with open(os.path.join(b, "bundle.json"), "a") as f:
        f.write(" ")
    r = run_in(run, work)
    assert r.returncode == 2 and "does not verify" in r.stderr and "Traceback" not in r.stderr, r.stderr
