"""The SMTP client protocol engine: one connection's session, with no I/O.

Every decision about the protocol lives here: what to send, what each reply means, when
the connection is unusable, and when a failure leaves delivery unknown. The transports
drive these procedures (generators of :mod:`smtpx.protocol.ops` requests); they move
bytes and keep time, and nothing else.

States (``Session.state``)::

    GREETING --open()--> READY --send()--> READY        (a failed transaction is RSET)
        \\                  \\--quit()--> CLOSED
         \\--(error)-------------------> BROKEN        (421, protocol error, I/O failure)

A connection in BROKEN or CLOSED is never used again.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from smtpx import _hot
from smtpx.errors import (
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
    TlsRequiredError,
    TransientError,
)

from .capabilities import Capabilities
from .ops import NextChunk, Read, StartTls, Write
from .scram import ScramSha256

__all__ = ["Body", "SendResult", "Session", "SessionConfig", "State", "Stream", "TlsPolicy"]

log = logging.getLogger("smtpx")

Gen = Generator[Any, Any, Any]

_END: Any = object()

#: At most this many SASL challenge rounds before the exchange is abandoned.
MAX_AUTH_ROUNDS = 5
#: The SASL mechanisms this engine speaks.
SUPPORTED_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2", "CRAM-MD5", "SCRAM-SHA-256"})


class State(enum.Enum):
    GREETING = "greeting"
    READY = "ready"
    BROKEN = "broken"
    CLOSED = "closed"


class TlsPolicy(enum.Enum):
    """How the session treats STARTTLS (implicit TLS is the driver's business)."""

    NONE = "none"
    OPPORTUNISTIC = "opportunistic"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What the session needs to know from the transport's builder."""

    hello_name: str
    starttls: TlsPolicy = TlsPolicy.NONE
    #: ``(username, secret_provider)`` or None; the secret is resolved at AUTH time.
    credentials: Any = None
    #: Mechanism wire names in order of preference (``"PLAIN"``, ``"CRAM-MD5"``...).
    mechanisms: Sequence[str] = ("CRAM-MD5", "PLAIN", "LOGIN")
    #: Mechanisms that send the secret in the clear (need TLS unless opted in).
    cleartext_mechanisms: frozenset[str] = frozenset({"PLAIN", "LOGIN", "XOAUTH2"})
    allow_insecure_auth: bool = False
    pipelining: bool = True


@dataclass(slots=True)
class SendResult:
    """The outcome of one transaction: the final reply and each recipient's fate."""

    response: Any
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, Any] = field(default_factory=dict)


def _failure(message: str, response: Any) -> ResponseError:
    cls = TransientError if response.code < 500 else PermanentError
    return cls(f"{message}: {response.code} {response.text}".rstrip(), response=response)


class Stream:
    """A message body read chunk by chunk (a file, an iterable of bytes, or an
    asynchronous iterator of bytes for the asyncio driver), sent with DATA and never held
    whole. ``size_hint``, when known, is declared with SIZE."""

    __slots__ = ("asynchronous", "check_8bit", "chunks", "size_hint")

    def __init__(self, chunks: Any, size_hint: int | None) -> None:
        self.chunks = chunks
        self.size_hint = size_hint
        self.check_8bit = False
        #: ``chunks`` is an asynchronous iterator: each chunk is asked of the driver.
        self.asynchronous = hasattr(chunks, "__anext__")


@dataclass(slots=True)
class _Plan:
    """What every transaction of one message shares (452 follow-ups repeat it)."""

    sender: str
    mail_kw: dict[str, Any]
    rcpt_kw: dict[str, Any]
    payload: list[bytes] | Stream
    pipelined: bool
    chunked: bool


#: A message body the engine takes: in memory (whole, or in parts), or streamed.
Body = bytes | bytearray | memoryview | list[bytes | bytearray | memoryview] | Stream


def _encode_parts(parts: list[Any], flags: list[int], *, dot_stuff: bool) -> list[bytes]:
    """The encoded body of a message held in memory as ``parts`` (``flags``: what
    ``scan_body`` found in each).

    For BDAT (no dot-stuffing), parts that each end with a line end encode on their own
    exactly as they would together, so each is encoded alone, and a ``bytes`` part
    already in wire form is sent as it is, without a copy (attachments shared by many
    messages stay shared). Otherwise the parts are encoded as one stream.
    """
    if not dot_stuff and all(len(p) and p[-1:] == b"\n" for p in parts):
        return [
            p
            if type(p) is bytes and not f & _hot.BODY_NEEDS_ENCODING
            else _hot.encode_data(p, dot_stuff=False)
            for p, f in zip(parts, flags, strict=True)
        ]
    if len(parts) == 1:
        return [_hot.encode_data(parts[0], dot_stuff=dot_stuff)]
    encoder = _hot.DataEncoder(dot_stuff=dot_stuff)
    encoded = [encoder.encode(p) for p in parts]
    encoded.append(encoder.finish())
    return encoded


def _ascii_address(address: str) -> str:
    """An address for a server without SMTPUTF8: the domain IDNA-encoded (RFC 5890);
    a non-ASCII local part cannot be sent at all."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise InvalidInputError(
            "an envelope address has a non-ASCII local part, which needs SMTPUTF8, and the "
            "server does not offer it"
        )
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise InvalidInputError(f"an envelope domain cannot be IDNA-encoded: {exc}") from exc


class _Transaction:
    """What is known of one transaction as its replies come in."""

    __slots__ = ("accepted", "data_sent", "deferred", "final", "mail", "rcpts", "rejected")

    def __init__(self, rcpts: list[str]) -> None:
        self.rcpts = rcpts
        self.mail: Any = None
        self.final: Any = None
        self.accepted: list[str] = []
        self.rejected: dict[str, Any] = {}
        #: Recipients refused with 452 (too many recipients): for a later transaction.
        self.deferred: dict[str, Any] = {}
        #: The end of the data was handed to the driver and its reply is not in yet.
        self.data_sent = False

    def add(self, rcpt: str, reply: Any) -> None:
        if reply.code in (250, 251):
            self.accepted.append(rcpt)
        elif reply.code == 452:
            self.deferred[rcpt] = reply
        else:
            self.rejected[rcpt] = reply

    @property
    def can_deliver(self) -> bool:
        """Nothing seen so far rules delivery out."""
        if self.mail is not None and self.mail.code != 250:
            return False
        answered = len(self.accepted) + len(self.rejected) + len(self.deferred)
        return bool(self.accepted) or answered < len(self.rcpts)

    @property
    def in_doubt(self) -> bool:
        """A failure now leaves delivery unknown (RFC 1047)."""
        return self.data_sent and self.can_deliver

    def check(self) -> None:
        """Raise for a refused sender, or when every recipient was refused."""
        if self.mail is not None and self.mail.code != 250:
            raise _failure("the server refused the sender", self.mail)
        if len(self.rejected) + len(self.deferred) == len(self.rcpts):
            raise RecipientsRefusedError(
                "the server accepted no recipient", rejected={**self.rejected, **self.deferred}
            )

    def result(self) -> SendResult:
        self.check()
        if self.final is None or self.final.code != 250:
            raise _failure("the server refused the message", self.final)
        return SendResult(self.final, self.accepted, self.rejected)


class _Entry:
    """One submitted message, from :meth:`Session.submit` until its outcome is collected."""

    __slots__ = ("held", "outcome", "plan", "rset", "step", "tx", "unread")

    def __init__(self) -> None:
        self.plan: Any = None
        self.tx: Any = None
        #: Its group starts with RSET (it followed a transaction still in flight).
        self.rset = False
        #: Some of its replies are still to be read.
        self.unread = False
        #: BDAT: how many of its replies (RSET, MAIL, each RCPT, the end of data) were
        #: taken, and one taken from the parser but left for :meth:`Session._rest`.
        self.step = 0
        self.held: Any = None
        #: Its SendResult, or the SmtpError that ended it; None while undecided.
        self.outcome: Any = None

    def finish(self, outcome: Any) -> None:
        self.unread = False
        self.outcome = outcome


class Session:
    """One SMTP session over one connection. Not thread-safe: one procedure at a time."""

    def __init__(self, config: SessionConfig, *, tls_active: bool = False) -> None:
        self.config = config
        self.tls_active = tls_active
        self.state = State.GREETING
        self.capabilities = Capabilities()
        self.greeting: Any = None
        #: The last transaction was interrupted (not by an smtpx error) after the end of
        #: its data was sent: its delivery is unknown.
        self.last_in_doubt = False
        self._parser = _hot.ReplyParser()
        self._out = _hot.CommandBuffer()
        #: Messages submitted and not yet collected, oldest first.
        self._window: deque[_Entry] = deque()
        #: Outcomes collected so far: with :attr:`in_flight`, a message's place in the
        #: order of this connection (``collected + in_flight`` when it is submitted).
        self.collected = 0
        #: Queued for the next write, and the messages whose end of data is in it.
        self._unsent: list[bytes | memoryview] = []
        self._unsent_ends: list[_Entry] = []
        #: Whether the transcript is logged, as seen when the running procedure began
        #: (asking the logger for every message costs more than building its commands).
        self._debug = False

    # ------------------------------------------------------------------ plumbing
    @property
    def usable(self) -> bool:
        return self.state is State.READY

    def broken(self) -> None:
        """Mark the connection unusable (the driver saw it fail)."""
        if self.state is not State.CLOSED:
            self.state = State.BROKEN

    def _flush(self, phase: str = "command") -> Gen:
        chunks = self._out.take()
        if chunks:
            yield Write(chunks, phase)

    def _reply(self, phase: str, reply: Any = None) -> Gen:
        """Read one reply (or take ``reply``, already parsed); a 421 or a protocol error
        breaks the connection."""
        try:
            if reply is None:
                reply = self._parser.next_reply()
            first = True
            while reply is None:
                data = yield Read(phase, first)
                first = False
                if not data:
                    raise NetworkError("the server closed the connection")
                self._parser.feed(data)
                reply = self._parser.next_reply()
        except BaseException:
            self.broken()
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug("S: %s", reply.raw.decode("utf-8", "replace").rstrip("\r\n"))
        if reply.code == 421:
            self.broken()
            raise TransientError(
                f"the server is closing the connection: 421 {reply.text}".rstrip(),
                response=reply,
            )
        return reply

    def _log_commands(self, redact: bool = False) -> None:
        """The transcript at DEBUG; with ``redact``, SASL data never reaches the log."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        for chunk in self._out.chunks():
            for line in bytes(chunk[:4096]).decode("utf-8", "replace").split("\r\n")[:-1]:
                words = line.split(" ")
                shown = " ".join(words[:2]) + (" ***" if len(words) > 2 else "")
                log.debug("C: %s", shown if redact else line)

    def check_idle(self) -> None:
        """Before reusing an idle connection: anything buffered is unsolicited."""
        if self._parser.pending or self._parser.next_reply() is not None:
            self.broken()
            raise ProtocolError("the server sent unsolicited data on an idle connection")

    # ------------------------------------------------------------------ session setup
    def open(self) -> Gen:
        """Greeting, EHLO (or HELO), STARTTLS as the policy asks, AUTH when configured."""
        try:
            greeting = yield from self._reply("greeting")
            self.greeting = greeting
            if greeting.code != 220:
                raise _failure("the server refused the session", greeting)
            yield from self._hello()
            yield from self._starttls()
            if self.config.credentials is not None:
                yield from self._authenticate()
        except BaseException:
            self.broken()
            raise
        self.state = State.READY
        return self.capabilities

    def _hello(self) -> Gen:
        self._out.ehlo(self.config.hello_name)
        self._log_commands()
        yield from self._flush()
        reply = yield from self._reply("command")
        if reply.code == 250:
            self.capabilities = Capabilities.from_ehlo(reply.lines)
            return
        # HELO has no STARTTLS: never fall back when TLS is required.
        if reply.code in (500, 502) and self.config.starttls is not TlsPolicy.REQUIRED:
            self._out.helo(self.config.hello_name)
            self._log_commands()
            yield from self._flush()
            reply = yield from self._reply("command")
            if reply.code == 250:
                self.capabilities = Capabilities(server_name=reply.text.split(" ", 1)[0])
                return
        raise _failure("the server refused EHLO", reply)

    def _starttls(self) -> Gen:
        policy = self.config.starttls
        if self.tls_active or policy is TlsPolicy.NONE:
            return
        if not self.capabilities.starttls:
            if policy is TlsPolicy.REQUIRED:
                raise TlsRequiredError("TLS is required but the server does not offer STARTTLS")
            return
        self._out.starttls()
        self._log_commands()
        yield from self._flush()
        reply = yield from self._reply("command")
        if reply.code != 220:
            if policy is TlsPolicy.REQUIRED:
                raise TlsRequiredError(
                    f"TLS is required but the server refused STARTTLS: {reply.code} {reply.text}",
                    response=reply,
                )
            return
        # RFC 3207 4.2: anything that arrived with or after the 220 was sent in the clear
        # by someone, and must not be read as a reply once TLS is up.
        dropped = self._parser.clear()
        if dropped:
            log.warning("discarded %d bytes received in the clear after STARTTLS", dropped)
        yield StartTls()
        self.tls_active = True
        self.capabilities = Capabilities()
        yield from self._hello()  # only the capabilities announced under TLS count

    # ------------------------------------------------------------------ AUTH
    def _authenticate(self) -> Gen:
        offered = self.capabilities.auth
        if not offered:
            raise AuthError("credentials were given but the server does not offer AUTH")
        usable = [m for m in self.config.mechanisms if m in offered and m in SUPPORTED_MECHANISMS]
        if not usable:
            raise AuthError(
                f"no common authentication mechanism: the server offers "
                f"{', '.join(sorted(offered))}; smtpx was asked for "
                f"{', '.join(self.config.mechanisms)}"
            )
        last: AuthError | None = None
        for mechanism in usable:
            if (
                mechanism in self.config.cleartext_mechanisms
                and not self.tls_active
                and not self.config.allow_insecure_auth
            ):
                raise InsecureAuthError(
                    f"refusing to send {mechanism} credentials over an unencrypted "
                    f"connection; use TLS or builder.allow_insecure_auth(True)"
                )
            reply = yield from self._sasl(mechanism)
            if reply.code == 235:
                return
            error = AuthError(
                f"authentication with {mechanism} failed: {reply.code} {reply.text}".rstrip(),
                response=reply,
            )
            # 504 unknown mechanism, 534 too weak, 538 encryption required: try the next.
            # Anything else (535 bad credentials above all) stops: retrying another
            # mechanism with the same secret invites an account lockout.
            if reply.code not in (504, 534, 538):
                raise error
            last = error
        assert last is not None
        raise last

    def _sasl(self, mechanism: str) -> Gen:
        username, secret = self.config.credentials
        password = secret() if callable(secret) else secret
        scram: ScramSha256 | None = None
        if mechanism == "PLAIN":
            self._out.auth("PLAIN", _hot.sasl_plain(username, password))
        elif mechanism == "XOAUTH2":
            self._out.auth("XOAUTH2", _hot.sasl_xoauth2(username, password))
        elif mechanism == "SCRAM-SHA-256":
            scram = ScramSha256(username, password)
            self._out.auth("SCRAM-SHA-256", scram.first())
        else:
            self._out.auth(mechanism)
        self._log_commands(redact=True)
        yield from self._flush()
        for _ in range(MAX_AUTH_ROUNDS):
            reply = yield from self._reply("command")
            if reply.code != 334:
                if scram is not None and reply.code == 235:
                    # Mutual authentication: a server that never proved it knows the
                    # password is not the server (the session is dropped).
                    try:
                        scram.verify_success_data(reply.text)
                    except ProtocolError as exc:
                        raise AuthError(f"authentication with {mechanism} failed: {exc}") from exc
                return reply
            challenge = reply.text.strip()
            try:
                if scram is not None:
                    answer = scram.answer(challenge)
                elif mechanism == "LOGIN":
                    answer = _hot.sasl_login(challenge, username, password)
                elif mechanism == "CRAM-MD5":
                    answer = _hot.sasl_cram_md5(challenge, username, password)
                elif mechanism == "XOAUTH2":
                    answer = b""  # the server sent an error document; an empty line ends it
                else:
                    raise ProtocolError(f"unexpected {mechanism} challenge from the server")
            except ProtocolError as exc:
                yield from self._cancel_auth()
                raise AuthError(f"authentication with {mechanism} failed: {exc}") from exc
            self._out.auth_response(answer)
            log.debug("C: ***")
            yield from self._flush()
        yield from self._cancel_auth()
        raise AuthError(f"authentication with {mechanism} took more than {MAX_AUTH_ROUNDS} rounds")

    def _cancel_auth(self) -> Gen:
        self._out.auth_response(b"*")
        log.debug("C: *")
        yield from self._flush()
        yield from self._reply("command")

    # ------------------------------------------------------------------ transactions
    def send(self, envelope: Any, body: Body) -> Gen:
        """One transaction: a message in memory (a bytes-like object, or a list of them
        that together make the message, as smtpx messages serialise), or a
        :class:`Stream` of chunks. :meth:`submit` then :meth:`collect`.

        With PIPELINING, MAIL, every RCPT and DATA (or, with CHUNKING, ``BDAT n LAST``
        and the body) leave in one write and the replies are matched in order; without
        it, one command at a time.

        Returns a :class:`SendResult`. Raises :class:`RecipientsRefusedError` when no
        recipient was accepted and a :class:`ResponseError` for a refused sender or
        message; the session is then reset (RSET) and stays usable. Raises
        :class:`DeliveryUnknownError` when the connection failed after the end of the
        data was written and before its reply was read (RFC 1047): the message may have
        been delivered, and must not be retried blindly.
        """
        yield from self.submit(((envelope, body),))
        return (yield from self.collect())

    @property
    def in_flight(self) -> int:
        """Messages submitted whose outcome has not been collected yet."""
        return len(self._window)

    @property
    def awaits_replies(self) -> bool:
        """The oldest message in flight is waiting for replies from the server (its
        outcome is not decided yet, and the connection is usable)."""
        return self.state is State.READY and bool(self._window) and self._window[0].unread

    @property
    def replies_waiting(self) -> bool:
        """Reply bytes are already buffered (collecting may need no read)."""
        return bool(self._parser.pending) or (
            bool(self._window) and self._window[0].held is not None
        )

    def submit(self, messages: Iterable[tuple[Any, Body]]) -> Gen:
        """Start one transaction per ``(envelope, body)``, without waiting for the
        outcomes of those already in flight; :meth:`collect` returns each outcome in
        order. The caller bounds the window (how many are in flight).

        With PIPELINING and CHUNKING, each message's MAIL, RCPTs, ``BDAT n LAST`` and body
        are queued, and all of them leave in one write. A transaction queued while an
        earlier one is still unanswered starts with RSET: should the earlier one fail with
        its MAIL accepted and every recipient refused, the server may keep that MAIL open,
        and without the RSET the next recipients would join it. With DATA the body must
        wait for its 354, so a message's MAIL/RCPT/DATA leave together with the previous
        message's end of data, and the earlier replies are read before its own. Without
        PIPELINING, each message runs lock-step to its end here.

        A message refused before any byte of it was written (bad input, over the SIZE
        limit) gets that error as its outcome; nothing of it reaches the wire. When the
        connection fails, every message in flight gets an outcome:
        :class:`DeliveryUnknownError` when the end of its data may have reached the
        server, the failure itself otherwise.
        """
        if self.state is not State.READY:
            raise NetworkError(f"the connection is not usable ({self.state.value})")
        if not self._window:
            self.check_idle()
        self._debug = log.isEnabledFor(logging.DEBUG)
        pipelined = self.config.pipelining and self.capabilities.pipelining
        try:
            for envelope, body in messages:
                entry = _Entry()
                self._window.append(entry)
                if not self.usable:  # an earlier message's failure broke it
                    entry.outcome = NetworkError(
                        f"the connection failed before this message was sent ({self.state.value})"
                    )
                    continue
                try:
                    plan, rcpts = self._plan(envelope, body, pipelined)
                    self._queue_envelope(entry, plan, rcpts)
                except SmtpError as exc:
                    entry.outcome = exc
                    continue
                if not pipelined:
                    self._out.clear()  # validated; lock-step sends one command at a time
                    yield from self._reading(entry, self._lockstep(entry))
                elif plan.chunked:
                    self._unsent_ends.append(entry)
                else:
                    yield from self._data_head(entry)
            yield from self._write_unsent()
        except SmtpError as exc:  # a write failed
            self._abandon(exc)
        except BaseException:
            self._interrupted()
            raise

    def collect(self) -> Gen:
        """The outcome of the oldest message submitted and not yet collected: returns
        its :class:`SendResult` or raises its error (see :meth:`send`)."""
        entry = self._window[0]
        self._debug = log.isEnabledFor(logging.DEBUG)
        if entry.unread:
            while not self._take_buffered(entry) and entry.outcome is None and entry.held is None:
                if not (yield from self._read_for(entry)):
                    break
            if entry.outcome is not None:  # delivered, or the connection failed meanwhile
                return self._pop(entry)
        try:
            yield from self._write_unsent()
            if entry.unread:
                yield from self._reading(entry, self._rest(entry))
            tx = entry.tx
            if isinstance(entry.outcome, SendResult) and tx is not None and tx.deferred:
                yield from self._settle(None)
                yield from self._follow_ups(entry)
        except SmtpError as exc:
            self._abandon(exc)
        except BaseException:
            self._interrupted()
            raise
        return self._pop(entry)

    def _pop(self, entry: _Entry) -> SendResult:
        """Take the oldest message, decided, out of the window: its result, or raise."""
        self._window.popleft()
        self.collected += 1
        outcome = entry.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, SendResult)
        return outcome

    def _take_buffered(self, entry: _Entry) -> bool:
        """The common case of collecting, without a generator per step: take a BDAT
        transaction's replies that are already buffered, and True when that delivered
        it. Anything else (a reply still to be read, a refusal, a 421, a transcript to
        log, a 452 to follow up) is left to :meth:`_rest`: False, with the replies
        taken so far applied and the one that needs more in ``entry.held``."""
        if entry.held is not None or self._unsent or not entry.plan.chunked or self._debug:
            return False
        tx, parser, rset = entry.tx, self._parser, entry.rset
        last = rset + len(tx.rcpts) + 1  # the step of the end-of-data reply
        try:
            while (reply := parser.next_reply()) is not None:
                step = entry.step
                if reply.code == 421 or (step < rset and reply.code != 250):
                    entry.held = reply
                    return False
                if step < last:
                    entry.step = step + 1
                    if step == rset:
                        tx.mail = reply
                    elif step > rset:
                        tx.add(tx.rcpts[step - rset - 1], reply)
                    continue
                if reply.code != 250 or tx.mail.code != 250 or not tx.accepted or tx.deferred:
                    entry.held = reply
                    return False
                entry.step = step + 1
                tx.final = reply
                tx.data_sent = False
                entry.finish(SendResult(reply, tx.accepted, tx.rejected))
                return True
        except SmtpError as exc:  # a malformed reply: the connection is lost
            self._abandon(exc)
            return True
        return False

    def collect_many(self, limit: int) -> Gen:
        """Up to ``limit`` outcomes, oldest first, as a list: the oldest message's
        (reading its replies if need be), then each next one's as long as it needs no
        read (its replies are buffered, or its outcome is known). An outcome is a
        :class:`SendResult` or the :class:`SmtpError` that ended that message."""
        outcomes: list[Any] = []
        window = self._window
        self._debug = log.isEnabledFor(logging.DEBUG)
        while window and len(outcomes) < limit:
            entry = window[0]
            if entry.unread and self._take_buffered(entry):
                try:
                    outcomes.append(self._pop(entry))
                except SmtpError as exc:
                    outcomes.append(exc)
                continue
            if outcomes and entry.unread and not self.replies_waiting:
                break
            try:
                outcomes.append((yield from self.collect()))
            except SmtpError as exc:
                outcomes.append(exc)
        return outcomes

    def _read_for(self, entry: _Entry) -> Gen:
        """Wait for more of the oldest BDAT transaction's replies, for
        :meth:`_take_buffered`: True once bytes came in, or once the connection failed
        (every message in flight then has its outcome); False, reading nothing, when
        the transaction is not one it takes."""
        if self._unsent or self._debug or not entry.plan.chunked:
            return False
        last = entry.step == entry.rset + len(entry.tx.rcpts) + 1
        try:
            data = yield Read("data_end" if last else "command", True)
            if not data:
                raise NetworkError("the server closed the connection")
            self._parser.feed(data)
        except SmtpError as exc:
            self._abandon(exc)
        except BaseException:
            self._interrupted()
            raise
        return True

    def _plan(self, envelope: Any, body: Body, pipelined: bool) -> tuple[_Plan, list[str]]:
        """Everything one message's transactions share; raises before anything is queued."""
        caps = self.capabilities
        utf8 = envelope.needs_smtputf8
        payload: list[bytes] | Stream
        if isinstance(body, Stream):
            # A stream goes with DATA: BDAT needs each chunk's length up front.
            mail_kw = self._mail_params(envelope, utf8, body.size_hint, None)
            chunked = False
            body.check_8bit = not caps.eightbitmime
            if caps.eightbitmime:
                mail_kw["body"] = "8BITMIME"  # unknown until read: declare what may come
            payload = body
        elif type(body) is bytes:  # the common case, without the general machinery
            # One pass finds both what MAIL declares and whether BDAT can send the body
            # as it is (then it is not even copied).
            found = _hot.scan_body(body)
            mail_kw = self._mail_params(envelope, utf8, len(body), not found & _hot.BODY_8BIT)
            chunked = pipelined and caps.chunking
            if chunked and not found & _hot.BODY_NEEDS_ENCODING:
                payload = [body]
            else:
                payload = [_hot.encode_data(body, dot_stuff=not chunked)]
        else:
            parts = body if isinstance(body, list) else [body]
            flags = [_hot.scan_body(part) for part in parts]
            ascii_only = not any(f & _hot.BODY_8BIT for f in flags)
            mail_kw = self._mail_params(envelope, utf8, sum(map(len, parts)), ascii_only)
            chunked = pipelined and caps.chunking
            payload = _encode_parts(parts, flags, dot_stuff=not chunked)
        sender, rcpts = envelope.sender or "", list(envelope.recipients)
        if utf8 and not caps.smtputf8:
            if getattr(envelope, "smtputf8", False):
                raise InvalidInputError(
                    "the message has UTF-8 headers (RFC 6532), which need SMTPUTF8, and the "
                    "server does not offer it; nothing was sent"
                )
            sender, rcpts = _ascii_address(sender), [_ascii_address(r) for r in rcpts]
        rcpt_kw = {"smtputf8": bool(mail_kw.get("smtputf8")), "params": tuple(envelope.rcpt_params)}
        return _Plan(sender, mail_kw, rcpt_kw, payload, pipelined, chunked), rcpts

    def _queue_envelope(self, entry: _Entry, plan: _Plan, rcpts: list[str]) -> None:
        """Queue (and so validate) MAIL and every RCPT, then DATA or ``BDAT n LAST`` and
        the body. A bad recipient leaves nothing behind, in the buffer or on the wire."""
        out = self._out
        rset = plan.pipelined and self._open_behind()
        try:
            if rset:
                out.rset()
            out.mail(plan.sender, **plan.mail_kw)
            for rcpt in rcpts:
                out.rcpt(rcpt, **plan.rcpt_kw)
        except BaseException:
            out.clear()
            raise
        entry.plan, entry.tx, entry.rset = plan, _Transaction(rcpts), rset
        if not plan.pipelined:
            return
        entry.unread = True
        if plan.chunked:
            payload = plan.payload
            assert isinstance(payload, list)
            size = len(payload[0]) if len(payload) == 1 else sum(map(len, payload))
            out.bdat(size, last=True)
            if self._debug:
                self._log_commands()
                log.debug("C: <message data, %d octets>", size)
            for part in payload:
                out.body(part)
        else:
            out.data()
            self._log_commands()
        self._unsent += out.take()

    def _open_behind(self) -> bool:
        """Whether the last transaction sent (the entry just appended aside) is BDAT and
        unanswered: the server may still hold its MAIL open. Transactions end in order,
        so when the last one sent has ended, every earlier one has too."""
        window = self._window
        for index in range(len(window) - 2, -1, -1):
            entry = window[index]
            if entry.tx is not None:
                return bool(entry.unread and entry.plan.chunked)
        return False

    def _write_unsent(self) -> Gen:
        """Write everything queued: ends of data (and commands) of several messages."""
        chunks, ends = self._unsent, self._unsent_ends
        if not chunks:
            return
        self._unsent, self._unsent_ends = [], []
        try:
            yield Write(chunks, "data_block")
        except BaseException:
            # The write stopped short of its last byte, but every end of data before
            # the last one in it may have reached the server whole.
            for entry in ends[:-1]:
                entry.tx.data_sent = True
            raise
        for entry in ends:
            entry.tx.data_sent = True

    def _reading(self, entry: _Entry, procedure: Gen) -> Gen:
        """Run ``procedure`` (which reads ``entry``'s replies and sets its outcome), and
        turn a failure into that outcome."""
        try:
            yield from procedure
        except ResponseError as exc:  # the server's answer, read in full (or a 421)
            entry.finish(exc)
            if self.state is not State.READY:  # 421: the server took nothing after it
                self._abandon(exc, closing=True)
            elif not any(e.unread for e in self._window):
                yield from self._reset_after_failure()
        except SmtpError as exc:
            self._abandon(exc)

    def _front(self, entry: _Entry) -> Gen:
        """Read the replies to a pipelined group: RSET (when it led), MAIL, each RCPT."""
        tx = entry.tx
        if entry.rset:
            reply = yield from self._reply("command")
            if reply.code != 250:  # the transaction behind it is in an unknown state
                raise ProtocolError(f"the server refused RSET: {reply.code} {reply.text}")
        # Replies already buffered are taken without a generator each (the slow path
        # reads, logs at DEBUG, and handles 421 and protocol errors).
        parser, slow = self._parser, log.isEnabledFor(logging.DEBUG)
        reply = parser.next_reply()
        if slow or reply is None or reply.code == 421:
            reply = yield from self._reply("command", reply)
        tx.mail = reply
        for rcpt in tx.rcpts:
            reply = parser.next_reply()
            if slow or reply is None or reply.code == 421:
                reply = yield from self._reply("command", reply)
            tx.add(rcpt, reply)

    def _rest(self, entry: _Entry) -> Gen:
        """Read the rest of an in-flight transaction's replies and decide its outcome."""
        tx = entry.tx
        if entry.plan.chunked:  # from where _take_buffered left it
            parser, slow, rset = self._parser, log.isEnabledFor(logging.DEBUG), entry.rset
            last = rset + len(tx.rcpts) + 1
            while entry.step <= last:
                step = entry.step
                reply, entry.held = entry.held, None
                if reply is None:
                    reply = parser.next_reply()
                if slow or reply is None or reply.code == 421:
                    reply = yield from self._reply("data_end" if step == last else "command", reply)
                entry.step = step + 1
                if step < rset:
                    if reply.code != 250:  # the transaction behind it is in an unknown state
                        raise ProtocolError(f"the server refused RSET: {reply.code} {reply.text}")
                elif step == rset:
                    tx.mail = reply
                elif step < last:
                    tx.add(tx.rcpts[step - rset - 1], reply)
            tx.final = reply
            tx.data_sent = False
            entry.unread = False
            entry.finish(tx.result())
            return
        reply = self._parser.next_reply()
        if reply is None or reply.code == 421 or log.isEnabledFor(logging.DEBUG):
            reply = yield from self._reply("data_end", reply)
        tx.final = reply
        tx.data_sent = False
        entry.unread = False
        entry.finish(tx.result())

    def _settle(self, before: _Entry | None) -> Gen:
        """Read every in-flight transaction submitted before ``before`` to its end."""
        for entry in list(self._window):
            if entry is before:
                return
            if entry.unread:
                yield from self._reading(entry, self._rest(entry))

    def _data_head(self, entry: _Entry) -> Gen:
        """DATA: write this group behind the previous end of data, read the earlier
        replies, then this transaction's up to 354, then queue its body."""
        yield from self._write_unsent()
        yield from self._settle(entry)
        if entry.outcome is None:
            yield from self._reading(entry, self._head(entry))

    def _head(self, entry: _Entry) -> Gen:
        tx, payload = entry.tx, entry.plan.payload
        yield from self._front(entry)
        go = yield from self._reply("data")
        if not tx.can_deliver:
            entry.unread = False
            if go.code == 354:  # RFC 2920 3.1: end the (empty) message the server awaits
                self._out.body(b".\r\n")
                yield from self._flush()
                yield from self._reply("data_end")
            tx.check()
        if go.code != 354:
            entry.unread = False
            raise _failure("the server refused DATA", go)
        if isinstance(payload, Stream):
            yield from self._stream(payload)
            tx.data_sent = True
        else:
            for part in payload:
                self._out.body(part)
            log.debug("C: <message data, %d octets>", sum(map(len, payload)))
            self._unsent += self._out.take()
            self._unsent_ends.append(entry)

    def _lockstep(self, entry: _Entry) -> Gen:
        tx, plan = entry.tx, entry.plan
        self._out.mail(plan.sender, **plan.mail_kw)
        self._log_commands()
        yield from self._flush()
        tx.mail = yield from self._reply("command")
        tx.check()
        for rcpt in tx.rcpts:
            self._out.rcpt(rcpt, **plan.rcpt_kw)
            self._log_commands()
            yield from self._flush()
            tx.add(rcpt, (yield from self._reply("command")))
        tx.check()
        self._out.data()
        self._log_commands()
        yield from self._flush()
        go = yield from self._reply("data")
        if go.code != 354:
            raise _failure("the server refused DATA", go)
        if isinstance(plan.payload, Stream):
            yield from self._stream(plan.payload)
        else:
            for part in plan.payload:
                self._out.body(part)
            log.debug("C: <message data, %d octets>", sum(map(len, plan.payload)))
            yield from self._flush("data_block")
        tx.data_sent = True
        tx.final = yield from self._reply("data_end")
        tx.data_sent = False
        entry.finish(tx.result())

    def _follow_ups(self, entry: _Entry) -> Gen:
        """452 (too many recipients, RFC 5321 4.5.3.1.10): the deferred recipients go in
        follow-up transactions, as long as each one gets some recipient accepted."""
        result, plan = entry.outcome, entry.plan
        assert isinstance(result, SendResult)
        deferred = entry.tx.deferred
        while deferred and self.state is State.READY and not isinstance(plan.payload, Stream):
            rcpts, deferred = list(deferred), {}
            sub = _Entry()
            self._window.append(sub)
            try:
                self._queue_envelope(sub, plan, rcpts)
                if not plan.pipelined:
                    self._out.clear()
                    yield from self._reading(sub, self._lockstep(sub))
                elif plan.chunked:
                    self._unsent_ends.append(sub)
                    yield from self._write_unsent()
                else:
                    yield from self._data_head(sub)
                    yield from self._write_unsent()
                if sub.unread:
                    yield from self._reading(sub, self._rest(sub))
            finally:
                self._window.remove(sub)
            more = sub.outcome
            if isinstance(more, RecipientsRefusedError):
                result.rejected.update(more.rejected)
            elif isinstance(more, ResponseError):  # the follow-up's message was refused
                result.rejected.update(dict.fromkeys(rcpts, more.response))
            elif isinstance(more, SendResult):
                result.accepted += more.accepted
                result.rejected.update(more.rejected)
                result.response = more.response
                deferred = sub.tx.deferred
            else:  # the connection failed: that is this message's outcome now
                entry.outcome = more
                return
        result.rejected.update(deferred)

    def abandon(self, error: SmtpError) -> None:
        """The driver saw the connection fail outside a procedure (for example, no reply
        came in time while it waited): every message in flight gets its outcome, as if
        the failure had come while reading."""
        self._abandon(error)

    def _abandon(self, error: SmtpError, *, closing: bool = False) -> None:
        """The connection failed (or closed with 421 when ``closing``): give every
        message still in flight its outcome."""
        self.broken()
        self._out.clear()
        self._unsent, self._unsent_ends = [], []
        first = True
        for entry in self._window:
            if entry.outcome is not None:
                continue
            tx = entry.tx
            outcome: SmtpError
            if closing:  # a server answers in order: nothing behind the 421 was acted on
                outcome = TransientError(
                    "the server closed the connection (421) before it took this message",
                    response=error.response,
                )
            elif tx is not None and tx.in_doubt:
                outcome = DeliveryUnknownError(
                    "the end of the message data was sent but no reply came back: the "
                    "message may or may not have been delivered (it is not retried)"
                )
                outcome.__cause__ = error
            elif first:
                outcome = error
            else:
                outcome = NetworkError(f"the connection failed before this message: {error}")
                outcome.__cause__ = error
            first = False
            entry.unread = False
            entry.outcome = outcome

    def _interrupted(self) -> None:
        """Not an smtpx error (a cancellation, the caller's body iterator failing): the
        connection is dropped; note whether a message may have been delivered."""
        self.broken()
        self.last_in_doubt = any(
            e.tx is not None and e.tx.in_doubt for e in self._window if e.outcome is None
        )
        for entry in self._window:
            if entry.outcome is not None:
                continue
            entry.unread = False
            if entry.tx is not None and entry.tx.in_doubt:
                entry.outcome = DeliveryUnknownError(
                    "the send was interrupted after the end of the message data was sent: "
                    "the message may or may not have been delivered"
                )
            else:
                entry.outcome = NetworkError("the send was interrupted before this message")

    def _stream(self, stream: Stream) -> Gen:
        """Encode and write a stream chunk by chunk; the terminator goes last, alone, so
        that a failure before it leaves nothing the server could deliver."""
        encoder = _hot.DataEncoder()
        chunks = None if stream.asynchronous else iter(stream.chunks)
        while True:
            if chunks is not None:
                chunk = next(chunks, _END)
                if chunk is _END:
                    break
            else:
                chunk = yield NextChunk(stream.chunks)
                if chunk is None:
                    break
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"the body iterator yielded {type(chunk).__name__}, not bytes")
            if stream.check_8bit and _hot.scan_body(chunk) & _hot.BODY_8BIT:
                self.broken()  # abandon the DATA: without its end the server drops it
                raise InvalidInputError(
                    "the message holds 8-bit data but the server does not offer 8BITMIME; "
                    "the transaction was abandoned before its end"
                )
            encoded = encoder.encode(chunk)
            if encoded:
                yield Write([encoded], "data_block")
        log.debug("C: <message data, %d octets>", encoder.bytes_out)
        yield Write([encoder.finish()], "data_block")

    def _mail_params(
        self, envelope: Any, utf8: bool, size: int | None, ascii_only: bool | None
    ) -> dict[str, Any]:
        """MAIL FROM's parameters; ``ascii_only`` is None when the body is not known yet."""
        caps = self.capabilities
        kw: dict[str, Any] = {"params": tuple(envelope.mail_params)}
        if size is None:
            pass
        elif caps.size_limit is not None and size > caps.size_limit:
            raise InvalidInputError(
                f"the message ({size} octets) exceeds the server's SIZE limit "
                f"({caps.size_limit} octets); nothing was sent"
            )
        if caps.size and size is not None:
            kw["size"] = size
        if ascii_only is False:
            if not caps.eightbitmime:
                raise InvalidInputError(
                    "the message holds 8-bit data but the server does not offer 8BITMIME; "
                    "encode it as 7-bit (quoted-printable or base64)"
                )
            kw["body"] = "8BITMIME"
        if utf8 and caps.smtputf8:
            kw["smtputf8"] = True
        return kw

    def _reset_after_failure(self) -> Gen:
        """RSET after a refused transaction; a refused RSET drops the connection (the
        transaction's own error stays its outcome)."""
        try:
            yield from self._reset()
        except SmtpError:
            self.broken()

    def _reset(self) -> Gen:
        self._out.rset()
        self._log_commands()
        yield from self._flush()
        reply = yield from self._reply("command")
        if reply.code != 250:
            self.broken()
            raise _failure("the server refused RSET", reply)

    # ------------------------------------------------------------------ other commands
    def reset(self) -> Gen:
        """RSET: abandon any transaction; the connection stays usable."""
        yield from self._reset()

    def noop(self) -> Gen:
        self._out.noop()
        self._log_commands()
        yield from self._flush()
        reply = yield from self._reply("command")
        if reply.code != 250:
            self.broken()
            raise _failure("the server refused NOOP", reply)
        return reply

    def quit(self) -> Gen:
        """QUIT politely; the connection is closed afterwards whatever the answer."""
        if self.state in (State.BROKEN, State.CLOSED):
            self.state = State.CLOSED
            return None
        self.state = State.CLOSED
        self._out.quit()
        self._log_commands()
        yield from self._flush()
        try:
            return (yield from self._reply("quit"))
        except SmtpError:
            return None
