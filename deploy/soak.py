"""``neurohand bench soak``: hours of simulated signal through the runtime, faults injected at random, fast.

A simulated session loops through the real :class:`~neurohand.deploy.runtime.Runtime` (filters, features,
adaptation, engine, post-processing, the runtime's guard, the ``--log`` writer) as fast as the CPU allows, with
episodes of NaN bursts, a railed (full-scale square wave) signal, stalls, malformed SAMPLES messages and an
unplugged hand injected at random times. A virtual hand receives the commands in-process (the pty path is what the
tests exercise) and checks every one against the previous one it received. Torch-free.
"""

import os
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

from neurohand.decoder.postprocess import SAFE_POSTURE, PostProcessor
from neurohand.firmware_bridge.devices import Sink
from neurohand.firmware_bridge.interface_link import SourceFault

from .runlog import JsonLog
from .runtime import Runtime, command_step_bound
from .sources import RecordingSource

KINDS = ("nan", "rail", "stall", "malformed", "unplug")


def rss_mb() -> float:
    """Return the process's current resident memory in MB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class VirtualHand(Sink):
    """A sink that checks the velocity limit on what it receives, and can be unplugged."""

    name = "virtual-hand"
    safe_posture = SAFE_POSTURE

    def __init__(self, max_step: float, episodes: Optional["Episodes"] = None) -> None:
        self.max_step = max_step
        self.episodes = episodes  # told when a command arrives (an episode cleared) or the safe posture (detected)
        self.last = np.asarray(SAFE_POSTURE, float)
        self.unplugged = False
        self._replugged = False
        self.violations = 0
        self.received = 0
        self.safe_calls = 0

    def start_posture(self):
        """Start from the safe posture (where the hand starts)."""
        return self.safe_posture

    def write(self, command, probabilities=None) -> bool:
        """Receive a command unless unplugged; count a violation if it jumps past the limit."""
        if self.unplugged:
            self._replugged = True
            return False
        if self._replugged:  # as HandSink does: a re-established link is a link fault, the safe posture goes first
            self._replugged = False
            return False
        c = np.asarray(command, float)
        if np.max(np.abs(c - self.last)) > self.max_step + 1e-9:
            self.violations += 1
        self.last = c
        self.received += 1
        if self.episodes is not None:
            self.episodes.commanded()
        return True

    def safe(self) -> bool:
        """Go to the safe posture (the one command exempt from the limit: the hand's firmware ramps to it)."""
        self.safe_calls += 1
        if self.episodes is not None:
            self.episodes.made_safe()
        if self.unplugged:
            self._replugged = True
            return False
        self._replugged = False
        self.last = np.asarray(self.safe_posture, float)
        return True

    def close(self) -> None:
        """Nothing to close."""


class Episodes:
    """Random fault episodes over chunk indices; tracks which were detected (safe posture) and cleared."""

    def __init__(self, n_chunks: int, chunks_per_s: float, seed: int, every_s: float = 20.0) -> None:
        rng = np.random.default_rng(seed)
        self.episodes: List[Dict[str, Any]] = []
        t = int(rng.uniform(2, every_s) * chunks_per_s)
        while t < n_chunks - 10 * chunks_per_s:
            kind = KINDS[int(rng.integers(len(KINDS)))]
            length = 1 if kind == "malformed" else int(rng.uniform(0.05, 2.0) * chunks_per_s) + 1
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
        """Note that the hand received a command: the episode that ended last has cleared."""
        prev = self.previous()
        if prev is not None and self.current(self.chunk) is None:
            prev["cleared"] = True

    def made_safe(self) -> None:
        """Note that the hand was sent its safe posture: the episode under way was detected."""
        cur = self.current(self.chunk)
        if cur is not None:
            cur["detected"] = True


class SoakSource(RecordingSource):
    """A looping recording with the episodes' faults injected; ``malformed`` raises what the interface would."""

    def __init__(self, recording, *, chunk_samples: int, episodes: Episodes) -> None:
        super().__init__(recording, chunk_samples=chunk_samples, fast=True, loop=True, inject=self._inject)
        self.episodes = episodes
        self.amplitude = float(np.abs(recording.signals).max()) * 20
        self.hand: Optional[VirtualHand] = None

    def _inject(self, i: int, x: np.ndarray):
        ep = self.episodes.current(i)
        if self.hand is not None:
            self.hand.unplugged = ep is not None and ep["kind"] == "unplug"
        if ep is None:
            return x
        if ep["kind"] == "nan":
            x = x.copy()
            x[::3, 0] = np.nan
        elif ep["kind"] == "rail":
            x = np.full_like(x, self.amplitude)
            x[1::2] = -self.amplitude
        elif ep["kind"] == "stall":
            return None
        elif ep["kind"] == "malformed":
            raise SourceFault("signal", "malformed SAMPLES (injected)")
        return x


def soak(bundle_dir: str, *, hours: float, seed: int = 0, engine: str = "numpy",
         log_dir: Optional[str] = None) -> Dict[str, Any]:
    """Replay ``hours`` of simulated signal through the runtime with random faults; return the soak's figures.

    Returns
    -------
    dict
        ``memory_growth_mb_per_hour`` (resident memory from the end of the first tenth to the end, per simulated
        hour), ``velocity_limit_violations`` (commands the virtual hand received more than the limit from the
        previous one, the safe posture exempt), ``faults_injected``, ``faults_cleared`` (episodes after which
        decoding resumed and the hand received commands again), ``log_lines``, ``frames``, ``wall_s``.
    """
    from neurohand.decoder.bundle import Bundle
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    bundle = Bundle(bundle_dir)
    rec = simulate_recording(SimulatorConfig(minutes=1.0, seed=seed + 7, n_channels=bundle.n_channels,
                                             fs_hz=bundle.fs_hz))
    chunks_per_s = rec.fs_hz / bundle.hop_samples
    n_chunks = int(hours * 3600 * chunks_per_s)
    episodes = Episodes(n_chunks, chunks_per_s, seed)
    source = SoakSource(rec, chunk_samples=bundle.hop_samples, episodes=episodes)
    # the hand checks what it receives against the bound the runtime guards, from the same owners
    hand = VirtualHand(command_step_bound(PostProcessor(bundle.post_config(), hop_ms=bundle.feature_config.hop_ms)),
                       episodes)
    source.hand = hand
    with tempfile.TemporaryDirectory() as tmp:
        log = JsonLog(os.path.join(log_dir or tmp, "soak.jsonl"), max_bytes=20 * 10 ** 6, backups=1)
        marks = []

        def on_chunk(runtime, chunk):
            if runtime.stats.chunks >= n_chunks:
                runtime.request_stop()
            if runtime.stats.chunks in (n_chunks // 10, n_chunks - 1) or runtime.stats.chunks == 1:
                marks.append((runtime.stats.chunks, rss_mb()))

        rt = Runtime(bundle, source, hand, engine=engine, json_log=log, on_chunk=on_chunk)
        t0 = time.monotonic()
        stats = rt.run()
        wall = time.monotonic() - t0
        lines = log.lines
    injected = [e for e in episodes.episodes if e["start"] < stats.chunks]
    (c0, m0), (c1, m1) = marks[-2], marks[-1]
    sim_h = max(1e-9, (c1 - c0) / chunks_per_s / 3600.0)
    return {"benchmark": "soak", "hours": hours, "frames": stats.frames, "chunks": stats.chunks,
            "memory_growth_mb_per_hour": (m1 - m0) / sim_h, "rss_mb": m1,
            "velocity_limit_violations": hand.violations, "limit_clips": stats.limit_clips,
            "faults_injected": len(injected), "faults_detected": sum(e["detected"] for e in injected),
            "faults_cleared": sum(e["cleared"] for e in injected),
            "faults_by_kind": {k: sum(e["kind"] == k for e in injected) for k in KINDS},
            "runtime_faults": dict(stats.faults), "log_lines": lines, "wall_s": wall,
            "latency_ms": stats.summary()["latency_ms"]}
