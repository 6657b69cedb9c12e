import numpy as np
import pytest

from neurohand.decoder.validation import check_int, check_option, check_positive, check_signal, parse_index_ranges


def test_check_option_message():
    with pytest.raises(ValueError, match="Invalid value for 'phase': allowed 'forward', got 'zero'"):
        check_option("phase", "zero", ["forward"])
    assert check_option("phase", "forward", ["forward"]) == "forward"


def test_check_positive_and_int():
    assert check_positive("fs_hz", 10) == 10.0
    with pytest.raises(ValueError, match="'fs_hz'.*> 0"):
        check_positive("fs_hz", 0)
    with pytest.raises(ValueError, match="'x'"):
        check_positive("x", float("nan"))
    with pytest.raises(TypeError, match="'x' must be a number"):
        check_positive("x", "abc")
    assert check_positive("x", 0, allow_zero=True) == 0.0
    with pytest.raises(TypeError, match="integer"):
        check_int("n", 1.5)
    with pytest.raises(ValueError, match=">= 1"):
        check_int("n", 0, minimum=1)


def test_check_signal():
    x = np.zeros((4, 3))
    assert check_signal("x", x, n_channels=3) is x
    with pytest.raises(ValueError, match=r"'x' must have 2 channels .* got 3"):
        check_signal("x", x, n_channels=2)
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_channels\)"):
        check_signal("x", np.zeros(5))
    y = x.copy()
    y[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf \\(first at sample 2, channel 1\\)"):
        check_signal("x", y)
    check_signal("x", y, allow_nonfinite=True)


def test_parse_index_ranges():
    assert parse_index_ranges("reps", "1-3,8") == [1, 2, 3, 8]
    with pytest.raises(ValueError, match="'reps'.*'1-7'"):
        parse_index_ranges("reps", "a-b")
    with pytest.raises(ValueError, match="'reps'"):
        parse_index_ranges("reps", "5-2")
