"""Builders of small on-disk datasets (MVTec and VisA layouts) with hand-known contents.

``mvtec_root`` has one category, ``widget``, with everything a real-world folder may throw at a reader:
PNG, grayscale JPG, BMP and TIFF images, two image sizes within the category, and masks named both
``<stem>_mask.png`` and ``<stem>.png``. Its defects are designed so that the counts and area quartiles
can be computed by hand (see ``WIDGET_EXPECTED``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import tifffile

# Hand-computed expectations for the `widget` category of `mvtec_root`.
# Defect areas (8-connectivity): image 000 -> 4 (2x2 square), 10 (1x10 line), 2 (two diagonal pixels:
# one component with 8-connectivity, two with 4-connectivity); image 001 -> 30 (5x6), 100 (10x10);
# image 002 -> 7 (an L of 4 + 3 pixels). Sorted: 2, 4, 7, 10, 30, 100; numpy's linear quartiles at
# positions 1.25, 2.5, 3.75: q25 = 4 + 0.25*3 = 4.75, q50 = 7 + 0.5*3 = 8.5, q75 = 10 + 0.75*20 = 25.
WIDGET_EXPECTED = {
    "n_train": 3,
    "n_test_good": 2,
    "n_test_defective": 3,
    "n_defects": 6,
    "size_quartiles_px": [4.75, 8.5, 25.0],
}


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write an array as PNG/JPG/BMP via cv2 (RGB input for 3-channel arrays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array), path
    return path


def textured(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """A smooth random test image (uint8)."""
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return (96 + 64 * rng.random(shape)).astype(np.uint8)


def _widget_masks() -> dict[str, np.ndarray]:
    m0 = np.zeros((64, 80), np.uint8)
    m0[5:7, 5:7] = 255  # 2x2 = 4 px
    m0[20, 10:20] = 255  # 1x10 line = 10 px
    m0[40, 40] = 255  # diagonal pair = 2 px (one 8-connected defect)
    m0[41, 41] = 255
    m1 = np.zeros((50, 70), np.uint8)
    m1[2:7, 2:8] = 255  # 5x6 = 30 px
    m1[30:40, 50:60] = 255  # 10x10 = 100 px
    m2 = np.zeros((64, 80), np.uint8)
    m2[10:14, 30] = 255  # L shape: 4 + 3 = 7 px
    m2[13, 31:34] = 255
    return {"000": m0, "001": m1, "002": m2}


def build_mvtec(root: Path) -> Path:
    """Write the ``widget`` category (see module docstring) under ``root`` and return ``root``."""
    cat = root / "widget"
    write_png(cat / "train" / "good" / "000.png", textured(64, 80, 1))
    write_png(cat / "train" / "good" / "001.jpg", textured(64, 80, 2, channels=1))  # grayscale JPG
    write_png(cat / "train" / "good" / "002.bmp", textured(50, 70, 3))
    write_png(cat / "test" / "good" / "000.png", textured(64, 80, 4))
    write_png(cat / "test" / "good" / "001.jpg", textured(50, 70, 5, channels=1))
    masks = _widget_masks()
    write_png(cat / "test" / "scratch" / "000.png", textured(64, 80, 6))
    write_png(cat / "ground_truth" / "scratch" / "000_mask.png", masks["000"])
    # A TIFF image of a second size, its mask named <stem>.png (some datasets do this).
    tifffile.imwrite(cat / "test" / "scratch" / "001.tiff", textured(50, 70, 7))
    write_png(cat / "ground_truth" / "scratch" / "001.png", masks["001"])
    write_png(cat / "test" / "dent" / "002.png", textured(64, 80, 8))
    write_png(cat / "ground_truth" / "dent" / "002_mask.png", masks["002"])
    # Noise a real folder may contain, which the reader must ignore.
    (cat / "test" / "good" / "._000.png").write_bytes(b"\x00\x05\x16\x07")
    (cat / "test" / "good" / "notes.txt").write_text("not an image")
    return root


def build_visa(root: Path, *, extra_rows: list[dict[str, str]] | None = None) -> Path:
    """Write a two-object VisA release folder (JPG images, small-integer PNG masks, ``1cls.csv``).

    ``candle``: 3 train normal, 2 test normal, 2 test anomaly (masks with values 1 and 2, areas 12 and
    16+4). ``pcb1``: 2 train normal, 1 test normal, 1 test anomaly (mask value 1, 9 px).
    """
    rows: list[dict[str, str]] = []

    def add(obj: str, split: str, label: str, stem: str, shape: tuple[int, int], mask: np.ndarray | None) -> None:
        folder = "Normal" if label == "normal" else "Anomaly"
        image_rel = f"{obj}/Data/Images/{folder}/{stem}.JPG"
        write_png(root / image_rel, textured(*shape, seed=len(rows)))
        mask_rel = ""
        if mask is not None:
            mask_rel = f"{obj}/Data/Masks/Anomaly/{stem}.png"
            write_png(root / mask_rel, mask)
        rows.append({"object": obj, "split": split, "label": label, "image": image_rel, "mask": mask_rel})

    for i in range(3):
        add("candle", "train", "normal", f"{i:04d}", (48, 64), None)
    for i in range(3, 5):
        add("candle", "test", "normal", f"{i:04d}", (48, 64), None)
    m_a = np.zeros((48, 64), np.uint8)
    m_a[10:13, 10:14] = 1  # 12 px, value 1
    m_b = np.zeros((48, 64), np.uint8)
    m_b[20:24, 30:34] = 2  # 16 px, value 2
    m_b[40:42, 2:4] = 1  # 4 px
    add("candle", "test", "anomaly", "000", (48, 64), m_a)
    add("candle", "test", "anomaly", "001", (48, 64), m_b)
    for i in range(2):
        add("pcb1", "train", "normal", f"{i:04d}", (40, 56), None)
    add("pcb1", "test", "normal", "0002", (40, 56), None)
    m_c = np.zeros((40, 56), np.uint8)
    m_c[5:8, 5:8] = 1  # 9 px
    add("pcb1", "test", "anomaly", "000", (40, 56), m_c)
    rows += extra_rows or []
    write_csv(root, rows)
    return root


def write_csv(
    root: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = ("object", "split", "label", "image", "mask")
) -> Path:
    """Write ``ROOT/split_csv/1cls.csv``."""
    path = root / "split_csv" / "1cls.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
