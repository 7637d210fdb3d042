"""Exact counting of normal scores below / equal to a set of thresholds, without sorting the normals.

Every segmentation metric of the engine reduces to two integer counts per distinct defect score ``u``:
how many normal pixels score strictly below ``u`` and how many score exactly ``u``. A full sort of the
normal pixels (tens of millions of values) is the classic way to get them; here the normals are
streamed once, chunk by chunk, through an order-preserving integer bucketing of their float bits, and
only the normals that share a bucket with a defect score need a (short, vectorised) binary search.

Scores are float32 unless float32 would merge distinct values (float64 maps whose values float32 cannot
hold exactly): those categories are counted in float64, at twice the memory, so that every distinct
score stays a threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from adbench_hr.errors import InputError

_BUCKET_BITS = 22  # 4M buckets: 16 MiB of bucket offsets, fine enough that buckets hold few thresholds
_SLICE = 1 << 20  # normals counted at once


# Unsigned integer type with the bits of each working float type.
_KEY_TYPES = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def exact_scores(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 when that keeps every value exactly, otherwise as float64.

    float32 halves the memory of a category's scores; a float64 (or wide integer) map whose values float32
    would round is kept in float64, since rounding can merge distinct scores into ties and change the
    exact metrics.

    Raises
    ------
    ValueError
        For values that float64 cannot hold exactly either (64-bit integers beyond 2**53, long double):
        they would be merged silently.
    """
    values = np.asarray(values)
    if values.dtype == np.float32:
        return values
    if values.dtype.kind not in "buif":
        raise ValueError(f"{values.dtype} values, not real numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is detected below
        as32 = values.astype(np.float32)
        if values.dtype.itemsize <= 2 and values.dtype.kind in "uif":  # uint8/16, int8/16, float16: exact
            return as32
        if _holds(as32, values):
            return as32
        if values.dtype == np.float64:  # already what it would become: no copy to compare
            return values
        as64 = values.astype(np.float64)
        if not _holds(as64, values):
            raise ValueError(
                f"{values.dtype} values that no float64 holds exactly (integers beyond 2**53, long double "
                "precision): distinct scores would be merged; scale or shift the map"
            )
    return as64


def checked_scores(anomaly_map: np.ndarray, name: str | Path | None = None) -> np.ndarray:
    """An anomaly map's scores as :func:`exact_scores` keeps them, after checking that they can be scored:
    a non-empty 2-D array of real, finite numbers.

    Raises
    ------
    InputError
        Naming ``name`` (the map's file) and the problem.
    """
    return checked_scores_and_range(anomaly_map, name)[0]


def checked_scores_and_range(
    anomaly_map: np.ndarray, name: str | Path | None = None
) -> tuple[np.ndarray, float, float]:
    """:func:`checked_scores` with the map's smallest and largest value, which the check computes anyway."""
    values = np.asarray(anomaly_map)
    if values.ndim != 2 or values.size == 0:
        raise InputError(f"anomaly map must be a non-empty 2-D array, got shape {values.shape}", name)
    values, low, high = _real_scores_and_range(values, "anomaly map", name)
    assert low is not None and high is not None  # a non-empty map has a range
    return values, low, high


def check_mask_shape(anomaly_map: np.ndarray, mask: np.ndarray | None, name: str | Path | None = None) -> None:
    """Raise an :class:`InputError` naming ``name`` unless ``mask`` (``None``: a good image) has the map's shape."""
    if mask is not None and np.shape(mask) != np.shape(anomaly_map):
        raise InputError(
            f"anomaly map shape {np.shape(anomaly_map)} does not match ground-truth shape {np.shape(mask)}", name
        )


def real_scores(values: np.ndarray, what: str, name: str | Path | None = None) -> np.ndarray:
    """``values`` as :func:`exact_scores` keeps them, or an :class:`InputError` (``what`` names them, ``name``
    their file) for values that are not real finite numbers or that no float64 holds exactly."""
    return _real_scores_and_range(np.asarray(values), what, name)[0]


def _real_scores_and_range(
    values: np.ndarray, what: str, name: str | Path | None
) -> tuple[np.ndarray, float | None, float | None]:
    """:func:`real_scores` with their smallest and largest value (``None`` for no values)."""
    if values.size and values.dtype.kind not in "uif":  # bool, complex, object, strings
        raise InputError(f"{what} must be real-valued, got dtype {values.dtype}", name)
    try:
        values = exact_scores(values)
    except ValueError as exc:
        raise InputError(f"{what} holds {exc}", name) from None
    if not values.size:
        return values, None, None
    # min and max propagate NaN and show inf, without a boolean array the size of the map.
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(f"{what} contains NaN or inf", name)
    return values, low, high


def _holds(converted: np.ndarray, values: np.ndarray) -> bool:
    """Whether ``converted`` holds ``values`` exactly.

    64-bit integers and long doubles are compared in their own type: numpy would compare them as float64,
    which rounds them first (2**53 + 1 would equal its float32 rounding).
    """
    kind, size = values.dtype.kind, values.dtype.itemsize
    if (kind in "iu" and size == 8) or (kind == "f" and size > 8):
        return bool(np.array_equal(converted.astype(values.dtype), values))
    return bool(np.array_equal(converted, values))


def order_keys(values: np.ndarray) -> np.ndarray:
    """Map float32 (float64) values to uint32 (uint64) keys with the same order (``a < b`` iff ``key(a) < key(b)``).

    Negative zero must have been replaced by positive zero beforehand (the two compare equal as
    floats but have different bits). NaN is not allowed.
    """
    values = np.ascontiguousarray(values)
    key_type = _KEY_TYPES[values.dtype]
    bits = values.view(key_type)
    sign = key_type(1) << key_type(8 * values.itemsize - 1)
    return np.where(bits >= sign, ~bits, bits | sign)


class NormalCounter:
    """Counts normal scores below and equal to each of a sorted set of distinct thresholds.

    Parameters
    ----------
    thresholds : numpy.ndarray
        Distinct float32 or float64 values in strictly ascending order; their type is the working
        precision, to which the counted normals are converted.
    key_min, key_max : int
        Range of :func:`order_keys` (of the working precision) over every value that will be counted
        (thresholds and normals); it sets the bucket width.
    """

    def __init__(self, thresholds: np.ndarray, key_min: int, key_max: int) -> None:
        thresholds = np.asarray(thresholds)
        self.dtype = np.dtype(np.float64 if thresholds.dtype == np.float64 else np.float32)
        self.thresholds = np.ascontiguousarray(thresholds, dtype=self.dtype)
        key_type = _KEY_TYPES[self.dtype]
        self._key_min = key_type(key_min)
        self._shift = key_type(max(0, int(key_max - key_min).bit_length() - _BUCKET_BITS))
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
        keys = order_keys(values)
        keys -= self._key_min
        keys >>= self._shift
        return keys.astype(np.intp, copy=False)

    def add(self, normals: np.ndarray) -> None:
        """Count one chunk of normal scores (finite, no negative zero; exact in the working precision)."""
        normals = normals.reshape(-1)
        # Slices keep the int64 temporaries below (about ten per value) small, whatever the image size.
        for start in range(0, normals.size, _SLICE):
            self._add_slice(normals[start : start + _SLICE])

    def _add_slice(self, normals: np.ndarray) -> None:
        normals = normals.astype(self.dtype, copy=False)
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
