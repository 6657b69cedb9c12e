"""The training progress bar: epochs counted per phase against the phase's own total, a running timer while waiting."""

import io
import re
import time

from rich.console import Console

from neurohand.training.loop import Progress


def _bar(total):
    out = io.StringIO()
    return Progress(enabled=True, total=total, description="first phase",
                    console=Console(file=out, force_terminal=True, width=140)), out


def test_epochs_are_counted_per_phase_and_never_past_the_total():
    bar, out = _bar(5)
    for _ in range(3):
        for loss in (0.5, 0.4):  # optimiser steps show their loss but do not count as epochs
            bar.advance(loss)
        bar.epoch_done("first phase, best val R2 0.5 (epoch 2)")
    bar.phase("refit on all data", total=2)
    bar.epoch_done()
    bar.epoch_done()
    bar.close()
    rows = bar.rows()
    assert [(r["completed"], r["total"]) for r in rows] == [(3, 5), (2, 2)]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) epochs", text)]
    assert (3, 5) in counts and (2, 2) in counts and all(a <= b for a, b in counts)
    assert "nan" not in text and "loss 0.4000" in text


def test_the_timer_runs_while_waiting_for_the_refit_and_a_finished_phase_keeps_its_time():
    bar, _ = _bar(4)
    bar.epoch_done()
    bar.phase("refit on all data (second process, beside the first)", total=4)
    bar.set_completed(2)  # the worker's reports
    first = bar.rows()
    time.sleep(0.3)
    second = bar.rows()
    bar.close()
    assert second[0]["elapsed_s"] == first[0]["elapsed_s"]  # the first phase ended: its time stays
    assert second[1]["elapsed_s"] >= first[1]["elapsed_s"] + 0.25  # the wait is counted, not frozen
    assert (second[1]["completed"], second[1]["total"]) == (2, 4)


def test_no_bar_when_disabled_or_not_a_terminal():
    bar = Progress(enabled=False, total=3)
    bar.epoch_done()
    bar.phase("refit", total=1)
    bar.close()
    assert bar.rows() == []
    quiet = Progress(enabled=True, total=3, console=Console(file=io.StringIO()))  # a file, not a terminal
    quiet.epoch_done()
    quiet.close()
    assert quiet.rows() == []
