"""``image_size`` reads a test image's size from its header (PNG, JPEG, uncompressed TIFF) instead of decoding it:
it must give exactly the size that decoding gives (``read_image``: OpenCV's ``IMREAD_UNCHANGED``, which leaves
EXIF orientation alone; tifffile for TIFF), and the error decoding gives for a damaged file. Sizes are never
square, so that swapped sides show; each file written by a real encoder (OpenCV, Pillow, tifffile) or built
from one."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from adbench_hr import imageio
from adbench_hr.errors import InputError
from adbench_hr.imageio import image_size

RNG = np.random.default_rng(11)
H, W = 37, 53  # neither side a multiple of 8 (JPEG blocks, the 1/8 check), and not square


def _pixels(channels: int = 3, dtype=np.uint8, shape=(H, W)) -> np.ndarray:
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    values = RNG.uniform(0, top, (*shape, channels) if channels > 1 else shape)
    return values.astype(dtype)


def _decoded_size(path: Path) -> tuple[int, int]:
    array = imageio._read_raw(path)
    return int(array.shape[0]), int(array.shape[1])


def _opencv(path: Path, array: np.ndarray, *params: int) -> Path:
    assert cv2.imwrite(str(path), array, list(params))
    return path


def _pillow(path: Path, image: Image.Image, fmt: str, **options) -> Path:
    image.save(path, fmt, **options)
    return path


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[274] = orientation
    return exif.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _insert_png_chunk(png: bytes, chunk: bytes) -> bytes:
    """``png`` with ``chunk`` right after IHDR."""
    end_of_ihdr = 8 + 12 + 13
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


PNG_FILES = {
    "gray 8 bit": lambda p: _opencv(p, _pixels(1)),
    "gray 16 bit": lambda p: _opencv(p, _pixels(1, np.uint16)),
    "BGR": lambda p: _opencv(p, _pixels(3)),
    "BGRA 16 bit": lambda p: _opencv(p, _pixels(4, np.uint16)),
    "bilevel (OpenCV's 1-bit option)": lambda p: _opencv(p, (_pixels(1) > 127).astype(np.uint8) * 255,
                                                         cv2.IMWRITE_PNG_BILEVEL, 1),
    "gray + alpha (Pillow LA)": lambda p: _pillow(p, Image.fromarray(_pixels(2), "LA"), "PNG"),
    "palette": lambda p: _pillow(p, Image.fromarray(_pixels(3)).quantize(16), "PNG"),
    "palette with transparency": lambda p: _pillow(p, Image.fromarray(_pixels(3)).quantize(16), "PNG",
                                                   transparency=3),
    "2-bit palette": lambda p: _pillow(p, Image.fromarray(_pixels(3)).quantize(4), "PNG", bits=2),
    "1-bit gray (Pillow mode 1)": lambda p: _pillow(p, Image.fromarray(_pixels(1) > 127), "PNG"),
    "gray with a transparent value": lambda p: _pillow(p, Image.fromarray(_pixels(1)), "PNG", transparency=7),
    "RGB with a transparent colour": lambda p: _pillow(p, Image.fromarray(_pixels(3)), "PNG",
                                                       transparency=(1, 2, 3)),
    "metadata chunks (text, gamma, EXIF rotation)": lambda p: _pillow(
        p, Image.fromarray(_pixels(3)), "PNG", exif=_exif(6),
        pnginfo=_text_info(), dpi=(300, 300)),
    "IDAT split into many chunks": lambda p: _write(p, _split_idat(_opencv(p, _pixels(3)).read_bytes())),
    "bytes after IEND": lambda p: _write(p, _opencv(p, _pixels(1)).read_bytes() + b"trailing"),
}


def _text_info():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "test")
    return info


def _split_idat(png: bytes) -> bytes:
    """The PNG with its compressed data spread over 7-byte IDAT chunks (as streaming encoders write them)."""
    start = png.index(b"IDAT") - 4
    length = int.from_bytes(png[start : start + 4], "big")
    data = png[start + 8 : start + 8 + length]
    pieces = b"".join(_chunk(b"IDAT", data[i : i + 7]) for i in range(0, len(data), 7))
    return png[:start] + pieces + png[start + 12 + length :]


@pytest.mark.parametrize("case", list(PNG_FILES))
def test_png_size_is_read_from_its_header_and_is_the_decoded_size(tmp_path, case):
    path = PNG_FILES[case](tmp_path / "image.png")
    expected = _decoded_size(path)
    assert expected == (H, W)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imageio, "_read_raw", lambda p, **_: pytest.fail(f"{case}: decoded"))
        assert image_size(path) == expected


def _jpeg_with_thumbnail_first(path: Path) -> Path:
    """A JPEG whose first segment (APP1) embeds a whole smaller JPEG, as an EXIF thumbnail does: its frame
    header comes before the image's own."""
    thumbnail = _opencv(path.with_name("thumb.jpg"), _pixels(3, shape=(8, 16))).read_bytes()
    main = _opencv(path, _pixels(3)).read_bytes()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + thumbnail
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    path.write_bytes(main[:2] + segment + main[2:])
    return path


def _jpeg_with_fill_bytes(path: Path) -> Path:
    """Fill bytes (0xFF) before the frame header's marker, which the standard allows."""
    data = _opencv(path, _pixels(3)).read_bytes()
    sof = data.index(b"\xff\xc0")
    path.write_bytes(data[:sof] + b"\xff\xff\xff" + data[sof:])
    return path


JPEG_FILES = {
    "colour": lambda p: _opencv(p, _pixels(3)),
    "gray": lambda p: _opencv(p, _pixels(1)),
    "progressive": lambda p: _opencv(p, _pixels(3), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "restart markers": lambda p: _opencv(p, _pixels(3), cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
    "no chroma subsampling": lambda p: _pillow(p, Image.fromarray(_pixels(3)), "JPEG", subsampling=0),
    "4:2:0, quality 30": lambda p: _pillow(p, Image.fromarray(_pixels(3)), "JPEG", subsampling=2, quality=30),
    **{f"EXIF orientation {o}": (lambda p, o=o: _pillow(p, Image.fromarray(_pixels(3)), "JPEG", exif=_exif(o)))
       for o in (3, 5, 6, 8)},
    "ICC profile over several segments": lambda p: _pillow(p, Image.fromarray(_pixels(3)), "JPEG",
                                                            icc_profile=bytes(range(256)) * 600),
    "a thumbnail's frame header first": _jpeg_with_thumbnail_first,
    "fill bytes before a marker": _jpeg_with_fill_bytes,
    "standalone markers (TEM, RST3) before the frame header": lambda p: _write(
        p, (data := _opencv(p, _pixels(3)).read_bytes())[:2] + b"\xff\x01\xff\xd3" + data[2:]),
}


@pytest.mark.parametrize("case", list(JPEG_FILES))
def test_jpeg_size_is_read_from_its_frame_header_and_is_the_decoded_size(tmp_path, case):
    path = JPEG_FILES[case](tmp_path / "image.jpg")
    expected = _decoded_size(path)
    assert expected == (H, W)  # EXIF orientation 5-8 would be (W, H) had the decoder applied it
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imageio, "_read_raw", lambda p, **_: pytest.fail(f"{case}: decoded"))
        assert image_size(path) == expected


def test_exif_rotated_jpeg_keeps_its_stored_size_as_every_reader_does(tmp_path):
    # OpenCV's imread rotates by EXIF by default; every reader here uses IMREAD_UNCHANGED, which does not.
    path = _pillow(tmp_path / "rotated.jpg", Image.fromarray(_pixels(3)), "JPEG", exif=_exif(6))
    assert cv2.imread(str(path)).shape[:2] == (W, H)
    assert image_size(path) == imageio.read_image(path).shape[:2] == (H, W)


TIFF_FILES = {
    "gray": lambda p: tifffile.imwrite(p, _pixels(1)),
    "RGB": lambda p: tifffile.imwrite(p, _pixels(3), photometric="rgb"),
    "RGB planar": lambda p: tifffile.imwrite(p, np.moveaxis(_pixels(3), -1, 0), photometric="rgb",
                                             planarconfig="separate"),
    "16 bit": lambda p: tifffile.imwrite(p, _pixels(1, np.uint16)),
    "float32": lambda p: tifffile.imwrite(p, _pixels(1, np.float32)),
    "bool (1 bit)": lambda p: tifffile.imwrite(p, _pixels(1) > 127),
    "tiled": lambda p: tifffile.imwrite(p, _pixels(1, shape=(64, 96)), tile=(32, 32)),
    "two pages (the first is read)": lambda p: tifffile.imwrite(p, np.stack([_pixels(1), _pixels(1)])),
    "with an orientation tag": lambda p: tifffile.imwrite(p, _pixels(1), extratags=[(274, 3, 1, 6, True)]),
}


@pytest.mark.parametrize("case", list(TIFF_FILES))
def test_uncompressed_tiff_size_is_read_from_its_header_and_is_the_decoded_size(tmp_path, case):
    path = tmp_path / "image.tif"
    TIFF_FILES[case](path)
    expected = _decoded_size(path)
    assert expected == ((64, 96) if case == "tiled" else (H, W))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imageio, "_read_raw", lambda p, **_: pytest.fail(f"{case}: decoded"))
        assert image_size(path) == expected


DECODED_FILES = {
    "BMP": lambda p: _opencv(p.with_suffix(".bmp"), _pixels(3)),
    "deflate TIFF": lambda p: tifffile.imwrite(p.with_suffix(".tif"), _pixels(3), compression="zlib")
    or p.with_suffix(".tif"),
    "palette TIFF": lambda p: tifffile.imwrite(p.with_suffix(".tif"), _pixels(1), photometric="palette",
                                               colormap=np.zeros((3, 256), np.uint16)) or p.with_suffix(".tif"),
    "CMYK JPEG": lambda p: _pillow(p.with_suffix(".jpg"), Image.fromarray(_pixels(4), "CMYK"), "JPEG"),
    "PNG with an unknown critical chunk": lambda p: _write(
        p.with_suffix(".png"), _insert_png_chunk(_opencv(p.with_suffix(".png"), _pixels(1)).read_bytes(),
                                                 _chunk(b"ZZZZ", b"?"))),
    "PNG with a palette in a gray file": lambda p: _write(
        p.with_suffix(".png"), _insert_png_chunk(_opencv(p.with_suffix(".png"), _pixels(1)).read_bytes(),
                                                 _chunk(b"PLTE", bytes(6)))),
    "PNG without an IHDR chunk": lambda p: _write(
        p.with_suffix(".png"), _header_renamed(_opencv(p.with_suffix(".png"), _pixels(1)).read_bytes())),
    "PNG named .jpg": lambda p: _opencv(p.with_suffix(".png"), _pixels(1)).rename(p.with_suffix(".jpg")),
    "4-bit TIFF (tifffile unpacks it only with imagecodecs)": lambda p: _packed_tiff(p.with_suffix(".tif"), 4),
}


def _packed_tiff(path: Path, bits: int) -> Path:
    """An uncompressed TIFF of ``bits``-bit gray samples, rows packed and padded to whole bytes: written by tifffile
    as bytes, then given its true width and depth (tifffile packs only with imagecodecs)."""
    values = _pixels(1) >> (8 - bits)
    bit_rows = ((values[:, :, None] >> np.arange(bits - 1, -1, -1)) & 1).reshape(H, -1)
    tifffile.imwrite(path, np.packbits(bit_rows, axis=1))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages.first.tags["ImageWidth"].overwrite(W)
        tif.pages.first.tags["BitsPerSample"].overwrite(bits)
    return path


def _header_renamed(png: bytes) -> bytes:
    """``png`` with its first chunk, IHDR, named IHDX (an unknown critical chunk, its checksum right): a PNG
    without a header chunk, whatever its IHDX holds."""
    length = int.from_bytes(png[8:12], "big")
    assert png[12:16] == b"IHDR"
    return png[:8] + _chunk(b"IHDX", png[16 : 16 + length]) + png[20 + length :]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(DECODED_FILES))
def test_other_and_unusual_files_get_the_decoded_size(tmp_path, case):
    path = DECODED_FILES[case](tmp_path / "image")
    try:
        expected = _decoded_size(path)
    except InputError as error:  # then image_size gives the same error
        with pytest.raises(InputError) as raised:
            image_size(path)
        assert str(raised.value) == str(error)
        return
    assert image_size(path) == expected


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flipped_pixel_byte(data: bytes) -> bytes:
    at = data.index(b"IDAT") + 10
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


DAMAGED = {
    "truncated PNG": ("png", _truncated, "truncated PNG"),
    "PNG failing a checksum": ("png", _flipped_pixel_byte, "checksum of its 'IDAT' chunk"),
    "PNG signature only": ("png", lambda d: d[:8], "truncated PNG"),
    "JPEG cut after its headers": ("jpg", lambda d: d[:200], "corrupt"),
    "truncated JPEG": ("jpg", _truncated, "corrupt"),
    "JPEG without its end marker": ("jpg", lambda d: d[:-2], "corrupt"),
    "truncated TIFF": ("tif", _truncated, "corrupt"),
    "empty file": ("png", lambda d: b"", "file is empty (0 bytes)"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_image_is_the_error_decoding_gives(tmp_path, case):
    suffix, damage, words = DAMAGED[case]
    path = tmp_path / f"image.{suffix}"
    if suffix == "tif":
        tifffile.imwrite(path, _pixels(3), photometric="rgb")
    else:
        _opencv(path, _pixels(3), *((cv2.IMWRITE_JPEG_QUALITY, 100) if suffix == "jpg" else ()))
    path.write_bytes(damage(path.read_bytes()))
    try:
        expected = _decoded_size(path)
    except InputError as error:
        with pytest.raises(InputError) as raised:
            image_size(path)
        assert str(raised.value) == str(error)
        assert raised.value.path == path and words in str(raised.value)
    else:  # OpenCV 4 decodes a truncated JPEG (gray below the cut) where OpenCV 5 refuses it: the same size
        assert suffix == "jpg" and image_size(path) == expected


def test_a_missing_image_is_not_found(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        image_size(tmp_path / "gone.png")


def test_png_beyond_opencvs_limits_is_decoding_s_error(tmp_path):
    # 32769 x 32768 px declared in a few bytes: OpenCV refuses it before decoding, and so does image_size.
    rows = zlib.compress(bytes(2 * 32770))
    header = (32769).to_bytes(4, "big") + (32768).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path = _write(tmp_path / "panorama.png", b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
                  + _chunk(b"IEND", b""))
    with pytest.raises(InputError, match=r"2\*\*30 pixels"):
        image_size(path)


def test_opencvs_pixel_limit_from_the_environment_is_honoured(tmp_path, monkeypatch):
    path = _opencv(tmp_path / "image.png", _pixels(1))
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(H * W - 1))
    assert imageio._header_size(path) is None  # left to the decoder, which reads the setting at its start
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(H * W))
    assert imageio._header_size(path) == (H, W)


def test_jpeg_frame_header_parser_on_hand_made_streams():
    sof = b"\xff\xc0\x00\x11\x08" + (300).to_bytes(2, "big") + (200).to_bytes(2, "big") + bytes(12)
    app = b"\xff\xe0\x00\x06abcd"
    assert imageio._jpeg_frame_size(b"\xff\xd8" + app + sof) == (300, 200)
    assert imageio._jpeg_frame_size(b"\xff\xd8" + b"\xff\xc2" + sof[2:]) == (300, 200)  # progressive (SOF2)
    assert imageio._jpeg_frame_size(b"\xff\xd8" + sof[:5] + bytes(2) + sof[7:]) is None  # height from a DNL marker
    assert imageio._jpeg_frame_size(b"\xff\xd8" + b"\xff\xda\x00\x02" + sof) is None  # scan data before the frame
    assert imageio._jpeg_frame_size(b"\xff\xd8" + b"\xff\xe0\x00\x60abcd" + sof) is None  # a segment past the end
    assert imageio._jpeg_frame_size(b"\xff\xd8" + b"\x00" + sof) is None  # not a marker where one must be
    assert imageio._jpeg_frame_size(b"\x89PNG" + sof) is None
    # DHT (0xC4), JPG (0xC8) and DAC (0xCC) share the 0xCn range but are not frame headers.
    for marker in (b"\xc4", b"\xc8", b"\xcc"):
        assert imageio._jpeg_frame_size(b"\xff\xd8\xff" + marker + b"\x00\x06" + bytes(4) + sof) == (300, 200)


def test_pillow_writes_what_opencv_decodes_to_the_same_size_across_sizes(tmp_path):
    # A sweep over small sizes (1 px sides, every remainder modulo 8): header and decoder agree everywhere.
    for height, width in [(1, 1), (1, 9), (9, 1), (8, 8), (15, 17), (23, 2)]:
        image = Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for fmt in ("PNG", "JPEG"):
            buffer = io.BytesIO()
            image.save(buffer, fmt)
            path = _write(tmp_path / f"{height}x{width}.{fmt.lower()}", buffer.getvalue())
            assert imageio._header_size(path) == _decoded_size(path) == (height, width)


def _set_tiff_tag(path: Path, code: int, value: int) -> None:
    """Overwrite the (SHORT or LONG) value of tag ``code`` of a TIFF's first page in place."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags[code]
        offset, byteorder = tag.valueoffset, tif.byteorder
        size = {3: 2, 4: 4}[int(tag.dtype)]  # SHORT, LONG
    data = bytearray(path.read_bytes())
    data[offset : offset + size] = value.to_bytes(size, "little" if byteorder == "<" else "big")
    path.write_bytes(bytes(data))


def _jpeg_with_sampling(path: Path, component: int, factors: int) -> Path:
    """An OpenCV 4:1:1 JPEG whose frame header gives ``component`` other sampling factors."""
    data = bytearray(_opencv(path, _pixels(3), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, 0x411111).read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 11 + 3 * component] = factors
    return _write(path, bytes(data))


def _tiff_with_tag(path: Path, array: np.ndarray, code: int, value: int, **options) -> Path:
    tifffile.imwrite(path, array, **options)
    _set_tiff_tag(path, code, value)
    return path


# Files whose headers look plain but that decoding refuses (found by differential fuzzing): image_size must give
# decoding's error, not the header's size.
REFUSED_BEHIND_PLAIN_HEADERS = {
    "JPEG whose colour component has a fractional sampling ratio": ("jpg", lambda p: _jpeg_with_sampling(p, 1, 0x31)),
    "TIFF one column wider than its strip holds": ("tif", lambda p: _tiff_with_tag(p, _pixels(1), 256, W + 1)),
    "TIFF with tiles of no height": ("tif", lambda p: _tiff_with_tag(p, _pixels(1, shape=(64, 96)), 323, 0,
                                                                     tile=(32, 32))),
    "TIFF of 8-bit floats (a sample type tifffile does not read)": (
        "tif", lambda p: _tiff_with_tag(p, _pixels(1).astype(np.int8), 339, 3)),
    "PNG whose header gives gray samples of 3 bits": ("png", lambda p: _write(p, _with_ihdr_depth(
        _opencv(p, _pixels(1)).read_bytes(), 3))),
    "palette PNG whose palette is not whole colours": ("png", lambda p: _write(p, _with_chunk(
        _pillow(p, Image.fromarray(_pixels(3)).quantize(16), "PNG").read_bytes(), b"PLTE", bytes(4)))),
}


def _with_ihdr_depth(png: bytes, depth: int) -> bytes:
    """``png`` with the bit depth in its header (IHDR, the first chunk) replaced, its checksum right."""
    header = bytearray(png[16:29])
    header[8] = depth
    return png[:8] + _chunk(b"IHDR", bytes(header)) + png[33:]


def _with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """``png`` with its first ``kind`` chunk holding ``data`` instead, its checksum right."""
    start = png.index(kind) - 4
    end = start + 12 + int.from_bytes(png[start : start + 4], "big")
    return png[:start] + _chunk(kind, data) + png[end:]


@pytest.mark.parametrize("case", list(REFUSED_BEHIND_PLAIN_HEADERS))
def test_a_file_decoding_refuses_behind_a_plain_header_is_decoding_s_error(tmp_path, case):
    suffix, make = REFUSED_BEHIND_PLAIN_HEADERS[case]
    path = make(tmp_path / f"image.{suffix}")
    with pytest.raises(InputError) as decoding:
        _decoded_size(path)
    with pytest.raises(InputError) as raised:
        image_size(path)
    assert str(raised.value) == str(decoding.value)


def test_jpeg_frame_header_parser_stops_where_a_segment_cannot_be_read():
    sof = b"\xff\xc0\x00\x11\x08" + (300).to_bytes(2, "big") + (200).to_bytes(2, "big") + bytes(12)
    assert imageio._jpeg_frame_size(b"\xff\xd8" + b"\xff" * 6) is None  # fill bytes up to the end, no marker
    # A frame header whose length (5) leaves out the width: the bytes after it are not its width.
    assert imageio._jpeg_frame_size(b"\xff\xd8\xff\xc0\x00\x05\x08\x01\x2c" + b"\x00\xc8" + bytes(8)) is None
    assert imageio._jpeg_frame_size(b"\xff\xd8" + b"\xff\xd0" + sof) == (300, 200)  # RST0: a marker of no length


def test_an_opencv_limit_that_does_not_parse_leaves_the_size_to_decoding(tmp_path, monkeypatch):
    # Set after OpenCV started (which reads the variables once, and stops at its start on such a value): the
    # header is not trusted against a limit it cannot read, and decoding gives the size.
    path = _opencv(tmp_path / "image.png", _pixels(1))
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "4G")
    assert imageio._header_size(path) is None
    assert image_size(path) == (H, W)
