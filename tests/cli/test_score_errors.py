"""`adbench-hr score` on bad input, end to end: README's "Scoring your own maps" and docs/cli.md.

"A wrong map size, NaN/inf values, a missing or corrupt file, a missing mask, a mask whose size differs from
its image's, two maps for one image or an unknown category stops with one line naming the file and exit
code 2; map files or image_scores.csv rows that match no test image are reported as warnings."

tests/test_scoring.py already covers, through the CLI: a map of another size, a NaN map, a missing map, a
garbage/empty TIFF or PNG map, two maps (.tiff beside .npy), a missing mask, a mask of another size (smaller),
a corrupt defective JPG image, an unknown category, and extra maps / score rows under MAPS/CATEGORY/. This file
adds the variants that were not run through the CLI: infinite values, truncated or corrupt .npy/.tiff maps,
maps of the wrong shape, other pairs of map files, corrupt masks (truncated, garbage, empty, bad checksum), a
larger mask, a corrupt good image, warnings for MAPS/image_scores.csv and unknown defect folders, and the
range of --eval-size of the lowres protocol (8 to 4096).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from adbench_hr.cli.main import main

SIZES = {"000": (40, 52), "001": (37, 41)}  # (H, W); sizes vary within the category
MASK = "widget/ground_truth/crack/001_mask.png"


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture()
def dataset(tmp_path):
    """``(root, maps, out)``: ROOT/widget with 2 good and 2 defective test images, their float32 maps, and
    the path of the result that `score` would write."""
    rng = np.random.default_rng(1)
    root, maps = tmp_path / "data", tmp_path / "maps"
    for stem, (h, w) in SIZES.items():
        _write_png(root / "widget/train/good" / f"{stem}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        _write_png(root / "widget/test/good" / f"{stem}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        _write_png(root / "widget/test/crack" / f"{stem}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        mask = np.zeros((h, w), np.uint8)
        mask[5:9, 6:20] = 255
        mask[30, 30] = 255
        _write_png(root / "widget/ground_truth/crack" / f"{stem}_mask.png", mask)
        for defect in ("good", "crack"):
            path = maps / "widget/test" / defect / f"{stem}.tiff"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, rng.random((h, w)).astype(np.float32))
    return root, maps, tmp_path / "result.json"


def score(root: Path, maps: Path, out: Path, *extra: str) -> int:
    return main(["score", "--maps", str(maps), "--root", str(root), "--category", "widget", "--dataset", "folder",
                 "--out", str(out), "--quiet", *extra])


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err
    return lines[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_checksum(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[data.find(b"IDAT") + 6] ^= 0xFF  # a byte of the compressed pixel data: its CRC no longer matches
    path.write_bytes(bytes(data))


def _replace_tiff_by_npy(maps: Path, values: np.ndarray) -> None:
    (maps / "widget/test/crack/000.tiff").unlink()
    np.save(maps / "widget/test/crack/000.npy", values)


def _with_inf(shape, value):
    array = np.zeros(shape, np.float64)
    array[3, 3] = value
    return array


# (what is damaged, how; the file the line must name, relative to tmp_path; words it must hold)
CASES = {
    "inf in a tiff map": (lambda root, maps: tifffile.imwrite(
        maps / "widget/test/good/000.tiff", _with_inf((40, 52), np.inf).astype(np.float32)),
        "maps/widget/test/good/000.tiff", ["inf"]),
    "-inf in an npy map": (lambda root, maps: _replace_tiff_by_npy(maps, _with_inf((40, 52), -np.inf)),
                           "maps/widget/test/crack/000.npy", ["inf"]),
    "truncated tiff map": (lambda root, maps: _truncate(maps / "widget/test/crack/000.tiff"),
                           "maps/widget/test/crack/000.tiff", ["corrupt"]),
    "garbage npy map": (lambda root, maps: (maps / "widget/test/crack/000.tiff").unlink()
                        or (maps / "widget/test/crack/000.npy").write_bytes(b"\x93NUMPYgarbage"),
                        "maps/widget/test/crack/000.npy", ["corrupt"]),
    "truncated npy map": (lambda root, maps: _replace_tiff_by_npy(maps, np.zeros((40, 52), np.float32))
                          or _truncate(maps / "widget/test/crack/000.npy"),
                          "maps/widget/test/crack/000.npy", ["corrupt"]),
    "transposed map (W x H)": (lambda root, maps: tifffile.imwrite(
        maps / "widget/test/crack/000.tiff", np.zeros((52, 40), np.float32)),
        "maps/widget/test/crack/000.tiff", ["52x40", "40x52", "original resolution"]),
    # As many pixels as its image: only the shape, not the size, tells it apart; no mask to compare it with.
    "good image's map transposed (W x H)": (lambda root, maps: tifffile.imwrite(
        maps / "widget/test/good/001.tiff", np.zeros((41, 37), np.float32)),
        "maps/widget/test/good/001.tiff", ["41x37", "37x41", "original resolution"]),
    "good image's map one column too narrow": (lambda root, maps: tifffile.imwrite(
        maps / "widget/test/good/000.tiff", np.zeros((40, 51), np.float32)),
        "maps/widget/test/good/000.tiff", ["40x51", "40x52", "original resolution"]),
    "three-channel map": (lambda root, maps: _replace_tiff_by_npy(maps, np.zeros((40, 52, 3), np.float32)),
                          "maps/widget/test/crack/000.npy", ["single-channel", "(40, 52, 3)"]),
    "a .png map beside the .tiff": (lambda root, maps: cv2.imwrite(
        str(maps / "widget/test/crack/000.png"), np.zeros((40, 52), np.uint16)),
        "maps/widget/test/crack/000", ["000.tiff", "000.png"]),
    "a .tif map beside the .tiff": (lambda root, maps: tifffile.imwrite(
        maps / "widget/test/good/001.tif", np.zeros((37, 41), np.float32)),
        "maps/widget/test/good/001", ["001.tiff", "001.tif"]),
    # Said as for images and masks, not "missing anomaly map".
    "map is a broken symbolic link": (lambda root, maps: (maps / "widget/test/crack/000.tiff").unlink()
                                      or (maps / "widget/test/crack/000.tiff").symlink_to(maps / "gone.tiff"),
                                      "maps/widget/test/crack/000.tiff", ["broken symbolic link (to ", "gone.tiff)"]),
    "map is a symbolic link to itself": (lambda root, maps: (maps / "widget/test/good/001.tiff").unlink()
                                         or (maps / "widget/test/good/001.tiff").symlink_to("001.tiff"),
                                         "maps/widget/test/good/001.tiff", ["broken symbolic link (to 001.tiff)"]),
    "a folder named like the map": (lambda root, maps: (maps / "widget/test/crack/001.tiff").unlink()
                                    or (maps / "widget/test/crack/001.tiff").mkdir(),
                                    "maps/widget/test/crack/001.tiff", ["a folder where an anomaly map file"]),
    # tifffile stores an (H, W, C) array as H pages of W x C.
    "two-channel tiff map": (lambda root, maps: tifffile.imwrite(
        maps / "widget/test/crack/000.tiff", np.zeros((40, 52, 2), np.float32)),
        "maps/widget/test/crack/000.tiff", ["40 pages", "an (H, W, C) array may have been saved as H pages"]),
    "truncated mask PNG": (lambda root, maps: _truncate(root / MASK), f"data/{MASK}", ["truncated PNG"]),
    "garbage mask": (lambda root, maps: (root / MASK).write_bytes(b"\x89PNG\r\n\x1a\ngarbage"), f"data/{MASK}", []),
    "empty mask file": (lambda root, maps: (root / MASK).write_bytes(b""), f"data/{MASK}", ["file is empty (0 bytes)"]),
    "mask PNG failing its checksum": (lambda root, maps: _bad_checksum(root / MASK), f"data/{MASK}",
                                      ["checksum of its 'IDAT' chunk"]),
    "mask larger than its image": (lambda root, maps: _write_png(root / MASK, np.zeros((50, 41), np.uint8)),
                                   f"data/{MASK}", ["widget/test/crack/001.png"]),
    "truncated good test image": (lambda root, maps: _truncate(root / "widget/test/good/000.png"),
                                  "data/widget/test/good/000.png", ["truncated PNG"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_stops_with_one_line_naming_the_file_and_exit_2(dataset, tmp_path, capsys, case):
    root, maps, out = dataset
    damage, named, words = CASES[case]
    damage(root, maps)
    assert score(root, maps, out) == 2
    line = one_error_line(capsys)
    assert str(tmp_path / named) in line
    for word in words:
        assert word in line
    assert not out.exists()


@pytest.mark.parametrize("name, problem", [
    ("absent", "maps folder not found"),
    ("maps.zip", "maps folder is an archive: extract it and pass the extracted folder"),
    ("maps.tar.gz", "maps folder is an archive: extract it and pass the extracted folder"),
    ("maps.txt", "maps folder is a file, not a folder"),
    ("dangling", "maps folder not found (a broken symbolic link to gone)"),
])
def test_a_maps_path_that_is_not_a_folder_says_what_it_is(dataset, tmp_path, capsys, name, problem):
    # Before: "maps folder not found" for a file that was there (an archive of the maps, not yet extracted).
    root, _, out = dataset
    maps = tmp_path / name
    if name == "dangling":
        maps.symlink_to("gone")
    elif name != "absent":
        maps.write_bytes(b"PK\x03\x04")
    assert score(root, maps, out) == 2
    assert one_error_line(capsys) == f"error: {maps}: {problem}"
    assert not out.exists()


def test_the_undamaged_fixture_scores(dataset, capsys):
    # The cases above fail because of their damage, not because of the fixture.
    root, maps, out = dataset
    assert score(root, maps, out) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["n_images"] == 4 and result["metrics"]["n_defects"] == 4
    assert "error" not in capsys.readouterr().err


# ---------------------------------------------------------------- --protocol lowres --eval-size N (8 .. 4096)
@pytest.mark.parametrize("extra", [
    ["--protocol", "lowres"],  # no default size: --eval-size is required with lowres
    ["--protocol", "lowres", "--eval-size", "7"],
    ["--protocol", "lowres", "--eval-size", "4097"],
    ["--protocol", "lowres", "--eval-size", "0"],
    ["--protocol", "lowres", "--eval-size", "-256"],
])
def test_lowres_eval_size_outside_8_to_4096_is_one_line_naming_the_range(dataset, capsys, extra):
    root, maps, out = dataset
    assert score(root, maps, out, *extra) == 2
    line = one_error_line(capsys)
    assert "--eval-size" in line and "8" in line and "4096" in line
    assert not out.exists()


def test_eval_size_with_the_full_protocol_is_refused(dataset, capsys):
    root, maps, out = dataset
    assert score(root, maps, out, "--eval-size", "64") == 2
    assert "--protocol lowres" in one_error_line(capsys)
    assert not out.exists()


def test_eval_size_8_is_the_smallest_accepted(dataset):
    root, maps, out = dataset
    assert score(root, maps, out, "--protocol", "lowres", "--eval-size", "8") == 0
    protocol = json.loads(out.read_text())["protocol"]
    assert protocol["name"] == "lowres" and protocol["eval_size"] == 8


# ---------------------------------------------------------------- warnings, not errors
def _scores_in_the_maps_root_file(maps: Path, extra: bool) -> str:
    rows = [f"widget/test/{d}/{s}.tiff,{i}" for i, (d, s) in enumerate(
        [(d, s) for d in ("good", "crack") for s in SIZES])]
    rows += ["widget/test/crack/777.tiff,9"] if extra else []
    (maps / "image_scores.csv").write_text("path,score\n" + "\n".join(rows) + "\n")
    return "'test/crack/777'"


def _map_in_an_unknown_defect_folder(maps: Path, extra: bool) -> str:
    path = maps / "widget/test/scratch/000.npy"
    if extra:
        path.parent.mkdir()
        np.save(path, np.zeros((3, 3), np.float32))
    return str(path)


@pytest.mark.parametrize("inputs", [_scores_in_the_maps_root_file, _map_in_an_unknown_defect_folder])
def test_inputs_matching_no_test_image_are_warnings_and_ignored(dataset, tmp_path, capsys, inputs):
    root, maps, out = dataset
    inputs(maps, extra=False)
    clean = tmp_path / "clean.json"
    assert score(root, maps, clean) == 0
    assert "warning" not in capsys.readouterr().err
    named = inputs(maps, extra=True)
    assert score(root, maps, out) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning: ") and named in line]
    assert len(warning) == 1 and "match no test image" in warning[0]
    result = json.loads(out.read_text())
    assert any(named in w for w in result["warnings"])
    assert result["metrics"] == json.loads(clean.read_text())["metrics"]  # the extra input changed nothing


def test_a_test_image_in_a_format_that_is_not_read_stops_score(dataset, capsys):
    # Before: the image was skipped and, with no defective image left, the result had null segmentation metrics.
    root, maps, out = dataset
    crack = root / "widget/test/crack"
    for stem in SIZES:
        assert cv2.imwrite(str(crack / f"{stem}.webp"), cv2.imread(str(crack / f"{stem}.png")))
        (crack / f"{stem}.png").unlink()
    assert score(root, maps, out) == 2
    line = one_error_line(capsys)
    expected = "image format .webp is not read (PNG, JPEG, BMP or TIFF are); convert it"
    assert line == f"error: {crack / '000.webp'}: {expected}"
    assert not out.exists()


def test_a_mask_in_ground_truth_good_gets_the_warning_of_datasets_check(dataset, capsys):
    # Before: `datasets check` warned about such a mask (a good image has none: a mislabelled image?), `score`
    # scored the image as good without a word.
    root, maps, out = dataset
    stray = root / "widget/ground_truth/good/000_mask.png"
    stray.parent.mkdir()
    stray.write_bytes((root / MASK).read_bytes())
    assert main(["datasets", "check", "--root", str(root), "--dataset", "folder", "--json"]) == 0
    checked = [line for line in capsys.readouterr().err.splitlines() if "not read" in line]
    assert checked == [f"warning: {stray}: 1 image file(s) of the category are not read (neither an image of "
                       "train/good or test/<defect> nor the mask of one): misnamed or misplaced?"]
    assert score(root, maps, out) == 0
    scored = [line for line in capsys.readouterr().err.splitlines() if "not read" in line]
    assert scored == [checked[0].replace("warning: ", "warning: widget: ", 1)]  # once, as score words its warnings
    assert checked[0].removeprefix("warning: ") in json.loads(out.read_text())["warnings"]


def test_score_does_not_need_or_judge_the_training_folder(dataset, capsys):
    root, maps, out = dataset
    nested = root / "widget/train/good/old/000.png"  # `datasets check` reports it; the maps do not depend on it
    nested.parent.mkdir()
    nested.write_bytes((root / "widget/train/good/000.png").read_bytes())
    assert score(root, maps, out) == 0
    assert "not read" not in capsys.readouterr().err
    (root / "widget/train/good/000.png").rename(root / "widget/000.png")  # loose in the category folder
    assert score(root, maps, out) == 0
    assert f"warning: widget: {root / 'widget/000.png'}: 1 image file(s) of the category are not read" in (
        capsys.readouterr().err)


@pytest.mark.parametrize("target", ["maps/widget/test/crack/000.tiff", "maps/widget/image_scores.csv",
                                    "data/widget/ground_truth/crack/001_mask.png"])
def test_an_out_that_names_a_scored_file_is_refused_and_the_file_kept(dataset, tmp_path, capsys, target):
    # Before: the result replaced the map (or the mask ...) it had just scored, and the command ended well.
    root, maps, _ = dataset
    (maps / "widget/image_scores.csv").write_text("path,score\ntest/good/000,0.5\n", encoding="utf-8")
    scored = tmp_path / target
    before = scored.read_bytes()
    assert score(root, maps, scored) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"error: {scored}: --out names a file that is scored (a map, image_scores.csv or a file "
                           "of the dataset), which the result would replace")
    assert scored.read_bytes() == before


def test_an_earlier_result_among_the_inputs_folders_is_replaced(dataset, capsys):
    root, maps, _ = dataset
    out = maps / "widget" / "result.json"
    assert score(root, maps, out) == 0
    assert score(root, maps, out, "--method", "again") == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["method"] == "again"


def test_a_root_without_categories_says_what_layout_is_expected(tmp_path, capsys):
    # No --category: the categories come from the root, which has none. Said as `datasets check` says it, not as
    # "no category folder here" about MAPS, which holds one.
    root, maps = tmp_path / "data", tmp_path / "maps"
    root.mkdir()
    (maps / "widget/test/good").mkdir(parents=True)
    assert main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: {root}: no categories found (expected ROOT/CATEGORY/train and "
                                       "ROOT/CATEGORY/test; pass the folder that holds the categories)\n")
    assert not list(maps.rglob("*.json"))
