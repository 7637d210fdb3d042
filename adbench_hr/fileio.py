"""Atomic file writes: a finished file is either complete or absent, never half-written."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from adbench_hr.errors import InputError


def _with_umask_mode(path: Path, is_folder: bool = False) -> None:
    """Give a fresh private temporary (``mkstemp``'s 0600, ``mkdtemp``'s 0700) the mode a plain ``open()`` or
    ``mkdir()`` would give it now: it is made again under its random name with 0666/0777, so the kernel applies
    the process's current umask and the folder's default ACLs. (The umask cannot be read without setting it,
    which would race with other threads' writes, and one read at import misses a later ``os.umask``.)"""
    if is_folder:
        path.rmdir()
        os.mkdir(path, 0o777)
    else:
        path.unlink()
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))


@contextmanager
def atomic_path(path: str | Path, private_folder: bool = False, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary is named ``.<name>.<random>.part``, so leftovers of killed processes can be told apart.
    With ``private_folder`` it lies inside a fresh folder of that name instead, for writers that create
    temporaries of their own next to the file they write (safetensors does): those then go into the
    same folder, which is removed afterwards.

    With ``durable`` (the default) the content reaches the disk before the rename, and the rename before
    the function returns, so that a power loss cannot leave the new name on an empty or partial file. A
    writer of many files may pass ``False`` and call :func:`sync_files` on them once, later.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("cannot write the file: a folder of that name exists", path)
    if path.exists() and not path.is_file():  # /dev/full, /dev/stdout, a named pipe: a rename would replace it
        raise InputError("cannot write the file: it is a device, pipe or socket, not a regular file", path)
    if path.is_symlink():  # write the file the link points at; renaming onto the link would replace the link
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, no permission ...
        raise InputError(f"cannot create the folder ({exc.strerror or exc})", path.parent) from None
    prefix = _temporary_prefix(path)
    try:
        if private_folder:
            folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".part", dir=path.parent))
            temp = folder / path.name
        else:
            handle, temp_name = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=path.parent)
            os.close(handle)
            temp = Path(temp_name)
            _with_umask_mode(temp)  # the writer keeps the mode when it truncates the file
    except OSError as exc:  # a read-only folder: name the file asked for, not the temporary
        raise InputError(f"cannot write the file ({exc.strerror or exc})", path) from None
    try:
        try:
            yield temp
        except OSError as exc:  # name the file being written, not the temporary (or nothing, as numpy does)
            reason = exc.strerror or str(exc)
            if exc.errno is None:  # numpy's short writes ("65536 requested and 44988 written") carry no errno
                reason += "; is the disk full?"
            raise InputError(f"cannot write the file ({reason})", path) from None
        if private_folder:  # the writer's own temporary may have been private (safetensors renames a mkstemp file)
            # Made as a plain open() makes files, so with the umask's mode; a short name (the file's own may be
            # as long as names get) that is not the file's.
            probe = temp.parent / (".mode" if temp.name != ".mode" else ".mode2")
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            os.chmod(temp, stat.S_IMODE(probe.stat().st_mode))
        if durable:
            _sync_file(temp, path)
        try:
            os.replace(temp, path)
        except OSError as exc:  # an immutable file, another user's in a sticky folder, a mount point ...
            # The error would name the temporary, removed below: name the file asked for.
            raise InputError(f"cannot replace the file ({exc.strerror or exc})", path) from None
        if durable:
            sync_folder(path.parent)
    finally:
        if private_folder:
            shutil.rmtree(temp.parent, ignore_errors=True)
        elif temp.exists():
            temp.unlink()


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) that ``folder``'s file system accepts; 255 where it does not say."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or the name is not known there
        return 255


def _temporary_prefix(path: Path) -> str:
    """``.<name>.``, the prefix of :func:`atomic_path`'s temporaries, cut so that the temporary's name (with
    tempfile's 8 random characters and ``.part``) fits the file system: a file whose own name fits must not
    fail for its temporary's ("File name too long")."""
    room = _name_max(path.parent) - len(".") - len(".") - 8 - len(".part")
    name = path.name
    while name and len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}."


# A temporary of atomic_path: the prefix of _temporary_prefix, tempfile's 8 random characters and ".part".
_TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.part", re.DOTALL)


def temporary_target(name: str) -> str | None:
    """The name of the file whose :func:`atomic_path` temporary (file or private folder) is called ``name``
    (cut short where that file's own name was too long to fit beside the random part), else ``None``."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return match["name"] if match else None


def _sync_file(path: Path, name: Path) -> None:
    """Flush ``path``'s content to the disk; an I/O error names ``name`` (the file asked for)."""
    # POSIX flushes through any descriptor (a read-only one works for a file the umask made read-only);
    # Windows' FlushFileBuffers needs write access.
    flags = os.O_RDONLY if os.name == "posix" else os.O_RDWR
    try:
        handle = os.open(path, flags)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError as exc:
        raise InputError(f"cannot write the file ({exc.strerror or exc})", name) from None


def sync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (files created, renamed or removed in it) to the disk, where the system can.

    Best effort: Windows cannot open folders, and some file systems refuse to sync them.
    """
    if os.name != "posix":  # pragma: no cover - not POSIX
        return
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def sync_files(paths: Iterable[str | Path]) -> None:
    """Flush files written with ``atomic_path(..., durable=False)`` to the disk, and then their folders.

    One call after many writes costs little more than the last writes themselves: the system has written
    most of the earlier ones back meanwhile.
    """
    folders: dict[Path, None] = {}
    for path in paths:
        path = Path(path)
        _sync_file(path, path)
        folders[path.parent] = None
    for folder in folders:
        sync_folder(folder)


def check_link(path: Path) -> None:
    """Refuse a broken symbolic link (or a link loop): skipping it would silently leave out a file."""
    if path.is_symlink() and not path.exists():
        raise InputError(f"broken symbolic link (to {os.readlink(path)})", path)


def broken_link_note(path: Path) -> str:
    """``" (a broken symbolic link to <target>)"`` when ``path`` is one, else ``""``: for "not found" messages."""
    return f" (a broken symbolic link to {os.readlink(path)})" if path.is_symlink() and not path.exists() else ""


# Suffixes of the archives datasets and maps come in (MVTec AD's .tar.xz, VisA's .tar), for the hint to extract them.
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".zip", ".7z", ".rar")


def check_input_folder(path: Path, what: str) -> None:
    """Raise an :class:`InputError` naming ``path`` unless it is a folder, saying what it is instead.

    ``what`` names the folder in the message: ``"<what> not found"`` (also for a broken symbolic link, which
    the message names), ``"<what> is a file, not a folder"``, or, for a file named as an archive,
    ``"<what> is an archive: extract it and pass the extracted folder"``.
    """
    if path.is_dir():
        return
    if not path.exists():
        raise InputError(f"{what} not found{broken_link_note(path)}", path)
    if path.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise InputError(f"{what} is an archive: extract it and pass the extracted folder", path)
    raise InputError(f"{what} is a file, not a folder", path)


def not_a_file_problem(path: Path, what: str) -> str:
    """The problem of ``path``, expected to be a regular file but not one, with ``what`` naming it:
    ``"<what> not found"`` (naming a broken symbolic link's target), ``"<what> is a folder, not a file"`` or
    ``"<what> is not a regular file (a device, pipe or socket)"``."""
    if path.is_dir():
        return f"{what} is a folder, not a file"
    if path.exists():
        return f"{what} is not a regular file (a device, pipe or socket)"
    return f"{what} not found{broken_link_note(path)}"


def is_empty_file(path: Path) -> bool:
    """Whether ``path`` is a regular file of no bytes, as an interrupted copy, download or write leaves.

    ``False`` for anything else (a missing file, a folder, a pipe, unreadable metadata): the reader that follows
    reports those.
    """
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def refuse_empty_file(path: Path, what: str) -> None:
    """Raise ``InputError("<what> is empty (0 bytes)")`` naming ``path`` if it is a regular file of no bytes.

    Readers call this first, so that the message says so rather than quote a decoder's "cannot decode" or
    JSON's "Expecting value".
    """
    if is_empty_file(path):
        raise InputError(f"{what} is empty (0 bytes)", path)


def ensure_folder(folder: str | Path) -> Path:
    """Create an output folder (and parents), or stop with one error naming the part that is in the way."""
    folder = Path(folder)
    try:
        for part in (folder, *folder.parents):
            if part.exists() and not part.is_dir():
                raise InputError("output path is an existing file, not a folder", part)
            check_link(part)  # mkdir would say "File exists"
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # also from exists(), which raises for a name too long (Python 3.10-3.13)
        raise InputError(f"cannot create the output folder ({exc.strerror or exc})", folder) from None
    if not os.access(folder, os.W_OK):
        raise InputError("output folder is not writable", folder)
    return folder


def remove_leftover(path: Path) -> None:
    """Remove a ``.part`` temporary (file or private folder) that a killed process left behind."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (NaN is refused: use null)."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def try_exclusive_lock(handle: IO[Any] | int) -> bool:
    """Take an exclusive ``flock`` on an open file without waiting; ``False`` if another process holds one.
    ``handle`` may also be a descriptor (a folder's, opened with :func:`os.open`).

    The kernel drops the lock when the handle is closed or its process dies, however it dies. Where there
    is no ``flock`` (Windows) nothing is locked and the answer is ``True``. Other failures (a file system
    without locks) raise :class:`OSError`: each caller decides what an unknown lock state means.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def release_lock(handle: IO[Any] | int) -> None:
    """Release a lock taken by :func:`try_exclusive_lock` before the handle is closed.

    Processes forked while the lock was held (data-loader workers) share it until they exit; an explicit
    release frees it for all of them at once.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    fcntl.flock(handle, fcntl.LOCK_UN)


def remove_orphaned_folders(parent: str | Path, pattern: str, lock_name: str = "lock") -> list[Path]:
    """Delete the working folders of killed processes: those under ``parent`` matching ``pattern`` whose
    ``lock_name`` file exists and is locked by no process (see :func:`try_exclusive_lock`).

    A live process holds its folder's lock until it ends, however it ends. Folders of other users, without
    a lock file, or that vanish, cannot be read or locked meanwhile are left alone: only a folder proven
    orphaned is removed. Returns the removed folders (none where there is no ``flock``).
    """
    removed: list[Path] = []
    if os.name != "posix":
        return removed
    try:
        candidates = sorted(Path(parent).glob(pattern))
    except OSError:
        return removed
    for path in candidates:
        try:
            info = path.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            # "r+b": never creates a lock file; writable, as NFS's emulated flock needs for an exclusive lock.
            with (path / lock_name).open("r+b") as handle:
                if not try_exclusive_lock(handle):
                    continue
                shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone, not ours to read, or a file system without locks: not proven orphaned
            continue
        removed.append(path)
    return removed


def make_locked_folder(
    parent: str | Path | None, prefix: str, lock_name: str = "lock", shared: bool = False
) -> tuple[Path, IO[Any] | None]:
    """A new working folder ``<parent>/<prefix><random>`` and the open handle that holds an exclusive lock on
    its ``lock_name`` file while the caller lives (``None`` where there is no ``flock``), so that
    :func:`remove_orphaned_folders` tells it live. ``parent`` ``None`` is the system temp folder.

    The folder is private (0700) unless ``shared``: then it gets the permissions the umask gives, as a folder
    that becomes an output (renamed into place) should. The lock file gets its name only once it is locked,
    so a sweep never finds a live folder's lock free.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if shared:
        _with_umask_mode(folder, is_folder=True)
    if os.name != "posix":
        return folder, None
    pending = folder / f"{lock_name}.new"
    handle = None
    try:
        handle = pending.open("a")
        try:
            try_exclusive_lock(handle)
        except OSError:  # a file system without locks: sweeps cannot lock the folder either, so it stays
            pass
        os.rename(pending, folder / lock_name)
    except BaseException:
        if handle is not None:
            handle.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, handle
