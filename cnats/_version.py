"""The package version: the one place it is written (pyproject.toml reads it from here, see RELEASING.md)."""

__version__ = "0.1.0.dev0"
"""The version of cnats."""
