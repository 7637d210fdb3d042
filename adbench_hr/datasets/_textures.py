"""Procedural nominal appearance of the synthetic categories.

Every renderer returns a *clean* float32 image (before sensor noise) in gray levels, shape ``(H, W)`` for
grayscale categories and ``(H, W, 3)`` RGB otherwise, plus a small context dict that defect renderers may
use (for example the bare-substrate image of the PCB, so that "missing copper" can reveal it). Renderers
draw all randomness from the ``numpy.random.Generator`` they are given, so an image depends only on its
seed. Everything is vectorised (numpy broadcasting, cv2 resizing/warping) to keep a 1024 px image under
100 ms (20-80 ms per renderer measured on a busy 2-core machine; the PCB layout is cached per seed).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from scipy.special import ndtri

# Keep nominal values away from 0/255: with the sensor noise bounded, nothing ever saturates, so a defect
# that changes a pixel by >= MIN_DELTA before quantisation always changes its stored value.
LOW, HIGH = 8.0, 247.0
NOISE_CLIP = 6.0

Context = dict[str, Any]
Renderer = Callable[[np.random.Generator, tuple[int, int], Context], tuple[np.ndarray, Context]]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Band-limited noise of roughly unit variance with correlation length ``cell`` px."""
    h, w = shape
    cell = max(2.0, float(cell))
    gh, gw = int(np.ceil(h / cell)) + 3, int(np.ceil(w / cell)) + 3
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    big_h, big_w = int(gh * cell), int(gw * cell)
    up = cv2.resize(grid, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    oy, ox = (int(v) for v in rng.integers(0, int(cell), size=2))
    return up[oy : oy + h, ox : ox + w]


def streak_noise(rng: np.random.Generator, shape: tuple[int, int], length: float) -> np.ndarray:
    """Noise that is white across rows and smooth along them: horizontal streaks ``length`` px long."""
    h, w = shape
    cols = max(2, int(round(w / max(1.0, length))) + 2)
    grid = rng.standard_normal((h, cols), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative lighting field: a random linear gradient plus an off-centre vignette."""
    h, w = shape
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    gx, gy = rng.uniform(-0.07, 0.07, size=2).astype(np.float32)
    cx, cy = rng.uniform(-0.4, 0.4, size=2).astype(np.float32)
    vignette = np.float32(rng.uniform(0.02, 0.08))
    level = np.float32(rng.uniform(0.94, 1.06))
    return level * (1.0 + gx * x + gy * y - vignette * ((x - cx) ** 2 + (y - cy) ** 2))


def rotate(image: np.ndarray, angle_deg: float, shift: tuple[float, float], out_hw: tuple[int, int]) -> np.ndarray:
    """Rotate about the centre, shift, and crop the centre ``out_hw`` window (reflecting at borders)."""
    h, w = image.shape[:2]
    oh, ow = out_hw
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    matrix[0, 2] += shift[0] - (w - ow) / 2.0
    matrix[1, 2] += shift[1] - (h - oh) / 2.0
    return cv2.warpAffine(image, matrix, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _lerp_rgb(t: np.ndarray, a: tuple[float, float, float], b: tuple[float, float, float]) -> np.ndarray:
    a_arr = np.asarray(a, dtype=np.float32)
    b_arr = np.asarray(b, dtype=np.float32)
    return a_arr + t[:, :, None] * (b_arr - a_arr)


# --------------------------------------------------------------------------------------------- metal
def render_brushed_metal(
    rng: np.random.Generator, shape: tuple[int, int], ctx: Context
) -> tuple[np.ndarray, Context]:
    """Grayscale brushed steel: long and short brushing streaks, a reflection band, slight tilt."""
    h, w = shape
    scale = max(h, w) / 1024.0
    pad = int(0.06 * max(h, w)) + 4
    canvas = (h + 2 * pad, w + 2 * pad)
    base = np.float32(rng.uniform(128.0, 148.0))
    tex = 7.0 * streak_noise(rng, canvas, 90.0 * scale)
    tex += 4.0 * streak_noise(rng, canvas, 14.0 * scale)
    tex = cv2.GaussianBlur(tex, (1, 3), 0)  # streaks ~2 px thick, like real brushing marks
    tex += 5.0 * smooth_noise(rng, canvas, 220.0 * scale)
    angle = float(rng.uniform(-2.0, 2.0))
    shift = (float(rng.uniform(-8, 8) * scale), float(rng.uniform(-8, 8) * scale))
    tex = rotate(tex, angle, shift, shape)
    # A soft specular band across the brushing direction, at a random height.
    y = np.arange(h, dtype=np.float32)[:, None]
    y0 = np.float32(rng.uniform(0.2, 0.8) * h)
    band = 1.0 + np.float32(rng.uniform(0.08, 0.16)) * np.exp(-(((y - y0) / np.float32(0.25 * h)) ** 2))
    image = (base + tex) * band * illumination(rng, shape)
    return image.astype(np.float32), {"kind": "metal"}


# -------------------------------------------------------------------------------------------- fabric
_WARP_RGB = (58.0, 78.0, 128.0)
_WEFT_RGB = (188.0, 182.0, 166.0)
_GAP_RGB = (26.0, 28.0, 38.0)


def render_woven_fabric(
    rng: np.random.Generator, shape: tuple[int, int], ctx: Context
) -> tuple[np.ndarray, Context]:
    """Plain-weave cloth: navy warp over light weft, per-thread tone, slubs, slight skew."""
    h, w = shape
    scale = max(h, w) / 1024.0
    pad = int(0.04 * max(h, w)) + 4
    ch, cw = h + 2 * pad, w + 2 * pad
    period = np.float32(max(4.0, 11.0 * scale) * rng.uniform(0.985, 1.015))
    # Draw the weave axis-aligned, where it is separable (1-D profiles), then rotate it slightly.
    u = np.arange(cw, dtype=np.float32) / period + np.float32(rng.uniform(0, 1))
    v = np.arange(ch, dtype=np.float32) / period + np.float32(rng.uniform(0, 1))
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - iu, v - iv
    warp_tone = 1.0 + 0.06 * rng.standard_normal(int(iu.max()) + 1).astype(np.float32)
    weft_tone = 1.0 + 0.06 * rng.standard_normal(int(iv.max()) + 1).astype(np.float32)
    # Across-thread profile: round yarn, dark gaps between yarns; along-thread: crimp shading.
    warp_shade = (np.sin(np.pi * fu) ** 0.6) * warp_tone[iu]  # function of x only
    weft_shade = (np.sin(np.pi * fv) ** 0.6) * weft_tone[iv]  # function of y only
    warp_crimp = 0.82 + 0.18 * np.sin(np.pi * fv)
    weft_crimp = 0.82 + 0.18 * np.sin(np.pi * fu)
    warp_on_top = ((iu[None, :] + iv[:, None]) & 1) == 0
    shade = np.where(
        warp_on_top, warp_shade[None, :] * warp_crimp[:, None], weft_shade[:, None] * weft_crimp[None, :]
    ).astype(np.float32)
    angle = float(rng.uniform(-1.5, 1.5))
    shift = (float(rng.uniform(-5, 5) * scale), float(rng.uniform(-5, 5) * scale))
    shade = rotate(shade, angle, shift, shape)
    top = rotate(warp_on_top.astype(np.float32), angle, shift, shape)
    shade *= 1.0 + 0.05 * smooth_noise(rng, shape, 40.0 * scale)  # slubs: uneven yarn thickness
    warp_rgb = np.asarray(_WARP_RGB, dtype=np.float32)
    weft_rgb = np.asarray(_WEFT_RGB, dtype=np.float32)
    gap = np.asarray(_GAP_RGB, dtype=np.float32)
    colour = weft_rgb + top[:, :, None] * (warp_rgb - weft_rgb)
    image = gap + shade[:, :, None] * (colour - gap)
    image *= illumination(rng, shape)[:, :, None]
    return image, {"kind": "fabric", "hole_rgb": (20.0, 20.0, 24.0)}


# ---------------------------------------------------------------------------------------------- wood
_WOOD_LIGHT = (212.0, 172.0, 122.0)
_WOOD_DARK = (140.0, 92.0, 56.0)


def render_wood_grain(
    rng: np.random.Generator, shape: tuple[int, int], ctx: Context
) -> tuple[np.ndarray, Context]:
    """Planed board: wavy growth rings with sharp latewood bands and elongated pores."""
    h, w = shape
    scale = max(h, w) / 1024.0
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    period = np.float32(rng.uniform(20.0, 28.0) * scale)
    slope = np.float32(rng.uniform(-0.04, 0.04))
    distort = 30.0 * scale * smooth_noise(rng, shape, 300.0 * scale)
    distort += 6.0 * scale * smooth_noise(rng, shape, 60.0 * scale)
    r = y + slope * x + distort
    # Uneven ring spacing: the phase advances faster in some years than in others.
    phase = r / period + 0.8 * np.sin(r / (np.float32(4.7) * period)) + np.float32(rng.uniform(0, 1))
    ring = phase - np.floor(phase)
    # Earlywood darkens gradually into latewood, then the next ring starts abruptly.
    latewood = ring**4 * (1.0 - np.clip((ring - 0.93) / 0.07, 0.0, 1.0))
    pores = streak_noise(rng, shape, 22.0 * scale)
    t = 0.78 * latewood + 0.06 * pores + 0.08 * smooth_noise(rng, shape, 150.0 * scale) + 0.08
    t = np.clip(t, 0.0, 1.0).astype(np.float32)
    image = _lerp_rgb(t, _WOOD_LIGHT, _WOOD_DARK)
    image *= illumination(rng, shape)[:, :, None]
    return image.astype(np.float32), {"kind": "wood", "hole_rgb": (48.0, 32.0, 22.0)}


# ----------------------------------------------------------------------------------------------- pcb
_MASK_GREEN = (38.0, 104.0, 62.0)
_TRACE_GREEN = (72.0, 150.0, 84.0)
_GOLD = (206.0, 170.0, 92.0)
_SILVER = (192.0, 192.0, 188.0)
_BODY = (34.0, 34.0, 38.0)
_SILK = (226.0, 226.0, 218.0)
_CAP = (186.0, 150.0, 104.0)


def pcb_layout(seed_seq: list[int], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Draw one board design (fixed per category and seed): the full board and its bare substrate.

    Returns float32 RGB images of shape ``shape`` (already padded by the caller for later warping).
    """
    rng = np.random.default_rng(seed_seq)
    h, w = shape
    s = max(h, w) / 1024.0

    def px(v: float) -> int:
        return max(1, int(round(v * s)))

    substrate = np.empty((h, w, 3), dtype=np.float32)
    substrate[:] = np.asarray(_MASK_GREEN, dtype=np.float32)
    substrate *= (1.0 + 0.03 * smooth_noise(rng, shape, 80.0 * s))[:, :, None]
    board = np.ascontiguousarray(substrate.copy())

    # Traces: Manhattan routes with 45-degree corners, under the solder mask (lighter green).
    for _ in range(int(34 + 8 * rng.random())):
        pts = [np.array([rng.uniform(0, w), rng.uniform(0, h)])]
        for _ in range(int(rng.integers(2, 5))):
            step = rng.uniform(60, 320) * s
            direction = rng.integers(0, 8) * np.pi / 4
            pts.append(pts[-1] + step * np.array([np.cos(direction), np.sin(direction)]))
        poly = np.round(np.array(pts)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(board, [poly], False, _TRACE_GREEN, px(rng.choice([5.0, 7.0, 9.0])), cv2.LINE_8)

    placed: list[tuple[float, float, float, float]] = []

    def free(x0: float, y0: float, x1: float, y1: float) -> bool:
        # Components never overlap on a real board; reject a footprint that touches a placed one.
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return False
        if any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in placed):
            return False
        placed.append((x0, y0, x1, y1))
        return True

    # Vias first, so that component bodies cover them rather than the other way round.
    for _ in range(int(rng.integers(40, 70))):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.circle(board, c, px(7), _GOLD, -1)
        cv2.circle(board, c, px(3), (18.0, 18.0, 20.0), -1)

    # Integrated circuits: dark bodies with rows of silver pins and a silkscreen outline.
    for _ in range(12):
        if sum(1 for b in placed if b[2] - b[0] > px(100)) >= 3:
            break
        bw, bh = rng.uniform(120, 220) * s, rng.uniform(90, 180) * s
        cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
        x0, y0, x1, y1 = int(cx - bw / 2), int(cy - bh / 2), int(cx + bw / 2), int(cy + bh / 2)
        if not free(x0 - px(30), y0 - px(30), x1 + px(30), y1 + px(30)):
            continue
        pitch = max(3, px(16))
        for xp in range(x0 + pitch // 2, x1 - pitch // 2, pitch):
            cv2.rectangle(board, (xp - px(4), y0 - px(18)), (xp + px(4), y0), _SILVER, -1)
            cv2.rectangle(board, (xp - px(4), y1), (xp + px(4), y1 + px(18)), _SILVER, -1)
        cv2.rectangle(board, (x0, y0), (x1, y1), _BODY, -1)
        cv2.circle(board, (x0 + px(14), y0 + px(14)), px(5), (60.0, 60.0, 64.0), -1)
        cv2.rectangle(board, (x0 - px(26), y0 - px(26)), (x1 + px(26), y1 + px(26)), _SILK, px(2))

    # Two-terminal parts (resistors with dark bodies, tan capacitors) on gold pads.
    for _ in range(80):
        horizontal = bool(rng.random() < 0.5)
        chip = bool(rng.random() < 0.5)
        length, width = (px(46), px(24)) if chip else (px(36), px(18))
        if not horizontal:
            length, width = width, length
        x0, y0 = int(rng.uniform(0.02 * w, 0.98 * w - length)), int(rng.uniform(0.02 * h, 0.98 * h - width))
        x1, y1 = x0 + length, y0 + width
        if not free(x0 - px(12), y0 - px(12), x1 + px(12), y1 + px(12)):
            continue
        pad = px(12)
        if horizontal:
            cv2.rectangle(board, (x0, y0), (x0 + pad, y1), _GOLD, -1)
            cv2.rectangle(board, (x1 - pad, y0), (x1, y1), _GOLD, -1)
            body_box = ((x0 + px(8), y0 + px(2)), (x1 - px(8), y1 - px(2)))
        else:
            cv2.rectangle(board, (x0, y0), (x1, y0 + pad), _GOLD, -1)
            cv2.rectangle(board, (x0, y1 - pad), (x1, y1), _GOLD, -1)
            body_box = ((x0 + px(2), y0 + px(8)), (x1 - px(2), y1 - px(8)))
        cv2.rectangle(board, body_box[0], body_box[1], _BODY if chip else _CAP, -1)
        cv2.rectangle(board, (x0 - px(6), y0 - px(6)), (x1 + px(6), y1 + px(6)), _SILK, px(2))
        if sum(1 for b in placed if b[2] - b[0] <= px(100)) >= 24:
            break

    # Silkscreen labels: short rows of small blocks, like component designators.
    for _ in range(int(rng.integers(10, 18))):
        x0, y0 = int(rng.uniform(0, 0.95 * w)), int(rng.uniform(0, 0.97 * h))
        n = int(rng.integers(2, 5))
        if not free(x0, y0, x0 + n * px(12), y0 + px(12)):
            continue
        for k in range(n):
            xa = x0 + k * px(12)
            cv2.rectangle(board, (xa, y0), (xa + px(8), y0 + px(12)), _SILK, max(1, px(2)))
    return board, substrate


def render_pcb(rng: np.random.Generator, shape: tuple[int, int], ctx: Context) -> tuple[np.ndarray, Context]:
    """The category's board, placed with a small shift and rotation under varying light."""
    board, substrate = ctx["layout"]
    h, w = shape
    scale = max(h, w) / 1024.0
    angle = float(rng.uniform(-0.6, 0.6))
    shift = (float(rng.uniform(-6, 6) * scale), float(rng.uniform(-6, 6) * scale))
    light = illumination(rng, shape)[:, :, None]
    image = rotate(board, angle, shift, shape) * light
    bare = rotate(substrate, angle, shift, shape) * light
    return image.astype(np.float32), {"kind": "pcb", "substrate": bare}


def finish(clean: np.ndarray) -> np.ndarray:
    """Clip a clean image into the safe range (see ``LOW``/``HIGH``)."""
    return np.clip(clean, LOW, HIGH, out=clean)


def sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Bounded Gaussian read noise (bounded so that it never saturates the 8-bit range).

    Drawn as random bytes mapped through a 256-level Gaussian quantile table: statistically the same
    after 8-bit rounding, and ~8x faster than drawing float normals for multi-megapixel images.
    """
    codes = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return np.take(_gaussian_table(float(sigma)), codes)


@lru_cache(maxsize=8)
def _gaussian_table(sigma: float) -> np.ndarray:
    levels = ndtri((np.arange(256) + 0.5) / 256.0) * sigma
    return np.clip(levels, -NOISE_CLIP, NOISE_CLIP).astype(np.float32)
