"""Map computation of ts-mlp: parity with a plain independent implementation, and geometry alignment.

The reference below follows the published recipe step by step with numpy/scipy/OpenCV, on the full padded
square, in float64:

- L2-normalise student predictions and teacher tokens, per-token L2 distances, product;
- bilinear upsample of the token grid to ``S x S`` with ``cv2.resize(INTER_LINEAR)``, whose sampling uses
  half-pixel centres, i.e. PyTorch's ``align_corners=False`` (the convention of the implementation);
- box filters with zero padding: ``scipy.ndimage.uniform_filter(mode="constant", cval=0)``;
- crop with the padding offsets ``top = (S - H) // 2``, ``left = (S - W) // 2``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.special import erf

from adbench_hr.methods import create_method
from adbench_hr.methods._ts_mlp_model import (
    MapPostprocessor,
    Preprocessor,
    StudentMLP,
    token_scores,
    top_fraction_mean,
)

PAPER_BLUR = [5, 5, 5, 5, 5, 7, 7, 7]


# ----------------------------------------------------------------------------- reference implementation


def ref_mlp(x: np.ndarray, state: dict[str, torch.Tensor]) -> np.ndarray:
    def gelu(v: np.ndarray) -> np.ndarray:
        return 0.5 * v * (1.0 + erf(v / np.sqrt(2.0)))

    def linear(v: np.ndarray, name: str) -> np.ndarray:
        return v @ state[f"{name}.weight"].double().numpy().T + state[f"{name}.bias"].double().numpy()

    return linear(gelu(linear(gelu(linear(x, "input")), "projection")), "output")


def ref_unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def ref_token_grid(f_mid, f_last, fwd_state, bwd_state, grid: int) -> np.ndarray:
    mid_err = np.linalg.norm(ref_unit(ref_mlp(f_last, bwd_state)) - ref_unit(f_mid), axis=-1)
    last_err = np.linalg.norm(ref_unit(ref_mlp(f_mid, fwd_state)) - ref_unit(f_last), axis=-1)
    return (mid_err * last_err).reshape(grid, grid)


def ref_postprocess(grid_map: np.ndarray, height: int, width: int, blur: list[int]) -> np.ndarray:
    side = max(height, width)
    up = cv2.resize(grid_map.astype(np.float64), (side, side), interpolation=cv2.INTER_LINEAR)
    for k in blur:
        up = ndimage.uniform_filter(up, size=k, mode="constant", cval=0.0)
    top, left = (side - height) // 2, (side - width) // 2
    return up[top : top + height, left : left + width]


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("size", [(333, 517), (517, 333), (64, 64), (101, 58)])
@pytest.mark.parametrize("grid", [5, 37])
def test_postprocess_matches_reference(size: tuple[int, int], grid: int) -> None:
    rng = np.random.default_rng(grid + size[0])
    grid_map = rng.random((grid, grid)) * 3
    post = MapPostprocessor(grid, PAPER_BLUR, torch.device("cpu"))
    ours = post(torch.from_numpy(grid_map).float(), *size).numpy()
    ref = ref_postprocess(grid_map.astype(np.float32), *size, PAPER_BLUR)
    assert ours.shape == size and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 160),
    width=st.integers(1, 160),
    grid=st.integers(1, 12),
    blur=st.lists(st.sampled_from([1, 3, 5, 7, 9]), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_postprocess_matches_reference_property(height: int, width: int, grid: int, blur: list[int], seed: int) -> None:
    grid_map = np.random.default_rng(seed).random((grid, grid)).astype(np.float32) * 4
    ours = MapPostprocessor(grid, blur, torch.device("cpu"))(torch.from_numpy(grid_map), height, width).numpy()
    np.testing.assert_allclose(ours, ref_postprocess(grid_map, height, width, blur), rtol=0, atol=1e-5)


def test_postprocess_matches_plain_torch_ops() -> None:
    """The separable-matrix shortcut equals upsample + avg_pool2d (zero padding) + crop on the square."""
    grid_map = torch.rand(37, 37, generator=torch.Generator().manual_seed(0))
    h, w = 300, 451
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2  # the documented centred padding: 75 rows on top, none left
    x = F.interpolate(grid_map[None, None], size=(side, side), mode="bilinear", align_corners=False)
    for k in PAPER_BLUR:
        x = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=True)
    expected = x[0, 0, top : top + h, left : left + w]
    ours = MapPostprocessor(37, PAPER_BLUR, torch.device("cpu"))(grid_map, h, w)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def ref_network_input(image: np.ndarray, size: int) -> torch.Tensor:
    """The documented input: padded to the square, resized (see ``_pad_square_then_resize``), ImageNet-normalised."""
    levels = _pad_square_then_resize(image, size)
    x = (levels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))


def ref_teacher_tokens(method, x: torch.Tensor) -> list[torch.Tensor]:
    """Patch tokens after each configured 1-based block, through the final LayerNorm, built from timm's parts.

    A fresh timm model of the method's teacher gets the method's teacher weights (the method may drop the
    blocks after its last layer, so only those may be missing), then runs: patch embedding, ``_pos_embed``
    (position embeddings plus the class and register tokens), ``patch_drop``/``norm_pre`` (identities for
    DINOv2), the blocks one by one, the final norm of the chosen blocks' outputs, and drops the
    ``1 + num_reg_tokens`` prefix tokens.
    """
    opts = method.options
    layers = opts["layers"]
    teacher = timm.create_model(
        opts["teacher"], pretrained=False, img_size=opts["img_size"], num_classes=0, **opts["teacher_kwargs"]
    )
    loaded = teacher.load_state_dict(method._teacher.state_dict(), strict=False)
    later_blocks = tuple(f"blocks.{i}." for i in range(max(layers), len(teacher.blocks)))
    assert not loaded.unexpected_keys
    assert all(key.startswith(later_blocks) for key in loaded.missing_keys), loaded.missing_keys
    teacher.eval()
    assert teacher.num_reg_tokens == 4 and teacher.cls_token is not None
    prefix = 1 + teacher.num_reg_tokens
    out = []
    with torch.inference_mode():
        t = teacher.norm_pre(teacher.patch_drop(teacher._pos_embed(teacher.patch_embed(x))))
        assert t.shape[1] == prefix + method.grid**2
        for depth, block in enumerate(teacher.blocks[: max(layers)], start=1):
            t = block(t)
            if depth in layers:
                out.append(teacher.norm(t)[:, prefix:])
    assert len(out) == 2
    return out


# Unit layer scales (DINOv2's random init is 1e-5, which leaves every block's output close to its input):
# with them, neighbouring blocks give clearly different tokens, so a wrong block shows.
DEEP_TEACHER = {"depth": 4, "embed_dim": 48, "num_heads": 2, "init_values": 1.0}


@pytest.mark.parametrize("layers", [[2, 4], [1, 3], [1, 2]])
def test_teacher_features_are_the_chosen_blocks_after_the_final_norm(tiny, odd_image, layers) -> None:
    method = create_method("ts-mlp", **tiny(layers=layers, teacher_kwargs=DEEP_TEACHER))
    x = ref_network_input(odd_image, method.options["img_size"])
    with torch.inference_mode():
        mid, last = method._teacher_features(x)
    ref_mid, ref_last = ref_teacher_tokens(method, x)
    assert mid.shape == last.shape == (1, method.grid**2, 48)
    # The same float32 operations on the same input, in the same order.
    torch.testing.assert_close(mid, ref_mid, rtol=0, atol=1e-5)
    torch.testing.assert_close(last, ref_last, rtol=0, atol=1e-5)


def test_full_map_parity_with_reference(tiny, train_samples) -> None:
    """Teacher tokens from timm's parts + trained student weights through the reference vs. ``predict``."""
    method = create_method("ts-mlp", **tiny(img_size=140, teacher_kwargs=DEEP_TEACHER))
    method.fit(train_samples, progress=False)
    image = np.random.default_rng(3).integers(0, 255, (333, 517, 3), dtype=np.uint8)
    prediction = method.predict(image)

    mid, last = ref_teacher_tokens(method, ref_network_input(image, 140))
    f_mid, f_last = mid[0].double().numpy(), last[0].double().numpy()
    fwd_state, bwd_state = method.forward_net.state_dict(), method.backward_net.state_dict()
    grid_map = ref_token_grid(f_mid, f_last, fwd_state, bwd_state, 10)  # 140 px / patch 14 = 10 tokens a side
    ref = ref_postprocess(grid_map, 333, 517, PAPER_BLUR)
    # The method computes in float32 (unit roundoff 6e-8) on map values of order 1: 1e-5 leaves room for
    # the rounding of a few hundred operations per value, and for the reference's float64 normalisation.
    np.testing.assert_allclose(prediction.anomaly_map, ref, rtol=0, atol=1e-5)
    flat = np.sort(ref.ravel())[::-1]
    k = max(1, int(flat.size * 0.001))
    assert prediction.image_score == pytest.approx(flat[:k].mean(), abs=1e-5)


def test_token_scores_match_reference() -> None:
    torch.manual_seed(0)
    fwd, bwd = StudentMLP(16, 16), StudentMLP(16, 16)
    f_mid, f_last = torch.randn(25, 16), torch.randn(25, 16)
    with torch.no_grad():
        ours = token_scores(fwd, bwd, f_mid, f_last).reshape(5, 5).numpy()
    ref = ref_token_grid(f_mid.double().numpy(), f_last.double().numpy(), fwd.state_dict(), bwd.state_dict(), 5)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    # H = (D_in + D_out) // 2: widths that differ tell it from D_in, D_out, their maximum or their sum.
    student = StudentMLP(10, 21)
    shapes = [tuple(layer.weight.shape) for layer in (student.input, student.projection, student.output)]
    assert shapes == [(15, 10), (15, 15), (21, 15)]  # (out, in) of each nn.Linear


@pytest.mark.parametrize(
    ("size", "defect"),
    [
        ((333, 517), (40, 470)),  # wide: padded top/bottom, odd difference
        ((517, 333), (480, 25)),  # tall: padded left/right
        ((300, 451), (151, 200)),
        ((200, 200), (10, 190)),  # square: no padding
    ],
)
def test_defect_location_round_trip(size: tuple[int, int], defect: tuple[int, int]) -> None:
    """A bright spot at a known pixel goes through pad/resize -> token grid -> upsample/blur/crop and the
    map's maximum lands on it (within one token)."""
    h, w = size
    img_size, patch = 1036, 14
    grid = img_size // patch
    image = np.full((h, w, 3), 100, np.uint8)
    r, c = defect
    image[r - 2 : r + 3, c - 2 : c + 3] = 255
    x = Preprocessor(img_size, torch.device("cpu"))(torch.from_numpy(image))
    # A stand-in "anomaly per token": mean brightness of each 14 x 14 patch of the network input.
    tokens = F.avg_pool2d(x.mean(dim=1, keepdim=True), patch)[0, 0]
    tokens = tokens - tokens.min()
    assert tokens.shape == (grid, grid)
    amap = MapPostprocessor(grid, PAPER_BLUR, torch.device("cpu"))(tokens, h, w).numpy()
    assert amap.shape == (h, w)
    peak = np.unravel_index(np.argmax(amap), amap.shape)
    token_px = max(h, w) / grid
    assert abs(peak[0] - r) <= token_px + 1 and abs(peak[1] - c) <= token_px + 1, (peak, defect)


@pytest.mark.parametrize("side", [700, 1500])  # upscaled and downscaled to the paper's 1036 px
def test_resize_matches_the_official_pil_bicubic(side: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(side)
    noise = rng.integers(0, 256, (side // 4, side // 4, 3), dtype=np.uint8)
    image = cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC)  # smooth, with sharp-ish edges
    official = np.asarray(Image.fromarray(image).resize((1036, 1036), Image.BICUBIC)).astype(np.float64)
    prep = Preprocessor(1036, torch.device("cpu"))
    x = prep(torch.from_numpy(image))
    ours = ((x - prep._shift) / prep._scale)[0].permute(1, 2, 0).numpy()  # back to 0..255 levels
    # Undoing the normalisation in float32 leaves ~1e-5 of a level: 0.01 separates that from a real level.
    differs = np.abs(ours - official) > 0.01
    # Documented (methods/_ts_mlp_model.py, docs/methods.md): rounding after each of the two passes as PIL
    # does is equal to PIL on all but 0.03-0.14 % of pixels, by 1-2 grey levels (PIL's fixed-point weights
    # versus float weights can put a value near a half level on the other side of it, in either pass).
    assert differs.mean() <= 0.0014 and np.abs(ours - official).max() <= 2.01


def _pad_square_then_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The preprocessing as described: pad to the square by edge replication, resize rows then columns
    (bicubic, antialiased), rounding to levels after each pass; returns 0..255 levels, (size, size, 3)."""
    h, w = image.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    padded = np.pad(image, ((top, side - h - top), (left, side - w - left), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float()
    for out in ((side, size), (size, size)):
        x = F.interpolate(x, size=out, mode="bicubic", align_corners=False, antialias=True).round().clamp(0, 255)
    return x[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("shape", [(50, 37), (37, 50), (41, 41), (300, 20), (20, 300), (7, 333), (333, 150)])
def test_preprocessing_equals_padding_to_the_square_first(shape: tuple[int, int]) -> None:
    # Long, thin images are resized without materialising their padded square; the levels must still be
    # those of the described pipeline: equal, or (weights summed in another order) one level apart on
    # pixels whose exact value lies on a rounding boundary.
    image = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    prep = Preprocessor(70, torch.device("cpu"))
    x = prep(torch.from_numpy(image))
    ours = ((x - prep._shift) / prep._scale)[0].permute(1, 2, 0).numpy()
    expected = _pad_square_then_resize(image, 70)
    difference = np.abs(ours - expected)
    # Another summation order changes an exact value by float32 rounding (~1e-5 of a level), so only a
    # value within that distance of a half level can round to the next level: a few pixels in 1e5, while
    # a systematic error moves most of them. 0.2 % (29 of the 14700 values) bounds the former.
    assert difference.max() <= 1.001 and (difference > 0.01).mean() < 0.002
    if max(shape) <= 2 * min(shape):  # padding at most doubles an axis: the same operations, bit for bit
        assert difference.max() < 1e-3


def test_top_fraction_mean() -> None:
    values = torch.arange(10000, dtype=torch.float32)
    assert float(top_fraction_mean(values, 0.001)) == pytest.approx(np.mean(np.arange(9990, 10000)))
    assert float(top_fraction_mean(torch.tensor([1.0, 5.0, 2.0]), 0.001)) == 5.0  # at least one value


def test_preprocessor_pads_by_edge_replication_and_normalises_with_imagenet_statistics() -> None:
    # A 3 x 6 image at img_size 6: no resize, one row padded on top and two at the bottom (odd difference).
    image = np.arange(18, dtype=np.uint8).reshape(3, 6) * 10
    rgb = np.stack([image, image + 1, image + 2], axis=2)
    x = Preprocessor(6, torch.device("cpu"))(torch.from_numpy(rgb))
    assert x.shape == (1, 3, 6, 6)
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    levels = x[0].double().numpy() * std * 255 + mean * 255  # undo ImageNet normalisation with the constants
    padded = rgb[[0, 0, 1, 2, 2, 2]].transpose(2, 0, 1)  # rows: top edge, the image, bottom edge twice
    np.testing.assert_allclose(levels, padded, rtol=0, atol=1e-3)


def test_postprocess_of_transposed_sizes_uses_each_size_own_crop() -> None:
    grid_map = np.random.default_rng(9).random((6, 6)).astype(np.float32)
    post = MapPostprocessor(6, PAPER_BLUR, torch.device("cpu"))
    for size in [(100, 61), (61, 100), (100, 61)]:  # same padded square, different crops
        ours = post(torch.from_numpy(grid_map), *size).numpy()
        np.testing.assert_allclose(ours, ref_postprocess(grid_map, *size, PAPER_BLUR), rtol=0, atol=1e-5)


def test_postprocess_keeps_the_matrices_of_the_most_recently_used_sizes_only() -> None:
    # A category of many image sizes must not hold matrices for every size it met: at most cache_size of each kind
    # (padded squares, crops), the least recently used going first, and maps of evicted sizes recomputed alike.
    grid_map = np.random.default_rng(4).random((6, 6)).astype(np.float32)
    post = MapPostprocessor(6, PAPER_BLUR, torch.device("cpu"), cache_size=2)
    a, b, c = (40, 30), (50, 50), (20, 35)  # padded squares of side 40, 50 and 35
    kept_a = post.matrices(*a)[0]
    post.matrices(*b)
    assert post.matrices(*a)[0] is kept_a  # a hit, which makes a the most recent
    post.matrices(*c)  # evicts b, the least recently used, not a, the first stored
    assert list(post._cache) == [a, c]
    # A square is looked up only for a crop not cached (a's hit did not touch 40): 40 is the least recently used.
    assert list(post._side_cache) == [50, 35]
    assert post.matrices(*a)[0] is kept_a
    for size in (b, a, c, b):
        ours = post(torch.from_numpy(grid_map), *size).numpy()
        np.testing.assert_allclose(ours, ref_postprocess(grid_map, *size, PAPER_BLUR), rtol=0, atol=1e-5)
        assert len(post._cache) <= 2 and len(post._side_cache) <= 2
