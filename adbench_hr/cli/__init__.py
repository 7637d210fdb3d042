"""Command-line interface (``adbench-hr``)."""
