"""`run` without `--preset`: ts-mlp's `auto` preset is `fast` on a CPU and `paper` on a GPU (docs/methods.md,
docs/cli.md), and the result records the resolved preset with its options; explicit options override it."""

from __future__ import annotations

import json

import pytest
import torch

from adbench_hr.cli.main import main

# tests/test_run_integration.py's TINY_METHOD_OPTIONS without "--preset fast" (and without "--device cpu").
TINY_WITHOUT_PRESET = [
    "--weights", "random", "--seed", "3",
    "-o", "img_size=70", "-o", "layers=[2,4]", "-o", 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}',
    "-o", "epochs=2", "-o", "num_workers=0",
]

# The preset table of docs/methods.md (teacher, input size) and the published schedule and blur.
FAST_TEACHER = "vit_small_patch14_reg4_dinov2.lvd142m"
PAPER_TEACHER = "vit_base_patch14_reg4_dinov2.lvd142m"
PUBLISHED_BLUR = [5, 5, 5, 5, 5, 7, 7, 7]  # five 5 x 5, then three 7 x 7 box filters


@pytest.mark.parametrize("device_args", [[], ["--device", "auto"], ["--device", "cpu"]])
def test_run_without_preset_on_a_cpu_records_the_fast_preset(tiny_synthetic_root, tmp_path, monkeypatch,
                                                             device_args):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, whatever runs the tests
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--category", "wood_grain", "--out", str(tmp_path), "--quiet", *TINY_WITHOUT_PRESET,
                 *device_args]) == 0
    result = json.loads((tmp_path / "ts-mlp" / "synthetic" / "results" / "wood_grain.json").read_text())
    options = result["method_options"]
    assert options["preset"] == "fast"  # resolved, not "auto"
    assert options["teacher"] == FAST_TEACHER  # from the preset: no option names it
    assert result["provenance"]["teacher"] == FAST_TEACHER
    # Explicit options win over the preset's values (the fast preset's input is 518 px, its layers [8, 12]).
    assert options["img_size"] == 70 and options["layers"] == [2, 4] and options["epochs"] == 2
    # The rest comes from the preset (published schedule and map post-processing).
    assert options["batch_size"] == 4 and options["lr"] == pytest.approx(1e-4) and options["blur"] == PUBLISHED_BLUR
    assert options["device"] == "cpu" and result["device"].startswith("cpu")


@pytest.fixture
def resolved_preset(monkeypatch):
    """``(preset, teacher, img_size)`` that ``TSMLP`` records for options on a machine with or without CUDA.

    ``resolve_options`` makes no model or tensor, so the CUDA branch can be checked on a machine without a
    GPU (torch is told that CUDA is there); ``TSMLP.__init__`` records exactly these options (checked in
    tests/methods/test_methods_registry.py).
    """
    from adbench_hr.methods.ts_mlp import TSMLP

    def resolve(cuda_available: bool, **kwargs):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_available)
        options = TSMLP.resolve_options(kwargs)
        return options["preset"], options["teacher"], options["img_size"]

    return resolve


@pytest.mark.parametrize(
    "cuda_available, kwargs, expected",
    [
        (True, {"device": "cuda"}, ("paper", PAPER_TEACHER, 1036)),
        (True, {"device": "cuda:0"}, ("paper", PAPER_TEACHER, 1036)),
        (True, {"device": "auto"}, ("paper", PAPER_TEACHER, 1036)),
        (True, {}, ("paper", PAPER_TEACHER, 1036)),  # device defaults to auto
        (True, {"device": "cpu"}, ("fast", FAST_TEACHER, 518)),  # a CPU run on a GPU machine
        (False, {"device": "auto"}, ("fast", FAST_TEACHER, 518)),
        (False, {"device": "cpu"}, ("fast", FAST_TEACHER, 518)),
        (True, {"device": "cpu", "preset": "paper"}, ("paper", PAPER_TEACHER, 1036)),  # explicit beats auto
        (True, {"device": "cuda", "preset": "fast"}, ("fast", FAST_TEACHER, 518)),
    ],
)
def test_auto_preset_follows_the_device_given_as_a_string(resolved_preset, cuda_available, kwargs, expected):
    assert resolved_preset(cuda_available, **kwargs) == expected


def test_auto_preset_with_cuda_requested_but_absent_is_one_clear_error(monkeypatch):
    from adbench_hr.errors import InputError
    from adbench_hr.methods.ts_mlp import TSMLP

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA is not available"):
        TSMLP(device="cuda", weights="random")


def test_run_without_preset_on_a_gpu_machine_asks_for_the_paper_preset(tiny_synthetic_root, tmp_path, monkeypatch):
    # `run --device auto` resolves the device before the method is built (docs/cli.md: the run key tells a
    # GPU run from a CPU run); on a GPU machine the method is then asked for device "cuda" and preset auto.
    import adbench_hr.methods as methods

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = {}

    class Stop(Exception):
        pass

    def fake_create(name, **options):
        asked.update(options, name=name)
        raise Stop

    monkeypatch.setattr(methods, "create_method", fake_create)
    from adbench_hr.runner import MethodFailed

    with pytest.raises(MethodFailed) as failed:  # the line naming the method and step, above Stop's traceback
        main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
              "--category", "wood_grain", "--out", str(tmp_path / "out"), "--quiet", *TINY_WITHOUT_PRESET])
    assert isinstance(failed.value.__cause__, Stop)
    assert asked["name"] == "ts-mlp" and asked["device"] == "cuda" and "preset" not in asked
    assert not (tmp_path / "out" / "ts-mlp" / "synthetic" / "results" / "wood_grain.json").exists()
