"""Fixtures of the dataset tests: small MVTec- and VisA-layout folders (see ``dataset_builders``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_builders import build_mvtec, build_visa


@pytest.fixture()
def mvtec_root(tmp_path: Path) -> Path:
    """A fresh MVTec-layout dataset with the ``widget`` category (safe to modify)."""
    return build_mvtec(tmp_path / "mvtec")


@pytest.fixture()
def visa_root(tmp_path: Path) -> Path:
    """A fresh VisA-layout dataset with objects ``candle`` and ``pcb1`` (safe to modify)."""
    return build_visa(tmp_path / "visa")
