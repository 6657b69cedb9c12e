"""Inference engines over one exported decoder step with explicit recurrent state.

Every engine holds only weights; per-stream state is separate (sherpa-onnx style)::

    engine = create_engine(bundle, "auto")
    state = engine.new_state()
    out, state = engine.step(state, frame)      # frame: (n_features,) features, after bundle.feature_adapter()
    out.positions    # (5,) in 0..1
    out.class_logits # (n_classes,)

``"auto"`` picks TensorRT where it works and an engine is already built for the bundle (``neurohand build-engine``;
nothing here builds one), then onnxruntime, then numpy.
"""

import logging
from typing import Any, List, Optional, Tuple

from ..bundle import Bundle
from ..errors import DeviceError
from ..validation import check_option
from .base import Engine, StepOutput

ENGINES = ("auto", "tensorrt", "onnxruntime", "numpy")

__all__ = ["ENGINES", "Engine", "StepOutput", "available_engines", "create_engine"]


def available_engines(bundle: Optional[Bundle] = None) -> List[str]:
    """Engines that can run on this machine, fastest first.

    With ``bundle``, TensorRT is listed only when an engine is already built for it on this GPU.
    """
    out = []
    from . import tensorrt_engine

    if tensorrt_engine.tensorrt_available()[0] and (bundle is None or tensorrt_engine.built_engines(bundle)):
        out.append("tensorrt")
    try:
        import onnxruntime  # noqa: F401

        out.append("onnxruntime")
    except ImportError:
        pass
    out.append("numpy")
    return out


def create_engine(bundle: Bundle, kind: str = "auto", **options: Any) -> Engine:
    """Create an engine for ``bundle``.

    Parameters
    ----------
    bundle : Bundle
    kind : {'auto', 'tensorrt', 'onnxruntime', 'numpy'}
        ``'auto'``: TensorRT when an engine is built for this bundle on this GPU, else onnxruntime, else numpy;
        when TensorRT works but no engine is built, a warning (logger ``neurohand.engines``) names the command
        that builds one. No engine is ever built here.
    **options
        Passed to the engine (``threads`` for onnxruntime, ``precision`` for TensorRT).
    """
    check_option("engine", kind, ENGINES)
    if kind == "auto":
        kinds = available_engines(bundle)
        if "tensorrt" not in kinds:
            _warn_if_not_built(bundle)
        errors: List[Tuple[str, str]] = []
        for k in kinds:
            try:
                engine = create_engine(bundle, k, **options)
            except Exception as e:  # noqa: BLE001 - fall back to the next engine, say why at the end
                errors.append((k, str(e)))
                continue
            if errors:  # never silent: the same sealed weights (decoder/bundle_check.py), another engine
                logging.getLogger("neurohand.engines").warning(
                    "engine %s used instead of %s", k, "; ".join("{}: {}".format(a, b) for a, b in errors))
            return engine
        raise DeviceError("No engine could be created: {}".format(
            "; ".join("{}: {}".format(a, b) for a, b in errors)))
    if kind == "numpy":
        from .numpy_engine import NumpyEngine

        return NumpyEngine(bundle)
    if kind == "onnxruntime":
        from .onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(bundle, **options)
    from .tensorrt_engine import TensorRTEngine

    return TensorRTEngine(bundle, **options)


def _warn_if_not_built(bundle: Bundle) -> None:
    from . import tensorrt_engine

    try:
        info = tensorrt_engine.device_info()
    except DeviceError:
        return  # TensorRT cannot run here at all: nothing to build
    logging.getLogger("neurohand.engines").warning(
        "TensorRT is not used: %s", tensorrt_engine.not_built_message(bundle, info))
