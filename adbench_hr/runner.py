"""``adbench-hr run``: fit a method per category, write its full-resolution maps, score them.

Data flows one way: dataset -> method -> maps (written in MVTec's submission layout, so that
``adbench-hr score`` can re-score them) -> metrics engine -> result file. Output layout::

    OUT/<method>/<dataset>/maps/<category>/test/<defect>/<stem>.tiff   float32 maps
    OUT/<method>/<dataset>/maps/<category>/image_scores.csv
    OUT/<method>/<dataset>/checkpoints/<category>-<run key>-<training data>.safetensors
    OUT/<method>/<dataset>/results/<category>.json                     result JSON
    OUT/<method>/<dataset>/results/<category>.lowres<N>.json           same maps, lowres protocol (optional)

Every file is written atomically and flushed to the disk before what relies on it. A category whose result
file exists with the same run settings and the same data files (names, sizes, modification times) is
skipped, so re-running an interrupted command
resumes it; a checkpoint left by an interrupted category is reused instead of fitting again, if its
training files are unchanged (a damaged one is refitted). A category being (re)computed first loses the
temporaries of killed runs, and its old results just before its maps are rewritten (a run that fails
earlier leaves them valid), under a lock that keeps a second run out of it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import resource
except ImportError:  # Windows has no rusage (nor /proc): the host memory peak is then unknown (null)
    resource = None  # type: ignore[assignment]

import adbench_hr
from adbench_hr.datasets import Dataset, check_category, check_masks, generator_record, listing_warnings
from adbench_hr.datasets.base import TestSample, TrainSample
from adbench_hr.errors import InputError, one_line, out_of_memory, warn
from adbench_hr.fileio import (
    ensure_folder,
    release_lock,
    remove_leftover,
    sync_files,
    sync_folder,
    try_exclusive_lock,
)
from adbench_hr.maps import (
    IMAGE_SCORES_FILE,
    map_file_name,
    mark_maps_complete,
    mark_maps_incomplete,
    unmatched_maps,
    write_image_scores,
    write_map,
)
from adbench_hr.methods.base import CheckpointsNotSupported
from adbench_hr.metrics import exact_scores
from adbench_hr.metrics.accumulator import checked_image_score, finite_beyond_float64
from adbench_hr.progress import progress_bar
from adbench_hr.results import (
    RUN_MAPS_FOLDER,
    RUN_RESULTS_FOLDER,
    build_result,
    library_versions,
    load_result,
    name_problem,
    write_result,
)
from adbench_hr.scoring import ProtocolScorer, check_protocol, checked_mask

RANDOM_BACKBONE_WARNING = (
    "the backbone has random weights (--weights random): these numbers only show that the pipeline runs "
    "and are not meaningful"
)


@dataclass
class RunConfig:
    """What one ``run`` invocation asks for."""

    method: str
    method_options: dict[str, Any]
    dataset_name: str
    out_dir: Path
    progress: bool = True
    lowres_eval_size: int | None = None
    dataset_root: str | Path | None = None
    command: str | None = None  # the command line, recorded in results
    # Files the method reads besides the dataset (a --weights PATH): a new file means other results.
    input_files: Sequence[str | Path] = ()
    # {distribution: version} of a plug-in method's package: a new release may compute other results.
    method_package: dict[str, str] | None = None
    # Method options that change no map value (the method's ``resource_options``): left out of the run key.
    resource_options: frozenset[str] = frozenset()
    # The warnings this run gives once however many categories repeat them (a method without checkpoints,
    # float64 maps): kept per run, so that the next run in the same process (a notebook, a script calling
    # ``main()`` again) says them again.
    warned: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.dataset_root is not None:
            self.dataset_root = str(Path(self.dataset_root).resolve())

    @property
    def run_key(self) -> str:
        """Hash of the settings that determine a category's result (for resuming): method, options (but its
        resource options), data set name and root, the identity of the other input files (path, size,
        modification time), adbench-hr's version and a plug-in method's package version."""
        options = {k: v for k, v in self.method_options.items() if k not in self.resource_options}
        if isinstance(options.get("device"), str):
            # The device's kind decides the maps (a GPU run differs from a CPU run), not its index: a run on
            # cuda:1 (or cpu:0) resumes one on cuda:0 (or cpu).
            options["device"] = options["device"].split(":")[0]
        settings = {
            "method": self.method,
            "method_options": options,
            "dataset": self.dataset_name,
            "dataset_root": self.dataset_root,
            # adbench-hr's own code computes the built-in methods' maps and every method's metrics: a run
            # resumed after an upgrade must not keep the old version's categories beside the new one's.
            "adbench_hr_version": adbench_hr.__version__,
        }
        if self.input_files:
            settings["input_files"] = [_file_identity(Path(p)) for p in self.input_files]
        if self.method_package:
            settings["method_package"] = self.method_package
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def folder(self) -> Path:
        return self.out_dir / self.method / self.dataset_name

    def results_dir(self) -> Path:
        return self.folder() / RUN_RESULTS_FOLDER

    def result_path(self, category: str, protocol: str = "full") -> Path:
        if protocol == "lowres":
            return self.results_dir() / f"{category}.lowres{self.lowres_eval_size}.json"
        return self.results_dir() / f"{category}.json"

    def protocols(self) -> list[str]:
        return ["full", "lowres"] if self.lowres_eval_size else ["full"]

    def maps_dir(self) -> Path:
        return self.folder() / RUN_MAPS_FOLDER

    def checkpoint_path(self, category: str, training_data: str, run_key: str | None = None) -> Path:
        """The category's checkpoint; the run key (``run_key`` when already computed) and the training files'
        fingerprint in its name keep a checkpoint of other settings or other training images from being
        reused."""
        key = self.run_key if run_key is None else run_key
        return self.folder() / "checkpoints" / f"{category}-{key}-{training_data}.safetensors"


def _file_identity(path: Path) -> list[Any]:
    # The resolved path: a root given relative, absolute or through a link names the same files.
    name = os.path.realpath(path)
    try:
        stat = path.stat()
    except OSError:  # the reader reports a missing file
        return [name, None, None]
    return [name, stat.st_size, stat.st_mtime_ns]


def data_fingerprint(samples: Sequence[Any]) -> str:
    """Hash of the files a set of samples reads: each sample id with its image (and mask) path, size and
    modification time. An added, removed, replaced or edited file changes it; reading the pixels is not
    needed."""
    digest = hashlib.sha256()
    for sample in samples:
        paths = [sample.image_path, getattr(sample, "mask_path", None)]
        identities = [_file_identity(Path(path)) for path in paths if path is not None]
        digest.update(json.dumps([sample.sample_id, identities]).encode())
    return digest.hexdigest()[:16]


@dataclass
class CategoryData:
    """A category's samples, listed once, and the fingerprints of their files, taken before anything is read
    (a file edited during the run must not be recorded as what the result was computed from)."""

    train: list[TrainSample]
    test: list[TestSample]
    train_fingerprint: str  # the training files: a checkpoint's name carries it
    fingerprint: str  # training and test files: a finished result must record it


def category_data(dataset: Dataset, category: str) -> CategoryData:
    """List a category's samples and fingerprint their files (:func:`data_fingerprint`), each file once."""
    train, test = dataset.train_samples(category), dataset.test_samples(category)
    train_fingerprint = data_fingerprint(train)
    both = hashlib.sha256(f"{train_fingerprint}:{data_fingerprint(test)}".encode()).hexdigest()[:16]
    return CategoryData(train, test, train_fingerprint, both)


def finished_results(config: RunConfig, category: str, fingerprint: str | None = None) -> list[dict[str, Any]] | None:
    """The category's results (one per protocol) if a previous run with the same settings finished them,
    on the same data files when ``fingerprint`` (:attr:`CategoryData.fingerprint`) is given."""
    return earlier_results(config, category, fingerprint)[0]


def earlier_results(config: RunConfig, category: str,
                    fingerprint: str | None = None) -> tuple[list[dict[str, Any]] | None, str | None]:
    """:func:`finished_results`, and, when they are not reused, why: for the line that says the category is
    computed again. The reason is ``None`` where there is nothing to say (a result missing, e.g. another
    protocol's twin, or unreadable).

    A result of other settings keeps its place until the maps are rewritten; said aloud, a resumed run that
    redoes finished categories (other options, another dataset root or weight file, or a result written by an
    adbench-hr build whose run key was composed differently, though its version is the same) is no surprise.
    """
    results = []
    for protocol in config.protocols():
        path = config.result_path(category, protocol)
        if not path.is_file():
            return None, None
        try:
            result = load_result(path)
        except InputError:
            return None, None  # unreadable leftovers are recomputed without a word
        old_key = result.get("run_key")
        if old_key is None:
            return None, f"{path} has no run key (not written by run), so the category is computed again"
        if old_key != config.run_key:
            return None, (f"{path} was computed with other settings (run key {old_key}, now {config.run_key}: other "
                          "method options, dataset root or weight file, or another adbench-hr build), so it is "
                          "computed again")
        if fingerprint is not None and result.get("data_fingerprint") != fingerprint:
            return None, (f"{path} was computed from other data files (names, sizes or times), so it is computed "
                          "again")
        results.append(result)
    return results, None


def missing_output(config: RunConfig, category: str, test: Sequence[TestSample]) -> Path | None:
    """The first of a finished category's outputs that its result describes but that is gone (a map or
    ``image_scores.csv`` deleted since), or ``None``: such a category is not finished."""
    folder = config.maps_dir() / category
    for path in (folder / IMAGE_SCORES_FILE, *(folder / map_file_name(sample.sample_id) for sample in test)):
        if not path.is_file():
            return path
    return None


_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _lock_path(config: RunConfig, category: str) -> Path:
    return config.folder() / ".locks" / f"{category}.lock"


@contextmanager
def _try_category_lock(config: RunConfig, category: str) -> Iterator[bool | OSError]:
    """Try to take a category's lock without waiting, for the body's duration. Yields ``True`` (taken;
    released afterwards), ``False`` (another run holds it) or the :class:`OSError` of a file system without
    locks (the state is unknown)."""
    path = _lock_path(config, category)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            locked: bool | OSError = try_exclusive_lock(handle)
        except OSError as exc:
            locked = exc
        if locked is not True:  # outside the except block: the body's exceptions must not chain to ENOLCK
            yield locked
            return
        try:
            yield True
        finally:
            release_lock(handle)


@contextmanager
def _category_lock(config: RunConfig, category: str) -> Iterator[None]:
    """Hold an exclusive lock on a category's outputs; a second ``run`` into the same folder stops at once.

    Two runs writing one category's maps would leave results that describe other maps than those on disk.
    Without ``flock`` (Windows) there is no lock; on a file system without locks the run goes on unlocked,
    with a warning.
    """
    with _try_category_lock(config, category) as locked:
        if isinstance(locked, OSError):
            warn(f"{_lock_path(config, category)}: cannot lock ({locked.strerror or locked}); a second run writing "
                 f"category {category!r} into this folder at the same time would not be stopped")
        elif not locked:
            raise InputError(f"another adbench-hr run is writing category {category!r} here", config.folder())
        yield


def _checkpoint_names(category: str) -> str:
    """Regular expression of the category's checkpoint file names (:meth:`RunConfig.checkpoint_path`), and
    of the older ``<category>-<run key>.safetensors`` ones, from before they carried the training files."""
    return rf"{re.escape(category)}-[0-9a-f]{{16}}(-[0-9a-f]{{16}})?\.safetensors"


def _clear_leftovers(config: RunConfig, category: str) -> None:
    """Drop the temporaries that killed runs left behind in a category's outputs.

    Matched exactly: category ``metal``'s pattern must not reach the live temporaries of ``metal-x`` or
    ``metal.v2``, which another run may be writing.
    """
    own = {
        "checkpoints": re.compile(rf"\.{_checkpoint_names(category)}\..+\.part"),
        RUN_RESULTS_FOLDER: re.compile(rf"\.{re.escape(category)}(\.lowres\d+)?\.json\..+\.part"),
    }
    leftovers = [*(config.maps_dir() / category).rglob(".*.part")]
    for folder, pattern in own.items():
        leftovers += [p for p in config.folder().glob(f"{folder}/.*.part") if pattern.fullmatch(p.name)]
    for path in leftovers:
        remove_leftover(path)


def _tidy_finished_category(config: RunConfig, category: str) -> None:
    """Tidy a category skipped as finished: clear the temporaries of killed runs (a checkpoint of other
    settings being saved) and a stale incomplete-maps mark (a run killed before it removed the results,
    hence before it rewrote any map). Only under the category's lock, taken without waiting: a run holding
    it has live temporaries, and where the lock state is unknown (a file system without locks) nothing is
    touched. Where there is no ``flock`` at all (Windows) nothing is locked and the category is tidied: one
    run per output folder at a time is the user's to keep there."""
    with _try_category_lock(config, category) as locked:
        if locked is True:
            _clear_leftovers(config, category)
            mark_maps_complete(config.maps_dir(), category)


def _invalidate_results(config: RunConfig, category: str, sample_ids: set[str] | None = None) -> None:
    """Remove a category's previous results just before its maps are rewritten, and the maps of test images
    that are no longer in ``sample_ids`` (the category's test samples now); mark the maps folder incomplete
    until the last map and ``image_scores.csv`` are written (:func:`~adbench_hr.maps.mark_maps_incomplete`).

    A result of other settings must not stay "finished" while the maps change under it (an interrupted run
    would leave it pointing at a mixture), and a map of a removed image would be scored by ``score``. Until
    then, a run that fails (a bad option, a fit that diverges, a first prediction that is refused) leaves
    the previous result and its maps as they were.
    """
    mark_maps_incomplete(config.maps_dir(), category)  # until every map is rewritten, `score` refuses them
    for protocol in config.protocols():
        config.result_path(category, protocol).unlink(missing_ok=True)
    # Other lowres sizes of these maps.
    for path in config.results_dir().glob(f"{glob.escape(category)}.lowres*.json"):
        path.unlink(missing_ok=True)
    # The removals reach the disk before any new map: after a power loss, an old result never describes them.
    sync_folder(config.results_dir())
    if sample_ids is not None:
        for path in unmatched_maps(config.maps_dir(), category, sample_ids):
            path.unlink(missing_ok=True)


def _reset_peak_host_memory() -> bool:
    """Reset the process's peak resident set size to its current size; ``False`` where the OS cannot.

    Linux (>= 4.0) resets the high-water mark ``VmHWM`` when ``5`` is written to ``/proc/self/clear_refs``,
    so that each category's result records its own peak rather than the largest of all so far.
    """
    try:
        _PROC_CLEAR_REFS.write_text("5", encoding="ascii")
        return _PROC_STATUS.is_file()
    except OSError:
        return False


def _peak_host_memory_mb() -> float | None:
    """Peak resident set size in MiB: ``VmHWM`` where ``/proc`` has it, the rusage maximum otherwise; ``None``
    where the system has neither (Windows)."""
    try:
        for line in _PROC_STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    if resource is None:
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024.0  # bytes there, kB elsewhere


def _peak_memory(device: str) -> dict[str, float | None]:
    """Peak host (and GPU) memory in MiB since the last reset (host: ``None`` where the system cannot say)."""
    host = _peak_host_memory_mb()
    peak: dict[str, float | None] = {"peak_host_memory_mb": None if host is None else round(host, 1)}
    if device.startswith("cuda"):
        import torch

        # The method's device ("cuda:1"), not the current one, which is cuda:0 unless someone changed it.
        peak["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak


def _reset_peak_gpu_memory() -> None:
    """Make the GPU peak of a result cover its own category only (torch is imported only if in use).

    Every GPU's: the method that is about to be created or loaded may run on any of them (``cuda:1``).
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)  # the method's GPU: a bare synchronize() waits for the current one only


def run_category(
    config: RunConfig,
    dataset: Dataset,
    category: str,
    make_method: Callable[[], Any],
    load_method: Callable[[Path], Any],
    data: CategoryData | None = None,
) -> list[dict[str, Any]]:
    """Fit (or reload), predict, write maps, score; write and return the results (full protocol first).

    ``data`` is the category's :func:`category_data` when the caller has listed it already.
    """
    check_category(dataset, category)
    data = category_data(dataset, category) if data is None else data
    with _category_lock(config, category):
        _clear_leftovers(config, category)
        return _run_category(config, dataset, category, data, make_method, load_method)


def _load_checkpoint(path: Path, load_method: Callable[[Path], Any], method_name: str) -> Any | None:
    """The method saved in ``path``; ``None`` (file removed, so the category is fitted again) when the file
    is damaged or the method refuses it (an error naming the checkpoint). Other loading errors (weights that
    cannot be fetched ...) propagate."""
    from safetensors import safe_open

    try:
        # Opening parses the header and checks that the data covers the file exactly, which catches a
        # truncated or overwritten file without reading the tensors a second time.
        with safe_open(str(path), framework="pt"):
            pass
    except OSError as exc:  # a read error says nothing about the file: keep it
        raise InputError(f"cannot read the checkpoint ({exc.strerror or exc})", path) from None
    except Exception as exc:  # truncated or overwritten: safetensors raises several types
        warn(f"{path}: damaged checkpoint ({type(exc).__name__}), fitting again")
        path.unlink(missing_ok=True)
        return None
    try:
        with _method_step(method_name, "_load_checkpoint", f"checkpoint {path}"):
            return load_method(path)
    except CheckpointsNotSupported:  # a plug-in that saves but cannot load: resuming means fitting again
        warn(f"{path}: the method cannot load its checkpoints, fitting again")
        return None
    except InputError as exc:
        if exc.path is None or exc.path.resolve() != path.resolve():  # e.g. weights that cannot be fetched
            raise
        # Readable but unusable here (written by another code version, or for a teacher that changed since):
        # a fit replaces it, rather than every resume stopping at it.
        warn(f"{path}: unusable checkpoint ({exc.problem}), fitting again")
        path.unlink(missing_ok=True)
        return None


class MethodFailed(RuntimeError):
    """A method raised an unexpected exception (a bug, or an input it cannot handle); chained to it."""


@contextmanager
def _method_step(method_name: str, step: str, where: str) -> Iterator[None]:
    """Add one line of context (method, step, category or image) under the traceback of a method's exception.

    A method's own :class:`InputError` (and an :class:`OSError` naming a file) stays a one-line error, and so
    does running out of memory (:func:`out_of_memory`): options too large for the machine, not a bug.
    """
    try:
        yield
    except (InputError, OSError):
        raise
    except Exception as exc:
        if out_of_memory(exc):
            raise InputError(
                f"method {method_name!r} ran out of memory in {step} ({where}): {one_line(exc, 240)}; lower its "
                "input size or batch options, or free memory (finished categories are kept)"
            ) from None
        raise MethodFailed(
            f"method {method_name!r} raised {type(exc).__name__} in {step} ({where}); the traceback above "
            "shows where"
        ) from exc


def _warn_once(config: RunConfig, key: str, message: str) -> None:
    """Issue ``message`` the first time ``key`` comes up in ``config``'s run (:attr:`RunConfig.warned`)."""
    if key not in config.warned:
        config.warned.add(key)
        warn(message)


def _save_checkpoint(config: RunConfig, method: Any, path: Path) -> Path | None:
    """Save a fitted method; the checkpoint's path, or ``None`` for a method that saves none.

    A method that cannot save (``save`` raises ``NotImplementedError`` or ``CheckpointsNotSupported``, or
    writes no file) is run without checkpoints, with one warning per run: a resumed run fits again. A file that is
    not an adbench-hr checkpoint is an error now, not at the resume it would block.
    """
    from adbench_hr.methods import read_checkpoint_metadata

    method_name = config.method
    with _method_step(method_name, "save", f"checkpoint {path}"):
        try:
            method.save(path)
        except (NotImplementedError, CheckpointsNotSupported):
            pass
    if not path.is_file():
        _warn_once(config, "no checkpoints",
                   f"method {method_name!r} saves no checkpoints: an interrupted run fits its category again")
        return None
    try:
        read_checkpoint_metadata(path)
    except InputError as exc:
        path.unlink(missing_ok=True)
        raise InputError(f"method {method_name!r}: save() wrote a file that is {exc.problem}", path) from None
    return path


def checked_provenance(method_name: str, method: Any) -> dict[str, Any]:
    """``method.provenance()``, checked to go into a result file (a dict of strict JSON values).

    Raises
    ------
    InputError
        Naming the method, before any map is written rather than after the last one.
    """
    record = method.provenance()
    if not isinstance(record, dict):
        raise InputError(f"method {method_name!r}: provenance() returned a {type(record).__name__}, not a dict")
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"method {method_name!r}: provenance() cannot be recorded in a result file (JSON values without NaN "
            f"or infinity, e.g. float(x) for a numpy number: {exc})"
        ) from None
    return record


def _run_category(
    config: RunConfig,
    dataset: Dataset,
    category: str,
    data: CategoryData,
    make_method: Callable[[], Any],
    load_method: Callable[[Path], Any],
) -> list[dict[str, Any]]:
    train, test = data.train, data.test
    run_key = config.run_key  # once: it reads a --weights file's identity, which must not change midway
    checkpoint = config.checkpoint_path(category, data.train_fingerprint, run_key)

    _reset_peak_gpu_memory()
    host_scope = "category" if _reset_peak_host_memory() else "process"
    fit_seconds = None
    method = _load_checkpoint(checkpoint, load_method, config.method) if checkpoint.is_file() else None
    saved: Path | None = checkpoint
    if method is None:
        check_masks(test)  # a broken mask must stop the run now, not after the fit
        with _method_step(config.method, "creation", f"category {category!r}"):
            method = make_method()
        start = time.perf_counter()
        with _method_step(config.method, "fit", f"category {category!r}"):
            method.fit(train, progress=config.progress)
        _sync(method.device)
        fit_seconds = time.perf_counter() - start
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        saved = _save_checkpoint(config, method, checkpoint)
    with _method_step(config.method, "provenance", f"category {category!r}"):
        provenance = checked_provenance(config.method, method)  # before any map replaces an old one

    scorers = [ProtocolScorer("full")]
    if config.lowres_eval_size:
        scorers.append(ProtocolScorer("lowres", config.lowres_eval_size))
    listed = listing_warnings(dataset, category, test, train)
    for scorer in scorers:  # in each result; the CLI prints a warning the results share once
        scorer.warnings += listed
    maps_dir = config.maps_dir()
    image_scores: dict[str, float] = {}
    map_paths: list[Path] = []
    predict_seconds = 0.0
    bar = progress_bar(test, show=config.progress, desc=f"{config.method} predict {category}", unit="img")
    for sample in bar:
        image = sample.load_image()
        start = time.perf_counter()
        with _method_step(config.method, "predict", f"image {sample.image_path}"):
            prediction = method.predict(image)
        _sync(method.device)
        predict_seconds += time.perf_counter() - start
        anomaly_map, image_score = checked_prediction(config.method, sample, prediction, image.shape[:2])
        if anomaly_map.dtype == np.float64:
            _warn_once(config, "float64 maps",
                       f"method {config.method!r} returns maps whose values float32 would round: they are saved "
                       "and scored as float64, at twice the size; return float32 maps to save space")
        if not image_scores:  # the first map is about to replace one the old results describe
            _invalidate_results(config, category, {s.sample_id for s in test})
        map_path = maps_dir / category / map_file_name(sample.sample_id)
        write_map(map_path, anomaly_map, durable=False)  # flushed together below: one fsync per map is slow
        map_paths.append(map_path)
        image_scores[sample.sample_id] = image_score
        mask = checked_mask(sample, anomaly_map, map_path, image_shape=image.shape[:2])
        for scorer in scorers:
            scorer.add(sample, mask, anomaly_map, image_score, map_path)
    # On the disk before the mark goes: after a power loss, a finished category never has an empty map.
    sync_files(map_paths)
    write_image_scores(maps_dir / category / IMAGE_SCORES_FILE, image_scores)
    mark_maps_complete(maps_dir, category)  # before the results: a finished category never keeps the mark

    timing = {
        "fit_s": None if fit_seconds is None else round(fit_seconds, 3),
        "predict_ms_per_image": round(1000.0 * predict_seconds / max(len(test), 1), 2),
        **_peak_memory(method.device),
    }
    generator = generator_record(dataset.root)  # read once for both protocols' results
    results = []
    for scorer in scorers:
        scored = scorer.compute()
        result = build_result(
            method=config.method,
            dataset=config.dataset_name,
            category=category,
            protocol=scored["protocol"],
            metrics=scored["metrics"],
            pretrained_backbone=method.pretrained_backbone,
            seed=method.options.get("seed"),
            method_options=method.options,
            # Options that change no map value: the leaderboard does not tell settings apart by them.
            resource_options=sorted(config.resource_options),
            provenance=provenance,
            timing=timing,
            # "category": the host peak covers this category alone; "process": the whole process so far
            # (an OS without a peak reset).
            peak_host_memory_scope=host_scope,
            fit_reused_checkpoint=fit_seconds is None,
            device=_device_name(method.device),
            n_train_images=len(train),
            maps_dir=str(maps_dir.resolve()),
            dataset_root=str(Path(dataset.root).resolve()),
            dataset_generator=generator,
            checkpoint=None if saved is None else str(saved.resolve()),
            warnings=scored["warnings"],
            run_key=run_key,
            data_fingerprint=data.fingerprint,
            command=config.command,
            versions={**library_versions(), **(config.method_package or {})},
        )
        write_result(config.result_path(category, scorer.protocol), result)
        results.append(result)
    _remove_other_checkpoints(config, category, saved)
    return results


def _remove_other_checkpoints(config: RunConfig, category: str, current: Path | None) -> None:
    """Once a category is finished, drop its checkpoints of other settings or training files: each new
    setting would otherwise leave one more (PatchCore's memory banks are large)."""
    pattern = re.compile(_checkpoint_names(category))
    for path in config.folder().glob("checkpoints/*.safetensors"):
        if pattern.fullmatch(path.name) and path != current:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # housekeeping: the category's results are written already
                warn(f"{path}: cannot remove an outdated checkpoint ({exc.strerror or exc})")


def checked_prediction(
    method_name: str, sample: TestSample, prediction: Any, image_shape: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """A method's prediction for one image, checked before anything is written: the map as it is saved (so
    that the result describes the file: float32, or float64 where float32 would round its values) and the
    image score (``None``: the map maximum).

    Raises
    ------
    InputError
        Naming the method and the image, for a map that is not a finite real 2-D array at the image's size
        or a score that is not a finite number.
    """

    def fail(problem: str) -> InputError:
        return InputError(f"method {method_name!r} returned {problem}", sample.image_path)

    if not hasattr(prediction, "anomaly_map"):
        raise fail(f"a {type(prediction).__name__}, not a Prediction(anomaly_map, image_score)")
    raw = prediction.anomaly_map
    if not isinstance(raw, np.ndarray):
        raise fail(f"no numpy anomaly map (got {type(raw).__name__})")
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise fail(f"an anomaly map of dtype {raw.dtype} (expected float32)")
    if raw.shape != tuple(image_shape):
        raise fail(
            f"an anomaly map of shape {raw.shape} for an image of {image_shape[0]}x{image_shape[1]} "
            "(maps must be 2-D at the original resolution)"
        )
    try:
        anomaly_map = exact_scores(raw)
    except ValueError as exc:
        raise fail(f"an anomaly map of {exc}") from None
    if not np.isfinite(anomaly_map).all():
        raise fail("an anomaly map with NaN or inf values")
    score = getattr(prediction, "image_score", None)
    if isinstance(score, np.ndarray) and score.ndim == 0:  # e.g. np.asarray(anomaly_map.max())
        score = score[()]
    if score is None:
        return anomaly_map, float(anomaly_map.max())  # MVTec's rule
    if isinstance(score, bool) or not isinstance(score, (int, float, np.integer, np.floating)):
        raise fail(f"an image score of type {type(score).__name__} (expected a float)")
    try:
        finite = math.isfinite(float(score))
    except OverflowError:  # a Python int beyond float64's range
        raise fail("an image score beyond the range of float64") from None
    if not finite:
        if finite_beyond_float64(score):  # a long double that float() turns into inf
            raise fail("an image score beyond the range of float64")
        raise fail(f"a non-finite image score ({score})")
    try:  # as AnomalyMetrics.update checks it: an integer (or long double) that float64 would round could tie
        return anomaly_map, checked_image_score(score)
    except InputError as exc:
        raise fail(f"an image score that cannot be used ({exc.problem})") from None


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run_benchmark(
    config: RunConfig,
    dataset: Dataset,
    categories: Sequence[str],
    make_method: Callable[[], Any],
    load_method: Callable[[Path], Any],
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every category in turn, skipping those already finished with the same settings.

    Parameters
    ----------
    config : RunConfig
        Where and under which settings to run. Its ``method_options`` decide what counts as finished (the
        run key), so they must be what ``make_method`` creates: the options the method records, as
        :func:`~adbench_hr.methods.registry.resolved_options` gives them (``adbench-hr run`` builds both
        from one set of options).
    dataset : Dataset
        The opened dataset.
    categories : sequence of str
        Categories to run, in order.
    make_method : callable
        ``() -> method``: a new, unfitted method for one category.
    load_method : callable
        ``(checkpoint path) -> method``: the method of an interrupted category's checkpoint.
    echo : callable, optional
        Receives the "already finished" lines, and those saying why an earlier result is computed again.

    Returns
    -------
    list of dict
        The result of every category (and protocol), those skipped included.

    Raises
    ------
    InputError
        Before any fit: for a category the dataset lacks or whose name cannot go into a result, a
        ``lowres_eval_size`` out of range, an output folder that cannot be created. Later: a category that
        another run is writing, a method's prediction, checkpoint or memory that cannot be used (naming the
        method), bad data files; finished categories keep their results.
    MethodFailed
        For an unexpected exception of the method (chained to it).
    """
    for category in categories:
        check_category(dataset, category)
        if problem := name_problem(category):  # it goes into the result: refuse it before the fit, not after
            raise InputError(f"category name {problem}", Path(dataset.root) / category)
    if config.lowres_eval_size is not None:
        check_protocol("lowres", config.lowres_eval_size, option="--lowres-eval-size")
    ensure_folder(config.folder())  # before hours of training, not after
    results = []
    for category in categories:
        data = category_data(dataset, category)
        done, stale = earlier_results(config, category, data.fingerprint)
        if done is not None and (missing := missing_output(config, category, data.test)) is not None:
            warn(f"{missing}: missing, so the finished category {category!r} is run again")
            done = None
        if done is not None:
            echo(f"{category}: already finished, skipped ({config.result_path(category)})")
            _tidy_finished_category(config, category)
            results += done
            continue
        if stale:
            echo(f"{category}: {stale}")
        results += run_category(config, dataset, category, make_method, load_method, data)
    return results
