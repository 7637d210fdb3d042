"""Defect-size bins and the size-robustness score (docs/metrics.md, "Size bins" and "Size robustness rho")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUARTILE_NAMES = ("Q1", "Q2", "Q3", "Q4")

#: Absolute area bins in pixels, ``[min_px, max_px)``; ``None`` means unbounded. Comparable across datasets.
AREA_BIN_EDGES_PX: tuple[tuple[int, int | None], ...] = (
    (1, 64),
    (64, 256),
    (256, 1024),
    (1024, 4096),
    (4096, 16384),
    (16384, None),
)


def area_label(min_px: float, max_px: float | None) -> str:
    """Label of an absolute area bin, e.g. ``"1-64"`` or ``"16384-inf"``."""
    return f"{format_px(min_px)}-{'inf' if max_px is None else format_px(max_px)}"


def format_px(value: float) -> str:
    """A pixel count or size as text: ``64``, not ``64.0``; ``12.5`` as it is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class SizeBin:
    """A named subset of the defects (connected components) of a category."""

    name: str
    members: np.ndarray  # boolean, one entry per defect


def size_quartiles(areas: np.ndarray) -> np.ndarray:
    """Quartiles ``(q25, q50, q75)`` of defect areas, numpy's default linear interpolation."""
    return np.quantile(np.asarray(areas, dtype=np.float64), [0.25, 0.5, 0.75])


def cumulative_bins(areas: np.ndarray, quartiles: np.ndarray) -> list[SizeBin]:
    """The paper's cumulative bins: Q1 = size <= q25, Q2 = size <= q50, Q3 = size <= q75, Q4 = all."""
    q25, q50, q75 = quartiles
    return [
        SizeBin("Q1", areas <= q25),
        SizeBin("Q2", areas <= q50),
        SizeBin("Q3", areas <= q75),
        SizeBin("Q4", np.ones(areas.shape, dtype=bool)),
    ]


def quartile_bins(areas: np.ndarray, quartiles: np.ndarray) -> list[SizeBin]:
    """Disjoint quartile bins ``(0, q25], (q25, q50], (q50, q75], (q75, inf)``."""
    edges = [0.0, *quartiles, np.inf]
    return [
        SizeBin(name, (areas > lo) & (areas <= hi))
        for name, lo, hi in zip(QUARTILE_NAMES, edges[:-1], edges[1:], strict=True)
    ]


def area_bins(areas: np.ndarray) -> list[SizeBin]:
    """Absolute area bins of :data:`AREA_BIN_EDGES_PX`."""
    bins = []
    for lo, hi in AREA_BIN_EDGES_PX:
        members = areas >= lo if hi is None else (areas >= lo) & (areas < hi)
        bins.append(SizeBin(f"{lo}-{'inf' if hi is None else hi}", members))
    return bins


def size_robustness(cumulative_aupro: dict[str, float | None]) -> float | None:
    """Size robustness rho of one FPR limit from the cumulative-bin AUPROs.

    ``rho = mean(AUPRO_Q1, ..., AUPRO_Q4) * min(AUPRO_Q1, AUPRO_Q4) / max(AUPRO_Q1, AUPRO_Q4)``

    The first factor rewards overall segmentation quality, the second penalises a gap between the
    smallest defects (Q1) and all defects (Q4). When both AUPRO_Q1 and AUPRO_Q4 are 0 the ratio is taken
    as 0 (nothing is found at either end). ``None`` if any bin is undefined.
    """
    values = [cumulative_aupro[name] for name in QUARTILE_NAMES]
    if any(v is None for v in values):
        return None
    q1, q4 = values[0], values[3]
    high = max(q1, q4)
    ratio = 0.0 if high == 0 else min(q1, q4) / high
    return float(np.mean(values) * ratio)
