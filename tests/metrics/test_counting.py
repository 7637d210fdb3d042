"""Exact normal counting against direct comparison, including wide value ranges and ties across slices."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adbench_hr.metrics._counting import NormalCounter, exact_scores


def brute_counts(thresholds, normals):
    below = np.array([(normals < t).sum() for t in thresholds])
    equal = np.array([(normals == t).sum() for t in thresholds])
    return below, equal


def count(thresholds, chunks):
    counter = NormalCounter(thresholds)
    counter.add_all(chunks)
    return counter.counts()


@pytest.mark.parametrize(
    "values, dtype",
    [
        (np.array([0.5, 1.0], np.float32), np.float32),
        (np.array([0.5, 1.0, -3.25]), np.float32),  # float64 that float32 holds exactly
        (np.array([1.0, 1.0 + 1e-12]), np.float64),
        (np.array([1e300, 0.0]), np.float64),  # beyond float32's range
        (np.array([2**24, 2**24 + 1], np.int64), np.float64),
        (np.array([0, 65535], np.uint16), np.float32),
        (np.array([True, False]), np.float32),
    ],
)
def test_exact_scores_takes_float32_only_when_it_is_exact(values, dtype):
    out = exact_scores(values)
    assert out.dtype == dtype
    assert np.array_equal(out.astype(np.float64), values.astype(np.float64))


def test_float64_counts_match_brute_force():
    rng = np.random.default_rng(3)
    base = 1.0 - rng.integers(0, 50, 3000) * 1e-13  # distinct in float64, one value in float32
    thresholds = np.unique(base[:200])
    chunks = [base[200:1500], base[1500:], np.array([-1e300, 1e300])]
    below, equal = count(thresholds, chunks)
    want_below, want_equal = brute_counts(thresholds, np.concatenate(chunks))
    np.testing.assert_array_equal(below, want_below)
    np.testing.assert_array_equal(equal, want_equal)


def test_dense_thresholds_in_a_huge_range():
    rng = np.random.default_rng(0)
    # A dense cluster of thousands of thresholds between two far ones; fewer normals than thresholds in one
    # chunk, more in another (both ways of searching).
    thresholds = np.unique(np.concatenate([
        rng.random(5000).astype(np.float32) * 1e-3 + 0.5,
        np.array([-1e30, 1e30], np.float32),
    ]))
    normals = [rng.random(20000).astype(np.float32) * 1e-3 + 0.5, thresholds[::7].copy(),
               np.array([-1e30, 1e30, 0.0], np.float32)]
    below, equal = count(thresholds, normals)
    want_below, want_equal = brute_counts(thresholds, np.concatenate(normals))
    np.testing.assert_array_equal(below, want_below)
    np.testing.assert_array_equal(equal, want_equal)


finite = st.floats(-1e6, 1e6, width=32, allow_subnormal=False).map(lambda v: v + 0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40), st.lists(st.lists(finite, max_size=40), max_size=3))
def test_counts_match_brute_force(threshold_values, chunk_values):
    thresholds = np.unique(np.array(threshold_values, np.float32))
    chunks = [np.array(c, np.float32) for c in chunk_values]
    below, equal = count(thresholds, chunks)
    normals = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    want_below, want_equal = brute_counts(thresholds, normals)
    np.testing.assert_array_equal(below, want_below)
    np.testing.assert_array_equal(equal, want_equal)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32])
def test_exact_scores_keeps_32_bit_integers_that_float32_would_round(dtype):
    values = np.array([2**24, 2**24 + 1], dtype)  # one float32 value, two distinct scores
    out = exact_scores(values)
    assert out.dtype == np.float64
    assert out[1] - out[0] == 1.0


def test_large_chunks_are_counted_in_slices_to_the_same_counts(monkeypatch):
    # A large image's normals are counted a slice at a time (bounded temporaries); slicing must not
    # change a count, including ties that straddle slice boundaries.
    from adbench_hr.metrics import _counting

    rng = np.random.default_rng(5)
    thresholds = np.unique(rng.integers(0, 40, 25)).astype(np.float32)
    normals = rng.integers(-5, 45, 1000).astype(np.float32)
    expected = brute_counts(thresholds, normals)
    monkeypatch.setattr(_counting, "_SLICE", 7)
    got = count(thresholds, [normals[:333], normals[333:]])
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


# Scores at the edges of float order: signed zeros (equal as floats, different bits), subnormals, the smallest
# normal, the largest finite, and neighbours one ulp apart.
_F32_EDGES = np.array([-3.4028235e38, -1.0, -1e-45, -0.0, 0.0, 1e-45, 2e-45, 1.1754942e-38, 1.1754944e-38, 0.5,
                       np.nextafter(np.float32(0.5), np.float32(1.0)), 3.4028235e38], np.float32)
_F64_EDGES = np.array([-1.7976931348623157e308, -5e-324, -0.0, 0.0, 5e-324, 1e-323, 2.2250738585072014e-308,
                       1.0, np.nextafter(1.0, 2.0), 1.7976931348623157e308])


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from([_F32_EDGES, _F64_EDGES]), st.integers(1, 6))
def test_counts_at_float_edges_match_brute_force_in_any_slicing(data, edges, slice_size):
    # Slices of 1-6 normals against up to 12 thresholds: a slice may hold fewer normals than there are
    # thresholds or more (the counter searches the smaller set in the larger), and a value repeated across
    # slice boundaries is counted in several slices.
    from adbench_hr.metrics import _counting

    pick = st.lists(st.sampled_from(range(edges.size)), max_size=25)
    thresholds = np.unique(edges[data.draw(pick.filter(bool))])  # -0.0 and 0.0 are one threshold
    chunks = [edges[data.draw(pick)] for _ in range(data.draw(st.integers(1, 3)))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_counting, "_SLICE", slice_size)
        below, equal = count(thresholds, chunks)
    want_below, want_equal = brute_counts(thresholds, np.concatenate(chunks))
    np.testing.assert_array_equal(below, want_below)
    np.testing.assert_array_equal(equal, want_equal)


def test_ties_across_the_2_20_slice_boundary():
    # At the real slice size: one image of 2**20 + 5 normals is counted as a slice of 2**20 normals (more than
    # the 7 thresholds) and one of 5 (fewer). Values equal to thresholds sit on both sides of the boundary,
    # among them the largest threshold, and the short slice holds a normal above every threshold.
    thresholds = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0], np.float32)
    normals = np.full(2**20 + 5, 0.5, np.float32)
    normals[: 2**19] = np.float32(0.125)
    normals[2**20 - 3 : 2**20] = [0.75, 3.0, 1.0]
    normals[2**20 :] = [3.0, 0.75, 4.0, 1.0, 0.0]
    below, equal = count(thresholds, [normals])
    assert equal.tolist() == [0, 2**19 - 3, 2, 2, 0, 0, 2]
    assert below.tolist() == [2**19 + 1, 2**19 + 1, 2**20 - 2, 2**20, 2**20 + 2, 2**20 + 2, 2**20 + 2]
