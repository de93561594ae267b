"""A scripted fake SMTP server, for fault injection with exact control of the bytes.

A script is a list of steps that the server plays on one accepted connection, in the
server's own thread, while the client under test talks to it::

    from smtpx.testing.scripted import Close, Expect, ExpectData, ScriptedServer, Send

    script = [
        Send(b"220 fake ESMTP\\r\\n"),
        Expect(b"EHLO *\\r\\n"),
        Send(b"250-fake\\r\\n250 PIPELINING\\r\\n"),
        Expect(b"MAIL FROM:<a@x.test>\\r\\nRCPT TO:<b@x.test>\\r\\nDATA\\r\\n"),
        Send(b"250 ok\\r\\n", b"250 ok\\r\\n", b"354 go\\r\\n", segments=True, delay=0.05),
        ExpectData(),
        Close(),
    ]
    with ScriptedServer(script) as srv:
        ...  # connect the client to srv.host, srv.port
        srv.wait(timeout=5)  # the script finished; re-raises its failure, if any
    srv.received      # every byte the client sent (plaintext, also after TLS)
    srv.transcript    # [("S", b"220 fake ESMTP\\r\\n"), ("C", b"EHLO me\\r\\n"), ...]

Steps
    :class:`Send`, :class:`Trickle` write; :class:`Expect` (command lines),
    :class:`ExpectData` (a DATA body), :class:`ExpectBytes` (a BDAT chunk) and
    :class:`ExpectClosed` read; :class:`Sleep`, :class:`Close` (FIN), :class:`Reset` (RST),
    :class:`StartTls` and :class:`Call` (run a callable in the server thread).

Failures
    A step that does not get what it expects (other bytes, EOF, a time-out, a failed TLS
    handshake) records a :class:`ScriptError` saying what was expected and what came,
    and the server closes that connection. :meth:`ScriptedServer.wait` raises the first
    failure in the test thread; leaving the ``with`` block raises it too, unless
    ``wait()`` already did (or the block is already raising).

Connections
    One script per accepted connection, in order (``scripts=[...]``), each in its own
    thread, so several connections can be open at once. A connection beyond the scripts
    is closed at once and counts as a failure, unless ``extra_connections="close"``.
    When a script ends, the server half-closes (FIN), reads and discards whatever the
    client still sends until it closes (for at most a few seconds), then closes; the
    client therefore sees EOF, never a reset, unless the script says :class:`Reset`.

Every wait is bounded by a time-out, the server listens on loopback only (``127.0.0.1``
or ``::1``), TCP_NODELAY is set on every connection (so :class:`Send` with ``segments``
controls TCP segmentation), and :meth:`ScriptedServer.close` stops and joins every
thread and closes every socket. Everything is logged at DEBUG to the ``smtpx.testing``
logger.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import operator
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypeAlias

__all__ = [
    "Call",
    "Close",
    "ConnectionRecord",
    "Expect",
    "ExpectBytes",
    "ExpectClosed",
    "ExpectData",
    "Reset",
    "ScriptError",
    "ScriptedServer",
    "Send",
    "Sleep",
    "StartTls",
    "Step",
    "Trickle",
]

log = logging.getLogger("smtpx.testing")

#: Who sent the bytes of a transcript entry: the client ("C") or the server ("S").
Direction: TypeAlias = Literal["C", "S"]
#: A pattern: a byte glob, or a compiled regular expression matched in full.
Pattern: TypeAlias = bytes | re.Pattern[bytes]

_CRLF = b"\r\n"
_RECV_SIZE = 65536
#: Bound on one send, and on the wait for the client's close after a script ends.
_IO_TIMEOUT = 5.0
#: Bound on the implicit-TLS handshake at accept.
_HANDSHAKE_TIMEOUT = 5.0
#: An Expect block is a few command lines (RFC 5321 caps a command line at 512 octets);
#: a client that sends this much without completing one is running away.
_MAX_EXPECT = 1 << 20
#: How often the accept loop looks at the stop flag.
_POLL_INTERVAL = 0.05
#: How long close() waits for each thread.
_JOIN_TIMEOUT = 10.0
#: How much of the bytes a failure message shows.
_SHOW_MAX = 300


class ScriptError(AssertionError):
    """A script did not run as written: what a step expected and what came instead.

    ``connection`` is the 1-based number of the connection (``None`` when the failure
    is not about one) and ``step`` the 1-based number of the step (``0`` for the
    implicit-TLS handshake at accept, ``None`` when the failure is not about a step).
    It is an :class:`AssertionError`, so pytest reports it as a failed test.
    """

    def __init__(
        self, message: str, *, connection: int | None = None, step: int | None = None
    ) -> None:
        super().__init__(message)
        self.connection = connection
        self.step = step


class _Failure(Exception):
    """A step failed; the message says how. The server turns it into a ScriptError."""


class _Timeout(Exception):
    """A receive ran past its step's deadline."""


def _show(data: bytes | bytearray) -> str:
    """``repr`` of bytes for a message, cut after a few hundred bytes."""
    if len(data) <= _SHOW_MAX:
        return repr(bytes(data))
    return f"{bytes(data[:_SHOW_MAX])!r}... ({len(data)} bytes)"


def _check_seconds(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, not {value!r}"
        )


def _check_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


_GLOB = {ord("*"): rb"[^\r\n]*", ord("?"): rb"[^\r\n]"}


def _glob_regex(glob: bytes) -> re.Pattern[bytes]:
    """Translate a byte glob: ``*`` is any run of bytes within a line, ``?`` one byte
    other than CR or LF; every other byte, ``[`` included, stands for itself."""
    return re.compile(b"".join(_GLOB.get(byte) or re.escape(bytes((byte,))) for byte in glob))


def _matches(expected: Pattern | None, got: bytes) -> bool:
    if expected is None:
        return True
    if isinstance(expected, bytes):
        return got == expected
    return expected.fullmatch(got) is not None


def _check_expected(value: object) -> None:
    if value is not None and not isinstance(value, (bytes, re.Pattern)):
        raise TypeError(f"expected must be bytes, a compiled bytes pattern or None, not {value!r}")


# ---------------------------------------------------------------- steps
class Step:
    """One step of a script: the classes below are the steps there are."""

    __slots__ = ()

    def _run(self, conn: _Connection) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True, init=False)
class Send(Step):
    """Write ``chunks``: joined in one ``sendall``, or with ``segments=True`` one
    ``sendall`` per chunk, ``delay`` seconds apart (with TCP_NODELAY set, a delay puts
    each chunk in its own TCP segment, so the client sees separate receives)."""

    chunks: tuple[bytes, ...]
    segments: bool
    delay: float

    def __init__(self, *chunks: bytes, segments: bool = False, delay: float = 0.0) -> None:
        if not chunks:
            raise ValueError("Send needs at least one chunk")
        for chunk in chunks:
            _check_bytes("a Send chunk", chunk)
        _check_seconds("delay", delay, allow_zero=True)
        if delay and not segments:
            raise ValueError("a Send delay separates segments: it needs segments=True")
        object.__setattr__(self, "chunks", chunks)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "delay", delay)

    def _run(self, conn: _Connection) -> None:
        if not self.segments:
            conn.send(b"".join(self.chunks))
            return
        for i, chunk in enumerate(self.chunks):
            if i and self.delay:
                conn.pause(self.delay)
            conn.send(chunk)


@dataclass(frozen=True, slots=True)
class Trickle(Step):
    """Write ``data`` one byte at a time, ``interval`` seconds apart (for deadline tests).

    With ``allow_close=True``, a client that closes the connection mid-way (it gave up
    at its deadline) ends the trickle quietly instead of failing the script; follow it
    with :class:`ExpectClosed` to check that the client did close.
    """

    data: bytes
    interval: float
    allow_close: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        if not _check_bytes("Trickle data", self.data):
            raise ValueError("Trickle needs at least one byte")
        _check_seconds("interval", self.interval, allow_zero=True)

    def _run(self, conn: _Connection) -> None:
        sent = 0
        try:
            for sent in range(len(self.data)):
                if sent and self.interval:
                    conn.pause(self.interval)
                conn.send_raw(self.data[sent : sent + 1])
            sent = len(self.data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as exc:
            if not self.allow_close:
                raise
            log.debug("connection %d: the client closed mid-trickle (%s)", conn.index, exc)
        finally:
            if sent:
                conn.record("S", self.data[:sent])


@dataclass(frozen=True, slots=True)
class Expect(Step):
    """Read the next command line(s) and check them against ``pattern``.

    ``pattern`` is either a byte glob ending with CRLF, matched against as many
    CRLF-terminated lines as it has (``*`` matches any bytes within a line, ``?`` one
    byte; every other byte is literal, so ``EHLO [127.0.0.1]`` needs no escaping), or a
    compiled ``re.Pattern[bytes]`` matched in full against the next ``lines`` lines
    (default 1), their CRLFs included. Exactly those lines are consumed; bytes after them
    stay buffered for the next step. Other bytes, EOF, more than 1 MiB without the
    lines, or no lines within ``timeout`` seconds fail the script.
    """

    pattern: Pattern
    timeout: float = 5.0
    lines: int | None = field(default=None, kw_only=True)
    _regex: re.Pattern[bytes] = field(init=False, repr=False, compare=False)
    _count: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_seconds("timeout", self.timeout)
        if isinstance(self.pattern, re.Pattern):
            if not isinstance(self.pattern.pattern, bytes):
                raise TypeError("an Expect pattern must match bytes, not str")
            regex, count = self.pattern, 1 if self.lines is None else self.lines
        elif isinstance(self.pattern, bytes):
            if self.lines is not None:
                raise ValueError("lines= is for a compiled pattern; a glob counts its CRLFs")
            if not self.pattern.endswith(_CRLF):
                raise ValueError(f"an Expect glob must end with CRLF: {self.pattern!r}")
            regex, count = _glob_regex(self.pattern), self.pattern.count(_CRLF)
        else:
            raise TypeError(f"an Expect pattern is bytes or a compiled pattern: {self.pattern!r}")
        if count < 1:
            raise ValueError(f"lines must be >= 1, not {count}")
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_count", count)

    def _run(self, conn: _Connection) -> None:
        what = "1 line" if self._count == 1 else f"{self._count} lines"

        def block_end() -> int | None:
            end = 0
            for _ in range(self._count):
                found = conn.buffer.find(_CRLF, end)
                if found < 0:
                    if len(conn.buffer) > _MAX_EXPECT:
                        raise _Failure(
                            f"the client sent {len(conn.buffer)} bytes without {what}: "
                            f"{_show(conn.buffer)}"
                        )
                    return None
                end = found + 2
            return end

        got = conn.take(conn.receive_until(block_end, self.timeout, what))
        if self._regex.fullmatch(got) is None:
            raise _Failure(f"expected {self.pattern!r}, the client sent {_show(got)}")


@dataclass(frozen=True, slots=True)
class ExpectData(Step):
    """Read a DATA body up to and including the ``<CRLF>.<CRLF>`` that ends it.

    The bytes are consumed exactly as sent (dot-stuffing and the final ``.\\r\\n``
    included), appended to :attr:`ScriptedServer.captured` and, when ``expected`` is
    given, compared with it: equal bytes, or a compiled pattern matched in full.
    """

    expected: Pattern | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        _check_expected(self.expected)
        _check_seconds("timeout", self.timeout)

    def _run(self, conn: _Connection) -> None:
        scan = 0

        def body_end() -> int | None:
            nonlocal scan
            # The DATA line's CRLF precedes the body, so ".\r\n" first is an empty body.
            if conn.buffer.startswith(b".\r\n"):
                return 3
            found = conn.buffer.find(b"\r\n.\r\n", scan)
            if found >= 0:
                return found + 5
            scan = max(0, len(conn.buffer) - 4)
            return None

        got = conn.take(conn.receive_until(body_end, self.timeout, "the end of the data"))
        conn.capture(got)
        if not _matches(self.expected, got):
            raise _Failure(f"expected data {self.expected!r}, the client sent {_show(got)}")


@dataclass(frozen=True, slots=True)
class ExpectBytes(Step):
    """Read exactly ``n`` bytes (a BDAT chunk), append them to
    :attr:`ScriptedServer.captured` and, when ``expected`` is given, compare them with
    it: equal bytes, or a compiled pattern matched in full."""

    n: int
    expected: Pattern | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if operator.index(self.n) < 0:
            raise ValueError(f"n must be >= 0, not {self.n!r}")
        _check_expected(self.expected)
        _check_seconds("timeout", self.timeout)

    def _run(self, conn: _Connection) -> None:
        def chunk_end() -> int | None:
            return self.n if len(conn.buffer) >= self.n else None

        got = conn.take(conn.receive_until(chunk_end, self.timeout, f"{self.n} bytes"))
        conn.capture(got)
        if not _matches(self.expected, got):
            raise _Failure(f"expected {self.expected!r}, the client sent {_show(got)}")


@dataclass(frozen=True, slots=True)
class ExpectClosed(Step):
    """Wait for the client to close the connection (EOF or reset); any byte it sends
    instead, or no close within ``timeout`` seconds, fails the script. Use it to assert
    that nothing more was sent."""

    timeout: float = 5.0

    def __post_init__(self) -> None:
        _check_seconds("timeout", self.timeout)

    def _run(self, conn: _Connection) -> None:
        deadline = time.monotonic() + self.timeout
        while not conn.buffer:
            try:
                if not conn.fill(deadline):
                    return
            except ConnectionResetError:
                conn.eof = True
                return
            except _Timeout:
                raise _Failure(
                    f"the client did not close the connection within {self.timeout:g}s"
                ) from None
        got = conn.take(len(conn.buffer))
        raise _Failure(f"expected the client to close the connection; it sent {_show(got)}")


@dataclass(frozen=True, slots=True)
class Sleep(Step):
    """Do nothing for ``seconds`` (cut short when the server is closed)."""

    seconds: float

    def __post_init__(self) -> None:
        _check_seconds("seconds", self.seconds, allow_zero=True)

    def _run(self, conn: _Connection) -> None:
        conn.pause(self.seconds)


@dataclass(frozen=True, slots=True)
class Close(Step):
    """Half-close the connection: a FIN, so the client reads EOF (on TLS without a
    close_notify). It must be the last step; the server then reads and discards what
    the client still sends until it closes, and closes too."""

    def _run(self, conn: _Connection) -> None:
        conn.shutdown_write()


@dataclass(frozen=True, slots=True)
class Reset(Step):
    """Abort the connection with a TCP RST (``SO_LINGER`` 0), so the client gets
    ``ConnectionResetError``. It must be the last step."""

    def _run(self, conn: _Connection) -> None:
        conn.reset()


@dataclass(frozen=True, slots=True)
class StartTls(Step):
    """Start TLS as the server, with the server's ``tls_context``, after the previous
    steps (say, ``Send(b"220 go ahead\\r\\n")``). Bytes the client sent after its last
    expected line and before the handshake fail the script (RFC 3207 forbids them), as
    does a handshake that fails or takes more than ``timeout`` seconds."""

    timeout: float = 5.0

    def __post_init__(self) -> None:
        _check_seconds("timeout", self.timeout)

    def _run(self, conn: _Connection) -> None:
        if conn.buffer:
            got = conn.take(len(conn.buffer))
            raise _Failure(f"the client sent {_show(got)} before the TLS handshake")
        conn.start_tls(self.timeout)


@dataclass(frozen=True, slots=True)
class Call(Step):
    """Call ``fn()`` in the server thread (an escape hatch: signal an event, check some
    state); an exception it raises fails the script."""

    fn: Callable[[], object]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Call needs a callable, not {self.fn!r}")

    def _run(self, conn: _Connection) -> None:
        self.fn()


def _check_script(
    script: Sequence[Step], tls_context: ssl.SSLContext | None, implicit_tls: bool
) -> tuple[Step, ...]:
    steps = tuple(script)
    for i, step in enumerate(steps, 1):
        if not isinstance(step, Step):
            raise TypeError(f"step {i} is not a script step: {step!r}")
        if isinstance(step, (Close, Reset)) and i != len(steps):
            raise ValueError(f"step {i} {step!r} must be the last step of its script")
        if isinstance(step, StartTls) and (tls_context is None or implicit_tls):
            raise ValueError(
                f"step {i} StartTls needs a tls_context, on a connection not already in TLS"
            )
    return steps


# ---------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """What happened on one accepted connection (a snapshot).

    ``received`` is every byte the client sent on it (plaintext, also after TLS);
    ``transcript`` the bytes each step consumed ("C") or sent ("S"), in order;
    ``captured`` what each :class:`ExpectData` and :class:`ExpectBytes` consumed.
    """

    index: int
    received: bytes
    transcript: tuple[tuple[Direction, bytes], ...]
    captured: tuple[bytes, ...]


class _Connection:
    """One accepted connection and its script's view of it: the socket, the receive
    buffer and the records. Only its own thread uses it, except :meth:`interrupt`."""

    def __init__(self, server: ScriptedServer, index: int, sock: socket.socket) -> None:
        self.server = server
        self.index = index
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False
        self.received = bytearray()
        self.transcript: list[tuple[Direction, bytes]] = []
        self.captured: list[bytes] = []
        self._fin_sent = False
        self._closed = False
        self._interrupted = False
        self._sock_lock = threading.Lock()

    # -- reading
    def fill(self, deadline: float) -> bool:
        """Receive more bytes into the buffer before ``deadline``; ``False`` at EOF.
        Raises :class:`_Timeout` at the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise _Timeout from None
        if not data:
            self.eof = True
            log.debug("connection %d: EOF from the client", self.index)
            return False
        log.debug("connection %d C: %s", self.index, _show(data))
        self.buffer += data
        self.server._on_received(self, data)
        return True

    def receive_until(self, ready: Callable[[], int | None], timeout: float, what: str) -> int:
        """Receive until ``ready()`` returns the length of a complete unit at the front
        of the buffer, and return it; EOF and the time-out fail the step."""
        deadline = time.monotonic() + timeout
        while (end := ready()) is None:
            try:
                more = self.fill(deadline)
            except _Timeout:
                raise _Failure(
                    f"timed out after {timeout:g}s waiting for {what}; "
                    f"the client sent {_show(self.buffer)}"
                ) from None
            if not more:
                raise _Failure(
                    f"the client closed the connection before {what}; it sent {_show(self.buffer)}"
                )
        return end

    def take(self, n: int) -> bytes:
        """Consume ``n`` bytes from the front of the buffer and record them."""
        got = bytes(self.buffer[:n])
        del self.buffer[:n]
        self.record("C", got)
        return got

    def capture(self, data: bytes) -> None:
        self.server._on_captured(self, data)

    # -- writing
    def send(self, data: bytes) -> None:
        self.send_raw(data)
        self.record("S", data)

    def send_raw(self, data: bytes) -> None:
        log.debug("connection %d S: %s", self.index, _show(data))
        self.sock.settimeout(_IO_TIMEOUT)
        self.sock.sendall(data)

    def record(self, direction: Direction, data: bytes) -> None:
        self.server._on_transcript(self, direction, data)

    def pause(self, seconds: float) -> None:
        if self.server._stopping.wait(seconds):
            raise _Failure("interrupted: the server was closed")

    # -- TLS and closing
    def start_tls(self, timeout: float) -> None:
        context = self.server.tls_context
        assert context is not None  # checked when the server was made
        with self._sock_lock:
            if self._interrupted:
                raise _Failure("interrupted: the server was closed")
            tls = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
            self.sock = tls
        tls.settimeout(timeout)
        try:
            tls.do_handshake()
        except TimeoutError:
            raise _Failure(f"the TLS handshake timed out after {timeout:g}s") from None
        except OSError as exc:  # ssl.SSLError included
            raise _Failure(f"the TLS handshake failed: {exc}") from exc
        log.debug("connection %d: TLS started (%s)", self.index, tls.version())

    def shutdown_write(self) -> None:
        """Send a FIN. The base socket's shutdown leaves an SSLSocket's TLS state alone,
        so what the client still sends can be read (decrypted) afterwards."""
        log.debug("connection %d: FIN", self.index)
        self._fin_sent = True
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def reset(self) -> None:
        log.debug("connection %d: RST", self.index)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def finish(self) -> None:
        """End the connection once the script is over: FIN, then read and discard until
        the client closes (so unread bytes never turn the close into a reset), then
        close. Bounded by a few seconds, and cut short by :meth:`interrupt`."""
        if self._closed:
            return
        try:
            if not self.eof:
                if not self._fin_sent:
                    self.shutdown_write()
                deadline = time.monotonic() + _IO_TIMEOUT
                while self.fill(deadline):
                    self.buffer.clear()
        except (OSError, _Timeout) as exc:
            log.debug("connection %d: closing without the client's close (%r)", self.index, exc)
        finally:
            self.close()

    def close(self) -> None:
        with self._sock_lock:
            self._closed = True
            self.sock.close()

    def interrupt(self) -> None:
        """From another thread: wake whatever the connection's thread waits for."""
        with self._sock_lock:
            self._interrupted = True
            if not self._closed:
                with contextlib.suppress(OSError):  # not connected any more: nothing to wake
                    socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def snapshot(self) -> ConnectionRecord:
        return ConnectionRecord(
            self.index, bytes(self.received), tuple(self.transcript), tuple(self.captured)
        )


# ---------------------------------------------------------------- the server
class ScriptedServer:
    """A fake SMTP server that plays ``script`` on the connection it accepts, or
    ``scripts[i]`` on the i-th connection (pass one of the two).

    ``tls_context`` (a server-side ``ssl.SSLContext``) is needed by :class:`StartTls`
    and by ``implicit_tls=True``, which starts TLS at accept. ``host`` must be a
    loopback address (``127.0.0.1`` or ``::1``); the port is chosen free at
    :meth:`start`. ``accept_timeout`` bounds the wait for each connection (from the
    start, then from the previous accept). A connection beyond the scripts is closed at
    once and counts as a failure, unless ``extra_connections="close"``.
    """

    def __init__(
        self,
        script: Sequence[Step] | None = None,
        *,
        scripts: Sequence[Sequence[Step]] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        host: str = "127.0.0.1",
        accept_timeout: float = 5.0,
        extra_connections: Literal["fail", "close"] = "fail",
    ) -> None:
        if (script is None) == (scripts is None):
            raise TypeError("pass either script or scripts, not both nor neither")
        chosen = [script] if script is not None else list(scripts or ())
        if not chosen:
            raise ValueError("scripts must hold at least one script")
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls=True needs a tls_context")
        self._scripts = [_check_script(s, tls_context, implicit_tls) for s in chosen]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"host must be a loopback address (127.0.0.1 or ::1), not {host!r}")
        _check_seconds("accept_timeout", accept_timeout)
        if extra_connections not in ("fail", "close"):
            raise ValueError(
                f'extra_connections must be "fail" or "close", not {extra_connections!r}'
            )
        self.host = host
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.accept_timeout = accept_timeout
        self.extra_connections = extra_connections
        self._port: int | None = None
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Guards everything below, which the server threads update and the test reads.
        self._state = threading.Condition()
        self._conns: list[_Connection] = []
        self._conn_threads: list[threading.Thread] = []
        self._accepted = 0
        self._unfinished = len(self._scripts)
        self._positions: dict[int, str] = {}
        self._failures: list[ScriptError] = []
        self._reported = 0
        self._received = bytearray()
        self._transcript: list[tuple[Direction, bytes]] = []
        self._captured: list[bytes] = []

    # -- life cycle
    def start(self) -> ScriptedServer:
        """Listen on ``host`` at a free port and start serving; returns the server."""
        if self._listener is not None:
            raise RuntimeError("the server was already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, 0), family=family, backlog=16)
        self._port = self._listener.getsockname()[1]
        log.debug("scripted server listening on %s port %d", self.host, self._port)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"scripted-smtp-{self._port}", daemon=False
        )
        self._accept_thread.start()
        return self

    def wait(self, timeout: float = 10.0) -> None:
        """Wait until every script has finished, and raise the first failure.

        Raises :class:`ScriptError` when a script failed, or when they did not all
        finish within ``timeout`` seconds (saying where each one was).
        """
        with self._state:
            self._state.wait_for(lambda: not self._unfinished or self._failures, timeout)
            if self._failures:
                self._reported = len(self._failures)
                raise self._failures[0]
            if self._unfinished:
                where = "; ".join(
                    f"connection {i} at {pos}" for i, pos in sorted(self._positions.items())
                )
                raise ScriptError(
                    f"{self._unfinished} script(s) did not finish within {timeout:g}s"
                    f" ({where or f'{self._accepted} connection(s) accepted'})"
                )

    def close(self) -> None:
        """Stop: close the listener, interrupt every connection and join every thread.

        A script still running is interrupted, which is recorded as its failure. Safe to
        call more than once.
        """
        self._stopping.set()
        if self._accept_thread is not None:
            # First: once the accept loop has ended, no connection can start any more.
            self._join(self._accept_thread)
        with self._state:
            conns, threads = list(self._conns), list(self._conn_threads)
        for conn in conns:
            conn.interrupt()
        for thread in threads:
            self._join(thread)

    def _join(self, thread: threading.Thread) -> None:
        thread.join(_JOIN_TIMEOUT)
        if thread.is_alive():
            self._fail(ScriptError(f"thread {thread.name} did not stop within {_JOIN_TIMEOUT:g}s"))

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if exc_type is None:
            with self._state:
                unreported = self._failures[self._reported :]
                self._reported = len(self._failures)
            if unreported:
                raise unreported[0]

    # -- what happened
    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``socket.create_connection``."""
        return self.host, self.port

    @property
    def connections(self) -> int:
        """How many connections were accepted (extra ones included)."""
        with self._state:
            return self._accepted

    @property
    def received(self) -> bytes:
        """Every byte received, from every connection in arrival order (plaintext, also
        after TLS)."""
        with self._state:
            return bytes(self._received)

    @property
    def transcript(self) -> list[tuple[Direction, bytes]]:
        """``("C", bytes)`` for what each step consumed from the client and ``("S",
        bytes)`` for what each step sent (one entry per chunk with ``segments=True``),
        from every connection, in order."""
        with self._state:
            return list(self._transcript)

    @property
    def captured(self) -> list[bytes]:
        """What each :class:`ExpectData` and :class:`ExpectBytes` consumed, in order."""
        with self._state:
            return list(self._captured)

    @property
    def records(self) -> list[ConnectionRecord]:
        """A record of each connection that ran a script, in accept order."""
        with self._state:
            return [conn.snapshot() for conn in self._conns]

    @property
    def failures(self) -> list[ScriptError]:
        """Every failure recorded so far, first first."""
        with self._state:
            return list(self._failures)

    # -- server threads
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            for index, script in enumerate(self._scripts, 1):
                sock = self._accept(listener, time.monotonic() + self.accept_timeout)
                if sock is None:
                    reason = (
                        "the server was closed"
                        if self._stopping.is_set()
                        else f"it did not come within {self.accept_timeout:g}s"
                    )
                    with self._state:
                        self._unfinished -= len(self._scripts) - index + 1
                    self._fail(ScriptError(f"no connection {index} to run its script: {reason}"))
                    return
                self._serve_later(index, sock, script)
            while (sock := self._accept(listener, None)) is not None:
                self._refuse_extra(sock)
        finally:
            listener.close()

    def _accept(self, listener: socket.socket, deadline: float | None) -> socket.socket | None:
        """The next connection, or ``None`` at ``deadline`` or when stopping."""
        while not self._stopping.is_set():
            wait = _POLL_INTERVAL
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return None
            listener.settimeout(wait)
            try:
                sock, peer = listener.accept()
            except TimeoutError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._state:
                self._accepted += 1
            log.debug("accepted connection %d from %s", self._accepted, peer)
            return sock
        return None

    def _serve_later(self, index: int, sock: socket.socket, script: tuple[Step, ...]) -> None:
        conn = _Connection(self, index, sock)
        thread = threading.Thread(
            target=self._serve,
            args=(conn, script),
            name=f"scripted-smtp-{self.port}-{index}",
            daemon=False,
        )
        with self._state:
            self._conns.append(conn)
            self._conn_threads.append(thread)
            self._positions[index] = "accept"
        thread.start()

    def _refuse_extra(self, sock: socket.socket) -> None:
        with self._state:
            count = self._accepted
        sock.close()
        if self.extra_connections == "fail":
            self._fail(
                ScriptError(
                    f"unexpected connection {count}: there are only {len(self._scripts)} "
                    "script(s) (pass extra_connections='close' to allow more)",
                    connection=count,
                )
            )
        else:
            log.debug("closed extra connection %d", count)

    def _serve(self, conn: _Connection, script: tuple[Step, ...]) -> None:
        number, where = 0, "the implicit TLS handshake"
        try:
            if self.implicit_tls:
                conn.start_tls(_HANDSHAKE_TIMEOUT)
            for number, step in enumerate(script, 1):
                where = f"step {number} {step!r}"
                with self._state:
                    self._positions[conn.index] = where
                if self._stopping.is_set():
                    raise _Failure("interrupted: the server was closed")
                log.debug("connection %d: %s", conn.index, where)
                step._run(conn)
            log.debug("connection %d: script finished", conn.index)
        except Exception as exc:
            self._fail(self._script_error(conn, number, where, exc))
        finally:
            with self._state:
                self._positions.pop(conn.index, None)
                self._unfinished -= 1
                self._state.notify_all()
            conn.finish()

    def _script_error(
        self, conn: _Connection, number: int, where: str, exc: Exception
    ) -> ScriptError:
        if self._stopping.is_set():
            detail = "interrupted: the server was closed before the script finished"
        elif isinstance(exc, _Failure):
            detail = str(exc)
        else:
            detail = f"{type(exc).__name__}: {exc}"
        err = ScriptError(
            f"connection {conn.index}, {where}: {detail}", connection=conn.index, step=number
        )
        err.__cause__ = exc.__cause__ if isinstance(exc, _Failure) else exc
        return err

    def _fail(self, err: ScriptError) -> None:
        log.debug("script failure: %s", err)
        with self._state:
            self._failures.append(err)
            self._state.notify_all()

    def _on_received(self, conn: _Connection, data: bytes) -> None:
        with self._state:
            conn.received += data
            self._received += data

    def _on_transcript(self, conn: _Connection, direction: Direction, data: bytes) -> None:
        with self._state:
            conn.transcript.append((direction, data))
            self._transcript.append((direction, data))

    def _on_captured(self, conn: _Connection, data: bytes) -> None:
        with self._state:
            conn.captured.append(data)
            self._captured.append(data)
