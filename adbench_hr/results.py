"""Result files (schema ``adbench-hr/result/v1``, docs/cli.md): one JSON per method x dataset x category."""

from __future__ import annotations

import codecs
import json
import math
import os
import platform
import re
import sys
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from adbench_hr import __version__
from adbench_hr._source import source_fingerprint
from adbench_hr.errors import BIDI_CONTROLS, InputError, without_surrogates
from adbench_hr.fileio import refuse_empty_file, write_json_atomic
from adbench_hr.metrics import AREA_BIN_EDGES_PX, QUARTILE_NAMES, area_label, limit_key

SCHEMA = "adbench-hr/result/v1"
SCHEMA_FAMILY = "adbench-hr/result/"
#: Image- and pixel-level AUROC of ``metrics``.
HEAD_METRICS = ("i_auroc", "p_auroc")
#: Counts of ``metrics``.
COUNT_KEYS = ("n_images", "n_defective_images", "n_defects")
#: The size-resolved metrics of ``metrics`` (and of a lowres result's ``metrics.original_defects``).
SIZE_METRICS = ("aupro", "aupro_cumulative", "aupro_quartile", "aupro_by_area", "rho", "size_quartiles_px")
#: Defect counts of ``metrics.original_defects``: defects with a pixel left at low resolution, and lost ones.
ORIGINAL_COUNT_KEYS = ("n_defects", "n_lost_defects")
_VERSIONED_PACKAGES = ("numpy", "scipy", "opencv-python-headless", "torch", "timm", "tifffile")

# A run's two folders, OUT/<method>/<dataset>/results and .../maps: `run` writes them, `score` recognises a
# run's maps by them and the leaderboard finds the maps of a moved run folder through them.
RUN_RESULTS_FOLDER = "results"
RUN_MAPS_FOLDER = "maps"


def library_versions() -> dict[str, str]:
    """Versions of Python, adbench-hr (with its source's fingerprint, which tells apart builds of one version) and
    the main libraries (read from metadata, nothing imported)."""
    versions = {
        "python": platform.python_version(),
        "adbench-hr": __version__,
        "adbench-hr-fingerprint": source_fingerprint(),
    }
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_result(
    *,
    method: str,
    dataset: str,
    category: str,
    protocol: dict[str, Any],
    metrics: dict[str, Any],
    pretrained_backbone: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a result dictionary with the required keys first and ``extra`` keys after them."""
    result = {
        "schema": SCHEMA,
        "method": method,
        "dataset": dataset,
        "category": category,
        "protocol": protocol,
        "pretrained_backbone": pretrained_backbone,
        "metrics": metrics,
    }
    result.update(extra)
    result.setdefault("versions", library_versions())
    result.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return result


# Characters that end a line or move the cursor (newline, tab, carriage return, NUL ...; str.splitlines() breaks
# at every Cc, Zl and Zp character): a name holding one would break the one-line warnings and CSV rows.
_CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")
# Characters that make two names look alike or reorder how one is shown: "patch\u200bcore" would rank as a
# method of its own that reads as "patchcore". (Other format characters, such as the zero-width non-joiner of
# Persian script, belong to real names.)
_SPOOFING = re.compile(f"[\u200b\u2060\ufeff{BIDI_CONTROLS}]")


def name_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a result's method, dataset or category name (or protocol label part), else ``None``.

    Names appear in one-line warnings, leaderboard CSV cells and plot legends: a name must be a non-blank string
    without control characters.
    """
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in value):
        hint = misread_name_hint(value)
        return f"must not contain control characters (newline, tab ...), got {value[:80]!r}" + (
            f"; it {hint}" if hint else "")
    if _SPOOFING.search(value):
        return (f"must not contain invisible or text-direction characters (zero-width space, bidi override ...), "
                f"got {value[:80]!r}")
    if problem := undecodable_name(value):
        return problem
    return None


def undecodable_name(value: str) -> str | None:
    """Why ``value``, a name read from the file system, cannot be written as UTF-8 text (a file name in another
    encoding, whose bytes Python keeps as lone surrogates), else ``None``.

    Such a name cannot go into a result, ``image_scores.csv`` or a leaderboard table or plot.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        if hint := misread_name_hint(value):
            return hint
        return f"is not valid UTF-8 text (a file name in another encoding?): '{without_surrogates(value)[:80]}'"
    return None


def misread_name_hint(value: str) -> str | None:
    """Where Python decodes file names in another encoding than UTF-8 (``LC_ALL=C`` with ``PYTHONUTF8=0``: ASCII;
    a Latin-1 locale) and ``value``, a name read from the file system, is UTF-8 text as stored: that it is, and
    what to do (``is the UTF-8 text ...``), else ``None``.

    Read so, a name in UTF-8 (``bottlé``) holds undecodable bytes or control characters (the bytes 0x80-0x9f of
    Latin-1), and would be refused as a name in another encoding that the user must rename.
    """
    encoding = sys.getfilesystemencoding()
    if codecs.lookup(encoding).name == "utf-8":
        return None
    try:
        text = os.fsencode(value).decode("utf-8")
    except (UnicodeError, ValueError):  # not from the file system, or not UTF-8 either
        return None
    if text == value:
        return None
    return (f"is the UTF-8 text {text[:80]!r}, which Python reads as {encoding} in this locale: run with a UTF-8 "
            "locale (LC_ALL=C.UTF-8) or PYTHONUTF8=1")


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    """Check a result (:func:`validate_result`, what :func:`load_result` checks) and write it atomically.

    A result that would be refused on reading is refused here, before it replaces a good file: a folder
    holding one would stop ``leaderboard`` over all of it.
    """
    try:
        validate_result(result, Path(path))
    except InputError as exc:  # the file named is not malformed: it is not written
        raise InputError(f"result not written: {exc.problem.removeprefix(_MALFORMED)}", path) from None
    write_json_atomic(path, result)


class RepeatedKeyError(ValueError):
    """A JSON object that names one key twice: parsers disagree on which value counts (Python's takes the
    last, others the first), so a result holding one has no single reading."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise RepeatedKeyError(key)
        obj[key] = value
    return obj


def parse_result_text(text: str) -> Any:
    """``json.loads(text)``, refusing an object that repeats a key (:class:`RepeatedKeyError`)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a result file and check it (:func:`validate_result`); :class:`InputError` names the file."""
    path = Path(path)
    refuse_empty_file(path, "result file")
    try:
        result = parse_result_text(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError("result file not found", path) from None
    except OSError as exc:  # a folder, no permission, an I/O error: named like the other problems
        raise InputError(f"cannot read the result file ({exc.strerror or exc})", path) from None
    except (RepeatedKeyError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"not a valid JSON result file ({exc})", path) from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits(), 4300)
        raise InputError("not a valid JSON result file (a number with thousands of digits)", path) from None
    clip_aupro_rounding(result)
    validate_result(result, path)
    return result


#: How far above 1 the AUPRO (and so rho) values of older adbench-hr builds may lie: before d846c6d (2026-11-27,
#: version 0.1.0 as now) the normalised trapezoid sums were not clipped, so a map that separates the defects
#: gave 1 + a few 1e-14. Values up to 1 + this are such rounding and read as 1, as the engine now writes them.
AUPRO_ROUNDING = 1e-9


def _aupro_dicts(block: Any) -> Iterable[dict[str, Any]]:
    """The limit-keyed AUPRO and rho objects of a metric block (``metrics`` or ``metrics.original_defects``)."""
    if not isinstance(block, dict):
        return
    yield block.get("aupro")
    yield block.get("rho")  # a mean of AUPROs times a ratio of two: above 1 only by their rounding
    for key in ("aupro_cumulative", "aupro_quartile"):
        if isinstance(block.get(key), dict):
            yield from block[key].values()
    if isinstance(block.get("aupro_by_area"), list):
        yield from (entry.get("aupro") for entry in block["aupro_by_area"] if isinstance(entry, dict))


def clip_aupro_rounding(data: Any) -> float | None:
    """Read the AUPRO and rho values of a parsed result that lie above 1 by at most :data:`AUPRO_ROUNDING` (an
    older build's rounding) as 1, in place; return the largest of them, or ``None`` when there is none. Other
    values, larger ones included, are left for :func:`validate_result` to judge."""
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        return None
    largest = None
    for block in (metrics, metrics.get("original_defects")):
        for scores in _aupro_dicts(block):
            if not isinstance(scores, dict):
                continue
            for key, value in scores.items():
                if isinstance(value, float) and 1.0 < value <= 1.0 + AUPRO_ROUNDING:
                    largest = value if largest is None else max(largest, value)
                    scores[key] = 1.0
    return largest


def is_number(value: Any) -> bool:
    """Whether a parsed JSON value is a number (``true`` is not, although bool is an int subclass)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_MALFORMED = "malformed result file: "


def _malformed(problem: str, path: Path) -> InputError:
    return InputError(f"{_MALFORMED}{problem}", path)


def _check_number(value: Any, where: str, path: Path, *, score: bool = False) -> None:
    """A finite number or null; with ``score``, one in [0, 1] (AUROC, AUPRO, rho)."""
    if value is None:
        return
    if not is_number(value):
        raise _malformed(f"{where} must be a number or null, got {value!r}", path)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise _malformed(f"{where} must be a finite number or null, got {str(value)[:40]}", path)
    if score and not 0.0 <= value <= 1.0:
        raise _malformed(f"{where} must lie in [0, 1], got {value!r}", path)


def _check_count(value: Any, where: str, path: Path) -> None:
    """A count: a non-negative integer (``3.0`` is allowed, ``2.5`` is not) or null."""
    _check_number(value, where, path)
    if value is not None and (value < 0 or value != int(value)):
        raise _malformed(f"{where} must be a non-negative integer or null, got {value!r}", path)


def _check_limit_dict(value: Any, where: str, path: Path, limits: frozenset[str] | None) -> None:
    """Null, or an object holding a score (or null) for exactly the result's FPR ``limits`` (any limits when
    ``None``): a missing limit would silently drop the category from that column's mean."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise _malformed(f"{where} must be an object keyed by FPR limit or null", path)
    for key, number in value.items():
        try:
            valid = 0.0 < float(limit_key(key)) <= 1.0
        except ValueError:
            valid = False
        if not valid:
            raise _malformed(f"{where} has a key {key!r} that is not an FPR limit in (0, 1]", path)
        _check_number(number, f"{where}[{key!r}]", path, score=True)
    keys = {limit_key(key) for key in value}
    if len(keys) != len(value):
        raise _malformed(f"{where} names one FPR limit twice", path)
    if limits is None:
        return
    if missing := sorted(limits - keys, key=float):
        raise _malformed(f"{where} lacks FPR limit {missing[0]} (null where it is undefined)", path)
    if extra := sorted(keys - limits, key=float):
        raise _malformed(f"{where} has FPR limit {extra[0]}, which the result's other limits do not", path)


def _check_bin_dict(value: Any, where: str, path: Path, limits: frozenset[str] | None) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _malformed(f"{where} must be an object keyed by quartile or null", path)
    if extra := sorted(set(value) - set(QUARTILE_NAMES)):
        raise _malformed(f"{where} has an unknown bin {extra[0]!r} (expected {', '.join(QUARTILE_NAMES)})", path)
    for name, scores in value.items():
        _check_limit_dict(scores, f"{where}.{name}", path, limits)
    if missing := [name for name in QUARTILE_NAMES if name not in value]:
        raise _malformed(f"{where} lacks bin {missing[0]} (null where it is undefined)", path)


def _check_area_bins(value: Any, where: str, path: Path, limits: frozenset[str] | None) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise _malformed(f"{where} must be a list or null", path)
    for index, entry in enumerate(value):
        entry_where = f"{where}[{index}]"
        if not isinstance(entry, dict) or not is_number(entry.get("min_px")):
            raise _malformed(f"{entry_where} needs a numeric min_px", path)
        _check_number(entry.get("max_px"), f"{entry_where}.max_px", path)
        for key in ("n_defects", "n_lost"):
            _check_count(entry.get(key), f"{entry_where}.{key}", path)
        _check_limit_dict(entry.get("aupro"), f"{entry_where}.aupro", path, limits)
        if entry.get("n_defects") == 0 and any(v is not None for v in (entry.get("aupro") or {}).values()):
            raise _malformed(f"{entry_where} has no defects but an AUPRO (an empty bin is null)", path)
    # The bins are fixed (SPEC section 2), so that columns and plots compare like with like.
    edges = [(entry["min_px"], entry.get("max_px")) for entry in value]
    if edges != [tuple(bin_edges) for bin_edges in AREA_BIN_EDGES_PX]:
        expected = ", ".join(area_label(lo, hi) for lo, hi in AREA_BIN_EDGES_PX)
        raise _malformed(f"{where} must hold the area bins {expected} in that order", path)


def _check_metric_block(block: dict[str, Any], where: str, path: Path, limits: frozenset[str] | None) -> None:
    """Check the size-resolved metrics shared by ``metrics`` and ``metrics.original_defects``."""
    for key in ("aupro", "rho"):
        _check_limit_dict(block.get(key), f"{where}.{key}", path, limits)
    for key in ("aupro_cumulative", "aupro_quartile"):
        _check_bin_dict(block.get(key), f"{where}.{key}", path, limits)
    _check_area_bins(block.get("aupro_by_area"), f"{where}.aupro_by_area", path, limits)
    sizes = block.get("size_quartiles_px")
    if sizes is not None and not (isinstance(sizes, list) and len(sizes) == 3):
        raise _malformed(f"{where}.size_quartiles_px must be [q25, q50, q75] or null", path)
    for index, value in enumerate(sizes or []):
        _check_number(value, f"{where}.size_quartiles_px[{index}]", path)


def _result_limits(protocol: Any, metrics: dict[str, Any]) -> frozenset[str] | None:
    """The FPR limits every limit-keyed metric must hold: the protocol's ``fpr_limits``, else those of
    ``metrics.aupro`` or ``metrics.rho``; ``None`` when nothing declares them (or a key is not a number,
    which the checks then name)."""
    declared = protocol.get("fpr_limits") if isinstance(protocol, dict) else None
    try:
        if declared:
            return frozenset(limit_key(x) for x in declared)
        for key in ("aupro", "rho"):
            if isinstance(metrics.get(key), dict):
                return frozenset(limit_key(x) for x in metrics[key])
    except ValueError:
        pass
    return None


def _check_original_defects(value: Any, path: Path, limits: frozenset[str] | None) -> None:
    """``metrics.original_defects`` of a low-resolution result: the metric block per original defect."""
    if value is None:
        return
    where = "metrics.original_defects"
    if not isinstance(value, dict):
        raise _malformed(f"{where} must be an object or null", path)
    for key in ORIGINAL_COUNT_KEYS:
        _check_count(value.get(key), f"{where}.{key}", path)
    _check_metric_block(value, where, path, limits)


def _check_pro_curves(value: Any, path: Path) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _malformed("metrics.pro_curves must be an object or null", path)
    _check_number(value.get("fpr_limit"), "metrics.pro_curves.fpr_limit", path)
    for name, curve in value.items():
        if name == "fpr_limit" or curve is None:
            continue
        where = f"metrics.pro_curves.{name}"
        if not isinstance(curve, dict):
            raise _malformed(f"{where} must be an object with 'fpr' and 'pro' lists", path)
        fpr, pro = curve.get("fpr"), curve.get("pro")
        if not isinstance(fpr, list) or not isinstance(pro, list) or len(fpr) != len(pro):
            raise _malformed(f"{where} needs 'fpr' and 'pro' lists of equal length", path)
        if not all(is_number(x) for x in fpr) or not all(is_number(x) for x in pro):
            raise _malformed(f"{where} holds a value that is not a number", path)


def schema_problem(schema: Any) -> str:
    """The one-line problem of a file whose ``schema`` is not :data:`SCHEMA`: another version, or no result."""
    if isinstance(schema, str) and schema.startswith(SCHEMA_FAMILY):
        return f"unsupported result schema {schema!r} (expected {SCHEMA!r})"
    return f"not an adbench-hr result file (schema {schema!r}, expected {SCHEMA!r})"


def validate_result(data: Any, path: Path) -> None:
    """Check that ``data`` is a well-formed ``adbench-hr/result/v1`` object.

    Every metric of the SPEC must be present, null where it is undefined (a missing one would silently
    drop the category from a mean); limit-keyed metrics hold exactly the result's FPR limits, and the
    area bins are the fixed ones. Present values of the wrong type are refused.

    Parameters
    ----------
    data : Any
        Parsed JSON.
    path : Path
        The file it came from, for the error message.

    Raises
    ------
    InputError
        Naming ``path`` and the first problem found.
    """
    if not isinstance(data, dict):
        raise _malformed("top level must be a JSON object", path)
    if data.get("schema") != SCHEMA:
        raise InputError(schema_problem(data.get("schema")), path)
    for key in ("method", "dataset", "category"):
        if problem := name_problem(data.get(key)):
            raise _malformed(f"{key!r} {problem}", path)
    protocol = data.get("protocol")
    if isinstance(protocol, dict):
        if problem := name_problem(protocol.get("name")):
            raise _malformed(f"protocol.name {problem}", path)
        if "@" in protocol["name"] or "/" in protocol["name"]:  # they separate the parts of a label
            raise _malformed("protocol.name must not contain '@' or '/'", path)
        thresholds = protocol.get("pro_thresholds")
        if thresholds is not None and (problem := name_problem(thresholds)):
            raise _malformed(f"protocol.pro_thresholds, unless null, {problem}", path)
        limits = protocol.get("fpr_limits")
        if limits is not None and not (
            isinstance(limits, list) and all(is_number(x) and 0 < x <= 1 for x in limits)
        ):
            raise _malformed("protocol.fpr_limits must be a list of numbers in (0, 1]", path)
        size = protocol.get("eval_size")
        _check_number(size, "protocol.eval_size", path)
        if size is not None and (size < 1 or size != int(size)):  # it names the label: lowres@256
            raise _malformed(f"protocol.eval_size must be a positive integer or null, got {size!r}", path)
    elif not isinstance(protocol, str) or not protocol:
        raise _malformed("'protocol' must be an object with a 'name'", path)
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise _malformed("'metrics' must be an object", path)
    for key in HEAD_METRICS:
        _check_number(metrics.get(key), f"metrics.{key}", path, score=True)
    for key in COUNT_KEYS:
        _check_count(metrics.get(key), f"metrics.{key}", path)
    limits = _result_limits(protocol, metrics)
    _check_metric_block(metrics, "metrics", path, limits)
    _check_pro_curves(metrics.get("pro_curves"), path)
    _check_original_defects(metrics.get("original_defects"), path, limits)
    backbone = data.get("pretrained_backbone")
    if backbone is not None and not isinstance(backbone, bool):
        raise _malformed("'pretrained_backbone' must be true, false or null", path)
    resource = data.get("resource_options")
    if resource is not None and not (isinstance(resource, list) and all(isinstance(k, str) for k in resource)):
        raise _malformed("'resource_options' must be a list of option names or null", path)
    timing = data.get("timing")
    if timing is not None and not isinstance(timing, dict):
        raise _malformed("'timing' must be an object or null", path)
    for key, value in (timing or {}).items():
        if problem := name_problem(key):  # a timing key names a column of the leaderboard's tables
            raise _malformed(f"a timing key {problem}", path)
        _check_number(value, f"timing.{key}", path)
    generator = data.get("dataset_generator")
    if generator is not None and not isinstance(generator, dict):
        raise _malformed("'dataset_generator' must be an object or null", path)
    for key in ("maps_dir", "dataset_root"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _malformed(f"{key!r} must be a path string or null", path)
    # Last, so that a present but wrong value is named first: a missing metric would silently drop the
    # category from that column's mean.
    _require(metrics, (*HEAD_METRICS, *SIZE_METRICS, *COUNT_KEYS), "metrics", path)
    if metrics.get("original_defects") is not None:
        _require(metrics["original_defects"], (*ORIGINAL_COUNT_KEYS, *SIZE_METRICS), "metrics.original_defects", path)


def _require(block: dict[str, Any], keys: Iterable[str], where: str, path: Path) -> None:
    if missing := [key for key in keys if key not in block]:
        raise _malformed(f"{where} lacks {missing[0]!r} (null where it is undefined)", path)
