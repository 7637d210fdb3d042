"""A third-party method written the way docs/methods.md ("Adding a method") tells plug-in authors to.

``GrayDistance`` needs no torch: it stores the mean gray level of the training images and maps each pixel to
its distance from it. Its options let tests make it misbehave in one precise way at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from adbench_hr.errors import InputError
from adbench_hr.methods import CHECKPOINT_FORMAT, CHECKPOINT_METADATA_KEY, AnomalyMethod, Prediction

FAULTS = ("none", "fit", "3d", "nan", "shape", "float64", "score-none", "score-text", "tuple", "fit-bug", "predict-bug",
          "provenance-nan", "provenance-numpy", "save-nothing", "save-unsupported", "save-foreign", "pretrained-text",
          "fit-missing-file", "provenance-bug", "save-bug", "load-bug", "preflight", "provenance-list")


def gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=2) if image.ndim == 3 else image.astype(np.float64)


class GrayDistance(AnomalyMethod):
    """|gray level - mean training gray level|, at the image's original size."""

    name = "gray-distance"

    def __init__(self, scale: float = 1.0, fault: str = "none", seed: int = 0) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        self.options = {"scale": float(scale), "fault": fault, "seed": int(seed)}
        self.mean: float | None = None
        if fault == "pretrained-text":
            self.pretrained_backbone = "yes"  # type: ignore[assignment]

    @classmethod
    def preflight(cls, options: dict[str, Any]) -> None:
        if options.get("fault") == "preflight":
            raise InputError("gray-distance: the scanner this method needs is not connected")

    def fit(self, train_samples, progress: bool = True) -> None:
        if self.options["fault"] == "fit":
            raise InputError("gray-distance: the training images are all black")
        if self.options["fault"] == "fit-bug":
            raise KeyError("layer4")
        if self.options["fault"] == "fit-missing-file":  # a file the method reads: input, not a bug
            raise FileNotFoundError(2, "No such file or directory", "/nonexistent/gray-weights.bin")
        self.mean = float(np.mean([gray(sample.load_image()).mean() for sample in train_samples]))

    def predict(self, image: np.ndarray) -> Prediction:
        assert self.mean is not None, "fit first"
        amap = self.options["scale"] * np.abs(gray(image) - self.mean)  # float64
        fault = self.options["fault"]
        score: Any = float(amap.max())
        if fault == "3d":
            amap = amap[..., None]
        elif fault == "nan":
            amap[0, 0] = np.nan
        elif fault == "shape":
            amap = amap[1:]
        elif fault == "score-none":
            score = None
        elif fault == "score-text":
            score = "high"
        elif fault == "tuple":
            return (amap, score)  # type: ignore[return-value]
        elif fault == "predict-bug":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if fault == "float64":  # distinct in float64, all equal in float32
            amap = 1.0 + 1e-12 * amap
            score = float(amap.max())
        else:
            amap = amap.astype(np.float32)
        return Prediction(amap, score)

    def provenance(self) -> dict[str, Any]:
        mean: Any = self.mean
        if self.options["fault"] == "provenance-bug":
            raise AttributeError("'GrayDistance' object has no attribute 'weights_sha'")
        if self.options["fault"] == "provenance-nan":
            mean = float("nan")
        elif self.options["fault"] == "provenance-numpy":
            mean = np.float32(mean)
        elif self.options["fault"] == "provenance-list":
            return [self.name, mean]  # type: ignore[return-value]
        return {"method": self.name, "options": self.options, "mean": mean}

    def save(self, path: str | Path) -> None:
        fault = self.options["fault"]
        if fault == "save-nothing":
            return
        if fault == "save-bug":
            raise TypeError("Object of type float32 is not JSON serializable")
        if fault == "save-unsupported":
            raise NotImplementedError("gray-distance keeps no checkpoints")
        if fault == "save-foreign":
            save_file({"mean": np.array([self.mean])}, str(path))  # no adbench-hr metadata
            return
        record = {"format": CHECKPOINT_FORMAT, "method": self.name, "options": self.options}
        save_file({"mean": np.array([self.mean])}, str(path), metadata={CHECKPOINT_METADATA_KEY: json.dumps(record)})

    @classmethod
    def _load_checkpoint(cls, path: Path, meta: dict[str, Any], **overrides: Any) -> GrayDistance:
        if meta["options"]["fault"] == "load-bug":
            raise KeyError("mean_v2")  # e.g. a checkpoint of an older release of the plug-in
        method = cls(**meta["options"])
        method.mean = float(load_file(str(path))["mean"][0])
        return method


class GrayDistanceNoReload(GrayDistance):
    """Saves checkpoints but cannot load them (``_load_checkpoint`` left to the base class)."""

    name = "gray-distance-noreload"

    @classmethod
    def _load_checkpoint(cls, path: Path, meta: dict[str, Any], **overrides: Any) -> GrayDistanceNoReload:
        return AnomalyMethod._load_checkpoint.__func__(cls, path, meta, **overrides)  # type: ignore[attr-defined]


def gray_distance_kwargs(**options: Any) -> GrayDistance:
    """A factory taking ``**kwargs`` that forwards them to a class without a ``device`` option."""
    return GrayDistance(**options)
