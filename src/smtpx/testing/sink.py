"""An embedded local SMTP sink: a real ESMTP server on loopback, for demos and tests.

::

    from smtpx.testing.sink import Sink

    with Sink(capture=True) as sink:           # listens on 127.0.0.1, a free port
        send_mail_to(sink.host, sink.port)
        assert sink.wait_for(messages=1, timeout=10)
        [message] = sink.messages               # envelope, data, options, TLS, AUTH user
        print(sink.stats())                     # connections, messages, bytes, ...

The sink runs its own event loop (asyncio, or uvloop with ``loop="uvloop"``) in a
background thread started by ``start()`` / ``__enter__`` and stopped and joined by
``close()`` / ``__exit__``; it never touches the caller's loop. It uses only the
standard library.

What it speaks: EHLO/HELO, MAIL and RCPT with parameters (SIZE, BODY, SMTPUTF8, DSN's
RET/ENVID/NOTIFY/ORCPT), DATA (dot-unstuffed, ended by ``CRLF.CRLF`` only), BDAT
(CHUNKING), RSET, NOOP, VRFY (252), QUIT, STARTTLS when given a server
:class:`ssl.SSLContext` (or implicit TLS), AUTH PLAIN and LOGIN when given ``auth``.
Out-of-sequence commands get 503, bad syntax 501, unknown commands 500, unsupported
parameters 555, oversized data 552. Replies carry RFC 3463 enhanced status codes.

Policies worth knowing:

- PIPELINING: every complete command that has arrived is processed and all their
  replies go out in one write, so a pipelining client sees its replies batched.
- With ``auth`` set, MAIL needs a successful AUTH first (530). With
  ``require_tls_for_auth`` (the default), AUTH is advertised only over TLS and refused
  in clear with 538.
- STARTTLS discards everything the client sent after the command in plaintext
  (RFC 3207: no command injection) and resets the session; the client must EHLO again.
- Limits: command lines up to :data:`MAX_COMMAND_LINE` octets (500 beyond, and a client
  that keeps sending one endless line is disconnected); :data:`MAX_ERRORS` negative
  replies per connection, then 421 and disconnection; :data:`MAX_RECIPIENTS` per
  message; reading pauses while replies are waiting for a client that does not read
  them. Memory per connection stays bounded, except for the captured message itself.
- Counting mode (``capture=False``, the default) keeps no message data: the end of DATA
  is found with ``bytes.find`` across chunk boundaries, BDAT chunks are only counted.

``python -m smtpx.testing.sink --port 2525`` runs it standalone: it prints
``listening HOST PORT`` and, when stopped (SIGINT/SIGTERM, or ``--count`` messages),
one line of JSON with its statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import FrameType, TracebackType
from typing import Literal, cast

from smtpx.errors import InvalidInputError

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_ERRORS",
    "MAX_RECIPIENTS",
    "ReceivedMessage",
    "Sink",
    "SinkStats",
]

logger = logging.getLogger("smtpx.testing")

#: Longest command line accepted, CRLF included. RFC 5321 4.5.3.1.4 asks for at least
#: 512; 2048 leaves room for long ORCPT/ENVID parameters and AUTH initial responses.
MAX_COMMAND_LINE = 2048
#: Negative replies one connection may earn before it is told 421 and dropped (the
#: figure Postfix uses for its smtpd_hard_error_limit).
MAX_ERRORS = 20
#: Recipients per message; RFC 5321 4.5.3.1.8 requires at least 100.
MAX_RECIPIENTS = 1000

#: An over-long command line is skipped up to its end; past this many octets without
#: a line end the client is flooding and is disconnected.
_MAX_DISCARD = 64 * 1024
#: Replies buffered for a client that is not reading them before the sink stops reading
#: from it (flow control: a pipelining flood cannot grow memory without bound).
_WRITE_HIGH_WATER = 256 * 1024
#: Post-STARTTLS input held while the TLS transport is being installed.
_MAX_TLS_PENDING = MAX_COMMAND_LINE * 4
_TLS_HANDSHAKE_TIMEOUT = 10.0
#: How long ``close()`` lets connections shut down politely before aborting them.
_CLOSE_GRACE = 1.0

_END_OF_DATA = b"\r\n.\r\n"

# Session modes: what the next input octets are.
_COMMAND = 0  # command lines
_AUTH = 1  # a SASL response line
_DATA = 2  # DATA content, up to CRLF.CRLF
_CHUNK = 3  # the octets of a BDAT chunk
_DISCARD = 4  # the rest of an over-long command line
_STARTING_TLS = 5  # after STARTTLS, until the TLS transport is installed
_CLOSED = 6  # after QUIT or 421: input is ignored

_OK = b"250 2.0.0 OK\r\n"
_SENDER_OK = b"250 2.1.0 Sender OK\r\n"
_RECIPIENT_OK = b"250 2.1.5 Recipient OK\r\n"
_ACCEPTED = b"250 2.0.0 Message accepted\r\n"
_START_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
_VRFY = b"252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n"
_BYE = b"221 2.0.0 Bye\r\n"
_START_TLS = b"220 2.0.0 Ready to start TLS\r\n"
_AUTH_OK = b"235 2.7.0 Authentication successful\r\n"
_AUTH_EMPTY_CHALLENGE = b"334 \r\n"
_AUTH_USERNAME = b"334 VXNlcm5hbWU6\r\n"  # "Username:"
_AUTH_PASSWORD = b"334 UGFzc3dvcmQ6\r\n"  # "Password:"
_TOO_MANY_ERRORS = b"421 4.7.0 Too many errors, closing connection\r\n"
_FLOOD = b"421 4.7.0 Line too long, closing connection\r\n"
_TOO_MANY_RECIPIENTS = b"452 4.5.3 Too many recipients\r\n"
_UNRECOGNIZED = b"500 5.5.2 Command unrecognized\r\n"
_LINE_TOO_LONG = b"500 5.5.2 Line too long\r\n"
_BAD_OCTETS = b"500 5.5.2 Bare CR, LF or NUL in command line\r\n"
_NO_ARGUMENTS = b"501 5.5.4 This command takes no arguments\r\n"
_EHLO_SYNTAX = b"501 5.5.4 Syntax: EHLO domain\r\n"
_HELO_SYNTAX = b"501 5.5.4 Syntax: HELO domain\r\n"
_MAIL_SYNTAX = b"501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
_RCPT_SYNTAX = b"501 5.5.4 Syntax: RCPT TO:<address> [parameters]\r\n"
_BDAT_SYNTAX = b"501 5.5.4 Syntax: BDAT size [LAST]\r\n"
_AUTH_SYNTAX = b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"
_VRFY_SYNTAX = b"501 5.5.4 Syntax: VRFY user\r\n"
_BAD_PARAMETER = b"501 5.5.4 Invalid parameter value\r\n"
_DUPLICATE_PARAMETER = b"501 5.5.4 Duplicate parameter\r\n"
_BAD_ADDRESS = b"501 5.1.3 Invalid address\r\n"
_AUTH_CANCELLED = b"501 5.0.0 Authentication cancelled\r\n"
_AUTH_UNDECODABLE = b"501 5.5.2 Cannot decode response\r\n"
_NOT_IMPLEMENTED = b"502 5.5.1 Command not implemented\r\n"
_NEED_HELO = b"503 5.5.1 Send EHLO or HELO first\r\n"
_NEED_EHLO = b"503 5.5.1 Send EHLO first\r\n"
_NESTED_MAIL = b"503 5.5.1 Sender already specified\r\n"
_NEED_MAIL = b"503 5.5.1 Need MAIL command\r\n"
_DATA_AFTER_BDAT = b"503 5.5.1 DATA not allowed after BDAT\r\n"
_ALREADY_AUTHENTICATED = b"503 5.5.1 Already authenticated\r\n"
_AUTH_IN_TRANSACTION = b"503 5.5.1 AUTH not allowed during a mail transaction\r\n"
_TLS_ACTIVE = b"503 5.5.1 TLS already active\r\n"
_UNKNOWN_MECHANISM = b"504 5.5.4 Unrecognized authentication type\r\n"
_AUTH_REQUIRED = b"530 5.7.0 Authentication required\r\n"
_AUTH_FAILED = b"535 5.7.8 Authentication credentials invalid\r\n"
_ENCRYPTION_REQUIRED = b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
_TOO_BIG = b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
_UTF8_ADDRESS = b"553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
_NO_RECIPIENTS = b"554 5.5.1 No valid recipients\r\n"
_UNSUPPORTED_PARAMETER = b"555 5.5.4 Unsupported parameter\r\n"
_PARAMETERS_NEED_EHLO = b"555 5.5.4 Parameters need EHLO\r\n"

_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_CONTROL_OCTETS = bytes(range(32)) + b"\x7f"


@dataclass(frozen=True, slots=True)
class SinkStats:
    """A consistent snapshot of what a :class:`Sink` has seen since it started.

    ``bytes`` counts the message content of accepted messages as it crossed the wire
    (DATA: still dot-stuffed, up to and including the CRLF before the final dot; BDAT:
    the chunk sizes). ``rejected`` counts negative (4yz/5yz) replies.
    """

    connections: int
    active_connections: int
    messages: int
    recipients: int
    bytes: int
    rejected: int
    tls_handshakes: int
    auth_successes: int
    auth_failures: int


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One accepted message, as kept by a ``Sink(capture=True)``.

    ``data`` is the content exactly as the client meant it: dot-unstuffed after DATA
    (ending with the CRLF before the final dot), the chunks joined after BDAT.
    ``mail_options`` and each entry of ``rcpt_options`` hold the parameters as sent,
    keywords upper-cased (``"SIZE=1234"``, ``"SMTPUTF8"``). ``chunks`` is the number of
    BDAT chunks, 0 when the message came with DATA. ``tls`` says whether the session was
    encrypted, ``auth_user`` who authenticated (``None``: nobody).
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[tuple[str, ...], ...] = ()
    helo: str = ""
    auth_user: str | None = None
    tls: bool = False
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class _Config:
    """What every session of one sink shares; read-only once the sink runs."""

    hostname: str
    capture: bool
    tls_context: ssl.SSLContext | None
    implicit_tls: bool
    auth: Mapping[str, str] | None
    size_limit: int | None
    pipelining: bool
    chunking: bool
    smtputf8: bool
    eightbitmime: bool
    dsn: bool
    require_tls_for_auth: bool

    def greeting(self) -> bytes:
        return f"220 {self.hostname} ESMTP smtpx sink ready\r\n".encode()

    def ehlo_reply(self, *, tls: bool) -> bytes:
        lines = [self.hostname]
        lines.append("SIZE" if self.size_limit is None else f"SIZE {self.size_limit}")
        if self.pipelining:
            lines.append("PIPELINING")
        if self.chunking:
            lines.append("CHUNKING")
        if self.eightbitmime:
            lines.append("8BITMIME")
        if self.smtputf8:
            lines.append("SMTPUTF8")
        if self.dsn:
            lines.append("DSN")
        lines.append("ENHANCEDSTATUSCODES")
        if self.tls_context is not None and not tls:
            lines.append("STARTTLS")
        if self.auth is not None and (tls or not self.require_tls_for_auth):
            lines.append("AUTH PLAIN LOGIN")
        last = len(lines) - 1
        return "".join(
            f"250{' ' if i == last else '-'}{line}\r\n" for i, line in enumerate(lines)
        ).encode()


class _Ledger:
    """The sink's counters and captured messages, shared by the loop thread (which
    writes) and the caller's threads (which read snapshots or wait)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._connections = 0
        self._active = 0
        self._messages = 0
        self._recipients = 0
        self._bytes = 0
        self._rejected = 0
        self._tls = 0
        self._auth_ok = 0
        self._auth_failed = 0
        self._captured: list[ReceivedMessage] = []

    def opened(self) -> None:
        with self._changed:
            self._connections += 1
            self._active += 1
            self._changed.notify_all()

    def closed(self) -> None:
        with self._changed:
            self._active -= 1
            self._changed.notify_all()

    def accepted(self, recipients: int, size: int, message: ReceivedMessage | None) -> None:
        with self._changed:
            self._messages += 1
            self._recipients += recipients
            self._bytes += size
            if message is not None:
                self._captured.append(message)
            self._changed.notify_all()

    def rejected(self) -> None:
        with self._changed:
            self._rejected += 1

    def tls_started(self) -> None:
        with self._changed:
            self._tls += 1

    def authenticated(self, ok: bool) -> None:
        with self._changed:
            if ok:
                self._auth_ok += 1
            else:
                self._auth_failed += 1

    def stats(self) -> SinkStats:
        with self._changed:
            return self._snapshot()

    def captured(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._captured)

    def wait(self, predicate: Callable[[SinkStats], bool], timeout: float | None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._snapshot()), timeout)

    def _snapshot(self) -> SinkStats:
        return SinkStats(
            connections=self._connections,
            active_connections=self._active,
            messages=self._messages,
            recipients=self._recipients,
            bytes=self._bytes,
            rejected=self._rejected,
            tls_handshakes=self._tls,
            auth_successes=self._auth_ok,
            auth_failures=self._auth_failed,
        )


class _Sessions:
    """The open sessions of a sink, so that shutdown can close them and wait."""

    def __init__(self) -> None:
        self._open: set[_Session] = set()
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, session: _Session) -> None:
        self._open.add(session)
        self._empty.clear()

    def discard(self, session: _Session) -> None:
        self._open.discard(session)
        if not self._open:
            self._empty.set()

    async def close_all(self) -> None:
        for session in list(self._open):
            session.close()
        try:
            await asyncio.wait_for(self._empty.wait(), _CLOSE_GRACE)
        except asyncio.TimeoutError:  # a TLS peer that does not answer close_notify
            for session in list(self._open):
                session.abort()
            await self._empty.wait()


def _b64decode(response: bytes) -> bytes | None:
    """A SASL response: ``=`` is empty (RFC 4954); ``None`` when it is not base64."""
    if response == b"=":
        return b""
    try:
        return base64.b64decode(response, validate=True)
    except (binascii.Error, ValueError):
        return None


def _unstuff(content: bytes) -> bytes:
    """Undo dot-stuffing: drop the first character of every line that starts with '.'."""
    content = content.replace(b"\r\n.", b"\r\n")
    return content[1:] if content[:1] == b"." else content


class _Session(asyncio.Protocol):
    """One SMTP connection: a state machine fed with whatever bytes arrive.

    ``data_received`` runs every complete command it was given (and the message data in
    between) and sends all the replies in one write.
    """

    def __init__(self, config: _Config, ledger: _Ledger, sessions: _Sessions) -> None:
        self._config = config
        self._ledger = ledger
        self._sessions = sessions
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._mode = _COMMAND
        self._pending = b""  # the start of a command line, or post-STARTTLS input
        self._discarded = 0  # octets of an over-long line skipped so far
        self._errors = 0
        self._tls = config.implicit_tls
        self._tls_task: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly
        self._paused = False  # reading paused because the client does not read replies
        self._helo: str | None = None
        self._esmtp = False
        self._auth_user: str | None = None
        self._auth_step: Callable[[bytes], bytes] | None = None
        self._login_user = ""
        self._reset_transaction()

    # ------------------------------------------------------------ transaction state
    def _reset_transaction(self) -> None:
        self._mail_from: str | None = None
        self._mail_options: list[str] = []
        self._utf8 = False
        self._rcpt_tos: list[str] = []
        self._rcpt_options: list[tuple[str, ...]] = []
        self._size = 0  # content octets received so far (DATA: stuffed, CRLF.CRLF included)
        self._parts: list[bytes] | None = [] if self._config.capture else None
        self._failed: bytes | None = None  # the reply every further chunk gets (552)
        self._chunks = 0
        self._slack = 0  # octets taken that are not content: 3 for DATA's final ".\r\n"
        self._tail = b""  # the last octets of DATA content, to see CRLF.CRLF across reads
        self._chunk_left = 0
        self._chunk_last = False
        self._chunk_refusal: bytes | None = None

    def _reset_session(self) -> None:
        """Forget everything the client said (RFC 3207 4.2: after the TLS handshake)."""
        self._helo = None
        self._esmtp = False
        self._auth_user = None
        self._reset_transaction()

    # ------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._sessions.add(self)
        self._ledger.opened()
        if self._tls:
            self._ledger.tls_started()
        logger.debug("sink: connection from %s", self._peer)
        transport.write(self._config.greeting())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._transport = None
        self._mode = _CLOSED
        self._sessions.discard(self)
        self._ledger.closed()
        logger.debug("sink: connection from %s closed (%s)", self._peer, exc or "cleanly")

    def pause_writing(self) -> None:
        logger.debug("sink: %s does not read its replies; the sink stops reading", self._peer)
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and self._mode not in (_STARTING_TLS, _CLOSED):
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._mode == _STARTING_TLS:
            # Only decrypted input gets here (reading was paused at STARTTLS): the
            # client's first command may beat the installation of the TLS transport.
            self._pending += data
            if len(self._pending) > _MAX_TLS_PENDING:
                self.abort()
            return
        self._feed(data)

    # ------------------------------------------------------------ shutdown
    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # ------------------------------------------------------------ input
    def _feed(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        out: list[bytes] = []
        pos = 0
        end = len(data)
        while pos < end:
            mode = self._mode
            if mode in (_COMMAND, _AUTH):
                eol = data.find(b"\r\n", pos, pos + MAX_COMMAND_LINE)
                if eol < 0:
                    if end - pos < MAX_COMMAND_LINE:
                        self._pending = data[pos:]
                        break
                    self._mode = _DISCARD
                    self._discarded = 0
                    self._reply(out, _LINE_TOO_LONG)
                    continue
                line = data[pos:eol]
                pos = eol + 2
                if b"\r" in line or b"\n" in line or b"\x00" in line:
                    self._mode = _COMMAND
                    self._auth_step = None
                    self._reply(out, _BAD_OCTETS)
                elif mode == _AUTH:
                    self._reply(out, self._auth_continue(line))
                else:
                    reply = self._command(line)
                    if reply is not None:
                        self._reply(out, reply)
            elif mode == _DATA:
                pos = self._take_data(data, pos, out)
            elif mode == _CHUNK:
                pos = self._take_chunk(data, pos, out)
            elif mode == _DISCARD:
                pos = self._discard(data, pos, out)
            else:  # _STARTING_TLS (what follows STARTTLS in clear is dropped) or _CLOSED
                break
        transport = self._transport
        if transport is None:
            return
        if out:
            transport.write(b"".join(out))
        if self._mode == _STARTING_TLS:
            transport.pause_reading()
            self._tls_task = asyncio.get_running_loop().create_task(self._start_tls(transport))
        elif self._mode == _CLOSED:
            transport.close()

    def _reply(self, out: list[bytes], reply: bytes) -> None:
        out.append(reply)
        if reply[0] >= 0x34:  # '4' or '5'
            self._ledger.rejected()
            self._errors += 1
            if self._errors >= MAX_ERRORS and self._mode != _CLOSED:
                logger.debug("sink: %s made too many errors", self._peer)
                out.append(_TOO_MANY_ERRORS)
                self._mode = _CLOSED

    def _discard(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """Skip the rest of an over-long command line."""
        eol = data.find(b"\r\n", pos)
        if eol >= 0:
            self._mode = _COMMAND
            return eol + 2
        self._discarded += len(data) - pos
        if self._discarded > _MAX_DISCARD:
            logger.debug("sink: %s floods with an endless line", self._peer)
            out.append(_FLOOD)
            self._mode = _CLOSED
        elif data[-1:] == b"\r":
            self._pending = b"\r"  # the CRLF may be split across reads
        return len(data)

    def _take_data(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """Take DATA content up to CRLF.CRLF; returns where the content stopped."""
        tail = self._tail
        edge = (tail + data[pos : pos + 4]).find(_END_OF_DATA)
        if edge >= 0:  # the end marker straddles the previous read and this one
            stop = pos + edge + 5 - len(tail)
        else:
            found = data.find(_END_OF_DATA, pos)
            if found < 0:
                self._keep(data, pos, len(data))
                self._tail = data[-4:] if len(data) - pos >= 4 else (tail + data[pos:])[-4:]
                return len(data)
            stop = found + 5
        self._keep(data, pos, stop)
        self._mode = _COMMAND
        content = self._size - self._slack
        if self._failed is not None:
            self._reply(out, self._failed)
            self._reset_transaction()
            return stop
        message = None
        if self._parts is not None:
            message = self._capture(_unstuff(b"".join(self._parts)[:content]))
        self._deliver(content, message)
        self._reply(out, _ACCEPTED)
        return stop

    def _take_chunk(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """Take the octets of a BDAT chunk; returns where the chunk stopped."""
        stop = min(len(data), pos + self._chunk_left)
        if self._chunk_refusal is None and self._failed is None:
            self._keep(data, pos, stop)
        self._chunk_left -= stop - pos
        if self._chunk_left == 0:
            self._mode = _COMMAND
            self._reply(out, self._chunk_done())
        return stop

    def _keep(self, data: bytes, start: int, stop: int) -> None:
        """Count (and when capturing, keep) message content, enforcing the size limit."""
        self._size += stop - start
        limit = self._config.size_limit
        if limit is not None and self._size - self._slack > limit:
            if self._failed is None:
                self._failed = _TOO_BIG
                if self._parts is not None:
                    self._parts = []
            return
        if self._parts is not None:
            self._parts.append(data if start == 0 and stop == len(data) else data[start:stop])

    def _capture(self, data: bytes) -> ReceivedMessage:
        assert self._mail_from is not None
        return ReceivedMessage(
            mail_from=self._mail_from,
            rcpt_tos=tuple(self._rcpt_tos),
            data=data,
            mail_options=tuple(self._mail_options),
            rcpt_options=tuple(self._rcpt_options),
            helo=self._helo or "",
            auth_user=self._auth_user,
            tls=self._tls,
            chunks=self._chunks,
        )

    def _deliver(self, size: int, message: ReceivedMessage | None) -> None:
        self._ledger.accepted(len(self._rcpt_tos), size, message)
        self._reset_transaction()

    # ------------------------------------------------------------ commands
    def _command(self, line: bytes) -> bytes | None:
        """Run one command line; returns its reply, or None when the reply comes later."""
        space = line.find(b" ")
        verb = (line if space < 0 else line[:space]).upper()
        handler = _HANDLERS.get(verb)
        if handler is None:
            return _UNRECOGNIZED
        return handler(self, b"" if space < 0 else line[space + 1 :])

    def _do_ehlo(self, arg: bytes) -> bytes:
        return self._hello(arg, esmtp=True)

    def _do_helo(self, arg: bytes) -> bytes:
        return self._hello(arg, esmtp=False)

    def _hello(self, arg: bytes, *, esmtp: bool) -> bytes:
        domain = arg.strip(b" ")
        if not domain or b" " in domain:
            return _EHLO_SYNTAX if esmtp else _HELO_SYNTAX
        try:
            self._helo = domain.decode()
        except UnicodeDecodeError:
            return _EHLO_SYNTAX if esmtp else _HELO_SYNTAX
        self._esmtp = esmtp
        self._reset_transaction()
        if esmtp:
            return self._config.ehlo_reply(tls=self._tls)
        return f"250 {self._config.hostname}\r\n".encode()

    def _do_mail(self, arg: bytes) -> bytes:
        if self._helo is None:
            return _NEED_HELO
        if self._mail_from is not None:
            return _NESTED_MAIL
        if self._config.auth is not None and self._auth_user is None:
            return _AUTH_REQUIRED
        parsed = _split_path(arg, b"FROM:")
        if parsed is None:
            return _MAIL_SYNTAX
        raw_address, raw_params = parsed
        if raw_params and not self._esmtp:
            return _PARAMETERS_NEED_EHLO
        options: list[str] = []
        seen: set[str] = set()
        utf8 = False
        for raw in raw_params:
            keyword, value = _parameter(raw)
            if keyword in seen:
                return _DUPLICATE_PARAMETER
            seen.add(keyword)
            refusal = self._mail_parameter(keyword, value)
            if refusal is not None:
                return refusal
            utf8 = utf8 or keyword == "SMTPUTF8"
            options.append(keyword if value is None else f"{keyword}={value}")
        address = _address(raw_address, utf8=utf8)
        if isinstance(address, bytes):
            return address
        self._mail_from = address
        self._mail_options = options
        self._utf8 = utf8
        return _SENDER_OK

    def _mail_parameter(self, keyword: str, value: str | None) -> bytes | None:
        """Check one MAIL parameter; returns the refusal, or None when it is fine."""
        config = self._config
        if keyword == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                return _BAD_PARAMETER
            if config.size_limit is not None and int(value) > config.size_limit:
                return _TOO_BIG
        elif keyword == "BODY":
            bodies = ("7BIT", "8BITMIME") if config.eightbitmime else ("7BIT",)
            if value is None or value.upper() not in bodies:
                return _UNSUPPORTED_PARAMETER
        elif keyword == "SMTPUTF8":
            if not config.smtputf8:
                return _UNSUPPORTED_PARAMETER
            if value is not None:
                return _BAD_PARAMETER
        elif keyword == "RET" and config.dsn:
            if value is None or value.upper() not in ("FULL", "HDRS"):
                return _BAD_PARAMETER
        elif keyword == "ENVID" and config.dsn:
            if not value:
                return _BAD_PARAMETER
        else:
            return _UNSUPPORTED_PARAMETER
        return None

    def _do_rcpt(self, arg: bytes) -> bytes:
        if self._mail_from is None:
            return _NEED_MAIL
        parsed = _split_path(arg, b"TO:")
        if parsed is None:
            return _RCPT_SYNTAX
        raw_address, raw_params = parsed
        if raw_params and not self._esmtp:
            return _PARAMETERS_NEED_EHLO
        options: list[str] = []
        seen: set[str] = set()
        for raw in raw_params:
            keyword, value = _parameter(raw)
            if keyword in seen:
                return _DUPLICATE_PARAMETER
            seen.add(keyword)
            refusal = self._rcpt_parameter(keyword, value)
            if refusal is not None:
                return refusal
            options.append(keyword if value is None else f"{keyword}={value}")
        address = _address(raw_address, utf8=self._utf8)
        if isinstance(address, bytes):
            return address
        if not address:
            return _BAD_ADDRESS
        if len(self._rcpt_tos) >= MAX_RECIPIENTS:
            return _TOO_MANY_RECIPIENTS
        self._rcpt_tos.append(address)
        self._rcpt_options.append(tuple(options))
        return _RECIPIENT_OK

    def _rcpt_parameter(self, keyword: str, value: str | None) -> bytes | None:
        """Check one RCPT parameter; returns the refusal, or None when it is fine."""
        if not self._config.dsn or keyword not in ("NOTIFY", "ORCPT"):
            return _UNSUPPORTED_PARAMETER
        if not value:
            return _BAD_PARAMETER
        if keyword == "NOTIFY":
            values = value.upper().split(",")
            if values != ["NEVER"] and not set(values) <= _NOTIFY_VALUES:
                return _BAD_PARAMETER
        elif ";" not in value:  # ORCPT=addr-type;xtext
            return _BAD_PARAMETER
        return None

    def _do_data(self, arg: bytes) -> bytes:
        if arg:
            return _NO_ARGUMENTS
        if self._mail_from is None:
            return _NEED_MAIL
        if not self._rcpt_tos:
            return _NO_RECIPIENTS
        if self._chunks:
            return _DATA_AFTER_BDAT
        self._mode = _DATA
        self._slack = 3
        self._tail = b"\r\n"  # the DATA line's CRLF: an immediate ".\r\n" ends the data
        return _START_DATA

    def _do_bdat(self, arg: bytes) -> bytes | None:
        if not self._config.chunking:
            return _NOT_IMPLEMENTED
        words = arg.split(b" ")
        size = words[0]
        last = len(words) == 2 and words[1].upper() == b"LAST"
        if not size.isdigit() or len(size) > 19 or len(words) != 1 + last:
            return _BDAT_SYNTAX
        # The chunk's octets follow whatever the verdict: they are consumed, then answered.
        if self._mail_from is None:
            self._chunk_refusal = _NEED_MAIL
        elif not self._rcpt_tos:
            self._chunk_refusal = _NO_RECIPIENTS
        else:
            self._chunk_refusal = None
            self._chunks += 1
        self._chunk_left = int(size)
        self._chunk_last = last
        if self._chunk_left == 0:
            return self._chunk_done()
        self._mode = _CHUNK
        return None

    def _chunk_done(self) -> bytes:
        """The reply to a BDAT whose octets have all been read."""
        if self._chunk_refusal is not None:
            return self._chunk_refusal
        if self._failed is not None:
            refusal = self._failed
            if self._chunk_last:
                self._reset_transaction()
            return refusal
        if not self._chunk_last:
            return f"250 2.0.0 {self._size} octets received\r\n".encode()
        message = None
        if self._parts is not None:
            message = self._capture(b"".join(self._parts))
        self._deliver(self._size, message)
        return _ACCEPTED

    def _do_rset(self, arg: bytes) -> bytes:
        if arg:
            return _NO_ARGUMENTS
        self._reset_transaction()
        return _OK

    def _do_noop(self, arg: bytes) -> bytes:
        return _OK

    def _do_vrfy(self, arg: bytes) -> bytes:
        return _VRFY if arg.strip(b" ") else _VRFY_SYNTAX

    def _do_quit(self, arg: bytes) -> bytes:
        if arg:
            return _NO_ARGUMENTS
        self._mode = _CLOSED
        return _BYE

    # ------------------------------------------------------------ STARTTLS
    def _do_starttls(self, arg: bytes) -> bytes:
        if self._config.tls_context is None:
            return _NOT_IMPLEMENTED
        if self._tls:
            return _TLS_ACTIVE
        if arg:
            return _NO_ARGUMENTS
        self._mode = _STARTING_TLS
        return _START_TLS

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        context = self._config.tls_context
        assert context is not None
        loop = asyncio.get_running_loop()
        try:
            tls_transport = await loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT,
            )
        except (OSError, asyncio.TimeoutError) as exc:  # SSLError, reset, time-out
            logger.debug("sink: TLS handshake with %s failed: %s", self._peer, exc)
            transport.abort()
            # Before Python 3.11 a failed handshake never reaches connection_lost (the
            # TLS layer owns the transport by then): close the session here (idempotent).
            self.connection_lost(exc)
            return
        if self._transport is None or tls_transport is None:  # lost during the handshake
            transport.abort()
            self.connection_lost(None)
            return
        tls_transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self._transport = tls_transport
        self._tls = True
        self._ledger.tls_started()
        self._reset_session()
        self._mode = _COMMAND
        if self._paused:
            tls_transport.pause_reading()
        if self._pending:
            self._feed(b"")

    # ------------------------------------------------------------ AUTH
    def _do_auth(self, arg: bytes) -> bytes:
        if self._config.auth is None:
            return _NOT_IMPLEMENTED
        if not self._esmtp:
            return _NEED_EHLO
        if self._auth_user is not None:
            return _ALREADY_AUTHENTICATED
        if self._mail_from is not None:
            return _AUTH_IN_TRANSACTION
        if self._config.require_tls_for_auth and not self._tls:
            return _ENCRYPTION_REQUIRED
        words = arg.split(b" ")
        if not words[0] or len(words) > 2:
            return _AUTH_SYNTAX
        mechanism = words[0].upper()
        initial = words[1] if len(words) == 2 else None
        if mechanism == b"PLAIN":
            if initial is None:
                return self._expect(self._auth_plain, _AUTH_EMPTY_CHALLENGE)
            return self._auth_plain(initial)
        if mechanism == b"LOGIN":
            if initial is None:
                return self._expect(self._auth_login_user, _AUTH_USERNAME)
            return self._auth_login_user(initial)
        return _UNKNOWN_MECHANISM

    def _expect(self, step: Callable[[bytes], bytes], challenge: bytes) -> bytes:
        """Send a challenge; the next line is the client's response, for ``step``."""
        self._mode = _AUTH
        self._auth_step = step
        return challenge

    def _auth_continue(self, line: bytes) -> bytes:
        step = self._auth_step
        assert step is not None
        self._mode = _COMMAND
        self._auth_step = None
        if line == b"*":
            return _AUTH_CANCELLED
        return step(line)

    def _auth_plain(self, response: bytes) -> bytes:
        decoded = _b64decode(response)
        if decoded is None:
            return _AUTH_UNDECODABLE
        fields = decoded.split(b"\x00")
        if len(fields) != 3:
            return self._auth_result(None, b"")
        authzid, authcid, password = fields
        if authzid and authzid != authcid:  # acting for someone else is not supported
            return self._auth_result(None, b"")
        return self._auth_result(authcid, password)

    def _auth_login_user(self, response: bytes) -> bytes:
        decoded = _b64decode(response)
        if decoded is None:
            return _AUTH_UNDECODABLE
        self._login_user = decoded.decode("utf-8", "replace")
        return self._expect(self._auth_login_password, _AUTH_PASSWORD)

    def _auth_login_password(self, response: bytes) -> bytes:
        decoded = _b64decode(response)
        if decoded is None:
            return _AUTH_UNDECODABLE
        return self._auth_result(self._login_user.encode(), decoded)

    def _auth_result(self, user: bytes | None, password: bytes) -> bytes:
        """Check credentials in constant time per user; never logs the password."""
        auth = self._config.auth
        assert auth is not None
        name = None if user is None else user.decode("utf-8", "replace")
        expected = auth.get(name) if name is not None else None
        ok = hmac.compare_digest(password, (expected or "").encode()) and expected is not None
        self._ledger.authenticated(ok)
        if not ok:
            logger.debug("sink: %s failed to authenticate as %r", self._peer, name)
            return _AUTH_FAILED
        self._auth_user = name
        logger.debug("sink: %s authenticated as %r", self._peer, name)
        return _AUTH_OK


_HANDLERS: dict[bytes, Callable[[_Session, bytes], bytes | None]] = {
    b"EHLO": _Session._do_ehlo,
    b"HELO": _Session._do_helo,
    b"MAIL": _Session._do_mail,
    b"RCPT": _Session._do_rcpt,
    b"DATA": _Session._do_data,
    b"BDAT": _Session._do_bdat,
    b"RSET": _Session._do_rset,
    b"NOOP": _Session._do_noop,
    b"VRFY": _Session._do_vrfy,
    b"QUIT": _Session._do_quit,
    b"STARTTLS": _Session._do_starttls,
    b"AUTH": _Session._do_auth,
}


def _split_path(arg: bytes, prefix: bytes) -> tuple[bytes, list[bytes]] | None:
    """``FROM:<address> PARAM=x ...`` -> (address, [params]); None when malformed.

    A space after the colon is tolerated (many clients send one).
    """
    if arg[: len(prefix)].upper() != prefix:
        return None
    rest = arg[len(prefix) :].lstrip(b" ")
    end = rest.find(b">")
    if rest[:1] != b"<" or end < 0:
        return None
    address = rest[1:end]
    params = rest[end + 1 :]
    if b"<" in address or (params and params[:1] != b" "):
        return None
    return address, params.split()


def _parameter(raw: bytes) -> tuple[str, str | None]:
    """``b"size=10"`` -> ``("SIZE", "10")``; values are kept as sent."""
    keyword, equals, value = raw.decode("utf-8", "replace").partition("=")
    return keyword.upper(), value if equals else None


def _address(raw: bytes, *, utf8: bool) -> str | bytes:
    """The address as text, or the refusal: non-ASCII needs SMTPUTF8 (RFC 6531 3.5)."""
    if len(raw.translate(None, _CONTROL_OCTETS)) != len(raw):
        return _BAD_ADDRESS
    if raw.isascii():
        return raw.decode("ascii")
    if not utf8:
        return _UTF8_ADDRESS
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _BAD_ADDRESS


class Sink:
    """An SMTP server on loopback that accepts everything it is sent, in its own thread.

    :param host: the address to listen on (loopback by default).
    :param port: the port; 0 picks a free one (read it back from :attr:`port`).
    :param capture: keep every accepted message (:attr:`messages`); otherwise only count.
    :param tls_context: a server :class:`ssl.SSLContext`: enables STARTTLS, or implicit
        TLS with ``implicit_tls=True``.
    :param auth: ``{user: password}``: enables AUTH PLAIN and LOGIN, and MAIL then
        requires authentication.
    :param size_limit: the SIZE limit in octets (552 beyond it); ``None``: unlimited.
    :param pipelining, chunking, smtputf8, eightbitmime, dsn: extensions to offer.
    :param require_tls_for_auth: offer and accept AUTH only over TLS (538 otherwise).
    :param loop: ``"asyncio"`` or ``"uvloop"`` (used when importable, else asyncio;
        :attr:`loop_name` says which runs).
    :param hostname: the name in the greeting and the EHLO reply.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        capture: bool = False,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth: Mapping[str, str] | None = None,
        size_limit: int | None = None,
        pipelining: bool = True,
        chunking: bool = True,
        smtputf8: bool = True,
        eightbitmime: bool = True,
        dsn: bool = True,
        require_tls_for_auth: bool = True,
        loop: Literal["asyncio", "uvloop"] = "asyncio",
        hostname: str = "localhost",
    ) -> None:
        if implicit_tls and tls_context is None:
            raise InvalidInputError("Sink(implicit_tls=True) needs a tls_context")
        if size_limit is not None and size_limit < 0:
            raise InvalidInputError(f"Sink size_limit must be >= 0, not {size_limit}")
        if loop not in ("asyncio", "uvloop"):
            raise InvalidInputError(f"Sink loop must be 'asyncio' or 'uvloop', not {loop!r}")
        if not (hostname.isascii() and hostname.isprintable()) or " " in hostname or not hostname:
            raise InvalidInputError("Sink hostname must be printable ASCII without spaces")
        self._host = host
        self._requested_port = port
        self._config = _Config(
            hostname=hostname,
            capture=capture,
            tls_context=tls_context,
            implicit_tls=implicit_tls,
            auth=None if auth is None else dict(auth),
            size_limit=size_limit,
            pipelining=pipelining,
            chunking=chunking,
            smtputf8=smtputf8,
            eightbitmime=eightbitmime,
            dsn=dsn,
            require_tls_for_auth=require_tls_for_auth,
        )
        self._loop_requested = loop
        self._loop_name = ""
        self._ledger = _Ledger()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._address: tuple[str, int] | None = None

    def __repr__(self) -> str:
        where = f"{self._address[0]}:{self._address[1]}" if self._address else "not started"
        return f"<Sink {where} {self._ledger.stats()}>"

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Sink:
        """Start listening (in a background thread); returns once the port is bound.

        Raises the ``OSError`` of a failed bind, or ``RuntimeError`` when started twice.
        """
        if self._thread is not None:
            raise RuntimeError("this Sink was already started")
        self._thread = threading.Thread(target=self._run, name="smtpx-sink", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        return self

    def close(self) -> None:
        """Close every connection, stop the loop and join its thread. Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or not thread.is_alive():
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ what callers read
    @property
    def host(self) -> str:
        """The address the sink listens on."""
        return self._bound()[0]

    @property
    def port(self) -> int:
        """The port the sink listens on (the one picked when asked for port 0)."""
        return self._bound()[1]

    @property
    def loop_name(self) -> str:
        """The event loop that runs the sink: ``"asyncio"`` or ``"uvloop"``."""
        self._bound()
        return self._loop_name

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A copy of the messages accepted so far, oldest first (``capture=True`` only)."""
        if not self._config.capture:
            raise RuntimeError("this Sink keeps no messages: create it with capture=True")
        return self._ledger.captured()

    def stats(self) -> SinkStats:
        """A consistent snapshot of the counters (safe from any thread)."""
        return self._ledger.stats()

    def wait_for(self, messages: int, timeout: float | None = 10.0) -> bool:
        """Wait until at least ``messages`` messages were accepted in all; False on time-out."""
        return self._ledger.wait(lambda s: s.messages >= messages, timeout)

    def _bound(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("this Sink is not listening: call start() or use 'with'")
        return self._address

    # ------------------------------------------------------------ the loop thread
    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop_requested == "uvloop":
            try:
                import uvloop  # noqa: PLC0415 - optional, loaded only when asked for
            except ImportError:
                logger.info("sink: uvloop is not installed; running on asyncio")
            else:
                self._loop_name = "uvloop"
                loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
                return loop
        self._loop_name = "asyncio"
        return asyncio.new_event_loop()

    def _run(self) -> None:
        loop = self._new_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # handed to start(), or logged
            if self._ready.is_set():
                logger.exception("sink: the server loop failed")
            else:
                self._startup_error = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sessions = _Sessions()
        config, ledger = self._config, self._ledger
        server = await loop.create_server(
            lambda: _Session(config, ledger, sessions),
            self._host,
            self._requested_port,
            ssl=config.tls_context if config.implicit_tls else None,
            ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT if config.implicit_tls else None,
        )
        try:
            host, port = server.sockets[0].getsockname()[:2]
            self._address = (host, port)
            logger.debug("sink: listening on %s:%d (%s)", host, port, self._loop_name)
            self._ready.set()
            await self._stop.wait()
        finally:
            server.close()
            await sessions.close_all()
            await server.wait_closed()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # TLS handshakes cut short by the shutdown
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            logger.debug("sink: stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a counting sink until SIGINT/SIGTERM or ``--count`` messages; print stats."""
    parser = argparse.ArgumentParser(prog="python -m smtpx.testing.sink", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", type=int, default=0, help="stop after this many messages")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--quiet", action="store_true", help="no log on stderr")
    args = parser.parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with Sink(args.host, args.port, loop=args.loop) as sink:
        print(f"listening {sink.host} {sink.port}", flush=True)
        while not stopping.wait(0.05):
            if args.count and sink.stats().messages >= args.count:
                break
    print(json.dumps(asdict(sink.stats())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
