"""Where the runtime finds the patient's current bundle, read from the model store's own files (torch-free).

The model store (``calibration/model_store.py``) writes ``STORE/PATIENT/current.json`` (``{"version": "v003"}``,
replaced atomically) and ``STORE/PATIENT/versions/v003/bundle/``. ``--bundle`` takes a bundle folder, that
``current.json``, or the patient folder that holds it.
"""

import json
import os
import re
from typing import Optional

from neurohand.decoder.errors import NeurohandError

VERSION_PATTERN = re.compile(r"v(\d{3,9})\Z")
"""A version folder's name, as the model store writes it: 'v' and 3 to 9 digits (``v001``)."""


class BrokenStoreError(NeurohandError):
    """The store's ``current.json`` is unreadable or points at a version that is not there."""


def resolves_below(base: str, path: str) -> bool:
    """Return True when ``path`` is below ``base`` with no symbolic link between them (``'..'`` and links fail)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    return not rel.startswith(os.pardir) and os.path.realpath(path) == os.path.normpath(
        os.path.join(os.path.realpath(base), rel))


def check_no_link(store: str, path: str) -> str:
    """Return ``path`` after checking that nothing between ``store`` and it is a symbolic link.

    The model store writes real folders and files only; a link below it (a patient folder, ``current.json``, a version
    or its bundle pointing elsewhere) would make the runtime decode what the store never accepted.

    Raises
    ------
    BrokenStoreError
        Naming the path and where it resolves to.
    """
    if not resolves_below(store, path):
        raise BrokenStoreError("{} resolves to {}, outside the model store {} or through a link; the store holds "
                               "real folders only: replace the link by the version's own folder, or roll back".format(
                                   path, os.path.realpath(path), store))
    return path


def read_current(patient_root: str) -> Optional[str]:
    """Return the version ``PATIENT/current.json`` makes current, or None when there is no such file.

    Raises
    ------
    BrokenStoreError
        The file is unreadable, names no valid version, or a version the store does not hold; the message says how
        to choose one.
    """
    p = os.path.join(patient_root, "current.json")
    if not os.path.exists(p):
        return None
    fix = "choose a version with 'neurohand models --patient {} --store STORE --rollback VERSION'".format(
        os.path.basename(os.path.normpath(patient_root)))
    try:
        with open(p) as f:
            version = json.load(f)["version"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BrokenStoreError("{!r} is broken ({}: {}); {}".format(p, type(e).__name__, e, fix)) from None
    held = os.path.join(patient_root, "versions", version) if isinstance(version, str) else ""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version) or not os.path.isdir(held):
        versions_dir = os.path.join(patient_root, "versions")
        held_names = sorted(v for v in (os.listdir(versions_dir) if os.path.isdir(versions_dir) else ())
                            if VERSION_PATTERN.match(v))
        raise BrokenStoreError("{!r} points at version {!r}, which is not in the store ({}); {}".format(
            p, version, ", ".join(held_names) or "no versions", fix))
    return version


def resolve_bundle(path: str) -> str:
    """Return the bundle folder ``path`` names: itself, or a model store patient's current bundle.

    Raises
    ------
    BrokenStoreError
        A ``current.json`` that is unreadable, names no valid version, or a version without a bundle.
    """
    p = os.path.abspath(path)
    if os.path.isdir(p) and os.path.isfile(os.path.join(p, "current.json")):
        p = os.path.join(p, "current.json")
    if os.path.basename(p) != "current.json" or not os.path.isfile(p):
        return path
    root = os.path.dirname(p)
    store = os.path.dirname(root)
    check_no_link(store, p)  # the patient folder and current.json themselves
    version = read_current(root)
    bundle = os.path.join(root, "versions", version, "bundle")
    if not os.path.isdir(bundle):
        raise BrokenStoreError("{} makes {} current, but {} does not exist".format(p, version, bundle))
    return check_no_link(store, bundle)
