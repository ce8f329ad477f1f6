"""docs/example-project is a user's project that tests its service with cnats' pytest fixtures; its own test suite
must pass. It runs in a separate pytest process from inside (a copy of) the project, as its developer would run it,
so its pyproject.toml, not cnats', configures that run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2] / "docs" / "example-project"


def test_example_project_tests_pass(tmp_path: Path) -> None:
    # A copy, so the run writes nothing (bytecode, plugin caches) into the checkout.
    project = shutil.copytree(PROJECT, tmp_path / "example-project", ignore=shutil.ignore_patterns(".*", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # no settings of this run leak in
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"5 passed in [0-9.]+s( \([0-9:]+\))?", summary), result.stdout  # nothing skipped or missed
