"""PatchCore's memory-bank operations against plain numpy references: greedy k-center and nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adbench_hr.methods._patchcore_ops import greedy_coreset, nearest_neighbors, random_projection

# ----------------------------------------------------------------------------- references


def brute_force_greedy(points: np.ndarray, n_select: int, start: int) -> list[int]:
    """Textbook farthest-point traversal in float64: add the point farthest from the selection, n times."""
    p = points.astype(np.float64)
    selected = [start]
    while len(selected) < n_select:
        dist = np.linalg.norm(p[:, None, :] - p[None, selected, :], axis=-1).min(axis=1)
        selected.append(int(np.argmax(dist)))
    return selected


def distances_to_selection(points: np.ndarray, selected: list[int]) -> np.ndarray:
    """Distance of every point to its nearest selected point (float64)."""
    p = points.astype(np.float64)
    return np.linalg.norm(p[:, None, :] - p[None, selected, :], axis=-1).min(axis=1)


def random_points(seed: int, n: int, dim: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


# ----------------------------------------------------------------------------- greedy k-center


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 60),
    dim=st.integers(1, 12),
    fraction=st.floats(0.05, 1.0),
    chunk=st.integers(1, 70),
    data=st.data(),
)
def test_greedy_matches_brute_force(seed: int, n: int, dim: int, fraction: float, chunk: int, data) -> None:
    points = random_points(seed, n, dim)
    n_select = max(1, int(n * fraction))
    start = data.draw(st.integers(0, n - 1))
    result = greedy_coreset(points, n_select, start=start, chunk_size=chunk)
    assert result.indices.tolist() == brute_force_greedy(points.numpy(), n_select, start)


def test_greedy_covering_radius_properties() -> None:
    points = random_points(3, 200, 16).numpy()
    result = greedy_coreset(torch.from_numpy(points), 40, start=17, chunk_size=33)
    order = result.indices.tolist()
    assert order[0] == 17 and len(set(order)) == 40
    radii = []  # covering radius of the first k selected points, k = 1..40
    for k in range(1, 41):
        dist = distances_to_selection(points, order[:k])
        radii.append(dist.max())
        if k < 40:
            # The next selected point is the farthest from the current selection (the covering radius).
            assert dist[order[k]] == pytest.approx(dist.max(), rel=1e-6)
    assert all(b <= a for a, b in zip(radii, radii[1:]))
    # The reported radii: radii[k] = distance of point k to the first k points = covering radius of those.
    np.testing.assert_allclose(result.radii[1:].numpy(), radii[:-1], rtol=1e-5)
    assert result.covering_radius == pytest.approx(radii[-1], rel=1e-5)


def test_greedy_stops_once_everything_is_covered() -> None:
    base = random_points(0, 5, 4)
    points = torch.cat([base, base, base])  # every point three times
    result = greedy_coreset(points, 12, start=7)
    assert len(result.indices) == 5
    assert sorted(int(i) % 5 for i in result.indices) == [0, 1, 2, 3, 4]
    assert result.covering_radius == 0.0
    single = greedy_coreset(torch.ones(6, 3), 4, start=2)
    assert single.indices.tolist() == [2]


def test_greedy_rejects_bad_arguments() -> None:
    points = random_points(0, 10, 3)
    with pytest.raises(ValueError, match="n_select"):
        greedy_coreset(points, 0)
    with pytest.raises(ValueError, match="n_select"):
        greedy_coreset(points, 11)
    with pytest.raises(ValueError, match="start"):
        greedy_coreset(points, 3, start=10)


def test_random_projection_is_seeded_and_scaled() -> None:
    a = random_projection(64, 16, torch.Generator().manual_seed(5))
    b = random_projection(64, 16, torch.Generator().manual_seed(5))
    c = random_projection(64, 16, torch.Generator().manual_seed(6))
    assert a.shape == (64, 16) and torch.equal(a, b) and not torch.equal(a, c)
    # Entries N(0, 1/16): squared norms of projected vectors match the originals on average.
    x = random_points(1, 500, 64)
    big = random_projection(64, 256, torch.Generator().manual_seed(0))
    ratio = (x @ big).square().sum(1) / x.square().sum(1)
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.05)


# ----------------------------------------------------------------------------- nearest neighbours


@pytest.mark.parametrize("chunk", [1, 7, 10, 37, 64, 5000])  # 7 divides neither size, 10 divides 70
@pytest.mark.parametrize("k", [1, 3])
def test_nearest_neighbors_match_brute_force(chunk: int, k: int) -> None:
    queries = random_points(1, 70, 24)
    bank = random_points(2, 37, 24)
    # Some queries sit exactly on, or very close to, bank vectors (the regime of nominal patches).
    queries[:5] = bank[:5]
    queries[5:10] = bank[5:10] + 1e-4
    distances, indices = nearest_neighbors(queries, bank, k=k, chunk_size=chunk)
    full = np.linalg.norm(queries.numpy()[:, None].astype(np.float64) - bank.numpy()[None].astype(np.float64), axis=-1)
    ref_idx = np.argsort(full, axis=1, kind="stable")[:, :k]
    ref = np.take_along_axis(full, ref_idx, axis=1)
    assert distances.shape == (70, k) and distances.dtype == torch.float32
    np.testing.assert_allclose(distances.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(indices.numpy(), ref_idx)
    assert np.all(distances.numpy()[:5, 0] == 0.0)


def cuda_matmul_tf32() -> bool:
    """Whether CUDA float32 matmuls may use TF32 now (PyTorch >= 2.9's setting, else the legacy flag)."""
    matmul = torch.backends.cuda.matmul
    try:
        return matmul.fp32_precision == "tf32"
    except (AttributeError, RuntimeError):
        return bool(matmul.allow_tf32)


def test_nearest_neighbor_candidates_are_computed_without_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    # A caller (a notebook, a training script) that enabled TF32 globally must not get TF32 candidates: with 10
    # mantissa bits for the squared norms, a few per cent of close patches get a wrong nearest neighbour. No GPU
    # here, so the setting is observed at each torch.cdist call.
    from adbench_hr.methods._common import tf32_matmul

    seen = []
    real_cdist = torch.cdist

    def spy(*args, **kwargs):
        seen.append(cuda_matmul_tf32())
        return real_cdist(*args, **kwargs)

    monkeypatch.setattr(torch, "cdist", spy)
    queries, bank = random_points(1, 30, 8), random_points(2, 20, 8)
    with tf32_matmul(True):
        assert cuda_matmul_tf32()
        distances, _ = nearest_neighbors(queries, bank, chunk_size=7)
        assert cuda_matmul_tf32()  # the caller's setting is back afterwards
    assert seen == [False] * 5  # 30 queries in blocks of 7
    full = np.linalg.norm(queries.numpy()[:, None].astype(np.float64) - bank.numpy()[None].astype(np.float64), axis=-1)
    np.testing.assert_allclose(distances[:, 0].numpy(), full.min(axis=1), rtol=1e-5)


def test_nearest_neighbors_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(random_points(0, 3, 2), random_points(1, 2, 2), k=3)


# ----------------------------------------------------------------------------- patch embedding


def official_embedding(layers: list[np.ndarray], dim: int) -> np.ndarray:
    """The official PatchCore embedding written out in numpy (float64), in its own order of steps.

    Unfold each layer's zero-padded 3x3 patches (C, 3, 3) per position; bilinearly upsample the *unfolded
    patches* of coarser layers to the first layer's grid; flatten each patch channel-major and
    adaptive-average-pool it to ``dim``; stack the layers and pool the stack to ``dim``.
    """

    def adaptive_pool(vector: np.ndarray, size: int) -> np.ndarray:
        n = vector.size  # torch's bins: [floor(i n / size), ceil((i + 1) n / size))
        return np.array([vector[(i * n) // size: -((-(i + 1) * n) // size)].mean() for i in range(size)])

    def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
        matrix = np.zeros((n_out, n_in))  # align_corners=False: half-pixel centres, edges clamped
        for o in range(n_out):
            x = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
            left = min(int(np.floor(x)), n_in - 1)
            right = min(left + 1, n_in - 1)
            matrix[o, left] += 1 - (x - left)
            matrix[o, right] += x - left
        return matrix

    _, grid_h, grid_w = layers[0].shape
    per_layer = []
    for features in layers:
        c, h, w = features.shape
        padded = np.pad(features.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
        patches = np.stack([padded[:, y:y + 3, x:x + 3] for y in range(h) for x in range(w)]).reshape(h, w, c, 3, 3)
        rows, cols = bilinear_weights(h, grid_h), bilinear_weights(w, grid_w)
        patches = np.einsum("Yy,Xx,yx...->YX...", rows, cols, patches)
        per_layer.append([[adaptive_pool(patches[y, x].reshape(-1), dim) for x in range(grid_w)]
                          for y in range(grid_h)])
    stacked = np.stack([np.array(v) for v in per_layer], axis=2)  # (H, W, n_layers, dim)
    return np.array([[adaptive_pool(stacked[y, x].reshape(-1), dim) for x in range(grid_w)]
                     for y in range(grid_h)])


@pytest.mark.parametrize("dim", [8, 12, 40])
def test_patch_embedding_matches_the_official_procedure(dim):
    from adbench_hr.methods._patchcore_ops import patch_embedding

    rng = np.random.default_rng(dim)
    fine = rng.normal(size=(5, 6, 7)).astype(np.float32)  # 5 channels on a 6 x 7 grid
    coarse = rng.normal(size=(3, 3, 4)).astype(np.float32)  # 3 channels at half the resolution
    got = patch_embedding([torch.from_numpy(fine)[None], torch.from_numpy(coarse)[None]], dim)[0].numpy()
    want = official_embedding([fine, coarse], dim)
    assert got.shape == (6, 7, dim)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_neighbourhood_bands_give_the_same_vectors(monkeypatch):
    import adbench_hr.methods._patchcore_ops as ops

    features = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 4, 9, 5)).astype(np.float32))
    whole = ops.neighbourhood_vectors(features, 16)
    monkeypatch.setattr(ops, "_UNFOLD_ELEMENTS", 2 * 5 * 4 * 9 * 2)  # two rows per band
    np.testing.assert_array_equal(ops.neighbourhood_vectors(features, 16).numpy(), whole.numpy())


def test_wide_resnet_closed_form_centre_weighted_layer2_and_paired_layer3():
    # With WideResNet-50's 512 + 1024 channels and 1024 dimensions, the official pooling reduces to: output j < 512
    # is layer2 channel j averaged over its 3x3 neighbourhood with weight 0.2 at the centre and 0.1 elsewhere;
    # output 512 + k is the plain 3x3 mean of layer3 channels 2k and 2k + 1 (methods/patchcore.py says so).
    # Checked at the interior position of 3 x 3 maps.
    from adbench_hr.methods._patchcore_ops import patch_embedding

    rng = np.random.default_rng(0)
    layer2 = torch.from_numpy(rng.normal(size=(1, 512, 3, 3)).astype(np.float32))
    layer3 = torch.from_numpy(rng.normal(size=(1, 1024, 3, 3)).astype(np.float32))
    got = patch_embedding([layer2, layer3], 1024)[0, 1, 1].double().numpy()
    weights = np.full(9, 0.1)
    weights[4] = 0.2
    want2 = layer2[0].reshape(512, 9).double().numpy() @ weights
    want3 = layer3[0].reshape(512, 2, 9).double().numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(got, np.concatenate([want2, want3]), rtol=0, atol=1e-5)
