"""``smtpx.AsyncSmtpTransport``: the asyncio transport (uvloop-friendly), pooled.

The same engine, builders and pool policy as :class:`smtpx.SmtpTransport`; ``send``,
``send_raw`` and ``test_connection`` are coroutines. One transport is safe to share
across any number of tasks. While the pool can give each sender a connection, it does;
once it is at its cap, concurrent sends share connections with PIPELINING and
CHUNKING, a window of transactions in flight on each (:mod:`._lanes`). Each message's
commands are queued whole, so two messages never interleave on a connection. smtpx never
installs an event loop policy; run it on asyncio or under ``uvloop.run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Iterable
from types import TracebackType
from typing import Any

from smtpx.config import Envelope
from smtpx.errors import InvalidInputError, NetworkError, SmtpError
from smtpx.protocol.session import SendResult, Session, Stream

from ._async_conn import AsyncConnection
from ._async_pool import AsyncPool, AsyncPooledConnection
from ._bulk import LATER, Acquire, Emit, Fatal, Pull, Run, Source, bulk
from ._lanes import Lanes
from .builder import BuilderConstructors, TransportSettings, window_depth
from .message_input import body_of, position, prepare_message, rewind
from .policy import retryable

__all__ = ["AsyncSmtpTransport"]

log = logging.getLogger("smtpx")

#: A sender's pull that must wait for the consumer to catch up.
_WAIT = object()


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
        self._lanes = Lanes(
            self._acquire,
            self._release,
            self._pool.can_serve_now if self._pool is not None else lambda: True,
            settings.window if settings.pipelining else 1,
            settings.pool,
        )

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
        """Send ``data`` (bytes-like, a binary file, an iterable or an asynchronous
        iterable of bytes — streamed, never read whole) to the envelope's recipients, as
        it is. A streamed body cannot be retried unless it is a seekable file."""
        if not isinstance(envelope, Envelope):
            raise TypeError(f"send_raw() takes an smtpx.Envelope, not {type(envelope).__name__}")
        return await self._send(envelope, data)

    async def _send(self, envelope: Envelope, data: Any) -> SendResult:
        body = body_of(data, asynchronous=True)
        start = position(data)
        # Messages in memory share connections with other concurrent sends, a window of
        # transactions in flight on each; a streamed one takes a connection of its own
        # (should its source fail, only its own connection is dropped).
        shared = not isinstance(body, Stream)
        attempt = 0
        while True:
            if self._closed:
                raise NetworkError("the transport is closed")
            try:
                return await self._lanes.send(envelope, body, fresh=attempt > 0, shared=shared)
            except SmtpError as exc:
                if retryable(exc, attempt=attempt) and rewind(body, data, start):
                    log.info("retrying on a fresh connection after: %s", exc)
                    attempt += 1
                    continue
                raise

    async def send_many(
        self,
        messages: Iterable[Any],
        *,
        concurrency: int | None = None,
        window: int | None = None,
    ) -> AsyncGenerator[SendResult | SmtpError, None]:
        """Send the messages (smtpx or standard-library messages, as :meth:`send` takes,
        or ``(Envelope, data)`` pairs, as :meth:`send_raw` takes) over up to
        ``concurrency`` connections at once (by default
        the pool's ``max_size``) and yield one outcome per message, in the messages'
        order: its :class:`SendResult`, or the :class:`SmtpError` that stopped it.

        Each connection keeps up to ``window`` transactions in flight (the builder's
        ``pipeline_window``, 8 by default) when the server offers PIPELINING. A message
        whose send failed before the end of its data is tried once more on a fresh
        connection. Stopping early first collects the answers to the messages already
        sent; cancelling drops the connections.
        """
        depth = window_depth(self.settings.window if window is None else window)
        pool = self.settings.pool
        workers = concurrency if concurrency is not None else (pool.max_size if pool else 1)
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"concurrency must be an int, not {type(workers).__name__}")
        if workers < 1:
            raise InvalidInputError(f"concurrency must be at least 1, not {workers}")
        source = Source(messages)
        outcomes: dict[int, Any] = {}
        cursor = 0  # the next outcome to yield
        # How far ahead of the consumer the senders may run, so a slow consumer or one
        # stalled connection cannot make finished outcomes pile up without bound.
        ahead = 2 * workers * depth
        changed = asyncio.Event()

        def pull(idle: bool, most: int) -> Any:
            room = ahead - (source.count - cursor)
            if source.done or room > 0:
                return source.pull(min(most, max(room, 1)))
            return _WAIT if idle else LATER

        async def sender() -> None:
            requests = bulk(depth, pool, asynchronous=True)
            held: AsyncPooledConnection | None = None
            value: Any = None
            error: SmtpError | None = None
            try:
                while True:
                    try:
                        request = requests.throw(error) if error else requests.send(value)
                    except StopIteration:
                        return
                    value, error = None, None
                    try:
                        if isinstance(request, Run):
                            value = await request.pooled.conn.run(request.procedure)
                        elif isinstance(request, Pull):
                            value = pull(request.idle, request.most)
                            while value is _WAIT:
                                changed.clear()
                                await changed.wait()
                                value = pull(request.idle, request.most)
                        elif isinstance(request, Emit):
                            outcomes.update(request.outcomes)
                            changed.set()
                        elif isinstance(request, Acquire):
                            held = value = await self._acquire(fresh=request.fresh)
                        else:
                            held = None
                            await self._release(request.pooled)
                    except SmtpError as exc:
                        error = exc
            finally:
                requests.close()
                if held is not None:
                    await self._finish(held)

        tasks = [asyncio.ensure_future(sender()) for _ in range(workers)]
        for task in tasks:
            task.add_done_callback(lambda _: changed.set())
        try:
            while True:
                if cursor in outcomes:
                    outcome = outcomes.pop(cursor)
                    cursor += 1
                    changed.set()
                    if isinstance(outcome, Fatal):
                        raise outcome.error
                    yield outcome
                    continue
                failed = next((t for t in tasks if t.done() and t.exception()), None)
                if failed is not None:
                    failed.result()  # raises the sender's error
                if all(t.done() for t in tasks):
                    return
                changed.clear()
                await changed.wait()
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        finally:
            source.done = True  # stopped early: no more messages; finish those sent
            changed.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _finish(self, pooled: AsyncPooledConnection) -> None:
        """Collect what is still in flight on a connection (its messages were sent),
        then give it back."""
        try:
            while pooled.session.in_flight and pooled.session.usable:
                with contextlib.suppress(SmtpError):
                    await pooled.conn.run(pooled.session.collect())
        except BaseException:
            pooled.session.broken()
            raise
        finally:
            if pooled.session.in_flight:
                pooled.session.broken()
            await self._release(pooled)

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
