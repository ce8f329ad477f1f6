"""The package version (one place; setup metadata has its own copy in pyproject.toml)."""

__version__ = "0.1.0.dev0"
