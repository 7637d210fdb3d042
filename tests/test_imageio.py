"""TIFF files as a viewer shows them: compressions tifffile cannot decode alone, palettes, MinIsWhite,
planar samples, alpha and multi-page files (images, masks and anomaly maps)."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from adbench_hr.errors import InputError
from adbench_hr.imageio import read_image, read_mask
from adbench_hr.maps import read_map

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (24, 40), dtype=np.uint8)


def _lzw_written_by_opencv(path: Path, array: np.ndarray) -> Path:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array, [cv2.IMWRITE_TIFF_COMPRESSION, 5])  # 5 = LZW
    with tifffile.TiffFile(path) as tif:
        compression = tif.pages.first.compression
    if compression != tifffile.COMPRESSION.LZW and array.dtype == np.float32:
        pytest.skip(f"OpenCV {cv2.__version__} writes float32 TIFF uncompressed (4.14 and later use LZW)")
    assert compression == tifffile.COMPRESSION.LZW
    return path


def test_lzw_image_mask_and_map_are_decoded(tmp_path):
    assert np.array_equal(read_image(_lzw_written_by_opencv(tmp_path / "image.tif", RGB)), RGB)
    mask = np.zeros((24, 40), np.uint8)
    mask[3:6, 10:14] = 255
    assert np.array_equal(read_mask(_lzw_written_by_opencv(tmp_path / "mask.tiff", mask)), mask > 0)
    values = RNG.normal(size=(24, 40)).astype(np.float32)
    assert np.array_equal(read_map(_lzw_written_by_opencv(tmp_path / "map.tiff", values)), values)


def test_palette_tiff_gives_colours_for_images_and_indices_for_masks(tmp_path):
    indices = RNG.integers(0, 4, (24, 40), dtype=np.uint8)
    colours = np.zeros((256, 3), np.uint8)
    colours[:4] = [[0, 0, 0], [200, 10, 30], [5, 250, 60], [90, 80, 255]]
    colormap = colours.T.astype(np.uint16) * 257  # TIFF stores 16-bit colour values
    path = tmp_path / "palette.tif"
    tifffile.imwrite(path, indices, photometric="palette", colormap=colormap)
    assert np.array_equal(read_image(path), colours[indices])
    assert np.array_equal(read_mask(path), indices > 0)


def test_miniswhite_tiff_is_inverted_to_what_is_displayed(tmp_path):
    path = tmp_path / "white.tif"
    tifffile.imwrite(path, 255 - GRAY, photometric="miniswhite")
    assert np.array_equal(read_image(path), np.repeat(GRAY[:, :, None], 3, axis=2))


def test_float_and_signed_miniswhite_tiffs_read_as_stored(tmp_path):
    # Inversion needs the samples' maximum, which only unsigned integers have: float and signed MinIsWhite
    # samples are read as stored, as OpenCV (4.x) and Pillow decode them, not negated or clipped.
    from adbench_hr.imageio import read_tiff

    for name, values in (("float.tif", np.array([[0.0, 0.25], [0.75, 1.0]], np.float32)),
                         ("signed.tif", np.array([[-5, 0], [100, 300]], np.int16))):
        tifffile.imwrite(tmp_path / name, values, photometric="miniswhite")
        read = read_tiff(tmp_path / name)
        assert read.dtype == values.dtype and read.tolist() == values.tolist(), name


def test_planar_separate_and_alpha_tiffs(tmp_path):
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(RGB, 2, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_image(planar), RGB)
    gray_alpha = tmp_path / "la.tif"
    alpha = np.full_like(GRAY, 255)
    tifffile.imwrite(gray_alpha, np.dstack([GRAY, alpha]), photometric="minisblack", extrasamples=["unassalpha"])
    assert np.array_equal(read_image(gray_alpha), np.repeat(GRAY[:, :, None], 3, axis=2))
    mask = (GRAY > 128).astype(np.uint8) * 255
    mask_alpha = tmp_path / "mask_la.tif"
    tifffile.imwrite(mask_alpha, np.dstack([mask, alpha]), photometric="minisblack", extrasamples=["unassalpha"])
    assert np.array_equal(read_mask(mask_alpha), mask > 0)


def test_multipage_tiff_image_reads_page_one_but_masks_and_maps_refuse(tmp_path):
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(GRAY)
        tif.write(255 - GRAY)
    assert np.array_equal(read_image(path)[:, :, 0], GRAY)
    with pytest.raises(InputError, match="2 pages") as mask_error:
        read_mask(path)
    assert str(path) in str(mask_error.value)
    with pytest.raises(InputError, match="2 pages"):
        read_map(path)


def test_corrupt_tiff_is_still_one_error_naming_the_file(tmp_path):
    path = _lzw_written_by_opencv(tmp_path / "cut.tif", RGB)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InputError, match="unreadable or corrupt") as error:
        read_image(path)
    assert str(path) in str(error.value)


def test_masks_with_an_alpha_channel(tmp_path):
    mask = np.zeros((24, 40), np.uint8)
    mask[4:9, 5:15] = 255
    opaque = np.full_like(mask, 255)
    # RGBA with an opaque alpha: the gray values are the mask.
    path = tmp_path / "opaque.png"
    cv2.imwrite(str(path), np.dstack([mask, mask, mask, opaque]))
    assert np.array_equal(read_mask(path), mask > 0)
    # Alpha agreeing with the gray values is fine too.
    path = tmp_path / "agree.png"
    cv2.imwrite(str(path), np.dstack([mask, mask, mask, mask]))
    assert np.array_equal(read_mask(path), mask > 0)
    # Drawn only in the alpha channel (black, or white, colours): refused rather than read as empty or full.
    for colour in (0, 255):
        path = tmp_path / f"alpha_only_{colour}.png"
        flat = np.full_like(mask, colour)
        cv2.imwrite(str(path), np.dstack([flat, flat, flat, mask]))
        with pytest.raises(InputError, match="alpha channel"):
            read_mask(path)
    path = tmp_path / "alpha_only.tif"
    gray_alpha = np.dstack([np.zeros_like(mask), mask])
    tifffile.imwrite(path, gray_alpha, photometric="minisblack", extrasamples=["unassalpha"])
    with pytest.raises(InputError, match="alpha channel"):
        read_mask(path)


def _lzw_written_by_pil(path: Path, array: np.ndarray, orientation: int = 1, palette=None) -> Path:
    from PIL import Image

    image = Image.fromarray(array)
    if palette is not None:
        image = image.convert("P") if image.mode != "P" else image
        image.putpalette(list(np.asarray(palette, np.uint8).ravel()) + [0] * (768 - 3 * len(palette)))
    image.save(path, compression="tiff_lzw", tiffinfo={274: orientation})
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression == tifffile.COMPRESSION.LZW
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_tag_is_ignored_whatever_the_compression(tmp_path, orientation):
    # Stored pixel order, as tifffile and PNG/JPEG reading give it: image, mask and map stay aligned.
    compressed = _lzw_written_by_pil(tmp_path / "rgb.tif", RGB, orientation)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, RGB, photometric="rgb")
    assert np.array_equal(read_image(compressed), read_image(plain))
    mask = np.zeros((24, 40), np.uint8)
    mask[2:5, 30:38] = 255
    assert np.array_equal(read_mask(_lzw_written_by_pil(tmp_path / "mask.tif", mask, orientation)), mask > 0)


def test_palette_masks_black_is_background_whatever_its_index(tmp_path):
    mask = np.zeros((24, 40), np.uint8)
    mask[4:9, 5:15] = 1
    # Label mask: index 0 black, defect index in colour (VisA); any compression.
    label = [[0, 0, 0], [200, 30, 30]]
    plain = tmp_path / "label.tif"
    tifffile.imwrite(plain, mask, photometric="palette", colormap=np.array(label + [[0, 0, 0]] * 254).T * 257)
    assert np.array_equal(read_mask(plain), mask > 0)
    assert np.array_equal(read_mask(_lzw_written_by_pil(tmp_path / "label_lzw.tif", mask, palette=label)), mask > 0)
    # White first, black second, as PIL's quantize writes a black-and-white mask: black is the background.
    from PIL import Image

    binary = Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8)).convert("RGB").quantize(2)
    assert binary.getpalette()[:3] == [255, 255, 255]
    binary.save(tmp_path / "quantized.png")
    assert np.array_equal(read_mask(tmp_path / "quantized.png"), mask > 0)
    swapped = 1 - mask  # index 0 (white) on the defect, index 1 (black) elsewhere
    lzw = _lzw_written_by_pil(tmp_path / "swapped_lzw.tif", swapped, palette=[[255, 255, 255], [0, 0, 0]])
    assert np.array_equal(read_mask(lzw), mask > 0)
    # No black at all: which colour is the background is a guess, so refuse.
    with pytest.raises(InputError, match="palette mask without black"):
        read_mask(_lzw_written_by_pil(tmp_path / "no_black.tif", swapped, palette=[[255, 255, 255], [9, 9, 200]]))


def test_palette_bmp_masks_read_as_label_masks(tmp_path):
    # Before: cv2 expanded the palette to colours and the mask was refused as "not single-channel".
    from PIL import Image

    labels = np.zeros((24, 40), np.uint8)
    labels[4:9, 5:15] = 1
    labels[20, 30:33] = 2
    image = Image.fromarray(labels, "P")
    image.putpalette([0, 0, 0, 200, 30, 30, 30, 200, 30])  # VisA-style: black background, coloured labels
    image.save(tmp_path / "label.bmp")
    assert cv2.imread(str(tmp_path / "label.bmp"), cv2.IMREAD_UNCHANGED).shape == (24, 40, 3)
    assert np.array_equal(read_mask(tmp_path / "label.bmp"), labels > 0)
    # White first, as image tools reduce a black-and-white mask: black is the background.
    swapped = Image.fromarray((labels == 0).astype(np.uint8), "P")
    swapped.putpalette([255, 255, 255, 0, 0, 0])
    swapped.save(tmp_path / "swapped.bmp")
    assert np.array_equal(read_mask(tmp_path / "swapped.bmp"), labels > 0)
    # A true-colour BMP whose channels differ is still not a mask.
    cv2.imwrite(str(tmp_path / "colour.bmp"), np.dstack([labels * 100, labels * 50, labels]))
    with pytest.raises(InputError, match="must be single-channel"):
        read_mask(tmp_path / "colour.bmp")


def test_bool_mask_written_by_tifffile_round_trips(tmp_path):
    mask = np.zeros((24, 40), bool)
    mask[3:7, 2:9] = True
    path = tmp_path / "bool_mask.tif"
    tifffile.imwrite(path, mask)  # tifffile stores bool as 1-bit MinIsWhite
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.photometric == tifffile.PHOTOMETRIC.MINISWHITE
    assert np.array_equal(read_mask(path), mask)
    other = tmp_path / "other_writer.tif"  # the same file from another writer means what a viewer shows
    tifffile.imwrite(other, mask, software="scanner")
    assert np.array_equal(read_mask(other), ~mask)


def test_maps_are_values_as_stored_so_miniswhite_and_palette_maps_are_refused(tmp_path):
    values = (GRAY.astype(np.uint16) * 200).astype(np.uint16)
    path = tmp_path / "white.tiff"
    tifffile.imwrite(path, values, photometric="miniswhite")
    with pytest.raises(InputError, match="MinIsWhite TIFF"):
        read_map(path)
    path = tmp_path / "palette.tiff"
    tifffile.imwrite(path, GRAY, photometric="palette", colormap=np.tile(np.arange(256, dtype=np.uint16), (3, 1)))
    with pytest.raises(InputError, match="palette TIFF"):
        read_map(path)
    wide = tmp_path / "wide.npy"
    np.save(wide, np.array([[2**60, 2**60 + 1]], np.int64))
    with pytest.raises(InputError, match="beyond 2\\*\\*53"):
        read_map(wide)


def _bool_lzw_written_by_tifffile(path: Path, mask: np.ndarray) -> Path:
    """``tifffile.imwrite(path, mask, compression="lzw")``, which needs imagecodecs, absent here: an LZW strip of
    the same bits from Pillow, written by tifffile as it would (1-bit MinIsWhite, Software tifffile.py)."""
    from PIL import Image

    Image.fromarray(mask).save(path.with_suffix(".pil.tif"), compression="tiff_lzw")
    with tifffile.TiffFile(path.with_suffix(".pil.tif")) as tif:
        page = tif.pages.first
        tif.filehandle.seek(page.dataoffsets[0])
        strip = tif.filehandle.read(page.databytecounts[0])
    tifffile.imwrite(path, iter([strip]), shape=mask.shape, dtype=bool, compression="zlib",
                     photometric="miniswhite", rowsperstrip=mask.shape[0])
    with tifffile.TiffFile(path) as tif:  # the strip is LZW: correct the Compression tag (8 -> 5)
        offset = tif.pages.first.tags[259].valueoffset
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write((5).to_bytes(2, "little"))
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression == tifffile.COMPRESSION.LZW
        assert tif.pages.first.software == "tifffile.py"
    return path


def test_bool_map_written_by_tifffile_reads_as_its_stored_zeros_and_ones(tmp_path):
    # tifffile stores bool arrays as 1-bit MinIsWhite: its stored bits are the values meant, as for masks.
    bits = GRAY > 128
    plain = tmp_path / "bool.tiff"
    tifffile.imwrite(plain, bits)
    compressed = _bool_lzw_written_by_tifffile(tmp_path / "bool_lzw.tiff", bits)  # decoded by OpenCV
    for path in (plain, compressed):
        values = read_map(path)
        assert values.dtype == np.float32 and set(np.unique(values)) == {0.0, 1.0}
        assert np.array_equal(values, np.where(bits, 1.0, 0.0)), path.name
    # The same bits from another writer mean what a viewer shows (black = 1): refused, as 8-bit MinIsWhite is.
    other = tmp_path / "other_writer.tiff"
    tifffile.imwrite(other, bits, software="scanner")
    with pytest.raises(InputError, match="MinIsWhite TIFF: its displayed values differ from the stored ones"):
        read_map(other)


def test_a_channels_last_array_saved_as_pages_gets_a_hint(tmp_path):
    two_channels = tmp_path / "two.tiff"
    tifffile.imwrite(two_channels, np.zeros((24, 40, 2), np.float32))  # stored as 24 pages of 40 x 2
    with pytest.raises(InputError) as error:
        read_map(two_channels)
    assert error.value.problem == ("TIFF file has 24 pages; expected a single image (an (H, W, C) array may have "
                                   "been saved as H pages of W x C, here 40 x 2)")
    stack = tmp_path / "stack.tiff"  # two maps of full size: no such hint
    tifffile.imwrite(stack, np.zeros((2, 24, 40), np.float32))
    with pytest.raises(InputError) as error:
        read_mask(stack)
    assert error.value.problem == "TIFF file has 2 pages; expected a single image"


@pytest.mark.parametrize("damage", ["truncate", "flip a byte"])
def test_damaged_png_is_one_error_and_nothing_else_on_stderr(tmp_path, capfd, damage):
    path = tmp_path / "image.png"
    assert cv2.imwrite(str(path), RGB)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-12]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    capfd.readouterr()
    for read in (read_image, read_mask, read_map):
        with pytest.raises(InputError, match="truncated PNG" if damage == "truncate" else "checksum") as error:
            read(path)
        assert str(path) in str(error.value)
    assert capfd.readouterr().err == ""  # libpng did not get to print its own complaint


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _png_with(png: bytes, kind: bytes, data: bytes | None) -> bytes:
    """``png`` with its first ``kind`` chunk holding ``data`` (checksum right), inserted after IHDR if it has none,
    left out for ``None``."""
    start = png.find(kind) - 4
    if start < 0:
        start = end = 8 + 12 + 13
    else:
        end = start + 12 + int.from_bytes(png[start : start + 4], "big")
    return png[:start] + (b"" if data is None else _png_chunk(kind, data)) + png[end:]


def _png_header_with(png: bytes, offset: int, value: bytes) -> bytes:
    """``png`` with ``value`` at ``offset`` of its 13-byte header (width 0, height 4, depth 8, colour type 9,
    compression 10, filter 11, interlace 12)."""
    header = bytearray(png[16:29])
    header[offset : offset + len(value)] = value
    return _png_with(png, b"IHDR", bytes(header))


def _png_of(array: np.ndarray, **pillow_options) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **pillow_options)
    return buffer.getvalue()


GRAY_PNG = _png_of(RGB[:, :, 0])


def _palette_png() -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(RGB).quantize(16).save(buffer, "PNG")
    return buffer.getvalue()


def _first_data_byte_zero(png: bytes) -> bytes:
    start = png.index(b"IDAT") - 4
    data = png[start + 8 : start + 8 + int.from_bytes(png[start : start + 4], "big")]
    return _png_with(png, b"IDAT", b"\x00" + data[1:])


# Files whose chunks are whole and checksummed but whose header, palette or data stream libpng refuses, after
# printing its own "libpng warning/error" lines on stderr.
REFUSED_PNGS = {
    "a bit depth its colour type lacks": (lambda: _png_header_with(GRAY_PNG, 8, b"\x03"),
                                          "its header gives a bit depth of 3, which colour type 0 does not have"),
    "an unknown colour type": (lambda: _png_header_with(GRAY_PNG, 9, b"\x05"),
                               "its header gives the unknown colour type 5"),
    "an unknown filter method": (lambda: _png_header_with(GRAY_PNG, 11, b"\x01"),
                                 "its header gives an unknown compression, filter or interlace method"),
    "an unknown interlace method": (lambda: _png_header_with(GRAY_PNG, 12, b"\x02"),
                                    "its header gives an unknown compression, filter or interlace method"),
    "a width of zero": (lambda: _png_header_with(GRAY_PNG, 0, bytes(4)), "its header gives a size of 0 x 24 px"),
    "a palette that is not whole colours": (lambda: _png_with(_palette_png(), b"PLTE", bytes(4)),
                                            "invalid palette (PLTE chunk)"),
    "a palette image without its palette": (lambda: _png_with(_palette_png(), b"PLTE", None),
                                            "a palette image without a palette (PLTE chunk) before its data"),
    "pixel data that is no zlib stream": (lambda: _first_data_byte_zero(GRAY_PNG),
                                          "its image data (IDAT) is no zlib stream"),
    "no pixel data": (lambda: _png_with(GRAY_PNG, b"IDAT", None), "no image data (IDAT chunk)"),
}


@pytest.mark.parametrize("case", list(REFUSED_PNGS))
def test_a_png_libpng_refuses_is_one_error_and_nothing_else_on_stderr(tmp_path, capfd, case):
    from adbench_hr.imageio import image_size

    make, problem = REFUSED_PNGS[case]
    path = tmp_path / "image.png"
    path.write_bytes(make())
    capfd.readouterr()
    for read in (read_image, read_mask, read_map, image_size):
        with pytest.raises(InputError) as error:
            read(path)
        assert (error.value.path, error.value.problem) == (path, f"corrupt PNG ({problem})")
    assert capfd.readouterr().err == ""  # libpng did not get to print its own complaint


# Chunks libpng ignores with a warning on stderr: left out, they change no value.
IGNORED_PNG_CHUNKS = {
    "a gray transparency of one byte": (GRAY_PNG, b"tRNS", b"\x07"),
    "a gray transparency beyond the bit depth": (GRAY_PNG, b"tRNS", (300).to_bytes(2, "big")),
    "a colour image's suggested palette that is not whole colours": (_png_of(RGB), b"PLTE", bytes(4)),
    "a transparency in an image with an alpha channel": (_png_of(np.dstack([RGB, RGB[:, :, :1]])), b"tRNS",
                                                        bytes(6)),
}


@pytest.mark.parametrize("case", list(IGNORED_PNG_CHUNKS))
def test_a_chunk_libpng_ignores_is_left_out_quietly(tmp_path, capfd, case):
    from adbench_hr.imageio import image_size

    png, kind, data = IGNORED_PNG_CHUNKS[case]
    plain, odd = tmp_path / "plain.png", tmp_path / "odd.png"
    plain.write_bytes(png)
    odd.write_bytes(_png_with(png, kind, data))
    capfd.readouterr()
    for read in (read_image, image_size):
        np.testing.assert_array_equal(read(odd), read(plain))
    assert capfd.readouterr().err == ""


def test_compressed_bool_mask_written_by_tifffile_round_trips_too(tmp_path):
    mask = np.zeros((64, 48), bool)
    mask[10:20, 5:15] = True
    assert np.array_equal(read_mask(_bool_lzw_written_by_tifffile(tmp_path / "bool_lzw.tif", mask)), mask)


def test_palette_fallback_lookup_is_exact_for_many_colours(tmp_path):
    indices = RNG.integers(0, 200, (60, 80), dtype=np.uint8)
    indices[0, 0] = 0  # black at index 0: the label rule, so the mask is indices > 0
    colours = RNG.integers(1, 256, (256, 3), dtype=np.uint8)
    colours[0] = 0
    colours[150] = colours[20]  # a repeated colour reads as its first index (both > 0 here)
    path = _lzw_written_by_pil(tmp_path / "many.tif", indices, palette=colours)
    assert np.array_equal(read_mask(path), indices > 0)
    from adbench_hr.imageio import read_tiff

    assert np.array_equal(read_tiff(path, palette_indices=True), np.where(indices == 150, 20, indices))


def test_png_with_a_damaged_ancillary_chunk_still_loads_quietly(tmp_path, capfd):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "made by a scanner")
    path = tmp_path / "text.png"
    Image.fromarray(RGB).save(path, pnginfo=info)
    data = bytearray(path.read_bytes())
    start = data.index(b"tEXt")
    data[start + 6] ^= 0xFF  # inside the text: its CRC no longer matches
    path.write_bytes(bytes(data))
    capfd.readouterr()
    assert np.array_equal(read_image(path), RGB)
    assert capfd.readouterr().err == ""  # libpng never saw the chunk, so it printed no warning


@pytest.mark.parametrize(
    ("index", "palette"),
    [(5, [255, 255, 255, 0, 0, 0]), (2, [0, 0, 0, 255, 255, 255])],  # far beyond, and just past, 2 colours
)
def test_palette_mask_using_an_index_beyond_its_palette_is_refused(tmp_path, index, palette):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([0, index, 1, 0]) for _ in range(2))  # written by hand: Pillow pads PLTE
    path = tmp_path / "short_palette.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 8, 3, 0, 0, 0))
                     + chunk(b"PLTE", bytes(palette)) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    with pytest.raises(InputError, match=f"palette mask uses index {index}, beyond its 2 colours"):
        read_mask(path)


def test_cmyk_tiff_reads_as_its_colours_and_other_colour_models_are_refused(tmp_path):
    # Hand-computed: pure magenta + yellow ink is red, full black ink is black, half black is mid-grey.
    inks = np.array([[[0, 255, 255, 0], [0, 0, 0, 255], [0, 0, 0, 128], [255, 0, 0, 0]]], np.uint8)
    path = tmp_path / "cmyk.tif"
    tifffile.imwrite(path, inks, photometric="separated")
    np.testing.assert_array_equal(read_image(path)[0], [[255, 0, 0], [0, 0, 0], [127, 127, 127], [0, 255, 255]])
    # A gray mask converted to CMYK by Pillow (ink on the defect) still reads as that mask.
    from PIL import Image

    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:5] = 255
    Image.fromarray(mask).convert("CMYK").save(tmp_path / "mask.tif")
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.tif"), mask > 0)
    Image.fromarray(RGB).convert("LAB").save(tmp_path / "lab.tif")
    with pytest.raises(InputError, match="TIFF colour model CIELAB is not supported") as info:
        read_image(tmp_path / "lab.tif")
    assert info.value.path == tmp_path / "lab.tif"


def test_float_cmyk_tiff_reads_as_unrounded_colours_in_0_1(tmp_path):
    # Float inks run from 0 to 1: R = (1 - C)(1 - K) and so on, by hand, kept as floats (rounding belongs to
    # integer samples only; it would turn every value here into 0 or 1).
    from adbench_hr.imageio import read_tiff

    inks = np.array([[[0.5, 0.25, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.25]]], np.float32)
    tifffile.imwrite(tmp_path / "cmyk.tif", inks, photometric="separated")
    read = read_tiff(tmp_path / "cmyk.tif")
    assert read.dtype == np.float32
    assert read.tolist() == [[[0.25, 0.375, 0.5], [1.0, 1.0, 1.0], [0.0, 0.75, 0.75]]]


@pytest.mark.parametrize(
    "values, problem",
    [
        (np.array([[0.0, -1.0], [2.0, 0.0]], np.float32), "negative values"),
        (np.array([[0, -3], [5, 0]], np.int16), "negative values"),
        (np.array([[0.0, np.nan], [1.0, 0.0]], np.float32), "NaN or inf"),
    ],
)
def test_masks_with_negative_or_non_finite_values_are_refused(tmp_path, values, problem):
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, values)
    with pytest.raises(InputError, match=problem) as info:
        read_mask(path)
    assert "mask.tif" in str(info.value)


def test_mask_is_any_value_above_zero(tmp_path):
    values = np.array([[0, 1, 2, 127], [128, 254, 255, 0]], np.uint8)
    assert cv2.imwrite(str(tmp_path / "mask.png"), values)
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.png"), values > 0)
    wide = np.array([[0, 1], [300, 65535]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "mask16.png"), wide)
    np.testing.assert_array_equal(read_mask(tmp_path / "mask16.png"), wide > 0)


def test_16_bit_images_are_scaled_to_8_bit_with_rounding(tmp_path):
    levels = np.array([[0, 128, 200, 450], [32767, 32896, 65407, 65535]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "gray16.png"), levels)
    expected = np.round(levels / 257.0).astype(np.uint8)  # 65535 -> 255; 200 -> 1 and 450 -> 2 (nearest level)
    assert expected.tolist() == [[0, 0, 1, 2], [127, 128, 255, 255]]
    np.testing.assert_array_equal(read_image(tmp_path / "gray16.png")[:, :, 0], expected)


def test_float_images_in_0_1_are_scaled_to_0_255(tmp_path):
    values = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)  # a maximum of exactly 1 is still the 0..1 range
    tifffile.imwrite(tmp_path / "float.tif", values)
    np.testing.assert_array_equal(read_image(tmp_path / "float.tif")[:, :, 0], [[0, 64], [128, 255]])
    tifffile.imwrite(tmp_path / "levels.tif", values * 200)  # beyond 1: already levels
    np.testing.assert_array_equal(read_image(tmp_path / "levels.tif")[:, :, 0], [[0, 50], [100, 200]])


def test_palette_tiff_with_8_bit_colour_values_in_its_colormap(tmp_path):
    # Some writers store 0..255 colour values in the 16-bit colormap; they are taken as they are.
    indices = np.array([[0, 1], [2, 1]], np.uint8)
    colours = np.zeros((256, 3), np.uint8)
    colours[:3] = [[0, 0, 0], [255, 10, 30], [5, 250, 60]]
    path = tmp_path / "palette8.tif"
    tifffile.imwrite(path, indices, photometric="palette", colormap=colours.T.astype(np.uint16))
    assert np.array_equal(read_image(path), colours[indices])


def test_colour_masks_must_have_equal_channels(tmp_path):
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1:3, 1:4] = 255
    assert cv2.imwrite(str(tmp_path / "white.png"), mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "white.png"), mask[:, :, 0] > 0)
    mask[0, 0] = [0, 0, 255]  # a red pixel: which channel is the mask?
    assert cv2.imwrite(str(tmp_path / "red.png"), mask)
    with pytest.raises(InputError, match="differing colours"):
        read_mask(tmp_path / "red.png")


def test_gray_and_alpha_png_mask(tmp_path):
    from PIL import Image

    gray = np.zeros((4, 5), np.uint8)
    gray[1:3, 2:4] = 255
    Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "la.png"), gray > 0)


def test_palette_mask_beyond_pillows_decompression_bomb_limit_reads_quietly(tmp_path, monkeypatch, recwarn):
    # Pillow refuses images over twice MAX_IMAGE_PIXELS (about 179 Mpx by default) and warns above it; a
    # 20 x 20 mask under a limit of 100 px stands in for a 15000 x 12000 one.
    from PIL import Image

    mask = np.zeros((20, 20), np.uint8)
    mask[3:6, 4:9] = 1
    image = Image.fromarray(mask, mode="P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    image.save(tmp_path / "mask.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.png"), mask > 0)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored for everyone else
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def _write_packed_tiff(path: Path, values: np.ndarray, bits: int, photometric: str) -> Path:
    """A real TIFF of ``bits``-bit samples (rows packed most significant bit first, each padded to a byte),
    written as bytes and then given its true width and depth: tifffile packs only with ``imagecodecs``."""
    height, width = values.shape
    bit_rows = ((values[:, :, None].astype(np.uint32) >> np.arange(bits - 1, -1, -1)) & 1).reshape(height, -1)
    tifffile.imwrite(path, np.packbits(bit_rows.astype(np.uint8), axis=1), photometric=photometric)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages.first.tags["ImageWidth"].overwrite(width)
        tif.pages.first.tags["BitsPerSample"].overwrite(bits)
    return path


def _unpack_ints(data, dtype, bitspersample, runlen=0, *, out=None):
    """What imagecodecs.packints_decode returns, in plain numpy (rows of ``runlen`` samples, byte-padded)."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, (runlen * bitspersample + 7) // 8 * 8)
    samples = bits[:, : runlen * bitspersample].reshape(-1, bitspersample).astype(np.uint32)
    return (samples << np.arange(bitspersample - 1, -1, -1)).sum(axis=1).astype(dtype)


def test_packed_depths_need_imagecodecs_and_say_so(tmp_path):
    import importlib.util

    if importlib.util.find_spec("imagecodecs") is not None:
        pytest.skip("imagecodecs is installed: packed depths are decoded (the next test's case)")
    path = _write_packed_tiff(tmp_path / "mono4.tif", np.arange(8, dtype=np.uint8).reshape(2, 4), 4, "minisblack")
    with pytest.raises(InputError, match="unreadable or corrupt file .*imagecodecs") as error:
        read_image(path)
    assert error.value.path == path


@pytest.mark.parametrize(("bits", "dtype"), [(2, np.uint8), (3, np.uint8), (4, np.uint8), (12, np.uint16)])
def test_packed_depths_are_stretched_and_miniswhite_inverted_at_their_own_depth(tmp_path, monkeypatch, bits, dtype):
    from tifffile import _imagecodecs

    monkeypatch.setattr(_imagecodecs, "packints_decode", _unpack_ints)  # as with imagecodecs installed
    top = 2**bits - 1
    values = RNG.integers(0, top + 1, (5, 7))
    values[0, :3] = [0, 1, top]
    values[1, :2] = [top - 1, top // 2]  # at 3 bits 6 -> 218.57: rounded to 219, not cut to 218
    full = np.iinfo(dtype).max
    shown = np.round(values * (full / top)).astype(np.int64)  # a Mono12 camera's white is 65535, not 4095
    black = _write_packed_tiff(tmp_path / "black.tif", values, bits, "minisblack")
    white = _write_packed_tiff(tmp_path / "white.tif", top - values, bits, "miniswhite")
    expected8 = np.round(shown / 257.0) if dtype == np.uint16 else shown
    for path in (black, white):
        assert np.array_equal(read_image(path)[:, :, 0], expected8), path.name
    assert np.array_equal(read_mask(white), values > 0)
    assert np.array_equal(read_map(black), values)  # maps: values as stored


def test_the_content_decides_the_reader_not_the_file_name(tmp_path):
    from adbench_hr.imageio import is_lossy

    # Colour images keep their channel order whichever reader the content picks.
    png_named_tif = tmp_path / "png.tif"
    assert cv2.imwrite(str(tmp_path / "real.png"), cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    png_named_tif.write_bytes((tmp_path / "real.png").read_bytes())
    tiff_named_png = tmp_path / "tiff.png"
    tifffile.imwrite(tiff_named_png, RGB, photometric="rgb")
    for path in (png_named_tif, tiff_named_png):
        assert np.array_equal(read_image(path), RGB), path.name
    # A two-page TIFF mask named .png is refused as the .tiff is, instead of losing page 2's defects.
    pages = tmp_path / "000_mask.png"
    tifffile.imwrite(pages, np.stack([GRAY, GRAY]))
    with pytest.raises(InputError, match="TIFF file has 2 pages") as error:
        read_mask(pages)
    assert error.value.path == pages
    # A rotated TIFF map named .png is read in stored order (OpenCV would apply the Orientation tag).
    values = RNG.normal(size=(24, 40)).astype(np.float32)
    rotated = tmp_path / "map.png"
    tifffile.imwrite(rotated, values, extratags=[(274, "H", 1, 3, True)])  # Orientation 3: rotated 180°
    assert np.array_equal(read_map(rotated), values)
    inverted = tmp_path / "white_map.png"
    tifffile.imwrite(inverted, GRAY, photometric="miniswhite")
    with pytest.raises(InputError, match="MinIsWhite TIFF"):
        read_map(inverted)
    # JPEG bytes under a .png name are still lossy, and no map format.
    jpeg_named_png = tmp_path / "001_mask.png"
    ok, encoded = cv2.imencode(".jpg", GRAY)
    jpeg_named_png.write_bytes(encoded.tobytes())
    assert is_lossy(jpeg_named_png) and not is_lossy(tmp_path / "real.png")
    with pytest.raises(InputError, match="anomaly map is a JPEG file"):
        read_map(jpeg_named_png)


def test_rgba_png_and_palette_tiff_mask_under_another_name_read_as_they_show(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 200  # red, partly transparent
    assert cv2.imwrite(str(tmp_path / "red.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [255, 0, 0]
    # A label mask (VisA's kind): black background, defects in red. Read as colours it is not single-channel.
    indices = np.zeros((6, 7), np.uint8)
    indices[2:4, 3:5] = 1
    colormap = np.zeros((3, 256), np.uint16)
    colormap[0, 1] = 65535
    tiff = tmp_path / "mask.tif"
    tifffile.imwrite(tiff, indices, photometric="palette", colormap=colormap)
    renamed = tmp_path / "mask.png"
    renamed.write_bytes(tiff.read_bytes())
    assert np.array_equal(read_mask(renamed), read_mask(tiff))
    assert read_mask(renamed).sum() == 4


def test_big_endian_tiff_under_another_name_is_still_read_as_a_tiff(tmp_path):
    # "MM" TIFFs (big-endian, as some cameras and Macs write them) are TIFFs by their first bytes too.
    pages = tmp_path / "000_mask.png"
    tifffile.imwrite(pages, np.stack([GRAY, GRAY]), byteorder=">")
    with pytest.raises(InputError, match="TIFF file has 2 pages"):
        read_mask(pages)


def test_transparency_stored_in_a_trns_chunk_counts_as_an_alpha_channel(tmp_path):
    # An RGB mask whose white defects are made transparent by a tRNS chunk decodes to the same RGBA as a file
    # with that alpha channel stored: both are refused, however the transparency is stored.
    from PIL import Image

    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 2:4] = 255
    rgb = np.repeat(mask[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "trns.png", transparency=(255, 255, 255))
    Image.fromarray(np.dstack([rgb, 255 - mask])).save(tmp_path / "rgba.png")
    for name in ("trns.png", "rgba.png"):
        with pytest.raises(InputError, match="alpha channel"):
            read_mask(tmp_path / name)


def test_16_bit_colour_png_keeps_its_channel_order(tmp_path):
    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 257 * 100, 0  # orange: R 255, G 100, B 0
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    assert read_image(tmp_path / "rgb16.png")[0, 0].tolist() == [255, 100, 0]


def test_colour_mask_differing_only_in_blue_is_refused(tmp_path):
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1:3, 1:4] = 255
    mask[0, 0] = [200, 200, 0]  # red equals green, blue differs
    assert cv2.imwrite(str(tmp_path / "yellow.png"), mask[..., ::-1])
    with pytest.raises(InputError, match="differing colours"):
        read_mask(tmp_path / "yellow.png")


def test_label_mask_with_black_index_0_counts_every_index_above_0_even_a_black_one(tmp_path):
    # Palettes padded with black, or with a defect class drawn in black: index 0 black is the label rule.
    from PIL import Image

    indices = np.zeros((4, 5), np.uint8)
    indices[1, 1:3] = 1  # black, like index 0
    indices[2, 3] = 2  # red
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 0, 0, 0, 255, 0, 0])
    image.save(tmp_path / "labels.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "labels.png"), indices > 0)


def test_jpeg_compressed_ycbcr_tiff_reads_as_its_colours_but_raw_ycbcr_is_refused(tmp_path):
    from PIL import Image

    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:8], rgb[8:] = [200, 40, 40], [30, 180, 60]
    Image.fromarray(rgb).convert("YCbCr").save(tmp_path / "jpeg.tif", compression="jpeg")
    with tifffile.TiffFile(tmp_path / "jpeg.tif") as tif:
        assert tif.pages.first.photometric == tifffile.PHOTOMETRIC.YCBCR and tif.pages.first.compression == 7
    read = read_image(tmp_path / "jpeg.tif").astype(int)
    assert np.abs(read - rgb).max() <= 4  # JPEG rounding only: not refused, not read as raw Y, Cb, Cr
    Image.fromarray(rgb).convert("YCbCr").save(tmp_path / "raw.tif")
    with pytest.raises(InputError, match="TIFF colour model YCBCR is not supported"):
        read_image(tmp_path / "raw.tif")


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_exif_orientation_of_jpeg_and_png_is_not_applied(tmp_path, kind):
    # docs/datasets.md: pixels are read in their stored order, whatever the format, so masks stay aligned.
    from PIL import Image

    stored = np.zeros((24, 40, 3), np.uint8)
    stored[:, :20] = [250, 250, 250]  # left half white
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / f"rotated.{kind.lower()}"
    Image.fromarray(stored).save(path, kind, exif=exif.tobytes(), quality=95)
    with Image.open(path) as image:
        assert image.getexif()[274] == 6
    read = read_image(path)
    assert read.shape == (24, 40, 3)
    assert read[:, :16].min() > 200 and read[:, 24:].max() < 50


def test_tifffile_warnings_are_silenced_only_while_a_file_is_read_here(caplog):
    # Before: importing the package set the "tifffile" logger to ERROR for the whole process, so a notebook
    # lost tifffile's warnings everywhere.
    import logging
    import threading

    from adbench_hr.imageio import _TIFFFILE_QUIETER

    logger = logging.getLogger("tifffile")
    assert logger.level == logging.NOTSET
    with caplog.at_level(logging.WARNING, logger="tifffile"):
        logger.warning("outside")
        with _TIFFFILE_QUIETER.reading():
            logger.warning("inside")  # reported by the reader itself, on one line
            logger.error("inside, an error")
            other = threading.Thread(target=logger.warning, args=("another thread",))
            other.start()
            other.join()
        logger.warning("outside again")
    assert [r.getMessage() for r in caplog.records] == ["outside", "inside, an error", "another thread",
                                                        "outside again"]


def _png_header_only(path: Path, height: int, width: int, rgb: bool = False) -> Path:
    """A PNG that declares ``height x width`` 8-bit gray (or RGB) pixels; its pixel data is a few zero rows only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2 if rgb else 0, 0, 0, 0])
    rows = zlib.compress(bytes(2 * ((3 if rgb else 1) * width + 1)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("reader", [read_image, read_mask, read_map])
def test_png_beyond_opencvs_pixel_limit_is_not_called_corrupt(tmp_path, reader):
    # 32769 x 32768 px (a gigapixel line-scan panorama): OpenCV refuses to decode more than 2**30 pixels,
    # whatever the file holds; the header is checked before the pixel data.
    path = _png_header_only(tmp_path / "panorama.png", 32769, 32768)
    with pytest.raises(InputError) as raised:
        reader(path)
    message = str(raised.value)
    assert str(path) in message and "2**30 pixels" in message and "TIFF" in message
    assert "corrupt" not in message


@pytest.mark.skipif(sys.platform != "linux", reason="a process memory limit (RLIMIT_AS) as Linux applies it")
def test_a_valid_image_too_large_for_the_memory_left_is_not_called_corrupt(tmp_path):
    # 30000 x 30000 RGB (2.7 GB decoded, below OpenCV's pixel limit) in a process limited to 1.5 GB of address
    # space: OpenCV's allocation fails, which was reported as "unreadable or corrupt file".
    path = _png_header_only(tmp_path / "large.png", 30000, 30000, rgb=True)
    code = (
        "import resource, sys\n"
        "from adbench_hr.errors import InputError\n"
        "from adbench_hr.imageio import read_image, read_mask\n"
        "from adbench_hr.maps import read_map\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))\n"
        "for read in (read_image, read_mask, read_map):\n"
        "    try:\n"
        "        read(sys.argv[1])\n"
        "    except InputError as exc:\n"
        "        print(exc)\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # threads reserve address space
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
    expected = [f"{path}: not enough memory to decode the {what} " for what in ("file", "file", "anomaly map")]
    assert [line[: len(prefix)] for line, prefix in zip(done.stdout.splitlines(), expected)] == expected
    assert all("Failed to allocate 2700000000 bytes" in line and "corrupt" not in line
               for line in done.stdout.splitlines())


def test_a_memory_error_of_any_reader_is_reported_as_such(tmp_path):
    from adbench_hr.imageio import read_failure

    error = read_failure(MemoryError("Unable to allocate 8.00 GiB for an array"), "file", tmp_path / "x.tif")
    assert str(error) == (f"{tmp_path / 'x.tif'}: not enough memory to decode the file (Unable to allocate 8.00 GiB "
                          "for an array)")


def test_a_name_too_long_for_the_file_system_is_one_error_naming_it(tmp_path) -> None:
    # Path.is_file raises for it (ENAMETOOLONG, Python 3.10-3.13) rather than answer False: it was a bare OSError.
    from adbench_hr.imageio import image_size

    path = tmp_path / ("x" * 300 + ".png")
    for read in (read_image, read_mask, image_size):
        with pytest.raises(InputError) as info:
            read(path)
        assert (info.value.path, info.value.problem) == (path, "cannot read the file (File name too long)")


def test_a_folder_or_a_broken_link_given_as_an_image_says_so(tmp_path) -> None:
    # Before: "file not found" for each, though the folder or link was there.
    from adbench_hr.imageio import image_size

    folder = tmp_path / "000.png"
    folder.mkdir()
    for read in (read_image, read_mask, image_size):
        with pytest.raises(InputError) as info:
            read(folder)
        assert str(info.value) == f"{folder}: a folder where an image file should be"
    link = tmp_path / "001.png"
    link.symlink_to("gone.png")
    with pytest.raises(InputError) as info:
        read_image(link)
    assert str(info.value) == f"{link}: file not found (a broken symbolic link to gone.png)"
    with pytest.raises(InputError) as info:
        read_image(tmp_path / "002.png")
    assert str(info.value) == f"{tmp_path / '002.png'}: file not found"


def test_palette_png_mask_with_a_damaged_ancillary_chunk_reads_as_a_gray_one_does(tmp_path):
    # Before: OpenCV got the checked chunks, but Pillow, which reads a palette mask's indices, got the whole file
    # and refused it over a damaged text chunk ("cannot identify image file"), while a gray mask read fine.
    from PIL import Image, PngImagePlugin

    labels = np.zeros((24, 40), np.uint8)
    labels[4:9, 5:15] = 1
    image = Image.fromarray(labels, "P")
    image.putpalette([0, 0, 0, 200, 30, 30])
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "made by a scanner")
    path = tmp_path / "label.png"
    image.save(path, pnginfo=info)
    data = bytearray(path.read_bytes())
    data[data.index(b"tEXt") + 6] ^= 0xFF  # inside the text: its CRC no longer matches
    path.write_bytes(bytes(data))
    assert np.array_equal(read_mask(path), labels > 0)


def test_the_pages_hint_only_reads_channels_from_readable_pages_of_one_2d_shape(tmp_path):
    # "H pages of W x C" is a guess from the first and last pages: pages that differ, colour pages, or a last
    # page that cannot be read give no hint, and the page count alone is the one error.
    def problem(path: Path) -> str:
        with pytest.raises(InputError) as error:
            read_mask(path)
        assert error.value.path == path
        return error.value.problem

    def pages(path: Path, *arrays: np.ndarray) -> Path:
        with tifffile.TiffWriter(path) as tif:
            for array in arrays:
                tif.write(array, photometric="rgb" if array.ndim == 3 else "minisblack")
        return path

    plain = "TIFF file has 2 pages; expected a single image"
    narrow = np.zeros((100, 3), np.uint8)
    same = pages(tmp_path / "same.tif", narrow, narrow)
    assert problem(same) == plain + " (an (H, W, C) array may have been saved as H pages of W x C, here 100 x 3)"
    assert problem(pages(tmp_path / "differing.tif", narrow, narrow[:90])) == plain
    assert problem(pages(tmp_path / "colour.tif", np.zeros((100, 3, 3), np.uint8), np.zeros((100, 3, 3), np.uint8))) \
        == plain
    with tifffile.TiffFile(same) as tif:
        last = tif.pages[-1].offset
    damaged = tmp_path / "damaged.tif"
    damaged.write_bytes(same.read_bytes()[: last + 6])  # cut inside the last page's list of tags
    assert problem(damaged) == plain


def _palette_tiff_with_an_extra_sample(path: Path) -> Path:
    """A palette TIFF with an alpha sample besides its indices: outside the standard (a palette image has one
    sample), so written as gray + alpha with a colour map and then marked as palette."""
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = 65535
    samples = np.dstack([np.zeros((24, 40), np.uint8), np.full((24, 40), 255, np.uint8)])
    samples[5:9, 5:9, 0] = 1
    tifffile.imwrite(path, samples, photometric="minisblack", extrasamples=["unassalpha"],
                     extratags=[(320, "H", colormap.size, colormap.ravel(), True)])
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages.first.tags["PhotometricInterpretation"].overwrite(3)  # palette
    return path


@pytest.mark.parametrize(
    ("name", "reader", "problem"),
    [
        ("five channels", read_image, "unsupported image shape (24, 40, 5)"),
        ("five channels", read_mask, "mask must be single-channel, got shape (24, 40, 5)"),
        ("RGB volume", read_image, "unsupported image shape (2, 32, 48, 3)"),
        ("RGB volume", read_mask, "mask must be 2-D, got shape (2, 32, 48, 3)"),
        ("palette with alpha", read_mask, "mask must be 2-D, got shape (24, 40, 2)"),
    ],
)
def test_a_tiff_of_a_shape_no_image_or_mask_has_is_refused_by_name(tmp_path, name, reader, problem):
    path = tmp_path / "odd.tif"
    if name == "five channels":  # gray with four extra samples
        tifffile.imwrite(path, np.zeros((24, 40, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    elif name == "RGB volume":  # one page of two RGB planes (SGI's ImageDepth)
        tifffile.imwrite(path, np.zeros((2, 32, 48, 3), np.uint8), photometric="rgb", volumetric=True, tile=(16, 16))
    else:
        _palette_tiff_with_an_extra_sample(path)
    with pytest.raises(InputError) as error:
        reader(path)
    assert error.value.path == path
    assert error.value.problem == problem


def test_colour_jpeg_mask_of_equal_channels_reads_as_its_gray_values(tmp_path):
    # Only PNG and BMP files can be palette images: a 3-channel JPEG mask is gray values in each channel.
    mask = np.zeros((32, 48), np.uint8)
    mask[8:24, 16:40] = 255  # edges on the 8 x 8 blocks: decoded exactly
    path = tmp_path / "mask.jpg"
    assert cv2.imwrite(str(path), np.dstack([mask] * 3), [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (32, 48, 3)
    assert np.array_equal(read_mask(path), mask > 0)


def test_a_damaged_tiff_counts_as_lossless_and_its_reader_reports_it(tmp_path):
    # is_lossy runs before any mask is read (the lossy-mask warning): a damaged file must reach the reader.
    from adbench_hr.imageio import is_lossy

    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, GRAY)
    path.write_bytes(path.read_bytes()[:10])
    assert is_lossy(path) is False
    with pytest.raises(InputError, match="unreadable or corrupt file") as error:
        read_mask(path)
    assert error.value.path == path
