"""``adbench-hr datasets check|synth``: hand-computed statistics, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from dataset_builders import WIDGET_EXPECTED, write_png

from adbench_hr.cli.main import cli, main
from adbench_hr.datasets import open_dataset, validate_category
from adbench_hr.errors import InputError
from adbench_hr.imageio import read_image


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_check_json_matches_hand_computed(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root), "--json")
    assert rc == 0, err
    assert json.loads(out) == {"widget": WIDGET_EXPECTED}


def test_check_table(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root), "--category", "widget")
    assert rc == 0
    header, row = out.strip().splitlines()[1:]
    assert header.split()[:5] == ["category", "train", "test_good", "test_defective", "defects"]
    assert row.split() == ["widget", "3", "2", "3", "6", "4.75", "8.5", "25", "mixed", "(2", "sizes)"]


def test_check_visa_autodetected(visa_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(visa_root), "--json", "--category", "pcb1")
    assert rc == 0, err
    assert json.loads(out) == {
        "pcb1": {"n_train": 2, "n_test_good": 1, "n_test_defective": 1, "n_defects": 1,
                 "size_quartiles_px": [9.0, 9.0, 9.0]}
    }


def test_error_missing_mask(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (mvtec_root / "widget" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert_one_line_error(rc, err, str(mvtec_root / "widget" / "test" / "scratch" / "000.png"), "mask")


def test_error_mask_size_mismatch(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mask_path = mvtec_root / "widget" / "ground_truth" / "dent" / "002_mask.png"
    write_png(mask_path, np.zeros((32, 40), np.uint8))
    # The reader stays lazy: listing does not notice, validation does.
    assert len(open_dataset("mvtec_ad", mvtec_root).test_samples("widget")) == 5
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert_one_line_error(rc, err, str(mask_path), "40x32", "80x64", "does not match")


def test_error_corrupt_image(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = mvtec_root / "widget" / "test" / "good" / "000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root), "--json")
    assert_one_line_error(rc, err, str(bad), "corrupt")


def test_error_empty_split(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(mvtec_root / "widget" / "test")
    (mvtec_root / "widget" / "test").mkdir()
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert_one_line_error(rc, err, str(mvtec_root / "widget" / "test"), "empty test set")


def test_error_unknown_category(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root), "--category", "nut")
    assert_one_line_error(rc, err, str(mvtec_root), "unknown category 'nut'")


def test_error_missing_root_and_visa_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(tmp_path / "nope"))
    assert_one_line_error(rc, err, str(tmp_path / "nope"))
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(tmp_path), "--dataset", "visa")
    assert_one_line_error(rc, err, str(tmp_path / "split_csv" / "1cls.csv"))
    rc, _, err = run_cli(capsys, "datasets", "check")
    assert_one_line_error(rc, err, "--root")


def test_empty_defect_mask_is_a_warning(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(mvtec_root / "widget" / "ground_truth" / "dent" / "002_mask.png", np.zeros((64, 80), np.uint8))
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root), "--json")
    assert rc == 0
    assert "warning:" in err and "002_mask.png" in err
    assert json.loads(out)["widget"]["n_defects"] == 5  # the 7 px L is gone


def test_jpeg_mask_is_a_warning(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    mask = np.zeros((64, 80), np.uint8)
    mask[10:30, 20:40] = 255
    (truth / "002_mask.png").unlink()
    write_png(truth / "002_mask.jpg", mask)
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert rc == 0
    assert "warning:" in err and "002_mask.jpg" in err and "JPEG" in err
    # The same mask in a TIFF with JPEG compression; a lossless TIFF mask gets no warning.
    (truth / "002_mask.jpg").unlink()
    for compression, warned in ((1, False), (7, True)):
        assert cv2.imwrite(str(truth / "002_mask.tif"), mask, [cv2.IMWRITE_TIFF_COMPRESSION, compression])
        rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
        assert rc == 0 and ("JPEG" in err) is warned and ("002_mask.tif" in err) is warned


def test_a_category_of_dark_images_is_a_warning(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert rc == 0 and "dark" not in err
    # Dark 8-bit images (X-ray, thermal) are legitimate: no warning without 16-bit files.
    dark_root = mvtec_root.parent / "dark8"
    shutil.copytree(mvtec_root, dark_root)
    for path in sorted((dark_root / "widget").glob("*/*/*.*")):
        if path.parent.parent.name != "ground_truth" and not path.name.startswith(".") and path.suffix != ".txt":
            write_png(path, read_image(path) // 8)  # 8-bit files, every value <= 31
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(dark_root))
    assert rc == 0 and "dark" not in err
    # 12-bit camera data stored right-aligned in 16-bit PNGs, as some acquisition software writes it.
    brightest_raw = 0
    for path in sorted((mvtec_root / "widget").glob("*/*/*.*")):
        if path.parent.parent.name == "ground_truth" or path.name.startswith(".") or path.suffix == ".txt":
            continue
        raw = read_image(path).astype(np.uint16) * 16  # at most 4095
        brightest_raw = max(brightest_raw, int(raw.max()))
        path.unlink()
        write_png(path.with_suffix(".png"), raw)
    assert brightest_raw <= 4095
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert rc == 0
    expected = f"widget: every image is dark (brightest value {round(brightest_raw / 257)} of 255 after reading)"
    dark_lines = [line for line in err.splitlines() if "dark" in line]
    assert len(dark_lines) == 1 and expected in dark_lines[0] and "full 16-bit range" in dark_lines[0]


def test_image_files_that_are_not_read_are_a_warning(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert rc == 0 and "not read" not in err  # hidden files and notes.txt are not images of the dataset
    widget = mvtec_root / "widget"
    write_png(widget / "ground_truth" / "dent" / "007_mask.png", np.zeros((64, 80), np.uint8))  # no image 007
    write_png(widget / "test" / "dent" / "batch2" / "008.png", np.zeros((64, 80), np.uint8))  # nested folder
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert rc == 0
    extra_mask = widget / "ground_truth" / "dent" / "007_mask.png"
    assert any(line.startswith(f"warning: {extra_mask}: 2 image file(s) of the category are not read")
               for line in err.splitlines()), err


def test_mvtec_ad2_linked_as_the_docs_say_reads_without_warnings(
    mvtec_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MVTec AD 2 keeps its test split in test_public/ (with ground_truth/ inside) beside validation/ and
    # the private splits; linked as docs/datasets.md says, it reads as MVTec AD and nothing is "not read".
    can = tmp_path / "ad2" / "can"
    shutil.copytree(mvtec_root / "widget" / "train", can / "train")
    shutil.copytree(mvtec_root / "widget" / "test", can / "test_public")
    shutil.copytree(mvtec_root / "widget" / "ground_truth", can / "test_public" / "ground_truth")
    for split in ("validation/good", "test_private", "test_private_mixed"):
        write_png(can / split / "000_regular.png", np.zeros((64, 80), np.uint8))
    (can / "test").symlink_to("test_public")
    (can / "ground_truth").symlink_to("test_public/ground_truth")
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(tmp_path / "ad2"))
    assert rc == 0 and "not read" not in err, err
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(can))  # the category, not its parent
    assert rc == 2 and "MVTec AD 2" in err and "can itself is a category: pass its parent folder" in err


def test_synth_cli_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "syn"
    rc, out, err = run_cli(
        capsys, "datasets", "synth", "--out", str(out_dir), "--seed", "3", "--size", "128",
        "--categories", "pcb", "--scale", "0.25",
    )
    assert rc == 0, err
    assert "1 categories" in out
    meta = json.loads((out_dir / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["size"] == 128 and meta["scale"] == 0.25
    assert meta["counts"] == [3, 2, 3]
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(out_dir), "--dataset", "synthetic", "--json")
    assert rc == 0, err
    stats = json.loads(out)["pcb"]
    assert (stats["n_train"], stats["n_test_good"], stats["n_test_defective"]) == (3, 2, 3)
    # A second run into the same, now full, folder is refused in one line.
    rc, _, err = run_cli(capsys, "datasets", "synth", "--out", str(out_dir), "--size", "128")
    assert_one_line_error(rc, err, str(out_dir), "not empty")
    rc, _, err = run_cli(capsys, "datasets", "synth", "--out", str(tmp_path / "x"), "--categories", "cheese")
    assert_one_line_error(rc, err, "unknown synthetic category 'cheese'")


def test_synth_size_is_the_width_and_check_prints_width_x_height(tmp_path: Path, capsys) -> None:
    # `synth --size` is the image width (heights follow the category's aspect ratio); `check`'s image_size
    # column is WIDTHxHEIGHT, as docs/cli.md says. wood_grain is wider than high, so a swap would show.
    out_dir = tmp_path / "syn"
    rc, _, err = run_cli(capsys, "datasets", "synth", "--out", str(out_dir), "--size", "96", "--category",
                         "wood_grain", "--scale", "0.1")
    assert rc == 0, err
    shapes = {cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2] for path in out_dir.glob("wood_grain/*/*/*.png")}
    assert len(shapes) == 1
    height, width = shapes.pop()
    assert width == 96 and height != width
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(out_dir))
    assert rc == 0, err
    assert out.strip().splitlines()[2].split()[-1] == f"{width}x{height}"


def test_console_script_exit_code(mvtec_root: Path) -> None:
    """The installed entry point really exits with 2 and prints one line (subprocess, no capsys)."""
    (mvtec_root / "widget" / "test" / "good" / "000.png").write_bytes(b"broken")
    code = "import sys; from adbench_hr.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "datasets", "check", "--root", str(mvtec_root)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "000.png" in proc.stderr


def test_validate_category_report_fields(mvtec_root: Path) -> None:
    report = validate_category(open_dataset("mvtec_ad", mvtec_root), "widget", workers=1)
    assert sorted(report.defect_areas) == [2, 4, 7, 10, 30, 100]
    assert report.image_sizes == {(64, 80): 5, (50, 70): 3}
    assert report.to_json() == WIDGET_EXPECTED


def test_check_a_category_whose_name_holds_a_comma(mvtec_root: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "root"
    shutil.copytree(mvtec_root / "widget", root / "a,b")
    shutil.copytree(mvtec_root / "widget", root / "a")
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(root), "--category", "a,b", "--json")
    assert rc == 0, err
    assert list(json.loads(out)) == ["a,b"]
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(root), "--category", "a,a,b", "--json")
    assert_one_line_error(rc, err, "unknown category 'b'")  # not a category: split at its commas


def test_categories_may_be_listed_after_one_option(mvtec_root: Path, tmp_path: Path, capsys) -> None:
    # The spec's `--category C ...`, for check and synth as for run.
    root = tmp_path / "root"
    for name in ("b", "a"):
        shutil.copytree(mvtec_root / "widget", root / name)
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(root), "--category", "b", "a", "--json")
    assert rc == 0, err
    assert list(json.loads(out)) == ["b", "a"]
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(root), "b")  # no --category: a stray word
    assert_one_line_error(rc, err, "Got unexpected extra argument (b)")
    # A stray word before the option, or after another option's value, is not listed after --category.
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(root), "b", "--category", "a")
    assert_one_line_error(rc, err, "Got unexpected extra argument (b)")
    rc, _, err = run_cli(capsys, "datasets", "check", "--category", "a", "--root", str(root), "b", "--json")
    assert_one_line_error(rc, err, "Got unexpected extra argument (b)")
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(root), "--category=b", "a", "--json")
    assert rc == 0, err
    assert list(json.loads(out)) == ["b", "a"]
    # After "--" a word is an argument, not a listed name.
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(root), "--category", "a", "--", "b")
    assert_one_line_error(rc, err, "Got unexpected extra argument (b)")
    # The click command invoked without main() (which records the command line): the words are taken as listed.
    cli.main(["datasets", "check", "--root", str(root), "--category", "b", "a", "--json"], standalone_mode=False)
    assert list(json.loads(capsys.readouterr().out)) == ["b", "a"]
    out_dir = tmp_path / "syn"
    rc, out, err = run_cli(capsys, "datasets", "synth", "--out", str(out_dir), "--size", "64", "--scale", "0.25",
                           "--category", "pcb", "wood_grain")
    assert rc == 0, err
    assert sorted(p.name for p in out_dir.iterdir() if p.is_dir()) == ["pcb", "wood_grain"]


def test_an_option_value_spelled_like_the_category_option_is_no_listed_name(
    mvtec_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--root --category --category b a`: click takes the second "--category" as --root's value, while the scan
    # of the command line reads it as the option and "b" as listed although click gave "b" to --category. That
    # word is not among the extra arguments: skipped, not removed from them (a ValueError traceback), and "a"
    # still counts as listed after --category's value.
    monkeypatch.chdir(tmp_path)
    for name in ("b", "a"):
        shutil.copytree(mvtec_root / "widget", tmp_path / "--category" / name)
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", "--category", "--category", "b", "a", "--json")
    assert rc == 0, err
    assert list(json.loads(out)) == ["b", "a"]


def test_a_category_without_defective_or_without_good_test_images_is_a_warning(
    mvtec_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only_good = tmp_path / "only_good"
    shutil.copytree(mvtec_root, only_good)
    for folder in ("test/scratch", "test/dent", "ground_truth"):
        shutil.rmtree(only_good / "widget" / folder)
    rc, out, err = run_cli(capsys, "datasets", "check", "--root", str(only_good), "--json")
    assert rc == 0, err
    assert "warning: widget: no defective test images, segmentation metrics will be null" in err.splitlines()
    assert json.loads(out)["widget"]["n_defects"] == 0 and json.loads(out)["widget"]["size_quartiles_px"] is None
    shutil.rmtree(mvtec_root / "widget" / "test" / "good")
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert rc == 0, err
    assert "warning: widget: no good test images, image-level AUROC will be undefined" in err.splitlines()


def test_check_masks_reads_every_defective_mask_before_a_run_trains(mvtec_root: Path) -> None:
    from adbench_hr.datasets import check_masks

    test = open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    last = [s for s in test if s.mask_path is not None][-1]
    write_png(last.mask_path, np.zeros((32, 40), np.uint8))  # only the last mask is broken
    for workers in (1, 4):
        with pytest.raises(InputError, match="does not match its image") as info:
            check_masks(test, workers=workers)
        assert info.value.path == last.mask_path


def test_error_mask_transposed(mvtec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Same number of pixels, width and height swapped (a mask saved from a rotated view): still the wrong size.
    mask_path = mvtec_root / "widget" / "ground_truth" / "dent" / "002_mask.png"
    write_png(mask_path, np.zeros((80, 64), np.uint8))
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert_one_line_error(rc, err, str(mask_path), "mask size 64x80", "(80x64, width x height)")


@pytest.mark.parametrize(("defect_px", "share"), [(2560, None), (2561, "50"), (4900, "96"), (5104, "99.7"),
                                              (5119, "99.98"), (5120, "100")])
def test_a_mask_marking_more_than_half_of_its_image_is_a_warning(mvtec_root: Path, defect_px: int,
                                                                 share: str | None) -> None:
    # The dent image is 64 x 80 = 5120 px: exactly half is not "more than half". 5119 px is 99.98 %: shown as
    # "100 %" it would say that the mask marks everything.
    mask_path = mvtec_root / "widget" / "ground_truth" / "dent" / "002_mask.png"
    mask = np.zeros(64 * 80, np.uint8)
    mask[:defect_px] = 255
    write_png(mask_path, mask.reshape(64, 80))
    report = validate_category(open_dataset("mvtec_ad", mvtec_root), "widget", workers=1)
    inverted = [w for w in report.warnings if "is it inverted?" in w]
    assert inverted == ([f"{mask_path}: mask marks {share} % of the image as defect; is it inverted? "
                         "(defect pixels must be non-zero)"] if share else [])


def _flat_category(root: Path, train: np.ndarray, test: np.ndarray) -> Path:
    """``root/flat``: one training image, one good and one defective test image (with its mask), all 8 x 8,
    the training image filled with ``train`` and the test images with ``test`` (``uint8`` or ``uint16``)."""
    category = root / "flat"
    write_png(category / "train" / "good" / "000.png", np.full((8, 8), train))
    write_png(category / "test" / "good" / "000.png", np.full((8, 8), test))
    write_png(category / "test" / "dent" / "000.png", np.full((8, 8), test))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 255
    write_png(category / "ground_truth" / "dent" / "000_mask.png", mask)
    return root


@pytest.mark.parametrize(
    ("train", "test", "dark"),
    [
        (np.uint16(64 * 257), np.uint16(64 * 257), True),  # brightest 64 of 255: "no pixel above 64"
        (np.uint16(65 * 257), np.uint16(65 * 257), False),
        (np.uint16(64 * 257), np.uint8(200), False),  # the test images are bright: not every image is dark
        (np.uint8(10), np.uint16(40 * 257), True),  # the 16-bit files are the test images
    ],
)
def test_dark_16_bit_category_warning_looks_at_every_image(tmp_path: Path, train, test, dark: bool) -> None:
    root = _flat_category(tmp_path / "ds", train, test)
    report = validate_category(open_dataset("mvtec_ad", root), "flat", workers=1)
    assert any("every image is dark" in w for w in report.warnings) is dark, report.warnings


def test_check_stops_at_a_test_image_in_a_format_that_is_not_read(
    mvtec_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: exit 0, a warning blaming the masks ("not read ... misnamed or misplaced?") and fewer images.
    scratch = mvtec_root / "widget" / "test" / "scratch"
    webp = scratch / "000.webp"
    assert cv2.imwrite(str(webp), cv2.imread(str(scratch / "000.png")))
    (scratch / "000.png").unlink()
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root))
    assert_one_line_error(rc, err, f"error: {webp}: image format .webp is not read (PNG, JPEG, BMP or TIFF are)")


def test_images_in_formats_that_are_not_read_outside_image_folders_are_reported_as_not_read(
    mvtec_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    widget = mvtec_root / "widget"
    copy = widget / "ground_truth" / "dent" / "002_mask.gif"  # a second copy of a mask: the .png is read
    copy.write_bytes(b"GIF89a")
    nested = widget / "test" / "dent" / "batch2" / "008.webp"
    nested.parent.mkdir()
    nested.write_bytes(b"RIFF")
    rc, _, err = run_cli(capsys, "datasets", "check", "--root", str(mvtec_root), "--json")
    assert rc == 0, err
    assert [line for line in err.splitlines() if "not read" in line] == [
        f"warning: {copy}: 2 image file(s) of the category are not read (neither an image of train/good or "
        "test/<defect> nor the mask of one): misnamed or misplaced?"
    ]


def test_a_reader_that_gives_two_images_one_sample_id_is_refused_by_the_check(mvtec_root: Path) -> None:
    # Dataset is a protocol: a third-party reader may list two images under one id (their maps would
    # overwrite each other). The built-in readers refuse that themselves.
    class Repeating:
        def __init__(self, dataset: Any, split: str) -> None:
            self._dataset, self._split = dataset, split
            self.name, self.root = dataset.name, dataset.root

        def __getattr__(self, name: str) -> Any:
            return getattr(self._dataset, name)

        def train_samples(self, category: str) -> list:
            samples = self._dataset.train_samples(category)
            return samples + samples[:1] if self._split == "train" else samples

        def test_samples(self, category: str) -> list:
            samples = self._dataset.test_samples(category)
            return samples + samples[-1:] if self._split == "test" else samples

    dataset = open_dataset("mvtec_ad", mvtec_root)
    for split, index in (("train", 0), ("test", -1)):
        sample = getattr(dataset, f"{split}_samples")("widget")[index]
        with pytest.raises(InputError, match=f"two images map to the same sample id '{sample.sample_id}'") as info:
            validate_category(Repeating(dataset, split), "widget", workers=1)
        assert info.value.path == sample.image_path
