"""`run` -> `score` -> `leaderboard` end to end on the tiny synthetic dataset with a tiny random teacher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from adbench_hr._source import source_fingerprint
from adbench_hr.cli.main import main
from adbench_hr.methods.base import read_checkpoint_metadata

TINY_METHOD_OPTIONS = [
    "--preset", "fast", "--weights", "random", "--device", "cpu", "--seed", "3",
    "-o", "img_size=70", "-o", "layers=[2,4]", "-o", 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}',
    "-o", "epochs=2", "-o", "num_workers=0",
]


def run_tiny(root: Path, out: Path, *extra: str) -> int:
    return main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(root), "--out", str(out),
                 "--quiet", *TINY_METHOD_OPTIONS, *extra])


def results_of(out: Path) -> dict[str, dict]:
    folder = out / "ts-mlp" / "synthetic" / "results"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


@pytest.fixture(scope="module")
def finished_run(tiny_synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert run_tiny(tiny_synthetic_root, out) == 0
    return out


@pytest.fixture()
def finished_copy(finished_run, tmp_path, capsys) -> Path:
    """A copy of ``finished_run``'s output folder to resume into, with the captured output cleared."""
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    capsys.readouterr()
    return out


def test_run_writes_results_maps_and_checkpoints(finished_run, tiny_synthetic_root, peak_reset_works):
    results = results_of(finished_run)
    assert sorted(results) == ["brushed_metal", "wood_grain"]
    for category, result in results.items():
        assert result["schema"] == "adbench-hr/result/v1"
        assert result["method"] == "ts-mlp" and result["dataset"] == "synthetic" and result["category"] == category
        assert result["pretrained_backbone"] is False
        assert result["seed"] == 3 and result["method_options"]["seed"] == 3
        assert result["protocol"]["name"] == "full"
        assert result["metrics"]["n_images"] == 6 and result["metrics"]["n_defective_images"] == 4
        # Defects are the 8-connected components of the category's masks (SPEC section 2).
        masks = sorted((tiny_synthetic_root / category / "ground_truth").rglob("*_mask.png"))
        components = sum(ndimage.label(cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) > 0, np.ones((3, 3)))[1] for m in masks)
        assert len(masks) == 4 and result["metrics"]["n_defects"] == components
        assert all(isinstance(result["metrics"][key], float) for key in ("i_auroc", "p_auroc"))
        assert result["timing"]["fit_s"] > 0 and result["timing"]["predict_ms_per_image"] > 0
        assert result["timing"]["peak_host_memory_mb"] > 0
        assert result["peak_host_memory_scope"] == ("category" if peak_reset_works else "process")
        assert result["device"].startswith("cpu")
        assert {"numpy", "torch", "adbench-hr"} <= set(result["versions"])
        assert result["versions"]["adbench-hr-fingerprint"] == source_fingerprint()
        maps = Path(result["maps_dir"]) / category
        assert len(list(maps.rglob("*.tiff"))) == 6
        assert (maps / "image_scores.csv").is_file()
        assert Path(result["checkpoint"]).is_file()
        written_by = read_checkpoint_metadata(Path(result["checkpoint"]))["provenance"]
        assert written_by["code_fingerprint"] == source_fingerprint() == result["provenance"]["code_fingerprint"]
        assert result["provenance"]["fit_code_fingerprint"] == source_fingerprint()


def test_random_weights_warning(tiny_synthetic_root, tmp_path, capsys):
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--category", "wood_grain", "--out", str(tmp_path), "--quiet", *TINY_METHOD_OPTIONS]) == 0
    assert "not meaningful" in capsys.readouterr().err


def test_random_weights_are_warned_before_training(tiny_synthetic_root, tmp_path, capsys, monkeypatch):
    from adbench_hr.errors import InputError
    from adbench_hr.methods.ts_mlp import TSMLP

    def stopped(*args, **kwargs):  # a run that ends during its (long) fit: the warning came first
        raise InputError("stopped during the fit")

    monkeypatch.setattr(TSMLP, "fit", stopped)
    assert run_tiny(tiny_synthetic_root, tmp_path, "--category", "wood_grain") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: stopped during the fit" and any("not meaningful" in line for line in err[:-1])


def test_a_root_without_categories_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_tiny(tmp_path / "empty", tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(tmp_path / "empty") in err
    assert not (tmp_path / "runs").exists()


def test_rescoring_written_maps_gives_the_same_numbers(finished_run, tiny_synthetic_root, tmp_path, capsys):
    run = shutil.copytree(finished_run, tmp_path / "run")  # results land in the run's folder: a copy of it
    maps_dir = str(run / "ts-mlp" / "synthetic" / "maps")
    for category, result in results_of(run).items():
        out = tmp_path / f"{category}.json"
        assert main(["score", "--maps", maps_dir, "--root", str(tiny_synthetic_root), "--dataset",
                     "synthetic", "--category", category, "--out", str(out), "--quiet"]) == 0
        assert json.loads(out.read_text())["metrics"] == result["metrics"]
        # Without --method the result would be method "maps": said once per command.
        assert capsys.readouterr().err.count("these are a run's maps: pass --method NAME and an --out") == 1
        assert json.loads(out.read_text())["method"] == "maps"
    common = ["score", "--maps", maps_dir, "--root", str(tiny_synthetic_root), "--dataset", "synthetic",
              "--category", category, "--quiet", "--method", "ts-mlp-rescored"]
    assert main([*common, "--out", str(out)]) == 0
    assert "run's maps" not in capsys.readouterr().err
    inside = [Path(maps_dir) / f"result_{category}.json",  # the default --out
              Path(maps_dir).parent / "results" / "rescored.json"]
    for out_arg in ([], ["--out", str(inside[1])]):  # --method, but the result lands in the run's folder
        assert main([*common, *out_arg]) == 0
        # --method was given: the advice names only --out.
        assert "warning: these are a run's maps: pass an --out outside the run's folder, or" in capsys.readouterr().err
    assert all(path.is_file() for path in inside)


def test_rerun_skips_finished_categories(finished_run, tiny_synthetic_root, tmp_path, capsys):
    run = shutil.copytree(finished_run, tmp_path / "run")  # the module's other tests share the run
    before = {p: p.read_bytes() for p in (run / "ts-mlp/synthetic/results").glob("*.json")}
    assert before and run_tiny(tiny_synthetic_root, run) == 0
    out, err = capsys.readouterr()
    assert out.count("already finished, skipped") == 2
    # Skipped categories are still summarised, and their random backbone still said (no method was built).
    assert out.count("ts-mlp | synthetic | brushed_metal | protocol full") == 1
    assert out.count("ts-mlp | synthetic | wood_grain | protocol full") == 1
    assert err.count("not meaningful") == 1
    assert {p: p.read_bytes() for p in before} == before


def test_interrupted_run_resumes_to_the_same_result(finished_run, tiny_synthetic_root, tmp_path, monkeypatch):
    import adbench_hr.results
    import adbench_hr.runner as runner
    from adbench_hr.methods import _common

    for module in (_common, adbench_hr.results):  # the interrupted run is an edited checkout's
        monkeypatch.setattr(module, "source_fingerprint", lambda: "e" * 16)
    real_write_map = runner.write_map
    calls = {"n": 0}

    def interrupt_on_the_eighth_map(path, anomaly_map, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # the second category, mid-prediction
            raise KeyboardInterrupt
        real_write_map(path, anomaly_map, **kwargs)

    monkeypatch.setattr(runner, "write_map", interrupt_on_the_eighth_map)
    assert run_tiny(tiny_synthetic_root, tmp_path) == 130
    results_dir = tmp_path / "ts-mlp/synthetic/results"
    assert [p.name for p in results_dir.iterdir()] == ["brushed_metal.json"]  # nothing half-written
    assert not list(tmp_path.rglob("*.part"))

    monkeypatch.undo()
    assert run_tiny(tiny_synthetic_root, tmp_path) == 0
    resumed, clean = results_of(tmp_path), results_of(finished_run)
    assert resumed["wood_grain"]["fit_reused_checkpoint"] is True
    # The resuming build wrote the result and predicted; the interrupted one fitted the students it reused.
    written, fitted = resumed["wood_grain"]["versions"], resumed["wood_grain"]["provenance"]
    assert written["adbench-hr-fingerprint"] == fitted["code_fingerprint"] == source_fingerprint() != "e" * 16
    assert fitted["fit_code_fingerprint"] == "e" * 16
    for category in clean:
        assert resumed[category]["metrics"] == clean[category]["metrics"]


def test_leaderboard_from_run_folder(finished_run, tmp_path):
    assert main(["leaderboard", str(finished_run), "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "leaderboard.csv")
    assert sorted(table["category"]) == ["brushed_metal", "wood_grain"]
    results = results_of(finished_run)
    for _, row in table.iterrows():
        assert row["aupro@0.3"] == pytest.approx(results[row["category"]]["metrics"]["aupro"]["0.3"])
    assert (tmp_path / "summary.csv").is_file()
    assert len(list(tmp_path.glob("*.png"))) >= 4


def test_run_errors_are_one_line(tiny_synthetic_root, tmp_path, capsys):
    assert main(["run", "--method", "nope", "--root", str(tiny_synthetic_root), "--out", str(tmp_path)]) == 2
    assert main(["run", "--method", "ts-mlp", "--dataset", "folder", "--out", str(tmp_path)]) == 2
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--category", "missing", "--out", str(tmp_path), *TINY_METHOD_OPTIONS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "nope" in err[0] and "--root" in err[1] and "missing" in err[2]
    assert not any("Traceback" in line for line in err)


def test_bad_output_folder_and_fractional_epochs_stop_before_training(tiny_synthetic_root, tmp_path, capsys,
                                                                       monkeypatch):
    from adbench_hr.methods.ts_mlp import TSMLP

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not start")

    monkeypatch.setattr(TSMLP, "fit", no_training)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = ["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root), "--quiet"]
    assert main([*base, "--out", str(blocker), *TINY_METHOD_OPTIONS]) == 2
    fractional = [o if o != "epochs=2" else "epochs=1.5" for o in TINY_METHOD_OPTIONS]
    assert main([*base, "--out", str(tmp_path / "ok"), *fractional]) == 2
    assert main([*base, "--out", str(tmp_path / "ok"), *TINY_METHOD_OPTIONS, "--lowres-eval-size", "5000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "a-file" in err[0] and "existing file" in err[0]
    assert "not an integer: 1.5" in err[1]
    assert "--lowres-eval-size': 5000 is not in the range 8<=x<=4096" in err[2]


def test_run_also_scores_the_lowres_protocol(tiny_synthetic_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic_root, root)
    mask = sorted((root / "wood_grain" / "ground_truth").rglob("*.png"))[0]
    cv2.imwrite(str(mask), np.zeros_like(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)))
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(root),
                 "--category", "wood_grain", "--out", str(tmp_path), "--lowres-eval-size", "32", "--quiet",
                 *TINY_METHOD_OPTIONS]) == 0
    err = capsys.readouterr().err
    assert err.count("mask of a defective image is empty") == 1  # said once, not once per protocol
    results = results_of(tmp_path)
    assert sorted(results) == ["wood_grain", "wood_grain.lowres32"]
    low = results["wood_grain.lowres32"]
    assert low["protocol"]["name"] == "lowres" and low["protocol"]["eval_size"] == 32
    assert results["wood_grain"]["protocol"]["name"] == "full"
    out = tmp_path / "rescored.json"
    assert main(["score", "--maps", low["maps_dir"], "--root", str(root), "--dataset", "synthetic",
                 "--category", "wood_grain", "--protocol", "lowres", "--eval-size", "32", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads(out.read_text())["metrics"] == low["metrics"]


def test_a_broken_mask_stops_the_run_before_training(tiny_synthetic_root, tmp_path, capsys, monkeypatch):
    from adbench_hr.methods.ts_mlp import TSMLP

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not start")

    monkeypatch.setattr(TSMLP, "fit", no_training)
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic_root, root)
    mask = sorted((root / "wood_grain" / "ground_truth").rglob("*.png"))[0]
    cv2.imwrite(str(mask), np.zeros((7, 9), np.uint8))
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(root), "--category",
                 "wood_grain", "--out", str(tmp_path / "out"), "--quiet", *TINY_METHOD_OPTIONS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert str(mask) in err[-1] and "does not match its image" in err[-1]


def _interrupting_write_map(runner, after: int, exc: BaseException):
    real = runner.write_map
    calls = {"n": 0}

    def write_map(path, anomaly_map, **kwargs):
        calls["n"] += 1
        if calls["n"] == after:
            raise exc
        real(path, anomaly_map, **kwargs)

    return write_map


def test_interrupted_run_of_other_settings_does_not_leave_a_finished_result(
    finished_run, tiny_synthetic_root, tmp_path, monkeypatch, capsys
):
    import adbench_hr.runner as runner

    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    # Same folder, other settings (epochs=3), interrupted while rewriting the first category's maps.
    monkeypatch.setattr(runner, "write_map", _interrupting_write_map(runner, 3, KeyboardInterrupt()))
    assert run_tiny(tiny_synthetic_root, out, "-o", "epochs=3") == 130
    monkeypatch.undo()
    capsys.readouterr()
    # The original command must not take the category whose maps changed as finished.
    assert run_tiny(tiny_synthetic_root, out) == 0
    assert "brushed_metal: already finished" not in capsys.readouterr().out
    resumed, clean = results_of(out), results_of(finished_run)
    for category in clean:
        assert resumed[category]["metrics"] == clean[category]["metrics"]


def test_run_key_holds_the_dataset_root(finished_run, tiny_synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    other_root = tmp_path / "elsewhere"
    shutil.copytree(tiny_synthetic_root, other_root)
    assert run_tiny(other_root, out) == 0
    assert "already finished" not in capsys.readouterr().out
    assert {r["dataset_root"] for r in results_of(out).values()} == {str(other_root.resolve())}



def test_results_record_how_the_synthetic_dataset_was_generated(finished_run, tiny_synthetic_root, tmp_path):
    # Enough to generate the data again (adbench-hr datasets synth --seed --size ...); dataset_root alone is
    # a path on someone else's machine.
    meta = json.loads((tiny_synthetic_root / "meta.json").read_text())
    for result in results_of(finished_run).values():
        record = result["dataset_generator"]
        assert record == {key: value for key, value in meta.items() if key != "categories"}
        assert record["seed"] == 0 and record["size"] == 160  # conftest's TINY_SYNTHETIC
        assert record["generator"].startswith("adbench-hr synthetic")
    # The same record from score; none for a folder that is not a generated dataset.
    maps = finished_run / "ts-mlp" / "synthetic" / "maps"
    assert main(["score", "--maps", str(maps), "--root", str(tiny_synthetic_root), "--category", "wood_grain",
                 "--method", "ts-mlp", "--quiet", "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["dataset_generator"] == record
    plain = shutil.copytree(tiny_synthetic_root, tmp_path / "plain")
    (plain / "meta.json").unlink()
    assert main(["score", "--maps", str(maps), "--root", str(plain), "--dataset", "folder", "--category",
                 "wood_grain", "--method", "ts-mlp", "--quiet", "--out", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["dataset_generator"] is None


def test_damaged_checkpoint_and_leftover_temporaries_are_replaced(finished_run, tiny_synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    folder = out / "ts-mlp" / "synthetic"
    checkpoint = sorted((folder / "checkpoints").glob("wood_grain-*.safetensors"))[0]
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])  # truncated tensor data
    (folder / "results" / "wood_grain.json").unlink()
    leftovers = [folder / "maps" / "wood_grain" / "test" / ".000.tiff.abc123.part",
                 folder / "checkpoints" / f".{checkpoint.name}.xyz.part" / checkpoint.name]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    leftovers[1] = leftovers[1].parent  # a checkpoint's private temporary folder
    assert run_tiny(tiny_synthetic_root, out) == 0
    err = capsys.readouterr().err
    assert "damaged checkpoint" in err and checkpoint.name in err
    assert not any(path.exists() for path in leftovers)
    resumed, clean = results_of(out), results_of(finished_run)
    assert resumed["wood_grain"]["fit_reused_checkpoint"] is False
    assert resumed["wood_grain"]["metrics"] == clean["wood_grain"]["metrics"]


def test_outputs_get_the_umask_mode_and_a_shell_ready_command(finished_run):
    import os
    import shlex
    import stat

    mask = os.umask(0)
    os.umask(mask)
    for path in [*finished_run.rglob("*.json"), *finished_run.rglob("*.tiff"), *finished_run.rglob("*.safetensors")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    hidden = [p for p in finished_run.rglob(".*") if ".locks" not in p.parts]
    assert not hidden  # no temporaries of ours or of safetensors left beside the outputs
    command = results_of(finished_run)["wood_grain"]["command"]
    assert 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}' in shlex.split(command)


def test_a_second_run_into_the_same_category_stops(tiny_synthetic_root, tmp_path, capsys):
    import fcntl

    lock = tmp_path / "ts-mlp" / "synthetic" / ".locks" / "wood_grain.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running process would hold it
        assert run_tiny(tiny_synthetic_root, tmp_path, "--category", "wood_grain") == 2
    assert "another adbench-hr run is writing category 'wood_grain'" in capsys.readouterr().err


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(tiny_synthetic_root, tmp_path, monkeypatch,
                                                                  capsys):
    import errno
    import fcntl

    def no_locks(handle, operation):  # NFS mounted without a lock daemon
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert run_tiny(tiny_synthetic_root, tmp_path, "--category", "wood_grain") == 0
    err = capsys.readouterr().err
    assert "wood_grain.lock: cannot lock (No locks available); a second run writing category 'wood_grain'" in err
    assert (tmp_path / "ts-mlp" / "synthetic" / "results" / "wood_grain.json").is_file()


def test_sigterm_and_early_ctrl_c_end_in_one_line(tiny_synthetic_root, tmp_path, monkeypatch, capsys):
    import os
    import signal

    import adbench_hr.cli.main as cli_main
    import adbench_hr.runner as runner

    def terminate(path, anomaly_map, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(runner, "write_map", terminate)
    assert run_tiny(tiny_synthetic_root, tmp_path) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: terminated" and not any("Traceback" in line for line in err)
    assert not list(tmp_path.rglob("*.part"))
    assert signal.getsignal(signal.SIGTERM) is not cli_main._raise_terminated  # restored after main()

    def interrupted_while_importing():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_attach_commands", interrupted_while_importing)
    assert main(["run", "--method", "ts-mlp"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"


def test_an_explicit_default_option_resumes_like_the_omitted_one(finished_copy, tiny_synthetic_root, capsys):
    out = finished_copy
    assert run_tiny(tiny_synthetic_root, out, "-o", "top_fraction=0.001", "-o", "attention=auto") == 0
    printed = capsys.readouterr().out
    assert "brushed_metal: already finished" in printed and "wood_grain: already finished" in printed


def test_other_spellings_of_the_same_settings_resume(finished_copy, tiny_synthetic_root, capsys):
    out = finished_copy
    # TINY_METHOD_OPTIONS without --preset (auto is fast on a CPU), the CPU named by its index, numbers written
    # otherwise, the teacher's keywords in another order, and the fast preset's own schedule and blur given.
    respelled = [
        "--weights", "random", "--device", "cpu:0", "--seed", "3",
        "-o", "img_size=70.0", "-o", "layers=[2, 4.0]", "-o", 'teacher_kwargs={"num_heads":2,"embed_dim":48,"depth":4}',
        "-o", "epochs=2.0", "-o", "num_workers=0", "-o", "lr=1e-4", "-o", "batch_size=4",
        "-o", "blur=[5,5,5,5,5,7,7,7]",
    ]
    assert main(["run", "--method", "ts-mlp", "--dataset", "synthetic", "--root", str(tiny_synthetic_root),
                 "--out", str(out), "--quiet", *respelled]) == 0
    printed = capsys.readouterr().out
    assert "brushed_metal: already finished" in printed and "wood_grain: already finished" in printed
    # Another learning rate is other settings.
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "-o", "lr=2e-4") == 0
    assert "already finished" not in capsys.readouterr().out


@pytest.mark.parametrize("change, said", [
    # A result of an older build: the same options, but a run key composed otherwise (the version stayed 0.1.0;
    # b1e68fa7f1f96620 is what 96fca2a wrote for these settings).
    (lambda r: r.update(run_key="b1e68fa7f1f96620"),
     "was computed with other settings (run key b1e68fa7f1f96620, now {key}: other method options, dataset root "
     "or weight file, or another adbench-hr build), so it is computed again"),
    (lambda r: r.update(data_fingerprint="0" * 16),
     "was computed from other data files (names, sizes or times), so it is computed again"),
    (lambda r: r.pop("run_key"), "has no run key (not written by run), so the category is computed again"),
])
def test_a_result_that_is_not_reused_is_said_to_be_computed_again(finished_copy, tiny_synthetic_root, capsys,
                                                                   change, said):
    path = finished_copy / "ts-mlp" / "synthetic" / "results" / "wood_grain.json"
    result = json.loads(path.read_text())
    key = result["run_key"]
    change(result)
    path.write_text(json.dumps(result))
    assert run_tiny(tiny_synthetic_root, finished_copy) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"wood_grain: {path} {said.format(key=key)}" in printed
    assert any(line.startswith("brushed_metal: already finished") for line in printed)
    assert not any(line.startswith("brushed_metal: ") and "computed again" in line for line in printed)
    assert json.loads(path.read_text())["run_key"] == key


def test_a_bad_option_value_is_refused_before_the_dataset_is_read(tmp_path, capsys):
    missing_root = tmp_path / "no-such-dataset"
    assert main(["run", "--method", "ts-mlp", "--root", str(missing_root), "--out", str(tmp_path / "runs"),
                 *[o if o != "layers=[2,4]" else "layers=[4,2]" for o in TINY_METHOD_OPTIONS]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ts-mlp: layers must be two 1-based block numbers, earlier first")
    assert "\n" not in err and not (tmp_path / "runs").exists()


# Without the dataset's own options: each case adds what it needs (a repeated -o key is warned about).
_TINY_TEACHER = ["--preset", "fast", "--device", "cpu", "-o", 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}',
                 "-o", "num_workers=0", "-o", "epochs=1"]


@pytest.mark.parametrize(
    "extra, problem",
    [
        (["--weights", "random", "-o", "layers=[2,4]", "-o", "img_size=71"],
         "ts-mlp: img_size 71 is not a multiple of the patch size 14"),
        (["--weights", "random", "-o", "img_size=70", "-o", "layers=[2,5]"],
         "ts-mlp: layers [2, 5] exceed the teacher's depth 4"),
        (["--weights", "random", "-o", "img_size=70", "-o", "layers=[2,4]", "-o", "teacher=no_such_vit"],
         "ts-mlp: cannot create teacher 'no_such_vit'"),
        (["--weights", "no-such-weights.safetensors", "-o", "img_size=70", "-o", "layers=[2,4]"],
         "no-such-weights.safetensors: weight file not found"),
        (["--weights", "random", "-o", "img_size=70", "-o", "layers=[2,4]", "--device", "gpu"],
         "unknown device 'gpu'"),
        # Before: found only when the features first spilled to disk, in the middle of the first fit.
        (["--weights", "random", "-o", "img_size=70", "-o", "layers=[2,4]", "-o", "tmp_dir=no-such-spill"],
         "tmp_dir no-such-spill: no such folder"),
        # Before: found when the teacher was built, after the 164 MB default dataset had been generated.
        (["--weights", "pretrained", "-o", "img_size=70", "-o", "layers=[2,4]"],
         "could not load pretrained weights for vit_small_patch14_reg4_dinov2.lvd142m (the Hugging Face hub is "
         "unreachable and no cached copy was found)"),
    ],
)
def test_options_that_only_the_model_can_check_are_refused_before_the_dataset_is_made(
    tmp_path, capsys, monkeypatch, extra, problem
):
    # Before: the default synthetic dataset was generated (or a --root dataset read) before the method was built.
    import huggingface_hub.constants
    import huggingface_hub.file_download

    import adbench_hr.datasets
    from adbench_hr.methods import _backbone

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # empty
    # Older huggingface_hub (0.20) reads its own copy of the name, imported from constants, when looking up the cache.
    monkeypatch.setattr(huggingface_hub.file_download, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setattr(_backbone, "_hub_reachable", lambda timeout_s=3.0: False)

    def no_dataset(*args, **kwargs):
        raise AssertionError("the dataset was generated before the options were checked")

    monkeypatch.setattr(adbench_hr.datasets, "default_synthetic_root", no_dataset)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--method", "ts-mlp", "--out", str(tmp_path / "runs"), "--quiet", *_TINY_TEACHER, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and problem in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override", ['"img_size":28', '"in_chans":1'])
def test_teacher_kwargs_that_change_the_input_the_teacher_takes_are_refused_before_the_dataset_is_read(
    tmp_path, capsys, override
):
    # Before: accepted, then a traceback from the teacher's first batch once the dataset had been read.
    kwargs = '{"depth":4,"embed_dim":48,"num_heads":2,' + override + "}"
    assert main(["run", "--method", "ts-mlp", "--root", str(tmp_path / "no-such-dataset"), "--out",
                 str(tmp_path / "runs"), "--weights", "random", "--preset", "fast", "--device", "cpu",
                 "-o", "img_size=70", "-o", "layers=[2,4]", "-o", f"teacher_kwargs={kwargs}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ts-mlp: teacher 'vit_small_patch14_reg4_dinov2.lvd142m' with teacher_kwargs")
    assert "at img_size 70 does not take a 70 x 70 RGB input" in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()


def test_patchcore_backbone_of_another_input_size_is_refused_before_the_dataset_is_read(tmp_path, capsys):
    # A ViT takes its own input size only; before, timm's assertion ended the fit's first batch in a traceback.
    args = ["run", "--method", "patchcore", "--root", str(tmp_path / "no-such-dataset"), "--out",
            str(tmp_path / "runs"), "--weights", "random", "--device", "cpu", "-o", "backbone=vit_tiny_patch16_224",
            "-o", "layers=[5,8]"]
    assert main([*args, "-o", "input_size=256"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: patchcore: backbone 'vit_tiny_patch16_224' at input_size 256 does not take a "
                          "256 x 256 RGB input (") and "\n" not in err, err
    assert main(args) == 2  # the ViT's own 224 passes the check; then the dataset is missing
    assert "no-such-dataset" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_patchcore_layers_its_backbone_lacks_are_refused_before_the_dataset_is_read(tmp_path, capsys):
    assert main(["run", "--method", "patchcore", "--root", str(tmp_path / "no-such-dataset"), "--out",
                 str(tmp_path / "runs"), "--weights", "random", "--device", "cpu", "-o", "backbone=resnet18",
                 "-o", 'layers=["layer2","layer9"]']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: patchcore: backbone 'resnet18' has no feature layer 'layer9'") and "\n" not in err


def test_a_method_option_given_twice_is_warned_about(tmp_path, capsys):
    assert main(["run", "--method", "ts-mlp", "--root", str(tmp_path / "no-such-dataset"), "--out",
                 str(tmp_path / "runs"), *TINY_METHOD_OPTIONS, "-o", "epochs=3", "-o", "layers=[4,2]"]) == 2
    err = capsys.readouterr().err
    assert "warning: method option epochs is given twice (2, then 3); the last one, 3, is used" in err
    assert err.strip().splitlines()[-1].startswith("error: ts-mlp: layers must be two 1-based block numbers")


def test_categories_may_be_comma_separated(finished_copy, tiny_synthetic_root, capsys):
    out = finished_copy
    categories = ["--category", "wood_grain, brushed_metal", "--category", "wood_grain"]
    assert run_tiny(tiny_synthetic_root, out, *categories) == 0
    printed = capsys.readouterr().out
    # Each named category once, in the order given.
    assert printed.index("wood_grain: already finished") < printed.index("brushed_metal: already finished")
    assert printed.count("already finished") == 2
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain,no_such") == 2
    assert "unknown category 'no_such'" in capsys.readouterr().err


def test_categories_may_be_listed_after_one_option(finished_copy, tiny_synthetic_root, capsys):
    # The spec's `--category C ...`: several names after one option, as a shell glob or a pasted list gives.
    out = finished_copy
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "brushed_metal", "wood_grain") == 0
    printed = capsys.readouterr().out
    assert printed.index("wood_grain: already finished") < printed.index("brushed_metal: already finished")
    assert printed.count("already finished") == 2
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "no_such") == 2
    assert "unknown category 'no_such'" in capsys.readouterr().err
    # Without --category a stray word is still a usage error, not a category.
    assert run_tiny(tiny_synthetic_root, out, "wood_grain", "pcb") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: Got unexpected extra arguments (wood_grain pcb)"


def test_options_that_change_no_map_value_resume(finished_run, finished_copy, tiny_synthetic_root, tmp_path, capsys):
    out = finished_copy
    # A new temporary folder after a full disk, fewer threads, a smaller RAM budget: the same maps.
    (tmp_path / "spill").mkdir()
    assert run_tiny(tiny_synthetic_root, out, "-o", f"tmp_dir={tmp_path / 'spill'}", "-o", "num_workers=1",
                    "-o", "feature_ram_gib=0.5", "-o", "feature_gpu_fraction=0") == 0
    assert capsys.readouterr().out.count("already finished, skipped") == 2
    # A category resumed from its checkpoint runs with the new values, and its result records them.
    (out / "ts-mlp" / "synthetic" / "results" / "wood_grain.json").unlink()
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "-o", "num_workers=1") == 0
    resumed = results_of(out)["wood_grain"]
    assert resumed["fit_reused_checkpoint"] is True and resumed["method_options"]["num_workers"] == 1
    # The leaderboard reads the method's resource options from the result: not settings of their own.
    assert resumed["resource_options"] == ["feature_gpu_fraction", "feature_ram_gib", "num_workers", "tmp_dir"]
    assert resumed["metrics"] == results_of(finished_run)["wood_grain"]["metrics"]
    # The teacher's batch size may round features otherwise: other settings.
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "-o", "feature_batch_size=2") == 0
    assert "already finished" not in capsys.readouterr().out


def test_score_refuses_maps_that_an_interrupted_run_left_half_rewritten(finished_run, tiny_synthetic_root, tmp_path,
                                                                       capsys, monkeypatch):
    import adbench_hr.runner as runner

    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    maps = out / "ts-mlp" / "synthetic" / "maps"
    real_write_map, written = runner.write_map, []

    def interrupted_after_two_maps(path, anomaly_map, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt
        real_write_map(path, anomaly_map, **kwargs)
        written.append(path)

    monkeypatch.setattr(runner, "write_map", interrupted_after_two_maps)
    # Other settings rewrite wood_grain's maps: two new maps beside the old ones, then Ctrl-C.
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "-o", "lr=2e-4") == 130
    monkeypatch.setattr(runner, "write_map", real_write_map)
    capsys.readouterr()
    score = ["score", "--maps", str(maps), "--root", str(tiny_synthetic_root), "--category", "wood_grain",
             "--method", "mixed", "--out", str(tmp_path / "scored.json"), "--quiet"]
    assert main(score) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {maps / 'wood_grain'}: these maps are being written, or were left half-written by an "
                   "interrupted `adbench-hr run` (some may come from other settings): finish that run, then score")
    # Finishing the run clears the mark; the other category's maps were never marked.
    assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain", "-o", "lr=2e-4") == 0
    assert not (maps / "wood_grain" / ".incomplete").exists() and not (maps / "brushed_metal" / ".incomplete").exists()
    assert main(score) == 0


def test_a_skipped_category_has_the_leftovers_of_killed_runs_cleared(finished_run, tiny_synthetic_root, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    checkpoints = out / "ts-mlp" / "synthetic" / "checkpoints"
    # A run of other settings killed while it saved its checkpoint (a private temporary folder).
    leftover = checkpoints / f".wood_grain-{'a' * 16}-{'b' * 16}.safetensors.k1ll3d.part"
    leftover.mkdir()
    (leftover / "half.safetensors").write_bytes(b"half")
    other = checkpoints / f".wood_grain-x-{'a' * 16}-{'b' * 16}.safetensors.live.part"  # category wood_grain-x
    other.mkdir()
    # A run killed right after it marked the maps, before it removed the results: no map changed yet.
    stale_mark = out / "ts-mlp" / "synthetic" / "maps" / "brushed_metal" / ".incomplete"
    stale_mark.write_text("")
    assert run_tiny(tiny_synthetic_root, out) == 0
    assert capsys.readouterr().out.count("already finished, skipped") == 2
    assert not leftover.exists() and other.exists() and not stale_mark.exists()


def test_a_readable_checkpoint_the_method_refuses_is_fitted_again(finished_run, tiny_synthetic_root, tmp_path,
                                                                  capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    folder = out / "ts-mlp" / "synthetic"
    (checkpoint,) = (folder / "checkpoints").glob("wood_grain-*.safetensors")
    with safe_open(str(checkpoint), framework="pt") as handle:  # as another code version might have saved it
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys() if not key.startswith("forward_net.")}
    save_file(tensors, str(checkpoint), metadata=metadata)
    (folder / "results" / "wood_grain.json").unlink()
    capsys.readouterr()
    assert run_tiny(tiny_synthetic_root, out) == 0
    err = capsys.readouterr().err
    assert f"warning: {checkpoint}: unusable checkpoint (student weights do not match the options" in err
    resumed, clean = results_of(out), results_of(finished_run)
    assert resumed["wood_grain"]["fit_reused_checkpoint"] is False
    assert resumed["wood_grain"]["metrics"] == clean["wood_grain"]["metrics"]


@pytest.mark.parametrize("empty", ["", ",", " "])
def test_an_empty_category_option_is_an_error_not_every_category(tiny_synthetic_root, tmp_path, capsys, empty):
    assert run_tiny(tiny_synthetic_root, tmp_path / "runs", "--category", empty) == 2
    assert capsys.readouterr().err.strip() == (f"error: --category {empty!r} names no category (leave the option "
                                               "out for all)")
    assert not (tmp_path / "runs").exists()


def test_a_skipped_category_that_another_run_holds_is_left_alone(finished_run, tiny_synthetic_root, tmp_path, capsys):
    from adbench_hr.fileio import release_lock, try_exclusive_lock

    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    folder = out / "ts-mlp" / "synthetic"
    live = folder / "checkpoints" / f".wood_grain-{'a' * 16}-{'b' * 16}.safetensors.live.part"
    live.mkdir()  # the temporary of a run that is saving its checkpoint now
    with (folder / ".locks" / "wood_grain.lock").open("a") as handle:  # that run's lock
        assert try_exclusive_lock(handle)
        try:
            assert run_tiny(tiny_synthetic_root, out, "--category", "wood_grain") == 0
        finally:
            release_lock(handle)
    assert "wood_grain: already finished" in capsys.readouterr().out and live.exists()


@pytest.mark.parametrize("lost", ["a defective image's map", "image_scores.csv"])
def test_a_finished_category_that_lost_a_map_is_run_again(finished_copy, finished_run, tiny_synthetic_root, capsys,
                                                          lost):
    maps = finished_copy / "ts-mlp" / "synthetic" / "maps" / "brushed_metal"
    if lost != "image_scores.csv":
        lost = next(p for p in sorted(maps.rglob("*.tiff")) if "good" not in p.parts).relative_to(maps).as_posix()
    (maps / lost).unlink()  # deleted by hand: the result must not stay "finished" beside a missing map
    assert run_tiny(tiny_synthetic_root, finished_copy) == 0
    out, err = capsys.readouterr()
    assert out.count("already finished, skipped") == 1  # wood_grain only
    assert f"warning: {maps / lost}: missing, so the finished category 'brushed_metal' is run again" in err
    assert (maps / lost).read_bytes() == (finished_run / "ts-mlp/synthetic/maps/brushed_metal" / lost).read_bytes()
    resumed = results_of(finished_copy)["brushed_metal"]
    assert resumed["fit_reused_checkpoint"] is True
    assert resumed["metrics"] == results_of(finished_run)["brushed_metal"]["metrics"]
