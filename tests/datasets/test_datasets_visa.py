"""VisA reader on its native layout: split CSV, MVTec-like sample ids, small-integer masks, errors."""

from __future__ import annotations

import json
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
