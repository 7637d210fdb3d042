"""``adbench-hr leaderboard``: placeholder."""
import click

@click.command()
def leaderboard() -> None:
    """Build leaderboard CSVs and plots from result files."""
