"""Core messaging commands: ``pub``, ``sub``, ``req`` and ``reply``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ..connection import NatsConnection
from ..errors import OutboundBufferLimitError
from ..headers import Headers
from ..request import RequestStrategy
from ..subscription import Subscription
from . import arguments
from .options import add_connection_options, open_connection
from .output import add_format_options, print_message
from .runtime import CliError, read_stdin, run, stop_on_signal

__all__ = ["register"]

_FLUSH_EVERY = 10_000  # pub --count: a round trip every this many messages bounds what is buffered


def _headers(pairs: Sequence[tuple[str, str]] | None) -> Headers | None:
    if not pairs:
        return None
    headers = Headers()
    for key, value in pairs:
        headers.append(key, value)  # BadHeaderError for keys/values NATS cannot carry, before anything is sent
    return headers


def _payload(data: str | None) -> bytes:
    return data.encode() if data is not None else read_stdin()


def _listening(sub: Subscription) -> None:
    # On stderr, so the messages on stdout stay clean for pipes; it also tells scripts the subscription is active.
    queue = f" in queue group {sub.queue!r}" if sub.queue else ""
    print(f"listening on {sub.subject!r}{queue}", file=sys.stderr, flush=True)


def _raise_if_failed(nc: NatsConnection) -> None:
    """An iterator also ends when the connection closes; a close caused by an error is the command's error."""
    if nc.closed.done() and nc.closed.result() is not None:
        raise CliError(f"connection closed: {nc.closed.result()}")


# -- pub --------------------------------------------------------------------------------------------------------
async def _publish(args: argparse.Namespace) -> int:
    data = _payload(args.data)
    headers = _headers(args.header)
    async with await open_connection(args) as nc:
        for i in range(args.count):
            if i and args.sleep:
                await asyncio.sleep(args.sleep)
            try:
                nc.publish(args.subject, data, reply=args.reply, headers=headers)
            except OutboundBufferLimitError:
                await nc.flush(timeout=args.timeout)  # the socket caught up: now it fits
                nc.publish(args.subject, data, reply=args.reply, headers=headers)
            if i % _FLUSH_EVERY == _FLUSH_EVERY - 1:
                # A large --count would otherwise never yield: memory grows in the transport and Ctrl-C waits.
                await nc.flush(timeout=args.timeout)
        await nc.flush(timeout=args.timeout)
    if sys.stderr.isatty():
        print(f"published {args.count} message(s) of {len(data)} bytes to {args.subject!r}", file=sys.stderr)
    return 0


# -- sub --------------------------------------------------------------------------------------------------------
async def _subscribe(args: argparse.Namespace) -> int:
    async with await open_connection(args) as nc:
        sub = nc.subscribe(args.subject, queue=args.queue, max=args.count or None)
        await nc.flush(timeout=args.timeout)
        number = 0
        with stop_on_signal(sub.unsubscribe):
            _listening(sub)  # only now: a signal from a script that waited for this line ends the command cleanly
            async for msg in sub:
                number += 1
                print_message(msg, number=number, headers=args.headers, raw=args.raw, as_json=args.json)
        _raise_if_failed(nc)
    return 0


# -- req --------------------------------------------------------------------------------------------------------
async def _request(args: argparse.Namespace) -> int:
    data = _payload(args.data)
    headers = _headers(args.header)
    async with await open_connection(args) as nc:
        if args.replies <= 1:
            msg = await nc.request(args.subject, data, timeout=args.timeout, headers=headers)
            print_message(msg, number=None, headers=True, raw=args.raw, as_json=args.json)
            return 0
        replies = await nc.request_many(
            args.subject,
            data,
            strategy=RequestStrategy.COUNT,
            max_messages=args.replies,
            max_wait=args.timeout,
            headers=headers,
        )
        number = 0
        async for msg in replies:
            number += 1
            print_message(msg, number=number, headers=True, raw=args.raw, as_json=args.json)
    if number == 0:
        raise CliError(f"no reply on {args.subject!r} within {args.timeout:g} s")
    return 0


# -- reply ------------------------------------------------------------------------------------------------------
async def _reply(args: argparse.Namespace) -> int:
    echo = args.echo or args.data is None
    answer = b"" if echo else args.data.encode()
    headers = _headers(args.header)
    async with await open_connection(args) as nc:
        sub = nc.subscribe(args.subject, queue=args.queue, max=args.count or None)
        await nc.flush(timeout=args.timeout)
        number = 0
        with stop_on_signal(sub.unsubscribe):
            _listening(sub)  # only now: a signal from a script that waited for this line ends the command cleanly
            async for msg in sub:
                number += 1
                print_message(msg, number=number, headers=True, raw=False, as_json=False)
                if echo:
                    msg.respond(msg.data, headers=msg.headers)
                else:
                    msg.respond(answer, headers=headers)
        _raise_if_failed(nc)
        await nc.flush(timeout=args.timeout)  # the last answers leave before the connection closes
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pub = commands.add_parser("pub", help="publish a message", description="Publish DATA (or standard input).")
    pub.add_argument("subject")
    pub.add_argument("data", nargs="?", help="payload (default: read standard input)")
    pub.add_argument("-H", "--header", action="append", type=arguments.header, metavar="K:V", help="header, repeatable")
    pub.add_argument("--reply", help="reply subject")
    pub.add_argument("--count", type=arguments.count, default=1, help="publish the message N times (default 1)")
    pub.add_argument("--sleep", type=arguments.pause, default=0.0, metavar="SEC", help="pause between messages")
    add_connection_options(pub, suppress=True)
    pub.set_defaults(run=lambda args: run(_publish(args)))

    sub = commands.add_parser("sub", help="print the messages of a subject", description="Subscribe and print.")
    sub.add_argument("subject")
    sub.add_argument("--queue", help="queue group")
    sub.add_argument("--count", type=arguments.count, default=0, help="stop after N messages (default: until Ctrl-C)")
    sub.add_argument("--headers", action="store_true", help="also print the headers")
    add_format_options(sub)
    add_connection_options(sub, suppress=True)
    sub.set_defaults(run=lambda args: run(_subscribe(args)))

    req = commands.add_parser("req", help="send a request and print the reply", description="Request and print.")
    req.add_argument("subject")
    req.add_argument("data", nargs="?", help="payload (default: read standard input)")
    req.add_argument("-H", "--header", action="append", type=arguments.header, metavar="K:V", help="header, repeatable")
    req.add_argument(
        "--replies", type=arguments.count, default=1, help="wait for up to N replies (within --timeout) instead of one"
    )
    add_format_options(req)
    add_connection_options(req, suppress=True)
    req.set_defaults(run=lambda args: run(_request(args)))

    reply = commands.add_parser(
        "reply",
        help="answer requests",
        description="Answer requests with DATA; without DATA (or with --echo) echo each request's payload and headers.",
    )
    reply.add_argument("subject")
    reply.add_argument("data", nargs="?", help="the answer (default: echo the request)")
    reply.add_argument("-H", "--header", action="append", type=arguments.header, metavar="K:V", help="answer header")
    reply.add_argument("--queue", help="queue group")
    reply.add_argument("--echo", action="store_true", help="answer with the request's own payload and headers")
    reply.add_argument("--count", type=arguments.count, default=0, help="stop after N requests (default: until Ctrl-C)")
    add_connection_options(reply, suppress=True)
    reply.set_defaults(run=lambda args: run(_reply(args)))
