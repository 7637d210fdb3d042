"""adbench-hr: full-resolution benchmark and model zoo for industrial anomaly detection."""

# Bump it with every change that alters a number a result holds (the metrics, a method's maps or scores): the run
# key hashes it, so `run` recomputes older results instead of resuming them, and `leaderboard` warns when it ranks
# results of different versions together.
__version__ = "0.1.0"
