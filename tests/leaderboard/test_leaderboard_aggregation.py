"""Aggregation details of the leaderboard tables, each checked against numbers worked out by hand: means (not
medians) over three categories, counts of a single paired category, pairs without a common category, the
terminal ranking, warnings that name many categories, seeds written as whole floats and the place of extra
columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from adbench_hr import leaderboard as lb


def _results(helpers, specs: list[dict]) -> list[lb.ResultFile]:
    """Result files built in memory (the tables take them as they are)."""
    return [lb.ResultFile(Path(f"r{i}.json"), helpers.make_result(**spec)) for i, spec in enumerate(specs)]


def test_protocol_gap_is_the_difference_of_means_over_three_paired_categories(helpers) -> None:
    # Full 0.9, 0.8, 0.1 (mean 0.6, median 0.8); lowres 0.5, 0.4, 0.0 (mean 0.3, median 0.4): gap 0.3.
    specs = []
    for category, full, low in (("c1", 0.9, 0.5), ("c2", 0.8, 0.4), ("c3", 0.1, 0.0)):
        specs.append(dict(method="alpha", category=category, aupro=full))
        specs.append(dict(method="alpha", category=category, protocol="lowres", aupro=low))
    gap = lb.protocol_gap_table(lb.leaderboard_table(_results(helpers, specs)))
    row = gap[gap["area_bin"] == "all"].iloc[0]
    assert row["n_categories"] == 3
    assert row["aupro_full@0.3"] == pytest.approx(0.6)
    assert row["aupro_lowres@0.3"] == pytest.approx(0.3)
    assert row["gap@0.3"] == pytest.approx(0.3)
    # Defect counts are summed over the paired categories: the default result has 3+2+2+1+1+1 = 10 defects.
    assert row["n_defects_full"] == 30 and row["n_defects_lowres"] == 30


def test_protocol_gap_of_a_single_paired_category_keeps_its_counts(helpers) -> None:
    specs = [dict(method="alpha", category="c1"), dict(method="alpha", category="c1", protocol="lowres")]
    gap = lb.protocol_gap_table(lb.leaderboard_table(_results(helpers, specs)))
    row = gap[gap["area_bin"] == "all"].iloc[0]
    assert row["n_categories"] == 1
    assert row["n_defects_full"] == 10 and row["n_defects_lowres"] == 10  # one category's count, not empty
    first_bin = gap[gap["area_bin"] == "1-64"].iloc[0]
    assert first_bin["n_defects_full"] == 3


def test_no_protocol_gap_when_full_and_lowres_results_share_no_method_and_category(helpers) -> None:
    # Both labels exist, but alpha only has full results and beta only lowres ones: nothing is paired.
    specs = [dict(method="alpha", category="c1"), dict(method="beta", category="c1", protocol="lowres")]
    assert lb.protocol_gap_table(lb.leaderboard_table(_results(helpers, specs))) is None


def test_terminal_ranking_prints_three_decimals_and_dashes_for_nulls(helpers) -> None:
    specs = [
        dict(method="alpha", category="c1", aupro=0.8, rho=0.5, cumulative=(0.4, 0.5, 0.6, 0.8)),
        dict(method="beta", category="c1", aupro=0.7, rho=None, i_auroc=None),
    ]
    summary = lb.summary_table(lb.leaderboard_table(_results(helpers, specs)))
    text = lb.format_summary(summary).splitlines()
    # Each column right-aligned to its widest cell, one space between columns.
    assert text[0] == ("rank method   dataset protocol n_categories i_auroc p_auroc aupro@0.3 aupro_cum_Q1@0.3 "
                       "rho@0.3")
    assert text[1] == ("   1  alpha synthetic     full            1   0.950   0.970     0.800            0.400 "
                       "  0.500")
    lines = [line.split() for line in text]
    assert lines[0] == ["rank", "method", "dataset", "protocol", "n_categories", "i_auroc", "p_auroc", "aupro@0.3",
                        "aupro_cum_Q1@0.3", "rho@0.3"]
    assert lines[1] == ["1", "alpha", "synthetic", "full", "1", "0.950", "0.970", "0.800", "0.400", "0.500"]
    # beta has no rho where alpha has one: not ranked, and its null values print as "-".
    assert lines[2] == ["-", "beta", "synthetic", "full", "1", "-", "0.970", "0.700", "0.400", "-"]
    assert len(lines) == 3


def test_a_warning_names_five_categories_then_counts_the_rest(helpers) -> None:
    specs = [dict(method="alpha", category=f"c{i}") for i in range(8)]
    specs += [dict(method="beta", category="c0")]  # lacks c1 .. c7: seven categories
    specs += [dict(method="gamma", category=f"c{i}") for i in range(3)]  # lacks c3 .. c7: exactly five
    warnings: list[str] = []
    lb.summary_table(lb.leaderboard_table(_results(helpers, specs)), warn=warnings.append)
    beta = next(w for w in warnings if w.startswith("beta"))
    gamma = next(w for w in warnings if w.startswith("gamma"))
    assert "has no result for c1, c2, c3, c4, c5 and 2 more:" in beta
    assert "has no result for c3, c4, c5, c6, c7:" in gamma


def test_a_seed_written_as_a_whole_float_is_the_integer(helpers, tmp_path: Path) -> None:
    # JSON written by another tool may hold 7.0: the seed is 7, shown as such; 7.5 is no seed at all.
    specs = [dict(method="alpha", category="c1"), dict(method="alpha", category="c2")]
    results = _results(helpers, specs)
    results[0].data["seed"] = 7.0
    results[1].data["seed"] = 7.5
    table = lb.leaderboard_table(results)
    seeds = list(table["seed"])
    assert seeds == [7, None] and type(seeds[0]) is int
    assert ",7," in lb.write_csv(table, tmp_path / "t.csv").read_text().splitlines()[1]


def test_unknown_timing_keys_follow_the_known_ones_and_source_stays_last(helpers) -> None:
    specs = [dict(method="alpha", category="c1", timing={"warmup_s": 2.0, "fit_s": 1.0})]
    columns = list(lb.leaderboard_table(_results(helpers, specs)).columns)
    assert columns[-3:] == ["fit_s", "warmup_s", "source"]
    summary = lb.summary_table(lb.leaderboard_table(_results(helpers, specs)))
    assert summary.loc[0, "warmup_s"] == 2.0 and not pd.isna(summary.loc[0, "fit_s"])


def test_write_csv_escapes_formulas_in_its_copy_and_writes_no_index(tmp_path: Path) -> None:
    frame = pd.DataFrame({"method": ["=HYPERLINK(1)", "alpha"], "aupro@0.3": [0.5, None], "seed": [-3, 4]})
    before = frame.copy()
    text = lb.write_csv(frame, tmp_path / "t.csv").read_text().splitlines()
    assert text == ["method,aupro@0.3,seed", "'=HYPERLINK(1),0.5,-3", "alpha,,4"]  # a number keeps its minus
    pd.testing.assert_frame_equal(frame, before)  # the caller's table is not changed
    assert lb.write_csv(frame, tmp_path / "t.csv").read_text().splitlines()[1] == "'=HYPERLINK(1),0.5,-3"


def test_terminal_ranking_aligns_wide_and_decomposed_names_by_terminal_columns(helpers) -> None:
    # A CJK method name takes two columns per character, a decomposed accent (as macOS names files) none: counted
    # as characters (pandas' to_string), the columns after the name came out shifted on the terminal.
    from adbench_hr.terminal import display_width

    # "異常検知法": 5 characters, 10 columns, the widest name in columns but not in characters.
    methods = ["alpha", "異常検知法", "me\u0301thode"]
    specs = [dict(method=method, category="c1") for method in methods]
    lines = lb.format_summary(lb.summary_table(lb.leaderboard_table(_results(helpers, specs)))).splitlines()
    assert sorted(line.split()[1] for line in lines[1:]) == sorted(methods)
    # The method column ends, on the terminal, where its header does; so do the rows.
    method_end = display_width(lines[0][: lines[0].index("method") + len("method")])
    for line in lines[1:]:
        method = line.split()[1]
        assert display_width(line[: line.index(method) + len(method)]) == method_end
    assert {display_width(line) for line in lines} == {display_width(lines[0])}


def test_write_csv_marks_whole_floats_and_leaves_exponents_and_infinities_alone(tmp_path: Path) -> None:
    values = [1.0, 2.5, -3.0, -0.0, 1e16, 1e20, 0.1 + 0.2, float("inf"), float("-inf"), None]
    frame = pd.DataFrame({"x": values, "n": pd.array([1, 2, 3, 4, 5, 6, 7, 8, 9, None], dtype="Int64")})
    lines = lb.write_csv(frame, tmp_path / "t.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [
        "1.0", "2.5", "-3.0", "-0.0", "1e+16", "1e+20", "0.3", "inf", "-inf", ""]
    assert [line.split(",")[1] for line in lines[1:]] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", ""]
    back = pd.read_csv(tmp_path / "t.csv")
    assert str(back["x"].dtype) == "float64" and back["x"].tolist()[:9] == [1.0, 2.5, -3.0, 0.0, 1e16, 1e20, 0.3,
                                                                            float("inf"), float("-inf")]


def test_a_timing_key_named_like_an_orig_column_does_not_pass_a_result_off_as_having_original_defects(helpers):
    # Before: timing {"orig_load_s": 1.0} of a lowres result without metrics.original_defects became a column
    # "orig_load_s", which has_original_defects took for an orig_ metric: the protocol gap then read the absent
    # orig_ columns (n_categories 0, NaN gap, "original"). By hand: full 0.8, lowres 0.4, gap 0.4.
    specs = [dict(method="alpha", category="c1", aupro=0.8),
             dict(method="alpha", category="c1", protocol="lowres", aupro=0.4, timing={"orig_load_s": 1.0})]
    table = lb.leaderboard_table(_results(helpers, specs))
    assert "orig_load_s" not in table.columns and table["timing_orig_load_s"].tolist()[1] == 1.0
    assert lb.has_original_defects(table).tolist() == [False, False]
    row = lb.protocol_gap_table(table).iloc[0]
    assert (row["area_bin"], row["lowres_defects"], row["n_categories"]) == ("all", "resized", 1)
    assert row["aupro_lowres@0.3"] == pytest.approx(0.4) and row["gap@0.3"] == pytest.approx(0.4)
