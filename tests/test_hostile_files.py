"""Hostile files as a public leaderboard receives them: files crafted to hang the reader, exhaust its memory or
inject into terminals and spreadsheets must end in one error (or a harmless output), quickly and cheaply."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from adbench_hr.errors import InputError, one_line
from adbench_hr.maps import read_map


def test_many_page_tiff_is_refused_without_building_tifffiles_series(tmp_path, monkeypatch):
    # tifffile's series of a file of many distinct pages takes minutes for a few MB (100000 1x1 pages: over
    # 5 minutes); the page-count error must not wait for it.
    path = tmp_path / "pages.tiff"
    with tifffile.TiffWriter(path) as writer:
        for _ in range(50):
            writer.write(np.zeros((1, 1), np.float32), contiguous=False)

    def no_series(self):
        pytest.fail("tif.series was built")

    monkeypatch.setattr(tifffile.TiffFile, "series", property(no_series))
    with pytest.raises(InputError, match="TIFF file has 50 pages; expected a single image$"):
        read_map(path)
    hint = tmp_path / "two.tiff"  # the channels-as-pages hint still comes
    tifffile.imwrite(hint, np.zeros((24, 40, 2), np.float32))
    with pytest.raises(InputError, match=r"saved as H pages of W x C, here 40 x 2\)$"):
        read_map(hint)


def test_escape_sequences_in_file_names_reach_no_terminal(tmp_path, capsys):
    # A result folder holding a file whose name clears the screen, moves the cursor up over earlier lines and
    # sets the window title: the warning that skips it (and the error) show the name escaped.
    from adbench_hr.cli.main import main

    results = tmp_path / "results"
    results.mkdir()
    name = "\x1b]0;title\x07\x1b[2J\x1b[1A\u202eevil.json"
    (results / name).write_text("{not json")
    code = main(["leaderboard", str(results), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "\\x1b]0;title\\x07\\x1b[2J\\x1b[1A\\u202eevil.json: skipped, not valid JSON" in err
    assert one_line("a\x9bb \x00 \x7f") == "a\\x9bb \\x00 \\x7f"  # C1 CSI, NUL and DEL too


def test_a_number_of_thousands_of_digits_is_a_one_line_error(tmp_path, capsys):
    # json.loads raises a plain ValueError for integers beyond Python's 4300-digit conversion limit.
    from adbench_hr.cli.main import main
    from adbench_hr.results import load_result

    path = tmp_path / "results" / "big.json"
    path.parent.mkdir()
    path.write_text('{"schema": "adbench-hr/result/v1", "metrics": {"n_images": ' + "9" * 5000 + "}}")
    with pytest.raises(InputError, match="a number with thousands of digits"):
        load_result(path)
    assert main(["leaderboard", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: not valid JSON (a number with thousands of digits)\n"
    assert main(["leaderboard", str(path.parent), "--out", str(tmp_path / "out")]) == 2  # skipped; none is left
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {path}: skipped, not valid JSON (a number with thousands of digits)\nerror: ")
