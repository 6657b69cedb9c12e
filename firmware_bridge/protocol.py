"""neurohand wire protocol v1: COBS-framed messages with a header and CRC-16 (see ``PROTOCOL.md``).

A packet is ``version (u8) | type (u8) | sequence (u16 LE) | payload | crc16 (u16 LE)``, the CRC being
CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR; ``binascii.crc_hqx(data, 0xFFFF)``) over
everything before it. The packet is COBS-encoded (``cobs`` package) and followed by one 0x00 delimiter, so a
receiver resynchronises at the next zero byte after any corruption. :class:`StreamParser` never raises on input:
it drops bad frames, counts them and carries on.
"""

import binascii
import math
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from cobs import cobs

from neurohand.decoder.errors import InvalidValueError

VERSION = 1
DELIMITER = b"\x00"
MAX_PACKET = 8192  # bytes before COBS; longer frames are dropped
MAX_CHANNELS = 512  # a HELLO's n_channels: 1..MAX_CHANNELS
FS_RANGE_HZ = (100.0, 100000.0)  # a HELLO's fs_hz
MAX_SCALE = 1.0e6  # a HELLO's scale: signal units per LSB, > 0 and at most this
MAX_SAMPLE_VALUES = (MAX_PACKET - 16) // 2  # n_samples * n_channels of one SAMPLES message
MAX_ERROR_KINDS = 16  # distinct error messages a parser counts separately; the rest are counted as 'other'
POSITION_STEPS = 1000  # SET_POSITIONS carries each finger as 0 (open) .. POSITION_STEPS (fully flexed)
POSITION_RESOLUTION = 1.0 / POSITION_STEPS  # the wire's grid in 0..1 units: every command sent is on it
HEADER = struct.Struct("<BBH")
CRC = struct.Struct("<H")


class MsgType:
    """Message type codes."""

    HELLO = 0x01
    SET_POSITIONS = 0x02
    HEARTBEAT = 0x03
    ESTOP = 0x04
    STATUS = 0x05
    SAMPLES = 0x06


NAMES = {v: k for k, v in vars(MsgType).items() if not k.startswith("_")}


class Role:
    """Who sent a HELLO."""

    HOST = 1
    HAND = 2
    INTERFACE = 3
    GLOVE = 4


class Caps:
    """Capability bits of HELLO."""

    POSITIONS = 1 << 0  # accepts SET_POSITIONS
    STATUS = 1 << 1  # sends STATUS
    SAMPLES = 1 << 2  # sends SAMPLES
    WATCHDOG = 1 << 3  # goes to its safe posture on its own when commands stop
    ESTOP = 1 << 4  # honours ESTOP


class HandState:
    """``state`` field of STATUS."""

    RUNNING = 0
    SAFE = 1
    STOPPED = 2


class Fault:
    """Fault bits of STATUS."""

    WATCHDOG = 1 << 0  # no valid command within the watchdog time
    ESTOP = 1 << 1
    OVERCURRENT = 1 << 2
    LOW_BATTERY = 1 << 3
    BAD_FRAMES = 1 << 4  # corrupted frames were received since the last STATUS


def state_name(state: int) -> str:
    """Return a STATUS state as a word: 'running', 'safe', 'stopped' (or 'state N')."""
    return {HandState.RUNNING: "running", HandState.SAFE: "safe", HandState.STOPPED: "stopped"}.get(
        state, "state {}".format(state))


def fault_names(bits: int) -> List[str]:
    """Return the fault bits of a STATUS as words: ``['watchdog', 'bad frames']`` (unknown bits as 'bit N')."""
    names = {Fault.WATCHDOG: "watchdog", Fault.ESTOP: "emergency stop", Fault.OVERCURRENT: "overcurrent",
             Fault.LOW_BATTERY: "low battery", Fault.BAD_FRAMES: "bad frames"}
    return [names.get(1 << k, "bit {}".format(k)) for k in range(16) if bits & (1 << k)]


class ProtocolError(InvalidValueError):
    """A message cannot be built or its payload is malformed."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


# ---------------------------------------------------------------------- payloads
@dataclass(frozen=True)
class Hello:
    """HELLO: who is talking and what it can do.

    Payload: ``role u8 | caps u16 | n_channels u16 | fs_hz f32 | scale f32 | name utf-8 (0..32 bytes)``.
    ``n_channels``, ``fs_hz`` and ``scale`` (signal units per LSB of SAMPLES) are 0 for a hand.
    """

    role: int
    caps: int
    n_channels: int = 0
    fs_hz: float = 0.0
    scale: float = 0.0
    name: str = ""
    TYPE = MsgType.HELLO
    _S = struct.Struct("<BHHff")

    def pack(self) -> bytes:
        """Encode the payload."""
        name = self.name.encode("utf-8")[:32]
        return self._S.pack(self.role, self.caps, self.n_channels, self.fs_hz, self.scale) + name

    @classmethod
    def unpack(cls, p: bytes) -> "Hello":
        """Decode a payload; :class:`ProtocolError` when malformed."""
        if len(p) < cls._S.size or len(p) > cls._S.size + 32:
            raise ProtocolError("HELLO payload must be {}..{} bytes, got {}".format(cls._S.size, cls._S.size + 32,
                                                                                    len(p)))
        role, caps, nch, fs, scale = cls._S.unpack_from(p)
        return cls(role, caps, nch, fs, scale, p[cls._S.size:].decode("utf-8", "replace"))

    def check_stream(self) -> "Hello":
        """Validate a streaming device's fields against PROTOCOL.md's ranges; :class:`ProtocolError` if out of range.

        ``n_channels`` 1..MAX_CHANNELS, ``fs_hz`` finite in FS_RANGE_HZ, ``scale`` finite, > 0 and <= MAX_SCALE.
        """
        fs, scale = float(self.fs_hz), float(self.scale)
        problems = []
        if not 1 <= int(self.n_channels) <= MAX_CHANNELS:
            problems.append("n_channels {} (allowed 1..{})".format(self.n_channels, MAX_CHANNELS))
        if not (math.isfinite(fs) and FS_RANGE_HZ[0] <= fs <= FS_RANGE_HZ[1]):
            problems.append("fs_hz {} (allowed {:g}..{:g})".format(fs, *FS_RANGE_HZ))
        if not (math.isfinite(scale) and 0.0 < scale <= MAX_SCALE):
            problems.append("scale {} (allowed > 0 and <= {:g})".format(scale, MAX_SCALE))
        if problems:
            raise ProtocolError("HELLO from {!r} out of range: {}".format(self.name, ", ".join(problems)))
        return self

    def stream_parameters(self) -> Tuple[int, float, float]:
        """Return what a SAMPLES stream's meaning depends on: ``(n_channels, fs_hz, scale)``."""
        return int(self.n_channels), float(self.fs_hz), float(self.scale)


def on_position_grid(positions) -> np.ndarray:
    """Return ``positions`` (..., 5) in 0..1 clipped to 0..1 and rounded to the wire's grid (:data:`POSITION_STEPS`)."""
    return np.round(np.clip(np.asarray(positions, float), 0.0, 1.0) / POSITION_RESOLUTION) * POSITION_RESOLUTION


def grid_steps_within(bound: float) -> float:
    """Return the largest change on the wire's grid that is at most ``bound`` (0..1 units), e.g. 0.04 for 0.0409."""
    return math.floor(bound / POSITION_RESOLUTION + 1e-9) * POSITION_RESOLUTION


@dataclass(frozen=True)
class SetPositions:
    """SET_POSITIONS: target of each finger, 0 (open) .. :data:`POSITION_STEPS` (fully flexed). Payload: 5 x u16."""

    positions: Tuple[int, int, int, int, int]
    TYPE = MsgType.SET_POSITIONS
    _S = struct.Struct("<5H")

    def __post_init__(self) -> None:
        if len(self.positions) != 5 or any(not 0 <= int(v) <= POSITION_STEPS for v in self.positions):
            raise ProtocolError("SET_POSITIONS needs 5 values in 0..1000, got {}".format(self.positions))

    def pack(self) -> bytes:
        """Encode the payload."""
        return self._S.pack(*[int(v) for v in self.positions])

    @classmethod
    def unpack(cls, p: bytes) -> "SetPositions":
        """Decode a payload; :class:`ProtocolError` when malformed."""
        if len(p) != cls._S.size:
            raise ProtocolError("SET_POSITIONS payload must be 10 bytes, got {}".format(len(p)))
        return cls(tuple(cls._S.unpack(p)))

    @classmethod
    def from_unit(cls, positions) -> "SetPositions":
        """From positions in 0..1 (clipped), rounded to 0..:data:`POSITION_STEPS`."""
        v = np.clip(np.asarray(positions, float), 0.0, 1.0)
        return cls(tuple(int(round(x * POSITION_STEPS)) for x in v))


@dataclass(frozen=True)
class Heartbeat:
    """HEARTBEAT: the sender is alive. Payload: ``uptime_ms u32``."""

    uptime_ms: int
    TYPE = MsgType.HEARTBEAT
    _S = struct.Struct("<I")

    def pack(self) -> bytes:
        """Encode the payload."""
        return self._S.pack(int(self.uptime_ms) & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, p: bytes) -> "Heartbeat":
        """Decode a payload; :class:`ProtocolError` when malformed."""
        if len(p) != cls._S.size:
            raise ProtocolError("HEARTBEAT payload must be 4 bytes, got {}".format(len(p)))
        return cls(cls._S.unpack(p)[0])


@dataclass(frozen=True)
class Estop:
    """ESTOP: stop now and hold the safe posture until a person restarts. Payload: ``reason u8``."""

    reason: int = 0
    TYPE = MsgType.ESTOP

    def pack(self) -> bytes:
        """Encode the payload."""
        return struct.pack("<B", self.reason)

    @classmethod
    def unpack(cls, p: bytes) -> "Estop":
        """Decode a payload; :class:`ProtocolError` when malformed."""
        if len(p) != 1:
            raise ProtocolError("ESTOP payload must be 1 byte, got {}".format(len(p)))
        return cls(p[0])


@dataclass(frozen=True)
class Status:
    """STATUS from the hand: ``positions 5 x u16 | faults u16 | battery_mv u16 | state u8``."""

    positions: Tuple[int, int, int, int, int]
    faults: int = 0
    battery_mv: int = 0
    state: int = HandState.RUNNING
    TYPE = MsgType.STATUS
    _S = struct.Struct("<5HHHB")

    def pack(self) -> bytes:
        """Encode the payload."""
        return self._S.pack(*[int(v) for v in self.positions], self.faults, self.battery_mv, self.state)

    @classmethod
    def unpack(cls, p: bytes) -> "Status":
        """Decode a payload; :class:`ProtocolError` when malformed."""
        if len(p) != cls._S.size:
            raise ProtocolError("STATUS payload must be {} bytes, got {}".format(cls._S.size, len(p)))
        v = cls._S.unpack(p)
        return cls(tuple(v[:5]), v[5], v[6], v[7])


@dataclass(frozen=True)
class Samples:
    """SAMPLES from an interface: ``first_sample u32 | n_samples u16 | n_channels u16 | int16[n_samples][n_channels]``.

    Values are in LSB; multiply by the HELLO's ``scale`` for signal units.
    """

    first_sample: int
    data: np.ndarray = field(compare=False)  # (n_samples, n_channels) int16
    TYPE = MsgType.SAMPLES
    _S = struct.Struct("<IHH")

    def pack(self) -> bytes:
        """Encode the payload."""
        d = np.ascontiguousarray(self.data, dtype="<i2")
        if d.ndim != 2:
            raise ProtocolError("SAMPLES data must be (n_samples, n_channels), got shape {}".format(d.shape))
        return self._S.pack(self.first_sample & 0xFFFFFFFF, d.shape[0], d.shape[1]) + d.tobytes()

    @classmethod
    def unpack(cls, p: bytes) -> "Samples":
        """Decode a payload; :class:`ProtocolError` when malformed."""
        if len(p) < cls._S.size:
            raise ProtocolError("SAMPLES payload shorter than its 8-byte header")
        first, n, c = cls._S.unpack_from(p)
        if n * c > MAX_SAMPLE_VALUES:
            raise ProtocolError("SAMPLES of {} x {} values (at most {} in all)".format(n, c, MAX_SAMPLE_VALUES))
        if len(p) != cls._S.size + 2 * n * c:
            raise ProtocolError("SAMPLES says {} x {} samples but carries {} bytes".format(n, c, len(p) - 8))
        data = np.frombuffer(p, dtype="<i2", offset=cls._S.size).reshape(n, c).astype(np.int16)
        return cls(first, data)


PAYLOADS = {cls.TYPE: cls for cls in (Hello, SetPositions, Heartbeat, Estop, Status, Samples)}


@dataclass(frozen=True)
class Message:
    """A decoded message: header fields and its payload object."""

    type: int
    seq: int
    body: object
    version: int = VERSION


# ---------------------------------------------------------------------- framing
def encode(body, seq: int) -> bytes:
    """Frame a payload object as wire bytes (COBS + delimiter)."""
    payload = body.pack()
    packet = HEADER.pack(VERSION, body.TYPE, seq & 0xFFFF) + payload
    if len(packet) + 2 > MAX_PACKET:
        raise ProtocolError("Message of {} bytes exceeds the {}-byte limit".format(len(packet) + 2, MAX_PACKET))
    packet += CRC.pack(crc16(packet))
    return cobs.encode(packet) + DELIMITER


def decode_packet(frame: bytes) -> Message:
    """Decode one COBS frame (without its delimiter). Raises :class:`ProtocolError` on any defect."""
    try:
        packet = cobs.decode(frame)
    except cobs.DecodeError as e:
        raise ProtocolError("bad COBS encoding: {}".format(e)) from None
    if len(packet) > MAX_PACKET:
        raise ProtocolError("packet of {} bytes exceeds the {}-byte limit".format(len(packet), MAX_PACKET))
    if len(packet) < HEADER.size + CRC.size:
        raise ProtocolError("frame of {} bytes is shorter than header + CRC".format(len(packet)))
    body, crc = packet[:-2], CRC.unpack(packet[-2:])[0]
    if crc16(body) != crc:
        raise ProtocolError("CRC mismatch")
    version, mtype, seq = HEADER.unpack_from(body)
    if version != VERSION:
        raise ProtocolError("protocol version {} (this side speaks {})".format(version, VERSION))
    cls = PAYLOADS.get(mtype)
    if cls is None:
        raise ProtocolError("unknown message type 0x{:02x}".format(mtype))
    return Message(mtype, seq, cls.unpack(body[HEADER.size:]), version)


@dataclass
class ParserStats:
    """What a :class:`StreamParser` has seen."""

    frames_ok: int = 0
    frames_bad: int = 0
    bytes_dropped: int = 0
    last_error: Optional[str] = None
    errors: Dict[str, int] = field(default_factory=dict)


class StreamParser:
    """Incremental receiver: feed it any bytes, in any split; it returns the good messages and counts the rest."""

    def __init__(self, *, max_packet: int = MAX_PACKET) -> None:
        self._buf = bytearray()
        self._max_frame = max_packet + max_packet // 254 + 2  # COBS overhead
        self._overflow = False
        self.stats = ParserStats()

    def feed(self, data: bytes) -> List[Message]:
        """Consume bytes; return the messages completed by them (never raises on bad input)."""
        out: List[Message] = []
        start = 0
        data = bytes(data)
        while True:
            i = data.find(DELIMITER, start)
            if i < 0:
                self._append(data[start:])
                break
            self._append(data[start:i])
            self._finish(out)
            start = i + 1
        return out

    def _append(self, part: bytes) -> None:
        if self._overflow:
            self.stats.bytes_dropped += len(part)
            return
        self._buf += part
        if len(self._buf) > self._max_frame:
            self.stats.bytes_dropped += len(self._buf)
            self._buf = bytearray()
            self._overflow = True

    def _finish(self, out: List[Message]) -> None:
        if self._overflow:
            self._overflow = False
            self._bad("frame longer than {} bytes".format(self._max_frame))
            return
        frame = bytes(self._buf)
        self._buf = bytearray()
        if not frame:
            return  # idle delimiters are allowed
        try:
            out.append(decode_packet(frame))
            self.stats.frames_ok += 1
        except (ProtocolError, struct.error, ValueError) as e:
            self.stats.bytes_dropped += len(frame) + 1
            self._bad(str(e))

    def _bad(self, why: str) -> None:
        self.stats.frames_bad += 1
        self.stats.last_error = why
        key = why.split(":")[0][:40]
        if key not in self.stats.errors and len(self.stats.errors) >= MAX_ERROR_KINDS - 1:
            key = "other"  # bounded: a stream of distinct errors never grows the table
        self.stats.errors[key] = self.stats.errors.get(key, 0) + 1
