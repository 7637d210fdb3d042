"""Benchmark: ``adbench-hr score`` end to end, on a category it writes into a temporary folder.

An MVTec-layout category (``mvtec_ad`` reader) of ``--images`` test images of ``--width`` x ``--height``, a
share of them defective, every other image a JPEG (quality 95) and the others PNG, textured like photographs
(not random noise, which compresses unlike them); PNG masks with 1-5 defects each, from 2 px specks to
200 px stains; smooth anomaly maps that respond to the defects, written as float32 TIFF, 8-bit PNG or NPY.

Each format and protocol is scored ``--repeat`` times as a fresh ``python -m adbench_hr score`` process
(wall time, Python's start included; median reported). One more run in this process times the phases:
the wall time spent in each function that ``score_category`` calls (the metrics engine's ``compute`` among
them), summed over the images.

Run: ``python bench/score_end_to_end.py [--images 100] [--defective 60] [--width 1500] [--height 1000]
[--formats tiff,png,npy] [--protocols full,lowres] [--eval-size 256] [--repeat 3] [--out FILE.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import tifffile

CATEGORY = "widget"
MAP_FORMATS = ("tiff", "png", "npy")


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photograph-like RGB image: smooth structure plus sensor noise."""
    coarse = rng.normal(size=(max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 40 + 128
    image += rng.normal(scale=6, size=(height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 6))):
        side = min(int(np.exp(rng.uniform(np.log(2), np.log(200)))), min(height, width) // 2)
        y, x = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
        if rng.random() < 0.5:
            mask[y : y + side, x : x + side] = 255
        else:
            cv2.ellipse(mask, (x + side // 2, y + side // 2), (max(1, side // 2), max(1, side // 4)),
                        float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return mask


def _anomaly_map(rng: np.random.Generator, mask: np.ndarray | None, height: int, width: int) -> np.ndarray:
    noise = rng.normal(size=(max(2, height // 16), max(2, width // 16))).astype(np.float32)
    anomaly_map = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * 0.1 + 0.2
    anomaly_map += rng.normal(scale=0.02, size=(height, width)).astype(np.float32)
    if mask is not None:
        anomaly_map += cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), 2.0) * rng.uniform(0.05, 0.5)
    return anomaly_map.astype(np.float32)


def _imwrite(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """``cv2.imwrite``, which returns ``False`` (no exception) when it writes nothing."""
    if not cv2.imwrite(str(path), image, list(params)):
        raise RuntimeError(f"OpenCV wrote no {path}")


def make_inputs(folder: Path, images: int, defective: int, height: int, width: int, formats: Iterable[str],
                seed: int = 0) -> None:
    """``folder/data/<category>`` (dataset) and ``folder/maps_<format>/<category>`` for each map format."""
    rng = np.random.default_rng(seed)
    data = folder / "data" / CATEGORY
    (data / "train" / "good").mkdir(parents=True)
    for i in range(images):
        label = "crack" if i < defective else "good"
        stem = f"{i:03d}"
        image = _texture(rng, height, width)
        suffix = ".jpg" if i % 2 else ".png"
        (data / "test" / label).mkdir(parents=True, exist_ok=True)
        quality = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []  # OpenCV warns of it for a PNG
        _imwrite(data / "test" / label / f"{stem}{suffix}", image, quality)
        mask = None
        if label != "good":
            mask = _mask(rng, height, width)
            (data / "ground_truth" / label).mkdir(parents=True, exist_ok=True)
            _imwrite(data / "ground_truth" / label / f"{stem}_mask.png", mask)
        anomaly_map = _anomaly_map(rng, mask, height, width)
        for fmt in formats:
            path = folder / f"maps_{fmt}" / CATEGORY / "test" / label / f"{stem}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "tiff":
                tifffile.imwrite(path, anomaly_map)
            elif fmt == "npy":
                np.save(path, anomaly_map)
            else:
                _imwrite(path, np.clip(anomaly_map * 255, 0, 255).astype(np.uint8))
    _imwrite(data / "train" / "good" / "000.png", _texture(rng, height, width))


def _score_args(folder: Path, fmt: str, protocol: str, eval_size: int, out: Path) -> list[str]:
    args = ["score", "--maps", str(folder / f"maps_{fmt}"), "--root", str(folder / "data"), "--category", CATEGORY,
            "--dataset", "mvtec_ad", "--out", str(out), "--quiet", "--protocol", protocol]
    return [*args, "--eval-size", str(eval_size)] if protocol == "lowres" else args


def time_cli(args: list[str]) -> float:
    """Wall time of one ``python -m adbench_hr`` process."""
    start = time.perf_counter()
    import adbench_hr  # the checkout this script imports (PYTHONPATH): the one the processes run

    root = str(Path(adbench_hr.__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-m", "adbench_hr", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": root})
    return time.perf_counter() - start


# Functions score_category calls (under the names it imports them by), and the engine's, timed per phase:
# (module, class or None): names.
PHASES = {
    ("adbench_hr.scoring", None): (
        "image_size", "checked_mask", "map_header_shape", "read_map", "find_map", "to_eval_resolution",
        "original_defects_at", "check_unchanged", "listing_warnings", "unmatched_maps", "lossy_masks_warning",
        "read_image_scores",
    ),
    ("adbench_hr.scoring", "ProtocolScorer"): ("add", "compute"),
    ("adbench_hr.metrics.accumulator", None): ("label_defects",),
    ("adbench_hr.metrics.accumulator", "AnomalyMetrics"): ("update",),
    ("adbench_hr.cli.score_cmd", None): ("write_result", "score_category"),
}


def time_phases(args: list[str]) -> dict[str, list]:
    """``{phase: [seconds, calls]}`` of one run in this process. Phases nest (``ProtocolScorer.add`` holds
    ``AnomalyMetrics.update``, which holds ``label_defects`` in the full protocol)."""
    import importlib

    from adbench_hr.cli.main import main

    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    restore = []

    def timed(function, name):
        @functools.wraps(function)
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                seconds[name] += time.perf_counter() - start
                calls[name] += 1
        return wrapper

    for (module_name, class_name), names in PHASES.items():
        owner = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
        for name in names:
            if hasattr(owner, name):
                original = getattr(owner, name)
                restore.append((owner, name, original))
                setattr(owner, name, timed(original, f"{class_name}.{name}" if class_name else name))
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the summary table: this script prints JSON
            code = main(args)
        if code != 0:
            raise RuntimeError(f"adbench-hr {' '.join(args)} exited with code {code}")
        seconds["total"] = time.perf_counter() - start
        calls["total"] = 1
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)
    return {name: [round(seconds[name], 3), calls[name]] for name in sorted(seconds, key=lambda n: -seconds[n])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--defective", type=int, default=60)
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--formats", default="tiff,png,npy", help="map formats, of tiff, png, npy")
    parser.add_argument("--protocols", default="full,lowres")
    parser.add_argument("--eval-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process run that times phases")
    parser.add_argument("--keep", type=Path, default=None, help="write the inputs here (kept) instead of a temp dir")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    protocols = [p for p in args.protocols.split(",") if p]
    if not set(formats) <= set(MAP_FORMATS) or not set(protocols) <= {"full", "lowres"}:
        parser.error(f"formats among {MAP_FORMATS}, protocols among full, lowres")
    if not 0 <= args.defective <= args.images:
        parser.error("--defective must lie in 0..--images")

    with tempfile.TemporaryDirectory(prefix="score_bench_") as temp:
        folder = args.keep or Path(temp)
        start = time.perf_counter()
        make_inputs(folder, args.images, args.defective, args.height, args.width, formats)
        report: dict = {
            "images": args.images, "defective": args.defective, "width": args.width, "height": args.height,
            "eval_size": args.eval_size, "repeat": args.repeat, "inputs_s": round(time.perf_counter() - start, 1),
            "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "runs": {},
        }
        for fmt in formats:
            for protocol in protocols:
                out = folder / f"result_{fmt}_{protocol}.json"
                score_args = _score_args(folder, fmt, protocol, args.eval_size, out)
                walls = [time_cli(score_args) for _ in range(args.repeat)]
                run = {"wall_s": [round(w, 3) for w in walls], "median_s": round(statistics.median(walls), 3)}
                if not args.no_phases:
                    run["phases_s_calls"] = time_phases(score_args)
                report["runs"][f"{fmt}/{protocol}"] = run
                result = json.loads(out.read_text(encoding="utf-8"))
                metrics = result["metrics"]
                run["metrics"] = {"i_auroc": metrics["i_auroc"], "aupro_0.3": metrics["aupro"]["0.3"],
                                  "n_defects": metrics["n_defects"]}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
