"""``adbench_hr.errors``: the one-line form of errors and warnings."""

from __future__ import annotations

import threading
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adbench_hr.cli.main import main
from adbench_hr.errors import AdbenchWarning, InputError, one_line, warn, warnings_on_stderr, without_surrogates

ODD_MESSAGE = "/data/odd\nname: skipped, cannot read file (OpenCV(4.10) error:\n  -215 Assertion failed)"
ONE_LINE = "/data/odd name: skipped, cannot read file (OpenCV(4.10) error: -215 Assertion failed)"


def _warn_from_a_library_function() -> None:
    warn(ODD_MESSAGE)


def test_a_warning_is_an_adbench_warning_on_one_line_attributed_to_its_caller():
    # A folder name holding a newline, a library's multi-line message: still one line.
    with pytest.warns(AdbenchWarning) as record:
        _warn_from_a_library_function()
    (caught,) = record
    assert str(caught.message) == ONE_LINE
    assert caught.filename == __file__  # the function that warned, not errors.py


def test_a_library_user_can_silence_or_escalate_the_warnings(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AdbenchWarning)
        _warn_from_a_library_function()
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdbenchWarning)
        with pytest.raises(AdbenchWarning, match="cannot read file"):
            _warn_from_a_library_function()
    assert capsys.readouterr().err == ""


def test_on_stderr_every_warning_is_one_line_each_time_and_others_are_left_alone(capsys):
    with warnings_on_stderr():
        for _ in range(2):  # the same message from the same line: printed both times
            _warn_from_a_library_function()
        with pytest.warns(DeprecationWarning, match="old API"):  # other categories keep their handling
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().err == f"warning: {ONE_LINE}\n" * 2
    with pytest.warns(AdbenchWarning):  # the block restored the hook it replaced
        _warn_from_a_library_function()
    assert capsys.readouterr().err == ""


def test_on_stderr_other_warnings_go_to_the_hook_that_was_there_before(capsys, monkeypatch):
    shown: list[tuple[str, type[Warning]]] = []

    def previous_hook(message, category, *rest) -> None:
        shown.append((str(message), category))

    monkeypatch.setattr(warnings, "showwarning", previous_hook)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with warnings_on_stderr():
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
            _warn_from_a_library_function()
    assert shown == [("old API", DeprecationWarning)]  # handed on as it came, not printed as a line
    assert capsys.readouterr().err == f"warning: {ONE_LINE}\n"


def test_overlapping_blocks_in_threads_print_one_line_and_restore_the_hook(capsys):
    # The CLI run in two threads at once: the first command ends while the second still runs. Each block restoring
    # what it found would leave the second's warnings in Python's two-line format, and the hook installed after both.
    original = warnings.showwarning
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with warnings_on_stderr():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with warnings_on_stderr():
            second_in.set()
            first_out.wait(10)
            _warn_from_a_library_function()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert capsys.readouterr().err == f"warning: {ONE_LINE}\n"
    assert warnings.showwarning is original
    with pytest.warns(AdbenchWarning):  # a library warning again, not a printed line
        _warn_from_a_library_function()
    assert capsys.readouterr().err == ""


def test_the_cli_prints_warnings_as_one_line(tmp_path, capsys):
    # A file that is not a result: `leaderboard` skips it with a warning (an AdbenchWarning inside).
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "broken.json").write_text("{not json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whatever a user's filters say, the CLI prints its warnings
        code = main(["leaderboard", str(tmp_path / "results"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / 'results' / 'broken.json'}: skipped, not valid JSON\nerror: ")
    assert code == 2 and err.count("\n") == 2  # and the error that no result is left


@given(st.text(max_size=40), st.integers(min_value=0, max_value=50))
def test_one_line_never_exceeds_its_limit_and_keeps_what_fits(text, limit):
    whole = one_line(text)
    cut = one_line(text, limit)
    assert len(cut) <= limit
    if len(whole) <= limit:
        assert cut == whole
    elif limit >= 4:
        assert cut == whole[: limit - 3] + "..."
    else:  # no room for the ellipsis
        assert cut == whole[:limit]


def test_one_line_joins_every_kind_of_line_break():
    assert one_line("a\r\nb\tc\u2028d\x0be  f") == "a b c d e f"
    assert one_line(InputError("bad\nvalue", "x.png")) == "x.png: bad value"


def test_a_warning_during_a_progress_bar_is_a_line_of_its_own(capsys):
    import sys

    from tqdm import tqdm

    with warnings_on_stderr():
        for _ in tqdm(range(2), file=sys.stderr, disable=False):
            warn("mid-bar")
    err = capsys.readouterr().err
    first, between, _ = err.split("warning: mid-bar\n")
    assert first.endswith("\r") and between.endswith("\r")  # the bar's line is cleared, not continued
    assert "%|" in between  # and the bar drawn again below the warning


def test_without_a_standard_error_warnings_go_nowhere_not_to_stdout(monkeypatch, capsys):
    # sys.stderr is None where Python started without one (`2>&-`, pythonw): tqdm.write, given no file, would
    # print the warning on stdout, into the table or JSON a command prints there.
    monkeypatch.setattr("sys.stderr", None)
    with warnings_on_stderr():
        _warn_from_a_library_function()
    assert capsys.readouterr().out == ""


def test_a_path_s_bytes_stay_bytes_beside_a_surrogate_that_stands_for_none():
    # A message quoting a name with a lone surrogate (read from JSON) and a path named in Latin-1: the path's
    # byte shows as \xff, as without the name, and the name's surrogate as \ud800.
    assert without_surrogates("/data/caf\udcff") == "/data/caf\\xff"
    assert without_surrogates("\ud800") == "\\ud800"
    assert without_surrogates("/data/caf\udcff: name '\ud800\udfff'") == "/data/caf\\xff: name '\\ud800\\udfff'"
    assert without_surrogates("/data/\udcc3\udca9 \udc7f") == "/data/é \\udc7f"  # UTF-8 bytes decode as text
    # The byte range's ends: U+DC80 is the byte 0x80; U+DD00, just past 0xff's U+DCFF, stands for no byte.
    assert without_surrogates("\udc80 \udcff \udd00") == "\\x80 \\xff \\udd00"
