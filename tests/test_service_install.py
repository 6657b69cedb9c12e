"""``neurohand service install`` writes the systemd unit for this installation, and systemd accepts it."""

import os
import shlex
import shutil
import subprocess

import pytest

from neurohand.cli import build_parser, main
from neurohand.deploy.service_command import device_unit, runtime_command


def install(tmp_path, *extra):
    out = str(tmp_path / "neurohand.service")
    argv = ["service", "install", "--patient", "P7", "--store", str(tmp_path / "store"), "--trusted-keys",
            str(tmp_path / "keys"), "--out", out] + list(extra)
    return main(argv), out


def test_the_unit_starts_this_installations_runtime_on_the_patients_current_bundle(tmp_path, capsys):
    rc, out = install(tmp_path, "--interface", "/dev/ttyUSB3", "--hand", "/dev/neurohand-hand")
    assert rc == 0
    printed = capsys.readouterr().out
    text = open(out).read()
    (exec_line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(exec_line[len("ExecStart="):])
    assert argv[:len(runtime_command())] == runtime_command() and os.access(argv[0], os.X_OK)
    args = build_parser(argv[len(runtime_command()):]).parse_args(argv[len(runtime_command()):])
    assert args.command == "run" and args.bundle == str(tmp_path / "store" / "P7" / "current.json")
    assert (args.source, args.hand) == ("serial:/dev/ttyUSB3", "serial:/dev/neurohand-hand")
    assert args.trusted_keys == str(tmp_path / "keys") and args.log == "/var/log/neurohand/run.jsonl"
    assert not args.allow_replay_into_hand and not args.fast  # the live interface only
    assert "After=dev-ttyUSB3.device dev-neurohand\\x2dhand.device" in text
    assert "KillSignal=SIGTERM" in text and "Restart=always" in text and "User=neurohand" in text
    # what the runtime would miss at start is said, with the step left to the operator
    assert "note: {} does not exist yet".format(tmp_path / "store" / "P7" / "current.json") in printed
    assert "holds no public key (.pub)" in printed
    assert "then: sudo systemctl daemon-reload && sudo systemctl enable --now neurohand.service" in printed


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_unit(tmp_path, capsys):
    rc, out = install(tmp_path)
    assert rc == 0
    r = subprocess.run(["systemd-analyze", "verify", out], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "neurohand.service" not in r.stderr, r.stderr


def test_device_units_are_named_as_systemd_escape_names_them():
    cases = ["/dev/neurohand-interface", "/dev/ttyUSB0", "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0"]
    expected = ["dev-neurohand\\x2dinterface.device", "dev-ttyUSB0.device",
                "dev-serial-by\\x2did-usb\\x2dFTDI_FT232R\\x2dif00\\x2dport0.device"]
    assert [device_unit(c) for c in cases] == expected
    if shutil.which("systemd-escape"):
        for c, e in zip(cases, expected):
            got = subprocess.run(["systemd-escape", "-p", "--suffix=device", c], capture_output=True, text=True)
            assert got.stdout.strip() == e


@pytest.mark.parametrize("argv, message", [
    (["--patient", "a b"], "Invalid value for '--patient': letters, digits, '_', '.' or '-', got 'a b'"),
    (["--patient", "P1", "--store", "store"], "Invalid value for '--store': an absolute path"),
    (["--patient", "P1", "--out", "/proc/nope/neurohand.service"], "No such file or directory"),
])
def test_what_cannot_be_installed_is_one_line(argv, message, capsys):
    assert main(["service", "install"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
