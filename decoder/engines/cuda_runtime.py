"""The few CUDA runtime calls the TensorRT engine needs, through ctypes over ``libcudart`` (no cuda-python, no pycuda).

Every JetPack ships ``libcudart`` (CUDA 10.2 on JetPack 4.6, 11.4 on JetPack 5, 12.x on JetPack 6), so nothing
beyond TensorRT's own Python bindings has to be installed on the device. The library is searched, in order, at
``$NEUROHAND_LIBCUDART`` (a full path), then by the names ``libcudart.so``, ``libcudart.so.12``,
``libcudart.so.11.0``, ``libcudart.so.10.2`` and ``libcudart.so.13`` through the loader's own search path, then in
``$CUDA_HOME/lib64``, ``$CUDA_PATH/lib64``, ``/usr/local/cuda/lib64`` and ``/usr/local/cuda/targets/*/lib``.

A failing call raises :class:`CudaError` (a :class:`~neurohand.decoder.errors.DeviceError`) that names the call
and the real CUDA error, e.g. ``cudaGetDeviceCount failed: cudaErrorInsufficientDriver: CUDA driver version is
insufficient for CUDA runtime version``. Only calls whose signatures are the same in CUDA 10.2 through 12.x are
used; the compute capability comes from ``cudaDeviceGetAttribute`` rather than the ``cudaDeviceProp`` struct, whose
layout changes between versions (only its first field, the 256-byte name, is read).
"""

import ctypes
import ctypes.util
import glob
import os
from typing import List, Optional, Tuple

from ..errors import DeviceError

ENV_LIBRARY = "NEUROHAND_LIBCUDART"
LIBRARY_NAMES = ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so.10.2", "libcudart.so.13")

# cudaMemcpyKind
MEMCPY_HOST_TO_DEVICE = 1
MEMCPY_DEVICE_TO_HOST = 2
# cudaDeviceAttr
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
# cudaDeviceProp is ~700 bytes in CUDA 10.2 and ~1 KiB in 12.x; a larger buffer fits every version
_DEVICE_PROP_BYTES = 8192

_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_void_pp = ctypes.POINTER(ctypes.c_void_p)
_SIGNATURES = {
    "cudaGetErrorName": (ctypes.c_char_p, [ctypes.c_int]),
    "cudaGetErrorString": (ctypes.c_char_p, [ctypes.c_int]),
    "cudaRuntimeGetVersion": (ctypes.c_int, [_c_int_p]),
    "cudaDriverGetVersion": (ctypes.c_int, [_c_int_p]),
    "cudaGetDeviceCount": (ctypes.c_int, [_c_int_p]),
    "cudaSetDevice": (ctypes.c_int, [ctypes.c_int]),
    "cudaDeviceGetAttribute": (ctypes.c_int, [_c_int_p, ctypes.c_int, ctypes.c_int]),
    "cudaMalloc": (ctypes.c_int, [_c_void_pp, ctypes.c_size_t]),
    "cudaFree": (ctypes.c_int, [ctypes.c_void_p]),
    "cudaMemsetAsync": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p]),
    "cudaMemcpyAsync": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                       ctypes.c_void_p]),
    "cudaStreamCreate": (ctypes.c_int, [_c_void_pp]),
    "cudaStreamSynchronize": (ctypes.c_int, [ctypes.c_void_p]),
    "cudaStreamDestroy": (ctypes.c_int, [ctypes.c_void_p]),
}


class CudaError(DeviceError):
    """A CUDA runtime call failed, or ``libcudart`` could not be loaded.

    Attributes
    ----------
    code : int or None
        The ``cudaError_t`` value (None when the library itself is missing).
    name : str
        The error's name, e.g. ``'cudaErrorNoDevice'`` (empty when the library is missing).
    """

    def __init__(self, message: str, code: Optional[int] = None, name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.name = name


def library_candidates() -> List[str]:
    """Names and paths to try for ``libcudart``, in order."""
    override = os.environ.get(ENV_LIBRARY)
    if override:
        return [override]
    out = list(LIBRARY_NAMES)
    found = ctypes.util.find_library("cudart")
    if found:
        out.append(found)
    dirs = [os.path.join(os.environ[v], "lib64") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    dirs += ["/usr/local/cuda/lib64"] + sorted(glob.glob("/usr/local/cuda/targets/*/lib"))
    for d in dirs:
        out += [os.path.join(d, n) for n in LIBRARY_NAMES]
    seen = set()
    return [c for c in out if not (c in seen or seen.add(c))]


def load_library() -> Tuple[ctypes.CDLL, str]:
    """Load ``libcudart``; returns the library and the name or path it was loaded from.

    Raises
    ------
    CudaError
        None of :func:`library_candidates` loads.
    """
    tried = library_candidates()
    for name in tried:
        try:
            return ctypes.CDLL(name), name
        except OSError:
            continue
    if os.environ.get(ENV_LIBRARY):
        raise CudaError("the CUDA runtime library {}={!r} does not load".format(ENV_LIBRARY, tried[0]))
    raise CudaError("the CUDA runtime library (libcudart.so) was not found (tried {} and CUDA_HOME, "
                    "/usr/local/cuda/lib64); JetPack installs it with CUDA".format(", ".join(LIBRARY_NAMES[:2])
                                                                                  + ", ..."))


def format_version(v: int) -> str:
    """CUDA's integer version (``major * 1000 + minor * 10``) as ``'major.minor'``; ``'none'`` for 0."""
    return "none" if v <= 0 else "{}.{}".format(v // 1000, (v % 1000) // 10)


class CudaRuntime:
    """The CUDA runtime calls used by the engine, over a loaded ``libcudart``.

    Parameters
    ----------
    lib : ctypes.CDLL
        The loaded library (from :func:`load_library`).
    source : str
        Where it was loaded from, for reports.
    """

    def __init__(self, lib: ctypes.CDLL, source: str = "") -> None:
        self.lib = lib
        self.source = source
        for fname, (restype, argtypes) in _SIGNATURES.items():
            try:
                f = getattr(lib, fname)
            except AttributeError as e:
                raise CudaError("{} ({}) lacks {}: not a CUDA runtime library".format(source, lib, fname)) from e
            f.restype, f.argtypes = restype, argtypes
        # CUDA 12 headers map cudaGetDeviceProperties to cudaGetDeviceProperties_v2; older libraries lack it
        self._props = getattr(lib, "cudaGetDeviceProperties_v2", None) or lib.cudaGetDeviceProperties
        self._props.restype, self._props.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]

    # ------------------------------------------------------------------ errors
    def error_name(self, code: int) -> str:
        """``cudaGetErrorName``, e.g. ``'cudaErrorNoDevice'``."""
        s = self.lib.cudaGetErrorName(int(code))
        return s.decode("ascii", "replace") if s else "cudaError{}".format(code)

    def error_string(self, code: int) -> str:
        """``cudaGetErrorString``, e.g. ``'no CUDA-capable device is detected'``."""
        s = self.lib.cudaGetErrorString(int(code))
        return s.decode("ascii", "replace") if s else "unknown error"

    def check(self, code: int, call: str) -> None:
        """Raise :class:`CudaError` naming ``call`` and the CUDA error when ``code`` is not ``cudaSuccess``."""
        if code:
            name = self.error_name(code)
            raise CudaError("{} failed: {}: {}".format(call, name, self.error_string(code)), code, name)

    # ------------------------------------------------------------------ versions and devices
    def runtime_version(self) -> int:
        """``cudaRuntimeGetVersion`` (e.g. 10020 for 10.2)."""
        v = ctypes.c_int(0)
        self.check(self.lib.cudaRuntimeGetVersion(ctypes.byref(v)), "cudaRuntimeGetVersion")
        return v.value

    def driver_version(self) -> int:
        """``cudaDriverGetVersion``: the newest CUDA the installed driver supports, 0 when no driver is installed."""
        v = ctypes.c_int(0)
        self.check(self.lib.cudaDriverGetVersion(ctypes.byref(v)), "cudaDriverGetVersion")
        return v.value

    def device_count(self) -> int:
        """``cudaGetDeviceCount``; raises with the real reason (no device, driver too old, ...)."""
        n = ctypes.c_int(0)
        self.check(self.lib.cudaGetDeviceCount(ctypes.byref(n)), "cudaGetDeviceCount")
        return n.value

    def set_device(self, device: int = 0) -> None:
        """``cudaSetDevice``."""
        self.check(self.lib.cudaSetDevice(int(device)), "cudaSetDevice")

    def device_name(self, device: int = 0) -> str:
        """Return the device's name (the first field of ``cudaDeviceProp``, the same in every CUDA version)."""
        buf = ctypes.create_string_buffer(_DEVICE_PROP_BYTES)
        self.check(self._props(buf, int(device)), "cudaGetDeviceProperties")
        return buf.raw[:256].split(b"\0", 1)[0].decode("utf-8", "replace").strip()

    def compute_capability(self, device: int = 0) -> Tuple[int, int]:
        """(major, minor) through ``cudaDeviceGetAttribute``, e.g. (5, 3) on the Jetson Nano, (8, 7) on Orin."""
        out = []
        for attr in (ATTR_COMPUTE_CAPABILITY_MAJOR, ATTR_COMPUTE_CAPABILITY_MINOR):
            v = ctypes.c_int(0)
            self.check(self.lib.cudaDeviceGetAttribute(ctypes.byref(v), attr, int(device)), "cudaDeviceGetAttribute")
            out.append(v.value)
        return out[0], out[1]

    # ------------------------------------------------------------------ memory and streams
    def malloc(self, nbytes: int) -> int:
        """``cudaMalloc``; returns the device address."""
        p = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(p), int(nbytes)), "cudaMalloc({} bytes)".format(nbytes))
        return int(p.value or 0)

    def free(self, ptr: int) -> None:
        """``cudaFree``."""
        self.check(self.lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def memset_async(self, ptr: int, value: int, nbytes: int, stream: int) -> None:
        """``cudaMemsetAsync``."""
        self.check(self.lib.cudaMemsetAsync(ctypes.c_void_p(ptr), int(value), int(nbytes), ctypes.c_void_p(stream)),
                   "cudaMemsetAsync")

    def memcpy_htod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """``cudaMemcpyAsync`` host -> device (``src`` a host address, e.g. ``array.ctypes.data``)."""
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), int(nbytes),
                                            MEMCPY_HOST_TO_DEVICE, ctypes.c_void_p(stream)), "cudaMemcpyAsync(H2D)")

    def memcpy_dtoh_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """``cudaMemcpyAsync`` device -> host; the host buffer is valid only after :meth:`stream_synchronize`."""
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), int(nbytes),
                                            MEMCPY_DEVICE_TO_HOST, ctypes.c_void_p(stream)), "cudaMemcpyAsync(D2H)")

    def stream_create(self) -> int:
        """``cudaStreamCreate``; returns the stream handle as an int (what TensorRT's Python API takes)."""
        s = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return int(s.value or 0)

    def stream_synchronize(self, stream: int) -> None:
        """``cudaStreamSynchronize``."""
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def stream_destroy(self, stream: int) -> None:
        """``cudaStreamDestroy``."""
        self.check(self.lib.cudaStreamDestroy(ctypes.c_void_p(stream)), "cudaStreamDestroy")


def runtime() -> CudaRuntime:
    """Load ``libcudart`` (see the module docstring) and wrap it.

    Raises
    ------
    CudaError
        The library is missing or is not a CUDA runtime.
    """
    lib, source = load_library()
    return CudaRuntime(lib, source)
