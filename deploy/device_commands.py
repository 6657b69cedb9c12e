"""Commands for the device itself, torch-free: ``neurohand build-engine``, ``neurohand verify``, ``neurohand doctor``.

``build-engine BUNDLE --precision fp32|fp16`` builds the TensorRT engine for this GPU: the only way one is made
(the runtime never builds). ``verify BUNDLE --session S.h5`` streams a recorded session through the bundle's own
front end and steps every engine available here (onnxruntime; TensorRT at each precision built) side by side with
the numpy reference, the recurrent state carried, and prints the largest differences in positions and class
probabilities, each engine's step latency and PASS/FAIL against the precision's tolerance (exit 1 on a failure).
``doctor [--bundle B]`` says what this machine has (Python and packages, onnxruntime providers, TensorRT, CUDA
runtime and driver, GPU, power mode, serial ports, the bundle's engines) and exits 0 only when the bundle can run
on TensorRT here, else 1 with what to fix.
"""

import glob
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from neurohand import __version__
from neurohand.decoder.bundle import Bundle
from neurohand.decoder.errors import DeviceError

# largest |engine - numpy| allowed in the positions and the class probabilities (both in 0..1), per precision; the
# probabilities rather than the logits, since a class TensorRT finds impossible has logit -inf (floored) where the
# reference has some large negative number: the same probability, 0
TOLERANCES = {"fp32": 1e-3, "fp16": 2e-2}
SERIAL_PATTERNS = ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyTHS*")
PACKAGES = (("numpy", "numpy"), ("scipy", "scipy"), ("h5py", "h5py"), ("onnxruntime", "onnxruntime"),
            ("serial", "pyserial"), ("cobs", "cobs"), ("rich", "rich"))


def register(sub) -> None:
    """Add ``neurohand build-engine``, ``neurohand verify`` and ``neurohand doctor``."""
    b = sub.add_parser("build-engine", help="build the TensorRT engine of a bundle for this GPU (on the Jetson)",
                       description="Build BUNDLE's model.onnx into a TensorRT engine for this GPU and TensorRT, at "
                       "the precision asked for, and save it in the bundle folder with a JSON record. The runtime "
                       "only loads engines built this way.")
    b.add_argument("bundle", help="bundle folder")
    b.add_argument("--precision", required=True, choices=["fp32", "fp16"],
                   help="fp32 (TF32 off: the reference precision) or fp16 (faster; needs fast FP16: sm_53, sm_62, "
                   "sm_70+)")
    b.add_argument("--workspace-mb", type=int, default=256, help="TensorRT builder workspace (default 256 MiB)")
    b.set_defaults(func=_build_engine)
    v = sub.add_parser("verify", help="compare every engine available here with the numpy reference on a session",
                       description="Decode SESSION's frames with every available engine and the numpy reference, "
                       "state carried; print the largest differences, step latencies and PASS/FAIL (exit 1 on FAIL).")
    v.add_argument("bundle", help="bundle folder")
    v.add_argument("--session", required=True, help="a recorded session (.h5) matching the bundle's contract")
    v.add_argument("--seconds", type=float, default=None, help="use only the first SECONDS of the session "
                   "(default: all of it)")
    v.set_defaults(func=_verify)
    d = sub.add_parser("doctor", help="is this machine ready to decode on TensorRT? what is missing?",
                       description="Report Python and packages, onnxruntime providers, TensorRT, CUDA, GPU, power "
                       "mode, serial ports and the bundle's engines; exit 0 when ready, 1 with what to fix.")
    d.add_argument("--bundle", default=None, help="also check this bundle's engines")
    d.set_defaults(func=_doctor)


# ---------------------------------------------------------------------------------------------- build-engine
def _build_engine(args) -> int:
    from neurohand.decoder.engines import tensorrt_engine as te

    bundle = Bundle(args.bundle)
    ok, why = te.tensorrt_available()
    if not ok:
        raise DeviceError("cannot build a TensorRT engine here: {}. Build it on the Jetson that runs the bundle "
                          "(run 'neurohand doctor' there)".format(why))
    t0 = time.perf_counter()
    path = te.build_engine(bundle, args.precision, workspace_mb=args.workspace_mb)
    info = te.device_info()
    print("wrote {} ({}, TensorRT {}, {} {}, {:.1f} s)".format(path, args.precision, info.tensorrt_version,
                                                             info.gpu_name, info.sm, time.perf_counter() - t0))
    print("check it against the reference with: neurohand verify {} --session SESSION.h5".format(bundle.path))
    return 0


# ---------------------------------------------------------------------------------------------- verify
def session_frames(bundle: Bundle, session: str, seconds: Optional[float] = None) -> np.ndarray:
    """Return the engine's input, shape (n_frames, n_features), for ``session`` (its first ``seconds``; all: None).

    Features, then the bundle's feature adaptation.
    """
    from neurohand.decoder.session_file import read_recording

    rec = read_recording(session)
    bundle.check_source(fs_hz=rec.fs_hz, n_channels=rec.n_channels)
    n = rec.n_samples if seconds is None else min(rec.n_samples, int(seconds * rec.fs_hz))
    ex = bundle.feature_extractor()
    frames, _ = ex.process(ex.new_state(), rec.signals[:n])
    adapter = bundle.feature_adapter()
    if adapter is not None and len(frames):
        frames, _ = adapter.process(adapter.new_state(), frames)
    return np.asarray(frames, np.float32)


def verify_engines(bundle: Bundle, frames: np.ndarray, *, on_engine: Optional[Callable[[str], None]] = None,
                   on_result: Optional[Callable[[Dict[str, Any]], None]] = None
                   ) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Step every available engine and the numpy reference over ``frames``, state carried.

    ``on_engine(label)`` is called as each engine starts and ``on_result(result)`` as it ends (progress on a slow
    device).

    Returns
    -------
    results : list of dict
        One per engine, the reference first: ``engine``, ``precision``, ``median_us``, ``p99_us`` and, except for
        the reference, ``positions_diff``, ``probabilities_diff`` (largest absolute differences), ``tolerance`` and
        ``ok`` (finite, and both differences within the tolerance).
    notes : list of str
        Engines not compared, and why.
    """
    from neurohand.decoder.engines import create_engine
    from neurohand.decoder.engines import tensorrt_engine as te

    engines: List[Tuple[str, str, Any]] = [("numpy", "fp32", create_engine(bundle, "numpy"))]
    notes = []
    try:
        engines.append(("onnxruntime", "fp32", create_engine(bundle, "onnxruntime")))
    except ImportError as e:
        notes.append("onnxruntime: not installed ({})".format(e))
    ok, why = te.tensorrt_available()
    if not ok:
        notes.append("tensorrt: cannot run here: {}".format(why))
    else:
        built = te.built_engines(bundle)
        if not built:
            notes.append("tensorrt: " + te.not_built_message(bundle, te.device_info()))
        for precision in te.PRECISIONS:
            if precision in built:
                engines.append(("tensorrt", precision, create_engine(bundle, "tensorrt", precision=precision)))
    outs = []
    for name, precision, eng in engines:
        if on_engine is not None:
            on_engine(_label(name, precision))
        state = eng.new_state()
        out = np.empty((len(frames), 5 + len(bundle.class_names)))
        times = np.empty(len(frames))
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            o, state = eng.step(state, f)
            times[i] = time.perf_counter() - t0
            out[i, :5], out[i, 5:] = o.positions, o.class_probabilities()
        if hasattr(eng, "close"):
            eng.close()
        r = {"engine": name, "precision": precision,
             "median_us": float(np.median(times) * 1e6) if len(times) else 0.0,
             "p99_us": float(np.percentile(times, 99) * 1e6) if len(times) else 0.0}
        if outs:
            d = np.abs(out - outs[0][1])
            tol = TOLERANCES[precision]
            r.update(positions_diff=float(d[:, :5].max()) if len(d) else 0.0,
                     probabilities_diff=float(d[:, 5:].max()) if len(d) else 0.0, tolerance=tol,
                     ok=bool(np.all(np.isfinite(out)) and np.all(d <= tol)))
        outs.append((r, out))
        if on_result is not None:
            on_result(r)
    return [r for r, _ in outs], notes


def _label(engine: str, precision: str) -> str:
    return "{} {}".format(engine, precision) if engine == "tensorrt" else engine


def _verify(args) -> int:
    from neurohand.decoder.validation import check_positive

    if args.seconds is not None:
        check_positive("--seconds", args.seconds)
    bundle = Bundle(args.bundle)
    print("computing the features of {}{} ...".format(
        args.session, "" if args.seconds is None else " (its first {:g} s)".format(args.seconds)), flush=True)
    frames = session_frames(bundle, args.session, args.seconds)
    m = bundle.contract["model"]
    print("{}: {} {}x{}{}, {} features, {} classes; {}: {} frames ({:.0f} s)".format(
        bundle.path, m["cell"].upper(), m["layers"], m["hidden"], ", pooled class output" if m.get("class_pool")
        else "", m["n_features"], m["n_classes"], args.session, len(frames),
        len(frames) * bundle.hop_samples / bundle.fs_hz))
    print("{:<18} {:>14} {:>17} {:>10} {:>10} {:>9}  {}".format(
        "engine", "positions |d|", "probabilities |d|", "tolerance", "median us", "p99 us", "result"), flush=True)

    def row(r):
        label = _label(r["engine"], r["precision"])
        if "ok" not in r:
            print("{:<18} {:>14} {:>17} {:>10} {:>10.1f} {:>9.1f}  reference".format(
                label, "-", "-", "-", r["median_us"], r["p99_us"]), flush=True)
            return
        print("{:<18} {:>14.2e} {:>17.2e} {:>10.0e} {:>10.1f} {:>9.1f}  {}".format(
            label, r["positions_diff"], r["probabilities_diff"], r["tolerance"], r["median_us"], r["p99_us"],
            "PASS" if r["ok"] else "FAIL"), flush=True)

    results, notes = verify_engines(bundle, frames, on_result=row)
    for n in notes:
        print("note: " + n)
    compared = [r for r in results if "ok" in r]
    failed = [r for r in compared if not r["ok"]]
    if failed:
        print("FAIL: {} of {} engines differ from the numpy reference beyond tolerance".format(
            len(failed), len(compared)))
        return 1
    print("PASS: {} engine(s) agree with the numpy reference over {} frames".format(len(compared), len(frames)))
    return 0


# ---------------------------------------------------------------------------------------------- doctor
def _package_version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "missing"
    v = getattr(mod, "__version__", None)
    if v is None:
        try:
            from importlib import metadata  # novermin - Python >= 3.8, guarded

            v = metadata.version(dict(PACKAGES).get(module, module))
        except Exception:  # noqa: BLE001 - the version is only informative
            v = "installed"
    return str(v)


def power_mode() -> str:
    """``nvpmodel -q`` in one line, or why there is none."""
    exe = shutil.which("nvpmodel")
    if not exe:
        return "nvpmodel not found (not a Jetson?)"
    try:
        r = subprocess.run([exe, "-q"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return "nvpmodel -q failed: {}".format(e)
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    return "; ".join(lines) if r.returncode == 0 else "nvpmodel -q failed (exit {}): {}".format(
        r.returncode, "; ".join(lines))


def serial_ports() -> List[str]:
    """List the serial devices present (USB adapters, CDC-ACM boards, the Jetson's own UARTs)."""
    return sorted(p for pattern in SERIAL_PATTERNS for p in glob.glob(pattern))


def doctor_report(bundle_dir: Optional[str] = None) -> Tuple[List[str], List[str]]:
    """Return what ``neurohand doctor`` prints: the report's lines, and what keeps TensorRT from running."""
    from neurohand.decoder.engines import available_engines, cuda_runtime
    from neurohand.decoder.engines import tensorrt_engine as te

    lines = ["neurohand {}, Python {} ({}, {} {})".format(__version__, platform.python_version(), sys.executable,
                                                         platform.system(), platform.machine()),
             "packages: " + ", ".join("{} {}".format(p, _package_version(m)) for m, p in PACKAGES)]
    problems = []
    try:
        import onnxruntime

        lines.append("onnxruntime providers: " + ", ".join(onnxruntime.get_available_providers()))
    except ImportError:
        lines.append("onnxruntime providers: onnxruntime is not installed")
    try:
        import tensorrt

        lines.append("TensorRT: {}".format(tensorrt.__version__))
    except ImportError:
        lines.append("TensorRT: not installed")
        problems.append("no TensorRT: the tensorrt Python package is not installed. It ships with JetPack "
                        "(python3-libnvinfer on JetPack 4.6); in a venv, create it with --system-site-packages")
    cuda = None
    try:
        cuda = cuda_runtime.runtime()
        lines.append("CUDA runtime: {} ({})".format(cuda_runtime.format_version(cuda.runtime_version()),
                                                     cuda.source))
        lines.append("CUDA driver: {}".format(cuda_runtime.format_version(cuda.driver_version())))
    except cuda_runtime.CudaError as e:
        lines.append("CUDA runtime: not found ({})".format(e))
        problems.append("no CUDA runtime: {}".format(e))
    if cuda is not None:
        try:
            driver = cuda.driver_version()
        except cuda_runtime.CudaError:
            driver = 0
        try:
            n = cuda.device_count()
            for i in range(n):
                cc = cuda.compute_capability(i)
                lines.append("GPU {}: {}, compute capability {}.{}".format(i, cuda.device_name(i), cc[0], cc[1]))
            if n == 0:
                raise cuda_runtime.CudaError("cudaGetDeviceCount found no device")
        except cuda_runtime.CudaError as e:
            lines.append("GPU: none ({})".format(e))
            problems.append("no GPU: " + ("no NVIDIA driver is loaded on this machine ({})".format(e)
                                          if driver <= 0 else str(e)))
    lines.append("power mode: " + power_mode())
    ports = serial_ports()
    lines.append("serial ports: " + (", ".join(ports) if ports else "none ({})".format(", ".join(SERIAL_PATTERNS))))
    bundle = None
    if bundle_dir is not None:
        bundle = Bundle(bundle_dir)
        m = bundle.contract["model"]
        lines.append("bundle {}: {} {}x{}, {} features, {} classes, model sha256 {}".format(
            bundle.path, m["cell"].upper(), m["layers"], m["hidden"], m["n_features"], m["n_classes"],
            bundle.model_hash[:12]))
        files = te.engine_files(bundle.path)
        built = {}
        if not problems:
            built = te.built_engines(bundle)
            if not built:
                problems.append("no TensorRT engine for this bundle on this GPU: run " +
                                te.BUILD_COMMAND.format(bundle=bundle.path))
        for f in files:
            mine = f["plan"] in built.values()
            lines.append("  engine {}: {} {}, TensorRT {}, {}{}".format(
                os.path.basename(f["plan"]), f.get("gpu", "?"), f.get("compute_capability", "?"),
                f.get("tensorrt_version", "?"), f.get("precision", "?"),
                "" if mine else " (not for this GPU/TensorRT/model: not used)"))
        if not files:
            lines.append("  engines: none built")
    lines.append("engines usable now: " + ", ".join(available_engines(bundle)))
    return lines, problems


def _doctor(args) -> int:
    lines, problems = doctor_report(args.bundle)
    for ln in lines:
        print(ln)
    if problems:
        print("NOT READY to decode on TensorRT:")
        for p in problems:
            print("  - " + p)
        print("meanwhile neurohand run decodes on: {}".format(lines[-1].split(": ", 1)[1]))
        return 1
    print("READY: TensorRT decodes{} on this GPU".format(" " + args.bundle if args.bundle else ""))
    return 0
