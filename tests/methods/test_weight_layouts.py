"""`--weights PATH` with the files users download, each built here in its upstream key layout from a random model
(never through the loader under test), then loaded through ``create_method`` and compared with the source model.

- timm's hub files (``huggingface.co/timm/<name>``: ``model.safetensors``, ``pytorch_model.bin``): timm's layout;
- Meta's DINOv2 releases (``dinov2_vit?14[_reg4]_pretrain.pth``): the layout of ``dinov2/models/vision_transformer.py``
  (``cls_token`` and ``pos_embed`` with the class position, ``register_tokens``, ``mask_token``, a 37 x 37 grid);
- Hugging Face transformers' DINOv2 (``facebook/dinov2-*``): ``embeddings.*``, ``encoder.layer.N.*`` with separate
  query/key/value, under ``dinov2_with_registers.`` beside a classifier in the image-classification model;
- DINOv2's training code's checkpoints: ``teacher_checkpoint.pth`` (``{"teacher": {"backbone.*", heads}}``) and a
  full training checkpoint (``{"model": {"teacher.backbone.*", "student.backbone.*", heads}, ...}``), blocks in
  chunks (``blocks.C.N.*``);
- torchvision's ImageNet ResNets (``wide_resnet50_2-95faca4d.pth``), with or without BatchNorm's batch counters.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

from adbench_hr.cli.main import main
from adbench_hr.errors import InputError
from adbench_hr.methods import create_method

TEACHER = "vit_small_patch14_reg4_dinov2"  # the fast preset's teacher, made tiny: 2 blocks, 48 wide
WIDTH = 48
TINY = {"depth": 2, "embed_dim": WIDTH, "num_heads": 2}
OPTIONS = {"preset": "fast", "device": "cpu", "seed": 7, "img_size": 70, "layers": [1, 2], "teacher_kwargs": TINY,
           "epochs": 1, "num_workers": 0}
HUB_FILE = "model.safetensors of huggingface.co/timm/vit_small_patch14_reg4_dinov2.lvd142m"
META_FILE = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth"


@pytest.fixture(scope="module")
def teacher_518() -> dict[str, torch.Tensor]:
    """timm state dict of a tiny random 4-register teacher at 518 px (37 x 37 positions, as the releases),
    with random LayerNorm and layer-scale values (their defaults, ones and 1e-5, would hide a swap)."""
    torch.manual_seed(21)
    model = timm.create_model(TEACHER, pretrained=False, img_size=518, num_classes=0, **TINY)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "gamma" in name:
                param.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


def meta_layout(timm_state: dict[str, torch.Tensor], registers: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of facebookresearch/dinov2's DinoVisionTransformer holding the same network.

    There, the class token gets the first position embedding (``pos_embed`` is ``1 + 37 * 37`` long) and the
    register tokens, inserted after it, get none; timm keeps ``cls + pos[0]`` as its ``cls_token`` and the patch
    positions alone. ``mask_token`` (training only) has no timm counterpart.
    """
    cls_position = torch.randn(1, 1, WIDTH, generator=torch.Generator().manual_seed(3))
    state = {
        "cls_token": timm_state["cls_token"] - cls_position,
        "pos_embed": torch.cat([cls_position, timm_state["pos_embed"]], dim=1),
        "mask_token": torch.randn(1, WIDTH),
    }
    if registers:
        state["register_tokens"] = timm_state["reg_token"]
    state.update({k: v for k, v in timm_state.items() if k not in ("cls_token", "pos_embed", "reg_token")})
    return state


def transformers_layout(meta: dict[str, torch.Tensor], depth: int = 2) -> dict[str, torch.Tensor]:
    """The state dict of transformers' Dinov2Model / Dinov2WithRegistersModel holding a DINOv2 (Meta layout),
    after the names of transformers' own conversion script (separate query, key and value)."""
    state = {
        "embeddings.cls_token": meta["cls_token"],
        "embeddings.mask_token": meta["mask_token"],
        "embeddings.position_embeddings": meta["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": meta["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": meta["patch_embed.proj.bias"],
        "layernorm.weight": meta["norm.weight"],
        "layernorm.bias": meta["norm.bias"],
    }
    if "register_tokens" in meta:
        state["embeddings.register_tokens"] = meta["register_tokens"]
    for i in range(depth):
        ours, theirs = f"blocks.{i}.", f"encoder.layer.{i}."
        for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
            for kind in ("weight", "bias"):
                state[f"{theirs}{name}.{kind}"] = meta[f"{ours}{name}.{kind}"]
        state[f"{theirs}layer_scale1.lambda1"] = meta[f"{ours}ls1.gamma"]
        state[f"{theirs}layer_scale2.lambda1"] = meta[f"{ours}ls2.gamma"]
        for kind in ("weight", "bias"):
            state[f"{theirs}attention.output.dense.{kind}"] = meta[f"{ours}attn.proj.{kind}"]
            for j, part in enumerate(("query", "key", "value")):
                state[f"{theirs}attention.attention.{part}.{kind}"] = meta[f"{ours}attn.qkv.{kind}"][
                    j * WIDTH : (j + 1) * WIDTH
                ]
    return state


def transformers_5_module_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers DINOv2 file's state dict under transformers 5's own module names, as
    ``torch.save(model.state_dict())`` writes it (``save_pretrained`` writes the file's names): per its
    ``conversion_mapping.py``, query/key/value -> ``attention.q_proj``/``k_proj``/``v_proj``, ``attention.output.dense``
    -> ``attention.o_proj``, SwiGLU's ``weights_in`` chunked along dim 0 into ``gate_proj`` then ``up_proj``,
    ``weights_out`` -> ``down_proj``."""
    renames = {"attention.attention.query.": "attention.q_proj.", "attention.attention.key.": "attention.k_proj.",
               "attention.attention.value.": "attention.v_proj.", "attention.output.dense.": "attention.o_proj.",
               "mlp.weights_out.": "mlp.down_proj."}
    out = {}
    for key, value in state.items():
        if ".mlp.weights_in." in key:
            gate, up = value.chunk(2, dim=0)
            out[key.replace(".weights_in.", ".gate_proj.")] = gate
            out[key.replace(".weights_in.", ".up_proj.")] = up
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def training_layout(meta: dict[str, torch.Tensor], prefix: str, chunks: int = 2,
                    depth: int = 2) -> dict[str, torch.Tensor]:
    """The backbone of DINOv2's training code (``SSLMetaArch``) under ``prefix``, trained with ``block_chunks``:
    chunk C holds blocks C * depth / chunks on, each still named by its index over all blocks (``BlockChunk``
    pads the chunk's start with parameterless ``nn.Identity``), beside the DINO and iBOT heads' weights."""
    per_chunk = depth // chunks
    state = {}
    for key, value in meta.items():
        if key.startswith("blocks."):
            index = int(key.split(".")[1])
            key = f"blocks.{index // per_chunk}.{key[len('blocks.'):]}"
        state[f"{prefix}{key}"] = value
    head = prefix.replace("backbone.", "")
    state[f"{head}dino_head.last_layer.weight_g"] = torch.ones(65536, 1)
    state[f"{head}ibot_head.mlp.0.weight"] = torch.randn(16, WIDTH)
    return state


def other_transformers_vit() -> dict[str, torch.Tensor]:
    """The names of transformers' ``ViTModel`` (``google/vit-base-patch16-224-in21k``): no layer scale, the
    block's norms as ``layernorm_before`` and ``layernorm_after``, its MLP as ``intermediate`` and ``output``."""
    state = {"embeddings.cls_token": torch.zeros(1, 1, WIDTH),
             "embeddings.position_embeddings": torch.zeros(1, 26, WIDTH),
             "embeddings.patch_embeddings.projection.weight": torch.zeros(WIDTH, 3, 14, 14),
             "embeddings.patch_embeddings.projection.bias": torch.zeros(WIDTH),
             "layernorm.weight": torch.ones(WIDTH), "layernorm.bias": torch.zeros(WIDTH)}
    for i in range(2):
        for name in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                     "attention.output.dense"):
            state[f"encoder.layer.{i}.{name}.weight"] = torch.zeros(WIDTH, WIDTH)
        state[f"encoder.layer.{i}.layernorm_before.weight"] = torch.ones(WIDTH)
        state[f"encoder.layer.{i}.intermediate.dense.weight"] = torch.zeros(4 * WIDTH, WIDTH)
        state[f"encoder.layer.{i}.output.dense.weight"] = torch.zeros(WIDTH, 4 * WIDTH)
    return state


def torchvision_features(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """layer2 and layer3 outputs of a torchvision ResNet, read with forward hooks."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [getattr(model, name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
             for name in ("layer2", "layer3")]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return [outputs["layer2"], outputs["layer3"]]


def random_torchvision(builder, seed: int) -> torch.nn.Module:
    """A torchvision model with random weights and BatchNorm statistics (the defaults would be the identity)."""
    torch.manual_seed(seed)
    model = builder(weights=None).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.normal_(1, 0.1)
                module.bias.normal_(0, 0.1)
    return model


def teacher_features(path, img_size: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    method = create_method("ts-mlp", weights=str(path), **{**OPTIONS, "img_size": img_size})
    assert method.pretrained_backbone is True
    with torch.no_grad():
        return method._teacher_features(x)


def expected_teacher_features(timm_state: dict[str, torch.Tensor], img_size: int,
                              x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks 1 and 2 (final norm applied) of the teacher holding ``timm_state`` at ``img_size``: its 37 x 37
    position grid resized here with torch's bicubic, antialiased interpolation (timm's documented resampling)."""
    model = timm.create_model(TEACHER, pretrained=False, img_size=img_size, num_classes=0, **TINY).eval()
    state = dict(timm_state)
    side = img_size // 14
    if side != 37:
        grid = timm_state["pos_embed"].reshape(1, 37, 37, WIDTH).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
        state["pos_embed"] = grid.permute(0, 2, 3, 1).reshape(1, side * side, WIDTH)
    model.load_state_dict(state)
    with torch.no_grad():
        mid, last = model.forward_intermediates(x, indices=[0, 1], norm=True, output_fmt="NLC",
                                                intermediates_only=True)
    return mid, last


def patchcore_features(path, backbone: str, x: torch.Tensor) -> list[torch.Tensor]:
    method = create_method("patchcore", weights=str(path), backbone=backbone, input_size=64, device="cpu")
    assert method.pretrained_backbone is True
    with torch.no_grad():
        return list(method._model.forward_intermediates(x, indices=method._indices, intermediates_only=True))


def test_a_torchvision_resnet_file_without_batch_counters_gives_torchvisions_features(tmp_path) -> None:
    # Before: a file without BatchNorm's num_batches_tracked (written before PyTorch 0.4.1) was refused as
    # "missing: bn1.num_batches_tracked ...", although torch itself loads it. (With them: the WideResNet test.)
    source = random_torchvision(torchvision.models.resnet18, seed=5)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for got, want in zip(patchcore_features(path, "resnet18", x), torchvision_features(source, x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("classifier", ["none", "two classes"])
def test_a_resnet_file_without_or_with_another_classifier_gives_its_features(tmp_path, classifier) -> None:
    # The classifier is never run (PatchCore prunes it): before, a file saved without it, or fine-tuned to other
    # classes, was refused as "missing: fc.bias, fc.weight" or "wrong shape: fc.bias, fc.weight".
    source = random_torchvision(torchvision.models.resnet18, seed=8)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    if classifier == "two classes":
        state |= {"fc.weight": torch.randn(2, 512), "fc.bias": torch.randn(2)}
    path = tmp_path / "resnet18-finetuned.pth"
    torch.save(state, path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for got, want in zip(patchcore_features(path, "resnet18", x), torchvision_features(source, x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def dinov2_file(layout: str, teacher_518: dict[str, torch.Tensor]) -> object:
    """What a file of ``layout`` holds for the teacher ``teacher_518``."""
    if layout == "timm":
        return teacher_518
    meta = meta_layout(teacher_518)
    if layout == "meta":
        return meta
    if layout == "transformers":
        return transformers_layout(meta)
    if layout == "transformers-no-mask-token":  # Dinov2Config(use_mask_token=False): no embeddings.mask_token
        return {k: v for k, v in transformers_layout(meta).items() if k != "embeddings.mask_token"}
    if layout == "transformers-5-state-dict":  # torch.save(Dinov2WithRegistersModel(...).state_dict()), transformers 5
        return transformers_5_module_names(transformers_layout(meta))
    if layout == "transformers-classifier":  # Dinov2WithRegistersForImageClassification
        return {**{f"dinov2_with_registers.{k}": v for k, v in transformers_layout(meta).items()},
                "classifier.weight": torch.randn(1000, 2 * WIDTH), "classifier.bias": torch.randn(1000)}
    if layout == "training-teacher":
        return {"teacher": training_layout(meta, "backbone.")}
    assert layout == "training-full"  # the student differs from the teacher, whose features are expected
    student = {k: v + 1 for k, v in meta.items()}
    return {"model": {**training_layout(student, "student.backbone."), **training_layout(meta, "teacher.backbone.")},
            "iteration": 12499}


@pytest.mark.parametrize("layout, name", [
    ("timm", "model.safetensors"),  # huggingface.co/timm/<teacher>
    ("timm", "pytorch_model.bin"),  # the same repository's torch file
    ("meta", "dinov2_vits14_reg4_pretrain.pth"),  # dl.fbaipublicfiles.com/dinov2/...
    ("transformers", "model.safetensors"),  # huggingface.co/facebook/dinov2-with-registers-small
    # before: "a Hugging Face transformers checkpoint of a ViT other than DINOv2 (... keys without layer scale)"
    ("transformers-no-mask-token", "model.safetensors"),
    ("transformers-5-state-dict", "dinov2_with_registers_small.pth"),  # transformers 5's in-memory names
    ("transformers-classifier", "model.safetensors"),  # .../dinov2-with-registers-small-imagenet1k-1-layer
    ("training-teacher", "teacher_checkpoint.pth"),  # DINOv2's training code: eval/training_N/
    ("training-full", "model_final.pth"),  # DINOv2's training code: the whole SSLMetaArch
])
@pytest.mark.parametrize("img_size", [518, 70])  # the releases' own grid, and one resampled from it
def test_dinov2_files_of_every_layout_give_the_source_teachers_features(teacher_518, tmp_path, layout, name,
                                                                       img_size) -> None:
    state = dinov2_file(layout, teacher_518)
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)
    x = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    got = teacher_features(path, img_size, x)
    want = expected_teacher_features(teacher_518, img_size, x)
    for a, b in zip(got, want, strict=True):
        # Meta's class token is stored without its position embedding, which timm's conversion adds back.
        torch.testing.assert_close(a, b, rtol=0, atol=0 if layout == "timm" else 1e-5)


@pytest.mark.parametrize("names", ["file", "transformers 5 in memory"])
def test_a_transformers_dinov2_giant_file_gives_the_swiglu_teachers_features(tmp_path, names) -> None:
    # ViT-g's SwiGLU MLP: w12/w3 in Meta's layout, weights_in/weights_out in transformers' files (gate_proj and
    # up_proj apart, down_proj, in transformers 5's modules), fc1/fc2 in timm's.
    giant = "vit_giant_patch14_reg4_dinov2"
    torch.manual_seed(8)
    source = timm.create_model(giant, pretrained=False, img_size=70, num_classes=0, **TINY).eval()
    with torch.no_grad():  # as in teacher_518: layer scale's default 1e-5 would hide a swap of gate and up
        for param_name, param in source.named_parameters():
            if "norm" in param_name or "gamma" in param_name:
                param.normal_()
    timm_state = {k: v.clone() for k, v in source.state_dict().items()}
    cls_position = torch.randn(1, 1, WIDTH)
    meta = {"cls_token": timm_state["cls_token"] - cls_position, "mask_token": torch.zeros(1, WIDTH),
            "pos_embed": torch.cat([cls_position, timm_state["pos_embed"]], dim=1),
            "register_tokens": timm_state["reg_token"]}
    meta |= {k.replace("mlp.fc1.", "mlp.w12.").replace("mlp.fc2.", "mlp.w3."): v for k, v in timm_state.items()
             if k not in ("cls_token", "pos_embed", "reg_token")}
    state = {k.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2."): v for k, v in meta.items()}
    state = {k.replace("mlp.fc1.", "mlp.weights_in.").replace("mlp.fc2.", "mlp.weights_out."): v
             for k, v in transformers_layout(state).items()}
    assert any(".mlp.weights_in." in k for k in state)
    if names != "file":  # before: refused, "missing: blocks.0.attn.proj.bias, ... unexpected: ...k_proj.bias"
        state = transformers_5_module_names(state)
        assert any(".mlp.gate_proj." in k for k in state)
    path = tmp_path / "model.safetensors"  # facebook/dinov2-with-registers-giant, in small
    save_file(state, str(path))
    method = create_method("ts-mlp", weights=str(path), **{**OPTIONS, "teacher": giant})
    x = torch.randn(1, 3, 70, 70, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = method._teacher_features(x)
        want = source.forward_intermediates(x, indices=[0, 1], norm=True, output_fmt="NLC", intermediates_only=True)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_an_incomplete_transformers_attention_is_reported_under_its_own_names(teacher_518, tmp_path) -> None:
    state = transformers_layout(meta_layout(teacher_518))
    del state["encoder.layer.0.attention.attention.value.weight"]  # query and key alone make no qkv
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", weights=str(path), **OPTIONS)
    message = str(info.value)
    assert "missing: blocks.0.attn.qkv.weight" in message
    assert "unexpected: encoder.layer.0.attention.attention.key.weight, encoder.layer.0.attention.attention.query" \
           ".weight" in message


def test_training_checkpoint_names_are_unchunked_and_unprefixed_by_hand() -> None:
    from adbench_hr.methods._dinov2_layouts import to_release_layout

    t = torch.zeros(1)
    chunked = {"backbone.mask_token": t, "backbone.blocks.0.0.norm1.weight": t, "backbone.blocks.1.13.mlp.fc1.bias": t,
               "dino_head.mlp.0.weight": t}
    assert set(to_release_layout(chunked)) == {"mask_token", "blocks.0.norm1.weight", "blocks.13.mlp.fc1.bias"}
    plain = {"backbone.mask_token": t, "backbone.blocks.12.norm1.weight": t, "backbone.blocks.3.ls1.gamma": t}
    assert set(to_release_layout(plain)) == {"mask_token", "blocks.12.norm1.weight", "blocks.3.ls1.gamma"}
    # The backbone's own state dict (no prefix), trained with block_chunks; only a key's leading blocks.C.N. is
    # a chunk, not one further in.
    bare = {"mask_token": t, "blocks.1.3.norm1.weight": t, "neck.blocks.0.1.weight": t}
    assert set(to_release_layout(bare)) == {"mask_token", "blocks.3.norm1.weight", "neck.blocks.0.1.weight"}


def test_transformers_names_under_dinov2_are_renamed_by_hand_and_unknown_ones_kept() -> None:
    # Dinov2ForImageClassification (facebook/dinov2-small-imagenet1k-1-layer): the backbone under "dinov2.".
    from adbench_hr.methods._dinov2_layouts import to_release_layout

    q, k, v = torch.full((2, 2), 1.0), torch.full((2, 2), 2.0), torch.full((2, 2), 3.0)
    z, layer = torch.zeros(2), "dinov2.encoder.layer.10."
    state = {"dinov2.embeddings.cls_token": torch.ones(1, 1, 2), "dinov2.embeddings.position_embeddings": z,
             "dinov2.layernorm.weight": z, f"{layer}layer_scale1.lambda1": z,
             f"{layer}attention.attention.query.weight": q, f"{layer}attention.attention.key.weight": k,
             f"{layer}attention.attention.value.weight": v, f"{layer}mlp.fc1.bias": z,
             f"{layer}rope.weight": z, "dinov2.embeddings.extra": z,  # unknown: left for the key check to report
             "classifier.weight": z}
    out = to_release_layout(state)
    assert set(out) == {"cls_token", "pos_embed", "norm.weight", "blocks.10.ls1.gamma", "blocks.10.attn.qkv.weight",
                        "blocks.10.mlp.fc1.bias", "encoder.layer.10.rope.weight", "embeddings.extra", "mask_token"}
    assert torch.equal(out["blocks.10.attn.qkv.weight"], torch.tensor([[1.0, 1.0]] * 2 + [[2.0, 2.0]] * 2
                                                                      + [[3.0, 3.0]] * 2))
    assert torch.equal(out["mask_token"], torch.zeros(1, 2))  # the file has none: a zero one of the width


def test_other_tensors_are_left_alone_by_the_dinov2_renaming() -> None:
    from adbench_hr.methods._dinov2_layouts import to_release_layout

    resnet = dict(torchvision.models.resnet18(weights=None).state_dict())
    prefixed = {f"backbone.{k}": v for k, v in resnet.items()}  # "backbone." without DINOv2's mask token
    for state in (resnet, prefixed, other_transformers_vit()):
        assert to_release_layout(state) is state


def test_torchvisions_wide_resnet50_2_file_gives_torchvisions_features_in_patchcore(tmp_path) -> None:
    source = random_torchvision(torchvision.models.wide_resnet50_2, seed=6)
    path = tmp_path / "wide_resnet50_2-95faca4d.pth"  # torchvision's IMAGENET1K_V1 file, the paper's
    torch.save(source.state_dict(), path)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    got = patchcore_features(path, "wide_resnet50_2.tv_in1k", x)
    for a, b in zip(got, torchvision_features(source, x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

def test_a_transformers_vit_other_than_dinov2_is_one_line_naming_the_files_that_fit(tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(other_transformers_vit(), str(path))
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", weights=str(path), **OPTIONS)
    message = str(info.value)
    assert info.value.path == path and "\n" not in message
    assert (f"weights do not match {TEACHER}.lvd142m: the file is a Hugging Face transformers checkpoint of a ViT "
            "other than DINOv2") in message
    assert message.endswith(f"files that fit it: {HUB_FILE} or {META_FILE}")


def test_the_cli_reports_a_transformers_dinov2_without_registers_in_one_line_with_exit_2(teacher_518,
                                                                                        tiny_synthetic_root,
                                                                                        tmp_path, capsys) -> None:
    path = tmp_path / "dinov2-small.safetensors"  # facebook/dinov2-small, renamed: no register tokens
    save_file(transformers_layout(meta_layout(teacher_518, registers=False)), str(path))
    code = main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--category", "wood_grain", "--out", str(tmp_path / "out"), "--quiet", "--preset", "fast",
                 "--device", "cpu", "--weights", str(path), "-o", "img_size=70", "-o", "layers=[1,2]",
                 "-o", 'teacher_kwargs={"depth":2,"embed_dim":48,"num_heads":2}', "-o", "num_workers=0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0]
    assert "the file is a ViT without register tokens (e.g. a DINOv2 without registers), but the model has 4" in err[0]


def test_a_vit_of_another_width_names_the_shapes_and_the_files_that_fit(tmp_path) -> None:
    # A ViT-B file given to the ViT-S preset, in small: a 64-wide teacher's file to the 48-wide one.
    wider = timm.create_model(TEACHER, pretrained=False, img_size=70, num_classes=0, depth=2, embed_dim=64,
                              num_heads=2)
    path = tmp_path / "teacher.safetensors"
    save_file(wider.state_dict(), str(path))
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", weights=str(path), **OPTIONS)
    message = str(info.value)
    assert "wrong shape: blocks.0.attn.proj.bias" in message
    assert "(blocks.0.attn.proj.bias: (64,) in the file, (48,) in the model)" in message
    assert message.endswith(f"files that fit it: {HUB_FILE} or {META_FILE}")


def test_a_resnet50_file_given_to_patchcore_names_the_shapes_and_the_files_that_fit(tmp_path) -> None:
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(InputError) as info:
        create_method("patchcore", weights=str(path), device="cpu")  # the default WideResNet-50-2
    message = str(info.value)
    assert info.value.path == path and "\n" not in message
    assert "weights do not match wide_resnet50_2.tv_in1k (wrong shape: " in message
    assert "(layer1.0.bn1.bias: (64,) in the file, (128,) in the model)" in message
    assert message.endswith("files that fit it: model.safetensors of huggingface.co/timm/wide_resnet50_2.tv_in1k or "
                            "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth")


@pytest.mark.parametrize(("backbone", "source"), [
    # No hub copy: only the release URL.
    ("legacy_seresnet18.in1k",
     "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/seresnet18-4bb0ce65.pth"),
    # A hub copy only, no release URL.
    ("resnet18d.ra4_e3600_r224_in1k", "model.safetensors of huggingface.co/timm/resnet18d.ra4_e3600_r224_in1k"),
    # The release is Google's .npz, which only timm's own loader reads: not offered as a file to pass.
    ("vit_tiny_patch16_224.augreg_in21k", "model.safetensors of huggingface.co/timm/vit_tiny_patch16_224.augreg_in21k"),
])
def test_a_wrong_file_names_only_the_sources_that_fit_its_backbone(tmp_path, backbone, source) -> None:
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(InputError) as info:
        create_method("patchcore", weights=str(path), backbone=backbone, device="cpu")
    message = str(info.value)
    assert message.startswith(f"{path}: weights do not match {backbone} (")
    assert message.endswith(f"); files that fit it: {source}")  # one source: no " or " before it


def test_a_vit_saved_on_a_non_square_grid_is_one_line_quoting_timms_resampling_error(tmp_path) -> None:
    # A teacher fine-tuned at 70 x 84 px keeps 5 x 6 = 30 patch positions; timm's filter, not told the grid,
    # takes int(sqrt(30)) = 5 a side and cannot reshape 30 x 48 values as 5 x 5 rows. That failure is the file's
    # (one line naming it and the files that fit), not a traceback from inside timm.
    source = timm.create_model(TEACHER, pretrained=False, img_size=(70, 84), num_classes=0, **TINY)
    assert tuple(source.pos_embed.shape) == (1, 5 * 6, WIDTH)
    path = tmp_path / "teacher-70x84.safetensors"
    save_file(source.state_dict(), str(path))
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", weights=str(path), **OPTIONS)
    assert info.value.path == path
    assert str(info.value) == (f"{path}: weights do not fit {TEACHER}.lvd142m (RuntimeError: shape '[1, 5, 5, -1]' is "
                               f"invalid for input of size {30 * WIDTH}); files that fit it: {HUB_FILE} or {META_FILE}")


@pytest.mark.parametrize("meta", [False, True])  # vit_small_patch14_dinov2.lvd142m, dinov2_vits14_pretrain.pth
def test_a_dinov2_without_registers_given_to_the_register_teacher_says_so(tmp_path, meta) -> None:
    # Before: "weights do not fit VisionTransformer (RuntimeError: shape '[1, 37, 37, -1]' is invalid for input
    # of size 65760)", timm's filter failing to reshape 1 + 37 x 37 positions as a 37 x 37 grid.
    torch.manual_seed(4)
    plain = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=518, num_classes=0, **TINY)
    state = dict(plain.state_dict())
    if meta:  # Meta's layout of a ViT without registers is timm's plus the training-only mask token
        state["mask_token"] = torch.zeros(1, WIDTH)
    path = tmp_path / "teacher.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", weights=str(path), **OPTIONS)
    message = str(info.value)
    assert info.value.path == path and "\n" not in message
    assert ("the file is a ViT without register tokens (e.g. a DINOv2 without registers), but the model has 4; "
            f"files that fit it: {HUB_FILE} or {META_FILE}") in message


@pytest.mark.parametrize("layout", ["timm", "meta", "transformers"])
def test_a_dinov2_with_registers_given_to_a_teacher_without_says_so(tmp_path, teacher_518, layout) -> None:
    # Before: "weights do not fit vit_small_patch14_dinov2 (RuntimeError: shape '[1, -1, 48]' is invalid for input
    # of size ...)", timm's filter failing on the position embeddings, naming neither side's registers.
    state = {"timm": lambda: teacher_518, "meta": lambda: meta_layout(teacher_518),
             "transformers": lambda: transformers_layout(meta_layout(teacher_518))}[layout]()
    path = tmp_path / "teacher.safetensors"
    save_file(state, str(path))
    with pytest.raises(InputError) as info:
        create_method("ts-mlp", weights=str(path), **{**OPTIONS, "teacher": "vit_small_patch14_dinov2"})
    message = str(info.value)
    assert info.value.path == path and "\n" not in message
    assert ("weights do not match vit_small_patch14_dinov2: the file is a ViT with 4 register tokens (e.g. a "
            "DINOv2 with registers), but the model has none; files that fit it: model.safetensors of "
            "huggingface.co/timm/vit_small_patch14_dinov2.lvd142m or "
            "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth") in message


def test_a_dinov2_file_given_to_patchcores_resnet_names_the_keys_not_register_tokens(tmp_path, teacher_518) -> None:
    # The register-token message is for a ViT without them; a ResNet has neither registers nor a class token.
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(meta_layout(teacher_518), path)
    with pytest.raises(InputError) as info:
        create_method("patchcore", weights=str(path), backbone="resnet18", input_size=64, device="cpu")
    message = str(info.value)
    assert info.value.path == path and "\n" not in message
    assert "weights do not match resnet18 (missing: bn1.bias, " in message
    assert "unexpected: blocks.0.attn.proj.bias, " in message and "register" not in message


def _wrong_files(tmp_path, teacher_518):
    """A file for each wrong-file message, with the method and options it is given to."""
    wider = timm.create_model(TEACHER, pretrained=False, img_size=70, num_classes=0, depth=2, embed_dim=64,
                              num_heads=2)
    save_file(wider.state_dict(), str(tmp_path / "wider.safetensors"))
    save_file(other_transformers_vit(), str(tmp_path / "transformers.safetensors"))
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    return [("ts-mlp", tmp_path / "wider.safetensors", OPTIONS),
            ("ts-mlp", tmp_path / "transformers.safetensors", OPTIONS),
            ("patchcore", tmp_path / "resnet50.pth", {"device": "cpu"})]


def test_preflight_refuses_a_wrong_file_with_the_message_creating_the_method_gives(teacher_518, tmp_path) -> None:
    from adbench_hr.methods.registry import get_method_class, resolved_options

    for method, path, options in _wrong_files(tmp_path, teacher_518):
        with pytest.raises(InputError) as created:
            create_method(method, weights=str(path), **options)
        with pytest.raises(InputError) as preflight:
            get_method_class(method).preflight(resolved_options(method, weights=str(path), **options))
        assert str(preflight.value) == str(created.value) and preflight.value.path == path


@pytest.mark.parametrize("layout", ["timm", "meta"])
def test_preflight_passes_a_file_that_fits_even_one_resampled_from_another_grid(teacher_518, tmp_path,
                                                                                  layout) -> None:
    from adbench_hr.methods.registry import get_method_class, resolved_options

    path = tmp_path / "teacher.pth"
    torch.save(teacher_518 if layout == "timm" else meta_layout(teacher_518), path)  # 37 x 37 positions; 5 x 5 used
    get_method_class("ts-mlp").preflight(resolved_options("ts-mlp", weights=str(path), **OPTIONS))


def test_run_refuses_a_wrong_file_before_the_default_dataset_is_made(teacher_518, tmp_path, monkeypatch,
                                                                     capsys) -> None:
    # Before: the default dataset was generated (minutes on a first run) before the file was found wrong.
    import adbench_hr.datasets

    def no_dataset(*args, **kwargs):
        raise AssertionError("the dataset step ran before the weight file was checked")

    monkeypatch.setattr(adbench_hr.datasets, "resolve_dataset", no_dataset)
    for method, path, _ in _wrong_files(tmp_path, teacher_518):
        extra = ["-o", "img_size=70", "-o", "layers=[1,2]", "-o", 'teacher_kwargs={"depth":2,"embed_dim":48,'
                 '"num_heads":2}'] if method == "ts-mlp" else []
        code = main(["run", "--method", method, "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu",
                     "--weights", str(path), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and str(path) in err[0] and "weights do not match" in err[0]
