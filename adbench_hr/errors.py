"""Errors that the CLI reports as one line and exit code 2, and the warnings it prints as one line.

Warnings go through Python's :mod:`warnings` module as :class:`AdbenchWarning`, so that a library user can
filter, record or escalate them (``warnings.simplefilter("ignore", AdbenchWarning)``, ``pytest.warns``);
the CLI prints each one, every time it occurs, as ``warning: <message>`` on stderr
(:func:`warnings_on_stderr`).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
    long quoted message ends in ``...``; under 4 characters leave no room for it, so the text is cut)."""
    text = printable(" ".join(str(message).split()))
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] if limit < 4 else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` with what must not reach a terminal raw shown escaped: control characters (ESC starts the
    terminal's escape sequences: clear the screen, move the cursor over earlier lines, set the window title; a
    newline would break a table's row), bidirectional overrides, which a file name or a quoted CSV field may
    hold (``\\x1b``, ``\\n``), and lone surrogates (:func:`without_surrogates`)."""
    text = _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
    return without_surrogates(text)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out: :class:`MemoryError` (numpy, tifffile), OpenCV's failed
    allocation (``cv2.error`` with code ``StsNoMem``), torch's ``OutOfMemoryError`` (CUDA) or its CPU
    allocator's ``RuntimeError``. OpenCV and torch are looked up only if already imported: this module needs
    neither."""
    if isinstance(exc, MemoryError):
        return True
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and isinstance(exc, cv2.error) and getattr(exc, "code", None) == cv2.Error.StsNoMem:
        return True
    torch = sys.modules.get("torch")
    cuda_oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if cuda_oom is not None and isinstance(exc, cuda_oom):
        return True
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)


# Lone surrogates that stand for no byte: ``surrogateescape`` holds the bytes 0x80-0xff as U+DC80-U+DCFF only.
_NOT_A_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def without_surrogates(text: str) -> str:
    """``text`` with its lone surrogates, which a strict stream cannot print or encode, shown escaped: those of a
    path named in another encoding than UTF-8 as the bytes they stand for (``\\xff``), any other as ``\\ud800``."""
    # The others escaped first: one of them in the text (a name quoted from a JSON file) must not turn the
    # bytes of a path in the same message into ``\\udcff``.
    text = _NOT_A_BYTE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class AdbenchWarning(UserWarning):
    """A problem that does not stop the work but changes what it means: a file skipped, a category fitted
    again, a backbone with random weights ..."""


def warn(message: str) -> None:
    """Issue ``message``, on one line, as an :class:`AdbenchWarning` attributed to the caller."""
    warnings.warn(one_line(message), AdbenchWarning, stacklevel=2)


class SharedSetting:
    """A process-wide setting (the warnings hook, OpenCV's log level) that blocks overlapping in several threads
    (the CLI run in several threads at once) change together: the first block to enter applies it, the one that
    ends last undoes it. Each undoing its own change would restore the setting while another thread's block
    still needs it, and then leave it changed for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._undo: Callable[[], None] | None = None

    @contextmanager
    def applied(self, apply: Callable[[], Callable[[], None]]) -> Iterator[None]:
        """Within the block, the setting ``apply()`` makes; ``apply`` returns what undoes it."""
        with self._lock:
            if self._users == 0:
                self._undo = apply()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._undo is not None:
                    undo, self._undo = self._undo, None
                    undo()


_STDERR_HOOK = SharedSetting()

# The first error met printing a warning (standard error's reader gone, a full disk, a closed descriptor) since
# the hook was installed: the warning is dropped and the work goes on; the CLI then ends as that error says.
_unwritten: list[OSError] = []


def warning_write_error() -> OSError | None:
    """The first error met printing a warning on stderr within :func:`warnings_on_stderr`'s latest block (the
    warnings since were dropped), else ``None``."""
    return _unwritten[0] if _unwritten else None


def discard_output(stream: TextIO | None) -> None:
    """Send the rest of ``stream`` (standard output or error) to the null device, once it cannot be written (its
    reader gone: ``| head -1``).

    Every later write then succeeds without effect, and so does Python's flush at exit, which would otherwise
    report the failure once more (and change the exit code).
    """
    if stream is None:  # no stream at all
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, AttributeError, ValueError):  # a stream without a descriptor (a notebook's), or closed
        pass


def warnings_on_stderr() -> AbstractContextManager[None]:
    """Within the block, print every :class:`AdbenchWarning` as ``warning: <message>`` on stderr, on one line
    and each time it is issued (not once per place, the module's default); other warnings are shown as
    before. The CLI runs its commands in this block.

    The hook is process-wide, as the :mod:`warnings` module's state is: blocks that overlap in several threads
    install it once, and the one that ends last restores what was there before the first began
    (:class:`SharedSetting`).
    """
    return _STDERR_HOOK.applied(_install_stderr_hook)


def _install_stderr_hook() -> Callable[[], None]:
    block = warnings.catch_warnings()
    block.__enter__()
    _unwritten.clear()
    warnings.simplefilter("always", AdbenchWarning)
    warnings.showwarning = _one_line_hook(warnings.showwarning)
    return lambda: block.__exit__(None, None, None)


def _one_line_hook(show_other: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints an :class:`AdbenchWarning` as one line and hands the others on."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, AdbenchWarning):
            # Through tqdm, so that a progress bar on the terminal is cleared first and drawn again below.
            # Imported here: the metrics engine imports this module and needs no more than numpy and OpenCV.
            from tqdm import tqdm

            if sys.stderr is None:  # no standard error at all (closed when Python started): tqdm would use stdout
                return
            try:
                tqdm.write(f"warning: {one_line(message)}", file=sys.stderr)
            except OSError as exc:
                # A warning that cannot be printed must not stop the work (hours of `run`, whose categories
                # would be left unfinished), as Python's own warnings printer drops it.
                if not _unwritten:
                    _unwritten.append(exc)
                discard_output(sys.stderr)
        else:
            show_other(message, category, filename, lineno, file, line)

    return show
