"""The evaluation report a clinician reads at a glance: verdict first, plain headers, the deployed decoder marked,
the current version beside the new one, a hand coloured per finger, signal quality; readable at 1400 px."""

import html
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from neurohand.training.report import write_report
from neurohand.training.report_html import FAIL, PASS


def results(gru_r2):
    gru_r2 = list(gru_r2)
    return {
        "gru": {"r2_mean": float(np.mean(gru_r2)), "r2_per_finger": gru_r2, "pearson_r_mean": 0.9, "rmse_mean": 0.08,
                "delay_ms": 30.0, "accuracy": 0.9, "macro_f1": 0.85},
        "wiener": {"r2_mean": 0.80, "r2_per_finger": [0.7, 0.8, 0.85, 0.82, 0.83], "pearson_r_mean": 0.88,
                   "rmse_mean": 0.1, "delay_ms": 60.0, "accuracy": None, "macro_f1": None},
        "lda": {"r2_mean": None, "r2_per_finger": None, "pearson_r_mean": None, "rmse_mean": None, "delay_ms": None,
                "accuracy": 0.85, "macro_f1": 0.8},
    }


QUALITY = {"verdict": "warn", "summary": "usable, with warnings on ch3", "units": "uV",
           "channels": [{"name": "ch{}".format(i), "verdict": "warn" if i == 3 else "ok", "noise_floor": 2.5,
                         "mains_ratio": 6.0 if i == 3 else 0.4, "best_modulation": "index 2.10x",
                         "problems": ["mains interference 6.0x the signal"] if i == 3 else []} for i in range(6)]}


def make(tmp_path, gru_r2, previous=None, quality=QUALITY, rng=None, patient_id="P1"):
    rng = rng or np.random.default_rng(0)
    truth = rng.uniform(size=(600, 5))
    res = results(gru_r2)
    return write_report(str(tmp_path), results=res, descriptions={"gru": "GRU 2x128", "wiener": "ridge, 8 lags"},
                        truth=truth, predictions={"gru": truth + 0.05 * rng.normal(size=truth.shape),
                                                  "wiener": truth + 0.1 * rng.normal(size=truth.shape)},
                        hop_ms=10.0, confusion={"gru": np.eye(3, dtype=int) * 10}, class_names=["rest", "a", "b"],
                        history=[{"epoch": 1, "train_loss": 0.5, "val_score": 0.6},
                                 {"epoch": 2, "train_loss": 0.3, "val_score": 0.8}],
                        title="patient P1 - calibration", notes=["session: s1"], candidate="gru",
                        previous=previous, quality=quality, patient_id=patient_id)


def visible_text(doc):
    body = doc.split("<body>", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


def test_the_report_starts_with_the_verdict_and_names_the_deployed_decoder(tmp_path):
    prev = ("v002", {"r2_mean": 0.87, "r2_per_finger": [0.8, 0.9, 0.9, 0.85, 0.9], "accuracy": 0.86})
    doc = open(make(tmp_path, [0.85, 0.9, 0.92, 0.91, 0.92], previous=prev), encoding="utf-8").read()
    assert visible_text(doc).startswith("ready: finger R² 0.90, class accuracy 0.90; better than v002 by 0.03")
    assert "<title>ready: " in doc
    assert "gru &#9664; deployed" in doc and html.escape("becomes patient P1's model if accepted") in doc
    assert "current version, on the same test data" in doc and "v002 R² (current)" in doc
    for header in ("Finger tracking R² (0-1, higher is better)", "Delay behind the movement (ms)",
                   "Movement class accuracy (%)", "Position error, RMS (% of full flexion)"):
        assert header in doc
    assert "r2_mean</th>" not in doc and "delay_ms" not in visible_text(doc.split("<details>")[0])
    assert "<td>30</td>" in doc and "<td>90</td>" in doc  # 30 ms, 90 %: no 30.000
    assert doc.count("<svg") == 2  # the new model's hand and the current version's
    assert "Signal quality: <span class='warn'>warn</span>" in doc and "mains interference 6.0x" in doc


def test_a_failing_finger_is_marked_and_coloured(tmp_path):
    doc = open(make(tmp_path, [0.2, 0.9, 0.92, 0.91, 0.92], quality=None), encoding="utf-8").read()
    text = visible_text(doc)
    assert text.startswith("not ready: thumb below R² 0.50 (0.20)")
    assert "<th>thumb</th><td>0.20</td><td class='fail'>FAIL</td>" in doc
    assert "<th>index</th><td>0.90</td><td class='pass'>pass</td>" in doc
    hand = doc[doc.index("<svg"):doc.index("</svg>")]
    assert hand.count("fill='{}'".format(FAIL)) == 1 and hand.count("fill='{}'".format(PASS)) == 4
    assert "Not checked here" in doc  # no quality given: said, not hidden


def test_a_class_only_report_has_no_finger_section_and_no_empty_columns(tmp_path):
    res = {"gru": {"r2_mean": None, "r2_per_finger": None, "accuracy": 0.9, "macro_f1": 0.85},
           "lda": {"r2_mean": None, "r2_per_finger": None, "accuracy": 0.86, "macro_f1": 0.8}}
    path = write_report(str(tmp_path), results=res, descriptions={}, truth=None, predictions={}, hop_ms=20.0,
                        confusion={"gru": np.eye(2, dtype=int)}, class_names=["rest", "fist"], history=[],
                        title="3DC participant 1")
    doc = open(path, encoding="utf-8").read()
    assert visible_text(doc).startswith("ready: class accuracy 0.90")
    assert "<svg" not in doc and "Finger tracking R²" not in doc and "Movement class accuracy (%)" in doc


def test_the_bar_legend_sits_beside_the_bars_not_over_them():
    import matplotlib.pyplot as plt

    from neurohand.training.report import r2_bars_figure

    fig = r2_bars_figure({"gru": [0.9, 0.9, 0.9, 0.9, 0.95], "wiener": [0.8, 0.85, 0.9, 0.9, 0.97],
                          "kalman": [0.7, 0.8, 0.85, 0.9, 0.96]}, threshold=0.5)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())  # the little finger's tall bars are in the axes
    assert fig.bbox.contains(legend.x1 - 1, legend.y1 - 1)  # and the legend is still on the figure
    plt.close(fig)


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_the_report_renders_at_1400_px_in_a_real_browser(tmp_path):
    """Screenshot with headless Chromium at 1400 px; nothing wider than the window, no overlapping boxes.

    The check reads the layout the browser computed (its DOM dumped after layout via a script in the page), so
    overlap is measured, not guessed; the screenshot is kept at ``tmp_path/report.png`` for a person to look at.
    """
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    prev = ("v001", {"r2_mean": 0.87, "r2_per_finger": [0.8, 0.9, 0.9, 0.85, 0.9], "accuracy": 0.86})
    path = make(tmp_path, [0.45, 0.9, 0.92, 0.91, 0.92], previous=prev)
    probe = """<script>
    window.addEventListener('load', function () {
      var boxes = [], out = [], wide = [];
      document.querySelectorAll('p,h1,h2,table,img,svg,figure,details').forEach(function (e) {
        var r = e.getBoundingClientRect();
        if (r.right > window.innerWidth + 1) wide.push(e.tagName);
        if (e.tagName !== 'FIGURE' && e.tagName !== 'svg') boxes.push([e.tagName, r]);
      });
      for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {
        var a = boxes[i][1], b = boxes[j][1];
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
          out.push(boxes[i][0] + '/' + boxes[j][0]);
      }
      document.title = 'LAYOUT wide=' + wide.join(',') + ' overlaps=' + out.join(',') + ' END';
    });
    </script>"""
    probed = str(tmp_path / "probed.html")
    with open(path, encoding="utf-8") as f, open(probed, "w", encoding="utf-8") as g:
        g.write(f.read().replace("</body>", probe + "</body>"))
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,3800"]
    shot = subprocess.run(args + ["--screenshot={}".format(tmp_path / "report.png"), "file://" + path],
                          capture_output=True, text=True, timeout=120)
    assert os.path.getsize(tmp_path / "report.png") > 10000, shot.stderr[-2000:]
    dom = subprocess.run(args + ["--virtual-time-budget=5000", "--dump-dom", "file://" + probed],
                         capture_output=True, text=True, timeout=120).stdout
    layout = re.search(r"LAYOUT wide=(.*?) overlaps=(.*?) END", dom)
    assert layout is not None, dom[-2000:]
    assert layout.group(1) == "" and layout.group(2) == "", layout.group(0)


def test_a_researchers_report_speaks_of_no_patient(tmp_path):
    doc = open(make(tmp_path, [0.85, 0.9, 0.92, 0.91, 0.92], patient_id=None), encoding="utf-8").read()
    assert "the model evaluated: the decoder a bundle exports" in doc and "if accepted" not in doc
