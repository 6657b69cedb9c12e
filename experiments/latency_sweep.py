"""Delay against R^2 on the validation split: feature window x target lead x smoothing, through the device path.

``python experiments/latency_sweep.py [--data ../shared/data] [--sets ninapro,sim] [--windows 100,60,50]
[--leads 0,60,120] [--sim-leads 0,30,60] [--smoothings 0,10,30] [--seeds 0] [--json]`` (about 3 minutes per model on
one core). For each window, lead and seed a model is trained (no classic baselines) and exported; the validation part
is then replayed chunk by chunk through the bundle as ``neurohand run`` decodes it
(:func:`neurohand.bench_latency.replay`) once per smoothing, and the commands are scored against the true
positions: R^2, Pearson r, the delay (lag of the best cross-correlation) and the budget (half the window, one hop, the
smoother's delay, the filter's group delay, the software). NinaPro DB1 S2 E1 trains on repetitions 1-6 and validates
on 7; the simulated patient (a 10-minute session per seed, as ``neurohand bench latency``) trains on all but its last
three repetitions and validates on the third-last. The test repetitions (NinaPro 8-10, the simulator's last two)
stay out of view, so the defaults can be chosen here.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from neurohand.bench_latency import budget_ms, replay, score
from neurohand.decoder.bundle import Bundle
from neurohand.decoder.feature_config import default_feature_config
from neurohand.decoder.latency_defaults import DEFAULT_LEAD_MS, DEFAULT_SMOOTHING_MS
from neurohand.decoder.postprocess import PostConfig
from neurohand.decoder.validation import check_option
from neurohand.training.data import select_repetitions
from neurohand.training.export import export_bundle
from neurohand.training.importers import import_ninapro

from common import (
    TrainConfig,
    floats_of,
    main,
    ninapro_file,
    parser,
    seeds_of,
    train,
    train_config,
    with_overrides,
)

SETS = ("ninapro", "sim")
KINDS = {"ninapro": "envelope", "sim": "nerve"}
CHOSEN = {data: {"window_ms": default_feature_config(kind).window_ms, "lead_ms": DEFAULT_LEAD_MS[kind],
                 "smoothing_ms": DEFAULT_SMOOTHING_MS} for data, kind in KINDS.items()}
"""The defaults chosen here, as the project now has them, ringed in the plot."""


def _split(data: str, data_dir: str, seed: int, sim: Dict[str, Any]):
    """Return (train, validation) recordings and a description of the split (``sim``: SimulatorConfig changes)."""
    if data == "ninapro":
        path = ninapro_file(data_dir)
        return import_ninapro(path, reps=range(1, 7)), import_ninapro(path, reps=[7]), "train 1-6, validate 7"
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    rec = simulate_recording(SimulatorConfig(**{"minutes": 10.0, "seed": seed, **sim}))
    reps = sorted(int(r) for r in np.unique(rec.repetitions) if r > 0)
    train_reps, val_rep = reps[:-3], reps[-3]
    return (select_repetitions(rec, train_reps), select_repetitions(rec, [val_rep]),
            "train 1-{}, validate {} (test {}-{} out of view)".format(train_reps[-1], val_rep, reps[-2], reps[-1]))


def _rows_for(bundle: Bundle, val_rec, smoothings: Sequence[float], base: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Replay ``val_rec`` through ``bundle`` once per smoothing; one row each."""
    rows = []
    hop_ms = bundle.feature_config.hop_ms
    for s in smoothings:
        post = PostConfig(smoothing_ms=float(s))
        run = replay(bundle, val_rec, post=post)
        cmd = score(run["truth"], run["commands"], hop_ms)
        raw = score(run["truth"], run["positions"], hop_ms)
        budget = budget_ms(bundle, float(np.median(run["chunk_s"])) * 1000.0, post=post)
        rows.append({**base, "smoothing_ms": float(s), "r2": cmd["r2"], "pearson_r": cmd["pearson_r"],
                     "delay_ms": cmd["delay_ms"], "budget_ms": budget,
                     "decoder_output": {"r2": raw["r2"], "delay_ms": raw["delay_ms"]}})
    return rows


def run(data_dir: str, out_dir: str, *, sets: Sequence[str] = SETS, windows: Sequence[float] = (100.0, 60.0, 50.0),
        leads: Sequence[float] = (0.0, 60.0, 120.0), sim_leads: Sequence[float] = (0.0, 30.0, 60.0),
        smoothings: Sequence[float] = (0.0, 10.0, 30.0), seeds: Sequence[int] = (0,),
        config: Optional[TrainConfig] = None, sim: Optional[Dict[str, Any]] = None,
        log=lambda m: print(m, file=sys.stderr, flush=True)) -> Dict[str, Any]:
    """Train one model per data set, window, lead and seed; score its commands per smoothing on the validation part.

    ``sim`` changes the simulated session's :class:`SimulatorConfig` (tests use a short, small one).
    """
    config = config or TrainConfig()
    rows: List[Dict[str, Any]] = []
    splits: Dict[str, str] = {}
    for data in sets:
        for seed in seeds:
            train_rec, val_rec, splits[data] = _split(data, data_dir, seed, sim or {})
            for window in windows:
                for lead in (leads if data == "ninapro" else sim_leads):
                    d = os.path.join(out_dir, "sweep", "{}_w{:g}_lead{:g}_seed{}".format(data, window, lead, seed))
                    cfg = with_overrides(config, {"features.window_ms": float(window),
                                                  "loss.target_lead_ms": float(lead)}, seed=seed, device="cpu")
                    res = train([train_rec], os.path.join(d, "model"), config=cfg, progress=False, fit_classic=False,
                                log=lambda m: None)
                    export_bundle(os.path.join(d, "model"), os.path.join(d, "bundle"))
                    base = {"data": data, "seed": seed, "window_ms": float(window), "lead_ms": float(lead),
                            "train_wall_s": res.wall_s}
                    new = _rows_for(Bundle(os.path.join(d, "bundle")), val_rec, smoothings, base)
                    for r in new:
                        log("{data} window {window_ms:g} lead {lead_ms:g} smoothing {smoothing_ms:g} seed {seed}: "
                            "R^2 {r2:.3f} delay {delay_ms:.0f} ms budget {b:.1f} ms".format(
                                b=r["budget_ms"]["total"], **r))
                    rows.extend(new)
    return {"experiment": "latency_sweep", "splits": splits, "rows": rows}


def show(result: Dict[str, Any]) -> None:
    """Print one line per data set, window, lead and smoothing (means over seeds)."""
    keys = sorted({(r["data"], -r["window_ms"], r["lead_ms"], r["smoothing_ms"]) for r in result["rows"]})
    for data, w, lead, s in keys:
        sel = [r for r in result["rows"] if (r["data"], -r["window_ms"], r["lead_ms"], r["smoothing_ms"]) ==
               (data, w, lead, s)]
        print("{:8s} window {:>4g} lead {:>4g} smoothing {:>3g}: R^2 {:.3f} delay {:>5.1f} ms budget {:>5.1f} ms "
              "({} seeds)".format(data, -w, lead, s, np.mean([r["r2"] for r in sel]),
                                  np.mean([r["delay_ms"] for r in sel]),
                                  np.mean([r["budget_ms"]["total"] for r in sel]), len(sel)))


def plot(result: Dict[str, Any], path: str, *, chosen: Optional[Dict[str, Dict[str, float]]] = None) -> None:
    """Draw R^2 against the commands' delay, one panel per data set, one marker per window and lead.

    The smoothings of one model are joined by a line; ``chosen`` (data set -> window_ms, lead_ms, smoothing_ms) is
    ringed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [d for d in SETS if any(r["data"] == d for r in result["rows"])]
    fig, axes = plt.subplots(1, len(sets), figsize=(6.5 * len(sets), 5.6), squeeze=False)
    markers = {100.0: "o", 60.0: "s", 50.0: "^"}
    for ax, data in zip(axes[0], sets):
        rows = [r for r in result["rows"] if r["data"] == data]
        leads = sorted({r["lead_ms"] for r in rows})
        colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(leads)))
        for w in sorted({r["window_ms"] for r in rows}, reverse=True):
            for lead, colour in zip(leads, colours):
                sel = sorted(_means([r for r in rows if r["window_ms"] == w and r["lead_ms"] == lead]),
                             key=lambda m: m["smoothing_ms"])
                if not sel:
                    continue
                ax.plot([m["delay_ms"] for m in sel], [m["r2"] for m in sel], "-", color=colour, lw=0.8)
                ax.plot([m["delay_ms"] for m in sel], [m["r2"] for m in sel], markers.get(w, "D"), color=colour,
                        ms=6, label="window {:g} ms, lead {:g} ms".format(w, lead))
        c = (chosen or {}).get(data)
        if c:
            m = _means([r for r in rows if (r["window_ms"], r["lead_ms"], r["smoothing_ms"]) ==
                        (c["window_ms"], c["lead_ms"], c["smoothing_ms"])])
            if m:
                ax.plot([m[0]["delay_ms"]], [m[0]["r2"]], "o", ms=16, mfc="none", mec="tab:red", mew=2,
                        label="default (smoothing {:g} ms)".format(c["smoothing_ms"]))
        ax.set_title("{}: commands on the validation part".format(
            {"ninapro": "NinaPro DB1 S2 E1", "sim": "simulated patient"}[data]))
        ax.set_xlabel("delay behind the true movement (ms); along a line: smoothing 0, 10, 30 ms")
        ax.set_ylabel("R$^2$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)  # below: never over a point
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _means(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, float]]:
    """One entry per smoothing: R^2 and delay averaged over seeds."""
    out = []
    for s in sorted({r["smoothing_ms"] for r in rows}):
        sel = [r for r in rows if r["smoothing_ms"] == s]
        out.append({"smoothing_ms": s, "r2": float(np.mean([r["r2"] for r in sel])),
                    "delay_ms": float(np.mean([r["delay_ms"] for r in sel]))})
    return out


def build():
    """Command-line options."""
    p = parser("experiments/latency_sweep.py", __doc__.splitlines()[0], data=True, seeds="0")
    p.add_argument("--sets", default="ninapro,sim", help="data sets, comma-separated: ninapro, sim (default both)")
    p.add_argument("--windows", default="100,60,50", help="feature windows in ms (default 100,60,50)")
    p.add_argument("--leads", default="0,60,120", help="NinaPro's target leads in ms (default 0,60,120)")
    p.add_argument("--sim-leads", default="0,30,60",
                   help="the simulated patient's target leads in ms (default 0,30,60)")
    p.add_argument("--smoothings", default="0,10,30", help="the commands' smoothing in ms (default 0,10,30)")
    p.add_argument("--from-json", default=None, metavar="FILE[,FILE]",
                   help="do not train: merge the rows of earlier --json outputs (to plot them)")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw delay against R^2 per data set into PNG")
    return p


def _run(a) -> Dict[str, Any]:
    if a.from_json:
        rows: List[Dict[str, Any]] = []
        splits: Dict[str, str] = {}
        for f in a.from_json.split(","):
            with open(f) as fh:
                r = json.load(fh)
            rows += r["rows"]
            splits.update(r["splits"])
        result = {"experiment": "latency_sweep", "splits": splits, "rows": rows}
    else:
        result = _train_all(a)
    if a.plot:
        plot(result, a.plot, chosen=CHOSEN)
    return result


def _train_all(a) -> Dict[str, Any]:
    sets = [check_option("--sets", s.strip(), SETS) for s in a.sets.split(",") if s.strip()]
    return run(a.data, a.out, sets=sets, windows=floats_of(a.windows), leads=floats_of(a.leads),
               sim_leads=floats_of(a.sim_leads), smoothings=floats_of(a.smoothings), seeds=seeds_of(a),
               config=train_config(a))


if __name__ == "__main__":
    sys.exit(main(build, _run, show))
