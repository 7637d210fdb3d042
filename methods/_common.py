"""Helpers shared by the methods of the zoo: devices, option coercion, image intake, checkpoints.

Everything here is method-agnostic; a method module imports what it needs instead of keeping its own copy.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import math
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from adbench_hr._source import source_fingerprint
from adbench_hr.errors import InputError, one_line, warn
from adbench_hr.fileio import make_locked_folder, remove_orphaned_folders

from ._backbone import BackboneInfo
from .base import CHECKPOINT_METADATA_KEY, AnomalyMethod, Prediction, check_json_options
from .registry import check_options, option_defaults

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_device(device: str) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a torch device.

    Raises
    ------
    InputError
        If CUDA is requested but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return resolved


def check_cuda_index(device: str) -> None:
    """Refuse ``"cuda:N"`` past the GPUs this process sees (``CUDA_VISIBLE_DEVICES`` counts), with one line
    naming them, before a model is moved there ("invalid device ordinal" deep inside torch)."""
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is not None:
        count = torch.cuda.device_count()
        if resolved.index >= count:
            visible = f"cuda:0 .. cuda:{count - 1}" if count > 1 else "cuda:0" if count == 1 else "none"
            raise InputError(f"device {device!r} requested but this process sees {count} CUDA device(s) "
                             f"({visible})")


def concrete_device(device: str) -> torch.device:
    """The device a method takes for its tensors: :func:`resolve_device`, with CUDA pinned to one GPU.

    ``"auto"`` and ``"cuda"`` become ``cuda:N`` of the GPU current now, and an index past the visible GPUs is
    refused. A bare ``torch.device("cuda")`` means whichever GPU is current at each use: after a
    ``torch.cuda.set_device`` between construction, fit and predict, the teacher, the students and each
    uploaded image landed on different GPUs (a device-mismatch error), and results recorded ``cuda``
    without saying which GPU ran. The options keep what was asked for (the run key ignores the index).
    """
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return resolved
    check_cuda_index(device)
    return resolved if resolved.index is not None else torch.device("cuda", torch.cuda.current_device())


def as_bool(value: Any) -> bool:
    """Accept real booleans, the numbers 0 and 1 and the usual spellings from command lines and config files.

    Anything else (``2``, ``0.5``, ``[true]``, ``null``) raises: ``bool()`` would read it as a setting nobody
    asked for.
    """
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def as_float(value: Any) -> float:
    """A real-valued option: numbers and numeric strings; ``True``/``False`` raise (``float(True)`` is 1.0, a
    value nobody typed)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"not a number: {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None


def as_int_list(value: Any) -> list[int]:
    """A list of integers (``[5, 5]``); a bare number is refused rather than read as a one-item list."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of integers such as [5, 5], got {value!r}")
    return [as_int(v) for v in value]


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object option (``{"depth": 4}``); ``None`` is the empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object such as {{\"depth\": 4}}, got {value!r}")
    return dict(value)


def as_seed(value: Any) -> int:
    """A seed torch accepts: an integer in 0 .. 2**63 - 1."""
    seed = as_int(value)
    if not 0 <= seed < 2**63:
        raise ValueError(f"must lie in 0 .. 2**63-1, got {seed}")
    return seed


def coerce_options(method: str, values: Mapping[str, Any], converters: Mapping[str, Callable[[Any], Any]]) -> dict:
    """``{key: converters[key](values[key])}``, or an :class:`InputError` naming the option that fails."""
    options = {}
    for key, convert in converters.items():
        try:
            options[key] = convert(values[key])
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"{method}: option {key}={values[key]!r} is not valid ({exc})") from None
    return options


def resolve_with(
    method_class: Any,
    options: Mapping[str, Any],
    converters: Mapping[str, Callable[[Any], Any]],
    fill: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The body of a built-in method's ``resolve_options``: the class's defaults for the options not given,
    ``fill`` (e.g. a preset's values), types coerced by ``converters`` (one per option), then the class's
    ``_validate`` and the strict-JSON check of result files."""
    name = method_class.name
    check_options(name, method_class, options)
    args = {**option_defaults(method_class), **options}
    opts = coerce_options(name, fill(args) if fill is not None else args, converters)
    method_class._validate(opts)
    check_json_options(name, opts)
    return opts


def as_text(value: Any) -> str:
    """A text option: a string, or a path (``os.PathLike``) as its string. ``None``, numbers and lists raise:
    ``str()`` would turn ``None`` into the name ``"None"`` and report a file or model of that name missing."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    raise ValueError(f"not a string: {value!r}")


def as_device(value: Any) -> str:
    """A device option: its text (``"cuda:1"``), or a ``torch.device`` as that text."""
    return str(value) if isinstance(value, torch.device) else as_text(value)


def optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def as_int(value: Any) -> int:
    """An integer option: ints, integral floats (``2.0``) and integer strings; ``1.5`` or ``True`` raise.

    ``int()`` alone would truncate ``epochs=1.5`` to 1 and record a setting nobody asked for.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, str):
        value = value.strip()
        try:
            return int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"not an integer: {value!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for the body only, leaving the caller's global RNG state untouched.

    Only the CPU generator (the models are built on the CPU, then moved): ``torch.manual_seed`` would also
    reseed every CUDA (MPS, XPU) device's generator, which ``fork_rng(devices=[])`` does not restore, so a
    notebook's GPU random stream would restart from the method's seed after each ``create_method`` or ``fit``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


class ImageValueError(InputError, ValueError):
    """An image ``predict`` or ``fit`` cannot take (dtype, shape): an :class:`InputError`, and a ``ValueError``
    as before."""


class ImageTypeError(InputError, TypeError):
    """An image that is not a numpy array: an :class:`InputError`, and a ``TypeError`` as before."""


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """Validate a ``uint8`` image and wrap it (no copy) as an ``(H, W, C)`` tensor, ``C`` in {1, 3}.

    Raises
    ------
    InputError
        (:class:`ImageTypeError`, :class:`ImageValueError`) for anything else, naming the problem.
    """
    if not isinstance(image, np.ndarray):
        raise ImageTypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageValueError(f"image shape must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(image))


def check_takes_input(model: nn.Module, side: int, what: str, **forward_kwargs: Any) -> None:
    """Refuse a backbone that cannot take a ``(1, 3, side, side)`` input through ``forward_intermediates``.

    Meant for preflight, on torch's ``meta`` device (shapes only, no memory): options such as
    ``teacher_kwargs`` (another ``img_size``, ``in_chans``) or a ViT backbone of a fixed size would otherwise
    fail in the first batch of the fit, after the dataset was read. ``what`` names the backbone and its
    options in the one-line :class:`InputError`.
    """
    try:
        model.forward_intermediates(torch.empty(1, 3, side, side), intermediates_only=True, stop_early=True,
                                    **forward_kwargs)
    except Exception as exc:  # timm raises assertions, shape and type errors alike
        raise InputError(f"{what} does not take a {side} x {side} RGB input ({type(exc).__name__}: {exc})") from None


def prefetch_images(samples: Sequence[Any], workers: int) -> Iterator[np.ndarray]:
    """Yield ``sample.load_image()`` in order while a few threads decode the next images."""
    if workers <= 0:
        for sample in samples:
            yield sample.load_image()
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        it = iter(samples)
        pending = deque(pool.submit(s.load_image) for s in itertools.islice(it, 2 * workers))
        while pending:
            image = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(nxt.load_image))
            yield image


# ---------------------------------------------------------------------------------------------- checkpoints


_BUFFER_PREFIX = "adbench_hr_features_"
_BUFFER_LOCK = "lock"


def check_tmp_dir(tmp_dir: str | Path) -> None:
    """Refuse a ``tmp_dir`` option that is not a writable folder now, not when features first spill to disk
    in the middle of a fit."""
    if not str(tmp_dir):  # `-o tmp_dir=$SCRATCH` with SCRATCH unset: not the working folder without a word
        raise InputError("tmp_dir is empty (an unset variable?); leave it out for the system temp folder, or pass .")
    folder = Path(tmp_dir)
    if not folder.is_dir():
        raise InputError(f"tmp_dir {tmp_dir}: {'not a folder' if folder.exists() else 'no such folder'}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"tmp_dir {tmp_dir}: not writable")


def remove_orphaned_buffers(tmp_dir: str | Path | None = None) -> list[Path]:
    """Delete the feature buffers that killed runs left in ``tmp_dir`` (default: the system temp folder).

    A live buffer folder ``adbench_hr_features_<random>`` holds an exclusive ``flock`` on its ``lock`` file
    as long as its process runs; a folder whose lock can be taken is an orphan
    (:func:`adbench_hr.fileio.remove_orphaned_folders`). Locks, unlike process ids, also hold across
    containers on one host. Returns the removed folders.
    """
    folder = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    return remove_orphaned_folders(folder, f"{_BUFFER_PREFIX}*", _BUFFER_LOCK)


class HostBuffer:
    """A host tensor that lives in RAM when it fits a budget, else in a temporary memory-mapped file.

    Bounds the host memory of large feature caches: beyond ``ram_budget_bytes`` the operating system
    pages the data to and from disk instead. Use it as a context manager; leaving (or :meth:`close`)
    releases the tensor and deletes the file.

    Parameters
    ----------
    shape : tuple of int
        Shape of the tensor (uninitialised).
    dtype : torch.dtype
        Its element type.
    ram_budget_bytes : float
        Largest size kept in RAM (``math.inf``: always RAM).
    tmp_dir : str or Path, optional
        Folder for the file (default: the system temp folder).

    Attributes
    ----------
    tensor : torch.Tensor
        The buffer (a view of the file in the ``"disk"`` case).
    location : {"ram", "disk"}
        Where it lives.
    nbytes : int
        Its size.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        ram_budget_bytes: float,
        tmp_dir: str | Path | None = None,
    ) -> None:
        self.nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        self._folder: Path | None = None
        self._lock: Any | None = None
        self._memmap: np.memmap | None = None
        if self.nbytes <= ram_budget_bytes:
            self.location = "ram"
            self.tensor = torch.empty(shape, dtype=dtype)
        else:
            self.location = "disk"
            if tmp_dir is not None:  # preflight checked it for `run`; a library caller's fit comes here unchecked
                check_tmp_dir(tmp_dir)
            remove_orphaned_buffers(tmp_dir)  # a killed run cannot clean up after itself
            self._folder, self._lock = make_locked_folder(tmp_dir, _BUFFER_PREFIX, _BUFFER_LOCK)
            np_dtype = torch.empty((), dtype=dtype).numpy().dtype
            self._memmap = np.memmap(self._folder / "buffer.bin", dtype=np_dtype, mode="w+", shape=shape)
            self.tensor = torch.from_numpy(self._memmap)

    def close(self) -> None:
        """Release the tensor and delete the file, if any."""
        self.tensor = torch.empty(0)
        self._memmap = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> HostBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as detached, contiguous CPU copies with ``prefix`` prepended to every key."""
    return {prefix + key: value.detach().to("cpu").contiguous().clone() for key, value in module.state_dict().items()}


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], record: Mapping[str, Any]) -> None:
    """Write tensors plus the JSON ``record`` (format, method, options, provenance...) as safetensors.

    Parent folders are created. ``record`` goes into the safetensors metadata under
    :data:`~adbench_hr.methods.base.CHECKPOINT_METADATA_KEY`, where
    :func:`~adbench_hr.methods.base.read_checkpoint_metadata` finds it without torch.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from adbench_hr.fileio import atomic_path

    # Through a private temporary folder: safetensors' own temporary lands in it too, so a killed run
    # leaves one recognisable ``.part`` folder behind, which the next run removes.
    with atomic_path(path, private_folder=True) as temp:
        try:
            save_file(tensors, str(temp), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})
        except SafetensorError as exc:  # its I/O errors (a full disk ...) are not OSErrors
            raise InputError(f"cannot write the checkpoint ({exc})", path) from None


def check_overrides(overrides: Iterable[str], allowed: Iterable[str], path: Path) -> None:
    """Raise an :class:`InputError` if a load-time override is not one of the ``allowed`` run-time options."""
    allowed = set(allowed)
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise InputError(f"cannot override {', '.join(bad)} when loading (allowed: {', '.join(sorted(allowed))})", path)


def tensors_with_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore_backbone(
    module: nn.Module,
    current: BackboneInfo,
    recorded: BackboneInfo,
    embedded: Mapping[str, torch.Tensor] | None,
    path: Path,
    what: str,
    fitted_with: str = "the model was fitted with",
) -> BackboneInfo:
    """Give a freshly built backbone the weights a checkpoint was made with.

    Parameters
    ----------
    module : torch.nn.Module
        The backbone as rebuilt from the checkpoint's options (random weights when ``embedded`` is given).
    current : BackboneInfo
        Provenance of the rebuilt backbone's weights.
    recorded : BackboneInfo
        Provenance stored in the checkpoint.
    embedded : mapping or None
        The backbone's state dict stored in the checkpoint, or ``None`` when it was not embedded (then the
        rebuilt weights must hash like the recorded ones).
    path : Path
        The checkpoint, for error messages.
    what : str
        How the method calls its backbone ("teacher", "backbone"), for error messages.
    fitted_with : str
        End of the hash-mismatch message: "<what> weights differ from those <fitted_with>".

    Returns
    -------
    BackboneInfo
        The provenance the loaded method should report.
    """
    if embedded is not None:
        try:
            module.load_state_dict(dict(embedded), strict=True)
        except RuntimeError as exc:
            raise InputError(f"embedded {what} does not match the options ({one_line(exc, 200)})", path) from None
        return recorded
    if current.sha256 != recorded.sha256:
        raise InputError(
            f"{what} weights differ from those {fitted_with} "
            f"(sha256 {current.sha256[:12]}... != {recorded.sha256[:12]}...)",
            path,
        )
    return current


def backbone_provenance(method: Any, role: str, **specific: Any) -> dict[str, Any]:
    """The provenance record of a method with a pretrained backbone.

    The fields every such method records (method, options, the backbone and its weights hash under keys
    named after its ``role`` — ``teacher``, ``teacher_weights`` ... or ``backbone``, ``backbone_weights``
    ..., whether it is pretrained, seed, code and library versions, device), then the method's own
    ``specific`` fields.
    """
    import timm

    info = method._backbone
    build = current_build()
    return {
        "method": method.name,
        "options": dict(method.options),
        role: info.model_name,
        f"{role}_weights": info.weights,
        f"{role}_weights_sha256": info.sha256,
        f"{role}_weights_hash_kind": info.hash_kind,
        "pretrained_backbone": info.pretrained,
        "seed": method.options["seed"],
        **build,
        # The build that fitted the model: another one when it was loaded from a checkpoint (a resumed run
        # of an edited checkout). None before a fit.
        "fit_code_version": method.fit_stats.get("code_version"),
        "fit_code_fingerprint": method.fit_stats.get("code_fingerprint"),
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
        "device": method.device,
        **specific,
    }


def current_build() -> dict[str, str]:
    """The adbench-hr build running now: its ``code_version`` and ``code_fingerprint``
    (:func:`~adbench_hr._source.source_fingerprint`). A fit records it in ``fit_stats``, which checkpoints keep,
    so that provenance names the build that fitted a model as well as the one that ran it."""
    import adbench_hr

    return {"code_version": adbench_hr.__version__, "code_fingerprint": source_fingerprint()}


def checkpoint_record(method: Any, embedded_key: str, embedded: bool, **extra: Any) -> dict[str, Any]:
    """The JSON record of a checkpoint: format, method, options, backbone provenance, fit stats, extras."""
    from .base import CHECKPOINT_FORMAT

    return {
        "format": CHECKPOINT_FORMAT,
        "method": method.name,
        "options": method.options,
        "backbone": method._backbone.as_dict(),
        embedded_key: bool(embedded),
        **extra,
        "fit_stats": dict(method.fit_stats),
        "provenance": method.provenance(),
    }


def rebuild_from_checkpoint(
    cls: Any,
    path: Path,
    meta: Mapping[str, Any],
    overrides: Mapping[str, Any],
    runtime_options: Iterable[str],
    *,
    backbone_attr: str,
    embedded_key: str,
    what: str,
    fitted_with: str = "the model was fitted with",
) -> tuple[Any, dict[str, torch.Tensor]]:
    """First half of every ``_load_checkpoint``: the method rebuilt with its backbone's weights restored.

    Options come from the checkpoint, with the allowed run-time ``overrides`` applied. An embedded
    backbone (random weights) is rebuilt from random init and overwritten, so no network is needed;
    otherwise the backbone is reloaded from its source and must hash like the recorded one.

    Returns
    -------
    method
        The rebuilt method (its own tensors, e.g. students or memory bank, still to be loaded).
    tensors : dict
        Every tensor of the checkpoint, on the CPU.
    """
    from safetensors.torch import load_file

    import adbench_hr

    check_overrides(overrides, runtime_options, path)
    fit_stats = dict(meta.get("fit_stats") or {})
    provenance = meta.get("provenance")
    if isinstance(provenance, dict):  # a checkpoint whose fit_stats do not name the fitting build: its writer did
        for key in ("code_version", "code_fingerprint"):
            if key in provenance:
                fit_stats.setdefault(key, provenance[key])
    fitted_by = fit_stats.get("code_version")
    if isinstance(fitted_by, str) and fitted_by != adbench_hr.__version__:
        # The version changes with the numbers a method gives (adbench_hr/__init__.py); run never reuses such a
        # checkpoint (its run key differs), a library caller is told.
        warn(f"{path}: checkpoint fitted by adbench-hr {fitted_by}, this is {adbench_hr.__version__}: its maps and "
             "scores may differ from those it gave then")
    options = dict(meta["options"], **{k: v for k, v in overrides.items() if v is not None})
    check_options(cls.name, cls, options, path)  # a checkpoint of another code version may hold others
    recorded = BackboneInfo(**meta["backbone"])
    embedded = bool(meta.get(embedded_key))
    try:
        cls.resolve_options(options)
    except InputError as exc:
        if overrides:
            try:
                cls.resolve_options(meta["options"])
            except InputError:
                pass
            else:  # the checkpoint's own options are valid: an override is at fault, as creating the method says
                raise exc from None
        # Options another code version accepted.
        raise InputError(f"its options are not valid in this version: {exc.problem}", path) from None
    # Outside the check above: weights that cannot be loaded now are not the checkpoint's fault.
    method = cls(**{**options, "weights": "random" if embedded else options["weights"]})
    tensors = load_file(str(path), device="cpu")
    method._backbone = restore_backbone(
        getattr(method, backbone_attr),
        method._backbone,
        recorded,
        tensors_with_prefix(tensors, f"{what}.") if embedded else None,
        path,
        what,
        fitted_with,
    )
    if embedded:
        method.pretrained_backbone = recorded.pretrained
        method.options["weights"] = meta["options"]["weights"]
    method.fit_stats = fit_stats
    return method, tensors


class BatchedTorchMethod(AnomalyMethod):
    """Inference plumbing shared by the torch methods.

    :meth:`predict` goes through :meth:`predict_batch`, which runs :meth:`_predict_chunk` on groups of
    ``options["feature_batch_size"]`` images under ``torch.inference_mode``.
    """

    #: The option that holds the backbone's timm name.
    backbone_option: ClassVar[str] = "backbone"

    @classmethod
    def preflight(cls, opts: dict[str, Any]) -> None:
        """Refuse, before any data is read or generated, what creating the method would refuse beyond its
        options' types and ranges (which resolving them checks): a device that is not there, a weight file that
        is missing or does not fit the backbone, and options that do not fit the backbone (blocks or layers it
        lacks, an input size its patches do not divide). The backbone is built without weights on torch's
        ``meta`` device, which costs no memory.

        ``opts`` resolved as :meth:`resolve_options` (or
        :func:`~adbench_hr.methods.registry.resolved_options`) returns them. Raises an :class:`InputError`
        naming the problem.
        """
        from ._backbone import check_pretrained_source, check_weight_source, check_weights_fit

        check_cuda_index(opts["device"])
        check_weight_source(opts["weights"])
        if opts.get("tmp_dir") is not None:
            check_tmp_dir(opts["tmp_dir"])
        with torch.device("meta"):
            backbone = cls._check_architecture(opts)
        if backbone is not None:  # the file is read outside the meta context, as loading it reads it
            check_weights_fit(backbone, opts["weights"], opts[cls.backbone_option])
        if opts["weights"] == "pretrained":
            check_pretrained_source(opts[cls.backbone_option])

    @classmethod
    def _check_architecture(cls, opts: dict[str, Any]) -> torch.nn.Module | None:
        """Build the backbone of resolved options ``opts`` without weights, check that they fit it and return it
        as created (before any pruning), for the weight file's check; ``None`` for a method without one."""
        return None

    def _check_fitted(self) -> None:
        raise NotImplementedError

    def _synchronize(self) -> None:
        """Wait for the method's GPU (``cuda:N``, not the current device, which a bare ``synchronize()`` would
        wait for), so that a timed stage's clock covers its GPU work; nothing on the CPU."""
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def _predict_chunk(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        raise NotImplementedError

    def predict(self, image: np.ndarray) -> Prediction:
        """Anomaly map at the image's original ``(H, W)`` (float32) and image score.

        Parameters
        ----------
        image : numpy.ndarray
            ``uint8`` ``(H, W, 3)`` RGB, or ``(H, W)`` / ``(H, W, 1)`` grayscale.
        """
        return self.predict_batch([image])[0]

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Predict several images (of any sizes), one network pass per ``feature_batch_size`` images."""
        self._check_fitted()
        out: list[Prediction] = []
        size = self.options["feature_batch_size"]
        for start in range(0, len(images), size):
            out.extend(self._predict_chunk(images[start : start + size]))
        return out


class tf32_matmul:
    """Context manager that enables (or disables) TF32 for CUDA float32 matmuls in its body, then restores the
    caller's setting exactly.

    PyTorch >= 2.9 has a new per-backend setting (``torch.backends.cuda.matmul.fp32_precision``) beside the
    legacy ``allow_tf32`` flag, and refuses to *read* the legacy flag once a program has used the new one
    (RuntimeError "mix of the legacy and new APIs"); writing the legacy flag also overwrote the precision
    that ``torch.set_float32_matmul_precision("medium")`` had set, after which
    ``torch.get_float32_matmul_precision()`` raised. So the new setting is used where it exists (it is also
    what cuBLAS reads there), the legacy flag only on older versions. There, writing the flag sets the global
    float32 matmul precision ("high" or "highest"), so the caller's precision ("medium" too) is put back after.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        matmul = torch.backends.cuda.matmul
        if _NEW_TF32_API:
            self._prev = matmul.fp32_precision
            matmul.fp32_precision = "tf32" if self.enabled else "ieee"
        else:
            self._prev = matmul.allow_tf32
            self._prev_precision = torch.get_float32_matmul_precision()
            matmul.allow_tf32 = self.enabled

    def __exit__(self, *exc: object) -> None:
        if _NEW_TF32_API:
            torch.backends.cuda.matmul.fp32_precision = self._prev
        else:
            torch.backends.cuda.matmul.allow_tf32 = self._prev
            # That write turned a caller's "medium" into "high"; setting the precision sets the flag as well.
            torch.set_float32_matmul_precision(self._prev_precision)


def _has_new_tf32_api() -> bool:
    try:
        torch.backends.cuda.matmul.fp32_precision  # noqa: B018 (an attribute read that raises on old torch)
    except (AttributeError, RuntimeError):
        return False
    return True


_NEW_TF32_API = _has_new_tf32_api()
