"""``adbench_hr.errors``: the one-line form of errors and warnings."""

from __future__ import annotations

from adbench_hr.errors import InputError, one_line, warn


def test_warnings_stay_on_one_line_whatever_they_quote(capsys):
    # A folder name holding a newline, a library's multi-line message: still one warning line.
    warn("/data/odd\nname: skipped, cannot read file (OpenCV(4.10) error:\n  -215 Assertion failed)")
    assert capsys.readouterr().err == (
        "warning: /data/odd name: skipped, cannot read file (OpenCV(4.10) error: -215 Assertion failed)\n")


def test_one_line_joins_every_kind_of_line_break():
    assert one_line("a\r\nb\tc\u2028d\x0be  f") == "a b c d e f"
    assert one_line(InputError("bad\nvalue", "x.png")) == "x.png: bad value"
