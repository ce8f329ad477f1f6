"""Authentication against a real nats-server: user/password, token, URL userinfo, authenticators, NKeys, the
auth-error abort rule of reconnecting, and secrets kept out of reprs, errors and logs."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import nkeys  # type: ignore[import-untyped]
import pytest
from helpers.core import StatusLog, closed_port, eventually, http_json

import cnats
from cnats import (
    Events,
    NatsConnection,
    connect,
    nkey_authenticator,
    token_authenticator,
    user_password_authenticator,
)
from cnats.errors import (
    AuthError,
    AuthorizationError,
    BadCredsError,
    NatsConnectionRefusedError,
    NatsError,
)
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

USER = "alice"
PASSWORD = "pw-7f3a-secret"
TOKEN = "tok-91c2-secret"

users_server = pytest.mark.nats_server(jetstream=False, users={USER: PASSWORD})
token_server = pytest.mark.nats_server(jetstream=False, token=TOKEN)


async def _roundtrip(nc: NatsConnection, subject: str = "auth.check") -> None:
    """Prove the connection is usable: a message published on it comes back to a subscription on it."""
    sub = nc.subscribe(subject)
    nc.publish(subject, b"ping")
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"ping"
    sub.unsubscribe()


async def _connect_and_check(*args: Any, **kwargs: Any) -> None:
    nc = await connect(*args, **kwargs)
    try:
        await _roundtrip(nc)
    finally:
        await nc.close()


async def _reconnect_once(nc: NatsConnection) -> None:
    """Client-initiated reconnect, returning once the RECONNECT event was seen."""
    async with StatusLog(nc) as log:
        await nc.reconnect()
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="RECONNECT event")


def _user_seed() -> bytes:
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed


def _public_key(seed: bytes) -> str:
    kp = nkeys.from_seed(bytearray(seed))
    try:
        return str(kp.public_key.decode())
    finally:
        kp.wipe()


def _nkey_config(*seeds: bytes) -> str:
    users = ", ".join(f'{{ nkey: "{_public_key(s)}" }}' for s in seeds)
    return f"authorization {{ users = [ {users} ] }}"


# -- public names ----------------------------------------------------------------------------------------------


def test_authenticator_factories_are_exported_from_cnats() -> None:
    # every public name is importable from `cnats`, these authenticators included.
    names = [
        "user_password_authenticator",
        "token_authenticator",
        "nkey_authenticator",
        "jwt_authenticator",
        "creds_authenticator",
    ]
    missing = [n for n in names if not hasattr(cnats, n)]
    assert missing == []


# -- user / password -------------------------------------------------------------------------------------------


@users_server
async def test_user_password_options_authenticate(nats_server: NatsServer) -> None:
    await _connect_and_check(nats_server.url, user=USER, password=PASSWORD)


@users_server
async def test_user_password_from_url_userinfo(nats_server: NatsServer) -> None:
    await _connect_and_check(f"nats://{USER}:{PASSWORD}@127.0.0.1:{nats_server.port}")


@users_server
async def test_wrong_password_raises_authorization_error(nats_server: NatsServer) -> None:
    with pytest.raises(AuthorizationError) as info:
        await connect(nats_server.url, user=USER, password="not-the-password")
    assert isinstance(info.value, AuthError)
    assert info.value.code == "AUTHORIZATION_VIOLATION"


@users_server
async def test_missing_credentials_raise_authorization_error(nats_server: NatsServer) -> None:
    with pytest.raises(AuthorizationError):
        await connect(nats_server.url)


@users_server
async def test_wrong_password_in_url_raises_authorization_error(nats_server: NatsServer) -> None:
    with pytest.raises(AuthorizationError):
        await connect(f"nats://{USER}:nope@127.0.0.1:{nats_server.port}")


@users_server
async def test_url_userinfo_ignored_when_user_password_given(nats_server: NatsServer) -> None:
    await _connect_and_check(f"nats://bob:wrong@127.0.0.1:{nats_server.port}", user=USER, password=PASSWORD)


@users_server
async def test_url_userinfo_ignored_when_token_given(nats_server: NatsServer) -> None:
    # Correct user/password in the URL, but an explicit token: only the token is sent, which this server refuses.
    with pytest.raises(AuthorizationError):
        await connect(f"nats://{USER}:{PASSWORD}@127.0.0.1:{nats_server.port}", token="some-token")


@users_server
async def test_url_userinfo_ignored_when_authenticator_given(nats_server: NatsServer) -> None:
    # An authenticator that adds nothing still counts as "given": the URL's (correct) credentials are not used.
    with pytest.raises(AuthorizationError):
        await connect(f"nats://{USER}:{PASSWORD}@127.0.0.1:{nats_server.port}", authenticator=lambda nonce: None)


@users_server
async def test_user_password_authenticator_with_strings(nats_server: NatsServer) -> None:
    await _connect_and_check(nats_server.url, authenticator=user_password_authenticator(USER, PASSWORD))


@users_server
async def test_user_password_authenticator_callables_evaluated_on_every_connect(nats_server: NatsServer) -> None:
    calls = {"user": 0, "password": 0}

    def user() -> str:
        calls["user"] += 1
        return USER

    def password() -> str:
        calls["password"] += 1
        return PASSWORD

    nc = await connect(
        nats_server.url,
        authenticator=user_password_authenticator(user, password),
        reconnect_time_wait=0.05,
        reconnect_jitter=0,
    )
    try:
        assert calls == {"user": 1, "password": 1}
        await _reconnect_once(nc)
        assert calls == {"user": 2, "password": 2}
        await _roundtrip(nc)
    finally:
        await nc.close()


@users_server
async def test_authenticator_receives_none_nonce_without_nkey_users(nats_server: NatsServer) -> None:
    nonces: list[str | None] = []

    def auth(nonce: str | None) -> Mapping[str, Any]:
        nonces.append(nonce)
        return {"user": USER, "pass": PASSWORD}

    await _connect_and_check(nats_server.url, authenticator=auth)
    assert nonces == [None]


@users_server
async def test_authenticator_list_later_ones_override_earlier_keys(nats_server: NatsServer) -> None:
    wrong = user_password_authenticator(USER, "wrong")

    def right_password(nonce: str | None) -> Mapping[str, Any]:
        return {"pass": PASSWORD}

    await _connect_and_check(nats_server.url, authenticator=[wrong, right_password])
    with pytest.raises(AuthorizationError):
        await connect(nats_server.url, authenticator=[right_password, wrong])


@users_server
async def test_user_password_options_override_authenticator(nats_server: NatsServer) -> None:
    # Merge order: authenticators, token, user/password, nkey_seed, user_credentials (later wins).
    await _connect_and_check(
        nats_server.url, authenticator=user_password_authenticator(USER, "wrong"), user=USER, password=PASSWORD
    )


@users_server
async def test_authenticator_that_raises_fails_connect_with_that_error(nats_server: NatsServer) -> None:
    class VaultDown(Exception):
        pass

    def auth(nonce: str | None) -> Mapping[str, Any]:
        raise VaultDown("secret store unreachable")

    with pytest.raises(VaultDown, match="secret store unreachable"):
        await connect(nats_server.url, authenticator=auth)


@users_server
async def test_authenticator_raising_during_reconnect_fails_only_that_attempt(nats_server: NatsServer) -> None:
    # an exception of the authenticator aborts *that* connect attempt; the reconnect policy
    # goes on, and a later attempt that authenticates succeeds.
    calls = 0

    def auth(nonce: str | None) -> Mapping[str, Any]:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise RuntimeError("secret store briefly unreachable")
        return {"user": USER, "pass": PASSWORD}

    nc = await connect(nats_server.url, authenticator=auth, reconnect_time_wait=0.05, reconnect_jitter=0)
    try:
        async with StatusLog(nc) as log:
            await nc.reconnect()
            await eventually(lambda: bool(log.of(Events.RECONNECT)) or nc.is_closed, timeout=3, what="reconnect")
        assert not nc.is_closed
        assert calls == 4
        await _roundtrip(nc)
    finally:
        await nc.close()


# -- token -----------------------------------------------------------------------------------------------------


@token_server
async def test_token_option_authenticates(nats_server: NatsServer) -> None:
    await _connect_and_check(nats_server.url, token=TOKEN)


@token_server
async def test_token_from_url_userinfo(nats_server: NatsServer) -> None:
    await _connect_and_check(f"nats://{TOKEN}@127.0.0.1:{nats_server.port}")


@token_server
async def test_token_authenticator_with_string(nats_server: NatsServer) -> None:
    await _connect_and_check(nats_server.url, authenticator=token_authenticator(TOKEN))


@token_server
async def test_wrong_token_raises_authorization_error(nats_server: NatsServer) -> None:
    with pytest.raises(AuthorizationError):
        await connect(nats_server.url, token="not-the-token")


@token_server
async def test_url_token_ignored_when_token_option_given(nats_server: NatsServer) -> None:
    await _connect_and_check(f"nats://not-the-token@127.0.0.1:{nats_server.port}", token=TOKEN)


@token_server
async def test_token_authenticator_callable_evaluated_on_every_connect(nats_server: NatsServer) -> None:
    calls = 0

    def token() -> str:
        nonlocal calls
        calls += 1
        return TOKEN

    nc = await connect(
        nats_server.url, authenticator=token_authenticator(token), reconnect_time_wait=0.05, reconnect_jitter=0
    )
    try:
        assert calls == 1
        await _reconnect_once(nc)
        assert calls == 2
        await _reconnect_once(nc)
        assert calls == 3
        await _roundtrip(nc)
    finally:
        await nc.close()


# -- NKeys -----------------------------------------------------------------------------------------------------


@pytest.fixture
def nkey_seed() -> bytes:
    return _user_seed()


@pytest.fixture
def nkey_server(nats_server_factory: Callable[..., NatsServer], nkey_seed: bytes) -> NatsServer:
    return nats_server_factory(config=_nkey_config(nkey_seed))


async def test_nkey_seed_as_str(nkey_server: NatsServer, nkey_seed: bytes) -> None:
    await _connect_and_check(nkey_server.url, nkey_seed=nkey_seed.decode())


async def test_nkey_seed_as_bytes(nkey_server: NatsServer, nkey_seed: bytes) -> None:
    await _connect_and_check(nkey_server.url, nkey_seed=nkey_seed)


async def test_nkey_authenticator_with_seed_callable(nkey_server: NatsServer, nkey_seed: bytes) -> None:
    nonces: list[str | None] = []
    inner = nkey_authenticator(lambda: nkey_seed)

    def auth(nonce: str | None) -> Mapping[str, Any] | None:
        nonces.append(nonce)
        return inner(nonce)

    await _connect_and_check(nkey_server.url, authenticator=auth)
    assert len(nonces) == 1 and nonces[0]  # a server with nkey users sends a nonce to sign


async def test_nkey_signature_matches_public_key(nkey_seed: bytes) -> None:
    fields = nkey_authenticator(nkey_seed)("some-nonce")
    assert fields is not None
    assert fields["nkey"] == _public_key(nkey_seed)
    sig = fields["sig"]
    assert "=" not in sig and "+" not in sig and "/" not in sig  # unpadded base64url
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    kp = nkeys.from_seed(bytearray(nkey_seed))
    try:
        assert kp.verify(b"some-nonce", raw)
    finally:
        kp.wipe()


async def test_nkey_authenticator_without_nonce_sends_empty_signature(nkey_seed: bytes) -> None:
    fields = nkey_authenticator(nkey_seed)(None)
    assert fields == {"nkey": _public_key(nkey_seed), "sig": ""}


async def test_nkey_seed_rotates_on_reconnect(nats_server_factory: Callable[..., NatsServer]) -> None:
    first, second = _user_seed(), _user_seed()
    server = nats_server_factory(config=_nkey_config(first, second))
    current = {"seed": first}
    nc = await connect(
        server.url,
        authenticator=nkey_authenticator(lambda: current["seed"]),
        reconnect_time_wait=0.05,
        reconnect_jitter=0,
    )
    try:
        current["seed"] = second
        await _reconnect_once(nc)
        connz = await http_json(server.monitor_urls[0] + "/connz?auth=1")
        assert [c.get("authorized_user") for c in connz["connections"]] == [_public_key(second)]
    finally:
        await nc.close()


async def test_unknown_nkey_raises_authorization_error(nkey_server: NatsServer) -> None:
    with pytest.raises(AuthorizationError):
        await connect(nkey_server.url, nkey_seed=_user_seed())


async def test_malformed_nkey_seed_raises_bad_creds_error(nkey_server: NatsServer, nkey_seed: bytes) -> None:
    for malformed in (nkey_seed[:20], "not a seed at all", _public_key(nkey_seed)):
        with pytest.raises(BadCredsError):
            await connect(nkey_server.url, nkey_seed=malformed)


# -- auth error abort while reconnecting -----------------------------------------------------------------------


class _Rotating:
    """A token source whose value the test changes, counting how often it was asked."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.value


def _replace_token_server(factory: Callable[..., NatsServer], old: NatsServer, token: str) -> NatsServer:
    """Stop ``old`` and start a server with another token on the same port (what a reconnecting client sees)."""
    old.stop()
    return factory(jetstream=False, token=token, port=old.port)


async def test_same_auth_error_twice_while_reconnecting_closes_connection(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    server = nats_server_factory(jetstream=False, token="first-token")
    token = _Rotating("first-token")
    nc = await connect(
        server.url,
        authenticator=token_authenticator(token),
        reconnect_time_wait=0.05,
        reconnect_jitter=0,
        max_reconnect_attempts=-1,
    )
    try:
        _replace_token_server(nats_server_factory, server, "second-token")
        err = await asyncio.wait_for(asyncio.shield(nc.closed), 10)
        assert isinstance(err, AuthorizationError)
        assert nc.is_closed
    finally:
        await nc.close()


async def test_ignore_auth_error_abort_keeps_reconnecting_until_credentials_work(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    server = nats_server_factory(jetstream=False, token="first-token")
    token = _Rotating("first-token")
    nc = await connect(
        server.url,
        authenticator=token_authenticator(token),
        reconnect_time_wait=0.05,
        reconnect_jitter=0,
        max_reconnect_attempts=-1,
        ignore_auth_error_abort=True,
    )
    try:
        sub = nc.subscribe("abort.check")
        await nc.flush()
        async with StatusLog(nc) as log:
            _replace_token_server(nats_server_factory, server, "second-token")
            before = token.calls  # every attempt that reaches the new server asks for the token
            await eventually(lambda: token.calls >= before + 4, timeout=10, what="four refused reconnect attempts")
            assert not nc.is_closed
            assert not log.of(Events.RECONNECT)
            token.value = "second-token"
            await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="RECONNECT event")
        assert not nc.is_closed
        nc.publish("abort.check", b"back")
        assert (await sub.next_msg(timeout=5)).data == b"back"
    finally:
        await nc.close()


# -- secrets never leak --------------------------------------------------------------------------------------------


def _assert_no_secret(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]!r}"


def _log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    out: list[str] = []
    for record in caplog.records:
        out.append(record.getMessage())
        if record.exc_text:
            out.append(record.exc_text)
    return out


def _error_texts(err: BaseException) -> list[str]:
    texts = [str(err), repr(err)]
    cause = err.__cause__ or err.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return texts


@users_server
async def test_password_not_in_repr_errors_or_logs(nats_server: NatsServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cnats")
    wrong = "wrong-pw-5d1e-secret"
    with pytest.raises(AuthorizationError) as info:
        await connect(nats_server.url, user=USER, password=wrong)
    with pytest.raises(AuthorizationError) as info_url:
        await connect(f"nats://{USER}:{wrong}@127.0.0.1:{nats_server.port}")
    nc = await connect(nats_server.url, user=USER, password=PASSWORD)
    try:
        await _roundtrip(nc)
        texts = [repr(nc), str(nc), *_error_texts(info.value), *_error_texts(info_url.value), *_log_texts(caplog)]
    finally:
        await nc.close()
    _assert_no_secret(texts, wrong, PASSWORD)


@token_server
async def test_token_not_in_repr_errors_or_logs(nats_server: NatsServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cnats")
    wrong = "wrong-tok-2b7c-secret"
    with pytest.raises(AuthorizationError) as info:
        await connect(nats_server.url, token=wrong)
    nc = await connect(f"nats://{TOKEN}@127.0.0.1:{nats_server.port}")
    try:
        await _roundtrip(nc)
        texts = [repr(nc), str(nc), nc.server, *_error_texts(info.value), *_log_texts(caplog)]
    finally:
        await nc.close()
    _assert_no_secret(texts, wrong, TOKEN)


async def test_url_password_not_in_connection_refused_error() -> None:
    port = closed_port()
    with pytest.raises(NatsConnectionRefusedError) as info:
        await connect(f"nats://{USER}:{PASSWORD}@127.0.0.1:{port}")
    _assert_no_secret(_error_texts(info.value), PASSWORD)


async def test_seed_not_in_repr_errors_or_logs(
    nkey_server: NatsServer, nkey_seed: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cnats")
    unknown = _user_seed()
    broken = nkey_seed[:30]  # too short to be a seed
    with pytest.raises(AuthorizationError) as refused:
        await connect(nkey_server.url, nkey_seed=unknown)
    with pytest.raises(BadCredsError) as malformed:
        await connect(nkey_server.url, nkey_seed=broken)
    nc = await connect(nkey_server.url, nkey_seed=nkey_seed)
    try:
        await _roundtrip(nc)
        texts = [repr(nc), *_error_texts(refused.value), *_error_texts(malformed.value), *_log_texts(caplog)]
    finally:
        await nc.close()
    secrets = [s.decode() for s in (unknown, broken, nkey_seed)]
    _assert_no_secret(texts, *secrets, *(s[4:40] for s in secrets))


@users_server
async def test_password_not_in_debug_protocol_log(nats_server: NatsServer, caplog: pytest.LogCaptureFixture) -> None:
    # debug=True logs protocol lines on "cnats.protocol"; the CONNECT line must not carry the password in clear
    # (docs/connecting.md: "Passwords, tokens and seeds never appear in repr(), log lines or error messages").
    caplog.set_level(logging.DEBUG, logger="cnats")
    nc = await connect(nats_server.url, user=USER, password=PASSWORD, debug=True)
    try:
        await _roundtrip(nc)
    finally:
        await nc.close()
    assert any("CONNECT" in t for t in _log_texts(caplog))  # the protocol was logged at all
    _assert_no_secret(_log_texts(caplog), PASSWORD)


async def test_bad_credentials_errors_are_nats_errors(nkey_server: NatsServer) -> None:
    with pytest.raises(NatsError) as info:
        await connect(nkey_server.url, nkey_seed=_user_seed())
    assert isinstance(info.value, AuthError)
