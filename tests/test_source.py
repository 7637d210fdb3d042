"""The source fingerprint: what it hashes, what it ignores, and that it names the running code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adbench_hr._source import FINGERPRINT_HEX_DIGITS, source_fingerprint, tree_fingerprint

REPO = Path(__file__).resolve().parents[1]


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _fingerprint(root: Path, files: dict[str, bytes]) -> str:
    return tree_fingerprint([("pkg", _write_tree(root, files))])


BASE = {"a.py": b"x = 1\n", "sub/b.py": b"y = 2\n", "sub/deeper/c.py": b""}


def test_the_same_files_elsewhere_give_the_same_fingerprint(tmp_path):
    first = _fingerprint(tmp_path / "one", BASE)
    assert first == _fingerprint(tmp_path / "somewhere" / "else", dict(reversed(list(BASE.items()))))
    assert len(first) == FINGERPRINT_HEX_DIGITS and int(first, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"a.py": b"x = 2\n"},  # one byte of one file
        {"sub/deeper/c.py": b"\n"},  # an empty file no longer empty
        {"new.py": b""},  # an empty module added
        {"sub/__init__.py": b""},
    ],
)
def test_any_change_to_a_module_changes_it(tmp_path, change):
    assert _fingerprint(tmp_path / "before", BASE) != _fingerprint(tmp_path / "after", {**BASE, **change})


def test_a_renamed_module_or_moved_bytes_change_it(tmp_path):
    base = _fingerprint(tmp_path / "base", BASE)
    renamed = {("z.py" if name == "a.py" else name): content for name, content in BASE.items()}
    assert _fingerprint(tmp_path / "renamed", renamed) != base
    # The same bytes in all, split differently between two files.
    assert _fingerprint(tmp_path / "s1", {"a.py": b"ab", "b.py": b""}) != _fingerprint(
        tmp_path / "s2", {"a.py": b"a", "b.py": b"b"}
    )
    # A file's name running into its content.
    assert _fingerprint(tmp_path / "n1", {"a.py": b"b.py"}) != _fingerprint(tmp_path / "n2", {"a.pyb.py": b""})


def test_compiled_and_other_files_are_not_hashed(tmp_path):
    extra = {
        "__pycache__/a.cpython-311.pyc": b"\x00compiled",
        "sub/__pycache__/b.cpython-312.pyc": b"\x01",
        "py.typed": b"",
        "notes.txt": b"text",
        "sub/data.pyc": b"stray",
    }
    assert _fingerprint(tmp_path / "plain", BASE) == _fingerprint(tmp_path / "extra", {**BASE, **extra})


def test_the_label_and_skipped_folders(tmp_path):
    root = _write_tree(tmp_path / "tree", {**BASE, "zoo/m.py": b"m = 0\n"})
    whole = tree_fingerprint([("pkg", root)])
    assert tree_fingerprint([("other", root)]) != whole
    # A folder skipped in one walk and given as its own pair, under its own label, hashes as if nested.
    assert tree_fingerprint([("pkg", root), ("pkg/zoo", root / "zoo")], skip=["pkg/zoo"]) == whole
    assert tree_fingerprint([("pkg", root)], skip=["pkg/zoo"]) != whole


def test_a_link_to_a_folder_is_not_followed(tmp_path):
    root = _write_tree(tmp_path / "tree", BASE)
    _write_tree(tmp_path / "outside", {"big.py": b"z = 3\n"})
    before = tree_fingerprint([("pkg", root)])
    (root / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert tree_fingerprint([("pkg", root)]) == before


@settings(max_examples=40, deadline=None)
@given(
    files=st.dictionaries(
        st.sampled_from(["a.py", "b.py", "s/c.py", "s/t/d.py"]), st.binary(max_size=20), min_size=1
    ),
    name=st.sampled_from(["a.py", "b.py", "s/c.py", "s/t/d.py"]),
    content=st.binary(max_size=20),
)
def test_two_trees_hash_alike_exactly_when_their_modules_are_alike(tmp_path_factory, files, name, content):
    changed = {**files, name: content}
    same = changed == files
    first = _fingerprint(tmp_path_factory.mktemp("t"), files)
    assert (first == _fingerprint(tmp_path_factory.mktemp("t"), changed)) == same


def test_the_running_code_is_fingerprinted_as_installed_from_a_wheel(tmp_path):
    # A wheel puts the zoo (the checkout's top-level methods/) inside the package folder: hashing that layout in
    # one walk must give what the running adbench-hr reports, wherever its zoo lies.
    installed = tmp_path / "site-packages" / "adbench_hr"
    shutil.copytree(REPO / "adbench_hr", installed, ignore=shutil.ignore_patterns("__pycache__", "methods"))
    shutil.copytree(REPO / "methods", installed / "methods", ignore=shutil.ignore_patterns("__pycache__"))
    assert tree_fingerprint([("adbench_hr", installed)]) == source_fingerprint()
    (installed / "methods" / "ts_mlp.py").write_bytes((REPO / "methods" / "ts_mlp.py").read_bytes() + b"\n")
    assert tree_fingerprint([("adbench_hr", installed)]) != source_fingerprint()


def test_a_tree_without_python_files_has_no_fingerprint(tmp_path):
    root = _write_tree(tmp_path / "compiled", {"__pycache__/a.cpython-311.pyc": b"\x00", "py.typed": b""})
    with pytest.raises(ValueError, match="no Python source files"):
        tree_fingerprint([("pkg", root)])


@pytest.mark.parametrize("failure", [OSError("Permission denied"), ValueError("no Python source files")])
def test_an_unreadable_source_is_fingerprinted_unknown(monkeypatch, failure):
    import adbench_hr._source as source

    def refuse(*args, **kwargs):
        raise failure

    monkeypatch.setattr(source, "tree_fingerprint", refuse)
    source.source_fingerprint.cache_clear()
    try:
        assert source.source_fingerprint() == source.UNKNOWN_FINGERPRINT
    finally:
        source.source_fingerprint.cache_clear()  # the real fingerprint again for the tests that follow
    monkeypatch.undo()
    assert len(source.source_fingerprint()) == FINGERPRINT_HEX_DIGITS


def test_hidden_files_and_folders_are_not_hashed(tmp_path):
    # Never a module, never in a wheel (setuptools ships `*.py`, which skips them): an editor's lock link (Emacs
    # writes `.#name.py`, dangling, while a buffer is unsaved), macOS's `._name.py` beside each file on a foreign
    # volume, Jupyter's `.ipynb_checkpoints/name-checkpoint.py`.
    plain = _fingerprint(tmp_path / "plain", BASE)
    extra = _write_tree(
        tmp_path / "extra", {**BASE, "sub/._b.py": b"\x00\x05", ".ipynb_checkpoints/a-checkpoint.py": b"x = 0\n"}
    )
    (extra / "sub" / ".#b.py").symlink_to(tmp_path / "no-such-file")
    assert tree_fingerprint([("pkg", extra)]) == plain


def test_a_folder_that_cannot_be_listed_fails_rather_than_hashing_part_of_the_tree(tmp_path, monkeypatch):
    import os

    root = _write_tree(tmp_path / "tree", BASE)
    listing = os.scandir

    def refuse_sub(path):
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", refuse_sub)
    with pytest.raises(PermissionError):
        tree_fingerprint([("pkg", root)])
