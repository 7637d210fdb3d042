"""``adbench-hr datasets``: check a dataset and generate the synthetic one.

``datasets check`` reads every image and mask (readers are otherwise lazy) and prints, per category,
image counts, the number of defects (8-connected mask components), the quartiles of their areas and the
image size (width x height).
``datasets synth`` writes the synthetic size-ladder dataset in the MVTec AD layout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from adbench_hr.cli import LISTS_AFTER_OPTION, NonEmptyPath, bars_wanted, listed_names, split_names
from adbench_hr.datasets import DATASET_NAMES
from adbench_hr.errors import InputError, printable, warn
from adbench_hr.terminal import display_width, ljust, rjust


@click.group()
def datasets() -> None:
    """Check and generate datasets."""


@datasets.command("check", context_settings=LISTS_AFTER_OPTION, short_help="Check a dataset, print its statistics.")
@click.option("--root", type=NonEmptyPath(path_type=Path), default=None,
              help="Dataset folder (optional for --dataset synthetic: the cached default dataset).")
@click.option("--dataset", "dataset_name", type=click.Choice(DATASET_NAMES), default=None,
              help="Layout of ROOT [default: visa if ROOT/split_csv/1cls.csv exists, synthetic if the "
                   "meta.json of `datasets synth` does, else mvtec_ad].")
@click.option("--category", "categories", multiple=True, metavar="C",
              help="Category to check; several: --category a b, --category a,b or repeated [default: all].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object {category: counts} instead of a table.")
def check(root: Path | None, dataset_name: str | None, categories: tuple[str, ...], as_json: bool) -> None:
    """Read every image and mask under ROOT, report problems and defect statistics."""
    from adbench_hr.datasets import check_category, resolve_dataset, validate_category
    from adbench_hr.datasets.base import no_categories_error

    if root is None and dataset_name != "synthetic":
        raise InputError("--root is required (except for --dataset synthetic)")
    dataset = resolve_dataset(dataset_name, root, progress=bars_wanted())  # generating the default dataset
    names = split_names(listed_names(categories), dataset.categories()) or dataset.categories()
    if not names:
        raise no_categories_error(dataset.root)
    for name in names:
        check_category(dataset, name)
    reports = [validate_category(dataset, name, progress=bars_wanted()) for name in names]

    for report in reports:
        for warning in report.warnings:
            warn(warning)
    if as_json:
        click.echo(json.dumps({r.category: r.to_json() for r in reports}, indent=2))
        return
    click.echo(f"dataset: {dataset.name}  root: {dataset.root}")
    header = ("category", "train", "test_good", "test_defective", "defects", "area_q25", "area_q50", "area_q75",
              "image_size")
    rows = []
    for r in reports:
        quartiles = r.size_quartiles_px
        q = ["-"] * 3 if quartiles is None else [f"{v:g}" for v in quartiles]
        sizes = sorted(r.image_sizes)
        size_text = f"{sizes[0][1]}x{sizes[0][0]}" if len(sizes) == 1 else f"mixed ({len(sizes)} sizes)"
        # A category's name is its folder's, which may hold control characters (an escape sequence, a newline):
        # shown escaped, as in errors and warnings.
        rows.append((printable(r.category), str(r.n_train), str(r.n_test_good), str(r.n_test_defective),
                     str(r.n_defects), *q, size_text))
    # Widths in terminal columns, not characters: a category named in CJK or with a decomposed accent stays aligned.
    widths = [max(display_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [ljust(row[0], widths[0])] + [rjust(cell, widths[i]) for i, cell in enumerate(row) if i > 0]
        click.echo("  ".join(cells))


@datasets.command("synth", context_settings=LISTS_AFTER_OPTION, short_help="Generate the synthetic dataset.")
@click.option("--out", required=True, type=NonEmptyPath(path_type=Path), help="Destination folder (new or empty).")
@click.option("--seed", default=0, show_default=True, type=int, help="0 to 2**32-1; same seed, same bytes.")
@click.option("--size", default=1024, show_default=True, type=int,
              help="Image width in px, 64 to 8192 (heights follow each category's aspect ratio).")
@click.option("--categories", "--category", "categories", multiple=True, metavar="C",
              help="Subset of categories: --category a b, --category a,b or repeated [default: all].")
@click.option("--scale", default=1.0, show_default=True, type=float,
              help="Multiply the image counts per category (12 train, 6 good, 12 defective; rounded, at least "
                   "1), up to 100.")
def synth(out: Path, seed: int, size: int, categories: tuple[str, ...], scale: float) -> None:
    """Generate the synthetic size-ladder dataset (MVTec AD layout) into OUT."""
    from adbench_hr.datasets.synthetic import SYNTHETIC_CATEGORIES, generate_synthetic, image_counts

    names = split_names(listed_names(categories), list(SYNTHETIC_CATEGORIES)) or list(SYNTHETIC_CATEGORIES)
    start = time.perf_counter()
    generate_synthetic(out, seed=seed, size=size, scale=scale, categories=names, progress=bars_wanted())
    n_images = len(names) * sum(image_counts(scale))
    click.echo(f"wrote {len(names)} categories, {n_images} images to {out} in {time.perf_counter() - start:.1f} s")
