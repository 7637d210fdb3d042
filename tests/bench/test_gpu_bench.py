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
