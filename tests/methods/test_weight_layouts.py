"""`--weights PATH` with the files users download, each built here in its upstream key layout from a random model
(never through the loader under test), then loaded through ``create_method`` and compared with the source model.

- timm's hub files (``huggingface.co/timm/<name>``: ``model.safetensors``, ``pytorch_model.bin``): timm's layout;
- Meta's DINOv2 releases (``dinov2_vit?14[_reg4]_pretrain.pth``): the layout of ``dinov2/models/vision_transformer.py``
  (``cls_token`` and ``pos_embed`` with the class position, ``register_tokens``, ``mask_token``, a 37 x 37 grid);
- Hugging Face transformers' DINOv2 (``facebook/dinov2-*``): ``embeddings.*``, ``encoder.layer.N.*`` with separate
  query/key/value;
- torchvision's ImageNet ResNets (``wide_resnet50_2-95faca4d.pth``), with or without BatchNorm's batch counters.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from adbench_hr.methods import create_method


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


def patchcore_features(path, backbone: str, x: torch.Tensor) -> list[torch.Tensor]:
    method = create_method("patchcore", weights=str(path), backbone=backbone, input_size=64, device="cpu")
    assert method.pretrained_backbone is True
    with torch.no_grad():
        return list(method._model.forward_intermediates(x, indices=method._indices, intermediates_only=True))


@pytest.mark.parametrize("counters", [True, False])
def test_a_torchvision_resnet_file_gives_torchvisions_features(tmp_path, counters) -> None:
    # Before: a file without BatchNorm's num_batches_tracked (written before PyTorch 0.4.1) was refused as
    # "missing: bn1.num_batches_tracked ...", although torch itself loads it.
    source = random_torchvision(torchvision.models.resnet18, seed=5)
    state = {k: v for k, v in source.state_dict().items() if counters or not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for got, want in zip(patchcore_features(path, "resnet18", x), torchvision_features(source, x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
