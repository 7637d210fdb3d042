"""Reading and writing anomaly maps in MVTec's submission layout.

Layout: ``MAPS/CATEGORY/<sample_id>.<ext>`` where ``sample_id`` is e.g. ``test/crack/000``; ``ext`` is
``tiff``/``tif`` (float32, the convention), ``npy`` or an 8/16-bit ``png``. Optional image scores come
from ``image_scores.csv`` (columns ``path,score``) in ``MAPS/CATEGORY/``, else ``MAPS/``; without it the
image score is the map's maximum.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tifffile

from adbench_hr.errors import InputError
from adbench_hr.fileio import atomic_path, check_link, refuse_empty_file
from adbench_hr.imageio import (
    IMAGE_EXTENSIONS,
    decode_unchanged,
    file_format,
    open_tiff,
    read_failure,
    read_tiff,
)
from adbench_hr.metrics import checked_image_score, checked_scores

MAP_EXTENSIONS = (".tiff", ".tif", ".npy", ".png")
IMAGE_SCORES_FILE = "image_scores.csv"


def find_map(maps_dir: str | Path, category: str, sample_id: str) -> Path:
    """Return the map file of one test sample: ``<sample id>.<ext>`` with an accepted extension in any case."""
    stem = Path(maps_dir) / category / sample_id
    found, seen = [], set()
    for ext in MAP_EXTENSIONS:
        for suffix in (ext, ext.upper()):
            candidate = stem.with_name(stem.name + suffix)
            if candidate.is_file():
                info = candidate.stat()
                if (info.st_dev, info.st_ino) not in seen:  # a case-insensitive file system finds it twice
                    seen.add((info.st_dev, info.st_ino))
                    found.append(candidate)
            else:  # a broken link (or a loop) is a map that cannot be read, even beside another map file
                check_link(candidate)
    if not found:  # mixed case (".Tif"), or no map file: list the folder, only for these rare cases
        entries = _entries_named_like(stem)
        found = [path for path in entries if path.is_file()]
        if not found:  # say why a map that seems to be there cannot be read
            for path in entries:
                check_link(path)
                if path.is_dir():
                    raise InputError("a folder where an anomaly map file should be", path)
                if path.exists():
                    raise InputError("not a regular file (a device, pipe or socket) where an anomaly map file "
                                     "should be", path)
    if len(found) > 1:  # which one was meant is a guess: refuse rather than score the wrong one
        raise InputError(f"two anomaly maps for one image ({', '.join(p.name for p in found)})", found[0])
    if not found:
        hint = _missing_map_hint(Path(maps_dir), category, sample_id)
        raise InputError(f"missing anomaly map (looked for {', '.join(MAP_EXTENSIONS)}){hint}", f"{stem}.tiff")
    return found[0]


def _missing_map_hint(maps_dir: Path, category: str, sample_id: str) -> str:
    """Where the maps seem to be, when a map is missing because they are laid out otherwise: ``--maps`` naming the
    category's folder itself, or map files elsewhere under it (MVTec AD 2's ``test_public/``, VisA's own paths)."""
    folder = maps_dir / category
    if not folder.is_dir():
        if folder.is_symlink() and not folder.exists():
            return f"; {category} in {maps_dir} is a broken symbolic link (to {os.readlink(folder)}), not a folder"
        if folder.exists():
            return f"; {category} in {maps_dir} is a file, not a folder"
        if (maps_dir / "test").is_dir():
            return (f"; {maps_dir} holds test/ itself: pass the folder that holds {category}/ as --maps "
                    "(MAPS/CATEGORY/test/<defect>/<stem>.tiff)")
        return f"; there is no folder {category}/ in {maps_dir}"
    if (folder / sample_id).parent.is_dir():
        return ""
    elsewhere = next((path for path in sorted(folder.rglob("*")) if path.suffix.lower() in MAP_EXTENSIONS
                      and not path.name.startswith(".") and path.is_file()), None)
    if elsewhere is None:
        return ""
    return (f"; found maps elsewhere, e.g. {elsewhere.relative_to(folder).as_posix()}: a map's path in "
            f"{folder} is its sample id, here {sample_id}, with the extension")


def _entries_named_like(stem: Path) -> list[Path]:
    """Entries of ``stem``'s folder named ``<stem>.<map extension>``, the extension in any case: files, links
    and folders."""
    try:
        names = sorted(os.listdir(stem.parent))
    except OSError:  # no such folder
        return []
    return [
        stem.parent / name
        for name in names
        if name.rpartition(".")[0] == stem.name and f".{name.rpartition('.')[2].lower()}" in MAP_EXTENSIONS
    ]


#: File that ``run`` keeps in ``MAPS/CATEGORY/`` while it rewrites the category's maps: until all of them and
#: ``image_scores.csv`` are written, the folder mixes new maps with those of an earlier run.
INCOMPLETE_MARKER = ".incomplete"


def mark_maps_incomplete(maps_dir: str | Path, category: str) -> None:
    """Mark ``MAPS/CATEGORY/`` as being rewritten (see :data:`INCOMPLETE_MARKER`)."""
    folder = Path(maps_dir) / category
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / INCOMPLETE_MARKER) as temp:
        temp.write_text("adbench-hr run is writing these maps; an interrupted run leaves this file\n", encoding="utf-8")


def mark_maps_complete(maps_dir: str | Path, category: str) -> None:
    """Remove the mark of :func:`mark_maps_incomplete`: every map and ``image_scores.csv`` is written."""
    (Path(maps_dir) / category / INCOMPLETE_MARKER).unlink(missing_ok=True)


def check_maps_complete(maps_dir: str | Path, category: str) -> None:
    """Raise an :class:`InputError` for a category whose maps a run is rewriting or left half-written."""
    marker = Path(maps_dir) / category / INCOMPLETE_MARKER
    if marker.exists():
        raise InputError(
            "these maps are being written, or were left half-written by an interrupted `adbench-hr run` (some "
            "may come from other settings): finish that run, then score", marker.parent
        )


def unmatched_maps(maps_dir: str | Path, category: str, sample_ids: set[str]) -> list[Path]:
    """Map files under ``MAPS/CATEGORY/`` whose sample id is not among ``sample_ids`` (misnamed or extra)."""
    folder = Path(maps_dir) / category
    extra = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in MAP_EXTENSIONS and path.is_file() and not path.name.startswith("."):
            if path.relative_to(folder).with_suffix("").as_posix() not in sample_ids:
                extra.append(path)
    return extra


def read_map(path: str | Path) -> np.ndarray:
    """Read an anomaly map as a 2-D float array (values as stored, no rescaling; a ``bool`` map as 0 and 1).

    float32, unless the file holds values that float32 would round (float64 or wide integer maps): those
    stay float64, so that distinct scores are not merged into ties.
    """
    path = Path(path)
    refuse_empty_file(path, "anomaly map file")
    kind = file_format(path)  # the content decides: a TIFF named .png still gets the TIFF checks
    try:
        if kind == "tiff":
            array = read_tiff(path, single_page=True, raw_values=True)
        elif kind == "npy":
            array = np.load(path, allow_pickle=False)
        elif kind == "png":
            array = decode_unchanged(path)
            if array is None:
                raise ValueError("cannot decode PNG")
        elif kind is not None:
            raise InputError(f"anomaly map is a {kind.upper()} file (use TIFF, NPY or PNG)", path)
        else:
            suffix = path.suffix.lower()
            raise InputError(f"unsupported map format {suffix!r} (use {', '.join(MAP_EXTENSIONS)})", path)
    except InputError:
        raise
    except Exception as exc:  # corrupt files raise many different exception types
        raise read_failure(exc, "anomaly map", path) from None
    array = np.asarray(array)
    if array.dtype == np.bool_:  # a bilevel map (np.save or tifffile.imwrite of `a > t`): its stored 0/1
        array = array.view(np.uint8)
    if array.size == 0:
        raise InputError("unreadable or corrupt anomaly map (no pixel data)", path)
    array = array.reshape(_read_shape(array.shape))
    if array.ndim != 2:
        raise InputError(f"anomaly map must be single-channel 2-D, got shape {array.shape}", path)
    return checked_scores(array, path)  # float32, or float64 where float32 would round the values


def _read_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape :func:`read_map` gives a map stored as ``shape``: ``(H, W, 1)`` and ``(1, H, W)`` (as a torch
    tensor is dumped) are ``(H, W)``."""
    if len(shape) == 3 and shape[-1] == 1:
        return shape[:2]
    if len(shape) == 3 and shape[0] == 1:
        return shape[1:]
    return shape


def map_header_shape(path: str | Path) -> tuple[int, int] | None:
    """The ``(H, W)`` an anomaly map file declares in its header, without decoding its pixels; ``None`` where the
    header does not say (another format, several pages, a damaged file: :func:`read_map` reports those).

    A map of a few hundred KB can declare 30000 x 30000 pixels (PNG and TIFF compress a constant map a
    thousandfold): comparing this with the image's size first spares decoding gigabytes only to refuse them.
    """
    path = Path(path)
    try:
        kind = file_format(path)
        if kind == "png":
            with path.open("rb") as handle:
                head = handle.read(24)
            if len(head) == 24 and head[12:16] == b"IHDR":
                return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
        elif kind == "tiff":
            with open_tiff(path) as tif:
                if len(tif.pages) == 1:
                    page = tif.pages.first
                    return int(page.imagelength), int(page.imagewidth)
        elif kind == "npy":
            with path.open("rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape = tuple(int(side) for side in read_header(handle)[0])
            shape = _read_shape(shape)
            if len(shape) == 2:
                return shape[0], shape[1]
    except Exception:  # damaged: read_map names the problem
        return None
    return None


def map_file_name(sample_id: str) -> str:
    """The file, relative to a category's maps folder, that ``run`` writes the map of ``sample_id`` to
    (``test/<defect>/<stem>.tiff``, the submission layout), and that its ``image_scores.csv`` names."""
    return f"{sample_id}.tiff"


def write_map(path: str | Path, anomaly_map: np.ndarray, durable: bool = True) -> None:
    """Write a TIFF map atomically, uncompressed: float32, or float64 where float32 would round the values
    (:func:`exact_scores`), so that the file holds the scores as they were predicted.

    Float maps shrink by only ~20 % under zlib, which costs ~0.2 s per 1024 px map: more than the
    prediction itself on a GPU. ``durable=False`` leaves flushing to the disk to the caller
    (:func:`~adbench_hr.fileio.sync_files`, once for many maps).
    """
    array = checked_scores(anomaly_map, path)  # what read_map would refuse is not written
    with atomic_path(path, durable=durable) as temp:
        tifffile.imwrite(temp, array)


def _normalise_key(text: str, category: str, sample_ids: set[str] | None, aliases: Mapping[str, str]) -> str:
    key = text.strip().replace("\\", "/").lstrip("./")
    for ext in MAP_EXTENSIONS + IMAGE_EXTENSIONS:
        if key.lower().endswith(ext.lower()):
            key = key[: -len(ext)]
            break
    # A leading category folder is dropped, unless the key is a sample id as it stands (category "test").
    if key.startswith(f"{category}/") and (sample_ids is None or key not in sample_ids):
        key = key[len(category) + 1 :]
    if key in aliases and (sample_ids is None or key not in sample_ids):
        return aliases[key]
    if sample_ids is not None and key not in sample_ids:
        # An absolute or longer path (/data/maps/CAT/test/crack/000.tiff, C:\...\CAT\test\...): the id is
        # what follows this category's folder. Only this category's: a shared file's rows of other
        # categories hold the same ids (test/good/000) and must stay unmatched.
        parts = key.split("/")
        for start in range(len(parts) - 1, 0, -1):
            if parts[start - 1] == category:
                rest = "/".join(parts[start:])
                if rest in sample_ids:
                    return rest
                if rest in aliases:
                    return aliases[rest]
    return key


def find_image_scores(maps_dir: str | Path, category: str, warnings: list[str] | None = None) -> Path | None:
    """Return the ``image_scores.csv`` that applies to a category, if there is one: ``MAPS/CATEGORY/``'s, else
    ``MAPS/``'s. When both exist, a warning naming the one used and the one ignored is appended to ``warnings``.

    Raises
    ------
    InputError
        For a file named ``image_scores.csv`` but for its case (``Image_Scores.csv``), which would otherwise be
        ignored in favour of the map maxima; a broken link or a folder of that name.
    """
    found = []
    for folder in (Path(maps_dir) / category, Path(maps_dir)):
        _check_scores_name(folder)
        candidate = folder / IMAGE_SCORES_FILE
        check_link(candidate)
        if candidate.is_file():
            found.append(candidate)
        elif candidate.exists():
            raise InputError("image score file is not a regular file", candidate)
    if len(found) > 1 and warnings is not None:
        warnings.append(f"image scores read from {found[0]}; {found[1]} is ignored (a category's "
                        f"{IMAGE_SCORES_FILE} takes precedence)")
    return found[0] if found else None


def _check_scores_name(folder: Path) -> None:
    """Refuse a file whose name is :data:`IMAGE_SCORES_FILE` in another case.

    The folder is listed, rather than the name probed: a case-insensitive file system would find
    ``Image_Scores.csv`` under the right name, and the same folder must not score differently elsewhere.
    """
    try:
        names = os.listdir(folder)
    except OSError:  # no such folder
        return
    for name in sorted(names):
        if name.lower() == IMAGE_SCORES_FILE and name != IMAGE_SCORES_FILE:
            beside = IMAGE_SCORES_FILE in names
            raise InputError(
                f"image score file beside {IMAGE_SCORES_FILE}: remove one of them" if beside else
                f"image score file must be named {IMAGE_SCORES_FILE} (in lower case) to be read: rename it",
                folder / name,
            )


def read_image_scores(path: str | Path, category: str, sample_ids: set[str] | None = None,
                      aliases: Mapping[str, str] | None = None) -> dict[str, float]:
    """Read ``path,score`` rows into ``{sample_id: score}``.

    ``path`` may be the sample id (``test/crack/000``), with or without an extension and with or
    without a leading category folder, or any longer path (absolute, Windows separators) that ends in
    ``CATEGORY/<sample id>``. ``sample_ids``, the category's ids, tell a category folder from an id that begins like it.
    ``aliases`` maps other spellings of an id to it: the test image's own path inside the category folder,
    without extension (VisA's ``Data/Images/Anomaly/000`` for ``test/bad/000``), read like an id.
    Header names are matched without case or surrounding spaces. A UTF-8 byte-order mark (Excel's
    "CSV UTF-8") is accepted.
    """
    path = Path(path)
    refuse_empty_file(path, "image score file")
    scores: dict[str, float] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            found = reader.fieldnames
            if found is not None:  # "Path, Score" as spreadsheets write it is the same header
                # Unnamed columns (a header ending in a comma) are told apart, to hold nothing but blanks.
                reader.fieldnames = [name.strip().lower() or f"\0{i}" for i, name in enumerate(found)]
            if reader.fieldnames is None or not {"path", "score"} <= set(reader.fieldnames):
                seen = "no header row" if not found else "the columns " + ",".join(found)
                raise InputError(f"image score file needs the columns 'path,score' (found {seen})", path)
            repeated = sorted({name for name in reader.fieldnames if reader.fieldnames.count(name) > 1})
            if repeated:
                raise InputError(f"image score file repeats the column(s) {', '.join(repeated)}", path)
            # Unnamed columns after path and score must be blank; one before them is an index (pandas' to_csv).
            last_named = max(reader.fieldnames.index("path"), reader.fieldnames.index("score"))
            unnamed = [name for name in reader.fieldnames[last_named + 1 :] if name.startswith("\0")]
            for row in reader:
                line = reader.line_num
                # Fields beyond the header (DictReader files them under None) or under no column name: blanks
                # from trailing commas are harmless, a value is a split number (0,87) or a misplaced column.
                extra = [*(row.get(None) or ()), *(row[name] or "" for name in unnamed)]
                if any(field.strip() for field in extra):
                    raise InputError(
                        f"line {line}: a value beyond the named columns ({', '.join(f for f in extra if f.strip())})"
                        " (a decimal comma? write 0.87, or quote the value)", path)
                if row["score"] is None:
                    raise InputError(f"line {line}: no score field", path)
                try:
                    if "_" in (row["score"] or ""):  # float() reads "1_05" as 105
                        raise ValueError(row["score"])
                    score = float(row["score"])
                except (TypeError, ValueError):
                    raise InputError(f"line {line}: score {row['score']!r} is not a number", path) from None
                if not math.isfinite(score):
                    raise InputError(f"line {line}: score is NaN or inf", path)
                key = _normalise_key(row["path"] or "", category, sample_ids, aliases or {})
                if key in scores:
                    raise InputError(f"line {line}: duplicate entry for {key!r}", path)
                scores[key] = score
    except UnicodeDecodeError:
        raise InputError("image score file is not UTF-8 text", path) from None
    except csv.Error as exc:  # e.g. a field beyond the csv module's size limit
        raise InputError(f"unreadable CSV ({exc})", path) from None
    except OSError as exc:  # a read error names the file, whatever the system put in the exception
        raise InputError(f"cannot read the image score file ({exc.strerror or exc})", path) from None
    return scores


def write_image_scores(path: str | Path, scores: dict[str, float]) -> None:
    """Write ``{sample_id: score}`` as ``image_scores.csv`` atomically.

    Raises
    ------
    InputError
        For a score that the metrics would refuse (:func:`~adbench_hr.metrics.checked_image_score`: not one
        real finite number, or one that float64, as written, would round into a tie), before anything is written.
    """
    written = {sample_id: checked_image_score(score, path, f"image score of {sample_id!r}")
               for sample_id, score in scores.items()}
    with atomic_path(path) as temp, temp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "score"])
        for sample_id, score in written.items():
            writer.writerow([map_file_name(sample_id), repr(score)])
