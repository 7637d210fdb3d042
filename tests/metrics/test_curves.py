"""The polyline helpers of the metrics engine (interpolation, partial trapezoid areas) on hand-computed curves
and against a plain point-by-point reading of the trapezoid rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from metric_references import area_under

from adbench_hr.metrics.curves import normalised_area, partial_area, resample, value_at

# A curve with a vertical step at x = 0.5 (from 0.2 up to 0.8), as a PRO curve has at a tied threshold.
STEP_X = np.array([0.0, 0.5, 0.5, 1.0])
STEP_Y = np.array([0.0, 0.2, 0.8, 1.0])


def test_value_at_interpolates_linearly_between_points():
    x, y = np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0, 3.0])
    assert value_at(x, y, 0.5) == pytest.approx(1.0)
    assert value_at(x, y, 2.0) == pytest.approx(2.5)  # halfway from (1, 2) to (3, 3)
    assert value_at(x, y, 1.0) == 2.0  # on a vertex: the vertex


def test_value_at_a_vertical_step_is_its_top_and_the_last_point_is_kept_beyond():
    assert value_at(STEP_X, STEP_Y, 0.5) == 0.8
    assert value_at(STEP_X, STEP_Y, 0.75) == pytest.approx(0.9)
    assert value_at(STEP_X, STEP_Y, 1.0) == 1.0
    assert value_at(STEP_X, STEP_Y, 2.0) == 1.0  # beyond the last point: its value, no extrapolation


def test_value_at_before_the_start_is_an_error():
    x, y = np.array([0.1, 1.0]), np.array([0.0, 1.0])
    with pytest.raises(ValueError, match="before the curve's start"):
        value_at(x, y, 0.05)
    assert value_at(x, y, 0.1) == 0.0  # the start itself is on the curve


def test_partial_area_hand_computed():
    x, y = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    assert partial_area(x, y, 0.5) == pytest.approx(0.125)  # triangle 0.5 * 0.5 / 2
    assert partial_area(x, y, 1.0) == pytest.approx(0.5)
    # Cut exactly at a vertex, then through the next segment.
    x, y = np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 1.0])
    assert partial_area(x, y, 0.5) == pytest.approx(0.25)
    assert partial_area(x, y, 0.75) == pytest.approx(0.5)
    assert partial_area(x, y, 1.0) == pytest.approx(0.75)
    # A curve that starts above x = 0 integrates from its start only.
    assert partial_area(np.array([0.2, 1.0]), np.array([1.0, 1.0]), 0.6) == pytest.approx(0.4)


def test_partial_area_at_a_vertical_step_adds_nothing_for_the_step():
    assert partial_area(STEP_X, STEP_Y, 0.5) == pytest.approx(0.05)  # 0.5 * (0 + 0.2) / 2
    # Up to 0.75: the ramp, then 0.25 wide at heights 0.8 .. 0.9.
    assert partial_area(STEP_X, STEP_Y, 0.75) == pytest.approx(0.05 + 0.25 * (0.8 + 0.9) / 2)
    assert partial_area(STEP_X, STEP_Y, 1.0) == pytest.approx(0.05 + 0.5 * (0.8 + 1.0) / 2)


def test_normalised_area_is_the_mean_height_even_for_subnormal_limits():
    x, y = np.array([0.0, 1.0]), np.array([0.25, 0.25])
    for limit in (1.0, 0.3, 1e-300, 5e-324):
        assert normalised_area(x, y, limit) == pytest.approx(0.25)
    # A ramp: the mean of y = 2x over [0, L] is L.
    assert normalised_area(np.array([0.0, 0.5]), np.array([0.0, 1.0]), 0.25) == pytest.approx(0.25)


def test_resample_reads_the_curve_at_every_grid_point():
    got = resample(STEP_X, STEP_Y, np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    np.testing.assert_allclose(got, [0.0, 0.1, 0.8, 0.9, 1.0])


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12),
    st.lists(st.floats(0.0, 1.0), min_size=13, max_size=13),
    st.floats(1e-3, 1.0),
)
def test_partial_area_matches_the_trapezoid_rule_point_by_point(steps, heights, limit):
    # Non-decreasing x from 0, repeated values (vertical steps) allowed; the last point at or beyond 1.
    xs = np.concatenate([[0.0], np.cumsum(steps)])
    xs = np.round(xs / max(xs[-1], 1.0), 1) if xs[-1] > 0 else xs  # rounding makes ties (vertical steps)
    xs[-1] = max(xs[-1], 1.0)
    ys = np.array(heights[: xs.size])
    want = area_under(xs, ys, limit)
    assert partial_area(xs, ys, limit) == pytest.approx(want, abs=1e-12)
    assert normalised_area(xs, ys, limit) == pytest.approx(want / limit, abs=1e-9)
