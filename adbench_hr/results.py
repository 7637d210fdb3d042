"""Result files (schema ``adbench-hr/result/v1``, docs/cli.md): one JSON per method x dataset x category."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from adbench_hr import __version__
from adbench_hr.errors import InputError
from adbench_hr.fileio import write_json_atomic

SCHEMA = "adbench-hr/result/v1"
_VERSIONED_PACKAGES = ("numpy", "scipy", "opencv-python-headless", "torch", "timm", "tifffile")


def library_versions() -> dict[str, str]:
    """Versions of Python, adbench-hr and the main libraries (read from metadata, nothing imported)."""
    versions = {"python": platform.python_version(), "adbench-hr": __version__}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_result(
    *,
    method: str,
    dataset: str,
    category: str,
    protocol: dict[str, Any],
    metrics: dict[str, Any],
    pretrained_backbone: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a result dictionary with the required keys first and ``extra`` keys after them."""
    result = {
        "schema": SCHEMA,
        "method": method,
        "dataset": dataset,
        "category": category,
        "protocol": protocol,
        "pretrained_backbone": pretrained_backbone,
        "metrics": metrics,
    }
    result.update(extra)
    result.setdefault("versions", library_versions())
    result.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return result


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    """Write a result file atomically."""
    write_json_atomic(path, result)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read and check a result file; :class:`InputError` names the file on any problem."""
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("result file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a valid JSON result file ({exc})", path) from None
    if not isinstance(result, dict) or result.get("schema") != SCHEMA:
        found = result.get("schema") if isinstance(result, dict) else type(result).__name__
        raise InputError(f"not an adbench-hr result (schema {found!r}, expected {SCHEMA!r})", path)
    missing = [k for k in ("method", "dataset", "category", "protocol", "metrics") if k not in result]
    if missing:
        raise InputError(f"result file lacks {', '.join(missing)}", path)
    return result
