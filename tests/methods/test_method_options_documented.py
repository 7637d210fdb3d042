"""docs/methods.md lists every option of the built-in methods with the default the code really uses.

`run -o KEY=VALUE` points users there to find a method's options: an option the code accepts but the table
omits cannot be discovered, a documented one the code refuses stops the run, and a wrong default misleads.
The expected defaults come from the methods themselves (their signatures, and for ts-mlp the presets'
values that fill the options left unset), not from this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from adbench_hr.methods import get_method_class
from adbench_hr.methods.registry import option_defaults

DOC = Path(__file__).resolve().parents[2] / "docs" / "methods.md"


def documented_options(method: str) -> dict[str, Any]:
    """``{option: default}`` of the options table in the method's section of docs/methods.md; a default given
    per preset (`` `paper`: `X`, `fast`: `Y` ``) is a dict of the presets' values."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## `{method}`", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, Any] = {}
    in_table = False
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[:2] == ["option", "default"]:
            in_table = True
            continue
        if not in_table or not line.startswith("| `"):
            continue
        key = cells[0].strip("`")
        assert key not in rows, f"{method}: option {key} documented twice"
        per_preset = re.findall(r"`(\w+)`: `([^`]+)`", cells[1])
        if per_preset:
            rows[key] = {preset: json.loads(value) if value[:1].isdigit() else value for preset, value in per_preset}
        else:
            value = re.match(r"`([^`]+)`", cells[1])
            assert value, f"{method}: option {key} has no default in backticks: {cells[1]!r}"
            try:
                rows[key] = json.loads(value.group(1))
            except json.JSONDecodeError:
                rows[key] = value.group(1)  # a plain word: `auto`, a model name
    return rows


def true_defaults(method: str) -> dict[str, Any]:
    """What the method uses for each option left unset: its signature's default, or (an option the preset
    fills, default ``None``) the preset's value, one value where every preset agrees."""
    factory = get_method_class(method)
    presets = ("paper", "fast") if method == "ts-mlp" else (None,)
    resolved = {p: factory.resolve_options({} if p is None else {"preset": p}) for p in presets}
    expected = {}
    for key, default in option_defaults(factory).items():
        if default is None:
            values = {p: resolved[p][key] for p in presets}
            distinct = {json.dumps(v) for v in values.values()}
            default = next(iter(values.values())) if len(distinct) == 1 else values
        expected[key] = json.loads(json.dumps(default))  # tuples as lists, as JSON spells them
    return expected


@pytest.mark.parametrize("method", ["ts-mlp", "patchcore"])
def test_every_option_is_documented_with_its_true_default(method):
    documented = documented_options(method)
    expected = true_defaults(method)
    assert sorted(documented) == sorted(expected), f"{method}: documented options differ from the accepted ones"
    for key, default in expected.items():
        assert documented[key] == default and type(documented[key]) is type(default), (
            f"{method}: {key} documented with default {documented[key]!r}, the code uses {default!r}")
