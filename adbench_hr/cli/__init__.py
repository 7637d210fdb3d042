"""Command-line interface (``adbench-hr``)."""

from __future__ import annotations


def split_names(values: tuple[str, ...], known: list[str]) -> list[str]:
    """Names given as ``--category a --category b`` or ``--category a,b`` (first occurrence order, no
    repeats); a known name is kept whole even if it holds a comma."""
    names = [part.strip() for value in values for part in ([value] if value in known else value.split(","))]
    return list(dict.fromkeys(n for n in names if n))
