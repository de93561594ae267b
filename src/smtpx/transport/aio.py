"""``smtpx.AsyncSmtpTransport``: the asyncio transport (uvloop-friendly), pooled.

The same engine, builders and pool policy as :class:`smtpx.SmtpTransport`; ``send``,
``send_raw`` and ``test_connection`` are coroutines. One transport is safe to share
across any number of tasks: each message holds its connection for its whole
transaction, so the commands of two messages never interleave on a connection.
smtpx never installs an event loop policy; run it on asyncio or under ``uvloop.run()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from smtpx.config import Envelope
from smtpx.errors import DeliveryUnknownError, NetworkError, SmtpError
from smtpx.protocol.session import SendResult, Session

from ._async_conn import AsyncConnection
from ._async_pool import AsyncPool, AsyncPooledConnection
from .builder import BuilderConstructors, TransportSettings
from .message_input import body_of, position, prepare_message, rewind
from .policy import retryable

__all__ = ["AsyncSmtpTransport"]

log = logging.getLogger("smtpx")


class AsyncSmtpTransport(BuilderConstructors):
    """Sends mail through one relay on the running event loop.

    Make one with a builder (``AsyncSmtpTransport.relay(host)...build()``) and share it
    between tasks. Close it with ``await transport.aclose()`` or ``async with``.
    """

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self._session_config = settings.session_config()
        self._ssl_context = settings.ssl_context()
        self._pool = AsyncPool(self._open, settings.pool) if settings.pool is not None else None
        self._closed = False

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<AsyncSmtpTransport {s.host}:{s.port} tls={s.tls.mode.value} "
            f"pool={self._pool!r}{' closed' if self._closed else ''}>"
        )

    # ------------------------------------------------------------------ connections
    async def _open(self) -> AsyncPooledConnection:
        s = self.settings
        conn = await AsyncConnection.connect(
            s.host,
            s.port,
            s.timeouts,
            ssl_context=self._ssl_context,
            server_hostname=s.server_hostname(),
            implicit_tls=s.tls.is_implicit,
        )
        session = Session(self._session_config, tls_active=s.tls.is_implicit)
        try:
            await conn.run(session.open())
        except BaseException:
            conn.abort()
            raise
        return AsyncPooledConnection(conn, session, time.monotonic())

    async def _acquire(self, *, fresh: bool = False) -> AsyncPooledConnection:
        if self._closed:
            raise NetworkError("the transport is closed")
        if self._pool is not None:
            return await self._pool.acquire(fresh=fresh)
        return await self._open()

    async def _release(self, pooled: AsyncPooledConnection) -> None:
        if self._pool is not None:
            await self._pool.release(pooled)
        else:
            await pooled.close(polite=True)

    # ------------------------------------------------------------------ sending
    async def send(self, message: Any) -> SendResult:
        """Send a message (an :class:`email.message.EmailMessage`, or an smtpx message);
        the envelope comes from its headers and ``Bcc`` is not transmitted."""
        envelope, data = prepare_message(message)
        return await self._send(envelope, data)

    async def send_raw(self, envelope: Envelope, data: Any) -> SendResult:
        """Send ``data`` (bytes-like, a binary file, or an iterable of bytes — streamed,
        never read whole) to the envelope's recipients, as it is."""
        if not isinstance(envelope, Envelope):
            raise TypeError(f"send_raw() takes an smtpx.Envelope, not {type(envelope).__name__}")
        return await self._send(envelope, data)

    async def _send(self, envelope: Envelope, data: Any) -> SendResult:
        body = body_of(data)
        start = position(data)
        attempt = 0
        while True:
            pooled: AsyncPooledConnection | None = None
            try:
                pooled = await self._acquire(fresh=attempt > 0)
                procedure = pooled.session.send(envelope, body)
                result: SendResult = await pooled.conn.run(procedure)
            except SmtpError as exc:
                if pooled is not None:
                    await self._release(pooled)
                if retryable(exc, attempt=attempt) and rewind(body, data, start):
                    log.info("retrying on a fresh connection after: %s", exc)
                    attempt += 1
                    continue
                raise
            except asyncio.CancelledError as exc:
                if pooled is None:
                    raise
                pooled.session.broken()
                in_doubt = pooled.session.last_in_doubt
                await self._release(pooled)
                if in_doubt:
                    raise DeliveryUnknownError(
                        "the send was cancelled after the end of the message data was "
                        "sent: the message may or may not have been delivered"
                    ) from exc
                raise
            except BaseException:
                if pooled is not None:
                    pooled.session.broken()
                    await self._release(pooled)
                raise
            pooled.record.messages += 1
            await self._release(pooled)
            return result

    async def send_many(
        self, messages: Iterable[Any], *, concurrency: int | None = None
    ) -> AsyncIterator[SendResult | SmtpError]:
        """Send the messages concurrently (up to ``concurrency`` at once: by default the
        pool's ``max_size``) and yield one outcome per message, in the messages' order:
        its :class:`SendResult`, or the :class:`SmtpError` that stopped it."""
        limit = concurrency or (self.settings.pool.max_size if self.settings.pool else 1)
        # At most `limit` sends in flight; None marks the end.
        window: asyncio.Queue[asyncio.Future[SendResult] | None] = asyncio.Queue(limit)
        it = iter(messages)

        async def feed() -> None:
            for message in it:
                await window.put(asyncio.ensure_future(self.send(message)))
            await window.put(None)

        feeder = asyncio.ensure_future(feed())
        try:
            while True:
                task = await window.get()
                if task is None:
                    break
                try:
                    yield await task
                except SmtpError as exc:
                    yield exc
        finally:
            feeder.cancel()
            while not window.empty():
                pending = window.get_nowait()
                if pending is not None:
                    pending.cancel()

    async def test_connection(self) -> bool:
        """True when a connection can be made (or reused) and the server answers NOOP."""
        try:
            pooled = await self._acquire()
        except SmtpError as exc:
            log.info("test_connection: %s", exc)
            return False
        try:
            await pooled.conn.run(pooled.session.noop())
            return True
        except SmtpError as exc:
            log.info("test_connection: %s", exc)
            return False
        finally:
            await self._release(pooled)

    # ------------------------------------------------------------------ lifetime
    async def aclose(self) -> None:
        """Close the pool's connections (QUIT first); later sends raise."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            await self._pool.close()

    async def __aenter__(self) -> AsyncSmtpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
