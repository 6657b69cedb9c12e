"""Where the runtime finds the patient's current bundle, read from the model store's own files (torch-free).

The model store (``calibration/model_store.py``) writes ``STORE/PATIENT/current.json`` (``{"version": "v003"}``,
replaced atomically) and ``STORE/PATIENT/versions/v003/bundle/``. ``--bundle`` takes a bundle folder, that
``current.json``, or the patient folder that holds it.
"""

import json
import os
import re

from neurohand.decoder.errors import InvalidValueError

VERSION_PATTERN = re.compile(r"^v(\d{3,9})$")
"""A version folder's name, as the model store writes it: 'v' and 3 to 9 digits (``v001``)."""


def resolve_bundle(path: str) -> str:
    """Return the bundle folder ``path`` names: itself, or a model store patient's current bundle.

    Raises
    ------
    InvalidValueError
        A ``current.json`` that is unreadable, names no valid version, or a version without a bundle.
    """
    p = os.path.abspath(path)
    if os.path.isdir(p) and os.path.isfile(os.path.join(p, "current.json")):
        p = os.path.join(p, "current.json")
    if os.path.basename(p) != "current.json" or not os.path.isfile(p):
        return path
    root = os.path.dirname(p)
    try:
        with open(p) as f:
            version = json.load(f)["version"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidValueError("Cannot read the model store's current version from {}: {}".format(p, e)) from None
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise InvalidValueError("{} names no valid version (expected 'v001'...), got {!r}".format(p, version))
    bundle = os.path.join(root, "versions", version, "bundle")
    if not os.path.isdir(bundle):
        raise InvalidValueError("{} makes {} current, but {} does not exist".format(p, version, bundle))
    return bundle
