"""Reproducible experiments behind the README's results: ``neurohand experiment ninapro|3dc|sim|recalibration``.

Each runs the same commands a user would (import or simulate, train with the default settings, evaluate on the
held-out part) and prints a table, and with ``--json`` one JSON object. Nothing here is tuned per data set beyond
what ``neurohand train`` itself does.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence

import numpy as np

from .data import split_last_repetitions
from .evaluate import evaluate
from .train import TrainConfig, train, with_overrides

DEFAULT_CONFIG = TrainConfig()


def _run(train_recs, test_recs, model_dir: str, config: TrainConfig, report_dir: str, title: str) -> Dict[str, Any]:
    res = train(train_recs, model_dir, config=config, progress=False, log=lambda m: None)
    out = evaluate(model_dir, test_recs, report_dir=report_dir, title=title)
    out["train_wall_s"] = res.wall_s
    out["best_epoch"] = res.best_epoch
    return out


def _mean_of(runs: Sequence[Dict[str, Any]], decoder: str, key: str):
    vals = [r["decoders"][decoder][key] for r in runs if decoder in r["decoders"]
            and r["decoders"][decoder].get(key) is not None]
    return float(np.mean(vals)) if vals else None


def ninapro(data_dir: str, out_dir: str, *, seeds: Sequence[int] = (0, 1, 2), config: TrainConfig = DEFAULT_CONFIG
            ) -> Dict[str, Any]:
    """NinaPro DB1 s2 e1: train on repetitions 1-7, test on 8-10, one run per seed."""
    from neurohand.calibration.importers import import_ninapro

    path = os.path.join(data_dir, "ninapro_db1_s2_e1", "S2_A1_E1.mat")
    train_rec = import_ninapro(path, reps=range(1, 8))
    test_rec = import_ninapro(path, reps=[8, 9, 10])
    runs = []
    for seed in seeds:
        d = os.path.join(out_dir, "ninapro_seed{}".format(seed))
        runs.append(_run([train_rec], [test_rec], os.path.join(d, "model"), with_overrides(config, seed=seed),
                         os.path.join(d, "report"), "NinaPro DB1 s2 e1, test repetitions 8-10, seed {}".format(seed)))
    names = list(runs[0]["decoders"])
    summary = {n: {k: _mean_of(runs, n, k) for k in ("r2_mean", "pearson_r_mean", "rmse_mean", "delay_ms",
                                                     "accuracy", "macro_f1")} for n in names}
    for n in names:
        if summary[n]["r2_mean"] is not None:
            summary[n]["r2_per_finger"] = [float(v) for v in np.mean(
                [r["decoders"][n]["r2_per_finger"] for r in runs], axis=0)]
            summary[n]["r2_by_seed"] = [r["decoders"][n]["r2_mean"] for r in runs]
    return {"experiment": "ninapro", "seeds": list(seeds), "mean_over_seeds": summary,
            "runs": [_slim(r) for r in runs]}


def threedc(data_dir: str, out_dir: str, *, participants: Sequence[int] = (1, 2, 3, 4, 5),
            seeds: Sequence[int] = (0,), config: TrainConfig = DEFAULT_CONFIG) -> Dict[str, Any]:
    """3DC: per participant and seed, train on ``train/``, test on ``test/``; window (frame) accuracy.

    ``accuracy`` and ``mean_accuracy`` are means over ``seeds``; ``accuracy_by_seed`` holds each seed's table and
    ``wins_by_seed`` how many participants the recurrent decoder beat LDA on at each seed.
    """
    from neurohand.calibration.importers import import_3dc

    recs = {}
    for p in participants:
        base = os.path.join(data_dir, "3dc_p1-5", "Participant{}".format(p))
        recs[p] = (import_3dc(os.path.join(base, "train")), import_3dc(os.path.join(base, "test")))
    runs: Dict[int, Dict[int, Dict[str, Any]]] = {}
    for seed in seeds:
        runs[seed] = {}
        for p in participants:
            d = os.path.join(out_dir, "3dc_seed{}".format(seed), "3dc_p{}".format(p))
            runs[seed][p] = _run([recs[p][0]], [recs[p][1]], os.path.join(d, "model"),
                                 with_overrides(config, seed=seed), os.path.join(d, "report"),
                                 "3DC participant {}, seed {}".format(p, seed))
    names = list(runs[seeds[0]][participants[0]]["decoders"])
    by_seed = {str(s): {str(p): {n: runs[s][p]["decoders"][n]["accuracy"] for n in names} for p in participants}
               for s in seeds}
    table = {str(p): {n: float(np.mean([by_seed[str(s)][str(p)][n] for s in seeds])) for n in names}
             for p in participants}
    mean = {n: float(np.mean([table[str(p)][n] for p in participants])) for n in names}
    recurrent = names[0]
    wins = {str(s): int(sum(by_seed[str(s)][str(p)][recurrent] > by_seed[str(s)][str(p)]["lda"]
                            for p in participants)) if "lda" in names else None for s in seeds}
    return {"experiment": "3dc", "seeds": list(seeds), "accuracy": table, "mean_accuracy": mean,
            "accuracy_by_seed": by_seed, "wins_by_seed": wins,
            "runs": {str(s): {str(p): _slim(r) for p, r in runs[s].items()} for s in seeds}}


def simulated(out_dir: str, *, minutes: float = 10.0, seed: int = 0, config: TrainConfig = DEFAULT_CONFIG
              ) -> Dict[str, Any]:
    """Run a simulated patient: the last two repetitions of a session are the test set."""
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    rec = simulate_recording(SimulatorConfig(minutes=minutes, seed=seed))
    train_rec, test_rec, test_reps = split_last_repetitions(rec, 2)
    d = os.path.join(out_dir, "sim_seed{}".format(seed))
    r = _run([train_rec], [test_rec], os.path.join(d, "model"), config, os.path.join(d, "report"),
             "Simulated patient {} ({} min), test repetitions {}".format(seed, minutes, test_reps))
    return {"experiment": "sim", "test_repetitions": test_reps, **_slim(r)}


def recalibration(out_dir: str, *, seeds: Sequence[int] = (0, 1, 2), minutes: float = 2.0,
                  config: TrainConfig = DEFAULT_CONFIG) -> Dict[str, Any]:
    """Day-to-day drift on simulated patients, recorded exactly as ``neurohand calibrate`` records them.

    Per patient (``seed``): a day-1 calibration session with the default cue protocol (glove labels) trains the day-1
    model; on day 2 (the simulator's drift) a ``minutes`` session is recorded; the test sets are separate sessions
    (another trial order and noise) on day 1 and day 2. Compared on the day-2 test session: the day-1 model as is,
    the day-1 model recalibrated on the short session (:mod:`training.recalibrate`), and a model trained from
    scratch on the same short session (with its Wiener filter).
    """
    import io
    from dataclasses import replace

    from rich.console import Console

    from neurohand.calibration.cue_protocol import load_cue_protocol
    from neurohand.calibration.workflow import CalibrateOptions, record_session
    from neurohand.decoder.recording import read_recording

    from .recalibrate import recalibrate

    quiet = Console(file=io.StringIO())
    base = load_cue_protocol()
    rows = []
    for seed in seeds:
        d = os.path.join(out_dir, "recalibration_patient{}".format(seed))
        os.makedirs(d, exist_ok=True)

        def session(day: int, number: int, reps: int, name: str, d=d, seed=seed):
            path = os.path.join(d, name + ".h5")
            if os.path.exists(path):
                os.remove(path)
            opts = CalibrateOptions(patient="sim{}".format(seed), store=d, labels="glove:sim", fast=True, tui=False,
                                    sim_seed=seed, sim_day=day, sim_session=number)
            record_session(opts, replace(base, repetitions=reps, seed=100 * day + number), path, quiet)
            return read_recording(path)

        day1 = session(1, 1, base.repetitions, "day1_calibration")
        day1_test = session(1, 2, 2, "day1_test")
        short = session(2, 1, base.repetitions_for(minutes), "day2_recalibration")
        day2_test = session(2, 2, 3, "day2_test")
        m1, mr, ms = (os.path.join(d, n) for n in ("model_day1", "model_recalibrated", "model_scratch"))
        train([day1], m1, config=with_overrides(config, seed=seed), progress=False, log=lambda m: None)
        recalibrate(m1, [short], mr, log=lambda m: None)
        train([short], ms, config=with_overrides(config, seed=seed), progress=False, log=lambda m: None)
        ev_s = evaluate(ms, [day2_test])["decoders"]
        row = {"seed": seed, "short_session_s": short.duration_s,
               "day1_on_day1": evaluate(m1, [day1_test])["decoders"][config.cell]["r2_mean"],
               "day1_on_day2": evaluate(m1, [day2_test])["decoders"][config.cell]["r2_mean"],
               "recalibrated_on_day2": evaluate(mr, [day2_test])["decoders"][config.cell]["r2_mean"],
               "scratch_on_day2": ev_s[config.cell]["r2_mean"],
               "scratch_wiener_on_day2": ev_s["wiener"]["r2_mean"] if "wiener" in ev_s else None}
        row["recovered_fraction"] = row["recalibrated_on_day2"] / row["day1_on_day1"]
        rows.append(row)
    keys = [k for k in rows[0] if k != "seed"]
    mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys}
    return {"experiment": "recalibration", "minutes": minutes, "seeds": list(seeds), "patients": rows,
            "mean": mean}


def _slim(r: Dict[str, Any]) -> Dict[str, Any]:
    return {"decoders": {n: {k: v for k, v in d.items() if k != "confusion_matrix"} for n, d in r["decoders"].items()},
            "report": r.get("report"), "train_wall_s": r.get("train_wall_s"), "best_epoch": r.get("best_epoch")}


def print_table(result: Dict[str, Any]) -> None:
    """Human-readable table of an experiment's result."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result["experiment"] == "recalibration":
        cols = ["day1_on_day1", "day1_on_day2", "recalibrated_on_day2", "scratch_on_day2", "scratch_wiener_on_day2",
                "recovered_fraction"]
        t = Table(title="Recalibration with {:g} minutes of day-2 data (R2 mean, held-out sessions)".format(
            result["minutes"]))
        t.add_column("patient")
        for c in cols:
            t.add_column(c.replace("_", " "), justify="right")
        for r in result["patients"] + [dict(result["mean"], seed="mean")]:
            t.add_row(str(r["seed"]), *["-" if r.get(c) is None else "{:.3f}".format(r[c]) for c in cols])
        console.print(t)
        return
    if result["experiment"] == "3dc":
        names = list(result["mean_accuracy"])
        t = Table(title="3DC window accuracy (train on train/, test on test/), mean over seeds {}; {} beats LDA "
                        "on {} participants at each seed".format(result["seeds"], names[0], list(
                            result["wins_by_seed"].values())))
        t.add_column("participant")
        for n in names:
            t.add_column(n, justify="right")
        for p, row in result["accuracy"].items():
            t.add_row(p, *["{:.3f}".format(row[n]) for n in names])
        t.add_row("mean", *["{:.3f}".format(result["mean_accuracy"][n]) for n in names])
        console.print(t)
        return
    decs = result["mean_over_seeds"] if result["experiment"] == "ninapro" else result["decoders"]
    title = ("NinaPro DB1 s2 e1, test repetitions 8-10, mean over seeds {}".format(result["seeds"])
             if result["experiment"] == "ninapro" else "Simulated patient, test repetitions {}".format(
                 result["test_repetitions"]))
    t = Table(title=title)
    cols: List[str] = ["r2_mean", "pearson_r_mean", "rmse_mean", "delay_ms", "accuracy", "macro_f1"]
    t.add_column("decoder")
    for c in cols:
        t.add_column(c, justify="right")
    for n, d in decs.items():
        t.add_row(n, *["-" if d.get(c) is None else "{:.3f}".format(d[c]) for c in cols])
    console.print(t)


def dump(result: Dict[str, Any]) -> str:
    """JSON text of a result."""
    return json.dumps(result)
