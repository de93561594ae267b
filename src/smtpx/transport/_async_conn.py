"""The asyncio driver: carries out the engine's requests on one connection.

Built on asyncio's Protocol/Transport API, not streams: ``data_received`` collects bytes
for the engine, writes go through ``transport.writelines`` with flow control
(``pause_writing``/``resume_writing``), so a large body never sits whole in a buffer,
and STARTTLS uses ``loop.start_tls`` after the plaintext received so far is discarded.
Every read and every write is bounded by its phase's deadline. Works on the default
loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from smtpx.errors import NetworkError, SmtpError, SmtpTimeoutError, TlsError
from smtpx.protocol.ops import NextChunk, Read, StartTls, Write

__all__ = ["AsyncConnection"]

#: Groups up to this size go out with writelines() (one send); larger ones chunk by chunk.
_WRITELINES_MAX = 64 * 1024
#: In a larger group, consecutive chunks are joined into writes of up to this size: each
#: write() may be a system call, which costs more than copying a few tens of KiB.
_JOIN_MAX = 256 * 1024


class _Protocol(asyncio.Protocol):
    """Collects received bytes and wakes one reader; tracks write flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self.closed = False
        self.error: BaseException | None = None

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # -- used by the driver
    @property
    def has_data(self) -> bool:
        return bool(self._chunks)

    def discard(self) -> int:
        """Drop what was received and not yet read (STARTTLS)."""
        dropped = sum(len(c) for c in self._chunks)
        self._chunks.clear()
        return dropped

    async def read(self, deadline: float) -> bytes:
        """Everything received so far, waiting until the deadline for at least one byte;
        ``b""`` at end of stream."""
        await self.wait_data(deadline)
        if not self._chunks:
            return b""
        if len(self._chunks) == 1:
            return self._chunks.popleft()
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data

    async def wait_data(self, deadline: float) -> None:
        """Wait until something was received (or the stream ended), up to the deadline
        (TimeoutError after it); reads nothing."""
        if not self._chunks and not self.closed:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await _until(waiter, deadline, loop)
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def drain(self, timeout: float) -> None:
        """Wait while the transport's buffer is above its high-water mark; each wait for
        progress is bounded by ``timeout``."""
        loop = asyncio.get_running_loop()
        while self._paused and not self.closed:
            self._drain = loop.create_future()
            await _until(self._drain, loop.time() + timeout, loop)
            self._drain = None


async def _until(
    future: asyncio.Future[None], deadline: float, loop: asyncio.AbstractEventLoop
) -> None:
    """Await ``future`` until ``deadline`` (loop time); TimeoutError after it."""
    timer = loop.call_at(deadline, _expire, future)
    try:
        await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class AsyncConnection:
    """One TCP (optionally TLS) connection on the running event loop."""

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _Protocol,
        timeouts: Any,
        *,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        #: The task finishing a procedure whose caller was cancelled (see :meth:`run`).
        self.detached: asyncio.Future[Any] | None = None
        self.timeouts = timeouts
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._deadline = 0.0
        self.created = time.monotonic()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        timeouts: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        implicit_tls: bool = False,
    ) -> AsyncConnection:
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if implicit_tls:
            if ssl_context is None:
                raise TlsError("TLS was requested but no TLS parameters are configured")
            tls = {
                "ssl": ssl_context,
                "server_hostname": server_hostname,
                "ssl_handshake_timeout": timeouts.connect,
            }
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(_Protocol, host, port, **tls), timeouts.connect
            )
        except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct before 3.11
            raise SmtpTimeoutError(
                f"connecting to {host}:{port} timed out after {timeouts.connect:g} s",
                phase="connect",
            ) from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TlsError(f"the TLS handshake failed: {exc}") from exc
        except OSError as exc:
            raise NetworkError(f"cannot connect to {host}:{port}: {exc}") from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket  # noqa: PLC0415 - only for the option constant

            with contextlib.suppress(OSError):  # pragma: no cover - not a TCP socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(
            transport,
            protocol,
            timeouts,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
        )

    # ------------------------------------------------------------------ running procedures
    async def run(
        self,
        procedure: Any,
        *,
        detach: Callable[[], bool] | None = None,
        resume: tuple[Any, BaseException | None] = (None, None),
    ) -> Any:
        """Drive an engine procedure to its end; return its result. A cancellation closes
        the connection (the engine marks its session broken) — unless ``detach()`` says
        otherwise when it comes: then the procedure is finished in a task of its own
        (:attr:`detached`) and the cancellation goes on to the caller. ``resume`` is the
        value (or error) to carry on with, for a procedure already started."""
        send_value, error = resume
        while True:
            try:
                op = procedure.throw(error) if error is not None else procedure.send(send_value)
            except StopIteration as stop:
                return stop.value
            send_value, error = None, None
            try:
                if isinstance(op, Read):
                    send_value = await self._read(op)
                elif isinstance(op, Write):
                    await self._write(op.chunks, op.phase)
                elif isinstance(op, StartTls):
                    await self._start_tls()
                elif isinstance(op, NextChunk):
                    try:
                        send_value = await anext(op.source, None)
                    except Exception as exc:  # the caller's iterator: thrown into the
                        error = exc  # engine, which abandons the DATA and the connection
                else:  # pragma: no cover - the engine yields nothing else
                    raise TypeError(f"unknown request {op!r}")
            except SmtpError as exc:
                error = exc
            except asyncio.CancelledError:
                if detach is not None and isinstance(op, Read | Write) and detach():
                    self.detached = asyncio.ensure_future(self._finish(procedure, op))
                    raise
                self.abort()
                procedure.close()  # the engine's cleanup runs; its session is broken
                raise

    async def _finish(self, procedure: Any, interrupted: Read | Write) -> Any:
        """Finish a detached procedure: the interrupted request first (a write was
        queued whole before its wait for the buffer to drain: nothing to redo), then the
        rest."""
        value: Any = None
        error: BaseException | None = None
        try:
            if isinstance(interrupted, Read):
                value = await self._read(Read(interrupted.phase, new_reply=False))
        except SmtpError as exc:
            error = exc
        return await self.run(procedure, resume=(value, error))

    async def _read(self, op: Read) -> bytes:
        loop = asyncio.get_running_loop()
        if op.new_reply:
            self._deadline = loop.time() + self.timeouts.for_phase(op.phase)
        try:
            data = await self.protocol.read(self._deadline)
        except TimeoutError as exc:
            raise SmtpTimeoutError(
                f"timed out waiting for a reply ({op.phase} time-out, "
                f"{self.timeouts.for_phase(op.phase):g} s)",
                phase=op.phase,
            ) from exc
        if not data and self.protocol.error is not None:
            error = self.protocol.error
            if isinstance(error, ssl.SSLError):
                raise TlsError(f"TLS failure while reading: {error}") from error
            raise NetworkError(f"reading from the server failed: {error}") from error
        return data

    async def _write(self, chunks: Sequence[bytes | memoryview], phase: str) -> None:
        if self.protocol.closed or self.transport.is_closing():
            raise NetworkError("the connection is closed")
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        elif sum(map(len, chunks)) > _WRITELINES_MAX:
            # write() applies flow control (pause_writing) after each chunk; writelines()
            # does not on CPython 3.12-3.13, which would let a large body pile up.
            run: list[bytes | memoryview] = []
            size = 0
            for chunk in chunks:
                if run and size + len(chunk) > _JOIN_MAX:
                    self.transport.write(run[0] if len(run) == 1 else b"".join(run))
                    run, size = [], 0
                run.append(chunk)
                size += len(chunk)
            self.transport.write(run[0] if len(run) == 1 else b"".join(run))
        else:
            self.transport.writelines(chunks)  # a small pipelined group: one system call
        try:
            await self.protocol.drain(self.timeouts.for_phase(phase))
        except TimeoutError as exc:
            raise SmtpTimeoutError(
                f"timed out writing ({phase} time-out, {self.timeouts.for_phase(phase):g} s)",
                phase=phase,
            ) from exc
        error = self.protocol.error  # the connection may have died while we waited
        if error is not None:
            raise NetworkError(f"writing to the server failed: {error}") from error

    async def _start_tls(self) -> None:
        if self._ssl_context is None:
            raise TlsError("TLS was requested but no TLS parameters are configured")
        self.protocol.discard()  # plaintext after the 220 is not to be trusted
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self.transport,
                self.protocol,
                self._ssl_context,
                server_hostname=self._server_hostname,
                ssl_handshake_timeout=self.timeouts.command,
            )
        except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct before 3.11
            raise SmtpTimeoutError("the TLS handshake timed out", phase="command") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TlsError(f"the TLS handshake failed: {exc}") from exc
        except (OSError, ConnectionError) as exc:
            raise NetworkError(f"the connection failed during the TLS handshake: {exc}") from exc
        if transport is None:  # pragma: no cover - only when the connection is gone
            raise NetworkError("the connection closed during the TLS handshake")
        self.transport = transport

    # ------------------------------------------------------------------ liveness
    async def wait_data(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds; TimeoutError after) until the server sent
        something or closed; reads nothing."""
        loop = asyncio.get_running_loop()
        await self.protocol.wait_data(loop.time() + timeout)

    def has_pending_data(self) -> bool:
        """True when the server sent something (or closed) while the connection idled."""
        return self.protocol.has_data or self.protocol.closed

    def abort(self) -> None:
        self.transport.abort()

    def close(self) -> None:
        self.transport.close()
