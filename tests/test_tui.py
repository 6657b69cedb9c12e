import io
import re

import numpy as np
from rich.console import Console

from neurohand.calibration.cue_protocol import CueProtocol
from neurohand.calibration.tui import KeyControls, SessionView

PROTOCOL = CueProtocol(movements=(("index_flexion", (0, 1, 0, 0, 0)), ("power_grip", (0.8, 1, 1, 1, 1))),
                       repetitions=2, hold_s=1.0, rest_s=1.0, ramp_s=0.5, randomize=False)


def render(view) -> str:
    console = Console(file=io.StringIO(), width=130, record=True, color_system=None)
    console.print(view.render())
    return console.export_text()


def test_view_shows_cue_countdown_targets_levels_and_progress():
    view = SessionView(PROTOCOL, ["median0", "median1", "ulnar0"], patient_id="P7")
    trial = view.trials[0]
    view.trial_started(trial)
    chunk = np.random.default_rng(0).normal(0, 20.0, (200, 3)).astype(np.float32)
    chunk[:, 2] = 0.0  # a flat channel
    for _ in range(30):
        view.update(trial, chunk, 0.9, (0, 0.8, 0, 0, 0), np.zeros(5))
    text = render(view)
    assert "patient P7" in text and "trial 1/4" in text
    assert "INDEX FLEXION  - hold  0.6 s" in text  # 0.5 s ramp + 1.0 s hold - 0.9 s elapsed
    assert "0.80" in text and "index" in text and "little" in text  # a target bar per finger
    assert "median0" in text and "ulnar0" in text
    levels = dict(re.findall(r"(median\d|ulnar\d)\s+[^0-9│]*?(\d+) uV", text))
    assert abs(float(levels["median0"]) - 20) < 3 and levels["ulnar0"] == "0"  # RMS in uV, flat is 0
    assert "p pause/resume" in text and "glove" not in text


def test_view_shows_the_sources_units():
    """Issue 20: the levels said 'uV' whatever the source; they now carry the source's units."""
    view = SessionView(PROTOCOL, ["emg0", "emg1"], units="mV")
    view.update(None, np.full((50, 2), 3.0, np.float32), 0.0, np.zeros(5), np.zeros(5))
    text = render(view)
    assert "signal level per channel (RMS, mV)" in text and re.search(r"emg0\s+[^0-9│]*?\d+ mV", text)
    assert " uV" not in text


def test_view_rest_release_pause_and_glove_rows():
    view = SessionView(PROTOCOL, ["c0"], labels="glove")
    trial = view.trials[0]
    view.update(trial, np.zeros((10, 1)), 1.8, np.zeros(5), (0.1, 0.9, 0.2, 0.1, 0.0))
    assert "INDEX FLEXION  - release" in render(view)
    view.update(trial, np.zeros((10, 1)), 2.5, np.zeros(5), np.zeros(5))
    view.upcoming = view.trials[1]  # the session's upcoming trial (after a repeat or a skip, not index + 1)
    text = render(view)
    assert "REST  - next: power grip in 0.5 s" in text
    view.upcoming = view.trials[0]
    assert "REST  - next: index flexion in 0.5 s" in render(view)
    view.upcoming = None
    assert "REST  - next: end" in render(view)
    assert text.count("glove") >= 5 and "0.90" not in text  # the glove rows show the latest glove sample
    view.update(None, np.zeros((10, 1)), 0.0, np.zeros(5), np.zeros(5))
    assert "PAUSED - press p to continue" in render(view)


def test_keys_become_clinician_actions():
    keys = KeyControls(read_terminal=False)
    trial = PROTOCOL.schedule()[0]
    assert keys.clinician(trial) == "continue"
    keys.press("r")
    assert keys.clinician(trial) == "repeat" and keys.clinician(trial) == "continue"  # once
    keys.press("s")
    assert keys.clinician(trial) == "skip"
    keys.press("p")
    assert keys.clinician(trial) == "pause" and keys.clinician(trial) == "pause"
    keys.press("p")
    assert keys.clinician(trial) == "continue"
    keys.press("x")  # unknown keys do nothing
    assert keys.clinician(trial) == "continue"
    keys.press("q")
    assert keys.clinician(trial) == "stop" and keys.stopped
    keys.close()


def drawing_rows(positions):
    from neurohand.calibration.tui import hand_drawing

    console = Console(file=io.StringIO(), width=60, record=True, color_system=None)
    console.print(hand_drawing(positions))
    return console.export_text().splitlines()


def finger_heights(rows):
    """Rows each finger column reaches above the palm (the drawing puts finger j at columns 1 + 4j .. 3 + 4j)."""
    palm = next(i for i, r in enumerate(rows) if r.lstrip().startswith("├"))
    return [sum(1 for r in rows[:palm] if r[1 + 4 * j:4 + 4 * j].strip()) for j in range(5)]


def test_the_cue_shows_a_drawing_of_the_cued_hand_posture():
    open_hand = drawing_rows((0, 0, 0, 0, 0))
    assert finger_heights(open_hand) == [3, 4, 5, 4, 3] and open_hand[-1] == "bent: none (open hand)"
    index = drawing_rows((0, 1, 0, 0, 0))
    assert finger_heights(index) == [3, 1, 5, 4, 3] and index[-1] == "bent: index"
    assert "╰─╯" in index[index.index(next(r for r in index if "├" in r)) - 1]  # a curled index on the palm
    fist = drawing_rows((0.8, 1, 1, 1, 1))
    assert max(finger_heights(fist)) <= 2 and fist[-1] == "bent: thumb, index, middle, ring, little"
    # on screen: the trial's posture while it is made, the next trial's during the rest, with its name
    view = SessionView(PROTOCOL, ["c0"])
    trial = view.trials[0]
    view.update(trial, np.zeros((10, 1)), 0.9, np.zeros(5), np.zeros(5))
    text = render(view)
    assert "make this" in text and "bent: index" in text
    view.upcoming = view.trials[1]
    view.update(trial, np.zeros((10, 1)), 2.5, np.zeros(5), np.zeros(5))
    text = render(view)
    assert "next" in text and "bent: thumb, index, middle, ring, little" in text


def test_the_last_action_is_acknowledged_on_screen():
    view = SessionView(PROTOCOL, ["c0"])
    view.trial_started(view.trials[1])
    view.acknowledge("repeating trial 2 (power grip) after this rest")
    text = render(view)
    assert "> repeating trial 2 (power grip) after this rest" in text
    assert "trial 2/4  rep 1  complete 0" in text and "0/4 trials complete" in text


def test_keys_are_taken_mid_trial_once_and_states_hold():
    keys = KeyControls(read_terminal=False)
    assert keys.during() is None
    keys.press("r")
    keys.press("s")
    assert keys.during() == "repeat" and keys.during() == "skip" and keys.during() is None  # in order, each once
    keys.press("p")
    assert keys.during() == "pause" and keys.clinician(PROTOCOL.schedule()[0]) == "pause"  # held until p again
    keys.press("p")
    keys.press("q")
    assert keys.during() == "stop" and keys.during() == "stop"
