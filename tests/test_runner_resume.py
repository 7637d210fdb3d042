"""Resuming ``run``: which result files count as a finished category (``adbench_hr.runner.finished_results``)."""

from __future__ import annotations

import os

import pytest

from adbench_hr.fileio import write_json_atomic
from adbench_hr.results import build_result, write_result
from adbench_hr.runner import RunConfig, _invalidate_results, finished_results

# Every metric of the schema, null (undefined): the least a result must hold to count as finished.
METRICS = {key: None for key in ("i_auroc", "p_auroc", "aupro", "aupro_cumulative", "aupro_quartile",
                                 "aupro_by_area", "rho", "size_quartiles_px", "n_images", "n_defective_images",
                                 "n_defects")}


def _config(tmp_path, **changes) -> RunConfig:
    settings = dict(method="ts-mlp", method_options={"epochs": 2}, dataset_name="synthetic", out_dir=tmp_path,
                    lowres_eval_size=None, dataset_root=tmp_path / "data")
    settings.update(changes)
    return RunConfig(**settings)


def _write(config: RunConfig, protocol: str = "full", metrics: dict | None = None, run_key: str | None = None):
    result = build_result(method=config.method, dataset=config.dataset_name, category="c",
                          protocol={"name": protocol}, metrics=dict(METRICS if metrics is None else metrics),
                          run_key=config.run_key if run_key is None else run_key)
    # Written as it is, unchecked: some results here are incomplete on purpose (hand-edited, or foreign).
    write_json_atomic(config.result_path("c", protocol), result)


def test_a_result_of_the_same_settings_is_finished(tmp_path) -> None:
    config = _config(tmp_path)
    assert finished_results(config, "c") is None
    _write(config)
    assert [r["run_key"] for r in finished_results(config, "c")] == [config.run_key]


def test_a_result_without_the_headline_metrics_is_not_finished(tmp_path) -> None:
    config = _config(tmp_path)
    _write(config, metrics={"i_auroc": 0.5})  # hand-edited or foreign: no aupro, rho ...
    assert finished_results(config, "c") is None


def test_other_settings_or_a_missing_lowres_result_are_not_finished(tmp_path) -> None:
    config = _config(tmp_path)
    _write(config)
    assert finished_results(_config(tmp_path, method_options={"epochs": 3}), "c") is None
    assert finished_results(_config(tmp_path, dataset_root=tmp_path / "other"), "c") is None
    with_lowres = _config(tmp_path, lowres_eval_size=256)
    assert with_lowres.run_key == config.run_key  # the lowres protocol does not change the maps
    assert finished_results(with_lowres, "c") is None  # but its result is missing
    _write(with_lowres, protocol="lowres")
    assert len(finished_results(with_lowres, "c")) == 2


def test_rewriting_the_maps_removes_the_results_of_every_lowres_size(tmp_path) -> None:
    # Results of an earlier run at another --lowres-eval-size describe the same maps: they go too.
    for size in (None, 128, 256):
        _write(_config(tmp_path, lowres_eval_size=size), protocol="lowres" if size else "full")
    results = tmp_path / "ts-mlp" / "synthetic" / "results"
    assert sorted(p.name for p in results.iterdir()) == ["c.json", "c.lowres128.json", "c.lowres256.json"]
    _write(_config(tmp_path), protocol="full")
    (results / "other.lowres128.json").write_text("{}")  # another category stays
    _invalidate_results(_config(tmp_path, lowres_eval_size=256), "c")
    assert sorted(p.name for p in results.iterdir()) == ["other.lowres128.json"]


def test_the_device_index_does_not_change_the_run_key(tmp_path) -> None:
    def key(device: str) -> str:
        return _config(tmp_path, method_options={"epochs": 2, "device": device}).run_key

    assert key("cpu:0") == key("cpu") != key("cuda")
    assert key("cuda:1") == key("cuda:0") == key("cuda")


def test_a_result_of_other_data_files_is_not_finished(tmp_path) -> None:
    config = _config(tmp_path)
    result = build_result(method=config.method, dataset=config.dataset_name, category="c", protocol={"name": "full"},
                          metrics=dict(METRICS), run_key=config.run_key, data_fingerprint="0123456789abcdef")
    write_result(config.result_path("c"), result)
    assert [r["run_key"] for r in finished_results(config, "c", "0123456789abcdef")] == [config.run_key]
    assert finished_results(config, "c", "fedcba9876543210") is None


def test_data_fingerprint_follows_names_sizes_and_modification_times(tmp_path) -> None:
    import os

    from adbench_hr.datasets.base import TestSample
    from adbench_hr.runner import data_fingerprint

    image, mask = tmp_path / "000.png", tmp_path / "000_mask.png"
    image.write_bytes(b"a" * 10)
    mask.write_bytes(b"m" * 4)
    for path in (image, mask):  # fixed times: each change below alters one thing only
        os.utime(path, ns=(10**18, 10**18))
    sample = TestSample(image, mask, 1, "crack", "test/crack/000")
    first = data_fingerprint([sample])
    assert data_fingerprint([sample]) == first
    assert data_fingerprint([sample, TestSample(image, None, 0, "good", "test/good/000")]) != first  # added
    # The same files under another sample id (a renamed defect folder): another test set.
    assert data_fingerprint([TestSample(image, mask, 1, "crack", "test/scratch/000")]) != first
    moved = tmp_path / "elsewhere.png"  # the same bytes and time under another file name
    moved.write_bytes(b"a" * 10)
    os.utime(moved, ns=(10**18, 10**18))
    assert data_fingerprint([TestSample(moved, mask, 1, "crack", "test/crack/000")]) != first
    mask.write_bytes(b"m" * 5)  # an edited mask: another size, the same time
    os.utime(mask, ns=(10**18, 10**18))
    assert data_fingerprint([sample]) != first
    mask.write_bytes(b"m" * 4)
    os.utime(mask, ns=(10**18, 10**18))
    assert data_fingerprint([sample]) == first  # size and time as before: nothing tells them apart
    os.utime(mask, ns=(1, 1))  # same size, other time: replaced by a copy of other content
    assert data_fingerprint([sample]) != first


def test_a_replaced_weight_file_changes_the_run_key(tmp_path) -> None:
    import os

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x" * 8)
    with_file = _config(tmp_path, input_files=[weights])
    key = with_file.run_key
    assert key != _config(tmp_path).run_key
    weights.write_bytes(b"y" * 9)
    resized = _config(tmp_path, input_files=[weights]).run_key
    assert resized != key
    os.utime(weights, ns=(5, 5))
    assert _config(tmp_path, input_files=[weights]).run_key not in (key, resized)


def test_leftovers_of_a_category_are_cleared_but_not_those_of_similar_names(tmp_path) -> None:
    from adbench_hr.runner import _clear_leftovers

    config = _config(tmp_path)
    key = config.run_key
    own = [f"checkpoints/.metal-{key}-0123456789abcdef.safetensors.x1y2.part", "results/.metal.json.ab12.part",
           f"checkpoints/.metal-{key}.safetensors.x1y2.part",  # named before checkpoints had a data part
           "results/.metal.lowres256.json.cd34.part", "maps/metal/test/crack/.000.tiff.ef56.part"]
    others = [f"checkpoints/.metal-x-{key}-0123456789abcdef.safetensors.x1y2.part",  # another live run
              "results/.metal.v2.json.ab12.part", "results/.metal-x.json.ab12.part",
              "maps/metal-x/test/crack/.000.tiff.ef56.part"]
    for name in own + others:
        path = config.folder() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    _clear_leftovers(config, "metal")
    assert [n for n in own + others if (config.folder() / n).exists()] == others


def test_a_new_release_of_adbench_hr_changes_the_run_key(tmp_path, monkeypatch) -> None:
    # Its code computes the built-in methods' maps and every metric: a run resumed after an upgrade must not
    # keep the old version's finished categories (and checkpoints) beside the new version's.
    import adbench_hr

    old = _config(tmp_path).run_key
    monkeypatch.setattr(adbench_hr, "__version__", "99.0.0")
    assert _config(tmp_path).run_key != old


def test_a_new_release_of_a_plugin_changes_the_run_key(tmp_path) -> None:
    old = _config(tmp_path, method_package={"gray-tools": "0.3.1"}).run_key
    assert _config(tmp_path, method_package={"gray-tools": "0.4.0"}).run_key != old
    assert _config(tmp_path).run_key == _config(tmp_path, method_package={}).run_key  # built-ins: as before


def test_a_finished_category_keeps_only_its_current_checkpoint_and_not_others_of_similar_names(tmp_path) -> None:
    from adbench_hr.runner import _remove_other_checkpoints

    config = _config(tmp_path)
    folder = config.folder() / "checkpoints"
    folder.mkdir(parents=True)
    hex16 = "0123456789abcdef"
    current = folder / f"metal-{config.run_key}-{hex16}.safetensors"
    outdated = [folder / f"metal-{hex16}-{'f' * 16}.safetensors", folder / f"metal-{hex16}.safetensors"]
    others = [folder / f"metal-x-{hex16}-{hex16}.safetensors", folder / f"metal.v2-{hex16}-{hex16}.safetensors",
              folder / "metal-notes.safetensors"]
    for path in [current, *outdated, *others]:
        path.write_bytes(b"")
    _remove_other_checkpoints(config, "metal", current)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in [current, *others])


def test_an_outdated_checkpoint_that_cannot_be_removed_is_a_warning_and_the_others_still_go(tmp_path) -> None:
    # Housekeeping after the category's results are written: failing it must not fail the run. Here a folder holds
    # an outdated checkpoint's name (unlink refuses folders); on another OS it may be a file without permission.
    from adbench_hr.errors import AdbenchWarning
    from adbench_hr.runner import _remove_other_checkpoints

    config = _config(tmp_path)
    folder = config.folder() / "checkpoints"
    hex16 = "0123456789abcdef"
    stuck = folder / f"metal-{hex16}-{'e' * 16}.safetensors"
    stuck.mkdir(parents=True)
    outdated = folder / f"metal-{hex16}-{'f' * 16}.safetensors"
    outdated.write_bytes(b"")
    with pytest.raises(OSError) as refused:  # the system's own words for it ("Is a directory" on Linux)
        os.unlink(stuck)
    with pytest.warns(AdbenchWarning) as record:
        _remove_other_checkpoints(config, "metal", None)
    assert [str(w.message) for w in record] == [
        f"{stuck}: cannot remove an outdated checkpoint ({refused.value.strerror})"]
    assert [p.name for p in folder.iterdir()] == [stuck.name]


@pytest.mark.parametrize("content", [b"", b'{"schema": "adbench-hr/result/v1", "method"', b"\xff\xfe\x00not utf-8",
                                     b"[1, 2]", b'{"schema": "adbench-hr/result/v0"}'])
def test_an_unreadable_or_foreign_result_file_is_not_finished(tmp_path, content) -> None:
    # A file a crash or a disk error left damaged (or another kind of file) is recomputed, never taken as done.
    config = _config(tmp_path)
    config.result_path("c").parent.mkdir(parents=True)
    config.result_path("c").write_bytes(content)
    assert finished_results(config, "c") is None
    with_lowres = _config(tmp_path, lowres_eval_size=64)  # a valid full result beside a damaged lowres one
    _write(with_lowres)
    with_lowres.result_path("c", "lowres").write_bytes(content)
    assert finished_results(with_lowres, "c") is None


@pytest.mark.parametrize("missing", sorted(METRICS))
def test_a_result_lacking_any_headline_metric_is_not_finished(tmp_path, missing) -> None:
    config = _config(tmp_path)
    _write(config, metrics={key: None for key in METRICS if key != missing})
    assert finished_results(config, "c") is None


def test_the_run_key_reads_a_relative_dataset_root_as_the_folder_it_names(tmp_path, monkeypatch) -> None:
    for place in ("a", "b"):
        (tmp_path / place / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    relative = _config(tmp_path, dataset_root="data")
    assert relative.run_key == _config(tmp_path, dataset_root=(tmp_path / "a" / "data").resolve()).run_key
    monkeypatch.chdir(tmp_path / "b")  # the same words from elsewhere name another data set
    assert _config(tmp_path, dataset_root="data").run_key != relative.run_key


def _leftovers_of_killed_runs(config: RunConfig) -> list:
    paths = [config.folder() / "checkpoints" / f".c-{'a' * 16}-{'b' * 16}.safetensors.k1ll3d.part",
             config.folder() / "results" / ".c.json.k1ll3d.part",
             config.maps_dir() / "c" / ".incomplete"]  # a stale mark of a run killed before any map changed
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return paths


def test_a_skipped_category_is_not_tidied_where_its_lock_state_is_unknown(tmp_path, monkeypatch) -> None:
    import errno
    import fcntl

    from adbench_hr.runner import _tidy_finished_category

    config = _config(tmp_path)
    paths = _leftovers_of_killed_runs(config)

    def no_locks(handle, operation):  # NFS without a lock daemon: a live run may own these files
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    _tidy_finished_category(config, "c")
    assert all(path.exists() for path in paths)
    monkeypatch.undo()
    _tidy_finished_category(config, "c")  # with a lock taken, they go
    assert not any(path.exists() for path in paths)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
# Python 3.12+ warns about forking a process with threads (the suite's earlier tests leave some): the child only
# sleeps, as a data-loader worker would, and exits without touching a lock or a thread's state.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_category_lock_is_free_once_left_even_while_workers_forked_under_it_live(tmp_path) -> None:
    import signal
    import time

    from adbench_hr.fileio import release_lock, try_exclusive_lock
    from adbench_hr.runner import _lock_path, _try_category_lock

    config = _config(tmp_path)
    with _try_category_lock(config, "c") as locked:
        assert locked is True
        child = os.fork()  # a data-loader worker, forked while the lock is held, that outlives the category
        if child == 0:
            time.sleep(60)
            os._exit(0)
    try:
        with _lock_path(config, "c").open("a") as handle:
            assert try_exclusive_lock(handle)  # a second run may now take the category
            release_lock(handle)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_the_data_fingerprint_does_not_depend_on_how_the_root_is_spelled(tiny_synthetic_root, tmp_path,
                                                                         monkeypatch) -> None:
    # A run given `--root data` and resumed with `--root /abs/data` (or through a link) reads the same files:
    # the fingerprint must match, or the finished category is fitted again and its checkpoint deleted.
    from adbench_hr.datasets import open_dataset
    from adbench_hr.runner import category_data

    def fingerprints(root) -> tuple[str, str]:
        data = category_data(open_dataset("synthetic", root), "wood_grain")
        return data.train_fingerprint, data.fingerprint

    absolute = fingerprints(tiny_synthetic_root)
    monkeypatch.chdir(tiny_synthetic_root.parent)
    assert fingerprints(tiny_synthetic_root.name) == absolute
    (tmp_path / "link").symlink_to(tiny_synthetic_root, target_is_directory=True)
    assert fingerprints(tmp_path / "link") == absolute
