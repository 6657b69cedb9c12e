"""The standalone decoding loop: source -> filters -> features -> engine.step -> post-processing -> sink.

One loop for every sink. It is paced by the source's blocking read. Any fault (a stalled source, NaN or saturated
samples, a flat channel, an engine error, a lost hand link, samples older than ``max_age_ms``) puts the sink in its
safe posture at once, is logged, and clears by itself when the cause does; the loop keeps running. Ctrl-C and SIGTERM
send the safe posture before the port closes.

Time is part of safety. Every chunk carries the time its last sample arrived (from the source's sample clock, not the
read), so every frame has an age: a frame older than ``max_age_ms`` when it would be sent (the process was frozen or
starved and a backlog waits) is dropped with a ``late`` fault, and decoding restarts on fresh samples. Each command
moves a finger by at most the velocity limit times the wall-clock time since the command before it (and never more
than one frame's step), so frames decoded in a burst cannot move the hand faster than the limit. Latency is measured
per frame from the arrival of its last sample to the return of the sink's write.
"""

import collections
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from neurohand.decoder.bundle import Bundle
from neurohand.decoder.engines import ENGINES
from neurohand.decoder.postprocess import SAFE_POSTURE, PostConfig, PostProcessor, PostState
from neurohand.decoder.signal_quality import QualityConfig, QualityMonitor
from neurohand.decoder.stream import DecodeFault, StreamDecoder
from neurohand.decoder.validation import check_option, check_positive
from neurohand.firmware_bridge.devices import Sink, Source
from neurohand.firmware_bridge.protocol import grid_steps_within, on_position_grid

from .hand_sink import HandSink  # noqa: F401 - one of the runtime's sinks, importable with them
from .runlog import JsonLog, LatencyHistogram
from .sources import SourceFault, SourceStalled

RUNNING, SAFE, STOPPED = "running", "safe", "stopped"

MAX_AGE_MS = 50.0
"""The oldest a frame may be when its command is sent (from the arrival of its last sample): half the ~100 ms of
delay people tolerate in a controller."""


def command_step_bound(post: PostProcessor) -> float:
    """Return the largest change of a finger between two commands sent, in 0..1 units.

    The post-processor's velocity bound per frame (:attr:`decoder.postprocess.PostProcessor.max_step`, its one owner)
    on the wire's grid (:func:`firmware_bridge.protocol.grid_steps_within`).
    """
    return grid_steps_within(post.max_step)


class NoneSink(Sink):
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
    paced: int = 0  # commands the wall-clock velocity limit held back (frames decoded faster than they came)
    late_frames: int = 0  # frames (or chunks of samples) dropped as older than max_age_ms

    dropped_samples: int = 0
    log_dropped_lines: int = 0  # --log lines lost to write failures (a full disk never stops the hand)

    def summary(self) -> Dict[str, Any]:
        """JSON-ready summary with latency percentiles."""
        lat = self.latency_ms
        return {"frames": self.frames, "chunks": self.chunks, "overruns": self.overruns, "faults": dict(self.faults),
                "faults_cleared": self.faults_cleared, "limit_clips": self.limit_clips, "paced": self.paced,
                "late_frames": self.late_frames,
                "dropped_samples": self.dropped_samples, "log_dropped_lines": self.log_dropped_lines,
                "latency_ms": {"median": lat.percentile(50), "p99": lat.percentile(99), "max": lat.max},
                "state": self.state}


@dataclass(frozen=True)
class RuntimeConfig:
    """How the loop decodes and what it holds to.

    Parameters
    ----------
    engine : {'auto', 'tensorrt', 'onnxruntime', 'numpy'}
        Inference engine (:func:`decoder.engines.create_engine`).
    post : PostConfig, optional
        Post-processing of the commands (default: the bundle's, :meth:`Bundle.post_config`).
    quality : QualityConfig, optional
        Signal checks (default: saturation at the source's announced full scale, the rail detector always).
    hop_budget_ms : float, optional
        A frame whose latency exceeds this counts as an overrun (default: the bundle's hop).
    max_age_ms : float
        Frames older than this when their command would be sent are dropped with a ``late`` fault.
    """

    engine: str = "auto"
    post: Optional[PostConfig] = None
    quality: Optional[QualityConfig] = None
    hop_budget_ms: Optional[float] = None
    max_age_ms: float = MAX_AGE_MS

    def __post_init__(self) -> None:
        check_option("engine", self.engine, ENGINES)
        check_positive("max_age_ms", self.max_age_ms)
        if self.hop_budget_ms is not None:
            check_positive("hop_budget_ms", self.hop_budget_ms)


class Runtime:
    """The decoding loop over one bundle, one source and one sink.

    Parameters
    ----------
    bundle, source, sink
        What to decode with, from and to.
    config : RuntimeConfig
    log : callable, optional
        Called with each event's message (stderr for ``neurohand run``).
    json_log : JsonLog, optional
        Frames, events and the summary as JSON lines.
    on_chunk : callable, optional
        ``on_chunk(runtime, chunk)`` after each chunk read (the live view, the soak).
    record_frames : bool
        Keep every frame in :attr:`frames` (tests, benches).
    clock : callable
        The monotonic clock the source dates its chunks by (the soak's simulated one; default ``time.monotonic``).
    """

    def __init__(self, bundle: Bundle, source: Source, sink: Sink, *, config: RuntimeConfig = RuntimeConfig(),
                 log=None, json_log: Optional[JsonLog] = None, on_chunk=None, record_frames: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        engine, post, quality, hop_budget_ms = config.engine, config.post, config.quality, config.hop_budget_ms
        self.config = config
        self.on_chunk = on_chunk
        self.clock = clock
        self.max_age_s = config.max_age_ms / 1000.0
        # a replay as fast as possible has no clock: its frames have no age and nothing paces them
        self.real_time = bool(source.real_time)
        # saturation by default: at the source's announced full scale where known (an interface's int16 range times
        # its HELLO scale), and the rail detector (QualityConfig.rail_fraction) always
        quality = quality or QualityConfig(saturation=source.full_scale)
        self.json_log = json_log
        bundle.check_source(fs_hz=source.fs_hz, n_channels=source.n_channels)
        self.bundle, self.source, self.sink = bundle, source, sink
        self.safe_posture = np.asarray(sink.safe_posture, float)
        # a class-only model's position head is untrained: its commands hold the safe posture (decoder.stream)
        self.decoder = StreamDecoder(bundle, engine=engine, post=post, hold_posture=self.safe_posture)
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
        # the post-processor's velocity bound, on the wire's grid, holds against the last command actually sent (or
        # the safe posture after a fault): the limit's last line
        self.max_step = command_step_bound(self.decoder.post)
        self.max_speed_per_s = float(self.decoder.post.config.max_speed_per_s)
        self.last_sent = on_position_grid(sink.start_posture())
        self.last_sent_time: Optional[float] = None  # when last_sent was sent (None: nothing yet)
        self.stream.post = PostState(command=self.last_sent.copy())
        self.current_arrival = 0.0  # arrival time of the chunk being decoded
        self.last_probabilities: Optional[np.ndarray] = None
        self.class_names = bundle.class_names
        grips = self.decoder.grips
        if not self.decoder.drives_fingers and grips is None:
            self.log("class-only model exported without grips: the hand holds its safe posture (re-export it to give "
                     "each class a grip); the classes drive keys and the log")
        elif grips is not None:
            self.log("gesture model: at probability {:g} or above a class moves the hand to its grip: {}".format(
                grips.min_probability, "; ".join(grips.describe(self.class_names))))

    def _frame_record(self, t: float, positions, probabilities, command, latency_ms: float, grip: int) -> dict:
        """Return one frame of the log: the command, the most probable class, and the positions or the grip.

        A model that decodes fingers logs its positions; a gesture model the grip its command moves to and the class
        that chose it (``grip``: that class, -1: none yet, logged as null).
        """
        k = int(np.argmax(probabilities))
        fr = {"t": t, "command": command.tolist(), "latency_ms": latency_ms, "class": self.class_names[k],
              "probability": round(float(probabilities[k]), 4)}
        if self.decoder.drives_fingers:
            fr["positions"] = positions.tolist()
        elif self.decoder.grips is not None:
            fr["grip"] = None if grip < 0 else self.decoder.grips.grips[grip]
            fr["grip_class"] = None if grip < 0 else self.class_names[grip]
        return fr

    @property
    def astate(self):
        """The stream's running feature statistics (None for a model trained without the adaptation)."""
        return self.stream.adaptation

    def reset_stream(self) -> None:
        """Restart the features and the engine; the commands continue from the last one sent, within the limit.

        After a fault that is the safe posture: the first command after it is velocity-limited against it.
        """
        self.decoder.reset(self.stream, command=self.last_sent)

    def _guard(self, command: np.ndarray, now: float, diverged: bool) -> Tuple[np.ndarray, bool]:
        """Put a command on the protocol's grid, within the velocity limit of the last one sent (its last line).

        Per frame: ``max_step``. In real time also per second of the wall clock: at most ``max_speed_per_s`` times
        the time since the last command was sent, so a burst of frames moves the hand no faster than the limit.
        Returns the command and whether it was clipped. A clip counts as ``paced`` when the wall clock caused it
        (``diverged``: an earlier frame of the chunk was paced, so the post-processing ran ahead of what was sent),
        else as ``limit_clips`` (the post-processing broke its own bound).
        """
        cmd = on_position_grid(command)
        step = self.max_step
        if self.real_time and self.last_sent_time is not None:
            step = min(step, grid_steps_within(self.max_speed_per_s * max(now - self.last_sent_time, 0.0)))
        lo, hi = self.last_sent - step, self.last_sent + step
        if not (np.any(cmd < lo - 1e-12) or np.any(cmd > hi + 1e-12)):
            return cmd, False
        if not diverged and np.any(np.abs(cmd - self.last_sent) > self.max_step + 1e-12):
            self.stats.limit_clips += 1
        else:
            self.stats.paced += 1
        return on_position_grid(np.clip(cmd, lo, hi)), True

    def _late(self, age_s: float, what: str) -> None:
        self.stats.late_frames += 1
        if self.last_sent_time is None:  # nothing commanded yet: what queued while the runtime started is skipped
            if self.stats.late_frames == 1:
                self.log("skipping samples queued before the start ({:.0f} ms old)".format(age_s * 1000.0))
            return
        self._fault("late", "{} {:.0f} ms old, over the {:g} ms bound (the process was held up): dropped".format(
            what, age_s * 1000.0, self.max_age_s * 1000.0))

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
            detected = self.clock()
            self.sink.safe()
            self.last_sent_time = self.clock()
            self.stats.state = SAFE
            self.stats.safe_events.append({"time": detected, "safe_sent": self.last_sent_time, "kind": kind,
                                           "message": message})
            self._event({"event": "fault", "kind": kind,
                         "message": "fault ({}): {}; hand to safe posture".format(kind, message)})
        self.last_sent = on_position_grid(self.safe_posture)
        self.reset_stream()

    def _recover(self) -> None:
        if self.stats.state == SAFE:
            self.stats.state = RUNNING
            self.stats.faults_cleared += 1
            self._event({"event": "cleared", "message": "fault cleared: decoding resumed"})

    def run(self, *, seconds: Optional[float] = None) -> RuntimeStats:
        """Run until the source ends, ``seconds`` pass, or Ctrl-C/SIGTERM; the sink ends in its safe posture.

        ``seconds`` is wall-clock time for a real-time source and the signal's own time for a replay as fast as
        possible (``--fast --seconds 20`` decodes the first 20 s of the file).
        """
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old[sig] = signal.signal(sig, self.request_stop)
            except ValueError:  # not the main thread
                pass
        t_end = None if seconds is None or not self.real_time else time.monotonic() + seconds
        samples_end = None if seconds is None or self.real_time else seconds * self.source.fs_hz
        samples = 0
        try:
            while not self._stop and (t_end is None or time.monotonic() < t_end) and (
                    samples_end is None or samples < samples_end - 0.5):
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
                samples += len(chunk)
                if self.on_chunk is not None:
                    self.on_chunk(self, chunk)
                age = self.clock() - arrival
                if self.real_time and age > self.max_age_s:
                    self._late(age, "samples")
                    self.reset_stream()
                    continue
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
                chunk_end = self.stream.n_samples - 1  # the index of the chunk's last sample in the stream
                diverged = False  # the post-processing ran ahead of what was sent (a clip, a frame skipped)
                for pos, prob, cmd, end, grip in zip(out.positions, out.class_probabilities, out.commands,
                                                     out.frame_end_samples, out.grip_classes):
                    # the frame's last sample arrived before the chunk's last by the samples between them
                    frame_arrival = arrival - (chunk_end - int(end)) / self.bundle.fs_hz
                    now = self.clock()
                    if self.real_time and now - frame_arrival > self.max_age_s:
                        self._late(now - frame_arrival, "a frame")
                        if self.last_sent_time is None:
                            diverged = True
                            continue
                        break
                    if self.stats.state == SAFE:
                        # the cause cleared: resume only once a fresh window of clean samples has been decoded
                        self._recover()
                    cmd, clipped = self._guard(cmd, now, diverged)
                    diverged = diverged or clipped
                    ok = self.sink.write(cmd, prob)
                    done = self.clock()
                    self.last_command, self.last_probabilities = cmd, prob
                    if ok:
                        self.last_sent, self.last_sent_time = cmd, now
                    else:
                        err = self.sink.link_error()
                        self._fault("link", "hand link down" if err is None else "hand link: {}".format(err))
                    lat = (done - frame_arrival) * 1000.0
                    self.stats.latency_ms.add(lat)
                    if lat > self.hop_budget_ms:
                        self.stats.overruns += 1
                    self.stats.frames += 1
                    if self.record_frames or self.json_log is not None:
                        fr = self._frame_record(done, pos, prob, cmd, lat, int(grip))
                        fr["sample"] = samples - 1 - (chunk_end - int(end))  # its last sample, counted as read
                        if self.record_frames:
                            self.frames.append(fr)
                        if self.json_log is not None:
                            self.json_log.write(fr)
                if diverged and self.stats.state == RUNNING:
                    # the post-processing goes on from what was sent, not from what it asked for
                    self.stream.post = replace(self.stream.post, command=self.last_sent.copy())
        finally:
            self.stats.dropped_samples = int(self.source.dropped_samples)
            for action in (self.sink.safe, self.sink.close):
                try:
                    action()
                except Exception as e:  # noqa: BLE001 - shutting down: report, never mask the loop's own exit
                    self.log("while shutting down the sink: {}: {}".format(type(e).__name__, e))
            self.stats.state = STOPPED if self._stop else self.stats.state
            if self.json_log is not None:
                self.stats.log_dropped_lines = self.json_log.dropped_lines
                self.json_log.write({"summary": self.stats.summary(), "wall_time": time.time()})
                self.json_log.close()
                self.stats.log_dropped_lines = self.json_log.dropped_lines
            for sig, h in old.items():
                signal.signal(sig, h)
        return self.stats
