"""Authenticators: callables that turn the server's nonce into CONNECT credentials.

Each is called on every (re)connect, and callable arguments are evaluated on every call, so rotated credentials are
picked up. NKey and JWT signing needs the ``nkeys`` package (``pip install 'cnats[nkeys]'``). No function here puts
a secret into a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import BadCredsError

__all__ = [
    "creds_authenticator",
    "jwt_authenticator",
    "nkey_authenticator",
    "token_authenticator",
    "user_password_authenticator",
]

Authenticator = Callable[[str | None], Mapping[str, Any] | None]

# A creds file: a user JWT block, then a seed block; dashes of 3 or more, any text on the marker lines.
_BLOCK = re.compile(r"\s*(?:(?:[-]{3,}.*[-]{3,}\r?\n)([\w\-.=]+)(?:\r?\n[-]{3,}.*[-]{3,}(\r?\n|\Z)))", re.M)


def _value(item: Any) -> Any:
    """The item itself, or what it returns when it is a callable (evaluated on every use: rotation)."""
    return item() if callable(item) else item


def _nkeys() -> Any:
    try:
        import nkeys  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError("NKey and JWT authentication need the nkeys package: pip install 'cnats[nkeys]'") from None
    return nkeys


def _seed_bytes(seed: str | bytes) -> bytes:
    return seed.encode("ascii") if isinstance(seed, str) else bytes(seed)


def _sign(seed: str | bytes, nonce: str | None) -> tuple[str, str]:
    """(public key, signature of the nonce in unpadded base64url; "" without a nonce)."""
    nkeys = _nkeys()
    try:
        keypair = nkeys.from_seed(_seed_bytes(seed))
    except Exception as exc:  # noqa: BLE001 - nkeys raises its own types; never echo the seed
        raise BadCredsError(f"invalid nkey seed ({type(exc).__name__})") from None
    try:
        public = keypair.public_key.decode()
        if nonce is None:
            return public, ""
        signature = keypair.sign(nonce.encode())
        return public, base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    finally:
        keypair.wipe()


def user_password_authenticator(
    user: str | Callable[[], str], password: str | Callable[[], str] | None = None
) -> Authenticator:
    """``{"user", "pass"}``.

    Raises:
        Nothing: the values (or the callables giving them) are only used when the authenticator is called; an
            exception raised by such a callable comes out of the connect or reconnect that called it.
    """

    def authenticate(nonce: str | None) -> Mapping[str, Any]:
        fields: dict[str, Any] = {"user": _value(user)}
        if password is not None:
            fields["pass"] = _value(password)
        return fields

    return authenticate


def token_authenticator(token: str | Callable[[], str]) -> Authenticator:
    """``{"auth_token"}``.

    Raises:
        Nothing: the token (or the callable giving it) is only used when the authenticator is called; an exception
            raised by such a callable comes out of the connect or reconnect that called it.
    """

    def authenticate(nonce: str | None) -> Mapping[str, Any]:
        return {"auth_token": _value(token)}

    return authenticate


def nkey_authenticator(seed: str | bytes | Callable[[], str | bytes]) -> Authenticator:
    """``{"nkey", "sig"}``: the seed's public key and its signature of the nonce.

    The seed is only read when the authenticator is called (at connect): a seed that is not valid makes that call
    raise ``BadCredsError``.

    Raises:
        ImportError: the ``nkeys`` package is not installed.
    """
    _nkeys()  # fail at creation, not at the first connect, when nkeys is missing

    def authenticate(nonce: str | None) -> Mapping[str, Any]:
        public, signature = _sign(_value(seed), nonce)
        return {"nkey": public, "sig": signature}

    return authenticate


def jwt_authenticator(
    jwt: str | Callable[[], str], seed: str | bytes | Callable[[], str | bytes] | None = None
) -> Authenticator:
    """``{"jwt", "nkey", "sig"}``; without a seed a bearer JWT with empty ``nkey``/``sig``.

    The JWT and seed are only read when the authenticator is called (at connect): a seed that is not valid makes
    that call raise ``BadCredsError``.

    Raises:
        ImportError: a ``seed`` is given and the ``nkeys`` package is not installed.
    """
    if seed is not None:
        _nkeys()

    def authenticate(nonce: str | None) -> Mapping[str, Any]:
        token = _value(jwt)
        if seed is None:
            return {"jwt": token, "nkey": "", "sig": ""}
        public, signature = _sign(_value(seed), nonce)
        return {"jwt": token, "nkey": public, "sig": signature}

    return authenticate


def parse_creds(creds: bytes | str) -> tuple[str, str]:
    """The user JWT and seed of a ``.creds`` document; ``BadCredsError`` when it is not one."""
    text = creds.decode("utf-8", "replace") if isinstance(creds, (bytes, bytearray)) else str(creds)
    blocks = [m.group(1) for m in _BLOCK.finditer(text)]
    jwt = next((b for b in blocks if b.startswith("eyJ") or b.count(".") == 2), None)
    seed = next((b for b in blocks if b.startswith("SU")), None)
    if jwt is None:
        raise BadCredsError("credentials contain no user JWT block")
    if seed is None:
        raise BadCredsError("credentials contain no user seed block")
    return jwt, seed


def creds_authenticator(creds: bytes | str | Callable[[], bytes | str]) -> Authenticator:
    """Reads a ``.creds`` document (on every call when given a callable) and signs the nonce with its seed.

    The document is only parsed when the authenticator is called (at connect): one without a user JWT block or a
    valid seed makes that call raise ``BadCredsError``.

    Raises:
        ImportError: the ``nkeys`` package is not installed.
    """
    _nkeys()

    def authenticate(nonce: str | None) -> Mapping[str, Any]:
        jwt, seed = parse_creds(_value(creds))
        public, signature = _sign(seed, nonce)
        return {"jwt": jwt, "nkey": public, "sig": signature}

    return authenticate
