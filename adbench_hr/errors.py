"""Errors that the CLI reports as one line and exit code 2, and the one-line warnings on stderr."""

from __future__ import annotations

import sys
from pathlib import Path


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


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr, on one line."""
    print(f"warning: {one_line(message)}", file=sys.stderr)
