"""Counts and sums at the sizes of whole high-resolution datasets, checked without gigapixel arrays.

Categories of billions of pixels are imitated with zero-stride views (``np.broadcast_to``): a constant block
of normal pixels costs no memory, and a counter that counts such a block at once stands in for the
streaming one (every value of the block is the same, so the counts are those of the definition).
References are Python integers and fractions from the definitions in docs/metrics.md.
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adbench_hr.metrics.accumulator as accumulator
from adbench_hr.metrics import AnomalyMetrics
from adbench_hr.metrics._counting import NormalCounter
from adbench_hr.metrics.accumulator import exact_dot
from adbench_hr.metrics.size_bins import SizeBin


class ConstantBlockCounter(NormalCounter):
    """The engine's counter, except that a zero-stride block (one value repeated) is counted in one step."""

    def add(self, normals: np.ndarray) -> None:
        normals = normals.reshape(-1)
        if normals.size > 1 and normals.strides == (0,):
            value = normals[:1].astype(self.dtype)[0]
            j = int(np.searchsorted(self.thresholds, value, side="left"))
            self._at_or_below[j] += normals.size
            if j < self.thresholds.size and self.thresholds[j] == value:
                self._equal[j] += normals.size
            return
        super().add(normals)


def value_counts(values: np.ndarray) -> dict[float, int]:
    distinct, counts = np.unique(values, return_counts=True)
    return {float(v): int(n) for v, n in zip(distinct, counts, strict=True)}


def reference_p_auroc(normal_counts: dict[float, int], defect_counts: dict[float, int]) -> Fraction:
    """P-AUROC as the fraction of (defect, normal) pixel pairs ranked right, ties one half."""
    n_pos, n_neg = sum(defect_counts.values()), sum(normal_counts.values())
    wins = 0
    for value, n in defect_counts.items():
        below = sum(m for other, m in normal_counts.items() if other < value)
        wins += n * (2 * below + normal_counts.get(value, 0))
    return Fraction(wins, 2 * n_pos * n_neg)


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=20), st.data())
def test_exact_dot_is_the_integer_dot_product(values, data):
    counts = data.draw(st.lists(st.integers(0, 2**40 // 20), min_size=len(values), max_size=len(values)))
    assert exact_dot(np.array(values), np.array(counts)) == sum(v * c for v, c in zip(values, counts, strict=True))
    assert exact_dot(np.array(values)) == sum(values)


def test_exact_dot_passes_2_63_where_int64_wraps():
    values, counts = np.array([2**43, 2**43 + 5]), np.array([2**20, 2**21 + 1])
    assert int(np.dot(values, counts)) != 2**63 + 2**64 + 2**43 + 5 * (2**21 + 1)  # int64 wraps here
    assert exact_dot(values, counts) == 2**63 + 2**64 + 2**43 + 5 * (2**21 + 1)


def test_exact_dot_at_its_bounds():
    # A total of exactly 2**63 is one past int64's largest value: it must not be summed in int64.
    assert exact_dot(np.array([2**62, 2**62])) == 2**63
    assert exact_dot(np.array([2**62]), np.array([2])) == 2**63
    # 2**41 counted values lie below the documented refusal (2**42): summed exactly in limbs, not refused.
    assert exact_dot(np.array([2**62 + 1]), np.array([2**41])) == (2**62 + 1) * 2**41
    # Small values are summed in int64 at any count (docstring): counts of 2**42 and more are refused only where
    # count x largest value reaches 2**63, not for 2**43 ones nor for 2**42 times 2**20 (2**62).
    assert exact_dot(np.array([1]), np.array([2**43])) == 2**43
    assert exact_dot(np.array([2**20]), np.array([2**42])) == 2**62


def test_exact_dot_refuses_counts_beyond_its_limbs():
    with pytest.raises(ValueError, match="int64"):
        exact_dot(np.array([2**62]), np.array([2**42]))


# Defect px x normal px: 2^60.4 (int64 holds it), 2^63.4 and 2^65.4 (beyond int64).
@pytest.mark.parametrize("n_extra", [2**48, 2**51, 2**53], ids=["2^60", "2^63", "2^65"])
def test_pixel_auroc_of_a_category_beyond_2_63_pixel_pairs(monkeypatch, n_extra):
    monkeypatch.setattr(accumulator, "NormalCounter", ConstantBlockCounter)
    rng = np.random.default_rng(0)
    mask = np.ones((64, 64), bool)
    mask[0] = False
    amap = np.where(mask, 0.5 + rng.integers(0, 4, mask.shape) / 8, 0.0).astype(np.float32)
    amap[0, :32] = 0.625  # normals tied with defects
    metrics = AnomalyMetrics()
    metrics.update(amap, mask)
    for value, n in ((0.0, n_extra), (0.75, n_extra // 3)):  # good images of billions of pixels, as views
        metrics._normals.append(np.broadcast_to(np.float32(value), (n,)))
    normal_counts = value_counts(amap[~mask])
    normal_counts[0.0] = normal_counts.get(0.0, 0) + n_extra
    normal_counts[0.75] = normal_counts.get(0.75, 0) + n_extra // 3
    expected = reference_p_auroc(normal_counts, value_counts(amap[mask]))
    assert metrics.compute()["metrics"]["p_auroc"] == pytest.approx(float(expected), abs=1e-15)


@pytest.mark.parametrize("mode", ["exact", "l2bt"])
def test_perfect_map_with_a_million_defect_pixels_scores_one(mode):
    # One defect of 999,000 pixels, all at the top score: its PRO is 999,000 x (1 / 999,000), which a
    # one-at-a-time float64 sum rounds to 1 - 1.7e-11.
    mask = np.ones((1000, 1000), bool)
    mask[0] = False
    metrics = AnomalyMetrics(pro_thresholds=mode)
    metrics.update(mask.astype(np.float32), mask)
    result = metrics.compute()["metrics"]
    for limit in ("0.3", "0.01"):
        assert result["aupro"][limit] == pytest.approx(1.0, abs=4e-16)


@pytest.mark.parametrize("mode", ["exact", "l2bt"])
def test_perfect_maps_with_defects_of_any_size_score_one_within_1e_15(mode):
    # docs/metrics.md: a perfect map gives 1 up to float rounding (1 - 1e-15). Defect sizes where a one-at-a-time
    # sum of the weights 1 / |D| is furthest from 1 (219 px: 1 - 6.1e-15), the pairwise edge, two defects.
    for sizes in ([19], [63], [131], [219], [237], [256], [257], [1, 131], [244, 219]):
        metrics = AnomalyMetrics(pro_thresholds=mode)
        for n in sizes:
            mask = np.zeros((3, n), bool)
            mask[1] = True  # one defect of n px, scoring 1 against normals at 0
            metrics.update(mask.astype(np.float32), mask)
        result = metrics.compute()["metrics"]
        values = [*result["aupro"].values(), *result["aupro_cumulative"]["Q1"].values()]
        assert all(1 - 1e-15 <= v <= 1.0 for v in values), (sizes, values)


def test_pro_sums_of_scores_shared_by_many_pixels_are_correctly_rounded():
    # An 8-bit-like map: 2^18 defect pixels at 5 scores. Each score's summed PRO weight against math.fsum
    # (the correctly rounded sum); a one-at-a-time sum is off by about 1e-11 here.
    rng = np.random.default_rng(3)
    mask = np.zeros((514, 514), bool)
    mask[1:513, 1:513] = True
    amap = np.zeros(mask.shape, np.float32)
    amap[mask] = rng.integers(0, 5, mask.sum()) / 4
    metrics = AnomalyMetrics()
    metrics.update(amap, mask)
    defects = metrics._sorted_defect_pixels(np.float32)
    weights = rng.random(defects.scores.size) / defects.scores.size
    sums = defects.sums_per_score(weights)
    for i, score in enumerate(defects.distinct):
        expected = math.fsum(weights[defects.scores == score])
        assert sums[i] == pytest.approx(expected, rel=4e-16, abs=0)


def three_defects() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((8, 8), bool)
    mask[1, 1] = mask[4, 4] = mask[6, 1] = True
    return mask.astype(np.float32), mask


def test_defect_ids_past_2_31_do_not_wrap():
    # OpenCV labels are int32: shifted past 2**31 - 2 earlier defects they wrapped to -2**31, an index
    # from the end of the per-defect weights (another defect's).
    metrics = AnomalyMetrics()
    metrics._n_components = 2**31 - 2  # as if that many defects had been added
    metrics.update(*three_defects())
    assert sorted(set(metrics._defect_components[-1].tolist())) == [2**31 - 2, 2**31 - 1, 2**31]


def test_merged_defect_ids_past_2_31_do_not_wrap():
    metrics, other = AnomalyMetrics(), AnomalyMetrics()
    other.update(*three_defects())
    metrics._n_components = 2**31 - 2
    metrics.merge(other)
    assert sorted(set(metrics._defect_components[-1].tolist())) == [2**31 - 2, 2**31 - 1, 2**31]


def test_l2bt_thresholds_copy_the_normal_scores_once():
    # The 99 rank thresholds need all normal scores in one array (they are kept per image): one copy,
    # partitioned in place. np.partition copied them a second time (8 bytes per normal pixel, not 4).
    rng = np.random.default_rng(5)
    metrics = AnomalyMetrics(pro_thresholds="l2bt")
    mask = np.zeros((1000, 1000), bool)
    mask[10:20, 10:20] = True
    for _ in range(4):
        metrics.update(rng.random((1000, 1000), dtype=np.float32), mask)
    normal_bytes = sum(chunk.nbytes for chunk in metrics._normals)
    defects = metrics._sorted_defect_pixels(np.float32)
    areas = np.concatenate(metrics._component_areas)
    tracemalloc.start()
    try:
        curve_of = metrics._l2bt_curves(defects, areas)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * normal_bytes
    # The thresholds are still the order statistics at L2BT's ranks: PRO counts defect pixels above them.
    everything = np.sort(np.concatenate(metrics._normals))
    thresholds = everything[np.linspace(0, everything.size - 1, 99).astype(np.int64)]
    per_defect = [chunk for chunk in metrics._defect_scores]  # one defect per image
    expected = [np.mean([np.mean(d > t) for d in per_defect]) for t in thresholds]
    _, pro = curve_of(SizeBin("all", np.ones(areas.size, bool)))
    assert pro[::-1][1:] == pytest.approx(expected, abs=1e-12)
