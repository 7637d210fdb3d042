"""Per-category peak host memory of `run` results (Linux resets the peak through /proc)."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from adbench_hr.runner import _peak_host_memory_mb, _reset_peak_host_memory

BLOCK_MIB = 256


def _touch_and_free_a_block() -> None:
    # An anonymous mapping of its own, not a numpy array: a long test process's malloc may serve a large
    # block from freed memory that is still resident, which adds nothing to the resident size (once, in CI,
    # the peak did not move). Fresh pages, one write each, make all of the block resident.
    block = mmap.mmap(-1, BLOCK_MIB * 2**20)
    pages = np.frombuffer(block, dtype=np.uint8)
    pages[:: mmap.PAGESIZE] = 1
    assert int(pages[-mmap.PAGESIZE]) == 1
    del pages  # the buffer must be released before the mapping is closed
    block.close()


def test_peak_covers_a_freed_block_and_the_reset_forgets_it(peak_reset_works):
    if not peak_reset_works:
        pytest.skip("the peak reset needs Linux's /proc/self/clear_refs, writable (not in every sandbox)")
    assert _reset_peak_host_memory()
    before = _peak_host_memory_mb()
    _touch_and_free_a_block()
    peak = _peak_host_memory_mb()
    assert peak >= before + 0.9 * BLOCK_MIB
    assert _reset_peak_host_memory()
    # Freed large blocks go back to the OS, so after the reset the peak is the (smaller) current size.
    assert _peak_host_memory_mb() <= peak - 0.9 * BLOCK_MIB


def test_peak_falls_back_to_rusage_without_proc(monkeypatch, tmp_path):
    import adbench_hr.runner as runner

    monkeypatch.setattr(runner, "_PROC_STATUS", tmp_path / "no-status")
    monkeypatch.setattr(runner, "_PROC_CLEAR_REFS", tmp_path / "no-dir" / "clear_refs")
    assert runner._reset_peak_host_memory() is False
    # Without a reset the rusage maximum is the process's peak so far: at least the current block.
    _touch_and_free_a_block()
    # At most the machine's memory: the rusage maximum is in kB here, and a unit slip would be 1024 x off.
    physical_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert BLOCK_MIB <= runner._peak_host_memory_mb() <= physical_mib


def test_gpu_calls_name_the_method_device_not_the_current_one(monkeypatch):
    # A bare torch.cuda.synchronize() / max_memory_allocated() / get_device_name() acts on the current
    # device (cuda:0): a method on cuda:1 had its timings, peak memory and GPU name taken from another GPU.
    import torch

    import adbench_hr.runner as runner

    calls = []

    def record(name, result=None):
        def fake(*args, **kwargs):
            calls.append((name, args, kwargs))
            return result
        return fake

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "synchronize", record("synchronize"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", record("max_memory_allocated", 2**20))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", record("reset_peak_memory_stats"))
    monkeypatch.setattr(torch.cuda, "get_device_name", record("get_device_name", "GPU one"))
    runner._sync("cuda:1")
    assert runner._peak_memory("cuda:1")["peak_gpu_memory_mb"] == 1.0
    assert runner._device_name("cuda:1") == "cuda:1 (GPU one)"
    runner._reset_peak_gpu_memory()
    assert calls == [
        ("synchronize", ("cuda:1",), {}),
        ("max_memory_allocated", ("cuda:1",), {}),
        ("get_device_name", ("cuda:1",), {}),
        ("reset_peak_memory_stats", (0,), {}),
        ("reset_peak_memory_stats", (1,), {}),
    ]
