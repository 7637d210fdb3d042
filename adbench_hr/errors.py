"""Errors that the CLI reports as one line and exit code 2."""

from __future__ import annotations

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
