"""``bench/score_end_to_end.py`` on a tiny category: it writes the inputs, scores them in a fresh process and
times the phases in its own, and the phases it wraps exist under those names (a renamed function would
silently drop out of the table)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("score_end_to_end.py")


def test_every_timed_phase_exists(bench):
    for (module_name, class_name), names in bench.PHASES.items():
        owner = importlib.import_module(module_name)
        owner = getattr(owner, class_name) if class_name else owner
        assert all(callable(getattr(owner, name, None)) for name in names), (module_name, class_name)


def test_tiny_run_scores_and_times_the_phases(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--images", "4", "--defective", "2", "--width", "60", "--height", "40", "--formats", "png",
            "--protocols", "lowres", "--eval-size", "16", "--repeat", "1", "--keep", str(tmp_path / "in"),
            "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    run = report["runs"]["png/lowres"]
    assert len(run["wall_s"]) == 1 and run["median_s"] > 0
    phases = run["phases_s_calls"]
    assert phases["image_size"][1] == phases["read_map"][1] == 4 and phases["ProtocolScorer.compute"][1] == 1
    assert run["metrics"]["n_defects"] >= 2
    assert sorted(p.suffix for p in (tmp_path / "in/data/widget/test").rglob("*.*")) == [".jpg", ".jpg", ".png", ".png"]
    assert json.loads(capsys.readouterr().out) == report


def test_the_inputs_are_written_and_scored_under_python_optimize(tmp_path):
    # `python -O` strips asserts: the script wrote its images and ran the in-process score inside `assert`s, so it
    # timed a category without images (and a score that never ran).
    script = Path(__file__).resolve().parents[2] / "bench" / "score_end_to_end.py"
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "-O", str(script), "--images", "2", "--defective", "1", "--width", "40",
                    "--height", "30", "--formats", "png", "--protocols", "lowres", "--eval-size", "16", "--repeat",
                    "1", "--keep", str(tmp_path / "in"), "--out", str(out)], check=True, capture_output=True,
                   timeout=300)
    data = tmp_path / "in/data/widget"
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*.*")) == [
        "ground_truth/crack/000_mask.png", "test/crack/000.png", "test/good/001.jpg", "train/good/000.png"]
    phases = json.loads(out.read_text())["runs"]["png/lowres"]["phases_s_calls"]
    assert phases["total"][1] == 1 and phases["read_map"][1] == 2
