"""The refit in a second process, beside the first phase, when training on a CPU with two or more cores.

The refit (training + validation data, stopped at the first phase's best epoch on the same learning-rate schedule)
does not depend on the first phase until its very end, so on a CPU it runs alongside it: two processes with one
thread each. A recurrent network's small matrix products gain little from a second thread (measured on the project's
2-core machine: a GRU 2 x 128 training step on 32 x 200 frames takes 303 ms with two threads and 319 ms with one), so
the two phases together take little longer than one.

The worker keeps its weights at every epoch from a few before the first phase's best so far (which only moves
later), and at the end hands back the mean of its last ``refit.average_epochs`` up to the epoch the first phase
settled on, as the sequential refit does. It never runs more than ``LEAD_EPOCHS`` past the first phase's best so
far: epochs beyond the final best are thrown away, and the first phase runs ``patience`` epochs past its best before
it stops, so the worker waits instead and uses the wait to fit the classic baselines (which the parent would
otherwise fit after the first phase, on the critical path). Whichever process claims the baselines first fits them.
It ignores Ctrl-C: the parent decides (an interrupted first phase keeps its own best model and stops the worker).

A spawned process imports the main script again before it runs anything, so a script that calls
:func:`training.train.train` outside an ``if __name__ == "__main__":`` block would start it a second time there, and
the process dies while starting. :func:`spawn_reruns_caller` tells such a call beforehand, and :class:`ParallelRefit`
raises :class:`RefitDidNotStart` for a worker that ended before it reported in: either way the caller refits after the
first phase instead. The worker's inputs go through a file, so starting it never waits on the worker.
"""

from __future__ import annotations

import ast
import inspect
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from neurohand.decoder.feature_config import FeatureConfig
from neurohand.deploy.process_memory import peak_rss_mb

from .baselines import fit_baselines, load_baselines, save_baselines
from .config import TrainConfig
from .data import FrameSet, validation_split
from .loop import Progress, build_model, fit

LEAD_EPOCHS = 2
"""How many epochs past the first phase's best so far the worker trains before it waits."""

START_TIMEOUT_S = 120.0
"""How long after its start the worker may take to report in (it takes seconds) before it counts as not started."""


class RefitDidNotStart(RuntimeError):
    """The worker ended, or hung, before it reported in: nothing of the refit has run."""


def spawn_reruns_caller() -> bool:
    """Whether a spawned process would run the code that calls this again, as it imports the main script.

    True when the call comes from the main script's top-level code outside an ``if __name__ == "__main__":`` block
    (multiprocessing's rule: a package's ``__main__`` module, an interactive session or ``python -c`` is not
    imported again). False when it cannot tell (no source to read).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec_name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if path is None or spec_name == "__main__" or spec_name.endswith(".__main__"):
        return False
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:  # called from a function the script's top level did not start (a thread, say)
        return False
    line = frame.f_lineno
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return False
    for stmt in tree.body:
        if stmt.lineno <= line <= (getattr(stmt, "end_lineno", None) or stmt.lineno):
            return not _in_main_guard(stmt, line)
    return False


def _in_main_guard(stmt: ast.stmt, line: int) -> bool:
    """Whether ``line`` of top-level statement ``stmt`` is in the body of ``if __name__ == "__main__":``."""
    if not (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare) and len(stmt.test.ops) == 1
            and isinstance(stmt.test.ops[0], ast.Eq)):
        return False
    sides = [stmt.test.left, stmt.test.comparators[0]]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    values = {s.value for s in sides if isinstance(s, ast.Constant)}
    last = getattr(stmt.body[-1], "end_lineno", None) or stmt.body[-1].lineno
    return names == {"__name__"} and values == {"__main__"} and stmt.body[0].lineno <= line <= last


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class RecentStates:
    """A model's weights at the end of recent epochs, and their mean: the refit's Polyak averaging.

    Parameters
    ----------
    n_average : int
        How many epochs, up to and including the chosen one, the mean covers.
    """

    def __init__(self, n_average: int) -> None:
        self.n_average = int(n_average)
        self._states: Dict[int, Dict[str, np.ndarray]] = {}

    def add(self, epoch: int, model: torch.nn.Module, *, earliest_choice: int) -> None:
        """Keep ``model``'s weights at ``epoch``; drop those no mean up to ``earliest_choice`` or later needs."""
        self._states[epoch] = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
        for e in [e for e in self._states if e <= earliest_choice - self.n_average]:
            del self._states[e]

    def mean(self, epoch: int) -> Dict[str, np.ndarray]:
        """Element-wise mean of the weights of the last ``n_average`` epochs up to ``epoch`` (original dtypes)."""
        chosen = [self._states[e] for e in range(max(1, epoch - self.n_average + 1), epoch + 1)]
        return {k: np.mean([s[k] for s in chosen], axis=0).astype(chosen[-1][k].dtype) for k in chosen[-1]}


def _worker(inputs: str, n_channels: int, n_classes: int, inbox: Any, outbox: Any, claim: Any, out_dir: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    parent = os.getppid()
    try:
        outbox.send(("ready", 0))
        from threadpoolctl import threadpool_limits

        with open(inputs, "rb") as f:
            config, frames, fcfg = pickle.load(f)  # written by the parent just before (its own temporary folder)
        os.remove(inputs)
        cpu = torch.device("cpu")
        model = build_model(config, frames, n_classes, cpu, seed_offset=1)
        recent = RecentStates(config.refit.average_epochs)
        best, stop_at = 0, 0  # the first phase's best epoch so far; the epoch it settled on (0: not yet)
        baselines = None

        def take(message: Tuple[str, int]) -> None:
            nonlocal best, stop_at
            kind, epoch = message
            best = max(best, epoch)
            if kind == "stop":
                stop_at = epoch

        def on_epoch(epoch: int, m: torch.nn.Module, improved: bool) -> bool:
            nonlocal baselines
            outbox.send(("epoch", epoch))  # the parent's progress bar; a few bytes an epoch
            while inbox.poll():
                take(inbox.recv())
            recent.add(epoch, m, earliest_choice=best)  # the first phase's best only moves later
            ahead = stop_at == 0 and epoch >= best + LEAD_EPOCHS
            if ahead and baselines is None and _claim(claim, 1, lambda: os.getppid() == parent):
                with threadpool_limits(1):  # the other core is busy: one BLAS thread, or OpenBLAS crawls
                    baselines = fit_baselines(*validation_split(frames, fraction=config.val_fraction)[:2])
            while stop_at == 0 and epoch >= best + LEAD_EPOCHS:
                take(inbox.recv())  # blocks until the parent moves on; EOFError once it is gone
            return 0 < stop_at <= epoch

        fit(model, frames, None, config, fcfg, n_channels, cpu, {"world": 1, "rank": 0, "local_rank": 0},
            stop_after=None, bar=Progress(enabled=False, total=0), seed_offset=1, on_epoch=on_epoch)
        while stop_at == 0:
            take(inbox.recv())
        np.savez(os.path.join(out_dir, "refit.npz"), **recent.mean(stop_at))
        if baselines:
            save_baselines(os.path.join(out_dir, "baselines.npz"), baselines)
        outbox.send(("ok", peak_rss_mb()))  # a few bytes: one atomic write, never half a message
    except BaseException as exc:  # reported to the parent, which keeps the first phase's model
        try:
            outbox.send(("error", "{}: {}".format(type(exc).__name__, exc)))
        except OSError:  # the parent has gone (its end of the inbox closed: EOFError above): nobody to tell
            pass


def _claim(claim: Any, who: int, other_alive: Callable[[], bool]) -> bool:
    """Claim the baselines for ``who`` (1: worker, 2: parent) unless the other process already has.

    A process killed while holding the lock never releases it: then the survivor claims them.
    """
    lock = claim.get_lock()
    while not lock.acquire(timeout=0.5):
        if not other_alive():
            return True
    try:
        if claim.value == 0:
            claim.value = who
        return claim.value == who
    finally:
        lock.release()


class ParallelRefit:
    """A refit training in a spawned process while the caller runs the first phase.

    The two processes talk through two one-way pipes carrying a few bytes per message (the first phase's best
    epoch; the worker's outcome) and the worker writes its weights and baselines to files in a temporary folder. So
    neither side ever blocks on the other dying: a closed pipe reads as end-of-file. (A shared
    ``multiprocessing.Event`` would not do: its ``set()`` waits for every sleeper to wake, and a killed one never
    does.)

    Parameters
    ----------
    config : TrainConfig
    frames : FrameSet
        Training and validation frames together.
    fcfg : FeatureConfig
    n_channels, n_classes : int
    fit_classic : bool
        Fit the classic baselines (:func:`training.baselines.fit_baselines`) while waiting, if the caller has not
        claimed them (:meth:`claim_baselines`) by then; they come back as :attr:`baselines`.
    """

    def __init__(self, *, config: TrainConfig, frames: FrameSet, fcfg: FeatureConfig, n_channels: int,
                 n_classes: int, fit_classic: bool = True) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process that already runs torch's thread pools
        self._dir = tempfile.mkdtemp(prefix="neurohand-refit-")
        inputs = os.path.join(self._dir, "inputs.pickle")
        with open(inputs, "wb") as f:  # through a file: Process.start() writes its arguments into a pipe and would
            pickle.dump((config, frames, fcfg), f, protocol=pickle.HIGHEST_PROTOCOL)  # block on a dead worker
        # who fits the baselines: 0 nobody yet, 1 the worker, 2 the parent
        self._claim = ctx.Value("i", 0 if fit_classic else 2)
        inbox, self._to_worker = ctx.Pipe(duplex=False)
        self._from_worker, outbox = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_worker, name="neurohand-refit", daemon=True,
                                 args=(inputs, n_channels, n_classes, inbox, outbox, self._claim, self._dir))
        self._started = False  # the worker has reported in
        self._start_deadline = time.monotonic() + START_TIMEOUT_S
        try:
            self._proc.start()
        except BaseException:  # e.g. called while this process itself starts: leave no folder behind
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        inbox.close()  # the worker's ends: with only the worker holding them, its death reads as end-of-file
        outbox.close()
        self.peak_rss_mb = 0.0  # the worker's memory high-water mark, known once it has finished
        self.baselines: Optional[Dict[str, Any]] = None  # the classic baselines, if the worker fitted them

    def _send(self, kind: str, epoch: int) -> None:
        try:
            self._to_worker.send((kind, int(epoch)))
        except OSError:  # the worker has ended; result() says how
            pass

    def on_phase1_epoch(self, epoch: int, model: torch.nn.Module, improved: bool) -> bool:
        """:func:`training.loop.fit`'s ``on_epoch`` hook for the first phase: tells the worker the best epoch so far."""
        if improved:
            self._send("best", epoch)
        return False

    def claim_baselines(self) -> bool:
        """Whether the caller should fit the baselines itself (the worker has not started them); then it won't."""
        return _claim(self._claim, 2, self._proc.is_alive)

    def result(self, best_epoch: int, *, on_epoch: Optional[Callable[[int], None]] = None) -> Dict[str, torch.Tensor]:
        """Wait for the worker to reach ``best_epoch`` and return its weights there.

        ``on_epoch(n)`` is called as the worker reports its epochs (``n`` at most ``best_epoch``).

        Raises
        ------
        RefitDidNotStart
            The worker ended, or hung, before it reported in.
        RuntimeError
            The worker failed or ended without a result; the message says why.
        """
        self._send("stop", best_epoch)
        status, payload = self._receive(lambda e: on_epoch(min(e, best_epoch)) if on_epoch else None)
        self._proc.join()
        if status != "ok":
            raise RuntimeError("the refit process failed: {}".format(payload))
        self.peak_rss_mb = float(payload)
        baselines_path = os.path.join(self._dir, "baselines.npz")
        if os.path.exists(baselines_path):
            self.baselines = load_baselines(baselines_path)
        with np.load(os.path.join(self._dir, "refit.npz"), allow_pickle=False) as z:
            return {k: torch.from_numpy(z[k]) for k in z.files}

    def _receive(self, on_epoch: Callable[[int], None]) -> Tuple[str, Any]:
        """Return the worker's outcome, passing its epoch reports on; never block on a worker that has ended."""
        while True:
            if self._from_worker.poll(0.2):
                try:
                    status, payload = self._from_worker.recv()
                except EOFError:
                    break
                if status == "epoch":
                    on_epoch(int(payload))
                    continue
                if status != "ready":
                    return status, payload
                self._started = True
            elif not self._proc.is_alive():
                if not self._from_worker.poll(0):  # nothing it sent just before it ended
                    break
            elif not self._started and time.monotonic() > self._start_deadline:
                self._proc.terminate()
                self._proc.join()
                raise RefitDidNotStart("the refit process did not start within {:g} s".format(START_TIMEOUT_S))
        self._proc.join()
        if not self._started:
            raise RefitDidNotStart("the refit process ended while starting (exit code {})".format(self._proc.exitcode))
        raise RuntimeError("the refit process ended without a result (exit code {})".format(self._proc.exitcode))

    def close(self) -> None:
        """Stop the worker if it still runs and remove its folder."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()
        self._to_worker.close()
        self._from_worker.close()
        shutil.rmtree(self._dir, ignore_errors=True)
