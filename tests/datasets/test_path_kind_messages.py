"""Errors about a dataset's or a maps folder's paths say what is there: a file where a folder belongs, a folder
where a file belongs, a broken link, a pipe. Each of these was reported as missing ("not found", "missing
training folder", "no mask in", "no folder pcb/ in", "no synthetic dataset here") while the entry was there."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tifffile

from adbench_hr.cli.main import main


def _error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_synthetic_root_that_is_a_file_or_broken_link_is_not_called_missing(tmp_path, capsys) -> None:
    archive = tmp_path / "synthetic.tar"
    archive.write_bytes(b"")
    assert _error(capsys, ["datasets", "check", "--dataset", "synthetic", "--root", str(archive)]) == (
        f"error: {archive}: dataset root is an archive: extract it and pass the extracted folder"
    )
    link = tmp_path / "link"
    link.symlink_to("nowhere")
    assert _error(capsys, ["datasets", "check", "--dataset", "synthetic", "--root", str(link)]) == (
        f"error: {link}: dataset root not found (a broken symbolic link to nowhere)"
    )
    missing = tmp_path / "none"  # still the hint to create it
    assert _error(capsys, ["datasets", "check", "--dataset", "synthetic", "--root", str(missing)]) == (
        f"error: {missing}: no synthetic dataset here; create it with `adbench-hr datasets synth --out DIR`"
    )


@pytest.mark.parametrize("replaced", ["train/good", "train"])
def test_training_folder_that_is_a_file_is_not_called_missing(mvtec_root, capsys, replaced) -> None:
    path = mvtec_root / "widget" / replaced
    shutil.rmtree(path)
    path.write_bytes(b"")
    assert _error(capsys, ["datasets", "check", "--root", str(mvtec_root)]) == (
        f"error: {path}: training folder is a file, not a folder"
    )


def test_ground_truth_that_is_not_a_folder_is_named(mvtec_root, capsys) -> None:
    ground_truth = mvtec_root / "widget" / "ground_truth"
    mask = ground_truth / "dent" / "002_mask.png"
    mask.unlink()
    mask.mkdir()
    assert _error(capsys, ["datasets", "check", "--root", str(mvtec_root)]) == (
        f"error: {mask}: mask is a folder, not a file"
    )
    shutil.rmtree(ground_truth / "dent")
    (ground_truth / "dent").write_bytes(b"")
    assert _error(capsys, ["datasets", "check", "--root", str(mvtec_root)]) == (
        f"error: {ground_truth / 'dent'}: ground-truth folder is a file, not a folder"
    )
    shutil.rmtree(ground_truth)
    ground_truth.symlink_to("elsewhere")
    assert _error(capsys, ["datasets", "check", "--root", str(mvtec_root)]) == (
        f"error: {ground_truth}: ground-truth folder not found (a broken symbolic link to elsewhere)"
    )
    ground_truth.unlink()  # really no mask: the message stays
    image = mvtec_root / "widget" / "test" / "dent" / "002.png"
    assert _error(capsys, ["datasets", "check", "--root", str(mvtec_root)]) == (
        f"error: {image}: defective test image has no mask in {ground_truth / 'dent'}"
    )


def test_visa_split_file_or_listed_file_that_is_not_a_file_is_named(visa_root, capsys) -> None:
    split = visa_root / "split_csv" / "1cls.csv"
    text = split.read_text()
    split.unlink()
    split.mkdir()
    args = ["datasets", "check", "--dataset", "visa", "--root", str(visa_root)]
    assert _error(capsys, args) == f"error: {split}: split_csv/1cls.csv is a folder, not a file"
    split.rmdir()
    split.symlink_to("gone.csv")
    assert _error(capsys, args) == f"error: {split}: split_csv/1cls.csv not found (a broken symbolic link to gone.csv)"
    split.unlink()
    split.write_text(text)
    image = visa_root / "candle" / "Data" / "Images" / "Anomaly" / "000.JPG"
    image.unlink()
    image.mkdir()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "Anomaly/000.JPG" in row)
    assert _error(capsys, args + ["--category", "candle"]) == (
        f"error: {image}: image file is a folder, not a file (listed on line {line} of {split})"
    )


def test_maps_category_that_is_not_a_folder_or_a_map_that_is_a_pipe_is_named(mvtec_root, tmp_path, capsys) -> None:
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "widget").write_bytes(b"")
    args = ["score", "--maps", str(maps), "--root", str(mvtec_root), "--category", "widget", "--quiet",
            "--out", str(tmp_path / "r.json")]
    first = maps / "widget" / "test" / "dent" / "002.tiff"
    missing = f"error: {first}: missing anomaly map (looked for .tiff, .tif, .npy, .png)"
    assert _error(capsys, args) == f"{missing}; widget in {maps} is a file, not a folder"
    (maps / "widget").unlink()
    (maps / "widget").symlink_to("nowhere")
    assert _error(capsys, args) == f"{missing}; widget in {maps} is a broken symbolic link (to nowhere), not a folder"
    (maps / "widget").unlink()
    (maps / "notes.txt").write_bytes(b"")
    (maps / "widget").symlink_to("notes.txt")  # a link, but not a broken one
    assert _error(capsys, args) == f"{missing}; widget in {maps} is a file, not a folder"
    (maps / "widget").unlink()
    assert _error(capsys, args) == f"{missing}; there is no folder widget/ in {maps}"
    if not hasattr(os, "mkfifo"):
        return
    first.parent.mkdir(parents=True)
    os.mkfifo(first)
    assert _error(capsys, args) == (
        f"error: {first}: not a regular file (a device, pipe or socket) where an anomaly map file should be"
    )
    first.unlink()
    tifffile.imwrite(first, np.zeros((64, 80), np.float32))  # the first map readable: the next one is missing
    assert _error(capsys, args).startswith(f"error: {maps / 'widget' / 'test' / 'good'}")


@pytest.mark.parametrize("split", ["train/good", "test/good", "test/dent"])
def test_a_folder_named_as_an_image_is_refused_not_skipped(mvtec_root, capsys, split) -> None:
    # Before: left out of the split without a word, though a file named as an unread format is an error.
    odd = mvtec_root / "widget" / split / "900.png"
    odd.mkdir()
    assert _error(capsys, ["datasets", "check", "--root", str(mvtec_root)]) == (
        f"error: {odd}: image is a folder, not a file"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_named_as_an_image_a_mask_or_the_training_folder_is_named(mvtec_root, capsys) -> None:
    # As a folder there: neither left out of the split nor called missing.
    args = ["datasets", "check", "--root", str(mvtec_root)]
    odd = mvtec_root / "widget" / "train" / "good" / "900.png"
    os.mkfifo(odd)
    assert _error(capsys, args) == f"error: {odd}: image is not a regular file (a device, pipe or socket)"
    odd.unlink()
    mask = mvtec_root / "widget" / "ground_truth" / "dent" / "002_mask.png"
    mask.unlink()
    os.mkfifo(mask)
    assert _error(capsys, args) == f"error: {mask}: mask is not a regular file (a device, pipe or socket)"
    train = mvtec_root / "widget" / "train"
    shutil.rmtree(train)
    os.mkfifo(train)
    assert _error(capsys, args) == f"error: {train}: training folder is a file, not a folder"
