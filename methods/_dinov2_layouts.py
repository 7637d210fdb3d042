"""DINOv2 weight files in layouts other than Meta's releases, renamed into the release layout.

timm's ViT filter reads Meta's release layout (``dinov2_vit?14[_reg4]_pretrain.pth``: ``cls_token``, ``pos_embed``
with the class position, ``register_tokens``, ``mask_token``, ``blocks.N.*``). The same networks also come as:

- Hugging Face transformers' ``Dinov2Model`` / ``Dinov2WithRegistersModel`` files (``facebook/dinov2-*``), whose
  names follow transformers' conversion script from the release: ``embeddings.*``, ``encoder.layer.N.*`` with
  query, key and value apart, ``layer_scale1.lambda1``, ``layernorm.*``; under ``dinov2.`` (or
  ``dinov2_with_registers.``) beside a ``classifier`` in the image-classification models. transformers 5 names
  the modules otherwise in memory (``attention.q_proj``, ``attention.o_proj``, SwiGLU's ``mlp.gate_proj`` and
  ``mlp.up_proj`` apart, ``mlp.down_proj``): its ``save_pretrained`` writes the names above, but
  ``torch.save(model.state_dict())`` writes these;
- checkpoints of DINOv2's own training code: the backbone under ``backbone.`` (``teacher_checkpoint.pth``) or
  ``teacher.backbone.`` and ``student.backbone.`` (a full training checkpoint consolidated into one state dict;
  the training code's ``model_*.rank_N.pth`` files hold FSDP shards, which are not read), beside the heads, with
  the blocks in chunks (``blocks.C.N.*``, N counting over all chunks) when trained with ``block_chunks``.

The renaming is exact: tensors are moved, and query, key and value (and SwiGLU's gate and up projections)
concatenated, never changed; a transformers file without the mask token (``use_mask_token=False``) gets a zero one,
which timm's filter drops unread.
"""

from __future__ import annotations

import re

import torch

_TRANSFORMERS_PREFIXES = ("", "dinov2.", "dinov2_with_registers.")
_TRANSFORMERS_NAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
# Within encoder.layer.N: transformers' name -> the release's within blocks.N (SwiGLU's weights_in/out are w12/w3;
# o_proj and down_proj are transformers 5's in-memory names).
_TRANSFORMERS_BLOCK_NAMES = {
    "norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "mlp.weights_in": "mlp.w12",
    "mlp.weights_out": "mlp.w3", "attention.output.dense": "attn.proj", "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma", "attention.o_proj": "attn.proj", "mlp.down_proj": "mlp.w3",
}
# Within encoder.layer.N: the parts of one release Linear that transformers keeps apart -> (the release's name, the
# part's place in it, the number of parts). The release's qkv output is read as query, key, value; its SwiGLU w12
# output is chunked into the gated half first (transformers 5 splits weights_in into gate_proj, up_proj in that order).
_TRANSFORMERS_PARTS = {
    "attention.attention.query": ("attn.qkv", 0, 3), "attention.attention.key": ("attn.qkv", 1, 3),
    "attention.attention.value": ("attn.qkv", 2, 3), "attention.q_proj": ("attn.qkv", 0, 3),
    "attention.k_proj": ("attn.qkv", 1, 3), "attention.v_proj": ("attn.qkv", 2, 3),
    "mlp.gate_proj": ("mlp.w12", 0, 2), "mlp.up_proj": ("mlp.w12", 1, 2),
}
_TRANSFORMERS_BLOCK_KEY = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
_CHUNKED_BLOCK_KEY = re.compile(r"^blocks\.\d+\.(\d+)\.")


def to_release_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` in Meta's DINOv2 release layout when it holds a DINOv2 in transformers' layout or as DINOv2's
    training code saves it; any other state dict is returned as it is."""
    return _from_transformers(_from_training_checkpoint(state))


def _from_training_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # The teacher (the EMA of the student) is the network DINOv2 evaluates and releases.
    for prefix in ("teacher.backbone.", "student.backbone.", "backbone.", ""):
        backbone = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if "mask_token" in backbone:  # only DINOv2 has it (a training-time token), so nothing else is renamed
            return {_CHUNKED_BLOCK_KEY.sub(r"blocks.\1.", k, count=1): v for k, v in backbone.items()}
    return state


def _from_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Layer scale tells DINOv2 from transformers' other ViTs, which have no conversion to timm here. Not the mask
    # token: a Dinov2Config(use_mask_token=False) model has none.
    prefix = next((p for p in _TRANSFORMERS_PREFIXES if f"{p}embeddings.cls_token" in state and any(
        k.startswith(f"{p}encoder.layer.") and k.endswith(".layer_scale1.lambda1") for k in state)), None)
    if prefix is None:
        return state
    out: dict[str, torch.Tensor] = {}
    # (release name within blocks.N, N, weight or bias) -> {part's place: (transformers' name, tensor)}
    fused: dict[tuple[str, str, str], dict[int, tuple[str, torch.Tensor]]] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue  # a classifier or pooler beside the backbone
        name = key[len(prefix):]
        if name in _TRANSFORMERS_NAMES:
            out[_TRANSFORMERS_NAMES[name]] = value
        elif match := _TRANSFORMERS_BLOCK_KEY.fullmatch(name):
            index, rest = match.groups()
            module, _, kind = rest.rpartition(".")
            if module in _TRANSFORMERS_PARTS:
                target, place, _ = _TRANSFORMERS_PARTS[module]
                fused.setdefault((target, index, kind), {})[place] = (name, value)
            elif rest in _TRANSFORMERS_BLOCK_NAMES:  # the layer scales: a parameter, no weight/bias kind
                out[f"blocks.{index}.{_TRANSFORMERS_BLOCK_NAMES[rest]}"] = value
            elif module in _TRANSFORMERS_BLOCK_NAMES:
                out[f"blocks.{index}.{_TRANSFORMERS_BLOCK_NAMES[module]}.{kind}"] = value
            else:
                out[name] = value  # unknown: left for the key check to report
        else:
            out[name] = value
    counts = {target: count for target, _, count in _TRANSFORMERS_PARTS.values()}
    for (target, index, kind), parts in fused.items():
        if set(parts) == set(range(counts[target])):
            out[f"blocks.{index}.{target}.{kind}"] = torch.cat([parts[place][1] for place in sorted(parts)])
        else:  # incomplete: reported by the key check under transformers' names
            out.update(dict(parts.values()))
    if "mask_token" not in out and "cls_token" in out:
        # The release always has this training-only token, and timm's filter reads a state dict as the release
        # layout by it (then drops it): a zero one of the model's width stands for the one the file lacks.
        out["mask_token"] = out["cls_token"].new_zeros(1, out["cls_token"].shape[-1])
    return out
