"""What macOS and Windows do differently from Linux, simulated on Linux: modules the system lacks, file systems
that ignore case or Unicode form, and the line ending of text files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import adbench_hr.runner as runner

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
