"""What the library API accepts and refuses: image labels, FPR limits, masks of any dtype, the public
``auroc``, and the accumulator as an object (equality, constructor, reset). Expected values by hand or by
brute force."""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest

from adbench_hr.errors import InputError
from adbench_hr.metrics import AnomalyMetrics, auroc, label_defects


def _pairwise_auroc(positives, negatives) -> float:
    """Brute force: the fraction of (positive, negative) pairs ranked right, ties counting one half."""
    pairs = list(itertools.product(np.ravel(positives), np.ravel(negatives)))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auroc_flattens_scores_of_any_shape():
    # Wins of 3, 1, 2, 2 over 2, 0, 1: 3 + 1.5 + 2.5 + 2.5 = 9.5 of 12 pairs.
    positives, negatives = np.array([[3, 1], [2, 2]]), np.array([2, 0, 1])
    assert auroc(positives, negatives) == _pairwise_auroc(positives, negatives) == 9.5 / 12


def test_auroc_compares_wide_integers_exactly_or_refuses_them():
    assert auroc(np.array([2**40 + 1], np.int64), np.array([2**40], np.int64)) == 1.0  # float64 holds them
    with pytest.raises(InputError, match=r"positive score array holds int64 values that no float64 holds exactly"):
        auroc(np.array([2**62 + 1], np.int64), np.array([2**62], np.int64))  # float64 would tie them: 0.5


@pytest.mark.parametrize("positives, negatives, problem", [
    ([np.nan], [0.5], "positive score array contains NaN or inf"),
    ([1.0], [np.inf], "negative score array contains NaN or inf"),
    ([1 + 2j], [0.5], "positive score array must be real-valued, got dtype complex128"),
    (["1"], [0.5], "positive score array must be real-valued, got dtype <U1"),
])
def test_auroc_refuses_scores_that_are_not_finite_real_numbers(positives, negatives, problem):
    with pytest.raises(InputError) as info:
        auroc(positives, negatives)
    assert str(info.value) == problem


def test_auroc_of_an_empty_class_is_none():
    assert auroc([], [1.0]) is None and auroc([1.0], np.zeros((0, 3))) is None


def _good_and_defective(labels) -> AnomalyMetrics:
    metrics = AnomalyMetrics()
    for label in labels:
        metrics.update(np.zeros((2, 2), np.float32), None, label=label)
    return metrics


def test_image_labels_may_be_0_1_or_bools_of_python_or_numpy():
    metrics = _good_and_defective([True, np.int64(1), 0, np.bool_(False), 1])
    assert metrics.compute()["metrics"]["n_defective_images"] == 3


@pytest.mark.parametrize("label", [2, -1, 1.7, 1.0, "1"])
def test_other_image_labels_are_refused(label):
    with pytest.raises(InputError) as info:
        _good_and_defective([label])
    # 1.0 is refused for its type: the message says which types are taken (before, "got 1.0" only).
    assert str(info.value) == f"image label must be 0 (good) or 1 (defective), an integer or a bool, got {label!r}"


# "1" is text even where each character reads as a number: it must not become the limits (1.0,).
@pytest.mark.parametrize("limits", [0.3, "0.3", "1", None, [0.3, "x"]])
def test_fpr_limits_must_be_a_sequence_of_numbers(limits):
    with pytest.raises(InputError, match="FPR limits must be"):
        AnomalyMetrics(fpr_limits=limits)


@pytest.mark.parametrize("value, dtype, defects", [
    (256, np.uint16, 1), (0.5, np.float32, 1), (1, np.uint8, 1), (True, bool, 1), (-1, np.int8, 0),
])
def test_label_defects_reads_every_mask_dtype_as_mask_above_zero(value, dtype, defects):
    mask = np.zeros((5, 5), dtype)
    mask[1:3, 1:3] = value
    labels, areas = label_defects(mask)
    assert len(areas) == defects and list(areas) == [4] * defects
    assert (labels > 0).sum() == 4 * defects


def _filled(seed: int) -> AnomalyMetrics:
    rng = np.random.default_rng(seed)
    metrics = AnomalyMetrics()
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    metrics.update(rng.random((8, 8)) + mask, mask)
    metrics.update(rng.random((8, 8)), None)
    return metrics


def test_accumulators_compare_by_identity_and_keep_their_state_out_of_the_constructor():
    first, second = _filled(0), _filled(0)
    assert first != second and first == first and first in [second, first]  # no array comparison raised
    assert pickle.loads(pickle.dumps(first)).compute() == first.compute()
    with pytest.raises(TypeError, match="_high"):
        AnomalyMetrics(_high=1e9)
    assert repr(first) == "AnomalyMetrics(fpr_limits=(0.3, 0.1, 0.05, 0.01), pro_thresholds='exact')"


def test_reset_forgets_the_images_but_keeps_the_settings():
    metrics = AnomalyMetrics(fpr_limits=(0.3, 0.05), pro_thresholds="l2bt")
    metrics.update(np.full((8, 8), 5.0), np.eye(8))  # a first image, to be forgotten
    metrics.reset()
    expected = AnomalyMetrics(fpr_limits=(0.3, 0.05), pro_thresholds="l2bt")
    for target in (metrics, expected):
        rng = np.random.default_rng(2)
        mask = rng.random((8, 8)) > 0.8
        target.update(rng.random((8, 8)) + mask, mask)
        target.update(rng.random((8, 8)), None)
    assert metrics.compute() == expected.compute()
    assert metrics.compute()["metrics"]["n_images"] == 2
    # Every piece of state is back to a new accumulator's (a float64 map sets the working precision, though
    # it does not show in the numbers).
    metrics.update(np.array([[1e300, 1.0 + 1e-12]]), None)
    metrics.reset()
    fresh = AnomalyMetrics()
    for item in dataclasses.fields(AnomalyMetrics):
        if not item.init:
            assert getattr(metrics, item.name) == getattr(fresh, item.name), item.name


@pytest.mark.parametrize("score", [10**400, -(2**1024), Fraction(10**400, 3)], ids=["1e400", "-2**1024", "fraction"])
def test_an_image_score_beyond_float64_is_an_input_error_not_an_overflow(score):
    # float() raises OverflowError for such numbers (it returns inf only for text and floats).
    metrics = AnomalyMetrics()
    with pytest.raises(InputError, match="image score is beyond the range of float64"):
        metrics.update(np.zeros((2, 2), np.float32), None, image_score=score, name="m.tiff")
    assert metrics.n_images == 0


def test_a_finite_image_score_that_converts_to_inf_is_beyond_float64_not_nan_or_inf():
    # float() gives inf for a long double or Decimal beyond float64's range; the score itself is finite
    # (before: "image score is NaN or inf"). Real NaN and inf of those types still say so.
    from decimal import Decimal

    finite = [Decimal("1e400"), Decimal("-1e400")]
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # long double is float64 on some platforms
        finite.append(np.longdouble("1e400"))
    for score in finite:
        metrics = AnomalyMetrics()
        with pytest.raises(InputError) as info:
            metrics.update(np.zeros((2, 2), np.float32), None, image_score=score, name="m.tiff")
        assert str(info.value) == "m.tiff: image score is beyond the range of float64"
    for score in (Decimal("nan"), Decimal("-inf"), np.longdouble("inf"), np.longdouble("nan"), float("inf")):
        with pytest.raises(InputError) as info:
            AnomalyMetrics().update(np.zeros((2, 2), np.float32), None, image_score=score, name="m.tiff")
        assert str(info.value) == "m.tiff: image score is NaN or inf"


class _SympyLikeNumber:
    """A number type whose ``is_finite`` is a property holding True, False or None, as sympy's numbers have
    (``sympy.oo.is_finite`` is False, ``sympy.Float("1e400").is_finite`` True), converting to inf."""

    def __init__(self, is_finite: bool | None) -> None:
        self.is_finite = is_finite

    def __float__(self) -> float:
        return math.inf


@pytest.mark.parametrize("is_finite, problem", [(False, "is NaN or inf"), (None, "is NaN or inf"),
                                                (True, "is beyond the range of float64")])
def test_a_number_with_an_is_finite_property_is_an_input_error_not_a_type_error(is_finite, problem):
    # Before: TypeError "'bool' object is not callable" (is_finite was called as Decimal's method is).
    with pytest.raises(InputError) as info:
        AnomalyMetrics().update(np.zeros((2, 2), np.float32), None, image_score=_SympyLikeNumber(is_finite),
                                name="m.tiff")
    assert str(info.value) == f"m.tiff: image score {problem}"


@pytest.mark.parametrize("high, low", [
    (2**53 + 1, 2**53),  # one float64 value: compared after rounding, the images would tie (I-AUROC 0.5)
    (np.int64(2**62 + 1), np.int64(2**62)),
    (np.uint64(2**64 - 1), np.uint64(2**64 - 2**11)),
    (np.array(2**62 + 1), np.array(2**62)),  # 0-d arrays (np.asarray, a torch scalar's .numpy()) as their scalars
])
def test_integer_image_scores_that_float64_would_round_are_refused_as_in_maps(high, low):
    # The same values in a map are refused (see test_integers_float64_cannot_hold_are_refused_not_merged), and so
    # are they by the public auroc(): the image scores must not be merged into a tie either.
    metrics = AnomalyMetrics()
    metrics.update(np.zeros((2, 2), np.float32), None, image_score=low)  # float64 holds 2**53, 2**62, 2**64 - 2**11
    with pytest.raises(InputError, match="no float64 holds exactly"):
        metrics.update(np.zeros((2, 2), np.float32), None, image_score=high, label=1)
    assert metrics.n_images == 1


def test_integer_image_scores_that_float64_holds_are_compared_exactly():
    # 2**60 and 2**60 + 2**8 are float64 values (beyond 2**53, but multiples of 2**8): the defective image ranks first.
    metrics = AnomalyMetrics()
    metrics.update(np.zeros((2, 2), np.float32), None, image_score=2**60)
    metrics.update(np.zeros((2, 2), np.float32), None, image_score=np.int64(2**60 + 2**8), label=1)
    assert metrics.compute()["metrics"]["i_auroc"] == 1.0
