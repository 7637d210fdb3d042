"""FP8 (e4m3) linear layers for frozen backbones, run through ``torch._scaled_mm``.

Weights are quantised once per output channel, activations per token (row) at every call, both
symmetric with the scale ``amax / 448``; the product is rescaled and written in bf16. On Hopper GPUs
this halves the time of the teacher's large matrix products (at the cost of about 3 significant bits
per operand). The per-token quantisation is a reduction plus a scaled cast: it only pays off when the
two fuse into one kernel, which ``torch.compile`` does (eager mode launches several passes).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from adbench_hr.errors import one_line

FP8_DTYPE = torch.float8_e4m3fn
E4M3_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448
# Rows of zeros get this amax, so their scale is positive and they quantise to zeros.
_MIN_AMAX = 1e-12
# torch._scaled_mm on CUDA needs the reduction and output dimensions to be multiples of 16.
_ALIGN = 16
# FP8 tensor cores: Ada (8.9) and Hopper (9.0) onwards.
_MIN_CAPABILITY = (8, 9)
# The first torch release whose CPU torch._scaled_mm was seen to take per-row scales (measured: 2.7.0 has no CPU
# kernel; 2.8 to 2.11 have one for per-tensor scales only, "INTERNAL ASSERT FAILED"). Only named in the message:
# what decides is the probe below, run on the torch at hand.
_MIN_CPU_TORCH = "2.12"


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row e4m3 quantisation of a 2-D tensor.

    Parameters
    ----------
    x : torch.Tensor
        ``(M, K)``, any floating dtype.

    Returns
    -------
    q : torch.Tensor
        ``(M, K)`` ``float8_e4m3fn`` values with ``x ~= q * scale``.
    scale : torch.Tensor
        ``(M, 1)`` float32 scales, ``amax(|row|) / 448``.
    """
    amax = x.abs().amax(dim=-1, keepdim=True).float().clamp_min(_MIN_AMAX)
    scale = amax / E4M3_MAX
    # The clamp guards the cast against a rounding step past the largest finite e4m3 value.
    q = (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(FP8_DTYPE)
    return q, scale


class Fp8Linear(nn.Module):
    """Inference-only replacement of an ``nn.Linear``: e4m3 operands, float32 accumulation, bf16 output.

    Parameters
    ----------
    linear : torch.nn.Linear
        The layer to convert (its weights are quantised once; the original is not kept).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight, weight_scale = quantize_rows(linear.weight.detach())
        self.register_buffer("weight", weight)  # (N, K): its transpose is the column-major operand
        self.register_buffer("weight_scale", weight_scale.reshape(1, -1).contiguous())  # (1, N)
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., K)`` -> ``(..., N)`` bf16."""
        lead = x.shape[:-1]
        q, scale = quantize_rows(x.reshape(-1, self.in_features))
        out = _scaled_product(q, scale, self.weight, self.weight_scale, self.bias)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _scaled_product(
    q: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``(q * scale) @ (weight * weight_scale).T + bias`` in bf16: the one ``torch._scaled_mm`` call of this module
    (row-major e4m3 ``(M, K)`` activations with ``(M, 1)`` scales, column-major ``(K, N)`` weights with ``(1, N)``
    scales, an optional bf16 bias)."""
    return torch._scaled_mm(q, weight.t(), scale_a=scale, scale_b=weight_scale, bias=bias, out_dtype=torch.bfloat16)


@functools.cache
def _cpu_fp8_problem() -> str | None:
    """What goes wrong when :class:`Fp8Linear`'s product runs on this torch's CPU, or ``None``; probed once.

    Older releases have no CPU ``_scaled_mm`` or one for per-tensor scales only, and fail inside torch (an
    "INTERNAL ASSERT FAILED" traceback); the values are checked too, against the dequantised operands.
    """
    with torch.autocast("cpu", enabled=False), torch.inference_mode():
        # Fixed values (no random numbers: the caller's generator is left alone), rows of different scales.
        rows = torch.tensor([[1.0], [8.0], [0.1]], device="cpu")
        x = torch.arange(48, dtype=torch.float32, device="cpu").reshape(3, 16).sin() * rows
        w = torch.arange(256, dtype=torch.float32, device="cpu").reshape(16, 16).cos()
        q, scale = quantize_rows(x)
        weight, weight_scale = quantize_rows(w)
        weight_scale = weight_scale.reshape(1, -1).contiguous()
        expected = (q.float() * scale) @ (weight.float() * weight_scale).T
        for bias in (None, torch.linspace(-1, 1, 16, device="cpu").to(torch.bfloat16)):
            try:
                out = _scaled_product(q, scale, weight, weight_scale, bias)
            except Exception as exc:  # no CPU kernel (NotImplementedError), unsupported scales (RuntimeError), ...
                return f"fails ({type(exc).__name__}: {one_line(exc, 160)})"
            want = expected if bias is None else expected + bias.float()
            error = float((out.float() - want).abs().max() / want.abs().max())
            if out.dtype != torch.bfloat16 or out.shape != want.shape or not error <= 2.0**-6:
                return f"returns wrong values ({out.dtype} {tuple(out.shape)}, max relative error {error:.3g})"
    return None


def fp8_unsupported_reason(device: torch.device) -> str | None:
    """Why FP8 matrix products cannot run on ``device``, or ``None`` when they can.

    On a CPU this runs (once per process) a tiny product the way :class:`Fp8Linear` does.
    """
    if device.type == "cpu":
        problem = _cpu_fp8_problem()
        if problem is None:
            return None
        return (
            f"FP8 matrix products need torch >= {_MIN_CPU_TORCH} on the CPU; torch {torch.__version__}'s "
            f"torch._scaled_mm {problem}"
        )
    if device.type != "cuda":
        return f"FP8 matrix products are not available on {device.type} devices"
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) < _MIN_CAPABILITY:
        return (
            f"FP8 matrix products need a GPU of compute capability >= 8.9 (Ada, Hopper or newer); "
            f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}"
        )
    return None


def convert_linears_to_fp8(module: nn.Module) -> int:
    """Replace, in place, every ``nn.Linear`` inside ``module`` whose sizes suit FP8 by :class:`Fp8Linear`.

    Layers whose input or output size is not a multiple of 16 stay as they are. Returns how many layers
    were converted.
    """
    converted = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child) is nn.Linear
                and child.in_features % _ALIGN == 0
                and child.out_features % _ALIGN == 0
            ):
                setattr(parent, name, Fp8Linear(child))
                converted += 1
    return converted
