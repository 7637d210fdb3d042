"""`adbench-hr leaderboard --n-smallest K --crop-px PX`: the qualitative panel of the K smallest defects.

docs/leaderboard.md: one row per defect (sample id and area on the left), columns image crop, ground-truth
crop and one per method; crops are `--crop-px` squares (default 96) around the defect centroid, the whole
image along an axis shorter than that; `--n-smallest` defaults to 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from adbench_hr import plots
from adbench_hr.cli.main import main

SIDE = 64  # images are 64 x 64 px
CATEGORY = "widget"

# Square defects of 1, 4, 9, 16, 25 and 36 px (k x k at (row, col)), two per defective image, far apart.
DEFECTS = {
    "crack/000": [(1, 5, 5), (3, 40, 40)],  # 1 px and 9 px
    "crack/001": [(2, 10, 50), (5, 45, 8)],  # 4 px and 25 px
    "dent/000": [(4, 30, 30), (6, 2, 50)],  # 16 px and 36 px
}


@pytest.fixture(scope="module")
def scored_result(tmp_path_factory) -> Path:
    """A `folder` dataset with the six defects above, random maps, and their result written by `score`."""
    base = tmp_path_factory.mktemp("panel")
    root, maps = base / "data", base / "maps"
    rng = np.random.default_rng(5)
    samples = {"good/000": None, **DEFECTS}
    for key, squares in samples.items():
        defect, stem = key.split("/")
        image_path = root / CATEGORY / "test" / defect / f"{stem}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(image_path), rng.integers(0, 255, (SIDE, SIDE, 3), np.uint8))
        if squares is not None:
            mask = np.zeros((SIDE, SIDE), np.uint8)
            for k, row, col in squares:
                mask[row:row + k, col:col + k] = 255
            mask_path = root / CATEGORY / "ground_truth" / defect / f"{stem}_mask.png"
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(mask_path), mask)
        map_path = maps / CATEGORY / "test" / defect / f"{stem}.tiff"
        map_path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(map_path, rng.random((SIDE, SIDE)).astype(np.float32))
    result = base / "results" / "alpha.json"
    assert main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--category", CATEGORY,
                 "--method", "alpha", "--out", str(result), "--quiet"]) == 0
    assert json.loads(result.read_text())["metrics"]["n_defects"] == 6
    return result


@pytest.fixture
def panels(monkeypatch) -> list:
    """Figures of the qualitative panel that the leaderboard saves (saved as usual, and kept)."""
    kept = []
    real_save = plots._save

    def save(figure, path):
        if Path(path).name == "qualitative_smallest_defects.png":
            kept.append(figure)
        return real_save(figure, path)

    monkeypatch.setattr(plots, "_save", save)
    return kept


def _rows_and_columns(figure) -> tuple[list, int]:
    """The panel's image axes grouped by row (top to bottom), and the number of columns."""
    image_axes = [axis for axis in figure.axes if axis.images]
    rows: dict[int, list] = {}
    for axis in image_axes:
        spec = axis.get_subplotspec()
        rows.setdefault(spec.rowspan.start, []).append(axis)
    columns = {axis.get_subplotspec().colspan.start for axis in image_axes}
    return [sorted(rows[r], key=lambda a: a.get_subplotspec().colspan.start) for r in sorted(rows)], len(columns)


@pytest.mark.parametrize(
    "options, areas, crop",
    [
        ([], [1, 4, 9, 16], SIDE),  # defaults: 4 defects; 96 px crops, so the whole 64 px image
        (["--n-smallest", "3", "--crop-px", "24"], [1, 4, 9], 24),
        (["--n-smallest", "1", "--crop-px", "16"], [1], 16),
        (["--n-smallest", "32"], [1, 4, 9, 16, 25, 36], SIDE),  # more than there are: all six
    ],
)
def test_panel_shows_the_k_smallest_defects_in_crops_of_crop_px(scored_result, tmp_path, panels, options, areas,
                                                                crop, capsys):
    out = tmp_path / "out"
    assert main(["leaderboard", str(scored_result), "--out", str(out), *options]) == 0
    assert "qualitative" not in capsys.readouterr().err  # drawn, not skipped
    assert (out / "qualitative_smallest_defects.png").is_file()
    (figure,) = panels
    rows, n_columns = _rows_and_columns(figure)
    assert len(rows) == len(areas) and n_columns == 3  # image, ground truth, alpha
    assert all(len(row) == 3 for row in rows)
    labels = [row[0].get_ylabel() for row in rows]
    assert [int(label.split()[-2]) for label in labels] == areas  # "<sample id> <area> px", smallest first
    assert labels[0].split()[0] == "test/crack/000"  # the 1 px defect
    for row in rows:
        for axis in row:
            assert axis.images[0].get_array().shape[:2] == (crop, crop)
    assert f"{len(areas)} smallest defects" in figure._suptitle.get_text()


@pytest.mark.parametrize("option, value", [("--n-smallest", "0"), ("--n-smallest", "33"), ("--crop-px", "15"),
                                           ("--crop-px", "1025")])
def test_out_of_range_values_are_one_line_errors(scored_result, tmp_path, option, value, capsys):
    assert main(["leaderboard", str(scored_result), "--out", str(tmp_path / "out"), option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and option in err[0] and value in err[0]
    assert not (tmp_path / "out").exists()
