"""The error hierarchy of cnats.

nats.js raises one ``NatsError`` class carrying a code; cnats gives every code its own subclass so that callers can
``except`` by type, while ``err.code`` still carries the nats.js code string. Where a builtin exception fits, the
subclass also derives from it (``NatsTimeoutError`` is a ``TimeoutError``, bad arguments are ``ValueError``...).
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "AccountExpiredError",
    "AuthError",
    "AuthenticationExpiredError",
    "AuthenticationTimeoutError",
    "AuthorizationError",
    "BadCredsError",
    "BadHeaderError",
    "BadJsonError",
    "BadPayloadError",
    "BadSubjectError",
    "BucketNotFoundError",
    "CallbackError",
    "ConnectionClosedError",
    "ConnectionDrainingError",
    "ConnectionTimeoutError",
    "ConsumerNotFoundError",
    "DigestMismatchError",
    "DisconnectedError",
    "DrainTimeoutError",
    "ErrorCode",
    "InvalidKeyError",
    "InvalidNameError",
    "InvalidOptionError",
    "JetStreamApiError",
    "JetStreamError",
    "JetStreamIdleHeartbeatError",
    "JetStreamInvalidAckError",
    "JetStreamNotEnabledError",
    "MaxPayloadExceededError",
    "MessageNotFoundError",
    "NatsConnectionRefusedError",
    "NatsError",
    "NatsTimeoutError",
    "NoRespondersError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "OutboundBufferLimitError",
    "PermissionViolationError",
    "ProtocolError",
    "RequestError",
    "ServerOptionNotAvailableError",
    "SlowConsumerError",
    "StreamNotFoundError",
    "SubscriptionClosedError",
    "SubscriptionDrainingError",
    "TlsError",
    "WrongLastSequenceError",
    "error_from_server",
]


class ErrorCode(str, Enum):
    """Error codes; the values are those of nats.js ``ErrorCode`` (plus a few cnats-only ones)."""

    API_ERROR = "BAD API"
    BAD_AUTHENTICATION = "BAD_AUTHENTICATION"
    BAD_CREDS = "BAD_CREDS"
    BAD_HEADER = "BAD_HEADER"
    BAD_JSON = "BAD_JSON"
    BAD_PAYLOAD = "BAD_PAYLOAD"
    BAD_SUBJECT = "BAD_SUBJECT"
    CANCELLED = "CANCELLED"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"
    CONNECTION_DRAINING = "CONNECTION_DRAINING"
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    CONNECTION_TIMEOUT = "CONNECTION_TIMEOUT"
    DISCONNECT = "DISCONNECT"
    INVALID_OPTION = "INVALID_OPTION"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    MAX_PAYLOAD_EXCEEDED = "MAX_PAYLOAD_EXCEEDED"
    NO_RESPONDERS = "503"
    NOT_FUNCTION = "NOT_FUNC"
    REQUEST_ERROR = "REQUEST_ERROR"
    SERVER_OPTION_NOT_AVAILABLE = "SERVER_OPT_NA"
    SUB_CLOSED = "SUB_CLOSED"
    SUB_DRAINING = "SUB_DRAINING"
    TIMEOUT = "TIMEOUT"
    TLS = "TLS"
    UNKNOWN = "UNKNOWN_ERROR"
    WSS_REQUIRED = "WSS_REQUIRED"
    JETSTREAM_INVALID_ACK = "JESTREAM_INVALID_ACK"  # sic: the nats.js value, kept verbatim
    JETSTREAM_404_NO_MESSAGES = "404"
    JETSTREAM_408_REQUEST_TIMEOUT = "408"
    JETSTREAM_409_MAX_ACK_PENDING_EXCEEDED = "409"
    JETSTREAM_409 = "409"  # alias of the previous member
    JETSTREAM_NOT_ENABLED = "503"  # alias of NO_RESPONDERS
    JETSTREAM_IDLE_HEARTBEAT = "IDLE_HEARTBEAT"
    AUTHORIZATION_VIOLATION = "AUTHORIZATION_VIOLATION"
    AUTHENTICATION_EXPIRED = "AUTHENTICATION_EXPIRED"
    PROTOCOL_ERROR = "NATS_PROTOCOL_ERR"
    PERMISSIONS_VIOLATION = "PERMISSIONS_VIOLATION"
    AUTHENTICATION_TIMEOUT = "AUTHENTICATION_TIMEOUT"
    ACCOUNT_EXPIRED = "ACCOUNT_EXPIRED"
    # cnats-only codes
    SLOW_CONSUMER = "SLOW_CONSUMER"
    OUTBOUND_BUFFER_LIMIT = "OUTBOUND_BUFFER_LIMIT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    CALLBACK_ERROR = "CALLBACK_ERROR"
    DRAIN_TIMEOUT = "DRAIN_TIMEOUT"


class NatsError(Exception):
    """Base of every cnats error. ``str(err) == err.message``; the message defaults to the code."""

    code: str
    message: str

    def __init__(self, message: str | None = None, code: str = ErrorCode.UNKNOWN) -> None:
        if message is None:
            message = code.value if isinstance(code, ErrorCode) else str(code)
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class _FixedCodeError(NatsError):
    """A subclass whose code is fixed by its class (``CODE``)."""

    CODE: str = ErrorCode.UNKNOWN

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, self.CODE)


class ConnectionClosedError(_FixedCodeError):
    """The connection is closed."""

    CODE = ErrorCode.CONNECTION_CLOSED


class ConnectionDrainingError(_FixedCodeError):
    """The connection is draining: no new publishes, subscriptions or requests."""

    CODE = ErrorCode.CONNECTION_DRAINING


class NatsConnectionRefusedError(_FixedCodeError, ConnectionRefusedError):
    """No server accepted the connection."""

    CODE = ErrorCode.CONNECTION_REFUSED


class DisconnectedError(_FixedCodeError):
    """The operation needs a live connection and the client is disconnected."""

    CODE = ErrorCode.DISCONNECT


class NatsTimeoutError(_FixedCodeError, TimeoutError):
    """An operation did not complete in time."""

    CODE = ErrorCode.TIMEOUT


class DrainTimeoutError(NatsTimeoutError):
    """A drain did not finish within its timeout; the connection (or subscription) was closed anyway."""

    CODE = ErrorCode.DRAIN_TIMEOUT


class ConnectionTimeoutError(NatsTimeoutError):
    """Connecting (socket, TLS and handshake) took longer than the ``timeout`` option."""

    CODE = ErrorCode.CONNECTION_TIMEOUT


class NoRespondersError(_FixedCodeError):
    """A request reached no subscriber (the server answered with status 503)."""

    CODE = ErrorCode.NO_RESPONDERS


class RequestError(_FixedCodeError):
    """A request failed."""

    CODE = ErrorCode.REQUEST_ERROR


class InvalidOptionError(_FixedCodeError, ValueError):
    """An argument or option value is not valid."""

    CODE = ErrorCode.INVALID_OPTION


class InvalidNameError(InvalidOptionError):
    """A stream, consumer, bucket, service or endpoint name is not valid."""


class InvalidKeyError(InvalidOptionError):
    """A KV key (or key filter) is not valid."""


class BadSubjectError(_FixedCodeError, ValueError):
    """A subject is empty or contains whitespace."""

    CODE = ErrorCode.BAD_SUBJECT


class BadPayloadError(_FixedCodeError, TypeError):
    """A payload is not bytes, bytearray, a contiguous memoryview or str."""

    CODE = ErrorCode.BAD_PAYLOAD


class BadHeaderError(_FixedCodeError, ValueError):
    """A header key or value is not valid."""

    CODE = ErrorCode.BAD_HEADER


class BadJsonError(_FixedCodeError, ValueError):
    """Data is not valid JSON (or a value cannot be encoded as JSON)."""

    CODE = ErrorCode.BAD_JSON


class BadCredsError(_FixedCodeError, ValueError):
    """A credentials (.creds) document is malformed."""

    CODE = ErrorCode.BAD_CREDS


class MaxPayloadExceededError(_FixedCodeError, ValueError):
    """Encoded headers plus payload are larger than the server's ``max_payload``."""

    CODE = ErrorCode.MAX_PAYLOAD_EXCEEDED


class ServerOptionNotAvailableError(_FixedCodeError):
    """The server does not support a requested feature (headers, no_echo, TLS...)."""

    CODE = ErrorCode.SERVER_OPTION_NOT_AVAILABLE


class TlsError(_FixedCodeError):
    """TLS could not be negotiated as requested."""

    CODE = ErrorCode.TLS


class ProtocolError(_FixedCodeError):
    """The server sent something that is not valid NATS protocol, or a ``-ERR`` without a more specific class."""

    CODE = ErrorCode.PROTOCOL_ERROR


class AuthError(NatsError):
    """Base of the authentication/authorization errors (nats.js ``isAuthError()``)."""

    CODE: str = ErrorCode.BAD_AUTHENTICATION

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, self.CODE)


class AuthorizationError(AuthError):
    """The server refused the credentials (``Authorization Violation``)."""

    CODE = ErrorCode.AUTHORIZATION_VIOLATION


class AuthenticationExpiredError(AuthError):
    """The user's credentials expired (``User Authentication Expired``)."""

    CODE = ErrorCode.AUTHENTICATION_EXPIRED


class AccountExpiredError(AuthError):
    """The account's credentials expired (``Account Authentication Expired``)."""

    CODE = ErrorCode.ACCOUNT_EXPIRED


class AuthenticationTimeoutError(_FixedCodeError):
    """The server timed out waiting for the client's CONNECT."""

    CODE = ErrorCode.AUTHENTICATION_TIMEOUT


class PermissionViolationError(_FixedCodeError):
    """The server denied a publish or a subscription."""

    CODE = ErrorCode.PERMISSIONS_VIOLATION

    def __init__(
        self, message: str | None = None, *, operation: str = "", subject: str = "", queue: str | None = None
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.subject = subject
        self.queue = queue


class SlowConsumerError(_FixedCodeError):
    """A subscription's pending limits were exceeded and messages were dropped."""

    CODE = ErrorCode.SLOW_CONSUMER

    def __init__(
        self,
        message: str | None = None,
        *,
        sid: int = 0,
        subject: str = "",
        pending_msgs: int = 0,
        pending_bytes: int = 0,
    ) -> None:
        super().__init__(message)
        self.sid = sid
        self.subject = subject
        self.pending_msgs = pending_msgs
        self.pending_bytes = pending_bytes


class CallbackError(_FixedCodeError):
    """A callback given to cnats raised; the exception is ``__cause__``. Reported as a status event, never raised
    into the connection: the subscription goes on."""

    CODE = ErrorCode.CALLBACK_ERROR

    def __init__(self, message: str | None = None, *, subject: str = "", sid: int = 0) -> None:
        super().__init__(message)
        self.subject = subject
        self.sid = sid


class OutboundBufferLimitError(_FixedCodeError):
    """Publishing would make the outbound buffer exceed ``pending_bytes_limit``; nothing was written."""

    CODE = ErrorCode.OUTBOUND_BUFFER_LIMIT


class SubscriptionClosedError(_FixedCodeError):
    """The subscription is closed."""

    CODE = ErrorCode.SUB_CLOSED


class SubscriptionDrainingError(_FixedCodeError):
    """The subscription is already draining."""

    CODE = ErrorCode.SUB_DRAINING


class JetStreamError(NatsError):
    """Base of the JetStream, KV and object-store errors."""


class JetStreamInvalidAckError(JetStreamError, _FixedCodeError):
    """A publish acknowledgement did not name a stream."""

    CODE = ErrorCode.JETSTREAM_INVALID_ACK


class JetStreamIdleHeartbeatError(JetStreamError, _FixedCodeError):
    """Idle heartbeats from the server were missed."""

    CODE = ErrorCode.JETSTREAM_IDLE_HEARTBEAT


class JetStreamApiError(JetStreamError):
    """An error response of the JetStream API: ``code == str(status)``, ``message == description`` verbatim."""

    def __init__(
        self, message: str | None = None, *, status: int = 500, err_code: int | None = None, description: str = ""
    ) -> None:
        if not description:
            description = message or ""
        super().__init__(message if message is not None else description or None, str(status))
        self.status = status
        self.err_code = err_code
        self.description = description


class JetStreamNotEnabledError(JetStreamApiError):
    """JetStream is not enabled for the account (or no JetStream API answered)."""

    def __init__(
        self, message: str | None = None, *, status: int = 503, err_code: int | None = None, description: str = ""
    ) -> None:
        super().__init__(message, status=status, err_code=err_code, description=description)


class StreamNotFoundError(JetStreamApiError):
    """The stream does not exist (status 404, err_code 10059)."""

    def __init__(
        self, message: str | None = None, *, status: int = 404, err_code: int | None = 10059, description: str = ""
    ) -> None:
        super().__init__(message, status=status, err_code=err_code, description=description)


class ConsumerNotFoundError(JetStreamApiError):
    """The consumer does not exist (status 404, err_code 10014)."""

    def __init__(
        self, message: str | None = None, *, status: int = 404, err_code: int | None = 10014, description: str = ""
    ) -> None:
        super().__init__(message, status=status, err_code=err_code, description=description)


class MessageNotFoundError(JetStreamApiError):
    """The message does not exist (status 404, err_code 10037)."""

    def __init__(
        self, message: str | None = None, *, status: int = 404, err_code: int | None = 10037, description: str = ""
    ) -> None:
        super().__init__(message, status=status, err_code=err_code, description=description)


class WrongLastSequenceError(JetStreamApiError):
    """An expected-last-sequence check failed (status 400, err_code 10071)."""

    def __init__(
        self, message: str | None = None, *, status: int = 400, err_code: int | None = 10071, description: str = ""
    ) -> None:
        super().__init__(message, status=status, err_code=err_code, description=description)


class BucketNotFoundError(JetStreamError, _FixedCodeError):
    """The KV bucket or object store does not exist."""

    CODE = ErrorCode.NOT_FOUND


class ObjectNotFoundError(JetStreamError, _FixedCodeError):
    """The object does not exist (or is deleted)."""

    CODE = ErrorCode.NOT_FOUND


class ObjectExistsError(JetStreamError, _FixedCodeError):
    """An object already exists under that name."""

    CODE = ErrorCode.ALREADY_EXISTS


class DigestMismatchError(JetStreamError, _FixedCodeError):
    """An object's data does not match its recorded digest."""

    CODE = ErrorCode.DIGEST_MISMATCH


def _quoted_after(text: str, lowered: str, marker: str) -> str | None:
    """The text between double quotes that follows ``marker`` (searched case-insensitively), if any."""
    at = lowered.find(marker)
    if at < 0:
        return None
    start = text.find('"', at + len(marker))
    if start < 0:
        return None
    end = text.find('"', start + 1)
    return text[start + 1 : end] if end > start else None


def error_from_server(text: str) -> NatsError:
    """Map the text of a server ``-ERR`` line (quotes already removed) to its error class, as nats.js does.

    Raises:
        Nothing: the error is returned, not raised; text it does not recognise gives a ``ProtocolError``.
    """
    lowered = text.lower()
    if "permissions violation" in lowered:
        operation = "subscription" if "subscription to" in lowered else "publish"
        subject = _quoted_after(text, lowered, " to ") or ""
        queue = _quoted_after(text, lowered, "using queue")
        return PermissionViolationError(text, operation=operation, subject=subject, queue=queue)
    if "authorization violation" in lowered:
        return AuthorizationError(text)
    if "user authentication expired" in lowered:
        return AuthenticationExpiredError(text)
    if "account authentication expired" in lowered:
        return AccountExpiredError(text)
    if "authentication timeout" in lowered:
        return AuthenticationTimeoutError(text)
    return ProtocolError(text)
