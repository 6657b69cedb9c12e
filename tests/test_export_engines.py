import json
import os

import numpy as np
import onnx
import pytest
import torch

from neurohand.decoder.bundle import Bundle, BundleError
from neurohand.decoder.engines import available_engines, create_engine
from neurohand.decoder.engines.tensorrt_engine import tensorrt_available
from neurohand.training.config import TrainConfig, with_overrides
from neurohand.training.export import OPSET, export_bundle
from neurohand.training.model import ModelConfig, RecurrentDecoder
from neurohand.training.model_dir import save_model_dir
from neurohand.training.train import TrainResult


def make_model_dir(path, rec, frames, *, cell="gru", layers=2, hidden=32, projection=0, n_classes=13, seed=0,
                   adapt=None, class_pool=False):
    """Save an untrained model for ``rec``; with ``adapt`` (an AdaptationConfig) behind a feature adapter; with
    ``class_pool`` its class output pooled with a random linear discriminant."""
    from neurohand.decoder.adaptation import FeatureAdapter
    from neurohand.decoder.feature_config import config_for_recording

    torch.manual_seed(seed)
    model = RecurrentDecoder(ModelConfig(n_features=frames.shape[1], n_classes=n_classes, cell=cell, hidden=hidden,
                                         layers=layers, projection=projection, class_pool=class_pool))
    model.set_normalisation(frames.mean(0), frames.std(0) + 1e-6)
    if class_pool:
        rng = np.random.default_rng(seed)
        F = frames.shape[1]
        model.set_class_pool(frames.mean(0) + 0.1, frames.std(0) * 1.5 + 1e-6, rng.normal(size=(n_classes, F)),
                             rng.normal(size=n_classes), np.arange(n_classes))
    # scale the recurrent weights up so the state actually carries information over many frames
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            if "weight_hh" in name:
                p.mul_(3.0)
    res = TrainResult(model_dir=path, best_epoch=1, epochs_run=1, interrupted=False, val_metrics={"r2_mean": 0.5})
    fcfg = config_for_recording(rec)
    adapter = None if adapt is None else FeatureAdapter(adapt, hop_ms=fcfg.hop_ms, mean=frames.mean(0),
                                                        std=frames.std(0) + 1e-6)
    config = with_overrides(TrainConfig(), {"model.cell": cell})
    save_model_dir(path, model, fcfg, rec, config, res, {}, [], [7], adapter=adapter)
    return model.eval()


def small_bundle(folder, rec, *, hidden=8, layers=1, adapt=None):
    """Export an untrained (but state-carrying) model for ``rec`` into ``folder/b``; returns the bundle path."""
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    frames = build_frames([rec], config_for_recording(rec)).features
    make_model_dir(os.path.join(folder, "m"), rec, frames, n_classes=len(rec.class_names), hidden=hidden,
                   layers=layers, adapt=adapt)
    export_bundle(os.path.join(folder, "m"), os.path.join(folder, "b"))
    return os.path.join(folder, "b")


def forge(path, edit, *, weights=None):
    """Rewrite a bundle consistently, past the seal: ``edit(contract)`` in bundle.json and model.onnx's metadata,
    ``weights`` (name -> array) replacing weights.npz, every hash recomputed. What the seal cannot catch (a deliberate
    multi-file rewrite); the load-time consistency checks must."""
    from neurohand.decoder.bundle import sha256_of

    meta = json.load(open(os.path.join(path, "bundle.json")))
    edit(meta["contract"])
    if weights is not None:
        np.savez(os.path.join(path, "weights.npz"), **weights)
        meta["files"]["weights.npz"] = sha256_of(os.path.join(path, "weights.npz"))
    proto = onnx.load(os.path.join(path, "model.onnx"))
    seal = {p.key: p for p in proto.metadata_props}
    seal["neurohand_contract"].value = json.dumps(meta["contract"])
    seal["neurohand_weights_sha256"].value = meta["files"]["weights.npz"]
    onnx.save(proto, os.path.join(path, "model.onnx"))
    meta["files"]["model.onnx"] = sha256_of(os.path.join(path, "model.onnx"))
    json.dump(meta, open(os.path.join(path, "bundle.json"), "w"))


@pytest.fixture(scope="module")
def ninapro_frames(ninapro_file):
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames
    from neurohand.training.importers import import_ninapro

    rec = import_ninapro(ninapro_file, reps=[8])
    frames = build_frames([rec], config_for_recording(rec))
    return rec, frames.features[:1200]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_parity_torch_onnxruntime_numpy_on_real_data(tmp_path, ninapro_frames, cell, layers):
    rec, x = ninapro_frames
    assert len(x) >= 1000
    # the two-layer models also carry a projection and a class output pooled with a linear discriminant
    model = make_model_dir(str(tmp_path / "m"), rec, x, cell=cell, layers=layers, projection=16 if layers == 2 else 0,
                           class_pool=layers == 2)
    bundle = export_bundle(str(tmp_path / "m"), str(tmp_path / "b"))
    assert bundle.contract["model"]["class_pool"] == (layers == 2)
    assert bundle.meta["schema_version"] == 4  # every bundle is sealed (decoder/bundle_check.py)
    if layers == 2:  # a runtime that knows the adaptation but not the pool refuses the bundle
        import neurohand.decoder.bundle as bundle_module

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(bundle_module, "SCHEMA_VERSION", 2)
            with pytest.raises(BundleError, match="uses bundle schema 4, newer than this runtime reads \\(2\\)"):
                Bundle(bundle.path)
    with torch.no_grad():
        pos_t, log_t, _ = model(torch.as_tensor(x)[None])
    pos_t, log_t = pos_t[0].numpy(), log_t[0].numpy()
    # the training-time evaluation path (training.evaluate) sees the same frames the same way
    from neurohand.training.model import predict_sequences

    pos_eval, prob_eval = predict_sequences(model, x, [slice(0, len(x))])
    np.testing.assert_allclose(pos_eval, pos_t, atol=1e-6)
    for kind in ("onnxruntime", "numpy"):
        eng = create_engine(bundle, kind)
        state = eng.new_state()
        pos = np.zeros_like(pos_t)
        logit = np.zeros_like(log_t)
        for t in range(len(x)):
            out, state = eng.step(state, x[t])
            pos[t], logit[t] = out.positions, out.class_logits
        assert np.max(np.abs(pos - pos_t)) <= 1e-4, kind
        assert np.max(np.abs(logit - log_t)) <= 1e-4, kind
    # the state matters: restarting from zero halfway changes the outputs
    eng = create_engine(bundle, "numpy")
    out_fresh, _ = eng.step(eng.new_state(), x[600])
    assert np.max(np.abs(out_fresh.positions - pos_t[600])) > 1e-3


def test_exported_graph_contract_and_gru_attributes(tmp_path, small_sim):
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    make_model_dir(str(tmp_path / "m"), small_sim, frames, n_classes=len(small_sim.class_names))
    b = export_bundle(str(tmp_path / "m"), str(tmp_path / "b"))
    proto = onnx.load(b.file("model.onnx"))
    assert proto.opset_import[0].version == OPSET <= 13
    assert [i.name for i in proto.graph.input] == ["features", "h"]
    assert [o.name for o in proto.graph.output] == ["positions", "class_logits", "h_out"]
    grus = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert grus and all(
        any(a.name == "linear_before_reset" and a.i == 1 for a in n.attribute) for n in grus)
    meta = {p.key: p.value for p in proto.metadata_props}
    contract = json.loads(meta["neurohand_contract"])
    assert contract["fs_hz"] == small_sim.fs_hz and contract["n_channels"] == small_sim.n_channels
    assert contract["class_names"] == list(small_sim.class_names)
    assert len(contract["normalisation"]["mean"]) == frames.shape[1]
    assert contract["feature_config"]["signal_kind"] == "nerve"
    assert contract["adaptation"] is None and b.feature_adapter() is None  # a model trained without one
    assert b.meta["schema_version"] == 4
    assert set(os.listdir(b.path)) == {"bundle.json", "model.onnx", "weights.npz"}


def test_the_bundle_carries_the_feature_adaptation_and_refuses_a_bad_one(tmp_path, small_sim, monkeypatch):
    from neurohand.decoder.adaptation import AdaptationConfig
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    cfg = AdaptationConfig(prior_s=2.0, horizon_s=8.0, limit_sd=3.0)
    make_model_dir(str(tmp_path / "m"), small_sim, frames, n_classes=len(small_sim.class_names), adapt=cfg)
    b = export_bundle(str(tmp_path / "m"), str(tmp_path / "b"))
    proto = onnx.load(b.file("model.onnx"))
    contract = json.loads({p.key: p.value for p in proto.metadata_props}["neurohand_contract"])
    assert contract["adaptation"]["config"] == cfg.to_dict()  # in the graph's metadata as in bundle.json
    ad = b.feature_adapter()
    assert ad.config == cfg and ad.n_features == frames.shape[1]
    # schema 4: a runtime from before the seal refuses the bundle ("update neurohand on the device")
    assert b.meta["schema_version"] == 4
    assert {p.key: p.value for p in proto.metadata_props}["neurohand_schema_version"] == "4"
    import neurohand.decoder.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "SCHEMA_VERSION", 3)
    with pytest.raises(BundleError, match="uses bundle schema 4, newer than this runtime reads \\(3\\); update"):
        Bundle(b.path)
    monkeypatch.undo()
    np.testing.assert_allclose(ad.mean0, frames.mean(0), rtol=1e-5, atol=1e-6)
    # a prior that does not fit the model's input is refused (forged past the seal)
    def shorter(c):
        c["adaptation"]["mean"] = c["adaptation"]["mean"][:-1]
        c["adaptation"]["std"] = c["adaptation"]["std"][:-1]

    forge(b.path, shorter)
    # refused on loading, before any runtime starts
    with pytest.raises(BundleError, match="prior has {} features but the model reads {}".format(
            frames.shape[1] - 1, frames.shape[1])):
        Bundle(b.path)
    forge(b.path, lambda c: c["adaptation"]["config"].update(horizon_s=0.5))
    with pytest.raises(BundleError, match="'adaptation' is invalid .*'horizon_s'"):
        Bundle(b.path)


def test_bundle_refuses_corruption_newer_schema_and_wrong_source(tmp_path, small_sim):
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    make_model_dir(str(tmp_path / "m"), small_sim, frames, n_classes=len(small_sim.class_names))
    b = export_bundle(str(tmp_path / "m"), str(tmp_path / "b"))
    with pytest.raises(BundleError, match="expects 5000.0 Hz"):
        b.check_source(fs_hz=10000.0, n_channels=8)
    with pytest.raises(BundleError, match="delivers 4 channels but the model .* expects 8"):
        b.check_source(fs_hz=5000.0, n_channels=4)
    b.check_source(fs_hz=5000.0, n_channels=8)
    # corruption: flip one byte of the weights
    w = tmp_path / "b" / "weights.npz"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="'weights.npz' is corrupted"):
        Bundle(str(tmp_path / "b"))
    # newer schema
    b2 = export_bundle(str(tmp_path / "m"), str(tmp_path / "b2"))
    meta = json.load(open(b2.file("bundle.json")))
    meta["schema_version"] = 99
    json.dump(meta, open(b2.file("bundle.json"), "w"))
    with pytest.raises(BundleError, match="schema 99, newer than this runtime"):
        Bundle(b2.path)
    with pytest.raises(BundleError, match="bundle.json is missing"):
        Bundle(str(tmp_path))


def test_engine_auto_and_tensorrt_guard(tmp_path, small_sim):
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    make_model_dir(str(tmp_path / "m"), small_sim, frames, n_classes=len(small_sim.class_names))
    b = export_bundle(str(tmp_path / "m"), str(tmp_path / "b"))
    eng = create_engine(b, "auto")
    assert eng.name == available_engines()[0]
    with pytest.raises(ValueError, match="Invalid value for 'engine'"):
        create_engine(b, "cuda")
    ok, why = tensorrt_available()
    if not ok:
        with pytest.raises(RuntimeError, match="TensorRT engine unavailable"):
            create_engine(b, "tensorrt")


def test_tensorrt_matches_numpy(tmp_path, small_sim):
    ok, why = tensorrt_available()
    if not ok:
        pytest.skip("TensorRT cannot run here: " + why)
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.training.data import build_frames

    frames = build_frames([small_sim], config_for_recording(small_sim)).features
    make_model_dir(str(tmp_path / "m"), small_sim, frames, n_classes=len(small_sim.class_names))
    b = export_bundle(str(tmp_path / "m"), str(tmp_path / "b"))
    from neurohand.decoder.engines.tensorrt_engine import build_engine

    build_engine(b, "fp32")  # engines are built only on request (neurohand build-engine), never on loading
    trt_e, np_e = create_engine(b, "tensorrt"), create_engine(b, "numpy")
    s1, s2 = trt_e.new_state(), np_e.new_state()
    for t in range(300):
        a, s1 = trt_e.step(s1, frames[t])
        c, s2 = np_e.step(s2, frames[t])
        assert np.max(np.abs(a.positions - c.positions)) < 1e-3
