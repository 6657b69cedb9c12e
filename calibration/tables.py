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
    """Return the decoders' metrics side by side: the table every command prints (``training.summary``)."""
    from neurohand.training.summary import scores_table

    return scores_table(results, title=title, deployed=deployed)
