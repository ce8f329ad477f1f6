"""Build script: compiles the Cython protocol core when it can, falls back to the pure-Python twin when not.

Set CNATS_NO_EXTENSIONS=1 at build time to skip the extension entirely.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = os.environ.get("CNATS_NO_EXTENSIONS", "") not in ("", "0")
IS_CPYTHON = sys.implementation.name == "cpython"


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
        if cls._noticed:  # a failed compile also fails the in-place copy that follows: say it once
            return
        cls._noticed = True
        print(
            f"cnats: the compiled protocol core could not be built ({exc.__class__.__name__}: {exc}); "
            "using the pure-Python core",
            file=sys.stderr,
        )


def extensions() -> list[Extension]:
    if NO_EXTENSIONS or not IS_CPYTHON:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("cnats: Cython is not installed; using the pure-Python protocol core", file=sys.stderr)
        return []
    ext = Extension("cnats._protocol", ["cnats/_protocol.pyx"], extra_compile_args=["-O2"])
    try:
        return _cythonize(cythonize, ext)
    except Exception as exc:  # noqa: BLE001 - a failed translation also means: use the twin
        OptionalBuildExt._notice(exc)
        return []


def _cythonize(cythonize: Any, ext: Extension) -> list[Extension]:
    return cythonize(  # type: ignore[no-any-return]
        [ext],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        annotate=os.environ.get("CNATS_ANNOTATE", "") not in ("", "0"),
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
