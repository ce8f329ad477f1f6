"""Every public name has a docstring, and the public callables of the covered areas state their errors.

The API reference (mkdocs.yml, docs/reference/) is generated from these docstrings, so a missing one is a hole in the
reference. Public names are what the public modules export (``__all__``). A module-level constant or type alias has
its docstring as a string literal right after its assignment (the convention mkdocstrings reads).

``RAISES`` lists the public functions and classes whose callables must have a Google-style ``Raises:`` section (each
public method defined in the class, not properties or dunders); a callable that cannot fail says so with
``Raises: Nothing: ...``.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import itertools
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[2] / "cnats"
PUBLIC_MODULES = ["cnats", "cnats.jetstream", "cnats.services", "cnats.kv", "cnats.objectstore", "cnats.testing"]

# Public callables whose errors are documented: a function, or a class (then each of its public methods).
RAISES = ["cnats.connect", "cnats.NatsConnection", "cnats.Subscription"]


def _attribute_docstrings() -> set[str]:
    """Names of the package's module-level assignments that are followed by a docstring."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        body = ast.parse(path.read_text()).body
        for node, after in itertools.pairwise(body):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target = node.targets[0].id
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                target = node.target.id
            else:
                continue
            value = after.value if isinstance(after, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                names.add(target)
    return names


def _own_docstring(obj: Any) -> str | None:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if doc and dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
            return None  # the signature dataclasses writes in when there is no docstring
        return doc
    return getattr(obj, "__doc__", None)


def _public() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            found[f"{module_name}.{name}"] = getattr(module, name)
    return found


def _methods(cls: type) -> dict[str, Any]:
    """The public methods defined in ``cls`` itself (not properties, not dunders)."""
    methods = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if inspect.isfunction(function):
            methods[name] = function
    return methods


def test_public_names_have_docstrings() -> None:
    attribute_docs = _attribute_docstrings()
    missing = []
    for qualname, obj in _public().items():
        if inspect.isclass(obj) or inspect.isroutine(obj):
            if not _own_docstring(obj):
                missing.append(qualname)
        elif qualname.rpartition(".")[2] not in attribute_docs:
            missing.append(f"{qualname} (constant or alias: a docstring after its assignment)")
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_covered_callables_state_their_errors() -> None:
    public = _public()
    missing_doc, missing_raises = [], []
    for qualname in RAISES:
        obj = public[qualname]
        if inspect.isclass(obj):
            assert not issubclass(obj, enum.Enum), qualname
            callables = {f"{qualname}.{name}": method for name, method in _methods(obj).items()}
        else:
            callables = {qualname: obj}
        for name, function in callables.items():
            doc = inspect.getdoc(function)
            if not doc:
                missing_doc.append(name)
            elif "\nRaises:\n" not in f"\n{doc}\n":
                missing_raises.append(name)
    assert not missing_doc, "public callables without a docstring:\n" + "\n".join(missing_doc)
    assert not missing_raises, "public callables without a Raises: section:\n" + "\n".join(missing_raises)
