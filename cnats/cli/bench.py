"""``cnats bench``: the comparison table (cnats, its pure-Python core, nats-py, raw socket), a single workload on a
subject, the protocol cores side by side, or memory use. The measuring lives in
``cnats.benchmark``; this module only reads the options and prints."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
from typing import Any

from ..protocol import USES_CYTHON

__all__ = ["register"]


def _uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def _url(args: argparse.Namespace) -> str | None:
    # Only an explicit -s: without one, bench starts its own embedded server ($NATS_URL is not consulted, so a
    # quick run never lands on a shared server by accident).
    return args.servers[0] if args.servers else None


def _bench(args: argparse.Namespace) -> int:
    if args.protocol:
        from ..benchmark.protocol import format_protocol_table, run_protocol_bench

        frames = 20_000 if args.quick else 200_000
        core = "cython" if USES_CYTHON else "python"
        print(f"protocol cores, best of 5 runs of {frames} frames each (in use: {core})")
        print(format_protocol_table(run_protocol_bench(frames=frames, repeat=2 if args.quick else 5)))
        return 0
    from ..benchmark import harness

    uvloop = _uvloop_installed() and not args.no_uvloop
    if args.memory:
        return _bench_memory(args, harness, uvloop)
    url = _url(args)
    if args.websocket and (args.subject or url):
        print("error: --websocket runs the table against the embedded server (no SUBJECT, no -s)", file=sys.stderr)
        return 2
    if args.subject:
        return _bench_single(args, harness, url, uvloop)
    sizes = [args.size] if args.size else ([16] if args.quick else [16, 128, 1024])
    msgs = args.msgs or (5_000 if args.quick else 200_000)
    requests = 200 if args.quick else 5_000
    progress = sys.stderr if sys.stderr.isatty() and not args.json else None
    from ..benchmark import natsjs
    from ..benchmark.workloads import WORKLOADS

    # every row (the responder aside), or over WebSocket the core messaging ones; a quick run leaves out the heavy ones
    rows = harness.WEBSOCKET_WORKLOADS if args.websocket else [w for w in WORKLOADS if w != "responder"]
    names = [w for w in rows if not (args.quick and w in harness.HEAVY_WORKLOADS)]
    # --natsjs (or $CNATS_BENCH_NATSJS) adds the nats.js column; checked before anything runs
    with natsjs.installed_at(args.natsjs) if args.natsjs else contextlib.nullcontext():
        try:
            with_natsjs = natsjs.check() if natsjs.directory() else None
        except natsjs.NatsJsUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results = harness.run_matrix(
            url=url,
            sizes=sizes,
            msgs=msgs,
            requests=requests,
            workloads=names,
            uvloop=uvloop,
            progress=progress,
            repeat=args.repeat,
            websocket=args.websocket,
        )
    if args.json:
        print(harness.results_json(results, uvloop))
        return 0
    env = harness.environment(uvloop)
    where = url or "an embedded nats-server"
    if args.websocket:
        where += ", clients over WebSocket (the raw bound and the feeders over TCP)"
    print(
        f"cnats bench: {msgs} messages per run ({requests} requests), against {where}; event loop: "
        f"{env['event_loop']}; {env['processor']}, {env['cpus']} CPUs, Python {env['python']}"
        + (f"; {with_natsjs}" if with_natsjs else "")
    )
    print(harness.format_markdown(results) if args.markdown else harness.format_table(results))
    return 0


def _bench_memory(args: argparse.Namespace, harness: Any, uvloop: bool) -> int:
    from ..benchmark.memory import format_memory, measure_memory

    publishes = args.msgs or (200_000 if args.quick else 10_000_000)
    subscriptions = 1_000 if args.quick else 10_000
    with harness._server(_url(args)) as server_url:
        coro = measure_memory(server_url, publishes=publishes, subscriptions=subscriptions)
        if uvloop:
            import uvloop as _uvloop

            figures = _uvloop.run(coro)
        else:
            import asyncio

            figures = asyncio.run(coro)
    print(f"event loop: {'uvloop' if uvloop else 'asyncio'}")
    print(format_memory(figures))
    return 0


def _bench_single(args: argparse.Namespace, harness: Any, url: str | None, uvloop: bool) -> int:
    if args.pub < 0 or args.sub < 0 or (args.pub == 0 and args.sub == 0 and not args.request):
        print("error: give at least one publisher (--pub) or one subscriber (--sub)", file=sys.stderr)
        return 2
    baseline_column = {"nats-py": "nats-py", "pure": "cnats-pure"}.get(args.compare or "")
    reports = harness.run_single(
        url=url,
        subject=args.subject,
        pubs=args.pub,
        subs=args.sub,
        msgs=args.msgs or 100_000,
        size=args.size or 128,
        request=args.request,
        columns=("cnats", baseline_column) if baseline_column else ("cnats",),
        uvloop=uvloop,
    )
    result = reports["cnats"]
    if baseline_column:
        baseline = reports[baseline_column]
        ratio = result["msgs_per_s"] / baseline["msgs_per_s"] if baseline["msgs_per_s"] else 0.0
        if args.json:
            print(json.dumps({"cnats": result, "baseline": baseline, "ratio": ratio}))
        else:
            print(
                f"{_what(result)}: cnats {result['msgs_per_s']:,.0f} msgs/s, {args.compare} "
                f"{baseline['msgs_per_s']:,.0f} msgs/s, ratio {ratio:.2f}x (taking turns)"
            )
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        line = (
            f"{_what(result)}: {result['msgs']} msgs of {result['size']} B in {result['elapsed_s']:.3f} s: "
            f"{result['msgs_per_s']:,.0f} msgs/s, {result['bytes_per_s'] / 1e6:.1f} MB/s"
        )
        if result.get("pub_msgs_per_s") and result.get("sub_msgs_per_s"):
            line += f" (publishers {result['pub_msgs_per_s']:,.0f} msgs/s)"
        if result["latency_us"]:
            lat = result["latency_us"]
            line += f"; latency p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us"
        print(line)
    return 0


def _what(result: dict[str, Any]) -> str:
    """The mode, with its publishers and subscribers: ``pubsub (2 pub, 3 sub)``."""
    if result["mode"] == "request":
        return "request"
    return f"{result['mode']} ({result['pubs']} pub, {result['subs']} sub)"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmarks: without SUBJECT the full comparison table (cnats, its pure-Python core, nats-py, raw socket)",
        description="Without SUBJECT: the comparison table against an embedded nats-server (or -s URL). With SUBJECT: "
        "one workload. Progress is shown on a terminal only.",
    )
    bench.add_argument("subject", nargs="?", help="run one workload on this subject")
    bench.add_argument("--pub", type=int, default=1, help="publishers, sharing the messages (single-workload form)")
    bench.add_argument(
        "--sub", type=int, default=0, help="subscribers, each receiving every message (single-workload form)"
    )
    bench.add_argument("--msgs", type=int, default=0, help="messages per run")
    bench.add_argument("--size", type=int, default=0, help="payload size in bytes")
    bench.add_argument("--request", action="store_true", help="request/reply latency (single-workload form)")
    bench.add_argument("--compare", choices=["nats-py", "pure"], help="also run the baseline and give the ratio")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--markdown", action="store_true", help="the table as Markdown")
    bench.add_argument("--quick", action="store_true", help="a short smoke run")
    bench.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="measure each cell N times and keep the best (full table)"
    )
    bench.add_argument(
        "--no-uvloop", action="store_true", help="use the asyncio event loop even if uvloop is installed"
    )
    bench.add_argument("--protocol", action="store_true", help="measure only the two protocol cores, side by side")
    bench.add_argument("--memory", action="store_true", help="peak RSS while publishing, and the cost of subscriptions")
    bench.add_argument(
        "--websocket",
        action="store_true",
        help="the core messaging rows with the clients connected over ws:// (needs cnats[websocket])",
    )
    bench.add_argument(
        "--natsjs",
        metavar="DIR",
        help="add a nats.js column to the table, run by Node.js from DIR/node_modules/nats (`npm install --prefix DIR "
        "nats@2.29`); default: $CNATS_BENCH_NATSJS",
    )
    bench.add_argument(
        "-s",
        "--server",
        dest="servers",
        action="append",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="measure against this server instead of an embedded one",
    )
    bench.set_defaults(run=_bench)
