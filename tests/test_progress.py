"""Progress bars: shown where a caller asks, on any stream (a notebook's is not a terminal); never a crash
without a standard error; the command line asks for them on a terminal only."""

from __future__ import annotations

import io
import os
import sys

import pytest

from adbench_hr.cli import bars_wanted
from adbench_hr.datasets import validate_category
from adbench_hr.datasets.synthetic import generate_synthetic
from adbench_hr.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_stream_that_is_not_a_terminal_when_asked(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(progress_bar(range(4), show=True, desc="counting")) == [0, 1, 2, 3]
    assert "counting" in stream.getvalue() and "4/4" in stream.getvalue()


def test_no_bar_when_not_asked(monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(progress_bar(range(4), show=False, desc="counting")) == [0, 1, 2, 3]
    assert stream.getvalue() == ""


def test_without_a_standard_error_a_bar_draws_nothing_and_the_work_goes_on(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)  # pythonw, or `2>&-`
    assert list(progress_bar(range(3), show=True)) == [0, 1, 2]
    with progress_bar(total=5, show=True) as bar:
        bar.update(2)
        bar.set_postfix(loss="0.5")


def test_library_calls_draw_their_bars_where_stderr_goes(tiny_synthetic_dataset, monkeypatch):
    # A notebook: stderr is no terminal, yet progress=True means a bar.
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    category = tiny_synthetic_dataset.categories()[0]
    validate_category(tiny_synthetic_dataset, category, progress=True)
    assert category in stream.getvalue()


def test_generation_without_a_standard_error_does_not_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)
    root = generate_synthetic(tmp_path / "data", size=64, categories="pcb", counts=(1, 1, 1), progress=True)
    assert (root / "meta.json").is_file()


@pytest.mark.parametrize(
    ("stream", "quiet", "wanted"),
    [
        (_Terminal(), False, True),
        (_Terminal(), True, False),  # --quiet
        (io.StringIO(), False, False),  # a log file or a pipe
        (None, False, False),  # no standard error at all
    ],
)
def test_the_command_line_draws_bars_on_a_terminal_only(monkeypatch, stream, quiet, wanted):
    monkeypatch.setattr(sys, "stderr", stream)
    assert bars_wanted(quiet) is wanted


def test_a_closed_standard_error_wants_no_bar(monkeypatch):
    stream = open(os.devnull, "w")  # noqa: SIM115 - closed at once
    stream.close()  # isatty() on a closed file raises ValueError
    monkeypatch.setattr(sys, "stderr", stream)
    assert bars_wanted() is False


class _Failing(io.StringIO):
    def isatty(self) -> bool:
        raise OSError(5, "Input/output error")


class _WriteOnly:
    """A stand-in for standard error with only what printing needs (a logger's redirect, an embedding host's)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("stream", [_Failing(), _WriteOnly()], ids=["isatty-fails", "no-isatty"])
def test_a_standard_error_that_cannot_say_whether_it_is_a_terminal_wants_no_bar(monkeypatch, stream):
    monkeypatch.setattr(sys, "stderr", stream)
    assert bars_wanted() is False


def test_checking_the_default_dataset_generates_it_with_the_commands_bars(tiny_synthetic_root, monkeypatch, capsys):
    import adbench_hr.cli.datasets_cmd
    import adbench_hr.datasets
    from adbench_hr.cli.main import main

    asked = []

    def cached_root(seed: int = 0, *, progress: bool = False):
        asked.append(progress)
        return tiny_synthetic_root

    monkeypatch.setattr(adbench_hr.datasets, "default_synthetic_root", cached_root)
    monkeypatch.setattr(adbench_hr.cli.datasets_cmd, "bars_wanted", lambda quiet=False: True)  # as on a terminal
    assert main(["datasets", "check", "--dataset", "synthetic", "--json"]) == 0
    assert asked == [True]  # generated on first use with a bar, as `run` does; not silently for a minute


_TINY_RUN = ["--method", "ts-mlp", "--preset", "fast", "--weights", "random", "--device", "cpu", "--seed", "3",
             "-o", "img_size=70", "-o", "layers=[2,4]", "-o", 'teacher_kwargs={"depth":4,"embed_dim":48,"num_heads":2}',
             "-o", "epochs=1", "-o", "num_workers=0"]


def test_run_and_score_draw_bars_on_a_terminal_unless_quiet(tiny_synthetic_root, tmp_path, monkeypatch):
    from adbench_hr.cli.main import main

    for quiet in ([], ["--quiet"]):
        out = tmp_path / f"run{len(quiet)}"
        stream = _Terminal()
        monkeypatch.setattr(sys, "stderr", stream)
        assert main(["run", *_TINY_RUN, "--dataset", "synthetic", "--root", str(tiny_synthetic_root), "--category",
                     "wood_grain", "--out", str(out), *quiet]) == 0
        assert ("ts-mlp predict wood_grain" in stream.getvalue()) is not bool(quiet)
        stream = _Terminal()
        monkeypatch.setattr(sys, "stderr", stream)
        assert main(["score", "--maps", str(out / "ts-mlp" / "synthetic" / "maps"), "--root", str(tiny_synthetic_root),
                     "--dataset", "synthetic", "--category", "wood_grain", "--method", "rescored", "--out",
                     str(tmp_path / f"score{len(quiet)}.json"), *quiet]) == 0
        assert ("score wood_grain" in stream.getvalue()) is not bool(quiet)


def test_run_generates_the_default_dataset_with_bars_unless_quiet(tmp_path, monkeypatch):
    import adbench_hr.datasets
    from adbench_hr.cli.main import main
    from adbench_hr.errors import InputError

    asked = []

    def cached_root(seed: int = 0, *, progress: bool = False):
        asked.append(progress)
        raise InputError("stopped here: the dataset would be generated now")

    monkeypatch.setattr(adbench_hr.datasets, "default_synthetic_root", cached_root)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    for quiet in ([], ["--quiet"]):
        assert main(["run", *_TINY_RUN, "--out", str(tmp_path / "runs"), *quiet]) == 2
    assert asked == [True, False]


@pytest.mark.parametrize(("stream", "drawn"), [(_Terminal(), True), (io.StringIO(), False)])
def test_synth_draws_its_bar_on_a_terminal_only(tmp_path, monkeypatch, stream, drawn):
    from adbench_hr.cli.main import main

    monkeypatch.setattr(sys, "stderr", stream)
    assert main(["datasets", "synth", "--out", str(tmp_path / "data"), "--size", "64", "--scale", "0.01",
                 "--category", "pcb"]) == 0
    assert ("synthesising" in stream.getvalue()) is drawn
