"""adbench-hr: full-resolution benchmark and model zoo for industrial anomaly detection."""

__version__ = "0.1.0"
