"""``adbench-hr leaderboard``: CSV tables and PNG plots from result files.

Heavy imports (pandas, matplotlib) happen inside the command so other sub-commands start fast.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from adbench_hr.cli import NonEmptyPath, known_spelling
from adbench_hr.errors import InputError, warn
from adbench_hr.fileio import ensure_folder, release_lock, remove_leftover, temporary_target, try_exclusive_lock


def _safe_name(text: str) -> str:
    """A file-name-safe version of a category name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "category"


def _choose_category(categories: list[str], requested: str | None) -> str:
    if requested is None:
        return categories[0]
    requested = known_spelling(requested, categories)  # typed composed, recorded decomposed (macOS), or back
    if requested not in categories:
        raise InputError(f"--category {requested!r} is not in the results (present: {', '.join(categories)})")
    return requested


def _try_plot(name: str, draw: Callable[[Path], Path], path: Path, written: list[Path]) -> None:
    """Draw one plot; a plot with nothing to show is skipped with a warning, the others still run."""
    from adbench_hr.plots import PlotSkipped

    try:
        written.append(draw(path))
    except PlotSkipped as exc:
        warn(f"{name} skipped: {exc}")


# The names of what `leaderboard` writes into --out.
_TABLE_CSV, _SUMMARY_CSV, _GAP_CSV = "leaderboard.csv", "summary.csv", "protocol_gap.csv"
_AREA_PNG, _QUARTILES_PNG, _RHO_PNG = "aupro_vs_area.png", "cumulative_quartiles.png", "rho_ranking.png"
_CURVES_PNG = "pro_curves_{}.png"  # formatted with the category's safe name
_PANEL_PNG = "qualitative_smallest_defects.png"
# An earlier run's file of these names that this run does not write (a plot skipped now, no protocol gap
# now, another --category's curves) would describe other results.
_OUTPUT_PATTERNS = (_TABLE_CSV, _SUMMARY_CSV, _GAP_CSV, _AREA_PNG, _QUARTILES_PNG, _RHO_PNG,
                    _CURVES_PNG.format("*"), _PANEL_PNG)


@contextmanager
def _output_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``--out`` while the leaderboard writes it; a second one stops at once.

    Two builds from other results into one folder would each replace some files and remove others as stale,
    leaving tables and plots of different results side by side, every command ending well. The folder itself
    is locked (``flock`` on its descriptor), so no lock file is left in it. Without ``flock`` (Windows), or on
    a file system without locks, the build goes on unguarded (with a warning for the latter).
    """
    if os.name != "posix":  # pragma: no cover - not POSIX
        yield
        return
    handle = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            locked: bool | OSError = try_exclusive_lock(handle)
        except OSError as exc:  # a file system without locks (NFS without a lock daemon)
            locked = exc
        if isinstance(locked, OSError):  # outside the except block: the body's exceptions must not chain to it
            warn(f"{out_dir}: cannot lock ({locked.strerror or locked}); a second leaderboard writing into this "
                 "folder at the same time would not be stopped")
            yield
            return
        if not locked:
            raise InputError("another adbench-hr leaderboard is writing into this folder", out_dir)
        try:
            yield
        finally:
            release_lock(handle)
    finally:
        os.close(handle)


def _clear_leftovers(out_dir: Path) -> None:
    """Remove the temporaries of our outputs that killed builds left (called under :func:`_output_lock`, so
    none of them is a live build's)."""
    for path in out_dir.glob(".*.part"):
        target = temporary_target(path.name)
        if target is not None and any(fnmatch.fnmatchcase(target, pattern) for pattern in _OUTPUT_PATTERNS):
            remove_leftover(path)


def _remove_stale_outputs(out_dir: Path, written: list[Path]) -> list[Path]:
    keep = {path.name for path in written}
    stale = sorted({p for pattern in _OUTPUT_PATTERNS for p in out_dir.glob(pattern)
                    if p.is_file() and p.name not in keep})
    for path in stale:
        path.unlink()
    return stale


@click.command(short_help="Build leaderboard CSVs and plots from result files.")
@click.argument("results", nargs=-1, required=True, type=NonEmptyPath(path_type=Path))
@click.option("--out", "out_dir", required=True, type=NonEmptyPath(path_type=Path),
              help="Folder for the CSV tables and PNG plots (created if missing).")
@click.option("--category", default=None, metavar="C",
              help="Category for the PRO-curve and smallest-defect plots [default: the first in sorted order].")
@click.option("--n-smallest", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Number of smallest defects in the qualitative panel.")
@click.option("--crop-px", default=96, show_default=True, type=click.IntRange(16, 1024),
              help="Side of the square crops of the qualitative panel, in original pixels.")
def leaderboard(results: tuple[Path, ...], out_dir: Path, category: str | None, n_smallest: int,
                crop_px: int) -> None:
    """Build leaderboard CSVs and plots from RESULTS (result JSON files or folders searched recursively).

    Writes leaderboard.csv, summary.csv, protocol_gap.csv (when a lowres result has a full result with
    the same PRO thresholds), aupro_vs_area.png, cumulative_quartiles.png, rho_ranking.png,
    pro_curves_<category>.png and qualitative_smallest_defects.png into --out, and prints the ranking.
    Results are told apart by protocol label (full, full/l2bt, lowres@256 ...).
    """
    from adbench_hr import leaderboard as lb
    from adbench_hr import plots

    loaded = lb.load_results(results, warn=warn)
    table = lb.leaderboard_table(loaded, source_base=out_dir)  # source: relative to the CSVs, names no home folder
    category = _choose_category(sorted(table["category"].unique()), category)
    out_dir = ensure_folder(out_dir)

    with _output_lock(out_dir):  # held until the last file is written and the stale ones removed
        _clear_leftovers(out_dir)
        summary = lb.summary_table(table, warn=warn)
        lb.warn_mixed_original_defects(table, warn)
        lb.warn_stale_original_quartiles(table, warn)
        lb.warn_mixed_settings(table, warn)
        lb.warn_mixed_test_sets(table, warn)
        lb.warn_random_backbones(table, warn)
        lb.warn_mixed_versions(loaded, warn)
        written = [lb.write_csv(table, out_dir / _TABLE_CSV),
                   lb.write_csv(summary, out_dir / _SUMMARY_CSV)]
        gap = lb.protocol_gap_table(table)
        if gap is not None:
            written.append(lb.write_csv(gap, out_dir / _GAP_CSV))

        drawers = {
            _AREA_PNG: lambda path: plots.plot_aupro_vs_area(table, path, summary=summary),
            _QUARTILES_PNG: lambda path: plots.plot_cumulative_quartiles(table, path, summary=summary),
            _RHO_PNG: lambda path: plots.plot_rho_ranking(summary, path),
            _CURVES_PNG.format(_safe_name(category)): lambda path: plots.plot_pro_curves(loaded, category, path),
            _PANEL_PNG: lambda path: plots.plot_smallest_defects(
                loaded, category, path, k=n_smallest, crop_px=crop_px, warn=warn),
        }
        for name, draw in drawers.items():
            _try_plot(name, draw, out_dir / name, written)
        stale = _remove_stale_outputs(out_dir, written)
        if stale:
            warn(f"removed {', '.join(p.name for p in stale)}: earlier output that this leaderboard does not write")

        click.echo(f"{len(loaded)} result files, ranking by rho@{lb.MAIN_LIMIT} within dataset x protocol:")
        click.echo(lb.format_summary(summary))
        click.echo(f"wrote {', '.join(p.name for p in written)} to {out_dir}")
