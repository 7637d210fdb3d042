"""Reading images and ground-truth masks at their original resolution.

All readers raise :class:`~adbench_hr.errors.InputError` naming the file on any problem, so the CLI can
report it on one line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import tifffile

from adbench_hr.errors import InputError

# tifffile logs its complaints about damaged files; we report them ourselves, on one line.
logging.getLogger("tifffile").setLevel(logging.ERROR)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_TIFF_EXTENSIONS = (".tif", ".tiff")


def read_tiff(path: str | Path, *, palette_indices: bool = False, single_page: bool = False) -> np.ndarray:
    """Read the first page of a TIFF file as it is displayed, channels in RGB order.

    tifffile returns the stored samples; this turns them into what a viewer shows: palette images become
    RGB colours (or stay class indices with ``palette_indices``), MinIsWhite images are inverted and
    planar-separate samples move last; an alpha channel stays last, as OpenCV returns it. Compressions that tifffile
    can only decode with the optional ``imagecodecs`` package (LZW, JPEG, ZSTD ...) are decoded by OpenCV.

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` file.
    palette_indices : bool
        Return a palette image's indices instead of its colours (label masks).
    single_page : bool
        Refuse files with more than one page (masks and maps, where reading page 0 of several could
        silently drop data) instead of reading the first page (images, as OpenCV and PIL do).

    Raises
    ------
    InputError
        A multi-page file when ``single_page`` is set. Undecodable files raise the decoder's exception.
    """
    path = Path(path)
    with tifffile.TiffFile(path) as tif:
        if single_page and len(tif.pages) > 1:
            raise InputError(f"TIFF file has {len(tif.pages)} pages; expected a single image", path)
        page = tif.pages.first
        try:
            array = page.asarray()
        except Exception:  # a codec tifffile lacks without imagecodecs; OpenCV's libtiff has them
            decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if decoded is None:
                raise
            if decoded.ndim == 3 and decoded.shape[2] in (3, 4):
                decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
            return decoded
        if page.axes.startswith("S") and array.ndim == 3:  # planar configuration "separate"
            array = np.moveaxis(array, 0, -1)
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE and not palette_indices and page.colormap is not None:
            colormap = page.colormap  # (3, 2**bits), 16-bit colour values by the standard
            if colormap.max() > 255:
                colormap = colormap >> 8
            array = np.moveaxis(colormap.astype(np.uint8)[:, array], 0, -1)
        elif page.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            if array.dtype == np.bool_:
                array = ~array
            elif np.issubdtype(array.dtype, np.unsignedinteger):
                array = (2 ** int(page.bitspersample) - 1) - array
        return np.ascontiguousarray(array)


def _read_raw(path: Path, *, palette_indices: bool = False, single_page: bool = False) -> np.ndarray:
    """Read a file as stored (any depth, any channel count) without resizing; TIFFs as displayed."""
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        if path.suffix.lower() in _TIFF_EXTENSIONS:
            array = read_tiff(path, palette_indices=palette_indices, single_page=single_page)
        else:
            buffer = np.fromfile(path, dtype=np.uint8)
            array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    except InputError:
        raise
    except Exception as exc:  # corrupt files raise many different exception types
        raise InputError(f"unreadable or corrupt file ({type(exc).__name__}: {exc})", path) from None
    if array is None or array.size == 0:
        raise InputError("unreadable or corrupt file", path)
    return np.asarray(array)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as an RGB ``uint8`` array of shape ``(H, W, 3)`` at its original size.

    Grayscale images are replicated to three channels, an alpha channel is dropped, and 16-bit images
    are scaled to 8 bit. Of a multi-page TIFF the first page is read.

    Parameters
    ----------
    path : str or Path
        PNG, JPG, BMP or TIFF file.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(H, W, 3)``.
    """
    path = Path(path)
    array = _read_raw(path)
    if array.dtype == np.uint16:
        array = (array / 257.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.float64)
        if array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).round().astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"unsupported image shape {array.shape}", path)
    if array.shape[2] <= 2:  # gray, or gray + alpha
        return np.repeat(array[:, :, :1], 3, axis=2)
    array = array[:, :, :3]
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        return np.ascontiguousarray(array)  # tifffile already returns RGB
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask as a boolean array (``mask > 0``) at its original size.

    Parameters
    ----------
    path : str or Path
        Mask file, usually an 8-bit PNG with values 0 and 255.

    Returns
    -------
    numpy.ndarray
        ``bool`` array of shape ``(H, W)``.

    Raises
    ------
    InputError
        If the file is missing, unreadable, not single-channel, or holds negative or non-finite values.
    """
    path = Path(path)
    array = _read_raw(path, palette_indices=True, single_page=True)
    if array.ndim == 3 and _is_palette_png(path):
        # Palette ("P" mode) masks store class indices; cv2 expands them to palette colours, so read the
        # indices themselves (index 0 = background, as in VisA-style label masks).
        array = _palette_indices(path)
    if array.ndim == 3:
        array = _single_channel_mask(array, path)
    if array.ndim != 2:
        raise InputError(f"mask must be 2-D, got shape {array.shape}", path)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError("mask contains NaN or inf", path)
    if (array < 0).any():
        raise InputError("mask contains negative values", path)
    return array > 0


def _single_channel_mask(array: np.ndarray, path: Path) -> np.ndarray:
    """The gray values of a gray, gray + alpha, RGB or RGBA mask whose colour channels agree.

    An alpha channel that varies must mark the same pixels as the gray values: a mask drawn only in the
    alpha channel (colours constant) would otherwise read as empty, or as all defect.
    """
    n_channels = array.shape[2]
    if n_channels not in (1, 2, 3, 4):
        raise InputError(f"mask must be single-channel, got shape {array.shape}", path)
    colour = array[:, :, : 3 if n_channels >= 3 else 1]
    gray = colour[:, :, 0]
    if any(not np.array_equal(gray, colour[:, :, c]) for c in range(1, colour.shape[2])):
        raise InputError(f"mask must be single-channel, got shape {array.shape} with differing colours", path)
    if n_channels in (2, 4):
        alpha = array[:, :, -1]
        if alpha.min() != alpha.max() and not np.array_equal(alpha > 0, gray > 0):
            raise InputError(
                "mask has an alpha channel that marks other pixels than its gray values; "
                "store the mask in the gray values",
                path,
            )
    return gray


def _is_palette_png(path: Path) -> bool:
    """Whether ``path`` is a PNG with colour type 3 (indexed colour), from its IHDR header."""
    try:
        with path.open("rb") as handle:
            head = handle.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[25] == 3


def _palette_indices(path: Path) -> np.ndarray:
    from PIL import Image  # Pillow comes with matplotlib; only needed for this rare case

    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except Exception as exc:  # corrupt files raise many different exception types
        raise InputError(f"unreadable or corrupt file ({type(exc).__name__}: {exc})", path) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(H, W)`` of an image file by reading it."""
    array = _read_raw(Path(path))
    return int(array.shape[0]), int(array.shape[1])
