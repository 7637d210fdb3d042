"""Leaderboard plots (PNG), drawn with matplotlib's Agg canvas.

Figures are created as :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through
``pyplot``, so no global backend state is touched and nothing needs closing. This module must not import
torch.

Every plot function returns the written path or raises :class:`PlotSkipped` with a one-line reason
when the results hold nothing to draw. Protocol labels (``full``, ``lowres@256``, ``full/l2bt`` ...) are
told apart the same way in every plot, by the label's base name: ``full`` solid / plain bars, ``lowres``
dashed / hatched bars, so a low-resolution baseline sits beside the full-resolution numbers. Further
labels of the same base (another eval size, ``l2bt`` thresholds) get a variant of that style, and no two
labels of one plot share a style. Methods are told apart by their look (:func:`method_looks`): a colour
fixed for the built-in methods and derived from the name for others, plus a marker shape once more
methods than colours are shown. Entries run with random backbone weights are marked ``random
weights`` or ``partly random weights`` (:func:`weights_note`) wherever they are named, inside the one
pair of brackets of their label: ``patchcore (full, random weights)``.

Long labels (method, dataset or category names) are wrapped to the room they have, and legends sit
outside the panels, so nothing is cut off at the figure's edge and no legend hides data. Characters the
plot font lacks (e.g. CJK method names with the default DejaVu Sans) are reported once, as one
``warning:`` line, instead of matplotlib's per-glyph warnings.
"""

from __future__ import annotations

import heapq
import math
import re
import textwrap
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from adbench_hr import maps
from adbench_hr.datasets import MVTecLayoutDataset, TestSample, open_dataset
from adbench_hr.datasets.base import Dataset
from adbench_hr.errors import InputError
from adbench_hr.fileio import atomic_path
from adbench_hr.leaderboard import (
    MAIN_LIMIT,
    ORIGINAL_PREFIX,
    AreaBin,
    ResultFile,
    Warn,
    area_bins,
    default_warn,
    has_original_defects,
    limit_key,
    protocol_base,
    protocol_order,
    summary_table,
    weights_note,
)
from adbench_hr.metrics import CONNECTIVITY
from adbench_hr.scoring import check_map_size

DPI = 150
# Per protocol base name, the style of its first label, then variants for further labels of that base. No
# style occurs twice (not even across bases); a base with more labels than variants gets generated ones
# (:func:`_protocol_style`), so every label of a plot keeps a style of its own.
_LINESTYLES = {
    "full": ("-", (0, (5, 1.5, 1, 1.5)), (0, (8, 1.5, 1, 1.5, 1, 1.5)), (0, (10, 2.5)), (0, (8, 1.5, 3, 1.5))),
    "lowres": ("--", (0, (1, 1.2)), (0, (3, 1, 1, 1, 1, 1)), (0, (3, 1, 3, 1, 1, 1)), (0, (1.5, 0.8)),
               (0, (0.5, 1.5, 3, 1.5))),
}
_HATCHES = {"full": ("", "..", "oo", "**", "OO"), "lowres": ("//", "\\\\", "||", "//..", "\\\\..", "||..", "--")}
_OTHER_LINESTYLES = ((0, (1, 3)), (0, (6, 3)), (0, (1, 3, 6, 3)), (0, (6, 2, 6, 5)))
_OTHER_HATCHES = ("xx", "++", "xx..", "++..")
# Dash length of the generated line styles per base (one that no listed style starts with).
_EXTRA_DASH = {"full": 12.0, "lowres": 4.5, None: 7.0}
# The PRO curves tell the quartiles apart by colour alone: Okabe-Ito's vermillion, orange, sky blue and blue stay
# apart under red-green (and blue-yellow) colour blindness, where tab10's red, orange and green do not.
_QUARTILE_COLOURS = {"Q1": "#D55E00", "Q2": "#E69F00", "Q3": "#56B4E9", "Q4": "#0072B2"}


class PlotSkipped(Exception):
    """Raised when a plot has nothing to show; the message says why."""


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    """Save atomically: an interrupted leaderboard leaves the previous plot, never half of one."""
    path = Path(path)
    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=DPI, format=path.suffix.lstrip(".").lower() or "png")
    return path


# One fixed palette, whatever the number of methods, so a method's colour does not depend on how many
# others are loaded. The built-in methods own their entries (the committed leaderboard's blue and orange):
# no other method gets them in the first round, so they never look like a third-party entry. Okabe-Ito's
# colours (without yellow, too pale for a line on white): told apart with any colour blindness, where
# tab10's orange and green (protanopia) or red and green, blue and purple (deuteranopia) merge.
_PALETTE = ("#0072B2", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7")
_FIXED_COLOURS = {"patchcore": 0, "ts-mlp": 1}
# Marker of the methods that share a colour with earlier ones (round 1, 2 ...); round 0 keeps the plain
# protocol markers (filled circle for full, hollow square otherwise).
_ROUND_MARKERS = ("^", "v", "P", "X", "*", "p", "h", "<", ">", "d")


@dataclass(frozen=True)
class MethodLook:
    """How a method is drawn: its colour and, once the palette's colours are used up, its colour round.

    Methods of round 0 are told apart by colour alone; a method of round ``n > 0`` may share its colour
    with a method of an earlier round and carries the marker ``_ROUND_MARKERS[n - 1]``: on its line's
    points and as a badge on its bars, so no two methods of a plot look alike.
    """

    colour: tuple
    round: int = 0

    @property
    def badge(self) -> str | None:
        """The marker that tells this method apart from others of its colour (``None`` in round 0)."""
        return None if self.round == 0 else _ROUND_MARKERS[(self.round - 1) % len(_ROUND_MARKERS)]

    def marker(self, full: bool) -> str:
        """The line plot's marker: the round's badge, else a circle (full) or a square (other protocols)."""
        return self.badge or ("o" if full else "s")


def method_looks(methods: Iterable[str]) -> dict[str, MethodLook]:
    """The look of each method: the one place that decides a method's colour and marker.

    ``ts-mlp`` and ``patchcore`` have fixed colours. Every other name starts at the palette entry given
    by a stable hash of the name (CRC-32, the same in every process, unlike :func:`hash`) and probes
    forward to the next entry that no earlier name (in sorted order) holds, so the result is
    deterministic, and a method keeps its colour whichever others are loaded unless an earlier name
    collides with it. When every colour of a round is taken, the next round starts: colours are used
    again, with a round marker (:class:`MethodLook`) added.
    """
    palette = [to_rgba(colour) for colour in _PALETTE]
    size = len(palette)
    names = set(methods)
    taken = {(0, index) for index in _FIXED_COLOURS.values()}
    looks = {name: MethodLook(palette[index]) for name, index in _FIXED_COLOURS.items() if name in names}
    for name in sorted(names - set(_FIXED_COLOURS)):
        start = zlib.crc32(name.encode("utf-8")) % size
        round_ = 0
        while True:
            probes = [(start + step) % size for step in range(size)]
            free = [index for index in probes if (round_, index) not in taken]
            if free:
                taken.add((round_, free[0]))
                looks[name] = MethodLook(palette[free[0]], round_)
                break
            round_ += 1
    return looks


def _badge(axis, x, y, look: MethodLook) -> None:
    """Mark bars of a method past the palette's first round with its round marker (their colour repeats)."""
    if look.badge is not None:
        axis.plot(x, y, linestyle="", marker=look.badge, markersize=5, markerfacecolor="white",
                  markeredgecolor="black", markeredgewidth=0.7, zorder=3)


def _bar_handle(look: MethodLook, label: str, hatch: str = "", alpha: float = 1.0):
    """A legend handle for a method's bars: a patch, with the round marker over it where it has one."""
    patch = Patch(facecolor=look.colour, edgecolor="black", linewidth=0.5, hatch=hatch, alpha=alpha, label=label)
    if look.badge is None:
        return patch
    marker = Line2D([], [], linestyle="", marker=look.badge, markersize=5, markerfacecolor="white",
                    markeredgecolor="black", markeredgewidth=0.7)
    return (patch, marker)


def _frame_weights(rows: pd.DataFrame) -> str:
    """:func:`weights_note` of a table's or summary's rows (no mark without the column)."""
    if "pretrained_backbone" not in rows.columns:
        return ""
    return weights_note(rows["pretrained_backbone"])


def _style_family(protocol: str, styles: dict[str, tuple]) -> str | None:
    """A label's base name when that base has styles of its own, else ``None`` (the other protocols)."""
    base = protocol_base(protocol)
    return base if base in styles else None


def _protocol_style(protocol: str, order: Sequence[str], styles: dict[str, tuple], others: tuple):
    """The style of a protocol label: its family's variants, taken in the family's order in ``order``."""
    family = _style_family(protocol, styles)
    members = [p for p in order if _style_family(p, styles) == family]
    variants = others if family is None else styles[family]
    index = members.index(protocol)
    if index < len(variants):
        return variants[index]
    extra = index - len(variants)
    if styles is _LINESTYLES:
        # A family-specific dash followed by 1, 2, 3 ... dots: never one of the listed styles.
        return (0, (_EXTRA_DASH[family], 1.5) + (1.0, 1.5) * (extra + 1))
    # Hatches: the family's patterns again, denser on every further round (the density is the count).
    patterns = [v for v in variants if v]
    return patterns[extra % len(patterns)] * (2 + extra // len(patterns))


def _linestyle(protocol: str, order: Sequence[str]):
    return _protocol_style(protocol, order, _LINESTYLES, _OTHER_LINESTYLES)


def _hatch(protocol: str, order: Sequence[str]) -> str:
    return _protocol_style(protocol, order, _HATCHES, _OTHER_HATCHES)


def _is_full(protocol: str) -> bool:
    return protocol_base(protocol) == "full"


def _protocol_title(protocols: Sequence[str]) -> str:
    """`` · full/l2bt`` for a suptitle when a plot shows one protocol label: its legend entries then leave the
    label out (:func:`_entry_label`), and l2bt or low-resolution numbers must not pass for exact full ones."""
    return f" · {protocols[0]}" if len(protocols) == 1 else ""


def _entry_label(method: str, protocol: str, show_protocol: bool, *notes: str) -> str:
    """``method``, then the protocol (when shown) and each non-empty note in one pair of parentheses:
    ``patchcore (full, random weights)``."""
    parts = [protocol] if show_protocol else []
    parts += [note for note in notes if note]
    return f"{method} ({', '.join(parts)})" if parts else method


def _grid(count: int, max_columns: int = 3) -> tuple[int, int]:
    columns = min(count, max_columns)
    return math.ceil(count / columns), columns


def _text_width(text: str, renderer, fontsize) -> float:
    """Width in display pixels of the widest line of ``text`` at ``fontsize`` (points or a size name)."""
    prop = FontProperties(size=fontsize)
    return max(renderer.get_text_width_height_descent(line, prop, ismath=False)[0] for line in text.split("\n"))


def _wrap(text: str, width_in: float, figure: Figure, fontsize="medium") -> str:
    """``text`` with every line wrapped (at spaces and hyphens) to at most ``width_in`` inches.

    Lines that fit are kept; a longer one is broken into as few lines as fit, so long method, dataset or
    category names neither run off the figure nor into a neighbouring panel.
    """
    renderer = figure.canvas.get_renderer()
    room = width_in * figure.dpi
    lines = []
    for line in text.split("\n"):
        width = _text_width(line, renderer, fontsize)
        if width <= room or len(line) < 2:
            lines.append(line)
            continue
        chars = max(1, min(len(line) - 1, int(len(line) * room / width)))
        while True:
            pieces = textwrap.wrap(line, chars, break_on_hyphens=True) or [line]
            if chars == 1 or all(_text_width(piece, renderer, fontsize) <= room for piece in pieces):
                break
            chars -= 1
        lines.extend(pieces)
    return "\n".join(lines)


def _figure_legend(figure: Figure, axes: Sequence, handles: list | None = None,
                   labels: list[str] | None = None) -> None:
    """One legend below all panels (entries gathered from every axis), so it never hides data.

    ``handles`` replace the gathered entries; their labels are ``labels`` or the handles' own (a tuple of
    artists, drawn on top of each other, needs ``labels``). Up to 5 columns, fewer when long entries
    (e.g. "method (lowres@512/l2bt)") would not fit the width; entries too long even for one column are
    wrapped. The figure grows by the legend's height, so the panels keep their size.
    """
    if handles is None:
        seen: dict[str, object] = {}
        for axis in axes:
            for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
                seen.setdefault(label, handle)
        labels, handles = list(seen), list(seen.values())
    elif labels is None:
        labels = [h.get_label() for h in handles]
    if not handles:
        return
    renderer = figure.canvas.get_renderer()
    room = 0.98 * figure.bbox.width
    for ncols in range(min(len(handles), 5), 0, -1):
        legend = figure.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=8)
        extent = legend.get_window_extent(renderer)
        if extent.width <= room:
            break
        legend.remove()
        if ncols == 1:
            # Even one column is too wide: wrap the entries to the room the handles leave.
            texts = max(t.get_window_extent(renderer).width for t in legend.get_texts())
            text_room = (room - (extent.width - texts)) / figure.dpi
            labels = [_wrap(label, text_room, figure, 8) for label in labels]
            legend = figure.legend(handles, labels, loc="outside lower center", ncols=1, fontsize=8)
            extent = legend.get_window_extent(renderer)
    figure.set_figheight(figure.get_figheight() + extent.height / figure.dpi + 0.1)


# Characters already reported as missing from the plot font (one warning per process, not per plot).
_REPORTED_GLYPHS: set[str] = set()
# matplotlib >= 3.9 names the fonts; earlier versions say "missing from current font."
_MISSING_GLYPH = re.compile(
    r"^Glyph (?P<code>\d+) .*missing from (?:font\(s\) (?P<font>.+?)|current font)\.?$", re.DOTALL
)


@contextmanager
def _missing_glyphs(warn: Warn | None, texts: Iterable[str] = ()) -> Iterator[None]:
    """Collect matplotlib's "Glyph ... missing from font(s)" warnings into one ``warning:`` line.

    matplotlib warns once per missing character and call site, in several lines each; inside this
    context they are caught, and ``warn`` (default :func:`default_warn`) gets one line naming the
    characters the font lacks. ``texts`` (method, dataset, category names ...) are checked up front, so
    the first plot reports every such character of the results and later plots stay quiet: characters
    are reported once per process. Other warnings pass through unchanged.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = " ".join(sorted(set(texts)))
            if text.strip():
                renderer = FigureCanvasAgg(Figure(dpi=DPI)).get_renderer()
                renderer.get_text_width_height_descent(text, FontProperties(), ismath=False)
            yield
    finally:
        missing: dict[str, None] = {}
        fonts: dict[str, None] = {}
        for message in caught:
            match = _MISSING_GLYPH.match(str(message.message))
            if match is None or not issubclass(message.category, UserWarning):
                warnings.warn_explicit(message.message, message.category, message.filename, message.lineno,
                                       source=message.source)
                continue
            missing.setdefault(chr(int(match["code"])))
            if match["font"]:
                fonts.setdefault(match["font"])
        new = [c for c in missing if c not in _REPORTED_GLYPHS]
        if new:
            _REPORTED_GLYPHS.update(new)
            shown = " ".join(f"{c} (U+{ord(c):04X})" for c in new[:10])
            more = f" and {len(new) - 10} more" if len(new) > 10 else ""
            font = f"the plot font ({', '.join(fonts)})" if fonts else "the plot font"
            (warn or default_warn)(f"{font} has no glyph for {shown}{more} in the labels; they show as empty "
                                  "boxes in the plots")


def _table_texts(table: pd.DataFrame) -> list[str]:
    """The names a table's plots may draw: methods, datasets, protocol labels and categories."""
    columns = [c for c in ("method", "dataset", "protocol", "category") if c in table.columns]
    return sorted({str(v) for c in columns for v in table[c].dropna().unique()})


def _result_texts(results: Sequence[ResultFile]) -> list[str]:
    return sorted({str(v) for r in results for v in (r.method, r.dataset, r.protocol, r.category)})


def _incomplete_notes(summary: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """How the plots mark the summary's entries that are not ranked (``complete`` false).

    Keyed by method, dataset and protocol label: ``not ranked: 3 of 4 categories`` when the entry has
    fewer categories than another of its dataset x protocol label, else ``not ranked`` (a null ρ where
    others have one). ``rho_ranking.png``, ``aupro_vs_area.png`` and ``cumulative_quartiles.png`` use
    the same marks.
    """
    if "complete" not in summary.columns:
        return {}
    most = summary.groupby(["dataset", "protocol"])["n_categories"].transform("max")
    notes = {}
    for index, row in summary.iterrows():
        if bool(row["complete"]):
            continue
        count, total = int(row["n_categories"]), int(most[index])
        note = f"not ranked: {count} of {total} categories" if count < total else "not ranked"
        notes[(row["method"], row["dataset"], row["protocol"])] = note
    return notes


def original_protocols(subset: pd.DataFrame, protocols: Sequence[str]) -> set[str]:
    """Protocol labels of ``protocols`` read per original defect in ``subset`` (one dataset's rows).

    A label qualifies when every one of its rows carries ``metrics.original_defects`` (the ``orig_*``
    columns; only low-resolution results have them), so all of its methods are read the same way and a
    bin holds the same defects under every protocol. Older result files keep the label on its own
    (resized) defects.
    """
    found = set()
    for protocol in protocols:
        rows = subset[subset["protocol"] == protocol]
        if len(rows) and has_original_defects(rows).all():
            found.add(protocol)
    return found


def _read(group: pd.DataFrame, columns: Sequence[str], original: bool) -> pd.Series:
    """Means over a group's rows of ``columns``, or of their ``orig_`` twins; absent columns give NaN."""
    names = [f"{ORIGINAL_PREFIX}{c}" if original else c for c in columns]
    means = group.reindex(columns=names).astype(float).mean()
    means.index = list(columns)
    return means


def bin_centre(area_bin: AreaBin) -> float:
    """Where a bin sits on a log axis: its geometric centre; an open last bin at twice its lower edge."""
    if area_bin.max_px is None:
        return 2.0 * area_bin.min_px
    return math.sqrt(area_bin.min_px * area_bin.max_px)


def _bin_tick(area_bin: AreaBin) -> str:
    low = f"{area_bin.min_px:g}"
    return f"≥{low}" if area_bin.max_px is None else f"{low}–{area_bin.max_px:g}"


# --------------------------------------------------------------------------------------------------
# 1. AUPRO versus defect area
# --------------------------------------------------------------------------------------------------


def plot_aupro_vs_area(table: pd.DataFrame, path: str | Path, limit: str = MAIN_LIMIT,
                       warn: Warn | None = default_warn, summary: pd.DataFrame | None = None) -> Path:
    """AUPRO@limit per absolute area bin, one line per method (x protocol), one panel per dataset.

    Each point is the mean over the dataset's categories of the bin's AUPRO (NaN-aware); a null bin breaks
    the line (no segment runs through a bin without a value), and an entry without any value keeps its
    legend entry, marked ``no values``. Low-resolution entries whose results carry ``metrics.original_defects`` are
    drawn from the original-defect bins (:func:`original_protocols`), so every protocol's point in a bin
    is about the same defects, binned by their full-resolution area. Tick labels give the bin range and
    its total number of defects; where the protocols count different defects, one number per protocol
    (``n=20/16``, order in the axis label), and the defects lost at low resolution (``4 lost``).
    Entries that ``summary.csv`` does not rank (means over other categories) are pale and marked
    ``(not ranked ...)`` in the legend, which lists each method's labels in protocol order; entries with
    random backbone weights are marked ``random weights`` (:func:`weights_note`). Each entry's points
    are shifted by a small fixed factor around the bin's centre (:func:`dodge_factors`), so equal values
    of two entries do not hide each other, and hollow markers are drawn above filled ones; the y axis
    leaves room below 0 and above 1, so markers there are whole. ``warn`` gets the one-line report of
    characters the plot font lacks. ``summary`` is ``summary_table(table)`` when the caller already has it.
    """
    with _missing_glyphs(warn, _table_texts(table)):
        return _plot_aupro_vs_area(table, path, limit, summary_table(table) if summary is None else summary)


def _plot_aupro_vs_area(table: pd.DataFrame, path: str | Path, limit: str, summary: pd.DataFrame) -> Path:
    limit = limit_key(limit)
    bins = area_bins(table.columns, limit)
    if not bins:
        raise PlotSkipped(f"no per-area AUPRO@{limit} values in the results")
    datasets = sorted(table["dataset"].unique())
    protocols = protocol_order(list(table["protocol"].unique()))
    looks = method_looks(table["method"].unique())
    notes = _incomplete_notes(summary)
    rows, columns = _grid(len(datasets))
    figure = _figure(6.4 * columns, 4.6 * rows)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    drawn = 0
    for axis, dataset in zip(axes, datasets, strict=False):
        subset = table[table["dataset"] == dataset]
        present = [p for p in protocols if (subset["protocol"] == p).any()]
        original = original_protocols(subset, present)
        groups = sorted(subset.groupby(["method", "protocol"], sort=True),
                        key=lambda item: (item[0][0], protocols.index(item[0][1])))
        shifts = dodge_factors(len(groups))
        for ((method, protocol), group), shift in zip(groups, shifts, strict=True):
            means = _read(group, [b.column(limit) for b in bins], protocol in original)
            # A null bin stays NaN: the line breaks there instead of running through a bin without a value.
            xs = [bin_centre(b) * shift for b in bins]
            ys = [means[b.column(limit)] for b in bins]
            empty = not np.isfinite(ys).any()  # drawn all the same: its legend entry says it has no values
            # Hollow markers for non-full protocols keep single points distinguishable too; drawn above
            # the filled ones, so a hollow marker never disappears under a filled one.
            full, look = _is_full(protocol), looks[method]
            note = notes.get((method, dataset, protocol), "")
            axis.plot(xs, ys, marker=look.marker(full), color=look.colour,
                      markerfacecolor=look.colour if full else "white",
                      linestyle=_linestyle(protocol, protocols), alpha=0.45 if note else 1.0,
                      zorder=2.0 if full else 2.1,
                      label=_entry_label(method, protocol, len(protocols) > 1, _frame_weights(group), note,
                                         "no values" if empty else ""))
            drawn += not empty
        ticks = [f"{_bin_tick(b)}\n{_count_tick(subset, b, present, original)}" for b in bins]
        axis.set_xscale("log")
        axis.set_xticks([bin_centre(b) for b in bins])
        axis.set_xticklabels(ticks, fontsize=7)
        axis.minorticks_off()
        # A little room below 0 and above 1, so markers at AUPRO 0 or 1 are not cut in half by the frame.
        axis.set_ylim(-_Y_MARGIN, 1.0 + _Y_MARGIN)
        axis.set_title(_wrap(str(dataset), 6.4 - 1.2, figure, "large"))
        axis.set_xlabel(_area_axis_label(subset, bins, present, original), fontsize=8)
        axis.set_ylabel(f"AUPRO@{limit}")
        axis.grid(True, alpha=0.3)
    for axis in axes[len(datasets):]:
        axis.set_visible(False)
    if not drawn:
        raise PlotSkipped(f"every per-area AUPRO@{limit} value is null")
    _figure_legend(figure, axes)
    figure.suptitle(_wrap(f"AUPRO@{limit} versus defect area (mean over categories){_protocol_title(protocols)}",
                          6.4 * columns - 0.2, figure, "large"))
    return _save(figure, path)


# Room (AUPRO units) the area plot leaves below 0 and above 1 for markers on those values.
_Y_MARGIN = 0.04
# Largest horizontal spread (decades) of one bin's points, and the step between neighbouring entries.
_DODGE_SPREAD = 0.25
_DODGE_STEP = 0.05


def dodge_factors(count: int) -> list[float]:
    """Factors that spread ``count`` entries' points around a bin's centre on the log x axis.

    Entry ``i`` (in legend order) is shifted by ``10 ** (step * (i - (count - 1) / 2))``: the same
    factor in every bin, symmetric around the centre, ``_DODGE_STEP`` decades apart and at most
    ``_DODGE_SPREAD`` decades from the first entry to the last, well inside the bins (0.6 decades
    apart). Equal values of two entries therefore sit side by side instead of on top of each other.
    """
    if count < 2:
        return [1.0] * count
    step = min(_DODGE_STEP, _DODGE_SPREAD / (count - 1))
    return [10.0 ** (step * (index - (count - 1) / 2)) for index in range(count)]


def _count_tick(subset: pd.DataFrame, area_bin: AreaBin, present: Sequence[str], original: set[str]) -> str:
    """``n=20``, or ``n=20/16`` and a line ``(4 lost)`` when the protocols' counts differ."""
    counts = _bin_counts(subset, area_bin, present, original)
    text = f"n={'/'.join(map(str, counts)) if len(set(counts)) > 1 else counts[0]}"
    lost = [x for x in _bin_lost(subset, area_bin, present, original) if x is not None]
    if any(lost):
        text += f"\n({'/'.join(map(str, lost))} lost)"
    return text


# Characters per line of long axis labels (they are wrapped rather than cut off at the figure's edge).
_LABEL_WIDTH = 90


def _area_axis_label(subset: pd.DataFrame, bins: Sequence[AreaBin], present: Sequence[str],
                     original: set[str]) -> str:
    """Two lines: what the area is (original or resized px), then what the tick counts are."""
    resized = [p for p in present if protocol_base(p) == "lowres" and p not in original]
    if resized:
        area = f"defect area [px], absolute bins ({', '.join(resized)}: resized-mask defects and areas)"
    else:
        area = "defect area at full resolution [px], absolute bins"
    differ = any(len(set(_bin_counts(subset, b, present, original))) > 1 for b in bins)
    counts = f"n = defects in bin under {' / '.join(present)}" if differ else "n = defects in bin"
    if any(x for b in bins for x in _bin_lost(subset, b, present, original) if x):
        counts += "; lost = no pixel left at low resolution"
    return "\n".join(textwrap.wrap(area, _LABEL_WIDTH) + textwrap.wrap(counts, _LABEL_WIDTH))


def _largest_total(rows: pd.DataFrame, column: str) -> int | None:
    """A count column summed over each method's rows, the largest over methods (None if all null)."""
    if column not in rows.columns:
        return None
    totals = rows.groupby("method")[column].sum(min_count=1)
    return int(totals.max()) if totals.notna().any() else None


def _bin_counts(subset: pd.DataFrame, area_bin: AreaBin, protocols: Sequence[str],
                original: set[str] | frozenset[str] = frozenset()) -> list[int]:
    """Defects in a bin over a dataset's categories, one number per protocol label of ``protocols``.

    Each protocol counts its own defects (a low-resolution mask can split a thin scratch into many
    pieces or lose a speck), so one number would misdescribe the other protocol's bin. Labels in
    ``original`` count the original defects of the bin that kept a pixel at low resolution. Per protocol
    the count is the largest over methods (methods may cover different categories).
    """
    counts = []
    for protocol in protocols:
        prefix = ORIGINAL_PREFIX if protocol in original else ""
        rows = subset[subset["protocol"] == protocol]
        counts.append(_largest_total(rows, f"{prefix}{area_bin.count_column}") or 0)
    return counts or [0]


def _bin_lost(subset: pd.DataFrame, area_bin: AreaBin, protocols: Sequence[str],
              original: set[str] | frozenset[str] = frozenset()) -> list[int | None]:
    """Original defects of a bin lost at low resolution, per label (None for labels not in ``original``)."""
    lost: list[int | None] = []
    for protocol in protocols:
        rows = subset[subset["protocol"] == protocol]
        column = f"{ORIGINAL_PREFIX}{area_bin.lost_column}"
        lost.append(_largest_total(rows, column) if protocol in original else None)
    return lost


# --------------------------------------------------------------------------------------------------
# 2. Cumulative quartiles
# --------------------------------------------------------------------------------------------------

_CUMULATIVE_COLUMN = re.compile(r"^aupro_cum_(?P<name>[^@]+)@(?P<limit>.+)$")
_CUMULATIVE_TICKS = {"Q4": "Q4\n(all)", "Q3": "Q3\n(≤ q75)", "Q2": "Q2\n(≤ q50)", "Q1": "Q1\n(≤ q25)"}


def plot_cumulative_quartiles(table: pd.DataFrame, path: str | Path, limit: str = MAIN_LIMIT,
                              warn: Warn | None = default_warn, summary: pd.DataFrame | None = None) -> Path:
    """Grouped bars of AUPRO@limit over the cumulative size bins Q4 -> Q1, one bar per method x protocol.

    Bars are means over categories (NaN-aware). A null value leaves its slot without a bar but marked
    ``n/a``; a value too small to see as a bar gets a ``0`` when the bars carry no value labels (more than
    4 per group), so a zero never looks like a missing value. An entry without any value keeps its legend
    entry. One panel per dataset.
    Low-resolution entries with ``metrics.original_defects`` show the quartiles of the original defects
    (``orig_aupro_cum_Qk``, :func:`original_protocols`), so Q1 is the smallest quarter of the same defects
    under every protocol, not of the resized masks' fragments. Entries ``summary.csv`` does not rank are
    pale and marked ``(not ranked ...)``, as in :func:`plot_aupro_vs_area`, whose ``summary`` this takes too;
    entries with random backbone weights are marked ``(random weights)``. Methods past the palette's first
    round of colours carry
    their round marker on top of their bars (:class:`MethodLook`).
    """
    with _missing_glyphs(warn, _table_texts(table)):
        return _plot_cumulative_quartiles(table, path, limit, summary_table(table) if summary is None else summary)


def _plot_cumulative_quartiles(table: pd.DataFrame, path: str | Path, limit: str, summary: pd.DataFrame) -> Path:
    limit = limit_key(limit)
    names = sorted({m["name"] for c in table.columns if (m := _CUMULATIVE_COLUMN.match(c))
                    and limit_key(m["limit"]) == limit}, reverse=True)
    if not names:
        raise PlotSkipped(f"no cumulative-quartile AUPRO@{limit} values in the results")
    columns_used = [f"aupro_cum_{name}@{limit}" for name in names]
    datasets = sorted(table["dataset"].unique())
    protocols = protocol_order(list(table["protocol"].unique()))
    looks = method_looks(table["method"].unique())
    notes = _incomplete_notes(summary)
    rows, columns = _grid(len(datasets), max_columns=2)
    # Panels widen with their bars (e.g. 8 methods x 4 protocols), so a bar stays wide enough to show its hatch.
    most = max(table[table["dataset"] == d].groupby(["method", "protocol"]).ngroups for d in datasets)
    panel_in = max(6.0, 1.2 + len(names) * most * _MIN_BAR_IN / 0.8)
    figure = _figure(panel_in * columns, 4.2 * rows)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    drawn = 0
    # Legend entries of every panel, also of entries without a single value (they show "n/a" bars).
    handles: dict[str, tuple[tuple[str, int], object]] = {}
    for axis, dataset in zip(axes, datasets, strict=False):
        subset = table[table["dataset"] == dataset]
        original = original_protocols(subset, protocols)
        entries = [(key, _read(group, columns_used, key[1] in original), _frame_weights(group))
                   for key, group in subset.groupby(["method", "protocol"], sort=True)]
        entries.sort(key=lambda e: (e[0][0], protocols.index(e[0][1])))
        width = 0.8 / max(len(entries), 1)
        labelled = len(entries) <= 4  # more bars per group leave no room for readable value labels
        for index, ((method, protocol), means, weights) in enumerate(entries):
            offsets = np.arange(len(names)) - 0.4 + width * (index + 0.5)
            values = means.to_numpy(dtype=float)
            finite = np.isfinite(values)
            look, hatch = looks[method], _hatch(protocol, protocols)
            note = notes.get((method, dataset, protocol), "")
            alpha = 0.4 if note else 1.0
            label = _entry_label(method, protocol, len(protocols) > 1, weights, note)
            handles.setdefault(label, ((method, protocols.index(protocol)), _bar_handle(look, label, hatch, alpha)))
            if finite.any():
                bars = axis.bar(offsets[finite], values[finite], width=width, color=look.colour, hatch=hatch,
                                edgecolor="black", linewidth=0.5, alpha=alpha, label=label)
                _badge(axis, offsets[finite], values[finite], look)
                if labelled:
                    axis.bar_label(bars, fmt="%.2f", fontsize=6, padding=6 if look.badge else 1)
                drawn += 1
            _mark_empty_bars(axis, offsets, values, labelled, look)
        axis.set_xticks(np.arange(len(names)))
        axis.set_xticklabels([_CUMULATIVE_TICKS.get(n, n) for n in names])
        # Every slot inside the panel, also the outermost ones of entries without a bar ("n/a").
        axis.set_xlim(-0.5, len(names) - 0.5)
        axis.set_ylim(0.0, 1.08)
        # Wrapped to the panel (like the area plot's axis label), so a list of many labels is not cut off.
        axis.set_xlabel(_wrap(_quartile_axis_label(subset, protocols, original), panel_in - 1.2, figure))
        axis.set_ylabel(f"AUPRO@{limit}")
        axis.set_title(_wrap(str(dataset), panel_in - 1.2, figure, "large"))
        axis.grid(True, axis="y", alpha=0.3)
    for axis in axes[len(datasets):]:
        axis.set_visible(False)
    if not drawn:
        raise PlotSkipped(f"every cumulative-quartile AUPRO@{limit} value is null")
    # Sorted by method and protocol, whichever panel an entry first appeared in.
    ordered = sorted(handles.items(), key=lambda item: item[1][0])
    _figure_legend(figure, axes, [handle for _, (_, handle) in ordered], [label for label, _ in ordered])
    figure.suptitle(_wrap(f"AUPRO@{limit} on cumulative size quartiles (mean over categories)"
                          f"{_protocol_title(protocols)}", panel_in * columns - 0.2, figure, "large"))
    return _save(figure, path)


def _quartile_axis_label(subset: pd.DataFrame, protocols: list[str], original: set[str]) -> str:
    """The quartile plot's axis label: which defects the low-resolution bars are about, the original ones
    (by their area at full resolution) or the resized masks' own."""
    label = "cumulative defect-size bin (Q1 = smallest quarter of defects)"
    present = set(subset["protocol"])
    resized = [p for p in protocols if p in present and protocol_base(p) == "lowres" and p not in original]
    if original:
        label += f"\n{', '.join(p for p in protocols if p in original)}: original defects by original area"
    if resized:
        label += f"\n{', '.join(resized)}: quartiles of the resized masks' defects"
    return label


# Narrowest bar (inches) of the quartile plot: about 9 px at 150 dpi, room for a few strokes of its hatch.
_MIN_BAR_IN = 0.06
# Values below this draw a bar too flat to see (and print as 0.00): they get a "0" at the baseline.
_ZERO_BAR = 0.005


def _mark_empty_bars(axis, offsets: np.ndarray, values: np.ndarray, labelled: bool, look: MethodLook) -> None:
    """Write ``n/a`` in the slot of a null value, and ``0`` on a bar too flat to see when bars have no labels.

    Without them a bar of 0 and a missing value both look like an empty slot.
    """
    for x, value in zip(offsets, values, strict=True):
        if np.isfinite(value) and (labelled or value >= _ZERO_BAR):
            continue
        text = "n/a" if not np.isfinite(value) else "0"
        lift = 6 if look.badge and np.isfinite(value) else 2  # above the round marker, if the bar has one
        # "n/a" upright would be wider than a narrow bar; a rotated "0" would read as "o".
        axis.annotate(text, (x, 0.0), xytext=(0, lift), textcoords="offset points", rotation=90 if text == "n/a" else 0,
                      ha="center", va="bottom", fontsize=6, color="dimgray" if text == "n/a" else "black")


# --------------------------------------------------------------------------------------------------
# 3. Size-robustness ranking
# --------------------------------------------------------------------------------------------------


def plot_rho_ranking(summary: pd.DataFrame, path: str | Path, limit: str = MAIN_LIMIT,
                     warn: Warn | None = default_warn) -> Path:
    """Horizontal bars of rho@limit, best at the top, one panel per dataset x protocol label.

    Ranks only exist within a dataset and protocol label, so each gets its own panel. Bars are the
    summary's entries (means over categories); an entry with a null rho is listed with the text ``null``
    and no bar, one that is not ranked (``complete`` false: a mean over fewer categories) is pale and
    marked "not ranked" (:func:`_incomplete_notes`), one with random backbone weights (the summary's
    ``pretrained_backbone`` ``False`` or ``mixed``) ``(random weights)`` or ``(partly random weights)``.
    Low-resolution panels use the summary's own reading: defects of the resized masks, which their title
    says. Long method names are wrapped and the figure widened for them.
    """
    with _missing_glyphs(warn, _table_texts(summary)):
        return _plot_rho_ranking(summary, path, limit)


# Widest method label of the ranking (inches) before it is wrapped; the bars keep the rest.
_RANK_LABEL_IN = 2.6


def _plot_rho_ranking(summary: pd.DataFrame, path: str | Path, limit: str) -> Path:
    column = f"rho@{limit_key(limit)}"
    if column not in summary.columns or summary[column].isna().all():
        raise PlotSkipped(f"no {column} values in the results")
    protocols = protocol_order(list(summary["protocol"].unique()))
    panels = [(d, p) for d in sorted(summary["dataset"].unique()) for p in protocols
              if ((summary["dataset"] == d) & (summary["protocol"] == p)).any()]
    looks = method_looks(summary["method"].unique())
    notes = _incomplete_notes(summary)
    figure = _figure(7.0, 4.0)
    renderer = figure.canvas.get_renderer()
    # Per panel its entries, best first, and their (wrapped) labels; the figure is sized from them.
    layout = []
    for dataset, protocol in panels:
        subset = summary[(summary["dataset"] == dataset) & (summary["protocol"] == protocol)]
        subset = subset.sort_values(["rank", column], ascending=[True, False], na_position="last")
        labels = [_wrap(_entry_label(entry["method"], protocol, False, weights_note([entry.get("pretrained_backbone")]),
                                     notes.get((entry["method"], dataset, protocol), "")), _RANK_LABEL_IN, figure)
                  for _, entry in subset.iterrows()]
        layout.append((dataset, protocol, subset, labels))
    label_in = max(_text_width(label, renderer, "medium") for *_, labels in layout for label in labels) / DPI
    width = max(7.0, label_in + 4.9)
    text_in = width - label_in - 0.4  # about the width of the bars' axes
    titles = []
    for dataset, protocol, _, _ in layout:
        reading = " (defects of the resized masks, as toolkits count)" if protocol_base(protocol) == "lowres" else ""
        titles.append(_wrap(f"{dataset} · {protocol}{reading}", text_in, figure, 9))
    heights = [sum(max(0.45, 0.17 * (label.count("\n") + 1) + 0.12) for label in labels)
               for *_, labels in layout]
    title_lines = sum(title.count("\n") for title in titles)
    figure.set_size_inches(width, 0.9 + sum(heights) + 0.7 * len(panels) + 0.17 * title_lines)
    axes = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights, sharex=True).ravel()
    for axis, (dataset, protocol, subset, labels), title in zip(axes, layout, titles, strict=True):
        positions = np.arange(len(subset))[::-1]  # best entry on top
        for y, (_, entry) in zip(positions, subset.iterrows(), strict=True):
            method, value = entry["method"], float(entry[column])
            ranked = (method, dataset, protocol) not in notes
            look = looks[method]
            if np.isfinite(value):
                axis.barh(y, value, color=look.colour, edgecolor="black", linewidth=0.5,
                          alpha=1.0 if ranked else 0.4)
                _badge(axis, [value], [y], look)
                axis.text(value + (0.03 if look.badge else 0.01), y, f"{value:.3f}", va="center", fontsize=8)
            else:
                axis.text(0.02, y, "null", va="center", fontsize=8, color="grey")
        axis.set_yticks(positions)
        axis.set_yticklabels(labels)
        # Every row, with or without a bar, lies inside the panel (a null row alone gives no data limits).
        axis.set_ylim(-0.6, len(subset) - 0.4)
        axis.set_xlim(0.0, 1.1)
        axis.set_title(title, fontsize=9)
        axis.grid(True, axis="x", alpha=0.3)
    axes[-1].set_xlabel(_wrap(f"{column} (size robustness, mean over categories; higher is better)", text_in, figure))
    methods = sorted(looks)
    _figure_legend(figure, axes, [_bar_handle(looks[m], m) for m in methods], methods)
    figure.suptitle(f"Size-robustness ranking ({column}), per dataset and protocol")
    return _save(figure, path)


# --------------------------------------------------------------------------------------------------
# 4. PRO curves per cumulative quartile
# --------------------------------------------------------------------------------------------------


def _clip_curve(fpr: np.ndarray, pro: np.ndarray, limit: float, max_points: int = 4000) -> tuple:
    """Keep the curve up to ``limit`` (plus one point past it) and thin it to ``max_points``."""
    order = np.argsort(fpr, kind="stable")
    fpr, pro = fpr[order], pro[order]
    stop = min(int(np.searchsorted(fpr, limit, side="right")) + 1, len(fpr))
    fpr, pro = fpr[:stop], pro[:stop]
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, pro = fpr[keep], pro[keep]
    return fpr, pro


# Index of a quartile's upper size edge in ``size_quartiles_px`` (Q4 holds every defect: no edge).
_EDGE_INDEX = {"Q1": 0, "Q2": 1, "Q3": 2}


def _quartile_label(group: Sequence[str], sizes: list | None) -> str:
    """``Q1 (≤ 50 px)``, ``Q4 (all defects)``, or for merged quartiles ``Q1 = Q2 (≤ 1 px)``."""
    name = " = ".join(group)
    if group[-1] == "Q4":
        return f"{name} (all defects)"
    quantile = _EDGE_INDEX.get(group[0])
    if quantile is not None and sizes and sizes[quantile] is not None:
        return f"{name} (≤ {sizes[quantile]:g} px)"
    return name


def _same_curve(first: dict, second: dict) -> bool:
    """Whether two ``pro_curves`` entries hold the same points."""
    return (len(first["fpr"]) == len(second["fpr"]) and np.array_equal(first["fpr"], second["fpr"])
            and np.array_equal(first["pro"], second["pro"]))


def quartile_groups(curves: dict, sizes: list | None) -> list[tuple[str, ...]]:
    """The quartiles with a curve in ``curves`` (a result's ``metrics.pro_curves``), Q1 first, as groups.

    Cumulative bins nest, so two neighbouring quartiles with the same size edge (``sizes`` =
    ``size_quartiles_px``; e.g. q25 = q50 = 1 px at low resolution) hold the same defects and have the
    same curve: one would hide the other. Such neighbours form one group (``("Q1", "Q2")``), drawn once
    and named once, when their curves are indeed identical; so do Q3 and Q4 when their curves are
    identical (Q4 has no edge: Q3 holds every defect when q75 is the largest defect's size, as in a
    category of one defect). Every other quartile is a group of its own.
    """
    names = [name for name in _QUARTILE_COLOURS if curves.get(name)]
    groups: list[tuple[str, ...]] = []
    for name in names:
        if groups:
            lower = groups[-1][-1]
            low, high = _EDGE_INDEX.get(lower), _EDGE_INDEX.get(name)
            if name == "Q4":
                same_defects = lower == "Q3"
            else:
                same_defects = (low is not None and high == low + 1 and bool(sizes) and sizes[low] is not None
                                and sizes[low] == sizes[high])
            if same_defects and _same_curve(curves[lower], curves[name]):
                groups[-1] = (*groups[-1], name)
                continue
        groups.append((name,))
    return groups


def _result_groups(result: ResultFile) -> list[tuple[str, ...]]:
    return quartile_groups(result.metrics["pro_curves"], result.metrics.get("size_quartiles_px"))


def plot_pro_curves(results: Sequence[ResultFile], category: str, path: str | Path,
                    warn: Warn | None = default_warn) -> Path:
    """PRO versus FPR up to the curves' FPR limit for each cumulative size bin Q1..Q4 of one category.

    One panel per method (and dataset, when the category name occurs in several); protocols share a
    panel with different line styles. Curves come from ``metrics.pro_curves``. One legend below the
    panels (never over a curve) names the quartiles' size edges (:func:`_quartile_entries`) and, with
    several protocols, their line styles. Quartiles whose curves coincide because their size edges are
    equal are drawn once and share one entry (``Q1 = Q2 (≤ 1 px)``, :func:`quartile_groups`). Panel
    titles mark methods run with random backbone weights (:func:`weights_note`).
    """
    with _missing_glyphs(warn, _result_texts(results)):
        return _plot_pro_curves(results, category, path)


def _quartile_entries(drawn: Sequence[tuple[ResultFile, tuple[str, ...]]], protocols: Sequence[str],
                      several_datasets: bool) -> dict[tuple[tuple[str, ...], str], tuple[str, str]]:
    """Legend text and first protocol (in ``protocols`` order) per drawn (quartile group, size label), the
    same for every panel.

    ``drawn`` holds the (result, quartile group) pairs with a curve (:func:`quartile_groups`; a group
    is named ``Q1`` or, merged, ``Q1 = Q2``). A quartile whose size edge is the same under every protocol
    has one entry ("Q1 (≤ 50 px)"); a low-resolution result's quartiles are those of its resized masks,
    so an edge that differs gets its own entry naming the labels (with several datasets: dataset and
    label) it belongs to ("Q1 (≤ 2 px), lowres@256", "Q1 = Q2 (≤ 1 px), lowres@256"). The first entry in
    protocol order of the quartiles it covers keeps the plain text: it holds everything no other entry
    names.
    """
    members: dict[tuple[tuple[str, ...], str], list[tuple[str, str]]] = {}
    for result, group in sorted(drawn, key=lambda d: (protocols.index(d[0].protocol), d[0].dataset, d[1])):
        key = (group, _quartile_label(group, result.metrics.get("size_quartiles_px")))
        owner = (result.protocol, result.dataset)
        if owner not in members.setdefault(key, []):
            members[key].append(owner)
    entries = {}
    for key, owners in members.items():
        first_protocol = owners[0][0]  # owners come in protocol order
        edges = [k for k in members if set(key[0]) & set(k[0])]
        if edges[0] == key:
            entries[key] = (key[1], first_protocol)
            continue
        where = [f"{dataset} {protocol}" if several_datasets else protocol for protocol, dataset in owners]
        entries[key] = (f"{key[1]}, {', '.join(dict.fromkeys(where))}", first_protocol)
    return entries


def _plot_pro_curves(results: Sequence[ResultFile], category: str, path: str | Path) -> Path:
    chosen = [r for r in results if r.category == category and r.metrics.get("pro_curves")]
    if not chosen:
        raise PlotSkipped(f"no result for category {category!r} has metrics.pro_curves")
    protocols = protocol_order([r.protocol for r in chosen])
    several_datasets = len({r.dataset for r in chosen}) > 1
    panels: dict[tuple[str, str], list[ResultFile]] = {}
    for result in sorted(chosen, key=lambda r: (r.method, r.dataset, protocols.index(r.protocol))):
        panels.setdefault((result.method, result.dataset), []).append(result)
    drawn = [(r, group) for r in chosen for group in _result_groups(r)]
    legend_entries = _quartile_entries(drawn, protocols, several_datasets)
    rows, columns = _grid(len(panels))
    figure = _figure(4.6 * columns, 4.0 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, ((method, dataset), entries) in zip(axes, panels.items(), strict=False):
        limits = []
        for result in entries:
            curves = result.metrics["pro_curves"]
            limit = float(curves.get("fpr_limit") or 0.3)
            limits.append(limit)
            for group in _result_groups(result):
                curve = curves[group[0]]  # the group's curves are identical
                fpr, pro = _clip_curve(np.asarray(curve["fpr"], float), np.asarray(curve["pro"], float), limit)
                axis.plot(fpr, pro, color=_QUARTILE_COLOURS[group[0]], linewidth=1.3,
                          linestyle=_linestyle(result.protocol, protocols))
        axis.set_xlim(0.0, max(limits))  # each curve stops at its own limit; none is cut
        axis.set_ylim(0.0, 1.02)
        axis.set_xlabel("false-positive rate (normal pixels)")
        axis.set_ylabel("PRO (per-defect overlap)")
        # Wrapped to the panel's width, so long method names do not run into the next panel.
        title = _entry_label(method, dataset, several_datasets,
                             weights_note(r.data.get("pretrained_backbone") for r in entries))
        axis.set_title(_wrap(title, 4.6 - 1.0, figure, "large"))
        axis.grid(True, alpha=0.3)
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    # One legend for all panels, below them: quartile colours (with their size edges), then line styles.
    order = sorted(legend_entries, key=lambda k: (protocols.index(legend_entries[k][1]), k[0]))
    handles = [Line2D([], [], color=_QUARTILE_COLOURS[k[0][0]], linestyle=_linestyle(legend_entries[k][1], protocols),
                      linewidth=1.3, label=legend_entries[k][0]) for k in order]
    if len(protocols) > 1:
        handles += [Line2D([], [], color="black", linestyle=_linestyle(p, protocols), label=p) for p in protocols]
    _figure_legend(figure, axes, handles)
    figure.suptitle(_wrap(f"PRO curves per cumulative size quartile — {category}{_protocol_title(protocols)}",
                          4.6 * columns - 0.2, figure, "large"))
    return _save(figure, path)


# --------------------------------------------------------------------------------------------------
# 5. Qualitative panel of the smallest defects
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefectSite:
    """One ground-truth defect (8-connected component) of a test image."""

    sample: TestSample
    area_px: int
    centroid_yx: tuple[float, float]


def smallest_defects(samples: Sequence[TestSample], k: int) -> list[DefectSite]:
    """The ``k`` smallest defects (8-connected components of the GT masks) over ``samples``.

    Ties are broken by sample id and component order so the choice is reproducible.
    """
    candidates = []
    for sample in samples:
        if sample.label != 1:
            continue
        mask = sample.load_mask()
        if mask is None or not mask.any():
            continue
        count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=CONNECTIVITY)
        for component in range(1, count):
            area = int(stats[component, cv2.CC_STAT_AREA])
            centre = (float(centroids[component, 1]), float(centroids[component, 0]))
            candidates.append((area, sample.sample_id, component, DefectSite(sample, area, centre)))
    return [entry[3] for entry in heapq.nsmallest(k, candidates, key=lambda e: e[:3])]


def crop_window(shape: tuple[int, int], centre_yx: tuple[float, float], size: int) -> tuple[slice, slice]:
    """A ``size`` x ``size`` window centred on ``centre_yx``, shifted to stay inside ``shape``.

    Images smaller than ``size`` give the whole image along that axis.
    """
    window = []
    for extent, centre in zip(shape[:2], centre_yx, strict=True):
        length = min(size, extent)
        start = int(round(centre)) - length // 2
        start = max(0, min(start, extent - length))
        window.append(slice(start, start + length))
    return window[0], window[1]


def _panel_map(path: Path, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Read an anomaly map as a 2-D float array; an :class:`InputError` unless it has its image's ``shape``.

    Scored maps are at the image's size (every protocol scores the full-resolution maps); one of another
    size was changed since, and stretching it would show scores where they were not.
    """
    array = maps.read_map(path)
    check_map_size(array, shape, image_path, path)
    return array


def _find_map(maps_dir: Path, category: str, sample_id: str) -> Path | None:
    try:
        return maps.find_map(maps_dir, category, sample_id)
    except InputError:
        return None


def _open_dataset_of(
    results: Sequence[ResultFile], category: str
) -> tuple[str, Dataset] | tuple[None, None]:
    """The first dataset (by name) among ``results`` whose ``dataset_root`` holds ``category``."""
    for result in sorted(results, key=lambda r: (r.dataset, r.method)):
        root = result.resolve_path("dataset_root")
        if root is None or not root.is_dir():
            continue
        try:
            dataset = open_dataset(result.dataset, root)
        except InputError:
            # Datasets generated into the MVTec layout (e.g. "synthetic") read fine with that reader.
            if not (root / category / "test").is_dir():
                continue
            dataset = MVTecLayoutDataset(root, name=result.dataset)
        try:
            if category in dataset.categories():
                return result.dataset, dataset
        except InputError:
            continue
    return None, None


def plot_smallest_defects(
    results: Sequence[ResultFile],
    category: str,
    path: str | Path,
    k: int = 4,
    crop_px: int = 96,
    warn: Warn | None = None,
) -> Path:
    """Panel of the ``k`` smallest defects of a category: image crop, GT crop, one overlay per method.

    Crops are ``crop_px`` square windows at original resolution around each defect's centroid. Maps are
    read from ``<maps_dir>/<category>/<sample_id>.tiff`` (or ``.tif``, ``.npy``, ``.png``, as ``score`` reads
    them) of each result of the same dataset; each method's colour range spans its values over all of its
    crops. The GT outline is drawn in white.
    Column titles (method names, marked ``(random weights)`` where the results say so) are wrapped to the
    column's width. Only one dataset is shown: the first by name whose ``dataset_root`` holds the
    category. ``warn`` gets the unreadable maps and (or, when ``None``, :func:`default_warn`) the
    characters the plot font lacks, a maps folder left out because a run is rewriting it, a test set with
    another number of images than the results were scored on and, when results of other datasets share the
    category name, a line naming the dataset shown and those not shown.

    Raises
    ------
    PlotSkipped
        When no dataset root, no defect or no (readable) anomaly map can be found, or the test set cannot be
        read.
    """
    with _missing_glyphs(warn, _result_texts(results)):
        return _plot_smallest_defects(results, category, path, k, crop_px, warn)


def _plot_smallest_defects(results: Sequence[ResultFile], category: str, path: str | Path, k: int, crop_px: int,
                           warn: Warn | None) -> Path:
    chosen = [r for r in results if r.category == category]
    dataset_name, dataset = _open_dataset_of(chosen, category)
    if dataset is None:
        raise PlotSkipped(f"no result for category {category!r} has a readable dataset_root")
    try:
        samples = dataset.test_samples(category)
        _note_changed_test_set(chosen, dataset_name, dataset, category, len(samples), warn)
        defects = smallest_defects(samples, k)
        if not defects:
            raise PlotSkipped(f"category {category!r} has no defects")
        sources = _map_sources(chosen, dataset_name, category, defects, warn)
        if not sources:
            raise PlotSkipped(f"no anomaly maps for category {category!r} found under any result's maps_dir")
        images = {d.sample.sample_id: d.sample.load_image() for d in defects}
        masks = {d.sample.sample_id: d.sample.load_mask() for d in defects}
    except InputError as exc:
        # The tables are already written; a broken test set only costs this one plot.
        raise PlotSkipped(f"cannot read the test set: {exc}") from None
    windows = [crop_window(images[d.sample.sample_id].shape, d.centroid_yx, crop_px) for d in defects]
    crops = {label: _map_crops(files, defects, images, windows, warn) for label, files in sources.items()}
    crops = {label: c for label, c in crops.items() if any(x is not None for x in c)}
    if not crops:
        raise PlotSkipped(f"no readable anomaly map for the smallest defects of {category!r}")
    columns = 2 + len(crops)
    figure = _figure(2.1 * columns, 2.1 * len(defects) + 1.2)
    axes = figure.subplots(len(defects), columns, squeeze=False)
    for row, (defect, window) in enumerate(zip(defects, windows, strict=True)):
        image = images[defect.sample.sample_id][window]
        mask = masks[defect.sample.sample_id][window]
        axes[row, 0].imshow(image, interpolation="nearest")
        axes[row, 1].imshow(mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[row, 0].set_ylabel(_wrap(f"{defect.sample.sample_id}\n{defect.area_px} px", 1.9, figure, 7), fontsize=7)
    for column, method_crops in enumerate(crops.values(), start=2):
        _draw_method_column(figure, axes[:, column], method_crops, defects, windows, images, masks)
    titles = ["image", "ground truth", *crops]
    for column, title in enumerate(titles):
        axes[0, column].set_title(_wrap(title, 1.9, figure, 8), fontsize=8)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.legend(handles=[Line2D([], [], color="white", markeredgecolor="black", marker="s", linestyle="",
                                  label="white outline = ground-truth defect")],
                  loc="outside lower center", fontsize=7, frameon=False)
    figure.suptitle(_wrap(f"{len(defects)} smallest defects — {category} ({dataset_name}), {crop_px} px crops",
                          2.1 * columns - 0.2, figure, "large"))
    others = sorted({r.dataset for r in chosen} - {dataset_name})
    if others:
        # One panel per category: results of another dataset with this category name would pass unseen.
        (warn or default_warn)(f"qualitative panel of {category!r} shows dataset {dataset_name} only; the results of "
                              f"{', '.join(others)} for this category are not shown")
    return _save(figure, path)


def _note_changed_test_set(results: Sequence[ResultFile], dataset_name: str, dataset: Dataset, category: str,
                           n_now: int, warn: Warn | None) -> None:
    """Warn when the test set the panel reads has another number of images than the results were scored on
    (images deleted or added since): the panel shows the images there now."""
    counts = (r.data["metrics"].get("n_images") for r in results if r.dataset == dataset_name)
    scored = sorted({int(n) for n in counts if n is not None} - {n_now})  # null: a result that does not say
    if scored:
        (warn or default_warn)(
            f"qualitative panel of {category!r}: {dataset.root / category} now has {n_now} test images, the "
            f"results were scored on {' or '.join(map(str, scored))}; the panel shows the images there now"
        )


def colour_range(crops: Sequence[np.ndarray | None]) -> Normalize:
    """One colour scale per method: min to max of its finite values over all of its crops."""
    finite = [c[np.isfinite(c)] for c in crops if c is not None]
    values = np.concatenate(finite) if finite else np.zeros(0)
    if values.size == 0:
        return Normalize(0.0, 1.0)
    return Normalize(float(values.min()), float(values.max()))


def _draw_method_column(
    figure: Figure,
    axes: np.ndarray,
    crops: Sequence[np.ndarray | None],
    defects: Sequence[DefectSite],
    windows: Sequence[tuple[slice, slice]],
    images: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
) -> None:
    """Overlay one method's map crops on the image crops, with the GT outline and a colour bar."""
    norm = colour_range(crops)
    shown = None
    for axis, crop, defect, window in zip(axes, crops, defects, windows, strict=True):
        axis.imshow(images[defect.sample.sample_id][window], interpolation="nearest")
        if crop is None:
            axis.text(0.5, 0.5, "map missing", ha="center", va="center", transform=axis.transAxes,
                      color="white", fontsize=8, backgroundcolor="black")
        else:
            shown = axis.imshow(crop, cmap="jet", norm=norm, alpha=0.5, interpolation="nearest")
        mask = masks[defect.sample.sample_id][window]
        if mask.any() and not mask.all():  # contour needs both levels present
            axis.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    if shown is not None:
        colourbar = figure.colorbar(shown, ax=list(axes), orientation="horizontal", fraction=0.04,
                                    pad=0.01, aspect=15)
        colourbar.set_label("anomaly score", fontsize=7)
        colourbar.solids.set_alpha(1.0)  # show the scale at full strength, not the overlay's 50 %
        colourbar.ax.tick_params(labelsize=6)


def _map_sources(
    results: Sequence[ResultFile], dataset_name: str, category: str, defects: Sequence[DefectSite],
    warn: Warn | None = None,
) -> dict[str, list[Path | None]]:
    """Per column label, the map file of each defect's sample (``None`` if absent).

    One column per method and maps folder: results of one method that share a maps folder (e.g. the
    full and lowres scores of the same maps) show the same maps, so they get a single column, labelled
    with the method only; the protocol is added when a method has several maps folders, and the weights
    mark (:func:`weights_note`) of the column's results. A maps folder that ``run`` marks as being rewritten
    (:func:`~adbench_hr.maps.check_maps_complete`) is left out, with one warning to ``warn``.
    """
    chosen = [r for r in results if r.dataset == dataset_name]
    protocols = protocol_order([r.protocol for r in chosen])
    found: dict[tuple[str, Path], tuple[str, list[Path | None]]] = {}
    weights: dict[tuple[str, Path], list] = {}
    skipped: set[Path] = set()
    for result in sorted(chosen, key=lambda r: (r.method, protocols.index(r.protocol))):
        maps_dir = result.resolve_path("maps_dir")
        if maps_dir is None or not (maps_dir / category).is_dir():
            continue
        try:
            maps.check_maps_complete(maps_dir, category)
        except InputError as exc:
            # A run is rewriting these maps (or was killed doing so): they mix two runs' maps.
            if maps_dir.resolve() not in skipped:
                skipped.add(maps_dir.resolve())
                (warn or default_warn)(f"qualitative panel: {exc}")
            continue
        files = [_find_map(maps_dir, category, d.sample.sample_id) for d in defects]
        if any(f is not None for f in files):
            key = (result.method, maps_dir.resolve())
            found.setdefault(key, (result.protocol, files))
            weights.setdefault(key, []).append(result.data.get("pretrained_backbone"))
    per_method = Counter(method for method, _ in found)
    return {
        _entry_label(method, protocol, per_method[method] > 1, weights_note(weights[(method, folder)])): files
        for (method, folder), (protocol, files) in found.items()
    }


def _map_crops(
    files: Sequence[Path | None],
    defects: Sequence[DefectSite],
    images: dict[str, np.ndarray],
    windows: Sequence[tuple[slice, slice]],
    warn: Warn | None = None,
) -> list[np.ndarray | None]:
    """Crop each defect's map; unreadable maps become ``None`` with a warning."""
    crops: list[np.ndarray | None] = []
    for file, defect, window in zip(files, defects, windows, strict=True):
        if file is None:
            crops.append(None)
            continue
        try:
            image = images[defect.sample.sample_id]
            crops.append(_panel_map(file, defect.sample.image_path, image.shape[:2])[window])
        except InputError as exc:
            if warn is not None:
                warn(f"qualitative panel: {exc}")
            crops.append(None)
    return crops
