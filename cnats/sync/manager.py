"""``SyncJetStreamManager``: the JetStream manager of the asyncio API, every request waited for.

The manager's surface is wide (streams, consumers, direct gets, account info, and the handles they return), and
all of it is request and answer; so rather than a second copy of each signature, a proxy runs each call on the loop
and hands back its result: a coroutine's result waited for, an async iterator as a blocking one, and a handle with
requests of its own (a stream, a consumer) as another proxy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .bridge import SyncIterator
from .context import Context

__all__ = ["BlockingProxy", "SyncJetStreamManager"]

_HAS_REQUESTS: dict[type, bool] = {}


def _has_requests(obj: object) -> bool:
    """True for a cnats object with coroutine methods (a handle that makes requests of its own)."""
    kind = type(obj)
    known = _HAS_REQUESTS.get(kind)
    if known is None:
        known = kind.__module__.startswith("cnats.") and any(
            inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
            for name, member in inspect.getmembers(kind)
            if not name.startswith("_")
        )
        _HAS_REQUESTS[kind] = known
    return known


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class BlockingProxy:
    """Blocking access to an asyncio object of cnats: its methods run on the connection's loop and are waited for;
    an async iterator comes back as a `SyncIterator`, a handle with requests of its own as another proxy."""

    def __init__(self, ctx: Context, target: object) -> None:
        self._ctx = ctx
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._target, name)
        if callable(value):
            return self._blocking(value)
        return self._adapt(value)

    def _blocking(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._adapt(self._ctx.call(_invoke(fn, args, kwargs)))

        call.__name__ = getattr(fn, "__name__", "call")
        call.__doc__ = getattr(fn, "__doc__", None)
        return call

    def _adapt(self, value: Any) -> Any:
        if hasattr(value, "__anext__"):
            return SyncIterator(self._ctx.runner, lambda: value)
        if _has_requests(value):
            return BlockingProxy(self._ctx, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self._target) if not n.startswith("_")})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._target!r}>"


class SyncJetStreamManager(BlockingProxy):
    """The JetStream manager for threads: ``jsm.streams.add(...)``, ``jsm.consumers.info(...)``,
    ``jsm.get_account_info()``... each as `cnats.jetstream.JetStreamManager` documents it, waited for, raising the same
    errors. Listings (``jsm.streams.list()``) are blocking iterators."""
