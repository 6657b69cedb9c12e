"""``neurohand keygen`` and ``neurohand sign``: the clinic's signing key and signed bundles (:mod:`decoder.signature`).

The private key stays at the clinic; its ``.pub`` goes to every device's trusted-keys folder, and ``neurohand run
--trusted-keys DIR`` (the service unit's) decodes only bundles signed by one of them.
"""

from neurohand.decoder.signature import generate_key, sign_bundle


def register(sub) -> None:
    """Add ``neurohand keygen`` and ``neurohand sign``."""
    k = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles",
                       description="Write OUT.key (the private key, mode 0600: keep it at the clinic) and OUT.pub "
                       "(copy it to each device's trusted-keys folder, /etc/neurohand/trusted-keys for the service).")
    k.add_argument("--out", required=True, help="path and name of the pair, without extension (OUT.key, OUT.pub)")
    k.set_defaults(func=_keygen)
    s = sub.add_parser("sign", help="sign a bundle (or a patient's current model in a store) with a private key",
                       description="Write BUNDLE/signature.json: an Ed25519 signature over bundle.json, which holds "
                       "the sha256 of every other file of the bundle.")
    s.add_argument("bundle", help="bundle folder, or a model store's STORE/PATIENT/current.json")
    s.add_argument("--key", required=True, help="private key from 'neurohand keygen' (OUT.key)")
    s.set_defaults(func=_sign)


def _keygen(args) -> int:
    key, pub, key_id = generate_key(args.out)
    print("wrote {} (private: keep it at the clinic) and {} (copy it to each device's trusted-keys folder); key "
          "id {}".format(key, pub, key_id))
    return 0


def _sign(args) -> int:
    from neurohand.decoder.bundle import Bundle

    from .store_paths import resolve_bundle

    path = resolve_bundle(args.bundle)
    Bundle(path)  # only an intact bundle is signed: every file against bundle.json's hashes
    key_id = sign_bundle(path, args.key)
    print("signed {} with key {}".format(path, key_id))
    return 0
