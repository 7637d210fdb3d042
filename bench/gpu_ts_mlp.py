"""GPU benchmark of ts-mlp: end-to-end predict latency and training time.

Measures, on CUDA:

- ms/image of the whole predict path (uint8 numpy image in, float32 numpy map out, so host<->device copies
  included), batch 1, at the paper's 1036 px input, for a 1024x1024 and a 1500x1000 (W x H) original,
  with an fp32 and a bf16 teacher (and bf16 with TF32 students); median over >= 50 runs after warm-up,
  timed with CUDA events (wall-clock reported too), plus a per-stage breakdown;
- training time on 200 random images for 50 epochs, with the teacher's feature extraction reported
  separately and included in the total;
- last, robustness checks (``--skip-robustness``): CUDA-graph memory and graphed-vs-eager maps over more
  image shapes than graphs are kept, torch.compile recompilations with ``feature_batch_size`` 16, and where
  a bare ``device="cuda"`` puts the method (docs/performance.md, "The robustness checks").

The teacher has RANDOM weights (the GPU box has no network): timings are representative, maps are not.

Usage::

    python bench/gpu_ts_mlp.py --out bench/out/gpu_ts_mlp.json          # on a CUDA machine
    python bench/gpu_ts_mlp.py --smoke --out /tmp/smoke.json             # tiny settings, CPU is fine
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adbench_hr.methods import create_method
from adbench_hr.methods._fp8 import fp8_unsupported_reason
from adbench_hr.methods.ts_mlp import TSMLP

NOTE = "teacher weights are RANDOM (no network on the benchmark machine): timings only, maps meaningless"
# The smoke and consistency teacher. LayerScale 1 instead of timm's 1e-5: with 1e-5 a bf16 residual stream
# rounds every block's contribution away, and the bf16 and FP8 teachers could not differ from each other.
TINY_TEACHER = {"depth": 4, "embed_dim": 48, "num_heads": 2, "init_values": 1.0}


class _ArraySample:
    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.sample_id = "bench"

    def load_image(self) -> np.ndarray:
        return self.image


def _compute_capability(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}.{minor}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: torch.device, iters: int, warmup: int) -> dict[str, float]:
    """Median/p10/p90 milliseconds of ``fn`` (CUDA events on CUDA, wall clock always)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    event_ms, wall_ms = [], []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            end.record()
            end.synchronize()
            event_ms.append(start.elapsed_time(end))
        wall_ms.append((time.perf_counter() - t0) * 1e3)
    main = event_ms or wall_ms
    q = np.percentile(main, [10, 90])
    return {
        "ms_median": statistics.median(main),
        "ms_p10": float(q[0]),
        "ms_p90": float(q[1]),
        "ms_median_wall": statistics.median(wall_ms),
        "iters": iters,
        "timer": "cuda_events" if event_ms else "perf_counter",
    }


def _breakdown(method: TSMLP, image: np.ndarray, device: torch.device, iters: int, warmup: int) -> dict[str, Any]:
    """Per-stage times (each stage synchronised on its own, so they add up to more than end to end)."""
    h, w = image.shape[:2]
    with torch.inference_mode():
        uploaded = method._upload(image)
        x = method._prep(uploaded)
        mid, last = method._teacher_features(x)
        from adbench_hr.methods._ts_mlp_model import tf32_matmul, token_scores, top_fraction_mean

        def students() -> torch.Tensor:
            with tf32_matmul(method.options["student_tf32"]):
                return token_scores(method.forward_net, method.backward_net, mid, last)

        grid = students().reshape(method.grid, method.grid)
        amap = method._post(grid, h, w)

        def map_and_score() -> torch.Tensor:
            a = method._post(grid, h, w)
            return torch.cat([a.reshape(-1), top_fraction_mean(a, 0.001).reshape(1)])

        packed = map_and_score()
        pinned_in = torch.empty(image.shape, dtype=torch.uint8, pin_memory=device.type == "cuda")

        def upload_pinned() -> torch.Tensor:
            pinned_in.numpy()[...] = image
            return pinned_in.to(device, non_blocking=True)

        def download_pinned() -> np.ndarray:
            host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=device.type == "cuda")
            host.copy_(packed)
            return host.numpy().copy()

        def download_pinned_view() -> np.ndarray:
            # Page-locked memory from PyTorch's caching host allocator, returned without a host copy.
            host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=device.type == "cuda")
            host.copy_(packed, non_blocking=True)
            _sync(device)
            return host.numpy()

        stages = {
            "upload_h2d": lambda: method._upload(image),
            "upload_h2d_via_pinned": upload_pinned,
            "pad_resize_normalise": lambda: method._prep(uploaded),
            "teacher": lambda: method._teacher_features(x),
            "students_token_scores": students,
            "upsample_blur_crop_topk": map_and_score,
            "download_d2h": lambda: packed.cpu().numpy(),
            "download_d2h_via_pinned": download_pinned,
            "download_d2h_pinned_view": download_pinned_view,
        }
        del amap
        return {name: _time(fn, device, iters, warmup)["ms_median"] for name, fn in stages.items()}


def _kernel_floor(
    device: torch.device, iters: int, warmup: int, tokens: int = 74 * 74 + 5, dim: int = 768, heads: int = 12
) -> dict[str, Any]:
    """The paper teacher's big kernels in isolation (ViT-B/14 at 1036 px, 12 blocks): a floor for its time.

    Attention per SDPA kernel, the blocks' four matmul shapes in bf16 and as FP8 ``_scaled_mm`` (inputs
    already quantised), and the per-token quantisation eager and compiled; each total is for 12 blocks.
    """
    import contextlib

    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from adbench_hr.methods._fp8 import quantize_rows

    depth = 12
    bf16 = torch.bfloat16
    out: dict[str, Any] = {"tokens": tokens, "dim": dim, "depth": depth}

    # One kernel lasts 5-40 us, as long as its launch from Python: time back-to-back launches per event pair.
    launches = 20 if device.type == "cuda" else 1

    def ms(fn: Callable[[], Any]) -> float:
        def repeated() -> None:
            for _ in range(launches):
                fn()

        return _time(repeated, device, iters, warmup)["ms_median"] / launches

    q, k, v = (torch.randn(1, heads, tokens, dim // heads, device=device, dtype=bf16) for _ in range(3))
    attention_tflop = 4 * tokens * tokens * dim * depth / 1e12
    backends = {"auto": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}
    for name, backend in backends.items():
        context = contextlib.nullcontext() if backend is None else sdpa_kernel([backend])
        try:
            with context:
                t = ms(lambda: F.scaled_dot_product_attention(q, k, v)) * depth
            out[f"attention_{name}_ms"] = t
            out[f"attention_{name}_tflops"] = attention_tflop / (t / 1e3)
        except Exception as exc:
            out[f"attention_{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
    compiled_quantize = torch.compile(quantize_rows, dynamic=False)
    fp8_reason = fp8_unsupported_reason(device)  # _scaled_mm needs compute capability 8.9; the rest runs
    totals = {"linear_bf16_ms": 0.0, "linear_fp8_ms": 0.0, "quantize_eager_ms": 0.0, "quantize_compiled_ms": 0.0}
    linear_tflop = 0.0
    for k_in, n_out in [(dim, 3 * dim), (dim, dim), (dim, 4 * dim), (4 * dim, dim)]:  # qkv, proj, fc1, fc2
        x = torch.randn(tokens, k_in, device=device, dtype=bf16)
        w = torch.randn(n_out, k_in, device=device, dtype=bf16) * 0.02
        xq, xs = quantize_rows(x)
        wq, ws = quantize_rows(w)
        ws = ws.reshape(1, -1).contiguous()
        linear_tflop += 2 * tokens * k_in * n_out * depth / 1e12
        totals["linear_bf16_ms"] += ms(lambda x=x, w=w: F.linear(x, w)) * depth
        totals["linear_fp8_ms"] += 0.0 if fp8_reason else (
            ms(
                lambda xq=xq, wq=wq, xs=xs, ws=ws: torch._scaled_mm(
                    xq, wq.t(), scale_a=xs, scale_b=ws, out_dtype=bf16
                )
            )
            * depth
        )
        totals["quantize_eager_ms"] += ms(lambda x=x: quantize_rows(x)) * depth
        totals["quantize_compiled_ms"] += ms(lambda x=x: compiled_quantize(x)) * depth
    if fp8_reason:
        del totals["linear_fp8_ms"]
        out["linear_fp8_unsupported"] = fp8_reason
    out.update(totals)
    out["linear_bf16_tflops"] = linear_tflop / (totals["linear_bf16_ms"] / 1e3)
    if not fp8_reason:
        out["linear_fp8_tflops"] = linear_tflop / (totals["linear_fp8_ms"] / 1e3)
    return out


def _parse_variant(name: str) -> dict[str, Any]:
    """``"bf16+tf32+cudnn+compile"`` -> ts-mlp options."""
    variant: dict[str, Any] = {
        "teacher_precision": "fp32",
        "student_tf32": False,
        "attention": "auto",
        "compile": False,
        "cuda_graph": False,
    }
    for token in name.split("+"):
        if token in ("fp32", "bf16"):
            variant["teacher_precision"] = token
        elif token == "bf16w":
            variant["teacher_precision"] = "bf16-weights"
        elif token == "fp8":
            variant["teacher_precision"] = "fp8"
        elif token == "graph":
            variant["cuda_graph"] = True
        elif token == "tf32":
            variant["student_tf32"] = True
        elif token in ("cudnn", "flash", "efficient", "math"):
            variant["attention"] = token
        elif token == "compile":
            variant["compile"] = True
        else:
            raise SystemExit(f"unknown variant token {token!r} in {name!r}")
    return variant


def _consistency(device: torch.device) -> dict[str, Any]:
    """Tiny random model: CPU vs device maps from the same checkpoint, and fit determinism on the device."""
    import tempfile

    from adbench_hr.methods import load_method

    tiny = {
        "preset": "fast",
        "weights": "random",
        "img_size": 140,
        "layers": [2, 4],
        "teacher_kwargs": TINY_TEACHER,
        "epochs": 3,
        "seed": 1,
        "num_workers": 0,
    }
    rng = np.random.default_rng(5)
    samples = [_ArraySample(rng.integers(0, 256, (90 + 7 * i, 120, 3), dtype=np.uint8)) for i in range(6)]
    image = rng.integers(0, 256, (333, 517, 3), dtype=np.uint8)
    cpu = create_method("ts-mlp", **tiny, device="cpu")
    cpu.fit(samples, progress=False)
    reference = cpu.predict(image).anomaly_map
    out: dict[str, Any] = {"map_max": float(reference.max())}
    fp8_reason = fp8_unsupported_reason(device)
    if fp8_reason:
        out["fp8_unsupported"] = fp8_reason
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.safetensors"
        cpu.save(path)
        for precision in ("fp32", "bf16") + (() if fp8_reason else ("fp8",)):
            other = load_method(path, device=str(device), teacher_precision=precision)
            diff = np.abs(other.predict(image).anomaly_map - reference).max()
            out[f"max_abs_diff_cpu_vs_{device.type}_{precision}"] = float(diff)
        if device.type == "cuda":
            # Graph replay vs eager on the device, over more image shapes than graphs are kept (eviction),
            # then the first shape again (re-capture).
            eager = load_method(path, device=str(device), teacher_precision="bf16-weights")
            graphed = load_method(path, device=str(device), teacher_precision="bf16-weights", cuda_graph=True)
            shapes = [(333, 517), (128, 128), (200, 90), (64, 300), (150, 151), (333, 517)]
            diffs = []
            for h, w in shapes:
                # Eager first, then captured, then replayed twice, each time on another image: a replay
                # must read its new input.
                for _ in range(4):
                    im = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                    a, b = eager.predict(im), graphed.predict(im)
                    diffs.append(float(np.abs(a.anomaly_map - b.anomaly_map).max()))
                    diffs.append(abs(a.image_score - b.image_score))
            out["max_abs_diff_graph_vs_eager"] = max(diffs)
            out["graphs_kept"] = len(graphed._graphs)
            if not fp8_reason:
                out["fp8_linear_rel_error"] = _fp8_linear_error(device)
    fits = []
    for _ in range(2):
        method = create_method("ts-mlp", **tiny, device=str(device))
        method.fit(samples, progress=False)
        fits.append(method.predict(image).anomaly_map)
    out["device_fit_deterministic"] = bool(np.array_equal(fits[0], fits[1]))
    # The device's default teacher precision (bf16 autocast on CUDA) against the CPU's float32.
    out["device_fit_max_abs_diff_vs_cpu_fp32_fit"] = float(np.abs(fits[0] - reference).max())
    return out


def _fp8_linear_error(device: torch.device) -> float:
    """Relative error of one ViT-B fc1 layer as FP8 against the same bf16 layer (about 4 % expected)."""
    from adbench_hr.methods._fp8 import Fp8Linear

    generator = torch.Generator().manual_seed(3)
    layer = torch.nn.Linear(768, 3072).to(torch.bfloat16)
    torch.nn.init.normal_(layer.weight, std=0.02, generator=generator)
    x = torch.randn(5481, 768, generator=generator).to(device, torch.bfloat16)
    layer = layer.to(device)
    with torch.inference_mode():
        reference = layer(x).float()
        approx = Fp8Linear(layer)(x).float()
    return float((approx - reference).norm() / reference.norm())


NO_CUDA = "skipped: no CUDA"


def _mib(nbytes: int) -> float:
    return round(nbytes / 2**20, 1)


def _untrained(options: dict[str, Any]) -> TSMLP:
    """A ts-mlp with random teacher and seeded, untrained students (same options -> same weights)."""
    method = create_method("ts-mlp", **options)
    method._init_students()
    method.forward_net.eval()
    method.backward_net.eval()
    return method


def _robustness_graphs(device: torch.device, smoke: bool) -> dict[str, Any]:
    """``cuda_graph=True`` over more image shapes than graphs are kept: GPU memory per round, graphed vs eager.

    ``2 * _MAX_GRAPHS + 3`` shapes, each predicted three times on new images (eager, capture + replay, replay),
    then the first three shapes again (evicted long ago: captured anew). Every map is compared with a fresh
    eager instance of the same weights: the same kernels on the same inputs, so they must be identical.
    Bound: once ``_MAX_GRAPHS`` graphs are kept, reserved memory stays below what it was then plus the largest
    rise one capture caused while filling (the one graph briefly held beside the kept ones); an evicted
    graph's pool that is never given back adds about one capture's rise per further shape.
    """
    import warnings

    from adbench_hr.methods.ts_mlp import _MAX_GRAPHS

    cuda = device.type == "cuda"
    options: dict[str, Any] = {
        "weights": "random", "device": str(device), "seed": 0, "epochs": 0, "num_workers": 0,
        "teacher_precision": "bf16-weights" if cuda else "fp32",
    }
    if smoke:
        options.update(preset="fast", img_size=140, layers=[2, 4], teacher_kwargs=TINY_TEACHER)
        shape_of = lambda i: (40 + 6 * i, 100 - 5 * i)  # noqa: E731
    else:  # ViT-S/14 at 518 px: a few ms per image on an H100
        options.update(preset="fast", teacher_kwargs={"init_values": 1.0})
        shape_of = lambda i: (256 + 44 * i, 700 - 40 * i)  # noqa: E731  256..696 x 700..300
    n_shapes = 2 * _MAX_GRAPHS + 3
    shapes = [shape_of(i) for i in range(n_shapes)]
    assert len(set(shapes)) == n_shapes
    graphed = _untrained({**options, "cuda_graph": True})
    eager = _untrained(options)
    rng = np.random.default_rng(7)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    reserved = lambda: torch.cuda.memory_reserved(device)  # noqa: E731
    rounds, diffs, capture_rise = [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for round_index, (h, w) in enumerate([*shapes, *shapes[:3]]):
            for call in range(3 if round_index < n_shapes else 2):
                image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                before = reserved() if cuda else 0
                got = graphed.predict(image)
                if cuda and (h, w, 3) in graphed._graphs and call == (1 if round_index < n_shapes else 0):
                    torch.cuda.synchronize(device)
                    capture_rise.append((round_index, reserved() - before))  # this call captured
                want = eager.predict(image)
                diffs.append(float(np.abs(got.anomaly_map - want.anomaly_map).max()))
                diffs.append(abs(got.image_score - want.image_score))
            row: dict[str, Any] = {"round": round_index, "shape_wxh": f"{w}x{h}", "graphs_kept": len(graphed._graphs)}
            if cuda:
                torch.cuda.synchronize(device)
                row.update(reserved_mib=_mib(reserved()), allocated_mib=_mib(torch.cuda.memory_allocated(device)),
                           max_allocated_mib=_mib(torch.cuda.max_memory_allocated(device)))
            rounds.append(row)
    out: dict[str, Any] = {
        "options": {k: v for k, v in options.items() if k != "device"},
        "max_graphs": _MAX_GRAPHS,
        "shapes": len(shapes),
        "rounds": rounds,
        "max_abs_diff_graphed_vs_eager": max(diffs),
        "maps_identical": max(diffs) == 0.0,
        "shapes_without_graph": sorted(f"{k[1]}x{k[0]}" for k in graphed._shapes_without_graph),
        "warnings": sorted({str(w.message)[:300] for w in caught}),
    }
    if not cuda:
        out.update(memory=NO_CUDA, graphs=NO_CUDA)
        out["ok"] = out["maps_identical"]
        return out
    out.update(_graph_memory_summary(rounds, capture_rise, _MAX_GRAPHS))
    out["ok"] = bool(out["maps_identical"] and out["reserved_bounded"] and out["one_capture_per_round"]
                     and out["graphs_kept_as_expected"])
    del graphed, eager
    torch.cuda.empty_cache()
    out["reserved_after_cleanup_mib"] = _mib(reserved())
    return out


def _graph_memory_summary(
    rounds: list[dict[str, Any]], capture_rise: list[tuple[int, int]], max_graphs: int
) -> dict[str, Any]:
    """The bound of :func:`_robustness_graphs` checked on its rounds (``reserved_mib`` after each) and on the
    reserved-memory rise of each capture (``(round, bytes)``)."""
    full = max_graphs - 1  # the round after which the kept graphs are full
    filling = [rise for index, rise in capture_rise if index <= full]
    when_full = rounds[full]["reserved_mib"]
    bound = round(when_full + _mib(max(filling, default=0)), 1)
    steady = [row["reserved_mib"] for row in rounds[full + 1 :]]
    return {
        "captures": len(capture_rise),
        "one_capture_per_round": [index for index, _ in capture_rise] == list(range(len(rounds))),
        "graphs_kept_as_expected": [row["graphs_kept"] for row in rounds]
        == [min(max_graphs, i + 1) for i in range(len(rounds))],
        "capture_rise_mib": [_mib(rise) for _, rise in capture_rise],
        "reserved_when_full_mib": when_full,
        "reserved_bound_mib": bound,
        "reserved_max_after_full_mib": max(steady, default=when_full),
        "reserved_growth_after_full_mib": round(rounds[-1]["reserved_mib"] - when_full, 1),
        "reserved_bounded": max(steady, default=when_full) <= bound,
    }


def _dynamo_entries() -> int | None:
    """Compiled entries of ``TSMLP._teacher_forward`` in dynamo's cache (``None`` if torch hides them)."""
    try:
        from torch._dynamo.eval_frame import _debug_get_cache_entry_list

        return len(_debug_get_cache_entry_list(TSMLP._teacher_forward.__code__))
    except (ImportError, AttributeError, TypeError):
        return None


def _recompile_limit_hits(unimplemented: Mapping[str, int], warnings: list[str]) -> int | None:
    """How often dynamo gave up on a frame at its recompile limit, from its ``counters["unimplemented"]``;
    ``None`` (not countable on this torch) where it logged limit ``warnings`` but no key reads as a hit.

    The key is the message of the exception dynamo raised, which changed: torch 2.7 to 2.9 raise
    ``RecompileLimitExceeded("recompile_limit reached")`` (``accumulated_recompile_limit`` for the other
    limit), torch 2.11 on an ``Unsupported`` whose message starts "Dynamo recompile limit exceeded".
    """
    def is_limit(key: str) -> bool:
        words = key.lower().replace("_", " ")
        return ("recompile limit" in words or "cache size limit" in words) and (
            "reached" in words or "exceeded" in words)

    hits = sum(count for key, count in unimplemented.items() if is_limit(key))
    return None if hits == 0 and warnings else hits


def _hits_text(compile_check: Mapping[str, Any]) -> str:
    """The recompile-limit hits of :func:`_robustness_compile` as the markdown shows them."""
    hits = compile_check["recompile_limit_hits"]
    if hits is None:
        return f"not countable on this torch ({len(compile_check['recompile_limit_warnings'])} limit warnings)"
    return str(hits)


def _robustness_compile(device: torch.device, smoke: bool) -> dict[str, Any]:
    """``compile=True`` with ``feature_batch_size`` 16: fit on 20 images (batches of 16 and 4), predict single
    images of several shapes and batches of several lengths, a second instance; count dynamo's compilations of
    the teacher and look for its recompile-limit fallback to eager (a log warning only, otherwise).

    The smoke run swaps inductor for dynamo's ``eager`` backend (same guards, recompiles and limit; seconds on
    a CPU). Maps are compared with an uncompiled instance with the same students.
    """
    import logging

    import torch._dynamo
    from torch._dynamo.utils import counters

    from adbench_hr.methods.ts_mlp import compiled_batch_size

    cuda = device.type == "cuda"
    fbs = 16
    options: dict[str, Any] = {
        "preset": "fast", "weights": "random", "device": str(device), "seed": 0, "layers": [2, 4],
        "teacher_kwargs": TINY_TEACHER, "img_size": 140 if smoke else 224, "epochs": 1, "num_workers": 0,
        "feature_batch_size": fbs, "teacher_precision": "bf16-weights" if cuda else "fp32",
    }
    rng = np.random.default_rng(11)
    train = [_ArraySample(rng.integers(0, 256, (64, 80, 3) if smoke else (256, 320, 3), dtype=np.uint8))
             for _ in range(20)]
    shapes = [(60, 90), (90, 60), (77, 77)] if smoke else [(300, 400), (640, 480), (512, 512)]
    counts = list(range(1, fbs + 1)) if smoke else [3, 9, 13]
    limit_messages: list[str] = []

    class LimitHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "recompile_limit" in message or "cache_size_limit" in message or "hit config." in message:
                limit_messages.append(message.splitlines()[0][:300])

    out: dict[str, Any] = {"entries_from_earlier_stages": _dynamo_entries(), "backend": "inductor"}
    torch._dynamo.reset()
    counters.clear()
    handler = LimitHandler(level=logging.WARNING)
    dynamo_log = logging.getLogger("torch._dynamo")
    dynamo_log.addHandler(handler)
    real_compile = torch.compile
    if smoke:
        torch.compile = lambda fn, **kwargs: real_compile(fn, backend="eager", **kwargs)  # type: ignore[assignment]
        out["backend"] = "eager (smoke)"
    try:
        compiled = create_method("ts-mlp", **options, compile=True)
        t0 = time.perf_counter()
        compiled.fit(train, progress=False)
        _sync(device)
        out["fit_seconds"] = round(time.perf_counter() - t0, 2)
        out["entries_after_fit"] = _dynamo_entries()
        reference = _untrained(options)
        reference.forward_net.load_state_dict(compiled.forward_net.state_dict())
        reference.backward_net.load_state_dict(compiled.backward_net.state_dict())
        rel = []

        def compare(images: list[np.ndarray]) -> None:
            for got, want in zip(compiled.predict_batch(images), reference.predict_batch(images)):
                rel.append(float(np.abs(got.anomaly_map - want.anomaly_map).max() / np.abs(want.anomaly_map).max()))

        t0 = time.perf_counter()
        for h, w in shapes:
            compare([rng.integers(0, 256, (h, w, 3), dtype=np.uint8)])
        out["entries_after_single_images"] = _dynamo_entries()
        for n in counts:
            compare([rng.integers(0, 256, (70, 90, 3), dtype=np.uint8) for _ in range(n)])
        out["entries_after_batches"] = _dynamo_entries()
        second = create_method("ts-mlp", **options, compile=True)
        second._init_students()
        second.predict(rng.integers(0, 256, shapes[0] + (3,), dtype=np.uint8))
        _sync(device)
        out["predict_seconds"] = round(time.perf_counter() - t0, 2)
        out["entries_after_second_instance"] = _dynamo_entries()
    finally:
        torch.compile = real_compile  # type: ignore[assignment]
        dynamo_log.removeHandler(handler)
    batch_sizes = [fbs, len(train) % fbs or fbs, 1, *counts]
    expected = len({compiled_batch_size(n, fbs) for n in batch_sizes})
    limit_hits = _recompile_limit_hits(counters["unimplemented"], limit_messages)
    tolerance = 2e-2 if cuda else 1e-5  # inductor fuses and reorders the bf16 teacher's arithmetic
    out.update(
        feature_batch_size=fbs,
        teacher_batch_sizes=batch_sizes,
        expected_compilations=expected,
        compilations=out["entries_after_second_instance"],
        frames=dict(counters["frames"]),
        graph_breaks=sum(counters["graph_break"].values()),
        recompile_limit=getattr(torch._dynamo.config, "recompile_limit", None),
        recompile_limit_hits=limit_hits,
        recompile_limit_warnings=limit_messages,
        max_rel_diff_vs_uncompiled=max(rel),
        rel_tolerance=tolerance,
    )
    if out["compilations"] is None:  # torch without the cache-entry listing: count compiled frames instead
        out["compilations"] = counters["frames"]["ok"]
    else:  # a new instance of the same options should reuse the compiled code (a run makes one per category)
        out["second_instance_new_compilations"] = out["compilations"] - out["entries_after_batches"]
    out["ok"] = bool(out["compilations"] == expected and limit_hits == 0 and not limit_messages
                     and max(rel) <= tolerance)
    torch._dynamo.reset()
    return out


def _robustness_device(device: torch.device, smoke: bool) -> dict[str, Any]:
    """Where a method asked for a bare ``cuda`` (and ``auto``) puts itself: pinned to ``cuda:N`` of the GPU
    current when it is made, every tensor there, recorded so; on several GPUs, still there after
    ``torch.cuda.set_device`` moved to another (one GPU cannot show that). On a CPU the placement checks run
    for ``cpu``, and for ``auto`` where CUDA is absent."""
    cuda = device.type == "cuda"
    options: dict[str, Any] = {
        "preset": "fast", "weights": "random", "seed": 0, "layers": [2, 4], "teacher_kwargs": TINY_TEACHER,
        "img_size": 140, "epochs": 0, "num_workers": 0,
    }
    expected = f"cuda:{torch.cuda.current_device()}" if cuda else "cpu"
    out: dict[str, Any] = {"expected": expected}
    image = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    ok = True
    if cuda:
        asked_for = ("cuda", "auto")
    elif torch.cuda.is_available():  # --device cpu on a GPU machine: "auto" would mean the GPU, not this run's cpu
        asked_for = ("cpu",)
        out["auto"] = "skipped: auto is cuda here, and this run is on the cpu"
    else:
        asked_for = ("cpu", "auto")
    for asked in asked_for:
        method = _untrained({**options, "device": asked})
        placed = {
            "teacher": str(next(method._teacher.parameters()).device),
            "students": str(next(method.forward_net.parameters()).device),
            "preprocessing": str(method._prep._scale.device),
        }
        prediction = method.predict(image)
        record = {"device": method.device, "provenance_device": method.provenance()["device"],
                  "option": method.options["device"], "placed": placed}
        ok &= method.device == record["provenance_device"] == expected and set(placed.values()) == {expected}
        out[asked] = record
    if not cuda:
        out["set_device_switch"] = NO_CUDA
    elif torch.cuda.device_count() < 2:
        out["set_device_switch"] = "skipped: one GPU"
    else:
        current = torch.cuda.current_device()
        other = (current + 1) % torch.cuda.device_count()
        try:
            torch.cuda.set_device(other)
            moved = method.predict(image)
            out["set_device_switch"] = {
                "from": current, "to": other, "device_after": method.device,
                "max_abs_diff": float(np.abs(moved.anomaly_map - prediction.anomaly_map).max()),
            }
            ok &= method.device == expected and out["set_device_switch"]["max_abs_diff"] == 0.0
        finally:
            torch.cuda.set_device(current)
    out["ok"] = bool(ok)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON output file")
    parser.add_argument("--smoke", action="store_true", help="tiny teacher and sizes; runs on a CPU in seconds")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--iters", type=int, default=None, help="timed predict runs per setting (default 60)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs (default 10)")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default 200)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 50)")
    parser.add_argument(
        "--variants",
        default="fp32,bf16,bf16+tf32,bf16+tf32+compile",
        help="comma-separated predict variants: '+'-joined tokens among fp32|bf16|bf16w (bf16 weights)|fp8 (FP8 "
        "linears), tf32, cudnn|flash|efficient|math (attention kernel), compile, graph (CUDA graph of predict)",
    )
    parser.add_argument("--breakdown", default="bf16", help="variants that get a per-stage breakdown")
    parser.add_argument("--train-tf32", default="no,yes", help="comma-separated: train with TF32 students no/yes")
    parser.add_argument("--skip-consistency", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--skip-kernels", action="store_true", help="skip the attention/matmul kernel floor")
    parser.add_argument("--skip-robustness", action="store_true",
                        help="skip the CUDA-graph memory, torch.compile recompile and device-pinning checks")
    parser.add_argument("--deadline", type=float, default=None, metavar="S",
                        help="start no further stage or variant after S seconds (what is measured is kept)")
    args = parser.parse_args(argv)

    if args.smoke:
        base: dict[str, Any] = {
            "preset": "fast",
            "img_size": 140,
            "layers": [2, 4],
            "teacher_kwargs": TINY_TEACHER,
        }
        sizes = [(128, 128), (100, 150)]
        train_size = (128, 128)
        iters, warmup, n_train, epochs = 5, 1, 8, 2
    else:
        # LayerScale 1 (timm's random init is 1e-5): otherwise the low-precision teachers' blocks add nothing
        # to a bf16 residual stream, and their maps' distance to fp32 would hide any error. Same cost.
        base = {"preset": "paper", "teacher_kwargs": {"init_values": 1.0}}
        sizes = [(1024, 1024), (1000, 1500)]  # (H, W): 1024x1024 and 1500x1000 (W x H)
        train_size = (1024, 1024)
        iters, warmup, n_train, epochs = 60, 10, 200, 50
    iters = args.iters or iters
    warmup = args.warmup if args.warmup is not None else warmup
    n_train = args.n_train or n_train
    epochs = args.epochs if args.epochs is not None else epochs
    base.update(weights="random", device=args.device, seed=0)

    probe = create_method("ts-mlp", **base)
    device = torch.device(probe.device)
    del probe
    if device.type != "cuda" and not args.smoke:
        print("warning: no CUDA device; timings are CPU timings", file=sys.stderr)
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {
        "benchmark": "ts-mlp",
        "note": NOTE,
        "weights": "random",
        "smoke": args.smoke,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        # FP8 matrix products need 8.9 (Ada) or more: the fp8 variants of a lesser GPU are listed as unsupported.
        "compute_capability": _compute_capability(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "options": {k: v for k, v in base.items() if k != "device"},
        "predict": [],
        "breakdown": {},
        "train": [],
        "errors": [],
        "skipped": [],
        "unsupported": [],
        "robustness": {},
    }

    started = time.perf_counter()

    def guarded(stage: str, fn: Callable[[], Any]) -> Any:
        """Run one stage; a failure is recorded, not raised, and the JSON is rewritten after every stage, so
        that a broken stage or a run cut short keeps what was measured before."""
        if args.deadline is not None and time.perf_counter() - started > args.deadline:
            result["skipped"].append(stage)
            print(f"{stage}: skipped, past the deadline of {args.deadline:.0f} s", file=sys.stderr, flush=True)
            return None
        try:
            return fn()
        except Exception as exc:
            result["errors"].append({"stage": stage, "error": f"{type(exc).__name__}: {exc}"[:2000]})
            print(f"{stage} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            _write(args.out, result)

    students = None
    if not args.skip_train:
        images = [_ArraySample(rng.integers(0, 256, (*train_size, 3), dtype=np.uint8)) for _ in range(n_train)]
        for tf32 in [v.strip() == "yes" for v in args.train_tf32.split(",")]:
            trained = guarded(f"train tf32={tf32}", lambda tf32=tf32: _train(base, images, epochs, tf32, result))
            if trained is not None:
                students = (trained.forward_net.state_dict(), trained.backward_net.state_dict())
            del trained
        del images

    # Predict first: it is what the GPU is lent for; the kernel floor and consistency checks come after.
    if not args.skip_predict:
        names = args.variants.split(",") if device.type == "cuda" or args.smoke else ["fp32"]
        for name in names:
            _parse_variant(name)  # reject typos before anything is measured
        if students is None:
            untrained = create_method("ts-mlp", **base)
            untrained._init_students()
            students = (untrained.forward_net.state_dict(), untrained.backward_net.state_dict())
            del untrained
        images = {(h, w): rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes}
        reference_maps: dict[tuple[int, int], np.ndarray] = {}  # the first variant's, to compare the others with
        fp8_reason = fp8_unsupported_reason(device)
        for name in names:
            if fp8_reason and _parse_variant(name)["teacher_precision"] == "fp8":
                result["unsupported"].append({"stage": name, "reason": fp8_reason})
                print(f"{name}: not run, {fp8_reason}", file=sys.stderr, flush=True)
                continue
            guarded(name, lambda name=name: _predict_variant(
                name, base, students, images, reference_maps, result, args, device, iters, warmup))
        if device.type == "cuda":
            result["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30

    if not args.skip_kernels and (device.type == "cuda" or args.smoke):
        shape = {"tokens": 5 * 5 + 5, "dim": 48, "heads": 2} if args.smoke else {}
        kernels = guarded("kernels", lambda: _kernel_floor(device, iters, warmup, **shape))
        if kernels is not None:
            result["kernels"] = kernels
            print(f"kernels {kernels}", file=sys.stderr, flush=True)

    if not args.skip_consistency:
        consistency = guarded("consistency", lambda: _consistency(device))
        if consistency is not None:
            result["consistency"] = consistency
            print(f"consistency {consistency}", file=sys.stderr, flush=True)

    # Last: behaviour checks rather than timings (small models, well under a minute on an H100).
    if not args.skip_robustness:
        checks = {"graphs": _robustness_graphs, "compile": _robustness_compile, "device": _robustness_device}
        for part, check in checks.items():
            outcome = guarded(f"robustness/{part}", lambda check=check: check(device, args.smoke))
            if outcome is not None:
                result["robustness"][part] = outcome
                print(f"robustness/{part} {outcome}", file=sys.stderr, flush=True)

    _write(args.out, result)
    print(render_markdown(result))
    return 0


def _train(
    base: dict[str, Any], images: list[_ArraySample], epochs: int, tf32: bool, result: dict[str, Any]
) -> TSMLP:
    """Fit on ``images`` and record the training times."""
    method = create_method("ts-mlp", **base, epochs=epochs, student_tf32=tf32)
    device = torch.device(method.device)
    _sync(device)
    t0 = time.perf_counter()
    method.fit(images, progress=False)
    _sync(device)
    total = time.perf_counter() - t0
    stats = method.fit_stats
    result["train"].append(
        {
            "n_images": len(images),
            "image_size": list(images[0].image.shape[:2]),
            "epochs": epochs,
            "batch_size": method.options["batch_size"],
            "teacher_precision": method.provenance()["teacher_precision"],
            "student_tf32": tf32,
            "feature_seconds": stats["feature_seconds"],
            "train_seconds": stats["train_seconds"],
            "total_seconds": total,
            "feature_store": stats["feature_store"],
            "feature_gib": stats["feature_bytes"] / 2**30,
            "final_loss": stats["epoch_losses"][-1] if stats["epoch_losses"] else None,
        }
    )
    print(f"train tf32={tf32}: {result['train'][-1]}", file=sys.stderr, flush=True)
    return method


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")


def _predict_variant(
    name: str,
    base: dict[str, Any],
    students: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    images: dict[tuple[int, int], np.ndarray],
    reference_maps: dict[tuple[int, int], np.ndarray],
    result: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    iters: int,
    warmup: int,
) -> None:
    """Time one predict variant on every image size; record its maps' distance to the first variant's."""
    variant = _parse_variant(name)
    method = create_method("ts-mlp", **base, **variant)
    method._init_students()
    method.forward_net.load_state_dict(students[0])
    method.backward_net.load_state_dict(students[1])
    method.forward_net.eval()
    method.backward_net.eval()
    for (h, w), image in images.items():
        _sync(device)
        t0 = time.perf_counter()
        prediction = method.predict(image)  # includes compilation; a graph is captured on the second call
        first_ms = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        method.predict(image)
        second_ms = (time.perf_counter() - t0) * 1e3
        amap = prediction.anomaly_map
        assert amap.shape == (h, w) and amap.dtype == np.float32 and np.isfinite(amap).all()
        reference = reference_maps.setdefault((h, w), amap)
        timing = _time(lambda m=method, im=image: m.predict(im), device, iters, warmup)
        # A replayed graph must give the same map as its first run.
        repeat_max_abs_diff = float(np.abs(method.predict(image).anomaly_map - amap).max())
        row = {
            "size_wxh": f"{w}x{h}",
            "variant": name,
            **variant,
            "first_call_ms": first_ms,
            "second_call_ms": second_ms,
            **timing,
            "max_rel_diff_vs_first_variant": float(np.abs(amap - reference).max() / np.abs(reference).max()),
            "repeat_max_abs_diff": repeat_max_abs_diff,
        }
        result["predict"].append(row)
        print(f"predict {row}", file=sys.stderr, flush=True)
        if name in args.breakdown.split(","):
            key = f"{w}x{h}/{name}"
            result["breakdown"][key] = _breakdown(method, image, device, max(10, iters // 3), warmup)


def render_markdown(result: dict[str, Any]) -> str:
    """Markdown summary of a benchmark result."""
    capability = f", compute capability {result['compute_capability']}" if result.get("compute_capability") else ""
    lines = [
        f"## ts-mlp benchmark on {result['gpu'] or result['device']}{capability} (torch {result['torch']})",
        "",
        f"**Note:** {result['note']}.",
        "",
    ]
    if result["predict"]:
        lines += [
            "| original (W x H) | variant | ms/image median | p10 | p90 | wall median | first call ms "
            "| second call ms (graph capture) | max rel diff vs first variant |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["predict"]:
            lines.append(
                f"| {r['size_wxh']} | {r['variant']} | {r['ms_median']:.2f} | {r['ms_p10']:.2f} | "
                f"{r['ms_p90']:.2f} | {r['ms_median_wall']:.2f} | {r['first_call_ms']:.0f} | "
                f"{r['second_call_ms']:.0f} | {r['max_rel_diff_vs_first_variant']:.2e} |"
            )
        lines.append("")
    if result["breakdown"]:
        stages = list(next(iter(result["breakdown"].values())))
        lines += ["| stage (ms, each synchronised) | " + " | ".join(result["breakdown"]) + " |"]
        lines += ["|---|" + "---|" * len(result["breakdown"])]
        for stage in stages:
            lines.append(f"| {stage} | " + " | ".join(f"{b[stage]:.3f}" for b in result["breakdown"].values()) + " |")
        lines.append("")
    if result.get("kernels"):
        lines += ["kernel floor (12 blocks): " + json.dumps(result["kernels"]), ""]
    for error in result.get("errors", []):
        lines += [f"**{error['stage']} failed:** {error['error']}", ""]
    if result.get("skipped"):
        lines += ["skipped past the deadline: " + ", ".join(result["skipped"]), ""]
    if result.get("unsupported"):
        lines += ["not run, unsupported on this device: " + "; ".join(
            f"{u['stage']} ({u['reason']})" for u in result["unsupported"]), ""]
    if result.get("consistency"):
        lines += ["consistency: " + json.dumps(result["consistency"]), ""]
    if result.get("robustness"):
        lines += _render_robustness(result["robustness"])
    if result["train"]:
        lines += [
            "| images | epochs | students TF32 | features s | training s | total s | feature cache |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["train"]:
            lines.append(
                f"| {r['n_images']} | {r['epochs']} | {'yes' if r['student_tf32'] else 'no'} | "
                f"{r['feature_seconds']:.2f} | {r['train_seconds']:.2f} | {r['total_seconds']:.2f} | "
                f"{r['feature_store']} ({r['feature_gib']:.2f} GiB) |"
            )
    return "\n".join(lines)


def _render_robustness(checks: dict[str, Any]) -> list[str]:
    """Markdown lines of the robustness stage: one line per check, then the graphs' memory per round."""
    lines = ["| robustness check | ok | findings |", "|---|---|---|"]
    for part, out in checks.items():
        if part == "graphs":
            memory = out.get("memory") or (
                f"reserved {out['reserved_when_full_mib']} MiB with {out['max_graphs']} graphs kept, at most "
                f"{out['reserved_max_after_full_mib']} MiB after (bound {out['reserved_bound_mib']} MiB), "
                f"{out['captures']} captures")
            findings = (f"{out['shapes']} shapes + 3 revisited; graphed vs eager max abs diff "
                        f"{out['max_abs_diff_graphed_vs_eager']:.3g}; {memory}")
        elif part == "compile":
            findings = (f"backend {out['backend']}; {out['compilations']} compilations (expected "
                        f"{out['expected_compilations']}) for teacher batches {out['teacher_batch_sizes']}; "
                        f"recompile-limit hits {_hits_text(out)}, graph breaks {out['graph_breaks']}; "
                        f"max rel diff vs uncompiled {out['max_rel_diff_vs_uncompiled']:.2e}")
        else:
            switch = out["set_device_switch"]
            findings = (f"expected {out['expected']}; " + "; ".join(
                f"{asked}: device {out[asked]['device']}, placed {sorted(set(out[asked]['placed'].values()))}"
                if isinstance(out[asked], dict) else f"{asked}: {out[asked]}"
                for asked in ("cuda", "cpu", "auto") if asked in out)
                + f"; set_device switch: {switch if isinstance(switch, str) else json.dumps(switch)}")
        lines.append(f"| {part} | {'yes' if out.get('ok') else 'NO'} | {findings} |")
    lines.append("")
    rounds = checks.get("graphs", {}).get("rounds", [])
    if rounds and "reserved_mib" in rounds[0]:
        lines += ["| round | shape (W x H) | graphs kept | reserved MiB | allocated MiB | peak allocated MiB |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['round']} | {r['shape_wxh']} | {r['graphs_kept']} | {r['reserved_mib']} | "
                  f"{r['allocated_mib']} | {r['max_allocated_mib']} |" for r in rounds]
        lines.append("")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
