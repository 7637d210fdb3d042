"""Reading images and ground-truth masks at their original resolution.

All readers raise :class:`~adbench_hr.errors.InputError` naming the file on any problem, so the CLI can
report it on one line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import tifffile

from adbench_hr.errors import InputError, one_line, out_of_memory
from adbench_hr.fileio import not_a_file_problem, refuse_empty_file


class _TifffileQuieter(logging.Filter):
    """Drops tifffile's warnings about damaged files while this package reads one (it reports the problem
    itself, on one line), in the reading thread only: the logger's level stays the user's."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not getattr(self._local, "depth", 0)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1


_TIFFFILE_QUIETER = _TifffileQuieter()
logging.getLogger("tifffile").addFilter(_TIFFFILE_QUIETER)


@contextlib.contextmanager
def open_tiff(path: str | Path) -> Iterator[tifffile.TiffFile]:
    """``tifffile.TiffFile(path)`` with tifffile's own warnings silenced while it is open (see above)."""
    with _TIFFFILE_QUIETER.reading(), tifffile.TiffFile(path) as tif:
        yield tif

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Image formats that are not read (SPEC: PNG, JPEG, BMP or TIFF). Where a dataset's images or masks are read, a
# file with one of these extensions is an error rather than a silently smaller dataset; files that are not
# images (Thumbs.db, README.txt) stay ignored. JPEG and BMP files under other names (.jfif, .dib) are among
# them: the error says to rename those.
UNREAD_IMAGE_EXTENSIONS = (
    ".webp", ".gif", ".avif", ".heic", ".heif", ".jxl", ".jp2", ".j2k", ".jpx", ".jpf", ".jpe", ".jfif", ".jif",
    ".dib", ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".pam", ".pfm", ".sr", ".ras", ".exr", ".hdr", ".pic", ".ico",
    ".tga", ".psd", ".pcx", ".svg", ".dng",
)
_RENAME_TO = {".jpe": ".jpg", ".jfif": ".jpg", ".jif": ".jpg", ".dib": ".bmp"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIGNATURES = (
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"II+\x00", "tiff"), (b"MM\x00+", "tiff"),  # + : BigTIFF
    (_PNG_SIGNATURE, "png"), (b"\xff\xd8\xff", "jpeg"), (b"BM", "bmp"), (b"\x93NUMPY", "npy"),
)
_FORMAT_OF_SUFFIX = {".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp",
                     ".npy": "npy"}


def file_format(path: str | Path) -> str | None:
    """A file's format from its first bytes (``"tiff"``, ``"png"``, ``"jpeg"``, ``"bmp"``, ``"npy"``), else
    from its extension (an empty, damaged or unreadable file: its reader reports the problem).

    The content decides, not the name: a TIFF saved as ``.png`` must still get the TIFF reading (one page
    only for masks and maps, no Orientation tag), and a JPEG saved as ``.png`` is still lossy.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        head = b""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return _FORMAT_OF_SUFFIX.get(path.suffix.lower())


def unread_format_problem(path: str | Path) -> str | None:
    """The problem of a file named as an image format that is not read (:data:`UNREAD_IMAGE_EXTENSIONS`), else
    ``None``; extensions in any case.

    Parameters
    ----------
    path : str or Path
        An image or mask file as a dataset lists it.

    Returns
    -------
    str or None
        E.g. ``"image format .webp is not read (PNG, JPEG, BMP or TIFF are); convert it"``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in UNREAD_IMAGE_EXTENSIONS:
        return None
    fix = "convert it"
    if suffix in _RENAME_TO:
        target = _RENAME_TO[suffix]
        fix = f"rename it to {target} if it is a {_FORMAT_OF_SUFFIX[target].upper()}, else {fix}"
    return f"image format {suffix} is not read (PNG, JPEG, BMP or TIFF are); {fix}"


def read_tiff(
    path: str | Path, *, palette_indices: bool = False, single_page: bool = False, raw_values: bool = False
) -> np.ndarray:
    """Read the first page of a TIFF file as it is displayed, channels in RGB order.

    tifffile returns the stored samples; this turns them into what a viewer shows: palette images become
    RGB colours (or stay class indices with ``palette_indices``), CMYK becomes RGB (no colour profile),
    other colour models (CIELab, YCbCr that is not JPEG-compressed) are refused, MinIsWhite images are inverted and
    planar-separate samples move last; an alpha channel stays last, as OpenCV returns it. The Orientation
    tag is not applied (as tifffile, and OpenCV for PNG and JPEG with ``IMREAD_UNCHANGED``): images, masks
    and maps are all read in their stored pixel order, so they stay aligned. Compressions that tifffile
    can only decode with the optional ``imagecodecs`` package (LZW, JPEG, ZSTD ...) are decoded by
    OpenCV, whose orientation and palette expansion are undone, so that the result does not depend on the
    compression, except for alpha channels: OpenCV drops a gray image's and premultiplies colours by an
    unassociated one.

    Samples of a packed depth the file states (4 bit, 12 bit ...) are scaled to the full range of the
    ``uint8`` or ``uint16`` they come in, unless ``raw_values`` is set. tifffile needs ``imagecodecs`` to
    unpack them; without it such a file is an error.

    Exceptions to the inversion: a 1-bit MinIsWhite file written by tifffile (which stores ``bool``
    arrays that way, Software tag ``tifffile.py``) is read as stored, as ``tifffile.imread`` returns it,
    so that ``tifffile.imwrite(path, mask)`` round-trips; float and signed samples, which have no range to
    invert within, are read as stored too (as OpenCV and Pillow read them).

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` file.
    palette_indices : bool
        Return a palette image's indices instead of its colours (label masks).
    single_page : bool
        Refuse files with more than one page (masks and maps, where reading page 0 of several could
        silently drop data) instead of reading the first page (images, as OpenCV and PIL do).
    raw_values : bool
        Values must be read as stored (anomaly maps): refuse palette and MinIsWhite files, whose displayed
        values differ from the stored ones (but not tifffile's 1-bit MinIsWhite: its stored values are meant).

    Raises
    ------
    InputError
        A multi-page file when ``single_page`` is set; a palette or MinIsWhite file with ``raw_values``;
        an unsupported colour model.
        Undecodable files raise the decoder's exception.
    """
    path = Path(path)
    with open_tiff(path) as tif:
        if single_page and len(tif.pages) > 1:
            raise InputError(f"TIFF file has {len(tif.pages)} pages; expected a single image{_pages_hint(tif)}", path)
        page = tif.pages.first
        _check_photometric(page, path)
        palette = _tiff_palette(page)
        miniswhite = page.photometric == tifffile.PHOTOMETRIC.MINISWHITE
        # tifffile writes bool arrays as 1-bit MinIsWhite and reads them back as stored: keep that meaning.
        as_written = miniswhite and page.bitspersample == 1 and str(page.software).startswith("tifffile")
        if raw_values and (palette is not None or (miniswhite and not as_written)):
            kind = "palette" if palette is not None else "MinIsWhite"
            raise InputError(f"{kind} TIFF: its displayed values differ from the stored ones; store raw values", path)
        try:
            array = page.asarray()
        except Exception:  # a codec tifffile lacks without imagecodecs; OpenCV's libtiff has them
            decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if decoded is None:
                raise
            decoded = _undo_orientation(decoded, _orientation(page))
            if decoded.ndim == 3 and decoded.shape[2] in (3, 4):
                decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
            if palette is not None and palette_indices:
                decoded = _colours_to_indices(decoded, palette, path)
            if as_written:  # OpenCV shows the set bits of MinIsWhite as black: the bits, as tifffile returns them
                decoded = decoded == 0
            return decoded
        if page.axes.startswith("S") and array.ndim == 3:  # planar configuration "separate"
            array = np.moveaxis(array, 0, -1)
        if palette is None and not raw_values:
            array = _stretch_packed(array, int(page.bitspersample))
        if page.photometric == tifffile.PHOTOMETRIC.SEPARATED:
            array = _cmyk_to_rgb(array)
        if palette is not None and not palette_indices:
            array = palette[array]
        elif miniswhite and not as_written:
            if array.dtype == np.bool_:
                array = ~array
            elif np.issubdtype(array.dtype, np.unsignedinteger):
                array = np.iinfo(array.dtype).max - array
        return np.ascontiguousarray(array)


def _pages_hint(tif: tifffile.TiffFile) -> str:
    """Why a file meant as one image may have several pages: tifffile writes an ``(H, W, C)`` array that is not
    RGB(A), a 2-channel map say, as ``H`` pages of ``W x C``.

    Only the first and last pages are looked at: building ``tif.series`` of a file of many distinct pages
    takes tifffile time that grows faster than the square of their number (minutes for a 5 MB file).
    """
    try:
        first, last = tif.pages.first, tif.pages[-1]
        shape, last_shape = tuple(first.shape), tuple(last.shape)
    except Exception:  # a damaged file: the page count alone is the message
        return ""
    if len(shape) != 2 or last_shape != shape:
        return ""
    width, samples = shape
    # Pages all of one shape, each only a few samples wide and much taller: channels, not an image's columns.
    if samples <= 16 and samples < width:
        return f" (an (H, W, C) array may have been saved as H pages of W x C, here {width} x {samples})"
    return ""


def _stretch_packed(array: np.ndarray, bits: int) -> np.ndarray:
    """Samples of a packed depth (2-7 or 9-15 bits: a Mono12 camera's 12-bit TIFF) scaled to the full range of
    the ``uint8``/``uint16`` they are read into, as viewers show them; other arrays unchanged.

    The file states the depth, so unlike 12-bit values stored as 16-bit samples this is not a guess.
    """
    if array.dtype not in (np.uint8, np.uint16) or not 1 < bits < 8 * array.dtype.itemsize:
        return array
    scale = np.iinfo(array.dtype).max / (2**bits - 1)
    return np.round(array * scale).astype(array.dtype)


_PHOTOMETRIC = tifffile.PHOTOMETRIC
# Colour models whose stored samples are what a viewer shows (or that read_tiff converts: CMYK).
_READABLE_PHOTOMETRICS = (_PHOTOMETRIC.MINISWHITE, _PHOTOMETRIC.MINISBLACK, _PHOTOMETRIC.RGB, _PHOTOMETRIC.PALETTE,
                          _PHOTOMETRIC.SEPARATED)
_JPEG_COMPRESSIONS = (6, 7)  # JPEG decoders return RGB for YCbCr data


def _check_photometric(page: tifffile.TiffPage, path: Path) -> None:
    """Refuse colour models whose samples would be misread as RGB or gray (CIELab, raw YCbCr, CFA ...)."""
    photometric = page.photometric
    if photometric == _PHOTOMETRIC.YCBCR and int(page.compression) in _JPEG_COMPRESSIONS:
        return
    separated_non_cmyk = photometric == _PHOTOMETRIC.SEPARATED and (
        int(page.tags.valueof("InkSet", 1)) != 1 or page.samplesperpixel - len(page.extrasamples) != 4
    )
    if photometric not in _READABLE_PHOTOMETRICS or separated_non_cmyk:
        name = getattr(photometric, "name", str(photometric))
        raise InputError(f"TIFF colour model {name} is not supported; save the file as RGB or gray", path)


def _cmyk_to_rgb(array: np.ndarray) -> np.ndarray:
    """CMYK (plus any extra samples, kept last) to RGB the way viewers without a colour profile do:
    ``R = (max - C) * (max - K) / max``."""
    integer = np.issubdtype(array.dtype, np.unsignedinteger)
    top = float(np.iinfo(array.dtype).max) if integer else 1.0
    inks = array[..., :4].astype(np.float64)
    rgb = (top - inks[..., :3]) * (top - inks[..., 3:4]) / top
    if integer:
        rgb = np.round(rgb)
    return np.concatenate([rgb.astype(array.dtype), array[..., 4:]], axis=-1)


def tiff_palette(path: str | Path) -> np.ndarray | None:
    """The palette of a palette TIFF as ``(N, 3)`` ``uint8`` RGB colours; ``None`` for other TIFFs."""
    with open_tiff(path) as tif:
        return _tiff_palette(tif.pages.first)


def _tiff_palette(page: tifffile.TiffPage) -> np.ndarray | None:
    if page.photometric != tifffile.PHOTOMETRIC.PALETTE or page.colormap is None:
        return None
    colormap = np.asarray(page.colormap)  # (3, 2**bits), 16-bit colour values by the standard
    if colormap.max() > 255:
        colormap = colormap >> 8
    return np.ascontiguousarray(colormap.T.astype(np.uint8))


def _orientation(page: tifffile.TiffPage) -> int:
    tag = page.tags.get(274)  # Orientation
    return int(tag.value) if tag is not None else 1


# Inverse of the display transform of each TIFF/EXIF orientation (2..8), which OpenCV's decoder applies.
_UNDO_ORIENTATION = {
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.swapaxes(np.rot90(a, 2), 0, 1),
    8: lambda a: np.rot90(a, -1),
}


def _undo_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    undo = _UNDO_ORIENTATION.get(orientation)
    return array if undo is None else np.ascontiguousarray(undo(array))


def _colours_to_indices(rgb: np.ndarray, palette: np.ndarray, path: Path) -> np.ndarray:
    """Palette indices of an image OpenCV expanded to colours.

    A colour listed several times (palettes are often padded with black) takes its first index: exact for
    the mask reading, where one colour never means both background and defect.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"palette TIFF decoded to shape {rgb.shape}, expected colours", path)
    code = lambda c: (c[..., 0].astype(np.int32) << 16) | (c[..., 1].astype(np.int32) << 8) | c[..., 2]  # noqa: E731
    pixel_codes = code(rgb)
    # Sorted distinct palette colours and each one's first index; every pixel is looked up by bisection.
    colours, first_index = np.unique(code(palette), return_index=True)
    position = np.minimum(np.searchsorted(colours, pixel_codes), len(colours) - 1)
    if not np.array_equal(colours[position], pixel_codes):
        raise InputError("compressed palette TIFF decoded to a colour outside its palette", path)
    return first_index[position].astype(np.uint8 if len(palette) <= 256 else np.uint16)


def decode_unchanged(path: Path) -> np.ndarray | None:
    """Decode a PNG, JPEG or BMP file with OpenCV, as stored (``IMREAD_UNCHANGED``); ``None`` if it cannot.

    libpng prints its own complaints on stderr (OpenCV's log level does not reach them), which would break
    the one-line error and clutter warnings. So PNG files are checked chunk by chunk first, and reach
    libpng with their pixel chunks only: a truncated or damaged file, or one whose header, palette or data
    stream libpng refuses, gets one error naming it, and metadata that libpng would warn about (a bad colour
    profile, a damaged text chunk, a transparency of the wrong size) is left out; it does not change the
    stored values read here.
    """
    buffer = np.fromfile(path, dtype=np.uint8)
    if not buffer.size:
        return None
    if buffer[:8].tobytes() == _PNG_SIGNATURE:
        buffer = _png_pixel_chunks(buffer, path)
    return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)


# Chunks that decide the decoded values: the critical ones and tRNS (transparency becomes an alpha channel).
_PNG_KEPT_ANCILLARY = (b"tRNS",)


def _png_pixel_chunks(buffer: np.ndarray, path: Path) -> np.ndarray:
    """The PNG in ``buffer`` with only the chunks that decide its values, after checking them all.

    Raises an :class:`InputError` unless every chunk is complete, up to ``IEND``, and every critical
    chunk's CRC matches.
    """
    kept = _png_quiet_chunks(buffer, _png_decoder_chunks(buffer, path), path)
    if sum(end - start for _, start, end in kept) == kept[-1][2] - len(_PNG_SIGNATURE):
        return buffer  # no chunk left out
    return np.concatenate([buffer[: len(_PNG_SIGNATURE)], *(buffer[start:end] for _, start, end in kept)])


def _png_decoder_chunks(buffer: np.ndarray, path: Path) -> list[tuple[bytes, int, int]]:
    """``(kind, start, end)`` of each chunk of the PNG in ``buffer`` that decides its values, up to ``IEND``.

    Raises an :class:`InputError` unless every chunk is complete, up to ``IEND``, and every critical
    chunk's CRC matches.
    """
    data = memoryview(buffer)
    kept = []
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        end = offset + 12 + length
        if end > len(data):
            break
        kind = bytes(data[offset + 4 : offset + 8])
        if kind[:1].isupper() or kind in _PNG_KEPT_ANCILLARY:  # IHDR, PLTE, IDAT, IEND
            if zlib.crc32(data[offset + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
                raise InputError(f"corrupt PNG (checksum of its {kind.decode('latin-1')!r} chunk does not match)",
                                 path)
            kept.append((kind, offset, end))
        if kind == b"IEND":
            return kept
        offset = end
    raise InputError("truncated PNG (the file ends before its last chunk)", path)


def _png_quiet_chunks(
    buffer: np.ndarray, chunks: list[tuple[bytes, int, int]], path: Path
) -> list[tuple[bytes, int, int]]:
    """``chunks`` (of :func:`_png_decoder_chunks`) as libpng decodes them without a word on stderr.

    A header, palette or data stream that libpng refuses is an :class:`InputError` here, before libpng prints
    its own complaint. A palette or transparency chunk that libpng ignores with a warning (the suggested
    palette of a gray or colour image, a transparency of the wrong size) is left out, which changes no value.
    """

    def content(index: int) -> bytes:
        _, start, end = chunks[index]
        return buffer[start + 8 : end - 4].tobytes()

    def refuse(problem: str) -> InputError:
        return InputError(f"corrupt PNG ({problem})", path)

    if chunks[0][0] != b"IHDR" or len(content(0)) != 13:
        raise refuse("it does not begin with a valid IHDR header")
    header = content(0)
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, compression, filtering, interlace = header[8:13]
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise refuse(f"its header gives a size of {width} x {height} px")
    if colour not in _PNG_DEPTHS:
        raise refuse(f"its header gives the unknown colour type {colour}")
    if depth not in _PNG_DEPTHS[colour]:
        raise refuse(f"its header gives a bit depth of {depth}, which colour type {colour} does not have")
    if compression or filtering or interlace not in (0, 1):
        raise refuse("its header gives an unknown compression, filter or interlace method")
    data = [index for index, (kind, _, _) in enumerate(chunks) if kind == b"IDAT"]
    if not data:
        raise refuse("no image data (IDAT chunk)")
    # The zlib stream's 2-byte header (RFC 1950): deflate, a window of at most 32 KiB, no preset dictionary.
    stream = b"".join(buffer[start + 8 : min(end - 4, start + 10)].tobytes() for _, start, end in
                      (chunks[index] for index in data))[:2]
    if len(stream) < 2 or stream[0] & 0x0F != 8 or stream[0] >> 4 > 7 or (stream[0] << 8 | stream[1]) % 31 or \
            stream[1] & 0x20:
        raise refuse("its image data (IDAT) is no zlib stream")
    first_data = data[0]
    kept, colours = [], None
    for index, chunk in enumerate(chunks):
        kind = chunk[0]
        if kind == b"PLTE":
            if colour != 3:  # a suggested palette (colour) or one not allowed (gray): no value depends on it
                continue
            palette = content(index)
            if index > first_data or not palette or len(palette) % 3 or len(palette) > 3 * 256 or colours:
                raise refuse("invalid palette (PLTE chunk)")
            colours = len(palette) // 3
        elif kind == b"tRNS":
            transparency = content(index)
            if colour == 3:
                valid = colours is not None and 0 < len(transparency) <= colours
            elif colour in (0, 2):  # one gray or RGB sample value of the file's depth, 2 bytes each
                samples = [int.from_bytes(transparency[i : i + 2], "big") for i in range(0, len(transparency), 2)]
                valid = len(transparency) == (2 if colour == 0 else 6) and max(samples) < 2**depth
            else:  # an alpha channel already
                valid = False
            if not valid or index > first_data:
                continue
        kept.append(chunk)
    if colour == 3 and colours is None:
        raise refuse("a palette image without a palette (PLTE chunk) before its data")
    return kept


def _read_raw(path: Path, *, palette_indices: bool = False, single_page: bool = False) -> np.ndarray:
    """Read a file as stored (any depth, any channel count) without resizing; TIFFs as displayed."""
    try:
        is_file = path.is_file()
    except OSError as exc:  # a name too long for the file system: is_file raises rather than answer
        raise read_failure(exc, "file", path) from None
    if not is_file:
        # Worded as maps.py words a folder named as a map; a broken link names its target.
        problem = "a folder where an image file should be" if path.is_dir() else not_a_file_problem(path, "file")
        raise InputError(problem, path)
    refuse_empty_file(path, "file")
    try:
        if file_format(path) == "tiff":
            array = read_tiff(path, palette_indices=palette_indices, single_page=single_page)
        else:
            array = decode_unchanged(path)
            if array is not None and array.ndim == 3 and array.shape[2] in (3, 4):  # OpenCV's BGR(A)
                array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    except InputError:
        raise
    except Exception as exc:  # corrupt files raise many different exception types
        raise read_failure(exc, "file", path) from None
    if array is None or array.size == 0:
        raise InputError("unreadable or corrupt file", path)
    return np.asarray(array)


def read_failure(exc: Exception, what: str, path: Path) -> InputError:
    """The error for a file whose reading raised ``exc``: a system error (permission denied, an I/O error)
    says the file cannot be read, running out of memory says so; anything else, that it is unreadable or
    corrupt."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return InputError(f"cannot read the {what} ({exc.strerror or exc})", path)
    if isinstance(exc, cv2.error) and "CV_IO_MAX_IMAGE_PIXELS" in str(exc):  # a valid file, not a corrupt one
        return InputError(
            f"the {what} has more than 2**30 pixels, OpenCV's decoding limit: store it as TIFF, or set the "
            "environment variable OPENCV_IO_MAX_IMAGE_PIXELS (e.g. to 4000000000) before starting", path)
    if out_of_memory(exc):
        # A valid file too large for the memory left (a gigapixel image, a process memory limit): not corrupt.
        detail = getattr(exc, "err", None) or str(exc) or type(exc).__name__
        return InputError(f"not enough memory to decode the {what} ({one_line(detail, 200)})", path)
    return InputError(f"unreadable or corrupt {what} ({type(exc).__name__}: {exc})", path)


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
    return read_image_and_depth(path)[0]


def read_image_and_depth(path: str | Path) -> tuple[np.ndarray, int]:
    """:func:`read_image` and the bits per sample of the file's values (8, 16, 32 or 64)."""
    path = Path(path)
    array = _read_raw(path)
    return _to_rgb8(array, path), 8 * array.dtype.itemsize


def _to_rgb8(array: np.ndarray, path: Path) -> np.ndarray:
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
    return np.ascontiguousarray(array[:, :, :3])


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
    if file_format(path) == "tiff":
        palette = tiff_palette(path)
        if palette is not None:
            return _palette_defects(array, palette, path)
    elif array.ndim == 3 and _is_palette_image(path):
        # cv2 expands palette ("P" mode) PNGs and BMPs to colours; read the indices and the palette themselves.
        return _palette_defects(*_palette_indices(path), path)
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


def _is_palette_image(path: Path) -> bool:
    """Whether ``path`` is an indexed-colour PNG (colour type 3 in its IHDR header) or BMP (at most 8 bits
    per pixel, from its info header)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(30)
    except OSError:
        return False
    if head[:8] == _PNG_SIGNATURE:
        return len(head) >= 26 and head[12:16] == b"IHDR" and head[25] == 3
    if head[:2] == b"BM" and len(head) == 30:
        info_size = int.from_bytes(head[14:18], "little")
        # OS/2's 12-byte core header keeps the bit count at offset 24; every later header at 28.
        bits = int.from_bytes(head[24:26] if info_size == 12 else head[28:30], "little")
        return 0 < bits <= 8
    return False


_PIL_LIMIT_LOCK = threading.Lock()  # masks are read from several threads


def _palette_indices(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Indices and ``(N, 3)`` RGB palette of a palette PNG or BMP.

    A PNG reaches Pillow as :func:`decode_unchanged` passes it to OpenCV, with only the chunks that decide its
    values: Pillow refuses a file for a damaged ancillary chunk (a text chunk failing its checksum).
    """
    from PIL import Image  # Pillow comes with matplotlib; only needed for this rare case

    source: Path | io.BytesIO = path
    buffer = np.fromfile(path, dtype=np.uint8)
    if buffer[: len(_PNG_SIGNATURE)].tobytes() == _PNG_SIGNATURE:
        source = io.BytesIO(_png_pixel_chunks(buffer, path).tobytes())
    try:
        # Pillow's open() refuses images beyond ~179 Mpx (and warns beyond ~89 Mpx) as possible
        # decompression bombs; a dataset's own masks are trusted, so the limit is lifted while it opens.
        with _PIL_LIMIT_LOCK:
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(source)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        with image:  # decoded outside the lock
            indices = np.asarray(image)
            palette = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    except Exception as exc:  # corrupt files raise many different exception types
        raise InputError(f"unreadable or corrupt file ({type(exc).__name__}: {exc})", path) from None
    return indices, palette


def _palette_defects(indices: np.ndarray, palette: np.ndarray, path: Path) -> np.ndarray:
    """The defect pixels of a palette (label) mask.

    Label masks (VisA's) give the background index 0, in black: there every index > 0 is a defect, whatever
    its colour. Image tools that reduce a black-and-white mask to two colours may put white first (PIL's
    ``quantize`` does): when index 0 is not black but a used index is, black is the background instead.
    """
    if indices.ndim != 2:
        raise InputError(f"mask must be 2-D, got shape {indices.shape}", path)
    if int(indices.max()) >= len(palette):
        raise InputError(f"palette mask uses index {int(indices.max())}, beyond its {len(palette)} colours", path)
    is_black = ~palette.any(axis=1)
    if is_black[0]:
        return indices > 0
    if is_black[np.unique(indices)].any():
        return ~is_black[indices]
    raise InputError(
        "palette mask without black: cannot tell its background from its defects; "
        "store it as 8-bit gray (0 = background)",
        path,
    )


# TIFF compressions that lose information: old-style and new-style JPEG, lossy JPEG (DNG).
_LOSSY_TIFF_COMPRESSIONS = (*_JPEG_COMPRESSIONS, 34892)


def is_lossy(path: str | Path) -> bool:
    """Whether a file is stored with lossy compression (JPEG, or a JPEG-compressed TIFF).

    Lossy noise around a mask's defects survives the ``mask > 0`` binarisation as extra defect pixels.
    Files that cannot be read count as lossless: reading them reports the problem.
    """
    path = Path(path)
    kind = file_format(path)
    if kind == "jpeg":
        return True
    if kind != "tiff":
        return False
    try:
        with open_tiff(path) as tif:
            return int(tif.pages.first.compression) in _LOSSY_TIFF_COMPRESSIONS
    except Exception:  # damaged files are reported by the readers
        return False


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(H, W)`` of an image file as :func:`read_image` reads it, mostly without decoding its pixels.

    ``score`` needs only the size of each test image, and decoding a 1500 x 1000 PNG takes 30 ms. The size
    comes from the header where the file is plainly one the decoder reads, and the file is still checked as
    far as that is cheap:

    - PNG: the IHDR header, after every chunk and its checksum are checked (a truncated or damaged file
      is the error that decoding gives); the compressed pixel data are not inflated;
    - JPEG: the frame header (SOF), confirmed by OpenCV's decoding at 1/8 scale, which reads the whole
      file (a damaged or truncated one is the decoder's error) but skips most of the work;
    - TIFF: the first page's header, for uncompressed pages whose strips or tiles lie within the file and
      hold exactly the image's bytes.

    The stored size either way: OpenCV's ``IMREAD_UNCHANGED`` reading does not apply EXIF/TIFF orientation.
    Any other file (BMP, an unusual PNG or JPEG, a compressed TIFF, a file beyond OpenCV's size limits, one
    the header reading finds wrong in any way) is decoded as before, which gives its size or its error.
    """
    path = Path(path)
    try:
        size = _header_size(path)
    except Exception:  # whatever it is, decoding the file reports it
        size = None
    if size is not None:
        return size
    array = _read_raw(path)
    return int(array.shape[0]), int(array.shape[1])


def _header_size(path: Path) -> tuple[int, int] | None:
    """:func:`image_size` from the file's header, or ``None`` where decoding must decide."""
    kind = file_format(path)
    if kind == "png":
        return _png_size(path)
    if kind == "jpeg":
        return _jpeg_size(path)
    if kind == "tiff":
        return _tiff_size(path)
    return None


def _within_opencv_limits(height: int, width: int) -> bool:
    """Whether OpenCV's readers accept an image of this size (``OPENCV_IO_MAX_IMAGE_*``, as OpenCV reads them;
    ``False`` for a setting that does not parse, which decoding then interprets)."""
    try:
        max_width = int(os.environ.get("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20))
        max_height = int(os.environ.get("OPENCV_IO_MAX_IMAGE_HEIGHT", 1 << 20))
        max_pixels = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
    except ValueError:
        return False
    return 0 < width <= max_width and 0 < height <= max_height and width * height <= max_pixels


# Bit depths libpng accepts for each PNG colour type, and the chunks (besides IHDR, IDAT and IEND) that a plain
# file of that type may hold, in order, before its IDAT chunks (other ancillary chunks are not passed on).
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_BEFORE_IDAT = {
    0: ([], [b"tRNS"]),
    2: ([], [b"PLTE"], [b"tRNS"], [b"PLTE", b"tRNS"]),
    3: ([b"PLTE"], [b"PLTE", b"tRNS"]),
    4: ([],),
    6: ([], [b"PLTE"]),
}
_PNG_MAX_SIDE = 1_000_000  # libpng's default user limit on width and height


def _png_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from IHDR, after :func:`_png_decoder_chunks` checked every chunk, for a PNG whose chunks that reach
    the decoder are in the plain order ``IHDR [PLTE] [tRNS] IDAT... IEND``, with valid values; else ``None``."""
    buffer = np.fromfile(path, dtype=np.uint8)
    if buffer[: len(_PNG_SIGNATURE)].tobytes() != _PNG_SIGNATURE:
        return None
    # Raises as decoding would, for a damaged file or one libpng refuses; leaves out what libpng ignores.
    chunks = _png_quiet_chunks(buffer, _png_decoder_chunks(buffer, path), path)
    kinds = [kind for kind, _, _ in chunks]
    header = buffer[chunks[0][1] + 8 : chunks[0][2] - 4].tobytes()
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour = header[8:10]
    first_idat = kinds.index(b"IDAT")
    before = kinds[1:first_idat]
    if before not in _PNG_BEFORE_IDAT[colour] or set(kinds[first_idat:-1]) != {b"IDAT"} or \
            chunks[-1][2] - chunks[-1][1] != 12:  # an IEND that holds data
        return None
    if colour == 3:
        _, start, end = chunks[1]
        if (end - start - 12) // 3 > 2**depth:  # more colours than indices: libpng's own way (not checked here)
            return None
    if max(width, height) > _PNG_MAX_SIDE or not _within_opencv_limits(height, width):
        return None
    return height, width


# Start-of-frame markers (SOF0-3, 5-7, 9-11, 13-15): their segment holds the frame's size.
_JPEG_SOF = frozenset((*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)))


def _jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) of the first frame header (SOF) of a JPEG, read segment by segment up to it; ``None`` for a
    stream that is not laid out as expected, or a height left to a later DNL marker (0)."""
    if data[:2] != b"\xff\xd8":
        return None
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        while offset < len(data) and data[offset] == 0xFF:  # a marker may be preceded by fill bytes
            offset += 1
        if offset + 3 > len(data):
            return None
        marker = data[offset]
        offset += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers (TEM, RSTn): no length
            continue
        if marker in (0x00, 0xD8, 0xD9, 0xDA):  # a stuffed byte, SOI again, EOI or scan data before any frame
            return None
        length = int.from_bytes(data[offset : offset + 2], "big")
        if length < 2 or offset + length > len(data):
            return None
        if marker in _JPEG_SOF:
            if length < 8:
                return None
            height = int.from_bytes(data[offset + 3 : offset + 5], "big")
            width = int.from_bytes(data[offset + 5 : offset + 7], "big")
            return (height, width) if height and width else None
        offset += length
    return None


def _jpeg_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from a JPEG's frame header, when OpenCV decodes the file at 1/8 scale to the size that header
    implies (without orientation: as ``IMREAD_UNCHANGED`` reads it); else ``None``."""
    buffer = np.fromfile(path, dtype=np.uint8)
    size = _jpeg_frame_size(buffer.tobytes())
    if size is None or not _within_opencv_limits(*size):
        return None
    # In colour, as read_image decodes it: a gray decoding skips the colour components, and their errors.
    reduced = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION)
    height, width = size
    if reduced is None or reduced.shape[:2] != (-(-height // 8), -(-width // 8)):
        return None
    return size


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of a TIFF's first page from its header, for an uncompressed page in a colour model
    :func:`read_tiff` reads whose every strip or tile lies within the file; else ``None``."""
    with open_tiff(path) as tif:
        page = tif.pages.first
        _check_photometric(page, path)
        if int(page.compression) != 1 or page.axes not in ("YX", "YXS", "SYX"):
            return None
        # Packed depths (2-7, 12 bit ...) need imagecodecs to decode; 1 bit is unpacked by tifffile itself.
        bits = int(page.bitspersample)
        if bits not in (8, 16, 32, 64) and not (bits == 1 and page.axes == "YX"):
            return None
        size = path.stat().st_size
        segments = list(zip(page.dataoffsets, page.databytecounts, strict=True))
        if not segments or any(count <= 0 or offset + count > size for offset, count in segments):
            return None
        height, width = int(page.imagelength), int(page.imagewidth)
        if page.dtype is None or [int(count) for count in page.databytecounts] != _tiff_segment_sizes(page):
            return None  # a sample type tifffile does not read, or strips or tiles that do not hold the image
    if page.shape[page.axes.index("Y")] != height or page.shape[page.axes.index("X")] != width:
        return None
    return (height, width) if height and width else None


def _tiff_segment_sizes(page: tifffile.TiffPage) -> list[int]:
    """The byte count of each strip or tile of an uncompressed page that holds exactly its image: rows of
    whole bytes, the last strip only as tall as the rows left."""
    height, width = int(page.imagelength), int(page.imagewidth)
    planes = int(page.samplesperpixel) if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE else 1
    bits = int(page.bitspersample) * int(page.samplesperpixel) // planes
    if page.is_tiled:
        tile_height, tile_width = int(page.tilelength), int(page.tilewidth)
        if tile_height <= 0 or tile_width <= 0:
            return []
        count = -(-height // tile_height) * -(-width // tile_width)
        return [tile_height * ((tile_width * bits + 7) // 8)] * (count * planes)
    rows = min(int(page.rowsperstrip), height)
    if rows <= 0:
        return []
    strip_rows = [min(rows, height - top) for top in range(0, height, rows)]
    return [n * ((width * bits + 7) // 8) for n in strip_rows] * planes
