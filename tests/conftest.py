"""Fixtures shared by every test package.

``tiny_synthetic_root`` (session scope) -> ``pathlib.Path``
    A tiny copy of the built-in synthetic dataset, generated once per test session (< 1 s), in the
    MVTec AD layout (``ROOT/CATEGORY/{train/good, test/good, test/<defect>, ground_truth/<defect>}``)
    with a ``meta.json`` at the root. Treat it as read-only. Contents (see ``TINY_SYNTHETIC``):

    - ``brushed_metal``: 160x160 px, stored as single-channel (grayscale) PNG;
    - ``wood_grain``: 160 px wide x 120 px high, RGB PNG (non-square on purpose);
    - each category: 4 train good, 2 test good, 4 test defective images (one or more defects each,
      masks ``ground_truth/<defect>/<stem>_mask.png`` with values 0/255, sizes from 4 px up).

``tiny_synthetic_dataset`` (session scope) -> ``adbench_hr.datasets.Dataset``
    The same folder opened with ``open_dataset("synthetic", tiny_synthetic_root)``.

``private_registry`` -> ``dict``
    A private copy of the method registry for one test (built-in methods included), so that the methods a
    test registers do not leak into later tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from adbench_hr.datasets import Dataset

# No test touches the network, in this process or in the CLI processes it starts: the hub client reads only
# its cache, and the hub reachability probe meets a closed local port at once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"

# Property tests draw the same examples on every run (a failure reproduces on any machine) and keep no
# example database in the working tree.
settings.register_profile("adbench-hr", database=None, derandomize=True)
settings.load_profile("adbench-hr")

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cpu_fp8: runs FP8 matrix products on the CPU (skipped where torch lacks them)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # An environment skip: FP8 products on the CPU need a torch whose CPU torch._scaled_mm takes per-row scales
    # (2.12 on); the package refuses fp8 there with this reason, which tests/methods/test_fp8.py checks on any torch.
    marked = [item for item in items if item.get_closest_marker("cpu_fp8")]
    if not marked:
        return
    import torch

    from adbench_hr.methods._fp8 import fp8_unsupported_reason

    if reason := fp8_unsupported_reason(torch.device("cpu")):
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


# Parameters of the tiny synthetic fixture, importable by tests that need the exact numbers.
TINY_SYNTHETIC = {
    "seed": 0,
    "size": 160,
    "categories": ("brushed_metal", "wood_grain"),
    "counts": (4, 2, 4),  # train good, test good, test defective (per category)
}


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a tiny synthetic dataset (2 categories x 10 images, 160 px); see the module docstring."""
    from adbench_hr.datasets.synthetic import generate_synthetic

    out = tmp_path_factory.mktemp("tiny-synthetic") / "synthetic"
    return generate_synthetic(
        out,
        seed=TINY_SYNTHETIC["seed"],
        size=TINY_SYNTHETIC["size"],
        categories=TINY_SYNTHETIC["categories"],
        counts=TINY_SYNTHETIC["counts"],
        workers=1,
    )


@pytest.fixture(scope="session")
def peak_reset_works() -> bool:
    """Whether this system lets a process reset its peak resident size (Linux's ``/proc/self/clear_refs``).

    Tried with a write of the fixture's own, not judged from the file's presence or permissions: some sandboxes
    have no such file, and some show it but refuse the write, which root's ``os.access`` does not foresee.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return Path("/proc/self/status").is_file()


@pytest.fixture(scope="session")
def tiny_synthetic_dataset(tiny_synthetic_root: Path) -> Dataset:
    """``tiny_synthetic_root`` opened as a dataset (name ``"synthetic"``)."""
    from adbench_hr.datasets import open_dataset

    return open_dataset("synthetic", tiny_synthetic_root)


@pytest.fixture()
def private_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the method registry, so that registrations in a test do not leak (module docstring)."""
    from adbench_hr.methods import registry

    # The built-ins first: loaded lazily into the copy, they would vanish with it, and the registry, marked as
    # loaded, would not load them again (every later test would find no method).
    registry._load_builtins()
    copy = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", copy)
    monkeypatch.setattr(registry, "_warned_shadowed", set())
    monkeypatch.setattr(registry, "_PACKAGES", {})
    return copy
