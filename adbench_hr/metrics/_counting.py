"""Exact counting of normal scores below / equal to a set of thresholds, without sorting the normals.

Every segmentation metric of the engine reduces to two integer counts per distinct defect score ``u``:
how many normal pixels score strictly below ``u`` and how many score exactly ``u``. A full sort of the
normal pixels (tens of millions of values) is the classic way to get them; here the normals are
streamed once, chunk by chunk, through an order-preserving integer bucketing of their float32 bits, and
only the normals that share a bucket with a defect score need a (short, vectorised) binary search.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_BUCKET_BITS = 22  # 4M buckets: 16 MiB of bucket offsets, fine enough that buckets hold few thresholds


def float32_order_keys(values: np.ndarray) -> np.ndarray:
    """Map float32 values to uint32 keys with the same order (``a < b`` iff ``key(a) < key(b)``).

    Negative zero must have been replaced by positive zero beforehand (the two compare equal as
    floats but have different bits). NaN is not allowed.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    negative = bits >= np.uint32(0x80000000)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


class NormalCounter:
    """Counts normal scores below and equal to each of a sorted set of distinct thresholds.

    Parameters
    ----------
    thresholds : numpy.ndarray
        Distinct float32 values in strictly ascending order.
    key_min, key_max : int
        Range of :func:`float32_order_keys` over every value that will be counted (thresholds and
        normals); it sets the bucket width.
    """

    def __init__(self, thresholds: np.ndarray, key_min: int, key_max: int) -> None:
        self.thresholds = np.ascontiguousarray(thresholds, dtype=np.float32)
        self._key_min = np.uint32(key_min)
        self._shift = np.uint32(max(0, int(key_max - key_min).bit_length() - _BUCKET_BITS))
        n_buckets = ((key_max - key_min) >> int(self._shift)) + 1
        threshold_buckets = self._bucket(self.thresholds)
        # start[b] = number of thresholds in buckets before b; thresholds of bucket b are start[b]:start[b+1]
        per_bucket = np.bincount(threshold_buckets, minlength=n_buckets)
        self._start = np.zeros(n_buckets + 1, dtype=np.int64)
        np.cumsum(per_bucket, out=self._start[1:])
        self._search_steps = int(per_bucket.max(initial=0)).bit_length()
        n = self.thresholds.size
        self._at_or_below = np.zeros(n + 1, dtype=np.int64)  # histogram of lower_bound indices
        self._equal = np.zeros(n, dtype=np.int64)

    def _bucket(self, values: np.ndarray) -> np.ndarray:
        keys = float32_order_keys(values)
        keys -= self._key_min
        keys >>= self._shift
        return keys.astype(np.intp, copy=False)

    def add(self, normals: np.ndarray) -> None:
        """Count one chunk of normal scores (float32, finite, no negative zero)."""
        if normals.size == 0:
            return
        buckets = self._bucket(normals)
        lower = self._start[buckets]
        upper = self._start[buckets + 1]
        shared = np.flatnonzero(upper > lower)
        if shared.size:
            # Lower bound (number of thresholds < x) inside the few thresholds of the same bucket.
            values = normals[shared]
            lo = lower[shared]
            hi = upper[shared]
            for _ in range(self._search_steps):
                active = lo < hi
                mid = (lo + hi) >> 1
                go_right = active & (self.thresholds[np.minimum(mid, self.thresholds.size - 1)] < values)
                lo = np.where(go_right, mid + 1, lo)
                hi = np.where(go_right | ~active, hi, mid)
            lower[shared] = lo
            hit = lo < self.thresholds.size
            equal = np.zeros(shared.size, dtype=bool)
            equal[hit] = self.thresholds[lo[hit]] == values[hit]
            self._equal += np.bincount(lo[equal], minlength=self.thresholds.size)
        self._at_or_below += np.bincount(lower, minlength=self.thresholds.size + 1)

    def add_all(self, chunks: Iterable[np.ndarray]) -> None:
        """Count every chunk of an iterable."""
        for chunk in chunks:
            self.add(chunk)

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(below, equal)``: per threshold, the number of normals ``< t`` and ``== t``."""
        # _at_or_below[j] counts normals x with (#thresholds < x) == j, i.e. thresholds[j-1] < x <= thresholds[j].
        at_or_below = np.cumsum(self._at_or_below[:-1])
        return at_or_below - self._equal, self._equal.copy()
