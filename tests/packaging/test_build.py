"""Packaging: ``python -m build`` makes an sdist and a wheel; the sdist compiles the protocol core on install, and
installs without it (on the pure-Python twin, with a one-line notice) when there is no working C compiler.

Everything runs offline in throw-away directories: the sources are copied out of the checkout first, so no
``build/`` or ``*.egg-info`` is written into it. The fresh virtual environments are made without pip and see only
the build tools (pip, setuptools, Cython) of the running interpreter, through a ``.pth`` file naming a directory of
links to them; cnats itself and everything else installed here stays invisible, so the import checks below see
only what the install put into the new environment. Needs the ``build`` package (in the ``test`` extra).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import cnats

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("pip", "setuptools", "Cython")
# Generated or machine-specific files that must not leak into the copied sources.
NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c", "*.html")


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path
    log: str


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would steer the build or the interpreter (the pure-Python run of the
    suite sets CNATS_NO_EXTENSIONS, which would also skip the extension at build time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNATS_", "PIP_", "PYTHON"))}
    env.update(extra)
    return env


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    """Run to completion and return the output, stdout and stderr interleaved as they were written."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}"
    return result.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """An sdist, then a wheel built from that sdist (``python -m build`` without --sdist/--wheel does exactly that),
    so the wheel proves the sdist compiles its extension."""
    src = tmp_path_factory.mktemp("src")
    for item in ROOT.iterdir():
        if item.is_file():
            shutil.copy2(item, src)
    shutil.copytree(ROOT / "cnats", src / "cnats", ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("dist")
    # --skip-dependency-check: setuptools>=70.1 builds wheels itself, so the "wheel" listed in the build
    # requirements need not be installed for a build without isolation.
    log = run(
        [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", out, src],
        cwd=src,
        env=clean_env(PYTHONUNBUFFERED="1"),  # keep build's progress lines in order with the backend's output
    )
    (sdist,) = out.glob("cnats-*.tar.gz")
    (wheel,) = out.glob("cnats-*.whl")
    return Dists(sdist, wheel, log)


@pytest.fixture(scope="module")
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


def fresh_venv(path: Path, build_tools: Path) -> Path:
    """A new virtual environment without pip whose only extra import path is ``build_tools``; returns its python."""
    venv.create(path, with_pip=False)
    python = path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    # Ask the new interpreter for its site-packages: distributions patch sysconfig's install schemes.
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=path, env=clean_env())
    Path(purelib.strip(), "build-tools.pth").write_text(f"{build_tools}\n")
    return python


def pip_install(python: Path, dist: Path, tmp: Path, **env: str) -> str:
    # -v: pip shows the build's own output (where the notice is printed) only when verbose.
    args: list[str | Path] = [python, "-m", "pip", "install", "-v", "--isolated", "--no-index", "--no-deps"]
    args += ["--no-build-isolation", "--no-cache-dir", dist]
    return run(args, cwd=tmp, env=clean_env(**env))


def uses_cython(python: Path, tmp: Path) -> bool:
    """``cnats.USES_CYTHON`` in that environment, checking that cnats was imported from the environment itself."""
    code = "import cnats; print(cnats.USES_CYTHON); print(cnats.__file__)"
    flag, location = run([python, "-c", code], cwd=tmp, env=clean_env()).splitlines()
    assert Path(location).is_relative_to(python.parent.parent), location
    return {"True": True, "False": False}[flag]


def test_sdist_carries_the_sources_of_the_compiled_core(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    expected = {"pyproject.toml", "setup.py", "README.md", "cnats/py.typed", "cnats/_protocol_py.py"}
    expected |= {f"cnats/_protocol.{ext}" for ext in ("pyx", "pxd", "pyi")}
    assert expected <= names
    assert "cnats/testing/pytest_plugin.py" in names
    # Generated C would be compiled as it is, instead of the .pyx with the installer's Cython (MANIFEST.in excludes it).
    assert "cnats/_protocol.c" not in names


def test_wheel_built_from_the_sdist_has_the_extension(dists: Dists) -> None:
    # The sdist ships the .pyx, not generated C: building from it runs Cython, then the C compiler.
    from_sdist = dists.log.partition("Building wheel from sdist")[2]
    assert "Cythonizing cnats/_protocol.pyx" in from_sdist, dists.log
    version = cnats.__version__
    assert dists.wheel.name.startswith(f"cnats-{version}-cp")  # platform-specific: it holds compiled code
    with zipfile.ZipFile(dists.wheel) as whl:
        names = set(whl.namelist())
        entry_points = whl.read(f"cnats-{version}.dist-info/entry_points.txt").decode()
    assert f"cnats/_protocol{sysconfig.get_config_var('EXT_SUFFIX')}" in names
    assert {"cnats/py.typed", "cnats/_protocol.pyi", "cnats/_protocol_py.py"} <= names
    assert "cnats = cnats.testing.pytest_plugin" in entry_points  # the pytest plugin
    assert "cnats = cnats.cli:main" in entry_points  # the command line


def test_wheel_installs_and_uses_the_compiled_core(dists: Dists, build_tools: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv", build_tools)
    pip_install(python, dists.wheel, tmp_path)
    assert uses_cython(python, tmp_path) is True


def test_sdist_without_a_compiler_installs_the_pure_python_core(
    dists: Dists, build_tools: Path, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv", build_tools)
    output = pip_install(python, dists.sdist, tmp_path, CC="false")  # a C compiler that always fails
    notices = [line.strip() for line in output.splitlines() if line.strip().startswith("cnats:")]
    assert len(notices) == 1, output
    assert notices[0].endswith("using the pure-Python core"), notices
    assert "could not be built" in notices[0]

    assert uses_cython(python, tmp_path) is False
    info = run([python, "-m", "cnats", "info"], cwd=tmp_path, env=clean_env())
    assert "protocol core: pure python" in info
