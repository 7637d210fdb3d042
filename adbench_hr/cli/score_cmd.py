"""``adbench-hr score``: placeholder until the metrics engine lands."""
import click

@click.command()
def score() -> None:
    """Score anomaly maps against a dataset's ground truth at full resolution."""
