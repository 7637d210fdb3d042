"""What macOS and Windows do differently from Linux, simulated on Linux: modules the system lacks, file systems
that ignore case or Unicode form, and the line ending of text files."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

import adbench_hr.runner as runner
from adbench_hr.cli.main import main

# A child interpreter in which `import resource` fails as it does on Windows, running the CLI with the
# torch-free plug-in method of the tests registered.
_WITHOUT_RESOURCE = """
import importlib.abc, sys

class NoResource(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "resource":
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NoResource())
sys.path.insert(0, sys.argv[1])
from plugin_methods import GrayDistance

from adbench_hr.methods import register_method

register_method(GrayDistance)
from adbench_hr.cli.main import main

sys.exit(main(sys.argv[2:]))
"""


def test_run_works_where_there_is_no_resource_module(tiny_synthetic_root, tmp_path):
    argv = ["run", "--method", "gray-distance", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
            "--out", str(tmp_path), "--category", "wood_grain", "--quiet"]
    done = subprocess.run([sys.executable, "-c", _WITHOUT_RESOURCE, str(Path(__file__).parent), *argv],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "gray-distance/synthetic/results/wood_grain.json").read_text(encoding="utf-8"))
    assert result["timing"]["peak_host_memory_mb"] > 0  # from /proc, which Linux has


def test_host_peak_is_null_where_the_system_reports_none(monkeypatch, tmp_path):
    # Windows: neither /proc nor rusage. The peak is unknown, not 0 and not a crash.
    monkeypatch.setattr(runner, "resource", None)
    monkeypatch.setattr(runner, "_PROC_STATUS", tmp_path / "no-status")
    monkeypatch.setattr(runner, "_PROC_CLEAR_REFS", tmp_path / "no-dir" / "clear_refs")
    assert runner._reset_peak_host_memory() is False
    assert runner._peak_memory("cpu") == {"peak_host_memory_mb": None}


def test_host_peak_comes_from_rusage_without_proc(monkeypatch, tmp_path):
    class FakeResource:
        RUSAGE_SELF = 0

        @staticmethod
        def getrusage(who):
            return type("Usage", (), {"ru_maxrss": 3 * 2**20})()

    monkeypatch.setattr(runner, "resource", FakeResource)
    monkeypatch.setattr(runner, "_PROC_STATUS", tmp_path / "no-status")
    monkeypatch.setattr(runner.sys, "platform", "darwin")  # macOS counts bytes
    assert runner._peak_memory("cpu") == {"peak_host_memory_mb": 3.0}
    monkeypatch.setattr(runner.sys, "platform", "freebsd14")  # the BSDs and Linux count kB
    assert runner._peak_memory("cpu") == {"peak_host_memory_mb": 3072.0}


# ------------------------------------------------------------------ names that differ only in case or Unicode form

NFD_CAFE = unicodedata.normalize("NFD", "café")  # as macOS's HFS+ stores the name


def _image(path: Path, value: int = 120) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((16, 20), value, np.uint8)), path


def _mvtec(root: Path, category: str = "widget", defects: dict[str, list[str]] | None = None) -> Path:
    """A category with one training and one good test image, and ``{defect folder: [stems]}`` with masks."""
    _image(root / category / "train/good/000.png")
    _image(root / category / "test/good/000.png")
    for defect, stems in (defects or {"crack": ["000"]}).items():
        for stem in stems:
            _image(root / category / "test" / defect / f"{stem}.png", 200)
            mask = np.zeros((16, 20), np.uint8)
            mask[2:5, 3:7] = 255
            assert cv2.imwrite(str(root / category / "ground_truth" / defect / f"{stem}_mask.png"), mask)
    return root


def _build(root: Path, category: str, defects: dict[str, list[str]]) -> Path:
    for defect in defects:
        (root / category / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
    return _mvtec(root, category, defects)


def _check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["datasets", "check", "--root", str(root), "--dataset", "folder"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("defects", "second"),
    [
        ({"scratch": ["A", "a"]}, "test/scratch/a.png"),  # stems
        ({"Scratch": ["000"], "scratch": ["000"]}, "test/scratch/000.png"),  # defect folders
        ({"scratch": ["café", NFD_CAFE]}, "test/scratch/café.png"),  # decomposed accent first in code-point order
    ],
)
def test_test_images_whose_maps_would_be_one_file_on_macos_are_refused(defects, second, tmp_path, capsys):
    root = _build(tmp_path / "data", "widget", defects)
    code, err = _check(root, capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"error: {root / 'widget' / second}: sample ids ")
    assert "differ only in case or Unicode form" in err


def test_ids_that_differ_otherwise_are_kept(tmp_path, capsys):
    root = _build(tmp_path / "data", "widget", {"scratch": ["A", "b"], "crack": ["A"]})
    assert main(["datasets", "check", "--root", str(root), "--dataset", "folder", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["widget"]["n_test_defective"] == 3


def test_visa_ids_that_differ_only_in_case_are_refused(tmp_path, capsys):
    root = tmp_path / "visa"
    rows = ["object,split,label,image,mask"]
    for split, label, image, mask in (
        ("train", "normal", "candle/Data/Images/Normal/000.JPG", ""),
        ("test", "normal", "candle/Data/Images/Normal/001.JPG", ""),
        ("test", "anomaly", "candle/Data/Images/Anomaly/Q.JPG", "candle/Data/Masks/Anomaly/Q.png"),
        ("test", "anomaly", "candle/Data/Images/Other/q.JPG", "candle/Data/Masks/Other/q.png"),
    ):
        _image(root / image, 200 if mask else 120)
        if mask:
            _image(root / mask, 255)
        rows.append(f"candle,{split},{label},{image},{mask}")
    (root / "split_csv").mkdir()
    (root / "split_csv/1cls.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["datasets", "check", "--root", str(root), "--dataset", "visa"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {root / 'candle/Data/Images/Other/q.JPG'}: sample ids 'test/bad/Q' and 'test/bad/q' "
                   "differ only in case or Unicode form: their anomaly maps would be one file on macOS and Windows; "
                   "rename one of them\n")


@pytest.fixture()
def gray_distance(private_registry: dict) -> None:
    """The tests' torch-free plug-in method, registered for one test."""
    from plugin_methods import GrayDistance

    from adbench_hr.methods import register_method

    register_method(GrayDistance)


@pytest.mark.parametrize("second", ["widget", NFD_CAFE])
def test_categories_whose_results_would_be_one_file_on_macos_are_refused(second, gray_distance, tmp_path, capsys):
    first = "Widget" if second == "widget" else "café"
    root = tmp_path / "data"
    maps = tmp_path / "maps"
    for category in (first, second):
        _build(root, category, {"crack": ["000"]})
        for sample in ("test/good/000", "test/crack/000"):
            (maps / category / sample).parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(maps / category / f"{sample}.tiff", np.zeros((16, 20), np.float32))
    code = main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--out",
                 str(tmp_path / "results/"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {root}: categories ") and err.count("\n") == 1
    assert "differ only in case or Unicode form" in err
    assert not (tmp_path / "results").exists()  # refused before any result is written
    code = main(["run", "--method", "gray-distance", "--root", str(root), "--dataset", "folder", "--out",
                 str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {root}: categories ") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    # One of them alone is scored.
    assert main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--category", second,
                 "--out", str(tmp_path / "one.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))["category"] == second


@pytest.mark.parametrize("on_disk", [NFD_CAFE, "café"])
def test_a_category_typed_in_another_unicode_form_selects_its_folder(on_disk, tmp_path, capsys):
    # macOS lists a folder stored decomposed (HFS+) as such, and a terminal types the accent composed.
    typed = unicodedata.normalize("NFC" if on_disk == NFD_CAFE else "NFD", on_disk)
    assert typed != on_disk
    root = _build(tmp_path / "data", on_disk, {"crack": ["000"]})
    _build(root, "widget", {"crack": ["000"]})
    assert main(["datasets", "check", "--root", str(root), "--dataset", "folder", "--category", typed, "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == [on_disk]
    maps = tmp_path / "maps"
    for sample in ("test/good/000", "test/crack/000"):
        (maps / on_disk / sample).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(maps / on_disk / f"{sample}.tiff", np.zeros((16, 20), np.float32))
    assert main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--category", typed,
                 "--out", str(tmp_path / "r.json"), "--quiet"]) == 0
    # Recorded as listed, so that it matches the results of a run over all categories.
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["category"] == on_disk


# ------------------------------------------------------------------ line endings


def test_leaderboard_csvs_are_the_same_bytes_where_lines_end_in_crlf(monkeypatch, tmp_path):
    import pandas as pd

    from adbench_hr.leaderboard import write_csv

    frame = pd.DataFrame({"method": ["ts-mlp", "café"], "rho@0.3": [0.5, 0.25]})
    expected = "method,rho@0.3\nts-mlp,0.5\ncafé,0.25\n".encode()
    assert write_csv(frame, tmp_path / "linux.csv").read_bytes() == expected
    monkeypatch.setattr("os.linesep", "\r\n")  # as on Windows
    assert write_csv(frame, tmp_path / "windows.csv").read_bytes() == expected
