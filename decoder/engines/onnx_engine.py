"""The exported step graph on onnxruntime: CPU by default, CUDA or TensorRT providers when asked and present."""

from typing import Dict, Sequence, Tuple

import numpy as np

from ..bundle import Bundle, BundleError
from .base import Engine, StepOutput, zero_state

State = Dict[str, np.ndarray]
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class OnnxRuntimeEngine(Engine):
    """Decoder step with onnxruntime.

    Parameters
    ----------
    bundle : Bundle
    threads : int
        Intra-op threads, pinned explicitly (default 1: one frame is far too small to split).
    providers : sequence of {'cpu', 'cuda', 'tensorrt'}
        Execution providers in order of preference; those not installed are skipped, CPU is always last.
    """

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, *, threads: int = 1, providers: Sequence[str] = ("cpu",)) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        have = set(ort.get_available_providers())
        chosen = [PROVIDERS[p] for p in providers if PROVIDERS.get(p) in have and p != "cpu"]
        chosen.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(bundle.file("model.onnx"), sess_options=opts, providers=chosen)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types, one line is enough
            raise BundleError("{!r}: onnxruntime {} cannot load model.onnx ({}: {}); re-export the bundle or choose "
                              "--engine numpy".format(bundle.path, ort.__version__, type(e).__name__,
                                                      str(e).splitlines()[0] if str(e) else "")) from None
        self.providers = self.session.get_providers()
        c = bundle.contract["model"]
        self.cell = c["cell"]
        self.layers, self.hidden = int(c["layers"]), int(c["hidden"])
        self.n_features = int(c["n_features"])
        self._outputs = ["positions", "class_logits", "h_out"] + (["c_out"] if self.cell == "lstm" else [])
        self._shape = (1, self.n_features)
        self._run = self.session.run

    def new_state(self) -> State:
        """Zero state: ``h`` (layers, 1, hidden), plus ``c`` for an LSTM."""
        return zero_state(self.cell, self.layers, self.hidden)

    def step(self, state: State, frame: np.ndarray) -> Tuple[StepOutput, State]:
        """One frame of raw features, shape (n_features,) -> outputs and the new state."""
        x = np.asarray(frame, np.float32).reshape(self._shape)
        if self.cell == "lstm":
            res = self._run(self._outputs, {"features": x, "h": state["h"], "c": state["c"]})
            return StepOutput(res[0][0], res[1][0]), {"h": res[2], "c": res[3]}
        res = self._run(self._outputs, {"features": x, "h": state["h"]})
        return StepOutput(res[0][0], res[1][0]), {"h": res[2]}
