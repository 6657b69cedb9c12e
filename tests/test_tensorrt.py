"""The TensorRT engine and the CUDA runtime wrapper, run for real against the fakes (tests/fakes/).

The fake libcudart is C compiled here and loaded by the real ctypes code; the fake TensorRT has each version's API
(8.2, 8.5, 8.6, 10, 11) and computes with onnxruntime on the bundle's own model.onnx, so the engine's outputs are
compared with the numpy reference over 200 steps with the state carried.
"""

import ctypes
import hashlib
import json
import logging
import os
import re

import numpy as np
import pytest

from neurohand.decoder.bundle import Bundle
from neurohand.decoder.engines import available_engines, create_engine, cuda_runtime
from neurohand.decoder.engines import tensorrt_engine as te
from neurohand.decoder.errors import DeviceError
from neurohand.decoder.stream import StreamDecoder

STEPS = 200


@pytest.fixture(scope="module")
def frames_and_bundles(tmp_path_factory, small_sim):
    """Features of ``small_sim`` and three exported bundles: GRU, LSTM (with a projection), pooled GRU."""
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames
    from neurohand.training.export import export_bundle
    from tests.test_export_engines import make_model_dir

    root = tmp_path_factory.mktemp("trt_bundles")
    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    n = len(small_sim.class_names)
    out = {}
    for kind, kw in (("gru", dict(cell="gru", layers=2, hidden=16)),
                     ("lstm", dict(cell="lstm", layers=2, hidden=16, projection=8)),
                     ("pooled", dict(cell="gru", layers=1, hidden=16, class_pool=True))):
        make_model_dir(str(root / ("m_" + kind)), small_sim, frames, n_classes=n, **kw)
        out[kind] = export_bundle(str(root / ("m_" + kind)), str(root / kind)).path
    return frames[:STEPS], out


def fresh_bundle(path, tmp_path):
    """A copy of a bundle folder without engines (so each test builds its own)."""
    import shutil

    dst = str(tmp_path / os.path.basename(path))
    shutil.copytree(path, dst, ignore=shutil.ignore_patterns("engine-*"))
    return Bundle(dst)


def run_both(engine, bundle, frames):
    ref = create_engine(bundle, "numpy")
    s1, s2 = engine.new_state(), ref.new_state()
    a, b = [], []
    for f in frames:
        o1, s1 = engine.step(s1, f)
        o2, s2 = ref.step(s2, f)
        a.append(np.concatenate([o1.positions, o1.class_logits]))
        b.append(np.concatenate([o2.positions, o2.class_logits]))
    return np.array(a), np.array(b)


# ---------------------------------------------------------------------------------------------- the CUDA runtime
def test_cuda_runtime_calls_over_the_fake_library(use_fakes):
    use_fakes(tensorrt=False, FAKE_CUDA_GPU_NAME="NVIDIA Tegra X1", FAKE_CUDA_CC="5.3",
              FAKE_CUDA_RUNTIME_VERSION="10020", FAKE_CUDA_DRIVER_VERSION="10020")
    cuda = cuda_runtime.runtime()
    assert cuda.source == os.environ["NEUROHAND_LIBCUDART"]
    assert cuda.device_count() == 1
    assert cuda.device_name(0) == "NVIDIA Tegra X1"
    assert cuda.compute_capability(0) == (5, 3)
    assert cuda_runtime.format_version(cuda.runtime_version()) == "10.2"
    assert cuda_runtime.format_version(cuda.driver_version()) == "10.2"
    lib = cuda.lib
    lib.fakecuda_live_allocations.restype = ctypes.c_int
    before = lib.fakecuda_live_allocations()
    stream = cuda.stream_create()
    src = np.arange(8, dtype=np.float32)
    dst = np.zeros(8, np.float32)
    dev = cuda.malloc(src.nbytes)
    cuda.memcpy_htod_async(dev, src.ctypes.data, src.nbytes, stream)
    src[:] = -1  # the source of a host-to-device copy is staged at the call
    cuda.memcpy_dtoh_async(dst.ctypes.data, dev, dst.nbytes, stream)
    assert not dst.any()  # nothing arrives before the stream is synchronized
    cuda.stream_synchronize(stream)
    np.testing.assert_array_equal(dst, np.arange(8))
    cuda.memset_async(dev, 0, src.nbytes, stream)
    cuda.memcpy_dtoh_async(dst.ctypes.data, dev, dst.nbytes, stream)
    cuda.stream_synchronize(stream)
    assert not dst.any()
    with pytest.raises(cuda_runtime.CudaError, match=re.escape(
            "cudaMemcpyAsync(H2D) failed: cudaErrorInvalidValue: invalid argument")):
        cuda.memcpy_htod_async(dst.ctypes.data, dev, 4, stream)  # pointers swapped
    cuda.free(dev)
    with pytest.raises(cuda_runtime.CudaError, match="cudaFree failed: cudaErrorInvalidValue"):
        cuda.free(dev)
    cuda.stream_destroy(stream)
    assert lib.fakecuda_live_allocations() == before


@pytest.mark.parametrize("env, message", [
    ({"FAKE_CUDA_DRIVER_VERSION": "10020"},
     "cudaGetDeviceCount failed: cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime "
     "version"),
    ({"FAKE_CUDA_DEVICES": "0"}, "cudaGetDeviceCount failed: cudaErrorNoDevice: no CUDA-capable device is detected"),
])
def test_cuda_errors_name_the_real_error(use_fakes, env, message):
    use_fakes(tensorrt=False, **env)
    with pytest.raises(cuda_runtime.CudaError, match=re.escape(message)) as e:
        cuda_runtime.runtime().device_count()
    assert isinstance(e.value, DeviceError) and e.value.name.startswith("cudaError")


def test_cuda_out_of_memory_is_named(use_fakes):
    use_fakes(tensorrt=False, FAKE_CUDA_MAX_BYTES="1024")
    with pytest.raises(cuda_runtime.CudaError, match=re.escape(
            "cudaMalloc(4096 bytes) failed: cudaErrorMemoryAllocation: out of memory")):
        cuda_runtime.runtime().malloc(4096)


def test_missing_libcudart_is_said_plainly(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROHAND_LIBCUDART", str(tmp_path / "libcudart.so"))
    with pytest.raises(cuda_runtime.CudaError, match="NEUROHAND_LIBCUDART=.* does not load"):
        cuda_runtime.runtime()
    monkeypatch.delenv("NEUROHAND_LIBCUDART")
    names = cuda_runtime.library_candidates()
    assert names[:5] == list(cuda_runtime.LIBRARY_NAMES) and "/usr/local/cuda/lib64/libcudart.so.10.2" in names


def test_the_real_libcudart_when_installed(monkeypatch):
    """Where a real CUDA runtime is installed (without a GPU, say), the same code loads it and names its error."""
    monkeypatch.delenv("NEUROHAND_LIBCUDART", raising=False)
    try:
        cuda = cuda_runtime.runtime()
    except cuda_runtime.CudaError as e:
        pytest.skip("no real libcudart here: {}".format(e))
    assert cuda.runtime_version() >= 10000
    try:
        n = cuda.device_count()
    except cuda_runtime.CudaError as e:
        assert re.match(r"cudaGetDeviceCount failed: cudaError\w+: \S", str(e)), str(e)
    else:
        assert n >= 0


# ---------------------------------------------------------------------------------------------- TensorRT
@pytest.mark.parametrize("version", ["8.2", "8.5", "8.6", "10"])
@pytest.mark.parametrize("kind", ["gru", "lstm", "pooled"])
def test_tensorrt_matches_numpy_with_state_carried(use_fakes, frames_and_bundles, tmp_path, version, kind):
    trt = use_fakes(version)
    frames, paths = frames_and_bundles
    bundle = fresh_bundle(paths[kind], tmp_path)
    path = te.build_engine(bundle, "fp32")
    assert len(trt.BUILDS) == 1
    build = trt.BUILDS[0]
    assert "TF32" not in build["flags"] and "FP16" not in build["flags"]  # TF32 cleared, FP16 not asked for
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    assert build["network_flags"] == (explicit if version.startswith("8") else 0)
    assert build["workspace"] == 256 << 20
    eng = create_engine(bundle, "tensorrt")
    assert eng.path == path and eng.precision == "fp32"
    assert eng.api == ("bindings" if version.startswith("8") else "named tensors")
    a, b = run_both(eng, bundle, frames)
    assert np.max(np.abs(a - b)) < 1e-4
    # the state matters: a fresh state halfway gives other outputs
    o, _ = eng.step(eng.new_state(), frames[100])
    assert np.max(np.abs(o.positions - a[100, :5])) > 1e-4
    assert len(trt.BUILDS) == 1  # loading never builds
    eng.close()


def test_runtime_and_auto_never_build(use_fakes, frames_and_bundles, tmp_path, caplog):
    trt = use_fakes("8.2")
    frames, paths = frames_and_bundles
    bundle = fresh_bundle(paths["gru"], tmp_path)
    assert te.tensorrt_available()[0]
    assert available_engines() == ["tensorrt", "onnxruntime", "numpy"]
    assert available_engines(bundle) == ["onnxruntime", "numpy"]  # nothing built for this bundle
    with pytest.raises(te.EngineNotBuilt, match=re.escape(
            "No TensorRT engine is built for this model on Orin (sm_87, TensorRT 8.2.1.8); build one with: "
            "neurohand build-engine {} --precision fp16|fp32".format(bundle.path))):
        create_engine(bundle, "tensorrt")
    with caplog.at_level(logging.WARNING, logger="neurohand.engines"):
        eng = create_engine(bundle, "auto")
        dec = StreamDecoder(bundle, engine="auto")
    assert eng.name == "onnxruntime" and dec.engine.name == "onnxruntime"
    assert "neurohand build-engine {} --precision fp16|fp32".format(bundle.path) in caplog.text
    assert trt.BUILDS == [] and not [f for f in os.listdir(bundle.path) if f.startswith("engine-")]
    te.build_engine(bundle, "fp32")
    assert create_engine(bundle, "auto").name == "tensorrt"
    # the whole chain decodes the same on TensorRT as on numpy
    chunk = np.random.default_rng(0).normal(size=(4000, bundle.n_channels)) * 1e-5
    outs = {}
    for kind in ("tensorrt", "numpy"):
        d = StreamDecoder(bundle, engine=kind)
        outs[kind] = d.process(d.new_stream(), chunk)
    np.testing.assert_allclose(outs["tensorrt"].positions, outs["numpy"].positions, atol=1e-4)
    np.testing.assert_allclose(outs["tensorrt"].commands, outs["numpy"].commands, atol=1e-4)
    assert len(trt.BUILDS) == 1
    with pytest.raises(te.EngineNotBuilt, match="No TensorRT FP16 engine .* --precision fp16$"):
        create_engine(bundle, "tensorrt", precision="fp16")


def test_fp16_is_explicit_and_recorded(use_fakes, frames_and_bundles, tmp_path):
    trt = use_fakes("8.6")
    frames, paths = frames_and_bundles
    bundle = fresh_bundle(paths["lstm"], tmp_path)
    p16 = te.build_engine(bundle, "fp16")
    assert trt.BUILDS[-1]["flags"] == ["FP16"]  # FP16 set, TF32 cleared
    p32 = te.build_engine(bundle, "fp32")
    assert trt.BUILDS[-1]["flags"] == []
    h = bundle.model_hash[:12]
    assert os.path.basename(p16) == "engine-orin-sm87-trt8.6.2.3-fp16-{}.plan".format(h)
    assert os.path.basename(p32) == "engine-orin-sm87-trt8.6.2.3-fp32-{}.plan".format(h)
    meta = json.load(open(p16[:-5] + ".json"))
    assert {k: meta[k] for k in ("tensorrt_version", "gpu", "compute_capability", "precision", "model_sha256",
                                 "tf32", "cuda_runtime")} == {
        "tensorrt_version": "8.6.2.3", "gpu": "Orin", "compute_capability": "8.7", "precision": "fp16",
        "model_sha256": bundle.model_hash, "tf32": False, "cuda_runtime": "11.4"}
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", meta["built"])
    assert [m["precision"] for m in te.engine_files(bundle.path)] == ["fp16", "fp32"]
    assert create_engine(bundle, "tensorrt").precision == "fp32"  # both built: FP32 unless asked
    e16 = create_engine(bundle, "tensorrt", precision="fp16")
    a, b = run_both(e16, bundle, frames)
    err = np.max(np.abs(a - b))
    assert 1e-5 < err < 2e-2  # FP16 rounding shows, within its tolerance


@pytest.mark.parametrize("version", ["8.2", "10"])
def test_fp16_refused_on_a_gpu_without_fast_fp16(use_fakes, frames_and_bundles, tmp_path, version):
    trt = use_fakes(version, FAKE_CUDA_GPU_NAME="NVIDIA GeForce GTX 1080", FAKE_CUDA_CC="6.1")
    bundle = fresh_bundle(frames_and_bundles[1]["gru"], tmp_path)
    with pytest.raises(DeviceError, match=re.escape("NVIDIA GeForce GTX 1080 (sm_61) has no fast FP16; build with "
                                                    "--precision fp32")):
        te.build_engine(bundle, "fp16")
    assert trt.BUILDS == []


def test_fp16_check_without_platform_has_fast_fp16(use_fakes):
    """Where the builder lacks platform_has_fast_fp16 but FP16 still exists, the compute capability decides."""
    trt = use_fakes("10")

    class Builder(object):
        pass

    for cc, ok in (((5, 3), True), ((6, 1), False), ((8, 7), True), ((5, 2), False)):
        info = te.DeviceInfo("10.3.0.30", "gpu", cc, 12020, 12020)
        assert te.fp16_support(trt, Builder(), info)[0] is ok


def test_tensorrt_11_guard(use_fakes, frames_and_bundles, tmp_path):
    trt = use_fakes("11")
    assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt.Builder, "platform_has_fast_fp16")
    frames, paths = frames_and_bundles
    bundle = fresh_bundle(paths["pooled"], tmp_path)
    with pytest.raises(DeviceError, match="TensorRT 11.0.0.1 has no BuilderFlag.FP16 .*strongly typed.*"
                                          "--precision fp32"):
        te.build_engine(bundle, "fp16")
    te.build_engine(bundle, "fp32")
    assert trt.BUILDS[-1]["strongly_typed"] and trt.BUILDS[-1]["flags"] == []
    eng = create_engine(bundle, "tensorrt")
    assert eng.api == "named tensors"
    a, b = run_both(eng, bundle, frames)
    assert np.max(np.abs(a - b)) < 1e-4


def test_engines_are_keyed_by_gpu_tensorrt_and_model(use_fakes, frames_and_bundles, tmp_path, monkeypatch):
    use_fakes("8.5")
    bundle = fresh_bundle(frames_and_bundles[1]["gru"], tmp_path)
    te.build_engine(bundle, "fp32")
    assert set(te.built_engines(bundle)) == {"fp32"}
    monkeypatch.setenv("FAKE_CUDA_GPU_NAME", "NVIDIA Tegra X1")  # another GPU: that engine is not for it
    monkeypatch.setenv("FAKE_CUDA_CC", "5.3")
    assert te.built_engines(bundle) == {}
    with pytest.raises(te.EngineNotBuilt, match="on NVIDIA Tegra X1 \\(sm_53, TensorRT 8.5.2.2\\)"):
        create_engine(bundle, "tensorrt")
    monkeypatch.setenv("FAKE_CUDA_GPU_NAME", "Orin")
    monkeypatch.setenv("FAKE_CUDA_CC", "8.7")
    trt = use_fakes("8.6")  # another TensorRT
    assert te.built_engines(bundle) == {}
    # a plan under an engine's name (written by another version, or junk) is refused unless its record vouches
    p = te.build_engine(bundle, "fp32")
    trt = use_fakes("8.5")
    os.replace(p, te.engine_path(bundle, "fp32"))
    assert set(te.built_engines(bundle)) == {"fp32"}  # 8.5's record, built first, is still there; the plan is not its
    with pytest.raises(DeviceError, match="is not the engine its record describes"):
        create_engine(bundle, "tensorrt", precision="fp32")
    os.remove(te.engine_path(bundle, "fp32")[:-5] + ".json")
    assert te.built_engines(bundle) == {}
    with pytest.raises(te.EngineNotBuilt, match="No TensorRT FP32 engine"):
        create_engine(bundle, "tensorrt", precision="fp32")
    assert trt.DESERIALIZED == []


def test_a_plan_is_bound_to_its_record_and_checked_before_deserialising(use_fakes, frames_and_bundles, tmp_path):
    trt = use_fakes("8.6")
    bundle = fresh_bundle(frames_and_bundles[1]["gru"], tmp_path)
    p = te.build_engine(bundle, "fp32")
    record = json.load(open(p[:-5] + ".json"))
    assert record["plan_sha256"] == hashlib.sha256(open(p, "rb").read()).hexdigest()
    assert record["model_sha256"] == bundle.model_hash and record["tensorrt_version"] == "8.6.2.3"
    with open(p, "ab") as f:  # the plan swapped or damaged after its build
        f.write(b"junk")
    with pytest.raises(DeviceError, match="is not the engine its record describes .*delete it and run: neurohand "
                                          "build-engine .* --precision fp32"):
        create_engine(bundle, "tensorrt")
    assert trt.DESERIALIZED == []  # refused before TensorRT read it
    record["model_sha256"] = "0" * 64  # a record for another model
    json.dump(record, open(p[:-5] + ".json", "w"))
    assert te.built_engines(bundle) == {}


def test_engine_state_tokens_and_cleanup(use_fakes, frames_and_bundles, tmp_path):
    use_fakes("10")
    frames, paths = frames_and_bundles
    bundle = fresh_bundle(paths["gru"], tmp_path)
    te.build_engine(bundle, "fp32")
    lib = cuda_runtime.runtime().lib
    lib.fakecuda_live_allocations.restype = lib.fakecuda_live_streams.restype = ctypes.c_int
    before = lib.fakecuda_live_allocations(), lib.fakecuda_live_streams()
    eng = create_engine(bundle, "tensorrt")
    s0 = eng.new_state()
    _, s1 = eng.step(s0, frames[0])
    with pytest.raises(ValueError, match="state token .* is stale"):
        eng.step(s0, frames[1])
    eng.step(s1, frames[1])
    eng.close()
    assert (lib.fakecuda_live_allocations(), lib.fakecuda_live_streams()) == before


def test_cuda_failure_reaches_the_engine_error(use_fakes, frames_and_bundles, tmp_path):
    use_fakes("8.2", FAKE_CUDA_DRIVER_VERSION="10020")
    bundle = fresh_bundle(frames_and_bundles[1]["gru"], tmp_path)
    ok, why = te.tensorrt_available()
    assert not ok and why == ("no usable CUDA GPU: cudaGetDeviceCount failed: cudaErrorInsufficientDriver: CUDA "
                              "driver version is insufficient for CUDA runtime version")
    with pytest.raises(DeviceError, match="TensorRT engine unavailable: no usable CUDA GPU: .*insufficient"):
        create_engine(bundle, "tensorrt")
    assert create_engine(bundle, "auto").name == "onnxruntime"


def test_without_tensorrt_the_reason_is_given(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails, as on a machine without it
    ok, why = te.tensorrt_available()
    assert not ok and why.startswith("the tensorrt Python package is not installed")


def test_the_fake_parser_refuses_what_tensorrt_82_cannot_import(use_fakes, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    trt = use_fakes("8.2")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Mod", ["x", "x"], ["y"], fmod=1)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(net, trt.Logger())
    assert not parser.parse(onnx._serialize(model) if hasattr(onnx, "_serialize") else model.SerializeToString())
    assert "No importer registered for op: Mod" in str(parser.get_error(0))
    # and an implicit-batch network is refused by the 8.x parser
    parser = trt.OnnxParser(builder.create_network(0), trt.Logger())
    assert not parser.parse(model.SerializeToString())


def test_pooled_class_output_stays_finite_on_tensorrt(use_fakes, frames_and_bundles, tmp_path):
    """The fake imports LogSoftmax as TensorRT does (Log(Softmax): -inf for a vanishing class); the exported graph has
    no such node, so frames that put a class hundreds of nats down decode finite and equal to the numpy reference."""
    use_fakes("8.2")
    frames, paths = frames_and_bundles
    bundle = fresh_bundle(paths["pooled"], tmp_path)
    te.build_engine(bundle, "fp32")
    w = bundle.weights()
    mean, std = w["feature_mean"], w["feature_std"]
    extreme = (mean + 300.0 * std * np.sign(np.random.default_rng(1).normal(size=(20, len(mean))))).astype(np.float32)
    ref, eng = create_engine(bundle, "numpy"), create_engine(bundle, "tensorrt")
    s, t = eng.new_state(), ref.new_state()
    lowest = 0.0
    for f in extreme:
        o, s = eng.step(s, f)
        r, t = ref.step(t, f)
        lowest = min(lowest, float(np.min(r.class_logits)))
        assert np.all(np.isfinite(o.class_logits))
        np.testing.assert_allclose(o.class_logits, r.class_logits, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(o.positions, r.positions, atol=1e-4)
    assert lowest < -200  # far beyond float32's exp range: Log(Softmax) would have given -inf here
    eng.close()
