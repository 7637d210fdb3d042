"""Hand-built result files for the leaderboard tests.

The numbers are chosen so the expected tables can be computed by hand in the tests:

=======  ==========  ========  ==========  =======  ====================================
method   protocol    category  aupro@0.3   rho@0.3  area bins @0.3 (1-64 ... 16384-inf)
=======  ==========  ========  ==========  =======  ====================================
alpha    full        cat_a     0.8         0.5      0.2 0.4 0.6 0.8 0.9 1.0
alpha    full        cat_b     0.6         0.3      0.1 0.3 null null null null
beta     full        cat_a     0.9         0.6      0.3 0.5 0.7 0.9 0.9 1.0
beta     full        cat_b     0.7         null     0.2 0.4 null null null null
alpha    lowres@256  cat_a     0.7         0.2      0.0 0.1 0.5 0.8 0.9 1.0
alpha    lowres@256  cat_b     0.5         0.1      0.0 0.2 null null null null
=======  ==========  ========  ==========  =======  ====================================

Every limit-keyed metric holds ``x`` at 0.3 and ``x / 2``, ``x / 4``, ``x / 8`` at 0.1, 0.05, 0.01.
All results use exact PRO thresholds; lowres results are evaluated at 256 px unless ``eval_size`` says
otherwise.

The ``original_results_dir`` fixture holds the same files, but the two lowres results also carry
``metrics.original_defects`` (the full-resolution defects followed to 256 px, binned by original area):

========  ============  ====================================  ==================  ===============
category  orig aupro    orig area bins @0.3                   n_defects per bin   n_lost per bin
========  ============  ====================================  ==================  ===============
cat_a     0.75          0.1 0.4 0.6 0.8 0.9 1.0               2 2 2 1 1 1         1 0 0 0 0 0
cat_b     0.55          null 0.2 null null null null          0 1 0 0 0 0         4 0 0 0 0 0
========  ============  ====================================  ==================  ===============

so a bin's present plus lost defects equal the full result's ``n_defects`` of that bin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SCHEMA = "adbench-hr/result/v1"
LIMITS = ("0.3", "0.1", "0.05", "0.01")
BINS = ((1, 64), (64, 256), (256, 1024), (1024, 4096), (4096, 16384), (16384, None))
FULL_SIZES = (20.0, 150.5, 900.0)  # size_quartiles_px of a result (and of original_defects) unless given


def by_limit(value: float | None) -> dict[str, float | None]:
    """``{"0.3": x, "0.1": x/2, "0.05": x/4, "0.01": x/8}`` (all null when ``value`` is null)."""
    if value is None:
        return dict.fromkeys(LIMITS)
    return {limit: value / 2**i for i, limit in enumerate(LIMITS)}


def original_defects(
    *,
    aupro: float | None = 0.75,
    rho: float | None = 0.4,
    cumulative: tuple[float | None, ...] = (0.3, 0.5, 0.6, 0.75),
    quartile: tuple[float | None, ...] = (0.3, 0.6, 0.7, 0.9),
    area: tuple[float | None, ...] = (0.1, 0.4, 0.6, 0.8, 0.9, 1.0),
    area_counts: tuple[int, ...] = (2, 2, 2, 1, 1, 1),
    area_lost: tuple[int, ...] = (1, 0, 0, 0, 0, 0),
    sizes: list[float] | None = None,
) -> dict[str, Any]:
    """A ``metrics.original_defects`` block: ``n_defects`` counts the defects with a pixel left. Its size
    quartiles default to those of :func:`make_result`'s full results: both are the quartiles of every
    original-resolution defect (lost ones too)."""
    return {
        "n_defects": sum(area_counts),
        "n_lost_defects": sum(area_lost),
        "aupro": by_limit(aupro),
        "aupro_cumulative": {f"Q{i + 1}": by_limit(v) for i, v in enumerate(cumulative)},
        "aupro_quartile": {f"Q{i + 1}": by_limit(v) for i, v in enumerate(quartile)},
        "aupro_by_area": [
            {"min_px": lo, "max_px": hi, "n_defects": n, "aupro": by_limit(v if n else None), "n_lost": lost}
            for (lo, hi), v, n, lost in zip(BINS, area, area_counts, area_lost, strict=True)
        ],
        "rho": by_limit(rho),
        "size_quartiles_px": sizes if sizes is not None else list(FULL_SIZES),
    }


def make_result(
    method: str,
    category: str,
    *,
    protocol: str = "full",
    eval_size: int = 256,
    pro_thresholds: str = "exact",
    dataset: str = "synthetic",
    aupro: float | None = 0.8,
    rho: float | None = 0.5,
    cumulative: tuple[float | None, ...] = (0.4, 0.5, 0.6, 0.8),
    quartile: tuple[float | None, ...] = (0.4, 0.6, 0.7, 0.9),
    area: tuple[float | None, ...] = (0.2, 0.4, 0.6, 0.8, 0.9, 1.0),
    area_counts: tuple[int, ...] = (3, 2, 2, 1, 1, 1),
    i_auroc: float | None = 0.95,
    p_auroc: float | None = 0.97,
    sizes: list[float] | None = None,
    n_images: int = 10,
    pretrained: bool | None = True,
    timing: dict[str, float] | None = None,
    pro_curves: bool = True,
    maps_dir: str | None = None,
    dataset_root: str | None = None,
    original: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A result dict in the ``adbench-hr/result/v1`` schema with the given headline numbers.

    ``eval_size`` is written only for the ``lowres`` protocol (``full`` has a null one); ``original``
    becomes ``metrics.original_defects`` (see :func:`original_defects`).
    """
    metrics: dict[str, Any] = {
        "i_auroc": i_auroc,
        "p_auroc": p_auroc,
        "aupro": by_limit(aupro),
        "aupro_cumulative": {f"Q{i + 1}": by_limit(v) for i, v in enumerate(cumulative)},
        "aupro_quartile": {f"Q{i + 1}": by_limit(v) for i, v in enumerate(quartile)},
        "aupro_by_area": [
            {"min_px": lo, "max_px": hi, "n_defects": n, "aupro": by_limit(v if n else None)}  # empty bin: null
            for (lo, hi), v, n in zip(BINS, area, area_counts, strict=True)
        ],
        "rho": by_limit(rho),
        "size_quartiles_px": sizes if sizes is not None else list(FULL_SIZES),
        "n_images": n_images,
        "n_defective_images": n_images // 2,
        "n_defects": sum(area_counts),
    }
    if original is not None:
        metrics["original_defects"] = original
    if pro_curves:
        fpr = np.linspace(0.0, 1.0, 51)
        metrics["pro_curves"] = {"fpr_limit": 0.3, "all": {"fpr": fpr.tolist(), "pro": np.sqrt(fpr).tolist()}}
        for i in range(4):
            metrics["pro_curves"][f"Q{i + 1}"] = {"fpr": fpr.tolist(), "pro": (fpr ** (1.0 / (i + 1))).tolist()}
    result = {
        "schema": SCHEMA,
        "method": method,
        "dataset": dataset,
        "category": category,
        "protocol": {
            "name": protocol,
            "eval_size": eval_size if protocol == "lowres" else None,
            "pro_thresholds": pro_thresholds,
            "fpr_limits": [float(x) for x in LIMITS],
            "connectivity": 8,
        },
        "pretrained_backbone": pretrained,
        "metrics": metrics,
        "maps_dir": maps_dir,
        "dataset_root": dataset_root,
        "seed": 0,
        "method_options": {},
        "device": "cpu",
        "versions": {"adbench_hr": "0.1.0"},
        "created": "2025-01-01T00:00:00",
    }
    if timing is not None:
        result["timing"] = timing
    return result


NULL_BINS = (None, None, None, None)
STANDARD_SPECS: dict[str, dict[str, Any]] = {
    "alpha_full_cat_a": dict(method="alpha", category="cat_a", aupro=0.8, rho=0.5,
                             area=(0.2, 0.4, 0.6, 0.8, 0.9, 1.0),
                             timing={"fit_s": 10.0, "predict_ms_per_image": 50.0, "peak_host_memory_mb": 900.0}),
    "alpha_full_cat_b": dict(method="alpha", category="cat_b", aupro=0.6, rho=0.3, area=(0.1, 0.3, *NULL_BINS),
                             area_counts=(4, 1, 0, 0, 0, 0), i_auroc=0.85,
                             timing={"fit_s": 20.0, "predict_ms_per_image": 70.0, "peak_host_memory_mb": 1100.0}),
    "beta_full_cat_a": dict(method="beta", category="cat_a", aupro=0.9, rho=0.6,
                            area=(0.3, 0.5, 0.7, 0.9, 0.9, 1.0), pretrained=False),
    "beta_full_cat_b": dict(method="beta", category="cat_b", aupro=0.7, rho=None, area=(0.2, 0.4, *NULL_BINS),
                            area_counts=(4, 1, 0, 0, 0, 0), p_auroc=None, pretrained=False),
    # The resized masks' defects are smaller than the original ones: other quartiles.
    "alpha_lowres_cat_a": dict(method="alpha", category="cat_a", protocol="lowres", aupro=0.7, rho=0.2,
                               area=(0.0, 0.1, 0.5, 0.8, 0.9, 1.0), sizes=[2.0, 10.0, 56.0]),
    "alpha_lowres_cat_b": dict(method="alpha", category="cat_b", protocol="lowres", aupro=0.5, rho=0.1,
                               area=(0.0, 0.2, *NULL_BINS), area_counts=(4, 1, 0, 0, 0, 0), sizes=[2.0, 10.0, 56.0]),
}


#: ``original_defects`` of the standard lowres results in ``original_results_dir`` (see the table above).
ORIGINAL_SPECS: dict[str, dict[str, Any]] = {
    "alpha_lowres_cat_a": dict(aupro=0.75),
    "alpha_lowres_cat_b": dict(aupro=0.55, area=(None, 0.2, *NULL_BINS), area_counts=(0, 1, 0, 0, 0, 0),
                               area_lost=(4, 0, 0, 0, 0, 0)),
}


def write_result(path: Path, result: dict[str, Any]) -> Path:
    """Write ``result`` as JSON to ``path`` (creating folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A folder with the six standard result files (nested, plus unrelated JSON that must be ignored)."""
    root = tmp_path / "results"
    for name, spec in STANDARD_SPECS.items():
        write_result(root / spec.get("protocol", "full") / f"{name}.json", make_result(**spec))
    write_result(root / "full" / "config.json", {"lr": 0.1})
    write_result(root / "notes.json", [1, 2, 3])
    return root


@pytest.fixture
def original_results_dir(tmp_path: Path) -> Path:
    """The six standard result files, the lowres ones with ``metrics.original_defects``."""
    root = tmp_path / "original_results"
    for name, spec in STANDARD_SPECS.items():
        block = original_defects(**ORIGINAL_SPECS[name]) if name in ORIGINAL_SPECS else None
        write_result(root / f"{name}.json", make_result(**spec, original=block))
    return root


class _Helpers:
    """Access to the builders from test modules (conftest is not importable by name)."""

    make_result = staticmethod(make_result)
    original_defects = staticmethod(original_defects)
    write_result = staticmethod(write_result)
    by_limit = staticmethod(by_limit)
    specs = STANDARD_SPECS
    original_specs = ORIGINAL_SPECS


@pytest.fixture
def helpers() -> type[_Helpers]:
    """The result builders of this conftest."""
    return _Helpers
