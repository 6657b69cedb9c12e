"""``neurohand run --outlet lsl``: the commands and class probabilities as a Lab Streaming Layer stream, read back
by a real inlet on loopback."""

import uuid

import numpy as np
import pytest

from neurohand.deploy.keys_sink import MultiSink
from neurohand.deploy.runtime import NoneSink, Runtime, RuntimeConfig
from neurohand.deploy.sources import RecordingSource

pylsl = pytest.importorskip("pylsl", reason="pylsl (the lsl extra) is not installed")


class Recorded(NoneSink):
    def __init__(self):
        self.sent = []

    def write(self, command, probabilities=None):
        self.sent.append(np.r_[command, probabilities])
        return True


def test_every_frame_is_published_and_a_consumer_reads_it(rec, bundle):
    from neurohand.deploy.lsl_outlet import FINGERS, LslOutletSink

    name = "neurohand-out-" + uuid.uuid4().hex[:8]
    outlet = LslOutletSink(name, class_names=bundle.class_names, frame_rate_hz=1000.0 / bundle.feature_config.hop_ms)
    (info,) = pylsl.resolve_byprop("name", name, timeout=5.0)
    assert info.channel_count() == 5 + len(bundle.class_names) and info.type() == "Control"
    inlet = pylsl.StreamInlet(info)
    full = inlet.info(timeout=5.0)  # the description: one labelled channel each
    ch, labels = full.desc().child("channels").child("channel"), []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    assert labels == list(FINGERS) + ["p_" + c for c in bundle.class_names]
    inlet.open_stream(timeout=5.0)
    recorded = Recorded()
    hop = int(rec.fs_hz * bundle.feature_config.hop_ms / 1000)
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=hop), MultiSink([recorded, outlet]),
                 config=RuntimeConfig(engine="numpy"))
    stats = rt.run(seconds=1.0)  # real time; closing pushes the safe posture
    got = []
    while True:
        chunk, _ = inlet.pull_chunk(timeout=1.0)
        if not chunk:
            break
        got.extend(chunk)
    got = np.array(got)
    sent = np.array(recorded.sent)
    assert stats.frames > 50 and len(got) == stats.frames + 2  # every frame, then safe() and close()
    np.testing.assert_allclose(got[:stats.frames], sent, atol=1e-6)  # float32 on the wire
    np.testing.assert_allclose(got[:stats.frames, 5:].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got[-1, :5], outlet.safe_posture, atol=1e-6)
    assert np.all(np.isnan(got[-1, 5:]))  # no class decoded in the safe posture


@pytest.mark.parametrize("spec, message", [
    ("serial:/dev/ttyUSB0", "Invalid value for '--outlet': allowed 'lsl:NAME', 'none', got 'serial:/dev/ttyUSB0'"),
    ("lsl:", "Invalid value for '--outlet'"),
])
def test_an_outlet_that_is_not_lsl_is_one_line(bundle, capsys, spec, message):
    from neurohand.cli import main

    assert main(["run", "--bundle", bundle.path, "--source", "sim", "--outlet", spec, "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
