"""Signed bundles: an Ed25519 signature over ``bundle.json``, which holds the sha256 of every other file.

A bundle's seal (:mod:`decoder.bundle_check`) catches an edit of one file, but not a bundle rewritten consistently
(a gain changed, the hashes recomputed). A signature does: whoever rewrites it needs the signing key. Layout::

    BUNDLE_DIR/signature.json   {"format": 1, "algorithm": "ed25519", "key_id": ..., "signature": base64}

``key_id`` is the first 16 hex digits of the sha256 of the raw 32-byte public key. Keys come from ``neurohand
keygen --out NAME``: ``NAME.key`` (PKCS#8 PEM, the private key, mode 0600; it stays at the clinic) and ``NAME.pub``
(SubjectPublicKeyInfo PEM; it goes to every device in the folder given as ``--trusted-keys``). The runtime with
``--trusted-keys DIR`` decodes only bundles whose signature verifies with a key in ``DIR``. Engines built on the
device (``engine-*.plan``) are not signed: they are bound to the bundle by their record (the model's hash and the
plan's own sha256, :mod:`decoder.engines.tensorrt_engine`).

Uses ``cryptography`` (wheels down to Python 3.6 on aarch64: 40.0.2 is the last for 3.6).
"""

import base64
import hashlib
import json
import os
import warnings
from typing import Any, Dict, Tuple

from .errors import InvalidValueError

SIGNATURE_FILE = "signature.json"
SIGNATURE_FORMAT = 1


class SignatureError(InvalidValueError):
    """A bundle is unsigned, signed by an untrusted key, or its signature does not verify."""


def _crypto() -> Any:
    with warnings.catch_warnings():  # cryptography 40 warns on import that Python 3.6 support is deprecated
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    return serialization, ed25519


def key_id_of(public_key: Any) -> str:
    """Return the id of an Ed25519 public key: the first 16 hex digits of the sha256 of its raw 32 bytes."""
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(out: str) -> Tuple[str, str, str]:
    """Write a new key pair ``OUT.key`` (private, mode 0600) and ``OUT.pub``; return their paths and the key id.

    Raises
    ------
    InvalidValueError
        Either file exists already (a key is never overwritten).
    """
    serialization, ed25519 = _crypto()
    key_path, pub_path = out + ".key", out + ".pub"
    for p in (key_path, pub_path):
        if os.path.lexists(p):
            raise InvalidValueError("{} exists: a key is never overwritten (choose another --out)".format(p))
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    with open(pub_path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path, key_id_of(key.public_key())


def _load_private(path: str) -> Any:
    serialization, ed25519 = _crypto()
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (ValueError, TypeError) as e:
        raise InvalidValueError("{} is not a private key from 'neurohand keygen' ({})".format(path, e)) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidValueError("{} is not an Ed25519 private key (from 'neurohand keygen')".format(path))
    return key


def sign_bundle(bundle_dir: str, key_path: str) -> str:
    """Sign ``bundle_dir``'s ``bundle.json`` with the private key at ``key_path``; return the key id."""
    key = _load_private(key_path)
    with open(os.path.join(bundle_dir, "bundle.json"), "rb") as f:
        signed = f.read()
    record = {"format": SIGNATURE_FORMAT, "algorithm": "ed25519", "key_id": key_id_of(key.public_key()),
              "signature": base64.b64encode(key.sign(signed)).decode("ascii")}
    tmp = os.path.join(bundle_dir, SIGNATURE_FILE + ".partial")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, os.path.join(bundle_dir, SIGNATURE_FILE))
    return record["key_id"]


def trusted_keys(folder: str) -> Dict[str, Any]:
    """Return ``{key id: public key}`` of the ``*.pub`` files in ``folder``.

    Raises
    ------
    InvalidValueError
        The folder is missing, holds no ``.pub`` file, or one is not an Ed25519 public key.
    """
    serialization, ed25519 = _crypto()
    if not os.path.isdir(folder):
        raise InvalidValueError("--trusted-keys {} is not a folder (expected one holding the .pub files of "
                                "'neurohand keygen')".format(folder))
    keys = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".pub"):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                key = serialization.load_pem_public_key(f.read())
        except ValueError as e:
            raise InvalidValueError("{} is not a public key from 'neurohand keygen' ({})".format(path, e)) from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise InvalidValueError("{} is not an Ed25519 public key (from 'neurohand keygen')".format(path))
        keys[key_id_of(key)] = key
    if not keys:
        raise InvalidValueError("--trusted-keys {} holds no .pub file: nothing could be trusted".format(folder))
    return keys


def verify_bundle(bundle_dir: str, trusted: Dict[str, Any]) -> str:
    """Check that ``bundle_dir`` is signed by one of ``trusted`` (from :func:`trusted_keys`); return the key id.

    Only ``bundle.json`` is signed: loading the bundle afterwards (:class:`decoder.bundle.Bundle`) checks every other
    file against the hashes it holds.

    Raises
    ------
    SignatureError
        One line: unsigned, signed by a key not trusted here, or a signature that does not verify.
    """
    from cryptography.exceptions import InvalidSignature

    path = os.path.join(bundle_dir, SIGNATURE_FILE)
    if not os.path.isfile(path):
        raise SignatureError("Refusing the bundle in {}: it is not signed, and only signed bundles are decoded here "
                             "(sign it at the clinic: neurohand sign {} --key KEY)".format(bundle_dir, bundle_dir))
    try:
        with open(path) as f:
            record = json.load(f)
        key_id, signature = str(record["key_id"]), base64.b64decode(record["signature"], validate=True)
        ok_format = record.get("format") == SIGNATURE_FORMAT and record.get("algorithm") == "ed25519"
    except (ValueError, KeyError, TypeError, AttributeError):
        ok_format = False
    if not ok_format:
        raise SignatureError("Refusing the bundle in {}: {} is not a signature neurohand wrote".format(
            bundle_dir, path))
    if key_id not in trusted:
        raise SignatureError("Refusing the bundle in {}: it is signed by key {}, which is not among the trusted keys "
                             "({})".format(bundle_dir, key_id, ", ".join(sorted(trusted))))
    with open(os.path.join(bundle_dir, "bundle.json"), "rb") as f:
        signed = f.read()
    try:
        trusted[key_id].verify(signature, signed)
    except InvalidSignature:
        raise SignatureError("Refusing the bundle in {}: its signature by key {} does not verify (bundle.json changed "
                             "after signing)".format(bundle_dir, key_id)) from None
    return key_id


__all__ = ["SIGNATURE_FILE", "SignatureError", "generate_key", "key_id_of", "sign_bundle", "trusted_keys",
           "verify_bundle"]
