"""``cnats obj``: the object store from the command line. Only ``obj add`` creates a bucket.
Uploads and downloads show their progress on a terminal (stderr) and stay quiet when it is not one."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from ..connection import NatsConnection
from ..errors import ObjectNotFoundError
from ..jetstream.api import StorageType
from ..kv import check_bucket
from . import arguments
from .kv import confirm
from .options import add_connection_options, open_connection
from .output import Progress, add_format_options, format_size, json_line, print_table, write_bytes, write_line
from .runtime import CliError, run, stop_on_signal

if TYPE_CHECKING:
    from ..objectstore import ObjectInfo, ObjectStore, ObjectStoreStatus

__all__ = ["register"]

_READ_SIZE = 128 * 1024


async def _existing(nc: NatsConnection, args: argparse.Namespace) -> ObjectStore:
    """The object store ``args.bucket``, which must exist."""
    return await nc.jetstream(timeout=args.timeout).views.os(check_bucket(args.bucket), bind_only=True)


def _print_status(status: ObjectStoreStatus, as_json: bool) -> None:
    if as_json:
        json_line(status)
        return
    rows = [
        ("Bucket", status.bucket),
        ("Description", status.description or "-"),
        ("TTL", f"{status.ttl:g} s" if status.ttl else "none"),
        ("Storage", status.storage.value),
        ("Replicas", str(status.replicas)),
        ("Size", format_size(status.size)),
        ("Sealed", "yes" if status.sealed else "no"),
        ("Compression", "s2" if status.compression else "none"),
    ]
    for name, value in rows:
        write_line(f"{name + ':':<13}{value}")


def _print_info(info: ObjectInfo, as_json: bool) -> None:
    if as_json:
        json_line(info)
        return
    link = info.options.link if info.options is not None else None
    rows = [
        ("Name", info.name),
        ("Bucket", info.bucket),
        ("Description", info.description or "-"),
        ("Size", f"{format_size(info.size)} ({info.size} bytes)"),
        ("Chunks", str(info.chunks)),
        ("Digest", info.digest or "-"),
        ("Modified", info.mtime.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Revision", str(info.revision)),
    ]
    if info.deleted:
        rows.append(("Deleted", "yes"))
    if link is not None:
        rows.append(("Link", f"{link.bucket}/{link.name}" if link.name else f"{link.bucket} (bucket)"))
    if info.metadata:
        rows.extend((f"Metadata {k}", v) for k, v in sorted(info.metadata.items()))
    if info.headers:
        rows.extend((f"Header {k}", ", ".join(v)) for k, v in info.headers.items())
    for name, value in rows:
        write_line(f"{name + ':':<13}{value}")


def _read_chunks(source: IO[bytes], progress: Progress) -> Iterator[bytes]:
    while chunk := source.read(_READ_SIZE):
        progress.advance(len(chunk))
        yield chunk


async def _put(nc: NatsConnection, args: argparse.Namespace) -> int:
    from ..objectstore import ObjectStoreMeta

    # The file is opened before anything is sent, so a missing file fails without touching the bucket.
    from_stdin = args.file == "-"
    if from_stdin and not args.object:
        raise CliError("--name is required when the object comes from standard input")
    name = args.object or os.path.basename(args.file)
    source: IO[bytes] = sys.stdin.buffer if from_stdin else open(args.file, "rb")  # noqa: SIM115 - closed below
    try:
        total = None if from_stdin else os.fstat(source.fileno()).st_size
        store = await _existing(nc, args)
        progress = Progress(f"put {name}", total)
        meta = ObjectStoreMeta(name=name, description=args.description)
        info = await store.put(meta, _read_chunks(source, progress), timeout=args.timeout)
        progress.finish()
    finally:
        if not from_stdin:
            source.close()
    _print_info(info, args.json)
    return 0


async def _get(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    result = await store.get(args.object)
    if result is None:
        raise ObjectNotFoundError(f"object not found: {args.object}")
    progress = Progress(f"get {args.object}", result.info.size)
    if args.output is None or args.output == "-":
        async for chunk in result:
            write_bytes(chunk)
            progress.advance(len(chunk))
        progress.finish()
        return 0
    # Written next to the target and renamed at the end: a failed or corrupt download never leaves a partial file
    # under the real name.
    partial = args.output + ".partial"
    try:
        with open(partial, "wb") as out:
            async for chunk in result:
                out.write(chunk)
                progress.advance(len(chunk))
        os.replace(partial, args.output)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    progress.finish()
    return 0


async def _info(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    info = await store.info(args.object)
    if info is None:
        raise ObjectNotFoundError(f"object not found: {args.object}")
    _print_info(info, args.json)
    return 0


async def _delete(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    info = await store.info(args.object)
    if info is None or info.deleted:
        raise ObjectNotFoundError(f"object not found: {args.object}")
    await store.delete(args.object)
    return 0


async def _list(nc: NatsConnection, args: argparse.Namespace) -> int:
    if args.bucket is None:
        jsm = await nc.jetstream_manager(timeout=args.timeout)
        async for status in jsm.streams.list_object_stores():
            if args.json:
                json_line(status)
            else:
                write_line(status.bucket)
        return 0
    store = await _existing(nc, args)
    infos = sorted(await store.list(), key=lambda info: info.name)
    if args.json:
        for info in infos:
            json_line(info)
    elif infos:
        rows = [[i.name, format_size(i.size), i.mtime.strftime("%Y-%m-%d %H:%M:%S")] for i in infos]
        print_table(["NAME", "SIZE", "MODIFIED (UTC)"], rows)
    return 0


def _print_change(info: ObjectInfo, as_json: bool) -> None:
    if as_json:
        json_line(info)
    elif info.deleted:
        write_line(f"[{info.revision}] DEL {info.bucket} > {info.name}")
    else:
        write_line(f"[{info.revision}] PUT {info.bucket} > {info.name}: {format_size(info.size)}")


async def _watch(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    watcher = await store.watch(include_history=not args.updates_only)
    seen = 0
    with stop_on_signal(watcher.stop):
        print(f"watching the object store {store.bucket}", file=sys.stderr, flush=True)
        async for info in watcher:
            if info is None:  # the end of the initial state
                continue
            _print_change(info, args.json)
            seen += 1
            if args.count and seen >= args.count:
                break
    watcher.stop()
    return 0


async def _seal(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    _print_status(await store.seal(), args.json)
    return 0


async def _status(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    _print_status(await store.status(), args.json)
    return 0


async def _remove(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await _existing(nc, args)
    confirm(f"delete the object store {store.bucket!r} and all its objects?", args.force)
    await store.destroy()
    return 0


async def _add(nc: NatsConnection, args: argparse.Namespace) -> int:
    store = await nc.jetstream(timeout=args.timeout).views.os(
        args.bucket,
        description=args.description,
        ttl=args.ttl,
        storage=StorageType(args.storage),
        replicas=args.replicas,
        max_bytes=args.max_bytes,
    )
    _print_status(await store.status(), args.json)
    return 0


_ACTIONS: dict[str, Any] = {
    "add": _add,
    "put": _put,
    "get": _get,
    "info": _info,
    "del": _delete,
    "ls": _list,
    "watch": _watch,
    "seal": _seal,
    "status": _status,
    "rm": _remove,
}


async def _obj(args: argparse.Namespace) -> int:
    if args.action == "put" and args.file != "-" and not os.path.isfile(args.file):
        raise CliError(f"file not found: {args.file}")  # before connecting: nothing to upload
    async with await open_connection(args) as nc:
        status: int = await _ACTIONS[args.action](nc, args)
        return status


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    obj = commands.add_parser("obj", help="object store", description="Object store operations (see docs/cli.md).")
    actions = obj.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(
        name: str, help: str, *, bucket: str = "bucket", json: bool = True, connection_name: bool = True
    ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        if bucket == "bucket":
            parser.add_argument("bucket")
        elif bucket == "optional":
            parser.add_argument("bucket", nargs="?", help="list this bucket's objects (default: list the buckets)")
        if json:
            add_format_options(parser, raw=False)
        add_connection_options(parser, suppress=True, name=connection_name)
        parser.set_defaults(run=lambda args: run(_obj(args)))
        return parser

    add = action("add", "create an object store (an existing one is left as it is)")
    add.add_argument("--ttl", type=float, default=0.0, metavar="SEC", help="expire objects after SEC seconds")
    add.add_argument("--replicas", type=int, default=1)
    add.add_argument("--storage", choices=["file", "memory"], default="file")
    add.add_argument("--max-bytes", type=int, default=-1, metavar="N", help="store size limit (default unlimited)")
    add.add_argument("--description")

    # Here --name is the object's name; the connection name goes before the command.
    put = action("put", "upload a file (- for standard input, with --name)", connection_name=False)
    put.add_argument("file")
    put.add_argument("--name", dest="object", help="object name (default: the file's base name)")
    put.add_argument("--description")

    get = action("get", "download an object (to standard output, or -o FILE)", json=False)
    get.add_argument("object", metavar="NAME")
    get.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    for name, help in (("info", "print an object's metadata"), ("del", "delete an object")):
        parser = action(name, help, json=name == "info")
        parser.add_argument("object", metavar="NAME")

    action("ls", "list the object stores, or the objects of BUCKET", bucket="optional")

    watch = action("watch", "print every object change (after the current objects) until Ctrl-C")
    watch.add_argument("--updates-only", action="store_true", help="only changes made from now on")
    watch.add_argument("--count", type=arguments.count, default=0, help="stop after N changes")

    action("seal", "make the store read-only")
    action("status", "print a store's configuration and state")
    rm = action("rm", "delete an object store", json=False)
    rm.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
