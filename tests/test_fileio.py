"""Writing outputs: errors that name the file being written, and temporaries that killed runs leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adbench_hr.errors import InputError
from adbench_hr.maps import write_map


def test_a_short_write_names_the_map_and_suggests_a_full_disk(tmp_path, monkeypatch):
    import tifffile

    def short_write(path, data, **kwargs):  # what numpy's tofile raises on a full disk, through tifffile
        Path(path).write_bytes(b"II*\0")
        raise OSError("65536 requested and 44988 written")

    monkeypatch.setattr(tifffile, "imwrite", short_write)
    target = tmp_path / "maps" / "000.tiff"
    with pytest.raises(InputError) as error:
        write_map(target, np.zeros((4, 4), np.float32))
    assert error.value.path == target
    assert "65536 requested and 44988 written; is the disk full?" in error.value.problem
    assert list(target.parent.iterdir()) == []  # the temporary is gone


def test_a_checkpoint_that_cannot_be_written_is_an_input_error(tmp_path, monkeypatch):
    import safetensors.torch
    import torch

    from adbench_hr.methods._common import write_checkpoint

    def disk_full(*args, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    target = tmp_path / "checkpoints" / "c.safetensors"
    with pytest.raises(InputError, match="cannot write the checkpoint .*No space left on device") as error:
        write_checkpoint(target, {"w": torch.zeros(2)}, {"format": "x"})
    assert error.value.path == target
    assert list(target.parent.iterdir()) == []


def test_feature_buffers_of_dead_processes_are_removed(tmp_path):
    import torch

    from adbench_hr.methods._common import HostBuffer, remove_orphaned_buffers

    # A buffer of a killed run: its lock file is there, but no process holds it any more.
    script = (f"import fcntl, pathlib; d = pathlib.Path({str(tmp_path)!r}) / 'adbench_hr_features_dead'; d.mkdir(); "
              "h = open(d / 'lock', 'a'); fcntl.flock(h, fcntl.LOCK_EX); (d / 'buffer.bin').write_bytes(b'x')")
    subprocess.run([sys.executable, "-c", script], check=True)
    orphan = tmp_path / "adbench_hr_features_dead"
    foreign = tmp_path / "adbench_hr_features_foreign"  # no lock file: not ours to judge
    foreign.mkdir()
    with HostBuffer((4, 4), torch.float16, ram_budget_bytes=0, tmp_dir=tmp_path) as live:
        assert live.location == "disk" and not orphan.exists() and foreign.exists()  # a new buffer sweeps
        (live_folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("adbench_hr_features_") and p != foreign]
        assert remove_orphaned_buffers(tmp_path) == []  # the live buffer's lock is held: another run keeps off
        assert live_folder.exists()
    assert not live_folder.exists()


def test_an_exclusive_lock_keeps_a_second_holder_off_until_released(tmp_path):
    from adbench_hr.fileio import release_lock, try_exclusive_lock

    path = tmp_path / "a.lock"
    # flock belongs to the open file, so two opens in one process contend as two processes would.
    with path.open("a") as first, path.open("a") as second:
        assert try_exclusive_lock(first)
        assert not try_exclusive_lock(second)
        release_lock(first)
        assert try_exclusive_lock(second)
        assert not try_exclusive_lock(first)


def test_a_buffer_whose_lock_state_is_unknown_is_never_swept(tmp_path, monkeypatch):
    import errno
    import fcntl

    from adbench_hr.fileio import try_exclusive_lock
    from adbench_hr.methods._common import remove_orphaned_buffers

    orphan = tmp_path / "adbench_hr_features_x"
    orphan.mkdir()
    (orphan / "lock").touch()

    def no_locks(handle, operation):  # a network file system without lock support
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with (orphan / "lock").open("a") as handle, pytest.raises(OSError, match="No locks"):
        try_exclusive_lock(handle)  # the run's category lock reports it rather than running unlocked
    assert remove_orphaned_buffers(tmp_path) == []
    assert orphan.exists()


def test_writing_through_a_symlink_keeps_the_link_and_devices_are_refused(tmp_path):
    from adbench_hr.fileio import write_text_atomic

    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    import os

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    stdout = tmp_path / "stdout"
    stdout.symlink_to(pipe)  # as /dev/stdout links to the terminal or a pipe
    for special in (pipe, stdout):
        with pytest.raises(InputError, match="a device, pipe or socket, not a regular file") as error:
            write_text_atomic(special, "x")
        assert error.value.path == special
    assert pipe.is_fifo() and stdout.is_symlink()


def test_a_writer_error_with_an_errno_is_its_own_reason_without_the_full_disk_hint(tmp_path):
    # Only an error without errno (numpy's short write) gets "is the disk full?"; one the system names (here EIO)
    # says what it is, naming the file asked for, and the temporary is removed.
    import errno

    from adbench_hr.fileio import atomic_path

    target = tmp_path / "m.tiff"
    with pytest.raises(InputError) as error, atomic_path(target) as temp:
        temp.write_bytes(b"partial")
        raise OSError(errno.EIO, "Input/output error", str(temp))
    assert (error.value.path, error.value.problem) == (target, "cannot write the file (Input/output error)")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_is_named_not_the_temporary(tmp_path, monkeypatch):
    import errno
    import tempfile

    from adbench_hr.fileio import write_text_atomic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".r.json.abc.part"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(InputError) as error:
        write_text_atomic(tmp_path / "r.json", "x")
    assert error.value.path == tmp_path / "r.json"
    assert error.value.problem == "cannot write the file (Read-only file system)"


def test_the_sweep_removes_only_orphans_it_owns_and_creates_nothing(tmp_path, monkeypatch):
    import os

    from adbench_hr.fileio import remove_orphaned_folders

    def folder(name: str, lock: bool = True) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "data.bin").write_bytes(b"x")
        if lock:
            (path / "lock").touch()
        return path

    orphan, unlocked, foreign = folder("work_a"), folder("work_b", lock=False), folder("work_c")
    owners = {foreign: os.getuid() + 1}  # another user's: not ours to judge (its lock may be unreadable)
    real_lstat = Path.lstat

    def lstat(self):
        info = real_lstat(self)
        if self not in owners:
            return info
        fields = list(info)
        fields[4] = owners[self]  # st_uid
        return os.stat_result(fields)

    monkeypatch.setattr(Path, "lstat", lstat)
    (tmp_path / "work_file").write_text("")  # a file, not a folder
    with (folder("work_live") / "lock").open("a") as held:
        from adbench_hr.fileio import try_exclusive_lock

        assert try_exclusive_lock(held)
        assert remove_orphaned_folders(tmp_path, "work_*") == [orphan]
    assert not orphan.exists() and foreign.exists() and (tmp_path / "work_live").exists()
    assert sorted(p.name for p in unlocked.iterdir()) == ["data.bin"]  # no lock file made


def test_a_locked_folder_is_live_until_its_handle_closes_and_a_failed_one_is_removed(tmp_path, monkeypatch):
    import os

    from adbench_hr.fileio import make_locked_folder, remove_orphaned_folders

    folder, handle = make_locked_folder(tmp_path, "work_", "lock")
    assert folder.parent == tmp_path and folder.name.startswith("work_")
    assert sorted(p.name for p in folder.iterdir()) == ["lock"]  # named only once locked
    assert remove_orphaned_folders(tmp_path, "work_*") == []
    handle.close()  # as when its process dies
    assert remove_orphaned_folders(tmp_path, "work_*") == [folder] and not folder.exists()

    def failing_rename(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space"):
        make_locked_folder(tmp_path, "work_", "lock")
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_that_cannot_be_created_removes_the_new_folder_and_raises_its_error(tmp_path, monkeypatch):
    # Opening the lock file fails (no descriptor left, a full disk): there is no handle to close, the folder just
    # made is removed and the open's own error is raised.
    import errno

    from adbench_hr.fileio import make_locked_folder

    def no_descriptors(self, *args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files", str(self))

    monkeypatch.setattr(Path, "open", no_descriptors)
    with pytest.raises(OSError) as error:
        make_locked_folder(tmp_path, "work_", "lock")
    assert error.value.errno == errno.EMFILE and Path(error.value.filename).name == "lock.new"
    assert list(tmp_path.iterdir()) == []


def test_a_rewrite_replaces_the_file_and_never_writes_into_the_old_one(tmp_path):
    import json

    from adbench_hr.fileio import write_json_atomic

    target = tmp_path / "c.json"
    write_json_atomic(target, {"old": 1})
    with target.open() as reader:  # e.g. `leaderboard` reading a result that `run` rewrites meanwhile
        write_json_atomic(target, {"new": 2})
        assert json.load(reader) == {"old": 1}  # whole, not truncated nor mixed with the new text
    assert json.loads(target.read_text()) == {"new": 2}


def test_json_with_nan_is_refused_and_leaves_no_file(tmp_path):
    from adbench_hr.fileio import write_json_atomic

    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json_atomic(tmp_path / "c.json", {"metrics": {"i_auroc": float("nan")}})  # strict JSON: null
    assert list(tmp_path.iterdir()) == []


def _record_disk_calls(monkeypatch) -> list[tuple[str, str]]:
    """Log ``os.fsync`` (of the path the descriptor names) and ``os.replace`` calls, in order."""
    import os

    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through /proc (Linux)")
def test_a_durable_write_flushes_the_content_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    from adbench_hr.fileio import write_text_atomic

    calls = _record_disk_calls(monkeypatch)
    target = tmp_path / "results" / "c.json"
    write_text_atomic(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert [kind for kind, _ in calls] == ["fsync", "replace", "fsync"]
    temp = Path(calls[0][1])
    assert temp.parent == target.parent and temp.name.startswith(".c.json.") and temp.name.endswith(".part")
    assert calls[1:] == [("replace", str(target)), ("fsync", str(target.parent))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through /proc (Linux)")
def test_sync_files_flushes_each_file_then_each_folder_once(tmp_path, monkeypatch):
    from adbench_hr.fileio import sync_files

    paths = [tmp_path / "a" / "1.tiff", tmp_path / "a" / "2.tiff", tmp_path / "b" / "3.tiff"]
    for index, path in enumerate(paths):
        write_map(path, np.full((2, 3), index, np.float32), durable=False)
    calls = _record_disk_calls(monkeypatch)
    assert calls == []  # nothing flushed yet
    sync_files(paths)
    folders = [tmp_path / "a", tmp_path / "b"]
    assert calls == [("fsync", str(p)) for p in [*paths, *folders]]


def test_a_failed_flush_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    import errno
    import os

    from adbench_hr.fileio import write_text_atomic

    target = tmp_path / "c.json"
    target.write_text("old\n")

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(InputError, match=r"cannot write the file \(Input/output error\)") as error:
        write_text_atomic(target, "new\n")
    assert error.value.path == target
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["c.json"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through /proc (Linux)")
def test_a_folder_that_cannot_be_flushed_is_not_an_error(tmp_path, monkeypatch):
    # Some file systems refuse to sync folders (EINVAL): the file itself was flushed, so the write stands.
    import errno
    import os

    from adbench_hr.fileio import sync_folder, write_text_atomic

    real_fsync = os.fsync

    def fsync(fd):
        if Path(f"/proc/self/fd/{fd}").is_dir():
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_text_atomic(tmp_path / "c.json", "{}\n")
    assert (tmp_path / "c.json").read_text() == "{}\n"
    sync_folder(tmp_path / "missing")  # nothing to flush: no error either


def test_a_file_that_cannot_be_replaced_is_named_not_the_temporary(tmp_path, monkeypatch):
    # os.replace fails on an immutable file (chattr +i), another user's file in a sticky folder (EPERM) or a
    # file that is a mount point (EBUSY): the error named the temporary, which no longer exists.
    import errno
    import os

    from adbench_hr.fileio import write_text_atomic

    target = tmp_path / "r.json"
    target.write_text("old\n")

    def refused(src, dst, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", str(src), str(dst))

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(InputError) as error:
        write_text_atomic(target, "new\n")
    assert error.value.path == target
    assert error.value.problem == "cannot replace the file (Operation not permitted)"
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("private_folder", [False, True])
def test_a_file_whose_name_fits_is_written_even_if_a_temporary_of_that_name_would_not(tmp_path, private_folder):
    # The map of a test image named with 245 characters has a valid name (250 characters), but
    # ".<name>.<8 random>.part" has 265: the write failed with "File name too long" for a file that could exist.
    import os

    from adbench_hr.fileio import atomic_path

    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    target = tmp_path / ("\u00e9" * ((name_max - 5) // 2) + "x" * ((name_max - 5) % 2) + ".tiff")  # 2 bytes each
    assert len(os.fsencode(target.name)) == name_max
    with atomic_path(target, private_folder=private_folder) as temp:
        assert temp.parent == tmp_path or temp.parent.parent == tmp_path
        temp.write_bytes(b"map")
    assert target.read_bytes() == b"map"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("private_folder", [False, True])
def test_outputs_follow_the_umask_set_after_import(tmp_path, private_folder):
    # A program that imports adbench_hr and then sets its umask (a daemon, a notebook) gets outputs with that
    # umask's mode, as a plain open() and mkdir() would give them, not the mode of the umask at import time.
    import os
    import stat

    from adbench_hr.fileio import atomic_path, make_locked_folder

    before = os.umask(0o022)
    os.umask(before)
    mask = 0o077 if before != 0o077 else 0o027  # a umask other than the one the package was imported under
    os.umask(mask)
    try:
        with atomic_path(tmp_path / "out.txt", private_folder=private_folder) as temp:
            temp.write_text("done\n", encoding="utf-8")
        folder, handle = make_locked_folder(tmp_path, "work-", shared=True)
    finally:
        os.umask(before)
    if handle is not None:
        handle.close()
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask


def test_not_a_file_problem_says_what_is_there(tmp_path) -> None:
    from adbench_hr.fileio import not_a_file_problem

    assert not_a_file_problem(tmp_path / "none.png", "mask") == "mask not found"
    (tmp_path / "dir.png").mkdir()
    assert not_a_file_problem(tmp_path / "dir.png", "mask") == "mask is a folder, not a file"
    (tmp_path / "link.png").symlink_to("gone.png")
    assert not_a_file_problem(tmp_path / "link.png", "mask") == "mask not found (a broken symbolic link to gone.png)"
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        assert not_a_file_problem(tmp_path / "pipe.png", "mask") == (
            "mask is not a regular file (a device, pipe or socket)"
        )


def _readers():
    # Imported here, not at collection: the weight and checkpoint readers bring torch.
    from adbench_hr import imageio, maps, results
    from adbench_hr.datasets import open_dataset
    from adbench_hr.methods import _backbone, base

    return {
        "read_image": ("000.png", imageio.read_image, "file"),
        "read_mask": ("000.tiff", imageio.read_mask, "file"),
        "image_size": ("000.jpg", imageio.image_size, "file"),
        "map_png": ("000.png", maps.read_map, "anomaly map file"),
        "map_npy": ("000.npy", maps.read_map, "anomaly map file"),
        "map_tiff": ("000.tiff", maps.read_map, "anomaly map file"),
        "result": ("r.json", results.load_result, "result file"),
        "weights_safetensors": ("w.safetensors", _backbone.read_state_dict, "weight file"),
        "weights_torch": ("w.pth", _backbone.read_state_dict, "weight file"),
        "checkpoint": ("c.safetensors", base.AnomalyMethod.load, "checkpoint"),
        "image_scores": ("scores.csv", lambda path: maps.read_image_scores(path, "c"), "image score file"),
        "visa_split": (
            "split_csv/1cls.csv", lambda path: open_dataset("visa", path.parent.parent), "split_csv/1cls.csv"
        ),
    }


_READER_NAMES = (
    "read_image", "read_mask", "image_size", "map_png", "map_npy", "map_tiff", "result", "weights_safetensors",
    "weights_torch", "checkpoint", "image_scores", "visa_split",
)


def test_every_reader_is_in_the_empty_file_test():
    assert tuple(_readers()) == _READER_NAMES


@pytest.mark.parametrize("reader_name", _READER_NAMES)
def test_an_empty_file_is_called_empty_by_every_reader(tmp_path, reader_name):
    # An interrupted copy or download leaves 0-byte files; each reader said what its decoder made of no bytes
    # ("unreadable or corrupt file", "Expecting value", "header too small", "EOFError").
    name, reader, what = _readers()[reader_name]
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"")
    with pytest.raises(InputError) as error:
        reader(path)
    assert str(error.value) == f"{path}: {what} is empty (0 bytes)"
    path.write_bytes(b"\0")  # one byte: the reader's own words again
    with pytest.raises(InputError) as error:
        reader(path)
    assert error.value.path == path and "empty" not in error.value.problem


def test_an_empty_result_file_is_refused_when_named_and_skipped_in_a_folder(tmp_path, capsys):
    from adbench_hr.cli.main import main

    results = tmp_path / "results"
    results.mkdir()
    (results / "r.json").write_bytes(b"")
    assert main(["leaderboard", str(results / "r.json"), "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err == f"error: {results / 'r.json'}: result file is empty (0 bytes)\n"
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"warning: {results / 'r.json'}: skipped, empty file (0 bytes)"
    assert len(err) == 2 and err[1].startswith("error: no result files")


@pytest.mark.parametrize("name", ["mvtec_anomaly_detection.tar.xz", "VisA_20220922.tar", "maps.TGZ", "maps.txz",
                                  "maps.tar.bz2", "maps.tbz2", "maps.tar.gz", "maps.zip", "maps.7z", "maps.rar"])
def test_an_archive_given_as_a_folder_is_told_to_be_extracted(tmp_path, name) -> None:
    from adbench_hr.fileio import check_input_folder

    (tmp_path / name).write_bytes(b"\0")
    with pytest.raises(InputError) as error:
        check_input_folder(tmp_path / name, "dataset root")
    assert error.value.path == tmp_path / name
    assert error.value.problem == "dataset root is an archive: extract it and pass the extracted folder"


def test_check_input_folder_calls_what_is_there_by_its_kind(tmp_path) -> None:
    from adbench_hr.fileio import check_input_folder

    def problem(path: Path) -> str:
        with pytest.raises(InputError) as error:
            check_input_folder(path, "maps folder")
        return error.value.problem

    check_input_folder(tmp_path, "maps folder")
    (tmp_path / "maps.xz").write_bytes(b"\0")  # compressed, but not an archive of a folder
    assert problem(tmp_path / "maps.xz") == "maps folder is a file, not a folder"
    assert problem(tmp_path / "none") == "maps folder not found"
    if hasattr(os, "mkfifo"):  # there, so not "not found"
        os.mkfifo(tmp_path / "pipe")
        assert problem(tmp_path / "pipe") == "maps folder is a file, not a folder"


def test_only_a_regular_file_of_no_bytes_is_empty_and_only_a_dangling_link_is_broken(tmp_path) -> None:
    from adbench_hr.fileio import broken_link_note, is_empty_file

    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "one").write_bytes(b"\0")
    (tmp_path / "folder").mkdir()
    assert is_empty_file(tmp_path / "empty") and not is_empty_file(tmp_path / "one")
    assert not is_empty_file(tmp_path / "folder") and not is_empty_file(tmp_path / "none")
    if hasattr(os, "mkfifo"):  # 0 bytes by stat, but a pipe: its reader says what it is
        os.mkfifo(tmp_path / "pipe")
        assert not is_empty_file(tmp_path / "pipe")
    (tmp_path / "good").symlink_to("one")
    (tmp_path / "bad").symlink_to("gone")
    assert broken_link_note(tmp_path / "good") == "" and broken_link_note(tmp_path / "none") == ""
    assert broken_link_note(tmp_path / "bad") == " (a broken symbolic link to gone)"


def test_a_name_too_long_to_look_up_is_left_to_the_reader_which_names_it(tmp_path) -> None:
    # is_empty_file answers False where a file's metadata cannot be read (a name beyond the file system's 255
    # bytes: stat fails with ENAMETOOLONG), so that the reader reports the problem on one line, naming the file.
    from adbench_hr.fileio import is_empty_file
    from adbench_hr.maps import read_map

    path = tmp_path / ("m" * 300 + ".tiff")
    assert is_empty_file(path) is False
    with pytest.raises(InputError) as error:
        read_map(path)
    assert error.value.path == path
    assert error.value.problem == "cannot read the anomaly map (File name too long)"


def test_an_output_folder_that_cannot_be_created_is_one_error_naming_it(tmp_path) -> None:
    # Before: a name beyond the file system's limit ended in a bare OSError from the look for a file in the way
    # (Path.exists raises it, on Python 3.11 at least), not the error ensure_folder promises.
    from adbench_hr.fileio import ensure_folder

    folder = tmp_path / ("o" * 300)
    with pytest.raises(InputError) as error:
        ensure_folder(folder)
    assert error.value.path == folder
    assert error.value.problem == "cannot create the output folder (File name too long)"
    assert ensure_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InputError) as error:  # a file in the way is still named as such
        ensure_folder(tmp_path / "file" / "run")
    assert error.value.path == tmp_path / "file"
    assert error.value.problem == "output path is an existing file, not a folder"
    for link in (tmp_path / "gone", tmp_path / "gone_parent"):
        link.symlink_to(tmp_path / "nowhere")
    for folder in (tmp_path / "gone", tmp_path / "gone_parent" / "run"):
        with pytest.raises(InputError) as error:  # not mkdir's "File exists"
            ensure_folder(folder)
        link = folder if folder.name == "gone" else folder.parent
        assert (error.value.path, error.value.problem) == (link, f"broken symbolic link (to {tmp_path / 'nowhere'})")
