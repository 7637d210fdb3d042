"""VisA reader, in the layout of the official release.

Layout (paths in the CSV are relative to ``ROOT``)::

    ROOT/split_csv/1cls.csv              object,split,label,image,mask
    ROOT/candle/Data/Images/Normal/0000.JPG
    ROOT/candle/Data/Images/Anomaly/000.JPG
    ROOT/candle/Data/Masks/Anomaly/000.png   (values > 0 are defect; VisA stores small integers)

``split`` is ``train`` or ``test`` and ``label`` is ``normal`` or ``anomaly``. Training uses the
``train`` rows (all normal in the official split). Sample ids follow the MVTec layout so that anomaly
maps can be submitted the same way for both datasets: ``train/good/<stem>``, ``test/good/<stem>`` and
``test/bad/<stem>``; the defect type of an anomalous image is ``"bad"``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from adbench_hr.datasets.base import (
    GOOD,
    VISA_SPLIT_CSV,
    TestSample,
    TrainSample,
    check_category,
    check_portable_ids,
    visa_release_below,
)
from adbench_hr.errors import InputError
from adbench_hr.fileio import check_input_folder, not_a_file_problem, refuse_empty_file
from adbench_hr.imageio import unread_format_problem

BAD = "bad"
_COLUMNS = ("object", "split", "label", "image", "mask")
_NORMAL_LABELS = {"normal", "good", "0"}
_ANOMALY_LABELS = {"anomaly", "abnormal", "bad", "1"}


class VisADataset:
    """Reader for VisA's native release layout, driven by ``split_csv/1cls.csv``.

    Parameters
    ----------
    root : str or Path
        The folder that holds ``split_csv/`` and the per-object folders.
    name : str
        Dataset name reported in results.

    Raises
    ------
    InputError
        If the root or its split CSV is missing or malformed.
    """

    def __init__(self, root: str | Path, name: str = "visa") -> None:
        self.root = Path(root)
        self.name = name
        check_input_folder(self.root, "dataset root")
        self.csv_path = self.root / VISA_SPLIT_CSV
        if not self.csv_path.is_file():
            if self.csv_path.exists() or self.csv_path.is_symlink():  # there, but a folder or a broken link
                raise InputError(not_a_file_problem(self.csv_path, VISA_SPLIT_CSV.as_posix()), self.csv_path)
            below = visa_release_below(self.root)
            hint = f"{below.name}/ holds one: pass that folder" if below else "is this the VisA release folder?"
            raise InputError(f"missing {VISA_SPLIT_CSV.as_posix()} (VisA's split file; {hint})", self.csv_path)
        self._rows = self._read_rows()

    def _read_rows(self) -> dict[str, list[tuple[int, str, str, str, str]]]:
        """Parse the CSV once: object -> [(line, split, label, image, mask)]."""
        refuse_empty_file(self.csv_path, VISA_SPLIT_CSV.as_posix())
        try:
            with self.csv_path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = [c.strip().lower() for c in (reader.fieldnames or [])]
                missing = [c for c in _COLUMNS if c not in header]
                if missing:
                    raise InputError(f"CSV lacks column(s) {', '.join(missing)} (found: {header})", self.csv_path)
                rows: dict[str, list[tuple[int, str, str, str, str]]] = {}
                for raw in reader:
                    line = reader.line_num  # the file's line: DictReader skips blank ones without counting them
                    row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
                    if not any(row.values()):
                        continue
                    obj = row["object"]
                    if not obj:
                        raise InputError(f"line {line}: empty 'object'", self.csv_path)
                    rows.setdefault(obj, []).append(
                        (line, row["split"].lower(), row["label"].lower(), row["image"], row["mask"])
                    )
        except UnicodeDecodeError as exc:
            raise InputError(f"not a UTF-8 CSV ({exc})", self.csv_path) from None
        except csv.Error as exc:
            raise InputError(f"malformed CSV ({exc})", self.csv_path) from None
        if not rows:
            raise InputError("CSV has no rows", self.csv_path)
        return rows

    def _path(self, relative: str) -> Path:
        return self.root / relative.replace("\\", "/")

    def categories(self) -> list[str]:
        """Objects listed in the split CSV, sorted."""
        return sorted(self._rows)

    def _checked_rows(self, category: str) -> list[tuple[int, str, str, str, str]]:
        """The rows of ``category`` after checking every split and label, and that no image is in both splits."""
        check_category(self, category)
        rows = self._rows[category]
        first_line: dict[tuple[str, Path], int] = {}
        for line, split, label, image, _mask in rows:
            if split not in ("train", "test"):
                raise InputError(f"line {line}: unknown split {split!r} (expected train/test)", self.csv_path)
            if label not in _NORMAL_LABELS and label not in _ANOMALY_LABELS:
                raise InputError(f"line {line}: unknown label {label!r} (expected normal/anomaly)", self.csv_path)
            if split == "train" and label in _ANOMALY_LABELS:
                raise InputError(f"line {line}: anomalous image in the train split ({image})", self.csv_path)
            # Resolved, so that a backslash or "./" spelling does not hide the same file.
            key = self._path(image).resolve() if image else None
            other = "test" if split == "train" else "train"
            if key is not None and (other, key) in first_line:
                raise InputError(
                    f"line {line}: {image} is in both splits (also line {first_line[(other, key)]}): a test image "
                    "seen in training", self.csv_path
                )
            if key is not None:
                first_line.setdefault((split, key), line)
        return rows

    def train_samples(self, category: str) -> list[TrainSample]:
        """Training images of ``category`` (rows with split ``train``), in CSV order."""
        samples: list[TrainSample] = []
        for line, split, _label, image, _mask in self._checked_rows(category):
            if split != "train":
                continue
            path = self._image_path(line, image)
            samples.append(TrainSample(path, f"train/{GOOD}/{path.stem}"))
        if not samples:
            raise InputError(f"no training images for object {category!r}", self.csv_path)
        self._check_unique([s.sample_id for s in samples], [s.image_path for s in samples])
        return samples

    def test_samples(self, category: str) -> list[TestSample]:
        """Test images of ``category`` with their masks (anomalies must have one), in CSV order."""
        samples: list[TestSample] = []
        for line, split, label, image, mask in self._checked_rows(category):
            if split != "test":
                continue
            path = self._image_path(line, image)
            if label in _NORMAL_LABELS:
                samples.append(TestSample(path, None, 0, GOOD, f"test/{GOOD}/{path.stem}"))
                continue
            if not mask:
                raise InputError("defective test image has no ground-truth mask in 1cls.csv", path)
            mask_path = self._listed_file(line, mask, "mask")
            samples.append(TestSample(path, mask_path, 1, BAD, f"test/{BAD}/{path.stem}"))
        if not samples:
            raise InputError(f"empty test set for object {category!r}", self.csv_path)
        self._check_unique([s.sample_id for s in samples], [s.image_path for s in samples])
        check_portable_ids(samples)
        return samples

    def normal_rows_with_masks(
        self, category: str, splits: tuple[str, ...] = ("train", "test")
    ) -> list[tuple[int, str]]:
        """``(line, mask)`` of the rows of ``category`` in ``splits`` that are labelled normal but name a mask.

        A normal image has no mask, so such a mask is not read; the row's label or its mask may be a mistake.
        """
        return [(line, mask) for line, split, label, _image, mask in self._checked_rows(category)
                if split in splits and label in _NORMAL_LABELS and mask]

    def _image_path(self, line: int, relative: str) -> Path:
        if not relative:
            raise InputError(f"line {line}: empty 'image'", self.csv_path)
        return self._listed_file(line, relative, "image")

    def _listed_file(self, line: int, relative: str, kind: str) -> Path:
        """The existing file of an ``image`` or ``mask`` cell, in a format that is read."""
        path = self._path(relative)
        if not path.is_file():
            problem = not_a_file_problem(path, f"{kind} file")  # not found, or a folder or broken link
            raise InputError(f"{problem} (listed on line {line} of {self.csv_path})", path)
        # The MVTec reader refuses these too: images in formats outside the spec's are not read by accident.
        problem = unread_format_problem(path)
        if problem:
            raise InputError(f"{problem} (listed on line {line} of {self.csv_path})", path)
        return path

    def _check_unique(self, ids: list[str], paths: list[Path]) -> None:
        # Sample ids double as map paths; two images with one stem would overwrite each other's map.
        seen: dict[str, Path] = {}
        for sample_id, path in zip(ids, paths, strict=True):
            if sample_id in seen:
                raise InputError(f"two images map to the same id {sample_id!r} (other: {seen[sample_id]})", path)
            seen[sample_id] = path
