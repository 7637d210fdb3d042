"""FP8 linear layers (methods/_fp8.py) against an e4m3 rounding written out in numpy."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from adbench_hr.cli.main import main
from adbench_hr.errors import InputError
from adbench_hr.methods import _fp8, create_method
from adbench_hr.methods._fp8 import (
    Fp8Linear,
    convert_linears_to_fp8,
    fp8_unsupported_reason,
    quantize_rows,
)


def e4m3_round(values: np.ndarray) -> np.ndarray:
    """Round to the nearest e4m3 value (3 mantissa bits, min normal 2**-6, ties to even); |v| <= 448."""
    magnitude = np.abs(values.astype(np.float64))
    # Subnormals share the smallest normal binade's spacing.
    exponent = np.floor(np.log2(np.maximum(magnitude, 2.0**-6)))
    step = 2.0 ** (exponent - 3)
    return np.sign(values) * np.round(magnitude / step) * step  # np.round rounds half to even


def reference_quantize(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-row scale ``amax / 448`` and the e4m3-rounded quotient, from the float32 values."""
    x32 = x.float().numpy()
    scale = np.maximum(np.abs(x32).max(axis=1, keepdims=True), 1e-12).astype(np.float32) / np.float32(448.0)
    return e4m3_round(x32 / scale), scale.astype(np.float64)


def test_e4m3_reference_hand_values() -> None:
    # 1.0625 lies halfway between 1 and 1.125: ties go to the even mantissa (1.0); 1.1875 -> 1.25.
    np.testing.assert_array_equal(
        e4m3_round(np.array([1.0625, 1.1875, 448.0, 300.0, 2.0**-9, 3 * 2.0**-10, -17.0])),
        [1.0, 1.25, 448.0, 288.0, 2.0**-9, 2.0**-8, -16.0],
    )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 40),
    log_scale=st.floats(-20, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_quantize_rows_matches_reference(rows: int, cols: int, log_scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((rng.standard_normal((rows, cols)) * 2.0**log_scale).astype(np.float32))
    x[0, 0] = 0.0
    q, scale = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.dtype == torch.float32 and scale.shape == (rows, 1)
    expected_q, expected_scale = reference_quantize(x)
    np.testing.assert_array_equal(scale.numpy(), expected_scale.astype(np.float32))
    np.testing.assert_array_equal(q.float().numpy(), expected_q)
    # Each row's largest magnitude maps to the largest finite e4m3 value.
    nonzero = np.abs(x.numpy()).max(axis=1) > 0
    np.testing.assert_array_equal(q.float().abs().amax(dim=1).numpy()[nonzero], 448.0)


def test_zero_rows_quantise_to_zeros() -> None:
    q, scale = quantize_rows(torch.zeros(3, 16))
    assert torch.equal(q.float(), torch.zeros(3, 16))
    assert bool((scale > 0).all())


@pytest.mark.cpu_fp8
@pytest.mark.parametrize("bias", [True, False])
def test_fp8_linear_matches_dequantised_product(bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 48, bias=bias)
    x = torch.randn(2, 37, 64).to(torch.bfloat16)
    out = Fp8Linear(linear)(x)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 37, 48)

    qx, sx = reference_quantize(x.reshape(-1, 64))
    qw, sw = reference_quantize(linear.weight.detach())
    expected = (qx * sx) @ (qw * sw).T
    if bias:
        expected = expected + linear.bias.detach().to(torch.bfloat16).double().numpy()
    got = out.reshape(-1, 48).double().numpy()
    # The only rounding left is the bf16 output (8 significant bits).
    np.testing.assert_allclose(got, expected, rtol=2**-7, atol=1e-3 * np.abs(expected).max())

    # And the whole thing stays within e4m3's precision of the float32 layer. e4m3 keeps 3 mantissa bits: its
    # spacing is 2**-3 to 2**-4 of a value, so rounding errs by at most 2**-4 (the unit roundoff) and, with
    # a typical spacing of 2**-3.5 = 0.088, by 0.088 / sqrt(12) = 0.026 of the value in RMS (a uniform error
    # over one spacing). Two rounded operands give sqrt(2) * 0.026 = 0.036
    # norm-wise (what this layer shows); the bound is one unit roundoff, 2**-4 ~ 0.06.
    exact = linear(x.float()).detach().reshape(-1, 48).double().numpy()
    assert np.linalg.norm(got - exact) <= 0.06 * np.linalg.norm(exact)


def test_a_converted_layer_prints_its_sizes_like_the_linear_it_replaces() -> None:
    # print(teacher) of an fp8 teacher: each layer as nn.Linear shows itself, with its sizes and bias.
    # Quantising the weights needs no fp8 product, so this holds on any torch.
    for linear in (nn.Linear(32, 48), nn.Linear(16, 32, bias=False)):
        converted = Fp8Linear(linear)
        assert repr(converted) == repr(linear).replace("Linear", "Fp8Linear", 1)
    assert repr(Fp8Linear(nn.Linear(32, 48))) == "Fp8Linear(in_features=32, out_features=48, bias=True)"


@pytest.mark.cpu_fp8
def test_convert_replaces_only_aligned_linears() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Linear(32, 48), nn.GELU(), nn.Sequential(nn.Linear(48, 16), nn.Linear(16, 10))
    ).to(torch.bfloat16)
    x = torch.randn(5, 32).to(torch.bfloat16)
    before = model(x).float()
    assert convert_linears_to_fp8(model) == 2
    assert isinstance(model[0], Fp8Linear) and isinstance(model[2][0], Fp8Linear)
    assert type(model[2][1]) is nn.Linear  # 10 outputs: not a multiple of 16
    after = model(x).float()
    assert not torch.equal(before, after)
    # Two fp8 layers in a row (the third stays bf16): the first layer's error passes through the second,
    # which adds its own; independent errors add in quadrature, so the bound is sqrt(2) times the one-layer
    # bound of test_fp8_linear_matches_dequantised_product: sqrt(2) * 0.06 ~ 0.08.
    assert (after - before).norm() <= 0.08 * before.norm()


def test_fp8_support_by_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    reason = fp8_unsupported_reason(torch.device("cuda", 0))
    assert reason is not None and "8.9" in reason and "Some GPU has 8.0" in reason
    for capability in [(8, 9), (9, 0), (10, 0)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert fp8_unsupported_reason(torch.device("cuda", 0)) is None


@pytest.fixture()
def cpu_probe(monkeypatch: pytest.MonkeyPatch):
    """Swap in a CPU ``torch._scaled_mm`` (and forget the probe's cached verdict before and after); counts calls."""
    calls = []

    def install(product) -> list:
        def counted(*args, **kwargs):
            calls.append(kwargs)
            return product(*args, **kwargs)

        monkeypatch.setattr(torch, "_scaled_mm", counted)
        return calls

    _fp8._cpu_fp8_problem.cache_clear()
    yield install
    _fp8._cpu_fp8_problem.cache_clear()


def dequantised_product(a, b, *, scale_a, scale_b, bias=None, out_dtype):
    """What torch._scaled_mm computes, in float32: ``(a * scale_a) @ (b * scale_b) + bias``."""
    out = (a.float() * scale_a) @ (b.float() * scale_b)
    return (out if bias is None else out + bias.float()).to(out_dtype)


def test_a_cpu_whose_scaled_mm_works_is_accepted_after_one_probe(cpu_probe) -> None:
    calls = cpu_probe(dequantised_product)
    assert fp8_unsupported_reason(torch.device("cpu")) is None
    assert fp8_unsupported_reason(torch.device("cpu")) is None
    # Once per process, with and without a bias: per-row activation and per-column weight scales, bf16 output.
    assert len(calls) == 2 and [c["bias"] is None for c in calls] == [True, False]
    assert all(c["scale_a"].shape[1] == 1 and c["scale_a"].shape[0] > 1 and c["scale_b"].shape[0] == 1
               and c["out_dtype"] == torch.bfloat16 for c in calls)


def test_a_cpu_scaled_mm_without_per_row_scales_refuses_fp8_in_one_line(cpu_probe, tiny) -> None:
    def per_tensor_only(a, b, *, scale_a, scale_b, bias=None, out_dtype):  # torch 2.8 to 2.11
        raise RuntimeError('(scale_a.numel() == 1 && scale_b.numel() == 1) INTERNAL ASSERT FAILED at "Linear.cpp"'
                           ":516, please report a bug to PyTorch.\nNow _scaled_mm only supports per-tensor scaling")

    cpu_probe(per_tensor_only)
    reason = fp8_unsupported_reason(torch.device("cpu"))
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"FP8 matrix products need torch >= 2.12 on the CPU; torch {torch.__version__}'s ")
    assert "fails (RuntimeError: (scale_a.numel() == 1" in reason
    with pytest.raises(InputError, match=re.escape(f"ts-mlp: teacher_precision=fp8: {reason}")):
        create_method("ts-mlp", **tiny(teacher_precision="fp8"))
    create_method("ts-mlp", **tiny(teacher_precision="bf16-weights"))  # the other precisions are not touched


def test_a_cpu_scaled_mm_that_is_missing_or_wrong_is_refused(cpu_probe) -> None:
    def no_cpu_kernel(*args, **kwargs):  # torch 2.7
        raise NotImplementedError("Could not run 'aten::_scaled_mm' with arguments from the 'CPU' backend.")

    cpu_probe(no_cpu_kernel)
    reason = fp8_unsupported_reason(torch.device("cpu"))
    assert reason is not None and "fails (NotImplementedError: Could not run 'aten::_scaled_mm'" in reason

    def first_row_scale_only(a, b, *, scale_a, scale_b, bias=None, out_dtype):
        return dequantised_product(a, b, scale_a=scale_a[:1], scale_b=scale_b, bias=bias, out_dtype=out_dtype)

    _fp8._cpu_fp8_problem.cache_clear()
    cpu_probe(first_row_scale_only)
    reason = fp8_unsupported_reason(torch.device("cpu"))
    assert reason is not None and "returns wrong values (torch.bfloat16 (3, 16), max relative error" in reason


def test_run_refuses_fp8_on_such_a_cpu_before_reading_data(cpu_probe, tmp_path, capsys) -> None:
    cpu_probe(lambda *args, **kwargs: torch.zeros(()).view(2, 2))  # any torch error
    missing = tmp_path / "no-such-dataset"
    code = main(["run", "--method", "ts-mlp", "--device", "cpu", "--weights", "random", "--dataset", "mvtec_ad",
                 "--root", str(missing), "--out", str(tmp_path / "runs"), "-o", "teacher_precision=fp8", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ts-mlp: teacher_precision=fp8: FP8 matrix products need torch >= 2.12 on the CPU")
    assert not (tmp_path / "runs").exists()
