"""Errors that the CLI reports as one line and exit code 2, and the warnings it prints as one line.

Warnings go through Python's :mod:`warnings` module as :class:`AdbenchWarning`, so that a library user can
filter, record or escalate them (``warnings.simplefilter("ignore", AdbenchWarning)``, ``pytest.warns``);
the CLI prints each one, every time it occurs, as ``warning: <message>`` on stderr
(:func:`warnings_on_stderr`).
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
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


#: Bidirectional embeddings, overrides and isolates (a regular-expression character range): they reorder how the
#: text around them is shown.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


def one_line(message: object, limit: int | None = None) -> str:
    """``message`` on one line: messages quoted from libraries (OpenCV's) or names holding a newline must not
    break the one-line contract of errors and warnings. With ``limit``, at most that many characters (a
    long quoted message ends in ``...``)."""
    text = " ".join(str(message).split())
    # Control characters that are not white space (ESC starts the terminal's escape sequences: clear the screen,
    # move the cursor over earlier lines, set the window title) and bidirectional overrides, which a file name or
    # a quoted CSV field may hold: shown escaped (\x1b), never sent to the terminal.
    text = _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
    text = without_surrogates(text)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def without_surrogates(text: str) -> str:
    """``text`` with its lone surrogates, which a strict stream cannot print or encode, shown escaped: those of a
    path named in another encoding than UTF-8 as the bytes they stand for (``\\xff``), any other as ``\\ud800``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class AdbenchWarning(UserWarning):
    """A problem that does not stop the work but changes what it means: a file skipped, a category fitted
    again, a backbone with random weights ..."""


def warn(message: str) -> None:
    """Issue ``message``, on one line, as an :class:`AdbenchWarning` attributed to the caller."""
    warnings.warn(one_line(message), AdbenchWarning, stacklevel=2)


# The warnings module's filters and hook are the process's, not a thread's: blocks of warnings_on_stderr that
# overlap (the CLI run in several threads at once) share one installation, which the last of them removes.
_hook_lock = threading.Lock()
_hook_users = 0
_hook_block: warnings.catch_warnings | None = None


@contextmanager
def warnings_on_stderr() -> Iterator[None]:
    """Within the block, print every :class:`AdbenchWarning` as ``warning: <message>`` on stderr, on one line
    and each time it is issued (not once per place, the module's default); other warnings are shown as
    before. The CLI runs its commands in this block.

    The hook is process-wide, as the :mod:`warnings` module's state is: blocks that overlap in several threads
    install it once, and the one that ends last restores what was there before the first began (each restoring
    its own, as :class:`warnings.catch_warnings` does, would drop the hook while another thread's command runs
    and then leave it installed for good).
    """
    global _hook_users, _hook_block
    with _hook_lock:
        if _hook_users == 0:
            block = warnings.catch_warnings()
            block.__enter__()
            warnings.simplefilter("always", AdbenchWarning)
            warnings.showwarning = _one_line_hook(warnings.showwarning)
            _hook_block = block
        _hook_users += 1
    try:
        yield
    finally:
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0 and _hook_block is not None:
                _hook_block.__exit__(None, None, None)
                _hook_block = None


def _one_line_hook(show_other: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints an :class:`AdbenchWarning` as one line and hands the others on."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, AdbenchWarning):
            # Through tqdm, so that a progress bar on the terminal is cleared first and drawn again below.
            # Imported here: the metrics engine imports this module and needs no more than numpy and OpenCV.
            from tqdm import tqdm

            tqdm.write(f"warning: {one_line(message)}", file=sys.stderr)
        else:
            show_other(message, category, filename, lineno, file, line)

    return show
