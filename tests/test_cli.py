import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.decoder.session_file import read_recording


def test_simulate_and_inspect(tmp_path, capsys):
    out = str(tmp_path / "p.h5")
    assert main(["simulate", "--out", out, "--minutes", "0.05", "--channels", "4", "--fs-hz", "4000",
                 "--seed", "2"]) == 0
    rec = read_recording(out)
    assert rec.n_channels == 4 and rec.fs_hz == 4000.0 and rec.duration_s == pytest.approx(3.0)
    capsys.readouterr()
    assert main(["inspect", out, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["channels"] == 4 and summary["patient_id"] == "sim-2"


def test_simulate_days_writes_one_file_per_day(tmp_path):
    out = str(tmp_path / "p.h5")
    assert main(["simulate", "--out", out, "--minutes", "0.03", "--channels", "4", "--fs-hz", "4000",
                 "--days", "2"]) == 0
    d1, d2 = read_recording(str(tmp_path / "p_day1.h5")), read_recording(str(tmp_path / "p_day2.h5"))
    assert d1.metadata["simulator_day"] == "1" and d2.metadata["simulator_day"] == "2"
    assert not np.array_equal(d1.signals, d2.signals)


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x.h5"), "--fs-hz", "500", "--minutes", "0.01"]) == 2
    assert "Invalid value for '--fs-hz'" in capsys.readouterr().err  # the user's option, not the setting's name
    assert main(["import", "ninapro", str(tmp_path / "missing.mat"), "--out", str(tmp_path / "y.h5")]) == 2
    assert "No NinaPro file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import", "ninapro", "x.mat", "--out", "y.h5", "--reps", "a-b", "--bogus"])


def test_import_ninapro_cli(ninapro_file, tmp_path):
    out = str(tmp_path / "train.h5")
    assert main(["import", "ninapro", ninapro_file, "--out", out, "--reps", "1-7"]) == 0
    rec = read_recording(out)
    assert set(np.unique(rec.repetitions)) == set(range(1, 8)) and rec.has_positions


def test_import_3dc_cli(threedc_dir, tmp_path):
    out = str(tmp_path / "p2.h5")
    assert main(["import", "3dc", os.path.join(threedc_dir, "Participant2", "test"), "--out", out]) == 0
    assert read_recording(out).n_channels == 10


def test_import_csv_cli(tmp_path, rng):
    path = tmp_path / "a.csv"
    np.savetxt(path, np.column_stack([rng.normal(size=(100, 2)), np.arange(100) % 2]), delimiter=",")
    out = str(tmp_path / "a.h5")
    assert main(["import", "csv", str(path), "--out", out, "--fs-hz", "250", "--signal-columns", "0-1",
                 "--label-column", "2", "--class-names", "rest,fist"]) == 0
    rec = read_recording(out)
    assert rec.class_names == ("rest", "fist") and rec.fs_hz == 250.0


def test_bench_features_json_shape(capsys):
    assert main(["bench", "features", "--json", "--seconds", "0.2", "--runs", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "features"
    rows = {(r["channels"], r["fs_hz"]) for r in out["results"]}
    assert rows == {(16, 30000), (16, 10000)}
    for r in out["results"]:
        assert r["realtime_factor"] > 0 and r["samples_per_s"] > 0


@pytest.mark.slow
def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "--minutes", "2.4", "--fs-hz", "4000", "--channels", "6",
                 "--epochs", "2", "--hidden", "16", "--live-seconds", "2"]) == 0
    text = capsys.readouterr().out
    assert "signal quality" in text and "accepted: patient demo model v001" in text
    assert "online == offline" in text and "R2 mean (live path)" in text and "hand tracking" in text
    assert "front end online == offline: True; device engine == evaluation: True" in " ".join(text.split())
    store = tmp_path / "store" / "demo"
    for f in ("current.json", "versions/v001/bundle/bundle.json", "versions/v001/report/report.html",
              "versions/v001/model/model.json"):
        assert os.path.exists(store / f), f
    sessions = [f for f in os.listdir(store / "sessions") if f.endswith(".h5")]
    rec = read_recording(str(store / "sessions" / sessions[0]))
    assert rec.metadata["labels"] == "glove" and len(rec.cues) == 3 * 9  # 3 repetitions of the default cue protocol


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "neurohand")
    exe = exe if os.path.exists(exe) else shutil.which("neurohand")
    if exe is None:
        pytest.skip("the neurohand console script is not on PATH (project not pip-installed)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for cmd in ("demo", "simulate", "import", "inspect", "bench"):
        assert cmd in r.stdout


def test_a_serial_port_that_does_not_open_is_one_clear_line(tmp_path, capsys):
    assert main(["calibrate", "--patient", "P1", "--store", str(tmp_path), "--source", "serial:/dev/ttyNOPE9",
                 "--yes", "--no-tui"]) == 2
    err = capsys.readouterr().err
    assert "neurohand calibrate: error:" in err and "/dev/ttyNOPE9" in err and "Traceback" not in err


def test_version_is_the_package_version(capsys):
    import neurohand

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == "neurohand " + neurohand.__version__


def test_expected_failures_are_one_line_and_bugs_keep_their_traceback(tmp_path, capsys, monkeypatch):
    from neurohand.deploy import run_command as runtime

    # an expected failure: one line naming what was expected, exit 2
    assert main(["run", "--bundle", str(tmp_path), "--hand", "usb0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a model bundle" in err

    # a bug (here a KeyError from inside a handler) is not dressed up as bad input: its traceback shows
    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(runtime, "_run", broken)
    with pytest.raises(KeyError, match="missing"):
        main(["run", "--bundle", "b"])


def test_a_missing_optional_module_names_its_extra(capsys, monkeypatch):
    from neurohand.deploy import run_command as runtime

    def needs_pynput(args):
        raise ModuleNotFoundError("No module named 'pynput'", name="pynput")

    monkeypatch.setattr(runtime, "_run", needs_pynput)
    assert main(["run", "--bundle", "b"]) == 2
    assert "pip install 'neurohand[keys]'" in capsys.readouterr().err

    def needs_a_typo(args):
        raise ModuleNotFoundError("No module named 'neurohand.decoder.nothing'", name="neurohand.decoder.nothing")

    monkeypatch.setattr(runtime, "_run", needs_a_typo)
    with pytest.raises(ModuleNotFoundError):
        main(["run", "--bundle", "b"])


@pytest.mark.parametrize("spec, allowed, message", [
    ("usb0", ("serial", "none"), "Invalid value for '--hand': allowed 'serial:PORT', 'none', got 'usb0'"),
    ("serial:", ("serial", "none"), "allowed 'serial:PORT', 'none', got 'serial:'"),
    ("sim:x", ("sim", "lsl"), "allowed 'sim', 'lsl:NAME', got 'sim:x'"),
    ("replay:a.h5", ("sim", "serial", "lsl"), "allowed 'sim', 'serial:PORT', 'lsl:NAME', got 'replay:a.h5'"),
])
def test_one_parser_for_every_device_spec(spec, allowed, message):
    from neurohand.decoder.errors import InvalidValueError
    from neurohand.deploy.sources import parse_device_spec

    with pytest.raises(InvalidValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
        parse_device_spec("--hand", spec, allowed)
    assert parse_device_spec("--source", "serial:/dev/ttyUSB0:1", ("serial",)) == ("serial", "/dev/ttyUSB0:1")
    assert parse_device_spec("--source", "sim", ("sim",)) == ("sim", "")


@pytest.mark.parametrize("argv,expected", [
    (["run", "--bundle", "b", "--seconds", "-5"], "Invalid value for '--seconds': expected a finite number > 0"),
    (["run", "--bundle", "b", "--seconds", "nan"], "Invalid value for '--seconds'"),
    (["keys", "--profile", "p.toml", "--dry-run", "--seconds", "inf"], "Invalid value for '--seconds'"),
    (["sim-hand", "--seconds", "0"], "Invalid value for '--seconds'"),
    (["simulate", "--out", "x.h5", "--minutes", "1e9"], "Invalid value for '--minutes': 1e+09 min of 16 channels"),
    (["simulate", "--out", "x.h5", "--channels", "100000"], "Invalid value for '--channels': expected 1 to 512"),
    (["simulate", "--out", "x.h5", "--fs-hz", "1e300"], "Invalid value for '--fs-hz': expected 100 to 100000 Hz"),
    (["models", "--patient", "P1", "--store", "/nonexistent-store"], "Invalid value for '--store': an existing"),
    (["import", "csv", "t.csv", "--fs-hz", "1e300", "--signal-columns", "a,b", "--out", "x.h5"],
     "Invalid value for '--fs-hz': expected 1 to 1e+06 Hz, got 1e+300"),
    (["run", "--bundle", "B", "--source", "serial:/dev/null"], "Cannot open the interface on /dev/null"),
    (["run", "--bundle", "B", "--source", "serial:/dev/ttyNOPE"],
     "Cannot open the interface on /dev/ttyNOPE: no such port (is the device plugged in?"),
    (["run", "--bundle", "B", "--source", "sim", "--hand", "serial:/dev/ttyNOPE", "--allow-replay-into-hand"],
     "Cannot open the hand on /dev/ttyNOPE: no such port (is the device plugged in?"),
])
def test_nonsense_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, expected):
    """Issue 28.8: these exited 0 (a negative or NaN --seconds, a store that is not there) or died of MemoryError."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    if "B" in argv:
        from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
        from tests.test_export_engines import small_bundle

        argv = [small_bundle(str(tmp_path), simulate_recording(SimulatorConfig(minutes=0.05, n_channels=4,
                                                                               fs_hz=2000.0)))
                if a == "B" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Errno" not in err, err
    assert not os.path.exists(str(tmp_path / "x.h5"))


def test_every_option_of_every_command_has_help():
    import argparse

    from neurohand.cli import build_parser

    missing = []

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, words + [name])
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
                missing.append(" ".join(words + [action.option_strings[-1] if action.option_strings else action.dest]))

    walk(build_parser(), ["neurohand"])
    assert not missing, "options without help: " + ", ".join(missing)
