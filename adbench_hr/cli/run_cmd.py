"""``adbench-hr run``: placeholder."""
import click


@click.command()
def run() -> None:
    """Fit a method, predict full-resolution maps and score them."""
