"""MVTec AD layout reader, also used by the generic ``folder`` dataset.

Layout::

    ROOT/CATEGORY/train/good/*.png
    ROOT/CATEGORY/test/good/*.png
    ROOT/CATEGORY/test/<defect>/*.png
    ROOT/CATEGORY/ground_truth/<defect>/<stem>_mask.png   (or <stem>.png)

Images may be PNG, JPG, BMP or TIFF, RGB or grayscale, with sizes varying within a category.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from adbench_hr.datasets.base import (
    GOOD,
    TestSample,
    TrainSample,
    check_category,
    check_portable_ids,
    loose_images,
)
from adbench_hr.errors import InputError
from adbench_hr.fileio import check_input_folder, check_link, not_a_file_problem
from adbench_hr.imageio import IMAGE_EXTENSIONS, UNREAD_IMAGE_EXTENSIONS, unread_format_problem


def _visible(folder: Path) -> list[Path]:
    """A folder's entries without hidden ones (macOS "._000.png" forks, editor droppings).

    A broken link that may have been an image or a folder is refused; one to another kind of file (a
    ``.txt``, ``.json``) is left alone, as such files are.
    """
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    for path in entries:
        if not path.suffix or path.suffix.lower() in IMAGE_EXTENSIONS:
            check_link(path)
    return entries


def _image_files(folder: Path) -> list[Path]:
    """The images of an image folder (train/good, test/<defect>), sorted.

    A file named as an image format that is not read (``.webp``, ``.gif`` ...) is refused: skipping it would
    silently shrink the split. So is a folder (or a pipe) named as an image (``000.png/``).
    """
    entries = _visible(folder)
    for path in entries:
        problem = unread_format_problem(path)
        if problem and not path.is_dir():
            raise InputError(problem, path)
    candidates = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
    for path in candidates:  # a folder or a pipe named as an image: skipping it would shrink the split too
        if not path.is_file():
            raise InputError(not_a_file_problem(path, "image"), path)
    files = sorted(candidates)
    _check_unique_stems(files)
    return files


def _check_unique_stems(files: list[Path]) -> None:
    # Sample ids (and map paths) are built from stems: 000.png and 000.jpg side by side would collide.
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise InputError(f"two images share the stem {path.stem!r} (other: {seen[path.stem].name})", path)
        seen[path.stem] = path


def _named(files: dict[str, Path], stem: str, ext: str) -> Path | None:
    """The file of ``files`` (lower-cased name -> path) named ``<stem><ext>``: only the extension's case may
    differ."""
    found = files.get(f"{stem}{ext}".lower())
    return found if found is not None and found.name[: len(stem)] == stem else None


def _identity(path: Path) -> str:
    """A file's resolved path, lower-cased (a file system may ignore case): equal for a file and a link to
    it, or the same file reached through a linked folder."""
    return str(Path(path).resolve()).lower()


# Whatever is named as an image: files among them that no sample reads are reported by unused_files.
_ANY_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS + UNREAD_IMAGE_EXTENSIONS

# MVTec AD 2's splits besides train/ and the test split (test_public, linked as test/): not read, and not
# misplaced files either.
_OTHER_SPLITS = frozenset({"validation", "test_public", "test_private", "test_private_mixed"})

# Names other datasets give their normal images (BTAD: ok/ko; others: normal, OK, Good).
_NORMAL_FOLDER_NAMES = frozenset({GOOD, "ok", "normal", "nominal"})


def _normal_folder_hint(parent: Path) -> str:
    """``" (found ok/: ...)"`` when ``parent`` holds the normal images under another name than ``good``."""
    if not parent.is_dir():
        return ""
    for path in sorted(_visible(parent)):
        if path.name != GOOD and path.name.lower() in _NORMAL_FOLDER_NAMES and path.is_dir():
            return (
                f" (found {path.name}/: normal images must be in a folder named '{GOOD}'; in BTAD's layout "
                "rename ok/ to good/ in train/ and test/, and ground_truth/ko/ stays as it is)"
            )
    if loose_images(parent):
        return f" ({parent.name}/ holds images directly: normal images go in {parent.name}/{GOOD}/)"
    return ""


def _mvtec_3d_hint(folders: Iterable[Path]) -> str:
    """A hint when one of ``folders`` (train/good, test/<defect>) holds MVTec 3D-AD's ``rgb/`` folder (beside ``xyz/``
    and ``gt/``) instead of images."""
    if any((folder / "rgb").is_dir() for folder in folders):
        return (" (MVTec 3D-AD's layout, rgb/, xyz/ and gt/ in each folder, is not read: link its rgb/ and gt/ folders "
                "into the MVTec AD layout, as docs/datasets.md shows)")
    return ""


def _mask_name_hint(folder: Path, image_path: Path, masks: dict[str, Path]) -> str:
    """Why no mask of ``image_path`` was found in ``folder``, when a likely reason shows: MVTec AD 2's ground truth
    not linked, or a mask named otherwise (KolektorSDD2's ``<stem>_GT.png``, DAGM's ``<stem>_label.PNG``)."""
    category = folder.parent.parent
    if not folder.parent.exists() and (category / "test_public" / "ground_truth").is_dir():
        return (" (MVTec AD 2's masks are in test_public/ground_truth: "
                "ln -s test_public/ground_truth CATEGORY/ground_truth)")
    stem = image_path.stem
    # Another image's mask, named <stem>_mask.<ext> or <stem>.<ext> (000_1_mask.png or 000_1.png beside 000.png).
    images = {path.stem.lower() for path in image_path.parent.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS}
    named = sorted(path.name for path in masks.values() if path.name.startswith(stem) and len(path.name) > len(stem)
                   and not path.name[len(stem)].isalnum() and path.suffix.lower() in _ANY_IMAGE_EXTENSIONS
                   and not path.stem.endswith("_mask") and path.stem.lower() not in images)
    if named:
        return f" (found {named[0]}: a mask is named <stem>_mask.<ext> or <stem>.<ext>, as its image's stem)"
    return ""


def _lower_case_names(folder: Path) -> dict[str, Path]:
    """``{lower-cased file name: path}`` of a folder's files and broken links (empty if the folder does not
    exist); a broken link is refused when it is looked up."""
    if not folder.is_dir():
        return {}
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file() or (p.is_symlink() and not p.exists())}


class MVTecLayoutDataset:
    """Reader for any dataset in MVTec AD's folder layout."""

    def __init__(self, root: str | Path, name: str = "mvtec_ad") -> None:
        self.root = Path(root)
        self.name = name
        check_input_folder(self.root, "dataset root")

    def categories(self) -> list[str]:
        names = []
        for folder in _visible(self.root):
            if folder.is_dir():
                check_link(folder / "test")
                if (folder / "test").is_dir():
                    names.append(folder.name)
        return sorted(names)

    def train_samples(self, category: str) -> list[TrainSample]:
        check_category(self, category)
        folder = self.root / category / "train" / GOOD
        if not folder.is_dir():
            for part in (folder.parent, folder):  # train/ or train/good there, but a file: not a missing folder
                if part.exists():
                    check_input_folder(part, "training folder")
            raise InputError(f"missing training folder{_normal_folder_hint(folder.parent)}", folder)
        files = _image_files(folder)
        if not files:
            raise InputError(f"no training images{_mvtec_3d_hint([folder])}", folder)
        return [TrainSample(path, f"train/{GOOD}/{path.stem}") for path in files]

    def test_samples(self, category: str) -> list[TestSample]:
        check_category(self, category)
        test_root = self.root / category / "test"
        samples: list[TestSample] = []
        for defect_dir in sorted(p for p in _visible(test_root) if p.is_dir()):
            defect = defect_dir.name
            masks = _lower_case_names(self.root / category / "ground_truth" / defect)
            for path in _image_files(defect_dir):
                sample_id = f"test/{defect}/{path.stem}"
                if defect == GOOD:
                    samples.append(TestSample(path, None, 0, GOOD, sample_id))
                    continue
                mask = self._find_mask(category, defect, path, masks)
                samples.append(TestSample(path, mask, 1, defect, sample_id))
        if not samples:
            loose = loose_images(test_root)
            where = " (test/ holds images directly: they go in test/good and test/<defect>)" if loose else ""
            where = where or _mvtec_3d_hint(p for p in _visible(test_root) if p.is_dir())
            raise InputError(f"empty test set{where}", test_root)
        check_portable_ids(samples)
        return samples

    def unused_files(
        self, category: str, samples: Iterable[TrainSample | TestSample], *, skip: Iterable[str] = ()
    ) -> list[Path]:
        """Image files under the category folder that are neither one of ``samples`` (the category's train
        and test samples, as listed by the caller) nor a sample's mask, sorted; files in the category's
        top-level folders named in ``skip`` (``"train"`` when the caller did not list the training images)
        are left out.

        Extra masks (a mask in a format that is not read beside the one that is, too), images in nested
        folders or loose in ``test/``: usually a misnamed or misplaced file.
        Files are compared by their resolved paths, so a file read through a linked folder (MVTec AD 2's
        ``test_public`` linked as ``test``) counts as used; MVTec AD 2's other splits are left out.
        """
        # Compared lower-cased: on a case-insensitive file system a mask may be found under another case.
        used = set()
        for sample in samples:
            used.update(_identity(p) for p in (sample.image_path, getattr(sample, "mask_path", None)) if p)
        folder = self.root / category
        skipped = _OTHER_SPLITS | set(skip)
        unused: dict[str, Path] = {}
        for path in sorted(folder.rglob("*")):
            parts = path.relative_to(folder).parts
            if (path.suffix.lower() in _ANY_IMAGE_EXTENSIONS and not any(part.startswith(".") for part in parts)
                    and parts[0] not in skipped and path.is_file()):
                identity = _identity(path)
                if identity not in used:
                    unused.setdefault(identity, path)
        return sorted(unused.values())

    def _find_mask(self, category: str, defect: str, image_path: Path, masks: dict[str, Path]) -> Path:
        """``<stem>_mask.<ext>`` (MVTec's name), else ``<stem>.<ext>``; extensions in any case.

        ``masks`` maps lower-cased file names of the defect's ground-truth folder to their paths. A mask found
        only in a format that is not read (``.webp`` ...) is refused; beside a readable one it is left to
        :meth:`unused_files`.
        """
        folder = self.root / category / "ground_truth" / defect
        stems = (f"{image_path.stem}_mask", image_path.stem)
        for stem in stems:
            for ext in IMAGE_EXTENSIONS:
                candidate = folder / f"{stem}{ext}"
                if candidate.is_file():
                    return candidate
                found = _named(masks, stem, ext)
                if found is not None:
                    check_link(found)
                    return found
        for stem in stems:
            for ext in UNREAD_IMAGE_EXTENSIONS:  # the only mask there is in a format that is not read
                found = _named(masks, stem, ext)
                if found is not None:
                    raise InputError(str(unread_format_problem(found)), found)
        if (folder / image_path.stem).is_dir():
            raise InputError(
                f"ground truth {folder / image_path.stem} is a folder of masks (the MVTec LOCO AD layout, scored "
                "with sPRO), which adbench-hr does not read: merge each folder's masks into one "
                f"{image_path.stem}_mask.png, as docs/datasets.md shows",
                image_path,
            )
        for part in (folder.parent, folder):  # ground_truth/ or ground_truth/<defect> there, but not as a folder
            if (part.exists() or part.is_symlink()) and not part.is_dir():
                check_input_folder(part, "ground-truth folder")
        for stem in stems:  # a folder (or a pipe) named as the mask
            for ext in IMAGE_EXTENSIONS:
                candidate = folder / f"{stem}{ext}"
                if candidate.exists() and not candidate.is_file():
                    raise InputError(not_a_file_problem(candidate, "mask"), candidate)
        hint = _normal_folder_hint(image_path.parent.parent) if defect.lower() in _NORMAL_FOLDER_NAMES else ""
        hint = hint or _mask_name_hint(folder, image_path, masks)
        raise InputError(f"defective test image has no mask in {folder}{hint}", image_path)
