"""``neurohand bench soak``: hours of simulated signal through the runtime into a pty hand, faults injected at random.

A simulated session loops through the real :class:`~neurohand.deploy.runtime.Runtime` (filters, features,
adaptation, engine, post-processing, the runtime's guards, the ``--log`` writer) as fast as the CPU allows, on a
simulated clock, into the simulated hand's firmware on a real pseudo-terminal through the real
:class:`~neurohand.deploy.runtime.HandSink` (HELLO, SET_POSITIONS, STATUS). Fault episodes are injected at random
times: NaN bursts, a railed (full-scale square wave) signal, stalls, malformed SAMPLES messages, an unplugged hand
(its port closed, reopened at the episode's end), a frozen runtime (the clock jumps 1 s: a backlog of old samples
waits) and a starved one (each chunk read 0-150 ms late). The hand checks every command it receives against the
previous one; the commands sent are checked against the velocity limit over every 100 ms of the simulated clock.
Torch-free.
"""

import collections
import os
import tempfile
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np

from neurohand.decoder.postprocess import PostProcessor
from neurohand.firmware_bridge.devices import Sink, Source
from neurohand.firmware_bridge.interface_link import SourceFault, SourceStalled
from neurohand.firmware_bridge.protocol import SetPositions
from neurohand.firmware_bridge.sim_hand import SimHand

from .runlog import JsonLog
from .runtime import HandSink, Runtime, RuntimeConfig, command_step_bound
from .sources import open_source

KINDS = ("nan", "rail", "stall", "malformed", "unplug", "freeze", "starve")
FREEZE_S = 1.0  # how long a frozen runtime stops
STARVE_MAX_S = 0.15  # how late a starved runtime reads each chunk, at most
WINDOW_S = 0.1  # the velocity limit's wall-clock check: never more than max_speed_per_s * WINDOW_S within it


def rss_mb() -> float:
    """Return the process's current resident memory in MB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class SoakClock:
    """The soak's monotonic clock: it follows the samples' schedule, and jumps or lags as a stalled machine does."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        """Return the simulated time in seconds."""
        return self.t


class Episodes:
    """Random fault episodes over chunk indices; tracks which were detected (safe posture) and cleared."""

    def __init__(self, n_chunks: int, chunks_per_s: float, seed: int, every_s: float = 20.0) -> None:
        rng = np.random.default_rng(seed)
        self.episodes: List[Dict[str, Any]] = []
        t = int(rng.uniform(2, every_s) * chunks_per_s)
        while t < n_chunks - 10 * chunks_per_s:
            kind = KINDS[int(rng.integers(len(KINDS)))]
            length = 1 if kind in ("malformed", "freeze") else int(rng.uniform(0.05, 2.0) * chunks_per_s) + 1
            self.episodes.append({"kind": kind, "start": t, "end": t + length, "detected": False, "cleared": False})
            t += length + int(rng.uniform(5.0, every_s) * chunks_per_s)  # 5 s at least: time to recover
        self._i = 0
        self.chunk = 0

    def current(self, chunk: int) -> Optional[Dict[str, Any]]:
        """Return the episode covering ``chunk`` (or None), moving on past finished ones."""
        self.chunk = chunk
        while self._i < len(self.episodes) and chunk >= self.episodes[self._i]["end"]:
            self._i += 1
        if self._i < len(self.episodes) and chunk >= self.episodes[self._i]["start"]:
            return self.episodes[self._i]
        return None

    def previous(self) -> Optional[Dict[str, Any]]:
        """Return the last episode that has ended."""
        return self.episodes[self._i - 1] if self._i > 0 else None

    def commanded(self) -> None:
        """Note that the hand was sent a command: the episode that ended last has cleared."""
        prev = self.previous()
        if prev is not None and self.current(self.chunk) is None:
            prev["cleared"] = True

    def made_safe(self) -> None:
        """Note that the hand was sent its safe posture: the episode under way (or a freeze's backlog) was detected."""
        cur = self.current(self.chunk)
        if cur is None:
            prev = self.previous()  # a freeze lasts one chunk; its backlog is found on the chunks after it
            cur = prev if prev is not None and prev["kind"] in ("freeze", "starve") and not prev["cleared"] else None
        if cur is not None:
            cur["detected"] = True


class SoakSource(Source):
    """A looping recording (opened through :func:`deploy.sources.open_source`) on the soak's clock, with faults."""

    real_time = True  # dated by the soak's clock: the runtime checks ages and paces commands as on a device

    def __init__(self, recording, *, chunk_samples: int, episodes: Episodes, clock: SoakClock, seed: int) -> None:
        self.inner = open_source("replay:soak", recording=recording, chunk_samples=chunk_samples, fast=True, loop=True)
        self.fs_hz, self.n_channels = self.inner.fs_hz, self.inner.n_channels
        self.episodes = episodes
        self.clock = clock
        self.rng = np.random.default_rng(seed + 1)
        self.amplitude = float(np.abs(recording.signals).max()) * 20
        self.hand: Optional["SoakHand"] = None
        self._frozen: Optional[int] = None
        self._index = 0
        self._samples = 0

    def read(self) -> Tuple[np.ndarray, float]:
        """Return the next chunk and when its last sample arrived, on the soak's clock that the episodes move."""
        index = self._index
        chunk, _ = self.inner.read()
        self._index += 1
        self._samples += len(chunk)
        due = self._samples / self.fs_hz
        ep = self.episodes.current(index)
        if self.hand is not None:
            self.hand.unplugged = ep is not None and ep["kind"] == "unplug"
        self.clock.t = max(self.clock.t + 1e-4, due)  # read as it arrives, 0.1 ms after the previous read at least
        if ep is None:
            return chunk, due
        if ep["kind"] == "freeze" and self._frozen != ep["start"]:
            self._frozen = ep["start"]
            self.clock.t += FREEZE_S  # stopped for a second: what arrived meanwhile waits, and is read late
        elif ep["kind"] == "starve":  # late by up to STARVE_MAX_S; the first read past the bound
            low = 0.1 if index == ep["start"] else 0.0
            self.clock.t = max(self.clock.t, due + self.rng.uniform(low, STARVE_MAX_S))
        elif ep["kind"] == "nan":
            chunk = chunk.copy()
            chunk[::3, 0] = np.nan
        elif ep["kind"] == "rail":
            chunk = np.full_like(chunk, self.amplitude)
            chunk[1::2] = -self.amplitude
        elif ep["kind"] == "stall":
            raise SourceStalled("no samples (injected)")
        elif ep["kind"] == "malformed":
            raise SourceFault("signal", "malformed SAMPLES (injected)")
        return chunk, due

    def close(self) -> None:
        """Close the replay."""
        self.inner.close()


class CheckingHand(SimHand):
    """The simulated hand's firmware on a pty, counting commands received past the velocity limit."""

    def __init__(self, max_step: float) -> None:
        super().__init__()
        self.max_step_units = int(round(max_step * 1000))
        self.safe_units = tuple(int(v) for v in self.config.safe_posture)
        self.previous: Optional[Tuple[int, ...]] = None
        self.violations = 0
        self.received = 0

    def _handle(self, msg, now: float) -> None:
        if isinstance(msg.body, SetPositions):
            c = tuple(msg.body.positions)
            self.received += 1
            if c == self.safe_units:  # the fault's response, exempt: the firmware ramps to it at its own speed
                self.previous = None
            elif self.previous is not None and max(abs(a - b) for a, b in zip(c, self.previous)) > \
                    self.max_step_units:
                self.violations += 1
            if c != self.safe_units:
                self.previous = c
        super()._handle(msg, now)


class SoakHand(Sink):
    """The pty hand behind :class:`HandSink`, which an episode unplugs; it checks what is sent over each 100 ms."""

    name = "soak-hand"

    def __init__(self, sink: HandSink, episodes: Episodes, clock: SoakClock, max_speed_per_s: float) -> None:
        self.sink, self.episodes, self.clock = sink, episodes, clock
        self.safe_posture = sink.safe_posture
        self.unplugged = False
        self._pulled = False
        self.window: Deque[Tuple[float, np.ndarray]] = collections.deque()
        self.window_bound = max_speed_per_s * WINDOW_S + 1e-9
        self.window_violations = 0
        self.largest_window_move = 0.0

    def start_posture(self):
        """Where the hand reports it is."""
        return self.sink.start_posture()

    def write(self, command, probabilities=None) -> bool:
        """Send unless unplugged; after an unplug the port is reopened (HELLO again) before anything moves."""
        if self.unplugged:
            self._pulled = True
            return False
        if self._pulled:
            self._pulled = False
            self.sink.link.close()  # the port went away: the link reopens it, with the hand's HELLO
        if not self.sink.write(command, probabilities):
            return False
        now, c = self.clock(), np.asarray(command, float)
        while self.window and now - self.window[0][0] > WINDOW_S:
            self.window.popleft()
        for _, old in self.window:
            move = float(np.max(np.abs(c - old)))
            self.largest_window_move = max(self.largest_window_move, move)
            if move > self.window_bound:
                self.window_violations += 1
                break
        self.window.append((now, c))
        self.episodes.commanded()
        return True

    def safe(self) -> bool:
        """Send the safe posture (a new stretch for the window check: the commands after it ramp from it)."""
        self.episodes.made_safe()
        self.window.clear()
        if self.unplugged:
            self._pulled = True
            return False
        return self.sink.safe()

    def link_error(self) -> Optional[str]:
        """Why the last write failed."""
        return "unplugged (injected)" if self.unplugged or self._pulled else self.sink.link_error()

    def close(self) -> None:
        """Safe posture, then close the port."""
        self.sink.close()


def soak(bundle_dir: str, *, hours: float, seed: int = 0, engine: str = "numpy",
         log_dir: Optional[str] = None) -> Dict[str, Any]:
    """Replay ``hours`` of simulated signal through the runtime into a pty hand with random faults.

    Returns
    -------
    dict
        ``memory_growth_mb_per_hour`` (resident memory from the end of the first tenth to the end, per simulated
        hour), ``velocity_limit_violations`` (commands the hand received more than a frame's step from the previous
        one, the safe posture exempt), ``window_violations`` (commands sent more than ``max_speed_per_s * 0.1`` from
        one sent within the 100 ms before, on the simulated clock), ``faults_injected``, ``faults_detected`` (the
        safe posture was sent), ``faults_cleared`` (decoding resumed and the hand was sent commands again),
        ``log_lines``, ``frames``, ``wall_s``.
    """
    from neurohand.decoder.bundle import Bundle
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    bundle = Bundle(bundle_dir)
    rec = simulate_recording(SimulatorConfig(minutes=1.0, seed=seed + 7, n_channels=bundle.n_channels,
                                             fs_hz=bundle.fs_hz))
    chunks_per_s = rec.fs_hz / bundle.hop_samples
    n_chunks = int(hours * 3600 * chunks_per_s)
    episodes = Episodes(n_chunks, chunks_per_s, seed)
    clock = SoakClock()
    source = SoakSource(rec, chunk_samples=bundle.hop_samples, episodes=episodes, clock=clock, seed=seed)
    post = PostProcessor(bundle.post_config(), hop_ms=bundle.feature_config.hop_ms)
    # the hand checks what it receives against the bound the runtime guards, from the same owners
    with CheckingHand(command_step_bound(post)) as device, tempfile.TemporaryDirectory() as tmp:
        hand = SoakHand(HandSink(device.port), episodes, clock, post.config.max_speed_per_s)
        source.hand = hand
        log = JsonLog(os.path.join(log_dir or tmp, "soak.jsonl"), max_bytes=20 * 10 ** 6, backups=1)
        marks = []

        def on_chunk(runtime, chunk):
            if runtime.stats.chunks >= n_chunks:
                runtime.request_stop()
            if runtime.stats.chunks in (n_chunks // 10, n_chunks - 1) or runtime.stats.chunks == 1:
                marks.append((runtime.stats.chunks, rss_mb()))

        rt = Runtime(bundle, source, hand, json_log=log, on_chunk=on_chunk, clock=clock,
                     config=RuntimeConfig(engine=engine))
        t0 = time.monotonic()
        stats = rt.run()
        wall = time.monotonic() - t0
        time.sleep(0.05)  # the hand's firmware reads the last commands
        lines = log.lines
    injected = [e for e in episodes.episodes if e["start"] < stats.chunks]
    (c0, m0), (c1, m1) = marks[-2], marks[-1]
    sim_h = max(1e-9, (c1 - c0) / chunks_per_s / 3600.0)
    return {"benchmark": "soak", "hours": hours, "frames": stats.frames, "chunks": stats.chunks,
            "memory_growth_mb_per_hour": (m1 - m0) / sim_h, "rss_mb": m1,
            "velocity_limit_violations": device.violations, "window_violations": hand.window_violations,
            "largest_move_within_100ms": hand.largest_window_move, "hand_received": device.received,
            "limit_clips": stats.limit_clips, "paced": stats.paced, "late_frames": stats.late_frames,
            "faults_injected": len(injected), "faults_detected": sum(e["detected"] for e in injected),
            "faults_cleared": sum(e["cleared"] for e in injected),
            "faults_by_kind": {k: sum(e["kind"] == k for e in injected) for k in KINDS},
            "undetected": [e for e in injected if not e["detected"]][:5],
            "runtime_faults": dict(stats.faults), "log_lines": lines, "wall_s": wall}
