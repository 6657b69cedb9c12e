import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurohand.firmware_bridge.protocol import (
    NAMES,
    PAYLOADS,
    Estop,
    Heartbeat,
    Hello,
    MsgType,
    ProtocolError,
    Samples,
    SetPositions,
    Status,
    StreamParser,
    crc16,
    decode_packet,
    encode,
)

VECTORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware_bridge",
                       "test_vectors.json")


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


def _decoded_dict(body):
    if isinstance(body, Samples):
        return {"first_sample": body.first_sample, "data": body.data.tolist()}
    d = {k: getattr(body, k) for k in body.__dataclass_fields__ if not k.startswith("_") and k != "TYPE"}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def test_vectors_decode_and_re_encode_exactly():
    spec = json.load(open(VECTORS))
    assert spec["version"] == 1 and len(spec["vectors"]) >= 8
    for v in spec["vectors"]:
        raw = bytes.fromhex(v["hex"])
        assert raw.endswith(b"\x00") and b"\x00" not in raw[:-1]
        msg = decode_packet(raw[:-1])
        assert NAMES[msg.type] == v["type"] and msg.seq == v["seq"]
        got = _decoded_dict(msg.body)
        for k, val in v["decoded"].items():
            assert got[k] == (pytest.approx(val) if isinstance(val, float) else val), (v["name"], k)
        assert encode(msg.body, msg.seq) == raw, v["name"]
    assert {v["type"] for v in spec["vectors"]} == set(NAMES[t] for t in PAYLOADS)


def test_payload_validation():
    with pytest.raises(ProtocolError, match="5 values in 0..1000"):
        SetPositions((0, 0, 0, 0, 1001))
    with pytest.raises(ProtocolError, match="10 bytes"):
        SetPositions.unpack(b"\x00" * 9)
    with pytest.raises(ProtocolError, match="carries"):
        Samples.unpack(Samples(0, np.zeros((2, 2), np.int16)).pack()[:-1])
    assert SetPositions.from_unit([0, 0.5, 1.2, -1, 0.3333]).positions == (0, 500, 1000, 0, 333)


def messages():
    pos = st.tuples(*[st.integers(0, 1000)] * 5)
    return st.one_of(
        st.builds(Hello, st.integers(1, 4), st.integers(0, 31), st.integers(0, 64),
                  st.floats(0, 50000, width=32), st.floats(0, 10, width=32), st.text(max_size=8)),
        st.builds(SetPositions, pos),
        st.builds(Heartbeat, st.integers(0, 2**32 - 1)),
        st.builds(Estop, st.integers(0, 255)),
        st.builds(Status, pos, st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2)),
        st.builds(Samples, st.integers(0, 2**32 - 1),
                  st.integers(1, 6).flatmap(lambda c: st.lists(st.lists(st.integers(-32768, 32767), min_size=c,
                                                                         max_size=c), min_size=0, max_size=5)
                                            ).map(lambda rows: np.array(rows, np.int16).reshape(len(rows), -1)
                                                  if rows else np.zeros((0, 1), np.int16))),
    )


def same(a, b):
    if isinstance(a, Samples):
        return a.first_sample == b.first_sample and np.array_equal(a.data, b.data)
    return a == b


@settings(max_examples=150, deadline=None, derandomize=True)
@given(msgs=st.lists(st.tuples(messages(), st.integers(0, 65535)), min_size=1, max_size=6),
       cuts=st.lists(st.integers(0, 400), max_size=10))
def test_round_trip_with_arbitrary_split_reads(msgs, cuts):
    wire = b"".join(encode(m, s) for m, s in msgs)
    p = StreamParser()
    out = []
    bounds = sorted({c % (len(wire) + 1) for c in cuts})
    for a, b in zip([0] + bounds, bounds + [len(wire)]):
        out += p.feed(wire[a:b])
    assert len(out) == len(msgs) and p.stats.frames_bad == 0
    for got, (m, s) in zip(out, msgs):
        assert got.seq == s and same(got.body, m)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(garbage=st.binary(max_size=300))
def test_random_bytes_never_crash_and_resync(garbage):
    p = StreamParser()
    p.feed(garbage)  # must not raise
    good = encode(SetPositions((1, 2, 3, 4, 5)), 9)
    out = p.feed(b"\x00" + good)  # the next delimiter resynchronises
    assert len(out) == 1 and out[0].body.positions == (1, 2, 3, 4, 5)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(pos=st.integers(0, 200), bit=st.integers(0, 7))
def test_bit_flips_are_dropped_and_counted(pos, bit):
    frames = [encode(Status((1, 2, 3, 4, 5), 0, 7000, 0), k) for k in range(3)]
    wire = bytearray(b"".join(frames))
    i = pos % (len(frames[0]) - 1)  # corrupt a byte of the first frame (not its delimiter)
    wire[i] ^= 1 << bit
    p = StreamParser()
    out = p.feed(bytes(wire))
    # the corrupted frame never comes out as a different valid message, and the others survive
    assert all(m.body == Status((1, 2, 3, 4, 5), 0, 7000, 0) for m in out)
    assert len(out) >= 2
    assert p.stats.frames_ok + p.stats.frames_bad >= 3 or wire[i] == 0


@settings(max_examples=100, deadline=None, derandomize=True)
@given(cut=st.integers(1, 30))
def test_truncated_frame_is_dropped(cut):
    f = encode(Heartbeat(5), 1)
    p = StreamParser()
    out = p.feed(f[:-1][:max(1, len(f) - 1 - cut)] + b"\x00" + encode(Heartbeat(6), 2))
    assert [m.body.uptime_ms for m in out] == [6]
    assert p.stats.frames_bad == 1


def test_oversized_frame_is_dropped_without_unbounded_memory():
    p = StreamParser(max_packet=64)
    out = p.feed(b"\x01" * 10000 + b"\x00" + encode(Heartbeat(1), 1))
    assert len(out) == 1 and p.stats.frames_bad == 1 and p.stats.bytes_dropped >= 10000
    assert len(p._buf) == 0


def test_unknown_type_and_version_are_rejected():
    import binascii
    import struct

    from cobs import cobs

    for version, mtype in ((2, MsgType.HEARTBEAT), (1, 0x7F)):
        body = struct.pack("<BBH", version, mtype, 0) + b"\x00\x00\x00\x00"
        frame = cobs.encode(body + struct.pack("<H", binascii.crc_hqx(body, 0xFFFF)))
        with pytest.raises(ProtocolError):
            decode_packet(frame)
