"""Issue 19.5 and 19.8: a bundle whose any byte changed, or whose contract does not describe its graph, never loads.

The attacks are the red team's: real bundles exported here, edited on disk, loaded through the real CLI.
"""

import json
import os
import shutil

import numpy as np
import onnx
import pytest

from neurohand.cli import main
from neurohand.decoder.bundle import Bundle, BundleError, sha256_of
from neurohand.decoder.stream import StreamDecoder
from tests.test_export_engines import forge, small_bundle


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, small_sim):
    return small_bundle(str(tmp_path_factory.mktemp("sealed")), small_sim)


@pytest.fixture
def bundle(tmp_path, sealed):
    shutil.copytree(sealed, str(tmp_path / "b"))
    return str(tmp_path / "b")


def load_via_cli(path, capsys, *extra):
    """``neurohand keys --check --bundle PATH`` loads the bundle; returns (exit code, stderr)."""
    profile = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "profiles",
                           "fps.toml")
    capsys.readouterr()
    rc = main(["keys", "--profile", profile, "--check", "--bundle", path] + list(extra))
    err = capsys.readouterr().err
    return rc, err


def edit_json(path, edit):
    meta = json.load(open(os.path.join(path, "bundle.json")))
    meta = edit(meta) or meta
    json.dump(meta, open(os.path.join(path, "bundle.json"), "w"))


def test_an_edited_filter_in_bundle_json_is_refused(bundle, capsys):
    """The red team's attack: the first filter coefficient x10 in bundle.json was accepted and moved every command."""
    Bundle(bundle)

    def louder(meta):
        meta["contract"]["filter_sos"][0][0] *= 10

    edit_json(bundle, louder)
    rc, err = load_via_cli(bundle, capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "bundle.json's contract differs from the one sealed in model.onnx (in filter_sos)" in err
    assert "re-export the bundle" in err


@pytest.mark.parametrize("name", ["bundle.json", "model.onnx", "weights.npz"])
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_any_changed_byte_of_any_file_is_refused(bundle, name, where):
    p = os.path.join(bundle, name)
    data = bytearray(open(p, "rb").read())
    data[int(len(data) * where)] ^= 0x01
    open(p, "wb").write(bytes(data))
    with pytest.raises(BundleError):
        Bundle(bundle)


def test_a_swapped_weights_file_with_its_hash_recomputed_is_refused(bundle, tmp_path):
    with np.load(os.path.join(bundle, "weights.npz")) as z:
        w = {k: z[k] for k in z.files}
    w["class_bias"] = w["class_bias"] + 5.0
    np.savez(os.path.join(bundle, "weights.npz"), **w)
    edit_json(bundle, lambda m: m["files"].update({"weights.npz": sha256_of(os.path.join(bundle, "weights.npz"))}))
    with pytest.raises(BundleError, match="weights.npz .* is not the one sealed in model.onnx"):
        Bundle(bundle)


@pytest.mark.parametrize("engine", ["auto", "onnxruntime", "numpy"])
def test_a_foreign_model_onnx_with_its_hash_recomputed_is_one_error(bundle, tmp_path, capsys, engine, small_sim):
    """A random model.onnx with a recomputed hash made 'auto' decode with numpy silently and onnxruntime crash."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["features"], ["positions"])], "g",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 5])],
                              [helper.make_tensor_value_info("positions", TensorProto.FLOAT, [1, 5])])
    onnx.save(helper.make_model(graph), os.path.join(bundle, "model.onnx"))
    edit_json(bundle, lambda m: m["files"].update({"model.onnx": sha256_of(os.path.join(bundle, "model.onnx"))}))
    with pytest.raises(BundleError, match="model.onnx carries no neurohand_contract"):
        Bundle(bundle)
    from neurohand.decoder.session_file import write_recording

    write_recording(small_sim, str(tmp_path / "s.h5"))
    for data in (helper.make_model(graph).SerializeToString(), os.urandom(4096)):
        open(os.path.join(bundle, "model.onnx"), "wb").write(data)
        edit_json(bundle, lambda m: m["files"].update({"model.onnx": sha256_of(os.path.join(bundle, "model.onnx"))}))
        capsys.readouterr()
        rc = main(["run", "--bundle", bundle, "--engine", engine, "--source", "replay:" + str(tmp_path / "s.h5"),
                   "--seconds", "0.1", "--fast"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "model.onnx" in err and "re-export" in err


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["model"].update(hidden=999, state_shape=[1, 1, 999]),
     r"the graph's input 'h' has shape \(1, 1, 8\) but the contract implies \(1, 1, 999\)"),
    (lambda c: c["model"].update(layers=0), r"model.layers must be an integer >= 1, got 0"),
    (lambda c: c["model"].update(cell="lstm"), r"the graph's inputs are \['features', 'h'\] but the contract's LSTM"),
    (lambda c: c["model"].update(n_features=c["model"]["n_features"] + 1),
     r"the graph's input 'features' has shape \(1, \d+\) but the contract implies"),
    (lambda c: c.update(n_channels=4, channel_names=c["channel_names"][:4]),
     r"4 channels with the contract's feature configuration give \d+ features per frame but the model reads"),
    (lambda c: c.update(class_names=c["class_names"][:-1]), r"classes but class_names is"),
    (lambda c: c["model"].update(hidden="8"), r"model.hidden must be an integer"),
    (lambda c: c.update(post={"smoothing_ms": 5000.0}),
     r"Invalid value for 'post.smoothing_ms': expected 0 to 1000 ms, got 5000.0"),
    (lambda c: c.update(post={"smoothing_ms": 30.0, "max_speed_per_s": 100.0}),
     r"the contract's post must be an object with at most 'smoothing_ms'"),
])
def test_a_contract_that_does_not_describe_the_graph_is_refused_on_loading(bundle, capsys, edit, match):
    """Forged past the seal (every hash recomputed): hidden 999 once faulted on every frame with exit 0."""
    forge(bundle, edit)
    with pytest.raises(BundleError, match="inconsistent, refused before decoding: .*" + match):
        Bundle(bundle)
    rc, err = load_via_cli(bundle, capsys)
    assert rc == 2 and err.count("\n") == 1


def test_weights_that_do_not_fit_or_are_not_finite_are_refused(bundle):
    with np.load(os.path.join(bundle, "weights.npz")) as z:
        w = {k: z[k] for k in z.files}
    forge(bundle, lambda c: None, weights=dict(w, class_weight=w["class_weight"][:, :-1]))
    with pytest.raises(BundleError, match="weights.npz's 'class_weight' has shape"):
        Bundle(bundle)
    bad = dict(w)
    bad["rnn_weight_hh_l0"] = np.full_like(w["rnn_weight_hh_l0"], np.nan)
    forge(bundle, lambda c: None, weights=bad)
    with pytest.raises(BundleError, match="non-finite values .* in rnn_weight_hh_l0: this model cannot decode"):
        Bundle(bundle)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_bundles_from_before_the_seal_are_refused_with_re_export(bundle, version):
    edit_json(bundle, lambda m: m.update(schema_version=version))
    with pytest.raises(BundleError, match="uses bundle schema {}, which does not seal .* re-export it".format(version)):
        Bundle(bundle)


@pytest.mark.parametrize("text, match", [
    ("[1, 2]", "bundle.json must hold an object"),
    ('{"schema_version": 4, "contract": [], "files": {}}', "bundle.json is missing 'contract'"),
    ('{"schema_version": 4, "contract": {}, "files": {"model.onnx": "x"}}', "'files' must hash exactly"),
    ('{"schema_version": true}', "no integer 'schema_version'"),
])
def test_a_malformed_bundle_json_is_one_line(bundle, capsys, text, match):
    open(os.path.join(bundle, "bundle.json"), "w").write(text)
    rc, err = load_via_cli(bundle, capsys)
    assert rc == 2 and err.count("\n") == 1 and match in err


def test_the_contracts_smoothing_is_what_the_device_applies_and_the_velocity_limit_stays(sealed, small_sim, tmp_path):
    """Issue 21: the smoothing chosen at export travels in the sealed contract; the velocity limit is the runtime's."""
    from neurohand.decoder.latency_defaults import DEFAULT_SMOOTHING_MS
    from neurohand.decoder.postprocess import PostConfig
    from neurohand.training.export import export_bundle

    model_dir = os.path.join(os.path.dirname(sealed), "m")
    default = Bundle(sealed)
    assert default.contract["post"] == {"smoothing_ms": 0.0} == {"smoothing_ms": DEFAULT_SMOOTHING_MS}
    assert default.post_config() == PostConfig(smoothing_ms=0.0)
    smooth = export_bundle(model_dir, str(tmp_path / "smooth"), smoothing_ms=30.0)
    assert smooth.post_config() == PostConfig(smoothing_ms=30.0) == PostConfig()  # a bundle without post: 30 ms
    assert smooth.post_config().max_speed_per_s == PostConfig().max_speed_per_s
    x = small_sim.signals[:4000]
    a, b = StreamDecoder(default, engine="numpy"), StreamDecoder(smooth, engine="numpy")
    ca = a.process(a.new_stream(), x).commands
    cb = b.process(b.new_stream(), x).commands
    assert a.post.alpha == 1.0 and b.post.alpha < 1.0 and not np.allclose(ca, cb)
    for bad in (-1.0, 1500.0, float("nan")):
        with pytest.raises(ValueError, match="Invalid value for 'smoothing_ms'"):
            export_bundle(model_dir, str(tmp_path / "bad"), smoothing_ms=bad)
    assert not os.path.exists(str(tmp_path / "bad"))  # refused before anything is written
