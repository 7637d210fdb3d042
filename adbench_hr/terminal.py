"""Text as a terminal shows it: the columns a string takes, for the fixed-width tables the CLI prints."""

from __future__ import annotations

import unicodedata

# Characters that take no column of their own: combining marks (the accent of an "é" stored decomposed, as macOS
# names files) and format characters (the zero-width joiner of an emoji sequence).
_ZERO_WIDTH = ("Mn", "Me", "Cf")


def display_width(text: str) -> int:
    """The number of terminal columns ``text`` takes: two for a wide character (CJK ideographs, kana, hangul,
    most emoji: East Asian width W or F), none for a combining mark or a format character, one for the others
    (East Asian "ambiguous" characters such as ``ρ`` and ``—`` too, as terminals outside CJK locales show them).

    ``len()`` counts code points, so that a table holding a category named "木材" or a decomposed "bottlé"
    came out with its columns shifted."""
    width = 0
    for char in text:
        if unicodedata.category(char) in _ZERO_WIDTH:
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def ljust(text: str, width: int) -> str:
    """``text`` padded with spaces on the right to ``width`` terminal columns (:func:`display_width`)."""
    return text + " " * max(0, width - display_width(text))


def rjust(text: str, width: int) -> str:
    """``text`` padded with spaces on the left to ``width`` terminal columns (:func:`display_width`)."""
    return " " * max(0, width - display_width(text)) + text
