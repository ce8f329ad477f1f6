"""Services with plain-function handlers, answered through the blocking connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sync.support import eventually, loop_idents

import cnats
from cnats.services import EndpointInfo, ServiceError
from cnats.sync import SyncConnection, SyncServiceMsg

pytestmark = pytest.mark.nats_server(jetstream=False)


def test_a_plain_function_handler_answers_a_sync_request(
    snc: SyncConnection, connect: Callable[..., SyncConnection]
) -> None:
    handled_on: list[int] = []

    def add(msg: SyncServiceMsg) -> None:
        handled_on.append(threading.get_ident())
        msg.respond(b"%d" % sum(int(x) for x in msg.data.split()))

    with snc.services.add("calc", "1.0.0", description="sums") as service:
        endpoint = service.add_endpoint("add", add)
        assert endpoint.subject == "add" and endpoint.queue_group == "q"
        client = connect()
        assert client.request("add", b"1 2 3", timeout=2).data == b"6"
        assert handled_on and handled_on[0] not in {*loop_idents(), threading.get_ident()}
        # counted once the handler returned, which may be just after its response arrived
        eventually(lambda: service.stats().endpoints[0].num_requests == 1)
        assert service.stats().endpoints[0].num_errors == 0
        assert service.info().endpoints[0].name == "add"
        assert service.ping().name == "calc"
    assert service.is_stopped


def test_handler_errors_become_service_errors(snc: SyncConnection) -> None:
    def fail(msg: SyncServiceMsg) -> None:
        raise ServiceError(418, "teapot")

    def crash(msg: SyncServiceMsg) -> None:
        raise RuntimeError("boom")

    def refuse(msg: SyncServiceMsg) -> None:
        msg.respond_error(400, "bad request", b"details")

    service = snc.services.add("errs", "1.0.0")
    group = service.add_group("api")
    group.add_endpoint("fail", fail)
    group.add_endpoint("crash", crash)
    group.add_endpoint("refuse", refuse)
    statuses = snc.status()
    reply = snc.request("api.fail", b"", timeout=2)
    err = ServiceError.to_service_error(reply)
    assert err is not None and (err.code, err.message) == (418, "teapot")
    reply = snc.request("api.crash", b"", timeout=2)
    err = ServiceError.to_service_error(reply)
    assert err is not None and err.code == 500 and err.message == "boom"
    status = statuses.next(timeout=5)
    assert status.data == "CALLBACK_ERROR" and isinstance(status.error.__cause__, RuntimeError)  # type: ignore[union-attr]
    reply = snc.request("api.refuse", b"", timeout=2)
    assert reply.data == b"details" and ServiceError.is_service_error(reply)
    eventually(lambda: sum(e.num_errors for e in service.stats().endpoints) == 3)
    service.stop()


def test_a_slow_handler_delays_only_its_endpoint(snc: SyncConnection, connect: Callable[..., SyncConnection]) -> None:
    release = threading.Event()
    service = snc.services.add("mixed", "1.0.0")
    service.add_endpoint("slow", lambda msg: (release.wait(5), msg.respond(b"slow")))
    service.add_endpoint("fast", lambda msg: msg.respond(b"fast"))
    client = connect()
    pending = threading.Thread(target=lambda: client.request("slow", b"", timeout=5))
    pending.start()
    start = time.monotonic()
    assert client.request("fast", b"", timeout=2).data == b"fast"
    assert time.monotonic() - start < 1
    release.set()
    pending.join(5)
    service.stop()


def test_stats_handler_and_discovery_client(snc: SyncConnection) -> None:
    def stats_data(info: EndpointInfo) -> dict[str, str]:
        return {"endpoint": info.name}

    service = snc.services.add("disc", "2.0.0", stats_handler=stats_data)
    service.add_endpoint("e", lambda msg: msg.respond(b""))
    client = snc.services.client(max_wait=1)
    assert [p.name for p in client.ping("disc")] == ["disc"]
    stats = list(client.stats("disc"))
    assert stats[0].endpoints[0].data == {"endpoint": "e"}
    with pytest.raises(cnats.InvalidOptionError):
        service.add_endpoint("bad", 42)  # type: ignore[arg-type]
    service.stop()
    with pytest.raises(cnats.NoRespondersError):
        list(client.ping("disc"))


def test_iterator_endpoint(snc: SyncConnection, connect: Callable[..., SyncConnection]) -> None:
    service = snc.services.add("iter", "1.0.0")
    endpoint = service.add_endpoint("work")
    client = connect()
    asking = threading.Thread(target=lambda: client.request("work", b"job", timeout=5))
    asking.start()
    requests = iter(endpoint)
    msg = next(requests)
    assert msg.data == b"job"
    msg.respond(b"done")
    asking.join(5)
    service.stop()
