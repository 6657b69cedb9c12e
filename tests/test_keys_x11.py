"""Keyboard mode against a real X server (Xvfb) with pynput's X backend; a listener in another process records."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("rest", "thumb_flexion", "index_flexion", "middle_flexion", "ring_flexion", "little_flexion",
           "power_grip", "pinch", "tripod", "point")

LISTENER = """
import sys
from pynput import keyboard
def name(k):
    return k.char if hasattr(k, "char") and k.char else str(k).replace("Key.", "")
with keyboard.Listener(on_press=lambda k: print("press", name(k), flush=True),
                       on_release=lambda k: print("release", name(k), flush=True)) as l:
    print("ready", flush=True)
    l.join()
"""


@pytest.fixture(scope="module")
def display():
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb; .ci/run installs it)")
    import importlib.util

    if importlib.util.find_spec("pynput") is None:
        pytest.skip("pynput (the keys extra) is not installed")
    for n in range(91, 99):
        if not os.path.exists("/tmp/.X11-unix/X{}".format(n)) and not os.path.exists("/tmp/.X{}-lock".format(n)):
            break
    proc = subprocess.Popen([xvfb, ":{}".format(n), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not os.path.exists("/tmp/.X11-unix/X{}".format(n)) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = ":{}".format(n)
    yield ":{}".format(n)
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old
    proc.terminate()
    proc.wait(timeout=5)


class Recorder:
    """pynput listener in a separate process on the Xvfb display."""

    def __init__(self, display):
        self.proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "DISPLAY": display})
        assert self.proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)

    def stop(self):
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=5)
        events = [tuple(line.split()) for line in out.splitlines() if line.startswith(("press", "release"))]
        # the X RECORD stream can repeat an event; collapse consecutive duplicates
        return [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]


def held_at_end(events):
    down = set()
    for kind, key in events:
        (down.add if kind == "press" else down.discard)(key)
    return down


def write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text)
    return str(p)


def drive(sink, values, finger=0, dt=0.01):
    for v in values:
        if np.ndim(v):
            pos = np.asarray(v, float)
        else:
            pos = np.zeros(5)
            pos[finger] = v
        sink.write(pos)
        time.sleep(dt)


def test_hold_hysteresis_tap_and_combination_on_a_real_x_server(display, tmp_path):
    # named keys: the recorder runs in another process, and X translates their keysyms the same way everywhere
    from neurohand.deploy.keys_sink import KeysSink

    prof = write(tmp_path, '[keys]\nmax_events_per_s = 100\n'
                 '[[binding]]\nfinger = "thumb"\npress = 0.6\nrelease = 0.4\nkey = "up"\nmin_hold_ms = 0\n'
                 '[[binding]]\nfinger = "index"\npress = 0.6\nrelease = 0.4\nkey = "space"\nmode = "tap"\n'
                 'min_hold_ms = 20\nretrigger_ms = 50\n'
                 '[[binding]]\ncombo = "fist"\npress = 0.7\nrelease = 0.5\nkey = "ctrl+shift"\nmin_hold_ms = 0\n')
    rec = Recorder(display)
    sink = KeysSink(prof, CLASSES, start_enabled=True)
    drive(sink, [0.0, 0.65, 0.55, 0.62, 0.45, 0.61, 0.3], finger=0)  # hysteresis: one press, one release
    drive(sink, [0.9] * 6 + [0.1] * 3 + [0.9] * 6 + [0.1] * 3, finger=1)  # two activations -> two taps
    drive(sink, [np.full(5, 0.9)] * 3 + [np.zeros(5)] * 3)  # a fist: combination (thumb and index fire too)
    sink.close()
    events = rec.stop()
    sent = [(k, n) for _, k, n in sink.sent]
    per = {key: [e for e in events if e[1] == key] for key in ("up", "space", "ctrl", "shift")}
    assert per["up"] == [("press", "up"), ("release", "up")] * 2, events
    assert per["space"] == [("press", "space"), ("release", "space")] * 3, events
    assert per["ctrl"] == [("press", "ctrl"), ("release", "ctrl")] and per["shift"] == [("press", "shift"),
                                                                                        ("release", "shift")]
    i = events.index
    assert i(("press", "ctrl")) < i(("press", "shift")) < i(("release", "shift")) < i(("release", "ctrl"))
    assert len(events) == len(sent)  # every event the sink sent reached the X server, and nothing else
    assert held_at_end(events) == set()


def test_dry_run_sends_nothing(display, tmp_path):
    from io import StringIO

    from neurohand.deploy.keys_sink import KeysSink

    prof = write(tmp_path, '[[binding]]\nfinger = "thumb"\nkey = "up"\nmin_hold_ms = 0\n')
    rec = Recorder(display)
    out = StringIO()
    sink = KeysSink(prof, CLASSES, dry_run=True, start_enabled=True, out=out)
    drive(sink, [0.9, 0.9, 0.1])
    sink.close()
    assert rec.stop() == []
    assert out.getvalue().split("\n")[:2] == ["press up", "release up"]


def test_no_key_stays_down_after_sigterm_mid_press(display, tmp_path):
    """neurohand run --keys, enabled with the real toggle key, holding a key; SIGTERM releases it."""
    from neurohand.decoder.session_file import write_recording
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
    from tests.test_export_engines import small_bundle

    rec_ = simulate_recording(SimulatorConfig(minutes=0.2, n_channels=4, fs_hz=4000.0, seed=2))
    small_bundle(str(tmp_path), rec_)
    session = str(tmp_path / "s.h5")
    write_recording(rec_, session)
    # thresholds every finger crosses: the key is held as soon as output is enabled
    prof = write(tmp_path, '[keys]\ntoggle_key = "f12"\n[[binding]]\nfinger = "thumb"\npress = 0.02\n'
                 'release = 0.01\nkey = "down"\n')
    rec = Recorder(display)
    proc = subprocess.Popen([sys.executable, "-m", "neurohand", "run", "--bundle", str(tmp_path / "b"), "--source",
                             "replay:" + session, "--hand", "none", "--keys", prof, "--engine", "numpy"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "keyboard output is off until f12" in proc.stderr.readline()  # listening: however slow the start
        time.sleep(0.3)
        from pynput import keyboard

        c = keyboard.Controller()  # a person presses the real toggle key
        c.press(keyboard.Key.f12)
        c.release(keyboard.Key.f12)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = rec.stop()
    assert ("press", "down") in events, events
    assert held_at_end(events) == set()
    assert proc.returncode == 0
