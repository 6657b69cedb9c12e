"""The HTML pieces of ``report.html``, for a clinician reading at a glance.

The verdict line, plain-language tables with units, the deployed decoder marked, the previous version beside the
new one, a hand coloured by per-finger quality and the signal-quality table.
"""

from __future__ import annotations

import html
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from neurohand.decoder.vocabulary import FINGERS

from .verdict import Decision, Thresholds

CSS = (
    "body{font-family:sans-serif;margin:1.5em auto;max-width:1150px;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}"
    "th{text-align:left;background:#f6f6f6}td.text{text-align:left;max-width:380px}"
    "img{max-width:100%;border:1px solid #eee}"
    ".verdict{font-size:1.4em;font-weight:bold;padding:0.6em 0.8em;border-radius:6px;margin:0 0 0.6em 0}"
    ".ready{background:#e3f3e4;color:#1b5e20;border:2px solid #2e7d32}"
    ".notready{background:#fdeaea;color:#8e1b1b;border:2px solid #c62828}"
    ".pass{color:#1b5e20;font-weight:bold}.fail{color:#b71c1c;font-weight:bold}.warn{color:#8d6e00;font-weight:bold}"
    "tr.deployed th,tr.deployed td{background:#eef5ff}.hands{display:flex;flex-wrap:wrap;gap:2em}"
    ".hands figure{margin:0}.hands figcaption{text-align:center;font-weight:bold}"
)

PASS, NEAR, FAIL, NONE = "#43a047", "#fbc02d", "#e53935", "#bdbdbd"


def _num(v: Any, fmt: str = "{:.2f}", scale: float = 1.0) -> str:
    return "&mdash;" if v is None else fmt.format(float(v) * scale)


def verdict_line(decision: Decision) -> str:
    """Return the first line of the report: ``ready: ...`` or ``not ready: ...``."""
    return "<p id='verdict' class='verdict {}'>{}</p>".format(
        "ready" if decision.accept else "notready", html.escape(decision.summary))


def finger_colour(r2: Optional[float], thresholds: Thresholds) -> str:
    """Return a finger's colour: green from the threshold up, amber up to 0.15 below, red under that, grey if None."""
    if r2 is None:
        return NONE
    if r2 >= thresholds.finger_r2:
        return PASS
    return NEAR if r2 >= thresholds.finger_r2 - 0.15 else FAIL


# (x, y, width, height, rotation in degrees about the finger's base) of each finger, thumb first; palm below
_FINGER_BOXES = ((50, 122, 28, 80, -42), (62, 34, 28, 96, -4), (94, 22, 28, 108, 0), (126, 30, 28, 100, 4),
                 (158, 56, 26, 80, 10))


def hand_svg(r2_per_finger: Optional[Sequence[float]], thresholds: Thresholds, caption: str) -> str:
    """Draw an inline SVG hand, each finger coloured by its R^2 (shape (5,), thumb first) with the value in it."""
    parts = ["<figure><svg width='240' height='260' viewBox='-25 0 240 260' "
             "role='img' aria-label='{}'>".format(html.escape(caption)),
             "<rect x='56' y='118' width='132' height='120' rx='26' fill='#f1e3d3' stroke='#8d6e63'/>"]
    for j, (x, y, w, h, rot) in enumerate(_FINGER_BOXES):
        v = None if r2_per_finger is None else float(r2_per_finger[j])
        cx, base = x + w / 2.0, y + h
        parts.append("<g transform='rotate({} {} {})'><rect x='{}' y='{}' width='{}' height='{}' rx='12' fill='{}' "
                     "stroke='#5d4037'/><text x='{}' y='{}' font-size='12' text-anchor='middle' "
                     "transform='rotate(-90 {} {})' font-family='sans-serif'>{}</text></g>".format(
                         rot, cx, base, x, y, w, h, finger_colour(v, thresholds), cx + 4, y + h / 2.0,
                         cx + 4, y + h / 2.0, "{} {}".format(FINGERS[j], "-" if v is None else "{:.2f}".format(v))))
    parts.append("</svg><figcaption>{}</figcaption></figure>".format(html.escape(caption)))
    return "".join(parts)


def hand_legend(thresholds: Thresholds) -> str:
    """Return the key of the hand colours."""
    items = ((PASS, "R² ≥ {:.2f}: passes".format(thresholds.finger_r2)),
             (NEAR, "{:.2f} to {:.2f}: below, close".format(thresholds.finger_r2 - 0.15, thresholds.finger_r2)),
             (FAIL, "< {:.2f}: fails".format(thresholds.finger_r2 - 0.15)), (NONE, "not decoded"))
    return "<p>" + " &nbsp; ".join(
        "<span style='display:inline-block;width:1em;height:1em;background:{};border:1px solid #555;"
        "vertical-align:middle'></span> {}".format(c, html.escape(t)) for c, t in items) + "</p>"


# key, plain-language header with units, format, scale
COLUMNS = (("r2_mean", "Finger tracking R² (0-1, higher is better)", "{:.2f}", 1.0),
           ("pearson_r_mean", "Correlation with the true movement r (0-1)", "{:.2f}", 1.0),
           ("rmse_mean", "Position error, RMS (% of full flexion)", "{:.1f}", 100.0),
           ("delay_ms", "Delay behind the movement (ms)", "{:.0f}", 1.0),
           ("accuracy", "Movement class accuracy (%)", "{:.0f}", 100.0),
           ("macro_f1", "Class F1, mean over classes (0-1)", "{:.2f}", 1.0))


def decoders_table(results: Mapping[str, Mapping[str, Any]], descriptions: Mapping[str, str], candidate: str,
                   previous: Optional[Tuple[str, Mapping[str, Any]]], *, patient_id: Optional[str] = None) -> str:
    """Tabulate every decoder's scores: the deployed one first and marked, the current version next."""
    role = ("new model: becomes patient {}'s model if accepted".format(patient_id) if patient_id is not None else
            "the model evaluated: the decoder a bundle exports")
    rows: List[Tuple[str, str, Mapping[str, Any], str, bool]] = [
        (candidate, role, results[candidate], descriptions.get(candidate, ""), True)]
    if previous is not None:
        rows.append((previous[0], "current version, on the same test data", previous[1], "", False))
    rows += [(n, "classic decoder, for comparison", r, descriptions.get(n, ""), False)
             for n, r in results.items() if n != candidate]
    used = [c for c in COLUMNS if any(r[2].get(c[0]) is not None for r in rows)]
    head = "<tr><th>Decoder</th><th>Role</th>{}<th>Settings</th></tr>".format(
        "".join("<th>{}</th>".format(html.escape(c[1])) for c in used))
    body = "".join("<tr{}><th>{}{}</th><td class='text'>{}</td>{}<td class='text'>{}</td></tr>".format(
        " class='deployed'" if dep else "", html.escape(name), " &#9664; deployed" if dep else "", html.escape(role),
        "".join("<td>{}</td>".format(_num(m.get(k), f, s)) for k, _, f, s in used), html.escape(desc))
        for name, role, m, desc, dep in rows)
    return "<table>{}{}</table>".format(head, body)


def fingers_table(results: Mapping[str, Mapping[str, Any]], candidate: str, decision: Decision,
                  previous: Optional[Tuple[str, Mapping[str, Any]]], thresholds: Thresholds) -> str:
    """Tabulate per finger the new model's R^2, pass or fail, the current version's and the baselines'."""
    others = [(n, r["r2_per_finger"]) for n, r in results.items()
              if n != candidate and r.get("r2_per_finger") is not None]
    prev = previous[1].get("r2_per_finger") if previous is not None else None
    head = "<tr><th>Finger</th><th>New model R²</th><th>Pass (R² ≥ {:.2f})</th>{}{}</tr>".format(
        thresholds.finger_r2, "<th>{} R² (current)</th>".format(html.escape(previous[0])) if prev else "",
        "".join("<th>{} R²</th>".format(html.escape(n)) for n, _ in others))
    mine = results[candidate]["r2_per_finger"]
    rows = []
    for j, finger in enumerate(FINGERS):
        ok = decision.finger_pass[j] if j < len(decision.finger_pass) else None
        rows.append("<tr><th>{}</th><td>{:.2f}</td><td class='{}'>{}</td>{}{}</tr>".format(
            finger, mine[j], "pass" if ok else "fail", "pass" if ok else "FAIL",
            "<td>{:.2f}</td>".format(prev[j]) if prev else "",
            "".join("<td>{:.2f}</td>".format(v[j]) for _, v in others)))
    return "<table>{}{}</table>".format(head, "".join(rows))


def quality_section(quality: Optional[Mapping[str, Any]]) -> str:
    """Show the signal-quality verdict of the session (``calibration.quality``), or a line saying it was not checked."""
    if not quality:
        return ("<h2>Signal quality</h2><p>Not checked here: <code>neurohand calibrate</code> checks every channel "
                "before training.</p>")
    cls = {"ok": "pass", "warn": "warn", "bad": "fail"}
    rows = "".join(
        "<tr><th>{}</th><td class='{}'>{}</td><td>{:.2f}</td><td>{:.2f}</td><td class='text'>{}</td>"
        "<td class='text'>{}</td></tr>".format(
            html.escape(c["name"]), cls.get(c["verdict"], ""), html.escape(c["verdict"]), c["noise_floor"],
            c["mains_ratio"], html.escape(c.get("best_modulation") or "-"),
            html.escape("; ".join(c["problems"]) or "-"))
        for c in quality.get("channels", []))
    return ("<h2>Signal quality: <span class='{}'>{}</span></h2><p>{}</p><table><tr><th>Channel</th><th>Verdict</th>"
            "<th>Noise floor, RMS at rest ({})</th><th>Mains hum (× the signal)</th>"
            "<th>Most modulating finger (activity × rest)</th><th>Problems</th></tr>{}</table>").format(
        cls.get(quality["verdict"], ""), html.escape(quality["verdict"]), html.escape(quality.get("summary", "")),
        html.escape(quality.get("units", "signal units")), rows)


def thresholds_note(thresholds: Thresholds) -> str:
    """State the thresholds in words."""
    return ("<p>Ready means, on the held-out repetition: every finger's R² at least {:.2f}, movement class accuracy at "
            "least {:.0f} %, and no worse than the best classic decoder or the patient's current version (differences "
            "under {:.3f} count as equal).</p>").format(thresholds.finger_r2, 100 * thresholds.class_accuracy,
                                                         thresholds.tolerance)


def page(title: str, decision: Decision, sections: Sequence[str]) -> str:
    """Assemble the whole document: the verdict line first, then the title and the sections."""
    return "\n".join(["<!doctype html><html><head><meta charset='utf-8'><title>{} - {}</title><style>{}</style>"
                      "</head><body>".format(html.escape(decision.summary), html.escape(title), CSS),
                      verdict_line(decision), "<h1>{}</h1>".format(html.escape(title))] + list(sections)
                     + ["</body></html>"])


def hands_row(results: Mapping[str, Dict[str, Any]], candidate: str,
              previous: Optional[Tuple[str, Mapping[str, Any]]], thresholds: Thresholds) -> str:
    """Draw the new model's hand and, when there is one, the current version's hand side by side."""
    figs = [hand_svg(results[candidate].get("r2_per_finger"), thresholds, "new model ({})".format(candidate))]
    if previous is not None and previous[1].get("r2_per_finger") is not None:
        figs.append(hand_svg(previous[1]["r2_per_finger"], thresholds, "{} (current)".format(previous[0])))
    return "<div class='hands'>{}</div>{}".format("".join(figs), hand_legend(thresholds))
