"""One namespace: the built wheel installs ``neurohand`` and nothing else at the top of site-packages."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    src = str(tmp_path_factory.mktemp("src") / "neurohand")  # setuptools builds in place: keep the checkout clean
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", ".venv-*", "build", "dist", "*.egg-info",
                                                             "__pycache__", "demo_out", "out"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(out), src], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr  # setuptools' deprecations were 127 lines of every `make device-wheel`
    (whl,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".whl")]
    return whl


def test_the_wheel_holds_only_the_neurohand_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"neurohand"}
    for expected in ("neurohand/__init__.py", "neurohand/decoder/bundle.py", "neurohand/firmware_bridge/PROTOCOL.md",
                     "neurohand/firmware_bridge/test_vectors.json", "neurohand/deploy/neurohand.service",
                     "neurohand/deploy/profiles/fps.toml", "neurohand/calibration/cue_protocols/default.toml"):
        assert expected in names
    assert not any(n.startswith("neurohand/tests/") or n.startswith("neurohand/experiments/") for n in names)


@pytest.mark.slow
def test_installed_wheel_imports_as_neurohand_outside_the_repository(wheel, tmp_path):
    venv = str(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    py = os.path.join(venv, "bin", "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", wheel], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import importlib, neurohand\n"
            "from neurohand.deploy.runtime import Runtime\n"
            "from neurohand.decoder.bundle import Bundle\n"
            "for name in ('decoder', 'training', 'deploy', 'calibration', 'firmware_bridge'):\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError:\n"
            "        continue\n"
            "    raise SystemExit(name + ' is importable at the top level')\n"
            "print(neurohand.__version__, neurohand.__file__)\n")
    r = subprocess.run([py, "-c", code], cwd=str(work), env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    version, path = r.stdout.split()
    assert path.startswith(venv)
    r = subprocess.run([os.path.join(venv, "bin", "neurohand"), "--version"], cwd=str(work), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "neurohand " + version


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_make_install_sets_up_every_user_extra_without_running_anything(tmp_path):
    """``make install`` (issue 20): a fresh machine's install installs train, keys, lsl and nwb and runs no demo."""
    r = subprocess.run(["make", "-n", "-B", "install", "VENV={}".format(tmp_path / "venv")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any('pip install -e ".[train,keys,lsl,nwb]"' in ln for ln in lines), r.stdout
    assert not any("neurohand demo" in ln or "-m pytest" in ln or "ruff" in ln for ln in lines), r.stdout
