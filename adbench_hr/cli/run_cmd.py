"""``adbench-hr run``: fit a method, predict full-resolution maps, score them, write results."""

from __future__ import annotations

import errno
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from adbench_hr.cli import LISTS_AFTER_OPTION, NonEmptyPath, bars_wanted, listed_names, split_names, stdout_gone
from adbench_hr.datasets import DATASET_NAMES
from adbench_hr.errors import InputError, warn


def parse_method_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` pairs; values are read as JSON when they parse (numbers, lists...), else kept as
    text. Keys are stripped and their ``-`` read as ``_`` (``tmp-dir`` is ``tmp_dir``); a key given twice with
    two values takes the last, with a warning.

    Raises
    ------
    InputError
        For a pair without ``=`` or key, and for a value meant as JSON (starting with ``[``, ``{`` or ``"``)
        that does not parse.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"method option {pair!r} is not KEY=VALUE")
        name = key.strip().replace("-", "_")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            if value.lstrip()[:1] in ("[", "{", '"'):  # meant as JSON: a typo must not become a string
                raise InputError(
                    f"method option {name}: invalid JSON {value!r} ({exc.msg} at column {exc.colno})"
                ) from None
            parsed = value
        # Given twice with two values: the last one counts (an override appended to a command), said aloud.
        if name in options and options[name] != parsed and json.dumps(options[name]) != json.dumps(parsed):
            warn(f"method option {name} is given twice ({json.dumps(options[name])}, then {json.dumps(parsed)}); "
                 f"the last one, {json.dumps(parsed)}, is used")
        options[name] = parsed
    return options


def _weight_files(weights: Any) -> list[Path]:
    """A ``--weights PATH`` as a file whose identity goes into the run key (replacing it means new results)."""
    if weights is None or str(weights) in ("pretrained", "random") or not Path(str(weights)).is_file():
        return []
    return [Path(str(weights)).resolve()]


def _command_line() -> str:
    """The command as typed, shell-quoted so that it can be pasted back into a shell."""
    context = click.get_current_context(silent=True)
    argv = (context.find_root().obj or {}).get("argv") if context is not None else None
    return shlex.join(["adbench-hr", *(sys.argv[1:] if argv is None else argv)])


@click.command(context_settings=LISTS_AFTER_OPTION)
@click.option("--method", required=True, help="Registered method name: ts-mlp, patchcore, or one a plug-in registers.")
@click.option("--preset", default=None,
              help="Method preset; ts-mlp: paper (ViT-B/14 at 1036 px), fast (ViT-S/14 at 518 px) or auto (paper "
                   "on a GPU, fast on a CPU) [default: auto]; patchcore has none.")
@click.option("--weights", default=None,
              help="Backbone weights: pretrained (downloaded once, or from the Hugging Face cache), random (a "
                   "smoke run) or a local weight file PATH [default: pretrained].")
@click.option("--dataset", type=click.Choice(DATASET_NAMES), default=None,
              help="Layout of --root [default: synthetic without --root; with it, guessed as by `datasets check`].")
@click.option("--root", type=NonEmptyPath(path_type=Path), default=None,
              help="Dataset folder [default: the built-in synthetic dataset, generated on first use into "
                   "$ADBENCH_HR_CACHE, else $XDG_CACHE_HOME/adbench-hr or ~/.cache/adbench-hr].")
@click.option("--category", "categories", multiple=True, metavar="C",
              help="Category to run; several: --category a b, --category a,b or repeated [default: all].")
@click.option("--out", type=NonEmptyPath(path_type=Path), default=Path("runs"), show_default=True,
              help="Output folder: maps, checkpoints and results go into OUT/<method>/<dataset>/.")
@click.option("--seed", type=int, default=None,
              help="Random seed, recorded in results [default: the method's own: 115 for ts-mlp, 0 for patchcore].")
@click.option("--device", default=None, help="auto (cuda if available, else cpu), cpu, cuda or cuda:N [default: auto].")
@click.option("--option", "-o", "extra", multiple=True, metavar="KEY=VALUE",
              help="Further method option (repeatable), e.g. -o epochs=10; VALUE is read as JSON where it parses. "
                   "Each method's options and defaults: docs/methods.md; an unknown KEY's error lists the valid "
                   "ones.")
@click.option("--lowres-eval-size", type=click.IntRange(8, 4096), default=None, metavar="N",
              help="Also score the same maps under the low-resolution protocol, maps and masks resized to N x N "
                   "px (e.g. 256), into results/<category>.lowres<N>.json.")
@click.option("--quiet", is_flag=True, help="No progress bars (shown on a terminal only).")
def run(
    method: str,
    preset: str | None,
    weights: str | None,
    dataset: str | None,
    root: Path | None,
    categories: tuple[str, ...],
    out: Path,
    seed: int | None,
    device: str | None,
    extra: tuple[str, ...],
    lowres_eval_size: int | None,
    quiet: bool,
) -> None:
    """Fit a method, predict full-resolution maps and score them."""
    categories = listed_names(categories)
    from adbench_hr.datasets import resolve_dataset
    from adbench_hr.datasets.base import check_portable_names, no_categories_error
    from adbench_hr.methods import AnomalyMethod, create_method, get_method_class
    from adbench_hr.methods.registry import method_package, names_option, resolved_options
    from adbench_hr.runner import RANDOM_BACKBONE_WARNING, RunConfig, run_benchmark
    from adbench_hr.scoring import format_summary

    factory = get_method_class(method)  # fail on an unknown name before any heavy work
    if root is None and dataset not in (None, "synthetic"):
        raise InputError(f"--root is required for --dataset {dataset}")
    options = parse_method_options(extra)
    for key, value in (("preset", preset), ("weights", weights), ("device", device), ("seed", seed)):
        if value is None:
            continue
        if key in options and options[key] != value:
            raise InputError(f"--{key} {value} and -o {key}={json.dumps(options[key])} disagree; give it once")
        options[key] = value
    if not names_option(factory, "device"):  # a plug-in may have no device option
        if options.get("device") == "auto":  # the default, given explicitly: as if not given
            del options["device"]
    elif options.get("device", "auto") == "auto":
        # Resolved here, so that the run key tells a GPU run from a CPU run (whose auto preset differs).
        from adbench_hr.methods._common import resolve_device

        options["device"] = str(resolve_device("auto"))
    # The run key sees the options as the method records them (defaults, presets, types resolved), so that
    # `--seed 115` and no --seed, or `--preset fast` and the CPU's auto preset, resume each other. Resolving
    # also refuses a bad option before the dataset is read.
    recorded_options = resolved_options(method, **options)
    preflight = getattr(factory, "preflight", None)
    if preflight is not None:  # AnomalyMethod's (a plain factory function has none)
        preflight(recorded_options)
    data = resolve_dataset(dataset, root, progress=bars_wanted(quiet))  # without --root: the default dataset
    chosen = split_names(categories, data.categories()) or data.categories()
    if not chosen:
        raise no_categories_error(data.root)
    check_portable_names(chosen, data.root)

    config = RunConfig(method=method, method_options=recorded_options,
                       dataset_name=data.name, out_dir=out,
                       progress=bars_wanted(quiet), lowres_eval_size=lowres_eval_size,
                       dataset_root=data.root, command=_command_line(),
                       input_files=_weight_files(options.get("weights")), method_package=method_package(method),
                       resource_options=frozenset(getattr(factory, "resource_options", ())))
    warned = []

    def make_method():
        instance = create_method(method, **options)
        if instance.pretrained_backbone is False and not warned:
            warn(RANDOM_BACKBONE_WARNING)
            warned.append(True)
        return instance

    def load_method(path: Path):
        # The run's own device and resource options, which may differ from those the checkpoint was fitted
        # with (they are not part of the run key).
        overrides = {k: v for k, v in options.items() if k == "device"}
        overrides |= {k: recorded_options[k] for k in config.resource_options if k in recorded_options}
        return AnomalyMethod.load(path, **overrides)

    output_gone = []

    def echo(line: str) -> None:
        # The reader of the output may go away while categories remain (`adbench-hr run ... | head -1`): the
        # work goes on, into its result files; the command ends as a broken pipe does once it is done.
        try:
            click.echo(line)
        except BrokenPipeError:
            stdout_gone()
            output_gone.append(True)

    results = run_benchmark(config, data, chosen, make_method, load_method, echo=echo)
    printed_warnings = set()  # both protocols' results of a category carry the warnings about its inputs
    for result in results:
        for warning in result.get("warnings", []):
            line = f"{result['category']}: {warning}"
            if line not in printed_warnings:
                printed_warnings.add(line)
                warn(line)
        click.echo(format_summary(result))
    if any(r.get("pretrained_backbone") is False for r in results):
        warn(RANDOM_BACKBONE_WARNING)
    click.echo(f"results in {config.results_dir()}")
    if output_gone:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
