"""``bench/gpu_ts_mlp.py``, the script the rare GPU sessions run once: its smoke mode on the CPU, and that a
failing or late stage costs only itself."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("gpu_ts_mlp.py")


# On the CPU even where a GPU is: these tests expect the CPU's records (no compute capability, the graph
# memory "skipped: no CUDA", device "cpu"); a GPU's are checked by the device run (docs/performance.md).
SMOKE = ["--smoke", "--device", "cpu", "--skip-train", "--skip-kernels", "--iters", "2", "--warmup", "0"]


@pytest.mark.cpu_fp8  # the fp8 variant on the CPU
def test_smoke_run_measures_every_variant_and_size(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--skip-consistency", "--skip-robustness", "--out", str(out),
                       "--variants", "fp32,bf16w+tf32,fp8"]) == 0
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
    assert bench.main([*SMOKE, "--skip-robustness", "--out", str(out), "--variants", "fp32,bf16"]) == 0
    result = json.loads(out.read_text())
    assert [e["stage"] for e in result["errors"]] == ["fp32", "consistency"]
    assert "illegal memory access" in result["errors"][1]["error"]
    assert {row["variant"] for row in result["predict"]} == {"bf16"}


def test_nothing_new_starts_after_the_deadline(bench, tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--out", str(out), "--variants", "fp32,bf16", "--deadline", "0"]) == 0
    result = json.loads(out.read_text())
    assert result["skipped"] == ["fp32", "bf16", "consistency", "robustness/graphs", "robustness/compile",
                                 "robustness/device"]
    assert result["predict"] == [] and result["robustness"] == {}


def test_fp8_on_a_gpu_without_fp8_is_reported_as_unsupported_and_the_rest_still_runs(bench, tmp_path, monkeypatch):
    # An H100/H200 cannot show what a GPU of compute capability < 8.9 does: torch is told FP8 is missing.
    import torch

    reason = "FP8 matrix products need a GPU of compute capability >= 8.9 (Ada, Hopper or newer); X has 8.0"
    monkeypatch.setattr(bench, "fp8_unsupported_reason", lambda device: reason)
    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--skip-robustness", "--out", str(out), "--variants", "fp32,fp8+tf32"]) == 0
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


def test_smoke_run_covers_the_robustness_stage(bench, tmp_path, capsys):
    import torch

    from adbench_hr.methods.ts_mlp import _MAX_GRAPHS

    out = tmp_path / "bench.json"
    assert bench.main([*SMOKE, "--skip-predict", "--skip-consistency", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == [] and set(result["robustness"]) == {"graphs", "compile", "device"}
    graphs, compiled, device = (result["robustness"][part] for part in ("graphs", "compile", "device"))
    # More shapes than graphs are kept, each three times, then three of the first again; every map equal to
    # the eager instance's. The memory bookkeeping needs CUDA.
    assert graphs["shapes"] == 2 * _MAX_GRAPHS + 3 and len(graphs["rounds"]) == graphs["shapes"] + 3
    assert len({row["shape_wxh"] for row in graphs["rounds"]}) == graphs["shapes"]
    assert [row["shape_wxh"] for row in graphs["rounds"][-3:]] == [row["shape_wxh"] for row in graphs["rounds"][:3]]
    assert graphs["maps_identical"] and graphs["memory"] == "skipped: no CUDA" and graphs["ok"]
    # 20 training images in batches of 16 and 4, single images, then batches of every length 1..16: padded
    # to 1, 2, 4, 8 and 16 images, five compilations, no recompile-limit fallback; a second instance reuses them.
    assert compiled["backend"] == "eager (smoke)" and compiled["entries_after_fit"] == 2
    assert compiled["compilations"] == compiled["expected_compilations"] == 5
    assert compiled["second_instance_new_compilations"] == 0
    assert compiled["recompile_limit_hits"] == 0 and compiled["recompile_limit_warnings"] == []
    assert compiled["max_rel_diff_vs_uncompiled"] <= compiled["rel_tolerance"] and compiled["ok"]
    on_cpu = {"teacher": "cpu", "students": "cpu", "preprocessing": "cpu"}
    assert device["expected"] == "cpu" and device["cpu"]["placed"] == on_cpu
    if torch.cuda.is_available():  # a GPU machine: "auto" means cuda, not this run's cpu
        assert device["auto"] == "skipped: auto is cuda here, and this run is on the cpu"
    else:
        assert device["auto"]["placed"] == on_cpu
    assert device["set_device_switch"] == "skipped: no CUDA" and device["ok"]
    printed = capsys.readouterr().out
    assert "| graphs | yes |" in printed and "| compile | yes | backend eager (smoke); 5 compilations" in printed
    auto = ("auto: skipped: auto is cuda here, and this run is on the cpu" if torch.cuda.is_available()
            else "auto: device cpu, placed ['cpu']")
    assert (f"| device | yes | expected cpu; cpu: device cpu, placed ['cpu']; {auto}; set_device switch: skipped: "
            "no CUDA |") in printed


def test_the_device_check_on_the_cpu_of_a_gpu_machine_leaves_auto_out(bench, monkeypatch):
    # --device cpu where CUDA is available: "auto" means the GPU there, so it cannot be expected on the cpu.
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    checked = bench._robustness_device(torch.device("cpu"), smoke=True)
    assert checked["ok"] and checked["auto"] == "skipped: auto is cuda here, and this run is on the cpu"
    assert checked["cpu"]["placed"] == {"teacher": "cpu", "students": "cpu", "preprocessing": "cpu"}
    row = bench._render_robustness({"device": checked})[2]
    assert row == ("| device | yes | expected cpu; cpu: device cpu, placed ['cpu']; auto: skipped: auto is cuda here, "
                   "and this run is on the cpu; set_device switch: skipped: no CUDA |")


def test_the_compile_check_catches_the_recompile_limit(bench, monkeypatch):
    # Without padding to power-of-two batches, every batch length compiles: the check must say so.
    import torch

    import adbench_hr.methods.ts_mlp as ts_mlp

    monkeypatch.setattr(ts_mlp, "compiled_batch_size", lambda n, feature_batch_size: n)
    checked = bench._robustness_compile(torch.device("cpu"), smoke=True)
    assert not checked["ok"] and checked["recompile_limit_hits"] >= 1
    assert checked["compilations"] == checked["recompile_limit"] == 8 and checked["expected_compilations"] == 16
    assert any("recompile_limit" in message for message in checked["recompile_limit_warnings"])


def test_recompile_limit_hits_are_counted_in_the_words_of_each_torch(bench):
    # dynamo's counters["unimplemented"] keys as torch 2.7-2.9 and 2.11-2.14 write them, among other graph breaks.
    old = {"recompile_limit reached": 3, "accumulated_recompile_limit reached": 1, "call_method on a generator": 5}
    assert bench._recompile_limit_hits(old, ["torch._dynamo hit config.recompile_limit (8)"]) == 4
    new = {"Dynamo recompile limit exceeded\n  Explanation: Dynamo attempted to recompile the code object too many "
           "times, exceeding the recompile_limit cache size limit (currently set to 8).": 2,
           "Unsupported Tensor.item() call with capture_scalar_outputs=False": 1}
    assert bench._recompile_limit_hits(new, []) == 2
    assert bench._recompile_limit_hits({"call_method on a generator": 5}, []) == 0
    # Warned about but not found in the counters (a torch that words it otherwise): said, not shown as 0.
    warned = ["torch._dynamo hit config.recompile_limit (8)"]
    assert bench._recompile_limit_hits({"call_method on a generator": 5}, warned) is None
    check = {"backend": "eager (smoke)", "compilations": 8, "expected_compilations": 16, "teacher_batch_sizes": [16],
             "recompile_limit_hits": None, "recompile_limit_warnings": warned, "graph_breaks": 0,
             "max_rel_diff_vs_uncompiled": 0.0, "ok": False}
    row = bench._render_robustness({"compile": check})[2]
    assert row.startswith("| compile | NO |")
    assert "recompile-limit hits not countable on this torch (1 limit warnings)" in row


def test_the_graph_memory_bound(bench):
    # Rounds with reserved MiB after each and the capture that each caused: the kept graphs fill in rounds
    # 0-3; a pool given back on eviction keeps the rest under the bound, a pool kept reserved does not.
    def rounds(reserved):
        return [{"reserved_mib": r, "graphs_kept": min(4, i + 1)} for i, r in enumerate(reserved)]

    rises = [(i, (30 if i else 50) * 2**20) for i in range(7)]
    bounded = bench._graph_memory_summary(rounds([100, 130, 160, 190, 200, 190, 205]), rises, 4)
    assert bounded["reserved_bound_mib"] == 190 + 50 and bounded["reserved_bounded"]
    assert bounded["one_capture_per_round"] and bounded["graphs_kept_as_expected"]
    assert bounded["reserved_growth_after_full_mib"] == 15
    leaking = bench._graph_memory_summary(rounds([100, 130, 160, 190, 220, 250, 280]), rises, 4)
    assert not leaking["reserved_bounded"] and leaking["reserved_max_after_full_mib"] == 280
    missed = bench._graph_memory_summary(rounds([100, 130, 160, 190, 200, 190, 205]), rises[:-1], 4)
    assert not missed["one_capture_per_round"]
    # Reaching the bound is within it; the fourth capture (round 3) is one of those filling the kept graphs; the
    # first round after they are full counts.
    assert bench._graph_memory_summary(rounds([100, 130, 160, 190, 240, 190, 205]), rises, 4)["reserved_bounded"]
    last_fill_largest = [(i, (50 if i == 3 else 30) * 2**20) for i in range(7)]
    fourth = bench._graph_memory_summary(rounds([100, 130, 160, 190, 235, 200, 210]), last_fill_largest, 4)
    assert fourth["reserved_bound_mib"] == 190 + 50 and fourth["reserved_bounded"]
    spike = bench._graph_memory_summary(rounds([100, 130, 160, 190, 300, 190, 205]), rises, 4)
    assert not spike["reserved_bounded"] and spike["reserved_max_after_full_mib"] == 300
    # As the markdown shows a GPU's rounds.
    on_gpu = [{**row, "round": i, "shape_wxh": f"{300 + i}x256", "allocated_mib": 50.0, "max_allocated_mib": 90.0}
              for i, row in enumerate(rounds([100, 130, 160, 190, 220, 250, 280]))]
    graphs = {**leaking, "rounds": on_gpu, "shapes": 7, "max_graphs": 4, "max_abs_diff_graphed_vs_eager": 0.0,
              "ok": False}
    lines = bench._render_robustness({"graphs": graphs})
    assert lines[2] == ("| graphs | NO | 7 shapes + 3 revisited; graphed vs eager max abs diff 0; reserved 190 MiB "
                        "with 4 graphs kept, at most 280 MiB after (bound 240.0 MiB), 7 captures |")
    assert "| 6 | 306x256 | 4 | 280 | 50.0 | 90.0 |" in lines


def test_the_device_check_catches_a_device_recorded_without_its_index(bench, monkeypatch):
    # What a method made with "cuda" recorded before it was pinned: the check must not pass it.
    import torch

    from adbench_hr.methods.ts_mlp import TSMLP

    provenance = TSMLP.provenance
    monkeypatch.setattr(TSMLP, "provenance", lambda self: {**provenance(self), "device": "cuda"})
    checked = bench._robustness_device(torch.device("cpu"), smoke=True)
    assert checked["auto"]["provenance_device"] == "cuda" and not checked["ok"]


def test_the_graph_check_catches_maps_that_differ_from_the_eager_ones(bench, monkeypatch):
    # Graphed and eager instances with other students: their maps differ, and the check says so.
    import torch

    untrained = bench._untrained
    monkeypatch.setattr(bench, "_untrained",
                        lambda options: untrained({**options, "seed": 1} if options.get("cuda_graph") else options))
    checked = bench._robustness_graphs(torch.device("cpu"), smoke=True)
    assert checked["max_abs_diff_graphed_vs_eager"] > 0
    assert not checked["maps_identical"] and not checked["ok"]
