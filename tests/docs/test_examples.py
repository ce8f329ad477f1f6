"""Every ```python block in docs/ runs, in order, against the real parts it names.

Blocks of one page share a namespace (a page reads as one session). A block with top-level ``await`` runs in an
event loop. Blocks that are not meant to run are fenced as ```text or ```console instead.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
PAGES = sorted(DOCS.glob("*.md"))


def test_docs_exist() -> None:
    assert PAGES, "docs/ has no pages"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page: Path) -> None:
    text = page.read_text()
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        source = "\n" * (line - 1) + match.group(1)
        code = compile(source, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # our own documentation
        if inspect.iscoroutine(result):
            asyncio.run(result)
