"""Benchmark: the metrics engine against the classic exact AUPRO algorithm.

The reference is the algorithm of MVTec's evaluation code (and anomalib >= 2.3): flatten every pixel
of the category, one global argsort, cumulative sums of per-pixel FPR and PRO increments in float64.
It computes the all-defects AUPRO only; the engine computes every metric (all size bins, all limits,
both AUROCs). Time and peak memory (tracemalloc, which sees numpy's allocations) exclude building the
inputs, which both sides share.

Run: ``python bench/metrics_engine.py [--images 60] [--size 1024] [--out bench/out/metrics.json]``
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from scipy.integrate import trapezoid

from adbench_hr.metrics import AnomalyMetrics, label_defects

T = TypeVar("T")


def make_category(n_images: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Maps and masks of a category: defects from 2x2 px specks to 200x200 px stains, smooth maps."""
    rng = np.random.default_rng(seed)
    maps: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    for i in range(n_images):
        noise = rng.normal(size=(size // 16, size // 16)).astype(np.float32)
        anomaly_map = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC) * 0.1 + 0.2
        anomaly_map += rng.normal(scale=0.02, size=(size, size)).astype(np.float32)
        mask = np.zeros((size, size), np.uint8)
        if i % 3 != 0:  # a third of the images are good
            for _ in range(rng.integers(1, 6)):
                side = int(np.exp(rng.uniform(np.log(2), np.log(200))))
                y, x = rng.integers(0, size - side, size=2)
                if rng.random() < 0.5:
                    mask[y : y + side, x : x + side] = 1
                else:
                    cv2.circle(mask, (int(x) + side // 2, int(y) + side // 2), max(1, side // 2), 1, -1)
            defect = mask > 0
            # Detection strength varies; defect borders blur into the background.
            boost = cv2.GaussianBlur(defect.astype(np.float32), (0, 0), 2.0) * rng.uniform(0.05, 0.5)
            anomaly_map += boost
        maps.append(anomaly_map.astype(np.float32))
        masks.append(mask > 0 if mask.any() else None)
    return maps, masks


def reference_aupro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None], limit: float = 0.3) -> float:
    """Classic exact AUPRO: one global argsort of every pixel, float64 cumulative sums."""
    scores = np.concatenate([m.ravel() for m in maps])
    fp_changes = np.zeros(scores.size, np.float64)
    pro_changes = np.zeros(scores.size, np.float64)
    offset, n_normal, component_areas, pixel_components = 0, 0, [], []
    for m, g in zip(maps, masks, strict=True):
        g = np.zeros(m.shape, bool) if g is None else g
        labels, areas = label_defects(g)
        flat = labels.ravel()
        fp_changes[offset : offset + flat.size] = flat == 0
        n_normal += int((flat == 0).sum())
        idx = np.flatnonzero(flat)
        pixel_components.append((offset + idx, flat[idx] - 1 + len(component_areas)))
        component_areas += areas.tolist()
        offset += flat.size
    areas = np.array(component_areas, np.float64)
    for idx, comp in pixel_components:
        pro_changes[idx] = 1.0 / (areas[comp] * areas.size)
    fp_changes /= n_normal
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    fprs = np.cumsum(fp_changes[order])
    pros = np.cumsum(pro_changes[order])
    keep = np.append(np.diff(sorted_scores) != 0, True)
    fprs = np.concatenate([[0.0], fprs[keep]])
    pros = np.concatenate([[0.0], pros[keep]])
    i = int(np.searchsorted(fprs, limit, side="right")) - 1
    area = trapezoid(pros[: i + 1], fprs[: i + 1])  # scipy's: np.trapezoid needs numpy >= 2
    if fprs[i] < limit:
        y = pros[i] + (pros[i + 1] - pros[i]) * (limit - fprs[i]) / (fprs[i + 1] - fprs[i])
        area += (limit - fprs[i]) * (pros[i] + y) / 2
    return float(area / limit)


def engine_all_metrics(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> dict[str, Any]:
    engine = AnomalyMetrics()
    for m, g in zip(maps, masks, strict=True):
        engine.update(m, g)
    return engine.compute()["metrics"]


def measure(function: Callable[..., T], *args: Any) -> tuple[T, float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    maps, masks = make_category(args.images, args.size)
    metrics, engine_s, engine_mb = measure(engine_all_metrics, maps, masks)
    reference, reference_s, reference_mb = measure(reference_aupro, maps, masks)
    difference = abs(metrics["aupro"]["0.3"] - reference)
    report = {
        "images": args.images,
        "size": args.size,
        "pixels": int(sum(m.size for m in maps)),
        "n_defects": metrics["n_defects"],
        "reference_aupro_s": round(reference_s, 3),
        "reference_peak_mib": round(reference_mb, 1),
        "engine_all_metrics_s": round(engine_s, 3),
        "engine_peak_mib": round(engine_mb, 1),
        "time_ratio": round(engine_s / reference_s, 3),
        "memory_ratio": round(engine_mb / reference_mb, 3),
        "aupro_0.3_abs_difference": difference,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if difference > 1e-9:
        raise SystemExit(f"engine and reference disagree: {difference}")


if __name__ == "__main__":
    main()
