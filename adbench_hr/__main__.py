"""The ``adbench-hr`` console script, also run as ``python -m adbench_hr``.

It imports nothing at module level: Ctrl-C while the command's modules load (click, numpy, ...) ends, like
any later interrupt, in one line and exit code 130 instead of a traceback.
"""


def entry() -> None:
    """Load the command-line interface, then run it (:func:`adbench_hr.cli.main.entry`)."""
    try:
        from adbench_hr.cli.main import entry as run_command
    except KeyboardInterrupt:
        import sys

        print("error: interrupted", file=sys.stderr)
        exec("")  # clears CPython's record of the interrupt: see adbench_hr.cli.main.forget_handled_interrupt
        raise SystemExit(130) from None
    run_command()


if __name__ == "__main__":
    entry()
