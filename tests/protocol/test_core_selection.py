"""Which core is loaded, and that a build without a compiler (or with CNATS_NO_EXTENSIONS) still installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cnats
from cnats import protocol

ROOT = Path(__file__).resolve().parents[2]


def _extensions_forced_off() -> bool:
    return os.environ.get("CNATS_NO_EXTENSIONS", "") not in ("", "0")


def test_uses_cython_matches_the_environment() -> None:
    # The compiled core must be there unless the twin is forced: a missing build fails here, it does not skip.
    assert cnats.USES_CYTHON is (not _extensions_forced_off())
    assert protocol.core.__name__ == ("cnats._protocol_py" if _extensions_forced_off() else "cnats._protocol")
    assert cnats.Msg.__mro__[1] is protocol.core.MsgBase


def _uses_cython_in_subprocess(value: str | None) -> str:
    env = dict(os.environ)
    env.pop("CNATS_NO_EXTENSIONS", None)
    if value is not None:
        env["CNATS_NO_EXTENSIONS"] = value
    code = "import cnats; print(cnats.USES_CYTHON)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_the_environment_variable_forces_the_twin() -> None:
    assert _uses_cython_in_subprocess(None).strip() == "True"
    assert _uses_cython_in_subprocess("0").strip() == "True"
    assert _uses_cython_in_subprocess("1").strip() == "False"
    assert _uses_cython_in_subprocess("yes").strip() == "False"


def _build_copy(tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "cnats", tmp_path / "cnats", ignore=shutil.ignore_patterns("*.so", "*.c", "*.html"))
    env = {k: v for k, v in os.environ.items() if k != "CNATS_NO_EXTENSIONS"}  # the run's own setting is not ours
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_failing_compiler_still_builds_with_a_notice(tmp_path: Path) -> None:
    result = _build_copy(tmp_path, CC="false", LDSHARED="false")
    assert result.returncode == 0, result.stderr[-2000:]
    notices = [line for line in result.stderr.splitlines() if line.startswith("cnats:")]
    assert len(notices) == 1 and "using the pure-Python core" in notices[0], result.stderr[-2000:]
    assert not list((tmp_path / "cnats").glob("_protocol*.so"))


def test_cnats_no_extensions_at_build_time_skips_the_extension(tmp_path: Path) -> None:
    result = _build_copy(tmp_path, CNATS_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list((tmp_path / "cnats").glob("_protocol*.so"))
    assert not list((tmp_path / "cnats").glob("*.c"))
