"""Where the built-in synthetic dataset is cached, and `datasets check --dataset synthetic` without `--root`.

docs/cli.md: generated once into `$ADBENCH_HR_CACHE` (default `$XDG_CACHE_HOME/adbench-hr/`, else
`~/.cache/adbench-hr/`); docs/datasets.md: the copy lives in `<cache>/synthetic-v1-seed0/` and is generated on
first use. No test here generates the full-size dataset: a prepared tiny copy stands in for it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adbench_hr.cli.main import main
from adbench_hr.datasets import synthetic as S
from adbench_hr.errors import InputError

DEFAULT_FOLDER = "synthetic-v1-seed0"  # docs/datasets.md


@pytest.fixture
def clean_env(tmp_path, monkeypatch) -> Path:
    """A fresh HOME with both cache variables unset; returns the HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ADBENCH_HR_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return home


def test_cache_is_home_dot_cache_without_either_variable(clean_env):
    assert S.cache_dir() == clean_env / ".cache" / "adbench-hr"


def test_xdg_cache_home_is_respected(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert S.cache_dir() == tmp_path / "xdg" / "adbench-hr"


def test_adbench_hr_cache_wins_over_xdg(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(tmp_path / "mine"))
    assert S.cache_dir() == tmp_path / "mine"  # the folder itself, no "adbench-hr" appended


@pytest.mark.parametrize("variable", ["ADBENCH_HR_CACHE", "XDG_CACHE_HOME"])
def test_an_empty_variable_counts_as_unset(clean_env, monkeypatch, variable):
    # An empty XDG_CACHE_HOME means the default, as the XDG base directory specification says; an empty
    # ADBENCH_HR_CACHE must not put the cache into the current folder.
    monkeypatch.setenv(variable, "")
    assert S.cache_dir() == clean_env / ".cache" / "adbench-hr"


def test_a_relative_xdg_cache_home_is_ignored(clean_env, monkeypatch):
    # The XDG base directory specification: relative paths are invalid and are to be ignored.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert S.cache_dir() == clean_env / ".cache" / "adbench-hr"


def _prepare(cache: Path, tiny_synthetic_root: Path) -> Path:
    """Put the tiny synthetic dataset where the default dataset is looked for."""
    root = cache / DEFAULT_FOLDER
    shutil.copytree(tiny_synthetic_root, root)
    return root


def _no_generation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the cached dataset must be used, not generated again")

    monkeypatch.setattr(S, "generate_synthetic", refuse)


def test_default_root_is_in_the_xdg_cache(clean_env, tmp_path, monkeypatch, tiny_synthetic_root):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = _prepare(tmp_path / "xdg" / "adbench-hr", tiny_synthetic_root)
    _no_generation(monkeypatch)
    assert S.default_synthetic_root() == root


def test_default_root_is_under_home_without_variables(clean_env, monkeypatch, tiny_synthetic_root):
    root = _prepare(clean_env / ".cache" / "adbench-hr", tiny_synthetic_root)
    _no_generation(monkeypatch)
    assert S.default_synthetic_root() == root


def test_check_without_root_reads_the_cached_synthetic_dataset(clean_env, tmp_path, monkeypatch, capsys,
                                                               tiny_synthetic_root):
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(tmp_path / "cache"))
    root = _prepare(tmp_path / "cache", tiny_synthetic_root)
    _no_generation(monkeypatch)
    assert main(["datasets", "check", "--dataset", "synthetic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # tests/conftest.py's TINY_SYNTHETIC: 2 categories, each 4 train, 2 good and 4 defective test images.
    assert sorted(report) == ["brushed_metal", "wood_grain"]
    for counts in report.values():
        assert (counts["n_train"], counts["n_test_good"], counts["n_test_defective"]) == (4, 2, 4)
    assert main(["datasets", "check", "--dataset", "synthetic", "--category", "wood_grain"]) == 0
    out = capsys.readouterr().out
    assert f"root: {root}" in out and "wood_grain" in out and "brushed_metal" not in out


def test_check_without_root_generates_the_dataset_once_into_the_cache(clean_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    calls = []
    real = S.generate_synthetic

    def small(out, **kwargs):  # the default dataset, shrunk: one 96 px category, 2 + 1 + 2 images
        calls.append(Path(out))
        return real(out, seed=kwargs.get("seed", 0), size=96, categories=["pcb"], counts=(2, 1, 2), workers=1)

    monkeypatch.setattr(S, "generate_synthetic", small)
    assert main(["datasets", "check", "--dataset", "synthetic", "--json"]) == 0
    expected_root = tmp_path / "xdg" / "adbench-hr" / DEFAULT_FOLDER
    assert calls == [expected_root] and (expected_root / "meta.json").is_file()
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["pcb"] and (report["pcb"]["n_train"], report["pcb"]["n_test_defective"]) == (2, 2)
    assert main(["datasets", "check", "--dataset", "synthetic", "--json"]) == 0
    assert len(calls) == 1  # cached: not generated again


def test_check_without_root_of_another_layout_asks_for_root(clean_env, capsys):
    for dataset in ("mvtec_ad", "folder", "visa"):
        assert main(["datasets", "check", "--dataset", dataset]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "--root" in err[0]
    assert not (clean_env / ".cache").exists()  # nothing generated


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_cache_variable_naming_a_file_is_an_error_naming_the_variable(clean_env, tmp_path, monkeypatch, capsys):
    # Before: "error: FILE/synthetic-v1-seed0: cannot create the output folder (File exists)".
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(afile))
    assert main(["datasets", "check", "--dataset", "synthetic"]) == 2
    assert _one_error(capsys) == f"error: {afile}: ADBENCH_HR_CACHE names a file, not a folder"
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(afile / "sub"))
    assert main(["datasets", "check", "--dataset", "synthetic"]) == 2
    assert _one_error(capsys) == f"error: {afile}: ADBENCH_HR_CACHE {afile / 'sub'} lies inside a file"
    monkeypatch.delenv("ADBENCH_HR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(afile))
    assert main(["datasets", "check", "--dataset", "synthetic"]) == 2
    assert _one_error(capsys) == f"error: {afile}: XDG_CACHE_HOME names a file, not a folder"
    assert afile.read_text() == "not a folder"


def test_a_broken_link_as_the_cache_is_named(clean_env, tmp_path, monkeypatch):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(link))
    with pytest.raises(InputError, match="ADBENCH_HR_CACHE names a broken symbolic link") as info:
        S.default_synthetic_root()
    assert info.value.path == link


def test_a_damaged_cached_dataset_stops_check_and_run(clean_env, tmp_path, monkeypatch, capsys, tiny_synthetic_root):
    # Before: an image deleted from the cache made a smaller benchmark without a word. Like a copy without
    # meta.json (an incomplete one), the folder is not deleted behind the user's back: the error says to.
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(tmp_path / "cache"))
    root = _prepare(tmp_path / "cache", tiny_synthetic_root)
    _no_generation(monkeypatch)
    (root / "wood_grain" / "test" / "good" / "000.png").unlink()
    expected = (f"error: {root}: the synthetic dataset differs from its meta.json: wood_grain/test/good holds 1 "
                "image file(s), meta.json records 2; delete the folder, and it is generated again on next use")
    assert main(["datasets", "check", "--dataset", "synthetic"]) == 2
    assert _one_error(capsys) == expected
    assert main(["run", "--method", "ts-mlp", "--device", "cpu", "--weights", "random", "--out",
                 str(tmp_path / "out"), "--quiet"]) == 2
    assert _one_error(capsys) == expected
    assert not (tmp_path / "out").exists()


def test_no_home_folder_at_all_is_one_error_asking_for_the_cache_variable(clean_env, monkeypatch, capsys):
    # HOME unset and a user without an entry in the user database (`docker run --user 12345`): Path.home()
    # raises RuntimeError, which ended `run` and `datasets check` without --root in a traceback.
    import pwd

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("HOME")
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert main(["datasets", "check", "--dataset", "synthetic"]) == 2
    error = _one_error(capsys)
    assert "HOME is not set" in error and "ADBENCH_HR_CACHE" in error
    with pytest.raises(InputError, match="set ADBENCH_HR_CACHE"):
        S.cache_dir()


def test_an_incomplete_cached_dataset_is_named_and_left_for_the_user_to_delete(clean_env, tmp_path, monkeypatch,
                                                                               capsys, tiny_synthetic_root):
    # A copy without meta.json (a generation killed before the rename, an interrupted copy): neither used
    # nor deleted behind the user's back.
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(tmp_path / "cache"))
    root = _prepare(tmp_path / "cache", tiny_synthetic_root)
    (root / "meta.json").unlink()
    _no_generation(monkeypatch)
    assert main(["datasets", "check", "--dataset", "synthetic"]) == 2
    expected = f"error: {root}: cached synthetic dataset is incomplete (no meta.json); delete the folder"
    assert _one_error(capsys) == expected
    assert (root / "wood_grain").is_dir()
    shutil.rmtree(root)
    root.mkdir()  # an empty folder is no copy: the dataset is generated into it
    generated = []
    monkeypatch.setattr(S, "generate_synthetic", lambda out, **kwargs: generated.append(out) or out)
    assert S.default_synthetic_root() == root and generated == [root]


def test_a_cache_another_process_generated_first_is_used(clean_env, tmp_path, monkeypatch, tiny_synthetic_root):
    # Two first uses at once: the one whose rename comes second fails, and reads the other's complete copy.
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cache" / DEFAULT_FOLDER

    def other_process_first(out, **kwargs):
        shutil.copytree(tiny_synthetic_root, out)
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(S, "generate_synthetic", other_process_first)
    assert S.default_synthetic_root() == root

    def fails(out, **kwargs):
        raise OSError(28, "No space left on device")

    shutil.rmtree(root)
    monkeypatch.setattr(S, "generate_synthetic", fails)
    with pytest.raises(OSError, match="No space left"):  # no copy to fall back on: the error stands
        S.default_synthetic_root()


def test_a_damaged_copy_is_refused_with_its_hint_where_no_cache_folder_can_be_located(
    clean_env, monkeypatch, tmp_path, tiny_synthetic_root
):
    # The hint asks whether the copy is the cached one. Without HOME and without an entry in the user database no
    # cache folder exists, so it is not: the copy's own error stands, not "cannot locate the cache folder".
    import pwd

    from adbench_hr.datasets import open_dataset

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    root = tmp_path / "synthetic"
    shutil.copytree(tiny_synthetic_root, root)
    (root / "wood_grain" / "train" / "good" / "003.png").unlink()
    monkeypatch.delenv("HOME")
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(InputError) as info:
        open_dataset("synthetic", root)
    assert info.value.path == root
    assert info.value.problem == (
        "the synthetic dataset differs from its meta.json: wood_grain/train/good holds 3 image file(s), meta.json "
        "records 4; delete the folder and generate it again (adbench-hr datasets synth)"
    )
