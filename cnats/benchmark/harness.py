"""Runs the workloads in worker processes and prints cnats, its pure-Python twin, nats-py and the raw-socket bound
side by side, as ratios from one run (DESIGN.md: only ratios travel between machines)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from . import natsjs
from . import workloads as wl
from .consuming import BATCH as CONSUME_WINDOW
from .consuming import CONSUMING
from .rawsocket import RawPublisher, publish_stream
from .sessions import REQUEST_SUBJECT

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds the cnats package

__all__ = ["CLIENTS", "Result", "format_markdown", "format_table", "run_matrix", "run_single"]

RAW_WINDOW = "raw-window"
RAW_CLIENTS = ("raw", RAW_WINDOW)

# Table columns: name -> (workload client, environment overrides)
CLIENTS: dict[str, tuple[str, dict[str, str]]] = {
    "cnats": ("cnats", {"CNATS_NO_EXTENSIONS": ""}),
    "cnats-pure": ("cnats", {"CNATS_NO_EXTENSIONS": "1"}),
    "nats-py": ("nats-py", {}),
    "raw": ("raw", {}),
    # not a column: the consume() rows' like-for-like reference, shown under the table (consuming.py)
    RAW_WINDOW: (RAW_WINDOW, {}),
    # Node.js, only when an installation is named (natsjs.py); not a column by default
    natsjs.COLUMN: (natsjs.COLUMN, {}),
}
SUB_WORKLOADS = {"sub (callback)", "sub (coroutine)", "sub (async for)"}
REQUEST_WORKLOADS = {"request", "request x100", "request x100, 200k subs"}
# rows a --quick run leaves out: setting them up takes longer than the whole quick table
HEAVY_WORKLOADS = {"request x100, 200k subs"}
JS_WORKLOADS = {"js publish", "kv put", "kv get"}
# counted like messages: a consumer or a watcher drains many stored messages quickly
BULK_JS_WORKLOADS = {"js publish (async)", *CONSUMING, "kv watch"}
SERVER_CONFIG = 'max_pending: 1GB\nwrite_deadline: "30s"\n'
# the rows of a --websocket table: core messaging (the clients connect over ws://; feeders and the raw bound stay
# on TCP, which makes the raw figure a bound still: WebSocket framing only adds work)
WEBSOCKET_WORKLOADS = (
    "pub",
    "sub (callback)",
    "sub (coroutine)",
    "sub (async for)",
    "pub+sub",
    "request",
    "request x100",
)


@dataclass
class Result:
    workload: str
    size: int
    figures: dict[str, float | None] = field(default_factory=dict)  # column -> msgs/s (None: not measured)
    latency_us: dict[str, dict[str, float] | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def ratio(self, a: str, b: str) -> float | None:
        x, y = self.figures.get(a), self.figures.get(b)
        return x / y if x and y else None


class _Worker:
    """One workload in a child process; the child prints READY when it is listening, then one JSON line."""

    def __init__(
        self,
        workload: str,
        client: str,
        env: dict[str, str],
        url: str,
        msgs: int,
        size: int,
        uvloop: bool,
        subject: str,
        *,
        sliced: bool = False,
    ) -> None:
        full_env = {**os.environ, **env}
        if not full_env.get("CNATS_NO_EXTENSIONS"):
            full_env.pop("CNATS_NO_EXTENSIONS", None)
        args = [
            sys.executable,
            "-m",
            "cnats.benchmark.worker",
            workload,
            client,
            url,
            str(msgs),
            str(size),
            "1" if uvloop else "0",
            subject,
            *(["sliced"] if sliced else []),
        ]
        if client == natsjs.COLUMN:  # a Node.js worker speaking the same protocol
            args = natsjs.command(workload, url, msgs, size, subject, sliced=sliced)
        # Run where this very cnats lives: `python -m` puts the working directory first on sys.path, and a source
        # checkout there (without its compiled core) would otherwise shadow the installed package.
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if sliced else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
            cwd=_PACKAGE_ROOT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        line = self._readline(timeout)
        if line.strip() != "READY":
            raise RuntimeError(f"worker did not start: {line.strip() or self._stderr()}")

    def result(self, timeout: float = 600.0) -> dict[str, Any]:
        line = self._readline(timeout)
        self.proc.wait(timeout=30)
        if not line:
            raise RuntimeError(f"worker failed: {self._stderr()}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def run_slice(self, n: int, feed: Callable[[], object] | None = None, timeout: float = 600.0) -> dict[str, Any]:
        """Sliced form: ``n`` more operations; their seconds and latencies. A subscriber answers ARMED first, and
        ``feed()`` then publishes its messages."""
        self.begin_slice(n)
        if feed is not None:
            self.wait_armed(timeout)
            feed()
        return self.slice_result(timeout)

    def begin_slice(self, n: int) -> None:
        """Sliced form, in steps (several workers started together): ask for ``n`` more operations."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()

    def wait_armed(self, timeout: float = 30.0) -> None:
        armed = self._readline(timeout)
        if armed.strip() != "ARMED":
            raise RuntimeError(f"worker failed: {armed.strip() or self._stderr()}")

    def slice_result(self, timeout: float = 600.0) -> dict[str, Any]:
        line = self._readline(timeout)
        if not line:
            raise RuntimeError(f"worker failed: {self._stderr()}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def finish(self) -> None:
        """Sliced form: close the session (deleting what it created on the server) and wait for the exit."""
        if self.proc.stdin is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write("\n")
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(_readline(self.proc.stdout)), daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self.stop()
            raise TimeoutError("benchmark worker timed out")
        return box[0]

    def _stderr(self) -> str:
        assert self.proc.stderr is not None
        self.stop()
        return self.proc.stderr.read()[-2000:]


def _readline(stream: IO[str] | None) -> str:
    return stream.readline() if stream is not None else ""


def _available(client: str) -> bool:
    if client == natsjs.COLUMN:
        return natsjs.directory() is not None
    if client == "nats-py":
        return importlib.util.find_spec("nats") is not None
    if client == "cnats":
        return True
    return client in RAW_CLIENTS


def _measure(
    workload: str,
    column: str,
    url: str,
    msgs: int,
    size: int,
    uvloop: bool,
    subject: str,
    publisher_subject: str | None = None,
    client_url: str | None = None,
) -> dict[str, Any]:
    """``url`` is the server's TCP URL (feeders use it); ``client_url`` the one the measured client connects to,
    when it is another (a WebSocket URL)."""
    client, env = CLIENTS[column]
    worker = _Worker(workload, client, env, _url_for(client, url, client_url), msgs, size, uvloop, subject)
    try:
        if workload in SUB_WORKLOADS:
            worker.wait_ready()
            publish_stream(url, msgs, size, publisher_subject or subject)
        return worker.result()
    finally:
        worker.stop()


SLICES = 10  # turns per client in a sliced measurement
# workload -> the workload each client also runs in the same turns, to be compared within one run (a note under the
# table): requests among 200,000 idle subscriptions against the same requests without them
SLICED_REFERENCES = {"request x100, 200k subs": "request x100"}


def reference_key(column: str, reference: str) -> str:
    """The figure's key of ``column``'s reference session (in ``Result.figures``, and so in ``--json``)."""
    return f"{column} ({reference})"


def _url_for(client: str, url: str, client_url: str | None) -> str:
    """The URL a worker connects to: the raw-socket bound always speaks plain TCP."""
    return url if client_url is None or client in RAW_CLIENTS else client_url


def _measure_sliced(
    workload: str,
    columns: Sequence[str],
    url: str,
    msgs: int,
    size: int,
    uvloop: bool,
    client_url: str | None = None,
) -> dict[str, dict[str, Any] | Exception]:
    """One session per client, open side by side; the clients take turns for ``SLICES`` slices of ``msgs // SLICES``
    operations (the order rotating every turn), so a slow spell of the machine hits every client alike. Each
    client's figure is its operations over its own time.

    A workload with a reference (``SLICED_REFERENCES``) also runs a session of that reference per client, in the
    same turns, as column ``reference_key(column, reference)``: the two are then compared within one run."""
    out: dict[str, dict[str, Any] | Exception] = {}
    workers: dict[str, _Worker] = {}
    reference = SLICED_REFERENCES.get(workload)
    lanes = {column: (workload, column) for column in columns}
    if reference is not None:
        lanes |= {reference_key(column, reference): (reference, column) for column in columns}
    subjects = {key: _subject_for(name, column) for key, (name, column) in lanes.items()}
    # subscribers are fed by one connection each, kept open: a connect per slice would be timed with the slice
    feeders = {key: RawPublisher(url) for key in lanes} if workload in SUB_WORKLOADS else {}
    try:
        for key, (name, column) in lanes.items():
            client, env = CLIENTS[column]
            where = _url_for(client, url, client_url)
            worker = _Worker(name, client, env, where, msgs, size, uvloop, subjects[key], sliced=True)
            try:
                worker.wait_ready()
            except Exception as exc:  # noqa: BLE001 - one failed client must not lose the row
                worker.stop()
                out[key] = exc
                continue
            workers[key] = worker
        per_slice = max(1, msgs // SLICES)
        done = {column: 0 for column in workers}
        elapsed = {column: 0.0 for column in workers}
        latencies: dict[str, list[float]] = {column: [] for column in workers}
        names = list(workers)
        for turn in range(SLICES + 1):  # turn 0 warms every session up and is not counted
            shift = turn % max(1, len(names))
            for column in names[shift:] + names[:shift]:
                if column in out:
                    continue
                count = max(1, per_slice // 5) if turn == 0 else per_slice
                feeder = feeders.get(column)
                feed = functools.partial(feeder.publish, count, size, subjects[column]) if feeder else None
                try:
                    data = workers[column].run_slice(count, feed)
                except Exception as exc:  # noqa: BLE001
                    out[column] = exc
                    continue
                if turn:
                    done[column] += per_slice
                    elapsed[column] += data["elapsed_s"]
                    latencies[column].extend(data["latencies_us"])
        for column in names:
            if column not in out:
                out[column] = wl.Measurement(done[column], elapsed[column], latencies[column]).to_dict()
    finally:
        for worker in workers.values():
            worker.finish()
        for feeder in feeders.values():
            feeder.close()
    return out


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    with _servers(url, websocket=False) as (server_url, _):
        yield server_url


@contextlib.contextmanager
def _servers(url: str | None, *, websocket: bool) -> Iterator[tuple[str, str | None]]:
    """The server's TCP URL, and its WebSocket URL with ``websocket`` (an embedded server only)."""
    if url:
        if websocket:
            raise ValueError("--websocket measures against the embedded server only")
        yield url, None
        return
    from ..testing import NatsServer

    with NatsServer(jetstream=True, config=SERVER_CONFIG, websocket=websocket) as server:
        yield server.url, server.ws_url if websocket else None


@contextlib.contextmanager
def _responder(url: str, uvloop: bool) -> Iterator[None]:
    worker = _Worker("responder", "cnats", CLIENTS["cnats"][1], url, 0, 0, uvloop, REQUEST_SUBJECT)
    try:
        worker.wait_ready()
        yield
    finally:
        worker.stop()


def run_matrix(
    *,
    url: str | None = None,
    sizes: Sequence[int] = (16, 128, 1024),
    msgs: int = 200_000,
    requests: int = 5_000,
    workloads: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    uvloop: bool = False,
    progress: IO[str] | None = None,
    repeat: int = 1,
    websocket: bool = False,
) -> list[Result]:
    """Every workload for every size and client, each client in a worker process of its own; session workloads with
    the clients taking turns in slices (``_measure_sliced``), ``kv watch`` one client after the other. With
    ``repeat`` > 1 each cell is measured that many times and keeps its best figure: interference from other
    processes only ever slows a run down, so the best run is the closest to what the client itself can do.

    ``columns`` defaults to every client, nats.js only when ``$CNATS_BENCH_NATSJS`` names its installation (raises
    :class:`~cnats.benchmark.natsjs.NatsJsUnavailable` when nats.js is asked for and cannot run).

    ``websocket``: the clients connect over ws:// to the embedded server's WebSocket listener (the core messaging
    rows of ``WEBSOCKET_WORKLOADS``; nats.js has no column there, its Node.js client speaks TCP only)."""
    if workloads is None:
        workloads = WEBSOCKET_WORKLOADS if websocket else [w for w in wl.WORKLOADS if w != "responder"]
    names = list(workloads)
    if columns is None:
        columns = [c for c in CLIENTS if c != natsjs.COLUMN or (natsjs.directory() is not None and not websocket)]
    if natsjs.COLUMN in columns:
        natsjs.check()
    results: list[Result] = []
    with _servers(url, websocket=websocket) as (server_url, client_url):
        for size in sizes:
            with _responder(server_url, uvloop):
                for name in names:
                    result = Result(name, size)
                    if name in REQUEST_WORKLOADS:
                        # 100 in flight run at 100k+/s: slices of 5,000 last long enough to be measured
                        count = requests * (10 if name.startswith("request x100") else 1)
                    elif name in JS_WORKLOADS:
                        count = requests
                    elif name in BULK_JS_WORKLOADS:
                        count = max(1, msgs // 4)
                    else:
                        count = msgs
                    for _ in range(max(1, repeat)):
                        runnable = []
                        for column in columns:
                            client = CLIENTS[column][0]
                            if not _has_workload(client, name) or not _available(client):
                                result.figures[column] = None
                            elif column not in result.errors:
                                runnable.append(column)
                        if name in wl.SESSIONS:
                            if progress is not None:
                                progress.write(f"\r{name} {size} B (clients taking turns)...{' ' * 20}")
                                progress.flush()
                            for column, data in _measure_sliced(
                                name, runnable, server_url, count, size, uvloop, client_url
                            ).items():
                                _record(result, column, data)
                            continue
                        for column in runnable:
                            if progress is not None:
                                progress.write(f"\r{name} {size} B {column}...{' ' * 20}")
                                progress.flush()
                            try:
                                data = _measure(
                                    name, column, server_url, count, size, uvloop, _subject_for(name), None, client_url
                                )
                            except Exception as exc:  # noqa: BLE001 - one failed cell must not lose the table
                                data = exc
                            _record(result, column, data)
                    results.append(result)
    if progress is not None:
        progress.write("\r" + " " * 60 + "\r")
    return results


def _has_workload(client: str, workload: str) -> bool:
    return workload in natsjs.WORKLOADS if client == natsjs.COLUMN else client in wl.WORKLOADS[workload]


def _record(result: Result, column: str, data: dict[str, Any] | Exception) -> None:
    """Keep a cell's best figure (with its latencies) over repeated measurements."""
    if isinstance(data, Exception):
        result.figures[column] = None
        result.errors[column] = str(data)
        return
    rate = data["msgs"] / data["elapsed_s"] if data["elapsed_s"] else None
    best = result.figures.get(column)
    if best is None or (rate is not None and rate > best):
        result.figures[column] = rate
        result.latency_us[column] = data["latency_us"]


def _subject_for(workload: str, column: str | None = None) -> str:
    """The workload's subject; with sessions open side by side, one per client (a slice feeds only its client)."""
    if workload in REQUEST_WORKLOADS:
        return REQUEST_SUBJECT
    return wl.SUBJECT if column is None else f"{wl.SUBJECT}.{column}"


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    return f"{value / 1e3:.1f} k/s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _bound_ratio(result: Result, column: str) -> str:
    """A client's share of the raw bound; a figure above its bound is flagged, not printed as a ratio (the bound
    was not one in that run: say, a slow spell of the machine during its turn)."""
    ratio = result.ratio(column, "raw")
    return "above bound!" if ratio is not None and ratio > 1.0 else _ratio(ratio)


# Rows whose clients do not run the same mode: said under the table, so no ratio is read as like for like.
NOTES = {
    "sub (callback)": "cnats: a plain function callback; nats-py: a coroutine callback (the only kind it takes)",
    "js consume": "nats-py: its ordered push consumer (it has no ordered pull consumer)",
    "js consume (5k)": "5,000 messages per pull; nats-py: its ordered push consumer, as above",
    "js consume (ack)": "nats-py: its fetch loop (it has no continuous pull consume)",
    "js consume (ack, 5k)": "5,000 messages per pull; nats-py: its fetch loop, 5,000 per fetch",
}


def _notes(results: list[Result]) -> list[str]:
    seen = dict.fromkeys(r.workload for r in results if r.workload in NOTES)
    flagged = [f"{r.workload} {r.size} B" for r in results if (r.ratio("cnats", "raw") or 0.0) > 1.0]
    lines = [f"- {workload}: {NOTES[workload]}" for workload in seen]
    if _with_natsjs(results):
        js_seen = dict.fromkeys(r.workload for r in results if r.workload in natsjs.NOTES)
        lines += [f"- {workload}: {natsjs.NOTES[workload]}" for workload in js_seen]
    lines += _window_references(results)
    lines += _sliced_references(results)
    if flagged:
        lines.append(f"- above bound!: cnats measured faster than its raw bound in {', '.join(flagged)} (rerun)")
    return lines


def _sliced_references(results: list[Result]) -> list[str]:
    """Each client's figure against its own reference session, measured in the same turns."""
    lines = []
    for r in results:
        reference = SLICED_REFERENCES.get(r.workload)
        if reference is None:
            continue
        shares = [
            f"{column} {ratio:.2f}x"
            for column in CLIENTS
            if (ratio := r.ratio(column, reference_key(column, reference))) is not None
        ]
        if shares:
            lines.append(f"- {r.workload} {r.size} B, of {reference} in the same turns: {', '.join(shares)}")
    return lines


def _window_references(results: list[Result]) -> list[str]:
    """The raw socket pulling in cnats's window, beside the bound that pulls everything at once."""
    lines = []
    for r in results:
        reference = r.figures.get(RAW_WINDOW)
        if reference:
            ratio = r.ratio("cnats", RAW_WINDOW)
            share = "" if ratio is None else f"; cnats {ratio:.2f}x of it"
            lines.append(
                f"- {r.workload} {r.size} B: the raw socket pulling as consume() does (a window of "
                f"{CONSUME_WINDOW}, topped up under 75%): {_rate(reference)}{share}"
            )
    return lines


def _latency(result: Result, column: str) -> str:
    lat = result.latency_us.get(column)
    return f"{lat['p50']:.0f}/{lat['p99']:.0f}" if lat else ""


ROW_HEADERS = [
    "workload",
    "size",
    "cnats",
    "cnats-pure",
    "nats-py",
    "raw",
    "cnats/nats-py",
    "cnats/raw",
    "pure/nats-py",
    "p50/p99 us (cnats, nats-py)",
]


# with the nats.js column (only when it was measured): its figure, cnats' ratio to it, and its latencies
NATSJS_ROW_HEADERS = [
    *ROW_HEADERS[:5],
    natsjs.COLUMN,
    "raw",
    "cnats/nats-py",
    f"cnats/{natsjs.COLUMN}",
    *ROW_HEADERS[7:9],
    f"p50/p99 us (cnats, nats-py, {natsjs.COLUMN})",
]


def _with_natsjs(results: list[Result]) -> bool:
    return any(natsjs.COLUMN in r.figures for r in results)


def _rows(results: list[Result]) -> list[list[str]]:
    js: tuple[str, ...] = (natsjs.COLUMN,) if _with_natsjs(results) else ()
    timed = ("cnats", "nats-py", *js)
    rows = []
    for r in results:
        lat = ""
        if any(r.latency_us.get(c) for c in timed):
            # the nats.js layout marks a missing one: three cells with blanks read as a typo
            lat = ", ".join(_latency(r, c) or ("-" if js else "") for c in timed)
        rows.append(
            [
                r.workload,
                f"{r.size} B",
                *(_rate(r.figures.get(c)) for c in ("cnats", "cnats-pure", "nats-py", *js, "raw")),
                _ratio(r.ratio("cnats", "nats-py")),
                *(_ratio(r.ratio("cnats", c)) for c in js),
                _bound_ratio(r, "cnats"),
                _ratio(r.ratio("cnats-pure", "nats-py")),
                lat,
            ]
        )
    return rows


def format_table(results: list[Result]) -> str:
    headers = NATSJS_ROW_HEADERS if _with_natsjs(results) else ROW_HEADERS
    rows = [headers, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    errors = [f"  {r.workload} {r.size} B {col}: {err}" for r in results for col, err in r.errors.items()]
    notes = _notes(results)
    return "\n".join(lines + (["notes:", *notes] if notes else []) + (["errors:", *errors] if errors else []))


def format_markdown(results: list[Result]) -> str:
    headers = NATSJS_ROW_HEADERS if _with_natsjs(results) else ROW_HEADERS
    rows = [headers, ["---"] * len(headers), *_rows(results)]
    notes = _notes(results)
    return "\n".join(["| " + " | ".join(row) + " |" for row in rows] + (["", *notes] if notes else []))


def environment(uvloop: bool) -> dict[str, Any]:
    from ..protocol import USES_CYTHON

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "event_loop": "uvloop" if uvloop else "asyncio",
        "uses_cython": USES_CYTHON,
        "date": time.strftime("%Y-%m-%d"),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def results_json(results: list[Result], uvloop: bool) -> str:
    return json.dumps({"environment": environment(uvloop), "results": [asdict(r) for r in results]})


# -- the single-workload form: cnats bench SUBJECT [--pub N] [--sub N] ... ----------------------------


def run_single(
    *,
    url: str | None,
    subject: str,
    pubs: int,
    subs: int,
    msgs: int,
    size: int,
    request: bool,
    columns: Sequence[str] = ("cnats",),
    uvloop: bool = False,
) -> dict[str, dict[str, Any]]:
    """One workload, as ``cnats bench`` with a subject runs it: for each of ``columns``, its ``--json`` object.

    ``pubs`` publishers share ``msgs`` messages and ``subs`` subscribers each receive all of them, every one a
    worker process of its own, started together; without publishers the subscribers are fed by a raw publisher.
    The figures are aggregates: messages published over the slowest publisher's time, messages received (by all
    subscribers) over the slowest subscriber's time. Several columns take turns, ``SLICES`` rounds of a tenth of
    the messages each, the order rotating every round (as the table's rows do), against one server."""
    if pubs < 0 or subs < 0 or (pubs == 0 and subs == 0 and not request):
        raise ValueError("give at least one publisher or one subscriber")
    rounds = SLICES if len(columns) > 1 else 1
    share = max(1, msgs // rounds)
    totals: dict[str, list[dict[str, Any]]] = {column: [] for column in columns}
    with _server(url) as server_url, _responder(server_url, uvloop) if request else contextlib.nullcontext():
        for turn in range(rounds):
            shift = turn % len(columns)
            for column in [*columns[shift:], *columns[:shift]]:
                if request:
                    data = _measure("request", column, server_url, share, size, uvloop, REQUEST_SUBJECT)
                    report = _single_report("request", share, size, data["elapsed_s"], data["uses_cython"])
                    report |= {"pubs": 1, "subs": 0, "latency_us": data["latency_us"]}
                else:
                    report = _run_pubs_subs(server_url, subject, pubs, subs, share, size, column, uvloop)
                totals[column].append(report)
    return {column: _combined(reports) for column, reports in totals.items()}


def _combined(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one column as one report: their messages over their summed time."""
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    msgs = sum(r["msgs"] for r in reports)
    elapsed = sum(r["elapsed_s"] for r in reports)
    combined = _single_report(first["mode"], msgs, first["size"], elapsed, all(r["uses_cython"] for r in reports))
    combined |= {"pubs": first["pubs"], "subs": first["subs"], "latency_us": first["latency_us"]}
    for key in ("pub_msgs_per_s", "sub_msgs_per_s"):
        if key in first:
            combined[key] = sum(r[key] for r in reports) / len(reports)
    return combined


def _single_report(mode: str, msgs: int, size: int, elapsed: float, uses_cython: bool) -> dict[str, Any]:
    return {
        "mode": mode,
        "msgs": msgs,
        "size": size,
        "elapsed_s": elapsed,
        "msgs_per_s": msgs / elapsed if elapsed else 0.0,
        "bytes_per_s": msgs * size / elapsed if elapsed else 0.0,
        "latency_us": None,
        "uses_cython": uses_cython,  # as the worker found it, not as this process would
    }


def _run_pubs_subs(
    url: str, subject: str, pubs: int, subs: int, msgs: int, size: int, column: str, uvloop: bool
) -> dict[str, Any]:
    client, env = CLIENTS[column]
    shares = [msgs // pubs + (1 if i < msgs % pubs else 0) for i in range(pubs)]
    workers: list[_Worker] = []
    try:
        for _ in range(subs):
            workers.append(_Worker("sub (callback)", client, env, url, msgs, size, uvloop, subject, sliced=True))
        subscribers = list(workers)
        publishers = [_Worker("pub", client, env, url, n, size, uvloop, subject, sliced=True) for n in shares]
        workers += publishers
        for worker in workers:
            worker.wait_ready()
        for sub in subscribers:
            sub.begin_slice(msgs)
        for sub in subscribers:
            sub.wait_armed()
        for pub, n in zip(publishers, shares, strict=True):
            pub.begin_slice(n)  # all asked at once: they run side by side
        if not publishers:
            publish_stream(url, msgs, size, subject)
        pub_results = [pub.slice_result() for pub in publishers]
        sub_results = [sub.slice_result() for sub in subscribers]
    finally:
        for worker in workers:
            worker.finish()
    pub_time = max((r["elapsed_s"] for r in pub_results), default=0.0)
    sub_time = max((r["elapsed_s"] for r in sub_results), default=0.0)
    mode = "pubsub" if pubs and subs else ("pub" if pubs else "sub")
    received = msgs * subs
    # the figure of the mode: what the publishers sent (pub), or what the subscribers received (sub, pubsub)
    count, elapsed = (msgs, pub_time) if mode == "pub" else (received, sub_time)
    uses_cython = client == "cnats" and all(r["uses_cython"] for r in pub_results + sub_results)
    report = _single_report(mode, count, size, elapsed, uses_cython)
    return report | {
        "pubs": pubs,
        "subs": subs,
        "pub_msgs_per_s": msgs / pub_time if pub_time else 0.0,
        "sub_msgs_per_s": received / sub_time if sub_time else 0.0,
    }
