"""TIFF files as a viewer shows them: compressions tifffile cannot decode alone, palettes, MinIsWhite,
planar samples, alpha and multi-page files (images, masks and anomaly maps)."""

from __future__ import annotations

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
        assert tif.pages.first.compression == tifffile.COMPRESSION.LZW
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
