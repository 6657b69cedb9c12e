"""Signed bundles (issue 28.5): keygen, export --sign, sign, and a runtime that decodes only trusted signatures."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from neurohand.decoder.signature import SignatureError, generate_key, sign_bundle, trusted_keys, verify_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def neurohand(*args):
    return subprocess.run([sys.executable, "-m", "neurohand"] + [str(a) for a in args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300)


@pytest.fixture
def signed(tmp_path, adapted_bundle):
    """A copy of the test bundle signed by a new key; returns (bundle dir, private key, trusted folder)."""
    b = str(tmp_path / "b")
    shutil.copytree(adapted_bundle.path, b)
    key, pub, _ = generate_key(str(tmp_path / "clinic"))
    os.makedirs(str(tmp_path / "trusted"))
    shutil.copy(pub, str(tmp_path / "trusted"))
    sign_bundle(b, key)
    return b, key, str(tmp_path / "trusted")


def test_a_signed_bundle_verifies_and_every_change_after_signing_is_refused(signed, tmp_path):
    from tests.test_export_engines import forge

    b, key, trusted = signed
    keys = trusted_keys(trusted)
    key_id = verify_bundle(b, keys)
    assert key_id in keys and len(key_id) == 16
    # rewritten consistently past the seal (what the hostile test did: a filter gain x10, weights x-3, resealed)
    weights = {k: v * -3.0 for k, v in np.load(os.path.join(b, "weights.npz")).items()}
    forge(b, lambda c: c.update(fs_hz=c["fs_hz"]), weights=weights)
    with pytest.raises(SignatureError, match="its signature by key {} does not verify".format(key_id)):
        verify_bundle(b, keys)
    # re-signed by someone else's key: not trusted here
    other, _, other_id = generate_key(str(tmp_path / "mallory"))
    sign_bundle(b, other)
    with pytest.raises(SignatureError, match="signed by key {}, which is not among the trusted keys".format(other_id)):
        verify_bundle(b, keys)
    os.remove(os.path.join(b, "signature.json"))
    with pytest.raises(SignatureError, match="it is not signed"):
        verify_bundle(b, keys)
    with open(os.path.join(b, "signature.json"), "w") as f:
        json.dump({"format": 1, "algorithm": "ed25519", "key_id": key_id, "signature": "not base64!"}, f)
    with pytest.raises(SignatureError, match="is not a signature neurohand wrote"):
        verify_bundle(b, keys)


def test_keys_are_never_overwritten_and_bad_key_folders_are_named(tmp_path):
    from neurohand.decoder.errors import InvalidValueError

    key, pub, _ = generate_key(str(tmp_path / "k"))
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    with pytest.raises(InvalidValueError, match="exists: a key is never overwritten"):
        generate_key(str(tmp_path / "k"))
    with pytest.raises(InvalidValueError, match="is not a folder"):
        trusted_keys(str(tmp_path / "nope"))
    os.makedirs(str(tmp_path / "empty"))
    with pytest.raises(InvalidValueError, match="holds no .pub file"):
        trusted_keys(str(tmp_path / "empty"))
    shutil.copy(key, str(tmp_path / "empty" / "wrong.pub"))  # a private key where a public one belongs
    with pytest.raises(InvalidValueError, match="is not a public key from 'neurohand keygen'"):
        trusted_keys(str(tmp_path / "empty"))


def test_neurohand_run_with_trusted_keys_decodes_only_signed_bundles(signed, short_rec, tmp_path):
    from neurohand.decoder.session_file import write_recording

    b, key, trusted = signed
    session = str(tmp_path / "s.h5")
    write_recording(short_rec, session)
    run = ("run", "--bundle", b, "--source", "replay:" + session, "--fast", "--seconds", "1", "--trusted-keys",
           trusted)
    r = neurohand(*run)
    assert r.returncode == 0 and "signed by trusted key" in r.stderr, r.stderr
    with open(os.path.join(b, "bundle.json")) as f:
        meta = json.load(f)
    meta["note"] = "an unread key"  # harmless to decoding, still a change after signing
    with open(os.path.join(b, "bundle.json"), "w") as f:
        json.dump(meta, f)
    r = neurohand(*run)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "does not verify" in r.stderr, r.stderr
    r = neurohand("sign", b, "--key", key)  # the clinic signs it again
    assert r.returncode == 0 and "signed {} with key".format(b) in r.stdout, r.stderr
    assert neurohand(*run).returncode == 0


def test_keygen_and_sign_from_the_command_line(tmp_path, adapted_bundle):
    r = neurohand("keygen", "--out", tmp_path / "clinic")
    assert r.returncode == 0 and "key id" in r.stdout, r.stderr
    b = str(tmp_path / "b")
    shutil.copytree(adapted_bundle.path, b)
    r = neurohand("sign", b, "--key", tmp_path / "clinic.pub")  # the public key cannot sign
    assert r.returncode == 2 and "is not a private key from 'neurohand keygen'" in r.stderr, r.stderr
    os.remove(os.path.join(b, "model.onnx"))
    r = neurohand("sign", b, "--key", tmp_path / "clinic.key")  # only an intact bundle is signed
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert not os.path.exists(os.path.join(b, "signature.json"))
