"""The device side (decoder/, firmware_bridge/) runs on a Jetson: Python 3.8, no torch, no training/."""

import ast
import os
import shutil
import subprocess
import sys

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
                    if n.split(".")[0] in FORBIDDEN:
                        bad.append("{}:{} imports {}".format(os.path.relpath(path, ROOT), node.lineno, n))
    assert not bad, "device code must not import torch/training/calibration:\n" + "\n".join(bad)


def test_importing_device_modules_loads_no_torch():
    mods = []
    for pkg in DEVICE_PACKAGES:
        for path in _py_files(pkg):
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            mods.append(rel[: -len(".__init__")] if rel.endswith(".__init__") else rel)
    code = "import sys\n" + "".join("import {}\n".format(m) for m in mods) + (
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'training')]\n"
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
