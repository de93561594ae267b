"""smtpx: a fast, secure SMTP client with a compiled core.

``smtpx.IMPLEMENTATION`` says which core is active: ``"cython"`` (compiled) or
``"python"`` (the pure-Python twins); ``python -m smtpx info`` says why.
"""

from __future__ import annotations

from ._hot import IMPLEMENTATION, Response
from ._version import __version__
from .config import (
    Credentials,
    Envelope,
    Mechanism,
    PoolConfig,
    Timeouts,
    Tls,
    TlsMode,
    TlsParameters,
)
from .errors import (
    AuthError,
    DeliveryUnknownError,
    InsecureAuthError,
    InvalidInputError,
    NetworkError,
    PermanentError,
    ProtocolError,
    RecipientsRefusedError,
    ResponseError,
    SmtpError,
    SmtpTimeoutError,
    TlsError,
    TlsRequiredError,
    TransientError,
)
from .message import Address, Mailbox, Message, MessageBuilder, MessageTemplate
from .protocol.session import SendResult
from .transport import AsyncSmtpTransport, SmtpTransport, TransportBuilder, TransportSettings

__all__ = [
    "IMPLEMENTATION",
    "Address",
    "AsyncSmtpTransport",
    "AuthError",
    "Credentials",
    "DeliveryUnknownError",
    "Envelope",
    "InsecureAuthError",
    "InvalidInputError",
    "Mailbox",
    "Mechanism",
    "Message",
    "MessageBuilder",
    "MessageTemplate",
    "NetworkError",
    "PermanentError",
    "PoolConfig",
    "ProtocolError",
    "RecipientsRefusedError",
    "Response",
    "ResponseError",
    "SendResult",
    "SmtpError",
    "SmtpTimeoutError",
    "SmtpTransport",
    "Timeouts",
    "Tls",
    "TlsError",
    "TlsMode",
    "TlsParameters",
    "TlsRequiredError",
    "TransientError",
    "TransportBuilder",
    "TransportSettings",
    "__version__",
]
