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
from .ops import Read, StartTls, Write

__all__ = ["Body", "SendResult", "Session", "SessionConfig", "State", "Stream", "TlsPolicy"]

log = logging.getLogger("smtpx")

Gen = Generator[Any, Any, Any]

#: At most this many SASL challenge rounds before the exchange is abandoned.
MAX_AUTH_ROUNDS = 5
#: The SASL mechanisms this engine speaks.
SUPPORTED_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2", "CRAM-MD5"})


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
    """A message body read chunk by chunk (a file or an iterable of bytes), sent with
    DATA and never held whole. ``size_hint``, when known, is declared with SIZE."""

    __slots__ = ("check_8bit", "chunks", "size_hint")

    def __init__(
        self, chunks: Iterable[bytes | bytearray | memoryview], size_hint: int | None
    ) -> None:
        self.chunks = chunks
        self.size_hint = size_hint
        self.check_8bit = False


@dataclass(slots=True)
class _Plan:
    """What every transaction of one message shares (452 follow-ups repeat it)."""

    sender: str
    mail_kw: dict[str, Any]
    rcpt_kw: dict[str, Any]
    payload: list[bytes] | Stream
    pipelined: bool
    chunked: bool
    deferred: dict[str, Any] = field(default_factory=dict)


#: A message body the engine takes: in memory (whole, or in parts), or streamed.
Body = bytes | bytearray | memoryview | list[bytes | bytearray | memoryview] | Stream


def _is_ascii(part: bytes | bytearray | memoryview) -> bool:
    return part.isascii() if not isinstance(part, memoryview) else bytes(part).isascii()


def _encode_parts(parts: list[Any], *, dot_stuff: bool) -> list[bytes]:
    """The encoded body of a message held in memory as ``parts``.

    For BDAT (no dot-stuffing), parts that each end with a line end encode on their own
    exactly as they would together, so each goes through ``encode_data``, which gives a
    canonical part back without copying it (attachments shared by many messages stay
    shared). Otherwise the parts are encoded as one stream.
    """
    if not dot_stuff and all(len(p) and p[-1:] == b"\n" for p in parts):
        return [_hot.encode_data(p, dot_stuff=False) for p in parts]
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

    def _reply(self, phase: str) -> Gen:
        """Read one reply; a 421 or a protocol error breaks the connection."""
        try:
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
        if mechanism == "PLAIN":
            self._out.auth("PLAIN", _hot.sasl_plain(username, password))
        elif mechanism == "XOAUTH2":
            self._out.auth("XOAUTH2", _hot.sasl_xoauth2(username, password))
        else:
            self._out.auth(mechanism)
        self._log_commands(redact=True)
        yield from self._flush()
        for _ in range(MAX_AUTH_ROUNDS):
            reply = yield from self._reply("command")
            if reply.code != 334:
                return reply
            challenge = reply.text.strip()
            try:
                if mechanism == "LOGIN":
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
        :class:`Stream` of chunks.

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
        if self.state is not State.READY:
            raise NetworkError(f"the connection is not usable ({self.state.value})")
        self.check_idle()
        caps = self.capabilities
        pipelined = self.config.pipelining and caps.pipelining
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
        else:
            parts = body if isinstance(body, list) else [body]
            ascii_only = all(_is_ascii(part) for part in parts)
            mail_kw = self._mail_params(envelope, utf8, sum(map(len, parts)), ascii_only)
            chunked = pipelined and caps.chunking
            payload = _encode_parts(parts, dot_stuff=not chunked)
        sender, rcpts = envelope.sender or "", list(envelope.recipients)
        if utf8 and not caps.smtputf8:
            sender, rcpts = _ascii_address(sender), [_ascii_address(r) for r in rcpts]
        rcpt_kw = {"smtputf8": bool(mail_kw.get("smtputf8")), "params": tuple(envelope.rcpt_params)}
        plan = _Plan(sender, mail_kw, rcpt_kw, payload, pipelined, chunked)
        result = yield from self._transaction(plan, rcpts)
        # 452 (too many recipients, RFC 5321 4.5.3.1.10): the rest go in follow-up
        # transactions, as long as each one gets some recipient accepted.
        while plan.deferred and not isinstance(payload, Stream):
            rcpts, plan.deferred = list(plan.deferred), {}
            try:
                more = yield from self._transaction(plan, rcpts)
            except RecipientsRefusedError as exc:
                result.rejected.update(exc.rejected)
                break
            except ResponseError as exc:  # the follow-up's message itself was refused
                result.rejected.update(dict.fromkeys(rcpts, exc.response))
                break
            result.accepted += more.accepted
            result.rejected.update(more.rejected)
            result.response = more.response
        result.rejected.update(plan.deferred)
        return result

    def _transaction(self, plan: _Plan, rcpts: list[str]) -> Gen:
        """One MAIL/RCPT/DATA (or BDAT) transaction for ``rcpts``."""
        # Every command of the transaction is serialised (and so validated) before the
        # first byte is written: a bad recipient never leaves half a transaction behind,
        # neither on the wire nor in the buffer for the next message.
        try:
            self._out.mail(plan.sender, **plan.mail_kw)
            for rcpt in rcpts:
                self._out.rcpt(rcpt, **plan.rcpt_kw)
        except BaseException:
            self._out.clear()
            raise
        if not plan.pipelined:
            self._out.clear()
        elif plan.chunked:
            assert isinstance(plan.payload, list)
            self._out.bdat(sum(map(len, plan.payload)), last=True)
            for part in plan.payload:
                self._out.body(part)
        else:
            self._out.data()
        transaction = _Transaction(rcpts)
        try:
            if plan.pipelined:
                yield from self._pipelined(transaction, plan.payload, plan.chunked)
            else:
                yield from self._lockstep(
                    transaction, plan.sender, plan.mail_kw, plan.rcpt_kw, plan.payload
                )
            result = transaction.result()
        except ResponseError:
            if self.state is State.READY:
                yield from self._reset()
            raise
        except SmtpError as exc:
            self.broken()
            if transaction.in_doubt and not isinstance(exc, DeliveryUnknownError):
                raise DeliveryUnknownError(
                    "the end of the message data was sent but no reply came back: the "
                    "message may or may not have been delivered (it is not retried)"
                ) from exc
            raise
        except BaseException:
            self.broken()  # e.g. the caller's body iterator failed, or a cancellation
            self.last_in_doubt = transaction.in_doubt
            raise
        plan.deferred = transaction.deferred
        return result

    def _pipelined(self, tx: _Transaction, payload: list[bytes] | Stream, chunked: bool) -> Gen:
        self._log_commands()
        yield from self._flush("data_block")
        tx.data_sent = chunked
        tx.mail = yield from self._reply("command")
        for rcpt in tx.rcpts:
            tx.add(rcpt, (yield from self._reply("command")))
        if chunked:
            tx.final = yield from self._reply("data_end")
            tx.data_sent = False
            return
        go = yield from self._reply("data")
        if not tx.can_deliver:
            if go.code == 354:  # RFC 2920 3.1: end the (empty) message the server awaits
                self._out.body(b".\r\n")
                yield from self._flush()
                yield from self._reply("data_end")
            tx.check()
        if go.code != 354:
            raise _failure("the server refused DATA", go)
        yield from self._data(tx, payload)

    def _lockstep(
        self,
        tx: _Transaction,
        sender: str,
        mail_kw: dict[str, Any],
        rcpt_kw: dict[str, Any],
        payload: list[bytes] | Stream,
    ) -> Gen:
        self._out.mail(sender, **mail_kw)
        self._log_commands()
        yield from self._flush()
        tx.mail = yield from self._reply("command")
        tx.check()
        for rcpt in tx.rcpts:
            self._out.rcpt(rcpt, **rcpt_kw)
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
        yield from self._data(tx, payload)

    def _data(self, tx: _Transaction, payload: list[bytes] | Stream) -> Gen:
        if isinstance(payload, Stream):
            yield from self._stream(payload)
        else:
            for part in payload:
                self._out.body(part)
            log.debug("C: <message data, %d octets>", sum(map(len, payload)))
            yield from self._flush("data_block")
        tx.data_sent = True
        tx.final = yield from self._reply("data_end")
        tx.data_sent = False

    def _stream(self, stream: Stream) -> Gen:
        """Encode and write a stream chunk by chunk; the terminator goes last, alone, so
        that a failure before it leaves nothing the server could deliver."""
        encoder = _hot.DataEncoder()
        for chunk in stream.chunks:
            if stream.check_8bit and not bytes(chunk).isascii():
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
