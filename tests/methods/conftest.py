"""Shared fixtures for the model-zoo tests: a tiny random ViT teacher so everything runs on a CPU in seconds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

# A 4-block, 48-wide DINOv2-style ViT (patch 14, 4 registers) at 70 px: 5 x 5 tokens.
TINY_TEACHER_KWARGS = {"depth": 4, "embed_dim": 48, "num_heads": 2}


def tiny_options(**overrides: Any) -> dict[str, Any]:
    """Options for ``create_method("ts-mlp", **tiny_options())``: random tiny teacher, CPU, 2 epochs."""
    options: dict[str, Any] = {
        "preset": "fast",
        "weights": "random",
        "device": "cpu",
        "seed": 7,
        "img_size": 70,
        "layers": [2, 4],
        "teacher_kwargs": dict(TINY_TEACHER_KWARGS),
        "epochs": 2,
        "num_workers": 0,
    }
    options.update(overrides)
    return options


class ArraySample:
    """Stand-in for ``TrainSample``: returns a fixed in-memory image."""

    def __init__(self, image: np.ndarray, sample_id: str = "x") -> None:
        self.image = image
        self.sample_id = sample_id

    def load_image(self) -> np.ndarray:
        return self.image


def make_images(n: int, seed: int = 0, shapes: list[tuple[int, int]] | None = None) -> list[np.ndarray]:
    """Smooth random RGB images of assorted (non-square) sizes."""
    rng = np.random.default_rng(seed)
    shapes = shapes or [(60 + 9 * i, 80 - 5 * (i % 3)) for i in range(n)]
    images = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        base = rng.integers(80, 170, size=(1, 1, 3))
        noise = rng.integers(-20, 20, size=(h, w, 3))
        images.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return images


@pytest.fixture(scope="session")
def train_samples() -> list[ArraySample]:
    return [ArraySample(im, f"train/{i}") for i, im in enumerate(make_images(6))]


# Test modules get these helpers through fixtures: importing from "conftest" is ambiguous when several
# test folders have one.
@pytest.fixture(scope="session")
def tiny() -> Any:
    return tiny_options


@pytest.fixture(scope="session")
def images_factory() -> Any:
    return make_images


@pytest.fixture(scope="session")
def sample_cls() -> type[ArraySample]:
    return ArraySample


@pytest.fixture(scope="session")
def odd_image() -> np.ndarray:
    """A random RGB test image of an odd, non-square size (333 x 517)."""
    return np.random.default_rng(11).integers(0, 255, (333, 517, 3), dtype=np.uint8)


@pytest.fixture()
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """timm fails to fetch pretrained weights the way it does without a network; random models still build."""
    import timm

    real_create = timm.create_model

    def offline_create(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'\nto load this file.")
        return real_create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
