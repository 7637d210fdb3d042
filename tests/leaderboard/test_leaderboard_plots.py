"""Plots of ``adbench_hr.plots``, including the smallest-defect panel on a tiny MVTec-layout dataset."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from matplotlib.text import Text

from adbench_hr import leaderboard as lb
from adbench_hr import plots
from adbench_hr.cli.main import main
from adbench_hr.datasets import MVTecLayoutDataset
from adbench_hr.errors import AdbenchWarning
from adbench_hr.maps import mark_maps_incomplete

SIDE = 96
CATEGORY = "widget"


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


TINY_TEST_IMAGES = 3  # in tiny_dataset; results that name it were scored on these


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """``(dataset_root, maps_dir)``: one good image, one with a 2-px defect, one with a 30-px defect."""
    root, maps = tmp_path / "data", tmp_path / "maps"
    rng = np.random.default_rng(0)
    masks = {"good/000": None, "crack/000": np.zeros((SIDE, SIDE), np.uint8),
             "crack/001": np.zeros((SIDE, SIDE), np.uint8)}
    masks["crack/000"][10, 80:82] = 255  # 2 px, near the right border: the crop must shift inside
    masks["crack/001"][40:45, 30:36] = 255  # 5 x 6 = 30 px
    for key, mask in masks.items():
        defect, stem = key.split("/")
        image = rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
        _write_png(root / CATEGORY / "test" / defect / f"{stem}.png", image)
        score = rng.random((SIDE, SIDE)).astype(np.float32) * 0.2
        if mask is not None:
            _write_png(root / CATEGORY / "ground_truth" / defect / f"{stem}_mask.png", mask)
            score += cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (9, 9), 2.0)
        (maps / CATEGORY / "test" / defect).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(maps / CATEGORY / "test" / defect / f"{stem}.tiff", score)
    _write_png(root / CATEGORY / "train" / "good" / "000.png", rng.integers(0, 255, (SIDE, SIDE, 3), np.uint8))
    return root, maps


def test_smallest_defects_are_sorted_by_component_area(tiny_dataset) -> None:
    root, _ = tiny_dataset
    samples = MVTecLayoutDataset(root, name="folder").test_samples(CATEGORY)
    sites = plots.smallest_defects(samples, k=4)
    assert [s.area_px for s in sites] == [2, 30]
    assert sites[0].sample.sample_id == "test/crack/000"
    assert sites[0].centroid_yx == pytest.approx((10.0, 80.5))
    assert [s.area_px for s in plots.smallest_defects(samples, k=1)] == [2]


def test_crop_window_stays_inside_the_image() -> None:
    assert plots.crop_window((96, 96), (10.0, 80.5), 32) == (slice(0, 32), slice(64, 96))
    assert plots.crop_window((200, 300), (100.0, 150.0), 64) == (slice(68, 132), slice(118, 182))
    assert plots.crop_window((40, 300), (20.0, 10.0), 64) == (slice(0, 40), slice(0, 64))


def test_colour_range_spans_all_crops() -> None:
    norm = plots.colour_range([np.array([[0.2, np.nan]]), None, np.array([[1.5, 0.7]])])
    assert (norm.vmin, norm.vmax) == (pytest.approx(0.2), pytest.approx(1.5))


def test_bin_centres_are_geometric() -> None:
    assert plots.bin_centre(lb.AreaBin("1-64", 1.0, 64.0)) == pytest.approx(8.0)
    assert plots.bin_centre(lb.AreaBin("16384-inf", 16384.0, None)) == pytest.approx(32768.0)


def test_qualitative_panel_through_cli(helpers, tiny_dataset, tmp_path: Path, capsys) -> None:
    root, maps = tiny_dataset
    results = tmp_path / "results"
    common = dict(dataset="folder", dataset_root=str(root), n_images=3)
    helpers.write_result(results / "a.json", helpers.make_result("alpha", CATEGORY, maps_dir=str(maps), **common))
    helpers.write_result(results / "b.json", helpers.make_result("beta", CATEGORY, **common))  # no maps
    helpers.write_result(results / "c.json", helpers.make_result(  # maps folder without this category
        "gamma", CATEGORY, maps_dir=str(tmp_path), **common))
    out = tmp_path / "out"
    rc = main(["leaderboard", str(results), "--out", str(out), "--crop-px", "64"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "qualitative" not in captured.err
    panel = cv2.imread(str(out / "qualitative_smallest_defects.png"))
    assert panel is not None
    # 2 defect rows x 3 columns (image, GT, alpha): a few hundred pixels each way.
    assert panel.shape[1] > 500 and panel.shape[0] > 500

    # A lowres score of the same maps adds no column: the panel keeps its width.
    helpers.write_result(results / "a_low.json", helpers.make_result(
        "alpha", CATEGORY, protocol="lowres", maps_dir=str(maps), **common))
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "out2"), "--crop-px", "64"]) == 0
    again = cv2.imread(str(tmp_path / "out2" / "qualitative_smallest_defects.png"))
    assert again.shape == panel.shape


def test_qualitative_panel_without_maps_is_skipped(helpers, tiny_dataset, tmp_path: Path) -> None:
    root, _ = tiny_dataset
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "beta", CATEGORY, dataset="folder", dataset_root=str(root), n_images=TINY_TEST_IMAGES))
    results = lb.load_results([path])
    with pytest.raises(plots.PlotSkipped, match="no anomaly maps"):
        plots.plot_smallest_defects(results, CATEGORY, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_plots_skip_all_null_metrics(helpers, tmp_path: Path) -> None:
    result = helpers.make_result("m", "c", rho=None, area=(None,) * 6, cumulative=(None,) * 4)
    table = lb.leaderboard_table(lb.load_results([helpers.write_result(tmp_path / "r.json", result)]))
    summary = lb.summary_table(table)
    with pytest.raises(plots.PlotSkipped, match=r"^every per-area AUPRO@0\.3 value is null$"):
        plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    with pytest.raises(plots.PlotSkipped, match=r"^every cumulative-quartile AUPRO@0\.3 value is null$"):
        plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    with pytest.raises(plots.PlotSkipped):
        plots.plot_rho_ranking(summary, tmp_path / "c.png")


def test_size_plots_skipped_at_an_unscored_limit_name_it(helpers, tmp_path: Path) -> None:
    # Results scored at the default limits hold no column at 0.2: the reason names the limit looked at,
    # since the same results do have per-area values at other limits.
    table = lb.leaderboard_table(lb.load_results([helpers.write_result(tmp_path / "r.json",
                                                                       helpers.make_result("m", "c"))]))
    plots.plot_aupro_vs_area(table, tmp_path / "scored.png")  # values at the default limit: drawn
    with pytest.raises(plots.PlotSkipped, match=r"^no per-area AUPRO@0\.2 values in the results$"):
        plots.plot_aupro_vs_area(table, tmp_path / "a.png", limit="0.2")
    with pytest.raises(plots.PlotSkipped, match=r"^no cumulative-quartile AUPRO@0\.2 values in the results$"):
        plots.plot_cumulative_quartiles(table, tmp_path / "b.png", limit="0.2")
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()


def test_plots_render_with_two_lowres_sizes(helpers, tmp_path: Path) -> None:
    variants = {"full": ("full", 256, "exact"), "full_l2bt": ("full", 256, "l2bt"),
                "low256": ("lowres", 256, "exact"), "low512": ("lowres", 512, "exact")}
    files = [
        helpers.write_result(tmp_path / "r" / f"{method}_{name}.json", helpers.make_result(
            method, "c", protocol=protocol, eval_size=size, pro_thresholds=thresholds))
        for method in ("alpha", "beta")
        for name, (protocol, size, thresholds) in variants.items()
    ]
    results = lb.load_results(files)
    table = lb.leaderboard_table(results)
    summary = lb.summary_table(table)
    drawn = [
        plots.plot_aupro_vs_area(table, tmp_path / "a.png"),
        plots.plot_cumulative_quartiles(table, tmp_path / "b.png"),
        plots.plot_rho_ranking(summary, tmp_path / "c.png"),
        plots.plot_pro_curves(results, "c", tmp_path / "d.png"),
    ]
    for path in drawn:
        assert cv2.imread(str(path)) is not None, path
    # Styles follow the label's base name; a second label of the same base gets a variant.
    order = lb.protocol_order(table["protocol"])
    assert order == ["full", "full/l2bt", "lowres@256", "lowres@512"]
    assert [plots._linestyle(p, order) for p in order[::2]] == ["-", "--"]
    assert [plots._hatch(p, order) for p in order[::2]] == ["", "//"]
    assert plots._linestyle("lowres@512", order) not in ("-", "--")
    assert plots._hatch("lowres@512", order) not in ("", "//")
    assert plots._linestyle("full/l2bt", order) not in ("-", "--")
    assert plots._hatch("full/l2bt", order) not in ("", "//")


def test_bin_counts_per_protocol_label(helpers, tmp_path: Path) -> None:
    files = [
        helpers.write_result(tmp_path / "full.json", helpers.make_result("m", "c", area_counts=(3, 2, 2, 1, 1, 1))),
        helpers.write_result(tmp_path / "low.json", helpers.make_result(
            "m", "c", protocol="lowres", eval_size=512, area_counts=(5, 2, 2, 1, 1, 0))),
        helpers.write_result(tmp_path / "low_other_method.json", helpers.make_result(
            "n", "c", protocol="lowres", eval_size=512, area_counts=(4, 2, 2, 1, 1, 0))),
    ]
    table = lb.leaderboard_table(lb.load_results(files))
    labels = ["full", "lowres@512"]
    assert plots._bin_counts(table, lb.AreaBin("1-64", 1.0, 64.0), labels) == [3, 5]  # largest over methods
    assert plots._bin_counts(table, lb.AreaBin("64-256", 64.0, 256.0), labels) == [2, 2]
    assert plots._bin_counts(table, lb.AreaBin("16384-inf", 16384.0, None), labels) == [1, 0]


def test_figure_legend_fits_the_figure_width() -> None:
    figure = plots._figure(4.0, 3.0)
    axis = figure.subplots()
    for index in range(8):
        axis.plot([0, 1], [0, index], label=f"method_{index} (lowres@512/l2bt)")
    plots._figure_legend(figure, [axis])
    (legend,) = figure.legends
    assert legend.get_window_extent(figure.canvas.get_renderer()).width <= figure.bbox.width
    assert len(legend.get_texts()) == 8


def test_qualitative_panel_reads_mvtec_layout_under_other_names(helpers, tiny_dataset, tmp_path: Path) -> None:
    root, maps = tiny_dataset
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="synthetic", dataset_root=str(root), n_images=TINY_TEST_IMAGES, maps_dir=str(maps)))
    out = plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png", k=1)
    assert cv2.imread(str(out)) is not None


def test_qualitative_panel_relative_paths_and_missing_category(helpers, tiny_dataset, tmp_path: Path) -> None:
    root, maps = tiny_dataset
    # Relative paths are resolved against the result file's folder.
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=root.name, n_images=TINY_TEST_IMAGES, maps_dir=maps.name))
    assert plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png").is_file()
    other = helpers.write_result(tmp_path / "o.json", helpers.make_result(
        "alpha", "absent", dataset="folder", dataset_root=str(root), maps_dir=str(maps)))
    with pytest.raises(plots.PlotSkipped, match="dataset_root"):
        plots.plot_smallest_defects(lb.load_results([other]), "absent", tmp_path / "q.png")


def test_aupro_vs_area_reads_original_defect_bins(original_results_dir: Path, tmp_path: Path) -> None:
    table = lb.leaderboard_table(lb.load_results([original_results_dir]))
    labels = ["full", "lowres@256"]
    original = plots.original_protocols(table, labels)
    assert original == {"lowres@256"}
    small, medium = lb.AreaBin("1-64", 1.0, 64.0), lb.AreaBin("64-256", 64.0, 256.0)
    # full counts 3 + 4 defects in 1-64; at 256 px 2 of them keep a pixel and 1 + 4 are lost.
    assert plots._bin_counts(table, small, labels, original) == [7, 2]
    assert plots._bin_lost(table, small, labels, original) == [None, 5]
    assert plots._count_tick(table, small, labels, original) == "n=7/2\n(5 lost)"
    assert plots._count_tick(table, medium, labels, original) == "n=3"  # same defects, none lost
    label = plots._area_axis_label(table, [small, medium], labels, original)
    assert label.startswith("defect area at full resolution [px]")
    assert "full / lowres@256" in label and "lost" in label
    quartile_label = plots._quartile_axis_label(table, labels, original)
    assert quartile_label.endswith("\nlowres@256: original defects by original area")
    assert "resized" not in quartile_label
    # The lowres points are the original-defect means, not those of the resized bins.
    alpha_low = table[(table["method"] == "alpha") & (table["protocol"] == "lowres@256")]
    columns = [small.column(), medium.column()]
    assert list(plots._read(alpha_low, columns, True)) == [pytest.approx(0.1), pytest.approx(0.3)]
    assert list(plots._read(alpha_low, columns, False)) == [pytest.approx(0.0), pytest.approx(0.15)]
    for path in (plots.plot_aupro_vs_area(table, tmp_path / "a.png"),
                 plots.plot_cumulative_quartiles(table, tmp_path / "b.png")):
        assert cv2.imread(str(path)) is not None, path


def test_aupro_vs_area_without_original_defects_keeps_resized_bins(results_dir: Path, tmp_path: Path) -> None:
    table = lb.leaderboard_table(lb.load_results([results_dir]))
    labels = ["full", "lowres@256"]
    assert plots.original_protocols(table, labels) == set()
    small = lb.AreaBin("1-64", 1.0, 64.0)
    assert plots._bin_lost(table, small, labels, set()) == [None, None]
    assert plots._count_tick(table, small, labels, set()) == "n=7"
    label = plots._area_axis_label(table, [small], labels, set())
    assert "lowres@256: resized-mask defects and areas" in label and "lost" not in label
    assert cv2.imread(str(plots.plot_aupro_vs_area(table, tmp_path / "a.png"))) is not None
    # The quartile plot says so too (before: its label was silent about the resized masks).
    quartile_label = plots._quartile_axis_label(table, labels, set())
    assert quartile_label.endswith("\nlowres@256: quartiles of the resized masks' defects")
    assert "original" not in quartile_label


def test_original_reading_needs_the_block_in_every_row(helpers, original_results_dir: Path) -> None:
    spec = helpers.specs["alpha_lowres_cat_b"]
    helpers.write_result(original_results_dir / "alpha_lowres_cat_b.json", helpers.make_result(**spec))
    table = lb.leaderboard_table(lb.load_results([original_results_dir]))
    assert plots.original_protocols(table, ["full", "lowres@256"]) == set()


# --------------------------------------------------------------------------------------------------
# Legibility: long names, legends outside the data, marks, styles, missing glyphs
# --------------------------------------------------------------------------------------------------

LONG_A = "patchcore-wide-resnet50-layer2-layer3-coreset-0.01-knn-9-with-a-long-suffix-name-x"
LONG_B = "ts-mlp-teacher-student-with-a-very-long-descriptive-name-vit-small-dinov2-reg4-518px"


@pytest.fixture
def figures(monkeypatch) -> list:
    """The figures the plot functions would save, in order (kept instead of written, to save time)."""
    drawn = []

    def keep(figure, path):
        drawn.append(figure)
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def _shown_texts(figure) -> list:
    """Visible, non-empty text artists of a figure (panels hidden by the grid left out)."""
    return [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()
            and (t.axes is None or t.axes.get_visible())]


def _extent(artist, figure):
    return artist.get_window_extent(figure.canvas.get_renderer())


def _assert_inside(figure) -> None:
    """Every panel (with its titles, labels and tick labels), text and legend lies inside the saved figure."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    artists = [(f"panel {a.get_title()!r}", a.get_tightbbox(renderer)) for a in figure.axes if a.get_visible()]
    in_panels = {id(t) for axis in figure.axes for t in axis.findobj(Text)}
    artists += [(t.get_text(), _extent(t, figure)) for t in _shown_texts(figure) if id(t) not in in_panels]
    artists += [("legend", _extent(legend, figure)) for legend in figure.legends]
    for name, extent in artists:
        assert (extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1 and extent.y0 >= box.y0 - 1
                and extent.y1 <= box.y1 + 1), (name, extent, box)


def _assert_apart(figure, artists) -> None:
    """No two of ``artists`` overlap."""
    extents = [(a.get_text(), _extent(a, figure)) for a in artists if a.get_text().strip()]
    for i, (text, extent) in enumerate(extents):
        for other, other_extent in extents[i + 1:]:
            assert not extent.overlaps(other_extent), (text, other)


def _write_pair(helpers, root: Path, methods: Sequence[str], **kwargs) -> list[Path]:
    """A full and a lowres@256 result per method and category ``c1``/``c2``."""
    return [helpers.write_result(root / f"{index}_{protocol}_{category}.json", helpers.make_result(
                method, category, protocol=protocol, **kwargs))
            for index, method in enumerate(methods) for protocol in ("full", "lowres") for category in ("c1", "c2")]


def test_long_method_names_are_wrapped_inside_the_figure(helpers, tiny_dataset, tmp_path: Path, figures) -> None:
    results = lb.load_results(_write_pair(helpers, tmp_path / "r", [LONG_A, LONG_B]))
    table = lb.leaderboard_table(results)
    summary = lb.summary_table(table)
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    plots.plot_rho_ranking(summary, tmp_path / "c.png")
    plots.plot_pro_curves(results, "c1", tmp_path / "d.png")
    for figure in figures:
        _assert_inside(figure)
        _assert_apart(figure, [a.title for a in figure.axes if a.get_visible()])
    rho = figures[2]
    for axis in rho.axes:  # the bars keep most of the width; names are wrapped, not one long line
        assert _extent(axis, rho).width >= 0.5 * rho.bbox.width
        assert all("\n" in label.get_text() for label in axis.get_yticklabels())
    curves = figures[3]
    assert all("\n" in axis.get_title() for axis in curves.axes)

    root, maps = tiny_dataset
    common = dict(dataset="folder", dataset_root=str(root), n_images=TINY_TEST_IMAGES)
    files = [helpers.write_result(tmp_path / "q" / f"{i}.json", helpers.make_result(
        method, CATEGORY, maps_dir=str(maps), **common)) for i, method in enumerate((LONG_A, LONG_B))]
    plots.plot_smallest_defects(lb.load_results(files), CATEGORY, tmp_path / "e.png", k=2)
    panel = figures[-1]
    _assert_inside(panel)
    _assert_apart(panel, [a.title for a in panel.axes if a.get_title()])


def test_pro_curve_legend_is_outside_the_panels(helpers, tmp_path: Path, figures) -> None:
    variants = [("full", 256, "exact"), ("full", 256, "l2bt"), ("lowres", 256, "exact"), ("lowres", 256, "l2bt"),
                ("lowres", 512, "exact"), ("lowres", 1024, "exact")]
    files = [helpers.write_result(tmp_path / "r" / f"{method}_{i}.json", helpers.make_result(
                method, "c", protocol=protocol, eval_size=size, pro_thresholds=thresholds,
                sizes=[2.0, 3.5, 29.0] if protocol == "lowres" else None))
             for method in ("alpha", "beta") for i, (protocol, size, thresholds) in enumerate(variants)]
    plots.plot_pro_curves(lb.load_results(files), "c", tmp_path / "d.png")
    (figure,) = figures
    _assert_inside(figure)
    assert all(axis.get_legend() is None for axis in figure.axes)
    (legend,) = figure.legends
    texts = [t.get_text() for t in legend.get_texts()]
    # Quartile edges (the lowres ones named once, for every label that has them), then the line styles.
    assert texts[:4] == ["Q1 (≤ 20 px)", "Q2 (≤ 150.5 px)", "Q3 (≤ 900 px)", "Q4 (all defects)"]
    assert "Q1 (≤ 2 px), lowres@256, lowres@256/l2bt, lowres@512, lowres@1024" in " ".join(texts).replace("\n", " ")
    assert texts[-6:] == ["full", "full/l2bt", "lowres@256", "lowres@256/l2bt", "lowres@512", "lowres@1024"]
    for axis in figure.axes:
        assert not _extent(legend, figure).overlaps(_extent(axis, figure))


def test_unranked_entries_are_marked_in_every_plot(helpers, tmp_path: Path, figures) -> None:
    files = _write_pair(helpers, tmp_path / "r", ["alpha", "beta"])
    files += [helpers.write_result(tmp_path / "r" / f"gamma_{p}.json", helpers.make_result("gamma", "c1", protocol=p))
              for p in ("full", "lowres")]  # gamma lacks c2
    files.append(helpers.write_result(tmp_path / "r" / "beta_null.json", helpers.make_result(
        "beta", "c3", rho=None)))  # c3: alpha has no result, beta no rho -> blocks no one
    table = lb.leaderboard_table(lb.load_results(files))
    summary = lb.summary_table(table)
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    plots.plot_rho_ranking(summary, tmp_path / "c.png")
    # The CLI hands over the summary it already has: the same marks.
    plots.plot_aupro_vs_area(table, tmp_path / "d.png", summary=summary)
    plots.plot_cumulative_quartiles(table, tmp_path / "e.png", summary=summary)
    expected = ["alpha (full, not ranked: 2 of 3 categories)", "alpha (lowres@256)",
                "beta (full)", "beta (lowres@256)",
                "gamma (full, not ranked: 1 of 3 categories)", "gamma (lowres@256, not ranked: 1 of 2 categories)"]
    for figure in [*figures[:2], *figures[3:]]:
        (legend,) = figure.legends
        assert [t.get_text().replace("\n", " ") for t in legend.get_texts()] == expected
    labels = [t.get_text().replace("\n", " ") for axis in figures[2].axes for t in axis.get_yticklabels()]
    assert "gamma (not ranked: 1 of 3 categories)" in labels and "alpha (not ranked: 2 of 3 categories)" in labels
    # Unranked lines and bars are pale, like the ranking's bars.
    alphas = {line.get_label(): line.get_alpha() for line in figures[0].axes[0].get_lines()}
    assert alphas[expected[4]] < 1 and alphas["beta (full)"] in (None, 1.0)


def test_rho_ranking_keeps_null_rows_inside_their_panel(helpers, tmp_path: Path, figures) -> None:
    files = [helpers.write_result(tmp_path / f"{m}_{c}.json", helpers.make_result(
        m, c, rho=None if m == "nothing" else 0.4 + 0.1 * i)) for i, m in enumerate(("a", "b", "nothing"))
        for c in ("c1", "c2")]
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    plots.plot_rho_ranking(summary, tmp_path / "c.png")
    (figure,) = figures
    _assert_inside(figure)
    (axis,) = figure.axes
    low, high = axis.get_ylim()
    assert low <= min(axis.get_yticks()) - 0.4 and high >= max(axis.get_yticks()) + 0.4
    (null,) = [t for t in axis.texts if t.get_text() == "null"]
    box, text = _extent(axis, figure), _extent(null, figure)
    assert box.x0 < text.x0 and text.x1 < box.x1 and box.y0 < text.y0 and text.y1 < box.y1


def test_missing_glyphs_give_one_warning_line(helpers, tmp_path: Path, monkeypatch) -> None:
    import warnings

    monkeypatch.setattr(plots, "_REPORTED_GLYPHS", set(), raising=False)
    results = lb.load_results(_write_pair(helpers, tmp_path / "r", ["异常检测", "ТС-МЛП ü"]))
    table = lb.leaderboard_table(results)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.plot_aupro_vs_area(table, tmp_path / "a.png")  # default warn: default_warn, as from the CLI
        plots.plot_rho_ranking(lb.summary_table(table), tmp_path / "c.png")
    assert not [w for w in caught if "Glyph" in str(w.message)]  # none of matplotlib's multi-line warnings
    (line,) = [str(w.message) for w in caught]  # one line for both plots: reported once per process
    assert caught[0].category is AdbenchWarning and "\n" not in line
    assert all(c in line for c in "异常检测") and "DejaVu Sans" in line

    monkeypatch.setattr(plots, "_REPORTED_GLYPHS", set(), raising=False)
    messages: list[str] = []
    plots.plot_pro_curves(results, "c1", tmp_path / "d.png", warn=messages.append)
    (message,) = messages
    assert "\n" not in message and all(c in message for c in "异常检测")


def test_missing_glyph_warnings_of_older_matplotlib_are_merged_too(monkeypatch) -> None:
    import warnings

    monkeypatch.setattr(plots, "_REPORTED_GLYPHS", set(), raising=False)
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with plots._missing_glyphs(messages.append):
            # matplotlib < 3.9's wording (it names no font), then an unrelated warning that must pass through.
            warnings.warn("Glyph 24322 (\\N{CJK UNIFIED IDEOGRAPH-5F02}) missing from current font.", UserWarning,
                          stacklevel=1)
            warnings.warn("Glyph 24120 (\\N{CJK UNIFIED IDEOGRAPH-5E38})\nmissing from current font.", UserWarning,
                          stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
    assert messages == ["the plot font has no glyph for \u5f02 (U+5F02) \u5e38 (U+5E38) in the labels; they show as "
                        "empty boxes in the plots"]
    assert [str(w.message) for w in caught] == ["something else"]


def _size_ladder(helpers, root: Path) -> list[Path]:
    """One method under full, full/l2bt, lowres@256, lowres@256/l2bt, lowres@512, lowres@1024 and "custom"."""
    variants = {"full": ("full", 256, "exact"), "fullL2": ("full", 256, "l2bt"), "l256": ("lowres", 256, "exact"),
                "l256L2": ("lowres", 256, "l2bt"), "l512": ("lowres", 512, "exact"), "l1024": ("lowres", 1024, "exact")}
    original = helpers.original_defects()
    files = [helpers.write_result(root / f"{name}.json", helpers.make_result(
                "ts-mlp", "c", protocol=protocol, eval_size=size, pro_thresholds=thresholds,
                original=original if protocol == "lowres" else None))
             for name, (protocol, size, thresholds) in variants.items()]
    custom = helpers.make_result("ts-mlp", "c")
    custom["protocol"] = "custom"
    return [*files, helpers.write_result(root / "custom.json", custom)]


@pytest.fixture
def ladder_table(helpers, tmp_path: Path):
    table = lb.leaderboard_table(lb.load_results(_size_ladder(helpers, tmp_path / "r")))
    order = lb.protocol_order(table["protocol"])
    assert order == ["full", "full/l2bt", "lowres@256", "lowres@256/l2bt", "lowres@512", "lowres@1024", "custom"]
    return table, order


def test_size_ladder_area_lines_are_distinct_and_in_protocol_order(ladder_table, tmp_path: Path, figures) -> None:
    table, order = ladder_table
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    (figure,) = figures
    _assert_inside(figure)
    # Every label has a line style of its own (lowres@1024 no longer repeats lowres@256's dashes).
    lines = figure.axes[0].get_lines()
    dashes = {str(getattr(line, "_unscaled_dash_pattern", line.get_linestyle())) for line in lines}
    assert len(lines) == len(dashes) == len(order)
    # The legend follows the protocol order (full first, then lowres by size), not the alphabet.
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [f"ts-mlp ({p})" for p in order]


def test_size_ladder_bars_have_distinct_hatches_and_a_wrapped_label(ladder_table, tmp_path: Path, figures) -> None:
    table, order = ladder_table
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    (figure,) = figures
    hatches = {bar.get_label(): bar.patches[0].get_hatch() for bar in figure.axes[0].containers}
    assert len(hatches) == len(set(hatches.values())) == len(order), hatches
    # The axis label lists four lowres labels: wrapped to the panel rather than cut off at both edges.
    assert figure.axes[0].get_xlabel().count("\n") >= 2
    _assert_inside(figure)


def test_resized_mask_caption_only_on_lowres_panels(ladder_table, tmp_path: Path, figures) -> None:
    table, _ = ladder_table
    plots.plot_rho_ranking(lb.summary_table(table), tmp_path / "c.png")
    (figure,) = figures
    _assert_inside(figure)
    titles = {axis.get_title().split(" · ")[1].split(" ")[0]: axis.get_title().replace("\n", " ")
              for axis in figure.axes}
    assert "resized masks" not in titles["custom"] and "resized masks" not in titles["full/l2bt"]
    assert "resized masks" in titles["lowres@1024"] and "resized masks" in titles["lowres@256/l2bt"]


def test_protocol_styles_never_repeat() -> None:
    labels = ["full", "full/l2bt", *[f"lowres@{s}" for s in range(100, 1400, 100)],
              *[f"lowres@{s}/l2bt" for s in (256, 512)], "custom", "other", "third", "fourth", "fifth", "sixth"]
    order = lb.protocol_order(labels)
    styles = [plots._linestyle(p, order) for p in order]
    hatches = ["".join(sorted(plots._hatch(p, order))) for p in order]  # a hatch's look is its character counts
    assert len({str(s) for s in styles}) == len(order)
    assert len(set(hatches)) == len(order)
    assert plots._linestyle("full", order) == "-" and plots._hatch("full", order) == ""
    assert plots._linestyle("lowres@100", order) == "--" and plots._hatch("lowres@100", order) == "//"


# --------------------------------------------------------------------------------------------------
# Zero versus null bars, method looks, random-weight marks, markers at the axis limits, merged quartiles,
# dodged points, and the qualitative panel's dataset choice
# --------------------------------------------------------------------------------------------------


def _annotations(axis, text: str) -> list:
    return [t for t in axis.texts if t.get_text() == text]


def _slot(names: int, entries: int, entry: int, group: int) -> float:
    """x of bar ``entry`` (of ``entries``) in group ``group`` of the cumulative-quartile plot."""
    width = 0.8 / entries
    return group - 0.4 + width * (entry + 0.5)


def test_cumulative_zero_and_null_bars_differ_without_value_labels(helpers, tmp_path: Path, figures) -> None:
    # 5 methods: more than 4 bars per group, so the bars carry no value labels.
    cumulative = {"a": (0.0, 0.5, 0.6, 0.8), "b": (None, 0.5, 0.6, 0.8), "c": (None,) * 4,
                  "d": (0.3, 0.5, 0.6, 0.8), "e": (0.002, 0.5, 0.6, 0.8)}
    files = [helpers.write_result(tmp_path / f"{m}.json", helpers.make_result(m, "c1", cumulative=values))
             for m, values in cumulative.items()]
    plots.plot_cumulative_quartiles(lb.leaderboard_table(lb.load_results(files)), tmp_path / "b.png")
    (figure,) = figures
    (axis,) = figure.axes
    q1 = 3  # groups run Q4, Q3, Q2, Q1
    zeros = sorted(t.xy[0] for t in _annotations(axis, "0"))
    assert zeros == [pytest.approx(_slot(4, 5, 0, q1)), pytest.approx(_slot(4, 5, 4, q1))]  # a and e (0.002)
    missing = sorted(t.xy[0] for t in _annotations(axis, "n/a"))
    expected = sorted([_slot(4, 5, 1, q1)] + [_slot(4, 5, 2, g) for g in range(4)])  # b's Q1, all of c
    assert missing == [pytest.approx(x) for x in expected]
    low, high = axis.get_xlim()
    assert all(low < x < high for x in missing)  # the outermost slot is drawn, not clipped
    assert not _annotations(axis, "0.00")  # no value labels with this many bars
    # c has no value at all and keeps its legend entry.
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c", "d", "e"]


def test_cumulative_null_is_marked_with_value_labels(helpers, tmp_path: Path, figures) -> None:
    files = [helpers.write_result(tmp_path / f"{m}.json", helpers.make_result(m, "c1", cumulative=values))
             for m, values in {"a": (0.0, 0.5, 0.6, 0.8), "b": (None, 0.5, 0.6, 0.8)}.items()]
    plots.plot_cumulative_quartiles(lb.leaderboard_table(lb.load_results(files)), tmp_path / "b.png")
    (axis,) = figures[0].axes
    assert [t.xy[0] for t in _annotations(axis, "n/a")] == [pytest.approx(_slot(4, 2, 1, 3))]
    assert not _annotations(axis, "0")  # the zero bar has its value label instead
    assert "0.00" in [t.get_text() for t in axis.texts]


def test_method_looks_are_stable_and_distinct() -> None:
    import zlib

    from matplotlib.colors import to_rgba

    palette = [to_rgba(colour) for colour in plots._PALETTE]
    alone = plots.method_looks(["patchcore"])["patchcore"]
    crowd = plots.method_looks(["aaa", "patchcore", "Vendor X", "ts-mlp", "zzz"])
    assert crowd["patchcore"] == alone == plots.MethodLook(palette[0])
    assert crowd["ts-mlp"] == plots.method_looks(["ts-mlp", "bbb"])["ts-mlp"] == plots.MethodLook(palette[1])
    # Another name: the palette entry of its CRC-32, whichever built-in methods are loaded with it.
    index = zlib.crc32(b"vendor x") % len(palette)
    assert index not in (0, 1)  # (the built-in methods' entries would send it on to the next free one)
    assert plots.method_looks(["vendor x"])["vendor x"] == plots.MethodLook(palette[index])
    assert plots.method_looks(["vendor x", "patchcore", "ts-mlp"])["vendor x"] == plots.MethodLook(palette[index])
    # 21 methods: more than the palette holds, yet no two share colour and marker, and no other method
    # takes a built-in method's colour without a marker of its own.
    names = [f"method-{i:02d}" for i in range(21)]
    looks = plots.method_looks(names)
    assert looks == plots.method_looks(names[::-1])
    assert len({(look.colour, look.badge) for look in looks.values()}) == 21
    assert all(look.badge is not None for look in looks.values() if look.colour in (palette[0], palette[1]))


def test_a_method_keeps_its_colour_whatever_else_is_loaded(helpers, tmp_path: Path, figures) -> None:
    for index, methods in enumerate((["patchcore"], ["aaa", "patchcore"], ["aaa", "patchcore", "ts-mlp", "vendor"])):
        files = [helpers.write_result(tmp_path / str(index) / f"{m}.json", helpers.make_result(m, "c1"))
                 for m in methods]
        plots.plot_aupro_vs_area(lb.leaderboard_table(lb.load_results(files)), tmp_path / "a.png")
    colours = [{line.get_label(): line.get_color() for line in figure.axes[0].get_lines()} for figure in figures]
    assert colours[0]["patchcore"] == colours[1]["patchcore"] == colours[2]["patchcore"]
    assert colours[1]["aaa"] == colours[2]["aaa"]
    assert len(set(colours[2].values())) == 4


def test_many_methods_are_told_apart_in_every_plot(helpers, tmp_path: Path, figures) -> None:
    names = [f"method-{i:02d}" for i in range(21)]
    files = [helpers.write_result(tmp_path / f"{m}.json", helpers.make_result(m, "c1", rho=0.2 + 0.01 * i))
             for i, m in enumerate(names)]
    table = lb.leaderboard_table(lb.load_results(files))
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    plots.plot_rho_ranking(lb.summary_table(table), tmp_path / "c.png")
    area, bars, ranking = figures
    lines = area.axes[0].get_lines()
    assert len({(line.get_color(), line.get_marker()) for line in lines}) == 21
    # Bars: colour plus the round marker drawn on the bars (none in the first round).
    (axis,) = bars.axes
    badges = {round(x, 6): line.get_marker() for line in axis.get_lines() for x in line.get_xdata()}
    looks = set()
    for container in axis.containers:
        patch = container.patches[0]
        looks.add((patch.get_facecolor(), badges.get(round(patch.get_x() + patch.get_width() / 2, 6))))
    assert len(looks) == 21
    for axis in ranking.axes:
        badges = {round(y, 6): line.get_marker() for line in axis.get_lines() for y in line.get_ydata()}
        looks = {(p.get_facecolor(), badges.get(round(p.get_y() + p.get_height() / 2, 6))) for p in axis.patches}
        assert len(looks) == 21


def test_random_weights_are_marked_in_every_plot(helpers, tiny_dataset, tmp_path: Path, figures) -> None:
    weights = {"alpha": (True, True), "beta": (False, False), "gamma": (True, False), "delta": (None, None)}
    files = [helpers.write_result(tmp_path / "r" / f"{m}_{c}.json", helpers.make_result(m, c, pretrained=w))
             for m, values in weights.items() for c, w in zip(("c1", "c2"), values, strict=True)]
    results = lb.load_results(files)
    table = lb.leaderboard_table(results)
    summary = lb.summary_table(table)
    assert "mixed" in list(summary["pretrained_backbone"])  # gamma's summary row: the summary's own reading
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    plots.plot_rho_ranking(summary, tmp_path / "c.png")
    plots.plot_pro_curves(results, "c2", tmp_path / "d.png")
    expected = ["alpha", "beta (random weights)", "delta", "gamma (partly random weights)"]
    for figure in figures[:2]:
        assert [t.get_text() for t in figure.legends[0].get_texts()] == expected
    assert sorted(t.get_text() for t in figures[2].axes[0].get_yticklabels()) == expected
    # The PRO curves of c2 alone: gamma's c2 result has random weights.
    titles = [axis.get_title() for axis in figures[3].axes if axis.get_visible()]
    assert titles == ["alpha", "beta (random weights)", "delta", "gamma (random weights)"]
    root, maps = tiny_dataset
    path = helpers.write_result(tmp_path / "q.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=str(root), n_images=TINY_TEST_IMAGES, maps_dir=str(maps),
        pretrained=False))
    plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "e.png", k=1)
    assert figures[-1].axes[2].get_title() == "alpha (random weights)"


def test_weights_note_reads_table_and_summary_values() -> None:
    assert plots.weights_note([True, True]) == plots.weights_note([None, np.nan]) == ""
    assert plots.weights_note([False, None]) == plots.weights_note([np.bool_(False)]) == "random weights"
    assert plots.weights_note(["False"]) == "random weights"
    assert plots.weights_note([True, False]) == plots.weights_note(["mixed"]) == "partly random weights"


def test_area_markers_at_zero_and_one_are_whole(helpers, tmp_path: Path, figures) -> None:
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result("m", "c", area=(0.0, 0.4, 0.6, 0.8, 0.9, 1.0)))
    plots.plot_aupro_vs_area(lb.leaderboard_table(lb.load_results([path])), tmp_path / "a.png")
    (figure,) = figures
    (axis,) = figure.axes
    figure.canvas.draw()
    (line,) = axis.get_lines()
    radius = line.get_markersize() * figure.dpi / 72 / 2 + line.get_markeredgewidth() * figure.dpi / 72 / 2
    box = axis.bbox
    for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True):
        _, y_px = axis.transData.transform((x, y))
        assert box.y0 + radius <= y_px <= box.y1 - radius, (y, y_px, box)


def test_pro_curves_merge_quartiles_with_equal_edges(helpers, tmp_path: Path, figures) -> None:
    low = helpers.make_result("m", "c", protocol="lowres", sizes=[1.0, 1.0, 3.0])
    curves = low["metrics"]["pro_curves"]
    curves["Q1"] = dict(curves["Q2"])  # q25 = q50: the same defects, the same curve
    files = [helpers.write_result(tmp_path / "full.json", helpers.make_result("m", "c")),
             helpers.write_result(tmp_path / "low.json", low)]
    plots.plot_pro_curves(lb.load_results(files), "c", tmp_path / "d.png")
    (figure,) = figures
    texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert texts == ["Q1 (≤ 20 px)", "Q2 (≤ 150.5 px)", "Q3 (≤ 900 px)", "Q4 (all defects)",
                     "Q1 = Q2 (≤ 1 px), lowres@256", "Q3 (≤ 3 px), lowres@256", "full", "lowres@256"]
    assert len(figure.axes[0].get_lines()) == 4 + 3  # the merged curve is drawn once

    assert plots.quartile_groups(curves, [1.0, 1.0, 3.0]) == [("Q1", "Q2"), ("Q3",), ("Q4",)]
    assert plots.quartile_groups(curves, [1.0, 2.0, 3.0]) == [("Q1",), ("Q2",), ("Q3",), ("Q4",)]
    different = dict(curves, Q1={"fpr": [0.0, 1.0], "pro": [0.0, 0.5]})
    assert plots.quartile_groups(different, [1.0, 1.0, 3.0]) == [("Q1",), ("Q2",), ("Q3",), ("Q4",)]
    chained = dict(curves, Q3=dict(curves["Q2"]))
    assert plots.quartile_groups(chained, [1.0, 1.0, 1.0]) == [("Q1", "Q2", "Q3"), ("Q4",)]
    # Every defect of 1 px (or a single defect): q75 is the largest size and Q3 holds what Q4 holds.
    single = dict(chained, Q4=dict(curves["Q2"]))
    assert plots.quartile_groups(single, [1.0, 1.0, 1.0]) == [("Q1", "Q2", "Q3", "Q4")]
    assert plots._quartile_label(("Q1", "Q2", "Q3", "Q4"), [1.0, 1.0, 1.0]) == "Q1 = Q2 = Q3 = Q4 (all defects)"
    top_only = dict(curves, Q4=dict(curves["Q3"]))  # Q3 = Q4 with distinct lower quartiles
    assert plots.quartile_groups(top_only, [1.0, 2.0, 3.0]) == [("Q1",), ("Q2",), ("Q3", "Q4")]


def test_cumulative_legend_is_sorted_by_method_across_datasets(helpers, tmp_path: Path, figures) -> None:
    entries = [("zeta", "A"), ("mid", "A"), ("alpha", "B"), ("zeta", "B")]  # alpha only in the second panel
    files = [helpers.write_result(tmp_path / f"{m}_{d}.json", helpers.make_result(m, "c", dataset=d))
             for m, d in entries]
    plots.plot_cumulative_quartiles(lb.leaderboard_table(lb.load_results(files)), tmp_path / "q.png")
    (figure,) = figures
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["alpha", "mid", "zeta"]


def test_equal_area_points_stay_apart(helpers, tmp_path: Path, figures) -> None:
    files = [helpers.write_result(tmp_path / f"{m}_{p}.json", helpers.make_result(m, "c", protocol=p))
             for m in ("ts-mlp", "vendor") for p in ("full", "lowres")]  # the same numbers everywhere
    plots.plot_aupro_vs_area(lb.leaderboard_table(lb.load_results(files)), tmp_path / "a.png")
    (figure,) = figures
    (axis,) = figure.axes
    lines = {line.get_label(): line for line in axis.get_lines()}
    xs = {label: np.asarray(line.get_xdata()) for label, line in lines.items()}
    ys = {label: tuple(line.get_ydata()) for label, line in lines.items()}
    assert len(set(ys.values())) == 1  # equal values ...
    columns = np.stack(list(xs.values()))
    assert all(len(set(column)) == 4 for column in columns.T)  # ... at four positions in every bin
    centres = np.asarray(axis.get_xticks())
    assert np.all(np.abs(np.log10(columns / centres)) <= plots._DODGE_SPREAD / 2 + 1e-9)
    # Hollow (lowres) markers are drawn above the filled ones.
    assert lines["ts-mlp (lowres@256)"].get_zorder() > lines["vendor (full)"].get_zorder()
    assert plots.dodge_factors(1) == [1.0]
    assert np.prod(plots.dodge_factors(4)) == pytest.approx(1.0)  # symmetric around the bin's centre


def test_qualitative_panel_names_the_datasets_not_shown(helpers, tiny_dataset, tmp_path: Path, figures) -> None:
    root, maps = tiny_dataset
    files = [helpers.write_result(tmp_path / f"{d}.json", helpers.make_result(
        "alpha", CATEGORY, dataset=d, dataset_root=str(root), maps_dir=str(maps), n_images=3))
        for d in ("folder", "other")]
    messages: list[str] = []
    plots.plot_smallest_defects(lb.load_results(files), CATEGORY, tmp_path / "p.png", k=1, warn=messages.append)
    assert messages == [f"qualitative panel of {CATEGORY!r} shows dataset folder only; the results of other for "
                        "this category are not shown"]
    assert "(folder)" in figures[0].get_suptitle()
    messages.clear()
    plots.plot_smallest_defects(lb.load_results(files[:1]), CATEGORY, tmp_path / "q.png", k=1, warn=messages.append)
    assert messages == []


def test_a_label_has_one_pair_of_brackets_for_its_protocol_and_marks(helpers, tmp_path: Path, figures) -> None:
    # beta: one category of alpha's two (not ranked) and random weights, under both protocols.
    runs = [("alpha", c, True) for c in ("c1", "c2")] + [("beta", "c1", False)]
    files = [helpers.write_result(tmp_path / "r" / f"{m}_{c}_{p}.json",
                                  helpers.make_result(m, c, protocol=p, pretrained=w))
             for m, c, w in runs for p in ("full", "lowres")]
    table = lb.leaderboard_table(lb.load_results(files))
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    assert [t.get_text().replace("\n", " ") for t in figures[0].legends[0].get_texts()] == [
        "alpha (full)", "alpha (lowres@256)",
        "beta (full, random weights, not ranked: 1 of 2 categories)",
        "beta (lowres@256, random weights, not ranked: 1 of 2 categories)",
    ]


# --------------------------------------------------------------------------------------------------
# What the plots draw: values, positions, ticks and legend keys against hand-computed numbers
# --------------------------------------------------------------------------------------------------

_AREA_CENTRES = [8.0, 128.0, 512.0, 2048.0, 8192.0, 32768.0]


def _lines(axis) -> dict:
    return {line.get_label().replace("\n", " "): line for line in axis.get_lines()}


def _legend_keys(figure) -> dict:
    """Legend text -> the legend's own handle artist (the first artist of a tuple handle)."""
    (legend,) = figure.legends
    return {t.get_text().replace("\n", " "): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)}


def _rgb(colour) -> tuple:
    from matplotlib.colors import to_rgba

    return tuple(round(c, 6) for c in to_rgba(colour)[:3])


def test_area_lines_show_each_entrys_own_means(original_results_dir: Path, tmp_path: Path, figures) -> None:
    table = lb.leaderboard_table(lb.load_results([original_results_dir]))
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_aupro_vs_area(table, tmp_path / "b.png", limit="0.1")
    expected = {  # means over cat_a and cat_b of the conftest's bins, nulls left out
        "alpha (full)": [0.15, 0.35, 0.6, 0.8, 0.9, 1.0],
        "alpha (lowres@256)": [0.1, 0.3, 0.6, 0.8, 0.9, 1.0],  # orig_ bins, not the resized 0.0, 0.15, 0.5 ...
        "beta (full, random weights, not ranked)": [0.25, 0.45, 0.7, 0.9, 0.9, 1.0],
    }
    for figure, scale in zip(figures, (1.0, 0.5), strict=True):  # aupro@0.1 holds half of aupro@0.3
        (axis,) = figure.axes
        lines = _lines(axis)
        assert sorted(lines) == sorted(expected)
        for label, values in expected.items():
            line = lines[label]
            assert list(line.get_ydata()) == pytest.approx([v * scale for v in values]), label
            # Every point in its own bin: near the bin's centre (dodged by one factor), in bin order.
            ratios = np.asarray(line.get_xdata()) / _AREA_CENTRES
            assert np.allclose(ratios, ratios[0]) and abs(np.log10(ratios[0])) <= plots._DODGE_SPREAD / 2
        assert figure.axes[0].get_ylabel() == f"AUPRO@{'0.3' if scale == 1.0 else '0.1'}"
    axis = figures[0].axes[0]
    lines = _lines(axis)
    # lowres is hollow, full filled with the method's colour.
    assert lines["alpha (lowres@256)"].get_markerfacecolor() == "white"
    assert _rgb(lines["alpha (full)"].get_markerfacecolor()) == _rgb(lines["alpha (full)"].get_color())
    # Ticks: bin centres, labelled with the bin range and its defects (full 3 + 4, lowres 2 kept + 1 + 4 lost).
    assert list(axis.get_xticks()) == pytest.approx(_AREA_CENTRES)
    assert [t.get_text() for t in axis.get_xticklabels()] == [
        "1–64\nn=7/2\n(5 lost)", "64–256\nn=3", "256–1024\nn=2", "1024–4096\nn=1", "4096–16384\nn=1", "≥16384\nn=1"]


def test_area_original_reading_is_decided_per_dataset(helpers, original_results_dir: Path, tmp_path: Path,
                                                      figures) -> None:
    # A second dataset whose lowres result lacks metrics.original_defects must not switch the first one's.
    for protocol in ("full", "lowres"):
        helpers.write_result(original_results_dir / f"other_{protocol}.json", helpers.make_result(
            "alpha", "cat_a", dataset="other", protocol=protocol, area=(0.0, 0.1, 0.5, 0.8, 0.9, 1.0)))
    table = lb.leaderboard_table(lb.load_results([original_results_dir]))
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    (figure,) = figures
    panels = {axis.get_title(): axis for axis in figure.axes if axis.get_visible()}
    synthetic, other = panels["synthetic"], panels["other"]
    assert list(_lines(synthetic)["alpha (lowres@256)"].get_ydata()) == pytest.approx([0.1, 0.3, 0.6, 0.8, 0.9, 1.0])
    assert list(_lines(other)["alpha (lowres@256)"].get_ydata()) == pytest.approx([0.0, 0.1, 0.5, 0.8, 0.9, 1.0])


def _bars(axis) -> dict:
    """Entry label -> {tick label: bar height} of the cumulative-quartile plot."""
    ticks = {round(float(x)): t.get_text() for x, t in zip(axis.get_xticks(), axis.get_xticklabels(), strict=True)}
    return {container.get_label().replace("\n", " "): {ticks[round(p.get_x() + p.get_width() / 2)]: p.get_height()
                                                       for p in container.patches}
            for container in axis.containers}


def test_cumulative_bars_sit_under_their_quartile_and_entry(original_results_dir: Path, tmp_path: Path,
                                                           figures) -> None:
    table = lb.leaderboard_table(lb.load_results([original_results_dir]))
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    plots.plot_cumulative_quartiles(table, tmp_path / "c.png", limit="0.05")
    q4, q3, q2, q1 = "Q4\n(all)", "Q3\n(≤ q75)", "Q2\n(≤ q50)", "Q1\n(≤ q25)"
    expected = {  # make_result's cumulative (0.4, 0.5, 0.6, 0.8); the lowres one's orig_ (0.3, 0.5, 0.6, 0.75)
        "alpha (full)": {q4: 0.8, q3: 0.6, q2: 0.5, q1: 0.4},
        "alpha (lowres@256)": {q4: 0.75, q3: 0.6, q2: 0.5, q1: 0.3},
        "beta (full, random weights, not ranked)": {q4: 0.8, q3: 0.6, q2: 0.5, q1: 0.4},
    }
    for figure, scale in zip(figures, (1.0, 0.25), strict=True):
        (axis,) = figure.axes
        assert [t.get_text() for t in axis.get_xticklabels()] == [q4, q3, q2, q1]
        bars = _bars(axis)
        assert bars == {label: {q: pytest.approx(v * scale) for q, v in values.items()}
                        for label, values in expected.items()}
        low, high = axis.get_ylim()
        assert low <= 0.0 and high >= 1.0  # no bar of AUPRO 1 is cut
    # The legend's keys look like their bars: colour, hatch and paleness.
    (axis,) = figures[0].axes
    keys = _legend_keys(figures[0])
    for container in axis.containers:
        bar, key = container.patches[0], keys[container.get_label().replace("\n", " ")]
        assert key.get_facecolor() == bar.get_facecolor()
        assert key.get_hatch() == bar.get_hatch()
    assert keys["alpha (lowres@256)"].get_hatch() == "//" and keys["alpha (full)"].get_hatch() in (None, "")


def test_cumulative_null_draws_no_bar(helpers, tmp_path: Path, figures) -> None:
    files = [helpers.write_result(tmp_path / f"{m}.json", helpers.make_result(m, "c1", cumulative=values))
             for m, values in {"a": (0.4, 0.5, 0.6, 1.0), "b": (None, 0.5, None, 0.8)}.items()]
    plots.plot_cumulative_quartiles(lb.leaderboard_table(lb.load_results(files)), tmp_path / "b.png")
    (axis,) = figures[0].axes
    assert _bars(axis) == {"a": {"Q4\n(all)": 1.0, "Q3\n(≤ q75)": 0.6, "Q2\n(≤ q50)": 0.5, "Q1\n(≤ q25)": 0.4},
                           "b": {"Q4\n(all)": 0.8, "Q2\n(≤ q50)": 0.5}}
    assert axis.get_ylim()[1] >= 1.0


def _ranking(figure) -> list[list[tuple[str, float | None, tuple, float]]]:
    """Per panel, top to bottom: (tick label, bar width or None, bar colour, bar alpha)."""
    panels = []
    for axis in figure.axes:
        bars = {round(p.get_y() + p.get_height() / 2): p for p in axis.patches}
        rows = sorted(zip(axis.get_yticks(), axis.get_yticklabels(), strict=True), key=lambda r: -r[0])
        panels.append([(label.get_text().replace("\n", " "), *(
            (bars[round(y)].get_width(), _rgb(bars[round(y)].get_facecolor()), bars[round(y)].get_alpha())
            if round(y) in bars else (None, None, None))) for y, label in rows])
    return panels


def test_rho_ranking_bars_match_their_labels(helpers, results_dir: Path, tmp_path: Path, figures) -> None:
    files = [helpers.write_result(tmp_path / "r" / f"{m}.json", helpers.make_result(m, "c1", rho=rho, aupro=0.9))
             for m, rho in (("m1", 0.3), ("m2", 1.0), ("m3", 0.5))]
    summary = lb.summary_table(lb.leaderboard_table(lb.load_results(files)))
    plots.plot_rho_ranking(summary, tmp_path / "c.png")
    plots.plot_rho_ranking(summary, tmp_path / "d.png", limit="0.1")
    looks = plots.method_looks(["m1", "m2", "m3"])
    for figure, scale in zip(figures, (1.0, 0.5), strict=True):
        (panel,) = _ranking(figure)  # best on top, each bar beside its own name, in its method's colour
        assert panel == [(m, pytest.approx(v * scale), _rgb(looks[m].colour), 1.0)
                         for m, v in (("m2", 1.0), ("m3", 0.5), ("m1", 0.3))]
        assert figure.axes[0].get_xlim()[1] >= 1.0  # a rho of 1 is not cut
    keys = _legend_keys(figures[0])
    assert {text: _rgb(handle.get_facecolor()) for text, handle in keys.items()} == {
        m: _rgb(looks[m].colour) for m in ("m1", "m2", "m3")}

    # The standard results: alpha ranked (rho 0.5, 0.3), beta not ranked (null rho in cat_b) and pale.
    plots.plot_rho_ranking(lb.summary_table(lb.leaderboard_table(lb.load_results([results_dir]))),
                           tmp_path / "e.png")
    full, low = _ranking(figures[-1])
    colours = plots.method_looks(["alpha", "beta"])
    assert full == [("alpha", pytest.approx(0.4), _rgb(colours["alpha"].colour), 1.0),
                    ("beta (random weights, not ranked)", pytest.approx(0.6), _rgb(colours["beta"].colour), 0.4)]
    assert low == [("alpha", pytest.approx(0.15), _rgb(colours["alpha"].colour), 1.0)]


def test_pro_curves_show_each_quartiles_own_curve(helpers, tmp_path: Path, figures) -> None:
    fpr = np.linspace(0.0, 1.0, 51)
    low = helpers.make_result("m", "c", protocol="lowres", sizes=[1.0, 1.0, 3.0])
    curves = low["metrics"]["pro_curves"]
    curves["Q1"] = dict(curves["Q2"])  # q25 = q50: drawn once, in Q1's colour
    full = helpers.make_result("m", "c")
    full["metrics"]["pro_curves"]["fpr_limit"] = 0.1
    for name in ("Q1", "Q2", "Q3", "Q4"):  # stored high FPR first: the plot sorts before clipping
        full["metrics"]["pro_curves"][name] = {key: values[::-1]
                                               for key, values in full["metrics"]["pro_curves"][name].items()}
    files = [helpers.write_result(tmp_path / "full.json", full), helpers.write_result(tmp_path / "low.json", low),
             helpers.write_result(tmp_path / "n.json", helpers.make_result("n", "c", protocol="lowres"))]
    plots.plot_pro_curves(lb.load_results(files), "c", tmp_path / "d.png")
    (figure,) = figures
    m_axis, n_axis = figure.axes
    assert m_axis.get_title() == "m" and n_axis.get_title() == "n"
    colours = {_rgb(c): q for q, c in plots._QUARTILE_COLOURS.items()}
    drawn = [(colours[_rgb(line.get_color())], line.get_linestyle(), line) for line in m_axis.get_lines()]
    assert [(q, style) for q, style, _ in drawn] == [("Q1", "-"), ("Q2", "-"), ("Q3", "-"), ("Q4", "-"),
                                                    ("Q1", "--"), ("Q3", "--"), ("Q4", "--")]
    for q, style, line in drawn:
        limit = 0.1 if style == "-" else 0.3
        exponent = 2 if (q, style) == ("Q1", "--") else int(q[1])  # the merged curve is Q2's
        xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        past = fpr[fpr > limit][0]  # the curve runs up to its limit, plus one point past it
        assert list(xs) == pytest.approx(list(fpr[fpr <= limit]) + [past])
        assert ys == pytest.approx(xs ** (1.0 / exponent))
    assert m_axis.get_xlim() == pytest.approx((0.0, 0.3)) and n_axis.get_xlim() == pytest.approx((0.0, 0.3))
    keys = _legend_keys(figure)
    assert _rgb(keys["Q1 = Q2 (≤ 1 px), lowres@256"].get_color()) == _rgb(plots._QUARTILE_COLOURS["Q1"])


def test_cli_plots_draw_every_entry_and_the_chosen_category(results_dir: Path, tmp_path: Path, figures) -> None:
    assert main(["leaderboard", str(results_dir), "--out", str(tmp_path / "out"), "--category", "cat_b"]) == 0
    area, bars, ranking, curves = figures
    assert sorted(_lines(area.axes[0])) == ["alpha (full)", "alpha (lowres@256)",
                                            "beta (full, random weights, not ranked)"]
    assert sorted(c.get_label() for c in bars.axes[0].containers) == sorted(_lines(area.axes[0]))
    assert [[row[0] for row in panel] for panel in _ranking(ranking)] == [
        ["alpha", "beta (random weights, not ranked)"], ["alpha"]]
    assert curves.get_suptitle().endswith("— cat_b")


def test_pro_curve_panel_shows_every_curve_up_to_its_own_limit(helpers, tmp_path: Path, figures) -> None:
    # The smaller limit drawn last (lowres after full) must not cut the full curves at 0.1.
    low = helpers.make_result("m", "c", protocol="lowres")
    low["metrics"]["pro_curves"]["fpr_limit"] = 0.1
    files = [helpers.write_result(tmp_path / "full.json", helpers.make_result("m", "c")),
             helpers.write_result(tmp_path / "low.json", low)]
    plots.plot_pro_curves(lb.load_results(files), "c", tmp_path / "d.png")
    (figure,) = figures
    (axis,) = [a for a in figure.axes if a.get_visible()]
    assert axis.get_xlim() == pytest.approx((0.0, 0.3))
    reach = sorted({round(float(max(line.get_xdata())), 2) for line in axis.get_lines()})
    assert reach == [0.12, 0.32]  # each curve runs one grid point (0.02) past its own limit


def test_qualitative_panel_refuses_a_map_changed_since_scoring_and_notes_a_changed_test_set(
    helpers, tiny_dataset, tmp_path: Path, figures
) -> None:
    root, maps = tiny_dataset
    # The 2-px defect's map cut to 10 rows: stretched back to the image, it would show scores in wrong places.
    changed = maps / CATEGORY / "test" / "crack" / "000.tiff"
    tifffile.imwrite(changed, tifffile.imread(changed)[:10])
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=str(root), maps_dir=str(maps), n_images=3))
    messages: list[str] = []
    plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png", k=2, warn=messages.append)
    assert messages == [f"qualitative panel: {changed}: anomaly map is 10x{SIDE} but the image 000.png is "
                        f"{SIDE}x{SIDE} (maps must be at original resolution)"]
    texts = [t.get_text() for axis in figures[0].axes for t in axis.texts]
    assert texts == ["map missing"]  # that crop only; the 30-px defect's map is drawn

    # An image deleted since the results were scored: the panel shows what is there now, and says so.
    (root / CATEGORY / "test" / "good" / "000.png").unlink()
    messages.clear()
    plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "q.png", k=2, warn=messages.append)
    assert messages[0] == (f"qualitative panel of {CATEGORY!r}: {root / CATEGORY} now has 2 test images, the results "
                           "were scored on 3; the panel shows the images there now")
    # A result that does not record its count (null) is no evidence of a change, and breaks nothing.
    unsaid = helpers.make_result("beta", CATEGORY, dataset="folder", dataset_root=str(root), maps_dir=str(maps))
    unsaid["metrics"]["n_images"] = None
    silent = helpers.write_result(tmp_path / "s.json", unsaid)
    messages.clear()
    plots.plot_smallest_defects(lb.load_results([path, silent]), CATEGORY, tmp_path / "s.png", k=2,
                                warn=messages.append)
    assert [m for m in messages if "now has" in m] == [messages[0]] and "scored on 3;" in messages[0]
    messages.clear()
    plots.plot_smallest_defects(lb.load_results([silent]), CATEGORY, tmp_path / "t.png", k=2, warn=messages.append)
    assert not [m for m in messages if "now has" in m]


@pytest.mark.parametrize("methods", [1, 8])
def test_cumulative_bars_stay_wide_enough_for_their_hatch_with_many_entries(helpers, tmp_path: Path, figures,
                                                                            methods: int) -> None:
    # Every method under full, full/l2bt, lowres@256 and lowres@256/l2bt: 4 or 32 bars per quartile group.
    files = [helpers.write_result(tmp_path / f"m{m}_{protocol}_{thresholds}.json",
                                  helpers.make_result(f"method-{m}", "c1", protocol=protocol,
                                                      pro_thresholds=thresholds))
             for m in range(methods) for protocol in ("full", "lowres") for thresholds in ("exact", "l2bt")]
    plots.plot_cumulative_quartiles(lb.leaderboard_table(lb.load_results(files)), tmp_path / "b.png")
    figure = figures[0]
    figure.canvas.draw()
    (axis,) = figure.axes
    axis_in = axis.get_window_extent().width / figure.dpi
    low, high = axis.get_xlim()
    widths = {round(p.get_width() * axis_in / (high - low), 3) for p in axis.patches if p.get_height() > 0}
    # 0.8 of a group's slot is shared by its bars; at least 0.06 in (9 px at 150 dpi) each.
    assert min(widths) >= 0.055
    if methods == 1:  # few bars keep the usual 6-inch panel
        assert figure.get_figwidth() == pytest.approx(6.0)


def test_qualitative_panel_leaves_out_maps_a_run_is_rewriting(helpers, tiny_dataset, tmp_path: Path, figures) -> None:
    root, maps = tiny_dataset
    rewriting = tmp_path / "maps_rewriting"
    shutil.copytree(maps, rewriting)
    mark_maps_incomplete(rewriting, CATEGORY)
    common = dict(dataset="folder", dataset_root=str(root), n_images=TINY_TEST_IMAGES)
    files = [helpers.write_result(tmp_path / f"{method}.json", helpers.make_result(
        method, CATEGORY, maps_dir=str(folder), **common)) for method, folder in (("alpha", rewriting), ("beta", maps))]
    messages: list[str] = []
    plots.plot_smallest_defects(lb.load_results(files), CATEGORY, tmp_path / "p.png", k=1, warn=messages.append)
    titles = [axis.get_title() for axis in figures[0].axes if axis.get_title()]
    assert titles == ["image", "ground truth", "beta"]
    assert len(messages) == 1 and "being written" in messages[0] and str(rewriting / CATEGORY) in messages[0]
    with pytest.raises(plots.PlotSkipped, match="no anomaly maps"):
        plots.plot_smallest_defects(lb.load_results(files[:1]), CATEGORY, tmp_path / "q.png", k=1, warn=messages.append)


def test_a_rewritten_maps_folder_shared_by_two_results_is_warned_about_once(
    helpers, tiny_dataset, tmp_path: Path, figures
) -> None:
    # alpha's full and lowres results score the same maps folder, which a run is rewriting: one line, not one per
    # result.
    root, maps = tiny_dataset
    rewriting = tmp_path / "maps_rewriting"
    shutil.copytree(maps, rewriting)
    mark_maps_incomplete(rewriting, CATEGORY)
    common = dict(dataset="folder", dataset_root=str(root), n_images=TINY_TEST_IMAGES)
    files = [helpers.write_result(tmp_path / f"{name}.json", helpers.make_result(
        method, CATEGORY, protocol=protocol, maps_dir=str(folder), **common))
        for name, method, protocol, folder in (("a_full", "alpha", "full", rewriting),
                                               ("a_low", "alpha", "lowres", rewriting), ("b", "beta", "full", maps))]
    messages: list[str] = []
    plots.plot_smallest_defects(lb.load_results(files), CATEGORY, tmp_path / "p.png", k=1, warn=messages.append)
    assert [axis.get_title() for axis in figures[0].axes if axis.get_title()] == ["image", "ground truth", "beta"]
    assert messages == [f"qualitative panel: {rewriting / CATEGORY}: these maps are being written, or were left "
                        "half-written by an interrupted `adbench-hr run` (some may come from other settings): finish "
                        "that run, then score"]


def test_a_maps_folder_without_the_panels_maps_adds_no_protocol_to_the_other_columns_label(
    helpers, tiny_dataset, tmp_path: Path, figures
) -> None:
    # alpha's full result names a maps folder that holds none of the shown defects' maps (only the good image's):
    # it gets no column, so alpha has one column of maps and its label needs no protocol to tell it apart.
    root, maps = tiny_dataset
    sparse = tmp_path / "maps_sparse"
    shutil.copytree(maps, sparse)
    shutil.rmtree(sparse / CATEGORY / "test" / "crack")
    common = dict(dataset="folder", dataset_root=str(root), n_images=TINY_TEST_IMAGES)
    files = [helpers.write_result(tmp_path / "full.json", helpers.make_result(
                 "alpha", CATEGORY, maps_dir=str(sparse), **common)),
             helpers.write_result(tmp_path / "low.json", helpers.make_result(
                 "alpha", CATEGORY, protocol="lowres", maps_dir=str(maps), **common))]
    messages: list[str] = []
    plots.plot_smallest_defects(lb.load_results(files), CATEGORY, tmp_path / "p.png", k=2, warn=messages.append)
    assert [axis.get_title() for axis in figures[0].axes if axis.get_title()] == ["image", "ground truth", "alpha"]
    assert messages == []


@pytest.mark.parametrize(("protocol", "thresholds", "label"), [("full", "l2bt", "full/l2bt"),
                                                              ("lowres", "exact", "lowres@512")])
def test_a_single_protocol_is_named_in_the_title(helpers, tmp_path: Path, figures, protocol, thresholds,
                                                 label) -> None:
    # With one protocol label the legend leaves it out, so without the title an l2bt or low-resolution
    # figure would read as exact full-resolution numbers.
    files = [helpers.write_result(tmp_path / f"{m}.json", helpers.make_result(
        m, "c1", protocol=protocol, eval_size=512, pro_thresholds=thresholds)) for m in ("alpha", "beta")]
    results = lb.load_results(files)
    table = lb.leaderboard_table(results)
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_cumulative_quartiles(table, tmp_path / "b.png")
    plots.plot_pro_curves(results, "c1", tmp_path / "c.png")
    for figure in figures:
        assert figure.get_suptitle().replace("\n", " ").endswith(f" · {label}"), figure.get_suptitle()
        _assert_inside(figure)


def test_area_lines_break_at_null_bins_and_keep_entries_without_values(helpers, tmp_path: Path, figures) -> None:
    # alpha has no defect (null AUPRO) in the 64-256 and 1024-4096 bins; beta has no per-area value at all.
    files = [helpers.write_result(tmp_path / "alpha.json", helpers.make_result(
                 "alpha", "c1", area_counts=(1, 0, 2, 0, 1, 1))),
             helpers.write_result(tmp_path / "beta.json", helpers.make_result("beta", "c1", area=(None,) * 6))]
    table = lb.leaderboard_table(lb.load_results(files))
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    (figure,) = figures
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    empty = [plots.bin_centre(b) for b in lb.area_bins(table.columns, "0.3") if b.min_px in (64, 1024)]
    xy = lines["alpha"].get_xydata()
    segments = [(a[0], b[0]) for a, b in zip(xy, xy[1:], strict=False) if np.isfinite([a, b]).all()]
    assert segments  # the neighbouring bins with values are still joined
    for x0, x1 in segments:  # but no segment runs through a bin without a value
        assert not any(x0 < centre < x1 for centre in empty), (x0, x1)
    assert "beta (no values)" in [text.get_text() for text in figure.legends[0].get_texts()]


# Colour-vision deficiency simulation (Machado et al. 2009, severity 1) on linear RGB.
_CVD = {
    "normal": np.eye(3),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def _seen_lab(colour, vision: str) -> np.ndarray:
    """CIELAB (D65) of ``colour`` as seen with ``vision``."""
    from matplotlib.colors import to_rgb

    srgb = np.asarray(to_rgb(colour))
    linear = np.clip(_CVD[vision] @ np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4), 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _closest_pair(colours) -> dict[str, float]:
    """Per kind of vision, the smallest CIELAB distance (ΔE 1976) between two of ``colours``."""
    return {vision: min(float(np.linalg.norm(_seen_lab(a, vision) - _seen_lab(b, vision)))
                        for i, a in enumerate(colours) for b in colours[i + 1:]) for vision in _CVD}


def test_quartile_colours_stay_apart_for_colour_blind_readers() -> None:
    # The PRO curves tell Q1..Q4 apart by colour alone (tab10's red and green, or orange and green, merged).
    distances = _closest_pair(list(plots._QUARTILE_COLOURS.values()))
    assert min(distances.values()) >= 15, distances


def test_method_colours_stay_apart_for_colour_blind_readers() -> None:
    # Methods of the first round are told apart by colour alone (tab10's orange and green merged).
    looks = plots.method_looks(["patchcore", "ts-mlp", *(f"method-{i:02d}" for i in range(30))])
    distances = _closest_pair(sorted({look.colour for look in looks.values() if look.round == 0}))
    assert min(distances.values()) >= 15, distances


def test_grid_slots_no_dataset_fills_are_hidden(helpers, tmp_path: Path, figures) -> None:
    # The area plot lays out 3 panels a row, the cumulative one 2: 4 datasets leave 2 slots empty, 3 leave 1. Shown,
    # they were empty frames with ticks beside the real panels.
    files = [helpers.write_result(tmp_path / f"{d}.json", helpers.make_result("alpha", "c", dataset=d,
                                                                              pro_curves=False))
             for d in ("d1", "d2", "d3", "d4")]
    table = lb.leaderboard_table(lb.load_results(files))
    plots.plot_aupro_vs_area(table, tmp_path / "a.png")
    plots.plot_cumulative_quartiles(table[table["dataset"] != "d4"], tmp_path / "b.png")
    area, cumulative = figures
    assert [axis.get_visible() for axis in area.axes] == [True] * 4 + [False] * 2
    assert [axis.get_title() for axis in area.axes[:4]] == ["d1", "d2", "d3", "d4"]
    assert [axis.get_visible() for axis in cumulative.axes] == [True] * 3 + [False]
    assert [axis.get_title() for axis in cumulative.axes[:3]] == ["d1", "d2", "d3"]


def test_a_long_pro_curve_is_thinned_to_evenly_spaced_points_keeping_both_ends() -> None:
    # Exact PRO thresholds give a point per distinct score (millions at full resolution): drawn, at most
    # max_points of them, the first and the last kept.
    fpr = np.arange(10) / 10
    pro = np.sqrt(fpr)
    thin_fpr, thin_pro = plots._clip_curve(fpr, pro, 1.0, max_points=4)  # indices 0, 3, 6, 9
    assert thin_fpr.tolist() == [0.0, 0.3, 0.6, 0.9] and thin_pro.tolist() == pro[[0, 3, 6, 9]].tolist()
    # Cut first at the limit (0.5, plus one point past it: 0 ... 0.6), then thinned: indices 0, 2, 4, 6.
    assert plots._clip_curve(fpr, pro, 0.5, max_points=4)[0].tolist() == [0.0, 0.2, 0.4, 0.6]
    assert plots._clip_curve(fpr, pro, 0.5)[0].tolist() == fpr[:7].tolist()  # few points: all kept


def test_qualitative_panel_reads_a_dataset_no_reader_is_named_after_in_the_mvtec_layout(
        helpers, tiny_dataset, tmp_path: Path, figures) -> None:
    # Another tool's result names its dataset "mvtec_ad2", which no reader here is called: a root in the MVTec
    # layout is still read, as such; a root without the category's test/ is passed over.
    root, maps = tiny_dataset
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="mvtec_ad2", dataset_root=str(root), maps_dir=str(maps), n_images=3))
    plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png", k=1)
    assert [axis.get_title() for axis in figures[0].axes if axis.get_title()] == ["image", "ground truth", "alpha"]
    (elsewhere := tmp_path / "elsewhere" / CATEGORY / "train").mkdir(parents=True)
    other = helpers.write_result(tmp_path / "o.json", helpers.make_result(
        "alpha", CATEGORY, dataset="mvtec_ad2", dataset_root=str(elsewhere.parent.parent), maps_dir=str(maps)))
    with pytest.raises(plots.PlotSkipped, match=f"^no result for category '{CATEGORY}' has a readable dataset_root$"):
        plots.plot_smallest_defects(lb.load_results([other]), CATEGORY, tmp_path / "q.png", k=1)


def test_qualitative_panel_marks_a_map_deleted_since_scoring_as_missing(helpers, tiny_dataset, tmp_path: Path,
                                                                        figures) -> None:
    # The 2-px defect's map is gone: its cell says so, the 30-px defect's map is drawn, and no warning is due (the
    # map is not damaged, only absent).
    root, maps = tiny_dataset
    (maps / CATEGORY / "test" / "crack" / "000.tiff").unlink()
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=str(root), maps_dir=str(maps), n_images=3))
    messages: list[str] = []
    plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png", k=2, warn=messages.append)
    assert messages == []
    method_column = [axis for axis in figures[0].axes if axis.get_subplotspec() is not None
                     and axis.get_subplotspec().colspan.start == 2]
    assert [[t.get_text() for t in axis.texts] for axis in method_column] == [["map missing"], []]
    assert [len(axis.images) for axis in method_column] == [1, 2]  # the image crop, and the map over it


def test_without_a_warn_callback_an_unreadable_map_is_a_missing_crop_and_no_warning(
    helpers, tiny_dataset, tmp_path: Path, figures
) -> None:
    # As documented: ``warn`` gets the unreadable maps, and without one they are not reported (unlike the other
    # notes, which go to default_warn); the crop says "map missing", the other defect's map is drawn.
    import warnings

    root, maps = tiny_dataset
    (maps / CATEGORY / "test" / "crack" / "000.tiff").write_bytes(b"II*\x00garbage")
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=str(root), maps_dir=str(maps), n_images=TINY_TEST_IMAGES))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdbenchWarning)
        plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png", k=2)
    method_column = [axis for axis in figures[0].axes if axis.get_subplotspec() is not None
                     and axis.get_subplotspec().colspan.start == 2]
    assert [[t.get_text() for t in axis.texts] for axis in method_column] == [["map missing"], []]


def test_qualitative_panel_is_skipped_when_the_test_set_or_every_map_cannot_be_read(
        helpers, tiny_dataset, tmp_path: Path) -> None:
    # The tables are written already: a test set damaged since scoring, or maps that all fail to read, cost this
    # one plot (PlotSkipped, which the command reports as a warning), not the command.
    root, maps = tiny_dataset
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=str(root), maps_dir=str(maps), n_images=3))
    for stem in ("000", "001"):
        (maps / CATEGORY / "test" / "crack" / f"{stem}.tiff").write_bytes(b"II*\x00garbage")
    messages: list[str] = []
    with pytest.raises(plots.PlotSkipped, match=f"^no readable anomaly map for the smallest defects of '{CATEGORY}'$"):
        plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png", warn=messages.append)
    assert len(messages) == 2 and all(m.startswith("qualitative panel: ") for m in messages)
    mask = root / CATEGORY / "ground_truth" / "crack" / "001_mask.png"
    mask.unlink()
    with pytest.raises(plots.PlotSkipped) as skipped:
        plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "q.png")
    assert str(skipped.value) == (f"cannot read the test set: {root / CATEGORY / 'test/crack/001.png'}: defective test "
                                  f"image has no mask in {mask.parent}")
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "q.png").exists()


def test_qualitative_panel_of_a_category_without_defects_is_skipped_saying_so(helpers, tiny_dataset,
                                                                               tmp_path: Path) -> None:
    # Good test images only (scored, every pixel metric null): nothing to show, and the reason is that, not maps.
    root, maps = tiny_dataset
    for folder in ("test/crack", "ground_truth"):
        shutil.rmtree(root / CATEGORY / folder)
    path = helpers.write_result(tmp_path / "r.json", helpers.make_result(
        "alpha", CATEGORY, dataset="folder", dataset_root=str(root), maps_dir=str(maps), n_images=1))
    with pytest.raises(plots.PlotSkipped, match=f"^category '{CATEGORY}' has no defects$"):
        plots.plot_smallest_defects(lb.load_results([path]), CATEGORY, tmp_path / "p.png")
