"""VisA reader on its native layout: split CSV, MVTec-like sample ids, small-integer masks, errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from dataset_builders import build_visa, write_csv

from adbench_hr.cli.main import main
from adbench_hr.datasets import VisADataset, open_dataset, validate_category
from adbench_hr.errors import InputError


def test_categories_and_splits(visa_root: Path) -> None:
    ds = open_dataset("visa", visa_root)
    assert isinstance(ds, VisADataset)
    assert ds.categories() == ["candle", "pcb1"]
    train = ds.train_samples("candle")
    assert [s.sample_id for s in train] == ["train/good/0000", "train/good/0001", "train/good/0002"]
    assert train[0].image_path == visa_root / "candle" / "Data" / "Images" / "Normal" / "0000.JPG"
    test = ds.test_samples("candle")
    assert [s.sample_id for s in test] == ["test/good/0003", "test/good/0004", "test/bad/000", "test/bad/001"]
    assert [s.defect_type for s in test] == ["good", "good", "bad", "bad"]
    assert [s.label for s in test] == [0, 0, 1, 1]
    assert test[0].mask_path is None
    assert test[2].mask_path == visa_root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png"


def test_small_integer_masks_are_defects(visa_root: Path) -> None:
    test = open_dataset("visa", visa_root).test_samples("candle")
    mask = test[3].load_mask()
    assert mask.dtype == bool and mask.shape == (48, 64)
    assert mask.sum() == 16 + 4  # values 2 and 1 are both defect
    report = validate_category(open_dataset("visa", visa_root), "candle")
    assert (report.n_train, report.n_test_good, report.n_test_defective) == (3, 2, 2)
    assert sorted(report.defect_areas) == [4, 12, 16]
    assert report.size_quartiles_px == pytest.approx(list(np.percentile([4, 12, 16], [25, 50, 75])))


def test_missing_split_csv(tmp_path: Path) -> None:
    (tmp_path / "candle").mkdir()
    with pytest.raises(InputError, match="missing split_csv/1cls.csv") as info:
        open_dataset("visa", tmp_path)
    assert info.value.path == tmp_path / "split_csv" / "1cls.csv"


def test_missing_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [{"object": "candle", "split": "train"}], columns=("object", "split"))
    with pytest.raises(InputError, match="lacks column"):
        open_dataset("visa", tmp_path)
    assert path.is_file()


def test_anomaly_without_mask_names_the_image(tmp_path: Path) -> None:
    image = "candle/Data/Images/Anomaly/777.JPG"
    root = build_visa(
        tmp_path / "v",
        extra_rows=[{"object": "candle", "split": "test", "label": "anomaly", "image": image, "mask": ""}],
    )
    (root / image).write_bytes((root / "candle/Data/Images/Anomaly/000.JPG").read_bytes())
    with pytest.raises(InputError, match="no ground-truth mask") as info:
        open_dataset("visa", root).test_samples("candle")
    assert info.value.path == root / image


def test_missing_listed_files(visa_root: Path) -> None:
    (visa_root / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png").unlink()
    with pytest.raises(InputError, match="mask file not found") as info:
        open_dataset("visa", visa_root).test_samples("pcb1")
    assert info.value.path.name == "000.png"
    (visa_root / "pcb1" / "Data" / "Images" / "Normal" / "0000.JPG").unlink()
    with pytest.raises(InputError, match="image file not found"):
        open_dataset("visa", visa_root).train_samples("pcb1")


def test_unknown_label_and_empty_train(tmp_path: Path) -> None:
    root = build_visa(
        tmp_path / "v",
        extra_rows=[{"object": "candle", "split": "test", "label": "weird", "image": "x.JPG", "mask": ""}],
    )
    (root / "x.JPG").write_bytes(b"")
    with pytest.raises(InputError, match="unknown label 'weird'"):
        open_dataset("visa", root).test_samples("candle")
    only_test = [
        {"object": "bolt", "split": "test", "label": "normal", "image": "candle/Data/Images/Normal/0003.JPG"},
    ]
    write_csv(root, only_test)
    with pytest.raises(InputError, match="no training images for object 'bolt'") as info:
        open_dataset("visa", root).train_samples("bolt")
    assert info.value.path == root / "split_csv" / "1cls.csv"


def test_unknown_object(visa_root: Path) -> None:
    with pytest.raises(InputError, match="unknown category 'capsules'.*candle, pcb1"):
        open_dataset("visa", visa_root).test_samples("capsules")


def test_palette_png_masks_read_as_indices(visa_root: Path) -> None:
    """Label masks saved as indexed-colour PNGs: index > 0 is defect, whatever the palette colours."""
    from PIL import Image

    mask_path = visa_root / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png"
    indices = np.zeros((40, 56), np.uint8)
    indices[5:8, 5:8] = 1
    indices[30, 30] = 2
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 200, 30, 30, 30, 200, 30] + [0] * (256 * 3 - 9))
    image.save(mask_path)
    sample = open_dataset("visa", visa_root).test_samples("pcb1")[-1]
    mask = sample.load_mask()
    assert mask.shape == (40, 56) and mask.sum() == 10


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"split": "train", "label": "ng", "image": "candle/Data/Images/Normal/0000.JPG"}, "unknown label 'ng'"),
        ({"split": "train", "label": "anomaly", "image": "candle/Data/Images/Normal/0000.JPG"}, "anomalous image"),
        ({"split": "val", "label": "normal", "image": "candle/Data/Images/Normal/0000.JPG"}, "unknown split 'val'"),
        # A test image listed for training too (spelt with a backslash): the test would score seen data.
        ({"split": "train", "label": "normal", "image": "candle\\Data/Images/Normal/0003.JPG"}, "in both splits"),
    ],
)
def test_bad_rows_stop_both_splits(tmp_path: Path, row: dict[str, str], problem: str) -> None:
    root = build_visa(tmp_path / "v", extra_rows=[{"object": "candle", "mask": "", **row}])
    dataset = open_dataset("visa", root)
    for samples in (dataset.train_samples, dataset.test_samples):
        with pytest.raises(InputError, match=problem) as info:
            samples("candle")
        assert info.value.path == root / "split_csv" / "1cls.csv" and "line 13" in str(info.value)
    assert len(dataset.train_samples("pcb1")) == 2  # another object stays usable


def test_score_guesses_the_visa_layout(visa_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    maps = tmp_path / "maps"
    for sample in open_dataset("visa", visa_root).test_samples("pcb1"):
        path = maps / "pcb1" / f"{sample.sample_id}.tiff"
        path.parent.mkdir(parents=True, exist_ok=True)
        mask = sample.load_mask()
        tifffile.imwrite(path, np.zeros((40, 56), np.float32) if mask is None else mask.astype(np.float32))
    out = tmp_path / "result.json"
    base = ["score", "--maps", str(maps), "--root", str(visa_root), "--category", "pcb1", "--quiet"]
    assert main([*base, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "visa" and result["metrics"]["n_defects"] == 1
    assert result["metrics"]["aupro"]["0.3"] == pytest.approx(1.0)
    assert main([*base, "--dataset", "mvtec_ad"]) == 2
    assert "this is a VisA release (split_csv/1cls.csv): pass --dataset visa" in capsys.readouterr().err


def _write_zero_maps(root: Path, maps: Path) -> None:
    """A zero map (40 x 56, the images' size) for each pcb1 test image of the VisA release at ``root``."""
    for sample in open_dataset("visa", root).test_samples("pcb1"):
        path = maps / "pcb1" / f"{sample.sample_id}.tiff"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, np.zeros((40, 56), np.float32))


def test_score_reads_image_scores_keyed_by_the_split_csv_image_paths(visa_root: Path, tmp_path: Path) -> None:
    # VisA's own paths (split_csv/1cls.csv's image column), not the sample ids test/good/0002 and test/bad/000:
    # before, these rows matched no image and the scores were refused as missing.
    maps = tmp_path / "maps"
    _write_zero_maps(visa_root, maps)
    # The normal image scores higher: an image AUROC of 0 shows that these scores, not the maps, were read.
    (maps / "image_scores.csv").write_text("path,score\n"
                                           "pcb1/Data/Images/Normal/0002.JPG,0.9\n"
                                           f"{visa_root}/pcb1/Data/Images/Anomaly/000.JPG,0.1\n")
    out = tmp_path / "result.json"
    assert main(["score", "--maps", str(maps), "--root", str(visa_root), "--category", "pcb1", "--quiet",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["i_auroc"] == 0.0
    assert not [w for w in result["warnings"] if "image_scores.csv" in w]


def test_image_scores_of_an_image_listed_outside_its_objects_folder_are_read_by_sample_id(tmp_path: Path) -> None:
    # 1cls.csv may list an image of pcb1 from another folder (shared/): it has no path inside pcb1/ to be named
    # by, so its row names the sample id, while the other rows keep their VisA paths.
    outside = {"object": "pcb1", "split": "test", "label": "normal", "image": "shared/0005.JPG", "mask": ""}
    root = build_visa(tmp_path / "visa", extra_rows=[outside])
    (root / "shared").mkdir()
    shutil.copy(root / "pcb1/Data/Images/Normal/0002.JPG", root / "shared/0005.JPG")
    maps = tmp_path / "maps"
    _write_zero_maps(root, maps)
    # Both normal images score above the anomalous one: image AUROC 0, so these scores, not the maps, were read.
    (maps / "image_scores.csv").write_text("path,score\n"
                                           "pcb1/Data/Images/Normal/0002.JPG,0.9\n"
                                           "test/good/0005,0.8\n"
                                           "pcb1/Data/Images/Anomaly/000.JPG,0.1\n")
    out = tmp_path / "result.json"
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "pcb1", "--quiet",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["metrics"]["n_images"], result["metrics"]["i_auroc"]) == (3, 0.0)
    assert not [w for w in result["warnings"] if "image_scores.csv" in w]


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "split_csv" / "1cls.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _listing(dataset: VisADataset, category: str) -> list[tuple]:
    return [(s.sample_id, s.image_path, getattr(s, "mask_path", None), getattr(s, "label", None))
            for s in [*dataset.train_samples(category), *dataset.test_samples(category)]]


def test_split_csv_saved_by_a_spreadsheet_reads_the_same(visa_root: Path) -> None:
    # A byte-order mark, header names in another case or padded, values in another case, an empty line.
    reference = {c: _listing(VisADataset(visa_root), c) for c in ("candle", "pcb1")}
    lines = [" Object ,Split,LABEL,Image,Mask"]
    for row in _rows(visa_root):
        lines.append(",".join([row["object"], row["split"].title(), row["label"].upper(), row["image"], row["mask"]]))
    lines.insert(5, ",,,,")
    (visa_root / "split_csv" / "1cls.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    assert (visa_root / "split_csv" / "1cls.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    dataset = open_dataset("visa", visa_root)
    assert dataset.categories() == ["candle", "pcb1"]
    for category, listing in reference.items():
        assert _listing(dataset, category) == listing


def test_errors_name_the_files_line_even_after_blank_lines(tmp_path: Path) -> None:
    # DictReader skips blank lines without counting them: the line named must be the file's own.
    root = build_visa(tmp_path / "v", extra_rows=[{"object": "candle", "split": "val", "label": "normal",
                                                    "image": "candle/Data/Images/Normal/0000.JPG", "mask": ""}])
    csv_path = root / "split_csv" / "1cls.csv"
    lines = csv_path.read_text().splitlines()
    bad = next(i for i, line in enumerate(lines, start=1) if ",val," in line)
    csv_path.write_text("\n".join([*lines[:3], "", "", *lines[3:]]) + "\n")  # two blank lines before it
    with pytest.raises(InputError, match=rf"line {bad + 2}: unknown split 'val'"):
        open_dataset("visa", root).test_samples("candle")


@pytest.mark.parametrize(("normal", "anomaly"), [("good", "bad"), ("0", "1"), ("normal", "abnormal")])
def test_other_label_spellings(visa_root: Path, normal: str, anomaly: str) -> None:
    reference = _listing(VisADataset(visa_root), "candle")
    rows = _rows(visa_root)
    for row in rows:
        row["label"] = normal if row["label"] == "normal" else anomaly
    write_csv(visa_root, rows)
    assert _listing(VisADataset(visa_root), "candle") == reference


def test_objects_are_sorted_whatever_the_csv_order(visa_root: Path) -> None:
    rows = _rows(visa_root)
    write_csv(visa_root, [r for r in rows if r["object"] == "pcb1"] + [r for r in rows if r["object"] == "candle"])
    assert open_dataset("visa", visa_root).categories() == ["candle", "pcb1"]


def test_a_training_image_listed_again_for_test_is_refused(tmp_path: Path) -> None:
    # The other order than test_bad_rows_stop_both_splits: the train row (line 2) comes first.
    row = {"object": "candle", "split": "test", "label": "normal", "image": "candle/Data/Images/Normal/0000.JPG",
           "mask": ""}
    root = build_visa(tmp_path / "v", extra_rows=[row])
    dataset = open_dataset("visa", root)
    for samples in (dataset.train_samples, dataset.test_samples):
        with pytest.raises(InputError, match="in both splits") as info:
            samples("candle")
        assert "line 13" in str(info.value) and "also line 2" in str(info.value)


@pytest.mark.parametrize("split", ["train", "test"])
def test_two_images_with_one_stem_are_refused(tmp_path: Path, split: str) -> None:
    # Sample ids are train/good/<stem>, test/good/<stem>, test/bad/<stem>: a second 0000.JPG in another folder
    # would write its map over the first one's.
    label, folder = ("normal", "Normal") if split == "train" else ("anomaly", "Anomaly")
    stem = "0000" if split == "train" else "000"
    image, mask = f"candle/Data/Images/{folder}2/{stem}.JPG", f"candle/Data/Masks/{folder}2/{stem}.png"
    root = build_visa(tmp_path / "v", extra_rows=[{"object": "candle", "split": split, "label": label,
                                                    "image": image, "mask": mask if split == "test" else ""}])
    copies = [(image, f"candle/Data/Images/{folder}/{stem}.JPG")]
    if split == "test":
        copies.append((mask, "candle/Data/Masks/Anomaly/000.png"))
    for relative, source in copies:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / source, root / relative)
    samples = getattr(open_dataset("visa", root), f"{split}_samples")
    expected_id = f"train/good/{stem}" if split == "train" else f"test/bad/{stem}"
    with pytest.raises(InputError, match=f"two images map to the same id '{expected_id}'") as info:
        samples("candle")
    assert info.value.path == root / image


@pytest.mark.parametrize(
    ("split", "label", "column", "name"),
    [
        ("train", "normal", "image", "candle/Data/Images/Normal/0009.webp"),
        ("test", "normal", "image", "candle/Data/Images/Normal/0009.GIF"),
        ("test", "anomaly", "image", "candle/Data/Images/Anomaly/009.pgm"),
        ("test", "anomaly", "mask", "candle/Data/Masks/Anomaly/009.webp"),
    ],
)
def test_a_listed_file_in_a_format_that_is_not_read_is_an_error_naming_it_and_the_line(
    tmp_path: Path, split: str, label: str, column: str, name: str
) -> None:
    # As in the MVTec layout: OpenCV would decode a WebP, but images outside the spec's formats are refused
    # (before: VisA read a .webp that the MVTec reader skipped).
    row = {"object": "candle", "split": split, "label": label, "image": "candle/Data/Images/Anomaly/009.JPG",
           "mask": "candle/Data/Masks/Anomaly/000.png" if label == "anomaly" else "", column: name}
    root = build_visa(tmp_path / "v", extra_rows=[row])
    for path in {row["image"], row["mask"]} - {""}:
        shutil.copy(root / "candle/Data/Images/Anomaly/000.JPG", root / path)
    dataset = open_dataset("visa", root)
    with pytest.raises(InputError) as info:
        dataset.train_samples("candle") if split == "train" else dataset.test_samples("candle")
    assert info.value.path == root / name
    suffix = Path(name).suffix.lower()
    assert info.value.problem == (f"image format {suffix} is not read (PNG, JPEG, BMP or TIFF are); convert it "
                                  f"(listed on line 13 of {root / 'split_csv' / '1cls.csv'})")


def _with_masks_on_rows(root: Path, masks: dict[int, str]) -> Path:
    """Rewrite 1cls.csv with ``{csv line: mask}`` set (line 2 is the first row)."""
    rows = _rows(root)
    for line, mask in masks.items():
        rows[line - 2]["mask"] = mask
    return write_csv(root, rows)


PCB1_MASK = "pcb1/Data/Masks/Anomaly/000.png"


def test_a_normal_row_with_a_mask_is_a_warning_naming_the_line(
    visa_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the mask of a row labelled normal was dropped without a word. Line 11 is pcb1's normal test image.
    csv_path = _with_masks_on_rows(visa_root, {11: PCB1_MASK})
    rows = _rows(visa_root)
    assert (rows[9]["object"], rows[9]["split"], rows[9]["label"]) == ("pcb1", "test", "normal")
    by_id = {s.sample_id: s for s in open_dataset("visa", visa_root).test_samples("pcb1")}
    assert by_id["test/good/0002"].mask_path is None and by_id["test/good/0002"].label == 0  # the label decides
    assert main(["datasets", "check", "--root", str(visa_root), "--category", "pcb1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["pcb1"]["n_test_good"] == 1 and json.loads(out)["pcb1"]["n_defects"] == 1
    assert err.splitlines() == [
        f"warning: {csv_path}: line 11: the image is labelled normal but has a mask ({PCB1_MASK}); a normal "
        "image has no mask, so the mask is not read"
    ]
    # Several rows: one line, naming the first and counting the others (a training row's mask is not read either).
    _with_masks_on_rows(visa_root, {9: PCB1_MASK, 11: PCB1_MASK})
    report = validate_category(open_dataset("visa", visa_root), "pcb1")
    assert [w for w in report.warnings if "labelled normal" in w] == [
        f"{csv_path}: line 9 (and 1 other line(s)): the image is labelled normal but has a mask ({PCB1_MASK}); "
        "a normal image has no mask, so the mask is not read"
    ]
    assert validate_category(open_dataset("visa", visa_root), "candle").warnings == []  # per object


def test_score_warns_about_a_normal_test_row_with_a_mask_not_a_training_row(
    visa_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maps = tmp_path / "maps"
    _write_zero_maps(visa_root, maps)
    out = tmp_path / "result.json"
    base = ["score", "--maps", str(maps), "--root", str(visa_root), "--category", "pcb1", "--quiet", "--out", str(out)]
    csv_path = _with_masks_on_rows(visa_root, {9: PCB1_MASK})  # a training row: not what score reads
    assert main(base) == 0
    assert "labelled normal" not in capsys.readouterr().err
    _with_masks_on_rows(visa_root, {11: PCB1_MASK})
    assert main(base) == 0
    expected = (f"{csv_path}: line 11: the image is labelled normal but has a mask ({PCB1_MASK}); a normal image "
                "has no mask, so the mask is not read")
    assert [line for line in capsys.readouterr().err.splitlines() if "labelled normal" in line] == [
        f"warning: pcb1: {expected}"
    ]
    assert expected in json.loads(out.read_text())["warnings"]


def test_a_root_that_is_not_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("object,split,label,image,mask\n")
    for root, problem in ((tmp_path / "absent", "dataset root not found"),
                          (tmp_path / "file", "dataset root is a file, not a folder")):
        with pytest.raises(InputError, match=problem) as info:
            open_dataset("visa", root)
        assert info.value.path == root


_HEADER = "object,split,label,image,mask\n"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # Latin-1 "é" in a row: the CSV is read as UTF-8 (with or without a byte order mark).
        (_HEADER.encode() + "candle,train,normal,caf\u00e9.JPG,\n".encode("latin-1"), "not a UTF-8 CSV"),
        # A cell beyond the csv module's field limit (131072 characters): one error, not a traceback.
        ((_HEADER + "candle,train,normal," + "x" * 200_000 + ",\n").encode(), r"malformed CSV \(field larger"),
        (_HEADER.encode(), "CSV has no rows"),
        (_HEADER.encode() + b",,,,\n , , , , \n", "CSV has no rows"),  # rows of blanks only are no rows
        (_HEADER.encode() + b"candle,train,normal,a.JPG,\n,train,normal,b.JPG,\n", "line 3: empty 'object'"),
    ],
)
def test_a_split_csv_that_cannot_be_read_is_one_error_naming_it(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "split_csv" / "1cls.csv"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem) as info:
        open_dataset("visa", tmp_path)
    assert info.value.path == path


def test_a_split_csv_that_cannot_be_read_ends_the_command_with_one_line_and_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "split_csv" / "1cls.csv"
    path.parent.mkdir()
    path.write_bytes(_HEADER.encode() + b"candle,train,normal,\xff.JPG,\n")
    assert main(["datasets", "check", "--root", str(tmp_path), "--dataset", "visa"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err and "not a UTF-8 CSV" in err


def test_an_object_without_test_rows_or_a_row_without_an_image_is_refused(visa_root: Path) -> None:
    csv_path = visa_root / "split_csv" / "1cls.csv"
    image = "candle/Data/Images/Normal/0000.JPG"
    train_only = [{"object": "bolt", "split": "train", "label": "normal", "image": image}]
    write_csv(visa_root, train_only)
    dataset = open_dataset("visa", visa_root)
    assert [s.sample_id for s in dataset.train_samples("bolt")] == ["train/good/0000"]
    with pytest.raises(InputError, match="empty test set for object 'bolt'") as info:
        dataset.test_samples("bolt")
    assert info.value.path == csv_path
    no_image = [*train_only, {"object": "bolt", "split": "test", "label": "normal", "image": ""}]
    write_csv(visa_root, no_image)
    with pytest.raises(InputError, match="line 3: empty 'image'") as info:
        open_dataset("visa", visa_root).test_samples("bolt")
    assert info.value.path == csv_path
