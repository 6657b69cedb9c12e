import numpy as np
import pytest

from neurohand.calibration.cue_protocol import DEFAULT_CUE_PROTOCOL, CueProtocol, load_cue_protocol


def test_default_protocol_schedule():
    p = load_cue_protocol(DEFAULT_CUE_PROTOCOL)
    trials = p.schedule()
    assert len(trials) == 5 * 9 and p.class_names[0] == "rest" and len(p.class_names) == 10
    # every repetition is one pass over all movements, in a seeded random order
    for rep in range(1, 6):
        names = [t.movement for t in trials if t.repetition == rep]
        assert sorted(names) == sorted(m for m, _ in p.movements)
    assert [t.movement for t in trials] == [t.movement for t in load_cue_protocol(DEFAULT_CUE_PROTOCOL).schedule()]
    assert all(b.start_s == pytest.approx(a.end_s) for a, b in zip(trials, trials[1:]))
    assert p.duration_s == pytest.approx(2.0 + 45 * (2 * 0.6 + 2.0 + 2.0))


def test_trajectory_follows_the_cues():
    p = CueProtocol(movements=(("index", (0.0, 1.0, 0.0, 0.0, 0.0)),), repetitions=2, hold_s=1.0, rest_s=1.0,
                    ramp_s=0.5, randomize=False)
    t = np.arange(0, p.duration_s, 0.01)
    pos, lab, rep = p.trajectory(t)
    assert pos.min() >= 0 and pos.max() <= 1
    first = p.schedule()[0]
    mid_hold = int((first.start_s + first.ramp_s + 0.5) / 0.01)
    np.testing.assert_allclose(pos[mid_hold], [0, 1, 0, 0, 0])
    assert lab[mid_hold] == 1 and rep[mid_hold] == 1
    assert np.all(pos[t < first.start_s] == 0) and np.all(lab[t < first.start_s] == 0)
    assert np.max(np.abs(np.diff(pos[:, 1]))) < 0.05  # smooth minimum-jerk ramps, no jumps


def test_validation_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="Movement 'x': expected 5 target positions"):
        CueProtocol(movements=(("x", (1.0, 2.0, 0.0, 0.0, 0.0)),))
    with pytest.raises(ValueError, match="'hold_s'"):
        CueProtocol(movements=(("x", (1.0, 0.0, 0.0, 0.0, 0.0)),), hold_s=0)
    p = tmp_path / "p.toml"
    p.write_text("repetitions = 2\nholds = 3\n[movements]\nx = [1, 0, 0, 0, 0]\n")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['holds'\]"):
        load_cue_protocol(str(p))


def test_json_round_trip_target_lookup_and_repetitions_for_minutes():
    p = load_cue_protocol(DEFAULT_CUE_PROTOCOL)
    assert CueProtocol.from_json(p.to_json()) == p  # what a session file stores is the exact cue_protocol
    assert p.target_of("pinch") == (0.7, 0.7, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="Invalid value for 'movement'"):
        p.target_of("wave")
    one_rep = p.with_repetitions(1).duration_s - p.rest_s
    assert one_rep == pytest.approx(9 * (2 * 0.6 + 2.0 + 2.0))
    assert p.repetitions_for(2.0) == 2 and p.repetitions_for(0.1) == 2  # never fewer than 2
    assert p.repetitions_for(10.0) == int((600 - 2.0) // one_rep)
    assert p.with_repetitions(2).duration_s <= 2.0 * 60
