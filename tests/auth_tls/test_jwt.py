"""JWT authentication against an operator-mode nats-server (memory resolver): ``.creds`` files, the creds/JWT
authenticators, credentials re-read on reconnect, and expiring user JWTs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers.core import StatusLog, eventually, http_json
from helpers.jwt import Operator, User, decode_claims, format_creds, operator_config

from cnats import Events, NatsConnection, connect, creds_authenticator, jwt_authenticator
from cnats.errors import (
    AuthenticationExpiredError,
    AuthError,
    AuthorizationError,
    BadCredsError,
    ErrorCode,
)
from cnats.testing import NatsServer

OPERATOR = Operator.create()
ACCOUNT = OPERATOR.account("A")
_UNKNOWN_ACCOUNT = Operator.create().account("not-preloaded")  # signed by another operator, not in the resolver

pytestmark = pytest.mark.nats_server(jetstream=False, config=operator_config(OPERATOR))


async def _roundtrip(nc: NatsConnection, subject: str = "jwt.check") -> None:
    sub = nc.subscribe(subject)
    nc.publish(subject, b"ping")
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"ping"
    sub.unsubscribe()


async def _authorized_users(server: NatsServer) -> list[str | None]:
    connz = await http_json(server.monitor_urls[0] + "/connz?auth=1")
    return [c.get("authorized_user") for c in connz["connections"]]


def _write_creds(path: Path, user: User) -> str:
    path.write_text(user.creds())
    return str(path)


# -- the JWT helper itself -------------------------------------------------------------------------------------


def test_helper_jwts_have_the_nats_shape() -> None:
    user = ACCOUNT.user("shape", expires=2_000_000_000)
    claims = decode_claims(user.jwt)
    assert claims["iss"] == ACCOUNT.public_key
    assert claims["sub"] == user.public_key
    assert claims["exp"] == 2_000_000_000
    assert claims["nats"]["type"] == "user" and claims["nats"]["version"] == 2
    assert decode_claims(ACCOUNT.jwt)["iss"] == OPERATOR.keys.public_key
    assert decode_claims(OPERATOR.jwt)["iss"] == decode_claims(OPERATOR.jwt)["sub"]


# -- connecting with JWTs ----------------------------------------------------------------------------------------


async def test_user_credentials_path_str(nats_server: NatsServer, tmp_path: Path) -> None:
    user = ACCOUNT.user("alice")
    nc = await connect(nats_server.url, user_credentials=_write_creds(tmp_path / "alice.creds", user))
    try:
        await _roundtrip(nc)
        assert await _authorized_users(nats_server) == [user.public_key]
    finally:
        await nc.close()


async def test_user_credentials_path_object(nats_server: NatsServer, tmp_path: Path) -> None:
    path = tmp_path / "alice.creds"
    _write_creds(path, ACCOUNT.user("alice"))
    nc = await connect(nats_server.url, user_credentials=path)
    try:
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_user_credentials_with_crlf_line_ends(nats_server: NatsServer, tmp_path: Path) -> None:
    user = ACCOUNT.user("windows")
    path = tmp_path / "crlf.creds"
    path.write_bytes(user.creds().replace("\n", "\r\n").encode())
    nc = await connect(nats_server.url, user_credentials=str(path))
    try:
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_creds_authenticator_with_bytes(nats_server: NatsServer) -> None:
    user = ACCOUNT.user("bytes")
    nc = await connect(nats_server.url, authenticator=creds_authenticator(user.creds().encode()))
    try:
        await _roundtrip(nc)
        assert await _authorized_users(nats_server) == [user.public_key]
    finally:
        await nc.close()


async def test_creds_authenticator_with_str(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, authenticator=creds_authenticator(ACCOUNT.user("text").creds()))
    try:
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_jwt_authenticator_with_jwt_and_seed(nats_server: NatsServer) -> None:
    user = ACCOUNT.user("jwt-seed")
    for seed in (user.seed, user.seed.decode()):
        nc = await connect(nats_server.url, authenticator=jwt_authenticator(user.jwt, seed))
        try:
            await _roundtrip(nc)
            assert await _authorized_users(nats_server) == [user.public_key]
        finally:
            await nc.close()


async def test_jwt_authenticator_callables_evaluated_on_every_connect(nats_server: NatsServer) -> None:
    first, second = ACCOUNT.user("first"), ACCOUNT.user("second")
    current = {"user": first}
    nc = await connect(
        nats_server.url,
        authenticator=jwt_authenticator(lambda: current["user"].jwt, lambda: current["user"].seed),
        reconnect_time_wait=0.05,
        reconnect_jitter=0,
    )
    try:
        assert await _authorized_users(nats_server) == [first.public_key]
        current["user"] = second
        async with StatusLog(nc) as log:
            await nc.reconnect()
            await eventually(lambda: bool(log.of(Events.RECONNECT)), what="RECONNECT event")
        assert await _authorized_users(nats_server) == [second.public_key]
    finally:
        await nc.close()


async def test_bearer_jwt_without_seed(nats_server: NatsServer) -> None:
    user = ACCOUNT.user("bearer", bearer=True)
    nc = await connect(nats_server.url, authenticator=jwt_authenticator(user.jwt))
    try:
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_non_bearer_jwt_without_seed_is_refused(nats_server: NatsServer) -> None:
    with pytest.raises(AuthorizationError):
        await connect(nats_server.url, authenticator=jwt_authenticator(ACCOUNT.user("needs-sig").jwt))


async def test_jwt_signed_with_another_users_seed_is_refused(nats_server: NatsServer) -> None:
    user, other = ACCOUNT.user("owner"), ACCOUNT.user("other")
    with pytest.raises(AuthorizationError):
        await connect(nats_server.url, authenticator=jwt_authenticator(user.jwt, other.seed))


async def test_user_of_unknown_account_is_refused(nats_server: NatsServer, tmp_path: Path) -> None:
    path = _write_creds(tmp_path / "stranger.creds", _UNKNOWN_ACCOUNT.user("stranger"))
    with pytest.raises(AuthorizationError):
        await connect(nats_server.url, user_credentials=path)


async def test_creds_file_is_reread_on_reconnect(nats_server: NatsServer, tmp_path: Path) -> None:
    first, second = ACCOUNT.user("first"), ACCOUNT.user("second")
    path = tmp_path / "rotating.creds"
    nc = await connect(
        nats_server.url, user_credentials=_write_creds(path, first), reconnect_time_wait=0.05, reconnect_jitter=0
    )
    try:
        sub = nc.subscribe("rotate.check")
        await nc.flush()
        assert await _authorized_users(nats_server) == [first.public_key]
        _write_creds(path, second)
        async with StatusLog(nc) as log:
            await nc.reconnect()
            await eventually(lambda: bool(log.of(Events.RECONNECT)), what="RECONNECT event")
        assert await _authorized_users(nats_server) == [second.public_key]
        nc.publish("rotate.check", b"after rotation")
        assert (await sub.next_msg(timeout=5)).data == b"after rotation"
    finally:
        await nc.close()


async def test_permissions_of_rotated_credentials_apply(nats_server: NatsServer, tmp_path: Path) -> None:
    # The second user may only publish on "allowed.>": after the rotation the server enforces that.
    first = ACCOUNT.user("free")
    second = ACCOUNT.user("restricted", pub={"allow": ["allowed.>"]})
    path = tmp_path / "perm.creds"
    nc = await connect(
        nats_server.url, user_credentials=_write_creds(path, first), reconnect_time_wait=0.05, reconnect_jitter=0
    )
    try:
        sub = nc.subscribe(">")
        await nc.flush()
        _write_creds(path, second)
        async with StatusLog(nc) as log:
            await nc.reconnect()
            await eventually(lambda: bool(log.of(Events.RECONNECT)), what="RECONNECT event")
            nc.publish("denied.subject", b"x")
            nc.publish("allowed.subject", b"y")
            await eventually(lambda: bool(log.of(Events.ERROR)), what="permission violation")
        [err] = log.of(Events.ERROR)
        assert err.data == ErrorCode.PERMISSIONS_VIOLATION
        assert err.permission_context is not None and err.permission_context.subject == "denied.subject"
        msg = await sub.next_msg(timeout=5)
        assert msg.subject == "allowed.subject"
    finally:
        await nc.close()


# -- malformed credentials -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "this is not a creds file",
        "",
        "-----BEGIN NATS USER JWT-----\neyJhbGciOi.eyJqdGkiOi.c2lnbmF0dXJl\n------END NATS USER JWT------\n",
        "-----BEGIN USER NKEY SEED-----\nSUAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n------END USER NKEY SEED------\n",
    ],
    ids=["garbage", "empty", "jwt-without-seed", "seed-without-jwt"],
)
async def test_malformed_creds_file_raises_bad_creds_error(nats_server: NatsServer, tmp_path: Path, body: str) -> None:
    path = tmp_path / "bad.creds"
    path.write_text(body)
    with pytest.raises(BadCredsError):
        await connect(nats_server.url, user_credentials=str(path))


async def test_creds_with_malformed_seed_raise_bad_creds_error(nats_server: NatsServer) -> None:
    user = ACCOUNT.user("broken-seed")
    body = format_creds(user.jwt, "SUABROKEN")
    with pytest.raises(BadCredsError):
        await connect(nats_server.url, authenticator=creds_authenticator(body.encode()))


async def test_creds_authenticator_with_garbage_raises_bad_creds_error(nats_server: NatsServer) -> None:
    with pytest.raises(BadCredsError):
        await connect(nats_server.url, authenticator=creds_authenticator(b"\x00\x01 not creds"))


# -- expiry ------------------------------------------------------------------------------------------------------


async def test_expired_user_jwt_is_refused_with_an_auth_error(nats_server: NatsServer, tmp_path: Path) -> None:
    path = _write_creds(tmp_path / "old.creds", ACCOUNT.user("old", expires=time.time() - 60))
    with pytest.raises(AuthError) as info:
        await connect(nats_server.url, user_credentials=path)
    # The server answers an already expired JWT with "Authorization Violation" (the error classes).
    assert isinstance(info.value, AuthorizationError)
    assert info.value.code == ErrorCode.AUTHORIZATION_VIOLATION


async def _connect_short_lived(server: NatsServer, path: Path, seconds: float = 2) -> NatsConnection:
    """A connection whose user JWT (in the creds file ``path``) expires within ``seconds``."""
    user = ACCOUNT.user("short-lived", expires=time.time() + seconds)
    creds = _write_creds(path, user)
    return await connect(server.url, user_credentials=creds, reconnect_time_wait=0.1, reconnect_jitter=0)


def _expired_events(log: StatusLog) -> list[object]:
    return [s for s in log.of(Events.ERROR) if s.data == ErrorCode.AUTHENTICATION_EXPIRED]


async def test_user_jwt_expiring_while_connected_emits_authentication_expired(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    nc = await _connect_short_lived(nats_server, tmp_path / "short.creds")
    try:
        async with StatusLog(nc) as log:
            await eventually(lambda: bool(_expired_events(log)), timeout=5, what="AUTHENTICATION_EXPIRED")
        status = log.of(Events.ERROR)[0]
        assert status.type == Events.ERROR
        assert status.data == "AUTHENTICATION_EXPIRED"
        assert isinstance(status.error, AuthenticationExpiredError)
        assert status.error.code == ErrorCode.AUTHENTICATION_EXPIRED
        assert status.permission_context is None
    finally:
        await nc.close()


async def test_expired_credentials_without_refresh_close_the_connection(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    nc = await _connect_short_lived(nats_server, tmp_path / "short.creds")
    try:
        err = await asyncio.wait_for(asyncio.shield(nc.closed), 10)
        assert isinstance(err, AuthError)
    finally:
        await nc.close()


async def test_expired_credentials_refreshed_in_creds_file_reconnect(nats_server: NatsServer, tmp_path: Path) -> None:
    path = tmp_path / "refresh.creds"
    nc = await _connect_short_lived(nats_server, path)
    try:
        sub = nc.subscribe("refresh.check")
        await nc.flush()
        fresh = ACCOUNT.user("fresh", expires=time.time() + 3600)
        _write_creds(path, fresh)  # replaced while the old JWT is still valid
        async with StatusLog(nc) as log:
            await eventually(lambda: bool(_expired_events(log)), timeout=5, what="AUTHENTICATION_EXPIRED")
            await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="RECONNECT event")
        assert not nc.is_closed
        assert await _authorized_users(nats_server) == [fresh.public_key]
        nc.publish("refresh.check", b"fresh")
        assert (await sub.next_msg(timeout=5)).data == b"fresh"
    finally:
        await nc.close()
