"""Leaderboard tables built from result files (``adbench-hr/result/v1``).

The pipeline is: :func:`load_results` (find, parse and validate JSON files) ->
:func:`leaderboard_table` (one flat row per method x dataset x protocol x category) ->
:func:`summary_table` (mean over categories, ranked by size robustness) and
:func:`protocol_gap_table` (full-resolution minus low-resolution AUPRO per area bin).

"Protocol" in the tables is always the protocol *label* of :func:`protocol_label` (``full``,
``lowres@256``, ``full/l2bt`` ...), so results scored with different evaluation sizes or PRO thresholds
are kept apart; :func:`protocol_base` recovers the name (``full``, ``lowres``) from a label.

Null metrics stay NaN everywhere: a missing value is never turned into 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adbench_hr.errors import InputError, warn, without_surrogates
from adbench_hr.fileio import atomic_path, broken_link_note, is_empty_file, refuse_empty_file
from adbench_hr.metrics import QUARTILE_NAMES, area_label, limit_key
from adbench_hr.metrics.size_bins import format_px
from adbench_hr.results import (
    COUNT_KEYS,
    HEAD_METRICS,
    ORIGINAL_COUNT_KEYS,
    RUN_RESULTS_FOLDER,
    SCHEMA_FAMILY,
    RepeatedKeyError,
    clip_aupro_rounding,
    is_number,
    parse_result_text,
    schema_problem,
    validate_result,
)
from adbench_hr.results import SCHEMA as RESULT_SCHEMA
from adbench_hr.terminal import display_width, rjust

#: Columns that identify a leaderboard row.
KEY_COLUMNS = ("method", "dataset", "protocol", "category")
#: Columns that identify a summary row (one entry of a ranking).
SUMMARY_KEYS = ("method", "dataset", "protocol")
#: The FPR limit the ranking and the plots use by default.
MAIN_LIMIT = "0.3"
#: Prefix of the columns flattened from a low-resolution result's ``metrics.original_defects`` (the
#: original-resolution defects followed to the evaluation size and binned by their original area).
ORIGINAL_PREFIX = "orig_"

_PROTOCOL_COLUMNS = ("eval_size", "pro_thresholds")
_SIZE_COLUMNS = ("size_q25_px", "size_q50_px", "size_q75_px")
_TAIL_COLUMNS = (*_SIZE_COLUMNS, *COUNT_KEYS, "n_lost_defects", "pretrained_backbone", "seed", "settings")
# Columns that describe how a result was made: a summary shows their one value, or "mixed".
_SETTING_COLUMNS = ("pretrained_backbone", "seed", "settings")
# The timing keys `adbench-hr run` writes (runner.py), in display order.
_TIMING_COLUMNS = ("fit_s", "predict_ms_per_image", "peak_host_memory_mb", "peak_gpu_memory_mb")
_FIXED_HEAD = (*KEY_COLUMNS, *_PROTOCOL_COLUMNS, *HEAD_METRICS)
# Columns that summary_table adds.
_SUMMARY_ONLY = ("rank", "complete", "n_categories")
# The group of _column_order for columns the tables do not compute (a result's extra timing keys).
_OTHER_COLUMNS = 9

_AREA_COLUMN = re.compile(r"^aupro_area_(?P<lo>[0-9.]+)-(?P<hi>[0-9.]+|inf)@(?P<limit>.+)$")
_AREA_COUNT_COLUMN = re.compile(r"^n_(?P<kind>defects|lost)_area_(?P<lo>[0-9.]+)-(?P<hi>[0-9.]+|inf)$")
_LIMITED_COLUMN = re.compile(r"^(?P<prefix>aupro_cum_|aupro_q_|aupro|rho)(?P<bin>[^@]*)@(?P<limit>.+)$")
_PROTOCOL_LABEL = re.compile(r"(?P<name>[^@/]*)(?:@(?P<size>[^/]*))?(?:/(?P<thresholds>.*))?", re.DOTALL)

Warn = Callable[[str], None]


#: The default ``warn`` callback: :func:`adbench_hr.errors.warn`, an :class:`~adbench_hr.errors.AdbenchWarning`
#: (which the CLI prints as ``warning: <message>`` on stderr, on one line).
default_warn = warn


# --------------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultFile:
    """A validated result file.

    Attributes
    ----------
    path : Path
        Where it was read from.
    data : dict
        The parsed JSON object (schema ``adbench-hr/result/v1``).
    """

    path: Path
    data: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.data["method"])

    @property
    def dataset(self) -> str:
        return str(self.data["dataset"])

    @property
    def category(self) -> str:
        return str(self.data["category"])

    @property
    def protocol(self) -> str:
        """The protocol label (``full``, ``lowres@256``, ``full/l2bt`` ...; see :func:`protocol_label`)."""
        return protocol_label(self.data["protocol"])

    @property
    def key(self) -> tuple[str, str, str, str]:
        """``(method, dataset, protocol label, category)``: must be unique in a leaderboard."""
        return (self.method, self.dataset, self.protocol, self.category)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data["metrics"]

    def resolve_path(self, key: str) -> Path | None:
        """Resolve a path-valued key (``maps_dir``, ``dataset_root``) of the result.

        Relative paths are tried against the result file's folder first, then the working directory. An
        absolute ``maps_dir`` that no longer exists is looked for where ``run`` puts it, beside the result's
        ``results`` folder: a run folder that was moved or copied as a whole keeps its maps.
        Returns ``None`` when the key is null or missing.
        """
        value = self.data.get(key)
        if not value:
            return None
        path = Path(value).expanduser()
        if path.is_absolute():
            moved = self.path.parent.parent / path.name  # <run>/results/<category>.json -> <run>/maps
            in_run = self.path.parent.name == RUN_RESULTS_FOLDER
            if key == "maps_dir" and not path.exists() and in_run and moved.is_dir():
                return moved
            return path
        beside = self.path.parent / path
        return beside if beside.exists() else path


def protocol_name(protocol: Any) -> str:
    """Name of a result's protocol; accepts the ``{"name": ...}`` object or a bare string."""
    return protocol if isinstance(protocol, str) else str(protocol["name"])


def protocol_label(protocol: Any) -> str:
    """The label that tells a result's protocol variant apart in the leaderboard.

    The name, then ``@<eval_size>`` when ``eval_size`` is not null, then ``/<pro_thresholds>`` when
    ``pro_thresholds`` is present and not ``exact``: ``full``, ``full/l2bt``, ``lowres@256``,
    ``lowres@512/l2bt``. Results with the same label are comparable; a bare-string protocol is its own
    label.
    """
    if isinstance(protocol, str):
        return protocol
    label = protocol_name(protocol)
    if protocol.get("eval_size") is not None:
        label += f"@{format_px(protocol['eval_size'])}"
    thresholds = protocol.get("pro_thresholds")
    if thresholds is not None and thresholds != "exact":
        label += f"/{thresholds}"
    return label


@dataclass(frozen=True)
class ProtocolLabel:
    """The parts of a protocol label: ``lowres@256/l2bt`` -> ``("lowres", 256.0, "l2bt")``."""

    name: str
    eval_size: float | None
    pro_thresholds: str | None

    @classmethod
    def parse(cls, label: str) -> ProtocolLabel:
        match = _PROTOCOL_LABEL.fullmatch(label)
        assert match is not None  # the pattern matches every string
        try:
            size = None if match["size"] is None else float(match["size"])
        except ValueError:
            size = None
        return cls(match["name"], size, match["thresholds"])


def protocol_base(label: str) -> str:
    """The protocol name a label starts with: ``lowres@256/l2bt`` -> ``lowres``, ``full/l2bt`` -> ``full``."""
    return ProtocolLabel.parse(label).name


def protocol_sort_key(label: str) -> tuple:
    """Display order of labels: ``full`` ones first, then ``lowres`` ones by eval size, then others by name."""
    parsed = ProtocolLabel.parse(label)
    family = {"full": 0, "lowres": 1}.get(parsed.name, 2)
    size = parsed.eval_size if family == 1 and parsed.eval_size is not None else 0.0
    return (family, size, label)


def protocol_order(labels: Iterable[str]) -> list[str]:
    """Distinct protocol labels in :func:`protocol_sort_key` order."""
    return sorted(set(labels), key=protocol_sort_key)


def full_counterpart(label: str) -> str:
    """The full-resolution label scored with the same PRO thresholds: ``lowres@256/l2bt`` -> ``full/l2bt``."""
    return protocol_label({"name": "full", "pro_thresholds": ProtocolLabel.parse(label).pro_thresholds})


#: What :func:`_json_schema` returns for text that is no valid JSON even with its repeated keys allowed.
_INVALID_JSON = object()


def _json_schema(text: str) -> Any:
    """The ``schema`` of a JSON object's text, read as Python's parser reads it (the last of repeated keys);
    :data:`_INVALID_JSON` where the text is damaged further on as well."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return _INVALID_JSON
    return data.get("schema") if isinstance(data, dict) else None


def _read_candidate(path: Path, explicit: bool, warn: Warn) -> ResultFile | None:
    """Read one JSON file; return ``None`` for files a folder search should ignore.

    A file named explicitly must be a valid result; inside a folder, JSON files of other kinds are
    skipped (unreadable ones and other result versions with a warning), but a v1 result that is
    malformed is still an error.
    """
    if is_empty_file(path):
        if explicit:
            refuse_empty_file(path, "result file")
        warn(f"{path}: skipped, empty file (0 bytes)")
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is allowed
        data = parse_result_text(text)
    except RepeatedKeyError as exc:
        # A result must have one reading; another kind of JSON file in a searched folder is not ours to judge.
        schema = _json_schema(text)
        if explicit or schema == RESULT_SCHEMA:
            raise InputError(f"not a valid result file ({exc})", path) from None
        if schema is _INVALID_JSON:  # no valid JSON at all: skipped with a warning, as without the repeated key
            warn(f"{path}: skipped, not valid JSON")
        return None
    except RecursionError:
        if explicit:
            raise InputError("not a result file (JSON nested too deeply)", path) from None
        warn(f"{path}: skipped, JSON nested too deeply")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        if explicit:
            raise InputError(f"cannot read file ({type(exc).__name__}: {exc})", path) from None
        warn(f"{path}: skipped, cannot read file ({type(exc).__name__})")
        return None
    except json.JSONDecodeError as exc:
        if explicit:
            problem = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            raise InputError(problem, path) from None
        warn(f"{path}: skipped, not valid JSON")
        return None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits(), 4300)
        if explicit:
            raise InputError("not valid JSON (a number with thousands of digits)", path) from None
        warn(f"{path}: skipped, not valid JSON (a number with thousands of digits)")
        return None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != RESULT_SCHEMA:
        if explicit:
            raise InputError(schema_problem(schema), path)
        if isinstance(schema, str) and schema.startswith(SCHEMA_FAMILY):
            warn(f"{path}: skipped, unsupported result schema {schema!r}")
        return None
    if (largest := clip_aupro_rounding(data)) is not None:
        warn(f"{path}: AUPRO or rho values up to {largest!r}, above 1 by rounding (an older adbench-hr's, "
             "or another tool's), read as 1")
    validate_result(data, path)
    return ResultFile(path, data)


def check_unique(results: Sequence[ResultFile]) -> None:
    """Raise :class:`InputError` naming both files if two results share a leaderboard key.

    The key holds the protocol label, so results that differ only in ``eval_size`` or
    ``pro_thresholds`` are not duplicates.
    """
    seen: dict[tuple[str, str, str, str], ResultFile] = {}
    for result in results:
        first = seen.setdefault(result.key, result)
        if first is not result:
            method, dataset, protocol, category = result.key
            raise InputError(
                f"duplicate result for method={method!r} dataset={dataset!r} protocol={protocol!r} "
                f"category={category!r}, also in {first.path}",
                result.path,
            )


def load_results(paths: str | Path | Iterable[str | Path], warn: Warn = default_warn) -> list[ResultFile]:
    """Find, read and validate result files.

    Parameters
    ----------
    paths : str, Path or iterable of them
        Result files, or folders searched recursively for ``*.json`` files whose ``schema`` is
        ``adbench-hr/result/v1`` (other JSON files in a folder are ignored).
    warn : callable, optional
        Receives one-line warnings about skipped files.

    Returns
    -------
    list of ResultFile
        In the order found, each file once.

    Raises
    ------
    InputError
        For a path that is neither a file nor a folder (missing, a broken link, a pipe), a malformed or
        wrong-version file given explicitly, a malformed v1 file anywhere, duplicate (method, dataset, protocol
        label, category) keys, or when no result is found.
    """
    # One path as a string is one path, not its characters ("/" would search the whole file system).
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    results: list[ResultFile] = []
    seen_files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates = [(f, False) for f in sorted(path.rglob("*.json")) if f.is_file()]
        elif path.is_file():
            candidates = [(path, True)]
        elif path.exists():  # a pipe, a device, a socket: there, but neither
            raise InputError("neither a file nor a folder (a device, pipe or socket)", path)
        else:
            raise InputError(f"no such file or folder{broken_link_note(path)}", path)
        for candidate, explicit in candidates:
            resolved = candidate.resolve()
            if resolved in seen_files:  # the same file reached twice (e.g. a file and its folder)
                continue
            seen_files.add(resolved)
            result = _read_candidate(candidate, explicit, warn)
            if result is not None:
                results.append(result)
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"no result files with schema {RESULT_SCHEMA!r} found in {where}")
    check_unique(results)
    return results


# --------------------------------------------------------------------------------------------------
# Flattening
# --------------------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _limits_of(result: ResultFile) -> list[str]:
    """The FPR limits a result declares in its protocol (so null metrics still get columns)."""
    protocol = result.data["protocol"]
    declared = protocol.get("fpr_limits") if isinstance(protocol, dict) else None
    return [limit_key(x) for x in declared or []]


def _flatten_limits(prefix: str, values: dict[str, Any] | None, limits: Sequence[str]) -> dict[str, float]:
    """``{"0.3": x}`` -> ``{"<prefix>@0.3": x}``, with NaN for declared limits that are missing."""
    row = {f"{prefix}@{limit}": float("nan") for limit in limits}
    for key, value in (values or {}).items():
        row[f"{prefix}@{limit_key(key)}"] = _number(value)
    return row


def original_column(column: str) -> str:
    """The original-defect twin of a metric column: ``aupro_area_1-64@0.3`` -> ``orig_aupro_area_1-64@0.3``."""
    return f"{ORIGINAL_PREFIX}{column}"


def _flatten_metric_block(block: dict[str, Any], limits: Sequence[str], prefix: str = "") -> dict[str, float]:
    """The size-resolved metrics of ``metrics`` (or, with ``prefix="orig_"``, of ``original_defects``).

    AUPRO overall, per cumulative and disjoint quartile, per area bin (with the bin's ``n_defects`` and,
    where the block has it, ``n_lost``), rho and the size quartiles.
    """
    row = _flatten_limits(f"{prefix}aupro", block.get("aupro"), limits)
    for source, name in (("aupro_cumulative", "aupro_cum_"), ("aupro_quartile", "aupro_q_")):
        bins = block.get(source) or {}
        for quartile in sorted(set(QUARTILE_NAMES) | set(bins)):
            row.update(_flatten_limits(f"{prefix}{name}{quartile}", bins.get(quartile), limits))
    for entry in block.get("aupro_by_area") or []:
        label = area_label(entry["min_px"], entry.get("max_px"))
        row.update(_flatten_limits(f"{prefix}aupro_area_{label}", entry.get("aupro"), limits))
        row[f"{prefix}n_defects_area_{label}"] = _number(entry.get("n_defects"))
        if "n_lost" in entry:
            row[f"{prefix}n_lost_area_{label}"] = _number(entry["n_lost"])
    row.update(_flatten_limits(f"{prefix}rho", block.get("rho"), limits))
    sizes = block.get("size_quartiles_px") or [None] * 3
    row.update({f"{prefix}{column}": _number(value) for column, value in zip(_SIZE_COLUMNS, sizes, strict=True)})
    return row


def source_path(path: Path, base: str | Path | None = None) -> str:
    """The ``source`` cell of a result file: ``path`` relative to the folder ``base`` (the CSVs' own folder, so
    the cell leads to the file from where the CSV lies, wherever the two trees are copied together, and names
    nothing of the user's home folder or machine above them), with ``/`` on every system; ``path`` as given
    without ``base``, or where no relative path exists (another Windows drive).

    A path named in another encoding than UTF-8 (a folder ``"\\xff"``) holds lone surrogates, which a UTF-8
    CSV cannot hold: shown escaped, as in messages.
    """
    text = str(path)
    if base is not None:
        try:
            text = Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()
        except ValueError:  # no relative path between two Windows drives
            pass
    return without_surrogates(text)


def flatten_result(result: ResultFile, source_base: str | Path | None = None) -> dict[str, Any]:
    """One leaderboard row: every metric of a result as a flat ``column -> value`` mapping.

    Limit-indexed metrics become ``<name>@<limit>`` (``aupro@0.3``, ``aupro_cum_Q1@0.3``,
    ``aupro_q_Q1@0.3``, ``aupro_area_1-64@0.3``, ``rho@0.3``), area bins also give
    ``n_defects_area_<bin>``; timing keys are copied as they are, except one that would stand for another
    column of the tables (``source``, ``rank``, a metric's name), which becomes ``timing_<key>``. Nulls become
    NaN.

    A low-resolution result's ``metrics.original_defects`` gives the same columns prefixed ``orig_``
    (``orig_aupro@0.3``, ``orig_aupro_area_1-64@0.3``, ``orig_n_defects_area_1-64``,
    ``orig_n_lost_area_1-64``, ``orig_size_q25_px``, ``orig_n_defects``, ``orig_n_lost_defects`` ...);
    a result without that block has none of them (NaN in a table). ``source`` is the result's path,
    relative to ``source_base`` where that is given (:func:`source_path`).
    """
    data, metrics = result.data, result.metrics
    protocol = data["protocol"] if isinstance(data["protocol"], dict) else {}
    limits = _limits_of(result)
    row: dict[str, Any] = dict(zip(KEY_COLUMNS, result.key, strict=True))
    row["eval_size"] = _number(protocol.get("eval_size"))
    row["pro_thresholds"] = protocol.get("pro_thresholds")
    for key in HEAD_METRICS:
        row[key] = _number(metrics.get(key))
    row.update(_flatten_metric_block(metrics, limits))
    for key in COUNT_KEYS:
        row[key] = _number(metrics.get(key))
    original = metrics.get("original_defects")
    if original is not None:
        row.update(_flatten_metric_block(original, limits, ORIGINAL_PREFIX))
        for key in ORIGINAL_COUNT_KEYS:
            row[original_column(key)] = _number(original.get(key))
    row["pretrained_backbone"] = data.get("pretrained_backbone")
    row["seed"] = _exact_seed(data.get("seed"))
    row["settings"] = settings_id(data.get("method_options"), data.get("resource_options") or ())
    for key, value in (data.get("timing") or {}).items():
        # A timing key must never overwrite or pose as another column of the tables (a metric, "source", the
        # summary's "rank", an orig_ column, which has_original_defects reads): such a key gets the prefix "timing_".
        while (key in row or key in _SUMMARY_ONLY or key.startswith(ORIGINAL_PREFIX)
               or (key not in _TIMING_COLUMNS and _column_order(key)[0] != _OTHER_COLUMNS)):
            key = f"timing_{key}"
        row[key] = _number(value)
    row["source"] = source_path(result.path, source_base)
    return row


#: Options left out of :func:`settings_id`: the seed (a column of its own) and the built-in methods'
#: options that move work between devices, processes and memory but not the numbers' meaning. A result's
#: own ``resource_options`` (a method's declared ones, which ``run`` records) are left out too.
RESULT_NEUTRAL_OPTIONS = frozenset({"seed", "device", "num_workers", "tmp_dir", "feature_ram_gib",
                                    "feature_gpu_fraction", "feature_batch_size", "chunk_size",
                                    "coreset_chunk_size"})


def settings_id(method_options: Any, resource_options: Iterable[str] = ()) -> str | None:
    """A short id of a result's ``method_options`` without :data:`RESULT_NEUTRAL_OPTIONS` and
    ``resource_options`` (``None`` without options): categories of one method whose ids differ were run with
    other settings, and a mean over them mixes those settings.

    The id is ``s`` and 8 hex digits of a SHA-256: the letter keeps it text for every reader of the CSVs. Bare hex
    digits read as a number about once in 25 ids (``649037e6`` is 6.49e11 to pandas, R and spreadsheets,
    ``00012345`` loses its zeros), which changed the column's values and type.
    """
    if not isinstance(method_options, dict):
        return None
    neutral = RESULT_NEUTRAL_OPTIONS | set(resource_options)
    kept = {key: value for key, value in method_options.items() if key not in neutral}
    return "s" + hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _exact_int_column(values: list[Any], index: pd.Index) -> pd.Series:
    """A column of Python ints of any size (or text such as ``mixed``), missing values as ``None``: pandas
    would store small ints beside a missing value as float64 (0 -> 0.0, 2**60 + 1 -> 2**60)."""
    column = pd.Series(values, index=index, dtype=object)
    return column.where(column.notna(), None)


def _frame_with_exact_seeds(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``pd.DataFrame(rows)`` whose ``seed`` column (if any row has one) holds the seeds exactly: pandas 2
    turns a column with an integer beyond 64 bits into floats and overflows, so the seeds join afterwards."""
    columns = list(dict.fromkeys(key for row in rows for key in row))  # pandas' own order: first seen
    frame = pd.DataFrame([{key: value for key, value in row.items() if key != "seed"} for row in rows])
    if "seed" in columns:
        frame["seed"] = _exact_int_column([row.get("seed") for row in rows], frame.index)
    return frame[columns]


def _exact_seed(seed: Any) -> int | None:
    """A seed as an exact Python int of any size (numpy's entropy seeds have 128 bits), else ``None``."""
    if type(seed) is int:
        return seed
    if isinstance(seed, float) and math.isfinite(seed) and seed.is_integer():
        return int(seed)
    return None


def _column_order(column: str) -> tuple:
    """Sort key that lays columns out as documented.

    Ids, headline metrics, quartile bins, area bins, rho, sizes and counts, then the same metrics of
    ``original_defects`` (``orig_*``, in the same order), timing, other columns and ``source``.
    """
    if column in _FIXED_HEAD:
        return (0, _FIXED_HEAD.index(column))
    metric = _metric_order(column)
    if metric is not None:
        return metric
    if column.startswith(ORIGINAL_PREFIX):
        original = _metric_order(column.removeprefix(ORIGINAL_PREFIX))
        if original is not None:
            return (7, original)
    if column in _TIMING_COLUMNS:
        return (8, _TIMING_COLUMNS.index(column))
    if column == "source":
        return (10, 0)
    return (_OTHER_COLUMNS, column)


def _metric_order(column: str) -> tuple | None:
    """:func:`_column_order` of a metric or count column (groups 1 to 6), ``None`` for other columns."""
    area = _AREA_COLUMN.match(column)
    if area:
        return (4, float(area["lo"]), 0, -float(area["limit"]))
    count = _AREA_COUNT_COLUMN.match(column)
    if count:
        return (4, float(count["lo"]), 1 if count["kind"] == "defects" else 2, 0.0)
    limited = _LIMITED_COLUMN.match(column)
    if limited:
        group = {"aupro": 1, "aupro_cum_": 2, "aupro_q_": 3, "rho": 5}[limited["prefix"]]
        try:
            return (group, limited["bin"], 0.0, -float(limited["limit"]))
        except ValueError:
            return (group, limited["bin"], 0.0, 0.0)
    if column in _TAIL_COLUMNS:
        return (6, _TAIL_COLUMNS.index(column))
    return None


def _is_metric_column(column: str) -> bool:
    """I-AUROC, P-AUROC or a metric at an FPR limit (AUPRO of any bin, rho), ``orig_`` ones included: the
    columns :func:`summary_table` can rank by."""
    base = column.removeprefix(ORIGINAL_PREFIX)
    return column in HEAD_METRICS or _AREA_COLUMN.match(base) is not None or _LIMITED_COLUMN.match(base) is not None


def _is_count_column(column: str) -> bool:
    """Defect and image counts (summed in the summary, ``Int64``), ``orig_`` ones included."""
    base = column.removeprefix(ORIGINAL_PREFIX)
    return base in (*COUNT_KEYS, "n_lost_defects") or _AREA_COUNT_COLUMN.match(base) is not None


def has_original_defects(frame: pd.DataFrame, suffix: str = "") -> pd.Series:
    """Per row, whether it was flattened from a result with ``metrics.original_defects``.

    ``suffix`` selects the columns of one side of a merged frame (``_low`` ...).
    """
    columns = [c for c in frame.columns if c.startswith(ORIGINAL_PREFIX) and c.endswith(suffix)]
    if not columns:
        return pd.Series(False, index=frame.index)
    return frame[columns].notna().any(axis=1)


def warn_mixed_original_defects(table: pd.DataFrame, warn: Warn) -> None:
    """Warn about low-resolution labels where only some results have ``metrics.original_defects``.

    The plots then read the whole label per resized-mask defect (the reading every result has), while
    ``protocol_gap.csv`` pairs per method: say so rather than switch silently.
    """
    has_original = has_original_defects(table)
    for (dataset, protocol), rows in table.groupby(["dataset", "protocol"], sort=True):
        if protocol_base(protocol) == "full":
            continue
        present = has_original[rows.index]
        if present.any() and not present.all():
            missing = rows.loc[~present]
            lacking = sorted(missing["method"].astype(str) + "/" + missing["category"].astype(str))
            warn(f"{dataset}, {protocol}: {', '.join(lacking[:5])} lack metrics.original_defects (older files?), "
                 "so the plots read this protocol per resized-mask defect for every method; re-score them to fix")


def warn_stale_original_quartiles(table: pd.DataFrame, warn: Warn) -> None:
    """Warn about low-resolution results whose ``metrics.original_defects`` quartile edges differ from those of
    the same method's ``full`` result on that category.

    Both are the quartiles of the category's original-resolution defects, every one (lost ones too), so they
    are equal. They differ in files of older adbench-hr builds (before b7955fe, which took the original-defect
    quartiles over the defects left at low resolution only: their ``Q1`` then holds no lost defect and reads as
    detected) and in results scored on other masks. Their ``orig_aupro_cum_*``/``orig_aupro_q_*`` columns and
    the quartile plot would be read as the full-resolution quartiles; one line per dataset x protocol label.
    """
    original = [original_column(column) for column in _SIZE_COLUMNS]
    if not all(column in table.columns for column in (*original, *_SIZE_COLUMNS)):
        return
    index = ["method", "dataset", "category"]
    is_full = table["protocol"].map(lambda label: protocol_base(label) == "full").astype(bool)
    edges: dict[tuple[str, ...], list[tuple[float, ...]]] = {}
    for row in table[is_full].dropna(subset=list(_SIZE_COLUMNS))[[*index, *_SIZE_COLUMNS]].itertuples(index=False):
        edges.setdefault(tuple(map(str, row[:3])), []).append(tuple(map(float, row[3:])))
    low = table[~is_full].dropna(subset=original)
    for (dataset, protocol), rows in low.groupby(["dataset", "protocol"], sort=True):
        differing = []
        for row in rows[[*index, *original]].itertuples(index=False):
            found, expected = tuple(map(float, row[3:])), edges.get(tuple(map(str, row[:3])))
            if expected and not any(all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(found, edge, strict=True))
                                    for edge in expected):
                differing.append(f"{row[0]}/{row[2]} ({'/'.join(f'{v:g}' for v in found)} px, full "
                                 f"{'/'.join(f'{v:g}' for v in expected[0])} px)")
        if differing:
            warn(f"{dataset}, {protocol}: {_some(differing)}: metrics.original_defects quartile edges differ from "
                 "the full-resolution result's (a file of an older adbench-hr, which left lost defects out, or "
                 "other masks), so their orig_ quartile columns and plot are not the full-resolution quartiles; "
                 "re-score them")


def warn_mixed_settings(table: pd.DataFrame, warn: Warn) -> None:
    """Warn about method x dataset x protocol entries whose categories were run with different seeds or
    method options: their means (and ranks) mix those settings."""
    for (method, dataset, protocol), rows in table.groupby(["method", "dataset", "protocol"], sort=True):
        differing = [name for name in ("seed", "settings") if rows[name].dropna().nunique() > 1]
        if differing:
            what = " and ".join("seeds" if name == "seed" else "method options" for name in differing)
            warn(f"{method} ({dataset}, {protocol}): its categories were run with different {what} "
                 "(columns seed, settings of leaderboard.csv), so its means mix them")


#: What describes a category's test set as a protocol reads it: counts and the defect-area quartiles.
TEST_SET_COUNTS = ("n_images", "n_defective_images", "n_defects", "size_q25_px", "size_q50_px", "size_q75_px")


def warn_mixed_test_sets(table: pd.DataFrame, warn: Warn) -> None:
    """Warn about categories (of one dataset x protocol label) whose methods were scored on test sets with
    other counts of images, defective images or defects, or other defect-area quartiles: another generated
    dataset (``--seed``, ``--size``, ``--scale``), an edited copy. The leaderboard compares such numbers,
    and ranks them, as if the test set were the same; one line per dataset x protocol label."""
    counts = [c for c in TEST_SET_COUNTS if c in table.columns]
    if not counts:
        return
    for (dataset, protocol), rows in table.groupby(["dataset", "protocol"], sort=True):
        differing = []
        for category, group in rows.groupby("category", sort=True):
            known = group.dropna(subset=counts)
            seen: dict[tuple[float, ...], list[str]] = {}
            for method, *row in known[["method", *counts]].itertuples(index=False):
                seen.setdefault(tuple(float(v) for v in row), []).append(str(method))
            if len(seen) > 1:
                described = sorted(f"{', '.join(sorted(methods))}: {'/'.join(f'{v:g}' for v in key)}"
                                   for key, methods in seen.items())
                differing.append(f"{category} ({'; '.join(described)})")
        if differing:
            warn(f"{dataset}, {protocol}: methods were scored on different test sets in {_some(differing)} "
                 f"({'/'.join(counts)} differ): their numbers and ranks do not compare the same images")


def weights_note(values: Iterable) -> str:
    """The mark of an entry by its ``pretrained_backbone`` values: ``random weights`` or ``partly random weights``.

    ``values`` are the entry's per-category values (``True``/``False``/null, as in ``leaderboard.csv``)
    or its summary value (which is ``"mixed"`` when they differ). Every known value ``False`` gives
    ``random weights``, a mix of ``True`` and ``False`` ``partly random weights``; entries without a
    ``False`` (pretrained, or no backbone at all) get no mark.
    """
    seen: set[bool] = set()
    for value in values:
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "mixed":
                seen.update((True, False))
            elif text in ("true", "false"):
                seen.add(text == "true")
        elif not pd.isna(value):
            seen.add(bool(value))
    if False not in seen:
        return ""
    return "partly random weights" if True in seen else "random weights"


def warn_random_backbones(table: pd.DataFrame, warn: Warn) -> None:
    """Warn, in one line each, about the entries (method x dataset x protocol) whose backbone had random
    weights in every category that says (a null says nothing), and those that mix random and pretrained
    ones: such numbers only show that a pipeline runs, and a published table must not pass them off as a
    method's quality."""
    kinds: dict[str, list[str]] = {"random weights": [], "partly random weights": []}
    for (method, dataset, protocol), rows in table.groupby(["method", "dataset", "protocol"], sort=True):
        note = weights_note(rows["pretrained_backbone"])
        if note:
            kinds[note].append(f"{method} ({dataset}, {protocol})")
    if kinds["random weights"]:
        warn(f"random backbone weights in {_some(kinds['random weights'])}: these numbers only show that the "
             "pipeline runs and are not meaningful")
    if kinds["partly random weights"]:
        warn(f"random backbone weights in some categories of {_some(kinds['partly random weights'])}: their "
             "means mix pretrained and random backbones")


def warn_mixed_versions(results: Sequence[ResultFile], warn: Warn) -> None:
    """Warn, in one line, when the results were written by more than one adbench-hr version (``versions`` in each
    file; files without it are not counted): a version whose metrics or methods changed gives other numbers for
    the same maps or images, and the tables rank them side by side. Results of one version written by builds of
    different source (``adbench-hr-fingerprint``: an edited checkout, a fork) get the same kind of warning, as
    the version alone cannot tell whether the change altered numbers. The build that fitted a result's model
    (``provenance.fit_code_fingerprint``; another one when a resumed run reused a checkpoint) counts too."""
    written: dict[str, list[Path]] = {}
    builds: dict[str, list[Path]] = {}
    for result in results:
        versions = result.data.get("versions")
        version = versions.get("adbench-hr") if isinstance(versions, dict) else None
        if isinstance(version, str):
            written.setdefault(version, []).append(result.path)
            provenance = result.data.get("provenance")
            fitted_by = provenance.get("fit_code_fingerprint") if isinstance(provenance, dict) else None
            for fingerprint in {versions.get("adbench-hr-fingerprint"), fitted_by}:
                if isinstance(fingerprint, str):
                    builds.setdefault(fingerprint, []).append(result.path)
    if len(written) > 1:
        warn(f"the results were written by {len(written)} adbench-hr versions: {_file_counts(written)}; numbers of "
             "different versions may differ for the same maps, so regenerate the older ones before publishing")
    elif len(builds) > 1:
        warn(f"the results were written or fitted by {len(builds)} builds of adbench-hr {next(iter(written))} "
             f"(source fingerprints {_file_counts(builds)}): a change to its code between them may have changed "
             "numbers, so regenerate the older ones before publishing")


def _file_counts(files: dict[str, list[Path]]) -> str:
    """``key (n files, e.g. first path); ...`` in key order."""
    return "; ".join(f"{key} ({len(paths)} file{'s' if len(paths) > 1 else ''}, e.g. {min(paths)})"
                     for key, paths in sorted(files.items()))


def _protocol_ordered(column: pd.Series) -> pd.Series:
    """``sort_values`` key: the protocol column in :func:`protocol_order`, other columns as they are."""
    if column.name != "protocol":
        return column
    position = {label: index for index, label in enumerate(protocol_order(column.dropna()))}
    return column.map(position)


def leaderboard_table(results: Sequence[ResultFile], source_base: str | Path | None = None) -> pd.DataFrame:
    """Flatten results into the leaderboard table (one row per method x dataset x protocol x category).

    Rows are sorted by method, dataset, protocol (in :func:`protocol_order`) and category; columns follow
    :func:`_column_order`. Counts and ``eval_size`` use pandas' nullable ``Int64`` so they print as
    integers, with nulls empty. ``source`` holds each result's path as it was found, or relative to the
    folder ``source_base`` (the folder the table is written to: :func:`source_path`).

    Raises
    ------
    InputError
        For no results, or two that share a key (:func:`check_unique`): results of several
        :func:`load_results` calls, or built in memory, would otherwise be counted twice.
    """
    if not results:
        raise InputError("no results to tabulate")
    check_unique(results)
    rows = [flatten_result(r, source_base) for r in results]
    table = _frame_with_exact_seeds(rows)
    table = table[sorted(table.columns, key=_column_order)]
    for column in table.columns:
        if _is_count_column(column) or column == "eval_size":
            table[column] = table[column].round().astype("Int64")
    table = table.sort_values(list(KEY_COLUMNS), kind="stable", key=_protocol_ordered)
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Summary, ranking and protocol gap
# --------------------------------------------------------------------------------------------------


def _normalised_column(name: str) -> str:
    """A metric column name with its FPR limit written as the tables write it (``rho@0.30`` -> ``rho@0.3``)."""
    metric, at, limit = name.rpartition("@")
    try:
        return f"{metric}@{limit_key(limit)}" if at else name
    except ValueError:  # not a number after the "@"
        return name


def _unique_or_nan(values: pd.Series) -> Any:
    """The group's single non-null value, ``"mixed"`` if they differ, NaN if there is none."""
    present = values.dropna().unique()
    if len(present) == 0:
        return np.nan
    return present[0] if len(present) == 1 else "mixed"


def _all_numeric(values: pd.Series) -> bool:
    return all(v is None or is_number(v) or isinstance(v, np.number) for v in values.dropna())


def summary_table(table: pd.DataFrame, rank_by: str = f"rho@{MAIN_LIMIT}", warn: Warn | None = None) -> pd.DataFrame:
    """Mean over categories per method x dataset x protocol label, ranked by ``rank_by`` (descending).

    Metrics are averaged over the categories where they are available (NaN-aware); counts
    (``n_images``, ``n_defects``, ``n_defects_area_*`` ...) are summed; ``n_categories`` is the
    number of categories in the group. ``rank`` (1 = best) is computed within each
    dataset x protocol label, because scores of different datasets or protocol variants (name, eval
    size, PRO thresholds) are not comparable. Only entries whose means cover the same categories as the
    others of their dataset x protocol label (``complete``: a result wherever another method has one, a
    ``rank_by`` value wherever another method has one) are ranked. The rest get no rank, come last, and
    ``warn`` names what they lack.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`leaderboard_table`.
    rank_by : str, optional
        Metric column to rank by (``i_auroc``, ``p_auroc`` or a metric at an FPR limit, ``orig_`` ones too),
        ``rho@0.3`` by default; a limit may be written in any form (``rho@0.30``).
    warn : callable, optional
        Called with one line per entry left unranked, naming the categories or values it lacks.

    Returns
    -------
    pandas.DataFrame
        Sorted by dataset, protocol (in :func:`protocol_order`), rank and method.

    Raises
    ------
    InputError
        For a ``rank_by`` that is no metric column of ``table`` (other than the default, which results
        scored at other FPR limits lack: then nothing is ranked).
    """
    rank_by = _normalised_column(rank_by)
    # A column that is no metric (method, source, pretrained_backbone, a timing ...) has no mean to rank by.
    if (rank_by not in table.columns or not _is_metric_column(rank_by)) and rank_by != f"rho@{MAIN_LIMIT}":
        at_limits = [c.partition("@") for c in table.columns if "@" in c and _is_metric_column(c)]
        families = ", ".join(dict.fromkeys(f"{name}@L" for name, _, _ in at_limits))
        limits = ", ".join(sorted({limit for _, _, limit in at_limits}, key=float))
        problem = "no such column" if rank_by not in table.columns else "not a metric column"
        raise InputError(f"cannot rank by {rank_by!r}: {problem} (rank by i_auroc, p_auroc or a metric at an "
                         f"FPR limit: {families}; L among {limits})")
    keys = list(SUMMARY_KEYS)
    rows = []
    for group_key, group in table.groupby(keys, sort=True, dropna=False):
        row: dict[str, Any] = dict(zip(keys, group_key, strict=True))
        row["n_categories"] = int(group["category"].nunique())
        for column in table.columns:
            if column in keys or column in ("category", "source"):
                continue
            values = group[column]
            if column in (*_PROTOCOL_COLUMNS, *_SETTING_COLUMNS):
                row[column] = _unique_or_nan(values)
            elif _is_count_column(column):
                row[column] = values.sum(min_count=1)
            else:
                row[column] = pd.to_numeric(values, errors="coerce").mean()
        rows.append(row)
    summary = _frame_with_exact_seeds(rows)
    complete = _complete_entries(table, summary, rank_by, warn)
    summary.insert(len(keys), "complete", complete)
    if rank_by in summary.columns:
        # Means of the same values summed in another order differ in their last bits ((0.1 + 0.2) + 0.3 is
        # 0.6000000000000001, (0.3 + 0.2) + 0.1 is 0.6): compared as the CSV prints them, means that print
        # alike tie (rounding to a number of decimals would split those either side of a rounding boundary).
        ranked = summary[rank_by].where(complete).map(_as_printed)
        ranks = ranked.groupby([summary["dataset"], summary["protocol"]]).rank(ascending=False, method="min")
    else:
        ranks = pd.Series(np.nan, index=summary.index)
    summary.insert(0, "rank", ranks.astype("Int64"))
    for column in summary.columns:
        if _is_count_column(column) or (column == "eval_size" and _all_numeric(summary[column])):
            summary[column] = pd.to_numeric(summary[column]).round().astype("Int64")
    order = ["dataset", "protocol", "rank", "method"]
    summary = summary.sort_values(order, na_position="last", kind="stable", key=_protocol_ordered)
    return summary.reset_index(drop=True)


#: How the CSVs print floats: 15 significant digits hide float noise such as 0.8999999999999999 (-> 0.9) and keep
#: every value within 1e-9 up to 10^5 (timings, defect sizes), which 10 digits did not. The ranking compares means
#: as printed.
_CSV_FLOAT_FORMAT = "%.15g"


def _csv_float(value: float) -> str:
    """A float as the CSVs print it: :data:`_CSV_FLOAT_FORMAT`, with ``.0`` after a whole number (``1.0``, not
    ``1``), so a column of floats reads back as floats even where every value is whole (an AUPRO of 1 in each
    category, a timing of 2 s): pandas and R read a column of ``1`` and ``0`` as integers."""
    text = _CSV_FLOAT_FORMAT % value
    return text if any(char in text for char in ".en") else f"{text}.0"  # 1e+20, inf and nan stay as they are


def _as_printed(value: float) -> float:
    """``value`` as the CSVs print it (NaN stays NaN): values that print alike compare equal."""
    return value if math.isnan(value) else float(_CSV_FLOAT_FORMAT % value)


def _complete_entries(table: pd.DataFrame, summary: pd.DataFrame, rank_by: str, warn: Warn | None) -> pd.Series:
    """Per summary row: is its mean comparable with the others of its dataset x protocol label?

    It must have a result in every category that another method of the label has, and a ``rank_by`` value
    in every category where another method has one. A category where no method has a value (no defects
    at all) leaves every mean alike and blocks no one.
    """
    complete = []
    has_value = table[rank_by].notna() if rank_by in table.columns else pd.Series(False, index=table.index)
    for _, row in summary.iterrows():
        in_label = (table["dataset"] == row["dataset"]) & (table["protocol"] == row["protocol"])
        own = in_label & (table["method"] == row["method"])
        no_result = set(table["category"][in_label]) - set(table["category"][own])
        no_value = (set(table["category"][in_label & has_value]) - set(table["category"][own & has_value])
                    - no_result)
        complete.append(not no_result and not no_value)
        if warn is None:
            continue
        where = f"{row['method']} ({row['dataset']}, {row['protocol']})"
        if no_result:
            warn(f"{where} has no result for {_some(no_result)}: its means cover fewer categories than the "
                 "other methods', so it is not ranked")
        if no_value:
            warn(f"{where} has no {rank_by} for {_some(no_value)}, where other methods have one, so it is not "
                 "ranked")
    return pd.Series(complete, index=summary.index, dtype=bool)


def _some(names: Iterable[str], shown: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


@dataclass(frozen=True)
class AreaBin:
    """An absolute area bin as found in the leaderboard's column names."""

    label: str
    min_px: float
    max_px: float | None

    @property
    def count_column(self) -> str:
        return f"n_defects_area_{self.label}"

    @property
    def lost_column(self) -> str:
        """Defects of the bin lost at low resolution (only ``orig_`` columns have it)."""
        return f"n_lost_area_{self.label}"

    def column(self, limit: str = MAIN_LIMIT) -> str:
        return f"aupro_area_{self.label}@{limit_key(limit)}"


def area_bins(columns: Iterable[str], limit: str = MAIN_LIMIT) -> list[AreaBin]:
    """Area bins that have an AUPRO column at ``limit`` (plain or ``orig_``), sorted by lower edge."""
    found = {}
    for column in columns:
        match = _AREA_COLUMN.match(column.removeprefix(ORIGINAL_PREFIX))
        if match and limit_key(match["limit"]) == limit_key(limit):
            high = None if match["hi"] == "inf" else float(match["hi"])
            label = f"{match['lo']}-{match['hi']}"
            found[label] = AreaBin(label, float(match["lo"]), high)
    return sorted(found.values(), key=lambda b: b.min_px)


def protocol_gap_table(table: pd.DataFrame, limit: str = MAIN_LIMIT) -> pd.DataFrame | None:
    """AUPRO difference ``full - lowres`` per method x dataset x protocol pair x area bin.

    Every low-resolution label is paired with the full-resolution label of the same PRO thresholds
    (:func:`full_counterpart`): ``lowres@256`` with ``full``, ``lowres@256/l2bt`` with ``full/l2bt``.
    Only categories evaluated under both labels, with both values non-null, are compared (paired), so
    the gap is not an artefact of different category sets. A first row ``all`` per pair compares the
    overall ``aupro@<limit>``.

    The low-resolution side is read per **original** defect (``lowres_defects = original``: the
    ``orig_*`` columns, e.g. ``orig_aupro_area_1-64@L`` and ``orig_aupro@L``) when every paired category
    of the method carries ``metrics.original_defects``: a bin then holds the same defects, by the same
    original area, under both protocols, minus the ones lost at low resolution (``n_lost_lowres``).
    Otherwise (older result files) it falls back to the low-resolution result's own defects, the
    components of the resized masks binned by resized area (``lowres_defects = resized``,
    ``n_lost_lowres`` empty).

    Returns
    -------
    pandas.DataFrame or None
        Columns ``method, dataset, protocol_full, protocol_lowres, area_bin, min_px, max_px,
        n_categories, lowres_defects, n_defects_full, n_defects_lowres, n_lost_lowres, aupro_full@L,
        aupro_lowres@L, gap@L``, sorted by method, dataset and low-resolution label
        (:func:`protocol_order`); ``None`` when no method has a paired full and low-resolution result on
        a dataset. The defect counts are summed over all categories run under both labels; with the
        original reading ``n_defects_lowres + n_lost_lowres`` is the bin's ``n_defects_full``.
    """
    limit = limit_key(limit)
    # (label, min_px, max_px, AUPRO column, count column, lost column); the lowres side may read the
    # orig_ twin of each, the full side always reads the plain column.
    bins = [("all", np.nan, np.nan, f"aupro@{limit}", "n_defects", "n_lost_defects")]
    bins += [(b.label, b.min_px, np.nan if b.max_px is None else b.max_px, b.column(limit), b.count_column,
              b.lost_column) for b in area_bins(table.columns, limit)]
    bins = [b for b in bins if b[3] in table.columns]
    labels = protocol_order(table["protocol"].dropna())
    pairs = [(full_counterpart(low), low) for low in labels if protocol_base(low) == "lowres"]
    pairs = [(full, low) for full, low in pairs if full in labels]
    if not bins or not pairs:
        return None
    index = ["method", "dataset", "category"]
    rows = []
    for order, (full, low) in enumerate(pairs):
        high = table[table["protocol"] == full].set_index(index)
        lowres = table[table["protocol"] == low].set_index(index)
        paired = high.merge(lowres, how="inner", left_index=True, right_index=True, suffixes=("_full", "_low"))
        for (method, dataset), group in paired.groupby(level=["method", "dataset"], sort=True):
            original = bool(has_original_defects(group, "_low").all())
            prefix = ORIGINAL_PREFIX if original else ""  # the lowres side's columns: orig_ twins or plain
            for label, min_px, max_px, column, count, lost in bins:
                values = pd.DataFrame({"full": group[f"{column}_full"],
                                       "low": _side(group, f"{prefix}{column}", "_low")}).astype(float).dropna()
                mean_full = values["full"].mean() if len(values) else np.nan
                mean_low = values["low"].mean() if len(values) else np.nan
                rows.append({
                    "method": method, "dataset": dataset, "_order": order,
                    "protocol_full": full, "protocol_lowres": low,
                    "area_bin": label, "min_px": min_px, "max_px": max_px, "n_categories": len(values),
                    "lowres_defects": "original" if original else "resized",
                    # Defect counts per protocol show whether the bins hold the same defects under both.
                    "n_defects_full": _paired_count(group, count, "_full"),
                    "n_defects_lowres": _paired_count(group, f"{prefix}{count}", "_low"),
                    "n_lost_lowres": _paired_count(group, original_column(lost), "_low") if original else pd.NA,
                    f"aupro_full@{limit}": mean_full, f"aupro_lowres@{limit}": mean_low,
                    f"gap@{limit}": mean_full - mean_low,
                })
    if not rows:
        return None
    gap = pd.DataFrame(rows).sort_values(["method", "dataset", "_order"], kind="stable")
    gap = gap.drop(columns="_order").reset_index(drop=True)
    for column in ("min_px", "max_px", "n_defects_full", "n_defects_lowres", "n_lost_lowres"):
        gap[column] = pd.to_numeric(gap[column]).round().astype("Int64")
    return gap


def _side(group: pd.DataFrame, column: str, suffix: str) -> pd.Series:
    """One side's column of a merged frame; all NaN when no result has it (e.g. a bin only one side has)."""
    name = f"{column}{suffix}"
    return group[name] if name in group.columns else pd.Series(np.nan, index=group.index)


def _paired_count(group: pd.DataFrame, column: str, suffix: str) -> Any:
    """Sum of a count column over a method's paired categories (NA when the column is absent)."""
    name = f"{column}{suffix}"
    return group[name].sum(min_count=1) if name in group.columns else pd.NA


def format_summary(summary: pd.DataFrame, limit: str = MAIN_LIMIT) -> str:
    """Short fixed-width ranking for the terminal (3 decimals, ``-`` for null)."""
    limit = limit_key(limit)
    wanted = ["rank", "method", "dataset", "protocol", "n_categories", "i_auroc", "p_auroc",
              f"aupro@{limit}", f"aupro_cum_Q1@{limit}", f"rho@{limit}"]
    columns = [c for c in wanted if c in summary.columns]
    rows = [columns, *([_format_cell(v) for v in values] for values in summary[columns].itertuples(index=False))]
    # Right-aligned in terminal columns, not characters (pandas' to_string counts characters): a method or dataset
    # named in CJK, or with a decomposed accent, stays aligned.
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join(" ".join(rjust(cell, width) for cell, width in zip(row, widths)) for row in rows)


def _format_cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


#: First characters that make a spreadsheet read a cell as a formula (``=HYPERLINK(...)``, ``@SUM(...)``, DDE).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_formula(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_FORMULA_STARTS)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV with nulls as empty cells (never 0).

    Text that a spreadsheet would evaluate as a formula (a method name or result path from a submitted
    file: ``=HYPERLINK(...)``), in a cell or a column name (a submitted file's timing key), is written with a
    leading ``'``; numbers are written as they are.
    """
    path = Path(path)
    copied = False
    if any(_is_formula(column) for column in frame.columns):
        frame, copied = frame.rename(columns=lambda c: f"'{c}" if _is_formula(c) else c), True
    for column in frame.columns:
        if frame[column].dtype != object and not pd.api.types.is_string_dtype(frame[column]):
            continue
        formulas = frame[column].map(_is_formula).astype(bool)
        if formulas.any():  # only those cells change: a column of exact integers (seeds) keeps its values
            if not copied:
                frame, copied = frame.copy(), True
            frame.loc[formulas, column] = "'" + frame.loc[formulas, column]
    with atomic_path(path) as temp:
        # pandas would end lines with os.linesep (CRLF on Windows); "\n" everywhere gives every system the same bytes.
        frame.to_csv(temp, index=False, na_rep="", float_format=_csv_float, encoding="utf-8",
                     lineterminator="\n")
    return path
