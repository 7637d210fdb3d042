"""The methods' progress bars follow adbench_hr.progress: asked for, with no standard error, they draw nothing
and the work goes on."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from adbench_hr.methods import create_method


@pytest.mark.parametrize("method_name", ["ts-mlp", "patchcore"])
def test_methods_fit_with_bars_asked_for_and_no_standard_error(method_name, tiny, sample_cls, monkeypatch):
    options = tiny() if method_name == "ts-mlp" else {
        "weights": "random", "backbone": "resnet18", "input_size": 64, "device": "cpu", "num_workers": 0}
    rng = np.random.default_rng(0)
    samples = [sample_cls(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8), f"train/{i}") for i in range(3)]
    method = create_method(method_name, **options)
    monkeypatch.setattr(sys, "stderr", None)
    method.fit(samples, progress=True)  # the methods' bars used to fail at their first write
    assert method.predict(samples[0].image).anomaly_map.shape == (50, 60)
