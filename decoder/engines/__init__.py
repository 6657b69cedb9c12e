"""Inference engines over one exported decoder step with explicit recurrent state.

Every engine holds only weights; per-stream state is separate (sherpa-onnx style)::

    engine = create_engine(bundle, "auto")
    state = engine.new_state()
    out, state = engine.step(state, frame)      # frame: (n_features,) features, after bundle.feature_adapter()
    out.positions    # (5,) in 0..1
    out.class_logits # (n_classes,)

``"auto"`` picks TensorRT where it works, then onnxruntime, then numpy.
"""

from typing import Any, List, Tuple

from ..bundle import Bundle
from ..errors import DeviceError
from ..validation import check_option
from .base import StepOutput

ENGINES = ("auto", "tensorrt", "onnxruntime", "numpy")

__all__ = ["ENGINES", "StepOutput", "available_engines", "create_engine"]


def available_engines() -> List[str]:
    """Engines that can run on this machine, fastest first."""
    out = []
    try:
        from . import tensorrt_engine

        trt_ok = tensorrt_engine.tensorrt_available()[0]
    except SyntaxError:  # Python 3.6: tensorrt_engine.py still uses 3.7+ syntax (being rewritten for JetPack 4)
        trt_ok = False
    if trt_ok:
        out.append("tensorrt")
    try:
        import onnxruntime  # noqa: F401

        out.append("onnxruntime")
    except ImportError:
        pass
    out.append("numpy")
    return out


def create_engine(bundle: Bundle, kind: str = "auto", **options: Any) -> Any:
    """Create an engine for ``bundle``.

    Parameters
    ----------
    bundle : Bundle
    kind : {'auto', 'tensorrt', 'onnxruntime', 'numpy'}
    **options
        Passed to the engine (``threads`` for onnxruntime, ``fp16`` for TensorRT).
    """
    check_option("engine", kind, ENGINES)
    if kind == "auto":
        errors: List[Tuple[str, str]] = []
        for k in available_engines():
            try:
                return create_engine(bundle, k, **options)
            except Exception as e:  # noqa: BLE001 - fall back to the next engine, say why at the end
                errors.append((k, str(e)))
        raise DeviceError("No engine could be created: {}".format(errors))
    if kind == "numpy":
        from .numpy_engine import NumpyEngine

        return NumpyEngine(bundle)
    if kind == "onnxruntime":
        from .onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(bundle, **options)
    from .tensorrt_engine import TensorRTEngine

    return TensorRTEngine(bundle, **options)
