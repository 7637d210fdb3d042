"""Dataset interface shared by every reader.

A dataset is a folder with one or more categories. Each category has nominal training images and test
samples. Samples are described by paths and loaded lazily, always at the original resolution.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from adbench_hr.errors import InputError
from adbench_hr.imageio import IMAGE_EXTENSIONS, read_image, read_mask

GOOD = "good"


@dataclass(frozen=True)
class TrainSample:
    """A nominal training image."""

    image_path: Path
    sample_id: str

    def __post_init__(self) -> None:
        _check_sample_id(self.sample_id, self.image_path)

    def load_image(self) -> np.ndarray:
        """Return the RGB ``uint8`` image, ``(H, W, 3)``, at its original size."""
        return read_image(self.image_path)


@dataclass(frozen=True)
class TestSample:
    """A test image with its ground truth.

    Attributes
    ----------
    image_path : Path
        The image file.
    mask_path : Path or None
        Ground-truth mask; ``None`` for good images.
    label : int
        0 for good, 1 for defective.
    defect_type : str
        ``"good"`` or the defect class (MVTec's folder name).
    sample_id : str
        Stable id, also the map's relative path without extension inside ``MAPS/CATEGORY/``,
        e.g. ``"test/scratch/003"``.
    """

    image_path: Path
    mask_path: Path | None
    label: int
    defect_type: str
    sample_id: str

    def __post_init__(self) -> None:
        _check_sample_id(self.sample_id, self.image_path)

    def load_image(self) -> np.ndarray:
        """Return the RGB ``uint8`` image, ``(H, W, 3)``, at its original size."""
        return read_image(self.image_path)

    def load_mask(self) -> np.ndarray | None:
        """Return the boolean ground-truth mask at original size, or ``None`` for a good image."""
        if self.mask_path is None:
            if self.label == 1:
                raise InputError("defective test image has no ground-truth mask", self.image_path)
            return None
        return read_mask(self.mask_path)


def _check_sample_id(sample_id: str, image_path: Path) -> None:
    """Refuse a sample whose id (its path in the category) is a name in another encoding than UTF-8: it goes
    into ``image_scores.csv``, results and plots, which would fail after the whole category was computed."""
    from adbench_hr.results import misread_name_hint, undecodable_name

    if problem := undecodable_name(sample_id):
        advice = "" if misread_name_hint(sample_id) else "; rename it"  # else the locale is at fault
        raise InputError(f"the sample's path in its category {problem}{advice}", image_path)


def portable_key(name: str) -> str:
    """``name`` as a file system that ignores case and Unicode form compares it (macOS's APFS and HFS+, Windows'
    NTFS): names with equal keys are one file there."""
    return unicodedata.normalize("NFC", name).casefold()


def check_portable_ids(samples: Sequence[TestSample]) -> None:
    """Refuse test samples whose ids differ only in case or Unicode form (``test/scratch/A`` beside
    ``test/scratch/a``, a folder ``Scratch`` beside ``scratch``, an accent composed or not).

    Their maps are files named by the ids: on macOS and Windows one would silently overwrite the other, and
    scoring would read one map for both images.
    """
    seen: dict[str, TestSample] = {}
    for sample in samples:
        other = seen.setdefault(portable_key(sample.sample_id), sample)
        if other is not sample:
            raise InputError(
                f"sample ids {other.sample_id!r} and {sample.sample_id!r} differ only in case or Unicode form: their "
                "anomaly maps would be one file on macOS and Windows; rename one of them", sample.image_path
            )


def check_portable_names(names: Iterable[str], root: Path) -> None:
    """Refuse categories whose names differ only in case or Unicode form: their results, maps and checkpoints
    (files and folders named by the category) would be one on macOS and Windows."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(portable_key(name), name)
        if other != name:
            raise InputError(
                f"categories {other!r} and {name!r} differ only in case or Unicode form: their results and maps "
                "would be one file on macOS and Windows; rename one of the folders, or run them one at a time "
                "into different --out folders", root
            )


class Dataset(Protocol):
    """What every dataset reader provides."""

    name: str
    root: Path

    def categories(self) -> list[str]:
        """Names of the categories present under the root, sorted."""
        ...

    def train_samples(self, category: str) -> list[TrainSample]:
        """Nominal training images of a category, in a stable order."""
        ...

    def test_samples(self, category: str) -> list[TestSample]:
        """Test samples of a category, in a stable order."""
        ...


#: VisA's split file, relative to the release folder; its presence is what marks a VisA release.
VISA_SPLIT_CSV = Path("split_csv") / "1cls.csv"


def is_visa_release(root: Path) -> bool:
    """Whether ``root`` holds VisA's split file (:data:`VISA_SPLIT_CSV`)."""
    return (Path(root) / VISA_SPLIT_CSV).is_file()


def visa_release_below(root: Path) -> Path | None:
    """The first folder directly in ``root`` that holds a VisA release (a root given one level too high)."""
    return next((p for p in sorted(_subfolders(root)) if is_visa_release(p)), None)


def no_categories_error(root: Path) -> InputError:
    """The error for a dataset root without categories, with a hint for the layouts people try."""
    root = Path(root)
    folders = [root, *(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
    if is_visa_release(root):
        hint = f"this is a VisA release ({VISA_SPLIT_CSV.as_posix()}): pass --dataset visa"
    elif any((p / "test_public").is_dir() for p in folders):
        hint = (
            "this looks like MVTec AD 2, whose test split is CATEGORY/test_public: link it and its ground truth "
            "(ln -s test_public CATEGORY/test; ln -s test_public/ground_truth CATEGORY/ground_truth)"
        )
        if (root / "test_public").is_dir():
            hint += f"; {root.name} itself is a category: pass its parent folder"
    elif (root / "test").is_dir() and loose_images(root / "test"):
        hint = f"{root.name}/test holds images directly, not in test/good and test/<defect> folders; "
        if any(path.stem.endswith("_GT") for path in (root / "test").iterdir()):
            hint += "KolektorSDD2's layout, images beside their <stem>_GT.png masks, is not read: "
        hint += "arrange the images in the MVTec layout"
    elif (root / "test").is_dir():
        hint = f"{root.name} itself is a category (it holds test/): pass its parent folder"
    elif any(p.name.startswith("realiad_") for p in folders[1:]) or any(
        (p / "OK").is_dir() and (p / "NG").is_dir() for p in folders
    ):
        hint = (
            "Real-IAD's layout, OK/ and NG/ folders with splits in realiad_jsons/, is not read: arrange it in the "
            "MVTec layout, as docs/datasets.md shows"
        )
    elif (root / "Data" / "Images").is_dir():
        hint = "this is one object of a VisA release: pass the folder that holds split_csv/, with --dataset visa"
    elif miscased := sorted(p for folder in folders for p in _subfolders(folder) if p.name.lower() == "test"):
        hint = (
            f"found {miscased[0].relative_to(root).as_posix()}/: folder names are case-sensitive, the layout is "
            "CATEGORY/train/good, CATEGORY/test/<defect> and CATEGORY/ground_truth/<defect>"
        )
    elif visa := visa_release_below(root):
        hint = f"{visa.name}/ holds a VisA release: pass that folder, with --dataset visa"
    elif holders := [p for p in folders[1:] if any((q / "test").is_dir() for q in _subfolders(p))]:
        hint = f"the categories are one level down, in {sorted(holders)[0].name}/: pass that folder"
    else:
        hint = "expected ROOT/CATEGORY/train and ROOT/CATEGORY/test; pass the folder that holds the categories"
    return InputError(f"no categories found ({hint})", root)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []


def loose_images(folder: Path) -> bool:
    """Whether ``folder`` holds image files itself (not only in sub-folders)."""
    try:
        return any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in folder.iterdir())
    except OSError:
        return False


def check_category(dataset: Dataset, category: str) -> None:
    """Raise :class:`InputError` if ``category`` is not one of the dataset's categories."""
    available = dataset.categories()
    if not available:
        raise no_categories_error(dataset.root)
    if category not in available:
        listed = ", ".join(available) if available else "none"
        folder = Path(dataset.root) / category
        if category and (folder / "train").is_dir() and not (folder / "test").exists():
            raise InputError(f"not a category: it has train/ but no test/ folder (categories: {listed})", folder)
        nfc = unicodedata.normalize("NFC", category)
        same = [name for name in available if unicodedata.normalize("NFC", name) == nfc]
        if same:  # "flüssig" typed, "flu\u0308ssig" on disk (macOS writes accents decomposed)
            raise InputError(
                f"unknown category {category!r}: the folder {same[0]!r} spells it with other Unicode characters "
                "(a decomposed accent?); rename the folder to the name as typed", dataset.root
            )
        raise InputError(f"unknown category {category!r} (available: {listed})", dataset.root)
