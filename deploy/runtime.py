"""The standalone decoding loop: source -> filters -> features -> engine.step -> post-processing -> sink.

One loop for every sink. It is paced by the source's blocking read. Any fault (a stalled source, NaN or saturated
samples, a flat channel, an engine error, a lost hand link) puts the sink in its safe posture at once, is logged,
and clears by itself when the cause does; the loop keeps running. Ctrl-C and SIGTERM send the safe posture before
the port closes. Latency is measured per frame from the arrival of its last chunk to the return of the sink's write.
"""

import collections
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional

import numpy as np

from neurohand.decoder.bundle import Bundle
from neurohand.decoder.errors import DeviceError, InvalidValueError
from neurohand.decoder.postprocess import SAFE_POSTURE, PostConfig, PostState
from neurohand.decoder.signal_quality import QualityConfig, QualityMonitor
from neurohand.decoder.stream import DecodeFault

from .runlog import JsonLog, LatencyHistogram
from .sources import SourceFault, SourceStalled

RUNNING, SAFE, STOPPED = "running", "safe", "stopped"

RESOLUTION = 0.001  # SET_POSITIONS carries 0..1000: every command is on this grid


class NoneSink:
    """Decode without moving anything."""

    name = "none"
    safe_posture = SAFE_POSTURE

    def start_posture(self):
        """Where the commands start from: the safe posture."""
        return self.safe_posture

    def write(self, command: np.ndarray, probabilities: Optional[np.ndarray] = None) -> bool:
        """Accept a command (5,) in 0..1."""
        return True

    def safe(self) -> bool:
        """Nothing to make safe."""
        return True

    def close(self) -> None:
        """Nothing to close."""


class HandSink:
    """Finger commands to the hand over the firmware bridge's :class:`HandLink`."""

    name = "hand"

    def __init__(self, port: str) -> None:
        from neurohand.firmware_bridge.hand_link import HandLink

        self.link = HandLink(port)
        if not self.link.ensure_open():
            raise DeviceError("Cannot open the hand on {}: {}".format(port, self.link.last_error or "no such port"))
        self.safe_posture = tuple(float(v) for v in self.link.safe_posture)
        self._reconnects = self.link.reconnects

    def start_posture(self):
        """Where the hand reports it is (a STATUS within 50 ms of opening), else its safe posture."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.05:
            status = self.link.poll()
            if status is not None:
                return tuple(v / 1000.0 for v in status.positions)
            time.sleep(0.005)
        return self.safe_posture

    def write(self, command: np.ndarray, probabilities: Optional[np.ndarray] = None) -> bool:
        """Send a command; False when the link is down (it reconnects with backoff) or has just reconnected.

        After a reconnect the hand may have gone to its safe posture (its watchdog): the command is not sent, the
        runtime treats it as a link fault (safe posture, logged) and ramps from the safe posture.
        """
        if not self.link.ensure_open():
            return False
        if self.link.reconnects != self._reconnects:
            self._reconnects = self.link.reconnects
            self.link.last_error = "the link to the hand on {} was re-established".format(self.link.port_name)
            return False
        ok = self.link.send_positions(command)
        self.link.poll()
        return ok

    def safe(self) -> bool:
        """Send the safe posture."""
        return self.link.safe()

    def close(self) -> None:
        """Safe posture, then close the port."""
        self.link.safe()
        self.link.close()


@dataclass
class RuntimeStats:
    """What the loop measured."""

    frames: int = 0
    chunks: int = 0
    latency_ms: LatencyHistogram = field(default_factory=LatencyHistogram)  # bounded, whatever the run's length
    overruns: int = 0
    faults: Dict[str, int] = field(default_factory=dict)
    safe_events: Deque[Dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=100))  # the latest
    state: str = RUNNING
    faults_cleared: int = 0
    limit_clips: int = 0  # commands the runtime's own velocity guard had to clip (0 unless post-processing erred)

    dropped_samples: int = 0

    def summary(self) -> Dict[str, Any]:
        """JSON-ready summary with latency percentiles."""
        lat = self.latency_ms
        return {"frames": self.frames, "chunks": self.chunks, "overruns": self.overruns, "faults": dict(self.faults),
                "faults_cleared": self.faults_cleared, "limit_clips": self.limit_clips,
                "dropped_samples": self.dropped_samples,
                "latency_ms": {"median": lat.percentile(50), "p99": lat.percentile(99), "max": lat.max},
                "state": self.state}


class Runtime:
    """The decoding loop over one bundle, one source and one sink."""

    def __init__(self, bundle: Bundle, source, sink, *, engine: str = "auto", post: Optional[PostConfig] = None,
                 quality: Optional[QualityConfig] = None, log=None, hop_budget_ms: Optional[float] = None,
                 record_frames: bool = False, on_chunk=None, json_log: Optional[JsonLog] = None) -> None:
        self.on_chunk = on_chunk
        # saturation by default: at the source's announced full scale where known (an interface's int16 range times
        # its HELLO scale), and the rail detector (QualityConfig.rail_fraction) always
        quality = quality or QualityConfig(saturation=getattr(source, "full_scale", None))
        self.json_log = json_log
        bundle.check_source(fs_hz=source.fs_hz, n_channels=source.n_channels)
        self.bundle, self.source, self.sink = bundle, source, sink
        self.safe_posture = np.asarray(getattr(sink, "safe_posture", SAFE_POSTURE), float)
        # a class-only model's position head is untrained: its commands hold the safe posture (decoder.stream)
        self.decoder = bundle.decoder(engine=engine, post=post, hold_posture=self.safe_posture)
        self.engine = self.decoder.engine
        # one stream for the session: a fault resets its decoding state but keeps the adaptation's running
        # statistics (they describe the electrodes)
        self.stream = self.decoder.new_stream()
        self.quality = QualityMonitor(quality, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels)
        self.log = log or (lambda m: None)
        self.hop_budget_ms = hop_budget_ms or bundle.feature_config.hop_ms
        self.stats = RuntimeStats()
        self.frames: List[Dict[str, Any]] = []
        self.record_frames = record_frames
        self._stop = False
        self.last_command: Optional[np.ndarray] = None
        # the velocity limit holds against the last command actually sent (or the safe posture after a fault)
        self.max_step = np.floor(self.decoder.post.config.max_speed_per_s * self.decoder.post.hop_s / RESOLUTION
                                 + 1e-9) * RESOLUTION
        start = getattr(sink, "start_posture", None)
        self.last_sent = self._on_grid(start() if start is not None else self.safe_posture)
        self.stream.post = PostState(command=self.last_sent.copy())
        self.current_arrival = 0.0  # arrival time of the chunk being decoded
        self.last_probabilities: Optional[np.ndarray] = None
        self.class_names = bundle.class_names
        if not self.decoder.drives_fingers:
            self.log("class-only model (no finger positions were trained): the hand holds its safe posture; the "
                     "classes drive keys and the log")

    @property
    def astate(self):
        """The stream's running feature statistics (None for a model trained without the adaptation)."""
        return self.stream.adaptation

    def reset_stream(self) -> None:
        """Restart the features and the engine; the commands continue from the last one sent, within the limit.

        After a fault that is the safe posture: the first command after it is velocity-limited against it.
        """
        self.decoder.reset(self.stream, command=self.last_sent)

    @staticmethod
    def _on_grid(command) -> np.ndarray:
        return np.round(np.clip(np.asarray(command, float), 0.0, 1.0) / RESOLUTION) * RESOLUTION

    def _guard(self, command: np.ndarray) -> np.ndarray:
        """Put a command on the protocol's grid, within ``max_step`` of the last one sent (the limit's last line)."""
        cmd = self._on_grid(command)
        lo, hi = self.last_sent - self.max_step, self.last_sent + self.max_step
        if np.any(cmd < lo - 1e-12) or np.any(cmd > hi + 1e-12):
            self.stats.limit_clips += 1
            cmd = self._on_grid(np.clip(cmd, lo, hi))
        return cmd

    def _event(self, record: Dict[str, Any]) -> None:
        self.log(record["message"])
        if self.json_log is not None:
            self.json_log.write(dict(record, wall_time=time.time()))

    def request_stop(self, *_: Any) -> None:
        """Stop after the current chunk (signal handler)."""
        self._stop = True

    def _fault(self, kind: str, message: str) -> None:
        self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
        if self.stats.state != SAFE:
            detected = time.monotonic()
            self.sink.safe()
            self.stats.state = SAFE
            self.stats.safe_events.append({"time": detected, "safe_sent": time.monotonic(), "kind": kind,
                                           "message": message})
            self._event({"event": "fault", "kind": kind,
                         "message": "fault ({}): {}; hand to safe posture".format(kind, message)})
        self.last_sent = self._on_grid(self.safe_posture)
        self.reset_stream()

    def _recover(self) -> None:
        if self.stats.state == SAFE:
            self.stats.state = RUNNING
            self.stats.faults_cleared += 1
            self._event({"event": "cleared", "message": "fault cleared: decoding resumed"})

    def run(self, *, seconds: Optional[float] = None) -> RuntimeStats:
        """Run until the source ends, ``seconds`` pass, or Ctrl-C/SIGTERM; the sink ends in its safe posture."""
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old[sig] = signal.signal(sig, self.request_stop)
            except ValueError:  # not the main thread
                pass
        t_end = None if seconds is None else time.monotonic() + seconds
        try:
            while not self._stop and (t_end is None or time.monotonic() < t_end):
                try:
                    chunk, arrival = self.source.read()
                    self.current_arrival = arrival
                except StopIteration:
                    break
                except SourceStalled as e:
                    self._fault("stall", str(e))
                    continue
                except SourceFault as e:
                    self._fault(e.kind, str(e))
                    continue
                finally:
                    if self.json_log is not None:
                        self.json_log.tick()
                self.stats.chunks += 1
                if self.on_chunk is not None:
                    self.on_chunk(self, chunk)
                problems = self.quality.check(chunk)
                if problems:
                    self._fault("signal", "; ".join(problems))
                    continue
                try:
                    out = self.decoder.process(self.stream, chunk)
                except DecodeFault as e:
                    self._fault(e.kind, str(e))
                    continue
                except Exception as e:  # noqa: BLE001 - any engine/feature error: safe posture, keep running
                    self._fault("engine", "{}: {}".format(type(e).__name__, e))
                    continue
                for pos, prob, cmd in zip(out.positions, out.class_probabilities, out.commands):
                    if self.stats.state == SAFE:
                        # the cause cleared: resume only once a fresh window of clean samples has been decoded
                        self._recover()
                    cmd = self._guard(cmd)
                    ok = self.sink.write(cmd, prob)
                    done = time.monotonic()
                    self.last_command, self.last_probabilities = cmd, prob
                    if ok:
                        self.last_sent = cmd
                    else:
                        self._fault("link", "hand link down" if getattr(self.sink, "link", None) is None else
                                    "hand link: {}".format(self.sink.link.last_error))
                    lat = (done - arrival) * 1000.0
                    self.stats.latency_ms.add(lat)
                    if lat > self.hop_budget_ms:
                        self.stats.overruns += 1
                    self.stats.frames += 1
                    if self.record_frames or self.json_log is not None:
                        k = int(np.argmax(prob))
                        fr = {"t": done, "positions": pos.tolist(), "command": cmd.tolist(), "latency_ms": lat,
                              "class": self.class_names[k], "probability": round(float(prob[k]), 4)}
                        if self.record_frames:
                            self.frames.append(fr)
                        if self.json_log is not None:
                            self.json_log.write(fr)
        finally:
            self.stats.dropped_samples = int(getattr(self.source, "dropped_samples", 0))
            for action in (self.sink.safe, self.sink.close):
                try:
                    action()
                except Exception as e:  # noqa: BLE001 - shutting down: report, never mask the loop's own exit
                    self.log("while shutting down the sink: {}: {}".format(type(e).__name__, e))
            self.stats.state = STOPPED if self._stop else self.stats.state
            if self.json_log is not None:
                self.json_log.write({"summary": self.stats.summary(), "wall_time": time.time()})
                self.json_log.close()
            for sig, h in old.items():
                signal.signal(sig, h)
        return self.stats


def register(sub) -> None:
    """Add ``neurohand run`` and ``neurohand keys`` (the keyboard sink's own command)."""
    register_keys(sub)
    p = sub.add_parser("run", help="the standalone decoding loop: source -> decoder -> hand",
                       description="Decode a signal source with a bundle and drive the hand (or nothing).")
    p.add_argument("--bundle", required=True, help="bundle folder from 'neurohand export', or a model store's "
                   "STORE/PATIENT/current.json (or STORE/PATIENT): the patient's current version")
    p.add_argument("--source", default=None, help="sim | replay:FILE.h5 | serial:PORT | lsl:NAME (default sim, "
                   "when the simulator's rate and channels fit the bundle; otherwise required)")
    p.add_argument("--hand", default="none", help="serial:PORT | none (default none)")
    p.add_argument("--engine", default="auto", choices=["auto", "tensorrt", "onnxruntime", "numpy"])
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--fast", action="store_true", help="replay as fast as possible instead of in real time")
    p.add_argument("--log", default=None, help="append statistics, events and every decoded frame as JSON lines, "
                   "flushed at least once a second")
    p.add_argument("--log-max-mb", type=float, default=100.0, help="rotate --log at this size (default 100; 5 kept)")
    p.add_argument("--live", action="store_true", help="terminal view: fingers, class, signal levels, latency")
    p.add_argument("--keys", default=None, help="keyboard/game control profile (TOML), with or without a hand")
    p.add_argument("--allow-replay-into-hand", action="store_true",
                   help="let a recording (replay:) or the simulator (sim) drive a real hand (bench tests only)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import sys

    from .sources import open_source, parse_device_spec, source_for
    from .store_paths import resolve_bundle

    bundle = Bundle(resolve_bundle(args.bundle))
    hand = parse_device_spec("--hand", args.hand, ("serial", "none"))
    src_kind = parse_device_spec("--source", args.source or "sim", ("sim", "replay", "serial", "lsl")).kind
    if hand.kind != "none" and src_kind in ("sim", "replay") and not args.allow_replay_into_hand:
        raise InvalidValueError("Refusing to drive the hand on {} from {!r}: a recording or the simulator only moves "
                                "a hand with --allow-replay-into-hand".format(hand.target, args.source or "sim"))
    if not args.log_max_mb > 0:
        raise InvalidValueError("--log-max-mb must be > 0, got {}".format(args.log_max_mb))
    sink = NoneSink() if hand.kind == "none" else HandSink(hand.target)
    try:
        spec = source_for(args.source, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels,
                          model="the model in {}".format(bundle.path))
    except InvalidValueError:
        sink.close()
        raise
    hop_ms = bundle.feature_config.hop_ms
    source = open_source(spec, chunk_samples_for=lambda fs: max(1, int(round(fs * hop_ms / 1000.0))),
                         fast=args.fast)
    if args.keys:
        from .keys_sink import KeysSink, MultiSink

        keys = KeysSink(args.keys, bundle.class_names)
        sink = keys if args.hand == "none" else MultiSink([sink, keys])
    view = None
    if args.live:  # drawn by its own process, forked here before any engine or decoding thread exists
        from .live_view import LiveView

        view = LiveView(bundle.class_names, channel_names=getattr(source, "channel_names", None) or
                        bundle.contract.get("channel_names"), units=getattr(source, "units", None) or "signal units",
                        drives_fingers=bool(bundle.contract["model"].get("positions", True))).__enter__()
    json_log = JsonLog(args.log, max_bytes=int(args.log_max_mb * 1e6)) if args.log else None
    try:
        rt = Runtime(bundle, source, sink, engine=args.engine, log=lambda m: print(m, file=sys.stderr),
                     on_chunk=view.on_chunk if view else None, json_log=json_log)
        stats = rt.run(seconds=args.seconds)
    finally:
        if view is not None:
            view.__exit__(None, None, None)
    s = stats.summary()
    print("engine {}: {} frames, latency median {:.2f} ms, p99 {:.2f} ms, overruns {}, faults {}".format(
        rt.engine.name, s["frames"], s["latency_ms"]["median"], s["latency_ms"]["p99"], s["overruns"], s["faults"]))
    return 0


def register_keys(sub) -> None:
    """Add ``neurohand keys``."""
    p = sub.add_parser("keys", help="keyboard/game control profiles: check one, or dry-run it on a decoded stream",
                       description="--check validates a profile (with --bundle, its class names too) and exits "
                       "non-zero on any error. --dry-run decodes --source with --bundle and prints the key events "
                       "the profile would send (output enabled from the start), pressing nothing.")
    p.add_argument("--profile", required=True)
    p.add_argument("--check", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--bundle", default=None)
    p.add_argument("--source", default=None, help="as for 'neurohand run' (default sim when it fits the bundle)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fast", action="store_true")
    p.set_defaults(func=_keys)


def _keys(args) -> int:
    from .keymap import load_profile

    classes = Bundle(args.bundle).class_names if args.bundle else None
    prof = load_profile(args.profile, class_names=classes)
    if args.check or not args.dry_run:
        print("{}: OK, {} bindings{}".format(args.profile, len(prof.bindings),
                                             "" if classes else " (class names not checked: no --bundle)"))
        return 0
    if not args.bundle:
        raise InvalidValueError("--dry-run needs --bundle (the decoder whose output drives the keys)")
    from .keys_sink import KeysSink
    from .sources import open_source, source_for

    bundle = Bundle(args.bundle)
    hop_ms = bundle.feature_config.hop_ms
    spec = source_for(args.source, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels,
                      model="the model in {}".format(bundle.path))
    source = open_source(spec, chunk_samples_for=lambda fs: max(1, int(round(fs * hop_ms / 1000.0))),
                         fast=args.fast)
    sink = KeysSink(args.profile, bundle.class_names, dry_run=True, start_enabled=True)
    stats = Runtime(bundle, source, sink, engine="auto").run(seconds=args.seconds)
    print("{} frames, {} key events (dry run: nothing was pressed)".format(stats.frames, len(sink.sent)))
    return 0
