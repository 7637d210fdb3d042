"""Size bins at their edges: the absolute area bins of the spec, cumulative and disjoint quartiles."""

from __future__ import annotations

import numpy as np
import pytest

from adbench_hr.metrics import AnomalyMetrics
from adbench_hr.metrics.size_bins import (
    area_bins,
    area_label,
    cumulative_bins,
    format_px,
    quartile_bins,
    size_robustness,
)

# The spec's absolute area bins, written out here rather than imported: [min_px, max_px), None = unbounded.
SPEC_AREA_BINS = [(1, 64), (64, 256), (256, 1024), (1024, 4096), (4096, 16384), (16384, None)]


def _blocks_image():
    """One mask whose rectangles have areas on both sides of every bin edge (each edge and edge - 1)."""
    mask = np.zeros((210, 360), bool)
    blocks = [  # (top, left, height, width): area
        (0, 0, 128, 128),  # 16384
        (0, 140, 127, 129),  # 16383
        (140, 0, 64, 64),  # 4096
        (140, 80, 63, 65),  # 4095
        (140, 160, 32, 32),  # 1024
        (140, 200, 31, 33),  # 1023
        (140, 250, 16, 16),  # 256
        (140, 280, 15, 17),  # 255
        (140, 310, 8, 8),  # 64
        (140, 330, 7, 9),  # 63
        (140, 350, 1, 1),  # 1
    ]
    for top, left, height, width in blocks:
        mask[top : top + height, left : left + width] = True
    return mask


def test_area_bins_are_closed_below_and_open_above_at_every_edge():
    mask = _blocks_image()
    anomaly_map = np.random.default_rng(0).random(mask.shape).astype(np.float32)
    anomaly_map[mask] += 0.5
    engine = AnomalyMetrics()
    engine.update(anomaly_map, mask)
    engine.update(np.zeros((4, 4), np.float32), None)
    got = engine.compute()["metrics"]
    assert got["n_defects"] == 11
    assert [(e["min_px"], e["max_px"]) for e in got["aupro_by_area"]] == SPEC_AREA_BINS
    # Each bin holds its lower edge and the next bin's edge - 1 (the single pixel sits with 63 px).
    assert [e["n_defects"] for e in got["aupro_by_area"]] == [2, 2, 2, 2, 2, 1]
    assert all(e["aupro"]["0.3"] is not None for e in got["aupro_by_area"])


@pytest.mark.parametrize("area, index", [(1, 0), (63, 0), (64, 1), (255, 1), (256, 2), (4095, 3), (4096, 4),
                                         (16383, 4), (16384, 5), (10**7, 5)])
def test_area_bin_of_a_single_size(area, index):
    members = [b.members[0] for b in area_bins(np.array([area]))]
    assert members == [i == index for i in range(6)]


def test_quartile_bins_at_their_edges():
    # Areas 1..5: q25 = 2, q50 = 3, q75 = 4, each equal to a defect's size.
    areas = np.array([1, 2, 3, 4, 5])
    quartiles = np.quantile(areas, [0.25, 0.5, 0.75])
    assert quartiles.tolist() == [2.0, 3.0, 4.0]
    cumulative = {b.name: b.members.tolist() for b in cumulative_bins(areas, quartiles)}
    assert cumulative == {
        "Q1": [True, True, False, False, False],
        "Q2": [True, True, True, False, False],
        "Q3": [True, True, True, True, False],
        "Q4": [True] * 5,
    }
    disjoint = {b.name: b.members.tolist() for b in quartile_bins(areas, quartiles)}
    assert disjoint == {
        "Q1": [True, True, False, False, False],
        "Q2": [False, False, True, False, False],
        "Q3": [False, False, False, True, False],
        "Q4": [False, False, False, False, True],
    }


def test_size_robustness_hand_computed():
    # mean(0.2, 0.4, 0.6, 0.8) = 0.5; min/max of Q1 and Q4 = 0.2 / 0.8 = 0.25 -> 0.125.
    assert size_robustness({"Q1": 0.2, "Q2": 0.4, "Q3": 0.6, "Q4": 0.8}) == pytest.approx(0.125, abs=1e-12)
    # Q1 better than Q4: the ratio still lies in [0, 1].
    assert size_robustness({"Q1": 0.8, "Q2": 0.6, "Q3": 0.4, "Q4": 0.2}) == pytest.approx(0.125, abs=1e-12)
    assert size_robustness({"Q1": 0.0, "Q2": 0.0, "Q3": 0.0, "Q4": 0.0}) == 0.0
    assert size_robustness({"Q1": None, "Q2": 0.5, "Q3": 0.5, "Q4": 0.5}) is None


def test_size_robustness_of_zero_ends_and_of_any_undefined_bin():
    # Q1 = Q4 = 0: the ratio is taken as 0 (docstring), so rho is 0 whatever Q2 and Q3 hold, not their mean.
    assert size_robustness({"Q1": 0.0, "Q2": 0.4, "Q3": 0.6, "Q4": 0.0}) == 0.0
    # Any undefined bin, not only Q1, makes rho undefined.
    for name in ("Q2", "Q3", "Q4"):
        aupros = {"Q1": 0.5, "Q2": 0.5, "Q3": 0.5, "Q4": 0.5, name: None}
        assert size_robustness(aupros) is None


def test_pixel_counts_print_whole_numbers_in_full_and_fractions_as_they_are():
    # Whole numbers lose their ".0" and never turn into exponent notation (1048576, not 1.04858e+06).
    assert format_px(64) == "64"
    assert format_px(64.0) == "64"
    assert format_px(1048576.0) == "1048576"
    # A fraction (a resized eval size, a mean area) keeps its decimals instead of being truncated.
    assert format_px(12.5) == "12.5"
    assert area_label(12.5, 40.0) == "12.5-40"
    assert area_label(16384, None) == "16384-inf"
