"""The shared ``weights`` option: random, local files (safetensors / torch, wrapped), pretrained failures.

Nothing here touches the network: pretrained loading is always monkeypatched.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from adbench_hr.errors import InputError
from adbench_hr.methods import create_method, load_method
from adbench_hr.methods._backbone import create_backbone, file_sha256, state_dict_sha256

NAME = "vit_small_patch14_reg4_dinov2"
KW = {"depth": 4, "embed_dim": 48, "num_heads": 2, "num_classes": 0}


def reference_model(img_size: int = 70, seed: int = 123) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(NAME, pretrained=False, img_size=img_size, **KW)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_random_weights_are_seeded_and_flagged(tiny) -> None:
    a = create_method("ts-mlp", **tiny(seed=1))
    b = create_method("ts-mlp", **tiny(seed=1))
    c = create_method("ts-mlp", **tiny(seed=2))
    assert a.pretrained_backbone is False
    assert a.provenance()["teacher_weights_sha256"] == "random"
    assert_same_weights(a._teacher, b._teacher)
    assert not torch.equal(a._teacher.pos_embed, c._teacher.pos_embed)


@pytest.mark.parametrize(
    ("suffix", "wrap"),
    [
        (".safetensors", None),
        (".pth", None),
        (".pth", "state_dict"),
        (".pt", "model"),
        (".pth", "module."),
    ],
)
def test_local_file_round_trip(tmp_path, suffix: str, wrap: str | None) -> None:
    source = reference_model()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / f"teacher{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    elif wrap == "module.":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    elif wrap:
        torch.save({wrap: state, "epoch": 3}, path)
    else:
        torch.save(state, path)
    model, info = create_backbone(NAME, str(path), img_size=70, **{k: v for k, v in KW.items()})
    assert_same_weights(model, source)
    assert info.pretrained is True and info.hash_kind == "file"
    assert info.sha256 == file_sha256(path)


def test_local_file_resampled_to_another_img_size(tmp_path) -> None:
    source = reference_model(img_size=70)  # 5 x 5 position embeddings
    path = tmp_path / "teacher.safetensors"
    save_file(source.state_dict(), str(path))
    model, _ = create_backbone(NAME, str(path), img_size=140, **KW)  # 10 x 10
    assert model.pos_embed.shape[1] == 100
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_local_file_in_method_and_checkpoint(tiny, train_samples, tmp_path) -> None:
    path = tmp_path / "teacher.safetensors"
    save_file(reference_model().state_dict(), str(path))
    method = create_method("ts-mlp", **tiny(weights=str(path)))
    assert method.pretrained_backbone is True
    assert method.provenance()["teacher_weights_sha256"] == file_sha256(path)
    method.fit(train_samples, progress=False)
    ckpt = tmp_path / "model.safetensors"
    method.save(ckpt)
    image = np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_method(ckpt).predict(image).anomaly_map, method.predict(image).anomaly_map)
    # Same file under another name: allowed, the hash matches.
    moved = tmp_path / "moved.safetensors"
    moved.write_bytes(path.read_bytes())
    assert load_method(ckpt, weights=str(moved)).pretrained_backbone is True
    # Different weights: the students would be meaningless, so loading refuses.
    save_file(reference_model(seed=999).state_dict(), str(path))
    with pytest.raises(InputError, match="teacher weights differ"):
        load_method(ckpt)
    # The teacher's file is gone: an error about that file, not about the checkpoint (which stays usable).
    path.unlink()
    with pytest.raises(InputError) as info:
        load_method(ckpt)
    assert info.value.path == path and "not found" in info.value.problem


def test_bad_local_files(tmp_path) -> None:
    with pytest.raises(InputError, match="not found") as info:
        create_backbone(NAME, str(tmp_path / "nope.safetensors"), img_size=70, **KW)
    assert "random" in str(info.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="cannot read"):
        create_backbone(NAME, str(junk), img_size=70, **KW)
    other = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(3, 3)}, str(other))
    with pytest.raises(InputError, match="do not match"):
        create_backbone(NAME, str(other), img_size=70, **KW)


def test_a_plain_pickle_of_weights_is_one_clear_error_and_no_warning(tmp_path, recwarn) -> None:
    import pickle

    pickled = tmp_path / "weights.pth"
    pickled.write_bytes(pickle.dumps({"fc.weight": torch.zeros(3, 3)}, protocol=4))  # not torch.save
    with pytest.raises(InputError, match=r"not a file torch.save wrote.*torch.save\(model.state_dict\(\), path\)"):
        create_backbone(NAME, str(pickled), img_size=70, **KW)
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_reading_a_weight_file_hides_only_torchs_pickle_protocol_warning(tmp_path, monkeypatch) -> None:
    # Before: every warning was ignored while torch.load ran (a process-wide filter), another thread's too.
    import warnings

    from adbench_hr.methods._backbone import read_state_dict

    def load(*args, **kwargs):
        warnings.warn("Detected pickle protocol 4 in the checkpoint", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
        return {"fc.weight": torch.zeros(1)}

    monkeypatch.setattr(torch, "load", load)
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.warns(UserWarning) as record:
        assert list(read_state_dict(tmp_path / "w.pth")) == ["fc.weight"]
    assert [str(w.message) for w in record] == ["something else"]


def test_pretrained_without_network_names_both_alternatives(offline_hub, tiny) -> None:
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", **tiny(weights="pretrained"))
    message = str(info.value)
    assert "--weights PATH (a local .safetensors/.pth/.pt/.bin/.ckpt file)" in message  # every kind read
    assert "--weights random" in message
    assert "\n" not in message


def test_pretrained_weights_found_nowhere_are_refused_before_any_model_is_built(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants
    import huggingface_hub.file_download

    from adbench_hr.methods import _backbone

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    # Older huggingface_hub (0.20) reads its own copy of the name, imported from constants, when looking up the cache.
    monkeypatch.setattr(huggingface_hub.file_download, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: False)
    name = "vit_small_patch14_reg4_dinov2.lvd142m"
    with pytest.raises(InputError, match=rf"could not load pretrained weights for {name} \(the Hugging Face hub "
                                         r"is unreachable and no cached copy was found\); pass --weights PATH"):
        _backbone.check_pretrained_source(name)
    # A copy in the cache, laid out as the hub client writes it: accepted.
    repo = tmp_path / "hub" / "models--timm--vit_small_patch14_reg4_dinov2.lvd142m"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(b"")
    _backbone.check_pretrained_source(name)
    # A reachable hub, or a name timm does not know (creating the model says so), is left to create_backbone.
    (repo / "snapshots" / "abc123" / "model.safetensors").unlink()
    _backbone.check_pretrained_source("no_such_model")
    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: True)
    _backbone.check_pretrained_source(name)


def test_pretrained_success_path(monkeypatch: pytest.MonkeyPatch, tiny) -> None:
    """With timm's loader mocked to succeed, the backbone counts as pretrained and is hashed."""
    real_create = timm.create_model
    calls = []

    def cached_create(name, pretrained=False, **kwargs):
        calls.append(pretrained)
        torch.manual_seed(5)
        return real_create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", cached_create)
    method = create_method("ts-mlp", **tiny(weights="pretrained"))
    assert calls == [True]
    assert method.pretrained_backbone is True
    prov = method.provenance()
    assert prov["teacher_weights"] == "pretrained" and prov["teacher_weights_hash_kind"] == "state_dict"
    assert len(prov["teacher_weights_sha256"]) == 64


def test_state_dict_hash_is_content_based() -> None:
    assert state_dict_sha256(reference_model(seed=1)) == state_dict_sha256(reference_model(seed=1))
    assert state_dict_sha256(reference_model(seed=1)) != state_dict_sha256(reference_model(seed=2))


def test_unreachable_hub_reads_the_cache_only_and_restores_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline: the hub client is switched to cache-only (no minute of retries) and switched back after."""
    import logging

    import huggingface_hub.constants as hub_constants

    seen = {}

    def create(name, pretrained=False, **kwargs):
        seen["offline"] = hub_constants.HF_HUB_OFFLINE
        seen["log_level"] = logging.getLogger("huggingface_hub").level
        raise FileNotFoundError("not in cache")

    monkeypatch.setattr(timm, "create_model", create)
    before = hub_constants.HF_HUB_OFFLINE
    with pytest.raises(InputError, match="unreachable and no cached copy") as info:
        create_backbone(NAME, "pretrained", img_size=70, **KW)
    assert seen == {"offline": True, "log_level": logging.ERROR}
    assert hub_constants.HF_HUB_OFFLINE == before
    assert "--weights random" in str(info.value)


def test_unreachable_hub_with_a_cached_copy_that_fails_to_load_says_so(tmp_path, monkeypatch) -> None:
    """Offline with a copy in the cache that does not load (damaged, or not fitting teacher_kwargs): the error said
    "no cached copy was found", which sent the user looking for a network instead of at the copy or the options."""
    import huggingface_hub.constants
    import huggingface_hub.file_download

    from adbench_hr.methods import _backbone

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.file_download, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: False)
    repo = tmp_path / "hub" / "models--timm--vit_small_patch14_reg4_dinov2.lvd142m"  # NAME's default tag
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(b"")

    def create(name, pretrained=False, **kwargs):
        raise RuntimeError("Error(s) in loading state_dict: size mismatch for cls_token")

    monkeypatch.setattr(timm, "create_model", create)
    with pytest.raises(InputError) as info:
        create_backbone(NAME, "pretrained", img_size=70, **KW)
    assert str(info.value) == (
        f"could not load pretrained weights for {NAME} (the Hugging Face hub is unreachable and the cached copy did "
        "not load: RuntimeError: Error(s) in loading state_dict: size mismatch for cls_token); pass --weights PATH "
        "(a local .safetensors/.pth/.pt/.bin/.ckpt file) or --weights random (smoke run, meaningless maps)"
    )
    # Without the copy, the message stays that none was found.
    (repo / "snapshots" / "abc123" / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"\(the Hugging Face hub is unreachable and no cached copy was found\)"):
        create_backbone(NAME, "pretrained", img_size=70, **KW)


def test_an_unreadable_hub_cache_is_left_to_loading_and_not_called_a_copy_that_failed(monkeypatch) -> None:
    """Offline, with a cache that cannot be looked into: preflight knows nothing about a copy and lets the method be
    created; loading then fails as when no copy was found (not 'the cached copy did not load')."""
    import huggingface_hub

    from adbench_hr.methods import _backbone

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def create(name, pretrained=False, **kwargs):
        raise FileNotFoundError("not in cache")

    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", unreadable)
    _backbone.check_pretrained_source(NAME)
    monkeypatch.setattr(timm, "create_model", create)
    with pytest.raises(InputError, match=r"\(the Hugging Face hub is unreachable and no cached copy was found\)"):
        create_backbone(NAME, "pretrained", img_size=70, **KW)


def test_backbones_loading_in_overlapping_threads_restore_the_hub_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two methods created at once (a notebook's threads), the first without a network: each block restoring what
    it had found left the hub client offline and its log silenced for the rest of the process."""
    import logging
    import threading

    import huggingface_hub.constants as hub_constants

    from adbench_hr.methods import _backbone

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    logger = logging.getLogger("huggingface_hub")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: threading.current_thread().name == "online")
    offline_in, online_in, offline_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}
    model = reference_model(seed=1)
    failures: list[BaseException] = []

    def create(name, pretrained=False, **kwargs):
        if threading.current_thread().name == "offline":
            offline_in.set()
            online_in.wait(10)
            raise FileNotFoundError("not in cache")
        online_in.set()
        offline_out.wait(10)
        seen["online, once the other ended"] = hub_constants.HF_HUB_OFFLINE
        return model

    monkeypatch.setattr(timm, "create_model", create)

    def offline() -> None:
        try:
            create_backbone(NAME, "pretrained", img_size=70, **KW)
        except InputError as exc:
            seen["offline"] = "unreachable and no cached copy" in str(exc)
        offline_out.set()

    def online() -> None:
        offline_in.wait(10)
        try:
            create_backbone(NAME, "pretrained", img_size=70, **KW)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=offline, name="offline"), threading.Thread(target=online, name="online")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert seen == {"online, once the other ended": False, "offline": True}  # the other's offline switch went with it
    assert (hub_constants.HF_HUB_OFFLINE, logger.level) == (False, logging.WARNING)


def test_reachable_hub_reports_the_loader_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from adbench_hr.methods import _backbone

    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: True)

    def create(name, pretrained=False, **kwargs):
        raise RuntimeError("403 gated repository")

    monkeypatch.setattr(timm, "create_model", create)
    with pytest.raises(InputError, match="403 gated repository"):
        create_backbone(NAME, "pretrained", img_size=70, **KW)


def test_the_hub_counts_as_reachable_when_its_endpoint_accepts_a_connection(monkeypatch) -> None:
    # Every other test stubs this check; here a listener on the loopback stands in for the hub (no request is sent).
    import socket

    from adbench_hr.methods._backbone import _hub_reachable

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert _hub_reachable(timeout_s=2.0) is True
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # the listener is closed now: refused
    assert _hub_reachable(timeout_s=2.0) is False


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("resnet18.no_such_tag", "Invalid pretrained tag (no_such_tag) for resnet18."),
        ("no_such_model", "Unknown model (no_such_model)"),
    ],
)
def test_offline_a_name_timm_does_not_know_is_reported_as_such_not_as_a_missing_copy(monkeypatch, name,
                                                                                     problem) -> None:
    # timm refuses the name before any download. Offline, the error said "the Hugging Face hub is unreachable
    # and no cached copy was found", sending a library caller after a network to meet the real problem after.
    from adbench_hr.methods import _backbone

    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: False)
    _backbone.check_pretrained_source(name)  # preflight knows of no copy to miss: creating the model tells
    with pytest.raises(InputError) as info:
        create_backbone(name, "pretrained")
    assert str(info.value) == (f"could not load pretrained weights for {name} (RuntimeError: {problem}); pass "
                               "--weights PATH (a local .safetensors/.pth/.pt/.bin/.ckpt file) or --weights random "
                               "(smoke run, meaningless maps)")


def test_a_classifier_head_in_the_file_is_ignored(tmp_path) -> None:
    # Files of a full classifier carry its head; the backbone is built with num_classes=0 and has none.
    source = reference_model()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["head.weight"], state["head.bias"] = torch.ones(10, 48), torch.ones(10)
    path = tmp_path / "classifier.safetensors"
    save_file(state, str(path))
    model, info = create_backbone(NAME, str(path), img_size=70, **KW)
    assert_same_weights(model, source)
    assert info.sha256 == file_sha256(path)
    # Any other key the model does not have means the file is not this model's.
    state["blocks.4.attn.qkv.weight"] = torch.ones(144, 48)
    save_file(state, str(path))
    with pytest.raises(InputError, match=r"unexpected: blocks\.4\.attn\.qkv\.weight"):
        create_backbone(NAME, str(path), img_size=70, **KW)


def test_an_embedded_file_teacher_loads_without_its_file_and_keeps_its_provenance(
    tiny, train_samples, tmp_path
) -> None:
    path = tmp_path / "teacher.safetensors"
    save_file(reference_model().state_dict(), str(path))
    method = create_method("ts-mlp", **tiny(weights=str(path), epochs=1))
    method.fit(train_samples, progress=False)
    ckpt = tmp_path / "model.safetensors"
    method.save(ckpt, include_teacher=True)
    path.unlink()  # embedded: the file is no longer needed
    loaded = load_method(ckpt)
    assert loaded.pretrained_backbone is True  # a real (file) teacher, not a random one
    assert loaded.options == method.options  # weights still names the file the teacher came from
    for key in ("teacher_weights", "teacher_weights_sha256", "pretrained_backbone", "n_train_images"):
        assert loaded.provenance()[key] == method.provenance()[key], key
    image = np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.predict(image).anomaly_map, method.predict(image).anomaly_map)
