"""Decode a session with a bundle on one engine and save what came out, to compare machines.

``python decode.py BUNDLE SESSION ENGINE OUT.npz`` (``make device-test-arm64`` runs it on both); device side, 3.6+.
"""

import platform
import sys

import numpy as np

from neurohand.decoder.bundle import Bundle
from neurohand.decoder.postprocess import SAFE_POSTURE
from neurohand.decoder.session_file import read_recording
from neurohand.decoder.stream import StreamDecoder


def main(bundle_dir, session, engine, out):
    """Decode ``session`` chunk by chunk (the runtime's hop), state carried, and save the frames to ``out``."""
    bundle = Bundle(bundle_dir)
    rec = read_recording(session)
    decoder = StreamDecoder(bundle, engine=engine)
    stream = decoder.new_stream()
    decoder.reset(stream, command=SAFE_POSTURE)
    parts = [decoder.process(stream, rec.signals[i:i + bundle.hop_samples])
             for i in range(0, rec.n_samples, bundle.hop_samples)]
    np.savez(out, commands=np.concatenate([p.commands for p in parts]),
             positions=np.concatenate([p.positions for p in parts]),
             probabilities=np.concatenate([p.class_probabilities for p in parts]))
    print("{} {}: {} frames on {}".format(platform.machine(), engine, sum(len(p.commands) for p in parts),
                                          decoder.engine.name))


if __name__ == "__main__":
    main(*sys.argv[1:5])
