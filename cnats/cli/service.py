"""``cnats service``: discover ADR-32 services and read their info and statistics."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import NoRespondersError
from .options import add_connection_options, open_connection
from .output import add_format_options, json_line, print_table, write_line
from .runtime import CliError, run

if TYPE_CHECKING:
    from ..services import ServiceInfo, ServiceStats

__all__ = ["register"]


def _nobody(args: argparse.Namespace) -> str:
    if args.id:
        return f"no instance {args.id!r} of service {args.service_name!r} answered"
    if args.service_name:
        return f"no service named {args.service_name!r} answered"
    return "no service answered"


async def _collect(responses: AsyncIterator[Any], args: argparse.Namespace) -> list[Any]:
    try:
        return [response async for response in responses]
    except NoRespondersError:
        raise CliError(_nobody(args)) from None


def _print_info(info: ServiceInfo) -> None:
    write_line(f"{info.name} {info.version} ({info.id})")
    if info.description:
        write_line(f"  {info.description}")
    for key, value in sorted((info.metadata or {}).items()):
        write_line(f"  metadata {key}: {value}")
    if not info.endpoints:
        write_line("  no endpoints")
    else:
        rows = [[e.name, e.subject, e.queue_group] for e in info.endpoints]
        print_table(["ENDPOINT", "SUBJECT", "QUEUE"], rows, indent="  ")
    write_line()


def _print_stats(stats: ServiceStats) -> None:
    started = stats.started.strftime("%Y-%m-%d %H:%M:%S UTC")
    write_line(f"{stats.name} {stats.version} ({stats.id}), started {started}")
    if not stats.endpoints:
        write_line("  no endpoints")
    for e in stats.endpoints:
        average = e.average_processing_time / 1e6
        line = f"  {e.name} ({e.subject}): {e.num_requests} requests, {e.num_errors} errors, average {average:.3f} ms"
        if e.last_error:
            line += f", last error: {e.last_error}"
        write_line(line)
    write_line()


async def _service(args: argparse.Namespace) -> int:
    async with await open_connection(args) as nc:
        client = nc.services.client(max_wait=args.timeout)
        if args.verb in ("ping", "ls"):
            found = await _collect(await client.ping(args.service_name, args.id), args)
        elif args.verb == "info":
            found = await _collect(await client.info(args.service_name, args.id), args)
        else:
            found = await _collect(await client.stats(args.service_name, args.id), args)
    found.sort(key=lambda r: (r.name, r.version, r.id))
    if args.json:
        for response in found:
            json_line(response)
    elif args.verb in ("ping", "ls"):
        print_table(["NAME", "VERSION", "ID"], [[r.name, r.version, r.id] for r in found])
    elif args.verb == "info":
        for info in found:
            _print_info(info)
    else:
        for stats in found:
            _print_stats(stats)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = commands.add_parser(
        "service",
        help="discover services (ADR-32)",
        description="Ask the running services (all, one name, or one instance) for their identity, info or stats.",
    )
    verbs = service.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, help in (
        ("ls", "list the running service instances (the same as ping)"),
        ("ping", "list the running service instances"),
        ("info", "describe each service instance and its endpoints"),
        ("stats", "print each instance's request and error counts"),
    ):
        parser = verbs.add_parser(verb, help=help, description=help[0].upper() + help[1:] + ".")
        parser.add_argument("service_name", nargs="?", metavar="NAME", help="only this service")
        parser.add_argument("id", nargs="?", metavar="ID", help="only this instance of NAME")
        add_format_options(parser, raw=False)
        add_connection_options(parser, suppress=True)
        parser.set_defaults(run=lambda args: run(_service(args)))
