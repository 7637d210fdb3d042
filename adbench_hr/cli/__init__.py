"""Command-line interface (``adbench-hr``)."""

from __future__ import annotations

from adbench_hr.errors import InputError


def split_names(values: tuple[str, ...], known: list[str]) -> list[str]:
    """Names given as ``--category a --category b`` or ``--category a,b`` (first occurrence order, no
    repeats); a known name is kept whole even if it holds a comma. Empty when none is given; an option
    given with no name in it (``--category ""``, an empty shell variable) is an error, not "all"."""
    names = [part.strip() for value in values for part in ([value] if value in known else value.split(","))]
    kept = list(dict.fromkeys(n for n in names if n))
    if values and not kept:
        raise InputError(f"--category {values[0]!r} names no category (leave the option out for all)")
    return kept
