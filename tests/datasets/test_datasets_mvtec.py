"""MVTec-layout reader: listing, sample ids, mixed formats and sizes, mask naming, lazy errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from dataset_builders import write_png

from adbench_hr.datasets import DATASET_NAMES, MVTecLayoutDataset, guess_dataset_name, open_dataset
from adbench_hr.errors import InputError


def test_lists_categories_and_samples(mvtec_root: Path) -> None:
    ds = open_dataset("mvtec_ad", mvtec_root)
    assert isinstance(ds, MVTecLayoutDataset)
    assert ds.categories() == ["widget"]
    train = ds.train_samples("widget")
    assert [s.sample_id for s in train] == ["train/good/000", "train/good/001", "train/good/002"]
    test = ds.test_samples("widget")
    ids = [s.sample_id for s in test]
    # Hidden files and non-images are ignored; defect folders are sorted.
    assert ids == ["test/dent/002", "test/good/000", "test/good/001", "test/scratch/000", "test/scratch/001"]
    by_id = {s.sample_id: s for s in test}
    assert by_id["test/good/000"].label == 0 and by_id["test/good/000"].mask_path is None
    assert by_id["test/scratch/000"].mask_path.name == "000_mask.png"
    assert by_id["test/scratch/001"].mask_path.name == "001.png"  # <stem>.png naming accepted
    assert by_id["test/dent/002"].defect_type == "dent" and by_id["test/dent/002"].label == 1


def test_loads_grayscale_jpg_tiff_and_mixed_sizes(mvtec_root: Path) -> None:
    ds = open_dataset("folder", mvtec_root)
    assert ds.name == "folder"
    gray = ds.train_samples("widget")[1].load_image()
    assert gray.shape == (64, 80, 3) and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 2])  # replicated grayscale
    by_id = {s.sample_id: s for s in ds.test_samples("widget")}
    tiff = by_id["test/scratch/001"]
    assert tiff.load_image().shape == (50, 70, 3)
    mask = tiff.load_mask()
    assert mask.dtype == bool and mask.shape == (50, 70) and mask.sum() == 130
    assert by_id["test/good/000"].load_mask() is None


def test_missing_mask_names_the_image(mvtec_root: Path) -> None:
    (mvtec_root / "widget" / "ground_truth" / "dent" / "002_mask.png").unlink()
    ds = open_dataset("mvtec_ad", mvtec_root)
    with pytest.raises(InputError, match="no mask") as info:
        ds.test_samples("widget")
    assert info.value.path == mvtec_root / "widget" / "test" / "dent" / "002.png"


def test_masks_match_whatever_the_case_of_their_extension(mvtec_root: Path) -> None:
    # Datasets exported on Windows often carry upper-case extensions on images and masks alike.
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    (truth / "002_mask.png").rename(truth / "002_mask.PNG")
    by_id = {s.sample_id: s for s in open_dataset("mvtec_ad", mvtec_root).test_samples("widget")}
    sample = by_id["test/dent/002"]
    assert sample.mask_path == truth / "002_mask.PNG"
    assert sample.load_mask().sum() == 7


def test_layouts_of_other_mvtec_datasets_get_a_hint(mvtec_root: Path, tmp_path: Path) -> None:
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    (truth / "002_mask.png").unlink()
    (truth / "002").mkdir()  # MVTec LOCO AD: one folder of masks per image
    with pytest.raises(InputError, match=r"MVTec LOCO AD layout, scored with sPRO\), which adbench-hr does not read: "
                                         r"merge each folder's masks into one 002_mask.png, as docs/datasets.md"):
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    ad2 = tmp_path / "ad2"
    for split in ("train/good", "validation/good", "test_public/good", "test_public/bad"):
        (ad2 / "can" / split).mkdir(parents=True)
    with pytest.raises(InputError, match=r"MVTec AD 2.*\(ln -s test_public CATEGORY/test; "
                                         r"ln -s test_public/ground_truth CATEGORY/ground_truth\)"):
        open_dataset("mvtec_ad", ad2).train_samples("can")


def test_mvtec_3d_ads_layout_gets_a_hint_for_its_training_and_test_splits(tmp_path: Path) -> None:
    # MVTec 3D-AD keeps each split folder's files in rgb/, xyz/ (and gt/ for the test set): before, the reader said
    # only "no training images" and "empty test set", with nothing about the rgb/ folders it had found.
    bagel = tmp_path / "mvtec_3d" / "bagel"
    for split in ("train/good", "test/good", "test/crack"):
        write_png(bagel / split / "rgb" / "000.png", np.zeros((8, 8, 3), np.uint8))
        (bagel / split / "xyz").mkdir()
        if split.startswith("test"):
            write_png(bagel / split / "gt" / "000.png", np.zeros((8, 8), np.uint8))
    dataset = open_dataset("mvtec_ad", tmp_path / "mvtec_3d")
    hint = r"\(MVTec 3D-AD's layout, rgb/, xyz/ and gt/ in each folder, is not read: link its rgb/ and gt/ folders"
    with pytest.raises(InputError, match=r"no training images " + hint) as info:
        dataset.train_samples("bagel")
    assert info.value.path == bagel / "train" / "good"
    with pytest.raises(InputError, match=r"empty test set " + hint):
        dataset.test_samples("bagel")
    # Linked as docs/datasets.md shows, the category reads: the rgb/ images, with gt/ masks named as their images.
    linked = tmp_path / "linked" / "bagel"
    for folder in ("train", "test", "ground_truth"):
        (linked / folder).mkdir(parents=True)
    (linked / "train" / "good").symlink_to(bagel / "train" / "good" / "rgb")
    for defect in ("good", "crack"):
        (linked / "test" / defect).symlink_to(bagel / "test" / defect / "rgb")
    (linked / "ground_truth" / "crack").symlink_to(bagel / "test" / "crack" / "gt")
    samples = open_dataset("mvtec_ad", linked.parent).test_samples("bagel")
    assert [(s.sample_id, s.label) for s in samples] == [("test/crack/000", 1), ("test/good/000", 0)]
    assert samples[0].mask_path == linked / "ground_truth" / "crack" / "000.png"


@pytest.mark.parametrize("name", ["ok", "Good", "normal"])
def test_normal_images_under_another_folder_name_get_a_hint(mvtec_root: Path, name: str) -> None:
    # BTAD ships train/ok, test/ok and test/ko; other exports capitalise good.
    category = mvtec_root / "widget"
    for split in ("train", "test"):
        (category / split / "good").rename(category / split / name)
    dataset = open_dataset("mvtec_ad", mvtec_root)
    with pytest.raises(InputError, match=f"missing training folder \\(found {name}/: .*named 'good'") as info:
        dataset.train_samples("widget")
    assert info.value.path == category / "train" / "good"
    with pytest.raises(InputError, match=f"has no mask in .* \\(found {name}/: .*BTAD") as info:
        dataset.test_samples("widget")
    assert info.value.path.parent == category / "test" / name


def test_the_hint_names_the_misnamed_folder_not_good_or_a_file(mvtec_root: Path) -> None:
    category = mvtec_root / "widget"
    (category / "test" / "ok").mkdir()  # beside test/good: a second normal folder, without masks
    (category / "test" / "ok" / "005.png").write_bytes((category / "test" / "good" / "000.png").read_bytes())
    with pytest.raises(InputError, match=r"has no mask in .* \(found ok/: ") as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert "found good/" not in str(info.value)
    (category / "train" / "good").rename(category / "train" / "images")
    (category / "train" / "ok").write_text("not a folder")
    with pytest.raises(InputError, match="missing training folder") as info:
        open_dataset("mvtec_ad", mvtec_root).train_samples("widget")
    assert "found" not in str(info.value)


def test_a_missing_mask_of_a_real_defect_gets_no_normal_folder_hint(mvtec_root: Path) -> None:
    category = mvtec_root / "widget"
    (category / "test" / "good").rename(category / "test" / "ok")
    (category / "ground_truth" / "dent" / "002_mask.png").unlink()
    with pytest.raises(InputError, match="no mask") as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert info.value.path == category / "test" / "dent" / "002.png"
    assert "found" not in str(info.value)


def test_broken_symlink_is_an_error_not_a_smaller_split(mvtec_root: Path) -> None:
    link = mvtec_root / "widget" / "train" / "good" / "009.png"
    link.symlink_to(mvtec_root / "nowhere.png")
    with pytest.raises(InputError, match="broken symbolic link") as info:
        open_dataset("mvtec_ad", mvtec_root).train_samples("widget")
    assert info.value.path == link


@pytest.mark.parametrize(
    ("link", "read"),
    [
        ("widget/test/crack", "test_samples"),  # a defect folder on an unmounted drive
        ("widget/ground_truth/dent/002_mask.png", "test_samples"),
        ("gadget", "categories"),  # a whole category
        ("gadget/test", "categories"),
    ],
)
def test_broken_links_to_folders_and_masks_are_errors(mvtec_root: Path, link: str, read: str) -> None:
    path = mvtec_root / link
    if path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(mvtec_root / "offline" / path.name)
    dataset = open_dataset("mvtec_ad", mvtec_root)
    with pytest.raises(InputError, match="broken symbolic link") as info:
        dataset.test_samples("widget") if read == "test_samples" else dataset.categories()
    assert info.value.path == path


def test_broken_links_to_files_that_are_not_images_are_ignored_as_such_files_are(mvtec_root: Path) -> None:
    for link in (mvtec_root / "LICENSE.txt", mvtec_root / "widget" / "test" / "good" / "notes2.txt"):
        link.symlink_to(mvtec_root / "offline" / link.name)
    dataset = open_dataset("mvtec_ad", mvtec_root)
    assert dataset.categories() == ["widget"]
    assert len(dataset.test_samples("widget")) == 5


def test_a_folder_with_train_but_no_test_is_named(mvtec_root: Path) -> None:
    (mvtec_root / "gadget" / "train" / "good").mkdir(parents=True)
    dataset = open_dataset("mvtec_ad", mvtec_root)
    assert dataset.categories() == ["widget"]
    with pytest.raises(InputError, match="not a category: it has train/ but no test/ folder") as info:
        dataset.train_samples("gadget")
    assert info.value.path == mvtec_root / "gadget"


def test_unknown_category_lists_available(mvtec_root: Path) -> None:
    ds = open_dataset("mvtec_ad", mvtec_root)
    with pytest.raises(InputError, match="unknown category 'nut'.*widget") as info:
        ds.train_samples("nut")
    assert info.value.path == mvtec_root


def test_empty_splits(mvtec_root: Path) -> None:
    for f in (mvtec_root / "widget" / "train" / "good").iterdir():
        f.unlink()
    ds = open_dataset("mvtec_ad", mvtec_root)
    with pytest.raises(InputError, match="no training images") as info:
        ds.train_samples("widget")
    assert info.value.path == mvtec_root / "widget" / "train" / "good"
    assert str(info.value).endswith(": no training images")  # no layout hint without a reason for one


def test_duplicate_stems_are_rejected(mvtec_root: Path) -> None:
    folder = mvtec_root / "widget" / "test" / "good"
    (folder / "000.bmp").write_bytes((folder / "000.png").read_bytes())
    with pytest.raises(InputError, match="share the stem '000'"):
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")


def test_open_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset"):
        open_dataset("imagenet", tmp_path)
    with pytest.raises(InputError, match="dataset root not found") as info:
        open_dataset("mvtec_ad", tmp_path / "absent")
    assert info.value.path == tmp_path / "absent"
    with pytest.raises(InputError, match="root is required"):
        open_dataset("visa", None)
    with pytest.raises(InputError, match="datasets synth"):
        open_dataset("synthetic", tmp_path / "absent")
    assert set(DATASET_NAMES) == {"mvtec_ad", "visa", "folder", "synthetic"}


def test_root_without_categories_gives_a_hint(mvtec_root: Path) -> None:
    ds = open_dataset("mvtec_ad", mvtec_root / "widget")  # a category folder passed as the root
    with pytest.raises(InputError, match="no categories found"):
        ds.test_samples("widget")


def test_a_root_that_does_not_hold_the_categories_gets_a_hint_for_what_it_is(
    mvtec_root: Path, visa_root: Path, tmp_path: Path
) -> None:
    # Before: each of these got the same generic hint, which said nothing about what was wrong.
    def error(root: Path) -> str:
        with pytest.raises(InputError, match="no categories found") as info:
            open_dataset("mvtec_ad", root).test_samples("x")
        assert info.value.path == root
        return str(info.value)

    assert "widget itself is a category (it holds test/): pass its parent folder" in error(mvtec_root / "widget")
    assert "one object of a VisA release: pass the folder that holds split_csv/, with --dataset visa" in error(
        visa_root / "candle")
    ksdd2 = tmp_path / "KolektorSDD2"  # images and <stem>_GT.png masks side by side in train/ and test/
    for split, stem in (("train", "10000"), ("test", "20000")):
        write_png(ksdd2 / split / f"{stem}.png", np.zeros((8, 8), np.uint8))
        write_png(ksdd2 / split / f"{stem}_GT.png", np.zeros((8, 8), np.uint8))
    assert "KolektorSDD2/test holds images directly, not in test/good and test/<defect> folders; KolektorSDD2's" in (
        error(ksdd2))
    for mask in ksdd2.glob("*/*_GT.png"):  # loose images of no known layout: only where they belong
        mask.unlink()
    assert error(ksdd2).endswith("(KolektorSDD2/test holds images directly, not in test/good and test/<defect> "
                                 "folders; arrange the images in the MVTec layout)")
    realiad = tmp_path / "Real-IAD"  # realiad_<size>/<object>/{OK,NG/<defect>}/S0001/*.jpg, splits in realiad_jsons/
    write_png(realiad / "realiad_1024" / "audiojack" / "OK" / "S0001" / "a.jpg", np.zeros((8, 8), np.uint8))
    (realiad / "realiad_1024" / "audiojack" / "NG" / "AK" / "S0002").mkdir(parents=True)
    (realiad / "realiad_jsons" / "realiad_jsons").mkdir(parents=True)
    for folder in (realiad, realiad / "realiad_1024", realiad / "realiad_1024" / "audiojack"):
        assert error(folder).endswith("(Real-IAD's layout, OK/ and NG/ folders with splits in realiad_jsons/, is not "
                                      "read: arrange it in the MVTec layout, as docs/datasets.md shows)")
    generic = "(expected ROOT/CATEGORY/train and ROOT/CATEGORY/test; pass the folder that holds the categories)"
    only_ok = tmp_path / "only_ok"  # OK/ without NG/ is no Real-IAD object
    (only_ok / "bottle" / "OK").mkdir(parents=True)
    assert error(only_ok).endswith(generic)
    named = tmp_path / "realiad_converted"  # a folder named realiad_* is no Real-IAD release by its name alone
    (named / "bottle" / "images").mkdir(parents=True)
    assert error(named).endswith(generic)
    dagm = tmp_path / "dagm"  # DAGM 2007: Class1/Train, Class1/Test
    (dagm / "Class1" / "Train").mkdir(parents=True)
    (dagm / "Class1" / "Test").mkdir()
    assert "found Class1/Test/: folder names are case-sensitive" in error(dagm)
    # The category of a KolektorSDD2-like folder: where its images belong.
    dataset = open_dataset("folder", tmp_path)
    with pytest.raises(InputError, match=r"missing training folder \(train/ holds images directly: normal images go "
                                         r"in train/good/\)"):
        dataset.train_samples("KolektorSDD2")
    with pytest.raises(InputError, match=r"empty test set \(test/ holds images directly: they go in test/good and "
                                         r"test/<defect>\)"):
        dataset.test_samples("KolektorSDD2")


def test_a_root_one_level_above_the_dataset_names_the_folder_to_pass(tmp_path: Path) -> None:
    # An archive extracted into a folder of its own; before: the generic hint, with the dataset right there.
    from dataset_builders import build_mvtec, build_visa

    build_mvtec(tmp_path / "downloads" / "mvtec_anomaly_detection")
    (tmp_path / "downloads" / "notes").mkdir()
    with pytest.raises(InputError, match=r"no categories found \(the categories are one level down, in "
                                         r"mvtec_anomaly_detection/: pass that folder\)$") as info:
        open_dataset("mvtec_ad", tmp_path / "downloads").test_samples("widget")
    assert info.value.path == tmp_path / "downloads"
    build_visa(tmp_path / "visa_download" / "VisA_20220922")
    with pytest.raises(InputError, match=r"\(VisA_20220922/ holds a VisA release: pass that folder, with --dataset "
                                         r"visa\)$"):
        open_dataset("mvtec_ad", tmp_path / "visa_download").test_samples("candle")
    with pytest.raises(InputError, match=r"missing split_csv/1cls.csv \(VisA's split file; VisA_20220922/ holds "
                                         r"one: pass that folder\)$") as info:
        open_dataset("visa", tmp_path / "visa_download")
    assert info.value.path == tmp_path / "visa_download" / "split_csv" / "1cls.csv"
    with pytest.raises(InputError, match=r"\(VisA's split file; is this the VisA release folder\?\)$"):
        open_dataset("visa", tmp_path / "downloads")


@pytest.mark.parametrize("names", [("a_copy", "b_copy"), ("b_copy", "a_copy")])
def test_of_two_datasets_one_level_down_the_first_by_name_is_named(tmp_path: Path, names) -> None:
    # Whatever order they were made (and are listed) in.
    from dataset_builders import build_mvtec, build_visa

    for name in names:
        build_mvtec(tmp_path / "downloads" / name)
        build_visa(tmp_path / "visa_download" / f"VisA_{name}")
    with pytest.raises(InputError, match=r"\(the categories are one level down, in a_copy/: pass that folder\)$"):
        open_dataset("mvtec_ad", tmp_path / "downloads").test_samples("widget")
    with pytest.raises(InputError, match=r"\(VisA_a_copy/ holds a VisA release: pass that folder, with --dataset "
                                         r"visa\)$"):
        open_dataset("mvtec_ad", tmp_path / "visa_download").test_samples("candle")
    with pytest.raises(InputError, match=r"VisA's split file; VisA_a_copy/ holds one: pass that folder\)$"):
        open_dataset("visa", tmp_path / "visa_download")


@pytest.mark.parametrize("name, problem", [
    ("absent", "dataset root not found"),
    ("mvtec_anomaly_detection.tar.xz", "dataset root is an archive: extract it and pass the extracted folder"),
    ("VisA_20220922.TAR", "dataset root is an archive: extract it and pass the extracted folder"),
    ("notes.txt", "dataset root is a file, not a folder"),
    ("dangling", "dataset root not found (a broken symbolic link to gone)"),
])
@pytest.mark.parametrize("dataset", ["mvtec_ad", "visa", "folder"])
def test_a_root_that_is_not_a_folder_says_what_it_is(tmp_path: Path, name: str, problem: str, dataset: str) -> None:
    root = tmp_path / name
    if name == "dangling":
        root.symlink_to("gone")
    elif name != "absent":
        root.write_bytes(b"\xfd7zXZ")
    with pytest.raises(InputError) as info:
        open_dataset(dataset, root)
    assert str(info.value) == f"{root}: {problem}"


def test_a_missing_mask_names_a_mask_named_otherwise_or_mvtec_ad_2s_ground_truth(
    mvtec_root: Path, tmp_path: Path
) -> None:
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    (truth / "002_mask.png").rename(truth / "002_GT.png")  # KolektorSDD2's name; DAGM's is 002_label.PNG
    write_png(truth / "002_1_mask.png", np.zeros((8, 8), np.uint8))  # another image's mask is not named
    with pytest.raises(InputError, match=r"has no mask in .* \(found 002_GT.png: a mask is named <stem>_mask.<ext> "
                                         r"or <stem>.<ext>, as its image's stem\)"):
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    (truth / "002_GT.png").unlink()
    with pytest.raises(InputError, match="no mask") as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert "found" not in str(info.value)
    # Nor is another image's mask named as its stem (002_1.png, the mask of test/dent/002_1.png).
    (truth / "002_1_mask.png").rename(truth / "002_1.png")
    write_png(mvtec_root / "widget" / "test" / "dent" / "002_1.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="no mask") as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert info.value.path.name == "002.png" and "found" not in str(info.value)
    # MVTec AD 2 with its test split linked, but not its ground truth.
    category = tmp_path / "ad2" / "can"
    write_png(category / "train" / "good" / "000_regular.png", np.zeros((8, 8), np.uint8))
    write_png(category / "test_public" / "bad" / "000_regular.png", np.zeros((8, 8), np.uint8))
    write_png(category / "test_public" / "ground_truth" / "bad" / "000_regular_mask.png", np.zeros((8, 8), np.uint8))
    (category / "test").symlink_to("test_public")
    with pytest.raises(InputError, match=r"no mask in .* \(MVTec AD 2's masks are in test_public/ground_truth: "
                                         r"ln -s test_public/ground_truth CATEGORY/ground_truth\)"):
        open_dataset("mvtec_ad", tmp_path / "ad2").test_samples("can")
    (category / "ground_truth").symlink_to("test_public/ground_truth")
    assert [s.mask_path for s in open_dataset("mvtec_ad", tmp_path / "ad2").test_samples("can")] == [
        category / "ground_truth" / "bad" / "000_regular_mask.png"]


def test_a_category_spelled_with_other_unicode_characters_is_named_as_such(mvtec_root: Path) -> None:
    # Before: "unknown category 'flüssig' (available: flüssig)", two names that print alike.
    (mvtec_root / "widget").rename(mvtec_root / "flu\u0308ssig")  # decomposed, as macOS writes names
    with pytest.raises(InputError, match="the folder 'flu\u0308ssig' spells it with other Unicode characters"):
        open_dataset("mvtec_ad", mvtec_root).test_samples("fl\u00fcssig")


def test_guess_dataset_name(mvtec_root: Path, visa_root: Path, tiny_synthetic_root: Path) -> None:
    assert guess_dataset_name(mvtec_root) == "mvtec_ad"
    assert guess_dataset_name(visa_root) == "visa"
    assert guess_dataset_name(tiny_synthetic_root) == "synthetic"
    (mvtec_root / "meta.json").write_text("[not, json")
    assert guess_dataset_name(mvtec_root) == "mvtec_ad"


def test_stem_mask_name_wins_over_the_bare_stem(mvtec_root: Path) -> None:
    # MVTec's <stem>_mask.png is the mask; a <stem>.png beside it (an export, a copy) must not replace it.
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    write_png(truth / "002.png", np.zeros((64, 80), np.uint8))
    by_id = {s.sample_id: s for s in open_dataset("mvtec_ad", mvtec_root).test_samples("widget")}
    assert by_id["test/dent/002"].mask_path == truth / "002_mask.png"
    assert by_id["test/dent/002"].load_mask().sum() == 7


def test_a_mask_is_never_borrowed_from_an_image_whose_stem_differs_in_case(mvtec_root: Path) -> None:
    # Only the extension's case may differ: Big.png must not be scored against big.png's mask.
    dent = mvtec_root / "widget" / "test" / "dent"
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    if (dent / "002.PNG").exists():
        pytest.skip("case-insensitive file system: Big.png and big.png cannot coexist")
    (dent / "002.png").rename(dent / "big.png")
    (truth / "002_mask.png").rename(truth / "big_mask.png")
    write_png(dent / "Big.png", np.zeros((64, 80), np.uint8))
    with pytest.raises(InputError, match="no mask") as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert info.value.path == dent / "Big.png"


def test_images_with_upper_case_extensions_are_listed(mvtec_root: Path) -> None:
    train = mvtec_root / "widget" / "train" / "good"
    (train / "000.png").rename(train / "000.PNG")
    scratch = mvtec_root / "widget" / "test" / "scratch"
    (scratch / "001.tiff").rename(scratch / "001.Tif")
    dataset = open_dataset("mvtec_ad", mvtec_root)
    assert [s.sample_id for s in dataset.train_samples("widget")] == ["train/good/000", "train/good/001",
                                                                       "train/good/002"]
    by_id = {s.sample_id: s for s in dataset.test_samples("widget")}
    assert by_id["test/scratch/001"].image_path == scratch / "001.Tif"
    assert by_id["test/scratch/001"].load_mask().sum() == 130


def test_a_defective_sample_without_a_mask_path_refuses_to_load_its_mask(tmp_path: Path) -> None:
    # A reader (or plugin dataset) that lists a defective image without a mask must not score it as empty.
    from adbench_hr.datasets.base import TestSample

    image = tmp_path / "003.png"
    sample = TestSample(image, None, 1, "scratch", "test/scratch/003")
    with pytest.raises(InputError, match="no ground-truth mask") as info:
        sample.load_mask()
    assert info.value.path == image
    assert TestSample(image, None, 0, "good", "test/good/003").load_mask() is None


def test_a_split_csv_folder_without_1cls_csv_is_not_guessed_as_visa(mvtec_root: Path) -> None:
    (mvtec_root / "split_csv").mkdir()
    (mvtec_root / "split_csv" / "2cls_highshot.csv").write_text("object,split,label,image,mask\n")
    assert guess_dataset_name(mvtec_root) == "mvtec_ad"


def _webp(path: Path, image: Path) -> Path:
    """``image`` re-encoded as WebP at ``path``: a real file that OpenCV decodes but adbench-hr does not read."""
    assert cv2.imwrite(str(path), cv2.imread(str(image), cv2.IMREAD_UNCHANGED))
    return path


@pytest.mark.parametrize("folder", ["train/good", "test/good", "test/scratch"])
@pytest.mark.parametrize("name", ["003.webp", "003.GIF", "003.pgm", "003.jp2", "003.avif", "003.Ppm"])
def test_an_image_in_a_format_that_is_not_read_is_an_error_not_a_smaller_split(
    mvtec_root: Path, folder: str, name: str
) -> None:
    # Skipped, such a file would shrink the split silently (before: datasets check, score and run exited 0).
    path = mvtec_root / "widget" / folder / name
    path.write_bytes(b"GIF89a" if name.lower().endswith(".gif") else b"\x00" * 16)  # the name alone decides
    ds = open_dataset("mvtec_ad", mvtec_root)
    with pytest.raises(InputError) as info:
        ds.train_samples("widget") if folder.startswith("train") else ds.test_samples("widget")
    assert info.value.path == path
    suffix = Path(name).suffix.lower()
    assert info.value.problem == f"image format {suffix} is not read (PNG, JPEG, BMP or TIFF are); convert it"


@pytest.mark.parametrize(("name", "renamed"), [("003.jfif", ".jpg"), ("003.JPE", ".jpg"), ("003.dib", ".bmp")])
def test_jpeg_and_bmp_under_other_names_are_refused_with_the_name_to_use(
    mvtec_root: Path, name: str, renamed: str
) -> None:
    path = mvtec_root / "widget" / "test" / "good" / name
    path.write_bytes((mvtec_root / "widget" / "test" / "good" / "001.jpg").read_bytes())
    with pytest.raises(InputError) as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert info.value.path == path
    assert f"rename it to {renamed} if it is a" in info.value.problem


def test_a_real_webp_test_image_is_refused(mvtec_root: Path) -> None:
    scratch = mvtec_root / "widget" / "test" / "scratch"
    _webp(scratch / "000.webp", scratch / "000.png")
    (scratch / "000.png").unlink()
    with pytest.raises(InputError, match=r"image format \.webp is not read") as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert info.value.path == scratch / "000.webp"


def test_files_that_are_not_images_stay_ignored(mvtec_root: Path) -> None:
    for folder in ("train/good", "test/good", "test/scratch", "ground_truth/scratch"):
        for name in ("Thumbs.db", ".DS_Store", "README.txt", "desktop.ini", ".hidden.webp"):
            (mvtec_root / "widget" / folder / name).write_bytes(b"x")
    (mvtec_root / "widget" / "test" / "scratch" / "frames.gif").mkdir()  # a folder, not an image file
    ds = open_dataset("mvtec_ad", mvtec_root)
    assert len(ds.train_samples("widget")) == 3 and len(ds.test_samples("widget")) == 5


def test_a_mask_only_in_a_format_that_is_not_read_is_an_error_naming_it(mvtec_root: Path) -> None:
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    webp = _webp(truth / "002_mask.WEBP", truth / "002_mask.png")
    (truth / "002_mask.png").unlink()
    with pytest.raises(InputError) as info:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert info.value.path == webp
    assert info.value.problem.startswith("image format .webp is not read")


def test_a_mask_in_a_format_that_is_not_read_beside_a_readable_one_is_left_unread(mvtec_root: Path) -> None:
    # The readable mask is the mask (as a .tiff beside a .png: the first readable one); the other copy is one
    # of the files `datasets check` reports as not read (tests/datasets/test_datasets_cmd.py).
    truth = mvtec_root / "widget" / "ground_truth" / "dent"
    webp = _webp(truth / "002_mask.webp", truth / "002_mask.png")
    ds = open_dataset("mvtec_ad", mvtec_root)
    test = ds.test_samples("widget")
    assert {s.sample_id: s.mask_path for s in test}["test/dent/002"] == truth / "002_mask.png"
    assert ds.unused_files("widget", [*ds.train_samples("widget"), *test]) == [webp]


@pytest.mark.skipif(not hasattr(os, "fsencode") or os.name != "posix", reason="POSIX file names are bytes")
def test_names_in_another_encoding_than_utf8_are_refused_before_any_work(mvtec_root: Path, tmp_path: Path,
                                                                         capsys) -> None:
    # A file or folder named in Latin-1 (b"\xff") reaches Python as a lone surrogate: `run` fitted and wrote
    # every map, then crashed writing image_scores.csv (UnicodeEncodeError); `score` wrote a result that
    # `leaderboard` crashed on (pandas' CSV writer, matplotlib's text).
    from adbench_hr.cli.main import main
    from adbench_hr.results import name_problem

    good = mvtec_root / "widget" / "test" / "good"
    latin1 = Path(os.fsdecode(os.fsencode(good) + b"/\xff00.png"))
    (good / "000.png").rename(latin1)
    with pytest.raises(InputError, match="not valid UTF-8 text") as error:
        open_dataset("mvtec_ad", mvtec_root).test_samples("widget")
    assert error.value.path == latin1
    assert main(["datasets", "check", "--root", str(mvtec_root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not valid UTF-8 text" in err[0]
    assert err[0].endswith(": 'test/good/\\xff00'; rename it")  # the file is at fault, not the locale
    latin1.rename(good / "000.png")

    category = os.fsdecode(b"wid\xffget")
    (mvtec_root / "widget").rename(mvtec_root / category)
    assert "not valid UTF-8 text" in name_problem(category)
    maps = tmp_path / "maps"
    (maps / category).mkdir(parents=True)
    assert main(["score", "--maps", str(maps), "--root", str(mvtec_root), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "category name is not valid UTF-8 text" in err[0], err


def test_a_category_without_a_train_folder_is_a_missing_training_folder(mvtec_root: Path) -> None:
    # No train/ at all: nothing there to hint at (the hint looks for normal images under another name in train/).
    import shutil

    category = mvtec_root / "widget"
    shutil.rmtree(category / "train")
    with pytest.raises(InputError) as info:
        open_dataset("mvtec_ad", mvtec_root).train_samples("widget")
    assert info.value.path == category / "train" / "good"
    assert info.value.problem == "missing training folder"
