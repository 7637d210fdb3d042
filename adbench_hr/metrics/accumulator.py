"""Per-category accumulator of every metric defined in docs/metrics.md.

Feed it one test image at a time (full-resolution anomaly map, ground-truth mask or ``None``, image
score), then call :meth:`AnomalyMetrics.compute`. It keeps only what the exact metrics need: the
scores of normal pixels, and the scores and component ids of defect pixels -- float32, or float64 for maps
whose values float32 would round (see ``_counting.exact_scores``).

How the exact computation avoids a global sort (see ``_counting.py``): every point of every PRO curve
and the pixel AUROC depend on the normals only through two counts per distinct defect score ``u`` --
``below(u) = #{normal < u}`` and ``equal(u) = #{normal == u}``. Between two consecutive distinct defect
scores the PRO is constant, so the curve is exact with two vertices per distinct defect score:
``(#{normal > u} / N, PRO just above u)`` and ``(#{normal >= u} / N, PRO(u))``. One ordering of the
defect pixels serves every size bin; only the per-pixel weights change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adbench_hr.errors import InputError
from adbench_hr.metrics._counting import (
    NormalCounter,
    check_mask_shape,
    checked_scores_and_range,
    real_scores,
)
from adbench_hr.metrics.curves import normalised_area, resample
from adbench_hr.metrics.size_bins import (
    AREA_BIN_EDGES_PX,
    QUARTILE_NAMES,
    SizeBin,
    area_bins,
    cumulative_bins,
    quartile_bins,
    size_quartiles,
    size_robustness,
)

DEFAULT_FPR_LIMITS: tuple[float, ...] = (0.3, 0.1, 0.05, 0.01)
PRO_THRESHOLD_MODES = ("exact", "l2bt")
CONNECTIVITY = 8
_L2BT_N_THRESHOLDS = 99
_CURVE_POINTS = 101


def limit_key(limit: float | str) -> str:
    """JSON key of an FPR limit: ``0.3``, ``"0.30"`` and ``"0.3"`` all give ``"0.3"``; ``0.05 -> "0.05"``."""
    return format(float(limit), "g")


def label_defects(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the 8-connected components of a mask's defect pixels (``mask > 0``).

    Returns
    -------
    labels : numpy.ndarray
        int32 image, 0 for background, 1..n for the components.
    areas : numpy.ndarray
        int64 pixel area of components 1..n.

    Only the rectangle that bounds the defect pixels is labelled (defects cover a few percent of most
    masks). OpenCV's 8-connected labelling scans 2 x 2 blocks, two rows at a time, and numbers components in
    the order of their first block: the rectangle starts on an even row so that it pairs the rows as the
    whole mask does, and the labels are those of the whole mask.
    """
    mask = np.asarray(mask)
    defect = mask.view(np.uint8) if mask.dtype == np.bool_ else (mask > 0).astype(np.uint8)
    if defect.ndim != 2:  # OpenCV's error, as before
        n, labels, stats, _ = cv2.connectedComponentsWithStats(defect, connectivity=CONNECTIVITY, ltype=cv2.CV_32S)
        return labels, stats[1:n, cv2.CC_STAT_AREA].astype(np.int64)
    labels = np.zeros(defect.shape, np.int32)
    rows = np.flatnonzero(defect.any(axis=1))
    if not rows.size:
        return labels, np.zeros(0, np.int64)
    top, bottom = int(rows[0]) & ~1, int(rows[-1]) + 1  # an even top: rows paired as in the whole mask
    cols = np.flatnonzero(defect[top:bottom].any(axis=0))
    left, right = int(cols[0]), int(cols[-1]) + 1
    n, inside, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(defect[top:bottom, left:right]), connectivity=CONNECTIVITY, ltype=cv2.CV_32S
    )
    labels[top:bottom, left:right] = inside
    return labels, stats[1:n, cv2.CC_STAT_AREA].astype(np.int64)


def auroc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float | None:
    """Exact ROC AUC (ties count one half); ``None`` when either class is empty.

    Scores of any shape are flattened; they are compared exactly (float32, or float64 where float32 would
    round them).

    Raises
    ------
    InputError
        For scores that are not real finite numbers, or that no float64 holds exactly.
    """
    positives = real_scores(np.ravel(positive_scores), "positive score array")
    negatives = np.sort(real_scores(np.ravel(negative_scores), "negative score array"))
    if positives.size == 0 or negatives.size == 0:
        return None
    below = np.searchsorted(negatives, positives, side="left")
    at_or_below = np.searchsorted(negatives, positives, side="right")
    wins = 2 * exact_dot(below) + exact_dot(at_or_below - below)
    return wins / (2.0 * positives.size * negatives.size)


_LIMB_BITS = 21  # three limbs hold any non-negative int64


def exact_dot(values: np.ndarray, counts: np.ndarray | None = None) -> int:
    """``sum(counts * values)`` (``sum(values)`` without ``counts``) of non-negative integers, exactly.

    An int64 sum wraps silently past 2**63: the pixel AUROC's win count is about #defect px x #normal px,
    which passes 2**63 for a category of about 6e9 pixels. Where the bound ``sum(counts) * max(values)``
    could pass it, ``values`` are summed in 21-bit limbs, each limb's sum staying below 2**63 while
    ``sum(counts) < 2**42``.

    Raises
    ------
    ValueError
        For ``sum(counts) >= 2**42`` (4e12 pixels) where ``sum(counts) * max(values)`` reaches 2**63: even the
        limbs could wrap there. Smaller values are summed in int64 at any count.
    """
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if counts is None:
        n, total = values.size, lambda v: int(v.sum())
    else:
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        n, total = int(counts.sum()), lambda v: int(np.dot(v, counts))
    if n * int(values.max(initial=0)) < 2**63:
        return total(values)
    if n >= 2 ** (63 - _LIMB_BITS):
        raise ValueError(f"{n} counted values: beyond what int64 sums exactly")
    mask = (1 << _LIMB_BITS) - 1
    return sum(total((values >> shift) & mask) << shift for shift in range(0, 63, _LIMB_BITS))


@dataclass
class _DefectPixels:
    """Defect pixels sorted by score, grouped by distinct score."""

    scores: np.ndarray  # ascending, in the working precision
    components: np.ndarray  # component id of each pixel, same order
    group: np.ndarray  # index of the pixel's distinct score in `distinct`
    distinct: np.ndarray  # distinct scores, ascending
    large: np.ndarray  # indices of the distinct scores of more than _PAIRWISE_FROM pixels ...
    large_bounds: np.ndarray  # ... and their pixels' [start, end) in `scores`, for np.add.reduceat

    def sums_per_score(self, pixel_weights: np.ndarray) -> np.ndarray:
        """Sum of ``pixel_weights`` (in the pixels' order) over each distinct score's pixels.

        ``np.bincount`` adds one weight at a time, which loses about n x 1e-16 over the n pixels of one
        score: a perfect map's PRO of 1 came out as 1 - 1.2e-10 at 1e7 defect pixels, 1 - 2e-9 at 1e8. So the
        scores of many pixels are summed again pairwise (``np.add.reduceat``; for all scores it would cost
        about 20 ns per distinct score).
        """
        sums = np.bincount(self.group, weights=pixel_weights, minlength=self.distinct.size)
        if self.large.size:
            sums[self.large] = np.add.reduceat(pixel_weights, self.large_bounds)[::2]  # odd: gaps between
        return sums


# Pixels of one score beyond which they are summed pairwise (numpy adds fewer than 8 one at a time anyway): one at
# a time, the weights 1 / |D| of a perfect map's 64 to 256 px defect summed to 1 - 6e-15, not 1 - 1e-15.
_PAIRWISE_FROM = 8


def _offset_ids(ids: np.ndarray, offset: int) -> np.ndarray:
    """Component ids of one image shifted past the ``offset`` ids before them, in int64 where their own type
    (OpenCV's int32 labels) would wrap: a category may hold more than 2**31 defects."""
    if ids.size and offset + int(ids.max()) > np.iinfo(ids.dtype).max:
        ids = ids.astype(np.int64)
    return ids + offset


def _state(factory: Callable[[], Any]) -> Any:
    """A field of accumulated state: set by ``__init__`` from ``factory``, never passed to it, not shown."""
    return field(default_factory=factory, init=False, repr=False)


def _given_components(
    mask: np.ndarray | None, defect: np.ndarray, defect_sizes: np.ndarray, name: str | Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Defects given as a label image: component index of each defect pixel, then pixel counts and sizes of
    the defects present, then sizes of the lost ones (no pixel here).

    The present defects are renumbered 0..m-1 in label order.
    """
    sizes = np.asarray(defect_sizes, dtype=np.float64).reshape(-1)
    if mask is not None and not np.issubdtype(np.asarray(mask).dtype, np.integer):
        raise InputError("a defect label image must have an integer dtype", name)
    ids = np.asarray(mask)[defect].astype(np.int64) if mask is not None else np.zeros(0, np.int64)
    if ids.size and (ids.min() < 1 or ids.max() > sizes.size):
        raise InputError(f"defect labels must lie in 1..{sizes.size} (the number of defect sizes)", name)
    if sizes.size and not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise InputError("defect sizes must be positive and finite", name)
    pixel_counts = np.bincount(ids - 1, minlength=sizes.size) if ids.size else np.zeros(sizes.size, np.int64)
    present = pixel_counts > 0
    new_index = np.cumsum(present) - 1
    components = new_index[ids - 1] if ids.size else np.zeros(0, np.int64)
    return components, pixel_counts[present].astype(np.int64), sizes[present], sizes[~present]


def finite_beyond_float64(value: Any) -> bool:
    """Whether ``value``, whose ``float()`` is not finite, is itself finite: a long double or ``Decimal`` beyond
    float64's range, which converts to inf without being inf."""
    if isinstance(value, np.floating):
        return bool(np.isfinite(value))
    is_finite = getattr(value, "is_finite", None)  # Decimal's method; a float has none
    if callable(is_finite):
        is_finite = is_finite()
    return is_finite is True  # sympy's numbers hold it as a property: True, False or None (not known)


def checked_image_score(value: Any, name: str | Path | None = None, what: str = "image score") -> float:
    """An image score as a float, or an :class:`InputError` naming ``name``: one real, finite number that float64
    holds exactly (not a bool, text, complex number or array). ``what`` names the score in the message."""
    refused = (bool, np.bool_, str, bytes, complex, np.complexfloating)
    given = value
    if isinstance(value, np.ndarray) and value.ndim == 0:  # np.asarray(x), a torch scalar's .numpy(): its scalar,
        value = value[()]  # checked as one (a 0-d bool or text array converts with float() too, a wide int rounds)
    try:
        if isinstance(value, refused) or np.ndim(value) != 0:
            raise TypeError
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be one real number, got {given!r}", name) from None
    except OverflowError:  # an integer or fraction beyond float64's range (float() raises, not inf)
        raise InputError(f"{what} is beyond the range of float64", name) from None
    if not math.isfinite(score):
        if finite_beyond_float64(value):
            raise InputError(f"{what} is beyond the range of float64", name)
        raise InputError(f"{what} is NaN or inf", name)
    # As for maps (_counting.exact_scores): an integer or long double that float64 would round could tie
    # with another image's score; compared in its own type (a numpy integer would be compared as float64).
    if isinstance(value, (int, np.integer)):
        exact = score == int(value)
    elif isinstance(value, np.floating) and value.dtype.itemsize > 8:
        exact = bool(value.dtype.type(score) == value)
    else:
        exact = True
    if not exact:
        raise InputError(f"{what} is a value that no float64 holds exactly ({given!r}): it could tie with "
                         "another image's score; scale or shift the scores", name)
    return score


@dataclass(eq=False)  # identity: comparing accumulators field by field would compare arrays
class AnomalyMetrics:
    """Accumulates one category's test images and computes all metrics exactly.

    Parameters
    ----------
    fpr_limits : sequence of float
        Integration limits L of AUPRO@L, each in (0, 1].
    pro_thresholds : {"exact", "l2bt"}
        ``exact`` uses every distinct score as a threshold; ``l2bt`` reproduces the official L2BT
        evaluation code (99 thresholds at ranks of the sorted normal scores, ``score > t``).

    Examples
    --------
    >>> import numpy as np
    >>> metrics = AnomalyMetrics()
    >>> mask = np.zeros((4, 4), bool); mask[1, 1] = True
    >>> metrics.update(mask.astype(np.float32), mask)
    >>> metrics.update(np.zeros((4, 4), np.float32), None)
    >>> metrics.compute()["metrics"]["aupro"]["0.3"]
    1.0
    """

    fpr_limits: Sequence[float] = DEFAULT_FPR_LIMITS
    pro_thresholds: str = "exact"
    # The accumulated state (not constructor arguments; see reset()).
    _normals: list[np.ndarray] = _state(list)
    _defect_scores: list[np.ndarray] = _state(list)
    _defect_components: list[np.ndarray] = _state(list)
    _component_areas: list[np.ndarray] = _state(list)
    _component_sizes: list[np.ndarray] = _state(list)
    _lost_sizes: list[np.ndarray] = _state(list)
    _given_defects: bool = _state(bool)  # some image's defects were given (defect_sizes) ...
    _found_defects: bool = _state(bool)  # ... or found in its mask: one mode per accumulator
    _image_scores: list[float] = _state(list)
    _image_labels: list[int] = _state(list)
    _n_components: int = _state(int)
    _float64: bool = _state(bool)  # some map needed float64 (float32 would have rounded its values)

    def __post_init__(self) -> None:
        if self.pro_thresholds not in PRO_THRESHOLD_MODES:
            raise InputError(f"unknown PRO threshold mode {self.pro_thresholds!r} (use exact or l2bt)")
        if isinstance(self.fpr_limits, (str, bytes)) or not isinstance(self.fpr_limits, Iterable):
            raise InputError(f"FPR limits must be a sequence of numbers such as (0.3, 0.1), got {self.fpr_limits!r}")
        try:
            limits = tuple(float(x) for x in self.fpr_limits)
        except (TypeError, ValueError):
            raise InputError(f"FPR limits must be numbers, got {self.fpr_limits!r}") from None
        except OverflowError:  # an integer beyond float64's range: outside (0, 1] too
            raise InputError(f"FPR limits must lie in (0, 1], got {self.fpr_limits!r}") from None
        if not limits:
            raise InputError("FPR limits must hold at least one limit, got none")
        if any(not 0 < x <= 1 for x in limits):
            raise InputError(f"FPR limits must lie in (0, 1], got {limits}")
        keys = [limit_key(x) for x in limits]
        if len(set(keys)) != len(keys):  # e.g. 0.3 and 0.30000000000000004 would share the key "0.3"
            raise InputError(f"FPR limits must differ in their keys, got {', '.join(keys)}")
        self.fpr_limits = limits

    # ------------------------------------------------------------------ accumulation
    def update(
        self,
        anomaly_map: np.ndarray,
        mask: np.ndarray | None,
        image_score: float | None = None,
        label: int | None = None,
        name: str | Path | None = None,
        defect_sizes: np.ndarray | None = None,
    ) -> None:
        """Add one test image.

        Parameters
        ----------
        anomaly_map : numpy.ndarray
            Real-valued ``(H, W)`` map at the image's original resolution; higher is more anomalous.
        mask : numpy.ndarray or None
            Ground truth of the same shape (``> 0`` is defect), or ``None`` for a good image.
        image_score : float, optional
            Image-level anomaly score; defaults to the map's maximum (MVTec's rule).
        label : {0, 1}, optional
            1 (or ``True``) if the image is defective, 0 if good; defaults to whether the mask has any defect
            pixel.
        name : str or Path, optional
            File the map came from, named in error messages.
        defect_sizes : numpy.ndarray, optional
            Defects given instead of found: ``mask`` is then an integer label image (0 no defect, ``k >= 1``
            defect ``k``, not necessarily connected here) and ``defect_sizes[k - 1]`` is defect ``k``'s size
            for the size bins, e.g. its area at the original resolution when this map is a resized one.
            A defect's PRO is still the fraction of its pixels in this map at or above the threshold; a
            defect with no pixel here is *lost*: it is counted (``n_lost_defects``, ``n_lost`` per area
            bin) but in no curve. Use the same mode for every image of a category.
        """
        values, _, high = checked_scores_and_range(anomaly_map, name)
        if label is not None and (not isinstance(label, (int, np.integer, np.bool_)) or label not in (0, 1)):
            raise InputError(f"image label must be 0 (good) or 1 (defective), an integer or a bool, got {label!r}",
                             name)
        areas = np.zeros(0, np.int64)
        check_mask_shape(values, mask, name)
        mask_dtype = None if mask is None else np.asarray(mask).dtype
        # Complex masks (NaN + 0j > 0 is false: a silent normal pixel), text and objects have no "mask > 0".
        if mask_dtype is not None and mask_dtype.kind not in "buif":
            raise InputError(f"mask must be boolean or real-valued, got dtype {mask_dtype}", name)
        if mask_dtype is not None and mask_dtype.kind == "f" and not np.isfinite(mask).all():
            raise InputError("mask holds NaN or inf (NaN > 0 is false: such pixels would count as normal)", name)
        defect = np.zeros(values.shape, dtype=bool) if mask is None else np.asarray(mask) > 0
        score = float(high) if image_score is None else checked_image_score(image_score, name)
        given_after_found = defect_sizes is not None and self._found_defects
        found_after_given = defect_sizes is None and self._given_defects and defect.any()
        if given_after_found or found_after_given:
            raise InputError("defects are given (defect_sizes) for some images and found in the masks of others: "
                             "use one mode per category", name)

        # Every check runs before the first append: a refused image must leave the state as it was.
        lost_sizes = None
        if defect_sizes is not None:
            components, areas, sizes, lost_sizes = _given_components(mask, defect, defect_sizes, name)
        elif defect.any():
            labels, areas = label_defects(defect)
            components, sizes = labels[defect] - 1, areas
            self._found_defects = True
        self._normals.append(values[~defect])
        if lost_sizes is not None:
            self._given_defects = True
            self._lost_sizes.append(lost_sizes)
        if areas.size:
            self._defect_scores.append(values[defect])
            self._defect_components.append(_offset_ids(components, self._n_components))
            self._component_areas.append(areas)
            self._component_sizes.append(sizes)
            self._n_components += areas.size
        self._float64 = self._float64 or values.dtype == np.float64
        self._image_scores.append(score)
        self._image_labels.append(int(defect.any()) if label is None else int(label))

    def reset(self) -> None:
        """Forget every image added (the settings stay)."""
        for item in fields(self):
            if not item.init:
                setattr(self, item.name, item.default_factory())

    def merge(self, other: AnomalyMetrics) -> AnomalyMetrics:
        """Add every image accumulated by ``other`` (same settings) to this accumulator; return self."""
        if not isinstance(other, AnomalyMetrics):
            raise TypeError(f"can only merge another AnomalyMetrics, not a {type(other).__name__}")
        if other is self:  # every image would count twice
            raise ValueError("cannot merge an accumulator into itself")
        if {limit_key(x) for x in other.fpr_limits} != {limit_key(x) for x in self.fpr_limits} or \
                other.pro_thresholds != self.pro_thresholds:
            raise ValueError("cannot merge accumulators with different settings")
        if (self._given_defects and other._found_defects) or (self._found_defects and other._given_defects):
            raise ValueError("cannot merge accumulators whose defects were given in one and found in the other")
        self._normals += other._normals
        self._defect_scores += other._defect_scores
        self._defect_components += [_offset_ids(c, self._n_components) for c in other._defect_components]
        self._component_areas += other._component_areas
        self._component_sizes += other._component_sizes
        self._lost_sizes += other._lost_sizes
        self._given_defects = self._given_defects or other._given_defects
        self._found_defects = self._found_defects or other._found_defects
        self._n_components += other._n_components
        self._image_scores += other._image_scores
        self._image_labels += other._image_labels
        self._float64 = self._float64 or other._float64
        return self

    @property
    def n_images(self) -> int:
        return len(self._image_scores)

    # ------------------------------------------------------------------ computation
    def compute(self) -> dict[str, Any]:
        """Compute every metric.

        Returns
        -------
        dict
            ``{"metrics": {...}, "warnings": [...]}`` where ``metrics`` follows the result schema (plus
            ``pro_curves``: PRO sampled on a regular FPR grid up to the largest limit, for the
            ``all`` defects and the cumulative bins).
        """
        warnings: list[str] = []
        labels = np.array(self._image_labels, dtype=np.int64)
        scores = np.array(self._image_scores, dtype=np.float64)
        metrics: dict[str, Any] = {
            "i_auroc": auroc(scores[labels == 1], scores[labels == 0]),
            "p_auroc": None,
            "n_images": self.n_images,
            "n_defective_images": int(labels.sum()),
            "n_defects": self._n_components,
        }
        if self.n_images == 0:
            raise InputError("no test image was scored")
        if metrics["i_auroc"] is None:
            warnings.append("image AUROC undefined: the test set lacks good or defective images")
        # Pixel counts weigh each defect's PRO; sizes place it in the size bins (the same, unless given).
        areas = np.concatenate(self._component_areas) if self._component_areas else np.zeros(0, np.int64)
        sizes = np.concatenate(self._component_sizes) if self._component_sizes else np.zeros(0, np.float64)
        lost = np.concatenate(self._lost_sizes) if self._lost_sizes else np.zeros(0, np.float64)
        if self._given_defects:
            metrics["n_lost_defects"] = int(lost.size)
        n_normal = sum(chunk.size for chunk in self._normals)
        if self._n_components == 0 or n_normal == 0:
            warnings.append(
                "segmentation metrics undefined: "
                + ("no defect in the ground truth" if self._n_components == 0 else "no normal pixel")
            )
            metrics.update(self._null_segmentation(sizes, lost))
            return {"metrics": metrics, "warnings": warnings}

        dtype = np.float64 if self._float64 else np.float32
        defects = self._sorted_defect_pixels(dtype)
        counter = NormalCounter(defects.distinct)
        counter.add_all(self._normals)
        below, equal = counter.counts()

        pixels_per_score = np.bincount(defects.group, minlength=defects.distinct.size)
        wins = 2 * exact_dot(below, pixels_per_score) + exact_dot(equal, pixels_per_score)
        metrics["p_auroc"] = wins / (2.0 * defects.scores.size * n_normal)

        # Quartile edges over every defect, lost ones too: with given defects they are then the edges of
        # the full-resolution reading, so that each quartile bin holds the same defects (minus the lost).
        quartiles = size_quartiles(np.concatenate([sizes, lost]))
        families = {
            "aupro_cumulative": cumulative_bins(sizes, quartiles),
            "aupro_quartile": quartile_bins(sizes, quartiles),
            "aupro_by_area": area_bins(sizes),
        }
        all_defects = SizeBin("all", np.ones(sizes.shape, dtype=bool))
        if self.pro_thresholds == "exact":
            curve_of = self._exact_curves(defects, areas, below, equal, n_normal)
        else:
            curve_of = self._l2bt_curves(defects, areas)

        def aupro(curve) -> dict[str, float | None]:
            if curve is None:
                return {limit_key(limit): None for limit in self.fpr_limits}
            fpr, pro = curve
            # PRO <= 1, so the normalised area is at most 1; the clip removes rounding (1 + 1e-16), a NaN stays NaN.
            return {limit_key(limit): min(normalised_area(fpr, pro, limit), 1.0) for limit in self.fpr_limits}

        # The curves of all defects and of the cumulative bins also feed the sampled PRO curves. One curve at a
        # time: each holds 32 bytes per distinct defect score, five held at once were most of the peak memory.
        sampled_bins = [all_defects, *families["aupro_cumulative"]]
        sampled_aupro, sampled_curves = {}, {}
        for size_bin in sampled_bins:
            curve = curve_of(size_bin)
            sampled_aupro[size_bin.name] = aupro(curve)
            sampled_curves[size_bin.name] = self._sampled_curve(curve)
            del curve
        metrics["aupro"] = sampled_aupro["all"]
        metrics["aupro_cumulative"] = {b.name: sampled_aupro[b.name] for b in families["aupro_cumulative"]}
        metrics["aupro_quartile"] = {b.name: aupro(curve_of(b)) for b in families["aupro_quartile"]}
        metrics["aupro_by_area"] = [
            {"min_px": lo, "max_px": hi, "n_defects": int(b.members.sum()), "aupro": aupro(curve_of(b))}
            for (lo, hi), b in zip(AREA_BIN_EDGES_PX, families["aupro_by_area"], strict=True)
        ]
        self._add_lost_counts(metrics["aupro_by_area"], lost)
        metrics["rho"] = {
            key: size_robustness({name: metrics["aupro_cumulative"][name][key] for name in QUARTILE_NAMES})
            for key in map(limit_key, self.fpr_limits)
        }
        metrics["size_quartiles_px"] = [float(q) for q in quartiles]
        metrics["pro_curves"] = {"fpr_limit": max(self.fpr_limits), **sampled_curves}
        return {"metrics": metrics, "warnings": warnings}

    def _null_segmentation(self, sizes: np.ndarray, lost: np.ndarray) -> dict[str, Any]:
        null = {limit_key(limit): None for limit in self.fpr_limits}
        by_area = [
            {"min_px": lo, "max_px": hi, "n_defects": int(b.members.sum()), "aupro": dict(null)}
            for (lo, hi), b in zip(AREA_BIN_EDGES_PX, area_bins(sizes), strict=True)
        ]
        self._add_lost_counts(by_area, lost)
        return {
            "aupro": dict(null),
            "aupro_cumulative": {name: dict(null) for name in QUARTILE_NAMES},
            "aupro_quartile": {name: dict(null) for name in QUARTILE_NAMES},
            "aupro_by_area": by_area,
            "rho": dict(null),
            "size_quartiles_px": (
                [float(q) for q in size_quartiles(np.concatenate([sizes, lost]))] if sizes.size + lost.size else None
            ),
            "pro_curves": None,
        }

    def _add_lost_counts(self, by_area: list[dict[str, Any]], lost: np.ndarray) -> None:
        """With given defects, each area bin also counts its lost defects (``n_lost``)."""
        if self._given_defects:
            for entry, size_bin in zip(by_area, area_bins(lost), strict=True):
                entry["n_lost"] = int(size_bin.members.sum())

    def _sorted_defect_pixels(self, dtype: type[np.floating]) -> _DefectPixels:
        scores = np.concatenate(self._defect_scores).astype(dtype, copy=False)
        components = np.concatenate(self._defect_components)
        order = np.argsort(scores, kind="stable")
        scores = scores[order]
        components = components[order]
        del order
        new_value = np.empty(scores.size, dtype=bool)
        new_value[0] = True
        np.not_equal(scores[1:], scores[:-1], out=new_value[1:])
        starts = np.flatnonzero(new_value)
        group = np.cumsum(new_value, dtype=np.int64) - 1
        sizes = np.diff(starts, append=scores.size)
        large = np.flatnonzero(sizes > _PAIRWISE_FROM)
        # [start, end) of each large score's pixels, in one list; reduceat sums from its last index to the
        # end of the array, so an end that is the end is left out.
        bounds = np.column_stack([starts[large], starts[large] + sizes[large]]).reshape(-1)
        if bounds.size and bounds[-1] == scores.size:
            bounds = bounds[:-1]
        return _DefectPixels(scores, components, group, scores[starts], large, bounds)

    def _bin_weights(self, size_bin: SizeBin, areas: np.ndarray) -> np.ndarray | None:
        """Per-component weight 1 / (|D| * n_bin) for defects D in the bin, 0 elsewhere."""
        n_bin = int(size_bin.members.sum())
        if n_bin == 0:
            return None
        return np.where(size_bin.members, 1.0 / (areas * float(n_bin)), 0.0)

    def _exact_curves(self, defects: _DefectPixels, areas, below, equal, n_normal):
        """Return a function mapping a size bin to its exact (FPR, PRO) curve up to the largest limit."""
        # Thresholds in descending order; keep only those reaching FPR <= max limit, plus one beyond.
        at_or_above = (n_normal - below)[::-1]
        above = at_or_above - equal[::-1]
        above_fpr = above / n_normal
        # The first threshold whose FPR exceeds the largest limit closes the part of the curve in use.
        n_keep = min(int(np.searchsorted(above_fpr, max(self.fpr_limits), side="right")) + 1, above.size)
        fpr = np.empty(2 * n_keep + 2)
        fpr[0] = 0.0
        fpr[1 : 2 * n_keep + 1 : 2] = above_fpr[:n_keep]
        fpr[2 : 2 * n_keep + 2 : 2] = at_or_above[:n_keep] / n_normal
        fpr[-1] = 1.0

        def curve(size_bin: SizeBin):
            weights = self._bin_weights(size_bin, areas)
            if weights is None:
                return None
            per_score = defects.sums_per_score(weights[defects.components])
            pro_desc = np.cumsum(per_score[::-1])  # PRO at each threshold, descending thresholds
            pro = np.empty_like(fpr)
            pro[0] = 0.0
            pro[1] = 0.0
            pro[3 : 2 * n_keep + 1 : 2] = pro_desc[: n_keep - 1]
            pro[2 : 2 * n_keep + 2 : 2] = pro_desc[:n_keep]
            pro[-1] = 1.0
            return fpr, pro

        return curve

    def _l2bt_curves(self, defects: _DefectPixels, areas):
        """Curves of the official L2BT evaluation code (docs/metrics.md, "Compatibility mode l2bt")."""
        normals = np.concatenate(self._normals)
        n_normal = normals.size
        # int64, not int: numpy 1.x on Windows makes int 32-bit, and ranks pass 2**31 with the normals.
        ranks = np.linspace(0, n_normal - 1, num=_L2BT_N_THRESHOLDS, dtype=np.int64)
        normals.partition(np.unique(ranks))  # in place: np.partition would copy every normal score once more
        thresholds = normals[ranks]
        del normals
        # L2BT lists FPR descending from (1, 1), then reverses; reproduce that order exactly.
        fpr = np.concatenate([[1.0], 1.0 - (ranks + 1) / n_normal])[::-1]
        # Distinct defect scores strictly above each threshold (those from the index on): ascending scores.
        first_above = np.searchsorted(defects.distinct, thresholds, side="right")

        def curve(size_bin: SizeBin):
            weights = self._bin_weights(size_bin, areas)
            if weights is None:
                return None
            per_score = defects.sums_per_score(weights[defects.components])
            above_weight = np.concatenate([np.cumsum(per_score[::-1])[::-1], [0.0]])
            pro = np.concatenate([[1.0], above_weight[first_above]])[::-1]
            return fpr, pro

        return curve

    def _sampled_curve(self, curve: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any] | None:
        """PRO of an (FPR, PRO) curve sampled on a regular FPR grid up to the largest limit."""
        if curve is None:
            return None
        grid = np.linspace(0.0, max(self.fpr_limits), _CURVE_POINTS)
        fpr, pro = curve
        points = grid[grid >= max(grid[0], fpr[0])]
        return {
            "fpr": [round(float(x), 6) for x in points],
            "pro": [round(float(y), 6) for y in resample(fpr, pro, points)],
        }

