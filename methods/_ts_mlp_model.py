"""Building blocks of the ts-mlp method: students, image pre-processing, map post-processing, feature cache.

Geometry conventions (shared by pre- and post-processing, so maps line up with the input pixels):

- an ``H x W`` image is padded to the square ``S = max(H, W)`` by edge replication, with
  ``top = (S - H) // 2`` and ``left = (S - W) // 2`` (the extra row/column, if any, goes bottom/right,
  like the official L2BT ``SquarePad``);
- the token grid is upsampled to ``S x S`` by bilinear interpolation with ``align_corners=False``
  (half-pixel centres, PyTorch's default and the official code's);
- the map is blurred with zero-padded box filters on the square and cropped back with the same
  ``top``/``left`` offsets. (The official code crops with ``torchvision``'s ``center_crop``, whose
  rounding (Python's ``round``, halves to even) puts the crop one pixel lower/righter than the padding when
  ``S - H`` is ``3 mod 4``; we crop where we padded.)

Upsampling, blur and crop are linear and separable, so they collapse into ``A @ G @ B.T`` with the token
grid ``G`` (``g x g``), ``A = (M U)[top:top + H]`` and ``B = (M U)[left:left + W]``, where ``U`` (``S x g``)
is 1-D linear interpolation and ``M`` (``S x S``) the cascade of 1-D zero-padded box filters. This gives the
same numbers as running the 2-D operations on the ``S x S`` square (up to float rounding) at a fraction of
the cost: ``A`` and ``B`` are built once per image size by pushing unit impulses through the very same
torch operations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._common import IMAGENET_MEAN, IMAGENET_STD, HostBuffer, tf32_matmul

FP16_MAX = 65504.0


class StudentMLP(nn.Module):
    """Per-token MLP ``D -> H -> H -> D`` with GELU, ``H = (D_in + D_out) // 2``.

    Parameter names (``input``, ``projection``, ``output``) follow the official L2BT students, so their
    state dicts load as they are.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        hidden = (in_features + out_features) // 2
        self.act_fcn = nn.GELU()
        self.input = nn.Linear(in_features, hidden)
        self.projection = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map tokens ``(..., D_in)`` to ``(..., D_out)``."""
        x = self.act_fcn(self.input(x))
        x = self.act_fcn(self.projection(x))
        return self.output(x)


def students_loss(
    forward_net: nn.Module, backward_net: nn.Module, f_mid: torch.Tensor, f_last: torch.Tensor
) -> torch.Tensor:
    """The published loss: ``(1 - mean cos(fwd(f_mid), f_last)) + (1 - mean cos(bwd(f_last), f_mid))``."""
    loss_last = 1.0 - F.cosine_similarity(forward_net(f_mid), f_last, dim=-1, eps=1e-6).mean()
    loss_mid = 1.0 - F.cosine_similarity(backward_net(f_last), f_mid, dim=-1, eps=1e-6).mean()
    return loss_last + loss_mid


def token_scores(
    forward_net: nn.Module, backward_net: nn.Module, f_mid: torch.Tensor, f_last: torch.Tensor
) -> torch.Tensor:
    """Per-token anomaly ``||n(bwd(f_last)) - n(f_mid)|| * ||n(fwd(f_mid)) - n(f_last)||``.

    Parameters
    ----------
    forward_net, backward_net : torch.nn.Module
        The students: ``forward_net`` maps middle-block tokens to last-block ones, ``backward_net`` back.
    f_mid, f_last : torch.Tensor
        Teacher tokens ``(..., T, D)`` of the middle and last chosen blocks (float32).

    Returns
    -------
    torch.Tensor
        ``(..., T)`` scores.
    """
    pred_mid = backward_net(f_last)
    pred_last = forward_net(f_mid)
    mid = (F.normalize(pred_mid, dim=-1) - F.normalize(f_mid, dim=-1)).pow(2).sum(-1).sqrt()
    last = (F.normalize(pred_last, dim=-1) - F.normalize(f_last, dim=-1)).pow(2).sum(-1).sqrt()
    return mid * last


def square_geometry(height: int, width: int) -> tuple[int, int, int]:
    """Return ``(side, top, left)`` of the centred square padding of an ``height x width`` image."""
    side = max(height, width)
    return side, (side - height) // 2, (side - width) // 2


class Preprocessor:
    """Square-pad (edge), resize (bicubic, antialiased like PIL) and ImageNet-normalise, on any device."""

    def __init__(self, img_size: int, device: torch.device) -> None:
        self.img_size = img_size
        self.device = device
        # Normalisation folded into one multiply-add on 0..255 values; built once per device.
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255.0
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255.0
        self._scale = (1.0 / std).view(1, 3, 1, 1).to(device)
        self._shift = (-mean / std).view(1, 3, 1, 1).to(device)

    def __call__(self, image_hwc: torch.Tensor) -> torch.Tensor:
        """Turn one ``uint8`` ``(H, W, C)`` tensor (already on the device) into ``(1, 3, S', S')`` float32."""
        h, w = int(image_hwc.shape[0]), int(image_hwc.shape[1])
        x = image_hwc.permute(2, 0, 1).unsqueeze(0).float()
        if x.shape[1] == 1:
            x = x.expand(1, 3, h, w)
        side, top, left = square_geometry(h, w)
        if side == self.img_size:
            if side != h or side != w:
                x = F.pad(x, (left, side - w - left, top, side - h - top), mode="replicate")
        else:
            # The official pipeline resizes a uint8 PIL image: PIL filters the rows, then the columns, and
            # stores uint8 after each pass. Rounding after each pass too matches it on all but 0.03-0.14 % of
            # pixels (by 1-2 levels); one 2-D pass would differ on ~18 % of them. The vertical padding
            # replicates whole rows, which the row pass maps to replicated rows: it waits for the column
            # pass, so no pass ever holds the padded square of a long, thin image.
            x = _resize_padded_axis(x, 3, left, side, self.img_size)
            x = _resize_padded_axis(x, 2, top, side, self.img_size)
        return x * self._scale + self._shift


def _resize_padded_axis(x: torch.Tensor, dim: int, before: int, side: int, size: int) -> torch.Tensor:
    """Edge-pad axis ``dim`` (2 or 3) of ``(1, C, H, W)`` to ``side`` (``before`` in front), resize it to
    ``size`` (bicubic, antialiased) and round to uint8 levels."""
    n = int(x.shape[dim])
    if side <= 2 * n:  # padding at most doubles the axis: pad, then filter
        if side != n:
            pad = (before, side - n - before)
            x = F.pad(x, (*pad, 0, 0) if dim == 3 else (0, 0, *pad), mode="replicate")
        out_size = (int(x.shape[2]), size) if dim == 3 else (size, int(x.shape[3]))
        x = F.interpolate(x, size=out_size, mode="bicubic", align_corners=False, antialias=True)
    else:
        # A long, thin image: the padding is folded into an (n, size) weight matrix, so memory and time
        # follow the image instead of its padded square (a 24000 x 40 strip would pad to 24000 x 24000).
        # The weights are the filter's own: the responses to the n edge-padded unit impulses.
        impulses = torch.eye(n, dtype=x.dtype, device=x.device).view(n, 1, 1, n)
        impulses = F.pad(impulses, (before, side - n - before, 0, 0), mode="replicate")
        weights = F.interpolate(impulses, size=(1, size), mode="bicubic", align_corners=False, antialias=True)
        weights = weights.view(n, size)
        with tf32_matmul(False):
            x = x @ weights if dim == 3 else weights.T @ x
    return x.round_().clamp_(0.0, 255.0)


class MapPostprocessor:
    """Token grid -> full-resolution map: bilinear upsample to the padded square, box blur, crop.

    Parameters
    ----------
    grid : int
        Token grid side ``g`` (``img_size // patch``).
    blur : sequence of int
        Odd box-filter sizes applied in order (zero padding), e.g. ``(5, 5, 5, 5, 5, 7, 7, 7)``.
    device : torch.device
        Where the cached matrices live.
    cache_size : int
        How many image sizes to keep matrices for.
    """

    def __init__(self, grid: int, blur: Sequence[int], device: torch.device, cache_size: int = 16) -> None:
        self.grid = grid
        self.blur = tuple(int(k) for k in blur)
        for k in self.blur:
            if k < 1 or k % 2 == 0:
                raise ValueError(f"box filter sizes must be odd and positive, got {k}")
        self.device = device
        self.cache_size = cache_size
        self._side_cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache: OrderedDict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _impulse_responses(self, side: int) -> torch.Tensor:
        """``(M U).T``, shape ``(g, S)``: each token's 1-D footprint after upsampling and blurring."""
        cached = self._side_cache.get(side)
        if cached is not None:
            self._side_cache.move_to_end(side)
            return cached
        # float64 so the cached matrices carry no rounding of their own.
        x = torch.eye(self.grid, dtype=torch.float64).unsqueeze(1)  # (g, 1, g): one impulse per token
        x = F.interpolate(x, size=side, mode="linear", align_corners=False)
        for k in self.blur:
            x = F.avg_pool1d(x, kernel_size=k, stride=1, padding=k // 2, count_include_pad=True)
        responses = x[:, 0, :]
        self._side_cache[side] = responses
        if len(self._side_cache) > self.cache_size:
            self._side_cache.popitem(last=False)
        return responses

    def matrices(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``A`` ``(H, g)`` and ``B`` ``(W, g)`` (float32, on the device) for an image size."""
        key = (height, width)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        side, top, left = square_geometry(height, width)
        responses = self._impulse_responses(side)
        a = responses[:, top : top + height].T.contiguous().to(self.device, torch.float32)
        b = responses[:, left : left + width].T.contiguous().to(self.device, torch.float32)
        self._cache[key] = (a, b)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return a, b

    def __call__(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Map a ``(g, g)`` float32 token grid to the ``(height, width)`` anomaly map."""
        a, b = self.matrices(height, width)
        # Exact fp32 products even if a caller enabled TF32 globally.
        with tf32_matmul(False):
            return (a @ grid_map) @ b.T


def top_fraction_mean(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean of the largest ``fraction`` of the values (at least one value); a 0-d tensor."""
    flat = values.reshape(-1)
    k = max(1, int(flat.numel() * fraction))
    return torch.topk(flat, k, sorted=False).values.mean()


class FeatureStore:
    """Half-precision cache of the frozen teacher's features of every training image.

    The teacher runs once per image; the students then train for many epochs on the cache. Storage is
    picked by size: device memory (CUDA, if it fits in ``gpu_budget_bytes``), otherwise a
    :class:`HostBuffer` (host RAM up to ``ram_budget_bytes``, beyond that a temporary memory-mapped file
    in ``tmp_dir``).

    Each entry is ``(2, T, D)``: the middle and the last block's tokens.
    """

    def __init__(
        self,
        n_images: int,
        n_tokens: int,
        dim: int,
        device: torch.device,
        gpu_budget_bytes: int,
        ram_budget_bytes: int,
        tmp_dir: str | Path | None = None,
    ) -> None:
        self.shape = (n_images, 2, n_tokens, dim)
        self.nbytes = int(np.prod(self.shape)) * 2
        self.device = device
        self._host: HostBuffer | None = None
        if device.type == "cuda" and self.nbytes <= gpu_budget_bytes:
            self.location = "device"
            self._tensor = torch.empty(self.shape, dtype=torch.float16, device=device)
        else:
            self._host = HostBuffer(self.shape, torch.float16, ram_budget_bytes, tmp_dir)
            self.location = self._host.location
            self._tensor = self._host.tensor

    def put(self, start: int, features: torch.Tensor) -> None:
        """Store ``(b, 2, T, D)`` features for images ``start .. start + b - 1``."""
        # Clamp so that rare huge activations saturate instead of becoming inf in fp16.
        half = features.detach().clamp(-FP16_MAX, FP16_MAX).to(torch.float16)
        self._tensor[start : start + half.shape[0]].copy_(half)

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Return the float32 features ``(b, 2, T, D)`` of the given images on the device.

        ``index`` lives on the device for device storage (no host sync) and on the CPU otherwise.
        """
        rows = self._tensor.index_select(0, index)
        if self.location != "device":
            # Synchronous upload: host storage on CUDA only happens when the cache does not fit on the GPU.
            rows = rows.to(self.device)
        return rows.float()

    def close(self) -> None:
        """Release the storage (and delete the temporary file)."""
        self._tensor = torch.empty(0)
        if self._host is not None:
            self._host.close()
            self._host = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
