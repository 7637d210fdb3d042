"""``label_defects`` labels only the rectangle around the defect pixels: its labels and areas must be those of
labelling the whole mask (OpenCV numbers components in raster order of their first pixel), for masks of any
layout: defects at the borders, in one corner, one pixel, everywhere, none, big enough for OpenCV's parallel
labelling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from adbench_hr.metrics import CONNECTIVITY, label_defects


def _whole_mask_labels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: the whole mask labelled at once."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (np.asarray(mask) > 0).astype(np.uint8), connectivity=CONNECTIVITY, ltype=cv2.CV_32S
    )
    return labels, stats[1:n, cv2.CC_STAT_AREA].astype(np.int64)


def _specks(shape, density, seed) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def _blobs(shape, seed) -> np.ndarray:
    """Defects of many shapes in a band away from every border (the case the bounding rectangle speeds up)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(12):
        y, x = rng.integers(shape[0] // 4, 3 * shape[0] // 4), rng.integers(shape[1] // 5, 4 * shape[1] // 5)
        cv2.ellipse(mask, (int(x), int(y)), (int(rng.integers(1, 30)), int(rng.integers(1, 9))),
                    float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return mask


def _corners(shape) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[0, 0] = mask[-1, -1] = mask[0, -1] = mask[-1, 0] = True
    return mask


MASKS = {
    "none": lambda: np.zeros((40, 70), bool),
    "every pixel": lambda: np.ones((40, 70), bool),
    "one pixel": lambda: np.pad(np.ones((1, 1), bool), ((17, 22), (30, 39))),
    "the four corners": lambda: _corners((40, 70)),
    "one row": lambda: np.pad(np.ones((1, 70), bool), ((39, 0), (0, 0))),
    "one column": lambda: np.pad(np.ones((40, 1), bool), ((0, 0), (0, 69))),
    "diagonal touches (8-connected)": lambda: np.pad(np.eye(9, dtype=bool)[:, ::-1], ((5, 26), (30, 31))),
    "specks": lambda: _specks((60, 90), 0.3, 1),
    "blobs, uint8 255": lambda: _blobs((300, 500), 2),
    "blobs, float": lambda: _blobs((300, 500), 3).astype(np.float64) / 255,
    "blobs in a large mask (parallel labelling)": lambda: _blobs((1200, 1700), 4) > 0,
    "specks in a large mask": lambda: _specks((1100, 1500), 0.002, 5),
    "a transposed view": lambda: (_blobs((300, 500), 6) > 0).T,
    # OpenCV scans rows in pairs (0-1, 2-3 ...): the pixel of row 1 comes first in the whole mask, that of row 2
    # in a rectangle starting on row 1.
    "first defect on an odd row, a later one further left": lambda: _two_pixels((6, 20), (1, 10), (2, 0)),
}


def _two_pixels(shape, first, second) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[first] = mask[second] = True
    return mask


@pytest.mark.parametrize("case", list(MASKS))
def test_labels_and_areas_are_those_of_the_whole_mask(case):
    mask = MASKS[case]()
    labels, areas = label_defects(mask)
    expected_labels, expected_areas = _whole_mask_labels(mask)
    assert labels.dtype == expected_labels.dtype == np.int32 and labels.shape == mask.shape
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(areas, expected_areas)
    assert areas.dtype == np.int64


def test_the_mask_is_left_as_it_was():
    mask = _blobs((100, 120), 7) > 0
    before = mask.copy()
    label_defects(mask)
    np.testing.assert_array_equal(mask, before)


def test_a_mask_that_is_not_2d_is_labelled_whole_as_opencv_labels_it():
    # The rectangle is cut only from 2-D masks; any other array goes to OpenCV whole, as before: a (H, W, 1) mask
    # is its one plane, and a 3-channel one is OpenCV's error even without defect pixels (not "no defects").
    column = np.pad(np.ones((3, 4, 1), bool), ((2, 5), (1, 6), (0, 0)))
    labels, areas = label_defects(column)
    expected_labels, expected_areas = _whole_mask_labels(column)
    assert labels.shape == (10, 11) and areas.tolist() == [12]
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(areas, expected_areas)
    with pytest.raises(cv2.error):
        _whole_mask_labels(np.zeros((8, 9, 3), bool))
    with pytest.raises(cv2.error):
        label_defects(np.zeros((8, 9, 3), bool))
    # A 1-D mask is not 2-D either: OpenCV's labels (of a 1 x N image), not a numpy error from the rectangle.
    row = np.array([0, 1, 1, 0, 1], bool)
    labels, areas = label_defects(row)
    expected_labels, expected_areas = _whole_mask_labels(row)
    assert areas.tolist() == [2, 1]
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(areas, expected_areas)
