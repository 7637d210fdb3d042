"""Exact normal counting against direct comparison, including wide ranges where buckets are coarse."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adbench_hr.metrics._counting import NormalCounter, exact_scores, order_keys


def brute_counts(thresholds, normals):
    below = np.array([(normals < t).sum() for t in thresholds])
    equal = np.array([(normals == t).sum() for t in thresholds])
    return below, equal


def count(thresholds, chunks):
    everything = np.concatenate([thresholds, *chunks])
    keys = order_keys(everything)
    counter = NormalCounter(thresholds, int(keys.min()), int(keys.max()))
    counter.add_all(chunks)
    return counter.counts()


def test_order_keys_preserve_float_order():
    x = np.array([-np.inf, -3.5, -1e-30, 0.0, 1e-30, 2.0, np.inf], np.float32)
    assert np.all(np.diff(order_keys(x).astype(np.int64)) > 0)


def test_float64_order_keys_preserve_float_order():
    x = np.array([-np.inf, -1e300, -1.0 - 2e-16, -1.0, -0.0 + 0.0, 5e-324, 1.0, 1.0 + 2.3e-16, 1e300, np.inf])
    assert np.all(np.diff(order_keys(x).astype(object)) > 0)  # object: no uint64 -> int64 overflow


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


def test_dense_thresholds_in_coarse_buckets():
    rng = np.random.default_rng(0)
    # A huge range forces wide buckets; a dense cluster puts thousands of thresholds in one bucket.
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
