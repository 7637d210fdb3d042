"""Helpers shared by the methods (``methods/_common.py``) and the option checks that rely on them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from adbench_hr.errors import InputError
from adbench_hr.methods import create_method
from adbench_hr.methods._common import as_bool, as_int, image_to_tensor


def test_image_to_tensor_drops_only_the_alpha_channel() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_tensor(rgba).numpy(), rgba[:, :, :3])
    gray = rgba[:, :, 0]
    assert tuple(image_to_tensor(gray).shape) == (3, 4, 1)


def test_as_seed_takes_what_torch_takes() -> None:
    from adbench_hr.methods._common import as_seed

    assert as_seed(0) == 0 and as_seed(2**63 - 1) == 2**63 - 1 and as_seed("7") == 7
    for bad, problem in ((-1, "must lie in 0 .. 2**63-1, got -1"), (2**63, f"must lie in 0 .. 2**63-1, got {2**63}"),
                         (1.5, "not an integer: 1.5")):
        with pytest.raises(ValueError, match=re.escape(problem)):
            as_seed(bad)


def test_as_int_refuses_fractions_and_booleans() -> None:
    assert as_int(2.0) == 2 and as_int(" 3 ") == 3 and as_int("4.0") == 4
    for bad in (1.5, "2.5", True, np.True_, "many", "1e"):
        with pytest.raises(ValueError, match="not an integer"):
            as_int(bad)


def test_as_float_names_the_value_it_cannot_read() -> None:
    from adbench_hr.methods._common import as_float

    assert as_float("1e-4") == 1e-4 and as_float(3) == 3.0
    # float()'s own message ("could not convert string to float") does not say what was expected.
    for bad in ("fast", True, np.False_):
        with pytest.raises(ValueError, match="not a number"):
            as_float(bad)


@pytest.mark.parametrize("text, value", [("1", True), ("Yes", True), ("on", True), ("0", False), ("off", False),
                                         ("NO", False), ("", False), (" false ", False)])
def test_as_bool_spellings(text: str, value: bool) -> None:
    assert as_bool(text) is value


def test_as_bool_refuses_other_words() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        as_bool("maybe")


@pytest.mark.parametrize(
    "option, problem",
    [
        ({"top_fraction": 0.0}, "top_fraction must be in"),
        ({"top_fraction": 1.5}, "top_fraction must be in"),
        ({"blur": [5, 4]}, "blur sizes must be odd and positive"),
        ({"blur": [-1]}, "blur sizes must be odd and positive"),
        # A value that cannot be read names its option (before: "bad option value ('int' object is not iterable)").
        ({"blur": 3}, r"ts-mlp: option blur=3 is not valid \(expected a list of integers such as \[5, 5\]"),
        ({"layers": "[2,"}, r"option layers='\[2,' is not valid"),
        ({"teacher_kwargs": '{"depth":'}, r"option teacher_kwargs='\{\"depth\":' is not valid \(expected a JSON"),
        ({"seed": 2**70}, r"option seed=1180591620717411303424 is not valid \(must lie in 0 .. 2\*\*63-1"),
        ({"epochs": "many"}, r"option epochs='many' is not valid \(not an integer: 'many'\)"),
    ],
)
def test_ts_mlp_map_options_are_checked(tiny, option, problem) -> None:
    with pytest.raises(InputError, match=problem):
        create_method("ts-mlp", **tiny(**option))


def test_every_option_of_the_builtins_has_a_reader_and_nothing_else_does() -> None:
    import inspect

    from adbench_hr.methods import patchcore, ts_mlp

    # An option missing from the table would silently drop out of `options` and so of the run key.
    for module, cls in ((ts_mlp, ts_mlp.TSMLP), (patchcore, patchcore.PatchCore)):
        assert set(module._OPTION_TYPES) == set(inspect.signature(cls).parameters), cls.name
        assert module.RUNTIME_OPTIONS <= set(module._OPTION_TYPES)


def test_the_leaderboards_result_neutral_options_are_runtime_options_of_the_builtins() -> None:
    from adbench_hr.leaderboard import RESULT_NEUTRAL_OPTIONS
    from adbench_hr.methods import patchcore, ts_mlp

    # A neutral option no built-in treats as runtime-only would hide real setting differences.
    assert RESULT_NEUTRAL_OPTIONS - {"seed"} <= patchcore.RUNTIME_OPTIONS | ts_mlp.RUNTIME_OPTIONS


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_prefetched_images_come_in_the_order_of_the_samples(sample_cls, workers: int) -> None:
    from adbench_hr.methods._common import prefetch_images

    samples = [sample_cls(np.full((2, 2, 3), i, np.uint8), f"train/{i}") for i in range(10)]
    assert [int(im[0, 0, 0]) for im in prefetch_images(samples, workers)] == list(range(10))


def test_methods_leave_the_global_rng_alone(tiny, train_samples) -> None:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2024)  # a state no method seed leads to
        state = torch.get_rng_state()
        method = create_method("ts-mlp", **tiny(epochs=1))  # seeds a random teacher
        method.fit(train_samples, progress=False)  # seeds the students and the shuffling
        assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ["ts-mlp", "patchcore"])
def test_methods_leave_the_accelerators_generators_alone(tiny, train_samples, monkeypatch, name) -> None:
    # torch.manual_seed seeds every CUDA (MPS, XPU) device too, and fork_rng(devices=[]) restores only the CPU
    # generator: on a GPU a notebook's CUDA random stream would restart from the method's seed.
    import torch

    calls = []
    for module, function in ((torch.cuda, "manual_seed_all"), (torch.mps, "manual_seed"),
                             (torch.xpu, "manual_seed_all")):
        monkeypatch.setattr(module, function, lambda seed, where=f"{module.__name__}.{function}": calls.append(where))
    options = tiny(epochs=1) if name == "ts-mlp" else {"weights": "random", "device": "cpu", "input_size": 32}
    method = create_method(name, **options)
    method.fit(train_samples, progress=False)
    assert calls == []


@pytest.mark.parametrize("value", [2, -1, 0.5, [True], None, {}])
def test_as_bool_refuses_what_bool_would_misread(value) -> None:
    # bool() made 2, 0.5 and [true] True and null False: settings nobody asked for.
    with pytest.raises(ValueError, match="not a boolean"):
        as_bool(value)


def test_as_bool_takes_booleans_and_zero_or_one() -> None:
    assert as_bool(True) is True and as_bool(1) is True and as_bool(1.0) is True
    assert as_bool(False) is False and as_bool(0) is False and as_bool(np.bool_(False)) is False


@pytest.mark.parametrize(
    "method, option, problem",
    [
        ("ts-mlp", {"lr": True}, r"option lr=True is not valid \(not a number"),
        ("ts-mlp", {"top_fraction": True}, r"option top_fraction=True is not valid \(not a number"),
        ("ts-mlp", {"feature_gpu_fraction": False}, r"option feature_gpu_fraction=False is not valid"),
        ("ts-mlp", {"student_tf32": 2}, r"option student_tf32=2 is not valid \(not a boolean"),
        ("ts-mlp", {"compile": [True]}, r"option compile=\[True\] is not valid \(not a boolean"),
        ("ts-mlp", {"num_workers": -1}, "num_workers must be >= 0, got -1"),
        ("patchcore", {"coreset_ratio": True}, r"option coreset_ratio=True is not valid \(not a number"),
        ("patchcore", {"sigma": True}, r"option sigma=True is not valid \(not a number"),
    ],
)
def test_option_values_that_would_be_misread_are_refused(tiny, method, option, problem) -> None:
    from adbench_hr.methods.registry import resolved_options

    options = tiny(**option) if method == "ts-mlp" else {"weights": "random", "device": "cpu", **option}
    with pytest.raises(InputError, match=problem):
        resolved_options(method, **options)


@pytest.mark.parametrize(
    "image, problem",
    [
        (np.zeros((4, 4, 3), np.float32), "image must be uint8, got float32"),
        (np.zeros((4, 4, 3), np.uint16), "image must be uint8, got uint16"),
        (np.zeros((4, 4, 2), np.uint8), r"image shape must be .* got \(4, 4, 2\)"),
        (np.zeros((0, 4, 3), np.uint8), r"image shape must be .* got \(0, 4, 3\)"),
        ([[0, 0, 0]], "image must be a numpy array, got list"),
    ],
)
def test_images_a_method_cannot_take_are_input_errors(image, problem) -> None:
    # One line naming the problem (InputError), still the ValueError / TypeError it was.
    with pytest.raises(InputError, match=problem) as caught:
        image_to_tensor(image)
    assert isinstance(caught.value, (ValueError, TypeError))


def test_check_tmp_dir_wants_a_folder(tmp_path) -> None:
    from adbench_hr.methods._common import check_tmp_dir

    check_tmp_dir(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="file: not a folder"):
        check_tmp_dir(tmp_path / "file")
    with pytest.raises(InputError, match="gone: no such folder"):
        check_tmp_dir(tmp_path / "gone")
    with pytest.raises(InputError, match=r"^tmp_dir is empty \(an unset variable\?\)"):
        check_tmp_dir("")  # Path("") would be the working folder


@pytest.fixture
def two_gpus_second_current(monkeypatch):
    """torch told that it sees two GPUs and that cuda:1 is current (nothing is placed on them)."""
    import torch

    current = {"index": 1}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current["index"])
    return current


def test_a_method_pins_a_bare_cuda_to_the_gpu_current_when_it_is_made(two_gpus_second_current) -> None:
    import torch

    from adbench_hr.methods._common import concrete_device, resolve_device

    for asked in ("cuda", "auto"):
        device = concrete_device(asked)
        assert device == torch.device("cuda", 1) and str(device) == "cuda:1"
    two_gpus_second_current["index"] = 0  # a later torch.cuda.set_device(0) does not move what was resolved
    assert device.index == 1
    assert concrete_device("cuda") == torch.device("cuda", 0)
    assert concrete_device("cuda:1") == torch.device("cuda", 1) and concrete_device("cpu") == torch.device("cpu")
    # The preset and the run key only need the kind of device: that resolution touches no GPU.
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("cuda").index is None


@pytest.mark.parametrize("method", ["ts-mlp", "patchcore"])
def test_a_gpu_index_past_the_visible_ones_is_one_line_before_anything_runs(two_gpus_second_current, method) -> None:
    from adbench_hr.methods._common import concrete_device
    from adbench_hr.methods.registry import get_method_class, resolved_options

    message = re.escape("device 'cuda:2' requested but this process sees 2 CUDA device(s) (cuda:0 .. cuda:1)")
    with pytest.raises(InputError, match=message):
        concrete_device("cuda:2")
    options = resolved_options(method, device="cuda:2", weights="random")
    with pytest.raises(InputError, match=message):
        get_method_class(method).preflight(options)


def test_an_index_past_a_single_gpu_names_the_one_there(monkeypatch) -> None:
    import torch

    from adbench_hr.methods._common import concrete_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(InputError, match=re.escape("device 'cuda:1' requested but this process sees 1 CUDA device(s) "
                                                   "(cuda:0)")):
        concrete_device("cuda:1")
    assert concrete_device("cuda:0") == torch.device("cuda", 0)


class _Built(Exception):
    """Raised where a method would build its network: construction stops before anything lands on a device."""


@pytest.mark.parametrize(("method", "builder"), [("ts-mlp", "_build_teacher"), ("patchcore", "_build_backbone")])
def test_a_method_records_the_pinned_gpu_as_its_device(two_gpus_second_current, monkeypatch, method, builder) -> None:
    from adbench_hr.methods.registry import get_method_class

    cls = get_method_class(method)
    seen = []

    def stop(self, *args):
        seen.append((self.device, self.options["device"]))
        raise _Built

    monkeypatch.setattr(cls, builder, stop)
    with pytest.raises(_Built):
        cls(device="cuda", weights="random")
    assert seen == [("cuda:1", "cuda")]  # the GPU current when it was made; the option as asked


# torch 2.9 warns, once, that the legacy TF32 settings are deprecated when the precision is read: not this test's topic.
@pytest.mark.filterwarnings("ignore:Please use the new API settings to control TF32 behavior:UserWarning")
def test_the_legacy_tf32_flag_leaves_the_float32_matmul_precision_as_it_was(monkeypatch) -> None:
    # torch < 2.9 has the legacy flag only, and writing it sets the global precision to "high" or "highest": a
    # caller's "medium" came back as "high". This stand-in does what torch 2.7's Context does with the flag.
    import torch

    from adbench_hr.methods import _common

    class LegacyMatmul:
        @property
        def allow_tf32(self) -> bool:
            return torch.get_float32_matmul_precision() != "highest"

        @allow_tf32.setter
        def allow_tf32(self, value: bool) -> None:
            torch.set_float32_matmul_precision("high" if value else "highest")

    monkeypatch.setattr(_common, "_NEW_TF32_API", False)
    monkeypatch.setattr(torch.backends.cuda, "matmul", LegacyMatmul())
    before = torch.get_float32_matmul_precision()
    try:
        for caller in ("medium", "high", "highest"):
            for enabled in (True, False):
                torch.set_float32_matmul_precision(caller)
                with _common.tf32_matmul(enabled):
                    assert torch.backends.cuda.matmul.allow_tf32 is enabled
                assert torch.get_float32_matmul_precision() == caller, (caller, enabled)
    finally:
        torch.set_float32_matmul_precision(before)


def test_text_options_take_strings_and_paths_and_refuse_the_rest(tmp_path) -> None:
    from pathlib import Path

    from adbench_hr.methods import create_method
    from adbench_hr.methods._common import as_text

    assert as_text("vit_small_patch14_reg4_dinov2") == "vit_small_patch14_reg4_dinov2"
    assert as_text(Path("weights") / "model.safetensors") == str(Path("weights") / "model.safetensors")
    for value in (None, 3, ["cpu"]):
        with pytest.raises(ValueError, match=rf"^not a string: {re.escape(repr(value))}$"):
            as_text(value)
    # Before: str(None) made a file named "None", reported as "None: weight file not found".
    for method in ("ts-mlp", "patchcore"):
        with pytest.raises(InputError) as info:
            create_method(method, weights=None, device="cpu")
        assert str(info.value) == f"{method}: option weights=None is not valid (not a string: None)"


def test_a_torch_device_is_taken_as_its_text() -> None:
    import torch

    from adbench_hr.methods import create_method
    from adbench_hr.methods._common import as_device

    assert as_device(torch.device("cuda", 1)) == "cuda:1" and as_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="^not a string: 0$"):
        as_device(0)
    method = create_method("patchcore", weights="random", device=torch.device("cpu"), backbone="resnet18",
                           input_size=64)
    assert method.options["device"] == "cpu"


@pytest.mark.parametrize("device", ["mps", "meta", "xpu:0"])
def test_a_device_torch_knows_but_no_method_supports_is_one_line(device: str) -> None:
    # torch.device() takes these names (a Mac's --device mps), so they pass its check; the methods run on cpu and
    # cuda only.
    from adbench_hr.methods._common import resolve_device

    expected = f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)"
    with pytest.raises(InputError) as info:
        resolve_device(device)
    assert str(info.value) == expected
    with pytest.raises(InputError) as created:
        create_method("patchcore", weights="random", backbone="resnet18", input_size=64, device=device)
    assert str(created.value) == expected


@pytest.mark.parametrize(
    ("dropped", "problem"),
    [
        # An embedded (random) teacher is rebuilt from random init and overwritten with the file's tensors.
        ("teacher.pos_embed", "embedded teacher does not match the options (Error(s) in loading state_dict for "
                              'VisionTransformer: Missing key(s) in state_dict: "pos_embed".)'),
        ("forward_net.input.weight", "student weights do not match the options (Error(s) in loading state_dict "
                                     'for StudentMLP: Missing key(s) in state_dict: "input.weight".)'),
    ],
)
def test_a_checkpoint_missing_a_tensor_its_options_need_is_one_line_naming_it(tiny, train_samples, tmp_path,
                                                                               dropped, problem) -> None:
    # torch's load_state_dict message spans lines ("...:\n\tMissing key(s) ..."); quoted as it was, the error
    # a library caller gets (and the runner's "unusable checkpoint" warning quotes) broke the one-line contract.
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from adbench_hr.methods import load_method

    method = create_method("ts-mlp", **tiny(epochs=1))
    method.fit(train_samples[:2], progress=False)
    path = tmp_path / "model.safetensors"
    method.save(path)  # a random teacher is embedded
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys() if key != dropped}
    assert json.loads(metadata["adbench_hr"])["teacher_embedded"] is True
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged), metadata=metadata)
    with pytest.raises(InputError) as info:
        load_method(damaged)
    assert info.value.path == damaged
    assert str(info.value) == f"{damaged}: {problem}"


def test_a_buffer_without_tmp_dir_spills_to_the_system_temp_folder_and_sweeps_it(tmp_path, monkeypatch) -> None:
    # A library caller's buffer with no tmp_dir: the system temp folder, unchecked (None names no folder to check),
    # swept of killed runs' buffers like a given tmp_dir.
    import tempfile

    import torch

    from adbench_hr.methods._common import HostBuffer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / "adbench_hr_features_dead"
    orphan.mkdir()
    (orphan / "lock").touch()  # no process holds it: a killed run's
    values = torch.arange(12, dtype=torch.float16).view(3, 4)
    with HostBuffer((3, 4), torch.float16, ram_budget_bytes=0) as buffer:
        assert buffer.location == "disk" and buffer.nbytes == 24 and not orphan.exists()
        (folder,) = tmp_path.iterdir()
        assert folder.name.startswith("adbench_hr_features_")
        buffer.tensor.copy_(values)
        buffer._memmap.flush()
        on_disk = np.fromfile(folder / "buffer.bin", dtype=np.float16)
        np.testing.assert_array_equal(on_disk, np.arange(12, dtype=np.float16))
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_from_before_the_source_fingerprint_names_its_writers_version_and_no_fingerprint(
        train_samples, tmp_path) -> None:
    # Checkpoints written before code_fingerprint existed record only code_version, in provenance and not in
    # fit_stats: the fitting build is that version, its fingerprint unknown (not this build's, not a KeyError).
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    import adbench_hr
    from adbench_hr.errors import AdbenchWarning
    from adbench_hr.methods import load_method
    from adbench_hr.methods.base import CHECKPOINT_METADATA_KEY

    method = create_method("patchcore", weights="random", backbone="resnet18", device="cpu", input_size=32,
                           num_workers=0)
    method.fit(train_samples[:2], progress=False)
    path = tmp_path / "model.safetensors"
    method.save(path)
    with safe_open(str(path), framework="pt") as handle:
        record = json.loads(handle.metadata()[CHECKPOINT_METADATA_KEY])
    for key in ("code_version", "code_fingerprint"):
        del record["fit_stats"][key], record["provenance"][f"fit_{key}"]
    del record["provenance"]["code_fingerprint"]
    record["provenance"]["code_version"] = "0.0.1"
    older = tmp_path / "older.safetensors"
    save_file(load_file(str(path)), str(older), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})
    with pytest.warns(AdbenchWarning) as warned:
        loaded = load_method(older)
    assert [str(w.message) for w in warned] == [
        f"{older}: checkpoint fitted by adbench-hr 0.0.1, this is {adbench_hr.__version__}: its maps and scores "
        "may differ from those it gave then"]
    assert loaded.fit_stats["code_version"] == "0.0.1" and "code_fingerprint" not in loaded.fit_stats
    provenance = loaded.provenance()
    assert (provenance["fit_code_version"], provenance["fit_code_fingerprint"]) == ("0.0.1", None)
