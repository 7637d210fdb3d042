"""The interface every anomaly detection method implements.

A method is fitted on nominal images and then predicts, for one test image at a time, an anomaly map at
the image's original resolution plus an image-level score. Methods never compute metrics.

This module deliberately does not import torch, so that the registry can be listed cheaply.
"""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adbench_hr.datasets.base import TrainSample
from adbench_hr.errors import InputError
from adbench_hr.fileio import not_a_file_problem, refuse_empty_file

#: Key of the JSON provenance record inside a checkpoint's safetensors metadata.
CHECKPOINT_METADATA_KEY = "adbench_hr"
#: Format tag written into every checkpoint.
CHECKPOINT_FORMAT = "adbench-hr/checkpoint/v1"


def check_json_options(method: str, options: Mapping[str, Any]) -> None:
    """Raise an :class:`InputError` unless ``options`` can be recorded in a result file (strict JSON: no NaN
    or infinity, which would only fail when the result is written, after the whole run)."""
    for key, value in options.items():
        try:
            json.dumps({key: value}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{method}: option {key!r} = {value!r} cannot be recorded in a result file "
                f"(options must be JSON values without NaN or infinity: {exc})"
            ) from None


@dataclass
class Prediction:
    """Output of a method for one image.

    Attributes
    ----------
    anomaly_map : numpy.ndarray
        ``float32`` array of shape ``(H, W)``: the image's original size. Higher means more anomalous.
    image_score : float or None
        Image-level anomaly score; ``None`` for the map's maximum (MVTec's rule).
    """

    anomaly_map: np.ndarray
    image_score: float | None


class CheckpointsNotSupported(InputError):
    """Raised by :meth:`AnomalyMethod.load` for a method that does not implement ``_load_checkpoint``."""


class AnomalyMethod(ABC):
    """Base class of the model zoo.

    Subclasses set the class attribute ``name`` (the registry name) and provide ``options`` (a
    JSON-serialisable dict recorded in result files; its ``seed``, if any, is recorded as the result's
    seed), ``device`` (``"cpu"`` unless set; a ``cuda`` device is synchronised around timings) and
    ``pretrained_backbone`` (``True`` or ``False`` for methods with a backbone, ``None`` for methods
    without one). See docs/methods.md, "Adding a method".
    """

    name: ClassVar[str] = ""
    #: Options that only decide where and with what resources the work runs (worker threads, temporary
    #: folders, memory budgets), never a map value: ``run`` resumes across other values of them.
    resource_options: ClassVar[frozenset[str]] = frozenset()
    options: dict[str, Any]
    device: str = "cpu"
    pretrained_backbone: bool | None = None

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The ``options`` an instance created with keyword arguments ``options`` (defaults included) will
        record, computed cheaply (no weights loaded) and validated.

        ``run`` keys its resume on these, so that two spellings of one setting (a preset named or chosen
        by default, ``2`` or ``2.0``) resume each other. The default returns ``options`` unchanged;
        methods with presets or type coercion override it, and their ``__init__`` should use it.

        Raises
        ------
        InputError
            For options the method refuses.
        """
        return dict(options)

    @classmethod
    def preflight(cls, options: Mapping[str, Any]) -> None:
        """Refuse, before ``run`` reads or generates any data, what creating the method would refuse and can
        be checked cheaply: a device that is not there, a weight file that is missing, options that do not
        fit the backbone. ``options`` as :meth:`resolve_options` returns them. The default checks nothing.

        Raises
        ------
        InputError
            Naming the problem.
        """
        return None  # nothing to check unless a method says what

    @abstractmethod
    def fit(self, train_samples: Sequence[TrainSample], progress: bool = True) -> None:
        """Fit on nominal training samples.

        Parameters
        ----------
        train_samples : sequence of TrainSample
            Anything with a ``load_image()`` method returning an RGB ``uint8`` ``(H, W, 3)`` array.
        progress : bool
            Show tqdm progress bars on stderr.
        """

    @abstractmethod
    def predict(self, image: np.ndarray) -> Prediction:
        """Predict the anomaly map (at the image's original size) and the image score of one image.

        Parameters
        ----------
        image : numpy.ndarray
            ``uint8`` RGB image ``(H, W, 3)``, as ``run`` passes every image (the built-in methods also
            accept ``(H, W)`` and ``(H, W, 1)`` grayscale).
        """

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Predict several images; the default calls :meth:`predict` for each.

        For library use: ``run`` predicts one image at a time, so that its timings are per image.
        """
        return [self.predict(image) for image in images]

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """Return a JSON-serialisable record of where the model comes from (weights, code, seed...)."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write a checkpoint (a safetensors file whose metadata holds the provenance)."""

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> AnomalyMethod:
        """Load a checkpoint written by :meth:`save`.

        Called on the base class it dispatches on the method name stored in the checkpoint; called on a
        subclass it checks that the checkpoint belongs to that method. A name registered to a factory
        function rather than a class loads only through its class (``MyMethod.load(path)``).

        Parameters
        ----------
        path : str or Path
            Checkpoint file.
        **overrides
            Run-time options that do not change the model (e.g. ``device``); each method documents the
            ones it accepts.

        Raises
        ------
        CheckpointsNotSupported
            For a method that cannot load checkpoints, or, called on the base class, a checkpoint whose
            method name is registered to a factory function.
        """
        from .registry import get_method_class  # late: the registry imports this module

        meta = read_checkpoint_metadata(path)
        name = meta.get("method")
        if not isinstance(name, str):
            raise InputError("checkpoint does not name its method", path)
        if cls is not AnomalyMethod and name != cls.name:
            raise InputError(f"checkpoint is for method {name!r}, not {cls.name!r}", path)
        target = get_method_class(name)
        if not (isinstance(target, type) and issubclass(target, AnomalyMethod)):
            # A factory function registered under the name its instances record: it has no _load_checkpoint,
            # and which class it builds is known only by calling it. Called on that class, the class loads.
            if cls is AnomalyMethod:
                raise CheckpointsNotSupported(
                    f"method {name!r} is registered as a factory, which cannot load checkpoints; load it with its "
                    f"class's load(), or register the class itself under {name!r}",
                    path,
                )
            target = cls
        return target._load_checkpoint(Path(path), meta, **overrides)

    @classmethod
    def _load_checkpoint(cls, path: Path, meta: dict[str, Any], **overrides: Any) -> AnomalyMethod:
        """Rebuild a method from its checkpoint; subclasses that support :meth:`save` override this.

        ``meta`` is the checkpoint's JSON record (:func:`read_checkpoint_metadata`); ``overrides`` are
        run-time options such as ``device``.
        """
        raise CheckpointsNotSupported(f"method {cls.name!r} cannot load checkpoints", path)


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """Read the provenance record of a checkpoint without loading its tensors (and without torch).

    Parameters
    ----------
    path : str or Path
        A safetensors checkpoint written by :meth:`AnomalyMethod.save`.

    Returns
    -------
    dict
        The decoded JSON record (``format``, ``method``, ``options``, ``provenance``...).
    """
    path = Path(path)
    if not path.is_file():  # not found (naming a broken link's target), a folder, or a device, pipe or socket
        raise InputError(not_a_file_problem(path, "checkpoint"), path)
    refuse_empty_file(path, "checkpoint")
    try:
        with path.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > 100_000_000:
                raise ValueError("implausible header length")
            header = json.loads(handle.read(header_len))
        record = json.loads(header["__metadata__"][CHECKPOINT_METADATA_KEY])
    except Exception as exc:  # struct, JSON and key errors all mean "not one of our checkpoints"
        raise InputError(f"not an adbench-hr checkpoint ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not an adbench-hr checkpoint (expected format {CHECKPOINT_FORMAT})", path)
    return record
