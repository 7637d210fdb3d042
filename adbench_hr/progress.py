"""Progress bars: one rule for every bar the core and the methods draw.

A caller's ``progress=True`` shows a bar on standard error, wherever that goes: a notebook's output is not
a terminal, yet it is where a bar belongs. Whether a bar suits the output (a terminal, not a log file) is
the command line's choice (:func:`adbench_hr.cli.bars_wanted`), made once per command.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_bar(iterable: Iterable[T] | None = None, *, show: bool, **options: Any) -> tqdm[T]:
    """A tqdm bar on standard error, drawn when ``show`` is true.

    Parameters
    ----------
    iterable : iterable, optional
        What the bar iterates over (else the caller calls ``update``).
    show : bool
        Draw the bar. No bar is drawn without a standard error at all (``sys.stderr`` is None under pythonw or
        after ``2>&-``): tqdm would fail at its first write, ending the work it reports on.
    **options
        Passed to :class:`tqdm.tqdm` (``desc``, ``total``, ``unit``, ``leave``, ...).

    Returns
    -------
    tqdm.tqdm
        The bar; a disabled one still iterates and takes ``update`` calls.
    """
    stream = sys.stderr
    return tqdm(iterable, file=stream, disable=not show or stream is None, **options)
