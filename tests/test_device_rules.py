"""The device side runs on a Jetson: Python 3.6 (JetPack 4.6, the original Nano) and later, no torch, no training/.

The device side is decoder/, firmware_bridge/, the runtime half of deploy/ (``DEVICE_DEPLOY_MODULES``), and every
module the ``neurohand`` command imports to register its subcommands (cli.py and the modules of its ``COMMANDS``, whose
handlers import the desktop side lazily). ``tests/test_old_pythons.py`` runs it on real 3.6 and 3.8 interpreters.
"""

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_PACKAGES = ("decoder", "firmware_bridge")
DEVICE_DEPLOY_MODULES = ("__init__", "sources", "runtime", "keymap", "keys_sink", "live_view", "process_memory",
                         "run_command", "device_commands")
FORBIDDEN = ("torch", "training", "calibration")
# desktop-side modules a command module imports to register its arguments (light, and Python 3.6 like the command)
REGISTRATION_MODULES = ("neurohand.calibration.options",)


def _rel(module):
    """Path of a ``neurohand.*`` module relative to the repository root."""
    parts = module.split(".")[1:]
    path = os.path.join(*parts) if parts else "__init__"
    return path + ".py" if os.path.isfile(os.path.join(ROOT, path + ".py")) else os.path.join(path, "__init__.py")


def module_name(rel):
    """``neurohand.*`` name of a file relative to the repository root."""
    rel = rel[:-3].replace(os.sep, ".")
    rel = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
    return "neurohand" if rel == "__init__" else "neurohand." + rel


def command_modules():
    """The modules of ``neurohand.cli.COMMANDS``, read from the source (no import)."""
    tree = ast.parse(open(os.path.join(ROOT, "cli.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["COMMANDS"]:
            return tuple(module for module, _ in ast.literal_eval(node.value))
    raise AssertionError("cli.py has no COMMANDS")


def runtime_files():
    """The device runtime: decoder/, firmware_bridge/ and deploy's runtime modules (paths relative to ROOT)."""
    out = []
    for pkg in DEVICE_PACKAGES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            if "__init__.py" not in files:
                continue  # not a package (firmware_bridge/firmware: the C firmware's tools): not in the wheel
            out += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in sorted(files) if f.endswith(".py")]
    out += [os.path.join("deploy", m + ".py") for m in DEVICE_DEPLOY_MODULES]
    return sorted(out)


def cli_files():
    """The command and the modules it imports to register subcommands (their handlers may import torch lazily)."""
    files = ["__init__.py", "__main__.py", "cli.py"]
    return sorted(set(files + [_rel(m) for m in command_modules() + REGISTRATION_MODULES]) - set(runtime_files()))


def device_modules():
    """Every device module by name: what must import on Python 3.6 without torch."""
    return [module_name(f) for f in runtime_files() + cli_files() if f != "__main__.py"]


def allowed_desktop_modules():
    """Desktop-side modules the command may load: its command modules there and their packages."""
    out = set()
    for m in command_modules() + REGISTRATION_MODULES:
        parts = m.split(".")
        if parts[1] in FORBIDDEN:
            out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return out


def import_check_code(modules):
    """Python (3.6-compatible) that imports ``modules``, builds the CLI parser and prints what loaded, as JSON."""
    return ("import json, sys\n"
            + "".join("import {}\n".format(m) for m in modules)
            + "from neurohand.cli import build_parser\nbuild_parser()\n"
            "print(json.dumps({'torch': sorted(m for m in sys.modules if m.split('.')[0] == 'torch'),\n"
            "                  'desktop': sorted(m for m in sys.modules if m.split('.')[:2] in\n"
            "                                    (['neurohand', 'training'], ['neurohand', 'calibration']))}))\n")


def check_import_report(stdout):
    """Assert the output of :func:`import_check_code`: no torch, no desktop module beyond the CLI's own."""
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["torch"] == [], "loaded torch: {}".format(loaded["torch"])
    extra = sorted(set(loaded["desktop"]) - allowed_desktop_modules())
    assert extra == [], "the device side loaded desktop modules: {}".format(extra)


def _imports(path, module, top_level_only):
    """(imported module, line) of the file's imports; relative imports resolved; top level: not inside functions."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []

    def visit(node):
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            found.append((base, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _forbidden(name):
    parts = name.split(".")
    return parts[0] in FORBIDDEN or (parts[0] == "neurohand" and parts[1:2] and parts[1] in FORBIDDEN)


def test_device_side_does_not_import_torch_or_training():
    bad = []
    for files, top_level_only in ((runtime_files(), False), (cli_files(), True)):
        for rel in files:
            for name, line in _imports(os.path.join(ROOT, rel), module_name(rel), top_level_only):
                if _forbidden(name):
                    bad.append("{}:{} imports {}".format(rel, line, name))
    assert not bad, ("the device runtime must not import torch/training/calibration, nor the CLI modules at their "
                     "top level:\n" + "\n".join(bad))


def test_importing_device_modules_loads_no_torch():
    r = subprocess.run([sys.executable, "-c", import_check_code(device_modules())], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    check_import_report(r.stdout)


def test_device_side_is_python36_compatible():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        pytest.fail("vermin is not installed; it is part of the test extras (pip install -e '.[test]')")
    files = runtime_files() + cli_files()
    assert "cli.py" in files and "deploy/runtime.py" in files and "training/cli.py" in files
    r = subprocess.run(
        [vermin, "-t=3.6-", "--violations", "--no-tips", "--eval-annotations", "--backport", "typing",
         "--backport", "dataclasses", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, "vermin found code needing Python > 3.6:\n" + r.stdout + r.stderr


def test_vermin_catches_newer_syntax(tmp_path):
    """The check can fail: a match statement (3.10) and postponed annotations (3.7) are reported."""
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    f = tmp_path / "new.py"
    f.write_text("def f(x):\n    match x:\n        case 1:\n            return 2\n")
    r = subprocess.run([vermin, "-t=3.6-", "--violations", "--no-tips", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    f.write_text("from __future__ import annotations\n")
    r = subprocess.run([vermin, "-t=3.6-", "--violations", "--no-tips", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0


def test_runtime_decodes_without_importing_scipy_signal(tmp_path, small_sim):
    """The bundle carries its designed filter sections, so the device path never imports scipy.signal (~70 MB)."""
    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.features import FeatureExtractor
    from neurohand.decoder.session_file import write_recording
    from tests.test_export_engines import small_bundle

    bundle = Bundle(small_bundle(str(tmp_path), small_sim))
    designed = FeatureExtractor(bundle.feature_config, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels)
    np.testing.assert_array_equal(np.asarray(bundle.contract["filter_sos"]), designed.filter_bank.sos)
    session = str(tmp_path / "s.h5")
    write_recording(small_sim, session)
    code = (
        "import sys, numpy as np\n"
        "from neurohand.decoder.bundle import Bundle\nfrom neurohand.decoder.engines import create_engine\n"
        "from neurohand.decoder.session_file import read_recording\n"
        "from neurohand.deploy.runtime import Runtime, NoneSink\n"
        "from neurohand.deploy.sources import RecordingSource\n"
        "b = Bundle(sys.argv[1]); rec = read_recording(sys.argv[2])\n"
        "ex = b.feature_extractor(); f, _ = ex.process(ex.new_state(), rec.signals[:5000])\n"
        "np.save(sys.argv[3], f)\n"
        "rt = Runtime(b, RecordingSource(rec, chunk_samples=ex.hop_samples, fast=True), NoneSink())\n"
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


def test_device_commands_start_without_training_or_calibration(tmp_path, small_sim):
    """``run``, ``verify``, ``doctor`` and ``keys`` import only their own modules: none of training, calibration, torch.

    ``neurohand --help`` may import every command module; a command line naming one imports that one (neurohand.cli).
    """
    from neurohand.decoder.session_file import write_recording
    from tests.test_export_engines import small_bundle

    bundle = small_bundle(str(tmp_path), small_sim)
    session = str(tmp_path / "s.h5")
    write_recording(small_sim, session)
    code = ("import json, sys\nfrom neurohand.cli import main\nrc = main(sys.argv[1:])\n"
            "up = (['neurohand', 'training'], ['neurohand', 'calibration'])\n"
            "print(json.dumps([rc, sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or\n"
            "                             m.split('.')[:2] in up)]))\n")
    profile = os.path.join(ROOT, "deploy", "profiles", "fps.toml")
    for argv in (["run", "--bundle", bundle, "--source", "replay:" + session, "--fast", "--seconds", "1"],
                 ["verify", bundle, "--session", session, "--seconds", "2"], ["doctor", "--bundle", bundle],
                 ["keys", "--profile", profile, "--check"]):
        r = subprocess.run([sys.executable, "-c", code] + argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
        rc, loaded = json.loads(r.stdout.strip().splitlines()[-1])
        assert loaded == [], "neurohand {} loaded {}".format(argv[0], loaded)
        assert rc in ((0, 1) if argv[0] == "doctor" else (0,)), (argv, r.stdout, r.stderr)
    # the check can fail: a desktop command loads its layer
    r = subprocess.run([sys.executable, "-c", code, "evaluate", str(tmp_path / "nothing"), session], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert "neurohand.training.cli" in json.loads(r.stdout.strip().splitlines()[-1])[1]
