"""The metrics engine against a plain brute-force reading of the metric definitions and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_references import area_under
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from adbench_hr.errors import InputError
from adbench_hr.metrics import AREA_BIN_EDGES_PX, AnomalyMetrics

LIMITS = (0.3, 0.1, 0.05, 0.01)
TOL = 1e-9


# ---------------------------------------------------------------- brute-force reference (the definitions, plainly)
def components(mask):
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    return [labels == k for k in range(1, n + 1)]


def collect(maps, masks):
    normals, defects = [], []  # defects: list of score arrays, one per connected component
    for m, g in zip(maps, masks, strict=True):
        g = np.zeros(m.shape, bool) if g is None else g
        normals.append(m[~g])
        defects += [m[c] for c in components(g)]
    return np.concatenate(normals).astype(np.float64), [d.astype(np.float64) for d in defects]


def brute_aupro(normals, defect_scores, selected, limit):
    """AUPRO@limit with every distinct score as threshold, positive iff score >= t."""
    chosen = [d for d, keep in zip(defect_scores, selected) if keep]
    if not chosen:
        return None
    everything = np.concatenate([normals, *defect_scores])
    xs, ys = [0.0], [0.0]
    for t in np.unique(everything)[::-1]:
        xs.append(float(np.mean(normals >= t)))
        ys.append(float(np.mean([np.mean(d >= t) for d in chosen])))
    return area_under(xs, ys, limit) / limit


def brute_l2bt_aupro(normals, defect_scores, selected, limit):
    """The official L2BT procedure, written out: 99 rank thresholds, score > t, starts from (1, 1)."""
    chosen = [d for d, keep in zip(defect_scores, selected) if keep]
    if not chosen:
        return None
    ok = np.sort(normals)
    xs, ys = [1.0], [1.0]
    for pos in np.linspace(0, ok.size - 1, num=99, dtype=int):
        t = ok[pos]
        xs.append(1.0 - (pos + 1) / ok.size)
        ys.append(float(np.mean([np.mean(d > t) for d in chosen])))
    return area_under(xs[::-1], ys[::-1], limit) / limit


def brute_metrics(maps, masks, mode="exact"):
    normals, defects = collect(maps, masks)
    areas = np.array([d.size for d in defects], dtype=float)
    aupro = brute_aupro if mode == "exact" else brute_l2bt_aupro
    q25, q50, q75 = np.quantile(areas, [0.25, 0.5, 0.75])
    cumulative = {"Q1": areas <= q25, "Q2": areas <= q50, "Q3": areas <= q75, "Q4": areas > 0}
    disjoint = {"Q1": areas <= q25, "Q2": (areas > q25) & (areas <= q50),
                "Q3": (areas > q50) & (areas <= q75), "Q4": areas > q75}
    by_area = [(areas >= lo) & (areas < (np.inf if hi is None else hi)) for lo, hi in AREA_BIN_EDGES_PX]
    out = {
        "aupro": {L: aupro(normals, defects, areas > 0, L) for L in LIMITS},
        "cum": {q: {L: aupro(normals, defects, sel, L) for L in LIMITS} for q, sel in cumulative.items()},
        "quart": {q: {L: aupro(normals, defects, sel, L) for L in LIMITS} for q, sel in disjoint.items()},
        "area": [{L: aupro(normals, defects, sel, L) for L in LIMITS} for sel in by_area],
        "n_area": [int(sel.sum()) for sel in by_area],
        "quartiles": [q25, q50, q75],
    }
    return out


def run_engine(maps, masks, mode="exact", image_scores=None):
    engine = AnomalyMetrics(pro_thresholds=mode)
    for i, (m, g) in enumerate(zip(maps, masks, strict=True)):
        engine.update(m, g, None if image_scores is None else image_scores[i])
    return engine.compute()["metrics"]


def key(limit):
    return format(limit, "g")


def assert_close(a, b):
    if b is None:
        assert a is None
    else:
        assert a is not None and abs(a - b) <= TOL, (a, b)


def assert_matches_brute(maps, masks, mode="exact"):
    got = run_engine(maps, masks, mode)
    ref = brute_metrics(maps, masks, mode)
    for L in LIMITS:
        assert_close(got["aupro"][key(L)], ref["aupro"][L])
        for q in ("Q1", "Q2", "Q3", "Q4"):
            assert_close(got["aupro_cumulative"][q][key(L)], ref["cum"][q][L])
            assert_close(got["aupro_quartile"][q][key(L)], ref["quart"][q][L])
        for entry, want in zip(got["aupro_by_area"], ref["area"], strict=True):
            assert_close(entry["aupro"][key(L)], want[L])
    assert [e["n_defects"] for e in got["aupro_by_area"]] == ref["n_area"]
    np.testing.assert_allclose(got["size_quartiles_px"], ref["quartiles"], rtol=0, atol=1e-12)
    labels = np.concatenate([(np.zeros(m.shape, bool) if g is None else g).ravel() for m, g in zip(maps, masks)])
    scores = np.concatenate([m.ravel() for m in maps]).astype(np.float64)
    assert_close(got["p_auroc"], roc_auc_score(labels, scores))
    return got


# ---------------------------------------------------------------- hand-made cases
def test_single_pixel_defect_hand_computed():
    # Defect pixel scores 0.5; normals: 0.9 (1 pixel), 0.5 (1 pixel, tie), 0.1 (6 pixels); N = 8 normals.
    m = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.1], [0.1, 0.1, 0.1]], np.float32)
    g = np.zeros((3, 3), bool)
    g[1, 1] = True
    got = run_engine([m], [g])
    # Curve: (0,0) -> t=0.9: (1/8, 0) -> t=0.5: (2/8, 1) -> t=0.1: (1, 1).
    # Area to 0.3: 1/8*0 + (1/8)*(0+1)/2 + (0.3-0.25)*1 = 0.0625 + 0.05 = 0.1125
    assert got["aupro"]["0.3"] == pytest.approx(0.1125 / 0.3, abs=1e-12)
    # Area to 0.1 lies on the flat start: 0.
    assert got["aupro"]["0.1"] == 0.0
    # Pixel AUROC: defect beats 6 normals, ties 1, loses 1 -> (6 + 0.5) / 8.
    assert got["p_auroc"] == pytest.approx(6.5 / 8, abs=1e-12)


def test_diagonal_pixels_merge_under_8_connectivity():
    g = np.zeros((6, 6), bool)
    g[1, 1] = g[2, 2] = g[3, 3] = True  # one 3-px diagonal component, not three 1-px ones
    g[5, 5] = True  # far away: its own component
    m = np.random.default_rng(0).random((6, 6)).astype(np.float32)
    got = assert_matches_brute([m], [g])
    assert got["n_defects"] == 2
    assert got["size_quartiles_px"] == pytest.approx(np.quantile([3, 1], [0.25, 0.5, 0.75]).tolist())


def test_constant_maps_give_the_diagonal():
    g = np.zeros((5, 5), bool)
    g[2, 2:4] = True
    maps = [np.full((5, 5), 0.3, np.float32), np.full((5, 5), 0.3, np.float32)]
    got = assert_matches_brute(maps, [g, None])
    # One threshold: (0,0) -> (1,1); area to L is L^2/2, normalised L/2.
    assert got["aupro"]["0.3"] == pytest.approx(0.15, abs=1e-12)
    assert got["p_auroc"] == pytest.approx(0.5, abs=1e-12)


def test_several_defects_good_images_and_ties():
    rng = np.random.default_rng(3)
    maps, masks = [], []
    for i in range(5):
        m = rng.integers(0, 6, size=(20, 17)).astype(np.float32) / 5  # heavy ties
        g = np.zeros(m.shape, bool)
        if i % 2 == 0:
            g[2:6, 3:9] = True
            g[10, 10] = True
            g[15:17, 1:3] = True
            m[g] += 0.2
        maps.append(m)
        masks.append(g if i % 2 == 0 else None)
    assert_matches_brute(maps, masks)


def test_perfect_and_inverted_maps():
    g = np.zeros((8, 8), bool)
    g[2:4, 2:4] = True
    perfect = g.astype(np.float32)
    got = run_engine([perfect], [g])
    assert got["aupro"]["0.01"] == 1.0 and got["p_auroc"] == 1.0
    got = run_engine([1 - perfect], [g])
    assert got["aupro"]["0.3"] == 0.0 and got["p_auroc"] == 0.0


def test_separating_maps_give_aupro_of_one_and_never_more():
    # Every defect pixel scores above every normal pixel: PRO is 1 from FPR 0 on, so each AUPRO is 1 up to
    # the rounding of the trapezoid sums, which must never lift it above 1.
    rng = np.random.default_rng(0)
    for _ in range(30):
        engine = AnomalyMetrics()
        for _ in range(3):
            mask = np.zeros((37, 53), bool)
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, 30, 2)
                mask[y : y + rng.integers(1, 6), x : x + rng.integers(1, 8)] = True
            engine.update(rng.random(mask.shape).astype(np.float32) * 0.5 + mask, mask, None)
        metrics = engine.compute()["metrics"]
        values = [*metrics["aupro"].values()]
        for family in ("aupro_cumulative", "aupro_quartile"):
            values += [v for by_limit in metrics[family].values() for v in by_limit.values() if v is not None]
        assert values and all(v <= 1.0 and v == pytest.approx(1.0, abs=1e-12) for v in values)


def test_negative_zero_equals_zero():
    g = np.zeros((2, 2), bool)
    g[0, 0] = True
    m = np.array([[0.0, -0.0], [1.0, -1.0]], np.float32)
    got = run_engine([m], [g])
    assert got["p_auroc"] == pytest.approx(roc_auc_score(g.ravel(), m.ravel().astype(float)), abs=1e-12)


def test_image_auroc_against_sklearn():
    rng = np.random.default_rng(1)
    maps, masks, scores = [], [], []
    for i in range(12):
        g = np.zeros((6, 6), bool)
        if i % 3 == 0:
            g[1:3, 1:3] = True
        maps.append(rng.random((6, 6)).astype(np.float32))
        masks.append(g if g.any() else None)
        scores.append(float(rng.integers(0, 4)))  # ties
    got = run_engine(maps, masks, image_scores=scores)
    labels = [int(g is not None) for g in masks]
    assert got["i_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert got["n_images"] == 12 and got["n_defective_images"] == 4


def test_default_image_score_is_map_maximum():
    g = np.zeros((3, 3), bool)
    g[0, 0] = True
    a = np.zeros((3, 3), np.float32)
    a[2, 2] = 5.0  # the good image has the largest maximum
    b = np.full((3, 3), 1.0, np.float32)
    got = run_engine([a, b], [None, g])
    assert got["i_auroc"] == 0.0


def test_good_only_category_gives_null_segmentation_and_warning():
    engine = AnomalyMetrics()
    engine.update(np.zeros((4, 4), np.float32), None)
    out = engine.compute()
    metrics = out["metrics"]
    null = {key(L): None for L in LIMITS}
    assert metrics["p_auroc"] is None and metrics["i_auroc"] is None
    # Every segmentation metric is null, not only the headline ones: no curve, no size to bin.
    assert metrics["aupro"] == null and metrics["rho"] == null
    assert metrics["aupro_cumulative"] == metrics["aupro_quartile"] == {q: null for q in ("Q1", "Q2", "Q3", "Q4")}
    assert [(e["n_defects"], e["aupro"]) for e in metrics["aupro_by_area"]] == [(0, null)] * 6
    assert metrics["size_quartiles_px"] is None and metrics["pro_curves"] is None
    assert (metrics["n_images"], metrics["n_defective_images"], metrics["n_defects"]) == (1, 0, 0)
    assert out["warnings"] == ["image AUROC undefined: the test set lacks good or defective images",
                               "segmentation metrics undefined: no defect in the ground truth"]


def test_all_defect_category_gives_null_segmentation():
    engine = AnomalyMetrics()
    engine.update(np.zeros((2, 2), np.float32), np.ones((2, 2), bool))
    out = engine.compute()
    assert out["metrics"]["aupro"]["0.3"] is None
    assert any("no normal pixel" in w for w in out["warnings"])


def test_empty_bins_are_null_not_zero():
    g = np.zeros((10, 10), bool)
    g[1, 1] = True
    g[5:7, 5:7] = True
    got = run_engine([np.random.default_rng(2).random((10, 10)).astype(np.float32)], [g])
    big = [e for e in got["aupro_by_area"] if e["min_px"] >= 64]
    assert all(e["n_defects"] == 0 and e["aupro"]["0.3"] is None for e in big)


def test_rho_formula():
    g = np.zeros((12, 12), bool)
    g[0, 0] = True
    g[3:9, 3:9] = True
    m = np.zeros((12, 12), np.float32)
    m[3:9, 3:9] = 1.0  # the big defect is found, the 1-px one is not
    got = run_engine([m], [g])
    # By hand: defect areas [1, 36] have quartiles 9.75, 18.5, 27.25, so Q1 = Q2 = Q3 hold the 1-px defect
    # alone. It scores 0 and ties with all 107 normals: its PRO curve is (0, 0) -> (1, 1), AUPRO@0.3 =
    # (0.3 * 0.3 / 2) / 0.3 = 0.15. Q4 (both defects): PRO 0.5 at FPR 0 (the found one), then a line to (1, 1),
    # so PRO(0.3) = 0.65 and AUPRO@0.3 = 0.3 * (0.5 + 0.65) / 2 / 0.3 = 0.575.
    cumulative = {q: got["aupro_cumulative"][q]["0.3"] for q in ("Q1", "Q2", "Q3", "Q4")}
    assert cumulative == pytest.approx({"Q1": 0.15, "Q2": 0.15, "Q3": 0.15, "Q4": 0.575}, abs=1e-12)
    # rho = mean(0.15, 0.15, 0.15, 0.575) * 0.15 / 0.575
    assert got["rho"]["0.3"] == pytest.approx(0.25625 * 0.15 / 0.575, abs=1e-12)


def test_merge_equals_single_accumulator():
    rng = np.random.default_rng(5)
    maps = [rng.random((9, 7)).astype(np.float32) for _ in range(4)]
    masks = [rng.random((9, 7)) > 0.8 for _ in range(4)]
    whole = run_engine(maps, masks)
    left, right = AnomalyMetrics(), AnomalyMetrics()
    for m, g in zip(maps[:2], masks[:2]):
        left.update(m, g)
    for m, g in zip(maps[2:], masks[2:]):
        right.update(m, g)
    merged = left.merge(right).compute()["metrics"]
    assert merged == whole


def test_l2bt_mode_matches_the_published_procedure():
    rng = np.random.default_rng(7)
    maps, masks = [], []
    for _ in range(3):
        m = rng.random((30, 30)).astype(np.float32)
        g = np.zeros(m.shape, bool)
        g[5:9, 5:12] = True
        g[20, 20] = True
        m[g] += 0.3
        maps.append(m)
        masks.append(g)
    assert_matches_brute(maps, masks, mode="l2bt")


# ---------------------------------------------------------------- precision
def test_float64_scores_closer_than_float32_resolution_stay_distinct():
    # In float32 both scores are 1.0: a tie would give P-AUROC 0.5. In float64 the defect scores higher.
    m = np.ones((4, 4), np.float64)
    g = np.zeros((4, 4), bool)
    g[1, 1] = True
    m[g] = 1.0 + 1e-12
    got = run_engine([m], [g])
    assert got["p_auroc"] == 1.0
    assert all(got["aupro"][key(L)] == 1.0 for L in LIMITS)


def test_image_scores_closer_than_float32_resolution_stay_distinct():
    # Default image scores (map maxima) 1.0 (good) and 1 + 1e-12 (defective): one float32 value, so a
    # float32 comparison would tie them (I-AUROC 0.5); compared exactly the defective image ranks first.
    g = np.zeros((3, 3), bool)
    g[1, 1] = True
    got = run_engine([np.ones((3, 3)), np.where(g, 1.0 + 1e-12, 0.5)], [None, g])
    assert got["i_auroc"] == 1.0
    given = run_engine([np.zeros((3, 3)), np.zeros((3, 3))], [None, g], image_scores=[1.0, 1.0 + 1e-12])
    assert given["i_auroc"] == 1.0


def test_integers_float64_cannot_hold_are_refused_not_merged():
    g = np.array([[False, True, False]])
    # The defect scores strictly highest: rounded to float64 it would tie with a normal pixel.
    for values in (np.array([[2**53, 2**53 + 1, 0]], np.int64), np.array([[2**64 - 2, 2**64 - 1, 0]], np.uint64)):
        acc = AnomalyMetrics()
        with pytest.raises(InputError, match=f"{values.dtype} values that no float64 holds exactly") as error:
            acc.update(values, g, name="m.npy")
        assert str(error.value.path) == "m.npy"
    exact = np.array([[2**60, 2**61, 0]], np.int64)  # beyond 2**53, but float64 values: scored as such
    assert run_engine([exact], [g])["p_auroc"] == 1.0


@pytest.mark.parametrize("mode", ["exact", "l2bt"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float64_maps_near_one_match_brute_force(mode, seed):
    # "Probabilities" within 1e-11 of 1 collide in float32; a float32 image shares the category.
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for _ in range(3):
        g = rng.random((12, 10)) > 0.8
        m = 1.0 - rng.integers(0, 8, (12, 10)) * 1e-12
        m[g] += 4e-12
        maps.append(m)
        masks.append(g)
    maps.append(rng.random((5, 6)).astype(np.float32))
    masks.append(None)
    assert_matches_brute(maps, masks, mode)


def test_wide_integer_maps_keep_their_resolution():
    m = np.full((3, 3), 2**24, np.int64)
    g = np.zeros((3, 3), bool)
    g[0, 0] = True
    m[g] = 2**24 + 1  # the same float32 as 2**24
    assert run_engine([m], [g])["p_auroc"] == 1.0


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "bad, problem",
    [
        (np.array([[np.nan, 0.0]], np.float32), "NaN or inf"),
        (np.array([[np.inf, 0.0]], np.float32), "NaN or inf"),
        (np.zeros((3,), np.float32), "2-D"),
        (np.zeros((2, 3), np.float32), "does not match"),
        (np.zeros((1, 3), np.float32), "does not match"),  # as tall as the (1, 2) mask, one column wider
    ],
)
def test_bad_maps_raise_input_error_naming_the_file(bad, problem):
    engine = AnomalyMetrics()
    with pytest.raises(InputError, match=problem) as info:
        engine.update(bad, np.zeros((1, 2), bool), name="maps/x.tiff")
    assert "maps/x.tiff" in str(info.value)


def test_limits_sharing_a_result_key_are_refused():
    with pytest.raises(InputError, match="differ in their keys"):
        AnomalyMetrics(fpr_limits=(0.3, 0.30000000000000004))


# ---------------------------------------------------------------- property tests
values = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(-2, 2, width=32, allow_subnormal=False)


@st.composite
def categories(draw):
    n_images = draw(st.integers(1, 3))
    maps, masks = [], []
    for _ in range(n_images):
        h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
        m = np.array(draw(st.lists(values, min_size=h * w, max_size=h * w)), np.float32).reshape(h, w)
        g = np.array(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))).reshape(h, w)
        maps.append(m)
        masks.append(g if draw(st.booleans()) else None)
    return with_defect_and_normal(maps, masks, np.zeros((2, 2), np.float32))


def with_defect_and_normal(maps, masks, good_map):
    """``(maps, masks)`` with at least one defect pixel (the first pixel) and one normal pixel (a good image of
    ``good_map``) in the category."""
    if not any(g is not None and g.any() for g in masks):
        g = np.zeros(maps[0].shape, bool)
        g.flat[0] = True
        masks[0] = g
    if all(g is not None and g.all() for g in masks):
        maps.append(good_map)
        masks.append(None)
    return maps, masks


@settings(max_examples=60, deadline=None)
@given(categories())
def test_exact_mode_matches_brute_force(case):
    maps, masks = case
    assert_matches_brute(maps, masks)


@settings(max_examples=30, deadline=None)
@given(categories())
def test_l2bt_mode_matches_brute_force(case):
    maps, masks = case
    assert_matches_brute(maps, masks, mode="l2bt")


# Extreme and degenerate values: the float64 and float32 limits, subnormals, -0.0, last-ulp neighbours, wide
# integers; float32, float64 and integer maps mixed in one category (counted in float64 when one needs it).
ULP_1 = (float(np.nextafter(1.0, 0.0)), 1.0, float(np.nextafter(1.0, 2.0)))
EXTREME_64 = st.sampled_from([1e300, -1e300, 5e-324, -5e-324, 2.2250738585072014e-308, 0.0, -0.0, *ULP_1])
EXTREME_32 = st.sampled_from([3.4028235e38, -3.4028235e38, 1e-45, -1e-45, 1.1754944e-38, 0.0, -0.0, 0.5,
                              float(np.nextafter(np.float32(0.5), np.float32(1.0)))])
EXTREME_INT = st.sampled_from([0, 1, 2**24, 2**24 + 1, 2**53, -(2**53), 2**53 - 1])


@st.composite
def extreme_categories(draw):
    maps, masks = [], []
    for _ in range(draw(st.integers(1, 3))):
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        kind = draw(st.sampled_from([(EXTREME_64, np.float64), (EXTREME_32, np.float32), (EXTREME_INT, np.int64),
                                     (st.sampled_from([0, 1, 254, 255]), np.uint8)]))
        maps.append(np.array(draw(st.lists(kind[0], min_size=h * w, max_size=h * w)), kind[1]).reshape(h, w))
        g = np.array(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))).reshape(h, w)
        masks.append(g if draw(st.booleans()) else None)
    return with_defect_and_normal(maps, masks, np.full((1, 2), -0.0))


@settings(max_examples=40, deadline=None)
@given(extreme_categories(), st.sampled_from(["exact", "l2bt"]))
def test_extreme_values_match_brute_force(case, mode):
    # l2bt here always has fewer normal pixels than its 99 rank thresholds (repeated ranks).
    maps, masks = case
    got = assert_matches_brute(maps, masks, mode)
    labels = [int(g is not None and g.any()) for g in masks]
    if 0 < sum(labels) < len(labels):  # image scores: the map maxima
        assert_close(got["i_auroc"], roc_auc_score(labels, [float(m.max()) for m in maps]))


# ---------------------------------------------------------------- given defects (followed from another resolution)
SIZE_CHOICES = (1.0, 5.0, 70.0, 300.0, 2000.0, 5000.0, 20000.0)  # spread over the absolute area bins


def brute_given(maps, label_images, sizes, mode="exact"):
    """The definitions with the defects given: defect k of an image is its pixels labelled k, binned by sizes[k-1]."""
    normals, defects, kept_sizes, lost_sizes = [], [], [], []
    for m, labels, image_sizes in zip(maps, label_images, sizes, strict=True):
        labels = np.zeros(m.shape, int) if labels is None else labels
        normals.append(m[labels == 0])
        for k, size in enumerate(image_sizes, start=1):
            pixels = m[labels == k]
            if pixels.size:
                defects.append(pixels.astype(np.float64))
                kept_sizes.append(size)
            else:
                lost_sizes.append(size)
    normals = np.concatenate(normals).astype(np.float64)
    kept, lost = np.array(kept_sizes, float), np.array(lost_sizes, float)
    aupro = brute_aupro if mode == "exact" else brute_l2bt_aupro

    def in_bin(values, lo, hi):
        return (values >= lo) & (values < (np.inf if hi is None else hi))

    area = [{L: aupro(normals, defects, in_bin(kept, lo, hi), L) for L in LIMITS} for lo, hi in AREA_BIN_EDGES_PX]
    return {
        "aupro": {L: aupro(normals, defects, kept > 0, L) for L in LIMITS},
        "area": area,
        "n_area": [int(in_bin(kept, lo, hi).sum()) for lo, hi in AREA_BIN_EDGES_PX],
        "n_lost_area": [int(in_bin(lost, lo, hi).sum()) for lo, hi in AREA_BIN_EDGES_PX],
        "n_defects": kept.size,
        "n_lost": lost.size,
    }


@st.composite
def given_categories(draw):
    maps, label_images, sizes = [], [], []
    for _ in range(draw(st.integers(1, 3))):
        h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        n = draw(st.integers(0, 4))  # defects of this image; some may have no pixel (lost)
        maps.append(np.array(draw(st.lists(values, min_size=h * w, max_size=h * w)), np.float32).reshape(h, w))
        labels = draw(st.lists(st.integers(0, n), min_size=h * w, max_size=h * w))
        label_images.append(np.array(labels, np.int32).reshape(h, w) if n else None)
        sizes.append(np.array(draw(st.lists(st.sampled_from(SIZE_CHOICES), min_size=n, max_size=n)), float))
    # At least one present defect pixel and one normal pixel.
    if not any(lab is not None and (lab > 0).any() for lab in label_images):
        label_images[0] = np.zeros(maps[0].shape, np.int32)
        label_images[0].flat[0] = 1
        sizes[0] = np.array([SIZE_CHOICES[2]], float)
    if all(lab is not None and (lab > 0).all() for lab in label_images):
        maps.append(np.zeros((2, 2), np.float32))
        label_images.append(None)
        sizes.append(np.zeros(0))
    return maps, label_images, sizes


@settings(max_examples=60, deadline=None)
@given(given_categories(), st.sampled_from(["exact", "l2bt"]))
def test_given_defects_match_brute_force(case, mode):
    maps, label_images, sizes = case
    engine = AnomalyMetrics(pro_thresholds=mode)
    for m, labels, image_sizes in zip(maps, label_images, sizes, strict=True):
        engine.update(m, labels, defect_sizes=image_sizes)
    got = engine.compute()["metrics"]
    ref = brute_given(maps, label_images, sizes, mode)
    assert got["n_defects"] == ref["n_defects"] and got["n_lost_defects"] == ref["n_lost"]
    for L in LIMITS:
        assert_close(got["aupro"][key(L)], ref["aupro"][L])
        for entry, want in zip(got["aupro_by_area"], ref["area"], strict=True):
            assert_close(entry["aupro"][key(L)], want[L])
    assert [e["n_defects"] for e in got["aupro_by_area"]] == ref["n_area"]
    assert [e["n_lost"] for e in got["aupro_by_area"]] == ref["n_lost_area"]


@settings(max_examples=30, deadline=None)
@given(categories())
def test_given_connected_components_reproduce_the_found_ones(case):
    maps, masks = case
    engine = AnomalyMetrics()
    for m, g in zip(maps, masks, strict=True):
        labels, n = ndimage.label(np.zeros(m.shape, bool) if g is None else g, structure=np.ones((3, 3)))
        areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(float)
        engine.update(m, labels.astype(np.int32), defect_sizes=areas)
    got = engine.compute()["metrics"]
    want = run_engine(maps, masks)
    assert got.pop("n_lost_defects") == 0
    for entry in got["aupro_by_area"]:
        assert entry.pop("n_lost") == 0
    assert got == want


def test_given_defect_spread_over_fragments_is_one_defect():
    # Defect 1: pixels 0.9 | 0.1 0.1 in two fragments; defect 2 has no pixel left (lost). Normals 0.5, 0 x 4.
    m = np.array([[0.9, 0.5, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]], np.float32)
    labels = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], np.int32)
    engine = AnomalyMetrics()
    engine.update(m, labels, defect_sizes=np.array([50.0, 3.0]))
    got = engine.compute()["metrics"]
    assert got["n_defects"] == 1 and got["n_lost_defects"] == 1
    first = got["aupro_by_area"][0]  # [1, 64): the 50 px defect and the lost 3 px one
    assert (first["n_defects"], first["n_lost"]) == (1, 1)
    # One defect of 3 pixels: (0, 1/3) [t = .9], (.2, 1/3) [t = .5], (.2, 1) [t = .1], (1, 1).
    # (Two found components would give PRO 1/2 at t = .9 instead.)
    assert got["aupro"]["0.3"] == pytest.approx((0.2 / 3 + 0.1) / 0.3, abs=TOL)
    # Edges over both given defects, the lost one too (sizes 3 and 50): 3 + 47 * (1/4, 1/2, 3/4).
    assert got["size_quartiles_px"] == [14.75, 26.5, 38.25]


@pytest.mark.parametrize(
    "labels, sizes, problem",
    [
        (np.ones((1, 2), np.float32), [4.0], "integer dtype"),
        (np.array([[1, 3]], np.int32), [4.0, 4.0], "1..2"),
        (np.array([[1, 0]], np.int32), [0.0], "positive"),
    ],
)
def test_bad_given_defects_raise_input_error(labels, sizes, problem):
    with pytest.raises(InputError, match=problem):
        AnomalyMetrics().update(np.zeros((1, 2), np.float32), labels, defect_sizes=np.array(sizes), name="m.tiff")


# ---------------------------------------------------------------- edge cases found by mutation testing
def test_fpr_limit_one_integrates_the_whole_curve():
    # Same map as test_single_pixel_defect_hand_computed: (0,0) (1/8,0) (2/8,1) (1,1) -> area 1/16 + 3/4.
    m = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.1], [0.1, 0.1, 0.1]], np.float32)
    g = np.zeros((3, 3), bool)
    g[1, 1] = True
    engine = AnomalyMetrics(fpr_limits=(1.0,))
    engine.update(m, g)
    got = engine.compute()["metrics"]
    assert got["aupro"] == {"1": pytest.approx(0.8125, abs=1e-12)}


def test_negative_zero_scores_below_every_other_value():
    # -0.0 is the category's smallest score, in normal and in defect pixels: it must tie with +0.0.
    m = np.array([[-0.0, 0.0, 0.5, 1.0], [-0.0, 0.25, 0.0, -0.0]], np.float32)
    g = np.zeros(m.shape, bool)
    g[1, 2:] = True  # defect scores +0.0 and -0.0
    g[0, 3] = True  # and 1.0, another component
    got = assert_matches_brute([m], [g])
    assert got["p_auroc"] == pytest.approx(roc_auc_score(g.ravel(), m.ravel().astype(float) + 0.0), abs=1e-12)


def test_mask_values_below_zero_are_not_defects():
    m = np.arange(9, dtype=np.float32).reshape(3, 3)
    labels = np.array([[-1, 0, 0], [0, 0, 0], [0, 0, 255]], np.int16)  # mask > 0: only the corner pixel
    got = run_engine([m], [labels])
    assert got["n_defects"] == 1
    assert got["p_auroc"] == 1.0


def test_all_defect_category_still_counts_defects_per_area_bin():
    engine = AnomalyMetrics()
    engine.update(np.zeros((10, 10), np.float32), np.ones((10, 10), bool))  # one 100 px defect, no normal pixel
    got = engine.compute()["metrics"]
    assert got["n_defects"] == 1
    assert [e["n_defects"] for e in got["aupro_by_area"]] == [0, 1, 0, 0, 0, 0]
    assert all(e["aupro"]["0.3"] is None for e in got["aupro_by_area"])


@pytest.mark.parametrize(
    "bad, problem",
    [
        (np.zeros((0, 3), np.float32), "non-empty"),
        (np.zeros((2, 2), np.complex64), "real-valued"),
    ],
)
def test_empty_and_complex_maps_raise_input_error(bad, problem):
    with pytest.raises(InputError, match=problem):
        AnomalyMetrics().update(bad, None, name="maps/x.tiff")


@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_non_finite_image_score_raises_input_error(score):
    with pytest.raises(InputError, match="image score is NaN or inf"):
        AnomalyMetrics().update(np.zeros((2, 2), np.float32), None, image_score=score, name="maps/x.tiff")


def test_explicit_label_overrides_the_mask():
    # A defective image whose mask is empty (or missing) still counts as defective for the image AUROC.
    engine = AnomalyMetrics()
    engine.update(np.full((2, 2), 0.9, np.float32), None, label=1)
    engine.update(np.full((2, 2), 0.1, np.float32), None, label=0)
    got = engine.compute()["metrics"]
    assert got["n_defective_images"] == 1
    assert got["i_auroc"] == 1.0


def test_sampled_pro_curve_follows_the_exact_curve_from_fpr_zero():
    # Curve of test_single_pixel_defect_hand_computed: (0,0) (1/8,0) (2/8,1) (1,1).
    m = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.1], [0.1, 0.1, 0.1]], np.float32)
    g = np.zeros((3, 3), bool)
    g[1, 1] = True
    curves = run_engine([m], [g])["pro_curves"]
    assert curves["fpr_limit"] == 0.3
    fpr, pro = np.array(curves["all"]["fpr"]), np.array(curves["all"]["pro"])
    assert fpr[0] == 0.0 and fpr[-1] == pytest.approx(0.3, abs=1e-6)
    assert np.all(np.diff(fpr) > 0)
    np.testing.assert_allclose(pro, np.clip(8 * (fpr - 0.125), 0.0, 1.0), rtol=0, atol=2e-6)
    assert curves["Q1"] == curves["all"]  # a single defect: every cumulative bin is the same curve


def test_the_docstring_example_runs_and_metrics_are_python_floats():
    import doctest

    import adbench_hr.metrics.accumulator as module

    assert doctest.testmod(module).failed == 0
    acc = AnomalyMetrics()
    g = np.zeros((4, 4), bool)
    g[1, 1] = True
    acc.update(np.where(g, 2.0, 1.0), g)
    metrics = acc.compute()["metrics"]
    values = [metrics["p_auroc"], *metrics["aupro"].values(), *metrics["aupro_cumulative"]["Q4"].values(),
              *metrics["rho"].values()]
    assert all(type(v) is float for v in values), [type(v) for v in values]


def test_l2bt_reads_tied_normals_by_rank_as_docs_metrics_says():
    # 50 normals at 0, 50 at 1, a defect at 1. Exact: the curve (0,0) -> (0.5,1) -> (1,1), so AUPRO@0.3 =
    # (0.3 * 0.6 / 2) / 0.3 = 0.3. l2bt: t = 1 (ranks 50..98) leaves the defect negative (1 > 1 is false) at
    # rank FPRs 0 ... 0.49, so PRO is 0 up to FPR 0.3.
    m = np.zeros((1, 101))
    m[0, 50:] = 1.0
    g = np.zeros((1, 101), bool)
    g[0, 100] = True
    got = {}
    for mode in ("exact", "l2bt"):
        acc = AnomalyMetrics(pro_thresholds=mode)
        acc.update(m, g)
        got[mode] = acc.compute()["metrics"]["aupro"]["0.3"]
    assert got["exact"] == pytest.approx(0.3, abs=1e-12) and got["l2bt"] == 0.0


# ---------------------------------------------------------------- merging (accumulators joined in any grouping)
def merged_in_groups(updates, cuts, order, mode):
    """One accumulator per group of consecutive images (``cuts``: where groups start), folded in ``order``:
    each step merges a group into the group before it, as workers' accumulators are joined."""
    starts = [0, *sorted(set(cuts) - {0}), len(updates)]
    groups = []
    for lo, hi in zip(starts, starts[1:]):
        engine = AnomalyMetrics(pro_thresholds=mode)
        for args, kwargs in updates[lo:hi]:
            engine.update(*args, **kwargs)
        groups.append(engine)
    for pick in order:  # adjacent groups only, so the images stay in their order
        if len(groups) == 1:
            break
        i = pick % (len(groups) - 1)
        groups[i : i + 2] = [groups[i].merge(groups[i + 1])]
    while len(groups) > 1:
        groups[0:2] = [groups[0].merge(groups[1])]
    return groups[0].compute()


@settings(max_examples=40, deadline=None)
@given(st.one_of(categories(), extreme_categories()), st.lists(st.integers(0, 5), max_size=5),
       st.lists(st.integers(0, 9), max_size=6), st.sampled_from(["exact", "l2bt"]))
def test_merging_in_any_grouping_equals_one_accumulator(case, cuts, order, mode):
    # Found defects, with float32, float64 and integer maps (extreme_categories): a group that needs float64
    # must switch the merged whole to it. Every result field is compared exactly, warnings included.
    maps, masks = case
    updates = [((m, g), {}) for m, g in zip(maps, masks, strict=True)]
    whole = merged_in_groups(updates, [], [], mode)
    assert merged_in_groups(updates, [c % (len(maps) + 1) for c in cuts], order, mode) == whole


@settings(max_examples=30, deadline=None)
@given(given_categories(), st.lists(st.integers(0, 4), max_size=4), st.lists(st.integers(0, 9), max_size=6))
def test_merging_given_defects_in_any_grouping_equals_one_accumulator(case, cuts, order):
    # Given defects, some lost: their ids are offset per group and the lost ones still counted.
    maps, label_images, sizes = case
    updates = [((m, labels), {"defect_sizes": image_sizes})
               for m, labels, image_sizes in zip(maps, label_images, sizes, strict=True)]
    whole = merged_in_groups(updates, [], [], "exact")
    assert merged_in_groups(updates, [c % (len(maps) + 1) for c in cuts], order, "exact") == whole


def test_merging_an_empty_accumulator_changes_nothing_and_updates_go_on_after_a_merge():
    rng = np.random.default_rng(11)
    maps = [rng.random((6, 5)).astype(np.float32) for _ in range(3)]
    masks = [rng.random((6, 5)) > 0.7 for _ in range(3)]
    engine = AnomalyMetrics().merge(AnomalyMetrics())
    engine.update(maps[0], masks[0])
    engine.merge(AnomalyMetrics())
    other = AnomalyMetrics()
    other.update(maps[1], masks[1])
    engine.merge(other).update(maps[2], masks[2])
    assert engine.compute()["metrics"] == run_engine(maps, masks)


def test_a_merged_group_that_needs_float64_switches_the_whole_to_it():
    # The float64 map's defect (1.0) and normal (1 - 1e-12) scores are one value in float32; the first group
    # is float32 alone. Counted in float32 they would tie, and P-AUROC would fall from 1 to 0.5.
    first, second = AnomalyMetrics(), AnomalyMetrics()
    first.update(np.zeros((2, 2), np.float32), None)
    near_one = np.array([[1.0, 1.0 - 1e-12]])
    second.update(near_one, np.array([[True, False]]))
    assert first.merge(second).compute()["metrics"]["p_auroc"] == 1.0


def test_merge_refuses_what_would_give_a_wrong_number():
    found, given = AnomalyMetrics(), AnomalyMetrics()
    found.update(np.eye(3, dtype=np.float32), np.eye(3, dtype=bool))
    given.update(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.int32), defect_sizes=np.array([3.0]))
    with pytest.raises(TypeError, match="can only merge another AnomalyMetrics, not a dict"):
        found.merge({})
    with pytest.raises(ValueError, match="into itself"):  # every image would count twice
        found.merge(found)
    for other in (AnomalyMetrics(fpr_limits=(0.3,)), AnomalyMetrics(pro_thresholds="l2bt")):
        with pytest.raises(ValueError, match="different settings"):
            AnomalyMetrics().merge(other)
    for left, right in ((found, given), (given, found)):
        with pytest.raises(ValueError, match="given in one and found in the other"):
            left.merge(right)
    # The same limits in another order are the same settings.
    reordered = AnomalyMetrics(fpr_limits=LIMITS[::-1]).merge(AnomalyMetrics(fpr_limits=LIMITS))
    assert reordered.n_images == 0
    assert found.n_images == given.n_images == 1  # a refused merge leaves both as they were


def test_merging_found_defects_into_an_empty_accumulator_keeps_the_found_mode():
    # docs/metrics.md: defects are found in both accumulators or given in both. An empty accumulator that takes in
    # found defects holds them as if it had found them: given defects stay refused, by merge and by update.
    found, given = AnomalyMetrics(), AnomalyMetrics()
    found.update(np.eye(3, dtype=np.float32), np.eye(3, dtype=bool))
    given.update(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.int32), defect_sizes=np.array([3.0]))
    merged = AnomalyMetrics().merge(found)
    with pytest.raises(ValueError, match="given in one and found in the other"):
        merged.merge(given)
    with pytest.raises(InputError, match="use one mode per category"):
        merged.update(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.int32), defect_sizes=np.array([3.0]))
    assert merged.n_images == 1
