import os

import numpy as np
import pytest

from neurohand.deploy.keymap import KeyMapper, ProfileError, load_profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("rest", "thumb_flexion", "index_flexion", "middle_flexion", "ring_flexion", "little_flexion",
           "power_grip", "pinch", "tripod", "point")


def write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text)
    return str(p)


def run(mapper, frames, dt=0.01, probs=None):
    events = []
    for i, pos in enumerate(frames):
        pr = probs[i] if probs is not None else np.eye(len(CLASSES))[0]
        events += [(round(i * dt, 3),) + e for e in mapper.step(np.asarray(pos, float), pr, i * dt)]
    return events


def finger_trace(values, finger=0):
    out = []
    for v in values:
        p = np.zeros(5)
        p[finger] = v
        out.append(p)
    return out


def test_shipped_profiles_validate():
    for name in ("fps.toml", "shooter.toml"):
        prof = load_profile(os.path.join(ROOT, "deploy", "profiles", name), class_names=CLASSES)
        assert prof.bindings


def test_hold_with_hysteresis_does_not_chatter(tmp_path):
    prof = load_profile(write(tmp_path, '[[binding]]\nfinger = "thumb"\npress = 0.6\nrelease = 0.4\nkey = "w"\n'
                                        'min_hold_ms = 0\n'))
    m = KeyMapper(prof, CLASSES, enabled=True)
    # hovering around the press threshold between 0.45 and 0.65 presses once and never chatters
    trace = [0.0, 0.3, 0.65, 0.55, 0.62, 0.45, 0.61, 0.5, 0.35, 0.2]
    ev = run(m, finger_trace(trace))
    assert [e[1:] for e in ev] == [("press", "w"), ("release", "w")]
    assert ev[0][0] == 0.02 and ev[1][0] == 0.08


def test_tap_presses_once_per_activation_and_respects_retrigger(tmp_path):
    prof = load_profile(write(tmp_path, '[[binding]]\nfinger = "index"\npress = 0.6\nrelease = 0.4\nkey = "space"\n'
                                        'mode = "tap"\nmin_hold_ms = 20\nretrigger_ms = 100\n'))
    m = KeyMapper(prof, CLASSES, enabled=True)
    trace = [0.9] * 10 + [0.1, 0.9, 0.9, 0.9] + [0.1] * 10 + [0.9] * 3
    ev = run(m, finger_trace(trace, finger=1))
    kinds = [e[1] for e in ev]
    times = [e[0] for e in ev]
    # one press per activation (three activations), each released after its 20 ms minimum hold; the second
    # activation at 0.11 s is 110 ms after the first trigger, past the 100 ms re-trigger time
    assert kinds == ["press", "release", "press", "release", "press", "release"]
    assert times[0] == 0.0 and times[1] == 0.02
    assert all(times[i + 2] - times[i] >= 0.1 for i in range(0, len(times) - 2, 2))


def test_combination_keys_and_combo_source(tmp_path):
    prof = load_profile(write(tmp_path, '[[binding]]\ncombo = "fist"\npress = 0.7\nrelease = 0.5\nkey = "ctrl+f"\n'
                                        'min_hold_ms = 0\n'))
    m = KeyMapper(prof, CLASSES, enabled=True)
    frames = [np.full(5, 0.8)] * 3 + [np.array([0.8, 0.8, 0.8, 0.8, 0.2])] + [np.zeros(5)]
    ev = run(m, frames)
    assert [e[1:] for e in ev] == [("press", "ctrl"), ("press", "f"), ("release", "f"), ("release", "ctrl")]


def test_output_starts_disabled_and_gesture_toggles_and_disable_releases(tmp_path):
    prof = load_profile(write(tmp_path, '[keys]\ntoggle_gesture = "point"\n\n[[binding]]\nfinger = "thumb"\n'
                                        'key = "w"\n'), class_names=CLASSES)
    m = KeyMapper(prof, CLASSES)
    point = np.eye(len(CLASSES))[CLASSES.index("point")]
    rest = np.eye(len(CLASSES))[0]
    assert m.step(np.ones(5), rest, 0.0) == []  # disabled: nothing pressed
    assert m.step(np.ones(5), point, 0.1) == [("press", "w")]  # toggled on: the active binding presses
    assert m.enabled
    assert m.step(np.ones(5), rest, 0.2) == []  # held, not pressed again
    out = m.step(np.ones(5), point, 0.3)  # toggle off: held keys released at once
    assert not m.enabled and ("release", "w") in out
    assert m.release_all() == []


def test_release_all_and_rate_limit_never_drop_releases(tmp_path):
    text = "[keys]\nmax_events_per_s = 2\n" + "".join(
        '\n[[binding]]\nfinger = "{}"\nkey = "{}"\nmin_hold_ms = 0\n'.format(f, k)
        for f, k in (("thumb", "a"), ("index", "b"), ("middle", "c")))
    m = KeyMapper(load_profile(write(tmp_path, text)), CLASSES, enabled=True)
    out = m.step(np.ones(5), np.eye(len(CLASSES))[0], 0.0)
    assert len([e for e in out if e[0] == "press"]) == 2  # the third press is rate-limited
    rel = m.release_all()
    assert sorted(rel) == [("release", "a"), ("release", "b")]


@pytest.mark.parametrize("text,match", [
    ('[[binding]]\nfinger = "thumb"\nkey = "kaboom"\n', r"line 3: unknown key name 'kaboom'"),
    ('[[binding]]\nfinger = "thumb"\npress = 0.4\nrelease = 0.6\nkey = "w"\n', r"line 4: overlapping thresholds"),
    ('\n[[binding]]\nclass = "jazz_hands"\nkey = "w"\n', r"line 3: unknown class name 'jazz_hands'"),
    ('[[binding]]\nfinger = "pinky"\nkey = "w"\n', r"line 2: unknown finger 'pinky'"),
    ('[[binding]]\nfinger = "thumb"\nkey = "w"\nmode = "toggle"\n', r"line 4: Invalid value for 'mode'"),
    ('[[binding]]\nfinger = "thumb"\nkey = "w"\n[[binding]]\nkey = "q"\n', r"line 4: a binding needs exactly one"),
    ('[[binding]\nkey = 1\n', r"p.toml"),
])
def test_profile_errors_name_the_line(tmp_path, text, match):
    with pytest.raises(ProfileError, match=match):
        load_profile(write(tmp_path, text), class_names=CLASSES)


B = '[[binding]]\nfinger = "thumb"\nkey = "w"\n'


@pytest.mark.parametrize("text,match", [
    ("[keys]\nmax_events_per_s = nan\n" + B, r"line 2: Invalid value for 'max_events_per_s': a number in 1..100, "
                                             r"got nan"),
    ("[keys]\nmax_events_per_s = 1e12\n" + B, r"line 2: Invalid value for 'max_events_per_s'.*got 1000000000000.0"),
    ("[keys]\ntoggle_key = \"f12\"\nmax_events_per_s = -5\n" + B, r"line 3: .*'max_events_per_s'.*got -5"),
    ("[keys]\nmax_events_per_s = \"30\"\n" + B, r"line 2: .*'max_events_per_s'.*got '30'"),
    (B + "min_hold_ms = -1\n", r"line 4: Invalid value for 'min_hold_ms': a number in 0..10000, got -1"),
    (B + "retrigger_ms = inf\n", r"line 4: Invalid value for 'retrigger_ms'"),
    (B + "relase = 0.3\n", r"line 4: unknown field 'relase' in a binding"),
    (B + "press = true\n", r"line 4: Invalid value for 'press'"),
    ("[keys]\nmax_event_per_s = 3\n" + B, r"line 2: unknown field 'max_event_per_s' in \[keys\]"),
    ("[keys]\nmax_events_per_s = 30\n", r"has no \[\[binding\]\]"),
    ("", r"has no \[\[binding\]\]"),
    ('[binding]\nfinger = "thumb"\nkey = "w"\n', r"'binding' must be an array of tables"),
    ('[[binding]]\nfinger = "thumb"\nkey = 3\n', r"line 3: Invalid value for 'key': a non-empty string, got 3"),
    ('[[binding]]\nfinger = "thumb"\nkey = "w"\nmode = ["hold"]\n', r"line 4: Invalid value for 'mode'"),
    ('keys = 3\n' + B, r"'keys' must be a table"),
])
def test_every_profile_field_is_bounded(tmp_path, text, match):
    """Issue 19.13: a NaN/1e12/negative rate limit, a negative hold, a typo'd field, an empty profile all passed."""
    with pytest.raises(ProfileError, match=match):
        load_profile(write(tmp_path, text), class_names=CLASSES)


@pytest.mark.parametrize("text,match", [
    ('[[binding]]\nfinger = "thumb"\nkey = "ctrl+alt+delete"\n',
     r"line 1: the bindings can press ctrl\+alt\+delete together \(lines 1\), a combination the system acts on"),
    ('[[binding]]\nfinger = "thumb"\nkey = "alt+f4"\n', r"can press alt\+f4 together"),
    ('[[binding]]\nfinger = "thumb"\nkey = "ctrl+alt+f1"\n', r"can press ctrl\+alt\+f1 together"),
    ('[[binding]]\nfinger = "thumb"\nkey = "cmd+l"\n', r"can press cmd together"),
    # held by one binding while the others fire: the union of what is bound counts
    ('[[binding]]\nfinger = "thumb"\nkey = "ctrl"\n[[binding]]\nfinger = "index"\nkey = "alt"\n'
     '[[binding]]\nfinger = "middle"\nkey = "delete"\n', r"line 7: .*ctrl\+alt\+delete together \(lines 1, 4, 7\)"),
    ('[keys]\ntoggle_key = "f12"\n[[binding]]\nfinger = "thumb"\nkey = "shift+f12"\n',
     r"line 2: the toggle key 'f12' is also bound as an output \(line 3\)"),
    ('[keys]\nmax_events_per_s = 2\n[[binding]]\nfinger = "thumb"\nkey = "ctrl+shift+w"\n',
     r"line 3: the key combination 'ctrl\+shift\+w' is 3 key presses, more than max_events_per_s = 2: it could "
     r"never fire"),
    ('[[binding]]\nfinger = "thumb"\nkey = "a+a"\n', r"line 1: the key combination 'a\+a' names a key twice"),
    ('[keys]\nallow_system_keys = "yes"\n' + B, r"line 2: Invalid value for 'allow_system_keys': true or false"),
])
def test_system_combos_the_toggle_key_and_combos_that_never_fire_are_refused(tmp_path, text, match):
    """Issue 28.6: ctrl+alt+delete, alt+f4 and ctrl+alt+f1 passed the check, a dry run pressed them; the toggle key
    could be an output; a combination longer than the rate limit could never fire."""
    with pytest.raises(ProfileError, match=match):
        load_profile(write(tmp_path, text), class_names=CLASSES)


def test_a_profile_may_allow_system_keys_on_purpose(tmp_path):
    prof = load_profile(write(tmp_path, '[keys]\nallow_system_keys = true\n[[binding]]\nfinger = "thumb"\n'
                                       'key = "alt+f4"\n'), class_names=CLASSES)
    assert prof.bindings[0].keys == ("alt", "f4")


@pytest.mark.parametrize("text", ["[keys]\nmax_events_per_s = nan\n" + B, "[keys]\n", '[binding]\nkey = "w"\n'])
def test_keys_check_refuses_a_bad_profile_with_one_line(tmp_path, capsys, text):
    from neurohand.cli import main

    assert main(["keys", "--profile", write(tmp_path, text), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurohand keys: error: ") and err.count("\n") == 1


def test_keys_without_pynput_says_what_to_install(monkeypatch):
    import sys

    from neurohand.decoder.errors import DeviceError
    from neurohand.deploy.keys_sink import KeysSink

    monkeypatch.setitem(sys.modules, "pynput", None)  # import pynput -> ModuleNotFoundError
    with pytest.raises(DeviceError, match=r"pip install 'neurohand\[keys\]'"):
        KeysSink(os.path.join(ROOT, "deploy", "profiles", "fps.toml"), CLASSES)


def test_profiles_that_come_with_neurohand_are_named_and_a_missing_one_is_one_line(capsys):
    from neurohand.cli import main
    from neurohand.deploy.keymap import packaged_profiles, profile_path

    assert packaged_profiles() == ["fps", "shooter"]
    assert profile_path("fps") == os.path.join(ROOT, "deploy", "profiles", "fps.toml")  # where the install put it
    assert main(["keys", "--profile", "shooter", "--check"]) == 0
    capsys.readouterr()
    assert main(["keys", "--profile", "fsp", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No keyboard profile 'fsp': not a file, nor one of the profiles that come with " \
                                    "neurohand (fps, shooter)" in err
    # a profile of one's own starts from a shipped one, wherever the install put it
    assert main(["keys", "--profile", "fps", "--show"]) == 0
    shown = capsys.readouterr().out
    assert shown == open(profile_path("fps"), encoding="utf-8").read() and "[keys]" in shown
