"""``bench/gpu_ts_mlp.py``, the script the rare GPU sessions run once: its smoke mode on the CPU, and that a
failing or late stage costs only itself."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("gpu_ts_mlp.py")


SMOKE = ["--smoke", "--skip-train", "--skip-kernels", "--iters", "2", "--warmup", "0"]


def test_smoke_run_measures_every_variant_and_size(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--skip-consistency", "--out", str(out), "--variants", "fp32,bf16w+tf32,fp8"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == [] and result["skipped"] == []
    rows = {(row["variant"], row["size_wxh"]) for row in result["predict"]}
    assert rows == {(v, s) for v in ("fp32", "bf16w+tf32", "fp8") for s in ("128x128", "150x100")}
    distance = {row["variant"]: row["max_rel_diff_vs_first_variant"] for row in result["predict"]
                if row["size_wxh"] == "128x128"}
    assert distance["fp32"] == 0.0
    # The bench teacher's blocks count (LayerScale 1): bf16 weights and FP8 land at different distances.
    assert 0 < distance["bf16w+tf32"] < 0.05 and 0 < distance["fp8"] < 0.05
    assert distance["fp8"] != distance["bf16w+tf32"]
    assert "| 150x100 | fp8 |" in capsys.readouterr().out


def test_a_failing_stage_is_recorded_and_the_others_still_run(bench, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(bench, "_consistency", broken)
    real_predict_variant = bench._predict_variant

    def first_variant_breaks(name, *args, **kwargs):
        if name == "fp32":
            broken()
        return real_predict_variant(name, *args, **kwargs)

    monkeypatch.setattr(bench, "_predict_variant", first_variant_breaks)
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--out", str(out), "--variants", "fp32,bf16"]) == 0
    result = json.loads(out.read_text())
    assert [e["stage"] for e in result["errors"]] == ["fp32", "consistency"]
    assert "illegal memory access" in result["errors"][1]["error"]
    assert {row["variant"] for row in result["predict"]} == {"bf16"}


def test_nothing_new_starts_after_the_deadline(bench, tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--out", str(out), "--variants", "fp32,bf16", "--deadline", "0"]) == 0
    result = json.loads(out.read_text())
    assert result["skipped"] == ["fp32", "bf16", "consistency"] and result["predict"] == []


def test_fp8_on_a_gpu_without_fp8_is_reported_as_unsupported_and_the_rest_still_runs(bench, tmp_path, monkeypatch):
    # An H100/H200 cannot show what a GPU of compute capability < 8.9 does: torch is told FP8 is missing.
    import torch

    reason = "FP8 matrix products need a GPU of compute capability >= 8.9 (Ada, Hopper or newer); X has 8.0"
    monkeypatch.setattr(bench, "_fp8_reason", lambda device: reason)
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--out", str(out), "--variants", "fp32,fp8+tf32"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == [] and result["unsupported"] == [{"stage": "fp8+tf32", "reason": reason}]
    assert {row["variant"] for row in result["predict"]} == {"fp32"}
    consistency = result["consistency"]
    assert consistency["fp8_unsupported"] == reason
    assert "max_abs_diff_cpu_vs_cpu_bf16" in consistency and not [k for k in consistency if k.endswith("_fp8")]
    assert result["compute_capability"] is None  # the CPU has none
    assert f"not run, unsupported on this device: fp8+tf32 ({reason})" in bench.render_markdown(result)
    assert "compute capability 8.0 (torch" in bench.render_markdown({**result, "compute_capability": "8.0"})
    # The kernel floor keeps its bf16 and quantisation timings and names what it left out.
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # no inductor build on the CPU
    kernels = bench._kernel_floor(torch.device("cpu"), 1, 0, tokens=30, dim=48, heads=2)
    assert kernels["linear_fp8_unsupported"] == reason
    assert "linear_fp8_ms" not in kernels and "linear_fp8_tflops" not in kernels
    assert kernels["linear_bf16_ms"] > 0 and kernels["quantize_eager_ms"] > 0
