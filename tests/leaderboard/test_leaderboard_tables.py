"""Tables of ``adbench_hr.leaderboard``: flattening, NaN-aware summary, ranking and protocol gap."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from adbench_hr import leaderboard as lb
from adbench_hr.errors import InputError


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def table(results_dir: Path) -> pd.DataFrame:
    return lb.leaderboard_table(lb.load_results([results_dir], warn=_quiet))


def _row(frame: pd.DataFrame, **key: str) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in key.items():
        mask &= frame[column] == value
    assert mask.sum() == 1, key
    return frame[mask].iloc[0]


def test_folder_search_keeps_only_results(results_dir: Path) -> None:
    warnings: list[str] = []
    results = lb.load_results([results_dir], warn=warnings.append)
    assert len(results) == 6
    assert warnings == []  # unrelated JSON files are ignored silently


def test_one_path_given_as_a_string_is_one_path_not_its_characters(results_dir: Path, monkeypatch) -> None:
    expected = [r.path for r in lb.load_results([results_dir], warn=_quiet)]
    assert [r.path for r in lb.load_results(str(results_dir), warn=_quiet)] == expected
    assert [r.path for r in lb.load_results(results_dir, warn=_quiet)] == expected

    class Location:  # any os.PathLike
        def __fspath__(self) -> str:
            return str(results_dir)

    assert [r.path for r in lb.load_results(Location(), warn=_quiet)] == expected
    monkeypatch.chdir(results_dir.parent)
    assert [r.path.resolve() for r in lb.load_results("results", warn=_quiet)] == expected


def test_tables_refuse_results_counted_twice_or_none(results_dir: Path) -> None:
    # Two loads of overlapping folders: each load is free of duplicates, their sum is not.
    twice = lb.load_results([results_dir], warn=_quiet) + lb.load_results([results_dir / "full"], warn=_quiet)
    with pytest.raises(InputError, match="duplicate result for method="):
        lb.leaderboard_table(twice)
    with pytest.raises(InputError, match="no results to tabulate"):
        lb.leaderboard_table([])


def test_the_ranking_column_may_spell_its_limit_any_way_and_must_exist(table: pd.DataFrame) -> None:
    default = lb.summary_table(table)
    pd.testing.assert_frame_equal(lb.summary_table(table, rank_by="rho@0.30"), default)
    assert lb.summary_table(table, rank_by="aupro@0.1")["rank"].notna().any()
    with pytest.raises(InputError, match=r"cannot rank by 'rho@0.2': no such column \(rank by i_auroc, p_auroc or "
                                         r"a metric at an FPR limit: aupro@L, .*rho@L; L among 0.01, 0.05, 0.1, 0.3\)"):
        lb.summary_table(table, rank_by="rho@0.2")
    with pytest.raises(InputError, match="cannot rank by 'nonexistent'"):
        lb.summary_table(table, rank_by="nonexistent")


@pytest.mark.parametrize("column", ["method", "category", "source", "pretrained_backbone", "seed", "settings",
                                    "eval_size", "n_images", "size_q25_px"])
def test_the_ranking_column_must_be_a_metric(table: pd.DataFrame, column: str) -> None:
    # summary_table documents an InputError for a rank_by that is no metric column: a column of names or settings
    # raised a TypeError (method, pretrained_backbone, seed) or silently ranked nothing (source, category).
    assert column in table.columns
    with pytest.raises(InputError, match=rf"cannot rank by '{column}': not a metric column \(rank by i_auroc, "):
        lb.summary_table(table, rank_by=column)
    assert lb.summary_table(table, rank_by="i_auroc")["rank"].notna().any()


def test_columns_are_flattened_in_documented_order(table: pd.DataFrame) -> None:
    columns = list(table.columns)
    assert columns[:4] == ["method", "dataset", "protocol", "category"]
    expected_in_order = [
        "i_auroc", "p_auroc", "aupro@0.3", "aupro@0.1", "aupro@0.05", "aupro@0.01",
        "aupro_cum_Q1@0.3", "aupro_cum_Q4@0.01", "aupro_q_Q1@0.3", "aupro_q_Q4@0.01",
        "aupro_area_1-64@0.3", "aupro_area_1-64@0.01", "n_defects_area_1-64", "aupro_area_64-256@0.3",
        "aupro_area_16384-inf@0.3", "n_defects_area_16384-inf", "rho@0.3", "rho@0.01",
        "size_q25_px", "size_q50_px", "size_q75_px", "n_images", "n_defective_images", "n_defects",
        "pretrained_backbone", "fit_s", "predict_ms_per_image", "peak_host_memory_mb", "source",
    ]
    positions = [columns.index(c) for c in expected_in_order]
    assert positions == sorted(positions)


def test_flattened_values_and_nulls(table: pd.DataFrame) -> None:
    assert len(table) == 6
    row = _row(table, method="alpha", protocol="full", category="cat_a")
    assert row["aupro@0.3"] == pytest.approx(0.8)
    assert row["aupro@0.1"] == pytest.approx(0.4)
    assert row["aupro_cum_Q2@0.3"] == pytest.approx(0.5)
    assert row["aupro_q_Q4@0.05"] == pytest.approx(0.9 / 4)
    assert row["aupro_area_64-256@0.3"] == pytest.approx(0.4)
    assert row["n_defects_area_1-64"] == 3
    assert row["size_q50_px"] == pytest.approx(150.5)
    assert row["fit_s"] == pytest.approx(10.0)
    assert bool(row["pretrained_backbone"]) is True
    empty = _row(table, method="beta", protocol="full", category="cat_b")
    assert math.isnan(empty["aupro_area_1024-4096@0.3"])  # null bin stays NaN, never 0
    assert empty["n_defects_area_1024-4096"] == 0
    assert math.isnan(empty["rho@0.3"])
    assert math.isnan(empty["p_auroc"])
    assert math.isnan(empty["fit_s"])  # no timing in this result
    low = _row(table, method="alpha", protocol="lowres@256", category="cat_a")
    assert low["eval_size"] == 256
    assert low["pro_thresholds"] == "exact"


def test_summary_is_nan_aware_and_ranked(table: pd.DataFrame) -> None:
    warnings: list[str] = []
    summary = lb.summary_table(table, warn=warnings.append)
    ranks = [(m, p, None if pd.isna(r) else int(r)) for m, p, r in summary[["method", "protocol", "rank"]].itertuples(
        index=False, name=None)]
    # beta has no rho@0.3 in cat_b: a mean over fewer categories is listed, not ranked, and a warning says so.
    assert ranks == [("alpha", "full", 1), ("beta", "full", None), ("alpha", "lowres@256", 1)]
    assert list(summary["complete"]) == [True, False, True]
    assert warnings == ["beta (synthetic, full) has no rho@0.3 for cat_b, where other methods have one, so it is "
                        "not ranked"]
    alpha = _row(summary, method="alpha", protocol="full")
    assert alpha["n_categories"] == 2
    assert alpha["aupro@0.3"] == pytest.approx(0.7)
    assert alpha["rho@0.3"] == pytest.approx(0.4)
    assert alpha["i_auroc"] == pytest.approx(0.9)
    assert alpha["aupro_area_1-64@0.3"] == pytest.approx(0.15)
    assert alpha["aupro_area_256-1024@0.3"] == pytest.approx(0.6)  # mean of the one available value
    assert alpha["n_defects_area_1-64"] == 7  # counts are summed over categories
    assert alpha["n_defects"] == 15
    assert alpha["fit_s"] == pytest.approx(15.0)
    beta = _row(summary, method="beta", protocol="full")
    assert beta["rho@0.3"] == pytest.approx(0.6)  # cat_b's null rho is left out, not counted as 0
    assert beta["p_auroc"] == pytest.approx(0.97)
    assert bool(beta["pretrained_backbone"]) is False
    assert math.isnan(beta["fit_s"])


def test_summary_adds_exactly_the_columns_timing_keys_are_kept_from(table: pd.DataFrame) -> None:
    # Timing keys named like a column that only the summary has are renamed (timing_rank): the list they are
    # checked against must be every column summary_table adds, or a new one could be overwritten by a key.
    added = set(lb.summary_table(table).columns) - set(table.columns)
    assert added == set(lb._SUMMARY_ONLY)


def test_summary_unranked_entry_comes_last(helpers, tmp_path: Path) -> None:
    files = [
        helpers.write_result(tmp_path / "a.json", helpers.make_result("a", "c", rho=None)),
        helpers.write_result(tmp_path / "b.json", helpers.make_result("b", "c", rho=0.1)),
    ]
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    assert list(summary["method"]) == ["b", "a"]
    assert summary["rank"].iloc[0] == 1 and pd.isna(summary["rank"].iloc[1])


def test_protocol_gap_is_paired_per_area_bin(table: pd.DataFrame) -> None:
    gap = lb.protocol_gap_table(table)
    assert gap is not None
    assert set(gap["method"]) == {"alpha"}  # beta has no lowres result
    assert set(zip(gap["protocol_full"], gap["protocol_lowres"], strict=True)) == {("full", "lowres@256")}
    expected = {  # bin: (n_categories, full, lowres, gap)
        "all": (2, 0.7, 0.6, 0.1),
        "1-64": (2, 0.15, 0.0, 0.15),
        "64-256": (2, 0.35, 0.15, 0.2),
        "256-1024": (1, 0.6, 0.5, 0.1),
        "16384-inf": (1, 1.0, 1.0, 0.0),
    }
    for label, (count, full, low, diff) in expected.items():
        row = _row(gap, area_bin=label)
        assert row["n_categories"] == count
        assert row["aupro_full@0.3"] == pytest.approx(full)
        assert row["aupro_lowres@0.3"] == pytest.approx(low)
        assert row["gap@0.3"] == pytest.approx(diff)
    assert _row(gap, area_bin="1-64")["max_px"] == 64
    assert pd.isna(_row(gap, area_bin="16384-inf")["max_px"])
    # Without metrics.original_defects the lowres side is read on its own (resized) defects.
    assert set(gap["lowres_defects"]) == {"resized"}
    assert gap["n_lost_lowres"].isna().all()
    assert _row(gap, area_bin="1-64")["n_defects_lowres"] == 7


def test_no_gap_without_both_protocols(table: pd.DataFrame) -> None:
    assert lb.protocol_gap_table(table[table["protocol"] == "full"]) is None


@pytest.mark.parametrize(
    "protocol, label",
    [
        ({"name": "full", "eval_size": None, "pro_thresholds": "exact"}, "full"),
        ({"name": "full", "eval_size": None, "pro_thresholds": "l2bt"}, "full/l2bt"),
        ({"name": "lowres", "eval_size": 256, "pro_thresholds": "exact"}, "lowres@256"),
        ({"name": "lowres", "eval_size": 512, "pro_thresholds": "l2bt"}, "lowres@512/l2bt"),
        ({"name": "lowres", "eval_size": 256.0, "pro_thresholds": None}, "lowres@256"),
        ({"name": "lowres", "eval_size": 256}, "lowres@256"),  # no pro_thresholds key
        ({"name": "full"}, "full"),
        ("lowres", "lowres"),  # a bare string stays as it is
        ("full/l2bt", "full/l2bt"),
    ],
)
def test_protocol_label(protocol, label: str) -> None:
    assert lb.protocol_label(protocol) == label


@pytest.mark.parametrize(
    "label, base, counterpart",
    [
        ("full", "full", "full"),
        ("full/l2bt", "full", "full/l2bt"),
        ("lowres", "lowres", "full"),
        ("lowres@256", "lowres", "full"),
        ("lowres@512/l2bt", "lowres", "full/l2bt"),
    ],
)
def test_protocol_base_and_full_counterpart(label: str, base: str, counterpart: str) -> None:
    assert lb.protocol_base(label) == base
    assert lb.full_counterpart(label) == counterpart


def test_protocol_order_sorts_lowres_by_eval_size() -> None:
    labels = ["other", "lowres@512", "full/l2bt", "lowres@256/l2bt", "full", "lowres@256", "lowres@1024", "full"]
    assert lb.protocol_order(labels) == [
        "full", "full/l2bt", "lowres@256", "lowres@256/l2bt", "lowres@512", "lowres@1024", "other"]
    # A bare-string protocol (another tool's result) may hold a size that is no number: first of its family.
    assert lb.protocol_order(["lowres@512", "other", "lowres@big", "full"]) == [
        "full", "lowres@big", "lowres@512", "other"]


def _variant_results(helpers, tmp_path: Path) -> list[Path]:
    """Two methods, one category, scored as full, full/l2bt, lowres@256 and lowres@1024 (rho@0.3 below)."""
    specs = {  # file name: (method, protocol, eval_size, pro_thresholds, rho)
        "a_full": ("a", "full", 256, "exact", 0.5),
        "b_full": ("b", "full", 256, "exact", 0.6),
        "a_full_l2bt": ("a", "full", 256, "l2bt", 0.7),
        "b_full_l2bt": ("b", "full", 256, "l2bt", 0.4),
        "a_low256": ("a", "lowres", 256, "exact", 0.3),
        "a_low1024": ("a", "lowres", 1024, "exact", 0.2),
        "b_low1024": ("b", "lowres", 1024, "exact", 0.25),
    }
    return [
        helpers.write_result(tmp_path / "r" / f"{name}.json", helpers.make_result(
            method, "c", protocol=protocol, eval_size=size, pro_thresholds=thresholds, rho=rho))
        for name, (method, protocol, size, thresholds, rho) in specs.items()
    ]


def test_protocol_variants_load_together_and_rank_separately(helpers, tmp_path: Path) -> None:
    table = lb.leaderboard_table(lb.load_results(_variant_results(helpers, tmp_path)))
    # Rows of a method follow the protocol order (lowres@256 before lowres@1024, not alphabetical).
    assert list(table.loc[table["method"] == "a", "protocol"]) == [
        "full", "full/l2bt", "lowres@256", "lowres@1024"]
    summary = lb.summary_table(table)
    assert list(summary[["protocol", "method", "rank"]].itertuples(index=False, name=None)) == [
        ("full", "b", 1), ("full", "a", 2),
        ("full/l2bt", "a", 1), ("full/l2bt", "b", 2),
        ("lowres@256", "a", 1),
        ("lowres@1024", "b", 1), ("lowres@1024", "a", 2),
    ]
    l2bt = _row(summary, method="a", protocol="full/l2bt")
    assert l2bt["pro_thresholds"] == "l2bt" and pd.isna(l2bt["eval_size"])
    assert l2bt["rho@0.3"] == pytest.approx(0.7)  # not averaged with the exact score
    assert _row(summary, method="b", protocol="lowres@1024")["eval_size"] == 1024


def test_protocol_gap_pairs_labels_with_the_same_thresholds(helpers, tmp_path: Path) -> None:
    specs = {  # file name: (protocol, eval_size, pro_thresholds, aupro@0.3, area bin 1-64 @0.3)
        "full": ("full", 256, "exact", 0.8, 0.4),
        "full_l2bt": ("full", 256, "l2bt", 0.6, 0.3),
        "low256": ("lowres", 256, "exact", 0.75, 0.1),
        "low256_l2bt": ("lowres", 256, "l2bt", 0.5, 0.2),
        "low512": ("lowres", 512, "exact", 0.4, 0.0),
    }
    files = [
        helpers.write_result(tmp_path / f"{name}.json", helpers.make_result(
            "m", "c", protocol=protocol, eval_size=size, pro_thresholds=thresholds, aupro=aupro,
            area=(small, 0.5, 0.6, 0.7, 0.8, 0.9)))
        for name, (protocol, size, thresholds, aupro, small) in specs.items()
    ]
    gap = lb.protocol_gap_table(lb.leaderboard_table(lb.load_results(files)))
    assert gap is not None
    overall = gap[gap["area_bin"] == "all"]
    # One block per low-resolution label, in protocol order, each paired with its thresholds' full label.
    assert list(zip(overall["protocol_full"], overall["protocol_lowres"], strict=True)) == [
        ("full", "lowres@256"), ("full/l2bt", "lowres@256/l2bt"), ("full", "lowres@512")]
    expected = {  # low label: (full aupro, low aupro, gap) for "all", then for bin 1-64
        "lowres@256": ((0.8, 0.75, 0.05), (0.4, 0.1, 0.3)),
        "lowres@256/l2bt": ((0.6, 0.5, 0.1), (0.3, 0.2, 0.1)),  # against full/l2bt, not full (0.3 / 0.2)
        "lowres@512": ((0.8, 0.4, 0.4), (0.4, 0.0, 0.4)),
    }
    for low, by_bin in expected.items():
        for area_bin, (full, lowres, diff) in zip(("all", "1-64"), by_bin, strict=True):
            row = _row(gap, protocol_lowres=low, area_bin=area_bin)
            assert row["n_categories"] == 1
            assert row["aupro_full@0.3"] == pytest.approx(full)
            assert row["aupro_lowres@0.3"] == pytest.approx(lowres)
            assert row["gap@0.3"] == pytest.approx(diff)
    assert list(gap.columns[:5]) == ["method", "dataset", "protocol_full", "protocol_lowres", "area_bin"]


def test_no_gap_without_a_full_result_of_the_same_thresholds(helpers, tmp_path: Path) -> None:
    files = [
        helpers.write_result(tmp_path / "full.json", helpers.make_result("m", "c")),
        helpers.write_result(tmp_path / "low.json", helpers.make_result(
            "m", "c", protocol="lowres", pro_thresholds="l2bt")),
    ]
    assert lb.protocol_gap_table(lb.leaderboard_table(lb.load_results(files))) is None


def test_limit_and_area_labels() -> None:
    assert lb.limit_key("0.30") == "0.3"
    assert lb.limit_key(0.05) == "0.05"
    assert lb.area_label(1, 64) == "1-64"
    assert lb.area_label(16384.0, None) == "16384-inf"


def test_a_category_without_defects_anywhere_blocks_no_ranking(helpers, tmp_path: Path) -> None:
    files = []
    for method, rho in (("alpha", 0.5), ("beta", 0.4)):
        for category in ("cat_a", "cat_b"):
            files.append(helpers.write_result(tmp_path / f"{method}_{category}.json",
                                              helpers.make_result(method, category, rho=rho)))
        no_defects = helpers.make_result(method, "good_only", rho=None)  # no method has rho there
        files.append(helpers.write_result(tmp_path / f"{method}_good_only.json", no_defects))
    files.append(helpers.write_result(tmp_path / "gamma.json", helpers.make_result("gamma", "cat_a", rho=0.9)))
    warnings: list[str] = []
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)), warn=warnings.append)
    ranks = {m: (None if pd.isna(r) else int(r)) for m, r in summary[["method", "rank"]].itertuples(index=False)}
    assert ranks == {"alpha": 1, "beta": 2, "gamma": None}  # gamma has no result for two categories
    assert warnings == ["gamma (synthetic, full) has no result for cat_b, good_only: its means cover fewer "
                        "categories than the other methods', so it is not ranked"]


def test_null_metric_blocks_still_get_columns(helpers, tmp_path: Path) -> None:
    result = helpers.make_result("m", "good_only")
    result["metrics"].update(aupro=None, rho=None, aupro_cumulative=None, aupro_by_area=None,
                             size_quartiles_px=None)
    path = helpers.write_result(tmp_path / "r.json", result)
    table = lb.leaderboard_table(lb.load_results([path]))
    for column in ("aupro@0.3", "rho@0.01", "aupro_cum_Q1@0.3", "size_q25_px"):
        assert math.isnan(table.loc[0, column])


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda r: r["metrics"].update(i_auroc="high"), "metrics.i_auroc"),
        (lambda r: r["metrics"]["aupro"].update({"0.3": True}), "metrics.aupro"),
        (lambda r: r["metrics"]["aupro_by_area"][0].pop("min_px"), "aupro_by_area[0]"),
        (lambda r: r.pop("method"), "'method'"),
        (lambda r: r.update(metrics=[]), "'metrics'"),
        (lambda r: r["metrics"]["pro_curves"]["Q1"].update(pro=[0.0]), "pro_curves.Q1"),
        (lambda r: r["protocol"].update(name="low@res"), "protocol.name"),
        (lambda r: r["protocol"].update(pro_thresholds=99), "protocol.pro_thresholds"),
        (lambda r: r["metrics"].update(original_defects=[]), "metrics.original_defects"),
        (lambda r: r["metrics"].update(original_defects={"n_lost_defects": "2"}),
         "metrics.original_defects.n_lost_defects"),
        (lambda r: r["metrics"].update(original_defects={"aupro": {"0.3": "high"}}),
         "metrics.original_defects.aupro"),
        (lambda r: r["metrics"].update(original_defects={"aupro_by_area": [{"min_px": 1, "n_lost": None},
                                                                           {"min_px": 64, "n_lost": "x"}]}),
         "metrics.original_defects.aupro_by_area[1].n_lost"),
        (lambda r: r["metrics"].update(n_defects=-3), "metrics.n_defects must be a non-negative integer"),
        (lambda r: r["metrics"].update(n_images=2.5), "metrics.n_images must be a non-negative integer"),
        (lambda r: r["metrics"]["aupro_by_area"][0].update(n_defects=0), "has no defects but an AUPRO"),
        (lambda r: r["protocol"].update(eval_size=-5), "protocol.eval_size must be a positive integer"),
        (lambda r: r["protocol"].update(eval_size=25.5), "protocol.eval_size must be a positive integer"),
        (lambda r: r["protocol"].update(eval_size=0), "protocol.eval_size must be a positive integer"),
        # Incomplete results would silently average a column over fewer categories than the others.
        (lambda r: r["metrics"]["aupro"].pop("0.3"), "metrics.aupro lacks FPR limit 0.3"),
        (lambda r: r["metrics"]["rho"].update({"0.2": 0.5}), "metrics.rho has FPR limit 0.2"),
        (lambda r: r["metrics"]["aupro"].update({"0.30": 0.5}), "metrics.aupro names one FPR limit twice"),
        (lambda r: r["metrics"]["aupro_cumulative"]["Q1"].pop("0.01"),
         "metrics.aupro_cumulative.Q1 lacks FPR limit 0.01"),
        (lambda r: r["metrics"]["aupro_quartile"].pop("Q4"), "metrics.aupro_quartile lacks bin Q4"),
        (lambda r: r["metrics"]["aupro_quartile"].update(Q5=None), "metrics.aupro_quartile has an unknown bin 'Q5'"),
        (lambda r: r["metrics"]["aupro_by_area"][0].pop("max_px"), "must hold the area bins 1-64, 64-256"),
        (lambda r: r["metrics"]["aupro_by_area"][0].update(max_px=50), "must hold the area bins"),
        (lambda r: r["metrics"]["aupro_by_area"].pop(2), "must hold the area bins"),
        (lambda r: r["metrics"].pop("rho"), "metrics lacks 'rho'"),
        (lambda r: r["metrics"].pop("p_auroc"), "metrics lacks 'p_auroc'"),
        (lambda r: r["metrics"].pop("n_defects"), "metrics lacks 'n_defects'"),
        (lambda r: r["metrics"].update(original_defects={"n_defects": 3}),
         "metrics.original_defects lacks 'n_lost_defects'"),
    ],
)
def test_malformed_results_name_the_file(helpers, tmp_path: Path, mutate, fragment: str) -> None:
    result = helpers.make_result("m", "c")
    mutate(result)
    path = helpers.write_result(tmp_path / "bad.json", result)
    with pytest.raises(InputError) as info:
        lb.load_results([tmp_path])  # malformed v1 results are errors even inside a folder
    assert info.value.path == path
    assert fragment in info.value.problem


# --------------------------------------------------------------------------------------------------
# metrics.original_defects (lowres results scored per original-resolution defect)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def original_table(original_results_dir: Path) -> pd.DataFrame:
    return lb.leaderboard_table(lb.load_results([original_results_dir]))


def test_original_defects_are_flattened_with_a_prefix(original_table: pd.DataFrame) -> None:
    low = _row(original_table, method="alpha", protocol="lowres@256", category="cat_a")
    assert low["orig_aupro@0.3"] == pytest.approx(0.75)
    assert low["orig_aupro@0.1"] == pytest.approx(0.375)
    assert low["orig_aupro_cum_Q1@0.3"] == pytest.approx(0.3)
    assert low["orig_aupro_q_Q2@0.05"] == pytest.approx(0.6 / 4)
    assert low["orig_aupro_area_1-64@0.3"] == pytest.approx(0.1)
    assert low["orig_n_defects_area_1-64"] == 2
    assert low["orig_n_lost_area_1-64"] == 1
    assert low["orig_rho@0.3"] == pytest.approx(0.4)
    assert (low["orig_size_q50_px"], low["size_q50_px"]) == (150.5, 10.0)  # original vs resized defects
    assert (low["orig_n_defects"], low["orig_n_lost_defects"]) == (9, 1)
    # The resized reading keeps its plain columns.
    assert low["aupro_area_1-64@0.3"] == pytest.approx(0.0)
    assert low["n_defects_area_1-64"] == 3
    other = _row(original_table, method="alpha", protocol="lowres@256", category="cat_b")
    assert math.isnan(other["orig_aupro_area_1-64@0.3"])  # a null bin stays null ...
    assert other["orig_n_defects_area_1-64"] == 0  # ... next to its count of 0
    assert other["orig_n_lost_area_1-64"] == 4
    # Full results have no such block: empty, never 0.
    full = original_table[original_table["protocol"] == "full"]
    original_columns = [c for c in original_table.columns if c.startswith("orig_")]
    assert len(original_columns) == 4 + 2 * 16 + 6 * (4 + 2) + 4 + 3 + 2
    assert full[original_columns].isna().all().all()
    for column in ("orig_n_defects", "orig_n_lost_defects", "orig_n_defects_area_1-64", "orig_n_lost_area_1-64"):
        assert original_table[column].dtype == "Int64", column


def test_original_columns_follow_the_plain_ones(original_table: pd.DataFrame) -> None:
    columns = list(original_table.columns)
    expected_in_order = [
        "aupro@0.3", "rho@0.01", "n_defects", "pretrained_backbone",
        "orig_aupro@0.3", "orig_aupro@0.01", "orig_aupro_cum_Q1@0.3", "orig_aupro_q_Q4@0.01",
        "orig_aupro_area_1-64@0.3", "orig_aupro_area_1-64@0.01", "orig_n_defects_area_1-64",
        "orig_n_lost_area_1-64", "orig_aupro_area_64-256@0.3", "orig_n_lost_area_16384-inf", "orig_rho@0.3",
        "orig_size_q25_px", "orig_size_q75_px", "orig_n_defects", "orig_n_lost_defects", "fit_s", "source",
    ]
    positions = [columns.index(c) for c in expected_in_order]
    assert positions == sorted(positions)


def test_results_without_the_block_get_no_original_columns(table: pd.DataFrame) -> None:
    assert not [c for c in table.columns if c.startswith("orig_")]
    assert not lb.has_original_defects(table).any()


def test_summary_sums_and_averages_original_columns(original_table: pd.DataFrame) -> None:
    summary = lb.summary_table(original_table)
    low = _row(summary, method="alpha", protocol="lowres@256")
    assert low["orig_aupro@0.3"] == pytest.approx(0.65)
    assert low["orig_aupro_area_1-64@0.3"] == pytest.approx(0.1)  # cat_b's null bin is left out
    assert low["orig_aupro_area_64-256@0.3"] == pytest.approx(0.3)
    assert (low["orig_n_defects"], low["orig_n_lost_defects"]) == (10, 5)  # counts are summed
    assert (low["orig_n_defects_area_1-64"], low["orig_n_lost_area_1-64"]) == (2, 5)
    assert summary["orig_n_defects"].dtype == "Int64"
    assert pd.isna(_row(summary, method="alpha", protocol="full")["orig_n_defects"])


def test_protocol_gap_compares_the_same_original_defects(original_table: pd.DataFrame) -> None:
    gap = lb.protocol_gap_table(original_table)
    assert gap is not None
    assert list(gap.columns) == [
        "method", "dataset", "protocol_full", "protocol_lowres", "area_bin", "min_px", "max_px",
        "n_categories", "lowres_defects", "n_defects_full", "n_defects_lowres", "n_lost_lowres",
        "aupro_full@0.3", "aupro_lowres@0.3", "gap@0.3"]
    assert set(gap["lowres_defects"]) == {"original"}
    expected = {  # bin: (n_categories, full, lowres, gap, n_full, n_lowres, n_lost)
        "all": (2, 0.7, 0.65, 0.05, 15, 10, 5),  # orig_aupro@0.3 against aupro@0.3
        "1-64": (1, 0.2, 0.1, 0.1, 7, 2, 5),  # cat_b's defects of this bin are all lost: null, not paired
        "64-256": (2, 0.35, 0.3, 0.05, 3, 3, 0),
        "256-1024": (1, 0.6, 0.6, 0.0, 2, 2, 0),
    }
    for label, (count, full, low, diff, n_full, n_low, n_lost) in expected.items():
        row = _row(gap, area_bin=label)
        assert row["n_categories"] == count, label
        assert row["aupro_full@0.3"] == pytest.approx(full)
        assert row["aupro_lowres@0.3"] == pytest.approx(low)
        assert row["gap@0.3"] == pytest.approx(diff)
        assert (row["n_defects_full"], row["n_defects_lowres"], row["n_lost_lowres"]) == (n_full, n_low, n_lost)
    # Same defects under both protocols: present plus lost is the full count in every bin.
    assert (gap["n_defects_lowres"] + gap["n_lost_lowres"] == gap["n_defects_full"]).all()


def test_protocol_gap_reads_resized_defects_unless_every_category_has_the_block(
    helpers, original_results_dir: Path
) -> None:
    # Re-write cat_b's lowres result without the block: mixing readings in one mean would be wrong.
    spec = helpers.specs["alpha_lowres_cat_b"]
    helpers.write_result(original_results_dir / "alpha_lowres_cat_b.json", helpers.make_result(**spec))
    table = lb.leaderboard_table(lb.load_results([original_results_dir]))
    gap = lb.protocol_gap_table(table)
    assert gap is not None
    assert set(gap["lowres_defects"]) == {"resized"}
    assert gap["n_lost_lowres"].isna().all()
    row = _row(gap, area_bin="1-64")
    assert (row["n_categories"], row["aupro_lowres@0.3"], row["gap@0.3"]) == (2, pytest.approx(0.0),
                                                                                pytest.approx(0.15))
    assert _row(gap, area_bin="all")["aupro_lowres@0.3"] == pytest.approx(0.6)


def test_csv_keeps_values_to_1e_9_and_hides_float_noise(tmp_path: Path) -> None:
    frame = pd.DataFrame({"fit_s": [43.760333333], "size_q25_px": [62.416666667], "aupro@0.3": [0.8999999999999999]})
    path = lb.write_csv(frame, tmp_path / "t.csv")
    back = pd.read_csv(path)
    assert abs(back["fit_s"][0] - 43.760333333) < 1e-9 and abs(back["size_q25_px"][0] - 62.416666667) < 1e-9
    assert path.read_text().splitlines()[1].endswith(",0.9")


def test_csv_floats_keep_15_significant_digits_not_an_absolute_1e_15(tmp_path: Path) -> None:
    # docs/leaderboard.md ("Numbers"): 15 significant digits keep a value within a relative 1e-14, and a score
    # between 0 and 1 within 1e-15; a larger value (a timing, a defect size) is not kept within 1e-15 absolute.
    import csv
    import random

    rng = random.Random(7)
    scores = [rng.random() for _ in range(200)] + [0.30000000000000004, 1.0, 0.0]
    large = [rng.uniform(1.0, 10.0) * 10.0 ** rng.randint(0, 6) for _ in range(200)]
    frame = pd.DataFrame({"aupro@0.3": scores, "fit_s": large + [1.0] * (len(scores) - len(large))})
    path = lb.write_csv(frame, tmp_path / "t.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    back_scores = [float(row["aupro@0.3"]) for row in rows]
    back_large = [float(row["fit_s"]) for row in rows][: len(large)]
    assert max(abs(b - v) for b, v in zip(back_scores, scores, strict=True)) < 1e-15
    assert all(abs(b - v) <= 1e-14 * abs(v) for b, v in zip(back_large, large, strict=True))
    assert max(abs(b - v) for b, v in zip(back_large, large, strict=True)) > 1e-15


def test_summary_means_over_three_categories_and_ranks_ties_alike(helpers, tmp_path: Path) -> None:
    files = []
    # Binary fractions, so that the tie is exact: alpha's mean is 0.5 (its median would be 0.25).
    rhos = {"alpha": (0.25, 0.25, 1.0), "beta": (0.5, 0.5, 0.5), "gamma": (0.375, 0.375, 0.375)}
    for method, values in rhos.items():
        for category, rho in zip(("cat_a", "cat_b", "cat_c"), values, strict=True):
            files.append(helpers.write_result(tmp_path / f"{method}_{category}.json",
                                              helpers.make_result(method, category, rho=rho)))
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    means = dict(zip(summary["method"], summary["rho@0.3"], strict=True))
    assert means == {"alpha": 0.5, "beta": 0.5, "gamma": 0.375}
    ranks = dict(zip(summary["method"], summary["rank"].astype(int), strict=True))
    assert ranks == {"alpha": 1, "beta": 1, "gamma": 3}  # a tie shares the best rank; the next one skips


def test_categories_run_with_other_seeds_or_options_are_shown_as_mixed_and_warned(helpers, tmp_path: Path) -> None:
    settings = {("alpha", "c1"): (7, {"epochs": 2, "device": "cpu"}),
                ("alpha", "c2"): (7, {"epochs": 2, "device": "cuda"}),  # another device: same settings
                ("beta", "c1"): (7, {"epochs": 2}), ("beta", "c2"): (8, {"epochs": 3}),
                ("gamma", "c1"): (7, {"epochs": 2, "seed": 7}), ("gamma", "c2"): (8, {"epochs": 2, "seed": 8})}
    files = []
    for (method, category), (seed, options) in settings.items():
        result = helpers.make_result(method, category)
        result.update(seed=seed, method_options=options)
        files.append(helpers.write_result(tmp_path / f"{method}_{category}.json", result))
    table = lb.leaderboard_table(lb.load_results(files))
    alpha, beta = table[table.method == "alpha"], table[table.method == "beta"]
    assert list(alpha["seed"]) == [7, 7] and alpha["settings"].nunique() == 1
    assert beta["settings"].nunique() == 2 and re.fullmatch("s[0-9a-f]{8}", beta["settings"].iloc[0])
    warnings: list[str] = []
    lb.warn_mixed_settings(table, warnings.append)
    assert warnings == ["beta (synthetic, full): its categories were run with different seeds and method options "
                        "(columns seed, settings of leaderboard.csv), so its means mix them",
                        "gamma (synthetic, full): its categories were run with different seeds "
                        "(columns seed, settings of leaderboard.csv), so its means mix them"]
    summary = lb.summary_table(table).set_index("method")
    assert summary.loc["alpha", "seed"] == 7 and summary.loc["beta", "seed"] == "mixed"
    assert summary.loc["beta", "settings"] == "mixed" and summary.loc["alpha", "settings"] == alpha["settings"].iloc[0]


def test_maps_of_a_moved_run_folder_are_found_beside_its_results(helpers, tmp_path: Path) -> None:
    gone = tmp_path / "old_place" / "m" / "synthetic" / "maps"  # where the run was made; moved since
    run = tmp_path / "new_place" / "m" / "synthetic"
    (run / "maps").mkdir(parents=True)
    result = helpers.make_result("m", "c", maps_dir=str(gone))
    moved = lb.load_results([helpers.write_result(run / "results" / "c.json", result)])[0]
    assert moved.resolve_path("maps_dir") == run / "maps"
    gone.mkdir(parents=True)  # the original folder exists: it is the one named
    assert moved.resolve_path("maps_dir") == gone
    elsewhere = lb.load_results([helpers.write_result(tmp_path / "loose" / "c.json", result)])[0]
    gone.rmdir()
    assert elsewhere.resolve_path("maps_dir") == gone  # not a run layout: nothing to fall back to


@pytest.mark.parametrize("third", [True, None])  # a null says nothing: it is not taken for random
def test_random_backbones_are_warned_once_per_kind(helpers, tmp_path: Path, third: bool | None) -> None:
    backbones = {("alpha", "c1"): False, ("alpha", "c2"): False,  # random everywhere
                 ("beta", "c1"): True, ("beta", "c2"): False,  # random in one category
                 ("gamma", "c1"): True, ("gamma", "c2"): third,  # pretrained (or not said)
                 ("delta", "c1"): False, ("delta", "c2"): None}  # random wherever it is said
    files = [helpers.write_result(tmp_path / f"{method}_{category}.json",
                                  helpers.make_result(method, category, pretrained=pretrained))
             for (method, category), pretrained in backbones.items()]
    table = lb.leaderboard_table(lb.load_results(files))
    warnings: list[str] = []
    lb.warn_random_backbones(table, warnings.append)
    assert warnings == ["random backbone weights in alpha (synthetic, full), delta (synthetic, full): these numbers "
                        "only show that the pipeline runs and are not meaningful",
                        "random backbone weights in some categories of beta (synthetic, full): their means mix "
                        "pretrained and random backbones"]
    pretrained_only = table[table.method == "gamma"]
    warnings.clear()
    lb.warn_random_backbones(pretrained_only, warnings.append)
    assert warnings == []


def test_settings_ignore_where_and_how_fast_a_result_was_computed_but_not_what() -> None:
    same = [{"epochs": 2, "device": "cpu", "num_workers": 4, "seed": 1},
            {"epochs": 2, "device": "cuda", "num_workers": 0, "tmp_dir": "/scratch", "seed": 2}]
    assert lb.settings_id(same[0]) == lb.settings_id(same[1])
    for other in ({"epochs": 3}, {"epochs": 2, "teacher_precision": "fp8"}, {"epochs": 2, "weights": "b.pth"}):
        assert lb.settings_id(other) != lb.settings_id(same[0])
    assert lb.settings_id(None) is None
    # Options recorded in another order (another version, a hand-written file) are the same settings.
    assert lb.settings_id({"epochs": 2, "lr": 0.1}) == lb.settings_id({"lr": 0.1, "epochs": 2})


def test_methods_scored_on_different_test_sets_are_warned_about(helpers, tmp_path: Path) -> None:
    # Before: results of two generated datasets (other --seed) under one dataset name were ranked side by side
    # without a word, although their test sets hold other defects.
    files = []
    for method, n_images in (("alpha", 10), ("beta", 12)):
        for category in ("c1", "c2"):
            result = helpers.make_result(method, category, n_images=n_images if category == "c1" else 10)
            files.append(helpers.write_result(tmp_path / f"{method}_{category}.json", result))
    table = lb.leaderboard_table(lb.load_results(files))
    warnings: list[str] = []
    lb.warn_mixed_test_sets(table, warnings.append)
    assert len(warnings) == 1
    assert warnings[0].startswith("synthetic, full: methods were scored on different test sets in c1 (alpha: 10/")
    assert "; beta: 12/" in warnings[0] and "c2" not in warnings[0]
    # The same test set everywhere: no warning.
    warnings.clear()
    lb.warn_mixed_test_sets(table[table.category == "c2"], warnings.append)
    assert warnings == []
    # The same counts, other defect sizes (another --size): other test sets too.
    resized = helpers.make_result("beta", "c2", sizes=[10.0, 20.0, 30.0])
    helpers.write_result(tmp_path / "beta_c2.json", resized)
    table = lb.leaderboard_table(lb.load_results(files))
    lb.warn_mixed_test_sets(table[table.category == "c2"], warnings.append)
    assert len(warnings) == 1 and "c2 (alpha: 10/" in warnings[0] and "/10/20/30" in warnings[0]


def test_a_plugins_recorded_resource_options_are_not_settings(helpers, tmp_path: Path) -> None:
    # Before: only the built-in methods' names were known, so a plug-in run with another thread count in one
    # category was reported as mixing settings.
    files = []
    for category, options in (("c1", {"epochs": 2, "threads": 8}), ("c2", {"epochs": 2, "threads": 1})):
        result = helpers.make_result("alpha", category)
        result.update(seed=0, method_options=options, resource_options=["threads"])
        files.append(helpers.write_result(tmp_path / f"{category}.json", result))
    table = lb.leaderboard_table(lb.load_results(files))
    warnings: list[str] = []
    lb.warn_mixed_settings(table, warnings.append)
    assert warnings == [] and table["settings"].nunique() == 1
    assert lb.settings_id({"epochs": 2, "threads": 8}) != lb.settings_id({"epochs": 2, "threads": 1})
    # Another value of an option the method did not declare is other settings.
    result = helpers.make_result("alpha", "c2")
    result.update(seed=0, method_options={"epochs": 3, "threads": 1}, resource_options=["threads"])
    helpers.write_result(tmp_path / "c2.json", result)
    lb.warn_mixed_settings(lb.leaderboard_table(lb.load_results(files)), warnings.append)
    assert len(warnings) == 1


def test_seeds_of_any_size_are_kept_exactly(helpers, tmp_path: Path) -> None:
    files = []
    for category, seed in (("c1", 2**60 + 1), ("c2", 2**60), ("c3", None)):  # c3: a result of score
        result = helpers.make_result("alpha", category)
        result.pop("seed", None)
        if seed is not None:
            result.update(seed=seed, method_options={"epochs": 2})
        files.append(helpers.write_result(tmp_path / f"{category}.json", result))
    table = lb.leaderboard_table(lb.load_results(files))
    assert list(table["seed"]) == [2**60 + 1, 2**60, None]  # float64 would make them one number
    warnings: list[str] = []
    lb.warn_mixed_settings(table, warnings.append)
    assert len(warnings) == 1 and "different seeds" in warnings[0]
    path = lb.write_csv(table, tmp_path / "t.csv")
    assert f",{2**60 + 1}," in path.read_text()
    assert lb.summary_table(table).loc[0, "seed"] == "mixed"
    # Small seeds beside a missing one stay integers, and a huge one stays exact (float() would overflow).
    for category, seed in (("c1", 0), ("c2", 10**400), ("c3", 1.5)):  # c3: no integer, so no seed
        result = helpers.make_result("alpha", category)
        result.update(seed=seed)
        helpers.write_result(tmp_path / f"{category}.json", result)
    table = lb.leaderboard_table(lb.load_results(files))
    assert list(table["seed"]) == [0, 10**400, None]
    assert ",0," in lb.write_csv(table, tmp_path / "t.csv").read_text().splitlines()[1]


def test_summary_seeds_stay_exact_beside_a_method_without_one(helpers, tmp_path: Path) -> None:
    files = []
    for method, seed in (("alpha", 2**60 + 1), ("beta", None), ("gamma", 7)):
        for category in ("c1", "c2"):
            result = helpers.make_result(method, category)
            result["seed"] = seed
            files.append(helpers.write_result(tmp_path / f"{method}_{category}.json", result))
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files))).set_index("method")
    assert summary.loc["alpha", "seed"] == 2**60 + 1 and summary.loc["gamma", "seed"] == 7
    assert summary.loc["beta", "seed"] is None
    text = lb.write_csv(summary.reset_index(), tmp_path / "s.csv").read_text()
    assert f",{2**60 + 1}," in text and ",7," in text


def test_each_dataset_is_ranked_on_its_own(helpers, tmp_path: Path) -> None:
    rhos = {("a", "visa"): 0.875, ("b", "visa"): 0.75, ("a", "mvtec_ad"): 0.25, ("b", "mvtec_ad"): 0.5}
    files = [helpers.write_result(tmp_path / f"{method}_{dataset}.json",
                                  helpers.make_result(method, "c", dataset=dataset, rho=rho))
             for (method, dataset), rho in rhos.items()]
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    # b's 0.5 on mvtec_ad is its dataset's best even though a scores 0.875 on visa.
    assert list(summary[["dataset", "method", "rank"]].itertuples(index=False, name=None)) == [
        ("mvtec_ad", "b", 1), ("mvtec_ad", "a", 2), ("visa", "a", 1), ("visa", "b", 2)]


def test_a_null_setting_beside_a_known_one_is_not_mixed(helpers, tmp_path: Path) -> None:
    # e.g. one category re-scored with `score` (no seed, no backbone flag) beside one from `run`.
    files = []
    for category, (pretrained, seed) in {"c1": (False, 7), "c2": (None, None)}.items():
        result = helpers.make_result("m", category, pretrained=pretrained)
        result["seed"] = seed
        files.append(helpers.write_result(tmp_path / f"{category}.json", result))
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    assert summary.loc[0, "seed"] == 7 and str(summary.loc[0, "pretrained_backbone"]) == "False"
    assert lb.weights_note(summary["pretrained_backbone"]) == "random weights"  # not "partly random"


@pytest.mark.parametrize("alpha, beta, mean", [
    ((0.1, 0.2, 0.3), (0.3, 0.2, 0.1), "0.2"),
    # The mean, 0.7922881959755 by hand, ends in a 5 at the 13th decimal: the two sums lie either side of it
    # (0.7922881959754999 and 0.7922881959755), so rounded to 12 decimals they would differ.
    ((0.5217783739581, 0.8812032469495, 0.9738829670189), (0.5217783739581, 0.9738829670189, 0.8812032469495),
     "0.7922881959755"),
])
def test_equal_means_of_decimal_values_tie_whatever_the_categories_order(helpers, tmp_path: Path, alpha, beta,
                                                                         mean) -> None:
    # alpha and beta have the same rho values in other categories: their means are equal (by hand), although
    # (0.1 + 0.2) + 0.3 and (0.3 + 0.2) + 0.1, say, differ in the last bit of a float.
    rhos = {"alpha": alpha, "beta": beta, "gamma": (0.1, 0.1, 0.1)}
    files = [helpers.write_result(tmp_path / f"{method}_{category}.json",
                                  helpers.make_result(method, category, rho=rho))
             for method, values in rhos.items()
             for category, rho in zip(("cat_a", "cat_b", "cat_c"), values, strict=True)]
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    ranks = dict(zip(summary["method"], summary["rank"].astype(int), strict=True))
    assert ranks == {"alpha": 1, "beta": 1, "gamma": 3}
    lb.write_csv(summary, tmp_path / "summary.csv")
    written = pd.read_csv(tmp_path / "summary.csv", dtype=str).set_index("method")
    assert written.loc["alpha", "rho@0.3"] == written.loc["beta", "rho@0.3"] == mean


def _limit_renamed(value: Any, old: str, new: str) -> Any:
    """``value`` (a result's JSON) with every FPR-limit key ``old`` renamed to ``new``."""
    if isinstance(value, dict):
        return {(new if key == old else key): _limit_renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_limit_renamed(item, old, new) for item in value]
    return value


def test_results_scored_without_the_default_limit_are_listed_unranked_unless_ranked_by_theirs(
    helpers, tmp_path: Path
) -> None:
    files = []
    for method, rho in (("a", 0.4), ("b", 0.6)):
        result = _limit_renamed(helpers.make_result(method, "c", rho=rho), "0.3", "0.2")
        result["protocol"]["fpr_limits"] = [0.2, 0.1, 0.05, 0.01]
        result["metrics"]["pro_curves"]["fpr_limit"] = 0.2
        files.append(helpers.write_result(tmp_path / f"{method}.json", result))
    table = lb.leaderboard_table(lb.load_results(files))
    assert "rho@0.3" not in table.columns and "rho@0.2" in table.columns
    # The default ranking column is missing from every result: nothing is ranked, and that is no error.
    summary = lb.summary_table(table)
    assert list(summary["method"]) == ["a", "b"] and summary["rank"].isna().all()
    assert list(summary["rho@0.2"]) == [pytest.approx(0.4), pytest.approx(0.6)]
    ranked = lb.summary_table(table, rank_by="rho@0.20")
    assert list(ranked["method"]) == ["b", "a"] and list(ranked["rank"]) == [1, 2]
    # A limit that is no number names no column: the same error as any other unknown column.
    with pytest.raises(InputError, match="cannot rank by 'rho@high': no such column"):
        lb.summary_table(table, rank_by="rho@high")


def test_a_timing_key_renamed_away_from_a_column_does_not_overwrite_another_timing_key(helpers, tmp_path: Path) -> None:
    # "rank" becomes "timing_rank", which the result already has: it goes one prefix further, and both values stay.
    result = helpers.make_result("alpha", "c", timing={"timing_rank": 1.5, "rank": 2.5, "fit_s": 3.0})
    table = lb.leaderboard_table(lb.load_results([helpers.write_result(tmp_path / "a.json", result)]))
    assert table.loc[0, "timing_rank"] == 1.5 and table.loc[0, "timing_timing_rank"] == 2.5
    assert table.loc[0, "fit_s"] == 3.0 and "rank" not in table.columns


def test_a_timing_key_shaped_like_a_metric_at_a_limit_that_is_no_number_is_renamed(helpers, tmp_path: Path) -> None:
    # "aupro@fast" reads as AUPRO at limit "fast": it would stand among the metric columns (and sorting them
    # failed on the limit, a ValueError), so it becomes a timing column like any key posing as a metric.
    result = helpers.make_result("alpha", "c", timing={"aupro@fast": 1.5})
    table = lb.leaderboard_table(lb.load_results([helpers.write_result(tmp_path / "a.json", result)]))
    assert table.loc[0, "timing_aupro@fast"] == 1.5 and "aupro@fast" not in table.columns
