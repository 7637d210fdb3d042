"""patchcore end to end with a small random ResNet-18: maps, localisation, checkpoints, options, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from scipy import ndimage

import adbench_hr
from adbench_hr._source import source_fingerprint
from adbench_hr.cli.main import main
from adbench_hr.errors import InputError
from adbench_hr.methods import create_method, list_methods, load_method, read_checkpoint_metadata
from adbench_hr.methods._patchcore_ops import nearest_neighbors, random_projection
from adbench_hr.methods.patchcore import PatchCore


def small_options(**overrides: Any) -> dict[str, Any]:
    """Random ResNet-18 at 96 px (12 x 12 patches), CPU, no worker threads."""
    options: dict[str, Any] = {
        "weights": "random",
        "backbone": "resnet18",
        "input_size": 96,
        "device": "cpu",
        "seed": 3,
        "num_workers": 0,
        "coreset_ratio": 0.25,
    }
    options.update(overrides)
    return options


def nominal_image(rng: np.random.Generator, h: int = 120, w: int = 180) -> np.ndarray:
    """Smooth shading plus mild noise: the 'good' texture."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 110 + 20 * np.sin(xx / 40 + rng.uniform(0, 6)) + 15 * np.cos(yy / 35 + rng.uniform(0, 6))
    return np.clip(base[..., None] + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def nominal_samples(sample_cls) -> list:
    rng = np.random.default_rng(0)
    return [sample_cls(nominal_image(rng), f"train/{i}") for i in range(6)]


@pytest.fixture(scope="module")
def fitted(nominal_samples) -> PatchCore:
    method = create_method("patchcore", **small_options())
    method.fit(nominal_samples, progress=False)
    return method


@pytest.fixture(scope="module")
def fitted_k3(nominal_samples) -> PatchCore:
    """Scores averaged over 3 neighbours; 64 px input (8 x 8 patches), 3 training images: a bank of 48."""
    method = create_method("patchcore", **small_options(input_size=64, num_neighbors=3))
    method.fit(nominal_samples[:3], progress=False)
    return method


# ----------------------------------------------------------------------------- references


def brute_force_patch_scores(method: PatchCore, image: np.ndarray) -> np.ndarray:
    """Float64 numpy: each patch feature's distances to every bank vector, sorted, mean of the first k.

    The patch features come from the method's embedding (verified against the official procedure in
    test_patchcore_ops.py); distances, neighbour choice and averaging are computed here.
    """
    x, _, _ = method._preprocess(image)
    with torch.inference_mode():
        features = method._embed(x)[0].double().numpy()
    gh, gw, dim = features.shape
    queries = features.reshape(-1, dim)
    bank = method.memory_bank.double().numpy()
    distances = np.sqrt(((queries[:, None, :] - bank[None, :, :]) ** 2).sum(axis=-1))  # (patches, bank)
    k = method.options["num_neighbors"]
    return np.sort(distances, axis=1)[:, :k].mean(axis=1).reshape(gh, gw)


def reference_map(scores: np.ndarray, input_size: int, sigma: float, height: int, width: int) -> np.ndarray:
    """The documented map: patch scores resized (bilinear) to ``input_size``, Gaussian-smoothed as scipy's
    ``gaussian_filter`` (``sigma`` px, truncated at 4 sigma, borders reflected with the edge pixel repeated),
    resized (bilinear) to ``height x width``.

    ``cv2.INTER_LINEAR`` samples at half-pixel centres (PyTorch's ``align_corners=False``). When an axis
    shrinks, bilinear resizing is PIL's: the triangle filter stretched by the scale factor (antialiased),
    which equals plain bilinear interpolation when enlarging.
    """
    up = cv2.resize(scores.astype(np.float64), (input_size, input_size), interpolation=cv2.INTER_LINEAR)
    smooth = ndimage.gaussian_filter(up, sigma, mode="reflect", truncate=4.0)
    if height >= input_size and width >= input_size:
        return cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR)
    resized = Image.fromarray(smooth.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float64)


# ----------------------------------------------------------------------------- maps


@pytest.mark.parametrize(
    "make",
    [
        lambda im: im,  # RGB 333 x 517
        lambda im: im[:, :, 0].copy(),  # grayscale (H, W)
        lambda im: im[:, :, :1].copy(),  # grayscale (H, W, 1)
        lambda im: im[:40, :30].copy(),  # smaller than the network input
        lambda im: im[:1, :1].copy(),  # a single pixel
    ],
)
def test_map_shape_dtype_finite(fitted: PatchCore, odd_image: np.ndarray, make) -> None:
    image = make(odd_image)
    prediction = fitted.predict(image)
    assert prediction.anomaly_map.shape == image.shape[:2]
    assert prediction.anomaly_map.dtype == np.float32
    assert np.isfinite(prediction.anomaly_map).all()
    assert isinstance(prediction.image_score, float) and np.isfinite(prediction.image_score)


def test_grayscale_equals_replicated_rgb(fitted: PatchCore, odd_image: np.ndarray) -> None:
    gray = odd_image[:, :, 1].copy()
    np.testing.assert_array_equal(
        fitted.predict(gray).anomaly_map, fitted.predict(np.repeat(gray[:, :, None], 3, axis=2)).anomaly_map
    )


def test_bright_defect_is_localised(fitted: PatchCore) -> None:
    rng = np.random.default_rng(99)
    good = nominal_image(rng)
    bad = nominal_image(rng)
    cy, cx = 40, 130
    bad[cy - 8 : cy + 8, cx - 8 : cx + 8] = 250
    amap = fitted.predict(bad).anomaly_map
    peak = np.unravel_index(int(np.argmax(amap)), amap.shape)
    assert abs(peak[0] - cy) <= 20 and abs(peak[1] - cx) <= 20, peak
    # The defect region outscores the far-away background, and the defective image outscores a good one.
    assert amap[cy - 8 : cy + 8, cx - 8 : cx + 8].mean() > np.percentile(amap[:, :60], 99)
    assert fitted.predict(bad).image_score > fitted.predict(good).image_score


def test_image_score_is_the_max_patch_score(fitted: PatchCore, odd_image: np.ndarray) -> None:
    scores = brute_force_patch_scores(fitted, odd_image)  # num_neighbors=1: the nearest bank vector
    assert scores.shape == (12, 12)  # 96 px / stride 8
    assert fitted.predict(odd_image).image_score == pytest.approx(scores.max(), rel=1e-6)


def test_patch_scores_are_the_mean_distance_to_the_k_nearest(fitted_k3: PatchCore, odd_image: np.ndarray) -> None:
    expected = brute_force_patch_scores(fitted_k3, odd_image)
    x, _, _ = fitted_k3._preprocess(odd_image)
    with torch.inference_mode():
        scores = fitted_k3.patch_scores(x)[0].double().numpy()
    assert scores.shape == expected.shape == (8, 8)
    # Float32 distances of 1024-d vectors (unit roundoff 6e-8 times a few sums of 1024 terms) on scores of
    # a few units: 1e-5 is far below the gap between neighbours (the k-th alone differs by about 0.1).
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert fitted_k3.predict(odd_image).image_score == pytest.approx(expected.max(), rel=1e-6)


@pytest.mark.parametrize("size", [(45, 71), (101, 157)])  # height shrinks from 64 / both axes grow
def test_full_map_parity_with_reference(fitted_k3: PatchCore, size: tuple[int, int]) -> None:
    h, w = size
    image = np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8)
    expected = reference_map(brute_force_patch_scores(fitted_k3, image), 64, 4.0, h, w)
    prediction = fitted_k3.predict(image)
    assert prediction.anomaly_map.shape == (h, w) and prediction.anomaly_map.dtype == np.float32
    # Float32 resampling and smoothing (weighted sums of a few dozen values each) of map values below 10:
    # rounding stays at a few 1e-6; nearest-neighbour resizing or a one-pixel shift differs by 1e-2 or more.
    np.testing.assert_allclose(prediction.anomaly_map, expected, rtol=0, atol=1e-5)


def test_chunk_size_and_batching_do_not_change_maps(fitted: PatchCore, odd_image: np.ndarray, tmp_path) -> None:
    images = [odd_image, odd_image[:100, :77].copy(), odd_image[:, :, 0].copy()]
    reference = [fitted.predict(im) for im in images]
    fitted.save(tmp_path / "m.safetensors")
    chunked = load_method(tmp_path / "m.safetensors", chunk_size=7, feature_batch_size=2)
    batch = chunked.predict_batch(images)
    assert len(batch) == len(images)
    for ref, pred in zip(reference, batch, strict=True):
        np.testing.assert_allclose(pred.anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-6)
        assert pred.image_score == pytest.approx(ref.image_score, rel=1e-5)


# ----------------------------------------------------------------------------- fitting, determinism, checkpoints


def test_memory_bank_is_a_coreset_of_training_patches(fitted: PatchCore, nominal_samples) -> None:
    stats = fitted.fit_stats
    assert stats["n_patches"] == 6 * 12 * 12
    assert stats["memory_bank_size"] == int(6 * 12 * 12 * 0.25) == fitted.memory_bank.shape[0]
    assert fitted.memory_bank.shape[1] == fitted.embed_dim == 1024  # every layer and their stack pooled to 1024
    features = fitted._extract_all(nominal_samples, None, progress=False)[0].tensor
    # Every bank row is one of the training patches (original, unprojected features), no duplicates.
    dist, _ = nearest_neighbors(fitted.memory_bank, features)
    assert float(dist.max()) == 0.0
    assert len(torch.unique(fitted.memory_bank, dim=0)) == fitted.memory_bank.shape[0]


def test_same_seed_same_model_other_seed_other(nominal_samples, fitted_k3: PatchCore, odd_image) -> None:
    options = small_options(input_size=64, num_neighbors=3)  # fitted_k3's options and training images
    again = create_method("patchcore", **options)
    again.fit(nominal_samples[:3], progress=False)
    assert torch.equal(again.memory_bank, fitted_k3.memory_bank)
    np.testing.assert_array_equal(again.predict(odd_image).anomaly_map, fitted_k3.predict(odd_image).anomaly_map)
    other = create_method("patchcore", **{**options, "seed": 4})
    other.fit(nominal_samples[:3], progress=False)
    assert not torch.equal(other.memory_bank, fitted_k3.memory_bank)


def test_checkpoint_round_trip(fitted: PatchCore, odd_image: np.ndarray, tmp_path) -> None:
    path = tmp_path / "sub" / "patchcore.safetensors"
    fitted.save(path)
    meta = read_checkpoint_metadata(path)
    assert meta["method"] == "patchcore" and meta["backbone_embedded"] is True
    assert meta["provenance"]["memory_bank_size"] == fitted.memory_bank.shape[0]
    loaded = load_method(path, device="cpu")
    assert isinstance(loaded, PatchCore)
    assert loaded.options == fitted.options and loaded.pretrained_backbone is False
    assert loaded.fit_stats == json.loads(json.dumps(fitted.fit_stats))
    fitted_by = {key: loaded.provenance()[f"fit_{key}"] for key in ("code_version", "code_fingerprint")}
    assert fitted_by == {"code_version": adbench_hr.__version__, "code_fingerprint": source_fingerprint()}
    for image in (odd_image, odd_image[:, :, 2].copy()):
        a, b = loaded.predict(image), fitted.predict(image)
        np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
        assert a.image_score == b.image_score
    with pytest.raises(InputError, match="cannot override"):
        load_method(path, input_size=128)


@pytest.mark.parametrize("projection_dim", [0, 32])
def test_fit_selects_the_greedy_coreset_of_the_seeded_projection(nominal_samples, projection_dim: int) -> None:
    method = create_method("patchcore", **small_options(input_size=64, projection_dim=projection_dim))
    method.fit(nominal_samples[:3], progress=False)
    features = method._extract_all(nominal_samples[:3], None, progress=False)[0].tensor
    points = features.numpy().astype(np.float64)
    if projection_dim:
        # The documented seeding: one generator seeded with ``seed`` draws the projection, then the start.
        generator = torch.Generator().manual_seed(3)
        points = points @ random_projection(method.embed_dim, projection_dim, generator).numpy().astype(np.float64)
        assert method.fit_stats["coreset_start"] == int(torch.randint(len(points), (1,), generator=generator))
    start = method.fit_stats["coreset_start"]
    n_select = int(len(points) * 0.25)
    selected = [start]
    dist = np.linalg.norm(points - points[start], axis=1)
    while len(selected) < n_select:
        selected.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(points - points[selected[-1]], axis=1))
    assert torch.equal(method.memory_bank, features[selected])


@pytest.mark.parametrize("coreset_ratio", [0.25, 1.0])  # a coreset / every patch read back from the file
def test_disk_spill_gives_the_same_model(
    nominal_samples, fitted_k3: PatchCore, odd_image: np.ndarray, tmp_path: Path, coreset_ratio: float
) -> None:
    options = small_options(input_size=64, num_neighbors=3, coreset_ratio=coreset_ratio)
    if coreset_ratio == fitted_k3.options["coreset_ratio"]:
        in_ram = fitted_k3
    else:
        in_ram = create_method("patchcore", **options)
        in_ram.fit(nominal_samples[:3], progress=False)
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    on_disk = create_method("patchcore", **options, feature_ram_gib=0.0, tmp_dir=str(spill_dir))
    on_disk.fit(nominal_samples[:3], progress=False)
    assert in_ram.fit_stats["feature_store"] == "ram"
    assert on_disk.fit_stats["feature_store"] == "disk"
    assert on_disk.fit_stats["feature_bytes"] == 3 * 8 * 8 * in_ram.embed_dim * 4
    assert list(spill_dir.iterdir()) == []  # the temporary file is gone after fit
    assert torch.equal(in_ram.memory_bank, on_disk.memory_bank)
    np.testing.assert_array_equal(in_ram.predict(odd_image).anomaly_map, on_disk.predict(odd_image).anomaly_map)


def test_features_stay_in_ram_without_a_projection_on_a_cpu(nominal_samples, tmp_path: Path) -> None:
    # Without a projection the CPU coreset reads the features at every step: they stay in RAM, whatever
    # the budget.
    method = create_method(
        "patchcore", **small_options(input_size=64, projection_dim=0, feature_ram_gib=0.0, tmp_dir=str(tmp_path))
    )
    method.fit(nominal_samples[:1], progress=False)
    assert method.fit_stats["feature_store"] == "ram"
    assert method.fit_stats["feature_bytes"] == 8 * 8 * method.embed_dim * 4
    assert list(tmp_path.iterdir()) == []


def test_coreset_ratio_one_keeps_every_patch(nominal_samples) -> None:
    method = create_method("patchcore", **small_options(coreset_ratio=1.0, input_size=64))
    method.fit(nominal_samples[:2], progress=False)
    assert method.memory_bank.shape[0] == 2 * 8 * 8


def test_fit_errors(nominal_samples) -> None:
    with pytest.raises(InputError, match="no training images"):
        create_method("patchcore", **small_options()).fit([], progress=False)
    with pytest.raises(InputError, match="num_neighbors"):
        create_method("patchcore", **small_options(num_neighbors=50, coreset_ratio=0.01)).fit(
            nominal_samples[:1], progress=False
        )
    with pytest.raises(RuntimeError, match="fit"):
        create_method("patchcore", **small_options()).predict(np.zeros((20, 20, 3), np.uint8))


def test_fit_refuses_a_bank_of_fewer_distinct_patches_than_num_neighbors(sample_cls) -> None:
    # Three copies of one flat image, each through the network alone (bit-identical features): at 32 px a
    # 4 x 4 grid, so at most 16 distinct patches among 48. Half of them (24) pass the num_neighbors=20 check
    # made before the selection, but the greedy selection runs out of distinct points at 16 or fewer, which
    # would leave a bank that every later search refuses.
    image = np.full((40, 40, 3), 120, np.uint8)
    method = create_method(
        "patchcore", **small_options(input_size=32, coreset_ratio=0.5, num_neighbors=20, feature_batch_size=1)
    )
    with pytest.raises(InputError, match=r"num_neighbors=20 exceeds the memory bank size \d+ ") as info:
        method.fit([sample_cls(image, f"train/{i}") for i in range(3)], progress=False)
    assert int(str(info.value).split("memory bank size ")[1].split()[0]) <= 16
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("bank", "problem"),
    [
        (lambda bank: bank[:2].clone(), "memory bank of 2 vectors is smaller than num_neighbors=3"),
        (lambda bank: None, "no memory bank (a tensor named 'memory_bank')"),
        (lambda bank: bank[:, :7].clone(), "memory bank of shape ({m}, 7), expected (M >= 1, 1024) for its options"),
        (lambda bank: bank[:0].clone(), "memory bank of shape (0, 1024), expected (M >= 1, 1024) for its options"),
        (lambda bank: bank[0].clone(), "memory bank of shape (1024,), expected (M >= 1, 1024) for its options"),
    ],
    ids=["fewer than k", "missing", "other width", "empty", "one-dimensional"],
)
def test_load_refuses_a_memory_bank_it_cannot_use(fitted_k3: PatchCore, tmp_path: Path, bank, problem: str) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "k3.safetensors"
    fitted_k3.save(path)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    size = len(tensors["memory_bank"])
    changed = bank(tensors.pop("memory_bank"))
    if changed is not None:
        tensors["memory_bank"] = changed
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(InputError) as info:
        load_method(path)
    assert (info.value.path, info.value.problem) == (path, problem.format(m=size))


# ----------------------------------------------------------------------------- registry and options


def test_registry_and_defaults() -> None:
    assert "patchcore" in list_methods()
    method = create_method("patchcore", weights="random", device="cpu")  # the default WideResNet-50-2
    assert method.pretrained_backbone is False and method.device == "cpu"
    assert method.options["backbone"] == "wide_resnet50_2.tv_in1k" and method.options["input_size"] == 224
    assert method.embed_dim == 1024  # 512 + 1024 channels of layer2 + layer3 pooled to 1024
    prov = method.provenance()
    assert prov["layers"] == ["layer2", "layer3"] and prov["backbone_weights_sha256"] == "random"


def test_layers_by_index_equal_layers_by_name(nominal_samples, fitted: PatchCore, odd_image) -> None:
    by_index = create_method("patchcore", **small_options(layers=[3, 2]))
    assert by_index._layer_names == ["layer2", "layer3"]
    by_index.fit(nominal_samples, progress=False)
    np.testing.assert_array_equal(by_index.predict(odd_image).anomaly_map, fitted.predict(odd_image).anomaly_map)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"frobnicate": 3}, r"unknown option.*frobnicate.*valid options: .*coreset_ratio"),
        ({"preset": "paper"}, "unknown option"),
        ({"layers": ["layer9"]}, "no feature layer 'layer9'.*layer2"),
        ({"layers": ["layer2", 2]}, "same layer twice"),
        ({"coreset_ratio": 0.0}, "coreset_ratio"),
        ({"input_size": 8}, "input_size"),
        ({"sigma": -1}, "sigma"),
        # Before: an OverflowError traceback when the kernel was built (1e300), or hours of blurring (1e6).
        ({"sigma": 1e300}, r"sigma must be >= 0 and at most input_size \(\d+ px\), got 1e\+300"),
        ({"sigma": 1e6}, "sigma must be >= 0 and at most input_size"),
        ({"sigma": float("nan")}, "sigma must be >= 0 and at most input_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"feature_ram_gib": -1}, "feature_ram_gib"),
        ({"backbone": "no_such_net"}, "cannot create backbone"),
        ({"device": "tpu"}, "device"),
        ({"seed": "abc"}, r"patchcore: option seed='abc' is not valid \(not an integer: 'abc'\)"),
        ({"seed": 2**70}, r"option seed=1180591620717411303424 is not valid \(must lie in 0 .. 2\*\*63-1"),
        ({"layers": 2.5}, r"option layers=2.5 is not valid"),
        ({"input_size": 224.5}, "not an integer"),
        ({"num_neighbors": True}, "not an integer"),
    ],
)
def test_bad_options_are_input_errors(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        create_method("patchcore", **small_options(**overrides))
    assert "\n" not in str(info.value)


def test_pretrained_without_network_names_the_alternatives(offline_hub) -> None:
    with pytest.raises(InputError) as info:
        create_method("patchcore", **small_options(weights="pretrained"))
    assert "--weights PATH" in str(info.value) and "--weights random" in str(info.value)


def test_local_weight_file(tmp_path: Path, nominal_samples, odd_image) -> None:
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    method = create_method("patchcore", **small_options(weights=str(path), input_size=64))
    assert method.pretrained_backbone is True
    method.fit(nominal_samples[:2], progress=False)
    ckpt = tmp_path / "m.safetensors"
    method.save(ckpt)
    assert read_checkpoint_metadata(ckpt)["backbone_embedded"] is False
    np.testing.assert_array_equal(
        load_method(ckpt).predict(odd_image).anomaly_map, method.predict(odd_image).anomaly_map
    )



def test_a_file_backbone_embedded_on_request_loads_without_its_file(tmp_path: Path, nominal_samples,
                                                                    odd_image) -> None:
    # include_backbone=True overrides the default (a file backbone is reloaded from its file): the checkpoint
    # holds the backbone and outlives the file, still recording it as the source of a pretrained backbone.
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    source = timm.create_model("resnet18", pretrained=False)
    torch.save(source.state_dict(), path)
    method = create_method("patchcore", **small_options(weights=str(path), input_size=64))
    method.fit(nominal_samples[:2], progress=False)
    ckpt = tmp_path / "m.safetensors"
    method.save(ckpt, include_backbone=True)
    assert read_checkpoint_metadata(ckpt)["backbone_embedded"] is True
    path.unlink()
    loaded = load_method(ckpt)
    assert loaded.pretrained_backbone is True and loaded.options["weights"] == str(path)
    assert loaded.provenance()["backbone_weights_sha256"] == method.provenance()["backbone_weights_sha256"]
    torch.testing.assert_close(loaded._model.conv1.weight, source.conv1.weight, rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.predict(odd_image).anomaly_map, method.predict(odd_image).anomaly_map)

def test_torchvisions_v2_weights_are_told_apart_from_the_papers_by_their_hash(tmp_path: Path, monkeypatch) -> None:
    # torchvision's weights="DEFAULT" file (IMAGENET1K_V2) fits the WideResNet but is not the paper's V1. The
    # real file is 263 MB: a small file stands in, its own hash prefix in the place of 9ba9bcbe.
    import hashlib

    from adbench_hr.errors import AdbenchWarning
    from adbench_hr.methods import patchcore

    torch.manual_seed(0)
    path = tmp_path / "renamed.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(patchcore, "_TORCHVISION_V2_FILE", ("wide_resnet50_2-9ba9bcbe.pth", prefix))
    monkeypatch.setattr(patchcore, "_warned_v2_files", set())
    with pytest.warns(AdbenchWarning) as record:
        create_method("patchcore", **small_options(weights=str(path), input_size=64))
        create_method("patchcore", **small_options(weights=str(path), input_size=64))  # run: once per category
    assert [str(w.message) for w in record] == [
        f"{path}: torchvision's IMAGENET1K_V2 WideResNet-50-2 (wide_resnet50_2-9ba9bcbe.pth), not the "
        "IMAGENET1K_V1 weights of the PatchCore paper (wide_resnet50_2-95faca4d.pth): its features, and so the "
        "results, differ from the paper's"]
    other = "0" if prefix[0] != "0" else "1"  # any other file: no warning
    monkeypatch.setattr(patchcore, "_TORCHVISION_V2_FILE", ("wide_resnet50_2-9ba9bcbe.pth", other + prefix[1:]))
    monkeypatch.setattr(patchcore, "_warned_v2_files", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdbenchWarning)
        create_method("patchcore", **small_options(weights=str(path), input_size=64))


# ----------------------------------------------------------------------------- CLI


def test_run_cli(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    code = main([
        "run", "--method", "patchcore", "--weights", "random", "--dataset", "synthetic",
        "--root", str(tiny_synthetic_root), "--out", str(tmp_path), "-o", "backbone=resnet18",
        "-o", "input_size=64", "--device", "cpu", "--quiet",
    ])  # fmt: skip
    assert code == 0
    results = sorted((tmp_path / "patchcore" / "synthetic" / "results").glob("*.json"))
    assert [p.stem for p in results] == ["brushed_metal", "wood_grain"]
    for path in results:
        result = json.loads(path.read_text())
        assert result["method"] == "patchcore" and result["pretrained_backbone"] is False
        assert result["metrics"]["n_images"] == 6 and 0.0 <= result["metrics"]["p_auroc"] <= 1.0
        assert Path(result["checkpoint"]).is_file()
        assert len(list((Path(result["maps_dir"]) / path.stem).rglob("*.tiff"))) == 6


@pytest.mark.parametrize(("input_size", "sigma"), [(96, 4.0), (40, 1.3), (32, 4.0), (32, 10.0)])
def test_map_smoothing_equals_scipy_gaussian_filter(input_size: int, sigma: float) -> None:
    # The official code smooths with scipy.ndimage.gaussian_filter (mode "reflect", truncate 4). At 32 px,
    # sigma 10's 40-px pad is wider than the map, where scipy keeps reflecting.
    method = create_method("patchcore", **small_options(input_size=input_size, sigma=sigma))
    scores = torch.rand(2, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float()
    smoothed = method._smooth(scores)[:, 0].double().numpy()
    # Bilinear upsampling at half-pixel centres (PyTorch's align_corners=False), as documented.
    size = (input_size, input_size)
    upsampled = [cv2.resize(g.double().numpy(), size, interpolation=cv2.INTER_LINEAR) for g in scores]
    assert len(smoothed) == len(upsampled) == 2
    for got, before in zip(smoothed, upsampled, strict=True):
        expected = ndimage.gaussian_filter(before, sigma, mode="reflect", truncate=4.0)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_sigma_zero_leaves_the_upsampled_map_unsmoothed() -> None:
    # "0 for none" (docs/methods.md): the patch scores upsampled bilinearly to input_size, nothing more.
    method = create_method("patchcore", **small_options(input_size=40, sigma=0))
    scores = torch.rand(2, 5, 7, generator=torch.Generator().manual_seed(1))
    smoothed = method._smooth(scores)
    assert smoothed.shape == (2, 1, 40, 40)
    for got, grid in zip(smoothed[:, 0], scores, strict=True):
        expected = cv2.resize(grid.double().numpy(), (40, 40), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=1e-6)


def test_network_input_is_the_whole_image_resized_bilinear_and_imagenet_normalised(fitted: PatchCore) -> None:
    image = np.random.default_rng(5).integers(0, 256, (150, 40, 3), dtype=np.uint8)  # rows shrink, columns grow
    x, h, w = fitted._preprocess(image)
    assert (h, w) == (150, 40) and x.shape == (1, 3, 96, 96)
    # PIL's bilinear resize of each float channel (a triangle filter stretched by the scale factor when an
    # axis shrinks), then (v / 255 - mean) / std with the ImageNet constants.
    resized = np.stack([
        np.asarray(Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize((96, 96), Image.BILINEAR))
        for c in range(3)
    ])
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_allclose(x[0].double().numpy(), (resized / 255.0 - mean) / std, rtol=0, atol=1e-4)


def test_memory_bank_size_rounds_down(nominal_samples) -> None:
    # 2 images x 8 x 8 patches = 128; 10 % of them is 12.8: the official sampler keeps int(12.8) = 12.
    method = create_method("patchcore", **small_options(input_size=64, coreset_ratio=0.1))
    method.fit(nominal_samples[:2], progress=False)
    assert method.fit_stats["n_patches"] == 128 and method.memory_bank.shape[0] == 12


def test_defaults_are_the_published_settings() -> None:
    from adbench_hr.methods.registry import resolved_options

    expected = {
        "backbone": "wide_resnet50_2.tv_in1k", "layers": ["layer2", "layer3"], "input_size": 224, "embed_dim": 1024,
        "coreset_ratio": 0.1, "projection_dim": 128, "num_neighbors": 1, "sigma": 4.0,
    }
    resolved = resolved_options("patchcore")
    assert {key: resolved[key] for key in expected} == expected


def test_a_library_fit_that_spills_into_a_missing_tmp_dir_is_one_input_error(nominal_samples, tmp_path) -> None:
    # `run` checks tmp_dir in preflight; a library caller's fit reached the spill unchecked and got the
    # FileNotFoundError of tempfile.mkdtemp.
    method = create_method("patchcore", **small_options(feature_ram_gib=0.0, tmp_dir=str(tmp_path / "gone")))
    with pytest.raises(InputError, match="gone: no such folder"):
        method.fit(nominal_samples)
    assert not (tmp_path / "gone").exists()
