"""The CLI entry point: one-line errors with exit code 2, no traceback, and a working console script."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from adbench_hr.cli.main import main


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["score", "--bogus"], "No such option"),
        (["score", "--maps", "x", "--root", "y", "--category", "c", "--dataset", "nope"], "nope"),
        (["no-such-command"], "No such command"),
        (["run", "--method", "ts-mlp", "-o", "novalue"], "KEY=VALUE"),
    ],
)
def test_usage_errors_are_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err


@pytest.mark.parametrize(
    "argv, option",
    [
        (["run", "--method", "ts-mlp", "--out", ""], "--out"),
        (["run", "--method", "ts-mlp", "--root", ""], "--root"),
        (["score", "--maps", "", "--root", "data"], "--maps"),
        (["score", "--maps", "maps", "--root", ""], "--root"),
        (["score", "--maps", "maps", "--root", "data", "--out", ""], "--out"),
        (["datasets", "check", "--root", ""], "--root"),
        (["datasets", "synth", "--out", ""], "--out"),
        (["leaderboard", "", "--out", "board"], "RESULTS"),
        (["leaderboard", "results", "--out", ""], "--out"),
    ],
)
def test_an_empty_path_is_an_error_not_the_working_folder(argv, option, tmp_path, monkeypatch, capsys):
    # `--out "$DIR"` with DIR unset: before, the working folder was read, or written into, without a word.
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: Invalid value for '{option}{'...' * (option == 'RESULTS')}': the path is empty (an unset " \
                  "variable?); pass . for the current folder\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("launcher", ["console script", "module"])
def test_console_script_reports_errors_with_exit_code_2(tmp_path, launcher):
    if launcher == "console script":
        # What `pip install -e .` (README) installs: in this interpreter's scripts folder, else on the PATH.
        installed = Path(sysconfig.get_path("scripts")) / "adbench-hr"
        script = str(installed) if installed.is_file() else shutil.which("adbench-hr")
        if script is None:
            pytest.skip("the adbench-hr console script is not installed (pip install -e .)")
        command = [script]
    else:
        command = [sys.executable, "-m", "adbench_hr.cli.main"]
    missing = tmp_path / "missing"
    process = subprocess.run(
        [*command, "score", "--maps", str(missing), "--root", str(tmp_path), "--category", "c", "--dataset", "folder"],
        capture_output=True, text=True, check=False,
    )
    assert process.returncode == 2
    assert process.stderr.strip().count("\n") == 0 and "Traceback" not in process.stderr
    assert process.stderr.startswith(f"error: {missing}: maps folder not found")


def test_os_errors_and_multi_line_messages_end_in_one_line(monkeypatch, capsys):
    from adbench_hr.cli import main as cli_main
    from adbench_hr.errors import InputError

    def fail_with(exc):
        def run(*args, **kwargs):
            raise exc
        return run

    monkeypatch.setattr(cli_main.cli, "invoke", fail_with(IsADirectoryError(21, "Is a directory", "/out/x.json")))
    assert main(["score"]) == 2
    assert capsys.readouterr().err == "error: /out/x.json: Is a directory\n"
    multi_line = InputError("cannot decode (library says:\n  line two)", "m.png")
    monkeypatch.setattr(cli_main.cli, "invoke", fail_with(multi_line))
    assert main(["score"]) == 2
    assert capsys.readouterr().err == "error: m.png: cannot decode (library says: line two)\n"


def test_a_broken_pipe_on_a_path_the_user_named_is_an_error_unlike_a_closed_output(monkeypatch, capsys):
    # Only standard output's reader going away (`| head -1`) ends silently with 141; a pipe written by name (a
    # FIFO given as --out) whose reader went away is that path failing: one line naming it and exit code 2.
    import errno

    from adbench_hr.cli import main as cli_main

    def fail(*args, **kwargs):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe", "/out/board.fifo")

    monkeypatch.setattr(cli_main.cli, "invoke", fail)
    assert main(["score"]) == 2
    assert capsys.readouterr().err == "error: /out/board.fifo: Broken pipe\n"


def test_help_version_bare_command_and_ctrl_c(monkeypatch, capsys):
    from adbench_hr import __version__
    from adbench_hr._source import source_fingerprint
    from adbench_hr.cli import main as cli_main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"adbench-hr, version {__version__} (source fingerprint {source_fingerprint()})\n"
    assert main(["score", "--help"]) == 0 and "--maps" in capsys.readouterr().out
    assert main([]) == 0 and "Commands:" in capsys.readouterr().out

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main.cli, "invoke", interrupted)
    assert main(["score"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"  # no blank line before it


def test_every_command_offers_the_dataset_names_of_the_readers():
    from adbench_hr.cli import datasets_cmd, run_cmd, score_cmd
    from adbench_hr.datasets import DATASET_NAMES

    for command in (run_cmd.run, score_cmd.score, datasets_cmd.check):
        option = next(param for param in command.params if "--dataset" in param.opts)
        assert tuple(option.type.choices) == DATASET_NAMES, command.name


def test_metrics_path_never_imports_torch():
    code = (
        "import sys; from adbench_hr.cli.main import main; "
        "import adbench_hr.metrics, adbench_hr.scoring, adbench_hr.results; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_metrics_engine_imports_only_numpy_and_opencv():
    # Its promise (adbench_hr/metrics/__init__.py): usable, and quick to import, without the runner's libraries.
    code = (
        "import sys, adbench_hr.metrics; "
        "extra = {'torch', 'timm', 'torchvision', 'tqdm', 'pandas', 'matplotlib', 'click'} & set(sys.modules); "
        "assert not extra, sorted(extra)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Run in a child interpreter where importing torch (or timm, torchvision) fails: `score` and `leaderboard`,
# which only read maps and results, must not need the model zoo's libraries while they work, not only at import.
_WITHOUT_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "timm", "torchvision"):
            raise ImportError(f"{name} imported by a command that must not need it")

sys.meta_path.insert(0, NoTorch())
from adbench_hr.cli.main import main

sys.exit(main(sys.argv[1:]))
"""


def test_score_and_leaderboard_run_without_importing_torch(tmp_path):
    import cv2
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    root, maps = tmp_path / "data", tmp_path / "maps"
    for stem in ("000", "001"):
        for folder in ("widget/train/good", "widget/test/good", "widget/test/crack", "widget/ground_truth/crack"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for folder in ("train/good", "test/good", "test/crack"):
            cv2.imwrite(str(root / "widget" / folder / f"{stem}.png"), rng.integers(0, 255, (32, 40, 3), np.uint8))
        mask = np.zeros((32, 40), np.uint8)
        mask[4:9, 5:12] = 255
        cv2.imwrite(str(root / "widget/ground_truth/crack" / f"{stem}_mask.png"), mask)
        for defect in ("good", "crack"):
            (maps / "widget/test" / defect).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(maps / "widget/test" / defect / f"{stem}.tiff", rng.random((32, 40)).astype(np.float32))
    commands = [
        ["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--out", str(tmp_path / "full/"),
         "--quiet"],
        ["score", "--maps", str(maps), "--root", str(root), "--dataset", "folder", "--out", str(tmp_path / "low/"),
         "--quiet", "--protocol", "lowres", "--eval-size", "16"],
        ["leaderboard", str(tmp_path / "full"), str(tmp_path / "low"), "--out", str(tmp_path / "board")],
    ]
    for argv in commands:
        done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, *argv], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "board" / "qualitative_smallest_defects.png").is_file()


def test_run_without_torch_says_why_the_built_in_methods_are_missing(tmp_path):
    # A broken install (torch missing or failing to load): one line that names the import failure, not a
    # traceback, and not a bare "unknown method" as if ts-mlp did not exist.
    argv = ["run", "--method", "ts-mlp", "--weights", "random", "--out", str(tmp_path / "runs")]
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, *argv], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "unknown method 'ts-mlp'" in lines[0]
    assert "could not be imported" in lines[0] and "torch" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_sigterm_swallowed_by_a_library_still_exits_143(monkeypatch, capsys):
    import os
    import signal

    import click

    from adbench_hr.cli import main as cli_main

    def command_whose_library_swallows_everything(argv):
        try:  # as OpenCV's loader does around an optional import
            os.kill(os.getpid(), signal.SIGTERM)
        except:  # noqa: E722
            pass
        return 0

    monkeypatch.setattr(cli_main, "_main", command_whose_library_swallows_everything)
    assert main([]) == 143
    assert capsys.readouterr().err == "error: terminated\n"

    def swallowed_then_failed(argv):
        command_whose_library_swallows_everything(argv)
        click.echo("error: x.png: unreadable", err=True)
        return 2

    monkeypatch.setattr(cli_main, "_main", swallowed_then_failed)
    assert main([]) == 143
    assert capsys.readouterr().err == "error: x.png: unreadable\n"  # still one line
    monkeypatch.undo()
    assert main(["--version"]) == 0  # the flag does not outlive the call


def test_method_options_are_json_and_a_broken_json_value_is_an_error():
    from adbench_hr.cli.run_cmd import parse_method_options
    from adbench_hr.errors import InputError

    assert parse_method_options(("epochs=3", "lr=1e-4", "layers=[2, 4]", "teacher=vit_s", "tmp-dir=/x", 'a="b"')) == {
        "epochs": 3, "lr": 1e-4, "layers": [2, 4], "teacher": "vit_s", "tmp_dir": "/x", "a": "b"}
    for broken, where in (("layers=[2,", 4), ('teacher_kwargs={"depth":', 10), ('name="open', 1)):
        with pytest.raises(InputError, match=f"method option .*: invalid JSON .* at column {where}\\)"):
            parse_method_options((broken,))
    with pytest.raises(InputError, match="'epochs' is not KEY=VALUE"):
        parse_method_options(("epochs",))


def test_ctrl_c_during_the_shutdown_of_a_finished_command_is_ignored():
    # torch's exit handlers run for up to a second after the command; a Ctrl-C then must not add a traceback.
    script = ("import atexit, os, signal, sys; atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT)); "
              "sys.argv = ['adbench-hr', '--version']; from adbench_hr.__main__ import entry; entry()")
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert process.returncode == 0 and process.stderr == "", process.stderr
    assert process.stdout.strip()


def test_ctrl_c_while_the_command_loads_is_one_line_and_exit_130(monkeypatch, capsys):
    import importlib.abc

    from adbench_hr.__main__ import entry

    class InterruptedImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "adbench_hr.cli.main":
                raise KeyboardInterrupt  # as Ctrl-C lands while click or numpy load
            return None

    monkeypatch.delitem(sys.modules, "adbench_hr.cli.main", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as exit_info:
        entry()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_the_package_runs_as_a_module():
    process = subprocess.run([sys.executable, "-m", "adbench_hr", "--version"], capture_output=True, text=True,
                             check=False, timeout=120)
    assert process.returncode == 0 and process.stdout.startswith("adbench-hr, version ")


# Installed through sitecustomize in a child interpreter: Ctrl-C lands in code compiled from a string (as in
# the methods dataclasses generate while modules load) when `module` is imported from `package`.
_INTERRUPT_IN_EXEC = '''
import builtins
real_import = builtins.__import__

def interrupting_import(name, globals=None, locals=None, fromlist=(), level=0):
    if name == {package!r} and {module!r} in (fromlist or ()):
        builtins.__import__ = real_import
        exec("raise KeyboardInterrupt")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = interrupting_import
'''


@pytest.mark.parametrize("package, module", [
    ("adbench_hr.cli", "datasets_cmd"),  # inside main(): the command's modules load
    ("adbench_hr.cli.main", "entry"),  # before it: the entry point loads the CLI
])
def test_python_m_exits_130_after_an_interrupt_in_code_run_from_a_string(tmp_path, package, module):
    # CPython remembers such an interrupt and, under `python -m`, kills itself with SIGINT on exit even
    # though the command handled it: the exit code would be -2 instead of 130.
    (tmp_path / "sitecustomize.py").write_text(_INTERRUPT_IN_EXEC.format(package=package, module=module))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    process = subprocess.run([sys.executable, "-m", "adbench_hr", "datasets", "check", "--root", str(tmp_path)],
                             capture_output=True, text=True, check=False, timeout=120, env=env)
    assert (process.returncode, process.stderr) == (130, "error: interrupted\n")


def test_main_called_from_python_leaves_the_opencv_log_level_as_it_found_it(tmp_path, capsys):
    # The command silences OpenCV's own log (its errors name the file, on one line); a notebook or a test that
    # calls main() keeps its OpenCV log level afterwards, also after a command that failed.
    import cv2

    logging = getattr(cv2.utils, "logging", None)
    get_level = logging.getLogLevel if logging is not None else cv2.getLogLevel  # OpenCV < 4.13: top level
    set_level = logging.setLogLevel if logging is not None else cv2.setLogLevel
    before = get_level()
    try:
        set_level(3)  # LOG_LEVEL_WARNING
        assert main(["datasets", "check", "--root", str(tmp_path / "missing")]) == 2
        assert get_level() == 3
        assert main(["--version"]) == 0
        assert get_level() == 3
    finally:
        set_level(before)


def test_main_silences_an_opencv_without_cv2_utils_logging_through_the_top_level_pair(tmp_path, monkeypatch):
    # OpenCV 4.8 to 4.12 have no cv2.utils.logging, only cv2.getLogLevel / cv2.setLogLevel.
    import types

    import cv2

    levels = [3]
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace(), raising=False)
    monkeypatch.setattr(cv2, "getLogLevel", lambda: levels[-1], raising=False)
    monkeypatch.setattr(cv2, "setLogLevel", levels.append, raising=False)
    assert main(["datasets", "check", "--root", str(tmp_path / "missing")]) == 2
    assert levels == [3, 0, 3]  # silent while the command ran, then as found


@pytest.mark.skipif(os.name != "posix", reason="a pipe without a reader is POSIX's EPIPE")
def test_output_into_a_pipe_whose_reader_has_gone_is_no_error(tmp_path):
    # `adbench-hr --help | head -1`, `adbench-hr leaderboard ... | head`: "error: Broken pipe" and exit code 2,
    # as if the input were bad. Now silent, with the code the shell gives a program that SIGPIPE ends.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "adbench_hr", "--help"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("signame, message, code", [("SIGINT", "error: interrupted", 130),
                                                     ("SIGTERM", "error: terminated", 143)])
def test_a_second_interrupt_while_the_first_is_reported_adds_no_traceback(signame, message, code):
    # Ctrl-C pressed twice (or `kill` sent twice) in quick succession: the second lands while the first one's
    # line is printed, or after it, while the process ends (torch's exit handlers take up to a second). Run in
    # a process of its own: an interrupt escaping here would stop the test session.
    script = f"""
import atexit, os, signal, sys
import click
import adbench_hr.cli.main as cli_main

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever the test runner set

def interrupted_while_loading():
    os.kill(os.getpid(), signal.{signame})  # the first interrupt
    signal.getsignal(signal.{signame})  # the handler runs at the next instruction

def echo(message, *args, **kwargs):
    if message == {message!r}:
        os.kill(os.getpid(), signal.{signame})  # the second, while the first is reported
    sys.stderr.write(message + "\\n")

cli_main._attach_commands = interrupted_while_loading
click.echo = echo
atexit.register(lambda: os.kill(os.getpid(), signal.{signame}))  # the last, as the process ends
sys.argv = ["adbench-hr", "--version"]
from adbench_hr.__main__ import entry
entry()
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert (process.returncode, process.stderr) == (code, message + "\n")


def test_main_from_python_gives_ctrl_c_and_sigterm_back_after_an_interrupt(monkeypatch, capsys):
    import signal

    from adbench_hr.cli import main as cli_main

    def interrupted():
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli_main, "_attach_commands", interrupted)
    assert main(["--version"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    # Ignored while the interrupt was reported; a notebook or test runner calling main() gets its handlers back.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_an_interrupt_in_main_called_from_another_thread_is_reported_and_the_handlers_stay(monkeypatch, capsys):
    # main() in a background thread (a notebook's job), stopped by a KeyboardInterrupt raised in that thread (as
    # tools that stop a thread inject one). Only the main thread may set signal handlers: setting them to ignore
    # further interrupts would raise ValueError out of main() instead of its exit code 130.
    import signal
    import threading

    from adbench_hr.cli import main as cli_main

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_attach_commands", interrupted)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    outcome: list[object] = []

    def command() -> None:
        try:
            outcome.append(main(["--version"]))
        except BaseException as exc:  # whatever escapes main() is the failure to report
            outcome.append(exc)

    thread = threading.Thread(target=command)
    thread.start()
    thread.join(30)
    assert outcome == [130]
    assert capsys.readouterr().err == "error: interrupted\n"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_sigterm_handler_installed_from_c_is_left_in_place(monkeypatch, capsys):
    # A program embedding Python that installed its own SIGTERM handler from C: Python reads it as None, and
    # putting None back after the command raised TypeError out of main().
    import signal

    real_getsignal, calls = signal.getsignal, []
    monkeypatch.setattr(signal, "getsignal",
                        lambda signum: None if signum == signal.SIGTERM else real_getsignal(signum))
    monkeypatch.setattr(signal, "signal", lambda signum, handler: calls.append((signum, handler)))
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("adbench-hr, version ")
    assert [signum for signum, _ in calls if signum == signal.SIGTERM] == []
