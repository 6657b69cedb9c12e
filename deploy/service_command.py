"""``neurohand service install``: the systemd unit that starts the runtime at boot, written for this installation.

The unit installed with neurohand (``deploy/neurohand.service``) is the template: its ``ExecStart`` names the
runtime's command, the patient's current bundle in the model store, the udev names of the interface and the hand,
the trusted keys and the log. ``service install`` writes it with the ``neurohand`` of the environment it runs from
(a venv on the Jetson) and the patient's paths, checks what the runtime will need at start, and says what is left to
do (``systemctl`` needs root, and is the operator's step).
"""

import os
import re
import shlex
import sys
from typing import List, Optional

from neurohand.decoder.errors import InvalidValueError

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "neurohand.service")
UNIT_PATH = "/etc/systemd/system/neurohand.service"
_PATIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def register(sub) -> None:
    """Add ``neurohand service``."""
    p = sub.add_parser("service", help="install the systemd unit that starts the runtime at boot",
                       description="Write the systemd unit of the prosthesis runtime for this installation: the "
                       "neurohand of this environment, the patient's current bundle, the ports of the interface and "
                       "the hand, the trusted keys and the log.")
    ssub = p.add_subparsers(dest="action", metavar="ACTION")
    ssub.required = True
    i = ssub.add_parser("install", help="write the unit (then: systemctl daemon-reload, enable --now)")
    i.add_argument("--patient", required=True, help="the patient's id in the model store")
    i.add_argument("--store", default="/var/lib/neurohand/store", help="model store (default /var/lib/neurohand/store)")
    i.add_argument("--interface", default="/dev/neurohand-interface",
                   help="the neural interface's port (default /dev/neurohand-interface, a udev name)")
    i.add_argument("--hand", default="/dev/neurohand-hand", help="the hand's port (default /dev/neurohand-hand)")
    i.add_argument("--trusted-keys", default="/etc/neurohand/trusted-keys",
                   help="folder of the public keys whose signed bundles it decodes (default "
                   "/etc/neurohand/trusted-keys)")
    i.add_argument("--log", default="/var/log/neurohand/run.jsonl", help="the runtime's log (JSON lines)")
    i.add_argument("--user", default="neurohand", help="the account it runs as (default neurohand)")
    i.add_argument("--out", default=UNIT_PATH, help="where to write the unit (default {})".format(UNIT_PATH))
    i.add_argument("--print", dest="print_only", action="store_true", help="print the unit instead of writing it")
    i.set_defaults(func=_install)


def runtime_command() -> List[str]:
    """Return how to start this installation's ``neurohand``: its console script beside this Python, if there."""
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "neurohand")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [os.path.abspath(sys.executable), "-m", "neurohand"]


def unit_text(*, patient: str, store: str, interface: str, hand: str, trusted_keys: str, log: str, user: str,
              command: Optional[List[str]] = None) -> str:
    """Return the unit: the template with this installation's command and paths in ``ExecStart``."""
    if not _PATIENT.match(patient):
        raise InvalidValueError("Invalid value for '--patient': letters, digits, '_', '.' or '-', got {!r}".format(
            patient))
    for flag, path in (("--store", store), ("--trusted-keys", trusted_keys), ("--log", log),
                       ("--interface", interface), ("--hand", hand)):
        if not os.path.isabs(path):
            raise InvalidValueError("Invalid value for '{}': an absolute path (systemd starts the unit from /), got "
                                    "{!r}".format(flag, path))
    with open(TEMPLATE, encoding="utf-8") as f:
        text = f.read()
    args = (command or runtime_command()) + [
        "run", "--bundle", os.path.join(store, patient, "current.json"), "--source", "serial:" + interface,
        "--hand", "serial:" + hand, "--engine", "auto", "--trusted-keys", trusted_keys, "--log", log,
        "--log-max-mb", "100"]
    lines = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            line = "ExecStart=" + " ".join(shlex.quote(a) for a in args)
        elif line.startswith("User="):
            line = "User=" + user
        elif line.startswith(("After=", "Wants=")):  # start once both devices are there (udev names them)
            line = line.split("=", 1)[0] + "=" + " ".join(device_unit(p) for p in (interface, hand))
        elif line.startswith(("WorkingDirectory=", "# Install:", "# id, and the ports")):
            continue  # the runtime needs no working directory; the rest is the template's own instructions
        lines.append(line)
    text = "\n".join(lines) + "\n"
    return text.replace("Replace 'patient' with the patient's", "Written by 'neurohand service install'.")


def device_unit(path: str) -> str:
    """Return systemd's device unit of a device path (``systemd-escape -p --suffix=device``)."""
    parts = [p for p in path.split("/") if p]
    out = []
    for part in parts:
        out.append("".join(c if (ord(c) < 128 and (c.isalnum() or c in ":_.")) and not (i == 0 and c == ".")
                           else "\\x{:02x}".format(ord(c)) for i, c in enumerate(part)))
    return "-".join(out) + ".device"


def readiness(*, patient: str, store: str, trusted_keys: str) -> List[str]:
    """Return what the runtime will miss at start, one line each (it retries every 5 s meanwhile)."""
    notes = []
    current = os.path.join(store, patient, "current.json")
    if not os.path.isfile(current):
        notes.append("{} does not exist yet: accept a model for patient {} (neurohand calibrate) or copy the "
                     "store there".format(current, patient))
    keys = [f for f in os.listdir(trusted_keys) if f.endswith(".pub")] if os.path.isdir(trusted_keys) else []
    if not keys:
        notes.append("{} holds no public key (.pub): every bundle is refused until the clinic's key is there "
                     "(sudo mkdir -p {} && sudo cp clinic.pub {}/)".format(trusted_keys, trusted_keys, trusted_keys))
    return notes


def _install(args) -> int:
    text = unit_text(patient=args.patient, store=args.store, interface=args.interface, hand=args.hand,
                     trusted_keys=args.trusted_keys, log=args.log, user=args.user)
    if args.print_only:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.out + ".partial", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(args.out + ".partial", args.out)
    except PermissionError:
        raise InvalidValueError("cannot write {}: permission denied; run it with sudo, or --print the unit".format(
            args.out)) from None
    print("wrote {} (ExecStart: {})".format(args.out, text.split("ExecStart=", 1)[1].split("\n", 1)[0]))
    for note in readiness(patient=args.patient, store=args.store, trusted_keys=args.trusted_keys):
        print("note: " + note)
    name = os.path.basename(args.out)
    print("then: sudo systemctl daemon-reload && sudo systemctl enable --now {} && journalctl -u {} -f".format(
        name, name.rsplit(".", 1)[0]))
    return 0
