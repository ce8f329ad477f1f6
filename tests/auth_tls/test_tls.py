"""TLS against a real nats-server: the forms of ``tls=``, ``tls://`` URLs, certificate and host name checks, mutual
TLS, ``tls_handshake_first``, and reconnecting over TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from helpers.core import StatusLog, eventually

from cnats import Events, NatsConnection, TlsOptions, connect
from cnats.errors import (
    InvalidOptionError,
    NatsError,
    ServerOptionNotAvailableError,
    TlsError,
)
from cnats.testing import NatsServer, ServerTls
from cnats.testing.certs import CertBundle, make_test_certs

pytestmark = pytest.mark.nats_server(jetstream=False, tls=True)

Factory = Callable[..., NatsServer]


async def _roundtrip(nc: NatsConnection, subject: str = "tls.check") -> None:
    sub = nc.subscribe(subject)
    nc.publish(subject, b"ping")
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"ping"
    sub.unsubscribe()


async def _connect_and_check(*args: object, **kwargs: object) -> NatsConnection:
    """Connect, check the socket really is TLS and usable, close; returns the (closed) connection."""
    nc = await connect(*args, **kwargs)  # type: ignore[arg-type]
    try:
        assert nc.info is not None and nc.info.tls_required
        await _roundtrip(nc)
    finally:
        await nc.close()
    return nc


def _ca(server: NatsServer) -> str:
    assert server.client_tls is not None and server.client_tls.ca_file is not None
    return server.client_tls.ca_file


@pytest.fixture
def certs(tmp_path: Path) -> CertBundle:
    return make_test_certs(tmp_path / "certs")


# -- forms of the tls option ---------------------------------------------------------------------------------------


async def test_tls_options_with_file_paths(nats_server: NatsServer) -> None:
    assert nats_server.url.startswith("tls://")
    await _connect_and_check(nats_server.url, tls=nats_server.client_tls)


async def test_tls_options_with_pem_text(nats_server: NatsServer) -> None:
    files = nats_server.client_tls
    assert files is not None and files.ca_file and files.cert_file and files.key_file
    pem = TlsOptions(
        ca=Path(files.ca_file).read_text(),
        cert=Path(files.cert_file).read_text(),
        key=Path(files.key_file).read_text(),
    )
    await _connect_and_check(nats_server.url, tls=pem)


async def test_tls_options_ca_only_with_nats_url(nats_server: NatsServer) -> None:
    # A nats:// URL to a server that requires TLS: the client upgrades, trusting the given CA.
    await _connect_and_check(f"nats://127.0.0.1:{nats_server.port}", tls=TlsOptions(ca_file=_ca(nats_server)))


async def test_tls_url_with_ca_file(nats_server: NatsServer) -> None:
    await _connect_and_check(f"tls://127.0.0.1:{nats_server.port}", tls=TlsOptions(ca_file=_ca(nats_server)))


async def test_own_ssl_context(nats_server: NatsServer) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_ca(nats_server))
    await _connect_and_check(nats_server.url, tls=ctx)


async def test_ssl_context_is_used_as_given(nats_server: NatsServer) -> None:
    # A context that trusts nothing: if the client used its own default context instead, this would not fail.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(TlsError):
        await connect(nats_server.url, tls=ctx)


async def test_publish_subscribe_request_over_tls(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, tls=nats_server.client_tls)
    try:
        responder = nc.subscribe("tls.service", callback=lambda m: m.respond(b"re:" + m.data))
        sub = nc.subscribe("tls.data")
        await nc.flush()
        payload = bytes(range(256)) * 1024  # 256 KiB through the TLS transport
        nc.publish("tls.data", payload, headers={"X-Tls": "yes"})
        msg = await sub.next_msg(timeout=5)
        assert msg.data == payload
        assert msg.headers is not None and msg.headers.get("X-Tls") == "yes"
        reply = await nc.request("tls.service", b"hello", timeout=5)
        assert reply.data == b"re:hello"
        responder.unsubscribe()
    finally:
        await nc.close()


# -- certificate checks ------------------------------------------------------------------------------------------


async def test_untrusted_server_certificate_raises_tls_error(nats_server: NatsServer) -> None:
    with pytest.raises(TlsError):
        await connect(nats_server.url)  # tls:// URL, system trust store: the test CA is unknown
    with pytest.raises(TlsError):
        await connect(f"nats://127.0.0.1:{nats_server.port}", tls=True)


async def test_server_requiring_tls_is_upgraded_by_default(nats_server: NatsServer) -> None:
    # tls=None and a nats:// URL: TLS is used because the server requires it (so the unknown CA shows up).
    with pytest.raises(TlsError):
        await connect(f"nats://127.0.0.1:{nats_server.port}")


async def test_server_certificate_valid_for_localhost_name(nats_server: NatsServer) -> None:
    await _connect_and_check(f"tls://localhost:{nats_server.port}", tls=TlsOptions(ca_file=_ca(nats_server)))


async def test_server_certificate_valid_for_loopback_ip(nats_server: NatsServer) -> None:
    ctx = ssl.create_default_context(cafile=_ca(nats_server))
    assert ctx.check_hostname
    await _connect_and_check(f"tls://127.0.0.1:{nats_server.port}", tls=ctx)


@pytest.fixture
def foreign_name_server(nats_server_factory: Factory, tmp_path: Path) -> tuple[NatsServer, str]:
    """A TLS server whose certificate names only ``nats.example.test`` (not 127.0.0.1); and its CA file."""
    ca = trustme.CA()
    cert = ca.issue_cert("nats.example.test")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    server = nats_server_factory(jetstream=False, tls=ServerTls(cert_file=str(cert_file), key_file=str(key_file)))
    return server, str(ca_file)


async def test_tls_hostname_names_what_the_certificate_must_carry(foreign_name_server: tuple[NatsServer, str]) -> None:
    """The URL is 127.0.0.1, the certificate names only nats.example.test: tls_hostname is checked (and sent as
    SNI) instead of the URL's host."""
    server, ca_file = foreign_name_server
    ctx = ssl.create_default_context(cafile=ca_file)
    async with await connect(server.url, tls=ctx, tls_hostname="nats.example.test") as nc:
        assert nc.is_connected
    with pytest.raises(TlsError):
        await connect(server.url, tls=ssl.create_default_context(cafile=ca_file), tls_hostname="other.example.test")
    with pytest.raises(InvalidOptionError, match="tls_hostname"):
        await connect(server.url, tls_hostname="")


async def test_host_name_not_in_certificate_raises_tls_error(foreign_name_server: tuple[NatsServer, str]) -> None:
    server, ca_file = foreign_name_server
    ctx = ssl.create_default_context(cafile=ca_file)
    assert ctx.check_hostname
    with pytest.raises(TlsError):
        await connect(server.url, tls=ctx)
    with pytest.raises(TlsError):
        await connect(server.url, tls=TlsOptions(ca_file=ca_file))


async def test_host_name_check_can_be_disabled_by_own_context(foreign_name_server: tuple[NatsServer, str]) -> None:
    server, ca_file = foreign_name_server
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    await _connect_and_check(server.url, tls=ctx)


# -- tls required / not available ----------------------------------------------------------------------------------


async def test_tls_false_against_tls_server_raises_tls_error(nats_server: NatsServer) -> None:
    with pytest.raises(TlsError):
        await connect(f"nats://127.0.0.1:{nats_server.port}", tls=False)


@pytest.mark.nats_server(jetstream=False, tls=False)
async def test_tls_true_against_plain_server_raises_server_option_not_available(nats_server: NatsServer) -> None:
    with pytest.raises(ServerOptionNotAvailableError):
        await connect(nats_server.url, tls=True)


@pytest.mark.nats_server(jetstream=False, tls=False)
async def test_tls_options_against_plain_server_raise_server_option_not_available(
    nats_server: NatsServer, certs: CertBundle
) -> None:
    with pytest.raises(ServerOptionNotAvailableError):
        await connect(nats_server.url, tls=TlsOptions(ca_file=certs.ca_file))
    with pytest.raises(ServerOptionNotAvailableError):
        await connect(nats_server.url, tls=ssl.create_default_context(cafile=certs.ca_file))


@pytest.mark.nats_server(jetstream=False, tls=False)
async def test_tls_url_against_plain_server_raises_server_option_not_available(nats_server: NatsServer) -> None:
    with pytest.raises(ServerOptionNotAvailableError):
        await connect(f"tls://127.0.0.1:{nats_server.port}")


@pytest.mark.nats_server(jetstream=False, tls=False)
async def test_tls_false_against_plain_server_connects(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, tls=False)
    try:
        assert nc.info is not None and not nc.info.tls_required
        await _roundtrip(nc)
    finally:
        await nc.close()


# -- mutual TLS ----------------------------------------------------------------------------------------------------


@pytest.fixture
def mtls_server(nats_server_factory: Factory, certs: CertBundle) -> NatsServer:
    tls = ServerTls(
        cert_file=certs.server_cert_file, key_file=certs.server_key_file, ca_file=certs.ca_file, verify=True
    )
    return nats_server_factory(jetstream=False, tls=tls)


async def test_mutual_tls_with_client_certificate(mtls_server: NatsServer, certs: CertBundle) -> None:
    tls = TlsOptions(ca_file=certs.ca_file, cert_file=certs.client_cert_file, key_file=certs.client_key_file)
    await _connect_and_check(mtls_server.url, tls=tls)


async def test_mutual_tls_with_client_certificate_as_pem_text(mtls_server: NatsServer, certs: CertBundle) -> None:
    tls = TlsOptions(
        ca=Path(certs.ca_file).read_text(),
        cert=Path(certs.client_cert_file).read_text(),
        key=Path(certs.client_key_file).read_text(),
    )
    await _connect_and_check(mtls_server.url, tls=tls)


async def test_mutual_tls_with_client_certificate_in_ssl_context(mtls_server: NatsServer, certs: CertBundle) -> None:
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    ctx.load_cert_chain(certs.client_cert_file, certs.client_key_file)
    await _connect_and_check(mtls_server.url, tls=ctx)


async def test_mutual_tls_without_client_certificate_fails(mtls_server: NatsServer, certs: CertBundle) -> None:
    with pytest.raises(NatsError):
        await connect(mtls_server.url, tls=TlsOptions(ca_file=certs.ca_file), timeout=5)


async def test_mutual_tls_with_certificate_of_another_ca_fails(
    mtls_server: NatsServer, certs: CertBundle, tmp_path: Path
) -> None:
    other = make_test_certs(tmp_path / "other")
    tls = TlsOptions(ca_file=certs.ca_file, cert_file=other.client_cert_file, key_file=other.client_key_file)
    with pytest.raises(NatsError):
        await connect(mtls_server.url, tls=tls, timeout=5)


# -- TLS handshake first -----------------------------------------------------------------------------------------


@pytest.fixture
def tls_first_server(nats_server_factory: Factory, certs: CertBundle) -> NatsServer:
    tls = ServerTls(cert_file=certs.server_cert_file, key_file=certs.server_key_file, handshake_first=True)
    return nats_server_factory(jetstream=False, tls=tls)


async def test_tls_handshake_first_with_tls_options(tls_first_server: NatsServer, certs: CertBundle) -> None:
    await _connect_and_check(
        tls_first_server.url, tls=TlsOptions(ca_file=certs.ca_file), tls_handshake_first=True, timeout=5
    )


async def test_tls_handshake_first_with_ssl_context(tls_first_server: NatsServer, certs: CertBundle) -> None:
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    await _connect_and_check(tls_first_server.url, tls=ctx, tls_handshake_first=True, timeout=5)


async def test_tls_handshake_first_untrusted_server_raises_tls_error(tls_first_server: NatsServer) -> None:
    # docs/tls.md: "A TLS handshake that fails raises TlsError" - also when TLS comes first.
    with pytest.raises(TlsError):
        await connect(tls_first_server.url, tls=True, tls_handshake_first=True, timeout=5)


# -- reconnect over TLS --------------------------------------------------------------------------------------------


async def test_reconnect_over_tls_after_server_restart(nats_server: NatsServer) -> None:
    nc = await connect(
        nats_server.url,
        tls=nats_server.client_tls,
        reconnect_time_wait=0.05,
        reconnect_jitter_tls=0,
        max_reconnect_attempts=-1,
    )
    try:
        sub = nc.subscribe("tls.restart")
        await nc.flush()
        async with StatusLog(nc) as log:
            await asyncio.to_thread(nats_server.restart)
            await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=10, what="RECONNECT event")
        assert nc.info is not None and nc.info.tls_required
        nc.publish("tls.restart", b"after restart")
        assert (await sub.next_msg(timeout=5)).data == b"after restart"
    finally:
        await nc.close()


async def test_client_initiated_reconnect_over_tls(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, tls=nats_server.client_tls, reconnect_time_wait=0.05, reconnect_jitter_tls=0)
    try:
        sub = nc.subscribe("tls.again")
        await nc.flush()
        async with StatusLog(nc) as log:
            await nc.reconnect()
            await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="RECONNECT event")
        nc.publish("tls.again", b"x")
        assert (await sub.next_msg(timeout=5)).data == b"x"
    finally:
        await nc.close()


async def test_tls_handshake_first_reconnects_with_handshake_first(
    tls_first_server: NatsServer, certs: CertBundle
) -> None:
    nc = await connect(
        tls_first_server.url,
        tls=TlsOptions(ca_file=certs.ca_file),
        tls_handshake_first=True,
        reconnect_time_wait=0.05,
        reconnect_jitter_tls=0,
        max_reconnect_attempts=-1,
    )
    try:
        sub = nc.subscribe("tls.first.restart")
        await nc.flush()
        async with StatusLog(nc) as log:
            await asyncio.to_thread(tls_first_server.restart)
            await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=10, what="RECONNECT event")
        nc.publish("tls.first.restart", b"y")
        assert (await sub.next_msg(timeout=5)).data == b"y"
    finally:
        await nc.close()


async def test_reject_unauthorized_false_accepts_an_untrusted_server() -> None:
    with NatsServer(tls=True) as server:
        with pytest.raises(TlsError):
            await connect(server.url, tls=TlsOptions())  # the system store does not know the test CA
        nc = await connect(server.url, tls=TlsOptions(reject_unauthorized=False))
        try:
            assert await nc.rtt() > 0
        finally:
            await nc.close()
