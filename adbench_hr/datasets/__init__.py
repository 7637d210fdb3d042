"""Dataset readers. Use :func:`open_dataset` to get one by name.

Names: ``mvtec_ad`` (MVTec AD layout), ``folder`` (any dataset in that layout), ``visa`` (VisA's native
release layout with ``split_csv/1cls.csv``) and ``synthetic`` (the built-in size-ladder dataset, MVTec
layout; generated once into the cache when no root is given).
"""

from __future__ import annotations

from pathlib import Path

from adbench_hr.datasets.base import GOOD, Dataset, TestSample, TrainSample, check_category, is_visa_release
from adbench_hr.datasets.mvtec import MVTecLayoutDataset
from adbench_hr.datasets.synthetic import (
    check_synthetic_files,
    default_synthetic_root,
    generate_synthetic,
    generator_record,
    read_generator_meta,
)
from adbench_hr.datasets.validate import CategoryReport, check_masks, listing_warnings, validate_category
from adbench_hr.datasets.visa import VisADataset
from adbench_hr.errors import InputError
from adbench_hr.fileio import check_input_folder

DATASET_NAMES = ("mvtec_ad", "visa", "folder", "synthetic")


def open_dataset(name: str, root: str | Path | None = None, *, progress: bool = False) -> Dataset:
    """Open the dataset ``name`` stored under ``root``.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES`.
    root : str or Path, optional
        Dataset folder. Required except for ``synthetic``, where ``None`` means the default synthetic
        dataset in the cache (generated on first use, see :func:`default_synthetic_root`).
    progress : bool
        Show a progress bar on stderr while that default dataset is generated.

    Returns
    -------
    Dataset
        A lazy reader: listing samples touches no pixel data.

    Raises
    ------
    InputError
        Unknown name, missing root, or a root that is not a folder (for ``synthetic``: no folder; for ``visa``:
        one without ``split_csv/1cls.csv``); a generated ``synthetic`` dataset whose files differ from its
        ``meta.json`` (see :func:`check_synthetic_files`). A folder without categories opens (as ``mvtec_ad``,
        ``folder`` or ``synthetic``) with no categories: reading a category raises the error, naming what it
        found.
    """
    if name not in DATASET_NAMES:
        raise InputError(f"unknown dataset {name!r} (known: {', '.join(DATASET_NAMES)})")
    if root is None:
        if name != "synthetic":
            raise InputError(f"a dataset root is required for dataset {name!r} (--root)")
        root = default_synthetic_root(progress=progress)
    if name == "visa":
        return VisADataset(root, name=name)
    if name == "synthetic":
        if not Path(root).is_dir():
            if Path(root).exists() or Path(root).is_symlink():  # a file, an archive, a broken link: not "no dataset"
                check_input_folder(Path(root), "dataset root")
            raise InputError("no synthetic dataset here; create it with `adbench-hr datasets synth --out DIR`", root)
        check_synthetic_files(root)  # a damaged copy (a deleted image) must not silently shrink the benchmark
    return MVTecLayoutDataset(root, name=name)


def resolve_dataset(name: str | None, root: str | Path | None, *, progress: bool = False) -> Dataset:
    """Open a dataset whose layout may be left to guess, as the CLI's ``--dataset`` default does.

    ``name=None`` means ``synthetic`` without a root (the cached default dataset) and
    :func:`guess_dataset_name` with one; otherwise this is :func:`open_dataset`.
    """
    if name is None:
        name = "synthetic" if root is None else guess_dataset_name(root)
    return open_dataset(name, root, progress=progress)


def guess_dataset_name(root: str | Path) -> str:
    """Guess the layout of ``root``.

    Returns ``"visa"`` if it holds VisA's ``split_csv/1cls.csv``, ``"synthetic"`` if it holds the
    ``meta.json`` written by :func:`generate_synthetic`, else ``"mvtec_ad"``.
    """
    root = Path(root)
    if is_visa_release(root):
        return "visa"
    if read_generator_meta(root) is not None:
        return "synthetic"
    return "mvtec_ad"


__all__ = [
    "GOOD",
    "DATASET_NAMES",
    "CategoryReport",
    "Dataset",
    "MVTecLayoutDataset",
    "TestSample",
    "TrainSample",
    "VisADataset",
    "check_category",
    "check_masks",
    "default_synthetic_root",
    "generate_synthetic",
    "generator_record",
    "guess_dataset_name",
    "listing_warnings",
    "open_dataset",
    "resolve_dataset",
    "validate_category",
]
