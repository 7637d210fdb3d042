"""Command-line interface (``adbench-hr``)."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import click

from adbench_hr.errors import InputError, discard_output

#: ``context_settings`` of a command whose ``--category`` takes a list (the spec's ``--category C ...``): the
#: names after the first come as extra arguments, which :func:`listed_names` adds.
LISTS_AFTER_OPTION = {"allow_extra_args": True}


class NonEmptyPath(click.Path):
    """``click.Path`` that refuses an empty value: ``--out "$DIR"`` with ``DIR`` unset would name the working
    folder without a word (read, or written into), as ``--category ""`` would name every category."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value:
            self.fail("the path is empty (an unset variable?); pass . for the current folder", param, ctx)
        return super().convert(value, param, ctx)


def listed_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` of a repeatable ``--category`` plus the names listed after it (``--category a b``).

    A stray word elsewhere on the command line (``check --root X pcb --category a``) stays the usage error
    it is: only words that follow the option's value count as listed.
    """
    context = click.get_current_context()
    extra = tuple(context.args)
    if not extra:
        return values
    stray = list(extra)
    argv = (context.find_root().obj or {}).get("argv")  # the command line as given (cli.main records it)
    if values and argv is not None:
        for word in _words_listed_after(argv, _option_names(context.command, "categories")):
            if word in stray:
                stray.remove(word)
    elif values:
        stray = []  # invoked without the record: the extra words are taken as listed
    if stray:
        raise click.UsageError(f"Got unexpected extra argument{'s' * (len(stray) > 1)} ({' '.join(stray)})")
    return (*values, *extra)


def _option_names(command: click.Command, name: str) -> set[str]:
    return {opt for param in command.params if param.name == name for opt in param.opts}


def _words_listed_after(argv: list[str], options: set[str]) -> list[str]:
    """The words of ``argv`` that follow an option of ``options`` and its value, up to the next option."""
    listed: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            break
        index += 1
        if word in options:
            index += 1  # its value
        elif not any(word.startswith(option + "=") for option in options):
            continue
        while index < len(argv) and not argv[index].startswith("-"):
            listed.append(argv[index])
            index += 1
    return listed


def split_names(values: tuple[str, ...], known: list[str]) -> list[str]:
    """Names given as ``--category a --category b`` or ``--category a,b`` (first occurrence order, no
    repeats); a known name is kept whole even if it holds a comma. Empty when none is given; an option
    given with no name in it (``--category ""``, an empty shell variable) is an error, not "all"."""
    names = [part.strip() for value in values for part in ([value] if value in known else value.split(","))]
    kept = list(dict.fromkeys(known_spelling(n, known) for n in names if n))
    if values and not kept:
        raise InputError(f"--category {values[0]!r} names no category (leave the option out for all)")
    return kept


def known_spelling(name: str, known: list[str]) -> str:
    """``name`` as ``known`` spells it where the two differ only in Unicode form, else ``name``.

    A terminal types "café" with a composed accent; macOS lists a folder of that name decomposed where HFS+
    stored it so (and lookups find it either way), so the name typed must select the folder listed.
    """
    if name in known:
        return name
    nfc = unicodedata.normalize("NFC", name)
    same = [other for other in known if unicodedata.normalize("NFC", other) == nfc]
    return same[0] if len(same) == 1 else name


#: Exit code of a command whose standard output was closed by its reader (``adbench-hr ... | head -1``): that
#: of a program ended by SIGPIPE, as the shell reports it, with no message.
BROKEN_PIPE_EXIT = 141


def stdout_gone() -> None:
    """Send the rest of standard output to the null device, once its reader has gone (``| head -1``): see
    :func:`adbench_hr.errors.discard_output`."""
    discard_output(sys.stdout)


def bars_wanted(quiet: bool = False) -> bool:
    """Whether this command draws progress bars: on a terminal only, never with ``--quiet``. In a log file
    tqdm's carriage returns are noise, and a bar's last state would stand before an error's one line."""
    stream = sys.stderr
    try:
        return not quiet and stream is not None and stream.isatty()
    except (AttributeError, OSError, ValueError):  # a stand-in without isatty (only write), a closed or failing stream
        return False
