"""The blocking-socket driver: carries out the engine's requests on one connection.

It owns the socket and the clock, nothing else: every protocol decision is the engine's
(:mod:`smtpx.protocol.session`). OS errors become smtpx errors here, and only here, and
are thrown into the running procedure so the engine can say what they mean.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

from smtpx.errors import NetworkError, SmtpError, SmtpTimeoutError, TlsError
from smtpx.protocol.ops import Read, StartTls, Write

__all__ = ["SyncConnection"]

#: Bytes asked of the kernel per read: large enough for a burst of pipelined replies.
READ_SIZE = 65536
#: sendmsg takes at most this many buffers (IOV_MAX is 1024 on Linux and macOS).
MAX_IOV = 1024


class SyncConnection:
    """One TCP (optionally TLS) connection, driven by engine procedures."""

    def __init__(
        self,
        sock: socket.socket,
        timeouts: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.sock: socket.socket = sock
        self.timeouts = timeouts
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._deadline = 0.0
        self.created = time.monotonic()
        # The socket stays non-blocking; waits go through poll() with the deadline left,
        # so no time-out is set on the socket (two syscalls per change) per reply.
        sock.setblocking(False)
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        timeouts: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        implicit_tls: bool = False,
    ) -> SyncConnection:
        """Open a connection (each resolved address in turn) within the connect time-out;
        with ``implicit_tls``, the handshake is part of connecting."""
        deadline = time.monotonic() + timeouts.connect
        try:
            sock = socket.create_connection((host, port), timeout=timeouts.connect)
        except TimeoutError as exc:
            raise SmtpTimeoutError(
                f"connecting to {host}:{port} timed out after {timeouts.connect:g} s",
                phase="connect",
            ) from exc
        except OSError as exc:
            raise NetworkError(f"cannot connect to {host}:{port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(sock, timeouts, ssl_context=ssl_context, server_hostname=server_hostname)
        if implicit_tls:
            try:
                conn._handshake(deadline)
            except BaseException:
                conn.close()
                raise
        return conn

    # ------------------------------------------------------------------ running procedures
    def run(self, procedure: Any) -> Any:
        """Drive an engine procedure to its end; return its result."""
        send_value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = procedure.throw(error) if error is not None else procedure.send(send_value)
            except StopIteration as stop:
                return stop.value
            send_value, error = None, None
            try:
                if isinstance(op, Read):
                    send_value = self._read(op)
                elif isinstance(op, Write):
                    self._write(op.chunks, op.phase)
                elif isinstance(op, StartTls):
                    self._handshake(time.monotonic() + self.timeouts.command)
                else:  # pragma: no cover - the engine yields nothing else
                    raise TypeError(f"unknown request {op!r}")
            except SmtpError as exc:
                error = exc

    def _read(self, op: Read) -> bytes:
        now = time.monotonic()
        if op.new_reply:
            self._deadline = now + self.timeouts.for_phase(op.phase)
        sock = self.sock
        try:
            while True:
                # A TLS socket may hold decrypted bytes the kernel no longer shows.
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    self._wait(select.POLLIN, self._deadline, op.phase, "waiting for a reply")
                try:
                    return sock.recv(READ_SIZE)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue  # a partial TLS record, or a spurious wake-up
        except SmtpError:  # our own time-out (a TimeoutError, so an OSError too)
            raise
        except ssl.SSLError as exc:
            raise TlsError(f"TLS failure while reading: {exc}") from exc
        except OSError as exc:
            raise NetworkError(f"reading from the server failed: {exc}") from exc

    def _write(self, chunks: Sequence[bytes | memoryview], phase: str) -> None:
        """Write every chunk; the phase's time-out bounds each wait without progress."""
        progress = self.timeouts.for_phase(phase)
        sock = self.sock
        try:
            if isinstance(sock, ssl.SSLSocket):  # no sendmsg on TLS sockets
                for chunk in chunks:
                    view = memoryview(chunk).cast("B")
                    while view:
                        try:
                            view = view[sock.send(view) :]
                        except (BlockingIOError, ssl.SSLWantWriteError):
                            self._wait(select.POLLOUT, time.monotonic() + progress, phase)
                        except ssl.SSLWantReadError:
                            self._wait(select.POLLIN, time.monotonic() + progress, phase)
                return
            views = [memoryview(c).cast("B") for c in chunks if len(c)]
            while views:
                try:
                    sent = sock.sendmsg(views[:MAX_IOV])
                except BlockingIOError:
                    self._wait(select.POLLOUT, time.monotonic() + progress, phase)
                    continue
                while views and sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                if sent:
                    views[0] = views[0][sent:]
        except SmtpError:
            raise
        except ssl.SSLError as exc:
            raise TlsError(f"TLS failure while writing: {exc}") from exc
        except OSError as exc:
            raise NetworkError(f"writing to the server failed: {exc}") from exc

    def _wait(self, events: int, deadline: float, phase: str, doing: str = "writing") -> None:
        """Block until the socket is ready for ``events`` or the deadline passes."""
        poller = self._poller
        poller.modify(self.sock, events)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(phase, doing)
            if poller.poll(remaining * 1000):
                return

    def _handshake(self, deadline: float) -> None:
        if self._ssl_context is None:
            raise TlsError("TLS was requested but no TLS parameters are configured")
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            self._poller.unregister(self.sock)
            self.sock = self._ssl_context.wrap_socket(
                self.sock, server_hostname=self._server_hostname
            )
            self.sock.setblocking(False)
            self._poller.register(self.sock, select.POLLIN)
        except TimeoutError as exc:
            raise SmtpTimeoutError("the TLS handshake timed out", phase="connect") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TlsError(f"the TLS handshake failed: {exc}") from exc
        except OSError as exc:
            raise NetworkError(f"the connection failed during the TLS handshake: {exc}") from exc

    def _timeout(self, phase: str, doing: str) -> SmtpTimeoutError:
        return SmtpTimeoutError(
            f"timed out {doing} ({phase} time-out, {self.timeouts.for_phase(phase):g} s)",
            phase=phase,
        )

    # ------------------------------------------------------------------ liveness
    def has_pending_data(self) -> bool:
        """True when the server sent something (or closed) while we were idle."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            self._poller.modify(self.sock, select.POLLIN)
            return bool(self._poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):  # pragma: no cover - closing a broken socket
            self.sock.close()
