"""Model zoo (imported as ``adbench_hr.methods``).

Public API::

    from adbench_hr.methods import create_method, list_methods, load_method

    method = create_method("ts-mlp", preset="paper", weights="pretrained", device="auto", seed=0)
    method.fit(train_samples)
    prediction = method.predict(image)          # Prediction(anomaly_map (H, W) float32, image_score)
    method.save("model.safetensors")
    method = load_method("model.safetensors")

Importing this package does not import torch; built-in methods are imported on first registry lookup.
"""

from .base import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_METADATA_KEY,
    AnomalyMethod,
    CheckpointsNotSupported,
    Prediction,
    read_checkpoint_metadata,
)
from .registry import ENTRY_POINT_GROUP, create_method, get_method_class, list_methods, register_method

load_method = AnomalyMethod.load

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_METADATA_KEY",
    "ENTRY_POINT_GROUP",
    "AnomalyMethod",
    "CheckpointsNotSupported",
    "Prediction",
    "create_method",
    "get_method_class",
    "list_methods",
    "load_method",
    "read_checkpoint_metadata",
    "register_method",
]
