"""The CLI's output where it is not a UTF-8 terminal: other encodings, and pipes or files that fail."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def adbench(*argv: str | os.PathLike, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m adbench_hr ARGV`` in a process of its own, with ``env`` added to the environment; output as
    bytes, as the streams wrote them."""
    return subprocess.run([sys.executable, "-m", "adbench_hr", *map(os.fsencode, argv)], capture_output=True,
                          env={**os.environ, **env}, timeout=300, check=False)


def dataset_with_category(source: Path, folder: Path, name: str) -> Path:
    """``folder`` holding the tiny dataset's ``wood_grain`` as category ``name`` (MVTec AD layout)."""
    shutil.copytree(source / "wood_grain", folder / name)
    return folder


def test_a_name_the_output_encoding_lacks_is_escaped_not_a_traceback(tiny_synthetic_root, tmp_path):
    # A CJK category on a Latin-1 output (a legacy locale, a Windows code page, PYTHONIOENCODING): the table was
    # printed up to that row, then a UnicodeEncodeError traceback, exit code 1.
    root = dataset_with_category(tiny_synthetic_root, tmp_path / "data", "木材")
    done = adbench("datasets", "check", "--root", root, "--dataset", "mvtec_ad", PYTHONIOENCODING="latin-1")
    assert (done.returncode, done.stderr) == (0, b"")
    rows = done.stdout.decode("latin-1").splitlines()
    assert rows[2].split() == ["\\u6728\\u6750", "4", "2", "4", "5", "17", "138", "162", "160x120"]


@pytest.mark.skipif(sys.platform != "linux", reason="a file name that is not UTF-8 needs a file system that stores "
                                                     "bytes")
def test_a_path_with_bytes_of_another_encoding_is_escaped_on_a_strict_utf8_output(tiny_synthetic_root, tmp_path):
    # Under a UTF-8 locale such as en_US.UTF-8 (not C.UTF-8, where Python writes such a path back as its bytes),
    # standard output is strict: a folder named in Latin-1 made `datasets check` end in a traceback.
    root = Path(os.fsdecode(bytes(tmp_path / "data") + b"\xff"))
    dataset_with_category(tiny_synthetic_root, root, "wood_grain")
    done = adbench("datasets", "check", "--root", root, "--dataset", "mvtec_ad", PYTHONIOENCODING="utf-8:strict")
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode("utf-8").splitlines()[0] == f"dataset: mvtec_ad  root: {tmp_path / 'data'}\\udcff"


def closed_pipe() -> tuple[int, int]:
    """A pipe whose reader has gone (``| head -1`` after its line): writing to the second descriptor fails with
    EPIPE. Both ends are returned for closing; the read end is closed already."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return read_end, write_end


@pytest.mark.skipif(os.name != "posix", reason="a pipe without a reader is POSIX's EPIPE")
@pytest.mark.parametrize("stderr", ["pipe without reader", "/dev/full"])
def test_an_error_that_cannot_be_printed_still_exits_2(tmp_path, stderr):
    # `adbench-hr ... 2>&1 | head -1`, `2>/dev/full`: printing the error line failed inside the error handler,
    # whose traceback (printed nowhere) made the exit code 1, as if the command had crashed.
    if stderr == "/dev/full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    _, target = closed_pipe() if stderr != "/dev/full" else (None, os.open("/dev/full", os.O_WRONLY))
    try:
        done = subprocess.run([sys.executable, "-m", "adbench_hr", "datasets", "check", "--root",
                               str(tmp_path / "missing")], stdout=subprocess.PIPE, stderr=target, timeout=300)
    finally:
        os.close(target)
    assert (done.returncode, done.stdout) == (2, b"")


@pytest.mark.skipif(os.name != "posix", reason="a pipe without a reader is POSIX's EPIPE")
def dataset_with_a_warning(source: Path, folder: Path) -> tuple[Path, Path]:
    """``folder`` holding the tiny dataset's ``wood_grain`` (MVTec AD layout) with a mask that is not read, which
    `datasets check` warns about; and that file."""
    root = dataset_with_category(source, folder, "wood_grain")
    stray = root / "wood_grain" / "ground_truth" / "good" / "000_mask.png"
    stray.parent.mkdir()
    shutil.copy(next((root / "wood_grain" / "ground_truth").rglob("*_mask.png")), stray)
    return root, stray


def test_a_warning_that_cannot_be_printed_does_not_stop_the_command(tiny_synthetic_root, tmp_path):
    # stderr's reader gone (`2>&1 | head -1` after an earlier line): the warning's BrokenPipeError stopped the
    # command where it was, here before the table, in `run` before its remaining categories. Now the warning
    # is dropped, the work goes on and the command ends as a closed output does, with 141.
    root, stray = dataset_with_a_warning(tiny_synthetic_root, tmp_path / "data")
    _, stderr = closed_pipe()
    try:
        done = subprocess.run([sys.executable, "-m", "adbench_hr", "datasets", "check", "--root", str(root),
                               "--dataset", "mvtec_ad"], stdout=subprocess.PIPE, stderr=stderr, timeout=300)
    finally:
        os.close(stderr)
    assert done.returncode == 141
    assert done.stdout.decode().splitlines()[2].split()[:2] == ["wood_grain", "4"]
    with_stderr = adbench("datasets", "check", "--root", root, "--dataset", "mvtec_ad")
    assert with_stderr.returncode == 0 and with_stderr.stderr.decode().startswith(f"warning: {stray}: ")


def test_a_utf8_name_in_a_locale_that_python_reads_as_ascii_is_said_so(tiny_synthetic_root, tmp_path):
    # LC_ALL=C with PYTHONUTF8=0 (no UTF-8 mode, no locale coercion): Python reads file names as ASCII, with the
    # bytes of "é" as lone surrogates. The error blamed the file: "not valid UTF-8 text (a file name in another
    # encoding?) ...; rename it", about a name that is valid UTF-8.
    locale = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           capture_output=True, text=True, env={**os.environ, **locale}, check=True)
    if probe.stdout.strip() == "utf-8":
        pytest.skip("Python reads file names as UTF-8 in every locale here (macOS, Windows)")
    root = dataset_with_category(tiny_synthetic_root, tmp_path / "data", "bottlé")
    (tmp_path / "maps" / "bottlé").mkdir(parents=True)
    advice = "which Python reads as ascii in this locale: run with a UTF-8 locale (LC_ALL=C.UTF-8) or PYTHONUTF8=1"
    scored = adbench("score", "--maps", tmp_path / "maps", "--root", root, "--dataset", "mvtec_ad", **locale)
    assert scored.returncode == 2
    assert scored.stderr.decode() == f"error: {root / 'bottlé'}: category name is the UTF-8 text 'bottlé', {advice}\n"

    (root / "bottlé" / "test" / "stain").rename(root / "bottlé" / "test" / "stäin")
    (root / "bottlé" / "ground_truth" / "stain").rename(root / "bottlé" / "ground_truth" / "stäin")
    checked = adbench("datasets", "check", "--root", root, "--dataset", "mvtec_ad", **locale)
    assert checked.returncode == 2
    error = checked.stderr.decode()
    assert error.startswith(f"error: {root / 'bottlé' / 'test' / 'stäin'}/") and error.count("\n") == 1
    assert error.endswith(": the sample's path in its category is the UTF-8 text 'test/stäin/000', " + advice + "\n")


def test_datasets_check_aligns_wide_and_decomposed_names_by_terminal_columns(tiny_synthetic_root, tmp_path, capsys):
    # Padded by characters, a CJK category (two columns each) or one named with a decomposed accent (as macOS
    # stores it) shifted the counts of its row against the header.
    from adbench_hr.cli.main import main
    from adbench_hr.terminal import display_width

    # "広葉樹の木材": 6 characters, 12 columns, wider than any other name in columns but not in characters.
    names = ["広葉樹の木材", "bottle\u0301", "wood_grain"]
    for name in names:
        dataset_with_category(tiny_synthetic_root, tmp_path / "data", name)
    assert main(["datasets", "check", "--root", str(tmp_path / "data"), "--dataset", "mvtec_ad"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == sorted(names)
    train_end = display_width(header[: header.index("train") + len("train")])
    for row in rows:
        category = row.split()[0]
        assert display_width(row[: row.index(category) + len(category)]) <= train_end - len("4")
        assert display_width(row[: row.index(" 4 ") + len(" 4")]) == train_end  # the count under its header
        assert display_width(row) == display_width(header)


@pytest.mark.parametrize("text, width", [("abc", 3), ("木材", 4), ("🪵", 2), ("e\u0301", 1), ("ρ—×…", 4), ("", 0),
                                         ("ｱ", 1), ("Ａ", 2), ("한국", 4),
                                         ("o\u20dd", 1),  # an enclosing mark (a circle around the "o")
                                         ("a\u200db", 2)])  # a format character (zero-width joiner)
def test_display_width_counts_terminal_columns(text, width):
    from adbench_hr.terminal import display_width, ljust, rjust

    assert display_width(text) == width
    assert display_width(ljust(text, 6)) == display_width(rjust(text, 6)) == max(6, width)
    assert ljust(text, 6).startswith(text) and rjust(text, 6).endswith(text)


@pytest.mark.skipif(os.name != "posix", reason="file names with control characters")
def test_datasets_check_shows_control_characters_of_names_escaped(tiny_synthetic_root, tmp_path, capsys):
    # `run` and `score` refuse such categories, and errors and warnings escape them; the `datasets check` table
    # (and its progress bar) sent a folder's escape sequence (here: set the window title) raw to the terminal,
    # and a newline broke the row in two.
    from adbench_hr.cli.main import main

    for name in ["evil\x1b]0;title\x07", "new\nline"]:
        dataset_with_category(tiny_synthetic_root, tmp_path / "data", name)
    assert main(["datasets", "check", "--root", str(tmp_path / "data"), "--dataset", "mvtec_ad"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    rows = out.splitlines()[2:]
    assert sorted(row.split()[0] for row in rows) == ["evil\\x1b]0;title\\x07", "new\\nline"]


def test_an_error_naming_what_a_strict_error_stream_lacks_is_escaped_not_a_traceback(tmp_path, monkeypatch):
    # Python's own stderr escapes what its encoding lacks; one that a program calling main() put in its place may
    # be strict: a CJK folder in the one-line error failed to print it, a traceback.
    from adbench_hr.cli.main import main

    stderr = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")  # errors="strict"
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["datasets", "check", "--root", str(tmp_path / "木材"), "--dataset", "mvtec_ad"]) == 2
    stderr.flush()
    error = stderr.buffer.getvalue().decode("latin-1")
    assert error == f"error: {tmp_path}/\\u6728\\u6750: dataset root not found\n"


def test_main_called_from_python_leaves_the_streams_as_it_found_them(tiny_synthetic_root, tmp_path, capsys):
    # Within main(), stdout and stderr escape what their encoding lacks; after it, a program that calls main()
    # finds them strict again, as they were.
    from adbench_hr.cli.main import main

    assert (sys.stdout.errors, sys.stderr.errors) == ("strict", "strict")  # pytest's capture: text wrappers
    root = dataset_with_category(tiny_synthetic_root, tmp_path / "data", "wood_grain")
    assert main(["datasets", "check", "--root", str(root), "--dataset", "mvtec_ad"]) == 0
    assert (sys.stdout.errors, sys.stderr.errors) == ("strict", "strict")


class _Unwritable(io.StringIO):
    """A text stream whose writes fail with ``error`` (an errno): a full disk, a pipe whose reader has gone."""

    def __init__(self, error: int) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise BrokenPipeError(self.error, "Broken pipe") if self.error == errno.EPIPE else OSError(self.error, "no")


def test_a_warning_lost_on_a_full_disk_ends_in_exit_code_2_once(tiny_synthetic_root, tmp_path, monkeypatch, capsys):
    # `2>/dev/full`: the warning cannot be written (not a broken pipe): the work goes on, the table is printed, and
    # the exit code is 2. The next main() in the same program, with a working stderr, succeeds.
    from adbench_hr.cli.main import main

    root, stray = dataset_with_a_warning(tiny_synthetic_root, tmp_path / "data")
    argv = ["datasets", "check", "--root", str(root), "--dataset", "mvtec_ad"]
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", _Unwritable(errno.ENOSPC))
        assert main(argv) == 2
    assert capsys.readouterr().out.splitlines()[2].split()[:2] == ["wood_grain", "4"]
    assert main(argv) == 0
    assert capsys.readouterr().err.startswith(f"warning: {stray}: ")


def test_a_command_that_fails_after_losing_a_warning_keeps_its_own_exit_code(tiny_synthetic_root, tmp_path,
                                                                            monkeypatch):
    # stderr's reader gone (the warning lost, which alone ends in 141), then stdout on a full disk: the command
    # failed, with exit code 2, not a closed output's 141.
    from adbench_hr.cli.main import main

    root, _ = dataset_with_a_warning(tiny_synthetic_root, tmp_path / "data")
    monkeypatch.setattr(sys, "stderr", _Unwritable(errno.EPIPE))
    monkeypatch.setattr(sys, "stdout", _Unwritable(errno.ENOSPC))
    assert main(["datasets", "check", "--root", str(root), "--dataset", "mvtec_ad"]) == 2


@pytest.mark.skipif(os.name != "posix", reason="starts Python without a standard error descriptor")
def test_without_standard_error_the_command_runs_and_its_warning_is_not_on_stdout(tiny_synthetic_root, tmp_path):
    # `adbench-hr ... 2>&-`: Python starts with sys.stderr None. The progress bar (tqdm, given no stream) failed on
    # its first write: exit code 1, nothing on stdout. The warning must not land in the JSON that stdout carries.
    root, _ = dataset_with_a_warning(tiny_synthetic_root, tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "adbench_hr", "datasets", "check", "--root", str(root), "--dataset",
                           "mvtec_ad", "--json"], stdout=subprocess.PIPE, stderr=None, timeout=300,
                          preexec_fn=lambda: os.close(2), check=False)
    assert done.returncode == 0
    assert list(json.loads(done.stdout)) == ["wood_grain"]


@pytest.mark.skipif(os.name != "posix", reason="a pipe without a reader is POSIX's EPIPE")
def test_discard_output_makes_later_writes_to_a_failed_stream_succeed():
    # After the reader has gone, each write (a later line of `run`, a warning) would fail again.
    from adbench_hr.errors import discard_output

    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = open(write_end, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        with pytest.raises(BrokenPipeError):
            stream.write("lost\n")
            stream.flush()
        discard_output(stream)
        stream.write("dropped\n")
        stream.flush()  # the null device: no error
    finally:
        stream.close()
    discard_output(None)  # no stream at all (closed when Python started): nothing to do
    discard_output(io.StringIO())  # a stream without a descriptor: nothing to do


def test_commands_overlapping_in_threads_keep_escaping_until_the_last_ends(monkeypatch):
    # main() run in two threads at once (a notebook's background jobs): the first command to end restored its
    # strict stream under the second, whose CJK category name then failed to print, a traceback.
    import threading

    from adbench_hr.cli.main import _unencodable_text_escaped

    stdout = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")  # errors="strict"
    monkeypatch.setattr(sys, "stdout", stdout)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        with _unencodable_text_escaped():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        try:
            with _unencodable_text_escaped():
                second_in.set()
                first_out.wait(10)
                sys.stdout.write("木材\n")
        except UnicodeEncodeError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == []
    stdout.flush()
    assert stdout.buffer.getvalue().decode("latin-1") == "\\u6728\\u6750\n"
    assert stdout.errors == "strict"  # restored once both have ended
