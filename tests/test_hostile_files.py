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


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` gray pixels; its data holds one row."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(width + 1)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["png", "tiff", "npy"])
def test_a_map_declaring_a_huge_size_is_refused_before_it_is_decoded(tmp_path, monkeypatch, capsys, kind):
    # A constant 30000 x 30000 map compresses to under 1 MB as PNG or TIFF and decodes to 4.5 GB (20 s) before
    # its size was compared with the image's: the header's size is compared first.
    import cv2

    from adbench_hr import scoring
    from adbench_hr.cli.main import main

    root, maps = tmp_path / "data", tmp_path / "maps"
    for folder in ("train/good", "test/good"):
        (root / "widget" / folder).mkdir(parents=True)
        assert cv2.imwrite(str(root / "widget" / folder / "000.png"), np.zeros((16, 24), np.uint8))
    bomb = maps / "widget/test/good" / f"000.{kind}"
    bomb.parent.mkdir(parents=True)
    if kind == "png":
        bomb.write_bytes(_png_declaring(30000, 20000))
    elif kind == "tiff":
        tifffile.imwrite(bomb, np.zeros((2, 2), np.float32))
        with tifffile.TiffFile(bomb, mode="r+b") as tif:
            tif.pages.first.tags["ImageWidth"].overwrite(30000)
            tif.pages.first.tags["ImageLength"].overwrite(20000)
    else:
        import io

        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (20000, 30000)})
        bomb.write_bytes(header.getvalue())

    def no_decoding(path):
        pytest.fail(f"{path} was decoded")

    monkeypatch.setattr(scoring, "read_map", no_decoding)
    code = main(["score", "--maps", str(maps), "--root", str(root), "--dataset", "mvtec_ad", "--quiet"])
    assert capsys.readouterr().err == (f"error: {bomb}: anomaly map is 20000x30000 but the image 000.png is 16x24 "
                                       "(maps must be at original resolution)\n")
    assert code == 2
