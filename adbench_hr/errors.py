"""Errors that the CLI reports as one line and exit code 2, and the warnings it prints as one line.

Warnings go through Python's :mod:`warnings` module as :class:`AdbenchWarning`, so that a library user can
filter, record or escalate them (``warnings.simplefilter("ignore", AdbenchWarning)``, ``pytest.warns``);
the CLI prints each one, every time it occurs, as ``warning: <message>`` on stderr
(:func:`warnings_on_stderr`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class InputError(Exception):
    """Bad user input: a file, folder or value that cannot be used as given.

    The message names the offending path (when there is one) and the problem; the CLI prints it on one
    line and exits with code 2.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


def one_line(message: object, limit: int | None = None) -> str:
    """``message`` on one line: messages quoted from libraries (OpenCV's) or names holding a newline must not
    break the one-line contract of errors and warnings. With ``limit``, at most that many characters (a
    long quoted message ends in ``...``)."""
    text = " ".join(str(message).split())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


class AdbenchWarning(UserWarning):
    """A problem that does not stop the work but changes what it means: a file skipped, a category fitted
    again, a backbone with random weights ..."""


def warn(message: str) -> None:
    """Issue ``message``, on one line, as an :class:`AdbenchWarning` attributed to the caller."""
    warnings.warn(one_line(message), AdbenchWarning, stacklevel=2)


@contextmanager
def warnings_on_stderr() -> Iterator[None]:
    """Within the block, print every :class:`AdbenchWarning` as ``warning: <message>`` on stderr, on one line
    and each time it is issued (not once per place, the module's default); other warnings are shown as
    before. The CLI runs its commands in this block."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", AdbenchWarning)
        show_other = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
            if issubclass(category, AdbenchWarning):
                print(f"warning: {one_line(message)}", file=sys.stderr)
            else:
                show_other(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
