"""TensorRT engine for the Jetson: built on the device, cached beside the bundle, state kept on the GPU.

Nothing here runs on a machine without an NVIDIA GPU and TensorRT: imports are guarded and
:func:`tensorrt_available` says why it cannot run. On a Jetson (JetPack ships TensorRT and its Python bindings;
``pip install cuda-python`` adds the CUDA runtime bindings), ``neurohand build-engine BUNDLE_DIR [--fp16]`` builds
``engine-<gpu>-trt<version>-<model sha256[:12]>[-fp16].plan`` next to the bundle, so an engine built for another
GPU, another TensorRT or another model is never loaded. The equivalent with trtexec::

    trtexec --onnx=BUNDLE_DIR/model.onnx --saveEngine=BUNDLE_DIR/<name printed by build-engine> [--fp16]

Per step only the feature frame goes to the GPU and the 5 positions + class logits come back; the recurrent
state stays in two device buffers that swap roles every step.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Tuple

import numpy as np

from ..bundle import Bundle, BundleError
from ..errors import DeviceError, InvalidValueError
from .base import StepOutput


def tensorrt_available() -> Tuple[bool, str]:
    """Whether TensorRT and the CUDA runtime bindings import and a GPU is visible, and if not, why."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "the tensorrt Python package is not installed (it ships with JetPack / the TensorRT SDK)"
    try:
        from cuda import cudart
    except ImportError:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            return False, "the CUDA runtime bindings are missing: pip install cuda-python"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        return False, "no CUDA GPU is visible"
    return True, "ok"


def _cudart():
    try:
        from cuda import cudart
    except ImportError:
        from cuda.bindings import runtime as cudart
    return cudart


def _check(result: Any) -> Any:
    err = result[0] if isinstance(result, tuple) else result
    if int(err) != 0:
        raise DeviceError("CUDA error {}".format(err))
    if isinstance(result, tuple):
        return result[1] if len(result) == 2 else result[1:]
    return None


def gpu_name() -> str:
    """Name of GPU 0, made safe for a file name."""
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return re.sub(r"[^A-Za-z0-9]+", "_", name.strip("\x00 ")).strip("_").lower()


def engine_path(bundle: Bundle, *, fp16: bool = False) -> str:
    """Cache path of the engine for this GPU, TensorRT version and model."""
    import tensorrt as trt

    return bundle.file("engine-{}-trt{}-{}{}.plan".format(gpu_name(), trt.__version__, bundle.model_hash[:12],
                                                           "-fp16" if fp16 else ""))


def build_engine(bundle: Bundle, *, fp16: bool = False, workspace_mb: int = 256) -> str:
    """Build and serialize a TensorRT engine from ``model.onnx``; returns its path."""
    ok, why = tensorrt_available()
    if not ok:
        raise DeviceError("Cannot build a TensorRT engine here: " + why)
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if hasattr(
        trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(bundle.file("model.onnx"), "rb") as f:
        if not parser.parse(f.read()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise DeviceError("TensorRT could not parse model.onnx: {}".format("; ".join(errors)))
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    else:  # TensorRT 8.2 (JetPack 4.6)
        config.max_workspace_size = workspace_mb << 20
    if fp16:
        if not builder.platform_has_fast_fp16:
            raise DeviceError("This GPU has no fast FP16; build without --fp16")
        config.set_flag(trt.BuilderFlag.FP16)
    if hasattr(builder, "build_serialized_network"):
        plan = builder.build_serialized_network(network, config)
    else:  # pragma: no cover - very old TensorRT
        plan = builder.build_engine(network, config).serialize()
    if plan is None:
        raise DeviceError("TensorRT failed to build the engine (see its log above)")
    path = engine_path(bundle, fp16=fp16)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(bytes(plan))
    os.replace(tmp, path)
    return path


class TensorRTEngine:
    """Decoder step with TensorRT; the state buffers stay on the GPU between steps.

    The ``state`` objects this engine hands out are opaque tokens: each ``step`` must get the token the previous
    ``step`` (or ``new_state``/``reset``) returned, since the state lives in the engine's device buffers.
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, *, fp16: bool = False, build: bool = True) -> None:
        ok, why = tensorrt_available()
        if not ok:
            raise DeviceError("TensorRT engine unavailable: " + why)
        import tensorrt as trt

        self._trt = trt
        self._cudart = _cudart()
        path = engine_path(bundle, fp16=fp16)
        if not os.path.exists(path):
            if not build:
                raise BundleError("No TensorRT engine for this GPU/TensorRT/model at {!r}; run "
                                  "'neurohand build-engine {}'".format(path, bundle.path))
            build_engine(bundle, fp16=fp16)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with open(path, "rb") as f:
            self.engine = runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise DeviceError("Could not deserialize {!r}; delete it and rebuild".format(path))
        self.context = self.engine.create_execution_context()
        c = bundle.contract["model"]
        self.cell = c["cell"]
        self.layers, self.hidden = int(c["layers"]), int(c["hidden"])
        self.n_features, self.n_classes = int(c["n_features"]), int(c["n_classes"])
        self.stream = _check(self._cudart.cudaStreamCreate())
        shapes = {"features": (1, self.n_features), "positions": (1, 5), "class_logits": (1, self.n_classes)}
        state_names = ["h"] + (["c"] if self.cell == "lstm" else [])
        self._dev: Dict[str, int] = {}
        self._host: Dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            self._host[name] = np.zeros(shape, np.float32)
            self._dev[name] = self._malloc(self._host[name].nbytes)
        # Two device buffers per state tensor: read one, write the other, swap.
        nbytes = self.layers * self.hidden * 4
        self._state_bufs = {s: [self._malloc(nbytes), self._malloc(nbytes)] for s in state_names}
        self._cur = 0
        self._token = 0
        self.reset()

    def _malloc(self, nbytes: int) -> int:
        return int(_check(self._cudart.cudaMalloc(nbytes)))

    def _bind(self) -> List[int]:
        addr = {"features": self._dev["features"], "positions": self._dev["positions"],
                "class_logits": self._dev["class_logits"]}
        for s, bufs in self._state_bufs.items():
            addr[s] = bufs[self._cur]
            addr[s + "_out"] = bufs[1 - self._cur]
        if hasattr(self.context, "set_tensor_address"):  # TensorRT >= 8.5
            for name, ptr in addr.items():
                self.context.set_tensor_address(name, ptr)
            return []
        return [addr[self.engine.get_binding_name(i)] for i in range(self.engine.num_bindings)]

    def new_state(self) -> int:
        """Zero the device state; returns the token to pass to :meth:`step`."""
        return self.reset()

    def reset(self) -> int:
        """Zero the device state buffers."""
        for bufs in self._state_bufs.values():
            _check(self._cudart.cudaMemset(bufs[self._cur], 0, self.layers * self.hidden * 4))
        self._token += 1
        return self._token

    def step(self, state: int, frame: np.ndarray) -> Tuple[StepOutput, int]:
        """One frame of raw features, shape (n_features,) -> outputs and the next state token."""
        if state != self._token:
            raise InvalidValueError("TensorRT state token {} is stale (current {}): pass the token the previous step "
                                    "returned; the state lives on the GPU".format(state, self._token))
        cud = self._cudart
        kind_h2d = cud.cudaMemcpyKind.cudaMemcpyHostToDevice
        kind_d2h = cud.cudaMemcpyKind.cudaMemcpyDeviceToHost
        x = np.ascontiguousarray(np.asarray(frame, np.float32).reshape(1, self.n_features))
        _check(cud.cudaMemcpyAsync(self._dev["features"], x.ctypes.data, x.nbytes, kind_h2d, self.stream))
        bindings = self._bind()
        if bindings:
            ok = self.context.execute_async_v2(bindings, self.stream)
        else:
            ok = self.context.execute_async_v3(self.stream)
        if not ok:
            raise DeviceError("TensorRT execution failed")
        for name in ("positions", "class_logits"):
            h = self._host[name]
            _check(cud.cudaMemcpyAsync(h.ctypes.data, self._dev[name], h.nbytes, kind_d2h, self.stream))
        _check(cud.cudaStreamSynchronize(self.stream))
        self._cur = 1 - self._cur
        self._token += 1
        return StepOutput(self._host["positions"][0].copy(), self._host["class_logits"][0].copy()), self._token

    def close(self) -> None:
        """Free the device buffers."""
        for ptr in list(self._dev.values()) + [p for b in self._state_bufs.values() for p in b]:
            self._cudart.cudaFree(ptr)
        self._dev, self._state_bufs = {}, {}

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

