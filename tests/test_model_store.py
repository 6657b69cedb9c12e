import json

import pytest

from neurohand.calibration.model_store import ModelStore
from neurohand.decoder.bundle import BundleError
from neurohand.deploy.cli import main


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, small_sim):
    from tests.test_export_engines import small_bundle

    return small_bundle(str(tmp_path_factory.mktemp("store")), small_sim)


def test_accept_versions_and_rollback(tmp_path, bundle_dir, capsys):
    store = ModelStore(str(tmp_path), "P001")
    assert store.versions() == [] and store.current() is None
    with pytest.raises(FileNotFoundError, match="no accepted model yet"):
        store.bundle_path()
    v1 = store.accept(bundle_dir, metrics={"r2_mean": 0.61}, notes="day 1")
    v2 = store.accept(bundle_dir, metrics={"r2_mean": 0.66}, notes="day 2")
    assert (v1, v2) == ("v001", "v002") and store.current() == "v002"
    store.rollback("v001")
    assert store.current() == "v001" and store.versions() == ["v001", "v002"]  # nothing deleted
    with pytest.raises(ValueError, match="Invalid value for 'version'"):
        store.rollback("v009")
    capsys.readouterr()
    assert main(["models", "--patient", "P001", "--store", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in out["versions"]] == ["v001", "v002"]
    assert [r["current"] for r in out["versions"]] == [True, False]
    assert main(["models", "--patient", "P001", "--store", str(tmp_path), "--rollback", "v002"]) == 0
    assert store.current() == "v002"


def test_accept_refuses_a_corrupted_bundle_and_bad_patient_ids(tmp_path, bundle_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundle_dir, bad)
    (bad / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="corrupted"):
        ModelStore(str(tmp_path / "s"), "P1").accept(str(bad))
    with pytest.raises(ValueError, match="Invalid value for 'patient'"):
        ModelStore(str(tmp_path), "../etc")


def test_the_trained_model_is_kept_for_recalibration(tmp_path, bundle_dir):
    import os

    store = ModelStore(str(tmp_path), "P002")
    v1 = store.accept(bundle_dir)  # an imported bundle without its training folder
    with pytest.raises(FileNotFoundError, match="no trained model to recalibrate from"):
        store.model_path(v1)
    model_dir = os.path.join(os.path.dirname(bundle_dir), "m")
    v2 = store.accept(bundle_dir, model_dir=model_dir, sessions=["/data/s.h5"])
    assert os.path.exists(os.path.join(store.model_path(), "model.safetensors")) and store.current() == v2
    assert store.meta(v2)["sessions"] == ["/data/s.h5"]
    assert os.path.isdir(store.sessions_dir()) and store.sessions_dir().startswith(store.root)
