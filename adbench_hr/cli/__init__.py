"""Command-line interface (``adbench-hr``)."""

from __future__ import annotations

import click

from adbench_hr.errors import InputError

#: ``context_settings`` of a command whose ``--category`` takes a list (the spec's ``--category C ...``): the
#: names after the first come as extra arguments, which :func:`listed_names` adds.
LISTS_AFTER_OPTION = {"allow_extra_args": True}


def listed_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` of a repeatable ``--category`` plus the names listed after it (``--category a b``).

    Without the option, a stray word stays the usage error it is.
    """
    listed = tuple(click.get_current_context().args)
    if listed and not values:
        raise click.UsageError(f"Got unexpected extra argument{'s' * (len(listed) > 1)} ({' '.join(listed)})")
    return (*values, *listed)


def split_names(values: tuple[str, ...], known: list[str]) -> list[str]:
    """Names given as ``--category a --category b`` or ``--category a,b`` (first occurrence order, no
    repeats); a known name is kept whole even if it holds a comma. Empty when none is given; an option
    given with no name in it (``--category ""``, an empty shell variable) is an error, not "all"."""
    names = [part.strip() for value in values for part in ([value] if value in known else value.split(","))]
    kept = list(dict.fromkeys(n for n in names if n))
    if values and not kept:
        raise InputError(f"--category {values[0]!r} names no category (leave the option out for all)")
    return kept
