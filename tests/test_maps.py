"""Reading and writing third-party anomaly maps and ``image_scores.csv`` (``adbench_hr.maps``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from adbench_hr.errors import InputError
from adbench_hr.maps import (
    find_image_scores,
    find_map,
    map_header_shape,
    read_image_scores,
    read_map,
    write_image_scores,
    write_map,
)


def test_written_maps_and_scores_read_back_exactly(tmp_path):
    values = np.array([[0.1, 1.0 + 2**-20], [1e-7, 12345.678]], np.float32)  # beyond float16's resolution
    write_map(tmp_path / "m.tiff", values)
    back = read_map(tmp_path / "m.tiff")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, values)
    scores = {"test/crack/000": 0.123456789012345, "test/good/001": 1e-9}
    write_image_scores(tmp_path / "image_scores.csv", scores)
    assert read_image_scores(tmp_path / "image_scores.csv", "widget") == scores


def test_float64_and_integer_maps_keep_distinct_values(tmp_path):
    close = np.array([[1.0, 1.0 + 1e-12]])  # one float32 value
    np.save(tmp_path / "f.npy", close)
    assert read_map(tmp_path / "f.npy")[0, 1] > read_map(tmp_path / "f.npy")[0, 0]
    np.save(tmp_path / "i.npy", np.array([[2**53, 0]], np.int64))  # the largest exact integer is fine
    assert read_map(tmp_path / "i.npy")[0, 0] == 2.0**53
    np.save(tmp_path / "big.npy", np.array([[2**53 + 1, 0]], np.int64))
    with pytest.raises(InputError, match="beyond 2\\*\\*53"):
        read_map(tmp_path / "big.npy")
    np.save(tmp_path / "exact.npy", np.array([[2**60, 0]], np.int64))  # beyond 2**53 but a float64 value
    assert read_map(tmp_path / "exact.npy")[0, 0] == 2.0**60
    for name, inexact in (("u64", np.array([[2**64 - 1, 2**64 - 2]], np.uint64)),
                          ("ld", np.array([[1, 1 + np.finfo(np.longdouble).eps]], np.longdouble))):
        if name == "ld" and np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
            continue  # long double is float64 on this platform
        np.save(tmp_path / f"{name}.npy", inexact)
        with pytest.raises(InputError, match="no float64 holds exactly") as error:
            read_map(tmp_path / f"{name}.npy")
        assert error.value.path == tmp_path / f"{name}.npy"


def test_a_nan_in_a_wide_map_is_reported_as_nan(tmp_path):
    # A NaN in a long-double or float64 map whose other values fit float64 (or float32): before, a long-double
    # one was "float128 values that no float64 holds exactly ...: scale or shift the map", which no scaling fixes.
    for dtype in (np.longdouble, np.float64):
        path = tmp_path / f"{np.dtype(dtype).name}.npy"
        np.save(path, np.array([[1.0, np.nan], [0.5, 2.0]], dtype))
        with pytest.raises(InputError) as error:
            read_map(path)
        assert str(error.value) == f"{path}: anomaly map contains NaN or inf"


def test_written_float64_maps_keep_values_float32_would_merge(tmp_path):
    values = np.array([[1.0, 1.0 + 1e-12], [0.5, 2.0**-30]])  # the first two are one float32 value
    write_map(tmp_path / "m.tiff", values)
    back = read_map(tmp_path / "m.tiff")
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, values)


def test_single_channel_map_with_a_channel_axis_is_2d(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    for shape in ((2, 3, 1), (1, 2, 3)):  # channels last, or a (1, H, W) tensor dumped from torch
        np.save(tmp_path / "m.npy", values.reshape(shape))
        np.testing.assert_array_equal(read_map(tmp_path / "m.npy"), values)
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 3), np.float32))
    with pytest.raises(InputError, match="single-channel"):
        read_map(tmp_path / "rgb.npy")


def test_bool_maps_read_as_zeros_and_ones_in_every_format(tmp_path):
    # A thresholded map is a poor but legal score map: 0 and 1, as an 8-bit 0/1 PNG would be read.
    bits = np.array([[True, False, False], [False, True, True]])
    np.save(tmp_path / "m.npy", bits)
    tifffile.imwrite(tmp_path / "tifffile.tiff", bits)  # 1-bit MinIsWhite, Software tifffile.py
    tifffile.imwrite(tmp_path / "black.tiff", bits, photometric="minisblack")  # 1-bit MinIsBlack
    for name in ("m.npy", "tifffile.tiff", "black.tiff"):
        values = read_map(tmp_path / name)
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, [[1, 0, 0], [0, 1, 1]], err_msg=name)


def test_non_finite_map_is_refused_naming_the_file(tmp_path):
    np.save(tmp_path / "m.npy", np.array([[0.0, np.inf]], np.float32))
    with pytest.raises(InputError, match="NaN or inf") as info:
        read_map(tmp_path / "m.npy")
    assert "m.npy" in str(info.value)


def test_category_score_file_takes_precedence_over_the_root_one_with_a_warning(tmp_path):
    (tmp_path / "widget").mkdir()
    (tmp_path / "image_scores.csv").write_text("path,score\ntest/good/000,1\n")
    warnings: list[str] = []
    assert find_image_scores(tmp_path, "widget", warnings) == tmp_path / "image_scores.csv"
    assert warnings == []
    (tmp_path / "widget/image_scores.csv").write_text("path,score\ntest/good/000,2\n")
    assert find_image_scores(tmp_path, "widget", warnings) == tmp_path / "widget/image_scores.csv"
    assert warnings == [f"image scores read from {tmp_path / 'widget/image_scores.csv'}; "
                        f"{tmp_path / 'image_scores.csv'} is ignored (a category's image_scores.csv takes precedence)"]


@pytest.mark.parametrize("where", ["widget", "."])
def test_an_image_score_file_named_in_another_case_is_an_error(tmp_path, where):
    # Ignored, it would leave the image scores to the map maxima without a word (another I-AUROC).
    (tmp_path / "widget").mkdir()
    misnamed = tmp_path / where / "Image_Scores.CSV"
    misnamed.write_text("path,score\ntest/good/000,1\n")
    with pytest.raises(InputError) as error:
        find_image_scores(tmp_path, "widget")
    assert error.value.path == misnamed
    assert error.value.problem == ("image score file must be named image_scores.csv (in lower case) to be read: "
                                   "rename it")
    (misnamed.parent / "image_scores.csv").write_text("path,score\ntest/good/000,1\n")  # which one is meant?
    with pytest.raises(InputError) as error:
        find_image_scores(tmp_path, "widget")
    assert error.value.path == misnamed
    assert error.value.problem == "image score file beside image_scores.csv: remove one of them"


def test_an_image_score_file_that_is_a_broken_link_or_a_folder_is_an_error(tmp_path):
    (tmp_path / "widget").mkdir()
    (tmp_path / "image_scores.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(InputError) as error:
        find_image_scores(tmp_path, "widget")
    assert str(error.value) == f"{tmp_path / 'image_scores.csv'}: broken symbolic link (to {tmp_path / 'gone.csv'})"
    (tmp_path / "widget/image_scores.csv").mkdir()
    with pytest.raises(InputError, match="image score file is not a regular file") as error:
        find_image_scores(tmp_path, "widget")
    assert error.value.path == tmp_path / "widget/image_scores.csv"


def test_a_map_that_is_a_broken_link_a_link_loop_or_a_folder_is_named_as_such(tmp_path):
    folder = tmp_path / "widget/test/crack"
    folder.mkdir(parents=True)
    (folder / "000.tiff").symlink_to("/nonexistent/000.tiff")
    (folder / "001.tiff").symlink_to("001.tiff")  # a loop
    (folder / "002.tiff").mkdir()
    (folder / "003.Npy").mkdir()  # an extension in mixed case, as maps may have
    (folder / "004.npy").symlink_to(tmp_path)  # a link to a folder
    expected = {
        "000": (folder / "000.tiff", "broken symbolic link (to /nonexistent/000.tiff)"),
        "001": (folder / "001.tiff", "broken symbolic link (to 001.tiff)"),
        "002": (folder / "002.tiff", "a folder where an anomaly map file should be"),
        "003": (folder / "003.Npy", "a folder where an anomaly map file should be"),
        "004": (folder / "004.npy", "a folder where an anomaly map file should be"),
        "005": (folder / "005.tiff", "missing anomaly map (looked for .tiff, .tif, .npy, .png)"),
    }
    for stem, (path, problem) in expected.items():
        with pytest.raises(InputError) as error:
            find_map(tmp_path, "widget", f"test/crack/{stem}")
        assert (error.value.path, error.value.problem) == (path, problem)
    # Beside a readable map file a broken link is still refused: which of the two is meant is a guess.
    np.save(folder / "000.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(InputError, match="broken symbolic link") as error:
        find_map(tmp_path, "widget", "test/crack/000")
    assert error.value.path == folder / "000.tiff"
    # A folder beside one is no map at all: the file is read.
    np.save(folder / "002.npy", np.zeros((2, 2), np.float32))
    assert find_map(tmp_path, "widget", "test/crack/002") == folder / "002.npy"


def test_one_file_found_under_two_spellings_is_one_map(tmp_path):
    # On a case-insensitive file system 000.tiff and 000.TIFF are one file; a hard link stands in for that
    # here. Two distinct files under those names stay two maps for one image.
    folder = tmp_path / "widget" / "test" / "crack"
    folder.mkdir(parents=True)
    write_map(folder / "000.tiff", np.ones((2, 2), np.float32))
    (folder / "000.TIFF").hardlink_to(folder / "000.tiff")
    assert find_map(tmp_path, "widget", "test/crack/000") == folder / "000.tiff"
    write_map(folder / "001.tiff", np.ones((2, 2), np.float32))
    write_map(folder / "001.TIFF", np.ones((2, 2), np.float32))
    with pytest.raises(InputError, match=r"two anomaly maps for one image \(001.tiff, 001.TIFF\)"):
        find_map(tmp_path, "widget", "test/crack/001")


@pytest.mark.parametrize("shape", [(0, 5), (3, 0)])
def test_a_map_without_pixels_is_refused(tmp_path, shape):
    np.save(tmp_path / "m.npy", np.zeros(shape, np.float32))
    with pytest.raises(InputError, match=r"no pixel data") as error:
        read_map(tmp_path / "m.npy")
    assert error.value.path == tmp_path / "m.npy"


def test_score_rows_written_by_other_tools(tmp_path):
    # Absolute paths (POSIX or Windows) to maps or images, and a header as spreadsheets write it.
    ids = {"test/good/000", "test/crack/001", "test/crack/002"}
    rows = ("/data/maps/widget/test/good/000.tiff,0.25\n"
            "C:\\runs\\widget\\test\\crack\\001.png,0.5\n"
            "/data/mvtec/widget/test/crack/002.png,0.75\n")
    (tmp_path / "image_scores.csv").write_text(f"Path, Score\n{rows}")
    assert read_image_scores(tmp_path / "image_scores.csv", "widget", ids) == {
        "test/good/000": 0.25, "test/crack/001": 0.5, "test/crack/002": 0.75}
    # One file for the whole maps folder: rows of another category carry the same ids and stay unmatched.
    shared = ("/maps/widget/test/good/000.tiff,0.25\n/maps/gadget/test/good/000.tiff,0.9\n"
              "gadget/test/crack/001.tiff,0.9\n/maps/widget/test/crack/001.tiff,0.5\n")
    (tmp_path / "image_scores.csv").write_text(f"path,score\n{shared}")
    scores = read_image_scores(tmp_path / "image_scores.csv", "widget", ids)
    assert {k: v for k, v in scores.items() if k in ids} == {"test/good/000": 0.25, "test/crack/001": 0.5}
    (tmp_path / "image_scores.csv").write_text("file,value\ntest/good/000,1\n")
    with pytest.raises(InputError, match=r"needs the columns 'path,score' \(found the columns file,value\)"):
        read_image_scores(tmp_path / "image_scores.csv", "widget", ids)


def test_a_long_path_is_matched_past_a_defect_folder_named_like_the_category(tmp_path):
    # Category "crack" with a defect type "crack": in /data/crack/test/crack/000.png the last "crack" folder
    # is followed by "000", no id; the search goes on to the earlier one, after which test/crack/000 is the id.
    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\n/data/crack/test/crack/000.png,0.5\n")
    assert read_image_scores(path, "crack", {"test/crack/000", "test/good/000"}) == {"test/crack/000": 0.5}


def test_an_image_score_file_of_a_byte_order_mark_alone_is_refused_for_its_missing_header(tmp_path):
    # What Excel's "CSV UTF-8" writes for an empty sheet: 3 bytes, so not "empty (0 bytes)", and no header row.
    path = tmp_path / "image_scores.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(InputError) as error:
        read_image_scores(path, "widget")
    assert (error.value.path, error.value.problem) == (
        path, "image score file needs the columns 'path,score' (found no header row)")


def test_score_rows_may_name_an_image_by_its_own_path(tmp_path):
    # VisA: the image Data/Images/Anomaly/000.JPG is the sample test/bad/000.
    ids = {"test/good/0002", "test/bad/000"}
    aliases = {"Data/Images/Normal/0002": "test/good/0002", "Data/Images/Anomaly/000": "test/bad/000"}
    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\nwidget/Data/Images/Anomaly/000.JPG,0.5\n"
                    "/visa/widget/Data/Images/Normal/0002.jpg,0.25\n/visa/gadget/Data/Images/Anomaly/000.JPG,0.75\n")
    # Another object's row stays unmatched (its ids and paths are this object's too).
    assert read_image_scores(path, "widget", ids, aliases) == {
        "test/bad/000": 0.5, "test/good/0002": 0.25, "visa/gadget/Data/Images/Anomaly/000": 0.75}
    # Both spellings of one image are one image named twice.
    path.write_text("path,score\ntest/bad/000,0.5\nData/Images/Anomaly/000.JPG,0.5\n")
    with pytest.raises(InputError, match="line 3: duplicate entry for 'test/bad/000'"):
        read_image_scores(path, "widget", ids, aliases)
    # Without the category's ids an alias is still read as the id it stands for; a sample id that is also
    # another image's path inside the folder stays that sample's own (the id wins over the alias).
    path.write_text("path,score\nwidget/Data/Images/Anomaly/000.JPG,0.5\n")
    assert read_image_scores(path, "widget", None, aliases) == {"test/bad/000": 0.5}
    path.write_text("path,score\ntest/good/0002,0.25\n")
    assert read_image_scores(path, "widget", ids, {"test/good/0002": "test/bad/000"}) == {"test/good/0002": 0.25}


@pytest.mark.parametrize(
    "rows, problem",
    [
        ("test/good/000,1\nwidget/test/good/000.tiff,2\n", "line 3: duplicate entry for 'test/good/000'"),
        ("test/good/000,inf\n", "line 2: score is NaN or inf"),
        ("test/good/000,nan\n", "line 2: score is NaN or inf"),
        # More or fewer fields than the header: before, the extra field was dropped and 0,87 read as 0.
        ("test/good/000.tiff,0,87\n", "line 2: a value beyond the named columns (87) (a decimal comma?"),
        ("test/good/000.tiff,0.2,0.3\n", "line 2: a value beyond the named columns (0.3)"),
        ("test/good/000.tiff\n", "line 2: no score field"),
    ],
)
def test_bad_score_rows_are_refused_with_their_line(tmp_path, rows, problem):
    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\n" + rows)
    with pytest.raises(InputError) as error:
        read_image_scores(path, "widget")
    assert problem in error.value.problem and error.value.path == path


def test_a_trailing_empty_field_is_harmless_and_a_quoted_decimal_comma_is_not_a_number(tmp_path):
    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\ntest/good/000.tiff,0.87,\n")
    assert read_image_scores(path, "widget") == {"test/good/000": 0.87}
    path.write_text("path,score,\ntest/good/000.tiff,0.87,\n")  # the header ends in a comma too
    assert read_image_scores(path, "widget") == {"test/good/000": 0.87}
    path.write_text("path,score,,\ntest/good/000.tiff,0,87,\n")  # ... and a decimal comma fills the blank column
    with pytest.raises(InputError, match=r"line 2: a value beyond the named columns \(87\)"):
        read_image_scores(path, "widget")
    path.write_text("path,score,label\ntest/good/000.tiff,0.5,good\n")  # a named extra column is fine
    assert read_image_scores(path, "widget") == {"test/good/000": 0.5}
    path.write_text(",path,score\n0,test/good/000.tiff,0.5\n")  # pandas' to_csv with its index column
    assert read_image_scores(path, "widget") == {"test/good/000": 0.5}
    path.write_text('path,score\ntest/good/000.tiff,"0,87"\n')  # quoted: one field, still not a number
    with pytest.raises(InputError, match="score '0,87' is not a number"):
        read_image_scores(path, "widget")


def test_an_unreadable_image_score_file_is_named(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "image_scores.csv"
    path.write_text("path,score\n")

    def failing_open(self, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")  # a dying disk: no file name in the exception

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(InputError, match="cannot read the image score file \\(Input/output error\\)") as error:
        read_image_scores(path, "widget")
    assert error.value.path == path


@pytest.mark.parametrize("anomaly_map, problem", [
    (np.array([[0.5, np.nan]], np.float32), "anomaly map contains NaN or inf"),
    (np.array([[1 + 1j, 0]]), "anomaly map must be real-valued, got dtype complex128"),
    (np.zeros((2, 2, 3), np.float32), "anomaly map must be a non-empty 2-D array, got shape (2, 2, 3)"),
])
def test_write_map_refuses_what_read_map_would_and_writes_nothing(tmp_path, anomaly_map, problem):
    path = tmp_path / "maps" / "000.tiff"
    path.parent.mkdir()
    with pytest.raises(InputError) as info:
        write_map(path, anomaly_map)
    assert str(info.value) == f"{path}: {problem}"
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("score, problem", [
    (float("nan"), "is NaN or inf"),
    (float("inf"), "is NaN or inf"),
    ("0.5", "must be one real number, got '0.5'"),
    (None, "must be one real number, got None"),
    (True, "must be one real number, got True"),
    pytest.param(10**400, "is beyond the range of float64", id="int-beyond-float64"),
    pytest.param(np.longdouble(10) ** 400, "is beyond the range of float64", id="long-double-beyond-float64",
                 marks=pytest.mark.skipif(np.finfo(np.longdouble).maxexp <= 1024, reason="long double is float64")),
    # Written as float64, these would become 1.0 and 9007199254740992.0 and tie with another score.
    pytest.param(np.longdouble(1) + np.longdouble(2) ** -60, "is a value that no float64 holds exactly",
                 id="long-double-rounded",
                 marks=pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="long double is float64")),
    pytest.param(2**53 + 1, "is a value that no float64 holds exactly", id="int-rounded"),
])
def test_write_image_scores_refuses_what_the_metrics_would_and_writes_nothing(tmp_path, score, problem):
    path = tmp_path / "image_scores.csv"
    with pytest.raises(InputError) as error:
        write_image_scores(path, {"test/good/000": 0.5, "test/good/001": score})
    assert error.value.path == path
    assert error.value.problem.startswith(f"image score of 'test/good/001' {problem}")
    assert not path.exists()


def test_write_image_scores_writes_exact_scores_of_any_real_type(tmp_path):
    path = tmp_path / "image_scores.csv"
    scores = {"test/good/000": np.float32(0.1), "test/good/001": 3, "test/bad/000": np.longdouble(0.25),
              "test/bad/001": np.int64(2**53)}
    write_image_scores(path, scores)
    assert read_image_scores(path, "c") == {k: float(v) for k, v in scores.items()}


@pytest.mark.parametrize("suffix", [".png", ".npy", ".tiff"])
def test_a_map_the_system_refuses_to_read_is_not_called_corrupt(tmp_path, monkeypatch, suffix):
    # Before: "unreadable or corrupt anomaly map (PermissionError: ...)", which sent the user to check the data.
    import errno
    import io

    import cv2

    path = tmp_path / f"000{suffix}"
    if suffix == ".npy":
        np.save(path, np.zeros((4, 4), np.float32))
    elif suffix == ".png":
        cv2.imwrite(str(path), np.zeros((4, 4), np.uint8))
    else:
        tifffile.imwrite(path, np.zeros((4, 4), np.float32))
    denied = PermissionError(errno.EACCES, "Permission denied", str(path))
    real_open = io.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(path) and "r" in (args[0] if args else kwargs.get("mode", "r")):
            raise denied
        return real_open(file, *args, **kwargs)

    def refusing_fromfile(file, *args, **kwargs):
        raise denied

    monkeypatch.setattr("builtins.open", refusing_open)
    monkeypatch.setattr(np, "fromfile", refusing_fromfile)
    with pytest.raises(InputError, match=r"000\.\w+: cannot read the anomaly map \(Permission denied\)$") as error:
        read_map(path)
    assert error.value.path == path


def test_the_header_shape_is_the_shape_read_map_gives_without_decoding(tmp_path):
    # A 3 x 5 map (H != W, so a swap of height and width shows) in every format that declares its size.
    values = np.arange(15, dtype=np.float32).reshape(3, 5)
    cv2.imwrite(str(tmp_path / "m.png"), values.astype(np.uint16))
    tifffile.imwrite(tmp_path / "m.tiff", values)
    np.save(tmp_path / "m.npy", values)
    np.save(tmp_path / "last.npy", values.reshape(3, 5, 1))  # channel axis last
    np.save(tmp_path / "first.npy", values.reshape(1, 3, 5))  # a (1, H, W) tensor
    with open(tmp_path / "v2.npy", "wb") as handle:  # format version 2.0 (headers beyond 64 KiB)
        np.lib.format.write_array(handle, values, version=(2, 0))
    for name in ("m.png", "m.tiff", "m.npy", "last.npy", "first.npy", "v2.npy"):
        assert map_header_shape(tmp_path / name) == (3, 5), name
        assert read_map(tmp_path / name).shape == (3, 5), name
    # A PNG that declares more than 2**24 columns (a decompression bomb): the header's size, all four bytes.
    ihdr = b"IHDR" + (2**24 + 5).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + ihdr + bytes(4))
    assert map_header_shape(tmp_path / "bomb.png") == (3, 2**24 + 5)


def test_the_header_shape_is_unknown_where_the_header_does_not_say(tmp_path):
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 5), np.float32))  # not a single-channel map
    tifffile.imwrite(tmp_path / "pages.tiff", np.zeros((2, 3, 5), np.float32), photometric="minisblack")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")  # header cut short
    (tmp_path / "cut.npy").write_bytes(b"\x93NUMPY\x01")  # damaged
    cv2.imwrite(str(tmp_path / "m.bmp"), np.zeros((3, 5), np.uint8))  # a format that read_map refuses
    for name in ("rgb.npy", "pages.tiff", "cut.png", "cut.npy", "m.bmp"):
        assert map_header_shape(tmp_path / name) is None, name


def test_a_tiff_map_whose_displayed_values_differ_from_the_stored_ones_is_refused(tmp_path):
    # A map's values are its stored samples: a viewer would show 255 - v (MinIsWhite) or palette colours.
    values = np.arange(15, dtype=np.uint8).reshape(3, 5)
    tifffile.imwrite(tmp_path / "white.tiff", values, photometric="miniswhite")
    colormap = np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))
    tifffile.imwrite(tmp_path / "palette.tiff", values, photometric="palette", colormap=colormap)
    for name, kind in (("white.tiff", "MinIsWhite"), ("palette.tiff", "palette")):
        with pytest.raises(InputError, match=f"{kind} TIFF: its displayed values differ from the stored ones"):
            read_map(tmp_path / name)


def test_a_missing_map_beside_the_other_maps_of_its_folder_gets_no_hint(tmp_path):
    # The folder test/crack/ holds the other maps: only this one is missing, nothing is laid out otherwise.
    tifffile.imwrite(_folder(tmp_path / "widget/test/crack") / "001.tiff", np.zeros((2, 2), np.float32))
    with pytest.raises(InputError, match=r"missing anomaly map \(looked for \.tiff, \.tif, \.npy, \.png\)$"):
        find_map(tmp_path, "widget", "test/crack/000")


def test_a_missing_map_in_a_category_folder_without_any_map_gets_no_hint(tmp_path):
    _folder(tmp_path / "widget/notes")  # the category's folder exists, but holds no map at all
    with pytest.raises(InputError, match=r"missing anomaly map \(looked for \.tiff, \.tif, \.npy, \.png\)$"):
        find_map(tmp_path, "widget", "test/crack/000")


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("name", ["map.exr", "map.txt", "map"])
def test_read_map_of_a_file_in_no_format_it_knows_names_the_formats_it_reads(tmp_path, name):
    # Neither the content (no image or npy signature) nor the extension says a format: read_map, called directly,
    # names the extensions it reads rather than calling the file corrupt.
    path = tmp_path / name
    path.write_bytes(b"0.5 0.25\n")
    with pytest.raises(InputError) as error:
        read_map(path)
    assert error.value.path == path
    suffix = repr(path.suffix)
    assert error.value.problem == f"unsupported map format {suffix} (use .tiff, .tif, .npy, .png)"
