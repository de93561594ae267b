"""The smtpx error tree.

Every exception smtpx raises on purpose is an :class:`SmtpError`::

    SmtpError (Exception)
    ├── InvalidInputError (also ValueError)   the caller's input was refused; nothing was sent
    ├── ResponseError                         the server answered with a negative reply
    │   ├── TransientError                    4yz: try again later
    │   ├── PermanentError                    5yz: do not try again unchanged
    │   └── RecipientsRefusedError            no recipient of the transaction was accepted
    ├── ProtocolError                         the server broke the protocol; connection discarded
    ├── NetworkError (also ConnectionError)   the connection failed or was closed
    ├── SmtpTimeoutError (also TimeoutError)  a phase ran past its deadline (see ``phase``)
    ├── TlsError                              the TLS handshake or policy failed
    │   └── TlsRequiredError                  policy demands TLS that the server will not give
    ├── AuthError                             authentication failed or could not be attempted
    │   └── InsecureAuthError                 credentials would have crossed in cleartext
    └── DeliveryUnknownError                  the end of DATA was sent but no definite reply
                                              came back (RFC 1047); never retried automatically

Every error answers the same questions, whatever its class:

``code`` / ``enhanced_code``
    The reply code (``int``) and RFC 3463 enhanced status code (``"5.1.1"``) of the
    server reply behind the error, or ``None`` when there was no reply.
``is_transient``
    Sending the same message again later may succeed (a 4yz reply, a network failure
    or a time-out before the end of DATA).
``is_permanent``
    Sending the same message again unchanged will fail the same way (a 5yz reply,
    refused input).
``is_timeout`` / ``is_tls``
    A time-out or a TLS failure is the error or one of its causes.

An error that is neither transient nor permanent (a protocol violation, a TLS failure,
:class:`DeliveryUnknownError`) needs a decision by someone who knows the situation.

This module is pure Python and imported by both twins of every hot path, so both raise
the very same classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = [
    "AuthError",
    "DeliveryUnknownError",
    "InsecureAuthError",
    "InvalidInputError",
    "NetworkError",
    "PermanentError",
    "ProtocolError",
    "RecipientsRefusedError",
    "ResponseError",
    "SmtpError",
    "SmtpTimeoutError",
    "TlsError",
    "TlsRequiredError",
]


class _Reply(Protocol):
    """What an error needs of a server reply (``smtpx.Response`` satisfies it)."""

    @property
    def code(self) -> int: ...

    @property
    def enhanced_code(self) -> str | None: ...


class SmtpError(Exception):
    """The root of every error smtpx raises on purpose.

    ``response`` is the server reply behind the error, when there was one; ``code`` and
    ``enhanced_code`` are read from it.
    """

    _transient = False
    _permanent = False

    def __init__(self, message: str, *, response: _Reply | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response

    def __str__(self) -> str:
        return self.message

    @property
    def code(self) -> int | None:
        """The reply code behind the error, or ``None`` when there was no reply."""
        return self.response.code if self.response is not None else None

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 enhanced status code (``"4.7.1"``), or ``None``."""
        return self.response.enhanced_code if self.response is not None else None

    @property
    def is_transient(self) -> bool:
        """Sending the same message again later may succeed."""
        code = self.code
        if code is not None and 400 <= code < 600:
            return code < 500
        return self._transient

    @property
    def is_permanent(self) -> bool:
        """Sending the same message again unchanged will fail the same way."""
        code = self.code
        if code is not None and 400 <= code < 600:
            return code >= 500
        return self._permanent

    @property
    def is_timeout(self) -> bool:
        """A time-out is this error or one of its causes."""
        return _in_chain(self, (SmtpTimeoutError, TimeoutError))

    @property
    def is_tls(self) -> bool:
        """A TLS failure is this error or one of its causes."""
        return _in_chain(self, (TlsError,)) or _in_chain(self, _ssl_error_types())


class InvalidInputError(SmtpError, ValueError):
    """The caller's input was refused before any byte of it was sent.

    Raised for CR, LF, NUL or other control characters in addresses, the hello name,
    parameters or credentials; a malformed address; a line over 998 octets; 8-bit or
    UTF-8 data the server cannot take.
    """

    _permanent = True


class ResponseError(SmtpError):
    """The server answered a command with a negative reply (``response`` holds it)."""

    def __init__(self, message: str, *, response: _Reply | None = None) -> None:
        super().__init__(message, response=response)


class TransientError(ResponseError):
    """A 4yz reply: the server may accept the same command later."""


class PermanentError(ResponseError):
    """A 5yz reply: the server will refuse the same command again."""


class RecipientsRefusedError(ResponseError):
    """No recipient of the transaction was accepted.

    ``rejected`` maps each recipient to the reply that refused it; ``response`` (and so
    ``code``) is the first refusal.
    """

    def __init__(self, message: str, *, rejected: Mapping[str, _Reply]) -> None:
        first = next(iter(rejected.values()), None)
        super().__init__(message, response=first)
        self.rejected: dict[str, _Reply] = dict(rejected)

    @property
    def is_transient(self) -> bool:
        """True when every refusal was a 4yz reply."""
        return bool(self.rejected) and all(400 <= r.code < 500 for r in self.rejected.values())

    @property
    def is_permanent(self) -> bool:
        """True when every refusal was a 5yz reply."""
        return bool(self.rejected) and all(r.code >= 500 for r in self.rejected.values())


class ProtocolError(SmtpError):
    """The server broke the protocol: a malformed, oversized, mismatched, unsolicited or
    unexpected reply. The connection it came on is discarded."""


class NetworkError(SmtpError, ConnectionError):
    """The connection could not be made, or failed, or was closed by the server."""

    _transient = True


class SmtpTimeoutError(SmtpError, TimeoutError):
    """A phase ran past its deadline; ``phase`` names it (``"connect"``, ``"greeting"``,
    ``"command"``, ``"data"``, ``"data_block"``, ``"data_end"``, ``"quit"``)."""

    _transient = True

    def __init__(
        self, message: str, *, phase: str | None = None, response: _Reply | None = None
    ) -> None:
        super().__init__(message, response=response)
        self.phase = phase


class TlsError(SmtpError):
    """The TLS handshake failed (certificate, host name, protocol version) or TLS could
    not be used as the policy asks."""


class TlsRequiredError(TlsError):
    """The policy requires TLS, and the server does not offer STARTTLS or refused it.
    Nothing else was sent."""


class AuthError(SmtpError):
    """Authentication failed (``response`` holds the server's answer when there was one)
    or could not be attempted (no common mechanism, no AUTH offered)."""


class InsecureAuthError(AuthError):
    """Credentials would have crossed an unencrypted connection. Nothing was sent; use
    TLS, or opt in with ``builder.allow_insecure_auth(True)``."""

    _permanent = True


class DeliveryUnknownError(SmtpError):
    """The end of the message data was sent, but no definite reply came back.

    The server may or may not have accepted the message (RFC 1047). smtpx never retries
    such a message by itself: sending it again may deliver it twice. ``__cause__`` holds
    the failure (a time-out, a reset) that cut the reply off.
    """

    @property
    def is_transient(self) -> bool:
        return False

    @property
    def is_permanent(self) -> bool:
        return False


def _in_chain(err: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """True when ``err`` or one of its causes/contexts is an instance of ``types``."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, types):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _ssl_error_types() -> tuple[type[BaseException], ...]:
    import ssl  # noqa: PLC0415 - only needed when asked; keeps import time low

    return (ssl.SSLError, ssl.CertificateError)
