"""``Changes``: what ``instrument()`` changed on the objects of one connection, so that ``uninstrument()`` can put
each back: instance attributes shadowing methods (the connection's ``publish``, a JetStream client's ``publish``...)
and iterators switched to a traced subclass of their class. Objects are held weakly; nothing here keeps one alive."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Changes"]

logger = logging.getLogger("cnats")


class Changes:
    """The shadowing attributes and switched iterators of one instrumentation."""

    def __init__(self, traced_class: Callable[[type], type]) -> None:
        self._make_traced = traced_class
        # object -> names shadowed on it (not the wrappers: they reference the object through its bound methods, and
        # a value that references its weak key keeps the key alive)
        self._shadowed: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self._switched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._traced: dict[type, type] = {}  # a class -> its traced subclass (made once)
        self._bases: dict[type, type] = {}  # and back

    def shadow(self, obj: Any, wrappers: dict[str, Any]) -> None:
        """Set ``wrappers`` as instance attributes of ``obj``, in front of its methods of the same names."""
        for name, wrapper in wrappers.items():
            wrapper.__cnats_otel__ = self  # how undo() knows the attribute is still this instrumentation's
            setattr(obj, name, wrapper)
        self._shadowed.setdefault(obj, set()).update(wrappers)

    def trace_iterator(self, obj: Any) -> None:
        """Switch ``obj`` to the traced subclass of its class (an iterator of messages: each hand-out gets a span)."""
        cls = type(obj)
        if cls in self._bases:
            return  # switched already
        traced = self._traced.get(cls)
        if traced is None:
            traced = self._traced[cls] = self._make_traced(cls)
            self._bases[traced] = cls
        try:
            obj.__class__ = traced
        except TypeError:  # a layout a subclass cannot take over: the iterator works, untraced
            logger.debug("cnats.otel: cannot trace the iterator %r", obj)
            return
        self._switched.add(obj)

    def undo(self) -> None:
        """Remove the shadowing attributes that are still ours, and switch every iterator back to its class."""
        for obj, names in list(self._shadowed.items()):
            attributes = vars(obj)
            for name in names:
                if getattr(attributes.get(name), "__cnats_otel__", None) is self:  # not replaced by someone since
                    delattr(obj, name)
        self._shadowed.clear()
        for obj in list(self._switched):
            base = self._bases.get(type(obj))
            if base is not None:
                obj.__class__ = base
        self._switched.clear()
