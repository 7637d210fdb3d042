"""PatchCore's tensor operations: patch embedding, random projection, greedy k-center coreset, nearest neighbours.

Pure torch, on whatever device the inputs live on. Both searches work in row chunks so that the memory they
need is ``O((chunk_size + dim) x bank_size)`` (search) or ``O(chunk_size x dim)`` (coreset), never proportional
to all query patches times the bank at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from adbench_hr.progress import progress_bar

from ._common import tf32_matmul

# Elements of one unfolded band of neighbourhood vectors (64 MiB of float32): bounds the embedding's memory
# at high input resolutions.
_UNFOLD_ELEMENTS = 2**24


def neighbourhood_vectors(feature_map: torch.Tensor, dim: int) -> torch.Tensor:
    """One layer's locally aware patch features, as in the official PatchCore code.

    Each position's zero-padded 3x3 neighbourhood ``(C, 3, 3)`` is flattened channel-major (``F.unfold``'s
    order) and adaptive-average-pooled to ``dim`` values. Rows are processed in bands, so the unfolded
    ``C x 9`` vectors never exist for the whole map at once.

    Parameters
    ----------
    feature_map : torch.Tensor
        ``(B, C, H, W)`` backbone features.
    dim : int
        Length of each output vector (the official ``pretrain_embed_dimension``).

    Returns
    -------
    torch.Tensor
        ``(B, H, W, dim)``.
    """
    b, c, h, w = feature_map.shape
    padded = F.pad(feature_map, (1, 1, 1, 1))
    rows = max(1, _UNFOLD_ELEMENTS // max(1, b * w * c * 9))
    out = feature_map.new_empty(b, h, w, dim)
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        band = F.unfold(padded[:, :, top : bottom + 2], kernel_size=3)  # (B, C * 9, band_rows * W)
        vectors = band.transpose(1, 2).reshape(-1, 1, c * 9)
        out[:, top:bottom] = F.adaptive_avg_pool1d(vectors, dim).reshape(b, bottom - top, w, dim)
    return out


def patch_embedding(feature_maps: list[torch.Tensor], dim: int) -> torch.Tensor:
    """PatchCore's patch features of several layers, as in the official code.

    Every layer gets :func:`neighbourhood_vectors` of length ``dim``; coarser layers are then upsampled
    (bilinear) to the grid of the first (the finest) one, the per-layer vectors of a position are stacked
    and pooled (adaptive average) to ``dim`` values. (The official code upsamples the unfolded patches
    before pooling them; both steps are linear, so the order does not change the result.)

    Parameters
    ----------
    feature_maps : list of torch.Tensor
        ``(B, C_l, H_l, W_l)`` features, finest first.
    dim : int
        Length of the per-layer and of the final vectors (the official code's 1024 and 1024).

    Returns
    -------
    torch.Tensor
        ``(B, H_0, W_0, dim)``.
    """
    grid = tuple(feature_maps[0].shape[-2:])
    layers = []
    for feature_map in feature_maps:
        vectors = neighbourhood_vectors(feature_map, dim)
        if tuple(vectors.shape[1:3]) != grid:
            vectors = F.interpolate(vectors.permute(0, 3, 1, 2), size=grid, mode="bilinear", align_corners=False)
            vectors = vectors.permute(0, 2, 3, 1)
        layers.append(vectors)
    stacked = torch.stack(layers, dim=3)  # (B, H, W, n_layers, dim)
    b, h, w = stacked.shape[:3]
    pooled = F.adaptive_avg_pool1d(stacked.reshape(-1, 1, len(layers) * dim), dim)
    return pooled.reshape(b, h, w, dim)


def random_projection(in_dim: int, out_dim: int, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian Johnson-Lindenstrauss projection matrix ``(in_dim, out_dim)``, entries ``N(0, 1/out_dim)``.

    ``x @ matrix`` preserves squared distances in expectation, so the coreset can compare points in
    ``out_dim`` dimensions instead of ``in_dim``.

    Parameters
    ----------
    in_dim, out_dim : int
        Feature and projected dimensions.
    generator : torch.Generator
        A CPU generator: the matrix depends only on its state, not on the device it is used on.
    """
    matrix = torch.randn(in_dim, out_dim, generator=generator, dtype=torch.float32)
    return matrix / float(out_dim) ** 0.5


@dataclass
class Coreset:
    """Result of :func:`greedy_coreset`.

    Attributes
    ----------
    indices : torch.Tensor
        ``int64`` indices of the selected points, in selection order (``indices[0]`` is the start).
    radii : torch.Tensor
        ``float32``; ``radii[k]`` is the distance from ``indices[k]`` to its nearest point among
        ``indices[:k]`` (``inf`` for the start), i.e. the covering radius of the first ``k`` points.
        Non-increasing by construction.
    covering_radius : float
        Largest distance from any point to its nearest selected point, after the whole selection.
    """

    indices: torch.Tensor
    radii: torch.Tensor
    covering_radius: float


@torch.no_grad()
def greedy_coreset(
    points: torch.Tensor,
    n_select: int,
    start: int = 0,
    chunk_size: int = 16384,
    progress: bool = False,
    desc: str = "coreset",
) -> Coreset:
    """Greedy k-center selection (Gonzalez's farthest-point traversal).

    Start from ``points[start]``; then repeatedly add the point farthest (Euclidean) from everything selected
    so far. Ties go to the lowest index (``torch.argmax``). Once every point lies at distance 0 from the
    selection (duplicates), selecting more adds nothing, so the selection stops there and may be shorter
    than ``n_select``.

    Parameters
    ----------
    points : torch.Tensor
        ``(N, d)`` float points (typically randomly projected features), on any device.
    n_select : int
        Number of points to select, ``1 <= n_select <= N``.
    start : int
        Index of the first selected point.
    chunk_size : int
        Rows per distance update; temporary memory is ``O(chunk_size x d)``.
    progress : bool
        Show a tqdm bar (stderr).
    desc : str
        Label of the progress bar.

    Returns
    -------
    Coreset
        Selected indices in order, their covering radii and the final covering radius.
    """
    n = int(points.shape[0])
    if not 1 <= n_select <= n:
        raise ValueError(f"n_select must be in [1, {n}], got {n_select}")
    if not 0 <= start < n:
        raise ValueError(f"start must be in [0, {n}), got {start}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    device = points.device
    points = points.float()
    # Squared distance of every point to its nearest selected point; sqrt only at the end (same argmax).
    min_d2 = torch.full((n,), float("inf"), device=device)
    selected = torch.empty(n_select, dtype=torch.int64, device=device)
    radii2 = torch.empty(n_select, dtype=torch.float32, device=device)
    radii2[0] = float("inf")
    # Indices stay on the device: no host synchronisation per step on CUDA.
    index = torch.tensor(start, dtype=torch.int64, device=device)
    with progress_bar(total=n_select, show=progress, desc=desc, unit="pt", mininterval=0.5) as bar:
        for step in range(n_select):
            selected[step] = index
            center = points.index_select(0, index.view(1))
            for lo in range(0, n, chunk_size):
                hi = min(lo + chunk_size, n)
                # Explicit differences (not the |a|^2 - 2ab + |b|^2 expansion): exact zeros for the selected
                # points and no cancellation, so the order matches a plain reference implementation.
                d2 = (points[lo:hi] - center).square_().sum(dim=1)
                torch.minimum(min_d2[lo:hi], d2, out=min_d2[lo:hi])
            if step + 1 < n_select:
                index = torch.argmax(min_d2)
                radii2[step + 1] = min_d2[index]
            bar.update(1)
    zero = torch.nonzero(radii2 == 0)
    keep = int(zero[0, 0]) if zero.numel() else n_select
    return Coreset(
        indices=selected[:keep].clone(),
        radii=radii2[:keep].sqrt(),
        covering_radius=float(min_d2.max().sqrt()),
    )


@torch.no_grad()
def nearest_neighbors(
    queries: torch.Tensor, bank: torch.Tensor, k: int = 1, chunk_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances from each query to its ``k`` nearest bank vectors, computed in query chunks.

    Candidates come from ``torch.cdist`` on ``chunk_size`` queries at a time (matrix-multiply form, fast on
    CPU and GPU); the distances of the chosen neighbours are then recomputed from explicit differences,
    because the matrix-multiply form loses precision for close pairs, which are exactly the ones that
    matter for nominal patches. The candidates are computed without TF32 whatever the caller's setting.

    Parameters
    ----------
    queries : torch.Tensor
        ``(Q, D)`` float query vectors.
    bank : torch.Tensor
        ``(M, D)`` float memory bank on the same device.
    k : int
        Number of neighbours, ``1 <= k <= M``.
    chunk_size : int
        Queries per block; peak temporary memory is about ``(chunk_size + D + 2) x M`` floats: the block's
        distance matrix, and the copy of the bank, widened by two columns, that ``torch.cdist``'s
        matrix-multiply form builds for every call.

    Returns
    -------
    distances : torch.Tensor
        ``(Q, k)`` float32, ascending along the last axis.
    indices : torch.Tensor
        ``(Q, k)`` int64 bank indices.
    """
    q, m = int(queries.shape[0]), int(bank.shape[0])
    if not 1 <= k <= m:
        raise ValueError(f"k must be in [1, {m}] (the bank size), got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    queries, bank = queries.float(), bank.float()
    distances = torch.empty(q, k, dtype=torch.float32, device=queries.device)
    indices = torch.empty(q, k, dtype=torch.int64, device=queries.device)
    for lo in range(0, q, chunk_size):
        block = queries[lo : lo + chunk_size]
        # Candidates in full fp32 even where a caller enabled TF32 matmuls on CUDA: TF32 reads the squared norms
        # of the matrix-multiply form with 10 mantissa bits, which picks a wrong nearest neighbour for a few
        # per cent of close (nominal) patches.
        with tf32_matmul(False):
            approx = torch.cdist(block, bank, compute_mode="use_mm_for_euclid_dist")
        idx = approx.topk(k, dim=1, largest=False, sorted=True).indices if k > 1 else approx.argmin(1, keepdim=True)
        del approx
        exact = (block.unsqueeze(1) - bank[idx]).square_().sum(-1).sqrt_()
        if k > 1:  # re-sort: the exact distances may reorder near-ties
            exact, order = exact.sort(dim=1)
            idx = idx.gather(1, order)
        distances[lo : lo + block.shape[0]] = exact
        indices[lo : lo + block.shape[0]] = idx
    return distances, indices
