"""A stand-in for TensorRT's Python bindings (``import tensorrt``) that really runs the graph, for GPU-less machines.

Importable as ``tensorrt`` once ``tests/fakes`` is on ``sys.path`` (tests/fakes/harness.py does that). The API is
TensorRT's own, for the version in ``FAKE_TENSORRT_VERSION`` (read at import; default ``8.2.1.8``), with the members
each version has and lacks:

=====================================  =====  =====  =====  ====  ====
member                                  8.2    8.5    8.6    10    11
=====================================  =====  =====  =====  ====  ====
engine.num_bindings, get_binding_*      yes    yes    yes    --    --
context.execute_async_v2                yes    yes    yes    --    --
engine.num_io_tensors, get_tensor_*     --     yes    yes    yes   yes
context.set_tensor_address, v3          --     yes    yes    yes   yes
config.max_workspace_size               yes    yes    yes    --    --
config.set_memory_pool_limit            --     yes    yes    yes   yes
builder.platform_has_fast_fp16          yes    yes    yes    yes   --
BuilderFlag.FP16                        yes    yes    yes    yes   --
BuilderFlag.TF32 (set by default)       yes    yes    yes    yes   yes
NetworkDefinitionCreationFlag
  .EXPLICIT_BATCH (required on 8.x)     yes    yes    yes    yes   --
  .STRONGLY_TYPED                       --     --     --     yes   yes
=====================================  =====  =====  =====  ====  ====

The ONNX parser refuses operators outside onnx-tensorrt's 8.2 support list (docs/operators.md at release/8.2-GA) and
opsets above the version's limit. A plan is bound to the TensorRT version and the GPU's compute capability it was
built for (deserializing elsewhere logs an error and returns None, like TensorRT). Execution reads and writes the
fake libcudart's device memory (tests/fakes/fake_cudart.c, found through ``NEUROHAND_LIBCUDART``) in stream order and
computes with onnxruntime on the plan's ONNX model as onnx-tensorrt imports it (LogSoftmax as Log(Softmax)); an FP16
build rounds the inputs, state and outputs to float16.

Test hooks: ``BUILDS`` (one dict per ``build_serialized_network``: network flags, builder flags, workspace),
``DESERIALIZED`` (one entry per deserialized plan) and ``EXECUTIONS`` (a one-item list: steps run).
"""

import ctypes
import enum
import json
import os
import sys

import numpy as np

__version__ = os.environ.get("FAKE_TENSORRT_VERSION", "8.2.1.8")
_MAJOR, _MINOR = (int(p) for p in __version__.split(".")[:2])
_V = (_MAJOR, _MINOR)
_HAS_BINDINGS = _MAJOR < 10
_HAS_NAMED = _V >= (8, 5)
_HAS_FP16_FLAG = _MAJOR < 11
_MAX_OPSET = {(8, 2): 13, (8, 5): 17, (8, 6): 17}.get(_V, 20 if _MAJOR == 10 else 22)

BUILDS = []
DESERIALIZED = []
EXECUTIONS = [0]

# onnx-tensorrt release/8.2-GA docs/operators.md, the operators marked supported
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid Identity If ImageScaler
InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean Min Mul Neg NonMaxSuppression Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomUniform RandomUniformLike Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN Round ScaledTanh Scan
Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where
""".split())

_PLAN_MAGIC = b"FAKE-TRT-PLAN\n"


def _cuda():
    path = os.environ.get("NEUROHAND_LIBCUDART")
    if not path:
        raise RuntimeError("the fake TensorRT needs the fake libcudart (NEUROHAND_LIBCUDART)")
    lib = ctypes.CDLL(path)
    lib.fakecuda_device_bytes.restype = ctypes.c_size_t
    lib.fakecuda_device_bytes.argtypes = [ctypes.c_void_p]
    lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
    lib.cudaDeviceGetAttribute.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int]
    return lib


def _compute_capability():
    lib = _cuda()
    out = []
    for attr in (75, 76):
        v = ctypes.c_int(0)
        if lib.cudaDeviceGetAttribute(ctypes.byref(v), attr, 0):
            raise RuntimeError("[TRT] CUDA initialization failure")
        out.append(v.value)
    return tuple(out)


class Logger(object):
    """``trt.Logger``: prints messages at or above its minimum severity to stderr."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = list(Severity)

    def __init__(self, min_severity=Severity.WARNING):
        self.min_severity = min_severity

    def log(self, severity, msg):
        if severity <= self.min_severity:
            print("[TRT] [{}] {}".format(Logger.Severity(severity).name[0], msg), file=sys.stderr)


ILogger = Logger


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


_builder_flags = {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 5, "TF32": 7}
if not _HAS_FP16_FLAG:
    del _builder_flags["FP16"], _builder_flags["INT8"]
BuilderFlag = enum.IntEnum("BuilderFlag", _builder_flags)
_network_flags = {}
if _MAJOR < 11:
    _network_flags["EXPLICIT_BATCH"] = 0
if _MAJOR >= 10:
    _network_flags["STRONGLY_TYPED"] = 1
NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", _network_flags)


class IHostMemory(bytes):
    """A serialized plan: supports the buffer protocol (``f.write(plan)``), like TensorRT's."""

    @property
    def nbytes(self):
        return len(self)


class INetworkDefinition(object):
    def __init__(self, flags):
        self.flags = flags
        self.model = None  # the parsed ONNX bytes
        self.inputs, self.outputs = [], []

    @property
    def num_inputs(self):
        return len(self.inputs)

    @property
    def num_outputs(self):
        return len(self.outputs)

    def _flag(self, name):
        f = getattr(NetworkDefinitionCreationFlag, name, None)
        return f is not None and bool(self.flags & (1 << int(f)))

    @property
    def strongly_typed(self):
        return _MAJOR >= 11 or self._flag("STRONGLY_TYPED")


class _ParserError(object):
    def __init__(self, node, msg):
        self.node, self.msg = node, msg

    def desc(self):
        return self.msg

    def __str__(self):
        return "In node {} (importModel): {}".format(self.node, self.msg)


class OnnxParser(object):
    def __init__(self, network, logger):
        self.network, self.logger = network, logger
        self._errors = []

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, i):
        return self._errors[i]

    def clear_errors(self):
        self._errors = []

    def parse(self, model, path=None):
        import onnx

        proto = onnx.load_from_string(bytes(model))
        if _MAJOR < 10 and not self.network._flag("EXPLICIT_BATCH"):
            self._errors.append(_ParserError(-1, "Network must have explicit batch dimension (the ONNX parser "
                                                 "supports only networks created with EXPLICIT_BATCH)"))
            return False
        opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset > _MAX_OPSET:
            self._errors.append(_ParserError(-1, "UNSUPPORTED_MODEL: TensorRT {} supports ONNX opsets up to {}, the "
                                                 "model is opset {}".format(__version__, _MAX_OPSET, opset)))
            return False
        for i, node in enumerate(proto.graph.node):
            if node.op_type not in SUPPORTED_OPS:
                self._errors.append(_ParserError(i, "UNSUPPORTED_NODE: No importer registered for op: {}".format(
                    node.op_type)))
        if self._errors:
            return False
        init = {t.name for t in proto.graph.initializer}

        def shape(v):
            return tuple(d.dim_value for d in v.type.tensor_type.shape.dim)

        self.network.inputs = [(v.name, shape(v)) for v in proto.graph.input if v.name not in init]
        self.network.outputs = [(v.name, shape(v)) for v in proto.graph.output]
        for name, shp in self.network.inputs + self.network.outputs:
            if any(d <= 0 for d in shp):
                self._errors.append(_ParserError(-1, "tensor {} has a dynamic shape {}: this fake handles static "
                                                     "shapes only".format(name, shp)))
                return False
        self.network.model = bytes(model)
        return True


class IBuilderConfig(object):
    def __init__(self):
        self._flags = {int(BuilderFlag.TF32)}  # TF32 is on by default in TensorRT >= 7.1
        self._pools = {MemoryPoolType.WORKSPACE: 1 << 30}

    def set_flag(self, flag):
        self._flags.add(int(flag))

    def clear_flag(self, flag):
        self._flags.discard(int(flag))

    def get_flag(self, flag):
        return int(flag) in self._flags

    @property
    def flags(self):
        return sum(1 << f for f in self._flags)

    def flag_names(self):
        return sorted(f.name for f in BuilderFlag if int(f) in self._flags)


if _HAS_NAMED:
    def _set_pool(self, pool, size):
        self._pools[MemoryPoolType(pool)] = int(size)

    def _get_pool(self, pool):
        return self._pools[MemoryPoolType(pool)]

    IBuilderConfig.set_memory_pool_limit = _set_pool
    IBuilderConfig.get_memory_pool_limit = _get_pool
if _MAJOR < 10:
    def _get_ws(self):
        return self._pools[MemoryPoolType.WORKSPACE]

    def _set_ws(self, v):
        self._pools[MemoryPoolType.WORKSPACE] = int(v)

    IBuilderConfig.max_workspace_size = property(_get_ws, _set_ws)


class Builder(object):
    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags=0):
        return INetworkDefinition(int(flags))

    def create_builder_config(self):
        return IBuilderConfig()

    @property
    def platform_has_tf32(self):
        return _compute_capability() >= (8, 0)

    def build_serialized_network(self, network, config):
        fp16 = _HAS_FP16_FLAG and config.get_flag(BuilderFlag.FP16)
        BUILDS.append({"tensorrt": __version__, "network_flags": network.flags, "strongly_typed":
                       network.strongly_typed, "flags": config.flag_names(),
                       "workspace": config._pools[MemoryPoolType.WORKSPACE]})
        if network.model is None:
            self.logger.log(Logger.ERROR, "Network must have at least one output")
            return None
        if fp16 and network.strongly_typed:
            self.logger.log(Logger.ERROR, "BuilderFlag::kFP16 cannot be set on a strongly typed network")
            return None
        header = {"tensorrt": __version__, "cc": list(_compute_capability()), "fp16": fp16,
                  "tf32": config.get_flag(BuilderFlag.TF32), "inputs": network.inputs, "outputs": network.outputs}
        return IHostMemory(_PLAN_MAGIC + json.dumps(header).encode() + b"\n" + network.model)


if _HAS_FP16_FLAG:
    Builder.platform_has_fast_fp16 = property(lambda self: _compute_capability() in ((5, 3), (6, 0), (6, 2))
                                              or _compute_capability() >= (7, 0))


class Runtime(object):
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        data = bytes(serialized_engine)
        if not data.startswith(_PLAN_MAGIC):
            self.logger.log(Logger.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: "
                                          "Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed."
                                          "Magic tag does not match)")
            return None
        head, _, model = data[len(_PLAN_MAGIC):].partition(b"\n")
        header = json.loads(head.decode())
        if header["tensorrt"] != __version__:
            self.logger.log(Logger.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code 1: "
                                          "Serialization (Serialization assertion stdVersionRead == "
                                          "serializationVersion failed.Version tag does not match. The engine plan "
                                          "file is not compatible with this version of TensorRT, expecting library "
                                          "version {} got {}, please rebuild.".format(__version__, header["tensorrt"]))
            return None
        if tuple(header["cc"]) != _compute_capability():
            self.logger.log(Logger.ERROR, "The engine plan file is generated on an incompatible device, expecting "
                                          "compute {} got compute {}, please rebuild.".format(
                                              "{}.{}".format(*_compute_capability()),
                                              "{}.{}".format(*header["cc"])))
            return None
        DESERIALIZED.append(header)
        return ICudaEngine(header, model)


def _as_imported(model):
    """The graph as onnx-tensorrt imports it: LogSoftmax becomes Log(Softmax(x)) (builtin_op_importers.cpp, 8.2 to
    10.x), which is -inf, not a large negative number, wherever the softmax underflows."""
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(model)
    nodes = []
    for node in proto.graph.node:
        if node.op_type != "LogSoftmax":
            nodes.append(node)
            continue
        axis = [a.i for a in node.attribute if a.name == "axis"]
        mid = node.output[0] + "__softmax"
        nodes.append(helper.make_node("Softmax", list(node.input), [mid], axis=axis[0] if axis else -1))
        nodes.append(helper.make_node("Log", [mid], list(node.output)))
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return proto.SerializeToString()


class ICudaEngine(object):
    def __init__(self, header, model):
        import onnxruntime as ort

        self.header = header
        self._io = [(n, tuple(s), True) for n, s in header["inputs"]] + [
            (n, tuple(s), False) for n, s in header["outputs"]]
        self._session = ort.InferenceSession(_as_imported(model), providers=["CPUExecutionProvider"])

    def create_execution_context(self):
        return IExecutionContext(self)

    def _index(self, name):
        for i, (n, _, _) in enumerate(self._io):
            if n == name:
                return i
        return -1


if _HAS_BINDINGS:
    ICudaEngine.num_bindings = property(lambda self: len(self._io))
    ICudaEngine.get_binding_name = lambda self, i: self._io[i][0]
    ICudaEngine.get_binding_index = lambda self, name: self._index(name)
    ICudaEngine.binding_is_input = lambda self, i: self._io[i][2]
    ICudaEngine.get_binding_shape = lambda self, i: self._io[i][1]
    ICudaEngine.get_binding_dtype = lambda self, i: DataType.FLOAT
if _HAS_NAMED:
    ICudaEngine.num_io_tensors = property(lambda self: len(self._io))
    ICudaEngine.get_tensor_name = lambda self, i: self._io[i][0]
    ICudaEngine.get_tensor_mode = lambda self, name: (
        TensorIOMode.NONE if self._index(name) < 0 else
        TensorIOMode.INPUT if self._io[self._index(name)][2] else TensorIOMode.OUTPUT)
    ICudaEngine.get_tensor_shape = lambda self, name: self._io[self._index(name)][1]
    ICudaEngine.get_tensor_dtype = lambda self, name: DataType.FLOAT


class IExecutionContext(object):
    def __init__(self, engine):
        self.engine = engine
        self._addr = {}

    def _run(self, addresses, stream_handle):
        lib = _cuda()
        if lib.cudaStreamSynchronize(ctypes.c_void_p(stream_handle)):  # the work queued before this launch
            return False
        feeds, fp16 = {}, self.engine.header["fp16"]
        for name, shape, is_input in self.engine._io:
            nbytes = int(np.prod(shape)) * 4
            ptr = addresses.get(name)
            if not ptr or lib.fakecuda_device_bytes(ctypes.c_void_p(ptr)) < nbytes:
                print("[TRT] [E] 1: [executionContext] tensor {} has no device buffer of {} bytes".format(
                    name, nbytes), file=sys.stderr)
                return False
            if is_input:
                a = np.empty(shape, np.float32)
                ctypes.memmove(a.ctypes.data, ptr, nbytes)
                feeds[name] = a.astype(np.float16).astype(np.float32) if fp16 else a
        names = [n for n, _, i in self.engine._io if not i]
        for name, value in zip(names, self.engine._session.run(names, feeds)):
            v = np.ascontiguousarray(value, np.float32)
            if fp16:
                v = v.astype(np.float16).astype(np.float32)
            ctypes.memmove(addresses[name], v.ctypes.data, v.nbytes)
        EXECUTIONS[0] += 1
        return True


if _HAS_BINDINGS:
    def _execute_async_v2(self, bindings, stream_handle):
        if len(bindings) != len(self.engine._io):
            return False
        return self._run({n: int(p) for (n, _, _), p in zip(self.engine._io, bindings)}, int(stream_handle))

    IExecutionContext.execute_async_v2 = _execute_async_v2
if _HAS_NAMED:
    def _set_tensor_address(self, name, ptr):
        if self.engine._index(name) < 0:
            return False
        self._addr[name] = int(ptr)
        return True

    def _execute_async_v3(self, stream_handle):
        return self._run(dict(self._addr), int(stream_handle))

    IExecutionContext.set_tensor_address = _set_tensor_address
    IExecutionContext.get_tensor_address = lambda self, name: self._addr.get(name, 0)
    IExecutionContext.execute_async_v3 = _execute_async_v3
