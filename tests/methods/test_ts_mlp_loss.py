"""The ts-mlp training loss, worked out by hand from its definition.

``loss = (1 - mean cos(forward(f_mid), f_last)) + (1 - mean cos(backward(f_last), f_mid))``, the cosine taken
per token (over the feature axis) and the mean over every token of every image. Each term lies in [0, 2].
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from adbench_hr.methods._ts_mlp_model import StudentMLP, students_loss


def swap_2d() -> nn.Linear:
    """A fixed linear student that swaps the two coordinates: (a, b) -> (b, a)."""
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    return layer


def loss_of(forward_net: nn.Module, backward_net: nn.Module, f_mid, f_last) -> float:
    with torch.no_grad():
        return float(students_loss(forward_net, backward_net, torch.tensor(f_mid), torch.tensor(f_last)))


# (B, T, D) = (2, 2, 3) tokens; any non-zero vectors will do for the scale and sign cases.
F_MID = [[[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], [[0.0, -4.0, 1.0], [2.0, 2.0, -1.0]]]


def test_identity_students_on_scaled_tokens_give_zero() -> None:
    # cos(v, 2v) = 1 in both directions: (1 - 1) + (1 - 1) = 0.
    f_last = (2 * torch.tensor(F_MID)).tolist()
    assert loss_of(nn.Identity(), nn.Identity(), F_MID, f_last) == pytest.approx(0.0, abs=1e-6)


def test_identity_students_on_negated_tokens_give_four() -> None:
    # cos(v, -v) = -1 in both directions: (1 - (-1)) + (1 - (-1)) = 4.
    f_last = (-torch.tensor(F_MID)).tolist()
    assert loss_of(nn.Identity(), nn.Identity(), F_MID, f_last) == pytest.approx(4.0, abs=1e-6)


def test_identity_students_on_orthogonal_tokens_give_two() -> None:
    # Each f_last token is orthogonal to its f_mid token (cos 0): (1 - 0) + (1 - 0) = 2.
    f_mid = [[[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]]]
    f_last = [[[0.0, 5.0, 0.0], [0.0, 0.0, -2.0]]]
    assert loss_of(nn.Identity(), nn.Identity(), f_mid, f_last) == pytest.approx(2.0, abs=1e-6)


def test_only_the_backward_term() -> None:
    # f_mid = e1, f_last = e2. The forward student (swap) maps e1 to e2 exactly: 1 - cos(e2, e2) = 0. The
    # backward student (identity) gives e2 for the target e1: 1 - cos(e2, e1) = 1. Total 0 + 1 = 1.
    f_mid, f_last = [[[1.0, 0.0]]], [[[0.0, 1.0]]]
    assert loss_of(swap_2d(), nn.Identity(), f_mid, f_last) == pytest.approx(1.0, abs=1e-6)


def test_only_the_forward_term() -> None:
    # The mirror case: forward identity gives e1 for the target e2 (1 - 0 = 1), backward swap maps e2 to e1
    # exactly (0). Total 1.
    f_mid, f_last = [[[1.0, 0.0]]], [[[0.0, 1.0]]]
    assert loss_of(nn.Identity(), swap_2d(), f_mid, f_last) == pytest.approx(1.0, abs=1e-6)


def test_cosines_are_per_token_and_averaged_over_all_tokens() -> None:
    # Every f_mid token is e1; the f_last tokens make angles 0, 90, 180 and 60 degrees with it, so the
    # per-token cosines are 1, 0, -1 and 1/2: mean 0.125, each direction (the cosine is symmetric) gives
    # 1 - 0.125 = 0.875, total 1.75.
    f_mid = [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]]
    f_last = [[[3.0, 0.0], [0.0, 2.0]], [[-1.0, 0.0], [1.0, math.sqrt(3.0)]]]
    assert loss_of(nn.Identity(), nn.Identity(), f_mid, f_last) == pytest.approx(1.75, abs=1e-6)


def test_both_students_get_gradients() -> None:
    """Training steps update both students: the loss depends on every parameter of each."""
    torch.manual_seed(0)
    fwd, bwd = StudentMLP(8, 8), StudentMLP(8, 8)
    f_mid, f_last = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    students_loss(fwd, bwd, f_mid, f_last).backward()
    for name, net in (("forward", fwd), ("backward", bwd)):
        for param_name, param in net.named_parameters():
            assert param.grad is not None and bool(param.grad.abs().sum() > 0), (name, param_name)
