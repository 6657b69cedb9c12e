"""The calibration session's terminal tables: the signal-quality verdict and the decoders' held-out scores."""

from typing import Any, Dict, Optional


def quality_table(report: Dict[str, Any]):
    """Return the signal-quality verdict as a rich table."""
    from rich.table import Table

    colour = {"ok": "green", "warn": "yellow", "bad": "red"}
    t = Table("channel", "verdict", "noise floor", "mains", "best finger modulation", "problems",
              title="signal quality: [{c}]{v}[/{c}] - {s}".format(c=colour[report["verdict"]], v=report["verdict"],
                                                                 s=report["summary"]))
    for ch in report["channels"]:
        best = max(ch.modulation.items(), key=lambda kv: kv[1]) if ch.modulation else None
        t.add_row(ch.name, "[{c}]{v}[/{c}]".format(c=colour[ch.verdict], v=ch.verdict),
                  "{:.2f}".format(ch.noise_floor), "{:.2f}x".format(ch.mains_ratio),
                  "{} {:.2f}x".format(best[0], best[1]) if best else "-", "; ".join(ch.problems) or "-")
    return t


def metrics_table(results: Dict[str, Dict[str, Any]], title: str, *, deployed: Optional[str] = None):
    """Return the decoders' metrics side by side as a rich table, in the report's words and units."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("decoder", no_wrap=True)
    for header in ("finger R² (0-1)", "Pearson r", "position error (% of flexion)", "delay (ms)",
                   "class accuracy (%)", "class F1"):
        t.add_column(header, justify="right")
    formats = (("r2_mean", "{:.2f}", 1), ("pearson_r_mean", "{:.2f}", 1), ("rmse_mean", "{:.1f}", 100),
               ("delay_ms", "{:.0f}", 1), ("accuracy", "{:.0f}", 100), ("macro_f1", "{:.2f}", 1))
    for name, r in results.items():
        t.add_row(name + (" (deployed)" if name == deployed else ""),
                  *["-" if r.get(k) is None else f.format(r[k] * scale) for k, f, scale in formats])
    return t
