"""Make NATS operator/account/user JWTs and ``.creds`` files for tests (signed with the ``nkeys`` package).

A NATS JWT is ``base64url(header).base64url(claims).base64url(signature)`` (unpadded), with the header
``{"typ":"JWT","alg":"ed25519-nkey"}`` and an Ed25519 signature, made with the issuer's nkey, over the ASCII bytes
``header_b64 + "." + claims_b64``. The ``jti`` claim is the unpadded base32 SHA-256 of the claims without it.

Typical use::

    op = Operator.create()
    acc = op.account("A")
    user = acc.user("alice")
    server = NatsServer(config=operator_config(op, acc))
    creds_path.write_text(user.creds())
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import nkeys  # type: ignore[import-untyped]

__all__ = ["Account", "KeyPair", "Operator", "User", "encode_jwt", "format_creds", "operator_config"]

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED_ACCOUNT_LIMITS: dict[str, Any] = {
    "subs": -1,
    "conn": -1,
    "leaf": -1,
    "imports": -1,
    "exports": -1,
    "data": -1,
    "payload": -1,
    "wildcards": True,
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True)
class KeyPair:
    """An nkey: its seed (``S...``, bytes) and public key (``O...``/``A...``/``U...``, str)."""

    seed: bytes
    public_key: str

    @classmethod
    def create(cls, prefix: int) -> KeyPair:
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        kp = nkeys.from_seed(bytearray(seed))
        try:
            return cls(seed=bytes(seed), public_key=kp.public_key.decode())
        finally:
            kp.wipe()

    def sign(self, data: bytes) -> bytes:
        kp = nkeys.from_seed(bytearray(self.seed))
        try:
            signature: bytes = kp.sign(data)
            return signature
        finally:
            kp.wipe()


def encode_jwt(claims: dict[str, Any], issuer: KeyPair) -> str:
    """Sign ``claims`` (``iss`` and ``jti`` are filled in) as a NATS JWT issued by ``issuer``."""
    body = {k: v for k, v in claims.items() if k != "jti"}
    body["iss"] = issuer.public_key
    body.setdefault("iat", int(time.time()))
    jti = base64.b32encode(hashlib.sha256(_json(body)).digest()).decode().rstrip("=")
    signed = f"{_b64(_json(_HEADER))}.{_b64(_json({'jti': jti, **body}))}"
    return f"{signed}.{_b64(issuer.sign(signed.encode('ascii')))}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (not verified)."""
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def format_creds(jwt: str, seed: bytes | str) -> str:
    """The text of a ``.creds`` file holding a user JWT and the user's seed."""
    seed_text = seed.decode("ascii") if isinstance(seed, bytes) else seed
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n"
        "\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n"
        "\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed_text}\n"
        "------END USER NKEY SEED------\n"
        "\n"
        "*************************************************************\n"
    )


@dataclass
class User:
    keys: KeyPair
    jwt: str

    @property
    def seed(self) -> bytes:
        return self.keys.seed

    @property
    def public_key(self) -> str:
        return self.keys.public_key

    def creds(self) -> str:
        return format_creds(self.jwt, self.keys.seed)


@dataclass
class Account:
    keys: KeyPair
    jwt: str
    name: str

    @property
    def public_key(self) -> str:
        return self.keys.public_key

    def user(
        self,
        name: str = "user",
        *,
        expires: float | None = None,
        pub: dict[str, Any] | None = None,
        sub: dict[str, Any] | None = None,
        bearer: bool = False,
    ) -> User:
        """A new user of this account.

        ``expires``: absolute UNIX time (rounded down to whole seconds); ``pub``/``sub``: permissions such as
        ``{"allow": ["a.>"]}``; ``bearer``: the server accepts the JWT without a nonce signature.
        """
        keys = KeyPair.create(nkeys.PREFIX_BYTE_USER)
        claims: dict[str, Any] = {
            "sub": keys.public_key,
            "name": name,
            "nats": {
                "pub": pub or {},
                "sub": sub or {},
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            },
        }
        if bearer:
            claims["nats"]["bearer_token"] = True
        if expires is not None:
            claims["exp"] = int(expires)
        return User(keys=keys, jwt=encode_jwt(claims, self.keys))


@dataclass
class Operator:
    keys: KeyPair
    jwt: str
    accounts: list[Account] = field(default_factory=list)

    @classmethod
    def create(cls, name: str = "cnats-test-operator") -> Operator:
        keys = KeyPair.create(nkeys.PREFIX_BYTE_OPERATOR)
        claims = {"sub": keys.public_key, "name": name, "nats": {"type": "operator", "version": 2}}
        return cls(keys=keys, jwt=encode_jwt(claims, keys))

    def account(self, name: str = "A") -> Account:
        keys = KeyPair.create(nkeys.PREFIX_BYTE_ACCOUNT)
        claims = {
            "sub": keys.public_key,
            "name": name,
            "nats": {
                "limits": dict(UNLIMITED_ACCOUNT_LIMITS),
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
                "version": 2,
            },
        }
        account = Account(keys=keys, jwt=encode_jwt(claims, self.keys), name=name)
        self.accounts.append(account)
        return account


def operator_config(operator: Operator) -> str:
    """nats-server config text for operator mode with a memory resolver preloaded with the operator's accounts."""
    lines = [f"operator: {operator.jwt}", "resolver: MEMORY", "resolver_preload: {"]
    lines += [f"  {a.public_key}: {a.jwt}" for a in operator.accounts]
    lines.append("}")
    return "\n".join(lines)
