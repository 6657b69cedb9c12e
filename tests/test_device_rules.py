"""The device side (decoder/, firmware_bridge/) runs on a Jetson: Python 3.8, no torch, no training/."""

import ast
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_PACKAGES = ("decoder", "firmware_bridge")
FORBIDDEN = ("torch", "training", "calibration")


def _py_files(pkg):
    for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def test_device_packages_do_not_import_torch_or_training():
    bad = []
    for pkg in DEVICE_PACKAGES:
        for path in _py_files(pkg):
            tree = ast.parse(open(path).read(), path)
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for n in names:
                    parts = n.split(".")
                    if parts[0] in FORBIDDEN or (parts[0] == "neurohand" and parts[1:2] and parts[1] in FORBIDDEN):
                        bad.append("{}:{} imports {}".format(os.path.relpath(path, ROOT), node.lineno, n))
    assert not bad, "device code must not import torch/training/calibration:\n" + "\n".join(bad)


def test_importing_device_modules_loads_no_torch():
    mods = []
    for pkg in DEVICE_PACKAGES:
        for path in _py_files(pkg):
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            mods.append("neurohand." + (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel))
    code = "import sys\n" + "".join("import {}\n".format(m) for m in mods) + (
        "bad = [m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('neurohand.training')]\n"
        "print(','.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", "loaded: " + r.stdout


def test_device_packages_are_python38_compatible():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        pytest.fail("vermin is not installed; it is part of the test extras (pip install -e '.[test]')")
    r = subprocess.run(
        [vermin, "-t=3.8-", "--violations", "--no-tips", "--eval-annotations", "--backport", "typing",
         *DEVICE_PACKAGES],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, "vermin found code needing Python > 3.8:\n" + r.stdout + r.stderr


def test_vermin_catches_newer_syntax(tmp_path):
    """The 3.8 check can fail: a match statement (3.10) is reported."""
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    f = tmp_path / "new.py"
    f.write_text("def f(x):\n    match x:\n        case 1:\n            return 2\n")
    r = subprocess.run([vermin, "-t=3.8-", "--violations", "--no-tips", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0


def test_runtime_decodes_without_importing_scipy_signal(tmp_path, small_sim):
    """The bundle carries its designed filter sections, so the device path never imports scipy.signal (~70 MB)."""
    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.features import FeatureExtractor
    from neurohand.decoder.recording import write_recording
    from tests.test_export_engines import small_bundle

    bundle = Bundle(small_bundle(str(tmp_path), small_sim))
    designed = FeatureExtractor(bundle.feature_config, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels)
    np.testing.assert_array_equal(np.asarray(bundle.contract["filter_sos"]), designed.filter_bank.sos)
    session = str(tmp_path / "s.h5")
    write_recording(small_sim, session)
    code = (
        "import sys, numpy as np\n"
        "from neurohand.decoder.bundle import Bundle\nfrom neurohand.decoder.engines import create_engine\n"
        "from neurohand.decoder.recording import read_recording\n"
        "from neurohand.deploy.runtime import Runtime, NoneSink\n"
        "from neurohand.deploy.sources import RecordingSource\n"
        "b = Bundle(sys.argv[1]); rec = read_recording(sys.argv[2])\n"
        "ex = b.feature_extractor(); f, _ = ex.process(ex.new_state(), rec.signals[:5000])\n"
        "np.save(sys.argv[3], f)\n"
        "rt = Runtime(b, RecordingSource(rec, chunk_samples=ex.hop_samples, fast=True), NoneSink(), engine='auto')\n"
        "s = rt.run(seconds=0.5)\n"
        "heavy = ('scipy.signal', 'scipy.stats', 'scipy.optimize', 'torch')\n"
        "print('loaded:' + ','.join(m for m in sys.modules if m.startswith(heavy) and m != 'scipy.signal._sosfilt'))\n")
    out = str(tmp_path / "f.npy")
    r = subprocess.run([sys.executable, "-c", code, bundle.path, session, out], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "loaded:", r.stdout
    expected, _ = designed.process(designed.new_state(), small_sim.signals[:5000])
    np.testing.assert_array_equal(np.load(out), expected)  # the same kernel, the same numbers
