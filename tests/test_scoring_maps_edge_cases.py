"""Edge cases found by mutation testing of adbench_hr/scoring.py and adbench_hr/maps.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from adbench_hr.cli.main import main
from adbench_hr.errors import InputError
from adbench_hr.maps import read_image_scores, read_map, unmatched_maps
from adbench_hr.scoring import check_protocol


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def test_lowres_defective_image_whose_defect_vanishes_stays_defective_for_the_image_auroc(tmp_path):
    # A 512 px category: one good image (map 0) and one defective image (2 px pit, map = mask, max 1).
    # At 64 px the pit vanishes from the mask, but the image is still a defective test image (its folder):
    # I-AUROC over image scores {good: 0, defective: 1} = 1, with 1 defective image.
    root, maps = tmp_path / "data", tmp_path / "maps"
    image = np.zeros((512, 512, 3), np.uint8)
    for kind in ("train/good", "test/good", "test/pit"):
        _write_png(root / "plate" / kind / "000.png", image)
    mask = np.zeros((512, 512), np.uint8)
    mask[101, 101:103] = 255
    _write_png(root / "plate/ground_truth/pit/000_mask.png", mask)
    for kind, values in (("good", np.zeros((512, 512), np.float32)), ("pit", (mask > 0).astype(np.float32))):
        path = maps / "plate/test" / kind / "000.tiff"
        path.parent.mkdir(parents=True)
        tifffile.imwrite(path, values)
    out = tmp_path / "low.json"
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "plate", "--quiet",
                 "--out", str(out), "--protocol", "lowres", "--eval-size", "64"]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["n_defects"] == 0  # the pit is gone at 64 px ...
    assert metrics["n_defective_images"] == 1  # ... but the image is still defective
    assert metrics["i_auroc"] == 1.0


def test_unknown_protocol_is_refused():
    with pytest.raises(InputError, match="unknown protocol"):
        check_protocol("bogus", None)


def test_hidden_files_are_not_unmatched_maps(tmp_path):
    folder = tmp_path / "maps/widget/test/good"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "000.tiff", np.zeros((2, 2), np.float32))
    (folder / "._000.tiff").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble companion
    assert unmatched_maps(tmp_path / "maps", "widget", {"test/good/000"}) == []


@pytest.mark.parametrize("array", [np.zeros((3, 3), bool), np.full((3, 3), "0.5")])
def test_maps_of_non_numeric_dtypes_are_refused(tmp_path, array):
    # SPEC §2/§4: a float anomaly map (or 8/16-bit PNG); a boolean or text .npy is not a score map.
    path = tmp_path / "m.npy"
    np.save(path, array)
    with pytest.raises(InputError, match="unsupported dtype"):
        read_map(path)


def test_score_rows_with_a_dot_slash_prefix(tmp_path):
    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\n./test/good/000.tiff,0.25\n./widget/test/crack/001.png,0.75\n")
    scores = read_image_scores(path, "widget", {"test/good/000", "test/crack/001"})
    assert scores == {"test/good/000": 0.25, "test/crack/001": 0.75}


def test_an_unnamed_column_between_path_and_score_is_not_a_stray_value(tmp_path):
    # maps.read_image_scores: only unnamed columns *after* path and score must be blank.
    path = tmp_path / "image_scores.csv"
    path.write_text("path,,score\ntest/good/000.tiff,7,0.5\n")
    assert read_image_scores(path, "widget", {"test/good/000"}) == {"test/good/000": 0.5}
