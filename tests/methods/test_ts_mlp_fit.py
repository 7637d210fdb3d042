"""ts-mlp end to end with a tiny random teacher: shapes, determinism, checkpoints, feature caching."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from adbench_hr.errors import AdbenchWarning, InputError
from adbench_hr.methods import (
    CHECKPOINT_METADATA_KEY,
    AnomalyMethod,
    create_method,
    load_method,
    read_checkpoint_metadata,
)
from adbench_hr.methods._fp8 import Fp8Linear
from adbench_hr.methods.ts_mlp import TSMLP


@pytest.fixture(scope="module")
def fitted(tiny, train_samples) -> TSMLP:
    method = create_method("ts-mlp", **tiny())
    method.fit(train_samples, progress=False)
    return method


@pytest.mark.parametrize(
    "make",
    [
        lambda im: im,  # RGB 333 x 517
        lambda im: im[:, :, 0].copy(),  # grayscale (H, W)
        lambda im: im[:, :, :1].copy(),  # grayscale (H, W, 1)
        lambda im: np.ascontiguousarray(im.transpose(1, 0, 2)),  # tall 517 x 333
        lambda im: im[:1, :1],  # a single pixel
    ],
)
def test_map_shape_dtype_finite(fitted: TSMLP, odd_image: np.ndarray, make) -> None:
    image = make(odd_image)
    prediction = fitted.predict(image)
    assert prediction.anomaly_map.shape == image.shape[:2]
    assert prediction.anomaly_map.dtype == np.float32
    assert np.isfinite(prediction.anomaly_map).all()
    assert isinstance(prediction.image_score, float) and np.isfinite(prediction.image_score)


def test_grayscale_equals_replicated_rgb(fitted: TSMLP, odd_image: np.ndarray) -> None:
    gray = odd_image[:, :, 1].copy()
    a = fitted.predict(gray).anomaly_map
    b = fitted.predict(np.repeat(gray[:, :, None], 3, axis=2)).anomaly_map
    np.testing.assert_array_equal(a, b)


def test_predict_batch_matches_predict(fitted: TSMLP, odd_image: np.ndarray) -> None:
    images = [odd_image, odd_image[:200, :150], odd_image[:, :, 0].copy()]
    batch = fitted.predict_batch(images)
    assert len(batch) == len(images)
    for image, prediction in zip(images, batch, strict=True):
        single = fitted.predict(image)
        assert prediction.anomaly_map.shape == image.shape[:2]
        np.testing.assert_allclose(prediction.anomaly_map, single.anomaly_map, rtol=1e-5, atol=1e-6)
        assert prediction.image_score == pytest.approx(single.image_score, rel=1e-5)


def test_bad_images_are_rejected(fitted: TSMLP) -> None:
    with pytest.raises(ValueError, match="uint8"):
        fitted.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        fitted.predict(np.zeros((10, 10, 2), np.uint8))


def test_predict_before_fit_raises(tiny) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        create_method("ts-mlp", **tiny()).predict(np.zeros((20, 20, 3), np.uint8))


def test_fit_without_images_is_an_input_error(tiny) -> None:
    with pytest.raises(InputError, match="no training images"):
        create_method("ts-mlp", **tiny()).fit([], progress=False)


def test_same_seed_same_maps_different_seed_different(fitted: TSMLP, tiny, train_samples, odd_image) -> None:
    again = create_method("ts-mlp", **tiny())  # the module model's options, seed 7 included
    again.fit(train_samples, progress=False)
    np.testing.assert_array_equal(again.predict(odd_image).anomaly_map, fitted.predict(odd_image).anomaly_map)
    other = create_method("ts-mlp", **tiny(seed=8))
    other.fit(train_samples, progress=False)
    assert not torch.equal(other.forward_net.input.weight, fitted.forward_net.input.weight)
    assert not np.array_equal(other.predict(odd_image).anomaly_map, fitted.predict(odd_image).anomaly_map)


def test_teacher_runs_once_per_training_image_and_training_lowers_both_losses(tiny, train_samples) -> None:
    method = create_method("ts-mlp", **tiny(epochs=2, batch_size=2, feature_batch_size=4))
    # The students as fit initialises them (seeded with the method's seed), kept to compare with afterwards.
    method._init_students()
    initial = copy.deepcopy((method.forward_net, method.backward_net))
    seen = []
    handle = method._teacher.patch_embed.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    try:
        method.fit(train_samples, progress=False)
    finally:
        handle.remove()
    assert sum(seen) == len(train_samples)  # 6 teacher passes, not epochs x images = 12
    losses = method.fit_stats["epoch_losses"]
    assert len(losses) == 2 and losses[-1] < losses[0]

    # Each direction's term of the loss, (1 - mean cosine), on the training features, in float64 numpy:
    # training lowers both (a backward student that is never trained keeps its initial term).
    with torch.inference_mode():
        x = torch.cat([method._prep(method._upload(s.load_image())) for s in train_samples])
        mid, last = method._teacher_features(x)

        def terms(fwd: torch.nn.Module, bwd: torch.nn.Module) -> tuple[float, float]:
            def one_minus_mean_cos(pred: torch.Tensor, target: torch.Tensor) -> float:
                p, t = pred.double().numpy(), target.double().numpy()
                cos = (p * t).sum(-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1))
                return float(1.0 - cos.mean())

            return one_minus_mean_cos(fwd(mid), last), one_minus_mean_cos(bwd(last), mid)

        before = terms(*initial)
        after = terms(method.forward_net, method.backward_net)
    assert after[0] < before[0] and after[1] < before[1], (before, after)


def test_disk_spill_gives_the_same_model(fitted: TSMLP, tiny, train_samples, odd_image, tmp_path) -> None:
    on_disk = create_method("ts-mlp", **tiny(feature_ram_gib=0.0, tmp_dir=str(tmp_path)))
    on_disk.fit(train_samples, progress=False)
    assert fitted.fit_stats["feature_store"] == "ram"  # the module model: same options, default RAM budget
    assert on_disk.fit_stats["feature_store"] == "disk"
    assert list(tmp_path.iterdir()) == []  # the temporary feature file is removed after fit
    np.testing.assert_array_equal(fitted.predict(odd_image).anomaly_map, on_disk.predict(odd_image).anomaly_map)


def test_checkpoint_round_trip(fitted: TSMLP, odd_image: np.ndarray, tmp_path) -> None:
    path = tmp_path / "sub" / "model.safetensors"
    fitted.save(path)
    meta = read_checkpoint_metadata(path)
    assert meta["method"] == "ts-mlp" and meta["teacher_embedded"] is True  # random teacher is embedded
    for loader in (load_method, AnomalyMethod.load, TSMLP.load):
        loaded = loader(path)
        assert isinstance(loaded, TSMLP)
        np.testing.assert_array_equal(loaded.predict(odd_image).anomaly_map, fitted.predict(odd_image).anomaly_map)
        assert loaded.options == fitted.options
        assert loaded.pretrained_backbone is False
    prov = loaded.provenance()
    json.dumps(prov)
    for key in ("teacher", "teacher_weights_sha256", "input_resolution", "code_version", "code_fingerprint", "seed",
                "options"):
        assert key in prov
    assert prov["teacher_weights_sha256"] == "random" and prov["input_resolution"] == 70


def test_a_checkpoint_of_another_adbench_hr_version_loads_with_a_warning(fitted: TSMLP, odd_image, tmp_path,
                                                                         monkeypatch) -> None:
    import warnings

    import adbench_hr

    path = tmp_path / "model.safetensors"
    fitted.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdbenchWarning)  # the same version: no warning
        load_method(path)
    monkeypatch.setattr(adbench_hr, "__version__", "9.9.9")  # an upgrade that changed the numbers
    with pytest.warns(AdbenchWarning) as record:
        loaded = load_method(path)
    assert [str(w.message) for w in record] == [
        f"{path}: checkpoint fitted by adbench-hr {read_checkpoint_metadata(path)['provenance']['code_version']}, "
        "this is 9.9.9: its maps and scores may differ from those it gave then"]
    np.testing.assert_array_equal(loaded.predict(odd_image).anomaly_map, fitted.predict(odd_image).anomaly_map)


def test_provenance_names_the_build_that_fitted_a_loaded_model(fitted: TSMLP, train_samples, tmp_path,
                                                                monkeypatch) -> None:
    from safetensors.torch import load_file, save_file

    import adbench_hr
    from adbench_hr._source import source_fingerprint
    from adbench_hr.methods import _common

    this_build = (adbench_hr.__version__, source_fingerprint())

    def builds(method: AnomalyMethod) -> tuple[tuple, tuple]:
        record = method.provenance()
        return ((record["code_version"], record["code_fingerprint"]),
                (record["fit_code_version"], record["fit_code_fingerprint"]))

    assert builds(fitted) == (this_build, this_build)
    assert builds(create_method("ts-mlp", **fitted.options))[1] == (None, None)  # not fitted yet
    # An edited checkout fits and saves; this build loads the checkpoint and saves it again.
    edited = copy.deepcopy(fitted)
    monkeypatch.setattr(_common, "source_fingerprint", lambda: "e" * 16)
    edited.fit(train_samples[:2], progress=False)
    assert builds(edited) == ((this_build[0], "e" * 16),) * 2
    path = tmp_path / "edited.safetensors"
    edited.save(path)
    monkeypatch.undo()
    loaded = load_method(path)
    assert builds(loaded) == (this_build, (this_build[0], "e" * 16))
    again = tmp_path / "again.safetensors"
    loaded.save(again)
    assert builds(load_method(again)) == (this_build, (this_build[0], "e" * 16))
    # A checkpoint from before fit statistics named the fitting build: its writer is taken as the fitter.
    with safe_open(str(path), framework="pt") as handle:
        record = json.loads(handle.metadata()[CHECKPOINT_METADATA_KEY])
    for key in ("code_version", "code_fingerprint"):
        del record["fit_stats"][key], record["provenance"][f"fit_{key}"]
    record["provenance"]["code_fingerprint"] = "d" * 16
    older = tmp_path / "older.safetensors"
    save_file(load_file(str(path)), str(older), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})
    assert builds(load_method(older)) == (this_build, (this_build[0], "d" * 16))


def test_checkpoint_load_errors(fitted: TSMLP, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    with pytest.raises(InputError, match="cannot override"):
        load_method(path, epochs=3)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="not an adbench-hr checkpoint"):
        load_method(junk)
    with pytest.raises(InputError, match="not found"):
        load_method(tmp_path / "missing.safetensors")
    # A checkpoint of another code version may record an option this version does not know.
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    record = json.loads(metadata[CHECKPOINT_METADATA_KEY])
    record["options"]["warp_factor"] = 9
    future = tmp_path / "future.safetensors"
    save_file(load_file(str(path)), str(future), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})
    with pytest.raises(InputError, match=r"future\.safetensors: method 'ts-mlp': unknown option\(s\) warp_factor"):
        load_method(future)
    del record["options"]["warp_factor"]
    record["options"]["layers"] = record["options"]["layers"][::-1]  # accepted by earlier versions
    save_file(load_file(str(path)), str(future), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})
    with pytest.raises(InputError, match=r"future\.safetensors: its options are not valid in this version: .*layers"):
        load_method(future)
    # A valid override does not move the blame off a checkpoint whose own options are not valid.
    with pytest.raises(InputError, match=r"future\.safetensors: its options are not valid in this version: .*layers"):
        load_method(future, num_workers=0)


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"teacher_precision": "FP8"},
         "ts-mlp: teacher_precision must be auto, fp32, bf16, bf16-weights, fp8; got 'FP8'"),
        ({"num_workers": -1}, "ts-mlp: num_workers must be >= 0, got -1"),
        ({"compile": "maybe"}, "ts-mlp: option compile='maybe' is not valid (not a boolean: 'maybe')"),
    ],
)
def test_checkpoint_load_bad_override_is_not_blamed_on_the_file(fitted: TSMLP, tmp_path, override, problem) -> None:
    # The checkpoint's options are valid; the value given when loading is not: the error says what creating
    # the method with that value says, without naming the checkpoint as the fault (before: "<checkpoint>: its
    # options are not valid in this version: ...", which `run` would take for an unusable checkpoint).
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    with pytest.raises(InputError) as info:
        load_method(path, **override)
    assert info.value.path is None
    assert str(info.value) == problem
    with pytest.raises(InputError) as created:
        create_method("ts-mlp", **{**fitted.options, **override})
    assert str(created.value) == problem


def test_options_and_provenance_are_json(fitted: TSMLP) -> None:
    json.dumps(fitted.options)
    prov = fitted.provenance()
    assert json.loads(json.dumps(prov))["pretrained_backbone"] is False
    assert prov["fitted"] is True and prov["n_train_images"] == 6
    assert fitted.options["blur"] == [5, 5, 5, 5, 5, 7, 7, 7]
    assert fitted.options["layers"] == [2, 4]


def test_attention_kernel_choice_only_changes_rounding(fitted: TSMLP, odd_image: np.ndarray, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    math_kernel = load_method(path, attention="math")
    assert math_kernel.options["attention"] == "math"
    np.testing.assert_allclose(
        math_kernel.predict(odd_image).anomaly_map, fitted.predict(odd_image).anomaly_map, rtol=1e-4, atol=1e-5
    )
    with pytest.raises(InputError, match="attention"):
        load_method(path, attention="warp-speed")


def test_presets() -> None:
    from adbench_hr.methods.ts_mlp import PRESETS

    assert PRESETS["paper"]["teacher"] == "vit_base_patch14_reg4_dinov2.lvd142m"
    assert PRESETS["paper"]["img_size"] // 14 == 74
    assert PRESETS["fast"]["teacher"] == "vit_small_patch14_reg4_dinov2.lvd142m"
    assert PRESETS["fast"]["img_size"] // 14 == 37
    for preset in PRESETS.values():
        assert preset["layers"] == [8, 12] and preset["epochs"] == 50 and preset["batch_size"] == 4
        assert preset["lr"] == 1e-4


def test_bf16_weights_teacher_is_close_and_keeps_float32_checkpoints(
    fitted: TSMLP, odd_image: np.ndarray, tmp_path
) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    fast = load_method(path, teacher_precision="bf16-weights", cuda_graph=True)  # cuda_graph: no-op on a CPU
    reference = fitted.predict(odd_image).anomaly_map
    approx = fast.predict(odd_image).anomaly_map
    assert approx.dtype == np.float32 and approx.shape == reference.shape
    # A bf16 teacher gives features within ~1 % of float32 ones (bf16 keeps 8 significant bits; the option's
    # documented accuracy). Each map value is the product of two error norms of unit vectors, which moves
    # by about the sum of the two factors' relative changes: a few percent at most. 5 % of the map's maximum
    # bounds that, and still fails for a teacher that is wrong rather than rounded.
    assert np.abs(approx - reference).max() <= 0.05 * np.abs(reference).max()
    assert not np.array_equal(approx, reference)  # the bf16 path really ran
    # The float32 teacher weights stay the checkpoint's weights.
    again = tmp_path / "again.safetensors"
    fast.save(again)
    assert load_method(again).options["teacher_precision"] == "bf16-weights"
    restored = load_method(again, teacher_precision="auto")
    np.testing.assert_array_equal(restored.predict(odd_image).anomaly_map, reference)


def test_unknown_teacher_precision_is_rejected(tiny) -> None:
    with pytest.raises(InputError, match="teacher_precision"):
        create_method("ts-mlp", **tiny(teacher_precision="int8"))


@pytest.mark.cpu_fp8
def test_fp8_teacher_tracks_the_float32_teacher(tiny, train_samples, odd_image: np.ndarray, tmp_path) -> None:
    # Unit layer scales (DINOv2's random init is 1e-5) so that the blocks' linear layers shape the features.
    kwargs = {**tiny()["teacher_kwargs"], "init_values": 1.0}
    method = create_method("ts-mlp", **tiny(teacher_kwargs=kwargs))
    method.fit(train_samples, progress=False)
    path = tmp_path / "model.safetensors"
    method.save(path)
    fp8 = load_method(path, teacher_precision="fp8")
    bf16 = load_method(path, teacher_precision="bf16-weights")
    x = method._prep(method._upload(odd_image))
    with torch.inference_mode():
        exact, low, bf16_features = (m._teacher_features(x) for m in (method, fp8, bf16))
    converted = [m for m in fp8._low_precision_teacher().modules() if isinstance(m, Fp8Linear)]
    assert len(converted) == 4 * len(fp8._teacher.blocks)  # qkv, proj, fc1, fc2 of every block
    assert len(exact) == len(low) == len(bf16_features) == 2
    for e, f, b in zip(exact, low, bf16_features, strict=True):
        error = float((f - e).norm() / e.norm())
        # Each fp8 product errs by less than e4m3's unit roundoff 2**-4 = 0.0625 (tests/methods/test_fp8.py),
        # and the residual stream adds the unquantised skip path: the features stay below that, 0.05.
        assert 0 < error <= 0.05
        assert error > float((b - e).norm() / e.norm())  # coarser than the bf16 teacher: fp8 really ran
    reference = method.predict(odd_image).anomaly_map
    approx = fp8.predict(odd_image).anomaly_map
    assert approx.dtype == np.float32 and approx.shape == reference.shape
    assert np.abs(approx - reference).max() <= 0.05 * np.abs(reference).max()
    # Checkpoints of an fp8 run keep the float32 teacher.
    again = tmp_path / "again.safetensors"
    fp8.save(again)
    np.testing.assert_array_equal(
        load_method(again, teacher_precision="auto").predict(odd_image).anomaly_map, reference
    )


def test_cuda_graphs_are_captured_for_recurring_shapes_only(tiny) -> None:
    method = create_method("ts-mlp", **tiny(cuda_graph=True))
    assert not method._use_graph([torch.zeros(8, 9, 3)])  # on a CPU: never
    method._device = torch.device("cuda")  # only the decision is exercised; nothing runs on a GPU
    a, b = torch.zeros(8, 9, 3), torch.zeros(9, 8, 3)
    assert [method._use_graph([a]), method._use_graph([b]), method._use_graph([a]), method._use_graph([a])] == [
        False, False, True, True
    ]
    assert not method._use_graph([a, a])  # batches run eagerly


def test_a_shape_whose_graph_cannot_be_captured_is_predicted_eagerly_from_then_on(
    fitted, images_factory, monkeypatch
) -> None:
    import contextlib

    method = copy.deepcopy(fitted)
    method.options["cuda_graph"] = True
    real_use_graph = TSMLP._use_graph

    def use_graph_as_on_a_gpu(tensors):  # only the decision sees a GPU; everything else runs on the CPU
        device, method._device = method._device, torch.device("cuda")
        try:
            return real_use_graph(method, tensors)
        finally:
            method._device = device

    captures = []

    def refused_capture(*args, **kwargs):
        captures.append(args)
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nCUDA kernel errors ...")

    monkeypatch.setattr(method, "_use_graph", use_graph_as_on_a_gpu)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Stream", refused_capture)
    first, second, third = images_factory(3, seed=5, shapes=[(40, 50)] * 3)
    other = images_factory(1, seed=6, shapes=[(50, 40)])[0]
    with pytest.warns(AdbenchWarning) as record:
        maps = [method.predict(image).anomaly_map for image in (first, second, third, other, other)]
    # The second image of a shape tries once; the third does not try again; another shape tries on its own.
    assert len(captures) == 2
    warned = [str(w.message) for w in record]
    assert len(warned) == 2  # once per shape
    assert warned[0].startswith("ts-mlp: cannot capture a CUDA graph of predict for images of shape "
                                "(40, 50, 3) (CUDA error: operation not permitted when stream is capturing)")
    assert "(50, 40, 3)" in warned[1] and not any("CUDA kernel errors" in message for message in warned)
    for image, amap in zip((first, second, third, other, other), maps):
        np.testing.assert_array_equal(amap, fitted.predict(image).anomaly_map)


def test_fitting_again_drops_the_graphs_of_the_old_students(fitted, train_samples) -> None:
    method = copy.deepcopy(fitted)
    method._graphs[(4, 4, 3)] = ("graph", "input", "output", "kept")
    method.fit(train_samples[:2], progress=False)
    assert method._graphs == {}


@pytest.mark.parametrize("failure", [OSError("disk gone"), KeyboardInterrupt()])
def test_a_failed_fit_keeps_the_previous_model(fitted, train_samples, odd_image, failure) -> None:
    method = copy.deepcopy(fitted)
    before = method.predict(odd_image).anomaly_map
    stats = dict(method.fit_stats)

    class Unreadable:
        def load_image(self):
            raise failure

    with pytest.raises(type(failure)):
        method.fit([*train_samples[:2], Unreadable()], progress=False)
    np.testing.assert_array_equal(method.predict(odd_image).anomaly_map, before)
    assert method.fit_stats == stats and method.provenance()["n_train_images"] == stats["n_train_images"]
    # A first fit that fails leaves the method unfitted: it refuses to predict rather than use random students.
    fresh = create_method("ts-mlp", **{**fitted.options, "weights": "random"})
    with pytest.raises(type(failure)):
        fresh.fit([Unreadable()], progress=False)
    with pytest.raises(RuntimeError, match="call fit"):
        fresh.predict(odd_image)


def test_a_fit_whose_loss_stops_being_finite_is_refused_and_leaves_the_method_unfitted(tiny, train_samples,
                                                                                    odd_image) -> None:
    # Adam moves each weight by about lr per step: at lr 1e30 the first step leaves weights near 1e30, whose
    # squared outputs overflow float32, so the epoch's mean loss is not finite. Students trained so give
    # meaningless maps: the fit stops instead.
    method = create_method("ts-mlp", **tiny(lr=1e30, batch_size=1, epochs=1))
    with pytest.raises(RuntimeError, match=r"^ts-mlp: training diverged \(epoch loss (nan|inf)\)$"):
        method.fit(train_samples[:3], progress=False)
    assert method.forward_net is None and method.fit_stats == {}
    with pytest.raises(RuntimeError, match="call fit"):
        method.predict(odd_image)


# ----------------------------------------------------------------------------- training schedule, cache, presets


def _record_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Record the image indices of every training batch that fit reads from its feature cache."""
    from adbench_hr.methods import _ts_mlp_model

    seen: list[list[int]] = []
    real_batch = _ts_mlp_model.FeatureStore.batch

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        seen.append(index.tolist())
        return real_batch(self, index)

    monkeypatch.setattr(_ts_mlp_model.FeatureStore, "batch", batch)
    return seen


def test_training_equals_a_plain_reference_loop(tiny, train_samples, monkeypatch) -> None:
    """fit = the published schedule, written out here: the teacher's tokens of every image cached in half
    precision; per batch of ``batch_size`` images, loss (1 - mean cos(fwd(mid), last)) + (1 - mean cos(bwd(last),
    mid)), one Adam step at ``lr``; ``epochs`` epochs, the last kept; an epoch's loss is the mean of its batches'.

    The batch order is taken from the run (its shuffling is checked in the next test). ``feature_batch_size``
    differs from ``batch_size`` on purpose, and a large ``lr`` makes every step count.
    """
    seen = _record_batches(monkeypatch)
    lr, epochs = 1e-2, 3
    method = create_method("ts-mlp", **tiny(epochs=epochs, batch_size=4, feature_batch_size=2, lr=lr))
    method._init_students()  # fit starts from these (seeded) students
    fwd, bwd = copy.deepcopy((method.forward_net, method.backward_net))
    method.fit(train_samples, progress=False)
    assert [len(b) for b in seen] == [4, 2] * epochs  # 6 images in batches of 4: two steps per epoch

    with torch.no_grad():
        feats = [method._teacher_features(method._prep(method._upload(s.load_image()))) for s in train_samples]
    mid = torch.cat([f[0] for f in feats]).half().float()  # the cache holds float16 values
    last = torch.cat([f[1] for f in feats]).half().float()

    def one_minus_mean_cos(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = (pred * target).sum(-1) / (pred.norm(dim=-1) * target.norm(dim=-1))
        return 1.0 - cos.mean()

    optimizer = torch.optim.Adam([*fwd.parameters(), *bwd.parameters()], lr=lr)
    losses = []
    for epoch in range(epochs):
        batch_losses = []
        for index in seen[2 * epoch : 2 * epoch + 2]:
            m, t = mid[index], last[index]
            loss = one_minus_mean_cos(fwd(m), t) + one_minus_mean_cos(bwd(t), m)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_losses.append(float(loss.detach()))
        losses.append(sum(batch_losses) / len(batch_losses))
    for ours, ref in ((method.forward_net, fwd), (method.backward_net, bwd)):
        ref_state = ref.state_dict()
        for name, value in ours.state_dict().items():
            # Steps of 1e-2; the two loss formulas differ only by float32 rounding.
            torch.testing.assert_close(value, ref_state[name], rtol=0, atol=1e-5, msg=name)
    assert method.fit_stats["epoch_losses"] == pytest.approx(losses, abs=1e-5)


def test_each_epoch_visits_every_image_once_in_a_seeded_shuffled_order(tiny, train_samples, monkeypatch) -> None:
    seen = _record_batches(monkeypatch)
    orders = {}
    for seed in (7, 8):
        seen.clear()
        create_method("ts-mlp", **tiny(seed=seed, epochs=4, batch_size=2)).fit(train_samples, progress=False)
        assert [len(b) for b in seen] == [2] * 12
        epochs = [sum(seen[i : i + 3], []) for i in range(0, 12, 3)]
        assert all(sorted(order) == list(range(6)) for order in epochs)  # each image once per epoch
        assert len({tuple(order) for order in epochs}) > 1  # shuffled anew each epoch
        orders[seed] = epochs
    assert orders[7] != orders[8]  # the seed picks the order


@pytest.mark.parametrize("ram_budget", [2**30, 0])
def test_feature_cache_is_saturating_half_precision_in_ram_or_on_disk(tmp_path, ram_budget: int) -> None:
    from adbench_hr.methods._ts_mlp_model import FeatureStore

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 2, 5, 4)) * 10).astype(np.float32)  # 3 images, (mid, last), 5 tokens, 4 dims
    x[0, 0, 0, :3] = [7e4, -1e6, 65519.0]  # beyond float16's range: saturate at +-65504, never inf
    expected = np.clip(x, -65504, 65504).astype(np.float16).astype(np.float32)
    with FeatureStore(3, 5, 4, torch.device("cpu"), 0, ram_budget, tmp_path) as store:
        store.put(0, torch.from_numpy(x[:2]))
        store.put(2, torch.from_numpy(x[2:]))
        assert store.location == ("ram" if ram_budget else "disk")
        if not ram_budget:  # the spilled file holds 2 bytes per value
            files = list(tmp_path.glob("*/buffer.bin"))
            assert len(files) == 1 and files[0].stat().st_size == x.size * 2
        got = store.batch(torch.tensor([2, 0, 1]))
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected[[2, 0, 1]])
    assert list(tmp_path.iterdir()) == []


def test_presets_resolve_to_the_published_settings() -> None:
    from adbench_hr.methods.registry import resolved_options

    paper = {
        "preset": "paper", "teacher": "vit_base_patch14_reg4_dinov2.lvd142m", "img_size": 1036, "layers": [8, 12],
        "epochs": 50, "batch_size": 4, "lr": 1e-4, "blur": [5, 5, 5, 5, 5, 7, 7, 7], "top_fraction": 0.001,
        "seed": 115,  # the official code's seed (docs/methods.md)
    }
    fast = {**paper, "preset": "fast", "teacher": "vit_small_patch14_reg4_dinov2.lvd142m", "img_size": 518}
    for expected in (paper, fast):
        resolved = resolved_options("ts-mlp", preset=expected["preset"], device="cpu")
        assert {key: resolved[key] for key in expected} == expected


@pytest.mark.parametrize(
    "override", [{"seed": 8}, {"lr": 1e-3}, {"batch_size": 2}, {"layers": [1, 4]}, {"img_size": 140}]
)
def test_what_the_students_were_trained_with_cannot_be_overridden_when_loading(
    fitted: TSMLP, tmp_path, override
) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    with pytest.raises(InputError, match="cannot override"):
        load_method(path, **override)


def test_a_checkpoint_loads_only_as_its_own_method_and_format(fitted: TSMLP, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from adbench_hr.methods.patchcore import PatchCore

    path = tmp_path / "model.safetensors"
    fitted.save(path)
    with pytest.raises(InputError, match="checkpoint is for method 'ts-mlp', not 'patchcore'"):
        PatchCore.load(path)
    record = read_checkpoint_metadata(path)
    record["format"] = "adbench-hr/checkpoint/v0"
    other = tmp_path / "other.safetensors"
    save_file(load_file(str(path)), str(other), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})
    with pytest.raises(InputError, match="not an adbench-hr checkpoint"):
        load_method(other)


def test_fitting_again_starts_from_fresh_students(tiny, train_samples) -> None:
    method = create_method("ts-mlp", **tiny(epochs=1))
    method.fit(train_samples, progress=False)
    first = copy.deepcopy(method.forward_net.state_dict())
    method.fit(train_samples, progress=False)  # the same data and seed: the same model, not one trained longer
    for name, value in method.forward_net.state_dict().items():
        assert torch.equal(value, first[name]), name


@pytest.mark.skipif(
    not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9: no per-backend TF32 setting"
)
@pytest.mark.parametrize("setting", ["tf32", "ieee"])
def test_a_caller_tf32_setting_of_the_new_api_is_kept_and_does_not_break_predict(
    fitted: TSMLP, odd_image: np.ndarray, setting: str
) -> None:
    # torch >= 2.9 refuses to read the legacy allow_tf32 flag once the new setting was used; predict read it.
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    try:
        matmul.fp32_precision = setting
        fitted.predict(odd_image)
        assert matmul.fp32_precision == setting
        fitted.options["student_tf32"] = True
        fitted.predict(odd_image)
        assert matmul.fp32_precision == setting
    finally:
        fitted.options["student_tf32"] = False
        matmul.fp32_precision = before


def test_predict_leaves_the_float32_matmul_precision_as_it_was(fitted: TSMLP, odd_image: np.ndarray) -> None:
    # Writing the legacy flag turned "medium" into a state get_float32_matmul_precision() refuses to report.
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        fitted.predict(odd_image)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_caller_autocast_does_not_reach_the_students_and_maps(
    fitted: TSMLP, odd_image: np.ndarray, train_samples, dtype: torch.dtype
) -> None:
    # Students and maps are float32 whatever autocast the caller runs predict or fit under (bf16 maps used to
    # fail in numpy, fp16 ones came back as float16).
    reference = fitted.predict(odd_image).anomaly_map
    with torch.autocast("cpu", dtype=dtype):
        prediction = fitted.predict(odd_image)
        method = copy.deepcopy(fitted)
        method.fit(train_samples[:2], progress=False)
    assert prediction.anomaly_map.dtype == np.float32
    np.testing.assert_array_equal(prediction.anomaly_map, reference)
    assert method.forward_net.input.weight.dtype == torch.float32
    again = copy.deepcopy(fitted)
    again.fit(train_samples[:2], progress=False)
    np.testing.assert_array_equal(method.predict(odd_image).anomaly_map, again.predict(odd_image).anomaly_map)


def test_graphs_are_captured_on_a_stream_of_the_method_device(fitted, odd_image, monkeypatch) -> None:
    # torch.cuda.graph's default capture stream belongs to the device current at the process's first capture.
    import contextlib

    method = copy.deepcopy(fitted)
    streams, captures = [], []

    class FakeStream:
        def __init__(self, device=None):
            self.device = device
            streams.append(self)

        def wait_stream(self, other):
            pass

    class FakeGraph:
        def replay(self):
            pass

    def fake_graph(graph, pool=None, stream=None, **kwargs):
        captures.append(stream)
        return contextlib.nullcontext()

    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream(device))
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_graph)
    with torch.inference_mode():
        out = method._graphed_device_predict(torch.from_numpy(odd_image))
    assert out is not None and len(captures) == 1
    assert isinstance(captures[0], FakeStream) and captures[0].device == method._device


def test_an_evicted_graph_gives_its_memory_pool_back_before_the_next_capture(fitted, monkeypatch) -> None:
    # A dropped graph's private pool stays reserved until torch.cuda.empty_cache (or an allocation that would
    # fail): without it, every shape past the kept ones left one more pool on the GPU.
    import contextlib
    import weakref

    from adbench_hr.methods.ts_mlp import _MAX_GRAPHS

    method = copy.deepcopy(fitted)
    made: list[weakref.ref] = []  # every graph captured
    alive_at_empty_cache: list[int] = []

    class FakeStream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    class FakeGraph:
        def __init__(self):
            made.append(weakref.ref(self))

        def replay(self):
            pass

    def alive() -> int:
        return sum(ref() is not None for ref in made)

    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream(device))
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", lambda graph, pool=None, stream=None, **kw: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: alive_at_empty_cache.append(alive()))
    shapes = [(20 + i, 31 - i, 3) for i in range(_MAX_GRAPHS + 2)]
    with torch.inference_mode():
        for shape in [*shapes, shapes[-1], shapes[0]]:  # then a kept shape again, then an evicted one
            method._graphed_device_predict(torch.zeros(shape, dtype=torch.uint8))
    assert len(made) == _MAX_GRAPHS + 3  # the evicted shape was captured anew, the kept one replayed
    # One empty_cache per eviction, each with the evicted graph gone and the next one not yet captured.
    assert alive_at_empty_cache == [_MAX_GRAPHS - 1] * 3
    assert alive() == len(method._graphs) == _MAX_GRAPHS
    assert list(method._graphs) == [*shapes[-(_MAX_GRAPHS - 1) :], shapes[0]]  # least recently used first


@pytest.fixture
def dynamo_eager(monkeypatch):
    """``torch.compile`` with dynamo's guards and recompiles but the ``eager`` backend (no inductor: seconds on
    a CPU), on a clean dynamo cache and counters; the cache entries of ``TSMLP._teacher_forward`` are
    returned."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: real_compile(fn, backend="eager", **kwargs))
    torch._dynamo.reset()
    counters.clear()  # reset() keeps them
    yield lambda: torch._dynamo.eval_frame._debug_get_cache_entry_list(TSMLP._teacher_forward.__code__)
    torch._dynamo.reset()


def _compiled_and_eager_fits(tiny, sample_cls, images_factory, n_images: int, seed: int) -> tuple[TSMLP, TSMLP]:
    """A compiled and an eager ts-mlp, fitted on the same ``n_images`` images in batches of 16."""
    samples = [sample_cls(im) for im in images_factory(n_images, seed=seed)]
    compiled = create_method("ts-mlp", **tiny(compile=True, feature_batch_size=16, epochs=1))
    eager = create_method("ts-mlp", **tiny(feature_batch_size=16, epochs=1))
    compiled.fit(samples, progress=False)
    eager.fit(samples, progress=False)
    return compiled, eager


def test_a_compiled_teacher_compiles_few_batch_sizes_and_never_falls_back_to_eager(
    dynamo_eager, tiny, sample_cls, images_factory
) -> None:
    from torch._dynamo.utils import counters

    # 20 training images in batches of 16 leave a partial batch of 4; then predict_batch of every length.
    compiled, eager = _compiled_and_eager_fits(tiny, sample_cls, images_factory, 20, seed=4)
    images = images_factory(16, seed=8)
    for n in range(1, 17):
        for got, want in zip(compiled.predict_batch(images[:n]), eager.predict_batch(images[:n])):
            np.testing.assert_allclose(got.anomaly_map, want.anomaly_map, rtol=1e-5, atol=1e-6)
            assert got.image_score == pytest.approx(want.image_score, rel=1e-5)
    # Batches of 1, 2, 4, 8 and 16 images: 5 compilations, under dynamo's recompile limit of 8 (16 sizes
    # before: the limit was hit and the teacher ran eagerly from then on, with one log line).
    assert len(dynamo_eager()) == 5
    assert not [key for key in counters["unimplemented"] if "recompile limit" in key.lower()]
    assert counters["frames"]["total"] == counters["frames"]["ok"] == 5


def test_a_compiled_fit_whose_last_batch_is_padded_learns_what_an_eager_fit_learns(
    dynamo_eager, tiny, sample_cls, images_factory
) -> None:
    # 19 images in batches of 16: the last 3 run as 4 (one zero image added); only the real images' features
    # may be stored and trained on.
    compiled, eager = _compiled_and_eager_fits(tiny, sample_cls, images_factory, 19, seed=5)
    assert compiled.fit_stats["epoch_losses"] == pytest.approx(eager.fit_stats["epoch_losses"], rel=1e-5)
    image = images_factory(1, seed=9)[0]
    np.testing.assert_allclose(compiled.predict(image).anomaly_map, eager.predict(image).anomaly_map,
                               rtol=1e-5, atol=1e-6)


def test_compiled_batch_sizes_are_powers_of_two_up_to_the_feature_batch_size() -> None:
    from adbench_hr.methods.ts_mlp import compiled_batch_size

    assert [compiled_batch_size(n, 16) for n in range(1, 17)] == [1, 2, 4, 4] + [8] * 4 + [16] * 8
    assert [compiled_batch_size(n, 12) for n in range(1, 13)] == [1, 2, 4, 4] + [8] * 4 + [12] * 4
    assert [compiled_batch_size(n, 1) for n in (1, 3)] == [1, 3]  # never fewer than the images
    with pytest.raises(ValueError, match="at least one image, got 0"):
        compiled_batch_size(0, 16)  # (0 - 1).bit_length() is 1: it would say 2
