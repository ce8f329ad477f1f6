"""The one callback adapter of cnats: how every layer calls a user's callback.

A callback may be a plain function, a coroutine function, a ``functools.partial`` or lambda returning a coroutine,
or an object with ``async def __call__``. Whatever it is, a call whose result is awaitable is awaited; a callback
known to be asynchronous up front runs on its owner's single task, one message at a time and in order; a plain one
runs inline on the read path, and if it nevertheless returns an awaitable its owner switches to the task (no
message is lost and the order is kept). An exception escaping a callback is handed to ``on_error`` (logged and
reported as a ``CALLBACK_ERROR`` status by the connection); the owner goes on. Auto-acks wait for success.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["FAILED", "Callback", "discard_unawaited", "is_async_callable"]

T = TypeVar("T")

FAILED: Any = object()  # what ``Callback.call_inline`` returns when the callback raised (already reported)


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for coroutine functions, partials of them and objects with ``async def __call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's __call__, not the instance's
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def discard_unawaited(pending: Awaitable[Any] | None) -> None:
    """Close a callback's coroutine that will never be awaited (its owner ended first): no "never awaited"
    warning for what a close cut short."""
    if inspect.iscoroutine(pending) and inspect.getcoroutinestate(pending) == inspect.CORO_CREATED:
        pending.close()


class Callback(Generic[T]):
    """A user callback with its error reporter: ``call_inline`` for the read path, ``call`` for an owner's task."""

    __slots__ = ("fn", "is_async", "on_error")

    def __init__(self, fn: Callable[[T], Any], on_error: Callable[[BaseException, T], None]) -> None:
        self.fn = fn
        self.on_error = on_error
        self.is_async = is_async_callable(fn)

    def call_inline(self, arg: T) -> Any:
        """Call a plain callback now. Returns None when it finished, the awaitable it returned (the caller must
        await it, in order, on its task), or ``FAILED`` when it raised (reported already)."""
        try:
            result = self.fn(arg)
        except Exception as exc:  # noqa: BLE001 - whatever a callback raises is reported, its owner goes on
            self.on_error(exc, arg)
            return FAILED
        if result is not None and inspect.isawaitable(result):
            return result
        return None

    async def call(self, arg: T, pending: Awaitable[Any] | None = None) -> bool:
        """Call (or finish, with ``pending`` from ``call_inline``) and await; True when it succeeded."""
        try:
            if pending is None:
                result = self.fn(arg)
                if result is None or not inspect.isawaitable(result):
                    return True
                pending = result
            await pending
        except Exception as exc:  # noqa: BLE001 - whatever a callback raises is reported, its owner goes on
            self.on_error(exc, arg)
            return False
        return True
