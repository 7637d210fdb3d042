"""``adbench-hr datasets``: placeholder."""
import click

@click.group()
def datasets() -> None:
    """Check and generate datasets."""
