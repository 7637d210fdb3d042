"""The CLI's output where it is not a UTF-8 terminal: other encodings, and pipes or files that fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def adbench(*argv: str | os.PathLike, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m adbench_hr ARGV`` in a process of its own, with ``env`` added to the environment; output as
    bytes, as the streams wrote them."""
    return subprocess.run([sys.executable, "-m", "adbench_hr", *map(os.fsencode, argv)], capture_output=True,
                          env={**os.environ, **env}, timeout=300, check=False)


def dataset_with_category(source: Path, folder: Path, name: str) -> Path:
    """``folder`` holding the tiny dataset's ``wood_grain`` as category ``name`` (MVTec AD layout)."""
    shutil.copytree(source / "wood_grain", folder / name)
    return folder


def test_a_name_the_output_encoding_lacks_is_escaped_not_a_traceback(tiny_synthetic_root, tmp_path):
    # A CJK category on a Latin-1 output (a legacy locale, a Windows code page, PYTHONIOENCODING): the table was
    # printed up to that row, then a UnicodeEncodeError traceback, exit code 1.
    root = dataset_with_category(tiny_synthetic_root, tmp_path / "data", "木材")
    done = adbench("datasets", "check", "--root", root, "--dataset", "mvtec_ad", PYTHONIOENCODING="latin-1")
    assert (done.returncode, done.stderr) == (0, b"")
    rows = done.stdout.decode("latin-1").splitlines()
    assert rows[2].split() == ["\\u6728\\u6750", "4", "2", "4", "5", "17", "138", "162", "160x120"]


@pytest.mark.skipif(sys.platform != "linux", reason="a file name that is not UTF-8 needs a file system that stores "
                                                     "bytes")
def test_a_path_with_bytes_of_another_encoding_is_escaped_on_a_strict_utf8_output(tiny_synthetic_root, tmp_path):
    # Under a UTF-8 locale such as en_US.UTF-8 (not C.UTF-8, where Python writes such a path back as its bytes),
    # standard output is strict: a folder named in Latin-1 made `datasets check` end in a traceback.
    root = Path(os.fsdecode(bytes(tmp_path / "data") + b"\xff"))
    dataset_with_category(tiny_synthetic_root, root, "wood_grain")
    done = adbench("datasets", "check", "--root", root, "--dataset", "mvtec_ad", PYTHONIOENCODING="utf-8:strict")
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode("utf-8").splitlines()[0] == f"dataset: mvtec_ad  root: {tmp_path / 'data'}\\udcff"
