"""`--weights PATH` with every suffix docs/methods.md lists: `.safetensors`, or a `torch.save` state dict as
`.pth`, `.pt`, `.bin` or `.ckpt` (plain or wrapped in `state_dict` / `model`)."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file

from adbench_hr.cli.main import main
from adbench_hr.errors import InputError
from adbench_hr.methods import create_method

TEACHER = "vit_small_patch14_reg4_dinov2"  # the fast preset's architecture, made tiny as in the tests' options
TINY_KWARGS = {"depth": 4, "embed_dim": 48, "num_heads": 2}
TINY_OPTIONS = {"preset": "fast", "device": "cpu", "seed": 7, "img_size": 70, "layers": [2, 4],
                "teacher_kwargs": TINY_KWARGS, "epochs": 2, "num_workers": 0}


@pytest.fixture(scope="module")
def source():
    """A tiny random teacher, its state dict, and its block-2 and block-4 tokens of a fixed batch."""
    torch.manual_seed(1234)
    model = timm.create_model(TEACHER, pretrained=False, img_size=70, num_classes=0, **TINY_KWARGS).eval()
    x = torch.randn(2, 3, 70, 70, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # Independent of ts-mlp: timm's own intermediates after blocks 2 and 4, final LayerNorm applied.
        mid, last = model.forward_intermediates(x, indices=[1, 3], norm=True, output_fmt="NLC",
                                                intermediates_only=True)
    return {k: v.clone() for k, v in model.state_dict().items()}, x, (mid, last)


def _save(state, path, wrap):
    if path.suffix.lower() == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state if wrap is None else {wrap: state, "epoch": 3}, path)


@pytest.mark.parametrize("suffix, wrap", [
    (".safetensors", None),
    (".pth", None),
    (".pt", None),
    (".bin", None),
    (".ckpt", None),
    (".ckpt", "state_dict"),  # as Lightning writes it
    (".bin", "model"),
    (".PTH", None),  # suffixes in any case
    (".SafeTensors", None),
])
def test_every_documented_suffix_gives_the_same_teacher_features(source, tmp_path, suffix, wrap):
    state, x, (mid, last) = source
    path = tmp_path / f"teacher{suffix}"
    _save(state, path, wrap)
    method = create_method("ts-mlp", weights=str(path), **TINY_OPTIONS)
    assert method.pretrained_backbone is True
    with torch.no_grad():
        got_mid, got_last = method._teacher_features(x)
    torch.testing.assert_close(got_mid, mid, rtol=0, atol=0)
    torch.testing.assert_close(got_last, last, rtol=0, atol=0)


def test_a_safetensors_file_under_a_torch_suffix_is_one_clear_error(source, tmp_path):
    state, _, _ = source
    path = tmp_path / "teacher.pth"
    save_file(state, str(path))  # safetensors bytes, torch.save's suffix
    with pytest.raises(InputError, match="cannot read weight file") as info:
        create_method("ts-mlp", weights=str(path), **TINY_OPTIONS)
    assert info.value.path == path


@pytest.mark.parametrize("suffix", [".bin", ".ckpt"])
def test_run_with_a_weight_file_records_a_real_backbone(source, tiny_synthetic_root, tmp_path, capsys, suffix):
    state, _, _ = source
    weights = tmp_path / f"teacher{suffix}"
    _save(state, weights, None)
    out = tmp_path / "out"
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--category", "wood_grain", "--out", str(out), "--quiet", "--preset", "fast", "--device", "cpu",
                 "--weights", str(weights), "-o", "img_size=70", "-o", "layers=[2,4]",
                 "-o", 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}', "-o", "epochs=1",
                 "-o", "num_workers=0"]) == 0
    assert "not meaningful" not in capsys.readouterr().err  # no random-weights warning
    result = json.loads((out / "ts-mlp/synthetic/results/wood_grain.json").read_text())
    assert result["pretrained_backbone"] is True
    assert result["method_options"]["weights"] == str(weights)


def test_a_missing_weight_file_names_it_and_the_accepted_suffixes(tiny_synthetic_root, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "teacher.bin"
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--category", "wood_grain", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu",
                 "--weights", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]
    for suffix in (".safetensors", ".pth", ".pt", ".bin", ".ckpt"):
        assert suffix in err[0]


def test_a_folder_given_as_weights_names_the_weight_files_in_it(tmp_path, capsys):
    # A Hugging Face snapshot folder; before: "weight file not found", though the folder was there.
    snapshot = tmp_path / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    args = ["run", "--method", "ts-mlp", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu", "--weights",
            str(snapshot)]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: {snapshot}: weights name a folder, not a weight file\n"
    (snapshot / "model.safetensors").write_bytes(b"")
    (snapshot / "pytorch_model.bin").write_bytes(b"")
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {snapshot}: weights name a folder, not a weight file; it holds "
                                       "model.safetensors, pytorch_model.bin: pass one\n")
    # Three files are all named (a folder named as a weight file is none); a fourth is left to "...".
    (snapshot / "old.pt").mkdir()
    (snapshot / "tf_model.ckpt").write_bytes(b"")
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {snapshot}: weights name a folder, not a weight file; it holds "
                                       "model.safetensors, pytorch_model.bin, tf_model.ckpt: pass one\n")
    (snapshot / "z.pth").write_bytes(b"")
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {snapshot}: weights name a folder, not a weight file; it holds "
                                       "model.safetensors, pytorch_model.bin, tf_model.ckpt ...: pass one\n")


def test_a_sharded_checkpoint_is_refused_saying_how_to_save_it_as_one_file(tmp_path, capsys):
    # transformers' save_pretrained shards a large model (model-00001-of-00002.safetensors + an index); a shard
    # holds some of the tensors, and the folder's hint said "pass one".
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                 "model.safetensors.index.json"):
        (snapshot / name).write_bytes(b"{}")
    advice = ("a sharded checkpoint, whose files each hold some of the tensors, which is not read: save the model as "
              'one file (save_pretrained(..., max_shard_size="100GB"), or torch.save(model.state_dict(), path))')
    base = ["run", "--method", "ts-mlp", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu", "--weights"]
    assert main([*base, str(snapshot)]) == 2
    folder_error = f"error: {snapshot}: weights name a folder, not a weight file; it holds {advice}\n"
    assert capsys.readouterr().err == folder_error
    shard = snapshot / "model-00002-of-00002.safetensors"
    assert main([*base, str(shard)]) == 2
    assert capsys.readouterr().err == f"error: {shard}: the file is shard 2 of 2 of {advice}\n"
    assert not (tmp_path / "out").exists()
    # A "shard" 1 of 1 is the whole model: read as any file.
    whole = snapshot / "model-00001-of-00001.safetensors"
    whole.write_bytes(b"")
    assert main([*base, str(whole)]) == 2
    assert capsys.readouterr().err == f"error: {whole}: weight file is empty (0 bytes)\n"


def test_a_dinov2_training_rank_file_is_refused_naming_the_teacher_checkpoint(tmp_path, capsys):
    # DINOv2's FSDPCheckpointer writes model_<iteration>.rank_<N>.pth: one GPU's flat parameter shards.
    path = tmp_path / "model_0012499.rank_3.pth"
    torch.save({"model": {"teacher.backbone._flat_param": torch.zeros(8)}, "iteration": 12499}, path)
    assert main(["run", "--method", "ts-mlp", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu",
                 "--weights", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: the file is GPU 3's part of a training checkpoint (FSDP's local state, as DINOv2's "
        "training code saves it), not a model: pass eval/<iteration>/teacher_checkpoint.pth of the same training\n")


@pytest.mark.parametrize("url", ["https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth",
                                 "hf://timm/vit_base_patch14_reg4_dinov2.lvd142m/model.safetensors"])
def test_a_url_given_as_weights_is_one_line_saying_to_download_it(tmp_path, capsys, url):
    # Before: "weight file not found" for a URL, as if it were a path.
    assert main(["run", "--method", "ts-mlp", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu",
                 "--weights", url]) == 2
    assert capsys.readouterr().err == (f"error: weights {url} is a URL: download the file and pass its path "
                                       "(adbench-hr downloads only through --weights pretrained)\n")


@pytest.mark.parametrize("content, problem", [
    (lambda state: list(state.values()), "weight file does not contain a state dict"),  # tensors without names
    (lambda state: {}, "weight file does not contain a state dict"),
    (lambda state: {"epoch": 3, "note": "no weights"}, "weight file does not contain any tensors"),
    (lambda state: {"state_dict": {"epoch": 3}}, "weight file does not contain any tensors"),  # an empty wrapper
])
def test_a_torch_file_without_a_state_dict_is_one_clear_error(source, tmp_path, content, problem):
    path = tmp_path / "teacher.pth"
    torch.save(content(source[0]), path)
    with pytest.raises(InputError, match=problem) as info:
        create_method("ts-mlp", weights=str(path), **TINY_OPTIONS)
    assert info.value.path == path


def test_a_truncated_safetensors_file_is_one_clear_error(source, tmp_path):
    path = tmp_path / "teacher.safetensors"
    save_file(source[0], str(path))
    path.write_bytes(path.read_bytes()[:-100])  # a download cut short
    with pytest.raises(InputError, match=r"cannot read weight file \(\w+: ") as info:
        create_method("ts-mlp", weights=str(path), **TINY_OPTIONS)
    assert info.value.path == path and "\n" not in str(info.value)
