"""Fixtures of the benchmark scripts' tests: the scripts live in ``bench/``, outside the package."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def load_bench() -> Callable[[str], ModuleType]:
    """Import a script of ``bench/`` by file name (``"gpu_ts_mlp.py"``) as a module."""

    def load(file_name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"bench_{Path(file_name).stem}", BENCH_DIR / file_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
