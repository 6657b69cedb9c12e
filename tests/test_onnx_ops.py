"""Every exported step graph is one TensorRT 8.2 (JetPack 4.6) can import, and its class output stays finite.

The operator list is onnx-tensorrt's for TensorRT 8.2 (docs/operators.md at tag release/8.2-GA), checked in with the
fake TensorRT (tests/fakes/tensorrt).
"""

import os

import numpy as np
import onnx
import pytest

from neurohand.decoder.bundle import Bundle
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from tests.fakes.tensorrt import SUPPORTED_OPS

torch = pytest.importorskip("torch")

KINDS = {"gru": dict(cell="gru", layers=1), "lstm": dict(cell="lstm", layers=2),
         "pooled": dict(cell="gru", layers=2, class_pool=True)}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames
    from neurohand.training.export import export_bundle
    from tests.test_export_engines import make_model_dir

    rec = simulate_recording(SimulatorConfig(minutes=0.05, n_channels=4, fs_hz=4000.0, seed=5))
    x = build_frames([rec], config_for_recording(rec)).features
    out = {}
    for name, kw in KINDS.items():
        d = tmp_path_factory.mktemp(name)
        make_model_dir(str(d / "m"), rec, x, n_classes=len(rec.class_names), hidden=16, **kw)
        out[name] = export_bundle(str(d / "m"), str(d / "b"))
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_exported_graphs_use_only_what_tensorrt_82_imports(bundles, kind):
    model = onnx.load(Bundle(bundles[kind].path).file("model.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 13
    used = {n.op_type for n in model.graph.node}
    assert used <= SUPPORTED_OPS, "not on onnx-tensorrt 8.2's list: {}".format(sorted(used - SUPPORTED_OPS))
    assert not used & {"LogSoftmax", "Softmax"}  # TensorRT imports LogSoftmax as Log(Softmax): -inf, a fault
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims), value.name  # static shapes
    for node in model.graph.node:  # no attribute TensorRT 8.2 ignores or refuses
        if node.op_type in ("ReduceMax", "ReduceSum"):
            assert {a.name for a in node.attribute} <= {"axes", "keepdims"}
        if node.op_type in ("Gemm", "MatMul"):
            assert {a.name for a in node.attribute} <= {"alpha", "beta", "transA", "transB"}


def test_the_stable_log_softmax_is_finite_at_a_300_nat_gap():
    from neurohand.training.model import stable_log_softmax

    x = torch.tensor([[0.0, -300.0, 5.0, -1.0]], dtype=torch.float64)
    got = stable_log_softmax(x.float()).double()
    ref = torch.log_softmax(x, dim=-1)
    assert torch.all(torch.isfinite(got)) and torch.allclose(got, ref, atol=1e-5)
    # what TensorRT's Log(Softmax) gives for the same scores: -inf in float32 already
    assert torch.isneginf(torch.log(torch.softmax(x.float(), dim=-1))).any()
    # an FP16 emulation of the exported formula (every intermediate rounded to float16) stays finite and close
    h = x.half()
    s = h - h.amax(dim=-1, keepdim=True)
    fp16 = s - torch.log(torch.exp(s).sum(dim=-1, keepdim=True))
    assert torch.all(torch.isfinite(fp16)) and torch.allclose(fp16.double(), ref, atol=0.5)


def test_the_pooled_graph_decodes_finite_where_lda_rules_a_class_out(bundles):
    """Frames hundreds of sd from the training mean: onnxruntime, numpy and torch agree and stay finite."""
    from neurohand.decoder.engines import create_engine

    bundle = Bundle(bundles["pooled"].path)
    w = bundle.weights()
    assert np.abs(w["pool_weight"]).max() > 0  # the pool is set, so it can put a class far down
    rng = np.random.default_rng(2)
    frames = (w["feature_mean"] + 300 * w["feature_std"] * np.sign(rng.normal(size=(30, w["feature_mean"].size))))
    outs = {}
    for name in ("numpy", "onnxruntime"):
        eng = create_engine(bundle, name)
        state, logits = eng.new_state(), []
        for f in frames.astype(np.float32):
            o, state = eng.step(state, f)
            logits.append(o.class_logits)
        outs[name] = np.array(logits)
        assert np.all(np.isfinite(outs[name])) and outs[name].min() >= -1e4
    assert outs["numpy"].min() < -100
    np.testing.assert_allclose(outs["onnxruntime"], outs["numpy"], rtol=1e-4, atol=1e-2)


@pytest.mark.slow
def test_a_pooled_3dc_bundle_has_no_log_softmax(tmp_path, threedc_dir):
    """The bundle a class-only EMG session gives (pooled with LDA by default) exports no LogSoftmax or Softmax."""
    from neurohand.cli import main

    session, model, bundle = (str(tmp_path / n) for n in ("p1.h5", "model", "bundle"))
    assert main(["import", "3dc", os.path.join(threedc_dir, "Participant1", "train"), "--out", session]) == 0
    assert main(["train", session, "--out", model, "--epochs", "1", "--hidden", "8", "--layers", "1", "--quiet",
                 "--device", "cpu"]) == 0
    assert main(["export", model, "--out", bundle]) == 0
    b = Bundle(bundle)
    assert b.contract["model"]["class_pool"]
    used = {n.op_type for n in onnx.load(b.file("model.onnx")).graph.node}
    assert not used & {"LogSoftmax", "Softmax"} and used <= SUPPORTED_OPS
