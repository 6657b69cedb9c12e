import json
import os

import pytest

from neurohand.calibration.model_store import ModelStore
from neurohand.cli import main
from neurohand.decoder.bundle import BundleError
from neurohand.decoder.errors import NeurohandError
from neurohand.deploy.store_paths import resolve_bundle


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
    with pytest.raises(ValueError, match="Invalid value for '--rollback': allowed 'v001', 'v002', got 'v009'"):
        store.rollback("v009")
    capsys.readouterr()
    assert main(["models", "--patient", "P001", "--store", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in out["versions"]] == ["v001", "v002"]
    assert [r["current"] for r in out["versions"]] == [True, False]
    assert main(["models", "--patient", "P001", "--store", str(tmp_path), "--rollback", "v002"]) == 0
    assert store.current() == "v002"


def test_models_is_a_table_with_metrics_sessions_and_bundle_paths(tmp_path, bundle_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ModelStore(str(tmp_path), "P001")
    store.accept(bundle_dir, metrics={"test_repetition_r2_mean": 0.812, "test_repetition_accuracy": 0.9,
                                      "wiener_r2_mean": 0.75, "kalman_r2_mean": 0.7},
                 sessions=[str(tmp_path / "20261201-101500.h5")], notes="calibrated from scratch", decoder="gru",
                 verdict="ready: finger R² 0.81, class accuracy 0.90")
    store.accept(bundle_dir, metrics={"test_repetition_r2_mean": 0.85}, sessions=[str(tmp_path / "day2-recal.h5")],
                 notes="recalibrated from v001")
    store.rollback("v001")
    capsys.readouterr()
    assert main(["models", "--patient", "P001", "--store", "."]) == 0
    table = capsys.readouterr().out
    lines = [ln for ln in table.splitlines() if " v00" in ln]
    assert len(lines) == 2 and "*" in lines[0] and "*" not in lines[1]  # the current version is marked
    for text in ("finger R²", "class accuracy", "best classic R²", "source session", "bundle", "0.81", "90 %",
                 "0.75", "20261201-101500.h5", "day2-recal.h5", "calibrated from scratch"):
        assert text in table, text
    assert os.path.join(".", "P001", "versions", "v002", "bundle") in table  # as typed, a path that works from here
    assert main(["models", "--patient", "P001", "--store", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["current"] == "v001"
    v1, v2 = out["versions"]
    assert v1["bundle_path"] == store.bundle_path("v001") and v1["current"] and not v2["current"]
    assert (v1["finger_r2"], v1["class_accuracy"], v1["best_classic"]) == (0.812, 0.9, 0.75)
    assert v1["decoder"] == "gru" and v1["verdict"].startswith("ready:")
    assert v2["sessions"] == [str(tmp_path / "day2-recal.h5")] and v2["class_accuracy"] is None


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


@pytest.mark.parametrize("patient", ["..", ".", ".hidden", "a/b", "../P001", "", "x" * 65, "P01\n"])
def test_patient_ids_cannot_escape_the_store(tmp_path, patient, capsys):
    """Issue 19.10: '--patient ..' made a rollback rewrite the store's parent's current.json."""
    store = tmp_path / "store"
    store.mkdir()
    assert main(["models", "--patient", patient, "--store", str(store), "--rollback", "v001"]) == 2
    assert "Invalid value for 'patient'" in capsys.readouterr().err
    assert not (tmp_path / "current.json").exists() and not (store / "current.json").exists()


def test_a_patient_folder_linked_out_of_the_store_is_refused(tmp_path):
    import os

    (tmp_path / "store").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "store" / "P9"))
    with pytest.raises(ValueError, match="Invalid value for 'path'"):
        ModelStore(str(tmp_path / "store"), "P9")


@pytest.mark.parametrize("link", ["bundle", "version", "current.json", "patient"])
def test_nothing_linked_out_of_the_store_is_decoded(tmp_path, bundle_dir, link, capsys):
    """Issue 28.3: a bundle, a version, current.json or the patient folder linked elsewhere was decoded by
    ``run --bundle STORE/P01/current.json`` (the service's own path) and listed by ``models``."""
    import shutil

    store_dir = tmp_path / "store"
    ModelStore(str(store_dir), "P01").accept(bundle_dir)
    elsewhere = tmp_path / "elsewhere"
    target = {"bundle": store_dir / "P01" / "versions" / "v001" / "bundle",
              "version": store_dir / "P01" / "versions" / "v001",
              "current.json": store_dir / "P01" / "current.json", "patient": store_dir / "P01"}[link]
    shutil.move(str(target), str(elsewhere))  # a same-looking copy outside the store
    os.symlink(str(elsewhere), str(target))
    with pytest.raises(NeurohandError, match="outside the model store .* or through a link"):
        resolve_bundle(str(store_dir / "P01" / "current.json"))
    assert main(["run", "--bundle", str(store_dir / "P01" / "current.json"), "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("through a link" in err or "Invalid value for 'path'" in err)
    assert main(["models", "--patient", "P01", "--store", str(store_dir)]) == 2  # listed no more either
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("pointer", ['{"version": "v999"}', '{"version": "../../x"}', '{"v": 1}', "[", "[]"])
def test_a_broken_current_pointer_is_an_error(tmp_path, bundle_dir, pointer, capsys):
    """Issue 19.12: current.json pointing at v999 listed with exit 0 and no current version."""
    store = ModelStore(str(tmp_path), "P003")
    store.accept(bundle_dir)
    (tmp_path / "P003" / "current.json").write_text(pointer)
    capsys.readouterr()
    assert main(["models", "--patient", "P003", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "current.json" in err and "--rollback VERSION" in err and err.count("\n") == 1
    with pytest.raises(NeurohandError, match="current.json"):
        store.bundle_path()
    # the runtime's --bundle reads the pointer with the same reader: the same one-line error and the same way out
    with pytest.raises(NeurohandError) as runtime_error:
        resolve_bundle(str(tmp_path / "P003"))
    assert str(runtime_error.value) in err
    # the way out still works: roll back to an existing version
    assert main(["models", "--patient", "P003", "--store", str(tmp_path), "--rollback", "v001"]) == 0
    assert store.current() == "v001"


def test_one_session_per_patient_and_the_second_names_the_first(tmp_path, capsys):
    """Issue 28.7: two sessions of one patient at once: one died with "Refusing to overwrite existing session file",
    or both finished and the last silently became current."""
    from neurohand.calibration.model_store import PatientBusy

    store = ModelStore(str(tmp_path), "P1")
    with store.session_lock():
        with pytest.raises(PatientBusy, match=r"Another session of patient 'P1' is running \(pid {}, lock ".format(
                os.getpid())):
            with ModelStore(str(tmp_path), "P1").session_lock():
                pass
        assert main(["calibrate", "--patient", "P1", "--store", str(tmp_path), "--yes", "--no-tui", "--fast"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Another session of patient 'P1' is running" in err
        sessions = tmp_path / "P1" / "sessions"
        assert not sessions.exists() or not os.listdir(str(sessions))  # nothing recorded
        with ModelStore(str(tmp_path), "P2").session_lock():  # another patient is not held up
            pass
    with store.session_lock():  # released when the session ends
        pass
