"""Exact counting of normal scores below / equal to a set of thresholds, without sorting all the normals.

Every segmentation metric of the engine reduces to two integer counts per distinct defect score ``u``:
how many normal pixels score strictly below ``u`` and how many score exactly ``u``. A full sort of the
normal pixels (tens of millions of values) is the classic way to get them; here the normals are
streamed once, a slice of 2**20 at a time: each slice is sorted (a small copy) and merged with the sorted
thresholds by binary search, the smaller of the two sorted arrays searched in the larger.

Scores are float32 unless float32 would merge distinct values (float64 maps whose values float32 cannot
hold exactly): those categories are counted in float64, at twice the memory, so that every distinct
score stays a threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from adbench_hr.errors import InputError

_SLICE = 1 << 20  # normals counted at once: bounds the sorted copy and the index arrays of one slice


def exact_scores(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 when that keeps every value exactly, otherwise as float64.

    float32 halves the memory of a category's scores; a float64 (or wide integer) map whose values float32
    would round is kept in float64, since rounding can merge distinct scores into ties and change the
    exact metrics.

    Raises
    ------
    ValueError
        For values that float64 cannot hold exactly either (64-bit integers beyond 2**53, long double):
        they would be merged silently; and for values that are not real numbers (complex, text, objects).
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
    which rounds them first (2**53 + 1 would equal its float32 rounding). A NaN holds as NaN: the caller
    reports it as such, not as a value that float64 cannot hold.
    """
    kind, size = values.dtype.kind, values.dtype.itemsize
    equal_nan = kind == "f"
    if (kind in "iu" and size == 8) or (kind == "f" and size > 8):
        return bool(np.array_equal(converted.astype(values.dtype), values, equal_nan=equal_nan))
    return bool(np.array_equal(converted, values, equal_nan=equal_nan))


def _search_thresholds(sorted_normals: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of sorted normals per threshold, each threshold searched among the normals.

    The cheaper way when there are fewer thresholds than normals; :func:`_search_normals` gives the same counts.

    Parameters
    ----------
    sorted_normals : numpy.ndarray
        Normal scores in ascending order (no NaN).
    thresholds : numpy.ndarray
        Distinct values in strictly ascending order, of the normals' dtype.

    Returns
    -------
    at_or_below : numpy.ndarray
        int64, ``thresholds.size + 1`` entries: entry ``j`` counts the normals ``x`` with
        ``thresholds[j-1] < x <= thresholds[j]``; the last one those above every threshold.
    equal : numpy.ndarray
        int64, the number of normals equal to each threshold.
    """
    below = np.searchsorted(sorted_normals, thresholds, side="left")
    # Only a threshold that some normal equals needs the second search (2% of them on bench/metrics_engine.py).
    # A threshold above every normal (below == size) reads the last normal, which is smaller: not equal.
    not_above = below.copy()
    tied = sorted_normals[np.minimum(below, sorted_normals.size - 1)] == thresholds
    not_above[tied] = np.searchsorted(sorted_normals, thresholds[tied], side="right")
    return np.diff(not_above, prepend=0, append=sorted_normals.size), not_above - below


def _search_normals(sorted_normals: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_search_thresholds`'s counts, each normal searched among the thresholds.

    The cheaper way when there are more thresholds than normals (many distinct defect scores).
    """
    lower = np.searchsorted(thresholds, sorted_normals, side="left")  # number of thresholds < x
    # A normal above every threshold (lower == size) reads the last threshold, which is smaller: not equal.
    tied = thresholds[np.minimum(lower, thresholds.size - 1)] == sorted_normals
    return (
        np.bincount(lower, minlength=thresholds.size + 1),
        np.bincount(lower[tied], minlength=thresholds.size),
    )


class NormalCounter:
    """Counts normal scores below and equal to each of a sorted set of distinct thresholds.

    Parameters
    ----------
    thresholds : numpy.ndarray
        Distinct float32 or float64 values in strictly ascending order; their type is the working
        precision, to which the counted normals are converted.
    """

    def __init__(self, thresholds: np.ndarray) -> None:
        thresholds = np.asarray(thresholds)
        self.dtype = np.dtype(np.float64 if thresholds.dtype == np.float64 else np.float32)
        self.thresholds = np.ascontiguousarray(thresholds, dtype=self.dtype)
        n = self.thresholds.size
        self._at_or_below = np.zeros(n + 1, dtype=np.int64)  # histogram of lower_bound indices
        self._equal = np.zeros(n, dtype=np.int64)

    def add(self, normals: np.ndarray) -> None:
        """Count one chunk of normal scores (finite, exact in the working precision)."""
        normals = normals.reshape(-1)
        # Slices bound the sorted copy and the index arrays, whatever the image size.
        for start in range(0, normals.size, _SLICE):
            self._add_slice(normals[start : start + _SLICE])

    def _add_slice(self, normals: np.ndarray) -> None:
        # Sorted normals make both searches run over ascending keys, where numpy's binary search keeps the
        # previous key's lower bound and probes the elements it just read, in cache. astype copies the slice
        # (the caller's normals stay as they are).
        sorted_normals = normals.astype(self.dtype)
        sorted_normals.sort()
        # A binary search costs the log of the array searched: search the smaller array in the larger.
        search = _search_thresholds if self.thresholds.size <= sorted_normals.size else _search_normals
        at_or_below, equal = search(sorted_normals, self.thresholds)
        self._at_or_below += at_or_below
        self._equal += equal

    def add_all(self, chunks: Iterable[np.ndarray]) -> None:
        """Count every chunk of an iterable."""
        for chunk in chunks:
            self.add(chunk)

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(below, equal)``: per threshold, the number of normals ``< t`` and ``== t``."""
        # _at_or_below[j] counts normals x with (#thresholds < x) == j, i.e. thresholds[j-1] < x <= thresholds[j].
        at_or_below = np.cumsum(self._at_or_below[:-1])
        return at_or_below - self._equal, self._equal.copy()
