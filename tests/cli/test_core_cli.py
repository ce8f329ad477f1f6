"""`cnats pub`, `sub`, `req` and `reply` against a real nats-server."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest
from cli.cli_support import Background, Cli, Running, cnats_process, connections, wait_for_interest

from cnats.testing import NatsServer


def test_sub_count_prints_numbered_messages_then_exits(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = background("sub", "greet", "--count", "2", "--headers")
    wait_for_interest(nats_server, "greet")
    published = cli("pub", "greet", "hello", "-H", "Lang:en", "-H", "Lang:fr", "--count", "2")
    # pub prints nothing on stderr; the subscriber's own "listening" line (its thread prints it once subscribed,
    # which the server may see first) lands in whichever capture is open then
    assert published.code == 0 and published.err in ("", "listening on 'greet'\n")
    assert sub.wait() == 0
    out = published.out + capsys.readouterr().out
    assert out == "[#1] greet\nLang: en\nLang: fr\nhello\n\n[#2] greet\nLang: en\nLang: fr\nhello\n\n"


def test_sub_json_gives_subject_reply_headers_and_data(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = background("sub", "orders.*", "--count", "2", "--json")
    wait_for_interest(nats_server, "orders.*")
    first = cli("pub", "orders.new", '{"id": 7}', "--reply", "answers", "-H", "K:v")
    second = cli("pub", "orders.old", "caf\u00e9")
    assert first.code == 0 and second.code == 0
    assert sub.wait() == 0
    # The subscriber prints from its own thread: its lines land in whichever capture was open at that moment.
    lines = (first.out + second.out + capsys.readouterr().out).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"subject": "orders.new", "reply": "answers", "headers": {"K": ["v"]}, "data": '{"id": 7}'},
        {"subject": "orders.old", "reply": None, "headers": {}, "data": "caf\u00e9"},
    ]


def test_sub_raw_prints_payloads_only_and_queue_groups_share(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first = background("sub", "work", "--queue", "workers", "--count", "1", "--raw")
    second = background("sub", "work", "--queue", "workers", "--count", "1", "--raw")
    wait_for_interest(nats_server, "work", count=2)
    published = cli("pub", "work", "job", "--count", "2")
    assert published.code == 0
    assert first.wait() == 0 and second.wait() == 0
    assert (
        published.out + capsys.readouterr().out == "job\njob\n"
    )  # one each: a queue group delivers every message once


def test_reply_answers_requests(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replier = background("reply", "time.now", "noon", "-H", "Zone:UTC", "--count", "1")
    wait_for_interest(nats_server, "time.now")
    answer = cli("req", "time.now", "when?", "--json")
    assert answer.code == 0, answer.err
    reply = json.loads(answer.out.splitlines()[-1])
    assert reply["data"] == "noon" and reply["headers"] == {"Zone": ["UTC"]}
    assert replier.wait() == 0
    assert "[#1] time.now" in answer.out + capsys.readouterr().out  # the replier shows what it answered


def test_reply_without_data_echoes_payload_and_headers(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer
) -> None:
    replier = background("reply", "echo", "--count", "1")
    wait_for_interest(nats_server, "echo")
    answer = cli("req", "echo", "ping", "-H", "Trace:1")
    assert answer.code == 0, answer.err
    assert "Trace: 1\nping\n" in answer.out
    assert replier.wait() == 0


def test_req_replies_collects_several_answers(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repliers = [background("reply", "census", name, "--count", "1") for name in ("a", "b")]
    wait_for_interest(nats_server, "census", count=2)
    answers = cli("req", "census", "who?", "--replies", "2", "--raw")
    assert answers.code == 0, answers.err
    assert all(r.wait() == 0 for r in repliers)
    payloads = [line for line in answers.out.splitlines() if line in ("a", "b")]
    assert sorted(payloads) == ["a", "b"]


def test_req_without_responders_is_one_error_line(cli: Cli) -> None:
    result = cli("req", "nobody.home", "hi")
    assert result.code == 1
    assert result.out == ""
    assert result.err == "error: no responders for 'nobody.home'\n"


def test_req_times_out_when_nobody_answers(
    cli: Cli, background: Callable[..., Background], nats_server: NatsServer
) -> None:
    listener = background("sub", "silent", "--count", "1")  # interest, but no reply
    wait_for_interest(nats_server, "silent")
    result = cli("--timeout", "0.3", "req", "silent", "hi")
    assert result.code == 1
    assert result.err.startswith("error: ") and "time" in result.err.lower() and result.err.count("\n") == 1
    assert listener.wait() == 0


def test_pub_rejects_a_bad_header_before_connecting(cli: Cli) -> None:
    result = cli("pub", "x", "y", "-H", "no-colon")
    assert result.code == 2
    assert "a header is KEY:VALUE" in result.err


def test_pub_rejects_a_bad_subject(cli: Cli) -> None:
    result = cli("pub", "bad subject", "y")
    assert result.code == 1 and result.err.startswith("error: ") and result.err.count("\n") == 1


# -- the real entry point, in its own process ------------------------------------------------------------------


def test_pub_from_stdin_to_a_sub_process(nats_server: NatsServer, running: Callable[..., Running]) -> None:
    sub = running("-s", nats_server.url, "sub", "pipe", "--count", "1", "--raw")
    assert sub.line("stderr") == "listening on 'pipe'"
    published = cnats_process("-s", nats_server.url, "pub", "pipe", input="from stdin")
    assert published.returncode == 0, published.stderr
    assert published.stdout == "" and published.stderr == ""  # quiet when not on a terminal
    assert sub.line() == "from stdin"
    assert sub.proc.wait(10) == 0


def test_req_and_reply_processes(nats_server: NatsServer, running: Callable[..., Running]) -> None:
    replier = running("reply", "-s", nats_server.url, "svc.upper", "--echo")  # options after the command too
    assert replier.line("stderr") == "listening on 'svc.upper'"
    for n in (1, 2):
        answer = cnats_process("req", "--server", nats_server.url, "svc.upper", f"call {n}")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout == f"call {n}\n"
        assert replier.line().startswith(f"[#{n}] svc.upper (reply: _INBOX.")
        assert replier.line() == f"call {n}"
        assert replier.line() == ""
    assert replier.stop(signal.SIGINT) == 0  # Ctrl-C is the normal way to stop a replier


def test_sub_process_ends_cleanly_on_sigterm(nats_server: NatsServer, running: Callable[..., Running]) -> None:
    sub = running("-s", nats_server.url, "sub", "forever")
    assert sub.line("stderr") == "listening on 'forever'"
    assert sub.stop(signal.SIGTERM) == 0
    assert sub.proc.stderr is not None and sub.proc.stderr.read() == b""


def test_ctrl_c_interrupts_a_long_pub_with_status_130(nats_server: NatsServer, running: Callable[..., Running]) -> None:
    pub = running("-s", nats_server.url, "--name", "bulk", "pub", "bulk", "x", "--count", "100000000")
    deadline = time.monotonic() + 10
    while not any(c.get("name") == "bulk" and c.get("in_msgs", 0) > 0 for c in connections(nats_server)):
        assert time.monotonic() < deadline and pub.proc.poll() is None, "the publisher never got going"
        time.sleep(0.02)
    assert pub.stop(signal.SIGINT) == 130
    assert pub.proc.stderr is not None and pub.proc.stderr.read() == b""  # interrupted quietly
