"""Entry point of the ``adbench-hr`` command.

Each sub-command lives in its own module of this package and is attached here. Every
:class:`~adbench_hr.errors.InputError` (and click usage error) ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from adbench_hr import __version__
from adbench_hr.cli import BROKEN_PIPE_EXIT, stdout_gone
from adbench_hr.errors import (
    InputError,
    SharedSetting,
    discard_output,
    one_line,
    warning_write_error,
    warnings_on_stderr,
)


def _show_version(context: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or context.resilient_parsing:
        return
    from adbench_hr._source import source_fingerprint  # late: it reads the source, which only this flag needs

    # The fingerprint tells apart builds of one version (an edited checkout), as result files record it.
    click.echo(f"adbench-hr, version {__version__} (source fingerprint {source_fingerprint()})")
    context.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version and the source's fingerprint, and exit.")
def cli() -> None:
    """Full-resolution benchmark for industrial anomaly detection and segmentation."""


def _attach_commands() -> None:
    # Imported here so that `adbench-hr --help` stays fast and the metrics path never imports torch.
    from adbench_hr.cli import datasets_cmd, leaderboard_cmd, run_cmd, score_cmd

    cli.add_command(score_cmd.score)
    cli.add_command(datasets_cmd.datasets)
    cli.add_command(run_cmd.run)
    cli.add_command(leaderboard_cmd.leaderboard)


# OpenCV's log level is the process's: commands that overlap in threads silence it once, and the last to end
# restores the level found by the first (as errors.warnings_on_stderr does with the warnings hook).
_OPENCV_LOG = SharedSetting()


@contextmanager
def _opencv_log_silenced() -> Iterator[None]:
    """OpenCV logs its own complaints about damaged files on stderr; ours name the file, on one line. The level
    is restored afterwards, so that :func:`main` called from Python (a notebook, a test) leaves OpenCV's log as
    it found it."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        get_level, set_level, silent = logging.getLogLevel, logging.setLogLevel, logging.LOG_LEVEL_SILENT
    elif hasattr(cv2, "getLogLevel") and hasattr(cv2, "setLogLevel"):  # OpenCV before 4.13: the top-level pair
        get_level, set_level, silent = cv2.getLogLevel, cv2.setLogLevel, 0  # 0 is LOG_LEVEL_SILENT
    else:
        yield
        return

    def silence() -> Callable[[], None]:
        previous = get_level()
        set_level(silent)
        return lambda: set_level(previous)

    with _OPENCV_LOG.applied(silence):
        yield


# The standard streams' error handlers are the process's too: commands overlapping in threads change them once.
_STREAMS_ESCAPED = SharedSetting()


@contextmanager
def _unencodable_text_escaped() -> Iterator[None]:
    """Within the block, standard output and error write a character their encoding lacks as an escape (``\\u6728``)
    instead of failing.

    A stream that is strict about its encoding fails on the first such character: a category or method name in
    CJK on a Latin-1 or cp1252 locale (or ``PYTHONIOENCODING=latin-1``), a path with bytes of another encoding
    (Python holds them as lone surrogates) under a UTF-8 locale other than ``C.UTF-8``. The command would end
    in a traceback after its work, its table half printed. Python's own standard error escapes them so
    (``backslashreplace``); a stream with another handler (``surrogateescape``, which writes such a path back as
    its bytes) is left as it is. The handler is restored afterwards, for :func:`main` called from Python; by
    the last of the commands that overlap in threads to end (:class:`~adbench_hr.errors.SharedSetting`), so
    that one ending first does not make the streams strict again under the others.
    """
    with _STREAMS_ESCAPED.applied(_escape_unencodable):
        yield


def _escape_unencodable() -> Callable[[], None]:
    changed = []
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")
            except (OSError, ValueError):  # a closed stream, or one whose buffer cannot be flushed
                continue
            changed.append(stream)

    def restore() -> None:
        for stream in changed:
            try:
                stream.reconfigure(errors="strict")
            except (OSError, ValueError):
                pass

    return restore


@contextmanager
def _missing_stderr_discarded() -> Iterator[None]:
    """Within the block, a standard error that Python started without (``2>&-``; ``pythonw`` on Windows) is the
    null device.

    ``sys.stderr`` is then ``None``: a progress bar (tqdm, given no stream) failed on its first write, an
    ``AttributeError`` that ended the command with exit code 1 and a traceback printed nowhere. Restored afterwards,
    for :func:`main` called from Python.
    """
    if sys.stderr is not None:
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as null:
        sys.stderr = null
        try:
            yield
        finally:
            if sys.stderr is null:
                sys.stderr = None


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, batch schedulers), raised like Ctrl-C so that cleanup code runs."""


# Set by the SIGTERM handler. Some libraries swallow every exception in import-time feature checks
# (OpenCV's loader has a bare `except:`), so the raised Terminated can vanish; the flag still decides the
# exit code.
_terminated = threading.Event()


def _raise_terminated(signum: int, frame: object) -> None:
    _terminated.set()
    raise Terminated()


def _ignore_interrupts() -> None:
    """Ignore further Ctrl-C and SIGTERM while an interrupt is being reported: a second one (Ctrl-C pressed
    twice, ``kill`` sent twice) landing in the handler would escape it as a traceback and a signal's exit code.
    :func:`main` restores the handlers when it returns; the console script keeps ignoring them until it exits."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code instead of raising.

    An interrupt is no exception to this: Ctrl-C ends the command, after its cleanup, with 130 and SIGTERM with
    143, returned like any other code. A loop of calls stops by checking for them.
    """
    return _run(argv, console_script=False)


def _run(argv: list[str] | None, console_script: bool) -> int:
    """:func:`main`. From Python (``console_script=False``) the signal handlers are restored afterwards; the
    console script, which exits next, keeps ignoring Ctrl-C and SIGTERM after an interrupt, so that a second
    one arriving meanwhile neither adds a traceback nor ends the process by a signal instead of 130/143."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    _terminated.clear()
    previous_int = signal.getsignal(signal.SIGINT) if in_main_thread else None
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    # A handler that a host program embedding Python installed from C reads as None, and could not be put back
    # (signal.signal refuses None): it is left in place.
    own_term_handler = previous is not None
    if own_term_handler:
        signal.signal(signal.SIGTERM, _raise_terminated)
    code = None
    try:
        with _missing_stderr_discarded(), _unencodable_text_escaped(), warnings_on_stderr():
            code = _main(argv)
    finally:
        if in_main_thread and not (console_script and code in (130, 143)):
            if own_term_handler:
                signal.signal(signal.SIGTERM, previous)
            if not console_script and previous_int is not None:
                signal.signal(signal.SIGINT, previous_int)
    if code in (130, 143):
        forget_handled_interrupt()
    if _terminated.is_set() and code != 143:  # terminated, but a library swallowed the exception
        if code == 0:  # a failed command has printed its one line already
            _report("error: terminated")
        return 143
    if code == 0 and (unwritten := warning_write_error()) is not None:
        # A warning could not be printed (and the command went on): it ends as standard output's failures do,
        # silently after its reader went away, else with exit code 2 (a full disk: no line can say so).
        return BROKEN_PIPE_EXIT if isinstance(unwritten, BrokenPipeError) else 2
    return code


def _report(line: str) -> None:
    """Print the command's one-line error on stderr. Where it cannot be (its reader gone: ``2>&1 | head -1``; a
    closed descriptor, a full disk), the exit code alone tells: the failure to print it must not replace it by a
    traceback's exit code 1."""
    try:
        click.echo(line, err=True)
    except OSError:
        discard_output(sys.stderr)


def forget_handled_interrupt() -> None:
    """Clear CPython's record of a KeyboardInterrupt that escaped code compiled from a string.

    An interrupt that lands in such code (``exec`` of a string: the methods dataclasses and namedtuples
    generate while modules load, ...) sets a flag that the interpreter checks when ``python -m adbench_hr``
    ends: even after the interrupt was handled and the command chose its exit code, the process would kill
    itself with SIGINT instead of exiting with 130 (143 after SIGTERM). Running code from a string clears
    the flag; the console script does not check it.
    """
    exec("")


def _main(argv: list[str] | None) -> int:
    try:
        _attach_commands()
        args = list(sys.argv[1:] if argv is None else argv)
        # Invoked without click's main(), whose Ctrl-C handler prints a blank line first; the arguments
        # travel in the context, so that results can record the command as it was given.
        with _opencv_log_silenced(), cli.make_context("adbench-hr", args, obj={"argv": args}) as context:
            cli.invoke(context)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `adbench-hr` (or group): show its help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        return 0
    except InputError as exc:
        _report(f"error: {one_line(exc)}")
        return 2
    except BrokenPipeError as exc:
        if exc.filename is not None:  # a pipe the command wrote to by name: an error like any other
            _report(f"error: {one_line(f'{exc.filename}: {exc.strerror or exc}')}")
            return 2
        # The reader of the output went away (`adbench-hr ... | head -1`): nothing is wrong and nothing is
        # printed; the exit code is a pipeline's when SIGPIPE ends a program.
        stdout_gone()
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        # A path the user gave that cannot be written or read (a folder where a file goes, a full disk ...).
        where = f"{exc.filename}: " if exc.filename else ""
        _report(f"error: {one_line(where + (exc.strerror or str(exc)))}")
        return 2
    except click.exceptions.Abort:  # an aborted prompt (Ctrl-C no longer passes through click's main())
        _ignore_interrupts()
        _report("error: interrupted")
        return 130
    except click.ClickException as exc:
        # Usage errors too end in one line (click would add a usage block and a hint).
        _report(f"error: {one_line(exc.format_message())}")
        return 2
    except Terminated:
        _ignore_interrupts()
        _report("error: terminated")
        return 143
    except KeyboardInterrupt:
        _ignore_interrupts()
        _report("error: interrupted")
        return 130
    return 0


def entry() -> None:
    """Run :func:`main`, then exit with its code (the ``adbench-hr`` console script, through
    :func:`adbench_hr.__main__.entry`).

    Once the command has finished, Ctrl-C (or a second one) during the interpreter's shutdown, which runs
    torch's exit handlers for up to a second, is ignored: it could only add a traceback to a finished
    command or turn its exit code into a signal.
    """
    code = _run(None, console_script=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
