"""Result files (``adbench_hr.results``): what ``load_result`` accepts and refuses."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from adbench_hr.errors import InputError
from adbench_hr.metrics import AnomalyMetrics
from adbench_hr.results import SCHEMA, build_result, load_result, name_problem, undecodable_name, write_result


def _metrics() -> dict:
    """The metrics of a real (tiny) category: one good and one defective 2 x 3 image."""
    engine = AnomalyMetrics()
    engine.update(np.array([[0.1, 0.2, 0.3], [0.2, 0.1, 0.0]], np.float32), None)
    engine.update(np.array([[0.9, 0.2, 0.3], [0.2, 0.1, 0.0]], np.float32), np.array([[1, 0, 0], [0, 0, 0]]))
    return engine.compute()["metrics"]


def _result() -> dict:
    return build_result(method="m", dataset="d", category="c", protocol={"name": "full"}, metrics=_metrics())


def test_written_result_loads_back(tmp_path):
    write_result(tmp_path / "r.json", _result())
    loaded = load_result(tmp_path / "r.json")
    assert loaded["schema"] == SCHEMA == "adbench-hr/result/v1"
    assert loaded["metrics"]["i_auroc"] == 1.0 and loaded["metrics"]["n_defects"] == 1
    assert loaded["pretrained_backbone"] is None


def test_a_result_saved_with_a_byte_order_mark_loads_like_without(tmp_path):
    # Windows editors add one on saving; JSON readers may ignore it (RFC 8259), and CSVs here accept it too.
    write_result(tmp_path / "r.json", _result())
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "r.json").read_bytes())
    assert load_result(tmp_path / "bom.json") == load_result(tmp_path / "r.json")


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda r: r.update(schema="adbench-hr/result/v0"), "unsupported result schema 'adbench-hr/result/v0'"),
        (lambda r: r.pop("schema"), "not an adbench-hr result"),
        (lambda r: r.pop("metrics"), "'metrics' must be an object"),
        (lambda r: r.pop("protocol"), "'protocol' must be an object"),
        # What the leaderboard refuses, resuming must refuse too (not count the category as finished).
        (lambda r: r["metrics"].pop("size_quartiles_px"), "metrics lacks 'size_quartiles_px'"),
        (lambda r: r["metrics"].pop("n_defective_images"), "metrics lacks 'n_defective_images'"),
        (lambda r: r["metrics"].update(i_auroc=1.5), r"metrics.i_auroc must lie in \[0, 1\]"),
        (lambda r: r["metrics"]["rho"].pop("0.3"), "metrics.rho lacks FPR limit 0.3"),
        # Present values of the wrong kind.
        (lambda r: r["metrics"].update(size_quartiles_px=[1.0, 2.0]),
         r"metrics.size_quartiles_px must be \[q25, q50, q75\] or null"),
        (lambda r: r["metrics"].update(pro_curves={"fpr_limit": 0.3, "all": {"fpr": [0.0, 0.3], "pro": [0.0, "1"]}}),
         "metrics.pro_curves.all holds a value that is not a number"),
        (lambda r: r["metrics"].update(aupro=[1.0]), "metrics.aupro must be an object keyed by FPR limit or null"),
        (lambda r: r["metrics"]["rho"].update({"high": 1.0}), "metrics.rho has a key 'high' that is not an FPR limit"),
        # aupro declares the limits the other metrics must hold: a key that is no number is named, not a ValueError.
        (lambda r: r["metrics"]["aupro"].update({"high": 1.0}),
         "metrics.aupro has a key 'high' that is not an FPR limit"),
        (lambda r: r["metrics"].update(aupro_cumulative=[1.0]),
         "metrics.aupro_cumulative must be an object keyed by quartile or null"),
        (lambda r: r["metrics"].update(aupro_by_area={}), "metrics.aupro_by_area must be a list or null"),
        (lambda r: r["metrics"].update(pro_curves=[]), "metrics.pro_curves must be an object or null"),
        (lambda r: r["metrics"].update(pro_curves={"fpr_limit": 0.3, "all": [0.0, 1.0]}),
         "metrics.pro_curves.all must be an object with 'fpr' and 'pro' lists"),
        (lambda r: r["protocol"].update(name="full/x"), "protocol.name must not contain '@' or '/'"),
        (lambda r: r.update(pretrained_backbone="yes"), "'pretrained_backbone' must be true, false or null"),
        (lambda r: r.update(resource_options="threads"), "'resource_options' must be a list of option names"),
        (lambda r: r.update(resource_options=[1]), "'resource_options' must be a list of option names"),
        (lambda r: r.update(dataset_generator="seed 0"), "'dataset_generator' must be an object or null"),
        (lambda r: r.update(timing=[1.0]), "'timing' must be an object or null"),
        (lambda r: r.update(timing={"fit_s": "fast"}), "timing.fit_s must be a number or null, got 'fast'"),
        (lambda r: r.update(maps_dir=5), "'maps_dir' must be a path string or null"),
    ],
)
def test_foreign_or_incomplete_results_are_refused_naming_the_file(tmp_path, change, problem):
    result = _result()
    change(result)
    (tmp_path / "r.json").write_text(json.dumps(result))
    with pytest.raises(InputError, match=problem) as info:
        load_result(tmp_path / "r.json")
    assert "r.json" in str(info.value)


def test_a_result_that_declares_no_fpr_limits_is_checked_without_them(tmp_path):
    # Another tool's result: no protocol.fpr_limits, and aupro and rho null (undefined), so nothing says which
    # limits the other metrics must hold; theirs are taken as they are, not refused (nor a TypeError).
    result = _result()
    assert "fpr_limits" not in result["protocol"]
    result["metrics"].update(aupro=None, rho=None)
    result["metrics"]["aupro_cumulative"]["Q1"] = {"0.2": 0.5}
    (tmp_path / "r.json").write_text(json.dumps(result))
    assert load_result(tmp_path / "r.json")["metrics"]["aupro_cumulative"]["Q1"] == {"0.2": 0.5}


def test_aupro_above_1_by_an_older_builds_rounding_reads_as_1(tmp_path):
    # Before d846c6d (same version 0.1.0) the engine did not clip its normalised trapezoid sums: a map that
    # separates the defects gave AUPRO 1 + a few 1e-14, which the [0, 1] check then refused as malformed.
    result = _result()
    assert result["metrics"]["aupro"]["0.3"] == 1.0  # this category's map separates its one defect
    older = json.loads(json.dumps(result))
    older["metrics"]["aupro"]["0.3"] = 1.000000000000031
    older["metrics"]["aupro_cumulative"]["Q4"]["0.1"] = 1 + 3.5e-14
    assert older["metrics"]["aupro_by_area"][0]["n_defects"] == 1
    older["metrics"]["aupro_by_area"][0]["aupro"]["0.01"] = 1 + 2.2e-16
    assert result["metrics"]["rho"]["0.05"] == 1.0  # rho = mean of the quartiles' AUPROs x min/max of Q1, Q4
    older["metrics"]["rho"]["0.05"] = 1 + 4e-14
    (tmp_path / "old.json").write_text(json.dumps(older))
    assert load_result(tmp_path / "old.json")["metrics"] == result["metrics"]
    # More than rounding is still refused, as is an AUROC above 1 (counted exactly, never rounded above 1).
    for where, value in ((("aupro", "0.3"), 1.001), (("rho", "0.3"), 1.001), (("i_auroc",), 1 + 1e-14)):
        changed = json.loads(json.dumps(result))
        if len(where) == 2:
            changed["metrics"][where[0]][where[1]] = value
        else:
            changed["metrics"][where[0]] = value
        (tmp_path / "bad.json").write_text(json.dumps(changed))
        named = "".join(f"\\['{key}'\\]" for key in where[1:])
        with pytest.raises(InputError, match=rf"metrics.{where[0]}{named} must lie in \[0, 1\], got {value!r}"):
            load_result(tmp_path / "bad.json")


@pytest.mark.parametrize("key, value", [
    ("method", "a\nb"), ("method", "tab\t"), ("dataset", "x\r"), ("category", "c\u2029"), ("method", " "),
])
def test_names_with_control_characters_are_refused_so_the_leaderboard_stays_one_line(tmp_path, capsys, key, value):
    # Another tool's result: refused rather than relabelled, so that two labels never merge into one.
    from adbench_hr.cli.main import main

    result = _result()
    result[key] = value
    (tmp_path / "r.json").write_text(json.dumps(result))
    problem = ("must be a non-empty string" if not value.strip()
               else f"must not contain control characters (newline, tab ...), got {value!r}")
    with pytest.raises(InputError) as info:
        load_result(tmp_path / "r.json")
    assert str(info.value) == f"{tmp_path / 'r.json'}: malformed result file: {key!r} {problem}"
    assert main(["leaderboard", str(tmp_path), "--out", str(tmp_path / "lb")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {info.value}\n"


@pytest.mark.parametrize("value", ["patch\u200bcore", "\u202eeroc", "ts\u2066-mlp\u2069", "\ufeffts-mlp"])
def test_names_that_look_like_other_names_are_refused(tmp_path, value):
    # Before: "patch\u200bcore" ranked as a method of its own that reads as "patchcore".
    result = _result()
    result["method"] = value
    (tmp_path / "r.json").write_text(json.dumps(result))
    with pytest.raises(InputError, match="'method' must not contain invisible or text-direction characters"):
        load_result(tmp_path / "r.json")
    result["method"] = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # Persian, with its zero-width non-joiner
    (tmp_path / "r.json").write_text(json.dumps(result))
    assert load_result(tmp_path / "r.json")["method"] == result["method"]


def test_a_name_holding_a_lone_surrogate_is_one_error_not_a_traceback(tmp_path):
    # JSON's "\ud800" is a string no file name produced; before, describing it raised UnicodeEncodeError.
    result = json.dumps(_result()).replace('"method": "', '"method": "a\\ud800', 1)
    (tmp_path / "r.json").write_text(result)
    with pytest.raises(InputError, match=r"'method' is not valid UTF-8 text .*: 'a\\ud800"):
        load_result(tmp_path / "r.json")


@pytest.mark.parametrize("field, value", [("name", "full\n"), ("pro_thresholds", "l2bt\t")])
def test_protocol_names_with_control_characters_are_refused(tmp_path, field, value):
    # They make up the leaderboard's protocol label (full/l2bt).
    result = _result()
    result["protocol"][field] = value
    (tmp_path / "r.json").write_text(json.dumps(result))
    with pytest.raises(InputError, match=f"protocol.{field}.* must not contain control characters"):
        load_result(tmp_path / "r.json")


def test_a_result_that_would_be_refused_on_reading_is_refused_on_writing(tmp_path):
    write_result(tmp_path / "r.json", _result())
    good = (tmp_path / "r.json").read_bytes()
    incomplete = _result()
    del incomplete["metrics"]["rho"]
    with pytest.raises(InputError, match="result not written: metrics lacks 'rho'") as info:
        write_result(tmp_path / "r.json", incomplete)
    assert info.value.path == tmp_path / "r.json"
    assert (tmp_path / "r.json").read_bytes() == good  # the good file stays
    with pytest.raises(InputError, match="result not written: 'method' must not contain control characters"):
        write_result(tmp_path / "s.json", {**_result(), "method": "a\nb"})
    assert not (tmp_path / "s.json").exists()


def test_a_result_that_repeats_a_key_is_refused(tmp_path):
    # Before: the last value silently won ("i_auroc": 0.1, "i_auroc": 1.0 ranked as 1.0), where other JSON
    # parsers take the first.
    path = tmp_path / "r.json"
    text = json.dumps(_result())
    path.write_text(text.replace('"i_auroc": ', '"i_auroc": 0.1, "i_auroc": ', 1))
    with pytest.raises(InputError, match="not a valid JSON result file \\(the key 'i_auroc' appears twice"):
        load_result(path)
    path.write_text(text)
    assert load_result(path)["metrics"]["i_auroc"] == _result()["metrics"]["i_auroc"]


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe", b"[" * 100_000])  # b"": tests/test_fileio.py
def test_unreadable_json_is_refused_naming_the_file(tmp_path, content):
    (tmp_path / "r.json").write_bytes(content)
    with pytest.raises(InputError, match="not a valid JSON result file") as info:
        load_result(tmp_path / "r.json")
    assert info.value.path == tmp_path / "r.json"


def test_a_missing_result_file_is_an_input_error_that_says_so(tmp_path):
    with pytest.raises(InputError) as info:
        load_result(tmp_path / "r.json")
    assert str(info.value) == f"{tmp_path / 'r.json'}: result file not found"


def test_a_result_path_that_cannot_be_read_is_an_input_error_naming_it(tmp_path):
    # load_result documents an InputError naming the file; a folder (or no permission) raised the OSError.
    (folder := tmp_path / "r.json").mkdir()
    with pytest.raises(InputError, match=r"cannot read the result file \(") as info:
        load_result(folder)
    assert info.value.path == folder


ADVICE = "in this locale: run with a UTF-8 locale (LC_ALL=C.UTF-8) or PYTHONUTF8=1"


def test_a_utf8_name_read_in_a_latin1_locale_is_said_to_be_utf8(monkeypatch):
    # A Latin-1 locale (not installed here): Python reads the UTF-8 bytes of "Ā" (C4 80) as "Ä" and the control
    # character U+0080, and os.fsencode gives those bytes back.
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "latin-1")
    monkeypatch.setattr(os, "fsencode", lambda name: name.encode("latin-1", "surrogateescape"))
    assert name_problem("\u00c4\u0080") == (
        "must not contain control characters (newline, tab ...), got 'Ä\\x80'; it is the UTF-8 text 'Ā', which "
        f"Python reads as latin-1 {ADVICE}")


def test_a_name_that_reads_the_same_as_utf8_gets_no_locale_advice(monkeypatch):
    # In an ASCII locale (LC_ALL=C, PYTHONUTF8=0), a name with a newline is that name in UTF-8 too: the problem is
    # the newline, not the locale.
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")
    assert name_problem("a\nb") == "must not contain control characters (newline, tab ...), got 'a\\nb'"
    assert undecodable_name("bottl\udcc3\udca9") == f"is the UTF-8 text 'bottlé', which Python reads as ascii {ADVICE}"
    assert undecodable_name("a\udcff").startswith("is not valid UTF-8 text")  # b"a\xff": not UTF-8 either


@pytest.mark.skipif(__import__("shutil").which("jq") is None, reason="jq is not installed")
def test_the_jq_commands_of_docs_cli_read_a_written_result(tmp_path):
    import csv
    import re
    import subprocess
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = [line.strip() for line in docs.splitlines() if line.strip().startswith("jq ")]
    assert len(commands) == 3
    result = build_result(method="ts-mlp", dataset="synthetic", category="pcb", protocol={"name": "full"},
                          metrics=_metrics())
    write_result(tmp_path / "runs" / "ts-mlp" / "synthetic" / "results" / "pcb.json", result)
    metrics = result["metrics"]

    def run(command: str) -> str:
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=True)
        return done.stdout

    def number(cell: str) -> float | None:
        return None if cell == "" else float(cell)

    assert json.loads(run(commands[0])) == metrics["aupro"]["0.3"] is not None
    (row,) = csv.reader(run(commands[1]).splitlines())
    assert row[:2] == ["ts-mlp", "pcb"] and number(row[2]) == metrics["rho"]["0.3"]
    rows = list(csv.reader(run(commands[2]).splitlines()))
    bins = metrics["aupro_by_area"]
    assert [[number(cell) for cell in row] for row in rows] == [
        [b["min_px"], b["max_px"], b["n_defects"], b["aupro"]["0.3"]] for b in bins]
    assert rows[-1][1] == "" and re.fullmatch(r"[0-9]+", rows[-1][0])
