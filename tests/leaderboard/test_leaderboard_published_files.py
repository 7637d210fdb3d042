"""The published tables as their readers see them: the columns docs/leaderboard.md names, and what pandas, R or a
spreadsheet reads back from the CSVs."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from adbench_hr.cli.main import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "leaderboard.md"
TIMING = {"fit_s": 10.0, "predict_ms_per_image": 50.0, "peak_host_memory_mb": 900.0, "peak_gpu_memory_mb": 300.0}


def _section(title: str) -> str:
    """The text of the ``## <title>`` section of docs/leaderboard.md, up to the next heading."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def _table_names(section: str) -> list[str]:
    """The backticked names in the first cell of each row of a section's column table, in order."""
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([^`]+)`", line.split("|")[1])
    return names


def _pattern(name: str) -> re.Pattern[str]:
    """A documented name as a regular expression: ``@L`` any FPR limit, ``Qk`` a quartile, ``A-B`` an area bin."""
    text = re.escape(name)
    text = text.replace("@L", r"@[0-9.]+").replace("Qk", "Q[1-4]").replace(r"A\-B", r"[0-9]+\-(?:[0-9]+|inf)")
    return re.compile(text)


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


@pytest.fixture
def board(helpers, tmp_path: Path) -> Path:
    """A leaderboard of full and low-resolution results (with original defects and every timing key)."""
    for method in ("alpha", "beta"):
        for category in ("cat_a", "cat_b"):
            for protocol in ("full", "lowres"):
                original = helpers.original_defects() if protocol == "lowres" else None
                result = helpers.make_result(method, category, protocol=protocol, timing=dict(TIMING),
                                             original=original, pro_curves=False)
                helpers.write_result(tmp_path / "r" / f"{method}_{category}_{protocol}.json", result)
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "board")]) == 0
    return tmp_path / "board"


def test_leaderboard_csv_has_exactly_the_documented_columns(board: Path) -> None:
    section = _section("`leaderboard.csv`")
    table, _, originals = section.partition("A low-resolution result counts")
    documented = [name for name in _table_names(table) if name != "orig_*"]
    # The orig_ columns are listed in the paragraph that explains them.
    documented += [name for name in re.findall(r"`(orig_[^`*]+)`", originals) if name != "orig_"]
    header = _header(board / "leaderboard.csv")
    patterns = [_pattern(name) for name in documented]
    undocumented = [column for column in header if not any(p.fullmatch(column) for p in patterns)]
    assert undocumented == []
    missing = [name for name, pattern in zip(documented, patterns, strict=True)
               if not any(pattern.fullmatch(column) for column in header)]
    assert missing == []
    # The plain columns come in the documented order (each group of a pattern where its first column is).
    first = [next(i for i, column in enumerate(header) if p.fullmatch(column))
             for name, p in zip(documented, patterns, strict=True) if not name.startswith("orig_")]
    assert first == sorted(first)


def test_summary_csv_has_the_documented_columns(board: Path) -> None:
    section = _section("`summary.csv`")
    for name in ("rank", "complete", "n_categories"):
        assert f"`{name}`" in section
    table = _header(board / "leaderboard.csv")
    assert _header(board / "summary.csv") == [
        "rank", "method", "dataset", "protocol", "complete", "n_categories",
        *(column for column in table if column not in ("method", "dataset", "protocol", "category", "source")),
    ]


def test_protocol_gap_csv_has_the_documented_columns_in_order(board: Path) -> None:
    documented = ["method", "dataset", *_table_names(_section("`protocol_gap.csv`"))]
    header = _header(board / "protocol_gap.csv")
    assert len(header) == len(documented)
    assert all(_pattern(name).fullmatch(column) for name, column in zip(documented, header, strict=True)), (
        documented, header)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_settings_ids_read_back_as_the_same_text(helpers, tmp_path: Path) -> None:
    # The first 8 hex digits of these options' hash are 649037e6 and 72949118: pandas, R's read.csv and
    # spreadsheets read them as the numbers 6.49e11 and 72949118, so the id changed value and type on the way.
    import pandas as pd

    for method, epochs in (("alpha", 14), ("beta", 129)):
        result = helpers.make_result(method, "cat_a", pro_curves=False)
        result["method_options"] = {"epochs": epochs}
        helpers.write_result(tmp_path / "r" / f"{method}.json", result)
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "board")]) == 0
    for name in ("leaderboard.csv", "summary.csv"):
        path = tmp_path / "board" / name
        with path.open(newline="", encoding="utf-8") as handle:
            written = [row["settings"] for row in csv.DictReader(handle)]
        assert len(set(written)) == 2 and not any(_is_number(text) for text in written)
        assert pd.read_csv(path)["settings"].tolist() == written


def _float_column(name: str) -> bool:
    """Columns that docs/leaderboard.md describes as real numbers: scores, AUPROs, rho, gaps, size quartiles, timing."""
    base = name.removeprefix("orig_")
    return base in ("i_auroc", "p_auroc", *TIMING) or base.startswith(("aupro", "rho@", "gap@", "size_q"))


def test_float_columns_read_back_as_floats_even_when_every_value_is_whole(board: Path) -> None:
    # Every result has AUPRO 1.0 in the largest area bin and a fit time of 10.0 s: written as "1" and "10", pandas
    # (and R) read those columns as integers, unlike the same column of another leaderboard.
    import pandas as pd

    table = pd.read_csv(board / "leaderboard.csv")
    assert table["aupro_area_16384-inf@0.3"].tolist() == [1.0] * 8 and table["fit_s"].tolist() == [10.0] * 8
    for name in ("leaderboard.csv", "summary.csv", "protocol_gap.csv"):
        frame = pd.read_csv(board / name)
        floats = [column for column in frame.columns if _float_column(column)]
        assert floats and {column: str(frame[column].dtype) for column in floats} == dict.fromkeys(floats, "float64")


def test_timing_keys_pose_as_no_other_column_and_are_no_formulas(helpers, tmp_path: Path, capsys) -> None:
    # Timing keys of a submitted file become column names: "rank" or "complete" stopped the build with a traceback
    # (the summary adds those columns), "source" and "n_categories" replaced the real column's values, one shaped
    # like a count column was summed and rounded, and "=HYPERLINK(...)" was a live formula in the header.
    import pandas as pd

    formula = '=HYPERLINK("http://evil.example","x")'
    timing = {"rank": 1.5, "complete": 2.5, "source": 3.5, "n_categories": 4.5, "n_defects_area_1-2": 5.5,
              formula: 6.5, "fit_s": 7.5}
    path = helpers.write_result(tmp_path / "r" / "alpha.json",
                                helpers.make_result("alpha", "cat_a", timing=timing, pro_curves=False))
    assert main(["leaderboard", str(path), "--out", str(tmp_path / "board")]) == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    summary = pd.read_csv(tmp_path / "board" / "summary.csv")
    for frame in (table, summary):
        assert frame["timing_complete"].tolist() == [2.5] and frame["timing_n_defects_area_1-2"].tolist() == [5.5]
        assert frame["fit_s"].tolist() == [7.5] and frame[f"'{formula}"].tolist() == [6.5]
        assert not [column for column in frame.columns if column.startswith(("=", "+", "-", "@"))]
    assert table["source"].tolist()[0].endswith("alpha.json") and table["timing_source"].tolist() == [3.5]
    assert summary["rank"].tolist() == [1] and summary["timing_rank"].tolist() == [1.5]
    assert summary["complete"].tolist() == [True] and summary["n_categories"].tolist() == [1]
    assert summary["timing_n_categories"].tolist() == [4.5]


def test_a_timing_key_with_a_control_character_is_refused(helpers, tmp_path: Path, capsys) -> None:
    path = helpers.write_result(tmp_path / "r" / "alpha.json",
                                helpers.make_result("alpha", "cat_a", timing={"fit\ns": 1.0}, pro_curves=False))
    assert main(["leaderboard", str(path), "--out", str(tmp_path / "board")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: ") and "a timing key must not contain control characters" in err


def test_source_leads_from_the_tables_to_the_result_and_names_no_folder_above_both(helpers, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    # The tables are published; an absolute source (/home/<user>/...) told readers the user's name and folders,
    # and depended on how RESULTS was typed. Relative to the tables' folder it leads to the file from there and
    # names no folder above the one that holds both.
    home = tmp_path / "home" / "someone"
    result = helpers.write_result(home / "exp" / "runs" / "alpha" / "results" / "cat_a.json",
                                  helpers.make_result("alpha", "cat_a", pro_curves=False))
    monkeypatch.chdir(home / "exp")
    outputs = []
    for number, given in enumerate((str(home / "exp" / "runs"), "runs", "./runs/alpha/../alpha/results")):
        out = home / "exp" / f"board{number}"
        assert main(["leaderboard", given, "--out", str(out)]) == 0
        with (out / "leaderboard.csv").open(newline="", encoding="utf-8") as handle:
            (row,) = list(csv.DictReader(handle))
        assert row["source"] == "../runs/alpha/results/cat_a.json"
        assert (out / row["source"]).resolve() == result.resolve()
        outputs.append((out / "leaderboard.csv").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]  # the same bytes however the results were named
    out = tmp_path / "published" / "board"
    assert main(["leaderboard", "runs", "--out", str(out)]) == 0
    source = next(csv.DictReader((out / "leaderboard.csv").open(newline="", encoding="utf-8")))["source"]
    assert source == "../../home/someone/exp/runs/alpha/results/cat_a.json" and str(tmp_path) not in source


def test_source_leads_to_the_result_from_a_table_folder_reached_through_a_symbolic_link(helpers, tmp_path: Path,
                                                                                        monkeypatch) -> None:
    # --out link/board with link -> elsewhere/deep: "board/.." is elsewhere/deep to every program that opens the
    # path, so a source computed from the names as typed ("../../runs/...") would lead nowhere.
    exp = tmp_path / "exp"
    result = helpers.write_result(exp / "runs" / "alpha" / "results" / "cat_a.json",
                                  helpers.make_result("alpha", "cat_a", pro_curves=False))
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    (exp / "link").symlink_to(tmp_path / "elsewhere" / "deep", target_is_directory=True)
    monkeypatch.chdir(exp)
    assert main(["leaderboard", "runs", "--out", "link/board"]) == 0
    with (exp / "link" / "board" / "leaderboard.csv").open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["source"] == "../../../exp/runs/alpha/results/cat_a.json"
    assert (exp / "link" / "board" / row["source"]).resolve() == result.resolve()


def test_the_documented_way_to_read_the_tables_keeps_names_as_written(helpers, tmp_path: Path, monkeypatch) -> None:
    # BTAD's categories 01, 02, 03 read as 1, 2, 3 and a method "NA" as a missing value when types are guessed.
    formula = "=1+2"
    for method in ("NA", formula, "alpha"):
        for category in ("01", "02"):
            helpers.write_result(tmp_path / "r" / f"{len(method)}_{category}.json",
                                 helpers.make_result(method, category, pro_curves=False))
    assert main(["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "board")]) == 0
    section = _section("Reading the tables")
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    code = "\n".join(line.removeprefix("  ") for line in code.splitlines())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code, namespace)
    table, summary = namespace["table"], namespace["summary"]
    assert sorted(set(table["category"])) == ["01", "02"]
    assert sorted(set(table["method"])) == ["'=1+2", "NA", "alpha"]  # the formula neutralised, as documented
    assert sorted(summary["method"]) == ["'=1+2", "NA", "alpha"]
    assert str(table["aupro@0.3"].dtype) == "float64" and table["aupro@0.3"].notna().all()
    assert table["eval_size"].isna().all()  # the empty cell of a full result is a null, as documented


def test_the_same_results_give_the_same_bytes_and_plots_carry_no_paths(board: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:
    from PIL import Image

    files = sorted((tmp_path / "r").glob("*.json"), reverse=True)
    monkeypatch.chdir(tmp_path / "r")
    again = tmp_path / "again"
    assert main(["leaderboard", *(f.name for f in files), "--out", str(again)]) == 0
    for name in ("leaderboard.csv", "summary.csv", "protocol_gap.csv"):
        data = (board / name).read_bytes()
        assert data == (again / name).read_bytes()
        assert b"\r" not in data and not data.startswith(b"\xef\xbb\xbf") and str(tmp_path).encode() not in data
        assert not re.search(rb"(^|,)(nan|NaN|NA|None|null)(,|\n)", data, re.MULTILINE)
    plots = sorted(board.glob("*.png"))
    assert plots
    for plot in plots:
        with Image.open(plot) as image:
            assert set(image.info) <= {"Software", "dpi"}
            assert image.info["Software"].startswith("Matplotlib")
        assert str(tmp_path).encode() not in plot.read_bytes()
