"""The benchmark harness behind ``cnats bench``: cnats, its pure-Python twin, nats-py and the raw-socket bound,
measured on the same workloads in one run (see docs/performance.md)."""

from .harness import CLIENTS, Result, format_markdown, format_table, run_matrix, run_single

__all__ = ["CLIENTS", "Result", "format_markdown", "format_table", "run_matrix", "run_single"]
