"""Every public name has a docstring, and every public callable states its errors.

The API reference (mkdocs.yml, docs/reference/) is generated from these docstrings, so a missing one is a hole in the
reference. Public names are what the public modules export (``__all__``). A module-level constant or type alias has
its docstring as a string literal right after its assignment (the convention mkdocstrings reads).

Every public function, and every public method of a public class, has a Google-style ``Raises:`` section; a callable
that cannot fail says so with ``Raises: Nothing: ...``. A class's methods are those it defines and those it inherits
from cnats classes (a base in another module, or the compiled protocol core, counts as well: the reference shows
them), not properties or dunders. Enums and exception classes are left out: their methods are Python's.
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
PUBLIC_MODULES = [
    "cnats",
    "cnats.jetstream",
    "cnats.services",
    "cnats.kv",
    "cnats.objectstore",
    "cnats.testing",
    "cnats.sync",
    "cnats.otel",
]


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
    """The public methods of ``cls``: defined in it or inherited from a cnats class (not properties, not dunders).
    Compiled methods count too (the protocol core's)."""
    methods: dict[str, Any] = {}
    mro = cls.__mro__
    for i, klass in enumerate(mro):
        if klass is not cls and klass.__module__.partition(".")[0] != "cnats":
            continue  # object, typing.Generic, builtins...: not ours to document
        for name, value in vars(klass).items():
            if name.startswith("_") or any(name in vars(below) for below in mro[:i]):
                continue  # private, or overridden (by a method, a property or an attribute)
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isroutine(function):
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


def _callables() -> dict[str, Any]:
    """Every public function, and every public method of a public class that is not an enum or an exception."""
    callables: dict[str, Any] = {}
    for qualname, obj in _public().items():
        if inspect.isclass(obj):
            if issubclass(obj, (enum.Enum, BaseException)):
                continue
            callables.update({f"{qualname}.{name}": method for name, method in _methods(obj).items()})
        elif inspect.isroutine(obj):
            callables[qualname] = obj
    return callables


def test_the_check_covers_the_api() -> None:
    # guards the collection itself: functions, own and inherited methods, the compiled core's, static methods
    callables = _callables()
    for name in [
        "cnats.connect",
        "cnats.create_inbox",
        "cnats.NatsConnection.request",
        "cnats.NatsConnection.publish",  # inherited from the protocol core
        "cnats.Msg.respond",  # likewise
        "cnats.Headers.from_dict",  # a classmethod
        "cnats.jetstream.StreamAPI.add",  # inherited from a base in another module
        "cnats.jetstream.JetStreamPullSubscription.next_msg",  # inherited from a public base
        "cnats.kv.KvWatcher.stop",
        "cnats.services.Service.add_endpoint",  # inherited from a private base
    ]:
        assert name in callables, name
    assert not any(name.startswith("cnats.ErrorCode.") for name in callables)  # an enum
    assert not any(name.startswith("cnats.NatsError.") for name in callables)  # an exception


def test_public_callables_state_their_errors() -> None:
    missing_doc, missing_raises = [], []
    for name, function in _callables().items():
        doc = inspect.getdoc(function)
        if not doc:
            missing_doc.append(name)
        elif "\nRaises:\n" not in f"\n{doc}\n":
            missing_raises.append(name)
    assert not missing_doc, "public callables without a docstring:\n" + "\n".join(missing_doc)
    assert not missing_raises, "public callables without a Raises: section:\n" + "\n".join(missing_raises)
