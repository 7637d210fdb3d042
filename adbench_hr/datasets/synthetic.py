"""The built-in synthetic *size-ladder* dataset.

Procedural industrial surfaces and objects rendered at high resolution, with defects whose areas span
more than four orders of magnitude (2x2 px pits up to stains of tens of thousands of pixels) and whose
masks are exact: a mask holds precisely the pixels the defect altered. It is written in the MVTec AD
layout, is the default dataset of ``adbench-hr run``, and is the fixture of tests and benchmarks.

Determinism: every image is rendered from its own ``numpy.random.Generator`` seeded with
``(seed, category key, split, index, stream)``, so an image does not depend on which other images or
categories are generated, nor in which order (the defect *plan* of a category is drawn once from
``(seed, category key)`` and depends on the number of defective images). The same arguments give
byte-identical files.

Public entry points: :func:`generate_synthetic`, :func:`default_synthetic_root`, :func:`render_sample`,
:func:`plan_defects`, :data:`SYNTHETIC_CATEGORIES`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adbench_hr.datasets import _defects as D
from adbench_hr.datasets import _textures as T
from adbench_hr.datasets._defects import DefectPlan
from adbench_hr.errors import InputError
from adbench_hr.fileio import make_locked_folder, remove_orphaned_folders
from adbench_hr.imageio import IMAGE_EXTENSIONS
from adbench_hr.progress import progress_bar

SYNTHETIC_VERSION = 1
# meta.json's "generator"; a folder whose meta.json starts so is a generated dataset (see read_generator_meta).
GENERATOR = "adbench-hr synthetic size-ladder"
_GENERATOR_PREFIX = "adbench-hr synthetic"
# Held by a generation in its partial folder, so that a later one can sweep the folders of killed ones.
_PARTIAL_LOCK = ".generating.lock"
DEFAULT_SEED = 0
DEFAULT_SIZE = 1024
# (train good, test good, test defective) per category at scale 1.
DEFAULT_COUNTS = (12, 6, 12)
# Largest planned defect at the default size; scales with the image area for other sizes.
LARGEST_AREA_PX = 62_000.0
SMALLEST_AREA_PX = 4.0

SPLITS = ("train", "test_good", "test_defective")
_SPLIT_CODE = {"train": 0, "test_good": 1, "test_defective": 2}
# Fast zlib level 1 for both. Images also use the run-length strategy: on the four textures it encodes
# 25-35 % faster, decodes (every run reads every image) 20-25 % faster and is 8-16 % smaller, with the
# same pixels. Masks keep the default strategy, which decodes their long zero runs faster.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
_PNG_IMAGE_PARAMS = [*_PNG_PARAMS, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]

# Where on the log-area ladder (0 = smallest, 1 = largest) each generic kind of defect is plausible.
_KIND_RANGE = {
    "speck": (0.0, 0.3),
    "scratch": (0.2, 0.6),
    "short": (0.3, 0.55),
    "crack": (0.35, 0.72),
    "missing": (0.4, 0.75),
    "hole": (0.4, 1.0),
    "stain": (0.55, 1.0),
}


@dataclass(frozen=True)
class SyntheticCategory:
    """How one synthetic category looks and which defects it gets.

    Attributes
    ----------
    name : str
        Folder name.
    aspect : float
        Height / width of its images.
    grayscale : bool
        Stored as single-channel PNG.
    defects : dict
        Generic defect kind -> (MVTec folder name, style).
    noise_sigma : float
        Sensor noise, gray levels.
    grain : bool
        Cracks follow a horizontal grain (wood).
    """

    name: str
    aspect: float
    grayscale: bool
    renderer: T.Renderer
    defects: dict[str, tuple[str, D.Style]] = field(default_factory=dict)
    noise_sigma: float = 2.0
    grain: bool = False

    def shape(self, size: int) -> tuple[int, int]:
        """``(H, W)`` of this category's images for a given ``--size`` (the width)."""
        width = int(size)
        height = max(32, int(round(size * self.aspect / 8.0)) * 8)
        return height, width


_FABRIC_THREADS = [(168.0, 42.0, 40.0), (236.0, 232.0, 218.0), (40.0, 38.0, 36.0)]

SYNTHETIC_CATEGORIES: dict[str, SyntheticCategory] = {
    c.name: c
    for c in (
        SyntheticCategory(
            "brushed_metal",
            1.0,
            True,
            T.render_brushed_metal,
            {
                "speck": ("pit", D.darken(0.35, 0.55)),
                "scratch": ("scratch", D.brighten(30.0, 55.0, dark_share=0.3)),
                "crack": ("crack", D.darken(0.3, 0.45)),
                "stain": ("stain", D.stain((0.72, 0.72, 0.72), (0.25, 0.4))),
            },
            noise_sigma=2.5,
        ),
        SyntheticCategory(
            "woven_fabric",
            1.0,
            False,
            T.render_woven_fabric,
            {
                "speck": ("contamination", D.paint([(45.0, 32.0, 24.0)], (0.75, 0.9))),
                "scratch": ("thread", D.paint(_FABRIC_THREADS, (0.85, 0.95))),
                "hole": ("hole", D.cavity("hole_rgb")),
                "stain": ("stain", D.stain((0.85, 0.7, 0.45), (0.35, 0.55))),
            },
        ),
        SyntheticCategory(
            "wood_grain",
            0.75,
            False,
            T.render_wood_grain,
            {
                "speck": ("wormhole", D.cavity("hole_rgb")),
                "scratch": ("scratch", D.brighten(22.0, 40.0)),
                "crack": ("crack", D.darken(0.3, 0.45)),
                "stain": ("stain", D.stain((0.62, 0.62, 0.62), (0.3, 0.45))),
            },
            grain=True,
        ),
        SyntheticCategory(
            "pcb",
            1.0,
            False,
            T.render_pcb,
            {
                "speck": ("contamination", D.paint([(30.0, 28.0, 26.0), (225.0, 222.0, 210.0)], (0.75, 0.9))),
                "scratch": ("scratch", D.paint([(205.0, 150.0, 84.0)], (0.6, 0.8))),
                "short": ("short", D.paint([(196.0, 196.0, 190.0)], (0.9, 1.0))),
                "missing": ("missing", D.reveal("substrate")),
                "stain": ("residue", D.stain((1.15, 1.0, 0.45), (0.35, 0.55))),
            },
            noise_sigma=1.8,
        ),
    )
}


@dataclass(frozen=True)
class ImagePlan:
    """Defects planned for one defective test image, and the MVTec folder it is filed under."""

    defects: tuple[DefectPlan, ...]
    folder: str


def _category_key(name: str) -> int:
    # A stable per-name key (not the position in a list), so one category renders the same alone or
    # among others.
    return zlib.crc32(name.encode("utf-8"))


def _get_category(name: str) -> SyntheticCategory:
    try:
        return SYNTHETIC_CATEGORIES[name]
    except KeyError:
        known = ", ".join(SYNTHETIC_CATEGORIES)
        raise InputError(f"unknown synthetic category {name!r} (known: {known})") from None


# Bounds of `datasets synth`: images from 64 px (the smallest defect ladder) to 8192 px, and at most
# 100 times the default number of images.
MIN_SIZE, MAX_SIZE = 64, 8192
MAX_SCALE = 100.0


def image_counts(scale: float = 1.0, counts: tuple[int, int, int] = DEFAULT_COUNTS) -> tuple[int, int, int]:
    """Per-category ``(n_train, n_test_good, n_test_defective)`` for a ``--scale`` factor (at least 1)."""
    if not 0 < scale <= MAX_SCALE:
        raise InputError(f"scale must be positive and at most {MAX_SCALE:g}, got {scale}")
    return tuple(max(1, int(round(c * scale))) for c in counts)  # type: ignore[return-value]


def plan_defects(
    category: str, n_defective: int, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED
) -> list[ImagePlan]:
    """Plan the defects of a category's defective test images.

    Primary defects climb a log-spaced area ladder from ``SMALLEST_AREA_PX`` (an exact 2x2..3x3 pit)
    to ``LARGEST_AREA_PX`` scaled by ``(size / 1024) ** 2`` (a stain), shuffled over the images; the
    kind of each defect is drawn among those plausible at its area. About a third of the images get
    one or two extra, smaller defects.

    Parameters
    ----------
    category : str
        Synthetic category name.
    n_defective : int
        Number of defective test images.
    size : int
        Image width in px (``--size``).
    seed : int
        Dataset seed.

    Returns
    -------
    list of ImagePlan
        One plan per defective image, in file order.
    """
    spec = _get_category(category)
    rng = np.random.default_rng([seed, _category_key(category), 99])
    h, w = spec.shape(size)
    a_max = min(LARGEST_AREA_PX * (size / 1024.0) ** 2, 0.1 * h * w)
    a_min = SMALLEST_AREA_PX
    span = np.log(a_max / a_min)
    kinds = list(spec.defects)

    def area_at(t: float) -> float:
        return float(a_min * np.exp(t * span))

    def kinds_at(t: float) -> list[str]:
        inside = [k for k in kinds if _KIND_RANGE[k][0] <= t <= _KIND_RANGE[k][1]]
        if inside:
            return inside
        return [min(kinds, key=lambda k: min(abs(t - _KIND_RANGE[k][0]), abs(t - _KIND_RANGE[k][1])))]

    n = int(n_defective)
    ladder = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    if n > 2:  # jitter interior rungs; the two ends stay exact
        ladder[1:-1] += rng.uniform(-0.3, 0.3, n - 2) / (n - 1)
    ladder = np.clip(ladder, 0.0, 1.0)
    # Kinds per rung, climbing the ladder: among the kinds plausible at a rung, take the least used so
    # far, so that every kind of the category shows up rather than stains taking the whole top half.
    used = dict.fromkeys(kinds, 0)
    primaries: list[DefectPlan] = []
    for t in ladder:
        t = float(t)
        if t == 0.0:
            primary = DefectPlan("speck", float(rng.integers(4, 10)))
        elif t == 1.0:
            primary = DefectPlan("stain", a_max)
        else:
            candidates = kinds_at(t)
            fewest = min(used[k] for k in candidates)
            candidates = [k for k in candidates if used[k] == fewest]
            primary = DefectPlan(candidates[int(rng.integers(len(candidates)))], area_at(t))
        used[primary.kind] += 1
        primaries.append(primary)
    plans: list[ImagePlan] = []
    for rung in rng.permutation(n):
        primary = primaries[int(rung)]
        defects = [primary]
        if rng.random() < 0.3:
            for _ in range(int(rng.integers(1, 3))):
                kind = primary.kind if rng.random() < 0.7 else kinds[int(rng.integers(len(kinds)))]
                lo, hi = _KIND_RANGE[kind]
                defects.append(DefectPlan(kind, area_at(float(rng.uniform(lo, min(hi, 0.7))))))
        folders = {spec.defects[d.kind][0] for d in defects}
        folder = folders.pop() if len(folders) == 1 else "combined"
        plans.append(ImagePlan(tuple(defects), folder))
    return plans


@lru_cache(maxsize=8)
def _category_context(name: str, seed: int, size: int) -> T.Context:
    """Per-category data shared by all its images (the PCB board design)."""
    if name != "pcb":
        return {}
    h, w = SYNTHETIC_CATEGORIES[name].shape(size)
    pad = int(0.03 * max(h, w)) + 8
    return {"layout": T.pcb_layout([seed, _category_key(name), 7], (h + 2 * pad, w + 2 * pad))}


def render_sample(
    category: str,
    split: str,
    index: int,
    *,
    seed: int = DEFAULT_SEED,
    size: int = DEFAULT_SIZE,
    plan: ImagePlan | None = None,
    with_defects: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render one image of the synthetic dataset (without writing it).

    Parameters
    ----------
    category : str
        Synthetic category name.
    split : str
        ``"train"``, ``"test_good"`` or ``"test_defective"``.
    index : int
        Index of the image within its split.
    seed, size : int
        Dataset seed and image width.
    plan : ImagePlan, optional
        Defects to draw (``test_defective`` only); by default the plan of the default image counts.
    with_defects : bool
        ``False`` renders the same image without its defects (to verify that masks are exact).

    Returns
    -------
    image : numpy.ndarray
        ``uint8``, ``(H, W)`` for grayscale categories, ``(H, W, 3)`` RGB otherwise.
    mask : numpy.ndarray or None
        Boolean ground truth for ``test_defective``, else ``None``.
    """
    spec = _get_category(category)
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    shape = spec.shape(size)
    key = [int(seed), _category_key(category), _SPLIT_CODE[split], int(index)]
    rng = np.random.default_rng([*key, 0])
    ctx = dict(_category_context(category, int(seed), int(size)))
    clean, extra = spec.renderer(rng, shape, ctx)
    ctx.update(extra)
    image = T.finish(clean)
    noise = T.sensor_noise(rng, image.shape, spec.noise_sigma)

    mask: np.ndarray | None = None
    if split == "test_defective":
        if plan is None:
            plan = plan_defects(category, DEFAULT_COUNTS[2], size, seed)[index % DEFAULT_COUNTS[2]]
        mask = np.zeros(shape, dtype=bool)
        if with_defects:
            image = image.copy()
            _draw_defects(spec, image, mask, plan, np.random.default_rng([*key, 1]), ctx)
    image += noise
    out = np.rint(np.clip(image, 0.0, 255.0)).astype(np.uint8)
    return out, mask


def _draw_defects(
    spec: SyntheticCategory,
    image: np.ndarray,
    mask: np.ndarray,
    plan: ImagePlan,
    rng: np.random.Generator,
    ctx: T.Context,
) -> None:
    for number, defect in enumerate(plan.defects):
        style = spec.defects[defect.kind][1]
        changed_only = defect.kind == "missing"
        for attempt in range(4):
            area = defect.area / (4.0**attempt)  # crowded image: retry smaller
            region = D.make_shape(rng, DefectPlan(defect.kind, area), image.shape[:2], grain=spec.grain)
            if D.place_defect(image, mask, region, style, rng, ctx, changed_only=changed_only):
                break
        else:
            if number == 0:  # a defective image must have a defect: fall back to a small pit
                region = D.make_shape(rng, DefectPlan("speck", 9.0), image.shape[:2])
                D.place_defect(image, mask, region, D.darken(0.35, 0.5), rng, ctx, tries=200)


# ------------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class _Job:
    category: str
    split: str
    index: int
    image_path: Path
    mask_path: Path | None
    plan: ImagePlan | None


def _write_png(path: Path, array: np.ndarray, params: list[int] = _PNG_PARAMS) -> None:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array, params)
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise OSError(f"could not encode {path}")
    path.write_bytes(buffer.tobytes())


def _run_job(job: _Job, seed: int, size: int) -> None:
    image, mask = render_sample(job.category, job.split, job.index, seed=seed, size=size, plan=job.plan)
    _write_png(job.image_path, image, _PNG_IMAGE_PARAMS)  # RGB or grayscale (brushed metal)
    if job.mask_path is not None and mask is not None:
        _write_png(job.mask_path, mask.astype(np.uint8) * 255)


def _plan_jobs(
    root: Path, categories: list[str], seed: int, size: int, counts: tuple[int, int, int]
) -> tuple[list[_Job], dict[str, Any]]:
    jobs: list[_Job] = []
    meta_categories: dict[str, Any] = {}
    n_train, n_good, n_bad = counts
    for name in categories:
        spec = _get_category(name)
        base = root / name
        (base / "train" / "good").mkdir(parents=True)
        (base / "test" / "good").mkdir(parents=True)
        jobs += [_Job(name, "train", i, base / "train" / "good" / f"{i:03d}.png", None, None) for i in range(n_train)]
        jobs += [_Job(name, "test_good", i, base / "test" / "good" / f"{i:03d}.png", None, None) for i in range(n_good)]
        per_folder: dict[str, int] = {}
        for i, plan in enumerate(plan_defects(name, n_bad, size, seed)):
            number = per_folder.get(plan.folder, 0)
            per_folder[plan.folder] = number + 1
            (base / "test" / plan.folder).mkdir(exist_ok=True)
            (base / "ground_truth" / plan.folder).mkdir(parents=True, exist_ok=True)
            image_path = base / "test" / plan.folder / f"{number:03d}.png"
            mask_path = base / "ground_truth" / plan.folder / f"{number:03d}_mask.png"
            jobs.append(_Job(name, "test_defective", i, image_path, mask_path, plan))
        h, w = spec.shape(size)
        meta_categories[name] = {
            "height": h,
            "width": w,
            "channels": 1 if spec.grayscale else 3,
            "n_train": n_train,
            "n_test_good": n_good,
            "n_test_defective": n_bad,
            "defect_types": dict(sorted(per_folder.items())),
        }
    return jobs, meta_categories


def generate_synthetic(
    out: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    size: int = DEFAULT_SIZE,
    scale: float = 1.0,
    categories: str | list[str] | tuple[str, ...] | None = None,
    counts: tuple[int, int, int] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Generate the synthetic dataset into ``out`` (MVTec AD layout), atomically.

    Files are written into a hidden sibling folder that is renamed to ``out`` only when complete, so an
    interrupted run never leaves a half dataset behind.

    Parameters
    ----------
    out : str or Path
        Destination folder; must not exist or be empty.
    seed : int
        Seed; the same arguments always give byte-identical files.
    size : int
        Image width in px (heights follow each category's aspect ratio).
    scale : float
        Multiplies the default image counts ``DEFAULT_COUNTS`` (rounded, at least 1).
    categories : str or sequence of str, optional
        Subset of :data:`SYNTHETIC_CATEGORIES` (default: all).
    counts : tuple of int, optional
        Explicit ``(n_train, n_test_good, n_test_defective)`` before ``scale``; for small fixtures.
    workers : int, optional
        Threads used for rendering and encoding (default: up to 4, bounded by the CPU count).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"size must lie in {MIN_SIZE}..{MAX_SIZE} px, got {size}")
    if not 0 <= seed < 2**32:
        raise InputError(f"seed must lie in 0..2**32-1, got {seed}")
    if isinstance(categories, str):  # list("pcb") would be three unknown categories
        categories = [categories]
    names = list(categories) if categories else list(SYNTHETIC_CATEGORIES)
    for name in names:
        _get_category(name)
    names = list(dict.fromkeys(names))
    n_counts = image_counts(scale, counts or DEFAULT_COUNTS)
    if out.exists() and not out.is_dir():
        raise InputError("output folder is an existing file", out)
    if out.exists() and any(out.iterdir()):
        raise InputError("output folder already exists and is not empty", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Partial folders of killed generations hold no lock any more; a live one (another process) does.
        remove_orphaned_folders(out.parent, f".{glob.escape(out.name)}.partial-*", _PARTIAL_LOCK)
        tmp, lock = make_locked_folder(out.parent, f".{out.name}.partial-", _PARTIAL_LOCK, shared=True)
    except OSError as exc:  # name the folder asked for, not the hidden one the data is generated into
        raise InputError(f"cannot create the output folder ({exc.strerror or exc})", out) from None
    try:
        jobs, meta_categories = _plan_jobs(tmp, names, seed, size, n_counts)
        for name in names:  # shared per-category data, built once before the threads start
            _category_context(name, int(seed), int(size))
        n_workers = workers or max(1, min(4, os.cpu_count() or 1))
        with progress_bar(total=len(jobs), show=progress, desc="synthesising", unit="img", leave=False) as bar:
            if n_workers == 1:
                for job in jobs:
                    _run_job(job, seed, size)
                    bar.update()
            else:
                pool = ThreadPoolExecutor(n_workers)
                try:
                    futures = [pool.submit(_run_job, job, seed, size) for job in jobs]
                    for future in futures:
                        future.result()
                        bar.update()
                finally:
                    # On an error or Ctrl-C, drop the queued images instead of rendering them all first.
                    pool.shutdown(wait=True, cancel_futures=True)
        meta = {
            "generator": GENERATOR,
            "version": SYNTHETIC_VERSION,
            "seed": int(seed),
            "size": int(size),
            "scale": float(scale),
            "counts": list(n_counts),
            "categories": meta_categories,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / _PARTIAL_LOCK).unlink(missing_ok=True)  # not part of the dataset; a sweep skips a folder without one
        if out.is_dir():
            out.rmdir()  # empty (checked above); rename cannot replace a folder that has content
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.close()
    return out


def read_generator_meta(root: str | Path) -> dict[str, Any] | None:
    """The ``meta.json`` that :func:`generate_synthetic` wrote into ``root``, or ``None`` when ``root`` has no
    such file (none, unreadable, or another program's)."""
    try:
        meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not str(meta.get("generator", "")).startswith(_GENERATOR_PREFIX):
        return None
    return meta


def generator_record(root: str | Path) -> dict[str, Any] | None:
    """What a result records of a generated dataset (``dataset_generator``): its ``meta.json`` without the
    per-category listing (generator, version, seed, size, scale, counts), enough to generate it again;
    ``None`` for any other folder."""
    meta = read_generator_meta(root)
    return None if meta is None else {key: value for key, value in meta.items() if key != "categories"}


def _count_images(folder: Path) -> int:
    """Image files of a folder as the MVTec reader lists them (no hidden ones); 0 for a missing folder."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower()
                       in IMAGE_EXTENSIONS and e.is_file())
    except OSError:  # missing, or not a folder: none of the files the generator wrote there
        return 0


def _expected_counts(root: Path, meta: dict[str, Any]) -> dict[str, int]:
    """``{folder relative to root: image files the generator wrote there}`` from ``meta.json``, plus the
    category, defect and mask folders on disk that it did not write (0 files expected)."""
    expected: dict[str, int] = {}
    for name, info in meta["categories"].items():
        expected[f"{name}/train/good"] = int(info["n_train"])
        expected[f"{name}/test/good"] = int(info["n_test_good"])
        for defect, n in info["defect_types"].items():
            expected[f"{name}/test/{defect}"] = expected[f"{name}/ground_truth/{defect}"] = int(n)
    for category in root.iterdir():
        if category.name.startswith(".") or not category.is_dir():
            continue
        for split in ("test", "ground_truth"):
            folders = (split_dir.iterdir() if (split_dir := category / split).is_dir() else ())
            for folder in folders:
                if not folder.name.startswith(".") and folder.is_dir():
                    expected.setdefault(f"{category.name}/{split}/{folder.name}", 0)
    return expected


def check_synthetic_files(root: str | Path) -> None:
    """Refuse a generated synthetic dataset whose files differ from what its ``meta.json`` records.

    Per category, the image files of ``train/good``, ``test/good`` and each defect folder, and the masks of
    each ``ground_truth`` folder, are counted (not read) and compared with the counts the generator recorded:
    a file deleted from the cache, or added to it, must not silently change the benchmark. A folder without
    the generator's ``meta.json`` is not checked.

    Parameters
    ----------
    root : str or Path
        The dataset folder.

    Raises
    ------
    InputError
        Naming ``root`` and the first difference, with how to get a complete copy again.
    """
    root = Path(root)
    meta = read_generator_meta(root)
    if meta is None:
        return
    try:
        expected = _expected_counts(root, meta)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError("meta.json of the synthetic dataset is damaged (its per-category counts cannot be read); "
                         f"{_regenerate_hint(root, meta)}", root) from None
    for folder, n_expected in expected.items():
        n_found = _count_images(root / folder)
        if n_found != n_expected:
            what = "mask" if "/ground_truth/" in folder else "image"
            raise InputError(
                f"the synthetic dataset differs from its meta.json: {folder} holds {n_found} {what} file(s), "
                f"meta.json records {n_expected}; {_regenerate_hint(root, meta)}",
                root,
            )


def _regenerate_hint(root: Path, meta: dict[str, Any]) -> str:
    seed = meta.get("seed")
    try:
        default = isinstance(seed, int) and root.resolve() == _default_root_path(seed).resolve()
    except InputError:  # no cache folder can be located: this copy is not the cached one
        default = False
    if default:
        return "delete the folder, and it is generated again on next use"
    return "delete the folder and generate it again (adbench-hr datasets synth)"


def _cache_setting() -> tuple[Path, str, Path]:
    """The cache folder (see :func:`cache_dir`), the name of what set it and the path that names, for errors."""
    env = os.environ.get("ADBENCH_HR_CACHE")
    if env:
        return Path(env).expanduser(), "ADBENCH_HR_CACHE", Path(env).expanduser()
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or "").expanduser()
    if xdg.is_absolute():
        return xdg / "adbench-hr", "XDG_CACHE_HOME", xdg
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no entry in the user database (a container run as --user 12345)
        raise InputError("cannot locate the cache folder: HOME is not set and the user has no home folder; "
                         "set ADBENCH_HR_CACHE to a folder") from None
    default = home / ".cache" / "adbench-hr"
    return default, "the default cache folder", default


def cache_dir() -> Path:
    """Base folder of adbench-hr's cache: ``$ADBENCH_HR_CACHE``, else ``$XDG_CACHE_HOME/adbench-hr``,
    else ``~/.cache/adbench-hr``. A relative ``$XDG_CACHE_HOME`` is ignored, as the XDG base directory
    specification asks (it would move with the working directory)."""
    return _cache_setting()[0]


def _checked_cache_dir() -> Path:
    """:func:`cache_dir`, refused when it, or the first of its parents that exists, is not a folder: creating
    the dataset in it would fail with an error naming a folder inside it, not the setting to fix."""
    base, source, named = _cache_setting()
    for folder in (base, *base.parents):
        if folder.is_dir():
            break
        if folder.is_symlink() and not folder.exists():
            raise InputError(f"{source} names a broken symbolic link (to {os.readlink(folder)}), not a folder",
                             folder)
        if folder.exists():
            if folder == named:
                raise InputError(f"{source} names a file, not a folder", folder)
            raise InputError(f"{source} {named} lies inside a file", folder)
    return base


def _default_root_path(seed: int) -> Path:
    return cache_dir() / f"synthetic-v{SYNTHETIC_VERSION}-seed{seed}"


def default_synthetic_root(seed: int = DEFAULT_SEED, *, progress: bool = False) -> Path:
    """Return the cached default synthetic dataset, generating it on first use.

    The dataset lives in ``cache_dir() / f"synthetic-v{SYNTHETIC_VERSION}-seed{seed}"``. Generation is
    atomic (see :func:`generate_synthetic`); if several processes race, one rename wins and the others
    discard their copy.

    Parameters
    ----------
    seed : int
        Dataset seed (the default dataset uses 0).
    progress : bool
        Show a progress bar on stderr while generating it.

    Returns
    -------
    Path
        Root of the dataset (MVTec AD layout).

    Raises
    ------
    InputError
        When the cache location is a file, or the folder is there without ``meta.json`` (not generated
        completely). Whether its files match ``meta.json`` is checked when it is opened (:func:`check_synthetic_files`).
    """
    _checked_cache_dir()
    root = _default_root_path(seed)
    if (root / "meta.json").is_file():
        return root
    if root.exists() and any(root.iterdir()):
        raise InputError("cached synthetic dataset is incomplete (no meta.json); delete the folder", root)
    try:
        generate_synthetic(root, seed=seed, progress=progress)
    except OSError:
        # Another process finished first: its complete copy is there now.
        if not (root / "meta.json").is_file():
            raise
    return root
