"""Edge cases found by mutation testing of adbench_hr/metrics/accumulator.py and curves.py.

Every expected value is computed by hand from SPEC.md §2 / docs/metrics.md, not by the engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from adbench_hr.errors import InputError
from adbench_hr.metrics import AnomalyMetrics


def _two_defect_row():
    # One row: normals score 1..10, defect A (1 px) scores 9.5, defect B (1 px) scores 6.5; A and B are far
    # apart, so they are two 8-connected components. N = 10 normal pixels.
    m = np.array([[9.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 6.5]], np.float32)
    g = np.zeros(m.shape, bool)
    g[0, 0] = g[0, 11] = True
    return m, g


@pytest.mark.parametrize("limits", [(0.05, 0.3), (0.3, 0.05), (0.01, 0.05, 0.1, 0.3)])
def test_aupro_does_not_depend_on_the_order_of_the_fpr_limits(limits):
    # Exact curve (score >= t): t=10 -> (0.1, 0); t=9.5 -> (0.1, 0.5); t=9..7 -> FPR 0.2..0.4, PRO 0.5;
    # t=6.5 -> (0.4, 1); ... (1, 1). Area to 0.3: 0.2 * 0.5 = 0.1 -> AUPRO@0.3 = 1/3. Area to 0.05: 0.
    m, g = _two_defect_row()
    acc = AnomalyMetrics(fpr_limits=limits)
    acc.update(m, g)
    got = acc.compute()["metrics"]
    assert got["aupro"]["0.3"] == pytest.approx(1 / 3, abs=1e-12)
    assert got["aupro"]["0.05"] == 0.0
    assert got["pro_curves"]["fpr_limit"] == 0.3  # sampled up to the largest limit, whatever the order
    assert got["pro_curves"]["all"]["fpr"][-1] == pytest.approx(0.3, abs=1e-6)


def test_sampled_curve_at_the_limit_reaches_the_top_of_a_vertical_step():
    # 10 normals: 3 at 1.0, 7 at 0.0. Two 1-px defects at 0.8 and 0.6, no normal between them: both
    # thresholds have FPR exactly 3/10 = 0.3 (the largest limit), with PRO 0.5 at t=0.8 and PRO 1 at t=0.6.
    # The exact curve: (0,0) (0.3,0) (0.3,0.5) (0.3,1) (1,1). Its value at FPR 0.3 (the last grid point)
    # is the top of the vertical step, PRO 1 (curves.value_at: "the value at its end").
    m = np.array([[1.0, 1.0, 1.0, 0.8, 0.0, 0.6, 0, 0, 0, 0, 0, 0]], np.float32)
    g = np.zeros(m.shape, bool)
    g[0, 3] = g[0, 5] = True
    acc = AnomalyMetrics()
    acc.update(m, g)
    got = acc.compute()["metrics"]
    assert got["aupro"]["0.3"] == 0.0
    curve = got["pro_curves"]["all"]
    assert curve["fpr"][-1] == 0.3
    assert curve["pro"][-1] == 1.0
    assert curve["pro"][-2] == 0.0


def test_no_fpr_limit_is_refused():
    with pytest.raises(InputError) as info:
        AnomalyMetrics(fpr_limits=())
    assert str(info.value) == "FPR limits must hold at least one limit, got none"


def test_an_fpr_limit_beyond_float64_is_refused_as_out_of_range_not_an_overflow():
    with pytest.raises(InputError) as info:
        AnomalyMetrics(fpr_limits=(0.3, 10**400))
    assert str(info.value).startswith("FPR limits must lie in (0, 1], got (0.3, 1000")


@pytest.mark.parametrize("mode", ["EXACT", "l2bt ", "fast", ""])
def test_an_unknown_pro_threshold_mode_is_refused(mode):
    # Only "exact" and "l2bt" name a curve of docs/metrics.md; another word must not fall back to one of them.
    with pytest.raises(InputError) as info:
        AnomalyMetrics(pro_thresholds=mode)
    assert str(info.value) == f"unknown PRO threshold mode {mode!r} (use exact or l2bt)"


def test_fpr_limit_zero_is_refused():
    # docs/metrics.md: limits lie in (0, 1]; 0 would divide by zero at compute().
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        AnomalyMetrics(fpr_limits=(0.0,))
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        AnomalyMetrics(fpr_limits=(0.3, 0.0))


def test_l2bt_sampled_curve_ends_at_one_one():
    # SPEC: l2bt curves get "the point (1, 1)". Normals 0 and 1, one defect pixel at 0 (never > t):
    # PRO is 0 at every rank threshold, and 1 only at the closing point FPR = 1.
    m = np.array([[0.0, 1.0, 0.0]], np.float32)
    g = np.array([[False, False, True]])
    acc = AnomalyMetrics(fpr_limits=(1.0,), pro_thresholds="l2bt")
    acc.update(m, g)
    curves = acc.compute()["metrics"]["pro_curves"]["all"]
    assert curves["fpr"][-1] == 1.0
    assert curves["pro"][-1] == 1.0
    assert curves["pro"][0] == 0.0
    # Rank FPRs: rank 0 -> 1 - 1/2 = 0.5, rank 1 -> 0; then (1, 1). PRO 0 up to FPR 0.5, then the segment
    # (0.5, 0) -> (1, 1): AUPRO@1 = 0.5 * (0 + 1) / 2 = 0.25.
    assert acc.compute()["metrics"]["aupro"]["1"] == pytest.approx(0.25, abs=1e-12)


def test_an_all_zero_mask_is_a_good_image():
    # label defaults to "the mask has a defect pixel" (docs/metrics.md): an all-zero mask array is a good image.
    g = np.zeros((2, 2), bool)
    g[0, 0] = True
    acc = AnomalyMetrics()
    acc.update(np.full((2, 2), 0.9, np.float32), np.zeros((2, 2), np.uint8))  # good, high score
    acc.update(np.full((2, 2), 0.1, np.float32), g)  # defective, low score
    got = acc.compute()["metrics"]
    assert got["n_defective_images"] == 1
    assert got["i_auroc"] == 0.0  # the only defective image scores below the only good one


def test_maximum_score_negative_zero():
    # A map whose largest value is -0.0 (e.g. -relu(x)); -0.0 equals 0.0 for every comparison of the spec.
    # Scores: defect -0.99999994 (float32 just above -1); normals -0.0, -0.5.
    low = np.float32(-(1 - 2.0**-24))
    m = np.array([[low, -0.0, -0.5]], np.float32)
    g = np.array([[True, False, False]])
    acc = AnomalyMetrics()
    acc.update(m, g)
    got = acc.compute()["metrics"]
    assert got["p_auroc"] == 0.0  # the defect scores below both normals
    assert got["aupro"]["0.3"] == 0.0


def _float64_near_one():
    # float32 rounds 1 + 1e-12 to 1.0: the defect would tie with the normals (docs/metrics.md, "float32 and
    # float64 scores").
    m = np.ones((3, 3), np.float64)
    g = np.zeros((3, 3), bool)
    g[1, 1] = True
    m[g] = 1.0 + 1e-12
    return m, g


def test_merge_keeps_float64_precision_of_the_merged_accumulator():
    m, g = _float64_near_one()
    left, right = AnomalyMetrics(), AnomalyMetrics()
    left.update(np.zeros((2, 2), np.float32), None)  # a float32 good image
    right.update(m, g)  # the float64 defective image
    got = left.merge(right).compute()["metrics"]
    # The defect pixel (1 + 1e-12) beats all 12 normals (8 at 1.0, 4 at 0): P-AUROC 1, AUPRO 1.
    assert got["p_auroc"] == 1.0
    assert got["aupro"]["0.01"] == 1.0


def _given(acc, labels, sizes, m):
    acc.update(m, labels, defect_sizes=np.array(sizes, float))


def test_merge_keeps_lost_defects_and_the_given_mode():
    m = np.array([[0.9, 0.1, 0.1, 0.1]], np.float32)
    labels = np.array([[1, 0, 0, 0]], np.int32)
    # Image 1: defect 1 (size 10) present, defect 2 (size 100) lost. Image 2: defect 1 (size 5000) lost.
    whole = AnomalyMetrics()
    _given(whole, labels, [10.0, 100.0], m)
    _given(whole, np.zeros((1, 4), np.int32), [5000.0], m)
    a, b = AnomalyMetrics(), AnomalyMetrics()
    _given(a, labels, [10.0, 100.0], m)
    _given(b, np.zeros((1, 4), np.int32), [5000.0], m)
    # Merging into an empty accumulator, and merging an empty one (a worker that got no image) in.
    for merged in (AnomalyMetrics().merge(a).merge(b), a.merge(b).merge(AnomalyMetrics())):
        got = merged.compute()["metrics"]
        assert got["n_defects"] == 1 and got["n_lost_defects"] == 2
        assert [e["n_lost"] for e in got["aupro_by_area"]] == [0, 1, 0, 0, 1, 0]
        # Quartile edges over all three given defects (10, 100, 5000), lost ones too: numpy linear quantiles.
        assert got["size_quartiles_px"] == [55.0, 100.0, 2550.0]
        assert got == whole.compute()["metrics"]


def test_merge_with_a_wider_score_range_equals_one_accumulator():
    # The merged-in accumulator holds the category's largest and smallest scores.
    rng = np.random.default_rng(11)
    maps = [rng.random((6, 5)).astype(np.float32), (rng.random((6, 5)) * 1000 - 500).astype(np.float32)]
    masks = [rng.random((6, 5)) > 0.7, rng.random((6, 5)) > 0.7]
    whole, left, right = AnomalyMetrics(), AnomalyMetrics(), AnomalyMetrics()
    for m, g in zip(maps, masks):
        whole.update(m, g)
    left.update(maps[0], masks[0])
    right.update(maps[1], masks[1])
    assert left.merge(right).compute()["metrics"] == whole.compute()["metrics"]


@pytest.mark.parametrize("other", [dict(pro_thresholds="l2bt"), dict(fpr_limits=(0.3, 0.1))])
def test_merge_refuses_other_settings(other):
    with pytest.raises(ValueError, match="different settings"):
        AnomalyMetrics().merge(AnomalyMetrics(**other))


def test_negative_zero_defect_score_listed_first():
    # Defect pixels -0.0 (first in raster order) and +0.0, normals 0.5, 1.0 and -0.0 (= 0). -0.0 == 0.0, so
    # each defect pixel ties with one normal and loses to two: P-AUROC = 2 * 0.5 / (2 * 3) = 1/6.
    m = np.array([[-0.0, 0.5, 0.0, 1.0, -0.0]], np.float32)
    g = np.array([[True, False, True, False, False]])
    acc = AnomalyMetrics()
    acc.update(m, g)
    got = acc.compute()["metrics"]
    assert got["p_auroc"] == pytest.approx(1 / 6, abs=1e-12)
    # Thresholds: 1 -> FPR 1/3, PRO 0; 0.5 -> FPR 2/3; 0 -> (1, 1). AUPRO@0.3 = 0.
    assert got["aupro"]["0.3"] == 0.0


def test_sampled_pro_keeps_six_decimals():
    # One 3-px defect scoring 0.9, 0.1, 0.1 (one component); 10 normals at 0.5. For 0 < FPR < 1 the curve is
    # flat at PRO 1/3 (t = 0.9 lights one of three pixels at FPR 0; the next defect threshold has FPR 1).
    m = np.full((3, 5), 0.5, np.float32)
    g = np.zeros(m.shape, bool)
    g[0, :3] = True
    m[0, :3] = [0.9, 0.1, 0.1]
    acc = AnomalyMetrics()
    acc.update(m, g)
    curve = acc.compute()["metrics"]["pro_curves"]["all"]
    assert curve["fpr"][0] == 0.0 and len(curve["fpr"]) == 101
    assert all(p == pytest.approx(1 / 3, abs=1e-6) for p in curve["pro"][1:])


def test_all_defect_category_still_reports_size_quartiles():
    # No normal pixel: segmentation metrics are null, but the defect sizes are known (one 100-px defect and
    # one 1-px defect): quartiles by numpy's linear interpolation of [1, 100] = 1 + 99 * (1/4, 1/2, 3/4).
    acc = AnomalyMetrics()
    acc.update(np.zeros((10, 10), np.float32), np.ones((10, 10), bool))
    acc.update(np.zeros((1, 1), np.float32), np.ones((1, 1), bool))
    got = acc.compute()["metrics"]
    assert got["aupro"]["0.3"] is None
    assert got["size_quartiles_px"] == [25.75, 50.5, 75.25]


@pytest.mark.parametrize("size", [np.inf, np.nan])
def test_non_finite_given_defect_size_is_refused(size):
    with pytest.raises(InputError, match="positive and finite"):
        AnomalyMetrics().update(np.zeros((1, 2), np.float32), np.array([[1, 0]], np.int32),
                                defect_sizes=np.array([size]), name="m.tiff")


@pytest.mark.parametrize("limits", [(1.5,), (0.3, 1.0000001), (-0.1,)])
def test_fpr_limits_outside_zero_one_are_refused(limits):
    # FPR lies in [0, 1]: a limit above 1 would integrate past the curve's end (1, 1) and divide by it.
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        AnomalyMetrics(fpr_limits=limits)


def test_compute_without_any_image_is_an_error_not_empty_metrics():
    acc = AnomalyMetrics()
    with pytest.raises(InputError, match="no test image was scored"):
        acc.compute()
    acc.update(np.zeros((2, 2), np.float32), None)
    acc.reset()
    with pytest.raises(InputError, match="no test image was scored"):
        acc.compute()


def test_every_given_defect_lost_still_reports_size_quartiles_and_lost_counts():
    # Given defects of 3 and 100 px, neither with a pixel in this map (as when lowres drops every defect):
    # no curve, so null segmentation metrics, but the sizes are known. Quartiles of [3, 100] by numpy's linear
    # interpolation: 3 + 97 * (1/4, 1/2, 3/4) = 27.25, 51.5, 75.75.
    acc = AnomalyMetrics()
    acc.update(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int32), label=1, defect_sizes=np.array([3.0, 100.0]))
    acc.update(np.zeros((2, 3), np.float32), None)
    got = acc.compute()["metrics"]
    assert got["n_defects"] == 0 and got["n_lost_defects"] == 2
    assert got["aupro"]["0.3"] is None and got["rho"]["0.3"] is None
    assert got["size_quartiles_px"] == [27.25, 51.5, 75.75]
    assert [e["n_lost"] for e in got["aupro_by_area"]] == [1, 1, 0, 0, 0, 0]
    assert [e["n_defects"] for e in got["aupro_by_area"]] == [0] * 6


@pytest.mark.parametrize(
    "labels, sizes",
    [
        (np.array([[3, 0, 0]], np.int32), np.array([5.0])),  # label beyond the one size given
        (np.array([[1, 0, 0]], np.int32), np.array([np.nan])),  # size not finite
        (np.array([[1.0, 0, 0]]), np.array([5.0])),  # a label image that is not integer
    ],
)
def test_refused_update_leaves_the_accumulator_as_it_was(labels, sizes):
    # A caller that catches the error and goes on must get the numbers of the images accepted, not phantom
    # normal pixels of the refused one (which would lower P-AUROC, or fall outside the known score range).
    def accepted(acc):
        acc.update(np.array([[0.9, 0.1, 0.5]], np.float32), np.array([[1, 0, 0]], np.int32), label=1,
                   defect_sizes=np.array([5.0]))
        return acc

    acc = accepted(AnomalyMetrics())
    with pytest.raises(InputError):
        acc.update(np.array([[0.95, 0.99, 2.0]], np.float32), labels, label=1, defect_sizes=sizes)
    assert acc.n_images == 1
    assert acc.compute() == accepted(AnomalyMetrics()).compute()
    assert acc.compute()["metrics"]["p_auroc"] == 1.0


def _one_defect(acc: AnomalyMetrics) -> AnomalyMetrics:
    acc.update(np.array([[0.9, 0.1, 0.5]], np.float32), np.array([[1, 0, 0]], np.uint8))
    return acc


@pytest.mark.parametrize("bad_mask", [np.array([[np.nan, 0.0, 0.0]]), np.array([[1.0, -np.inf, 0.0]])])
def test_a_mask_with_nan_or_inf_is_refused_and_changes_nothing(bad_mask):
    # NaN > 0 is false: the pixel would silently count as normal.
    acc = _one_defect(AnomalyMetrics())
    with pytest.raises(InputError, match="mask holds NaN or inf"):
        acc.update(np.array([[0.2, 0.3, 0.4]], np.float32), bad_mask, name="m.tiff")
    assert acc.compute() == _one_defect(AnomalyMetrics()).compute()


@pytest.mark.parametrize("score", ["0.5", np.array([0.1, 0.2]), [0.5], True, np.bool_(False), 1 + 2j,
                                   np.complex64(0.5), np.datetime64("2026-11-27"),
                                   np.array(True), np.array("0.5")])  # 0-d arrays: float() converts them too
def test_an_image_score_that_is_not_one_real_number_is_refused(score):
    acc = AnomalyMetrics()
    with pytest.raises(InputError, match="image score must be one real number"):
        acc.update(np.zeros((2, 2), np.float32), None, image_score=score)
    assert acc.n_images == 0 and acc._normals == []  # nothing of the refused image is kept
    acc.update(np.zeros((2, 2), np.float32), None, image_score=np.float32(0.5))  # a numpy scalar is one number
    assert acc.n_images == 1


def test_defects_given_for_some_images_and_found_for_others_are_refused():
    given = dict(label=1, defect_sizes=np.array([4.0]))
    acc = _one_defect(AnomalyMetrics())
    with pytest.raises(InputError, match="use one mode per category"):
        acc.update(np.zeros((1, 3), np.float32), np.array([[1, 0, 0]], np.int32), **given)
    other = AnomalyMetrics()
    other.update(np.zeros((1, 3), np.float32), np.array([[1, 0, 0]], np.int32), **given)
    other.update(np.zeros((1, 3), np.float32), None)  # a good image has no defect to give or find
    with pytest.raises(InputError, match="use one mode per category"):
        _one_defect(other)
    with pytest.raises(ValueError, match="given in one and found in the other"):
        _one_defect(AnomalyMetrics()).merge(other)
    assert acc.n_images == 1 and other.n_images == 2


def test_merge_refuses_itself_and_other_objects_but_not_the_same_limits_reordered():
    acc = _one_defect(AnomalyMetrics())
    with pytest.raises(ValueError, match="into itself"):
        acc.merge(acc)
    with pytest.raises(TypeError, match="not a dict"):
        acc.merge({})
    with pytest.raises(ValueError, match="different settings"):
        acc.merge(_one_defect(AnomalyMetrics(fpr_limits=(0.3,))))
    assert acc.compute() == _one_defect(AnomalyMetrics()).compute()  # each refusal left it as it was
    reordered = _one_defect(AnomalyMetrics(fpr_limits=(0.01, 0.05, 0.1, 0.3)))
    both = _one_defect(AnomalyMetrics()).merge(reordered).compute()
    whole = _one_defect(_one_defect(AnomalyMetrics())).compute()
    assert both == whole


@pytest.mark.parametrize("mode", ["exact", "l2bt"])
@pytest.mark.parametrize("limit", [5e-324, 1e-320, 2.0**-1022, 1e-300, 0.3])
def test_a_tiny_fpr_limit_keeps_the_mean_pro(limit, mode):
    # Any limit in (0, 1] is allowed, subnormal ones too. One 3-px defect scoring 0.9, 0.1, 0.1; four normals at
    # 0.5. exact: t=0.9 -> (0, 1/3), t=0.5 -> (1, 1/3), t=0.1 -> (1, 1). l2bt: every rank threshold is 0.5, PRO
    # (score > 0.5) is 1/3 at FPR 1 - (rank + 1)/4 in {0.75, 0.5, 0.25, 0}, then (1, 1). Either way PRO is 1/3 on
    # [0, L], so AUPRO@L = 1/3. The unnormalised area L/3 underflows for a subnormal L (5e-324 / 3 rounds to 0).
    m = np.array([[0.9, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5]], np.float32)
    g = np.zeros(m.shape, bool)
    g[0, :3] = True
    acc = AnomalyMetrics(fpr_limits=(limit,), pro_thresholds=mode)
    acc.update(m, g)
    got = acc.compute()["metrics"]
    key = format(limit, "g")
    assert got["aupro"][key] == pytest.approx(1 / 3, abs=1e-12)
    assert got["aupro_cumulative"]["Q1"][key] == pytest.approx(1 / 3, abs=1e-12)  # the one defect is every bin


@pytest.mark.parametrize("mask", [
    np.array([[complex(np.nan, 0.0), 1, 0]]),  # NaN + 0j > 0 is false: the pixel would silently be normal
    np.array([[1 + 0j, 0, 0]]),
    np.array([["1", "", ""]]),  # numpy has no ">" between text and a number: a TypeError, not an InputError
    np.array([[1, 0, None]], dtype=object),
])
def test_a_mask_that_is_not_boolean_or_real_is_refused_and_changes_nothing(mask):
    acc = _one_defect(AnomalyMetrics())
    with pytest.raises(InputError, match="mask must be boolean or real-valued") as info:
        acc.update(np.array([[0.2, 0.3, 0.4]], np.float32), mask, name="m.tiff")
    assert str(info.value.path) == "m.tiff"
    assert acc.compute() == _one_defect(AnomalyMetrics()).compute()


def test_all_defect_category_with_as_many_lost_as_present_defects_reports_size_quartiles():
    # Every pixel belongs to given defect 1 (4 px at the original size); defect 2 (100 px) has no pixel here,
    # so one defect is present and one lost. No normal pixel: null metrics, but the sizes are known and the
    # quartiles of [4, 100] by numpy's linear interpolation are 4 + 96 * (1/4, 1/2, 3/4) = 28, 52, 76.
    acc = AnomalyMetrics()
    acc.update(np.zeros((2, 2), np.float32), np.ones((2, 2), np.int32), defect_sizes=np.array([4.0, 100.0]))
    got = acc.compute()["metrics"]
    assert got["aupro"]["0.3"] is None
    assert got["n_defects"] == 1 and got["n_lost_defects"] == 1
    assert got["size_quartiles_px"] == [28.0, 52.0, 76.0]
    assert [e["n_defects"] for e in got["aupro_by_area"]] == [1, 0, 0, 0, 0, 0]
    assert [e["n_lost"] for e in got["aupro_by_area"]] == [0, 1, 0, 0, 0, 0]


def test_sampled_fpr_grid_keeps_six_decimals():
    # 101 points from 0 to the largest limit: with a limit of 0.0123 the grid step is 0.000123, which needs all
    # six decimals (five would write the first step as 0.00012).
    m = np.array([[0.9, 0.5, 0.1, 0.2]], np.float32)
    g = np.array([[True, False, False, False]])
    acc = AnomalyMetrics(fpr_limits=(0.0123,))
    acc.update(m, g)
    curve = acc.compute()["metrics"]["pro_curves"]["all"]
    assert len(curve["fpr"]) == 101
    assert all(abs(x - i * 0.000123) < 1e-12 for i, x in enumerate(curve["fpr"]))
    assert curve["pro"] == [1.0] * 101  # the defect outscores every normal pixel
