"""A fingerprint of adbench-hr's own source, recorded beside its version in result files and checkpoints.

The version is bumped by hand when numbers change (``adbench_hr/__init__.py``); the fingerprint tells apart two
builds that share a version (an edited checkout, a fork, a development install), so a result or checkpoint can
be traced to the code that wrote it. It is recorded, never compared: resuming and reusing checkpoints go by the
version alone, so editing a comment does not throw finished work away.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

#: Hex digits kept of the SHA-256 (64 bits: no accidental collision among a project's builds).
FINGERPRINT_HEX_DIGITS = 16
#: The fingerprint of a build whose source cannot be read.
UNKNOWN_FINGERPRINT = "unknown"


def tree_fingerprint(folders: Iterable[tuple[str, Path]], skip: Iterable[str] = ()) -> str:
    """Hash the Python source files under each folder, by their path below a label and their bytes.

    Parameters
    ----------
    folders
        ``(label, folder)`` pairs; a file is hashed under ``label/<its path below folder>``, so the same files
        give the same fingerprint wherever they are installed.
    skip
        Labelled paths (``"label/name"``) of folders to leave out, e.g. a package that another pair covers.

    Returns
    -------
    str
        The first :data:`FINGERPRINT_HEX_DIGITS` hex digits of a SHA-256 over the sorted files. Compiled files
        (``__pycache__``), hidden files and folders and other files are not hashed: they do not decide what runs.

    Raises
    ------
    ValueError
        When the folders hold no Python file (a package run from compiled files only, or from a zip).
    """
    skipped = set(skip)
    files: dict[str, Path] = {}
    for label, folder in folders:
        # Symbolic links to folders are not followed; a folder that cannot be listed fails, as a file that cannot
        # be read does, rather than leaving its files out.
        for parent, subfolders, names in os.walk(folder, onerror=_raise):
            relative = Path(parent).relative_to(folder)
            subfolders[:] = [
                name for name in subfolders
                if _is_source(name) and (Path(label) / relative / name).as_posix() not in skipped
            ]
            for name in names:
                if _is_source(name) and name.endswith(".py"):
                    files[(Path(label) / relative / name).as_posix()] = Path(parent) / name
    if not files:
        raise ValueError("no Python source files to fingerprint")
    digest = hashlib.sha256()
    for labelled in sorted(files):
        content = files[labelled].read_bytes()
        # Lengths before contents: no two different trees hash the same stream.
        for part in (labelled.encode("utf-8", "surrogateescape"), content):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()[:FINGERPRINT_HEX_DIGITS]


def _is_source(name: str) -> bool:
    """Whether a file or folder may hold source: not ``__pycache__``, nor hidden (``.#name.py``, an editor's lock
    link; ``._name.py``, macOS's; ``.ipynb_checkpoints``): never a module, never in a wheel (``*.py`` skips them)."""
    return name != "__pycache__" and not name.startswith(".")


def _raise(error: OSError) -> None:
    raise error


@functools.cache
def source_fingerprint() -> str:
    """The fingerprint of the adbench-hr that is running: ``adbench_hr`` and its model zoo ``adbench_hr.methods``
    (a folder of its own in a development checkout), read once per process. Finding the zoo imports nothing of
    it (no torch). ``"unknown"`` when the source cannot be read: an install without it must still run."""
    package = Path(__file__).resolve().parent
    zoo_spec = importlib.util.find_spec("adbench_hr.methods")
    zoo_folders = list(zoo_spec.submodule_search_locations or []) if zoo_spec else []
    folders = [("adbench_hr", package)] + [("adbench_hr/methods", Path(folder)) for folder in zoo_folders]
    # In a wheel the zoo lies inside the package folder; in a checkout a link there may point to it.
    try:
        return tree_fingerprint(folders, skip=["adbench_hr/methods"] if zoo_folders else [])
    except (OSError, ValueError):
        return UNKNOWN_FINGERPRINT
