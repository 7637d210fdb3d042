"""Scoring a folder of anomaly maps against a dataset category (``adbench-hr score``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adbench_hr.datasets import Dataset, TestSample, check_category
from adbench_hr.datasets.validate import listing_warnings, lossy_masks_warning, mask_size_error, mask_warning
from adbench_hr.errors import InputError
from adbench_hr.fileio import check_input_folder
from adbench_hr.imageio import image_size
from adbench_hr.maps import (
    check_maps_complete,
    find_image_scores,
    find_map,
    map_header_shape,
    read_image_scores,
    read_map,
    unmatched_maps,
)
from adbench_hr.metrics import (
    CONNECTIVITY,
    DEFAULT_FPR_LIMITS,
    AnomalyMetrics,
    check_mask_shape,
    checked_scores,
    label_defects,
)
from adbench_hr.progress import progress_bar
from adbench_hr.results import ORIGINAL_COUNT_KEYS, SIZE_METRICS

PROTOCOLS = ("full", "lowres")
# The low-resolution protocol's side: papers use 224-512 px; beyond 4096 it is no longer low resolution
# (and N x N maps of every image would need gigabytes).
MIN_EVAL_SIZE, MAX_EVAL_SIZE = 8, 4096
#: Metrics of a low-resolution result recomputed per original-resolution defect (``original_defects``): the
#: keys that :func:`adbench_hr.results.validate_result` requires there.
ORIGINAL_DEFECT_KEYS = (*ORIGINAL_COUNT_KEYS, *SIZE_METRICS)


def protocol_record(
    name: str, eval_size: int | None, pro_thresholds: str, fpr_limits: Sequence[float] = DEFAULT_FPR_LIMITS
) -> dict:
    """The ``protocol`` entry of a result file."""
    return {
        "name": name,
        "eval_size": eval_size,
        "pro_thresholds": pro_thresholds,
        "fpr_limits": list(fpr_limits),
        "connectivity": CONNECTIVITY,
    }


def to_eval_resolution(
    anomaly_map: np.ndarray, mask: np.ndarray | None, eval_size: int, name: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Low-resolution protocol: the map bilinearly and the mask (``> 0``) by nearest neighbour to
    ``eval_size``²; a map that cannot be scored raises an :class:`InputError` naming ``name``."""
    size = (eval_size, eval_size)
    # In float32 or float64 (exact_scores): OpenCV resizes few dtypes, and rounds integer results. Checked
    # here, at full resolution: a NaN between the pixels the resize samples would vanish.
    small_map = cv2.resize(checked_scores(anomaly_map, name), size, interpolation=cv2.INTER_LINEAR)
    if not np.isfinite(small_map).all():  # finite values near the float limits: a weighted sum overflows
        raise InputError(f"the bilinear resize to {eval_size}x{eval_size} overflows (values near the limits of "
                         f"{small_map.dtype}, up to {float(np.abs(anomaly_map).max()):.3g}): scale the map", name)
    small_mask = None
    if mask is not None:
        defect = (np.asarray(mask) > 0).astype(np.uint8)
        small_mask = cv2.resize(defect, size, interpolation=cv2.INTER_NEAREST) > 0
    return small_map, small_mask


def original_defects_at(mask: np.ndarray | None, eval_size: int) -> tuple[np.ndarray | None, np.ndarray]:
    """The original-resolution defects of a mask, followed to ``eval_size``².

    Returns the defect label image resized by nearest neighbour (the same pixels as the resized mask of
    :func:`to_eval_resolution`, each keeping the id of the original 8-connected component it came from)
    and the components' original areas in px.
    """
    if mask is None:
        return None, np.zeros(0, np.int64)
    labels, areas = label_defects(mask)
    if not areas.size:  # no defect pixel
        return None, areas
    small = cv2.resize(labels, (eval_size, eval_size), interpolation=cv2.INTER_NEAREST)
    return small, areas


def check_protocol(protocol: str, eval_size: int | None, option: str = "--eval-size") -> None:
    """Validate a protocol name and its evaluation size (``option`` names the size in messages)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r} (use full or lowres)")
    if protocol == "lowres":
        if eval_size is None:
            raise InputError(f"--protocol lowres needs {option} N ({MIN_EVAL_SIZE} <= N <= {MAX_EVAL_SIZE}, e.g. 256)")
        if not MIN_EVAL_SIZE <= eval_size <= MAX_EVAL_SIZE:
            raise InputError(
                f"the lowres protocol needs {option} N with {MIN_EVAL_SIZE} <= N <= {MAX_EVAL_SIZE} (e.g. 256), "
                f"got {eval_size}"
            )
    if protocol == "full" and eval_size is not None:
        raise InputError("--eval-size only applies to --protocol lowres")


def checked_mask(
    sample: TestSample,
    anomaly_map: np.ndarray | None,
    map_name: str | Path,
    image_shape: tuple[int, int] | None = None,
) -> np.ndarray | None:
    """Load a sample's mask (``None`` for good images) after checking that mask and map have the image's size.

    ``image_shape`` (H, W) spares reading the image file when the caller has the image already. ``anomaly_map``
    ``None`` checks the mask alone.
    """
    expected = tuple(image_shape) if image_shape is not None else image_size(sample.image_path)
    mask = sample.load_mask()
    if mask is not None and mask.shape != expected:
        raise mask_size_error(sample, mask.shape, expected)
    if anomaly_map is not None:
        check_map_size(anomaly_map, expected, sample.image_path, map_name)
    return mask


def check_map_size(anomaly_map: np.ndarray, expected: tuple[int, int], image_path: Path, map_name: str | Path) -> None:
    """Raise an :class:`InputError` naming ``map_name`` unless the map is ``expected`` (H, W), its image's size."""
    check_map_shape(anomaly_map.shape, expected, image_path, map_name)


def check_map_shape(
    shape: tuple[int, ...], expected: tuple[int, int], image_path: Path, map_name: str | Path
) -> None:
    """:func:`check_map_size` for a map's shape (read from its file's header, say)."""
    if tuple(shape) != tuple(expected):
        raise InputError(
            f"anomaly map is {shape[0]}x{shape[1]} but the image "
            f"{Path(image_path).name} is {expected[0]}x{expected[1]} (maps must be at original resolution)",
            map_name,
        )


class ProtocolScorer:
    """Accumulates the maps of one category under one evaluation protocol.

    Parameters
    ----------
    protocol : {"full", "lowres"}
        ``full`` scores at the original resolution; ``lowres`` resizes map and mask to ``eval_size`` first.
    eval_size : int, optional
        Evaluation side in px for ``lowres``.
    pro_thresholds : {"exact", "l2bt"}
        Threshold mode of the PRO curves.
    """

    def __init__(self, protocol: str = "full", eval_size: int | None = None, pro_thresholds: str = "exact") -> None:
        check_protocol(protocol, eval_size)
        self.protocol = protocol
        self.eval_size = eval_size
        self.metrics = AnomalyMetrics(pro_thresholds=pro_thresholds)
        # lowres also scores each original-resolution defect, binned by its original area, so that per-size
        # numbers of both protocols describe the same defects (see docs/metrics.md).
        self.original = AnomalyMetrics(pro_thresholds=pro_thresholds) if protocol == "lowres" else None
        self.warnings: list[str] = []  # about the inputs; the engine adds its own
        self._defective: list[TestSample] = []

    def add(self, sample: TestSample, mask: np.ndarray | None, anomaly_map: np.ndarray,
            image_score: float | None, map_name: str | Path) -> None:
        """Add one checked map (see :func:`checked_mask`) and its image score (``None``: map maximum).

        Raises
        ------
        InputError
            Naming ``map_name``, for a map that cannot be scored (see :meth:`AnomalyMetrics.update`) or whose
            shape differs from the mask's (``lowres`` would resize both to one size and hide that).
        """
        # Before lowres resizes both to one size. The values are checked where they are used: by the
        # engine (full) or before resizing (lowres).
        check_mask_shape(anomaly_map, mask, map_name)
        if image_score is None:
            values = np.asarray(anomaly_map)
            if values.ndim != 2 or values.size == 0 or values.dtype.kind not in "uif":
                checked_scores(values, map_name)  # no maximum to take: the engine's InputError, not numpy's
            image_score = float(values.max())  # MVTec's rule, at the original resolution
        if sample.label == 1:
            self._defective.append(sample)
            warning = mask_warning(sample, 0 if mask is None else int(np.count_nonzero(mask)), anomaly_map.size)
            if warning:
                self.warnings.append(warning)
        if self.original is not None:
            assert self.eval_size is not None
            labels, areas = original_defects_at(mask, self.eval_size)
            # The resized mask is the resized label image's support: one resize serves both readings.
            anomaly_map, _ = to_eval_resolution(anomaly_map, None, self.eval_size, map_name)
            mask = None if labels is None else labels > 0
            self.original.update(
                anomaly_map, labels, image_score, label=sample.label, name=map_name, defect_sizes=areas
            )
        self.metrics.update(anomaly_map, mask, image_score, label=sample.label, name=map_name)

    def compute(self) -> dict[str, Any]:
        """``{"metrics": ..., "warnings": ..., "protocol": ...}`` of everything added."""
        out = self.metrics.compute()
        lossy = lossy_masks_warning(self._defective)
        out["warnings"] = self.warnings + ([lossy] if lossy else []) + out["warnings"]
        if self.original is not None:
            tracked = self.original.compute()["metrics"]
            out["metrics"]["original_defects"] = {key: tracked[key] for key in ORIGINAL_DEFECT_KEYS}
        out["protocol"] = protocol_record(self.protocol, self.eval_size, self.metrics.pro_thresholds,
                                          self.metrics.fpr_limits)
        return out


def image_path_aliases(dataset: Dataset, category: str, samples: Sequence[TestSample]) -> dict[str, str]:
    """``{image path inside the category folder, without extension: sample id}`` where the two differ (VisA's
    ``Data/Images/Anomaly/000`` for ``test/bad/000``): ``image_scores.csv`` rows may name an image either way."""
    folder = Path(dataset.root) / category
    aliases = {}
    for sample in samples:
        try:
            inside = Path(sample.image_path).relative_to(folder).with_suffix("").as_posix()
        except ValueError:  # an image outside the category folder has no such spelling
            continue
        if inside != sample.sample_id:
            aliases[inside] = sample.sample_id
    return aliases


def score_category(
    maps_dir: str | Path,
    dataset: Dataset,
    category: str,
    pro_thresholds: str = "exact",
    protocol: str = "full",
    eval_size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the maps of one category; return ``{"metrics": ..., "warnings": ..., "protocol": ...}``.

    ``progress`` shows a progress bar on stderr (the command line asks for one on a terminal only).
    """
    scorer = ProtocolScorer(protocol, eval_size, pro_thresholds)
    maps_dir = Path(maps_dir)
    check_input_folder(maps_dir, "maps folder")
    check_category(dataset, category)
    check_maps_complete(maps_dir, category)
    samples = dataset.test_samples(category)
    sample_ids = {sample.sample_id for sample in samples}
    notes: list[str] = []  # warnings about the inputs found before scoring
    scores_file = find_image_scores(maps_dir, category, notes)
    # Each input's identity before it is read: a file a run replaces meanwhile is noticed (see below).
    read_files = {} if scores_file is None else {scores_file: _file_identity(scores_file)}
    image_scores = (read_image_scores(scores_file, category, sample_ids, image_path_aliases(dataset, category, samples))
                    if scores_file else None)
    extra_rows = sorted(set(image_scores or ()) - sample_ids)  # often misnamed rows: named in errors and warnings
    # leave=False: the bar erases itself, so an error that follows is still a single line.
    for sample in progress_bar(samples, show=progress, desc=f"score {category}", unit="img", leave=False):
        path = find_map(maps_dir, category, sample.sample_id)
        score = None
        if image_scores is not None:
            if sample.sample_id not in image_scores:
                hint = (f"; {len(extra_rows)} row(s) match no test image, e.g. {extra_rows[0]!r}: a row's path is "
                        "the sample id, the map's path without extension, or the image's path in the dataset"
                        if extra_rows else "")
                raise InputError(f"no score for {sample.sample_id}{hint}", scores_file)
            score = image_scores[sample.sample_id]
        expected = image_size(sample.image_path)
        mask = checked_mask(sample, None, path, expected)
        if (declared := map_header_shape(path)) is not None:  # a map of another size: refused before decoding it
            check_map_shape(declared, expected, sample.image_path, path)
        read_files[path] = _file_identity(path)
        anomaly_map = read_map(path)
        check_map_size(anomaly_map, expected, sample.image_path, path)
        scorer.add(sample, mask, anomaly_map, score, path)
    check_unchanged(maps_dir, category, read_files)
    result = scorer.compute()
    result["warnings"] = notes + result["warnings"]
    result["warnings"] += listing_warnings(dataset, category, samples)
    # Extra maps or score rows are ignored, but they often mean misnamed files: say so.
    extra_maps = unmatched_maps(maps_dir, category, sample_ids)
    if extra_maps:
        result["warnings"].append(f"{len(extra_maps)} map file(s) match no test image and were ignored, "
                                  f"e.g. {extra_maps[0]}")
    if extra_rows:
        result["warnings"].append(f"{scores_file}: {len(extra_rows)} row(s) match no test image and were "
                                  f"ignored, e.g. {extra_rows[0]!r}")
    return result


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """What tells a file apart from the one that replaces it: inode, size and modification time (``None``: gone)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def check_unchanged(maps_dir: Path, category: str, read_files: dict[Path, tuple[int, int, int] | None]) -> None:
    """Refuse a category whose maps changed while they were read: an ``adbench-hr run`` that began rewriting
    them after :func:`~adbench_hr.maps.check_maps_complete` passed (``score`` of a run's own maps while the run
    is resumed with other settings).

    Such a result would mix maps of two runs and match neither, without any sign of it. Every map is replaced
    atomically (a new inode), so comparing each file's identity from before it was read with its identity now
    catches a replacement however far the run got; a run that has marked the folder but replaced nothing yet
    is caught by its mark.

    Raises
    ------
    InputError
        Naming the folder being rewritten, or the first file that changed.
    """
    check_maps_complete(maps_dir, category)
    for path, identity in read_files.items():
        if _file_identity(path) != identity:
            raise InputError(
                "changed while the maps were being scored (is an `adbench-hr run` rewriting them?): the result "
                "would mix two sets of maps; score again once that run has finished", path
            )


def format_summary(result: dict[str, Any]) -> str:
    """A short human-readable table of the headline metrics of a result."""
    m = result["metrics"]

    def fmt(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{result['method']} | {result['dataset']} | {result['category']} | protocol {result['protocol']['name']}",
        f"  I-AUROC {fmt(m['i_auroc'])}   P-AUROC {fmt(m['p_auroc'])}   "
        f"images {m['n_images']} (defective {m['n_defective_images']}), defects {m['n_defects']}",
        "  limit   AUPRO   Q1(cum)  Q4(cum)  rho",
    ]
    for key in m["aupro"]:
        lines.append(
            f"  {key:<6} {fmt(m['aupro'][key])}   {fmt(m['aupro_cumulative']['Q1'][key])}    "
            f"{fmt(m['aupro_cumulative']['Q4'][key])}   {fmt(m['rho'][key])}"
        )
    original = m.get("original_defects")
    if original:
        first = next(iter(original["aupro"]))
        lines.append(
            f"  original defects: {original['n_defects']} scored, {original['n_lost_defects']} lost; "
            f"AUPRO@{first} {fmt(original['aupro'][first])}, rho@{first} {fmt(original['rho'][first])}"
        )
    return "\n".join(lines)
