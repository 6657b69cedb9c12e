"""TensorRT engine for the Jetson: built once by ``neurohand build-engine``, cached beside the bundle, state on the GPU.

Works with TensorRT 8.2 (JetPack 4.6, Python 3.6), 8.5 (JetPack 5.1), 8.6 and 10.x (JetPack 6), choosing each API by
what the installed bindings have, not by their version string: the bindings API (``execute_async_v2``) where it
exists (8.x), named tensors (``set_tensor_address`` + ``execute_async_v3``) otherwise (10 and later). The CUDA calls go
through :mod:`.cuda_runtime` (ctypes over ``libcudart``), so nothing but TensorRT's own Python bindings is needed.

**Engines are built only by** ``neurohand build-engine BUNDLE --precision fp32|fp16`` (:func:`build_engine`). Loading
(:class:`TensorRTEngine`, ``create_engine(bundle, "tensorrt")``, ``"auto"``) never builds one: with none built for
this GPU it raises (``"auto"`` falls back) naming that command. An engine is cached in the bundle folder as::

    engine-<gpu>-sm<major><minor>-trt<version>-<precision>-<model sha256[:12]>.plan
    engine-<...same...>.json    TensorRT version, GPU, compute capability, precision, model hash, the plan's own
                                sha256, CUDA, build date

so an engine built for another GPU, another TensorRT, another precision or another model is never loaded. A plan is
bound to its bundle by that record: one without a record, or whose record names another model, TensorRT or
precision, is not an engine of this bundle (:func:`built_engines` skips it); a plan whose bytes differ from the
record's sha256 (replaced, truncated, tampered with) is refused before TensorRT deserialises it.

Precision is an explicit choice. ``fp32`` clears ``BuilderFlag.TF32`` (on by default since TensorRT 7.1: Ampere
GPUs such as Orin would otherwise round matrix products to 10-bit mantissas). ``fp16`` sets ``BuilderFlag.FP16``
after checking the GPU has fast FP16 (``builder.platform_has_fast_fp16`` where it exists, else the compute
capability: sm_53, sm_60, sm_62 and sm_70 or newer). TensorRT 11 removes ``BuilderFlag.FP16`` (networks are
strongly typed: the precision comes from the model's own tensor types); there ``fp16`` is refused with that reason
and ``fp32`` builds a strongly typed network from the FP32 model.

Per step only the feature frame goes to the GPU and the 5 positions + class logits come back; the recurrent state
stays in two device buffers per state tensor that swap roles every step. A pooled model's class output is finite
here by construction: the exported graph writes its log-softmax out (no ``LogSoftmax`` node, which TensorRT would
import as ``Log(Softmax)``, -inf for a vanishing class) and clamps it at
:data:`~neurohand.decoder.engines.base.LOG_PROBABILITY_FLOOR`.
"""

import datetime
import hashlib
import json
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ..bundle import Bundle
from ..errors import DeviceError, InvalidValueError
from ..validation import check_option
from . import cuda_runtime
from .base import Engine, StepOutput

PRECISIONS = ("fp32", "fp16")
BUILD_COMMAND = "neurohand build-engine {bundle} --precision fp16|fp32"
# compute capabilities with fast native FP16 (Maxwell sm_53 = Jetson Nano/TX1, Pascal sm_60/sm_62, Volta and newer)
_FAST_FP16 = ((5, 3), (6, 0), (6, 2))


class EngineNotBuilt(DeviceError):
    """TensorRT works here but no engine is built for this bundle, GPU, TensorRT version and precision."""


class DeviceInfo(NamedTuple):
    """What an engine is built for: the cache key, less the precision and the model."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: Tuple[int, int]
    cuda_runtime: int
    cuda_driver: int

    @property
    def sm(self) -> str:
        """``'sm_87'``."""
        return "sm_{}{}".format(*self.compute_capability)


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError as e:
        raise DeviceError("the tensorrt Python package is not installed (JetPack ships it: on JetPack 4.6 it is "
                          "python3-libnvinfer for the system Python 3.6; in a venv use --system-site-packages)") from e
    return tensorrt


def tensorrt_available() -> Tuple[bool, str]:
    """Whether TensorRT imports, ``libcudart`` loads and a GPU answers; and if not, why (one sentence)."""
    try:
        info = device_info()
    except DeviceError as e:
        return False, str(e)
    return True, "TensorRT {} on {} ({}), CUDA runtime {}".format(
        info.tensorrt_version, info.gpu_name, info.sm, cuda_runtime.format_version(info.cuda_runtime))


def device_info(device: int = 0) -> DeviceInfo:
    """TensorRT version, GPU name, compute capability and CUDA versions of ``device``.

    Raises
    ------
    DeviceError
        TensorRT is missing, ``libcudart`` is missing, or no GPU answers (naming the CUDA error).
    """
    trt = _import_tensorrt()
    cuda = cuda_runtime.runtime()
    try:
        count = cuda.device_count()
    except cuda_runtime.CudaError as e:
        raise DeviceError("no usable CUDA GPU: {}".format(e)) from e
    if count <= device:
        raise DeviceError("no CUDA GPU is visible (cudaGetDeviceCount says {})".format(count))
    return DeviceInfo(str(trt.__version__), cuda.device_name(device), cuda.compute_capability(device),
                      cuda.runtime_version(), cuda.driver_version())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_").lower() or "gpu"


def engine_stem(bundle: Bundle, precision: str, info: DeviceInfo) -> str:
    """File name (without extension) of the engine for ``bundle`` at ``precision`` on the device ``info``."""
    check_option("precision", precision, PRECISIONS)
    return "engine-{}-sm{}{}-trt{}-{}-{}".format(_slug(info.gpu_name), info.compute_capability[0],
                                                  info.compute_capability[1], _slug(info.tensorrt_version), precision,
                                                  bundle.model_hash[:12])


def engine_path(bundle: Bundle, precision: str, info: Optional[DeviceInfo] = None) -> str:
    """Path of the ``.plan`` for this bundle, precision and device (``info`` defaults to this machine's)."""
    return bundle.file(engine_stem(bundle, precision, info or device_info()) + ".plan")


def plan_record(plan_path: str) -> Optional[Dict[str, Any]]:
    """Return the record written beside a plan by :func:`build_engine` (None when missing or unreadable)."""
    try:
        with open(plan_path[:-5] + ".json") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def built_engines(bundle: Bundle, info: Optional[DeviceInfo] = None) -> Dict[str, str]:
    """``{precision: plan path}`` of the engines built for this bundle on this device.

    A plan counts only with its record naming this bundle's model hash, this TensorRT version and the precision (a
    file merely named like an engine is not one).
    """
    info = info or device_info()
    out = {}
    for p in PRECISIONS:
        path = engine_path(bundle, p, info)
        record = plan_record(path) if os.path.isfile(path) else None
        if record is not None and record.get("model_sha256") == bundle.model_hash and record.get(
                "tensorrt_version") == info.tensorrt_version and record.get("precision") == p:
            out[p] = path
    return out


def engine_files(bundle_dir: str) -> List[Dict[str, Any]]:
    """Every engine in a bundle folder (for any device), each ``{'plan': path, **its recorded metadata}``."""
    out = []
    for name in sorted(os.listdir(bundle_dir)):
        if name.startswith("engine-") and name.endswith(".plan"):
            path = os.path.join(bundle_dir, name)
            meta: Dict[str, Any] = {}
            try:
                with open(path[:-5] + ".json") as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                pass
            meta["plan"] = path
            out.append(meta)
    return out


def fp16_support(trt: Any, builder: Any, info: DeviceInfo) -> Tuple[bool, str]:
    """Whether an FP16 engine can be built here, and if not, why."""
    if not hasattr(trt.BuilderFlag, "FP16"):
        return False, ("TensorRT {} has no BuilderFlag.FP16 (TensorRT 11 builds strongly typed networks only: FP16 "
                       "needs a model exported with FP16 tensors, which neurohand does not export); build with "
                       "--precision fp32".format(info.tensorrt_version))
    if hasattr(builder, "platform_has_fast_fp16"):
        fast = bool(builder.platform_has_fast_fp16)
    else:
        fast = info.compute_capability in _FAST_FP16 or info.compute_capability >= (7, 0)
    if not fast:
        return False, "{} ({}) has no fast FP16; build with --precision fp32".format(info.gpu_name, info.sm)
    return True, "ok"


def build_engine(bundle: Bundle, precision: str, *, workspace_mb: int = 256) -> str:
    """Build the TensorRT engine of ``model.onnx`` at ``precision`` for this GPU; write it and its metadata.

    The only place an engine is built (``neurohand build-engine``). Returns the ``.plan`` path.

    Raises
    ------
    DeviceError
        TensorRT cannot run here, the precision is not supported here, or TensorRT fails to parse or build.
    """
    check_option("precision", precision, PRECISIONS)
    info = device_info()
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    net_flags = trt.NetworkDefinitionCreationFlag
    if hasattr(trt.ICudaEngine, "num_bindings") and hasattr(net_flags, "EXPLICIT_BATCH"):
        flags |= 1 << int(net_flags.EXPLICIT_BATCH)  # TensorRT 8.x: the ONNX parser needs it; 10 ignores it
    elif not hasattr(trt.BuilderFlag, "FP16") and hasattr(net_flags, "STRONGLY_TYPED"):
        flags |= 1 << int(net_flags.STRONGLY_TYPED)  # TensorRT 11: the only kind there is
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(bundle.file("model.onnx"), "rb") as f:
        if not parser.parse(f.read()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise DeviceError("TensorRT {} could not parse {}: {}".format(info.tensorrt_version,
                                                                         bundle.file("model.onnx"), "; ".join(errors)))
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    else:  # TensorRT 8.2
        config.max_workspace_size = workspace_mb << 20
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 layers stay FP32, in FP16 engines too
    if precision == "fp16":
        ok, why = fp16_support(trt, builder, info)
        if not ok:
            raise DeviceError("Cannot build an FP16 engine: " + why)
        config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise DeviceError("TensorRT {} failed to build the engine (see its log above)".format(info.tensorrt_version))
    path = engine_path(bundle, precision, info)
    tmp = path + ".partial"
    plan = bytes(plan)
    with open(tmp, "wb") as f:
        f.write(plan)
    meta = {"plan_sha256": hashlib.sha256(plan).hexdigest(), "tensorrt_version": info.tensorrt_version,
            "gpu": info.gpu_name, "compute_capability": "{}.{}".format(*info.compute_capability),
            "precision": precision, "tf32": False, "model_sha256": bundle.model_hash,
            "cuda_runtime": cuda_runtime.format_version(info.cuda_runtime),
            "cuda_driver": cuda_runtime.format_version(info.cuda_driver),
            "built": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with open(path[:-5] + ".json.partial", "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(path[:-5] + ".json.partial", path[:-5] + ".json")
    os.replace(tmp, path)
    return path


def not_built_message(bundle: Bundle, info: DeviceInfo, precision: Optional[str] = None) -> str:
    """Say that no engine is built, naming the command that builds one."""
    what = "{} engine".format(precision.upper()) if precision else "engine"
    return ("No TensorRT {} is built for this model on {} ({}, TensorRT {}); build one with: {}".format(
        what, info.gpu_name, info.sm, info.tensorrt_version,
        BUILD_COMMAND.format(bundle=bundle.path) if precision is None else
        "neurohand build-engine {} --precision {}".format(bundle.path, precision)))


class TensorRTEngine(Engine):
    """Decoder step with TensorRT; the state buffers stay on the GPU between steps.

    Loads an engine built by ``neurohand build-engine``; never builds one. The ``state`` objects this engine hands
    out are opaque tokens: each ``step`` must get the token the previous ``step`` (or ``new_state``/``reset``)
    returned, since the state lives in the engine's device buffers.

    Parameters
    ----------
    bundle : Bundle
    precision : {'fp32', 'fp16'}, optional
        Which built engine to load; by default the only one built, or FP32 when both are.

    Raises
    ------
    DeviceError
        TensorRT cannot run here (the message says why).
    EngineNotBuilt
        No engine is built for this bundle on this GPU (the message names the command that builds one).
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, *, precision: Optional[str] = None) -> None:
        if precision is not None:
            check_option("precision", precision, PRECISIONS)
        try:
            info = device_info()
        except DeviceError as e:
            raise DeviceError("TensorRT engine unavailable: {}".format(e)) from e
        trt = _import_tensorrt()
        self.info = info
        built = built_engines(bundle, info)
        if precision is None:
            precision = "fp32" if "fp32" in built else next(iter(built), None)
        if precision is None or precision not in built:
            raise EngineNotBuilt(not_built_message(bundle, info, precision))
        self.precision = precision
        self.path = built[precision]
        self._cuda = cuda_runtime.runtime()
        self._dev: Dict[str, int] = {}
        self._state_bufs: Dict[str, List[int]] = {}
        self.stream = 0
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with open(self.path, "rb") as f:
            plan = f.read()
        recorded, actual = (plan_record(self.path) or {}).get("plan_sha256"), hashlib.sha256(plan).hexdigest()
        if actual != recorded:  # checked before TensorRT reads a byte of it
            raise DeviceError("{} is not the engine its record describes (sha256 {}, recorded {}): it was replaced "
                              "or damaged; delete it and run: neurohand build-engine {} --precision {}".format(
                                  self.path, actual[:12], str(recorded)[:12], bundle.path, precision))
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise DeviceError("TensorRT could not load {} (see its log above); delete it and run: neurohand "
                              "build-engine {} --precision {}".format(self.path, bundle.path, precision))
        self.context = self.engine.create_execution_context()
        c = bundle.contract["model"]
        self.cell = c["cell"]
        self.layers, self.hidden = int(c["layers"]), int(c["hidden"])
        self.n_features, self.n_classes = int(c["n_features"]), int(c["n_classes"])
        state_names = ["h"] + (["c"] if self.cell == "lstm" else [])
        shapes = {"features": (1, self.n_features), "positions": (1, 5), "class_logits": (1, self.n_classes)}
        for s in state_names:
            shapes[s] = shapes[s + "_out"] = (self.layers, 1, self.hidden)
        self._check_io(shapes, state_names)
        self._cuda.set_device(0)
        self.stream = self._cuda.stream_create()
        self._host: Dict[str, np.ndarray] = {}
        for name in ("features", "positions", "class_logits"):
            self._host[name] = np.zeros(shapes[name], np.float32)
            self._dev[name] = self._cuda.malloc(self._host[name].nbytes)
        # two device buffers per state tensor: read one, write the other, swap
        self._state_nbytes = self.layers * self.hidden * 4
        self._state_bufs = {s: [self._cuda.malloc(self._state_nbytes), self._cuda.malloc(self._state_nbytes)]
                            for s in state_names}
        self._cur = 0
        self._token = 0
        # TensorRT 8.x: the bindings API; 10 and later: named tensors (chosen by what the bindings have)
        self.api = "bindings" if (hasattr(self.engine, "num_bindings")
                                  and hasattr(self.context, "execute_async_v2")) else "named tensors"
        if self.api == "bindings":
            order = [self.engine.get_binding_name(i) for i in range(self.engine.num_bindings)]
            self._bindings = [[self._address(n, cur) for n in order] for cur in (0, 1)]
        else:
            for name in ("features", "positions", "class_logits"):
                self._set_address(name, self._dev[name])
        self.reset()

    def _io_names(self) -> Dict[str, Tuple[bool, Tuple[int, ...]]]:
        e = self.engine
        if hasattr(e, "num_io_tensors"):
            trt = _import_tensorrt()
            return {e.get_tensor_name(i): (e.get_tensor_mode(e.get_tensor_name(i)) == trt.TensorIOMode.INPUT,
                                           tuple(e.get_tensor_shape(e.get_tensor_name(i))))
                    for i in range(e.num_io_tensors)}
        return {e.get_binding_name(i): (bool(e.binding_is_input(i)), tuple(e.get_binding_shape(i)))
                for i in range(e.num_bindings)}

    def _check_io(self, shapes: Dict[str, Tuple[int, ...]], state_names: List[str]) -> None:
        inputs = {"features"} | set(state_names)
        expected = {n: (n in inputs, tuple(s)) for n, s in shapes.items()}
        got = self._io_names()
        if got != expected:
            raise DeviceError("The engine {} does not fit the bundle's model (tensors {}, expected {}); rebuild it "
                              "with neurohand build-engine".format(self.path, got, expected))

    def _address(self, name: str, cur: int) -> int:
        if name in self._dev:
            return self._dev[name]
        if name.endswith("_out"):
            return self._state_bufs[name[:-4]][1 - cur]
        return self._state_bufs[name][cur]

    def _set_address(self, name: str, ptr: int) -> None:
        if not self.context.set_tensor_address(name, ptr):
            raise DeviceError("TensorRT refused the device address of tensor {!r}".format(name))

    def new_state(self) -> int:
        """Zero the device state; returns the token to pass to :meth:`step`."""
        return self.reset()

    def reset(self) -> int:
        """Zero the device state buffers."""
        for bufs in self._state_bufs.values():
            self._cuda.memset_async(bufs[self._cur], 0, self._state_nbytes, self.stream)
        self._cuda.stream_synchronize(self.stream)
        self._token += 1
        return self._token

    def step(self, state: int, frame: np.ndarray) -> Tuple[StepOutput, int]:
        """One frame of raw features, shape (n_features,) -> outputs and the next state token."""
        if state != self._token:
            raise InvalidValueError("TensorRT state token {} is stale (current {}): pass the token the previous step "
                                    "returned; the state lives on the GPU".format(state, self._token))
        cuda, host = self._cuda, self._host
        x = host["features"]
        x[0] = np.asarray(frame, np.float32).reshape(self.n_features)
        cuda.memcpy_htod_async(self._dev["features"], x.ctypes.data, x.nbytes, self.stream)
        if self.api == "bindings":
            ok = self.context.execute_async_v2(self._bindings[self._cur], self.stream)
        else:
            for s, bufs in self._state_bufs.items():
                self._set_address(s, bufs[self._cur])
                self._set_address(s + "_out", bufs[1 - self._cur])
            ok = self.context.execute_async_v3(self.stream)
        if not ok:
            raise DeviceError("TensorRT execution failed (see its log above)")
        for name in ("positions", "class_logits"):
            h = host[name]
            cuda.memcpy_dtoh_async(h.ctypes.data, self._dev[name], h.nbytes, self.stream)
        cuda.stream_synchronize(self.stream)
        self._cur = 1 - self._cur
        self._token += 1
        return StepOutput(host["positions"][0].copy(), host["class_logits"][0].copy()), self._token

    def close(self) -> None:
        """Free the device buffers and the stream."""
        cuda = getattr(self, "_cuda", None)
        if cuda is None:
            return
        for ptr in list(self._dev.values()) + [p for b in self._state_bufs.values() for p in b]:
            cuda.free(ptr)
        self._dev, self._state_bufs = {}, {}
        if self.stream:
            cuda.stream_destroy(self.stream)
            self.stream = 0

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
