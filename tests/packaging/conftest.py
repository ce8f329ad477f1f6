"""What the packaging tests share: one sdist and one wheel built from it for the running interpreter, made once per
session (building costs seconds; tests/packaging/test_build.py and test_wheels.py both use them), and the build
tools of the running interpreter for fresh virtual environments.

The helpers of tools/build_wheels.py (the script behind ``tox -e wheels``) are imported directly: pytest puts
``tools`` on the import path (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from build_wheels import Dists, build_sdist_then_wheel, copy_sources

# pip, setuptools and Cython of the running interpreter, seen by the fresh environments of test_build.py.
BUILD_TOOLS = ("pip", "setuptools", "Cython")


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """An sdist of a copy of the sources, then a wheel for the running interpreter built from that sdist, so the
    wheel proves the sdist compiles its extension. The copy keeps ``build/`` and ``*.egg-info`` out of the
    checkout."""
    src = copy_sources(tmp_path_factory.mktemp("src"))
    return build_sdist_then_wheel(src, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def build_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of links to the installed pip, setuptools and Cython (their packages and metadata)."""
    tools = tmp_path_factory.mktemp("build-tools")
    for name in BUILD_TOOLS:
        dist = importlib.metadata.distribution(name)
        assert dist.files, f"{name} has no RECORD"
        for top in {f.parts[0] for f in dist.files if f.parts[0] != ".."}:
            target = Path(str(dist.locate_file(top)))
            if target.exists() and not (tools / top).exists():
                (tools / top).symlink_to(target)
    return tools
