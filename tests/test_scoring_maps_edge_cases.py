"""Edge cases found by mutation testing of adbench_hr/scoring.py and adbench_hr/maps.py."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from adbench_hr.errors import InputError
from adbench_hr.maps import read_image_scores, read_map, unmatched_maps
from adbench_hr.scoring import check_protocol


def test_unknown_protocol_is_refused():
    with pytest.raises(InputError, match="unknown protocol"):
        check_protocol("bogus", None)


def test_hidden_files_are_not_unmatched_maps(tmp_path):
    folder = tmp_path / "maps/widget/test/good"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "000.tiff", np.zeros((2, 2), np.float32))
    (folder / "._000.tiff").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble companion
    assert unmatched_maps(tmp_path / "maps", "widget", {"test/good/000"}) == []


def test_maps_of_non_numeric_dtypes_are_refused(tmp_path):
    # SPEC §2/§4: a float anomaly map (or 8/16-bit PNG); a text .npy is not a score map (a bool one reads as
    # 0/1: tests/test_maps.py).
    path = tmp_path / "m.npy"
    np.save(path, np.full((3, 3), "0.5"))
    with pytest.raises(InputError, match="anomaly map must be real-valued, got dtype"):
        read_map(path)


def test_score_rows_with_a_dot_slash_prefix(tmp_path):
    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\n./test/good/000.tiff,0.25\n./widget/test/crack/001.png,0.75\n")
    scores = read_image_scores(path, "widget", {"test/good/000", "test/crack/001"})
    assert scores == {"test/good/000": 0.25, "test/crack/001": 0.75}


def test_an_unnamed_column_between_path_and_score_is_not_a_stray_value(tmp_path):
    # maps.read_image_scores: only unnamed columns *after* path and score must be blank.
    path = tmp_path / "image_scores.csv"
    path.write_text("path,,score\ntest/good/000.tiff,7,0.5\n")
    assert read_image_scores(path, "widget", {"test/good/000"}) == {"test/good/000": 0.5}
    path.write_text("score,,path\n0.5,7,test/good/000.tiff\n")  # the named columns in the other order
    assert read_image_scores(path, "widget", {"test/good/000"}) == {"test/good/000": 0.5}
    path.write_text("score,path,\n0.5,test/good/000.tiff,7\n")  # after both of them: a stray value
    with pytest.raises(InputError, match=r"line 2: a value beyond the named columns \(7\)"):
        read_image_scores(path, "widget", {"test/good/000"})


def test_maps_with_an_upper_case_extension_can_be_unmatched_too(tmp_path):
    # find_map reads ".TIFF" maps; a misnamed one must be reported as well, not only a ".tiff" one.
    folder = tmp_path / "maps/widget/test/good"
    folder.mkdir(parents=True)
    for name in ("000.TIFF", "001.Npy", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert unmatched_maps(tmp_path / "maps", "widget", {"test/good/000"}) == [folder / "001.Npy"]


def test_an_image_score_file_that_is_not_utf8_is_named_as_such(tmp_path):
    path = tmp_path / "image_scores.csv"
    path.write_bytes("path,score\ntest/good/\u00e9,0.5\n".encode("latin-1"))  # a spreadsheet's legacy encoding
    with pytest.raises(InputError) as error:
        read_image_scores(path, "widget")
    assert (error.value.path, error.value.problem) == (path, "image score file is not UTF-8 text")


def test_a_map_in_an_image_format_is_refused_naming_the_format(tmp_path):
    import cv2

    path = tmp_path / "000.png"  # a JPEG under a map's name: the content decides
    assert cv2.imwrite(str(tmp_path / "m.jpg"), np.zeros((4, 4), np.uint8))
    (tmp_path / "m.jpg").rename(path)
    with pytest.raises(InputError) as error:
        read_map(path)
    assert error.value.problem == "anomaly map is a JPEG file (use TIFF, NPY or PNG)"
