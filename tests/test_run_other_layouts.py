"""`run` on the `mvtec_ad`, `folder` and `visa` layouts (tests/test_run_integration.py runs `synthetic`).

Each dataset holds the images and masks of the tiny synthetic fixture, rearranged into the layout that
docs/datasets.md describes; the run uses the tiny ts-mlp options. The layout only changes how files are
found, so each run must write one map per test image, score the same images and defects as the synthetic
run, and `score` of its written maps must reproduce its metrics.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from adbench_hr.cli.main import main

TINY_METHOD_OPTIONS = [
    "--preset", "fast", "--weights", "random", "--device", "cpu", "--seed", "3",
    "-o", "img_size=70", "-o", "layers=[2,4]", "-o", 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}',
    "-o", "epochs=2", "-o", "num_workers=0",
]
CATEGORIES = ("brushed_metal", "wood_grain")


def _run(root: Path, out: Path, *dataset: str) -> dict[str, dict]:
    assert main(["run", "--method", "ts-mlp", *dataset, "--root", str(root), "--out", str(out), "--quiet",
                 *TINY_METHOD_OPTIONS]) == 0
    (folder,) = (out / "ts-mlp").iterdir()  # OUT/<method>/<dataset>
    return {p.stem: json.loads(p.read_text()) for p in sorted((folder / "results").glob("*.json"))}


def _defects_of(masks: list[Path]) -> int:
    """8-connected components of the masks (SPEC section 2), counted independently of the package."""
    return sum(ndimage.label(cv2.imread(str(m), cv2.IMREAD_UNCHANGED) > 0, np.ones((3, 3)))[1] for m in masks)


def _mvtec_copy(source: Path, target: Path) -> Path:
    """The fixture as a plain MVTec AD folder: no generator's meta.json."""
    shutil.copytree(source, target)
    (target / "meta.json").unlink()
    return target


def _folder_copy(source: Path, target: Path) -> Path:
    """The fixture in the `folder` layout with other lossless formats: BMP training and good images, TIFF
    defective images, masks named `<stem>.png` instead of `<stem>_mask.png`."""
    _mvtec_copy(source, target)
    for png in sorted(target.rglob("*.png")):
        parts = png.relative_to(target).parts
        if parts[1] == "ground_truth":
            png.rename(png.with_name(png.name.replace("_mask.png", ".png")))
            continue
        array = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if parts[1] == "train" or parts[2] == "good":
            assert cv2.imwrite(str(png.with_suffix(".bmp")), array)
        else:
            tifffile.imwrite(png.with_suffix(".tiff"), array if array.ndim == 2 else array[..., ::-1])
        png.unlink()
    return target


def _visa_copy(source: Path, target: Path) -> Path:
    """The fixture in VisA's release layout: `split_csv/1cls.csv` listing `<object>/Data/Images/...` and masks."""
    rows = []

    def place(source_file: Path, relative: str) -> str:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source_file, destination)
        return relative

    for category in CATEGORIES:
        train = sorted((source / category / "train" / "good").glob("*.png"))
        good = sorted((source / category / "test" / "good").glob("*.png"))
        for i, image in enumerate(train + good):
            split = "train" if i < len(train) else "test"
            rows.append([category, split, "normal", place(image, f"{category}/Data/Images/Normal/{i:04d}.png"), ""])
        for image in sorted((source / category / "test").glob("*/*.png")):
            defect = image.parent.name
            if defect == "good":
                continue
            name = f"{defect}_{image.name}"
            mask = source / category / "ground_truth" / defect / f"{image.stem}_mask.png"
            rows.append([category, "test", "anomaly", place(image, f"{category}/Data/Images/Anomaly/{name}"),
                         place(mask, f"{category}/Data/Masks/Anomaly/{name}")])
    (target / "split_csv").mkdir(parents=True)
    with (target / "split_csv" / "1cls.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    return target


@pytest.fixture(scope="module")
def synthetic_results(tiny_synthetic_root, tmp_path_factory) -> dict[str, dict]:
    return _run(tiny_synthetic_root, tmp_path_factory.mktemp("synthetic-run"), "--dataset", "synthetic")


@pytest.mark.parametrize("layout, build, dataset_args, map_suffix", [
    ("mvtec_ad", _mvtec_copy, ["--dataset", "mvtec_ad"], None),
    ("folder", _folder_copy, ["--dataset", "folder"], None),
    ("visa", _visa_copy, [], "bad"),  # guessed from split_csv/1cls.csv (docs/cli.md)
])
def test_run_on_another_layout(tiny_synthetic_root, synthetic_results, tmp_path, capsys, layout, build,
                               dataset_args, map_suffix):
    root = build(tiny_synthetic_root, tmp_path / layout)
    out = tmp_path / "out"
    results = _run(root, out, *dataset_args)
    assert sorted(results) == list(CATEGORIES)
    for category, result in results.items():
        assert result["dataset"] == layout and result["category"] == category
        assert result["dataset_root"] == str(root.resolve())
        metrics = result["metrics"]
        masks = sorted((tiny_synthetic_root / category / "ground_truth").rglob("*_mask.png"))
        assert (metrics["n_images"], metrics["n_defective_images"]) == (6, 4) and len(masks) == 4
        assert metrics["n_defects"] == _defects_of(masks)
        assert result["n_train_images"] == 4
        # One map per test image, in MVTec's submission layout (VisA: test/good and test/bad).
        maps_dir = Path(result["maps_dir"])
        assert maps_dir == out / "ts-mlp" / layout / "maps"
        written = sorted(p.relative_to(maps_dir / category).parent.as_posix()
                         for p in (maps_dir / category).rglob("*.tiff"))
        assert len(written) == 6 and written.count("test/good") == 2
        if map_suffix:
            assert written.count(f"test/{map_suffix}") == 4
        # Re-scoring the written maps reproduces the run's metrics.
        rescored = tmp_path / f"{category}.json"
        assert main(["score", "--maps", str(maps_dir), "--root", str(root), *dataset_args, "--category", category,
                     "--method", "ts-mlp", "--out", str(rescored), "--quiet"]) == 0
        again = json.loads(rescored.read_text())
        assert again["dataset"] == layout and again["metrics"] == metrics
        # Same pixels, same seed: the numbers of the synthetic run of the same images (the MVTec-layout copies
        # list the samples in the same order, so bit for bit).
        reference = synthetic_results[category]["metrics"]
        if layout != "visa":
            assert metrics == reference
        for key in ("i_auroc", "p_auroc"):
            assert metrics[key] == pytest.approx(reference[key], rel=1e-9, abs=1e-12)
        assert metrics["aupro"] == pytest.approx(reference["aupro"], rel=1e-9, abs=1e-12)
    capsys.readouterr()
