"""Dataset readers. Use :func:`open_dataset` to get one by name."""

from __future__ import annotations

from pathlib import Path

from adbench_hr.datasets.base import GOOD, Dataset, TestSample, TrainSample, check_category
from adbench_hr.datasets.mvtec import MVTecLayoutDataset
from adbench_hr.errors import InputError

DATASET_NAMES = ("mvtec_ad", "folder")


def open_dataset(name: str, root: str | Path) -> Dataset:
    """Open the dataset ``name`` (``mvtec_ad`` or ``folder``) stored under ``root``."""
    if name in ("mvtec_ad", "folder"):
        return MVTecLayoutDataset(root, name=name)
    raise InputError(f"unknown dataset {name!r} (known: {', '.join(DATASET_NAMES)})")


__all__ = [
    "GOOD",
    "DATASET_NAMES",
    "Dataset",
    "MVTecLayoutDataset",
    "TestSample",
    "TrainSample",
    "check_category",
    "open_dataset",
]
