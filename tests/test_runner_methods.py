"""`run` with a third-party method: options, resuming, and predictions checked before they are written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from plugin_methods import GrayDistance, GrayDistanceNoReload, gray_distance_kwargs

from adbench_hr.cli.main import main
from adbench_hr.datasets.base import TestSample as Sample
from adbench_hr.errors import InputError
from adbench_hr.maps import read_map
from adbench_hr.methods import Prediction
from adbench_hr.methods import registry as registry_mod
from adbench_hr.runner import checked_prediction


@pytest.fixture()
def plugins(private_registry: dict) -> None:
    for cls in (GrayDistance, GrayDistanceNoReload):
        registry_mod.register_method(cls)
    registry_mod.register_method("gray-distance-kwargs")(gray_distance_kwargs)


def run_plugin(root: Path, out: Path, *extra: str, method: str = "gray-distance") -> int:
    return main(["run", "--method", method, "--dataset", "synthetic", "--root", str(root), "--out", str(out),
                 "--category", "wood_grain", "--quiet", *extra])


def result_path(out: Path, method: str = "gray-distance") -> Path:
    return out / method / "synthetic" / "results" / "wood_grain.json"


def test_a_plugin_without_a_device_option_runs_and_resumes(plugins, tiny_synthetic_root, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setitem(registry_mod._PACKAGES, "gray-distance", ("gray-tools", "0.3.1"))  # as if from its entry point
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "scale=2") == 0
    result = json.loads(result_path(tmp_path).read_text())
    assert result["versions"]["gray-tools"] == "0.3.1" and result["versions"]["adbench-hr"]
    assert result["method_options"] == {"scale": 2.0, "fault": "none", "seed": 0}
    assert result["pretrained_backbone"] is None and result["seed"] == 0
    maps = sorted(Path(result["maps_dir"]).rglob("*.tiff"))
    assert len(maps) == 6 and all(read_map(p).shape == (120, 160) for p in maps)
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "scale=2") == 0
    assert "already finished, skipped" in capsys.readouterr().out


def test_device_goes_only_to_factories_that_name_it(plugins, tiny_synthetic_root, tmp_path, capsys):
    # **kwargs forwarded to a class without a device option: no device unless --device is given.
    assert run_plugin(tiny_synthetic_root, tmp_path, method="gray-distance-kwargs") == 0
    assert run_plugin(tiny_synthetic_root, tmp_path / "other", "--device", "cpu", method="gray-distance-kwargs") == 2
    assert "unexpected keyword argument 'device'" in capsys.readouterr().err


def test_a_run_that_fails_before_its_maps_keeps_the_previous_result(plugins, tiny_synthetic_root, tmp_path, capsys):
    assert run_plugin(tiny_synthetic_root, tmp_path) == 0
    before = result_path(tmp_path).read_bytes()
    capsys.readouterr()
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "sacle=2") == 2  # a typo'd option
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown option(s) sacle (valid options: fault, scale, seed)" in err
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "fault=fit") == 2  # the fit fails
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "fault=bogus") == 2  # the plug-in's ValueError
    assert "ValueError: fault must be one of" in capsys.readouterr().err
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "fault=nan") == 2  # its first prediction is refused
    assert result_path(tmp_path).read_bytes() == before


class GrayVariant(GrayDistance):
    name = "gray-variant"


# gray-distance-noreload cannot load its checkpoints; gray-variant is a factory registered under the name its
# instances record, whose checkpoint loading raised AttributeError (no _load_checkpoint): exit code 1.
@pytest.mark.parametrize("method", ["gray-distance-noreload", "gray-variant"])
def test_a_method_that_cannot_reload_checkpoints_resumes_by_fitting_again(
    method, plugins, tiny_synthetic_root, tmp_path, monkeypatch, capsys
):
    import adbench_hr.runner as runner

    registry_mod.register_method("gray-variant")(lambda **options: GrayVariant(**options))

    def interrupt(path, anomaly_map, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(runner, "write_map", interrupt)
        assert run_plugin(tiny_synthetic_root, tmp_path, method=method) == 130
    assert list((tmp_path / method / "synthetic" / "checkpoints").glob("*.safetensors"))
    capsys.readouterr()
    assert run_plugin(tiny_synthetic_root, tmp_path, method=method) == 0
    assert "the method cannot load its checkpoints, fitting again" in capsys.readouterr().err
    assert json.loads(result_path(tmp_path, method).read_text())["fit_reused_checkpoint"] is False


@pytest.mark.parametrize(
    "fault, problem",
    [
        ("3d", "an anomaly map of shape (120, 160, 1) for an image of 120x160"),
        ("shape", "an anomaly map of shape (119, 160)"),
        ("nan", "NaN or inf"),
        ("score-text", "an image score of type str"),
    ],
)
def test_bad_predictions_stop_before_the_map_is_written(plugins, tiny_synthetic_root, tmp_path, capsys, fault, problem):
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", f"fault={fault}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "method 'gray-distance' returned" in err and problem in err
    assert "wood_grain/test/" in err  # names the image
    assert not list((tmp_path / "gray-distance" / "synthetic" / "maps").rglob("*.tiff"))


def test_float64_maps_float32_would_merge_are_saved_and_scored_as_float64(plugins, tiny_synthetic_root, tmp_path,
                                                                         capsys):
    assert run_plugin(tiny_synthetic_root, tmp_path / "f32") == 0
    assert "float64" not in capsys.readouterr().err
    assert run_plugin(tiny_synthetic_root, tmp_path / "f64", "-o", "fault=float64") == 0
    assert capsys.readouterr().err.count("returns maps whose values float32 would round: they are saved") == 1
    result = json.loads(result_path(tmp_path / "f64").read_text())
    saved = next(Path(result["maps_dir"]).rglob("*.tiff"))
    assert tifffile.imread(saved).dtype == np.float64
    rescored = tmp_path / "rescored.json"
    assert main(["score", "--maps", result["maps_dir"], "--root", str(tiny_synthetic_root), "--dataset", "synthetic",
                 "--category", "wood_grain", "--out", str(rescored), "--quiet"]) == 0
    assert json.loads(rescored.read_text())["metrics"] == result["metrics"]
    # 1 + 1e-12 x map orders the pixels as the map does: the same numbers, not a constant map's 0.5.
    reference = json.loads(result_path(tmp_path / "f32").read_text())["metrics"]
    assert result["metrics"]["p_auroc"] == reference["p_auroc"] != 0.5
    assert result["metrics"]["aupro"] == reference["aupro"]


def test_a_missing_image_score_is_the_map_maximum(plugins, tiny_synthetic_root, tmp_path):
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "fault=score-none") == 0
    maps = Path(json.loads(result_path(tmp_path).read_text())["maps_dir"]) / "wood_grain"
    rows = dict(line.split(",") for line in (maps / "image_scores.csv").read_text().splitlines()[1:])
    assert len(rows) == 6 and {Path(path).parent.name for path in rows} >= {"good"}  # 2 good + 4 defective
    for path, score in rows.items():
        assert float(score) == pytest.approx(float(read_map(maps / f"{Path(path).with_suffix('')}.tiff").max()))


def _sample(tmp_path: Path) -> Sample:
    return Sample(image_path=tmp_path / "img.png", mask_path=None, label=0, defect_type="good",
                      sample_id="test/good/img")


def test_checked_prediction_keeps_every_value_and_refuses_what_cannot_be_saved(tmp_path):
    sample = _sample(tmp_path)
    values = np.array([[0.5, 0.25], [2.0**-30, 3.0]])  # float64 holding float32 values: saved as float32
    amap, score = checked_prediction("m", sample, Prediction(values, np.float64(0.5)), (2, 2))
    assert amap.dtype == np.float32 and np.array_equal(amap, values)
    assert score == 0.5 and type(score) is float
    for fine in (values + 1e6 * np.array([[1, 1], [1, 1 + 2**-30]]), np.full((2, 2), 1e39),
                 np.array([[2**40, 2**40 + 1], [0, 1]], np.int64)):
        amap, _ = checked_prediction("m", sample, Prediction(fine, 0.0), (2, 2))
        assert amap.dtype == np.float64 and np.array_equal(amap, fine)  # float32 would merge or overflow them
    amap, score = checked_prediction("m", sample, Prediction(np.arange(4, dtype=np.uint8).reshape(2, 2), 1), (2, 2))
    assert amap.dtype == np.float32 and score == 1.0
    _, score = checked_prediction("m", sample, Prediction(values, np.asarray(values.max())), (2, 2))
    assert score == 3.0 and type(score) is float
    # Integers that neither float32 nor float64 holds exactly: distinct scores would merge into ties.
    beyond = np.array([[2**60, 2**60 + 1], [0, 1]], np.int64)
    with pytest.raises(InputError, match="method 'm' returned an anomaly map of int64 values that no float64 holds"):
        checked_prediction("m", sample, Prediction(beyond, 0.0), (2, 2))
    for prediction in (
        Prediction(np.zeros((2, 2), bool), 0.0),
        Prediction([[0.0, 0.0], [0.0, 0.0]], 0.0),  # type: ignore[arg-type]
        Prediction(np.zeros((2, 2)), True),
        Prediction(np.zeros((2, 2)), float("inf")),
        "not a prediction",
    ):
        with pytest.raises(InputError, match="method 'm' returned"):
            checked_prediction("m", sample, prediction, (2, 2))


def test_checked_prediction_refuses_an_image_score_that_float64_would_round(tmp_path):
    # AnomalyMetrics.update refuses these (they could tie with a neighbour's score); run must not round them
    # silently: 2**53 and 2**53 + 1 as good and defective scores would give an I-AUROC of 0.5 instead of 1.
    sample = _sample(tmp_path)
    amap = np.zeros((2, 2), np.float32)
    for score in (np.int64(2**53 + 1), 2**53 + 1, np.longdouble(1) + np.longdouble(2) ** -60):
        if isinstance(score, np.longdouble) and float(score) == score:
            continue  # a platform whose long double is float64
        with pytest.raises(InputError, match="method 'm' returned an image score that cannot be used"):
            checked_prediction("m", sample, Prediction(amap, score), (2, 2))
    with pytest.raises(InputError, match="method 'm' returned an image score beyond the range of float64"):
        checked_prediction("m", sample, Prediction(amap, 10**400), (2, 2))  # not an OverflowError traceback
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # finite, though float() makes it inf
        with pytest.raises(InputError, match="method 'm' returned an image score beyond the range of float64"):
            checked_prediction("m", sample, Prediction(amap, np.longdouble("1e400")), (2, 2))
    with pytest.raises(InputError, match=r"method 'm' returned a non-finite image score \(inf\)"):
        checked_prediction("m", sample, Prediction(amap, np.longdouble("inf")), (2, 2))
    for fine in (np.int64(2**53), 2**53, np.float32(0.1), np.asarray(np.int64(7))):
        _, score = checked_prediction("m", sample, Prediction(amap, fine), (2, 2))
        assert type(score) is float and score == float(fine)


def test_an_option_given_as_flag_and_as_o_must_agree(plugins, tiny_synthetic_root, tmp_path, capsys, monkeypatch):
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "seed=3", "--seed", "4") == 2
    err = capsys.readouterr().err
    assert err == "error: --seed 4 and -o seed=3 disagree; give it once\n"
    assert not (tmp_path / "gray-distance").exists()
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "seed=3", "--seed", "3") == 0
    assert json.loads(result_path(tmp_path).read_text())["seed"] == 3
    # The default given explicitly to a method without a device option is as if not given.
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "seed=3", "--device", "auto") == 0
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "seed=3", "-o", "device=auto") == 0
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "seed=3", "--device", "cpu") == 2  # it takes none
    assert "unknown option(s) device" in capsys.readouterr().err

    import adbench_hr.methods as methods_pkg

    seen = {}

    def capture(name, **options):
        seen.update(options)
        raise InputError("stopped after the options")

    monkeypatch.setattr(methods_pkg, "create_method", capture)
    common = ["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
              "--out", str(tmp_path / "ts"), "--category", "wood_grain", "--quiet", "--weights", "random"]
    assert main([*common, "-o", "device=cpu"]) == 2  # before: silently replaced by auto
    assert seen["device"] == "cpu"
    seen.clear()
    assert main(common) == 2
    import torch

    assert seen["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # auto, resolved for the run key
    assert main([*common, "-o", "device=cpu", "--device", "cuda"]) == 2
    assert "--device cuda and -o device=\"cpu\" disagree" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("tuple", "returned a tuple, not a Prediction(anomaly_map, image_score)"),
        ("provenance-list", "provenance() returned a list, not a dict"),
        ("provenance-nan", "provenance() cannot be recorded in a result file"),
        ("provenance-numpy", "provenance() cannot be recorded in a result file (JSON values without NaN or infinity, "
                             "e.g. float(x) for a numpy number: Object of type float32"),
        ("save-foreign", "save() wrote a file that is not an adbench-hr checkpoint"),
        ("pretrained-text", "pretrained_backbone must be True, False or None (got 'yes' of type str)"),
    ],
)
def test_plugin_mistakes_are_one_line_before_any_map_is_written(plugins, tiny_synthetic_root, tmp_path, capsys,
                                                                fault, problem):
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", f"fault={fault}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'gray-distance'" in err and problem in err, err
    assert not list(tmp_path.rglob("*.tiff"))
    if fault == "save-foreign":  # removed, so that a resumed run does not stop at it
        assert not list(tmp_path.rglob("*.safetensors"))


@pytest.mark.parametrize("fault", ["save-nothing", "save-unsupported"])
def test_a_plugin_without_checkpoints_runs_and_says_so_once(plugins, tiny_synthetic_root, tmp_path, capsys, fault):
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", f"fault={fault}") == 0
    err = capsys.readouterr().err
    assert err.count("warning: method 'gray-distance' saves no checkpoints: an interrupted run fits its category "
                     "again") == 1
    result = json.loads(result_path(tmp_path).read_text())
    assert result["checkpoint"] is None and result["fit_reused_checkpoint"] is False


@pytest.mark.parametrize(("fault", "said"), [
    ("save-nothing", "saves no checkpoints: an interrupted run fits its category again"),
    ("float64", "returns maps whose values float32 would round"),
])
def test_warnings_given_once_per_run_are_given_again_by_the_next_run_in_the_process(
        plugins, tiny_synthetic_root, tmp_path, capsys, fault, said):
    # A notebook (or a script) calling main() once per experiment: each run says what concerns it, once however
    # many categories repeat it, as a run in a process of its own does.
    both = ["--category", "wood_grain", "brushed_metal"]
    for out in ("first", "second"):
        assert run_plugin(tiny_synthetic_root, tmp_path / out, "-o", f"fault={fault}", *both) == 0
        assert capsys.readouterr().err.count(said) == 1, out
        assert (result_path(tmp_path / out).parent / "brushed_metal.json").is_file()


@pytest.mark.parametrize(("fault", "step", "where", "cause"), [
    ("fit-bug", "fit", "category 'wood_grain'", "KeyError: 'layer4'"),
    ("predict-bug", "predict", "image ", "RuntimeError: CUDA error"),
])
def test_a_plugin_bug_keeps_its_traceback_and_ends_with_where_it_happened(
        plugins, tiny_synthetic_root, tmp_path, fault, step, where, cause):
    import subprocess
    import sys

    argv = ["run", "--method", "gray-distance", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
            "--out", str(tmp_path), "--category", "wood_grain", "--quiet", "-o", f"fault={fault}"]
    script = (  # a fresh process: the uncaught exception ends it as it would end the command
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import plugin_methods; "
        "from adbench_hr.methods import registry; registry.register_method(plugin_methods.GrayDistance); "
        f"from adbench_hr.cli.main import main; sys.exit(main({argv!r}))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert "Traceback (most recent call last)" in done.stderr and cause in done.stderr
    assert lines[-1].startswith("adbench_hr.runner.MethodFailed: method 'gray-distance' raised ")
    assert f" in {step} ({where}" in lines[-1] and lines[-1].endswith("the traceback above shows where")


@pytest.mark.parametrize(("fault", "step", "where", "cause"), [
    ("provenance-bug", "provenance", "category 'wood_grain'", AttributeError),
    ("save-bug", "save", "checkpoint ", TypeError),
    ("load-bug", "_load_checkpoint", "checkpoint ", KeyError),
    ("creation-bug", "creation", "category 'wood_grain'", RuntimeError),
])
def test_a_plugin_bug_outside_fit_and_predict_also_ends_with_where_it_happened(
        plugins, tiny_synthetic_root, tmp_path, fault, step, where, cause):
    from adbench_hr.runner import MethodFailed

    def broken_factory(fault: str = "none") -> GrayDistance:
        raise RuntimeError("CUDA driver initialization failed")

    registry_mod.register_method("gray-distance-broken")(broken_factory)
    method = "gray-distance-broken" if fault == "creation-bug" else "gray-distance"
    options = ("-o", f"fault={fault}")
    if fault == "load-bug":  # a checkpoint that the plug-in cannot load: written by a finished run
        assert run_plugin(tiny_synthetic_root, tmp_path, *options) == 0
        result_path(tmp_path).unlink()
    with pytest.raises(MethodFailed) as failure:
        run_plugin(tiny_synthetic_root, tmp_path, *options, method=method)
    message = str(failure.value)
    assert message.startswith(f"method {method!r} raised {cause.__name__} in {step} ({where}")
    assert isinstance(failure.value.__cause__, cause)
    if where == "checkpoint ":  # the file to delete (load) or the one being written (save)
        assert f"{tmp_path}" in message and ".safetensors" in message


@pytest.mark.parametrize(("step", "exhaustion"), [
    ("fit", lambda: MemoryError("Unable to allocate 112. GiB for an array with shape (100000, 100000, 3)")),
    ("predict", lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                                     "allocate memory: you tried to allocate 120000000000 bytes.")),
    ("predict", lambda: __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB.\n"
                                                             "GPU 0 has a total capacity of 79.10 GiB")),
])
def test_running_out_of_memory_is_one_line_that_keeps_finished_categories(
        plugins, tiny_synthetic_root, tmp_path, monkeypatch, capsys, step, exhaustion):
    assert main(["run", "--method", "gray-distance", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--out", str(tmp_path), "--category", "brushed_metal", "--quiet"]) == 0
    capsys.readouterr()

    def exhausted(self, *args, **kwargs):
        raise exhaustion()

    monkeypatch.setattr(GrayDistance, step, exhausted)
    assert run_plugin(tiny_synthetic_root, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: method 'gray-distance' ran out of memory in {step} (")
    assert str(exhaustion()).split("\n")[0] in err and "\n" not in err and "Traceback" not in err
    assert (tmp_path / "gray-distance" / "synthetic" / "results" / "brushed_metal.json").is_file()
    assert not result_path(tmp_path).exists()


def test_out_of_memory_tells_exhaustion_from_other_errors() -> None:
    import torch

    from adbench_hr.runner import out_of_memory

    assert out_of_memory(MemoryError()) and out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    failed_allocation, other_opencv_error = cv2.error("Failed to allocate 8 bytes"), cv2.error("bad argument")
    failed_allocation.code, other_opencv_error.code = cv2.Error.StsNoMem, cv2.Error.StsBadArg  # as OpenCV sets them
    assert out_of_memory(failed_allocation) and not out_of_memory(other_opencv_error)
    assert not out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not out_of_memory(ValueError("can't allocate memory"))  # not the allocator's RuntimeError


def test_resume_notices_changed_data_files(plugins, tiny_synthetic_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic_root, root)
    (root / "meta.json").unlink()  # a folder of one's own: a generated one whose files change is refused
    out = tmp_path / "runs"
    assert run_plugin(root, out) == 0
    first = json.loads(result_path(out).read_text())
    assert run_plugin(root, out) == 0
    assert "already finished, skipped" in capsys.readouterr().out
    good = root / "wood_grain" / "test" / "good"
    shutil.copy(sorted(good.iterdir())[0], good / "999.png")  # a test image added since
    assert run_plugin(root, out) == 0
    assert "already finished" not in capsys.readouterr().out
    second = json.loads(result_path(out).read_text())
    assert second["metrics"]["n_images"] == first["metrics"]["n_images"] + 1
    assert second["fit_reused_checkpoint"] is True  # the training images did not change
    removed = sorted(good.iterdir())[0]  # a test image removed since: its map goes too
    removed.unlink()
    maps = Path(second["maps_dir"]) / "wood_grain" / "test" / "good"
    assert (maps / f"{removed.stem}.tiff").is_file()
    assert run_plugin(root, out) == 0
    assert not (maps / f"{removed.stem}.tiff").exists() and (maps / "999.tiff").is_file()
    assert json.loads(result_path(out).read_text())["metrics"]["n_images"] == first["metrics"]["n_images"]
    # Interrupted after its fit, then a training image is added: the checkpoint is not reused.
    result_path(out).unlink()
    train = root / "wood_grain" / "train" / "good"
    shutil.copy(sorted(train.iterdir())[0], train / "999.png")
    assert run_plugin(root, out) == 0
    third = json.loads(result_path(out).read_text())
    assert third["fit_reused_checkpoint"] is False and third["n_train_images"] == first["n_train_images"] + 1
    # Only the checkpoint of the current training files is kept.
    checkpoints = list((out / "gray-distance" / "synthetic" / "checkpoints").glob("wood_grain-*.safetensors"))
    assert [str(p) for p in checkpoints] == [third["checkpoint"]]


def test_a_checkpoint_that_cannot_be_read_is_named_and_kept(plugins, tiny_synthetic_root, tmp_path, capsys,
                                                            monkeypatch):
    import errno

    import safetensors

    assert run_plugin(tiny_synthetic_root, tmp_path) == 0
    checkpoint = Path(json.loads(result_path(tmp_path).read_text())["checkpoint"])
    result_path(tmp_path).unlink()  # as if interrupted after the fit

    def unreadable(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")  # as safetensors raises it: no file name

    monkeypatch.setattr(safetensors, "safe_open", unreadable)
    assert run_plugin(tiny_synthetic_root, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {checkpoint}: cannot read the checkpoint (Permission denied)"
    assert checkpoint.is_file()


def test_a_file_a_method_cannot_read_is_one_line_naming_it(plugins, tiny_synthetic_root, tmp_path, capsys):
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "fault=fit-missing-file") == 2
    err = capsys.readouterr().err
    assert err == "error: /nonexistent/gray-weights.bin: No such file or directory\n"


def test_the_cli_puts_a_weight_file_into_the_run_key(monkeypatch, tmp_path, tiny_synthetic_root):
    import timm
    from safetensors.torch import save_file

    import adbench_hr.runner as runner

    tiny = {"depth": 2, "embed_dim": 48, "num_heads": 2}
    teacher = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=70, num_classes=0, **tiny)
    weights = tmp_path / "w.safetensors"
    save_file(teacher.state_dict(), str(weights))  # preflight reads it: a file that fits the options below
    options = ["--preset", "fast", "-o", "img_size=70", "-o", "layers=[1,2]",
               "-o", f"teacher_kwargs={json.dumps(tiny)}"]
    seen = []
    monkeypatch.setattr(runner, "run_benchmark", lambda config, *args, **kwargs: seen.append(config) or [])
    assert main(["run", "--method", "ts-mlp", "--weights", str(weights), "--dataset", "synthetic", "--root",
                 str(tiny_synthetic_root), "--out", str(tmp_path / "o"), "--quiet", *options]) == 0
    assert [Path(p) for p in seen[0].input_files] == [weights.resolve()]
    assert main(["run", "--method", "ts-mlp", "--weights", "random", "--dataset", "synthetic", "--root",
                 str(tiny_synthetic_root), "--out", str(tmp_path / "o"), "--quiet", *options]) == 0
    assert list(seen[1].input_files) == []
    monkeypatch.chdir(tmp_path)  # a relative path: the same file's identity, whatever the working folder
    assert main(["run", "--method", "ts-mlp", "--weights", weights.name, "--dataset", "synthetic", "--root",
                 str(tiny_synthetic_root), "--out", str(tmp_path / "o"), "--quiet", *options]) == 0
    assert [Path(p) for p in seen[2].input_files] == [weights.resolve()]


def _direct_run(tmp_path: Path, root: Path, make_method, **config_changes):
    """``run_benchmark`` on wood_grain without the CLI: the config, the results and the lines it echoed."""
    from adbench_hr.datasets import open_dataset
    from adbench_hr.methods import AnomalyMethod
    from adbench_hr.runner import RunConfig, run_benchmark

    config = RunConfig(method="gray-distance", method_options={"scale": 1.0}, dataset_name="synthetic",
                       out_dir=tmp_path / "runs", progress=False, dataset_root=root, **config_changes)
    dataset = open_dataset("synthetic", root)
    echoed: list[str] = []
    results = run_benchmark(config, dataset, ["wood_grain"], make_method, AnomalyMethod.load, echo=echoed.append)
    return config, dataset, results, echoed


def test_a_data_file_edited_during_the_run_is_not_recorded_as_what_it_read(tiny_synthetic_root, tmp_path):
    import os
    import shutil

    from adbench_hr.runner import category_data, finished_results

    root = shutil.copytree(tiny_synthetic_root, tmp_path / "data")
    edited = sorted((root / "wood_grain" / "test" / "good").iterdir())[0]

    class EditedDuringFit(GrayDistance):
        def fit(self, train_samples, progress: bool = True) -> None:
            super().fit(train_samples, progress)
            os.utime(edited, ns=(1, 1))  # e.g. a copy of the data set still arriving

    config, dataset, (result,), _ = _direct_run(tmp_path, root, EditedDuringFit)
    listed_before = category_data(dataset, "wood_grain")  # the edit shows in today's listing...
    assert result["data_fingerprint"] != listed_before.fingerprint  # ...not in the result, taken before it
    assert finished_results(config, "wood_grain", listed_before.fingerprint) is None  # so a rerun recomputes


def test_a_weight_file_replaced_during_the_run_is_not_recorded_as_the_one_it_used(tiny_synthetic_root, tmp_path):
    from adbench_hr.runner import RunConfig, finished_results

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"old")

    class ReplacedDuringFit(GrayDistance):
        def fit(self, train_samples, progress: bool = True) -> None:
            super().fit(train_samples, progress)
            weights.write_bytes(b"newer")

    key = RunConfig(method="gray-distance", method_options={"scale": 1.0}, dataset_name="synthetic",
                    out_dir=tmp_path / "runs", dataset_root=tiny_synthetic_root, input_files=[weights]).run_key
    config, _, (result,), _ = _direct_run(tmp_path, tiny_synthetic_root, ReplacedDuringFit, input_files=[weights])
    assert result["run_key"] == key and Path(result["checkpoint"]).name.startswith(f"wood_grain-{key}-")
    assert config.run_key != key and finished_results(config, "wood_grain") is None  # new weights: recompute


def test_a_skipped_category_returns_its_results_as_written(tiny_synthetic_root, tmp_path):
    _, _, first, _ = _direct_run(tmp_path, tiny_synthetic_root, GrayDistance)
    # The result records the options the method ran with, its defaults included, not only those asked for.
    assert first[0]["method_options"] == {"scale": 1.0, "fault": "none", "seed": 0} and first[0]["seed"] == 0

    def no_fit():
        raise AssertionError("a finished category must not be fitted again")

    _, _, again, echoed = _direct_run(tmp_path, tiny_synthetic_root, no_fit)
    assert [line.split(":")[0] for line in echoed] == ["wood_grain"] and "already finished" in echoed[0]
    assert again == json.loads(json.dumps(first))  # the file's content, e.g. for the CLI's summary


def test_a_bad_lowres_size_stops_before_training(tiny_synthetic_root, tmp_path):
    def no_fit():
        raise AssertionError("fit must not start")

    with pytest.raises(InputError, match="--lowres-eval-size"):
        _direct_run(tmp_path, tiny_synthetic_root, no_fit, lowres_eval_size=5)
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_whose_loading_fails_on_another_file_is_kept(plugins, tiny_synthetic_root, tmp_path, capsys,
                                                                 monkeypatch):
    assert run_plugin(tiny_synthetic_root, tmp_path) == 0
    checkpoint = Path(json.loads(result_path(tmp_path).read_text())["checkpoint"])
    result_path(tmp_path).unlink()  # as if interrupted after the fit

    def weights_unavailable(cls, path, meta, **overrides):  # e.g. a backbone that cannot be fetched offline
        raise InputError("cannot fetch the backbone weights", "/hub/backbone.pth")

    monkeypatch.setattr(GrayDistance, "_load_checkpoint", classmethod(weights_unavailable))
    capsys.readouterr()
    assert run_plugin(tiny_synthetic_root, tmp_path) == 2
    assert capsys.readouterr().err.strip() == "error: /hub/backbone.pth: cannot fetch the backbone weights"
    assert checkpoint.is_file()  # the fit it holds is not thrown away


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through /proc (Linux)")
def test_maps_reach_the_disk_before_the_category_is_marked_finished(plugins, tiny_synthetic_root, tmp_path,
                                                                   monkeypatch):
    # After a power loss, a category whose result survives must not have an empty map, and an old result
    # must not come back beside new maps: each removal and map is flushed before what relies on it.
    import os

    import adbench_hr.runner as runner_mod

    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "scale=2") == 0
    events: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def logged(name, function):
        def call(*args, **kwargs):
            events.append((name, str(args[0])))
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "fsync", fsync)
    for name in ("write_map", "write_image_scores", "mark_maps_complete"):
        monkeypatch.setattr(runner_mod, name, logged(name, getattr(runner_mod, name)))
    assert run_plugin(tiny_synthetic_root, tmp_path, "-o", "scale=3") == 0  # other settings: rewrites the maps

    kinds = [kind for kind, _ in events]
    results_folder = str(result_path(tmp_path).parent)
    first_map = kinds.index("write_map")
    assert ("fsync", results_folder) in events[:first_map]  # the old result's removal is on the disk
    maps = [path for kind, path in events if kind == "write_map"]
    assert len(maps) == 6
    scores_written = kinds.index("write_image_scores")
    flushed = [path for kind, path in events[:scores_written] if kind == "fsync"]
    assert set(maps) <= set(flushed)
    assert {str(Path(p).parent) for p in maps} <= set(flushed)  # and their folder entries
    assert scores_written < kinds.index("mark_maps_complete")
    # The result itself is written durably after the mark is gone (its temporary is flushed, then its folder).
    assert ("fsync", results_folder) in events[kinds.index("mark_maps_complete"):]
    assert json.loads(result_path(tmp_path).read_text())["method_options"]["scale"] == 3.0


def test_run_warns_once_about_files_of_the_category_that_are_not_read(plugins, tiny_synthetic_root, tmp_path, capsys):
    # Before: only `datasets check` warned about a mask in ground_truth/good; run scored the image as good silently.
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic_root, root)
    (root / "meta.json").unlink()  # the generated copy, with a file added: a folder of one's own
    stray = root / "wood_grain" / "ground_truth" / "good" / "000_mask.png"
    stray.parent.mkdir()
    shutil.copy(next((root / "wood_grain" / "ground_truth").glob("*/000_mask.png")), stray)
    out = tmp_path / "runs"
    assert run_plugin(root, out, "--lowres-eval-size", "32") == 0
    expected = (f"{stray}: 1 image file(s) of the category are not read (neither an image of train/good or "
                "test/<defect> nor the mask of one): misnamed or misplaced?")
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "not read" in line] == [f"warning: wood_grain: {expected}"]
    for name in ("wood_grain.json", "wood_grain.lowres32.json"):
        assert expected in json.loads((result_path(out).parent / name).read_text())["warnings"]


def test_a_category_name_a_result_cannot_hold_is_refused_before_the_fit(plugins, tiny_synthetic_root, tmp_path,
                                                                       capsys):
    import shutil

    root = tmp_path / "data"
    category = root / "wood\tgrain"
    shutil.copytree(tiny_synthetic_root / "wood_grain", category)
    out = tmp_path / "out"
    assert main(["run", "--method", "gray-distance", "--dataset", "folder", "--root", str(root), "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    # The path's tab becomes a space on the one error line.
    assert err.startswith(f"error: {str(category).replace(chr(9), ' ')}: category name must not contain control")
    assert not list(out.rglob("*.tiff")) and not list(out.rglob("*.safetensors"))  # nothing fitted or written


def test_a_reader_that_goes_away_stops_neither_the_run_nor_its_remaining_categories(
        plugins, tiny_synthetic_root, tmp_path, capsys):
    # `adbench-hr run ... | head -1`: the "already finished" line of the second finished category met a closed
    # pipe, and the run ended there ("error: Broken pipe", exit code 2) with the other categories not run.
    import os
    import subprocess
    import sys

    argv = ["run", "--method", "gray-distance", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
            "--out", str(tmp_path), "--quiet"]
    assert main([*argv, "--category", "brushed_metal"]) == 0  # finished: its line comes first
    capsys.readouterr()
    results = result_path(tmp_path).parent
    assert not (results / "wood_grain.json").exists()
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import plugin_methods; "
        "from adbench_hr.methods import registry; registry.register_method(plugin_methods.GrayDistance); "
        f"from adbench_hr.cli.main import main; sys.exit(main({argv!r}))"
    )
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    try:
        done = subprocess.run([sys.executable, "-c", script], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "error" not in done.stderr and "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert (results / "wood_grain.json").is_file()  # the category after the lost line was still run


def test_a_plugins_preflight_refuses_before_the_dataset_is_read(plugins, tmp_path, capsys):
    # AnomalyMethod.preflight is part of the documented API; the inherited one checks nothing.
    missing = tmp_path / "no-such-dataset"
    assert run_plugin(missing, tmp_path / "out", "-o", "fault=preflight") == 2
    assert capsys.readouterr().err == "error: gray-distance: the scanner this method needs is not connected\n"
    assert run_plugin(missing, tmp_path / "out") == 2
    assert "no-such-dataset" in capsys.readouterr().err  # without the fault: the dataset is the problem
