"""Result files (``adbench_hr.results``): what ``load_result`` accepts and refuses."""

from __future__ import annotations

import json

import pytest

from adbench_hr.errors import InputError
from adbench_hr.results import SCHEMA, build_result, load_result, write_result


def _result() -> dict:
    return build_result(method="m", dataset="d", category="c", protocol={"name": "full"}, metrics={"i_auroc": 0.5})


def test_written_result_loads_back(tmp_path):
    write_result(tmp_path / "r.json", _result())
    loaded = load_result(tmp_path / "r.json")
    assert loaded["schema"] == SCHEMA == "adbench-hr/result/v1"
    assert loaded["metrics"] == {"i_auroc": 0.5} and loaded["pretrained_backbone"] is None


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda r: r.update(schema="adbench-hr/result/v0"), "not an adbench-hr result"),
        (lambda r: r.pop("schema"), "not an adbench-hr result"),
        (lambda r: r.pop("metrics"), "lacks metrics"),
        (lambda r: r.pop("protocol"), "lacks protocol"),
    ],
)
def test_foreign_or_incomplete_results_are_refused_naming_the_file(tmp_path, change, problem):
    result = _result()
    change(result)
    (tmp_path / "r.json").write_text(json.dumps(result))
    with pytest.raises(InputError, match=problem) as info:
        load_result(tmp_path / "r.json")
    assert "r.json" in str(info.value)
