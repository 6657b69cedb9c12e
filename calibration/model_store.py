"""The patient's model history: every accepted bundle is a new version; ``current`` points at one; roll back at will.

Layout::

    STORE/PATIENT_ID/
        current.json              {"version": "v003"}, replaced atomically
        versions/v001/bundle/     the exported bundle (validated on accept)
        versions/v001/meta.json   accepted_at, metrics, notes, source sessions
        versions/v001/report/     the evaluation report, when given
        versions/v001/model/      the trained model (tensors + JSON), what recalibration starts from
        sessions/*.h5             every calibration session recorded for the patient

Nothing is ever deleted by accepting or rolling back.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
from typing import Any, Dict, Iterator, List, Optional

from neurohand.decoder.bundle import Bundle
from neurohand.decoder.errors import NeurohandError
from neurohand.decoder.validation import invalid_value
from neurohand.deploy.store_paths import VERSION_PATTERN, check_no_link, read_current, resolves_below

# a letter, digit or '_' first: never '.', '..' or a hidden folder; no separators anywhere
_PATIENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")  # matched from the start: the whole id, no newline


class PatientBusy(NeurohandError):
    """Another session of the same patient holds the patient's lock."""


class ModelStore:
    """One patient's versions in ``store_dir``."""

    def __init__(self, store_dir: str, patient_id: str) -> None:
        if not isinstance(patient_id, str) or not _PATIENT.match(patient_id):
            raise invalid_value("patient", "expected 1-64 letters, digits, '_', '-' or '.', starting with a letter, "
                                "digit or '_', got {!r}".format(patient_id))
        self.store_dir = os.path.abspath(store_dir)
        self.root = self._inside(self.store_dir, patient_id)
        self.patient_id = patient_id

    @staticmethod
    def _inside(base: str, *parts: str) -> str:
        """``base/parts`` after checking it resolves inside ``base`` (no '..', no symbolic link below ``base``)."""
        path = os.path.join(base, *parts)
        real = os.path.realpath(path)
        if not resolves_below(base, path) or real == os.path.realpath(base):
            raise invalid_value("path", "a folder inside {!r}, got {!r} (resolves to {!r})".format(base, path, real))
        return path

    def _version_dir(self, version: str) -> str:
        if not isinstance(version, str) or not VERSION_PATTERN.match(version):
            raise invalid_value("version", "'v' and 3-9 digits (e.g. 'v001'), got {!r}".format(version))
        return self._inside(self.root, "versions", version)

    @contextlib.contextmanager
    def session_lock(self) -> Iterator[None]:
        """Hold the patient's lock for a session: one session per patient at a time, whatever the process.

        Raises
        ------
        PatientBusy
            Another process holds it; the message names its pid.
        """
        os.makedirs(self.root, exist_ok=True)
        path = self._inside(self.root, ".session.lock")
        f = open(path, "a+")
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise PatientBusy("Another session of patient {!r} is running (pid {}, lock {}); wait for it to end or "
                                  "stop it, then start this one again".format(self.patient_id, holder, path)) from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            f.close()  # releases the lock (a crashed process's lock goes with it)

    def versions(self) -> List[str]:
        """Version names, oldest first."""
        d = os.path.join(self.root, "versions")
        if not os.path.isdir(d):
            return []
        return sorted((v for v in os.listdir(d) if VERSION_PATTERN.match(v)), key=lambda v: int(v[1:]))

    def current(self) -> Optional[str]:
        """Return the current version, or None; :class:`BrokenStoreError` if ``current.json`` is broken or a link."""
        if os.path.lexists(os.path.join(self.root, "current.json")):
            check_no_link(self.store_dir, os.path.join(self.root, "current.json"))
        return read_current(self.root)

    def bundle_path(self, version: Optional[str] = None) -> str:
        """Bundle folder of ``version`` (default: current)."""
        v = version or self.current()
        if v is None:
            raise FileNotFoundError("Patient {!r} has no accepted model yet; run 'neurohand calibrate'".format(
                self.patient_id))
        return check_no_link(self.store_dir, os.path.join(self._version_dir(v), "bundle"))

    def model_path(self, version: Optional[str] = None) -> str:
        """Trained-model folder of ``version`` (default: current), the starting point of a recalibration."""
        path = os.path.join(os.path.dirname(self.bundle_path(version)), "model")
        if not os.path.isdir(path):
            raise FileNotFoundError("Version {} of patient {!r} has no trained model to recalibrate from; calibrate "
                                    "from scratch".format(version or self.current(), self.patient_id))
        return path

    def sessions_dir(self) -> str:
        """Where the patient's calibration sessions are recorded (created)."""
        d = os.path.join(self.root, "sessions")
        os.makedirs(d, exist_ok=True)
        return d

    def meta(self, version: str) -> Dict[str, Any]:
        """Return what was recorded when ``version`` was accepted."""
        with open(os.path.join(self._version_dir(version), "meta.json")) as f:
            return json.load(f)

    def accept(self, bundle_dir: str, *, metrics: Optional[Dict[str, Any]] = None, report_dir: Optional[str] = None,
               notes: str = "", sessions: Optional[List[str]] = None, model_dir: Optional[str] = None,
               decoder: Optional[str] = None, verdict: Optional[str] = None) -> str:
        """Copy a validated bundle in as the next version and make it current; returns the version name.

        ``decoder`` names the decoder the bundle runs (``gru``), ``verdict`` the report's verdict line.
        """
        Bundle(bundle_dir)  # refuse a corrupted bundle before it becomes a patient's model
        existing = self.versions()
        version = "v{:03d}".format(int(existing[-1][1:]) + 1 if existing else 1)
        vdir = self._version_dir(version)
        tmp = vdir + ".partial"
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        shutil.copytree(bundle_dir, os.path.join(tmp, "bundle"))
        if model_dir:
            shutil.copytree(model_dir, os.path.join(tmp, "model"))
        if report_dir and os.path.isdir(report_dir):
            shutil.copytree(report_dir, os.path.join(tmp, "report"))
        meta = {"version": version, "patient_id": self.patient_id,
                "accepted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "metrics": metrics or {}, "notes": notes, "sessions": sessions or [], "decoder": decoder,
                "verdict": verdict}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(tmp, vdir)
        self._set_current(version)
        return version

    def listing(self) -> List[Dict[str, Any]]:
        """Every version, oldest first, as ``neurohand models`` shows it.

        Returns
        -------
        list of dict
            ``{"version", "current", "accepted_at", "decoder", "finger_r2", "class_accuracy", "best_classic",
            "verdict", "notes", "sessions", "bundle_path", "report", "metrics"}``; ``finger_r2`` and
            ``class_accuracy`` are the deployed decoder's on its held-out repetition (None where not decoded),
            ``best_classic`` the best classic decoder's finger R^2 on the same data.
        """
        current = self.current()
        rows = []
        for v in self.versions():
            meta = self.meta(v)
            m = meta.get("metrics", {})
            classic = [m[k] for k in ("wiener_r2_mean", "kalman_r2_mean") if isinstance(m.get(k), (int, float))]
            report = os.path.join(self._version_dir(v), "report", "report.html")
            rows.append({"version": v, "current": v == current, "accepted_at": meta.get("accepted_at", ""),
                         "decoder": meta.get("decoder"), "finger_r2": m.get("test_repetition_r2_mean"),
                         "class_accuracy": m.get("test_repetition_accuracy",
                                                 m.get("{}_accuracy".format(meta.get("decoder") or "gru"))),
                         "best_classic": max(classic) if classic else None, "verdict": meta.get("verdict"),
                         "notes": meta.get("notes", ""), "sessions": meta.get("sessions", []),
                         "bundle_path": self.bundle_path(v), "report": report if os.path.exists(report) else None,
                         "metrics": m})
        return rows

    def rollback(self, version: str) -> None:
        """Make an earlier (or any existing) version current."""
        if version not in self.versions():  # named as the clinician gives it: neurohand models --rollback VERSION
            raise invalid_value("--rollback", "allowed {}, got {!r}".format(
                ", ".join(repr(v) for v in self.versions()) or "(none: patient {} has no model yet)".format(
                    self.patient_id), version))
        Bundle(self.bundle_path(version))
        self._set_current(version)

    def check(self) -> None:
        """Raise :class:`BrokenStoreError` when ``current.json`` is unreadable or points at a missing version."""
        self.current()

    def _set_current(self, version: str) -> None:
        self._version_dir(version)
        os.makedirs(self.root, exist_ok=True)
        tmp = os.path.join(self.root, "current.json.partial")
        with open(tmp, "w") as f:
            json.dump({"version": version}, f)
        os.replace(tmp, os.path.join(self.root, "current.json"))
