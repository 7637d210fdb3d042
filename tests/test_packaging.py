"""The wheel's package list: every folder of Python modules is in it.

`pyproject.toml` lists the packages by name (the model zoo, `methods/`, is mapped to `adbench_hr.methods`), so
a new subpackage that is not added there works from the source tree and an editable install, and is missing
from the wheel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import adbench_hr
import adbench_hr.methods

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is 3.11+; pytest itself requires its backport, tomli, below 3.11 (the same parser, same API)
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _packages_under(package: str, folders: list[str]) -> set[str]:
    """Dotted names of the folders holding Python modules under a package's folders (links not followed)."""
    found = set()
    for top in folders:
        for folder, subfolders, files in os.walk(top):
            subfolders[:] = [d for d in subfolders if d != "__pycache__" and not d.startswith(".")]
            if any(name.endswith(".py") for name in files):
                found.add(".".join([package, *Path(folder).relative_to(top).parts]))
    return found


def test_every_folder_of_modules_is_a_listed_package() -> None:
    listed = set(tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = _packages_under("adbench_hr", list(adbench_hr.__path__))
    found |= _packages_under("adbench_hr.methods", list(adbench_hr.methods.__path__))
    assert found == listed


def test_the_version_is_written_once() -> None:
    # The distribution's version is adbench_hr.__version__ (results and checkpoints record it), not a second copy.
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "adbench_hr.__version__"}
