"""``adbench-hr score``: score third-party full-resolution anomaly maps (at full resolution unless asked)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from adbench_hr.cli import LISTS_AFTER_OPTION, NonEmptyPath, bars_wanted, listed_names, split_names
from adbench_hr.datasets import DATASET_NAMES, generator_record, resolve_dataset
from adbench_hr.datasets.base import Dataset, check_category, check_portable_names, no_categories_error
from adbench_hr.errors import InputError, warn
from adbench_hr.fileio import check_input_folder
from adbench_hr.maps import IMAGE_SCORES_FILE
from adbench_hr.metrics import PRO_THRESHOLD_MODES
from adbench_hr.results import (
    RUN_MAPS_FOLDER,
    RUN_RESULTS_FOLDER,
    build_result,
    load_result,
    name_problem,
    write_result,
)
from adbench_hr.scoring import PROTOCOLS, format_summary, score_category


@click.command(context_settings=LISTS_AFTER_OPTION, short_help="Score full-resolution anomaly maps.")
@click.option("--maps", "maps_dir", required=True, type=NonEmptyPath(path_type=Path),
              help="Folder of maps in MVTec's layout: MAPS/CATEGORY/test/<defect>/<stem>.tiff (or .tif, .npy, "
                   ".png), with an optional image_scores.csv.")
@click.option("--root", required=True, type=NonEmptyPath(path_type=Path), help="Dataset root folder.")
@click.option("--category", "categories", multiple=True, metavar="C",
              help="Category to score; several: --category a b, --category a,b or repeated [default: every "
                   "category of the dataset with a folder in MAPS].")
@click.option("--dataset", default=None, type=click.Choice(DATASET_NAMES),
              help="Layout of ROOT [default: guessed as by `datasets check`: visa, synthetic or mvtec_ad].")
@click.option("--out", "out_arg", type=NonEmptyPath(), default=None,
              help="Where results go [default: MAPS/result_<category>.json]. With one --category: the result "
                   "JSON file, unless OUT is an existing folder or ends in /; with several categories or none "
                   "named: the folder of <category>.json files.")
@click.option("--pro-thresholds", type=click.Choice(PRO_THRESHOLD_MODES), default="exact", show_default=True,
              help="exact: every distinct score; l2bt: the official L2BT code's 99 thresholds.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="full", show_default=True,
              help="full: original resolution; lowres: first resize maps (bilinear) and masks (nearest) to "
                   "--eval-size.")
@click.option("--eval-size", type=int, default=None, metavar="N",
              help="Evaluation size N x N in px for --protocol lowres (required there; 8 <= N <= 4096).")
@click.option("--method", default=None,
              help="Method name recorded in the result, without control characters [default: the maps folder name].")
@click.option("--quiet", is_flag=True, help="No progress bar (shown on a terminal only).")
def score(maps_dir: Path, root: Path, categories: tuple[str, ...], dataset: str | None, out_arg: str | None,
          pro_thresholds: str, protocol: str, eval_size: int | None, method: str | None, quiet: bool) -> None:
    """Score full-resolution anomaly maps against a dataset's ground truth: at full resolution, or with
    --protocol lowres as most toolkits do."""
    categories = listed_names(categories)
    maps = maps_dir.resolve()
    # Names go into the result, and from there into one-line warnings and CSV rows: checked before any work.
    for option, name in (("--method", method), *(("--category", c) for c in categories)):
        if name is not None and (problem := name_problem(name)):
            raise InputError(f"{option} {problem}")
    if method is None and (problem := name_problem(maps.name)):
        raise InputError(f"the folder's name, the default --method, {problem}; pass --method NAME", maps)
    data = resolve_dataset(dataset, root)
    check_input_folder(maps_dir, "maps folder")
    chosen = split_names(categories, data.categories()) or categories_with_maps(maps_dir, data)
    for category in chosen:  # every name known before the first category's work
        check_category(data, category)
        if problem := name_problem(category):  # a folder named in another encoding: refused before the work
            raise InputError(f"category name {problem}", Path(data.root) / category)
    check_portable_names(chosen, data.root)
    # --out is a file where --category names one category, unless it is a folder (an existing one, or a path
    # ending in "/"); else a folder, whatever MAPS holds.
    out = None if out_arg is None else Path(out_arg)
    folder_named = out_arg is not None and (out_arg.endswith(("/", os.sep)) or Path(out_arg).is_dir())
    into_folder = folder_named or not (categories and len(chosen) == 1)
    if into_folder and not folder_named and out is not None and (out.is_file() or out.suffix.lower() == ".json"):
        what = f"{len(chosen)} categories are" if categories else "every category with maps is"
        raise InputError(f"{what} scored: --out names the folder for their <category>.json results, not a file",
                         out)
    for category in chosen:
        refuse_input_as_result(result_path(out, maps_dir, category, into_folder), maps / category, data.root)
    run_maps = maps.name == RUN_MAPS_FOLDER and (maps.parent / RUN_RESULTS_FOLDER).is_dir()
    into_run = out is None or out.resolve().is_relative_to(maps.parent.parent)  # OUT/<method>/...
    if run_maps and (method is None or into_run):
        # A run's own OUT/<method>/<dataset>/maps: by default the result would go into OUT as method "maps",
        # and `leaderboard OUT` would list it (or, named as the run's method, stop at the duplicate).
        advice = "an --out outside the run's folder" if method is not None else \
            "--method NAME and an --out outside the run's folder"
        warn(f"these are a run's maps: pass {advice}, or `leaderboard` over that folder will take this result for "
             "another method's")
    generator = generator_record(root)  # read once for every category's result
    progress = bars_wanted(quiet)
    for category in chosen:
        scored = score_category(maps_dir, data, category, pro_thresholds, protocol, eval_size, progress=progress)
        result = build_result(
            method=method or maps.name,
            dataset=data.name,
            category=category,
            protocol=scored["protocol"],
            metrics=scored["metrics"],
            maps_dir=str(maps_dir.resolve()),
            dataset_root=str(Path(root).resolve()),
            dataset_generator=generator,
            warnings=scored["warnings"],
        )
        path = result_path(out, maps_dir, category, into_folder)
        write_result(path, result)
        for warning in scored["warnings"]:
            warn(f"{category}: {warning}")
        click.echo(format_summary(result))
        click.echo(f"result written to {path}")


def categories_with_maps(maps_dir: Path, dataset: Dataset) -> list[str]:
    """The dataset's categories that have a folder in ``maps_dir`` (a warning names the others, which are
    not scored); an error when none has."""
    available = dataset.categories()
    if not available:
        raise no_categories_error(dataset.root)
    found = [c for c in available if (maps_dir / c).is_dir()]
    if not found:
        raise InputError("no category folder here (maps go in MAPS/<category>/test/<defect>/<stem>.tiff; the "
                         f"dataset's categories: {', '.join(available)})", maps_dir)
    missing = [c for c in available if c not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        warn(f"{maps_dir}: no maps for {len(missing)} of {len(available)} categories ({shown}): not scored")
    return found


def refuse_input_as_result(path: Path, category_maps: Path, dataset_root: str | Path) -> None:
    """Refuse a result path that is one of the files scored: a map or ``image_scores.csv`` of the category, or a
    file of the dataset (an image, a mask, ``meta.json``). Writing the result would destroy it after the work;
    an earlier result there is replaced as usual."""
    target = path.resolve()
    scored = (category_maps, Path(dataset_root).resolve())
    if not target.is_file() or not (target == category_maps.parent / IMAGE_SCORES_FILE
                                    or any(target.is_relative_to(folder) for folder in scored)):
        return
    try:
        load_result(target)
    except (InputError, OSError):
        raise InputError("--out names a file that is scored (a map, image_scores.csv or a file of the dataset), "
                         "which the result would replace", path) from None


def result_path(out: Path | None, maps_dir: Path, category: str, into_folder: bool) -> Path:
    """Where a category's result goes: ``MAPS/result_<category>.json`` without ``--out``; else ``--out`` itself
    (one category named) or ``OUT/<category>.json`` (a folder named, several categories, or every category
    with maps)."""
    if out is None:
        return maps_dir / f"result_{category}.json"
    return out / f"{category}.json" if into_folder else out
