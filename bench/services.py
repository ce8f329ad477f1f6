"""Requests per second of one service endpoint: cnats services vs nats-py's ``nats.micro``, in one run.

    python bench/services.py [--count 100000] [--window 100] [--size 16] [--rounds 3] [--no-uvloop]

A ``NatsServer`` is started here. Each service runs alone in its own process (an echo endpoint: it answers every
request with its payload); the requester is one cnats connection in this process that keeps ``--window`` requests
in flight (a publish with a reply subject per request, answers counted by a plain callback that sends the next
request) until ``--count`` answers came back. The same requester measures every service, so the figures differ
only by the service side. Rounds alternate between the services; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

SERVICES = {
    "cnats (plain handler)": "cnats",
    "cnats (async handler)": "cnats-async",
    "nats-py micro": "nats-py",
}
REFERENCE = "nats-py micro"
ENDPOINT = "bench.echo"


def _use_uvloop(enabled: bool) -> None:
    if not enabled:
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- the service processes -------------------------------------------------------------------------------------------
async def serve_cnats(url: str, coroutine_handler: bool) -> None:
    import cnats
    from cnats.services import ServiceMsg

    nc = await cnats.connect(url)
    service = await nc.services.add("bench", "1.0.0")

    def echo(msg: ServiceMsg) -> None:
        msg.respond(msg.data)

    async def echo_async(msg: ServiceMsg) -> None:
        msg.respond(msg.data)

    service.add_endpoint("echo", echo_async if coroutine_handler else echo, subject=ENDPOINT)
    await nc.flush()
    await _ready_then_wait()
    await service.stop()
    await nc.close()


async def serve_nats_py(url: str) -> None:
    import nats
    from nats.micro import add_service
    from nats.micro.request import Request

    nc = await nats.connect(url)
    service = await add_service(nc, name="bench", version="1.0.0")

    async def echo(request: Request) -> None:
        await request.respond(request.data)

    await service.add_endpoint(name="echo", subject=ENDPOINT, handler=echo)
    await nc.flush()
    await _ready_then_wait()
    await service.stop()
    await nc.close()


async def _ready_then_wait() -> None:
    """Say READY, then serve until the parent closes our stdin."""
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


def run_service(kind: str, url: str, uvloop: bool) -> None:
    _use_uvloop(uvloop)
    if kind == "nats-py":
        asyncio.run(serve_nats_py(url))
    else:
        asyncio.run(serve_cnats(url, coroutine_handler=kind == "cnats-async"))


class ServiceProcess:
    def __init__(self, kind: str, url: str, uvloop: bool) -> None:
        args = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--url", url]
        if not uvloop:
            args.append("--no-uvloop")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
        )
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.strip() == "READY":
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"the service process did not start (exit code {self.proc.poll()})")

    def cpu_seconds(self) -> float:
        """User + system CPU time the service process used so far (Linux /proc; 0.0 elsewhere)."""
        return _cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the requester ---------------------------------------------------------------------------------------------------
async def measure(url: str, count: int, window: int, size: int) -> float:
    """Answers per second of ``count`` requests to ENDPOINT with ``window`` in flight."""
    import cnats
    from cnats import Msg

    nc = await cnats.connect(url)
    loop = asyncio.get_running_loop()
    payload = b"x" * size
    inbox = cnats.create_inbox()
    state = {"sent": 0, "received": 0}
    done: asyncio.Future[None] = loop.create_future()
    publish = nc.publish

    def on_answer(msg: Msg) -> None:
        state["received"] += 1
        if state["sent"] < count:
            state["sent"] += 1
            publish(ENDPOINT, payload, reply=inbox)
        elif state["received"] >= count and not done.done():
            done.set_result(None)

    nc.subscribe(inbox, callback=on_answer, pending_msgs_limit=None, pending_bytes_limit=None)
    await nc.flush()
    await nc.request(ENDPOINT, payload, timeout=10)  # the service answers
    start = time.perf_counter()
    for _ in range(min(window, count)):
        state["sent"] += 1
        publish(ENDPOINT, payload, reply=inbox)
    await asyncio.wait_for(done, timeout=max(60.0, count / 1000))
    elapsed = time.perf_counter() - start
    await nc.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    parser.add_argument("--serve", choices=sorted(set(SERVICES.values())), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_service(args.serve, args.url, args.uvloop)
        return

    from cnats.testing import NatsServer

    _use_uvloop(args.uvloop)
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with NatsServer() as server:
        for _ in range(args.rounds):
            for label, kind in SERVICES.items():
                service = ServiceProcess(kind, server.url, args.uvloop)
                try:
                    service.wait_ready()
                    asyncio.run(measure(server.url, min(args.count, 5_000), args.window, args.size))  # warm-up
                    cpu_before = service.cpu_seconds()
                    rate = asyncio.run(measure(server.url, args.count, args.window, args.size))
                    cpu_us = (service.cpu_seconds() - cpu_before) / args.count * 1e6
                finally:
                    service.stop()
                if rate > best.get(label, 0.0):
                    best[label] = rate
                    cpu[label] = cpu_us
                print(f"  {label:<24} {rate:>12,.0f} req/s  service CPU {cpu_us:6.1f} us/req", flush=True)
    reference = best[REFERENCE]
    loop_name = "uvloop" if args.uvloop else "asyncio"
    setup = f"{args.count} requests of {args.size} B, {args.window} in flight, {loop_name}, best of {args.rounds}"
    print(f"\nservice endpoint: {setup}")
    print(f"{'service':<24} {'req/s':>12} {'vs nats-py':>11} {'service CPU/req':>16}")
    for label in SERVICES:
        print(f"{label:<24} {best[label]:>12,.0f} {best[label] / reference:>10.2f}x {cpu[label]:>13.1f} us")


if __name__ == "__main__":
    main()
