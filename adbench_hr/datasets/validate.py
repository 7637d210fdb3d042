"""Validate a dataset by reading every file, and summarise its defects.

Readers stay lazy (they only list files); this module is the one place that opens every image and mask,
checks that masks match their images pixel for pixel in size, and counts defects the way the metrics do
(8-connected components of ``mask > 0``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from adbench_hr.datasets.base import Dataset, TestSample, TrainSample
from adbench_hr.datasets.mvtec import MVTecLayoutDataset
from adbench_hr.datasets.visa import VisADataset
from adbench_hr.errors import InputError, printable
from adbench_hr.imageio import is_lossy, read_image_and_depth
from adbench_hr.metrics import label_defects
from adbench_hr.metrics.size_bins import size_quartiles
from adbench_hr.progress import progress_bar

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass
class CategoryReport:
    """What :func:`validate_category` found in one category.

    Attributes
    ----------
    category : str
        Category name.
    n_train, n_test_good, n_test_defective : int
        Image counts.
    defect_areas : list of int
        Area in px of every defect (8-connected mask component), over the test set.
    image_sizes : Counter
        ``(H, W) -> number of images``, train and test.
    warnings : list of str
        Problems that do not stop evaluation (for example an empty mask on a defective image).
    """

    category: str
    n_train: int = 0
    n_test_good: int = 0
    n_test_defective: int = 0
    defect_areas: list[int] = field(default_factory=list)
    image_sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_defects(self) -> int:
        """Number of defects (connected components) in the test set."""
        return len(self.defect_areas)

    @property
    def size_quartiles_px(self) -> list[float] | None:
        """``[q25, q50, q75]`` of the defect areas (:func:`adbench_hr.metrics.size_bins.size_quartiles`, the
        quartile edges of the size bins), or ``None``."""
        if not self.defect_areas:
            return None
        return [float(q) for q in size_quartiles(np.asarray(self.defect_areas))]

    def to_json(self) -> dict[str, Any]:
        """The ``datasets check --json`` record of this category."""
        return {
            "n_train": self.n_train,
            "n_test_good": self.n_test_good,
            "n_test_defective": self.n_test_defective,
            "n_defects": self.n_defects,
            "size_quartiles_px": self.size_quartiles_px,
        }


def defect_areas(mask: np.ndarray) -> list[int]:
    """Pixel areas of a mask's defects, as the metrics count them (:func:`adbench_hr.metrics.label_defects`:
    the 8-connected components of ``mask > 0``), in label order."""
    return [int(a) for a in label_defects(mask)[1]]


def lossy_masks_warning(samples: Iterable[TestSample]) -> str | None:
    """One warning for all masks of ``samples`` stored with lossy (JPEG) compression, if any."""
    lossy = [s.mask_path for s in samples if s.mask_path is not None and is_lossy(s.mask_path)]
    if not lossy:
        return None
    return (
        f"{lossy[0]}: {len(lossy)} mask(s) stored with JPEG compression; their noise around defects counts as "
        "defect (mask > 0), so defects grow and specks become extra small defects: store masks as PNG"
    )


def _percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` in percent, in whole numbers, with as many decimals as it takes for a share below
    100 % not to print as 100 (99.7)."""
    share, digits = 100 * part / whole, 0
    while part < whole and float(f"{share:.{digits}f}") >= 100:
        digits += 1
    return f"{share:.{digits}f}"


def mask_warning(sample: TestSample, defect_pixels: int, n_pixels: int) -> str | None:
    """The warning a defective sample's mask deserves, if any: empty, or mostly defect (likely inverted)."""
    if defect_pixels == 0:
        return f"{sample.mask_path}: mask of a defective image is empty"
    if defect_pixels > n_pixels / 2:
        return (
            f"{sample.mask_path}: mask marks {_percent(defect_pixels, n_pixels)} % of the image as defect; "
            "is it inverted? (defect pixels must be non-zero)"
        )
    return None


def listing_warnings(
    dataset: Dataset, category: str, test: Sequence[TestSample], train: Sequence[TrainSample] | None = None
) -> list[str]:
    """Warnings about files of a category that its reader finds but does not read, one line each.

    The one place ``datasets check`` (:func:`validate_category`), ``score`` and ``run`` take them from:

    - MVTec layout: image files that are neither a listed sample nor a sample's mask (a mask in
      ``ground_truth/good``, a mask without its image, images in nested folders);
    - VisA: rows of ``1cls.csv`` labelled normal that name a mask.

    Parameters
    ----------
    dataset : Dataset
        The opened dataset.
    category : str
        Its category.
    test : sequence of TestSample
        The category's test samples, as listed.
    train : sequence of TrainSample, optional
        Its training samples; ``None`` when they are not listed (``score``), which leaves the training files
        (MVTec's ``train/``, VisA's ``train`` rows) out.

    Returns
    -------
    list of str
        ``"<path>: <problem>"`` lines, empty when there is nothing to report.
    """
    warnings: list[str] = []
    if isinstance(dataset, MVTecLayoutDataset):
        skip = ("train",) if train is None else ()
        unused = dataset.unused_files(category, [*(train or ()), *test], skip=skip)
        if unused:
            warnings.append(
                f"{unused[0]}: {len(unused)} image file(s) of the category are not read (neither an image of "
                "train/good or test/<defect> nor the mask of one): misnamed or misplaced?"
            )
    if isinstance(dataset, VisADataset):
        rows = dataset.normal_rows_with_masks(category, ("test",) if train is None else ("train", "test"))
        if rows:
            (line, mask), others = rows[0], len(rows) - 1
            more = f" (and {others} other line(s))" if others else ""
            warnings.append(
                f"{dataset.csv_path}: line {line}{more}: the image is labelled normal but has a mask ({mask}); "
                "a normal image has no mask, so the mask is not read"
            )
    return warnings


# A category with 16-bit files none of whose pixels exceeds this (of 255) is reported: 10- to 14-bit
# camera data stored right-aligned in 16 bit (values up to 16383) reads at most 64 after the scaling.
DARK_CATEGORY_MAX = 64


@dataclass(frozen=True)
class _ImageFacts:
    size: tuple[int, int]  # (H, W)
    brightest: int  # largest value after reading (0..255)
    bits: int  # bits per sample stored in the file


def _image_facts(path: Path) -> _ImageFacts:
    image, bits = read_image_and_depth(path)
    return _ImageFacts((int(image.shape[0]), int(image.shape[1])), int(image.max()), bits)


def _check_train(sample: TrainSample) -> _ImageFacts:
    return _image_facts(sample.image_path)


def _check_test(sample: TestSample) -> tuple[_ImageFacts, list[int] | None]:
    facts = _image_facts(sample.image_path)
    mask = sample.load_mask()
    if mask is None:
        return facts, None
    if mask.shape != facts.size:
        raise mask_size_error(sample, mask.shape, facts.size)
    return facts, defect_areas(mask)


def mask_size_error(sample: TestSample, mask_shape: tuple[int, ...], image_shape: tuple[int, ...]) -> InputError:
    """The error of a mask whose ``(H, W)`` differs from its image's (it names the mask file)."""
    return InputError(
        f"mask size {mask_shape[1]}x{mask_shape[0]} does not match its image "
        f"{sample.image_path} ({image_shape[1]}x{image_shape[0]}, width x height)",
        sample.mask_path,
    )


def _ordered_map(fn: Callable[[_T], _R], items: list[_T], workers: int) -> Iterator[_R]:
    """``map`` over a thread pool, yielding in order; the first error cancels what has not started."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(workers)
    futures: list[Future[_R]] = [pool.submit(fn, item) for item in items]
    try:
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_masks(samples: Sequence[TestSample], workers: int | None = None) -> None:
    """Read every mask of ``samples`` and its image; raise :class:`InputError` on the first unusable one.

    A cheap subset of :func:`validate_category` (defective test images only) that ``run`` does before a
    long fit, so that a broken mask stops it at once rather than after training.
    """
    defective = [s for s in samples if s.mask_path is not None]
    n_workers = workers or max(1, min(4, os.cpu_count() or 1))
    for _ in _ordered_map(_check_test, defective, n_workers):
        pass


def validate_category(
    dataset: Dataset, category: str, *, progress: bool = False, workers: int | None = None
) -> CategoryReport:
    """Read every image and mask of a category and report counts and defect sizes.

    Parameters
    ----------
    dataset : Dataset
        An opened dataset (see :func:`adbench_hr.datasets.open_dataset`).
    category : str
        Category to check.
    progress : bool
        Show a progress bar on stderr.
    workers : int, optional
        Reader threads (decoding releases the GIL); default up to 4.

    Returns
    -------
    CategoryReport

    Raises
    ------
    InputError
        On the first problem, naming the file: unknown category, empty split, unreadable or corrupt
        image or mask, defective image without a mask, mask size different from its image's, two
        images with the same sample id.
    """
    train = dataset.train_samples(category)
    test = dataset.test_samples(category)
    _check_unique_ids([(s.sample_id, s.image_path) for s in train])
    _check_unique_ids([(s.sample_id, s.image_path) for s in test])
    report = CategoryReport(category)
    n_workers = workers or max(1, min(4, os.cpu_count() or 1))
    # leave=False: the bar erases itself, so an error that follows is still a single line.
    with progress_bar(total=len(train) + len(test), show=progress, desc=printable(category), unit="img",
                      leave=False) as bar:
        brightest, has_16_bit = 0, False
        for facts in _ordered_map(_check_train, train, n_workers):
            report.n_train += 1
            report.image_sizes[facts.size] += 1
            brightest, has_16_bit = max(brightest, facts.brightest), has_16_bit or facts.bits == 16
            bar.update()
        for sample, (facts, areas) in zip(test, _ordered_map(_check_test, test, n_workers), strict=True):
            size = facts.size
            report.image_sizes[size] += 1
            brightest, has_16_bit = max(brightest, facts.brightest), has_16_bit or facts.bits == 16
            if sample.label == 0:
                report.n_test_good += 1
            else:
                report.n_test_defective += 1
                warning = mask_warning(sample, sum(areas or []), size[0] * size[1])
                if warning:
                    report.warnings.append(warning)
                report.defect_areas.extend(areas or [])
            bar.update()
    warning = lossy_masks_warning(test)
    if warning:
        report.warnings.append(warning)
    report.warnings.extend(listing_warnings(dataset, category, test, train))
    if brightest <= DARK_CATEGORY_MAX and has_16_bit:
        report.warnings.append(
            f"{category}: every image is dark (brightest value {brightest} of 255 after reading): 16-bit "
            "values are divided by 257, so 10- to 14-bit camera data stored right-aligned in 16-bit files "
            "keeps only a few grey levels; scale such images to the full 16-bit range"
        )
    if report.n_test_defective == 0:
        report.warnings.append(f"{category}: no defective test images, segmentation metrics will be null")
    if report.n_test_good == 0:
        report.warnings.append(f"{category}: no good test images, image-level AUROC will be undefined")
    return report


def _check_unique_ids(entries: Iterable[tuple[str, Any]]) -> None:
    seen: dict[str, Any] = {}
    for sample_id, path in entries:
        if sample_id in seen:
            raise InputError(f"two images map to the same sample id {sample_id!r} (other: {seen[sample_id]})", path)
        seen[sample_id] = path
