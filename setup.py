"""Build script: compiles the Cython protocol core when it can, falls back to the pure-Python twin when not.

Set CNATS_NO_EXTENSIONS=1 at build time to skip the extension entirely (the pure-Python wheel, ``py3-none-any``).
Set CNATS_REQUIRE_EXTENSIONS=1 to make a failure to build the extension an error instead of a fallback: release
wheels are built that way (``[tool.cibuildwheel]`` in pyproject.toml, tools/build_wheels.py), so a platform wheel
always carries the compiled core.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("CNATS_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("CNATS_REQUIRE_EXTENSIONS")
IS_CPYTHON = sys.implementation.name == "cpython"

if NO_EXTENSIONS and REQUIRE_EXTENSIONS:
    sys.exit("cnats: CNATS_NO_EXTENSIONS and CNATS_REQUIRE_EXTENSIONS are both set; set one of them")

# Compiler flags of the core. The compiler first gets the flags the running Python was built with
# (sysconfig's CFLAGS: with GCC and Clang typically `-DNDEBUG -g -fwrapv -O3 -Wall` and `-fPIC`; a verbose build,
# `pip wheel -v .` or `python setup.py build_ext -v`, prints the whole command line), then these, which come last
# and so win where they overlap:
# - `-O2` (GCC/Clang; MSVC reads it as /O2, its usual "maximize speed"): overrides the interpreter's `-O3`.
#   Measured against -O3 on this core (x86_64, GCC 12, CPython 3.11, one session, the two builds alternated):
#   `cnats bench --protocol`, best of 5: encode PUB 16 B 10.5-11.1 -> 12.7-12.8 M/s, encode PUB 1 KiB
#   7.9-8.1 -> 8.4-8.5, parse MSG 16 B 9.8-11.2 -> 11.2 (same), parse MSG 1 KiB 5.6-5.7 -> 5.3-5.4 (slower);
#   `cnats bench --quick`, median of 8 runs each: no workload clearly better (pub 1.41 -> 1.31 M/s, sub
#   (callback) 1.00 -> 0.50 M/s, request 7.6 -> 6.1 k/s, js publish 52 -> 59 k/s, kv put 10.4 -> 11.8 k/s,
#   within the run-to-run spread of a shared 2-core machine), and a module 28% larger (1.89 -> 2.42 MB). No clear
#   gain, so -O2 stays.
# The inherited flags stay as they are: `-DNDEBUG` turns off C asserts as in CPython itself; `-fwrapv` keeps the
# signed-overflow semantics CPython's headers assume; `-fPIC` is required for a shared object; `-g` only adds
# debug sections, not code (the installed module is larger, not slower); `-Wall` shows warnings in build logs.
# Nothing machine-specific (`-march=native`) is used: a wheel must run on every CPU of its platform tag.
COMPILE_ARGS = ["-O2"]

# Cython directives (they change the generated C, not the compiler's work):
# - boundscheck/wraparound off: the core indexes only within lengths it has just computed and never with
#   negative indexes, so the per-access checks are dead weight on the hot path;
# - cdivision on: C semantics for / and %, without the zero and sign checks (no division there can see a zero
#   or a negative operand);
# - embedsignature: help() and IDEs show the signatures of compiled functions.
CYTHON_DIRECTIVES = {"boundscheck": False, "wraparound": False, "cdivision": True, "embedsignature": True}


class OptionalBuildExt(build_ext):
    """A build_ext whose failure is a notice, not an error: cnats then runs on its pure-Python core."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: use the twin
            self._notice(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._notice(exc)

    _noticed = False

    @classmethod
    def _notice(cls, exc: BaseException) -> None:
        if REQUIRE_EXTENSIONS:
            raise SystemExit(
                f"cnats: the compiled protocol core could not be built ({exc.__class__.__name__}: {exc}) "
                "and CNATS_REQUIRE_EXTENSIONS is set"
            ) from exc
        if cls._noticed:  # a failed compile also fails the in-place copy that follows: say it once
            return
        cls._noticed = True
        print(
            f"cnats: the compiled protocol core could not be built ({exc.__class__.__name__}: {exc}); "
            "using the pure-Python core",
            file=sys.stderr,
        )


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        return []
    if not IS_CPYTHON:
        if REQUIRE_EXTENSIONS:
            sys.exit(f"cnats: CNATS_REQUIRE_EXTENSIONS is set, but {sys.implementation.name} gets no extension")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSIONS:
            sys.exit("cnats: CNATS_REQUIRE_EXTENSIONS is set, but Cython is not installed")
        print("cnats: Cython is not installed; using the pure-Python protocol core", file=sys.stderr)
        return []
    ext = Extension("cnats._protocol", ["cnats/_protocol.pyx"], extra_compile_args=COMPILE_ARGS)
    try:
        return _cythonize(cythonize, ext)
    except Exception as exc:  # noqa: BLE001 - a failed translation also means: use the twin
        OptionalBuildExt._notice(exc)
        return []


def _cythonize(cythonize: Any, ext: Extension) -> list[Extension]:
    return cythonize(  # type: ignore[no-any-return]
        [ext],
        language_level=3,
        compiler_directives=CYTHON_DIRECTIVES,
        annotate=_flag("CNATS_ANNOTATE"),
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
