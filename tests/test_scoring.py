"""`adbench-hr score` end to end on small hand-built MVTec-layout datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from adbench_hr.cli.main import main
from adbench_hr.datasets import open_dataset
from adbench_hr.errors import InputError
from adbench_hr.metrics import AnomalyMetrics
from adbench_hr.scoring import checked_mask, format_summary

SIZES = {"000": (40, 52), "001": (37, 41)}  # sizes vary within the category


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture()
def dataset(tmp_path):
    """ROOT/widget with 2 good and 2 defective test images, plus the matching float32 maps."""
    rng = np.random.default_rng(0)
    root, maps = tmp_path / "data", tmp_path / "maps"
    truth = {}
    for stem, (h, w) in SIZES.items():
        _write_png(root / "widget/train/good" / f"{stem}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        _write_png(root / "widget/test/good" / f"{stem}.png", rng.integers(0, 255, (h, w), np.uint8))
        image = rng.integers(0, 255, (h, w, 3), np.uint8)
        cv2.imwrite(str(root / "widget/test/good" / f"{stem}.png"), image)
        _write_png(root / "widget/test/crack" / f"{stem}.jpg", image)
        mask = np.zeros((h, w), np.uint8)
        mask[5:9, 6:20] = 255
        mask[30, 30] = 255
        _write_png(root / "widget/ground_truth/crack" / f"{stem}_mask.png", mask)
        for defect, gt in (("good", None), ("crack", mask > 0)):
            anomaly_map = rng.random((h, w)).astype(np.float32)
            if gt is not None:
                anomaly_map[gt] += 0.5
            path = maps / "widget/test" / defect / f"{stem}.tiff"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, anomaly_map)
            truth[f"test/{defect}/{stem}"] = (anomaly_map, gt)
    return root, maps, truth


def score(root, maps, *extra):
    return main(["score", "--maps", str(maps), "--root", str(root), "--category", "widget",
                 "--dataset", "folder", "--quiet", *extra])


def expected_metrics(truth, image_scores=None, mode="exact"):
    engine = AnomalyMetrics(pro_thresholds=mode)
    for sample_id in sorted(truth):
        anomaly_map, gt = truth[sample_id]
        score_ = None if image_scores is None else image_scores[sample_id]
        engine.update(anomaly_map, gt, score_)
    return engine.compute()["metrics"]


def test_score_writes_the_result_of_the_engine(dataset, tmp_path, capsys):
    root, maps, truth = dataset
    out = tmp_path / "result.json"
    assert score(root, maps, "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["schema"] == "adbench-hr/result/v1"
    assert result["method"] == "maps" and result["category"] == "widget" and result["dataset"] == "folder"
    assert result["protocol"] == {"name": "full", "eval_size": None, "pro_thresholds": "exact",
                                  "fpr_limits": [0.3, 0.1, 0.05, 0.01], "connectivity": 8}
    assert result["metrics"] == json.loads(json.dumps(expected_metrics(truth)))
    assert result["metrics"]["n_defects"] == 4 and result["metrics"]["n_images"] == 4
    assert "I-AUROC" in capsys.readouterr().out


def test_npy_png_maps_and_image_scores_csv(dataset, tmp_path):
    root, maps, truth = dataset
    # Same maps in other formats: .npy for one, 16-bit PNG (values already integers) for another.
    for sample_id, (anomaly_map, gt) in list(truth.items()):
        tiff = maps / "widget" / f"{sample_id}.tiff"
        if sample_id.endswith("000"):
            tiff.unlink()
            np.save(tiff.with_suffix(".npy"), anomaly_map)
        elif sample_id.startswith("test/crack"):
            tiff.unlink()
            as_int = np.round(anomaly_map * 1000).astype(np.uint16)
            cv2.imwrite(str(tiff.with_suffix(".png")), as_int)
            truth[sample_id] = (as_int.astype(np.float32), gt)
    image_scores = {sid: float(i) for i, sid in enumerate(sorted(truth))}
    rows = ["path,score"] + [f"widget/{sid}.tiff,{s}" for sid, s in image_scores.items()]
    (maps / "image_scores.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out), "--pro-thresholds", "l2bt") == 0
    result = json.loads(out.read_text())
    assert result["protocol"]["pro_thresholds"] == "l2bt"
    assert result["metrics"] == json.loads(json.dumps(expected_metrics(truth, image_scores, "l2bt")))


def _score_plate_both_protocols(tmp_path, defect: str, mask: np.ndarray, anomaly_map: np.ndarray, eval_size: int):
    """A 512 px 'plate' category (one good, one defective image), scored full and lowres; both result paths."""
    root, maps = tmp_path / "data", tmp_path / "maps"
    image = np.zeros((512, 512, 3), np.uint8)
    for kind in ("train/good", "test/good", f"test/{defect}"):
        _write_png(root / "plate" / kind / "000.png", image)
    _write_png(root / f"plate/ground_truth/{defect}/000_mask.png", mask)
    for kind, values in (("good", np.zeros((512, 512), np.float32)), (defect, anomaly_map)):
        path = maps / "plate/test" / kind / "000.tiff"
        path.parent.mkdir(parents=True)
        tifffile.imwrite(path, values)
    full, low = tmp_path / "full.json", tmp_path / "low.json"
    base = ["score", "--maps", str(maps), "--root", str(root), "--category", "plate", "--quiet"]
    assert main([*base, "--out", str(full)]) == 0
    assert main([*base, "--out", str(low), "--protocol", "lowres", "--eval-size", str(eval_size)]) == 0
    return full, low


def test_lowres_protocol_loses_a_two_pixel_defect(tmp_path):
    mask = np.zeros((512, 512), np.uint8)
    mask[101, 101:103] = 255  # 2 px: nearest-neighbour downsampling to 64 px skips it
    full, low = _score_plate_both_protocols(tmp_path, "pit", mask, (mask > 0).astype(np.float32), 64)
    full_metrics = json.loads(full.read_text())["metrics"]
    low_result = json.loads(low.read_text())
    assert full_metrics["aupro"]["0.3"] == 1.0 and full_metrics["n_defects"] == 1
    assert low_result["protocol"]["name"] == "lowres" and low_result["protocol"]["eval_size"] == 64
    assert low_result["metrics"]["n_defects"] == 0
    assert low_result["metrics"]["aupro"]["0.3"] is None
    assert any("no defect" in w for w in low_result["warnings"])


def test_lowres_protocol_follows_original_defects(tmp_path):
    mask = np.zeros((512, 512), np.uint8)
    columns = np.arange(400)
    mask[40 + columns // 2, columns] = 255  # one 8-connected 400 px scratch of slope 1/2
    mask[101, 101:103] = 255  # a 2 px pit
    band = cv2.dilate(mask, np.ones((17, 17), np.uint8)).astype(np.float32) / 255
    full, low = _score_plate_both_protocols(tmp_path, "scratch", mask, band, 64)
    assert "original_defects" not in json.loads(full.read_text())["metrics"]
    metrics = json.loads(low.read_text())["metrics"]
    # Nearest-neighbour sampling (every 8th pixel) keeps the scratch pixels at columns 0, 16, 32, ...:
    # 25 isolated pixels, i.e. 25 "defects" for the usual protocol; the pit falls between samples.
    assert metrics["n_defects"] == 25
    original = metrics["original_defects"]
    assert original["n_defects"] == 1 and original["n_lost_defects"] == 1
    by_area = {(e["min_px"], e["max_px"]): e for e in original["aupro_by_area"]}
    assert (by_area[(256, 1024)]["n_defects"], by_area[(256, 1024)]["n_lost"]) == (1, 0)
    assert (by_area[(1, 64)]["n_defects"], by_area[(1, 64)]["n_lost"]) == (0, 1)
    assert by_area[(1, 64)]["aupro"]["0.3"] is None
    # Quartile edges over both original defects (2 and 400 px), as at full resolution: 101.5, 201, 300.5.
    assert original["size_quartiles_px"] == json.loads(full.read_text())["metrics"]["size_quartiles_px"]
    assert original["size_quartiles_px"] == [101.5, 201.0, 300.5]
    # Q1 holds only the lost pit: no curve, so null (and rho with it), not a number.
    assert original["aupro_cumulative"]["Q1"]["0.3"] is None and original["rho"]["0.3"] is None
    # Every scratch pixel scores 1 at 64 px, so its single defect is found at the first threshold, as are
    # the 25 fragments: both readings give the same AUPRO here.
    assert original["aupro"]["0.3"] == pytest.approx(metrics["aupro"]["0.3"], abs=1e-12)
    summary = format_summary(json.loads(low.read_text()))
    assert "original defects: 1 scored, 1 lost; AUPRO@0.3 " in summary
    assert "original defects" not in format_summary(json.loads(full.read_text()))


def _single_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    "damage, named, problem",
    [
        (lambda m: tifffile.imwrite(m / "widget/test/crack/000.tiff", np.zeros((10, 10), np.float32)),
         "000.tiff", "original resolution"),
        (lambda m: tifffile.imwrite(m / "widget/test/good/001.tiff", np.full((37, 41), np.nan, np.float32)),
         "001.tiff", "NaN or inf"),
        (lambda m: (m / "widget/test/crack/001.tiff").unlink(), "001.tiff", "missing anomaly map"),
        (lambda m: (m / "widget/test/good/000.tiff").write_bytes(b"II*\x00garbage"), "000.tiff", "corrupt"),
        (lambda m: (m / "image_scores.csv").write_text("path,score\ntest/good/000,abc\n"),
         "image_scores.csv", "not a number"),
        (lambda m: (m / "image_scores.csv").write_text("path,score\ntest/good/000,1_05\n"),
         "image_scores.csv", "not a number"),
        (lambda m: (m / "image_scores.csv").mkdir(), "image_scores.csv", "not a regular file"),
        (lambda m: np.save(m / "widget/test/good/000.npy", np.zeros((40, 52), np.float32)),
         "000.tiff", "two anomaly maps for one image"),
        (lambda m: (m / "widget/test/good/000.tiff").write_bytes(b""), "000.tiff",
         "anomaly map file is empty (0 bytes)"),
        (lambda m: (m / "widget/test/good/000.tiff").unlink() or (m / "widget/test/good/000.png").write_bytes(b""),
         "000.png", "anomaly map file is empty (0 bytes)"),
    ],
)
def test_bad_maps_end_in_one_line_and_exit_2(dataset, capsys, damage, named, problem):
    root, maps, _ = dataset
    damage(maps)
    assert score(root, maps) == 2
    line = _single_error_line(capsys)
    assert named in line and problem in line


def test_mask_of_another_size_than_its_image_is_named_even_if_the_map_matches_it(dataset, capsys):
    root, maps, truth = dataset
    mask = np.zeros((30, 52), np.uint8)
    mask[5:9, 6:20] = 255
    _write_png(root / "widget/ground_truth/crack/000_mask.png", mask)
    tifffile.imwrite(maps / "widget/test/crack/000.tiff", np.zeros((30, 52), np.float32))
    assert score(root, maps) == 2
    line = _single_error_line(capsys)
    assert "000_mask.png" in line and "mask size 52x30 does not match its image" in line
    assert "000.jpg (52x40, width x height)" in line


def test_corrupt_defective_image_is_an_error(dataset, capsys):
    root, maps, _ = dataset
    path = root / "widget/test/crack/001.jpg"
    path.write_bytes(path.read_bytes()[:20])
    assert score(root, maps) == 2
    assert "001.jpg" in _single_error_line(capsys)


def test_an_out_folder_of_one_category_holds_its_result(dataset, tmp_path, capsys):
    root, maps, _ = dataset
    (tmp_path / "taken").mkdir()
    assert score(root, maps, "--out", str(tmp_path / "taken")) == 0  # an existing folder
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["widget.json"]
    assert score(root, maps, "--out", f"{tmp_path / 'new'}/") == 0  # a path ending in "/": a folder to make
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["widget.json"]
    assert score(root, maps, "--out", str(tmp_path / "file.json")) == 0  # otherwise the result file itself
    assert (tmp_path / "file.json").is_file()


def test_the_out_help_names_both_kinds_of_folder(capsys):
    # docs/cli.md: --out is a folder when it is an existing folder or a path ending in "/"; the help said only
    # the latter, so `--out results` (an existing folder) read as the name of a result file.
    assert main(["score", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "unless OUT is an existing folder or ends in /" in text


def test_an_out_path_that_cannot_be_written_is_one_line(dataset, tmp_path, capsys):
    root, maps, _ = dataset
    (tmp_path / "plain").write_text("a file, not a folder")
    assert score(root, maps, "--out", str(tmp_path / "plain" / "r.json")) == 2
    assert _single_error_line(capsys).startswith(f"error: {tmp_path / 'plain'}: cannot create the folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "maps", "plain"]  # nothing left behind


def test_eval_size_beyond_the_lowres_range_is_refused(dataset, capsys):
    root, maps, _ = dataset
    assert score(root, maps, "--protocol", "lowres", "--eval-size", "100000000") == 2
    assert "8 <= N <= 4096" in _single_error_line(capsys)


def test_empty_defect_mask_extra_maps_and_extra_score_rows_are_warnings(dataset, tmp_path, capsys):
    root, maps, truth = dataset
    _write_png(root / "widget/ground_truth/crack/001_mask.png", np.zeros((37, 41), np.uint8))
    tifffile.imwrite(maps / "widget/test/crack/999.tiff", np.zeros((5, 5), np.float32))
    rows = "".join(f"{sample_id},0.5\n" for sample_id in truth)
    (maps / "widget/image_scores.csv").write_text(f"path,score\n{rows}test/crack/typo,0.1\n")
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "001_mask.png: mask of a defective image is empty" in err
    assert "1 map file(s) match no test image" in err and "999.tiff" in err
    assert "1 row(s) match no test image" in err and "'test/crack/typo'" in err
    assert len(json.loads(out.read_text())["warnings"]) >= 3


def test_unknown_category_and_empty_test_set(dataset, capsys):
    root, maps, _ = dataset
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "nope", "--quiet"]) == 2
    assert "unknown category 'nope'" in _single_error_line(capsys)
    (root / "empty/test/good").mkdir(parents=True)
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "empty", "--quiet"]) == 2
    assert "empty test set" in _single_error_line(capsys)


def test_missing_mask_is_named(dataset, capsys):
    root, maps, _ = dataset
    (root / "widget/ground_truth/crack/001_mask.png").unlink()
    assert score(root, maps) == 2
    assert "001.jpg" in _single_error_line(capsys)


def test_image_scores_csv_from_excel_or_with_an_ambiguous_header(dataset, tmp_path, capsys):
    root, maps, truth = dataset
    image_scores = {sid: float(i) for i, sid in enumerate(sorted(truth))}
    rows = "".join(f"{sid},{s}\n" for sid, s in image_scores.items())
    csv_file = maps / "widget/image_scores.csv"
    csv_file.write_text(f"\ufeffpath,score\n{rows}", encoding="utf-8")  # Excel's "CSV UTF-8" starts with a BOM
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out)) == 0
    assert json.loads(out.read_text())["metrics"] == json.loads(json.dumps(expected_metrics(truth, image_scores)))
    csv_file.write_text("path,score,score\n" + "".join(f"{sid},{s},0\n" for sid, s in image_scores.items()))
    assert score(root, maps) == 2
    assert "repeats the column(s) score" in _single_error_line(capsys)
    csv_file.write_text("path,score\n" + "x" * 200_000 + ",1\n")
    assert score(root, maps) == 2
    assert "unreadable CSV" in _single_error_line(capsys)


def test_a_category_named_test_and_map_extensions_in_any_case(dataset, tmp_path):
    root, maps, truth = dataset
    (root / "widget").rename(root / "test")
    (maps / "widget").rename(maps / "test")
    image_scores = {sid: float(i) for i, sid in enumerate(sorted(truth))}
    # Rows as sample ids (which begin with "test/", like the category) and with the category folder.
    rows = [f"{sid},{s}" if i % 2 else f"test/{sid}.tiff,{s}" for i, (sid, s) in enumerate(image_scores.items())]
    (maps / "test/image_scores.csv").write_text("path,score\n" + "\n".join(rows) + "\n")
    upper = maps / "test/test/crack/000.tiff"
    upper.rename(upper.with_name("000.TIFF"))
    mixed = maps / "test/test/good/001.tiff"
    mixed.rename(mixed.with_name("001.Tif"))
    out = tmp_path / "r.json"
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "test", "--dataset", "folder",
                 "--quiet", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"] == json.loads(json.dumps(expected_metrics(truth, image_scores)))


def test_a_mask_marking_most_of_its_image_is_a_warning(dataset, tmp_path, capsys):
    root, maps, _ = dataset
    inverted = np.full((37, 41), 255, np.uint8)
    inverted[5:9, 6:20] = 0
    _write_png(root / "widget/ground_truth/crack/001_mask.png", inverted)
    assert score(root, maps) == 0
    assert "001_mask.png: mask marks 96 % of the image as defect; is it inverted?" in capsys.readouterr().err
    assert main(["datasets", "check", "--root", str(root), "--dataset", "folder"]) == 0
    assert "mask marks 96 % of the image as defect" in capsys.readouterr().err


def test_jpeg_compressed_masks_are_a_warning(dataset, tmp_path, capsys):
    # JPEG noise around a defect binarises into extra specks: the numbers move, so the result says why.
    root, maps, _ = dataset
    truth_dir = root / "widget/ground_truth/crack"
    for stem, compression in (("000", None), ("001", 7)):  # a .jpg mask and a JPEG-compressed TIFF mask
        mask = cv2.imread(str(truth_dir / f"{stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
        (truth_dir / f"{stem}_mask.png").unlink()
        if compression is None:
            assert cv2.imwrite(str(truth_dir / f"{stem}_mask.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 75])
        else:
            assert cv2.imwrite(str(truth_dir / f"{stem}_mask.tif"), mask, [cv2.IMWRITE_TIFF_COMPRESSION, 7])
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out)) == 0
    expected = f"{truth_dir / '000_mask.jpg'}: 2 mask(s) stored with JPEG compression"
    assert expected in capsys.readouterr().err
    assert any(expected in warning for warning in json.loads(out.read_text())["warnings"])


# ---------------------------------------------------------------- lowres protocol, piece by piece
def test_lowres_resizes_the_map_bilinearly_and_the_mask_by_nearest_neighbour():
    from adbench_hr.scoring import to_eval_resolution

    rng = np.random.default_rng(4)
    anomaly_map = rng.random((64, 64)).astype(np.float32)
    mask = rng.random((64, 64)) > 0.7
    small_map, small_mask = to_eval_resolution(anomaly_map, mask, 8)
    # Nearest neighbour (OpenCV's): destination pixel i reads source pixel 8 i.
    np.testing.assert_array_equal(small_mask, mask[::8, ::8])
    # Bilinear with half-pixel centres: pixel i is sampled at 8 i + 3.5, the mean of source pixels 8 i + 3, 8 i + 4.
    rows = (anomaly_map[3::8] + anomaly_map[4::8]) / 2
    np.testing.assert_allclose(small_map, (rows[:, 3::8] + rows[:, 4::8]) / 2, rtol=0, atol=1e-6)


def _score_lowres_pair(tmp_path: Path, mask: np.ndarray, good_map: np.ndarray, defective_map: np.ndarray) -> dict:
    """Metrics of ``score --protocol lowres --eval-size 64`` on a 512 px category "plate": one good and one
    defective test image (defect ``dent`` with ``mask``) and the two maps given."""
    root, maps = tmp_path / "data", tmp_path / "maps"
    for kind in ("train/good", "test/good", "test/dent"):
        _write_png(root / "plate" / kind / "000.png", np.zeros((512, 512, 3), np.uint8))
    _write_png(root / "plate/ground_truth/dent/000_mask.png", mask)
    for kind, values in (("good", good_map), ("dent", defective_map)):
        path = maps / "plate/test" / kind / "000.tiff"
        path.parent.mkdir(parents=True)
        tifffile.imwrite(path, values)
    out = tmp_path / "low.json"
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "plate", "--quiet",
                 "--out", str(out), "--protocol", "lowres", "--eval-size", "64"]) == 0
    return json.loads(out.read_text())["metrics"]


def test_lowres_default_image_score_is_the_full_resolution_maximum(tmp_path):
    # A one-pixel peak vanishes when the map is resized; MVTec's rule reads the map as it was given.
    mask = np.zeros((512, 512), np.uint8)
    mask[100:140, 100:140] = 255
    defective = (mask > 0).astype(np.float32) * 0.5
    defective[300, 301] = 1.0  # the defective image's score: above the good image's 0.6 ...
    metrics = _score_lowres_pair(tmp_path, mask, np.full((512, 512), 0.6, np.float32), defective)
    # ... while the resized map's maximum (0.5 or less) would rank it below the good image.
    assert metrics["i_auroc"] == 1.0


def test_lowres_defective_image_whose_defect_vanishes_stays_defective_for_the_image_auroc(tmp_path):
    # A 2 px pit, map = mask (maximum 1), beside a good image with map 0. At 64 px the pit vanishes from the
    # mask, but the image is still a defective test image (its folder): I-AUROC over image scores
    # {good: 0, defective: 1} = 1, with 1 defective image.
    mask = np.zeros((512, 512), np.uint8)
    mask[101, 101:103] = 255
    metrics = _score_lowres_pair(tmp_path, mask, np.zeros((512, 512), np.float32), (mask > 0).astype(np.float32))
    assert metrics["n_defects"] == 0  # the pit is gone at 64 px ...
    assert metrics["n_defective_images"] == 1  # ... but the image is still defective
    assert metrics["i_auroc"] == 1.0


def test_full_protocol_refuses_an_eval_size():
    from adbench_hr.errors import InputError
    from adbench_hr.scoring import check_protocol

    with pytest.raises(InputError, match="only applies to --protocol lowres"):
        check_protocol("full", 256)
    for size in (8, 4096):  # both ends of the range are accepted
        check_protocol("lowres", size)


def test_without_quiet_a_log_gets_no_progress_bar_only_the_error_line(dataset, capsys):
    root, maps, truth = dataset
    (maps / "widget" / f"{sorted(truth)[-1]}.tiff").unlink()
    assert main(["score", "--maps", str(maps), "--root", str(root), "--category", "widget", "--dataset", "folder"]) == 2
    err = capsys.readouterr().err  # not a terminal, as in a log file
    assert err.startswith("error: ") and "\r" not in err and err.count("\n") == 1, repr(err)


def test_score_file_without_a_row_for_an_image_is_an_error(dataset, capsys):
    root, maps, truth = dataset
    rows = "".join(f"{sample_id},0.5\n" for sample_id in sorted(truth)[1:])  # the first image has no row
    (maps / "widget/image_scores.csv").write_text(f"path,score\n{rows}")
    assert score(root, maps) == 2
    line = _single_error_line(capsys)
    assert f"no score for {sorted(truth)[0]}" in line and "image_scores.csv" in line


def test_maps_laid_out_otherwise_and_score_rows_named_otherwise_are_pointed_at(dataset, capsys):
    # Before: only "missing anomaly map" / "no score for ...", which did not say where the files were.
    root, maps, truth = dataset
    first = sorted(truth)[0]  # test/crack/000
    assert score(root, maps / "widget") == 2  # --maps naming the category's folder itself
    assert (f"{maps / 'widget'} holds test/ itself: pass the folder that holds widget/ as --maps"
            in _single_error_line(capsys))
    (other := maps.parent / "other").mkdir()  # the maps of other categories only
    assert score(root, other) == 2
    assert f"there is no folder widget/ in {other}" in _single_error_line(capsys)
    (maps / "widget/test").rename(maps / "widget/test_public")  # MVTec AD 2's own split name
    assert score(root, maps) == 2
    line = _single_error_line(capsys)
    assert line.endswith(f"missing anomaly map (looked for .tiff, .tif, .npy, .png); found maps elsewhere, e.g. "
                         f"test_public/crack/000.tiff: a map's path in {maps / 'widget'} is its sample id, here "
                         f"{first}, with the extension")
    (maps / "widget/test_public").rename(maps / "widget/test")
    # Rows named by the image's path in the dataset rather than by the sample id (VisA's own paths).
    rows = "".join(f"widget/Data/{sample_id.rsplit('/', 1)[1]}.JPG,0.5\n" for sample_id in sorted(truth)[:2])
    (maps / "widget/image_scores.csv").write_text(f"path,score\n{rows}")
    assert score(root, maps) == 2
    assert _single_error_line(capsys).endswith(
        f"no score for {first}; 2 row(s) match no test image, e.g. 'Data/000': a row's path is the sample id, the "
        "map's path without extension, or the image's path in the dataset")


def _lowres_metrics(defective_map: np.ndarray, mask: np.ndarray, good_map: np.ndarray) -> dict:
    """``ProtocolScorer("lowres", 16)`` of one defective and one good image, as a library user calls it."""
    from adbench_hr.datasets.base import TestSample
    from adbench_hr.scoring import ProtocolScorer

    scorer = ProtocolScorer("lowres", 16)
    scorer.add(TestSample(Path("d.png"), Path("d_mask.png"), 1, "dent", "test/dent/000"), mask, defective_map,
               None, "d.tiff")
    scorer.add(TestSample(Path("g.png"), None, 0, "good", "test/good/000"), None, good_map, None, "g.tiff")
    return scorer.compute()["metrics"]


@pytest.mark.parametrize("dtype", ["u1", ">u2", "<u2", "i1", "i4", "i8", "f2", ">f4", "f8"])
def test_lowres_maps_of_any_real_dtype_score_like_their_float_values(dtype):
    # Small integers, exact in every dtype: resizing must happen on the values, not on the stored type
    # (OpenCV resizes few dtypes, rounds integer results and misreads big-endian bytes).
    rng = np.random.default_rng(8)
    defective, good = rng.integers(0, 100, (2, 64, 48))
    mask = np.zeros((64, 48), np.uint8)
    mask[20:36, 10:30] = 1
    defective[mask > 0] += 20
    reference = _lowres_metrics(defective.astype(np.float32), mask, good.astype(np.float32))
    assert reference["aupro"]["0.3"] not in (None, 0.0, 1.0)  # a case where rounding would show
    assert _lowres_metrics(defective.astype(dtype), mask, good.astype(dtype)) == reference


def test_lowres_refuses_a_map_whose_shape_differs_from_its_mask():
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 10:20] = 255
    with pytest.raises(InputError, match=r"d\.tiff: anomaly map shape \(60, 40\) does not match ground-truth "
                                         r"shape \(40, 60\)"):
        _lowres_metrics(mask.T.astype(np.float32), mask, np.zeros((40, 60), np.float32))


def test_lowres_names_an_overflowing_resize_not_a_nan_in_the_file():
    from adbench_hr.scoring import to_eval_resolution

    # Finite, but the bilinear weights of two neighbours near float64's limit sum beyond it.
    anomaly_map = np.tile(np.array([[1.7e308, -1.7e308]]), (4, 3))
    assert np.isfinite(anomaly_map).all()
    with pytest.raises(InputError, match=r"^m\.npy: the bilinear resize to 5x5 overflows \(values near the limits "
                                         r"of float64, up to 1\.7e\+308\): scale the map$"):
        to_eval_resolution(anomaly_map, None, 5, "m.npy")
    small, _ = to_eval_resolution(anomaly_map / 4, None, 5, "m.npy")  # the same map, scaled: scored
    assert np.isfinite(small).all()


@pytest.mark.parametrize("defect_value", [np.uint16(256), np.float32(0.5), np.int16(-1)])
def test_lowres_masks_follow_the_mask_above_zero_rule(defect_value):
    from adbench_hr.scoring import to_eval_resolution

    mask = np.zeros((32, 32), np.asarray(defect_value).dtype)
    mask[8:16, 8:16] = defect_value
    _, small = to_eval_resolution(np.zeros((32, 32), np.float32), mask, 8)
    assert small.sum() == (4 if defect_value > 0 else 0)  # the 8 px square is 2 x 2 px at a quarter of the size


def test_lowres_refuses_a_nan_that_the_resize_would_not_sample():
    # 64 -> 8 px reads only source pixels 8 i + 3 and 8 i + 4: pixel (0, 0) would vanish from the small map.
    anomaly_map = np.zeros((64, 64), np.float32)
    anomaly_map[0, 0] = np.nan
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 1
    with pytest.raises(InputError, match=r"d\.tiff: anomaly map contains NaN or inf"):
        _lowres_metrics(anomaly_map, mask, np.zeros((64, 64), np.float32))


def test_a_bool_map_written_by_tifffile_scores_as_its_zeros_and_ones(dataset, tmp_path):
    # tifffile writes bool arrays as 1-bit MinIsWhite; the stored bits are the scores meant, as for masks.
    root, maps, truth = dataset
    sample_id = "test/crack/000"
    binary = truth[sample_id][0] > 0.5
    tifffile.imwrite(maps / "widget" / f"{sample_id}.tiff", binary)
    truth[sample_id] = (binary.astype(np.float32), truth[sample_id][1])
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out)) == 0
    assert json.loads(out.read_text())["metrics"] == json.loads(json.dumps(expected_metrics(truth)))


def _write_scores(path, truth, scores):
    path.write_text("path,score\n" + "".join(f"{sid},{s}\n" for sid, s in zip(sorted(truth), scores)))


def test_the_category_image_scores_csv_wins_over_the_maps_folders_with_a_warning(dataset, tmp_path, capsys):
    root, maps, truth = dataset
    # Image scores that rank the defective images lowest (I-AUROC 0), then highest (1), against the map maxima.
    low, high = [1, 1, 9, 9], [9, 9, 1, 1]  # sorted ids: crack/000, crack/001, good/000, good/001
    _write_scores(maps / "image_scores.csv", truth, high)
    _write_scores(maps / "widget/image_scores.csv", truth, low)
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["i_auroc"] == 0.0
    warning = (f"image scores read from {maps / 'widget/image_scores.csv'}; {maps / 'image_scores.csv'} is "
               "ignored (a category's image_scores.csv takes precedence)")
    assert [line for line in capsys.readouterr().err.splitlines() if "image scores read" in line] == [
        f"warning: widget: {warning}"]
    assert warning in result["warnings"]
    (maps / "image_scores.csv").unlink()  # one file: no warning
    assert score(root, maps, "--out", str(out)) == 0
    assert "warning" not in capsys.readouterr().err


def test_an_image_scores_csv_named_in_another_case_is_an_error_not_ignored(dataset, tmp_path, capsys):
    # Ignored, the map maxima would score the images instead: I-AUROC 1 where the file says 0.
    root, maps, truth = dataset
    misnamed = maps / "widget/Image_Scores.csv"
    _write_scores(misnamed, truth, [1, 1, 9, 9])  # the defective images lowest
    out = tmp_path / "r.json"
    assert score(root, maps, "--out", str(out)) == 2
    assert _single_error_line(capsys) == (f"error: {misnamed}: image score file must be named image_scores.csv "
                                          "(in lower case) to be read: rename it")
    assert not out.exists()
    misnamed.rename(maps / "widget/image_scores.csv")
    assert score(root, maps, "--out", str(out)) == 0
    assert json.loads(out.read_text())["metrics"]["i_auroc"] == 0.0


@pytest.mark.parametrize("option, value", [
    ("--method", "a\nb"), ("--method", "tab\there"), ("--method", "cr\r"), ("--method", "nul\x00"),
    ("--method", "line\u2028separator"), ("--method", ""), ("--method", "   "), ("--category", "wid\nget"),
])
def test_names_written_into_the_result_must_be_one_line_and_not_blank(dataset, tmp_path, capsys, option, value):
    # The method and category end up in one-line warnings and CSV rows of the leaderboard.
    root, maps, _ = dataset
    out = tmp_path / "r.json"
    extra = ["--method", value] if option == "--method" else []
    argv = ["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--quiet", "--out", str(out),
            "--category", value if option == "--category" else "widget", *extra]
    assert main(argv) == 2
    line = _single_error_line(capsys)
    if value.strip():
        assert line == f"error: {option} must not contain control characters (newline, tab ...), got {value!r}"
    else:
        assert line == f"error: {option} must be a non-empty string"
    assert not out.exists()
    assert score(root, maps, "--out", str(out), "--method", "my method (v2) ü") == 0  # spaces and letters are fine
    assert json.loads(out.read_text())["method"] == "my method (v2) ü"


def test_a_maps_folder_whose_name_holds_a_newline_needs_a_method(dataset, tmp_path, capsys):
    root, maps, _ = dataset
    odd = maps.rename(tmp_path / "run\n1")
    out = tmp_path / "r.json"
    assert score(root, odd, "--out", str(out)) == 2
    assert _single_error_line(capsys).endswith(
        ": the folder's name, the default --method, must not contain control characters (newline, tab ...), got "
        "'run\\n1'; pass --method NAME")
    assert score(root, odd, "--out", str(out), "--method", "run 1") == 0


def test_lowres_without_eval_size_says_what_is_missing(dataset, capsys):
    root, maps, _ = dataset
    assert score(root, maps, "--protocol", "lowres") == 2
    assert _single_error_line(capsys) == "error: --protocol lowres needs --eval-size N (8 <= N <= 4096, e.g. 256)"


def test_format_summary_prints_each_metric_in_its_column():
    # A hand-made result: every value distinct, so that a metric printed in another's place shows; 0.875 shows
    # the three decimals. A null prints as n/a.
    limits = {"0.3": 0.5, "0.05": None}
    metrics = {
        "i_auroc": 0.875, "p_auroc": 0.95, "n_images": 10, "n_defective_images": 4, "n_defects": 7,
        "aupro": limits,
        "aupro_cumulative": {"Q1": {"0.3": 0.25, "0.05": None}, "Q2": {"0.3": 0.3, "0.05": None},
                             "Q3": {"0.3": 0.6, "0.05": None}, "Q4": {"0.3": 0.75, "0.05": None}},
        "rho": {"0.3": 0.1, "0.05": None},
        "original_defects": {"n_defects": 3, "n_lost_defects": 1, "aupro": {"0.3": 0.4, "0.05": None},
                             "rho": {"0.3": 0.2, "0.05": None}},
    }
    result = {"method": "m", "dataset": "d", "category": "c", "protocol": {"name": "lowres"}, "metrics": metrics}
    assert format_summary(result).splitlines() == [
        "m | d | c | protocol lowres",
        "  I-AUROC 0.875   P-AUROC 0.950   images 10 (defective 4), defects 7",
        "  limit   AUPRO   Q1(cum)  Q4(cum)  rho",
        "  0.3    0.500   0.250    0.750   0.100",
        "  0.05     n/a     n/a      n/a     n/a",
        "  original defects: 3 scored, 1 lost; AUPRO@0.3 0.400, rho@0.3 0.200",
    ]
    del metrics["original_defects"]
    assert "original defects" not in format_summary(result)


@pytest.fixture()
def two_categories(dataset):
    """``dataset`` plus a category ``gadget``: widget's images with the maps of widget's good and defective
    images swapped (so its numbers differ)."""
    root, maps, truth = dataset
    shutil.copytree(root / "widget", root / "gadget")
    swapped = {}
    for sample_id, (anomaly_map, _) in truth.items():
        other = sample_id.replace("good", "@").replace("crack", "good").replace("@", "crack")
        swapped[other] = (anomaly_map, truth[other][1])
        path = maps / "gadget" / f"{other}.tiff"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, anomaly_map)
    return root, maps, {"widget": truth, "gadget": swapped}


def score_many(root, maps, *extra):
    return main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--quiet", *extra])


def test_without_category_every_category_with_maps_is_scored(two_categories, capsys):
    root, maps, truth = two_categories
    assert score_many(root, maps) == 0
    for category in ("gadget", "widget"):
        result = json.loads((maps / f"result_{category}.json").read_text())
        assert result["category"] == category
        assert result["metrics"] == json.loads(json.dumps(expected_metrics(truth[category])))
    assert capsys.readouterr().out.count("result written to") == 2


def test_a_category_without_maps_is_named_and_not_scored(two_categories, capsys):
    root, maps, _ = two_categories
    (root / "bare").mkdir()
    (root / "bare" / "test").mkdir()  # a category of the dataset (even an empty one) without maps
    assert score_many(root, maps, "--category", "widget", "gadget") == 0  # named ones: no warning
    assert "warning" not in capsys.readouterr().err
    assert score_many(root, maps) == 0
    err = capsys.readouterr().err.strip()
    assert err == f"warning: {maps}: no maps for 1 of 3 categories (bare): not scored"
    assert not (maps / "result_bare.json").exists()


def test_several_categories_write_into_the_out_folder(two_categories, tmp_path, capsys):
    root, maps, truth = two_categories
    out = tmp_path / "scored"
    assert score_many(root, maps, "--category", "widget", "gadget", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gadget.json", "widget.json"]
    gadget = json.loads((out / "gadget.json").read_text())
    assert gadget["metrics"] == json.loads(json.dumps(expected_metrics(truth["gadget"])))
    # One category: --out is the file, as before.
    assert score_many(root, maps, "--category", "gadget", "--out", str(tmp_path / "one.json")) == 0
    assert json.loads((tmp_path / "one.json").read_text())["metrics"] == gadget["metrics"]
    # No category named: a folder, even where MAPS holds one category only.
    shutil.rmtree(maps / "widget")
    assert score_many(root, maps, "--out", str(tmp_path / "all")) == 0
    assert [p.name for p in (tmp_path / "all").iterdir()] == ["gadget.json"]


@pytest.mark.parametrize("extra, problem", [
    (("--category", "widget,gadget", "--out", "{tmp}/all.json"),
     "{tmp}/all.json: 2 categories are scored: --out names the folder for their <category>.json results, not a file"),
    (("--category", "widget", "nope"), "{root}: unknown category 'nope' (available: gadget, widget)"),
    (("--out", "{tmp}/all.json"),
     "{tmp}/all.json: every category with maps is scored: --out names the folder for their <category>.json "
     "results, not a file"),
])
def test_several_categories_are_checked_before_any_result_is_written(two_categories, tmp_path, capsys, extra,
                                                                       problem):
    root, maps, _ = two_categories
    extra = [part.format(tmp=tmp_path) for part in extra]
    assert score_many(root, maps, *extra) == 2
    assert _single_error_line(capsys) == "error: " + problem.format(tmp=tmp_path, root=root)
    assert not list(maps.glob("result_*.json")) and not (tmp_path / "all.json").exists()


def test_maps_of_no_category_are_refused(two_categories, tmp_path, capsys):
    root, _, _ = two_categories
    (tmp_path / "elsewhere" / "test").mkdir(parents=True)  # maps one level too deep: no category folder
    assert score_many(root, tmp_path / "elsewhere") == 2
    line = _single_error_line(capsys)
    assert line == (f"error: {tmp_path / 'elsewhere'}: no category folder here (maps go in "
                    "MAPS/<category>/test/<defect>/<stem>.tiff; the dataset's categories: gadget, widget)")


@pytest.mark.parametrize("rewrite", ["a map replaced", "the folder marked"])
def test_maps_that_a_run_starts_rewriting_while_they_are_scored_are_refused(dataset, tmp_path, capsys, monkeypatch,
                                                                             rewrite):
    # A run resumed with other settings may begin rewriting a run's maps after `score` checked the folder: the
    # result would mix the maps of two runs and match neither set.
    import adbench_hr.scoring as scoring
    from adbench_hr.maps import mark_maps_incomplete, write_map

    root, maps, _ = dataset
    real_read_map, read = scoring.read_map, []

    def read_while_a_run_rewrites(path):
        read.append(Path(path))
        if len(read) == 2:  # the run starts after the first map was read
            if rewrite == "a map replaced":
                write_map(read[0], np.zeros(tifffile.imread(read[0]).shape, np.float32))
            else:
                mark_maps_incomplete(maps, "widget")
        return real_read_map(path)

    monkeypatch.setattr(scoring, "read_map", read_while_a_run_rewrites)
    out = tmp_path / "widget.json"
    assert score(root, maps, "--out", str(out)) == 2
    err = _single_error_line(capsys)
    if rewrite == "a map replaced":
        assert err.startswith(f"error: {read[0]}: changed while the maps were being scored")
    else:
        assert err.startswith(f"error: {maps / 'widget'}: these maps are being written")
    assert len(read) == len(SIZES) * 2 and not out.exists()  # every map read, nothing written


def test_checked_mask_reads_the_image_size_when_none_is_given(dataset):
    root, _, truth = dataset
    samples = {s.sample_id: s for s in open_dataset("folder", root).test_samples("widget")}
    crack = samples["test/crack/001"]  # 37 x 41 px (SIZES)
    np.testing.assert_array_equal(checked_mask(crack, None, "m.tiff") > 0, truth["test/crack/001"][1])
    assert checked_mask(samples["test/good/001"], np.zeros((37, 41), np.float32), "m.tiff") is None
    with pytest.raises(InputError, match="anomaly map is 40x52 but the image 001.jpg is 37x41") as error:
        checked_mask(crack, np.zeros((40, 52), np.float32), "m.tiff")
    assert str(error.value.path) == "m.tiff"


@pytest.mark.parametrize("protocol, eval_size", [("full", None), ("lowres", 16)])
@pytest.mark.parametrize("anomaly_map", [np.zeros((0, 0), np.float32), np.array([["a", "b"]]), np.zeros((2, 0))],
                         ids=["empty", "text", "no-columns"])
def test_protocol_scorer_add_refuses_an_unscorable_map_with_an_input_error(protocol, eval_size, anomaly_map):
    # ProtocolScorer.add documents an InputError naming the map for a map that cannot be scored: without an
    # image score it took the map's maximum first, and numpy's ValueError / UFuncTypeError came instead.
    from adbench_hr.datasets.base import TestSample
    from adbench_hr.scoring import ProtocolScorer

    scorer = ProtocolScorer(protocol, eval_size)
    good = TestSample(Path("g.png"), None, 0, "good", "test/good/000")
    with pytest.raises(InputError, match=r"^g\.tiff: anomaly map must be"):
        scorer.add(good, None, anomaly_map, None, "g.tiff")
    assert scorer.metrics.n_images == 0
