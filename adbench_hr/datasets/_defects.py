"""Defect shapes and how each category's defects alter the clean image.

A defect is drawn in three steps: a *shape* (a boolean region in a small local box, sized to a target
pixel area), a *placement* (a box inside the image that keeps a gap to earlier defects, so that each
defect stays its own 8-connected component), and a *style* (the new pixel values inside the region).
Only the pixels of the final region are written, and each of them moves by at least ``MIN_DELTA`` gray
levels, so the ground-truth mask is exactly the set of altered pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from adbench_hr.datasets._textures import HIGH, LOW, Context, smooth_noise
from adbench_hr.metrics import CONNECTIVITY

# Smallest change (gray levels, before sensor noise) of any defect pixel. With the bounded sensor noise
# and the safe value range of the textures, this survives rounding to 8 bit.
MIN_DELTA = 4.0


@dataclass(frozen=True)
class DefectPlan:
    """One planned defect: its generic kind and its target area in pixels."""

    kind: str
    area: float


# ------------------------------------------------------------------------------------------ shapes
def _speck(rng: np.random.Generator, area: float) -> np.ndarray:
    if area <= 9.5:
        # The tiniest defects are exact little rectangles: 2x2, 2x3, 2x4 or 3x3 pixels.
        options = [(2, 2), (2, 3), (2, 4), (3, 3)]
        fitting = [o for o in options if o[0] * o[1] <= max(4.0, area)]
        best = max(o[0] * o[1] for o in fitting)
        a, b = [o for o in fitting if o[0] * o[1] == best][0]
        return np.ones((a, b) if rng.random() < 0.5 else (b, a), dtype=bool)
    radius = np.sqrt(area / np.pi)
    elong = rng.uniform(0.75, 1.33)
    ax = max(1, int(round(radius * elong)))
    ay = max(1, int(round(radius / elong)))
    side = 2 * max(ax, ay) + 3
    canvas = np.zeros((side, side), dtype=np.uint8)
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(canvas, (side // 2, side // 2), (ax, ay), angle, 0, 360, 1, -1, cv2.LINE_8)
    return canvas.astype(bool)


def _polyline_region(points: list[np.ndarray], widths: list[int]) -> np.ndarray:
    """Rasterise polylines (each with its own width) into a tight boolean box."""
    stacked = np.concatenate(points, axis=0)
    margin = max(widths) + 2
    origin = np.floor(stacked.min(axis=0)) - margin
    extent = np.ceil(stacked.max(axis=0)) - origin + margin + 1
    canvas = np.zeros((int(extent[1]), int(extent[0])), dtype=np.uint8)
    for pts, width in zip(points, widths, strict=True):
        layer = np.zeros_like(canvas)
        poly = np.round(pts - origin).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(layer, [poly], False, 1, 1, cv2.LINE_8)
        if width > 1:  # cv2's thick lines jump from 1 to 3 px; dilation gives exact 2 px too
            layer = cv2.dilate(layer, np.ones((width, width), np.uint8))
        canvas |= layer
    return canvas.astype(bool)


def _scratch(rng: np.random.Generator, area: float, max_len: float, widths: tuple[int, ...]) -> np.ndarray:
    width = 1 if area < 40 else int(rng.choice(widths))
    length = float(np.clip(area / width, 6.0, max_len))
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    p0 = -0.5 * length * direction
    p2 = 0.5 * length * direction
    p1 = normal * rng.uniform(-0.18, 0.18) * length  # gentle bow, like a tool dragged by hand
    t = np.linspace(0.0, 1.0, max(2, int(length / 5)))[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    return _polyline_region([curve], [width])


def _crack(rng: np.random.Generator, area: float, max_len: float, along_x: bool = False) -> np.ndarray:
    main_width = 2 if area >= 500 else 1
    total = float(np.clip(area / (1.0 + 0.6 * main_width), 10.0, 2.5 * max_len))
    main_len = 0.65 * total
    step = 3.0

    wander = 0.12 if along_x else 0.28  # wood checks follow the grain; cracks in metal wander

    def walk(start: np.ndarray, heading: float, length: float) -> np.ndarray:
        n = max(2, int(length / step))
        turns = rng.normal(0.0, wander, n)
        turns[rng.random(n) < 0.04] += rng.choice([-0.9, 0.9])  # occasional kinks
        headings = heading + np.cumsum(turns) * 0.5
        deltas = step * np.stack([np.cos(headings), np.sin(headings)], axis=1)
        return np.concatenate([start[None, :], start[None, :] + np.cumsum(deltas, axis=0)], axis=0)

    heading = rng.normal(0.0, 0.1) + np.pi * rng.integers(0, 2) if along_x else rng.uniform(0, 2 * np.pi)
    main = walk(np.zeros(2), heading, min(main_len, max_len))
    paths, widths = [main], [main_width]
    n_branches = int(rng.integers(1, 4))
    for _ in range(n_branches):
        origin = main[int(rng.integers(len(main) // 4, max(len(main) // 4 + 1, len(main) - 1)))]
        branch = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6) if along_x else rng.uniform(0, 2 * np.pi)
        paths.append(walk(origin, branch, (total - main_len) / n_branches))
        widths.append(1)
    return _polyline_region(paths, widths)


def _blob(rng: np.random.Generator, area: float) -> np.ndarray:
    """An irregular blob of (almost exactly) ``area`` pixels: a noisy ellipse thresholded by rank."""
    area = max(12, int(round(area)))
    aspect = rng.uniform(0.6, 1.6)
    radius = np.sqrt(area / np.pi)
    ax, ay = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    side = int(2.8 * max(ax, ay)) + 8
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) - (side - 1) / 2.0
    theta = rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    u = (xx * c + yy * s) / np.float32(ax)
    v = (-xx * s + yy * c) / np.float32(ay)
    field = np.sqrt(u * u + v * v)
    field += 0.22 * smooth_noise(rng, (side, side), side / 5.0) + 0.07 * smooth_noise(rng, (side, side), side / 14.0)
    flat = field.ravel()
    threshold = np.partition(flat, area - 1)[area - 1]
    region = (field <= threshold).astype(np.uint8)
    # Keep the main body only: a stain or hole is one defect, not a cloud of specks.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=CONNECTIVITY)
    if n > 2:
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        region = (labels == largest).astype(np.uint8)
    return region.astype(bool)


def make_shape(
    rng: np.random.Generator, plan: DefectPlan, image_hw: tuple[int, int], *, grain: bool = False
) -> np.ndarray:
    """Boolean region (tight local box) for one planned defect, cropped to fit the image.

    ``grain=True`` makes cracks run roughly horizontally, along a texture's grain.
    """
    h, w = image_hw
    max_len = 0.6 * min(h, w)
    if plan.kind == "speck":
        region = _speck(rng, plan.area)
    elif plan.kind == "scratch":
        region = _scratch(rng, plan.area, max_len, (1, 2, 3))
    elif plan.kind == "short":
        region = _scratch(rng, plan.area, 0.3 * min(h, w), (3, 4, 5))
    elif plan.kind == "crack":
        region = _crack(rng, plan.area, max_len, along_x=grain)
    elif plan.kind in ("stain", "hole", "missing"):
        region = _blob(rng, min(plan.area, 0.12 * h * w))
    else:
        raise ValueError(f"unknown defect kind {plan.kind!r}")
    # Very large shapes on tiny images: crop to the image (the region stays non-empty).
    return region[: h - 4, : w - 4] if region.shape[0] > h - 4 or region.shape[1] > w - 4 else region


# ------------------------------------------------------------------------------------------ styles
Style = Callable[[np.random.Generator, np.ndarray, np.ndarray, Context], np.ndarray]


def _interior(region: np.ndarray) -> np.ndarray:
    """0 outside ``region``; inside, lowest at its rim (``sqrt(1 / depth)``, not 0) and rising to 1 at its deepest
    point."""
    dist = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
    peak = float(dist.max())
    return np.sqrt(dist / peak) if peak > 0 else dist


def _expand(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    return values[:, :, None] if like.ndim == 3 and values.ndim == 2 else values


def _rgb(colour: tuple[float, float, float], like: np.ndarray) -> np.ndarray:
    arr = np.asarray(colour, dtype=np.float32)
    return arr if like.ndim == 3 else np.float32(arr.mean())


def darken(lo: float, hi: float) -> Style:
    """Multiply by a random factor in ``[lo, hi]`` (pits, cracks, dust)."""

    def style(rng: np.random.Generator, patch: np.ndarray, region: np.ndarray, ctx: Context) -> np.ndarray:
        return patch * np.float32(rng.uniform(lo, hi))

    return style


def brighten(lo: float, hi: float, dark_share: float = 0.0) -> Style:
    """Add a random offset in ``[lo, hi]`` (specular scratches); sometimes darken instead."""

    def style(rng: np.random.Generator, patch: np.ndarray, region: np.ndarray, ctx: Context) -> np.ndarray:
        if rng.random() < dark_share:
            return patch * np.float32(rng.uniform(0.55, 0.7))
        return patch + np.float32(rng.uniform(lo, hi))

    return style


def paint(colours: list[tuple[float, float, float]], opacity: tuple[float, float]) -> Style:
    """Blend towards a colour, keeping some of the underlying shading (foreign thread, copper, dust)."""

    def style(rng: np.random.Generator, patch: np.ndarray, region: np.ndarray, ctx: Context) -> np.ndarray:
        colour = _rgb(colours[int(rng.integers(len(colours)))], patch)
        alpha = np.float32(rng.uniform(*opacity))
        luma = patch.mean(axis=2, keepdims=True) if patch.ndim == 3 else patch
        shaded = colour * (0.75 + 0.25 * luma / np.float32(max(1.0, float(luma.mean()))))
        return (1 - alpha) * patch + alpha * shaded

    return style


def stain(tint: tuple[float, float, float], depth: tuple[float, float]) -> Style:
    """Translucent discolouration, strongest in the middle (oil, water, flux residue, oxidation)."""

    def style(rng: np.random.Generator, patch: np.ndarray, region: np.ndarray, ctx: Context) -> np.ndarray:
        strength = np.float32(rng.uniform(*depth)) * (0.4 + 0.6 * _interior(region))
        target = patch * _rgb(tint, patch)
        return patch + _expand(strength, patch) * (target - patch)

    return style


def cavity(colour_key: str) -> Style:
    """Missing material: the dark background shows through, darker towards the middle."""

    def style(rng: np.random.Generator, patch: np.ndarray, region: np.ndarray, ctx: Context) -> np.ndarray:
        colour = _rgb(ctx[colour_key], patch)
        shade = 1.15 - 0.35 * _interior(region)
        return colour * _expand(shade.astype(np.float32), patch) * np.float32(rng.uniform(0.85, 1.15))

    return style


def reveal(layer_key: str) -> Style:
    """Replace by another rendered layer of the same image (PCB: copper or parts missing)."""

    def style(rng: np.random.Generator, patch: np.ndarray, region: np.ndarray, ctx: Context) -> np.ndarray:
        return ctx["_patch_" + layer_key]

    return style


# --------------------------------------------------------------------------------------- placement
def _enforce_min_delta(old: np.ndarray, new: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Clip ``new`` to the safe range and make every region pixel differ by >= MIN_DELTA."""
    new = np.clip(new, LOW, HIGH)
    diff = np.abs(new - old)
    change = diff.max(axis=2) if diff.ndim == 3 else diff
    weak = region & (change < MIN_DELTA)
    if weak.any():
        luma = old.mean(axis=2) if old.ndim == 3 else old
        direction = np.where(luma < 128.0, 1.0, -1.0).astype(np.float32)
        push = _expand(direction, old) * np.float32(MIN_DELTA + 0.5)
        pushed = np.clip(old + push, LOW, HIGH)
        new = np.where(_expand(weak, old), pushed, new)
    return new


def place_defect(
    image: np.ndarray,
    mask: np.ndarray,
    region: np.ndarray,
    style: Style,
    rng: np.random.Generator,
    ctx: Context,
    *,
    changed_only: bool = False,
    tries: int = 25,
) -> bool:
    """Write one defect into ``image`` (in place) and its pixels into ``mask``.

    Parameters
    ----------
    image : numpy.ndarray
        Clean float image, modified in place.
    mask : numpy.ndarray
        Boolean ground truth so far, updated in place.
    region : numpy.ndarray
        Boolean shape in a local box.
    style : callable
        Returns the new values of the local patch.
    rng : numpy.random.Generator
        Source of the position.
    ctx : dict
        Category context (for styles that need extra layers).
    changed_only : bool
        Keep only region pixels that the style changes visibly (``reveal`` styles: missing copper
        over bare substrate is no change at all). The best of several positions is used.
    tries : int
        Positions tried before giving up when the image is crowded.

    Returns
    -------
    bool
        Whether the defect was placed.
    """
    h, w = image.shape[:2]
    rh, rw = region.shape
    if rh > h - 4 or rw > w - 4:
        return False
    # A gap of at least two pixels (a 5x5 dilation of the earlier defects) keeps defects from merging into one
    # 8-connected component.
    kernel = np.ones((5, 5), np.uint8)
    best: tuple[int, int, int, np.ndarray] | None = None
    candidates = 8 if changed_only else 1
    for _ in range(tries):
        y0 = int(rng.integers(2, h - rh - 1))
        x0 = int(rng.integers(2, w - rw - 1))
        window = mask[max(0, y0 - 3) : y0 + rh + 3, max(0, x0 - 3) : x0 + rw + 3]
        if window.any():
            grown = cv2.dilate(window.astype(np.uint8), kernel).astype(bool)
            oy, ox = y0 - max(0, y0 - 3), x0 - max(0, x0 - 3)
            if (grown[oy : oy + rh, ox : ox + rw] & region).any():
                continue
        final = region
        if changed_only:
            ctx_local = _local_layers(ctx, y0, x0, rh, rw)
            patch = image[y0 : y0 + rh, x0 : x0 + rw]
            proposal = style(rng, patch, region, ctx_local)
            diff = np.abs(proposal - patch)
            change = diff.max(axis=2) if diff.ndim == 3 else diff
            final = _clean_fragments(region & (change >= 12.0))
        score = int(final.sum())
        if best is None or score > best[2]:
            best = (y0, x0, score, final)
        candidates -= 1
        if candidates <= 0:
            break
    if best is None or best[2] == 0:
        return False
    y0, x0, _, final = best
    patch = image[y0 : y0 + rh, x0 : x0 + rw]
    proposal = style(rng, patch, final, _local_layers(ctx, y0, x0, rh, rw))
    proposal = _enforce_min_delta(patch, proposal, final)
    patch[final] = proposal[final]
    mask[y0 : y0 + rh, x0 : x0 + rw] |= final
    return True


def _local_layers(ctx: Context, y0: int, x0: int, rh: int, rw: int) -> Context:
    local = dict(ctx)
    for key in ("substrate",):
        if key in ctx:
            local["_patch_" + key] = ctx[key][y0 : y0 + rh, x0 : x0 + rw]
    return local


def _clean_fragments(region: np.ndarray, min_area: int = 16) -> np.ndarray:
    """Drop slivers (anti-aliased edges of traces) that would count as tiny separate defects."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=CONNECTIVITY)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]
