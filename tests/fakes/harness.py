"""Put the fakes in place: compile tests/fakes/fake_cudart.c into a libcudart; make ``import tensorrt`` find the fake.

    from tests.fakes.harness import fake_cudart_path, use_fakes   # fixtures

    def test_x(use_fakes):
        trt = use_fakes("10.3.0.30", FAKE_CUDA_CC="8.7")   # returns the fake tensorrt module

``use_fakes`` sets ``NEUROHAND_LIBCUDART`` to the compiled library (so the real ctypes code in
decoder/engines/cuda_runtime.py loads it), sets the ``FAKE_*`` variables given, and imports the fake TensorRT of that
version afresh; everything is undone after the test. :func:`fake_env` gives the same environment for a subprocess.
"""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "fake_cudart.c")
CUDA_DEFAULTS = {"FAKE_CUDA_DEVICES": "1", "FAKE_CUDA_GPU_NAME": "Orin", "FAKE_CUDA_CC": "8.7",
                 "FAKE_CUDA_RUNTIME_VERSION": "11040", "FAKE_CUDA_DRIVER_VERSION": "11040"}
VERSIONS = {"8.2": "8.2.1.8", "8.5": "8.5.2.2", "8.6": "8.6.2.3", "10": "10.3.0.30", "11": "11.0.0.1"}


def compile_fake_cudart(out_dir):
    """Compile the fake into ``out_dir/libcudart.so``; returns its path (skips the test when no C compiler)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the fake libcudart")
    path = os.path.join(str(out_dir), "libcudart.so")
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", path, SOURCE],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert r.returncode == 0, r.stdout
    return path


@pytest.fixture(scope="session")
def fake_cudart_path(tmp_path_factory):
    return compile_fake_cudart(tmp_path_factory.mktemp("fake_cudart"))


def fake_env(cudart_path, version="8.2", **cuda):
    """Environment for a subprocess that sees the fakes (``version``: a key of VERSIONS or a full version)."""
    env = dict(os.environ)
    env.update(CUDA_DEFAULTS)
    env.update({k: str(v) for k, v in cuda.items()})
    env["NEUROHAND_LIBCUDART"] = cudart_path
    env["FAKE_TENSORRT_VERSION"] = VERSIONS.get(version, version)
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


@pytest.fixture
def use_fakes(fake_cudart_path, monkeypatch):
    """A function ``(version='8.2', tensorrt=True, **FAKE_CUDA_*) -> fake tensorrt module or None``."""

    def install(version="8.2", tensorrt=True, **cuda):
        for k, v in dict(CUDA_DEFAULTS, **cuda).items():
            monkeypatch.setenv(k, str(v))
        monkeypatch.setenv("NEUROHAND_LIBCUDART", fake_cudart_path)
        sys.modules.pop("tensorrt", None)
        if not tensorrt:
            return None
        monkeypatch.setenv("FAKE_TENSORRT_VERSION", VERSIONS.get(version, version))
        monkeypatch.syspath_prepend(HERE)
        import tensorrt as trt

        return trt

    yield install
    sys.modules.pop("tensorrt", None)
