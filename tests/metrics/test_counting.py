"""Exact normal counting against direct comparison, including wide ranges where buckets are coarse."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adbench_hr.metrics._counting import NormalCounter, float32_order_keys


def brute_counts(thresholds, normals):
    below = np.array([(normals < t).sum() for t in thresholds])
    equal = np.array([(normals == t).sum() for t in thresholds])
    return below, equal


def count(thresholds, chunks):
    everything = np.concatenate([thresholds, *chunks])
    keys = float32_order_keys(everything)
    counter = NormalCounter(thresholds, int(keys.min()), int(keys.max()))
    counter.add_all(chunks)
    return counter.counts()


def test_order_keys_preserve_float_order():
    x = np.array([-np.inf, -3.5, -1e-30, 0.0, 1e-30, 2.0, np.inf], np.float32)
    assert np.all(np.diff(float32_order_keys(x).astype(np.int64)) > 0)


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
