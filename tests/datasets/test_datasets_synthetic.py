"""Synthetic size-ladder dataset: determinism, exact masks, size distribution, layout, atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from adbench_hr.datasets import Dataset, open_dataset, validate_category
from adbench_hr.datasets import synthetic as S
from adbench_hr.datasets.validate import defect_areas
from adbench_hr.errors import InputError


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def tiny(out: Path, seed: int = 0, categories: tuple[str, ...] = ("brushed_metal", "wood_grain")) -> Path:
    return S.generate_synthetic(out, seed=seed, size=160, categories=categories, counts=(4, 2, 4), workers=2)


def test_same_seed_same_bytes_different_seed_differs(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    again = tree_bytes(tiny(tmp_path / "again"))
    reference = tree_bytes(tiny_synthetic_root)
    assert again == reference
    other = tree_bytes(tiny(tmp_path / "other", seed=1))
    assert other.keys() >= {k for k in reference if "train" in k}
    pngs = [k for k in reference if k.endswith(".png") and "train" in k]
    assert pngs and all(other[k] != reference[k] for k in pngs)


def test_an_existing_empty_output_folder_is_generated_into(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "made-beforehand"
    out.mkdir()
    assert tiny(out) == out
    assert tree_bytes(out) == tree_bytes(tiny_synthetic_root)
    assert [p.name for p in tmp_path.iterdir()] == ["made-beforehand"]  # no partial folder left beside it


def test_category_renders_the_same_alone(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    alone = tree_bytes(tiny(tmp_path / "alone", categories=("wood_grain",)))
    together = tree_bytes(tiny_synthetic_root / "wood_grain")
    assert {k.removeprefix("wood_grain/"): v for k, v in alone.items() if k.startswith("wood_grain/")} == together


def test_fixture_layout_and_formats(tiny_synthetic_root: Path, tiny_synthetic_dataset: Dataset) -> None:
    meta = json.loads((tiny_synthetic_root / "meta.json").read_text())
    assert meta["version"] == S.SYNTHETIC_VERSION and meta["seed"] == 0 and meta["size"] == 160
    assert tiny_synthetic_dataset.categories() == ["brushed_metal", "wood_grain"]
    metal = cv2.imread(str(tiny_synthetic_root / "brushed_metal" / "train" / "good" / "000.png"), cv2.IMREAD_UNCHANGED)
    assert metal.shape == (160, 160)  # stored grayscale
    wood = tiny_synthetic_dataset.train_samples("wood_grain")[0].load_image()
    assert wood.shape == (120, 160, 3)  # non-square RGB
    for category in ("brushed_metal", "wood_grain"):
        report = validate_category(tiny_synthetic_dataset, category)
        assert (report.n_train, report.n_test_good, report.n_test_defective) == (4, 2, 4)
        assert min(report.defect_areas) <= 9
        for sample in tiny_synthetic_dataset.test_samples(category):
            if sample.label:
                assert sample.mask_path.name == f"{sample.image_path.stem}_mask.png"
                raw = cv2.imread(str(sample.mask_path), cv2.IMREAD_UNCHANGED)
                assert raw.dtype == np.uint8 and set(np.unique(raw)) <= {0, 255}


@pytest.mark.parametrize("category", list(S.SYNTHETIC_CATEGORIES))
def test_masks_are_exactly_the_altered_pixels(category: str) -> None:
    size = 256
    plans = S.plan_defects(category, 6, size=size, seed=5)
    for index, plan in enumerate(plans):
        image, mask = S.render_sample(category, "test_defective", index, seed=5, size=size, plan=plan)
        clean, _ = S.render_sample(category, "test_defective", index, seed=5, size=size, plan=plan, with_defects=False)
        delta = np.abs(image.astype(int) - clean.astype(int))
        changed = delta > 0 if delta.ndim == 2 else (delta > 0).any(axis=2)
        assert mask.any()
        assert np.array_equal(changed, mask), (category, index)
        # Visible: every defect pixel moves by a few gray levels at least.
        strongest = delta if delta.ndim == 2 else delta.max(axis=2)
        assert strongest[mask].min() >= 3


def test_defect_sizes_span_four_orders_at_default_size() -> None:
    """At the default size, each category's test set holds defects from pits of at most 9 px to stains of
    over 60,000 px (README, docs/datasets.md)."""
    for category in S.SYNTHETIC_CATEGORIES:
        n_bad = S.DEFAULT_COUNTS[2]
        areas: list[int] = []
        per_image: list[int] = []
        for index, plan in enumerate(S.plan_defects(category, n_bad)):
            _, mask = S.render_sample(category, "test_defective", index, plan=plan)
            found = defect_areas(mask)
            per_image.append(len(found))
            areas += found
        assert min(areas) <= 9, category
        assert max(areas) > 60_000, category
        assert max(areas) / min(areas) >= 1e4
        assert max(per_image) >= 2, "some images carry several defects"
        quartiles = np.percentile(areas, [25, 50, 75])
        assert quartiles[0] < 200 < quartiles[2], (category, quartiles)


def test_plan_is_balanced_and_deterministic() -> None:
    for category, spec in S.SYNTHETIC_CATEGORIES.items():
        plans = S.plan_defects(category, 12)
        assert plans == S.plan_defects(category, 12)
        kinds = {d.kind for p in plans for d in p.defects}
        assert kinds == set(spec.defects), category  # every defect kind of the category appears
        areas = [d.area for p in plans for d in p.defects]
        assert min(areas) <= 9 and max(areas) >= 60_000


def test_default_shapes_and_counts() -> None:
    assert set(S.SYNTHETIC_CATEGORIES) == {"brushed_metal", "woven_fabric", "wood_grain", "pcb"}  # README
    shapes = {name: spec.shape(S.DEFAULT_SIZE) for name, spec in S.SYNTHETIC_CATEGORIES.items()}
    assert all(max(s) >= 1024 for s in shapes.values())
    assert (768, 1024) in shapes.values()
    assert any(spec.grayscale for spec in S.SYNTHETIC_CATEGORIES.values())
    assert S.image_counts(1.0) == (12, 6, 12)
    assert S.image_counts(2) == (24, 12, 24)
    assert S.image_counts(0.01) == (1, 1, 1)
    with pytest.raises(InputError, match="scale must be positive"):
        S.image_counts(0)


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = S._run_job

    def flaky(job: S._Job, seed: int, size: int) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        real(job, seed, size)

    monkeypatch.setattr(S, "_run_job", flaky)
    with pytest.raises(KeyboardInterrupt):
        S.generate_synthetic(tmp_path / "ds", size=96, categories=["pcb"], counts=(3, 2, 3), workers=1)
    assert list(tmp_path.iterdir()) == []


def test_default_root_generates_once_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADBENCH_HR_CACHE", str(tmp_path / "cache"))
    calls: list[Path] = []
    real = S.generate_synthetic

    def small(out: Path, **kwargs: object) -> Path:
        calls.append(Path(out))
        return real(out, seed=int(kwargs.get("seed", 0)), size=96, categories=["brushed_metal"], counts=(2, 1, 2))

    monkeypatch.setattr(S, "generate_synthetic", small)
    root = S.default_synthetic_root()
    assert root == tmp_path / "cache" / f"synthetic-v{S.SYNTHETIC_VERSION}-seed0"
    assert (root / "meta.json").is_file()
    assert S.default_synthetic_root() == root and len(calls) == 1  # cached
    ds = open_dataset("synthetic", None)
    assert ds.root == root and ds.categories() == ["brushed_metal"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [root.name]  # no temp folder left


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"size must lie in \d+\.\.\d+ px, got 16"):
        S.generate_synthetic(tmp_path / "a", size=16)
    with pytest.raises(InputError, match="unknown synthetic category"):
        S.generate_synthetic(tmp_path / "b", categories=["cheese"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        S.generate_synthetic(tmp_path / "c", size=96)
    assert (tmp_path / "c" / "keep.txt").read_text() == "x"
    with pytest.raises(InputError, match="size must lie in"):
        S.generate_synthetic(tmp_path / "d", size=10**9)
    with pytest.raises(InputError, match=r"seed must lie in 0\.\.2\*\*32-1, got -1"):
        S.generate_synthetic(tmp_path / "e", seed=-1)
    for scale in (float("inf"), float("nan"), 0.0):
        with pytest.raises(InputError, match="scale must be positive and at most"):
            S.generate_synthetic(tmp_path / "f", scale=scale)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is an existing file"):
        S.generate_synthetic(tmp_path / "afile", size=96)


def test_an_output_folder_that_cannot_be_created_is_named_not_the_hidden_one(tmp_path, monkeypatch):
    import errno
    import tempfile

    from adbench_hr.errors import InputError

    def read_only(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", str(tmp_path / ".out.partial-x1y2"))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(InputError) as error:
        S.generate_synthetic(tmp_path / "out", size=64, scale=0.1, categories=["wood_grain"])
    assert error.value.path == tmp_path / "out"
    assert error.value.problem == "cannot create the output folder (Operation not permitted)"


def test_partial_folders_of_killed_generations_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = tmp_path / ".out.partial-1-deadbeef"
    script = (f"import fcntl, pathlib; d = pathlib.Path({str(dead)!r}); d.mkdir(); (d / 'x.png').write_bytes(b'1'); "
              "h = open(d / '.generating.lock', 'a'); fcntl.flock(h, fcntl.LOCK_EX)")  # then killed
    subprocess.run([sys.executable, "-c", script], check=True)
    live = tmp_path / ".out.partial-2-cafecafe"
    live.mkdir()
    other = tmp_path / ".outer.partial-3-00000000"  # another output's
    other.mkdir()
    (other / ".generating.lock").touch()
    with (live / ".generating.lock").open("a") as held:
        from adbench_hr.fileio import try_exclusive_lock

        assert try_exclusive_lock(held)
        out = S.generate_synthetic(tmp_path / "out", size=64, scale=0.1, categories=["wood_grain"], workers=1)
    assert not dead.exists() and live.exists() and other.exists()
    assert not list(out.rglob(".generating.lock"))  # the lock is not part of the dataset
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # readable as a plain mkdir leaves it, not private
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-2-cafecafe", ".outer.partial-3-00000000", "out"]


def test_one_category_may_be_named_by_a_string(tmp_path: Path) -> None:
    out = S.generate_synthetic(tmp_path / "ds", size=64, categories="pcb", counts=(1, 1, 1), workers=1,
                               progress=False)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["pcb"]


def test_images_are_written_run_length_encoded_and_masks_plainly(tmp_path: Path, monkeypatch) -> None:
    # Every run decodes every image: the run-length strategy decodes 20-25 % faster, with the same pixels
    # (test_written_files_are_the_rendered_images_and_masks); masks keep the default strategy.
    strategies: dict[str, list] = {"image": [], "mask": []}
    encode = cv2.imencode

    def spy(ext, array, params):
        kind = "mask" if set(np.unique(array)) <= {0, 255} and array.ndim == 2 else "image"
        pairs = dict(zip(params[::2], params[1::2]))
        strategies[kind].append(pairs.get(cv2.IMWRITE_PNG_STRATEGY))
        return encode(ext, array, params)

    monkeypatch.setattr(S.cv2, "imencode", spy)
    # brushed_metal is stored as grayscale, pcb as RGB.
    S.generate_synthetic(tmp_path / "ds", size=64, categories=["brushed_metal", "pcb"], counts=(1, 1, 2),
                         workers=1)
    assert len(strategies["image"]) == 8 and len(strategies["mask"]) == 4
    assert set(strategies["image"]) == {cv2.IMWRITE_PNG_STRATEGY_RLE}
    assert set(strategies["mask"]) == {None}


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def test_written_files_are_the_rendered_images_and_masks(tiny_synthetic_root: Path) -> None:
    # What the readers load (RGB, mask > 0) is what render_sample drew: channel order, and each mask beside
    # its own image (defective images are numbered per defect folder, in plan order).
    from adbench_hr.imageio import read_image, read_mask

    meta = json.loads((tiny_synthetic_root / "meta.json").read_text())
    seed, size = meta["seed"], meta["size"]
    for category, info in meta["categories"].items():
        folder = tiny_synthetic_root / category
        for split, sub, count in (("train", "train/good", info["n_train"]), ("test_good", "test/good",
                                                                                 info["n_test_good"])):
            for index in range(count):
                image, _ = S.render_sample(category, split, index, seed=seed, size=size)
                assert np.array_equal(read_image(folder / sub / f"{index:03d}.png"), _as_rgb(image)), (category, sub)
        numbers: dict[str, int] = {}
        for index, plan in enumerate(S.plan_defects(category, info["n_test_defective"], size, seed)):
            number = numbers[plan.folder] = numbers.get(plan.folder, -1) + 1
            image, mask = S.render_sample(category, "test_defective", index, seed=seed, size=size, plan=plan)
            stem = f"{number:03d}"
            assert np.array_equal(read_image(folder / "test" / plan.folder / f"{stem}.png"), _as_rgb(image))
            assert np.array_equal(read_mask(folder / "ground_truth" / plan.folder / f"{stem}_mask.png"), mask)
        assert sum(numbers.values()) + len(numbers) == info["n_test_defective"]


def test_every_nominal_image_is_its_own(tiny_synthetic_root: Path) -> None:
    # Seeded by (seed, category, split, index): no two training or good test images are the same picture,
    # so no test image was seen in training.
    for category in ("brushed_metal", "wood_grain"):
        files = sorted((tiny_synthetic_root / category).glob("t*/good/*.png"))
        assert len(files) == 6
        contents = {path.read_bytes() for path in files}
        assert len(contents) == len(files), category


def test_defect_plan_depends_on_the_seed() -> None:
    for category in S.SYNTHETIC_CATEGORIES:
        assert S.plan_defects(category, 12, seed=0) != S.plan_defects(category, 12, seed=1), category


def _damaged_copy(tiny_synthetic_root: Path, tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "synthetic"
    shutil.copytree(tiny_synthetic_root, root)
    return root, json.loads((root / "meta.json").read_text())["categories"]


def _first_defect(categories: dict, category: str) -> tuple[str, int]:
    defect, n = sorted(categories[category]["defect_types"].items())[0]
    return defect, n


@pytest.mark.parametrize("damage", ["train image", "good test image", "defective image and mask", "mask",
                                    "extra good image", "extra defect folder"])
def test_a_generated_dataset_whose_files_differ_from_its_meta_json_is_refused(
    tiny_synthetic_root: Path, tmp_path: Path, damage: str
) -> None:
    # Before: a deleted image made a smaller test set without a word (datasets check, run and score).
    root, categories = _damaged_copy(tiny_synthetic_root, tmp_path)
    category = root / "wood_grain"
    defect, n_defect = _first_defect(categories, "wood_grain")
    if damage == "train image":
        (category / "train" / "good" / "003.png").unlink()
        folder, found, recorded = "wood_grain/train/good", "3 image", 4
    elif damage == "good test image":
        (category / "test" / "good" / "000.png").unlink()
        folder, found, recorded = "wood_grain/test/good", "1 image", 2
    elif damage == "defective image and mask":
        (category / "test" / defect / "000.png").unlink()
        (category / "ground_truth" / defect / "000_mask.png").unlink()
        folder, found, recorded = f"wood_grain/test/{defect}", f"{n_defect - 1} image", n_defect
    elif damage == "mask":
        (category / "ground_truth" / defect / "000_mask.png").unlink()
        folder, found, recorded = f"wood_grain/ground_truth/{defect}", f"{n_defect - 1} mask", n_defect
    elif damage == "extra good image":
        shutil.copy(category / "test" / "good" / "000.png", category / "test" / "good" / "017.png")
        folder, found, recorded = "wood_grain/test/good", "3 image", 2
    else:
        shutil.copytree(category / "test" / defect, category / "test" / "dust")
        folder, found, recorded = "wood_grain/test/dust", f"{n_defect} image", 0
    with pytest.raises(InputError) as info:
        open_dataset("synthetic", root)
    assert info.value.path == root
    assert info.value.problem == (
        f"the synthetic dataset differs from its meta.json: {folder} holds {found} file(s), meta.json records "
        f"{recorded}; delete the folder and generate it again (adbench-hr datasets synth)"
    )


def test_a_missing_category_of_a_generated_dataset_is_refused(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    root, _ = _damaged_copy(tiny_synthetic_root, tmp_path)
    shutil.rmtree(root / "brushed_metal")
    with pytest.raises(InputError, match="brushed_metal/train/good holds 0 image file"):
        open_dataset("synthetic", root)


def test_the_check_counts_files_only_and_leaves_other_folders_alone(
    tiny_synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = _damaged_copy(tiny_synthetic_root, tmp_path)
    # Files that are not images, hidden files, and a folder without the generator's meta.json are not counted.
    (root / "wood_grain" / "test" / "good" / "Thumbs.db").write_bytes(b"x")
    (root / "wood_grain" / "test" / "good" / "._000.png").write_bytes(b"x")

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("opening a dataset reads no pixel")

    monkeypatch.setattr("adbench_hr.imageio.decode_unchanged", no_reading)
    assert open_dataset("synthetic", root).categories() == ["brushed_metal", "wood_grain"]
    (root / "wood_grain" / "test" / "good" / "000.png").unlink()
    meta = json.loads((root / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps({**meta, "generator": "someone else"}))
    assert len(open_dataset("synthetic", root).test_samples("wood_grain")) == 5  # not the generator's: not checked
    (root / "meta.json").write_text(json.dumps({**meta, "categories": {"wood_grain": {"n_train": 4}}}))
    with pytest.raises(InputError, match="meta.json of the synthetic dataset is damaged") as info:
        open_dataset("synthetic", root)
    assert info.value.path == root


def test_hidden_folders_and_files_beside_the_defect_folders_are_not_held_against_meta_json(
    tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    # The reader lists no hidden folder (a notebook's .ipynb_checkpoints) and no file as a defect type, so the
    # check must not count them either: an image there would be reported as a defect folder meta.json lacks.
    root, _ = _damaged_copy(tiny_synthetic_root, tmp_path)
    expected = [s.sample_id for s in open_dataset("synthetic", root).test_samples("wood_grain")]
    test = root / "wood_grain" / "test"
    (test / ".ipynb_checkpoints").mkdir()
    shutil.copy(test / "good" / "000.png", test / ".ipynb_checkpoints" / "000.png")
    (root / "wood_grain" / "ground_truth" / ".hidden").mkdir()
    shutil.copy(test / "good" / "000.png", root / "wood_grain" / "ground_truth" / ".hidden" / "000_mask.png")
    (test / "README.txt").write_text("notes\n")
    assert [s.sample_id for s in open_dataset("synthetic", root).test_samples("wood_grain")] == expected


def test_a_damaged_generated_dataset_stops_check_unless_read_as_a_plain_folder(
    tiny_synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adbench_hr.cli.main import main

    root, _ = _damaged_copy(tiny_synthetic_root, tmp_path)
    (root / "wood_grain" / "test" / "good" / "000.png").unlink()
    assert main(["datasets", "check", "--root", str(root)]) == 2  # guessed as synthetic from its meta.json
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {root}: the synthetic dataset differs from its meta.json")
    assert main(["datasets", "check", "--root", str(root), "--dataset", "folder", "--json"]) == 0  # as asked
    assert json.loads(capsys.readouterr().out)["wood_grain"]["n_test_good"] == 1


def test_render_sample_refuses_an_unknown_split() -> None:
    with pytest.raises(ValueError) as error:
        S.render_sample("brushed_metal", "test", 0, size=64)
    assert str(error.value) == "split must be one of ('train', 'test_good', 'test_defective'), got 'test'"


def test_render_sample_without_a_plan_draws_the_default_datasets_defective_image(tmp_path: Path) -> None:
    # plan=None is documented as the plan of the default image counts: the image and mask that a dataset generated
    # with the default number of defective images holds (the generator passes its plans explicitly).
    from adbench_hr.imageio import read_image, read_mask

    n_defective = S.DEFAULT_COUNTS[2]
    root = S.generate_synthetic(tmp_path / "ds", size=64, categories=["brushed_metal"], counts=(1, 1, n_defective),
                                workers=1)
    written = {}
    for path in sorted((root / "brushed_metal" / "test").glob("*/*.png")):
        if path.parent.name != "good":
            mask = root / "brushed_metal" / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
            written[read_image(path)[:, :, 0].tobytes()] = read_mask(mask)  # stored gray: any channel
    assert len(written) == n_defective
    for index in range(n_defective):
        image, mask = S.render_sample("brushed_metal", "test_defective", index, size=64)
        assert np.array_equal(written.pop(image.tobytes()), mask), index
    assert not written


def test_a_defect_that_cannot_be_placed_leaves_a_small_pit_in_its_place() -> None:
    # A defective image must show a defect. A "missing" part this small is placed nowhere (changed parts under
    # 16 px are dropped as slivers, on every try): a pit of about 9 px takes its place, in the mask and the image.
    plan = S.ImagePlan((S.DefectPlan("missing", 10.0),), "missing")
    image, mask = S.render_sample("pcb", "test_defective", 0, size=64, plan=plan)
    clean, _ = S.render_sample("pcb", "test_defective", 0, size=64, plan=plan, with_defects=False)
    assert len(defect_areas(mask)) == 1 and 4 <= mask.sum() <= 16
    assert np.array_equal((image != clean).any(axis=2), mask)
    assert image[mask].mean() < clean[mask].mean()  # a pit darkens


def test_only_the_first_defect_that_cannot_be_placed_is_replaced_by_a_pit() -> None:
    # The pit keeps a defective image defective; a later defect that fits nowhere is left out. Its tries draw from
    # the defect generator only after the first defect is placed, and never write: the image and mask are those
    # of the plan without it.
    alone = S.ImagePlan((S.DefectPlan("speck", 60.0),), "speck")
    plus_unplaceable = S.ImagePlan((S.DefectPlan("speck", 60.0), S.DefectPlan("missing", 10.0)), "speck")
    image, mask = S.render_sample("pcb", "test_defective", 0, size=64, plan=plus_unplaceable)
    expected_image, expected_mask = S.render_sample("pcb", "test_defective", 0, size=64, plan=alone)
    assert len(defect_areas(mask)) == 1
    assert np.array_equal(mask, expected_mask) and np.array_equal(image, expected_image)


def test_a_defect_is_not_placed_where_every_position_touches_an_earlier_one() -> None:
    # Every try collides with the defects already drawn (here: the whole image): after its tries place_defect
    # gives up, and neither the image nor the mask changes.
    from adbench_hr.datasets import _defects as D

    image = np.full((32, 32, 3), 100.0, np.float32)
    mask = np.ones((32, 32), bool)
    region = np.ones((3, 3), bool)
    placed = D.place_defect(image, mask, region, D.darken(0.35, 0.5), np.random.default_rng(0), {}, tries=5)
    assert placed is False
    assert mask.all() and np.array_equal(image, np.full((32, 32, 3), 100.0, np.float32))


def test_pcb_components_lie_wholly_on_the_board(monkeypatch: pytest.MonkeyPatch) -> None:
    # Parts, pads, outlines and labels are placed only where their whole footprint fits: none is cut off by the
    # board's edge. Every one of them is drawn as rectangles (vias, circles, may sit at the edge).
    from adbench_hr.datasets import _textures as T

    drawn = []
    rectangle = cv2.rectangle

    def recording(image, corner, opposite, *args, **kwargs):
        drawn.append((corner, opposite))
        return rectangle(image, corner, opposite, *args, **kwargs)

    monkeypatch.setattr(cv2, "rectangle", recording)
    height, width = 640, 1024
    board, _ = T.pcb_layout([0, 1, 7], (height, width))
    assert board.shape[:2] == (height, width) and len(drawn) > 50
    xs = [x for corners in drawn for x, _ in corners]
    ys = [y for corners in drawn for _, y in corners]
    assert 0 <= min(xs) and max(xs) <= width and 0 <= min(ys) and max(ys) <= height
