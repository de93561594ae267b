"""What the transports accept to send, turned into an envelope and a body for the engine.

Shared by the sync and the asyncio transport.
"""

from __future__ import annotations

import copy
import email.message
import email.policy
import email.utils
import io
import os
from collections.abc import Iterable
from typing import Any

from smtpx.config import Envelope
from smtpx.errors import InvalidInputError
from smtpx.protocol.session import Stream

__all__ = ["Body", "body_of", "position", "prepare_message", "rewind"]

Body = bytes | bytearray | memoryview | list[bytes | bytearray | memoryview] | Stream

#: Bytes read at a time from a file body.
FILE_CHUNK = 256 * 1024

# Serialise with CRLF line ends and no line folding surprises (smtplib's choice).
_POLICY = email.policy.SMTP


def prepare_message(message: Any) -> tuple[Envelope, Body]:
    """The envelope and bytes of a message: a standard-library
    :class:`email.message.EmailMessage` (or ``Message``), or an smtpx message (an
    ``envelope`` property and ``as_bytes()``).

    For a standard-library message the envelope comes from the headers: the sender from
    ``Sender``, else ``From``; the recipients from ``To``, ``Cc`` and ``Bcc``,
    deduplicated. ``Bcc`` never reaches the wire.
    """
    if isinstance(message, email.message.Message):
        return _from_email_message(message)
    envelope = getattr(message, "envelope", None)
    as_bytes = getattr(message, "as_bytes", None)
    chunks = getattr(message, "chunks", None)
    if isinstance(envelope, Envelope) and callable(chunks):
        return envelope, list(chunks())  # sent as they are: shared attachments not copied
    if isinstance(envelope, Envelope) and callable(as_bytes):
        return envelope, as_bytes()
    raise TypeError(
        "send() takes an email.message.EmailMessage or an smtpx message, not "
        f"{type(message).__name__}; use send_raw() for bytes"
    )


def _from_email_message(message: email.message.Message) -> tuple[Envelope, bytes]:
    senders = message.get_all("Sender") or message.get_all("From") or []
    if len(senders) != 1:
        raise InvalidInputError(
            "the message needs exactly one Sender or From header to derive the envelope "
            f"sender (found {len(senders)})"
        )
    sender_addresses = email.utils.getaddresses([str(senders[0])])
    if len(sender_addresses) != 1 or not sender_addresses[0][1]:
        raise InvalidInputError("the Sender/From header does not hold exactly one address")
    recipients: list[str] = []
    for field in ("To", "Cc", "Bcc"):
        for _name, address in email.utils.getaddresses(
            [str(v) for v in message.get_all(field) or []]
        ):
            if address:
                recipients.append(address)
    if not recipients:
        raise InvalidInputError("the message has no recipient in To, Cc or Bcc")
    envelope = Envelope(sender_addresses[0][1], recipients)
    if "Bcc" in message or "Resent-Bcc" in message:
        message = copy.copy(message)  # header deletion rebinds the list: the caller's is kept
        del message["Bcc"]
        del message["Resent-Bcc"]
    return envelope, message.as_bytes(policy=_POLICY)


#: What a body in memory is made of (a tuple: ``bytes | bytearray | memoryview`` written
#: in a call builds a new union object every time, which costs more than the check).
_BYTES_LIKE = (bytes, bytearray, memoryview)


def body_of(data: Any, *, asynchronous: bool = False) -> Body:
    """The engine's body for ``send_raw`` data: a bytes-like object, or a list of them
    (the parts of one message), is sent from memory; a binary file or another iterable
    of bytes (or, for the asyncio transport, an asynchronous iterable of bytes) is
    streamed, never read whole."""
    if isinstance(data, _BYTES_LIKE):
        return data
    if hasattr(data, "__aiter__"):
        if not asynchronous:
            raise TypeError(
                "SmtpTransport cannot read an asynchronous iterable: use "
                "AsyncSmtpTransport, or give bytes, a binary file or an iterable of bytes"
            )
        return Stream(data.__aiter__(), None)
    if isinstance(data, list) and all(isinstance(p, _BYTES_LIKE) for p in data):
        return data
    if isinstance(data, str):
        raise TypeError("send_raw() takes bytes, not str: encode the message first")
    if isinstance(data, io.TextIOBase):
        raise TypeError("send_raw() takes a binary file, not a text file (open it with 'rb')")
    read = getattr(data, "read", None)
    if callable(read):
        return Stream(_file_chunks(data), _file_size(data))
    if isinstance(data, Iterable):
        return Stream(_checked(data), None)
    raise TypeError(
        f"send_raw() takes bytes, a binary file or an iterable of bytes, not {type(data).__name__}"
    )


def _file_chunks(f: Any) -> Iterable[bytes | bytearray | memoryview]:
    while chunk := f.read(FILE_CHUNK):
        if not isinstance(chunk, _BYTES_LIKE):
            raise TypeError(f"the file returned {type(chunk).__name__}, not bytes")
        yield chunk


def _file_size(f: Any) -> int | None:
    """The bytes left in a regular file, to declare with SIZE; None when unknown."""
    try:
        size: int = os.fstat(f.fileno()).st_size
        position: int = f.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return max(0, size - position)


def _checked(chunks: Iterable[Any]) -> Iterable[bytes | bytearray | memoryview]:
    for chunk in chunks:
        if not isinstance(chunk, _BYTES_LIKE):
            raise TypeError(f"the body iterable yielded {type(chunk).__name__}, not bytes")
        yield chunk


def position(data: Any) -> int | None:
    """Where a seekable file body starts, so a retry can rewind it."""
    try:
        return int(data.tell()) if hasattr(data, "seek") and data.seekable() else None
    except (OSError, ValueError):
        return None


def rewind(body: Any, data: Any, start: int | None) -> bool:
    """Make the body sendable again; False when it was a one-shot stream."""
    if not isinstance(body, Stream):
        return True
    if start is None:
        return False
    data.seek(start)
    fresh = body_of(data)
    assert isinstance(fresh, Stream)
    body.chunks = fresh.chunks
    return True
