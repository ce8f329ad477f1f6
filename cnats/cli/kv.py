"""``cnats kv``: the Key-Value store from the command line. Only ``kv add`` creates a bucket;
every other subcommand needs an existing one (a missing bucket is an error, never created by accident)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..connection import NatsConnection
from ..jetstream.api import StorageType
from ..kv import KV, KvEntry, KvOperation, KvStatus, check_bucket
from . import arguments
from .options import add_connection_options, open_connection
from .output import add_format_options, format_size, json_line, write_bytes, write_line
from .runtime import CliError, read_stdin, run, stop_on_signal

__all__ = ["confirm", "register"]


async def _existing(nc: NatsConnection, args: argparse.Namespace) -> KV:
    """The bucket ``args.bucket``, which must exist."""
    return await nc.jetstream(timeout=args.timeout).views.kv(check_bucket(args.bucket), bind_only=True)


def confirm(question: str, force: bool) -> None:
    """Ask before destroying data, when someone is at the terminal to answer; scripts (no TTY) and ``--force``
    proceed."""
    if force or not sys.stdin or not sys.stdin.isatty():
        return
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("cancelled")


def entry_dict(entry: KvEntry) -> dict[str, Any]:
    return {
        "bucket": entry.bucket,
        "key": entry.key,
        "value": entry.string(),
        "revision": entry.revision,
        "created": entry.created,
        "delta": entry.delta,
        "operation": entry.operation,
        "length": entry.length,
    }


def _print_entry(entry: KvEntry, as_json: bool) -> None:
    if as_json:
        json_line(entry_dict(entry))
    elif entry.operation is KvOperation.PUT:
        write_line(f"[{entry.revision}] {entry.operation.value} {entry.bucket} > {entry.key}: {entry.string()}")
    else:
        write_line(f"[{entry.revision}] {entry.operation.value} {entry.bucket} > {entry.key}")


def _print_status(status: KvStatus, as_json: bool) -> None:
    if as_json:
        json_line(status)
        return
    unlimited = "unlimited"
    rows = [
        ("Bucket", status.bucket),
        ("Description", status.description or "-"),
        ("Values", str(status.values)),
        ("History", str(status.history)),
        ("TTL", f"{status.ttl:g} s" if status.ttl else "none"),
        ("Limit markers", f"{status.limit_marker_ttl:g} s" if status.limit_marker_ttl else "none"),
        ("Storage", status.storage.value),
        ("Replicas", str(status.replicas)),
        ("Size", format_size(status.size)),
        ("Max bytes", unlimited if status.max_bytes < 0 else format_size(status.max_bytes)),
        ("Max value size", unlimited if status.max_value_size < 0 else format_size(status.max_value_size)),
        ("Compression", "s2" if status.compression else "none"),
        ("Location", status.bucket_location or "-"),
    ]
    for name, value in rows:
        write_line(f"{name + ':':<16}{value}")


def _value(args: argparse.Namespace) -> bytes:
    return args.value.encode() if args.value is not None else read_stdin()


async def _kv(args: argparse.Namespace) -> int:
    if args.action in ("put", "create", "update"):
        args.data = _value(args)  # read before connecting: nothing reaches the server without a value
    async with await open_connection(args) as nc:
        if args.action == "ls":
            jsm = await nc.jetstream_manager(timeout=args.timeout)
            async for status in jsm.streams.list_kvs():
                if args.json:
                    json_line(status)
                else:
                    write_line(status.bucket)
            return 0
        if args.action == "add":
            js = nc.jetstream(timeout=args.timeout)
            kv = await js.views.kv(
                args.bucket,
                history=args.history,
                ttl=args.ttl,
                replicas=args.replicas,
                storage=StorageType(args.storage),
                max_bytes=args.max_bytes,
                max_value_size=args.max_value_size,
                description=args.description,
                limit_marker_ttl=args.limit_marker_ttl,
            )
            _print_status(await kv.status(), args.json)
            return 0
        kv = await _existing(nc, args)
        return await _ACTIONS[args.action](kv, args)


async def _write(kv: KV, args: argparse.Namespace) -> int:
    if args.action == "put":
        revision = await kv.put(args.key, args.data)
    elif args.action == "create":
        revision = await kv.create(args.key, args.data)
    else:
        revision = await kv.update(args.key, args.data, args.revision)
    write_line(str(revision))
    return 0


async def _get(kv: KV, args: argparse.Namespace) -> int:
    entry = await kv.get(args.key, revision=args.revision)
    if entry is None or (args.revision is None and entry.operation is not KvOperation.PUT):
        where = f" at revision {args.revision}" if args.revision is not None else ""
        raise CliError(f"key not found: {args.key}{where}")
    if args.json:
        json_line(entry_dict(entry))
    elif args.raw:
        write_bytes(entry.value)
    else:
        created = entry.created.strftime("%Y-%m-%d %H:%M:%S UTC")
        write_line(f"{entry.bucket} > {entry.key} revision {entry.revision} {entry.operation.value} @ {created}")
        write_line()
        write_line(entry.string())
    return 0


async def _delete(kv: KV, args: argparse.Namespace) -> int:
    if args.action == "purge":
        await kv.purge(args.key)
    else:
        await kv.delete(args.key)
    return 0


async def _keys(kv: KV, args: argparse.Namespace) -> int:
    async for key in await kv.keys(args.filter):
        write_line(key)
    return 0


async def _history(kv: KV, args: argparse.Namespace) -> int:
    async for entry in await kv.history(args.key):
        _print_entry(entry, args.json)
    return 0


async def _watch(kv: KV, args: argparse.Namespace) -> int:
    watcher = await kv.watch(args.key, include_history=args.history, updates_only=args.updates_only)
    seen = 0
    with stop_on_signal(watcher.stop):
        print(f"watching {kv.bucket} (keys {args.key})", file=sys.stderr, flush=True)
        async for entry in watcher:
            _print_entry(entry, args.json)
            seen += 1
            if args.count and seen >= args.count:
                break
    watcher.stop()
    return 0


async def _status(kv: KV, args: argparse.Namespace) -> int:
    _print_status(await kv.status(), args.json)
    return 0


async def _remove(kv: KV, args: argparse.Namespace) -> int:
    confirm(f"delete the bucket {kv.bucket!r} and all its keys?", args.force)
    await kv.destroy()
    return 0


_ACTIONS = {
    "put": _write,
    "create": _write,
    "update": _write,
    "get": _get,
    "del": _delete,
    "purge": _delete,
    "keys": _keys,
    "history": _history,
    "watch": _watch,
    "status": _status,
    "rm": _remove,
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kv = commands.add_parser("kv", help="Key-Value store", description="Key-Value store operations (see docs/cli.md).")
    actions = kv.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        add_connection_options(parser, suppress=True)
        parser.set_defaults(run=lambda args: run(_kv(args)))
        return parser

    add = action("add", "create a bucket (an existing one is left as it is)")
    add.add_argument("bucket")
    add.add_argument("--history", type=int, default=1, help="revisions kept per key (1-64, default 1)")
    add.add_argument("--ttl", type=float, default=0.0, metavar="SEC", help="expire values after SEC seconds")
    add.add_argument("--replicas", type=int, default=1)
    add.add_argument("--storage", choices=["file", "memory"], default="file")
    add.add_argument("--max-bytes", type=int, default=-1, metavar="N", help="bucket size limit (default unlimited)")
    add.add_argument("--max-value-size", type=int, default=-1, metavar="N", help="value size limit")
    add.add_argument("--description")
    add.add_argument(
        "--limit-marker-ttl",
        type=float,
        metavar="SEC",
        help="leave a marker for SEC seconds where a key expires or is purged (enables per-key TTLs)",
    )
    add_format_options(add, raw=False)

    for name, help in (
        ("put", "write a value (prints the new revision)"),
        ("create", "write a value only if the key does not exist (prints the revision)"),
    ):
        writer = action(name, help)
        writer.add_argument("bucket")
        writer.add_argument("key")
        writer.add_argument("value", nargs="?", help="the value (default: read standard input)")

    update = action("update", "write a value only if the key is still at revision REV (prints the new one)")
    update.add_argument("bucket")
    update.add_argument("key")
    update.add_argument("value")
    update.add_argument("revision", type=int)

    get = action("get", "print a key's value")
    get.add_argument("bucket")
    get.add_argument("key")
    get.add_argument("--revision", type=int, help="this revision instead of the latest")
    add_format_options(get)

    for name, help in (("del", "delete a key (its history is kept)"), ("purge", "delete a key and its history")):
        remover = action(name, help)
        remover.add_argument("bucket")
        remover.add_argument("key")

    keys = action("keys", "list the keys")
    keys.add_argument("bucket")
    keys.add_argument("filter", nargs="?", default=">", help="key filter, may use * and > (default: all)")

    history = action("history", "print every retained revision")
    history.add_argument("bucket")
    history.add_argument("key", nargs="?", default=">", help="key or filter (default: all)")
    add_format_options(history, raw=False)

    watch = action("watch", "print the latest value of each key, then every change, until Ctrl-C")
    watch.add_argument("bucket")
    watch.add_argument("key", nargs="?", default=">", help="key or filter (default: all)")
    when = watch.add_mutually_exclusive_group()
    when.add_argument("--history", action="store_true", help="start with every retained revision")
    when.add_argument("--updates-only", action="store_true", help="only changes made from now on")
    watch.add_argument("--count", type=arguments.count, default=0, help="stop after N entries")
    add_format_options(watch, raw=False)

    status = action("status", "print a bucket's configuration and state")
    status.add_argument("bucket")
    add_format_options(status, raw=False)

    rm = action("rm", "delete a bucket")
    rm.add_argument("bucket")
    rm.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")

    ls = action("ls", "list the buckets")
    add_format_options(ls, raw=False)
