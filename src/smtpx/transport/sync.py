"""``smtpx.SmtpTransport``: the blocking transport, pooled and thread-safe."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from smtpx.config import Envelope
from smtpx.errors import NetworkError, SmtpError
from smtpx.protocol.session import SendResult, Session

from ._bulk import Acquire, Emit, Fatal, Pull, Run, Source, bulk
from ._sync_conn import SyncConnection
from ._sync_pool import PooledConnection, SyncPool
from .builder import BuilderConstructors, TransportSettings, window_depth
from .message_input import body_of, position, prepare_message, rewind
from .policy import retryable

__all__ = ["SmtpTransport"]

log = logging.getLogger("smtpx")


class SmtpTransport(BuilderConstructors):
    """Sends mail through one relay over blocking sockets.

    Make one with a builder (``SmtpTransport.relay(host)...build()``) and share it: it is
    safe to use from many threads. With a pool (the default), connections are reused up
    to the pool's limits; with ``pool(None)``, each message gets its own connection.
    """

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self._session_config = settings.session_config()
        self._ssl_context = settings.ssl_context()
        self._pool = SyncPool(self._open, settings.pool) if settings.pool is not None else None
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<SmtpTransport {s.host}:{s.port} tls={s.tls.mode.value} "
            f"pool={self._pool!r}{' closed' if self._closed else ''}>"
        )

    # ------------------------------------------------------------------ connections
    def _open(self) -> PooledConnection:
        s = self.settings
        conn = SyncConnection.connect(
            s.host,
            s.port,
            s.timeouts,
            ssl_context=self._ssl_context,
            server_hostname=s.server_hostname(),
            implicit_tls=s.tls.is_implicit,
        )
        session = Session(self._session_config, tls_active=s.tls.is_implicit)
        try:
            conn.run(session.open())
        except BaseException:
            conn.close()
            raise
        return PooledConnection(conn, session, time.monotonic())

    def _acquire(self, *, fresh: bool = False) -> PooledConnection:
        if self._closed:
            raise NetworkError("the transport is closed")
        return self._pool.acquire(fresh=fresh) if self._pool is not None else self._open()

    def _release(self, pooled: PooledConnection) -> None:
        if self._pool is not None:
            self._pool.release(pooled)
        else:
            pooled.close(polite=True)

    # ------------------------------------------------------------------ sending
    def send(self, message: Any) -> SendResult:
        """Send a message (an :class:`email.message.EmailMessage`, or an smtpx message);
        the envelope comes from its headers and ``Bcc`` is not transmitted."""
        envelope, data = prepare_message(message)
        return self._send(envelope, data)

    def send_raw(self, envelope: Envelope, data: Any) -> SendResult:
        """Send ``data`` (bytes-like, a binary file, or an iterable of bytes — streamed,
        never read whole) to the envelope's recipients, as it is."""
        if not isinstance(envelope, Envelope):
            raise TypeError(f"send_raw() takes an smtpx.Envelope, not {type(envelope).__name__}")
        return self._send(envelope, data)

    def _send(self, envelope: Envelope, data: Any) -> SendResult:
        body = body_of(data)
        start = position(data)
        attempt = 0
        while True:
            pooled: PooledConnection | None = None
            try:
                pooled = self._acquire(fresh=attempt > 0)
                result: SendResult = pooled.conn.run(pooled.session.send(envelope, body))
            except SmtpError as exc:
                if pooled is not None:
                    self._release(pooled)
                if retryable(exc, attempt=attempt) and rewind(body, data, start):
                    log.info("retrying on a fresh connection after: %s", exc)
                    attempt += 1
                    continue
                raise
            except BaseException:
                if pooled is not None:
                    pooled.session.broken()
                    self._release(pooled)
                raise
            pooled.record.messages += 1
            self._release(pooled)
            return result

    def send_many(
        self, messages: Iterable[Any], *, window: int | None = None
    ) -> Iterator[SendResult | SmtpError]:
        """Send the messages (smtpx or standard-library messages, as :meth:`send` takes,
        or ``(Envelope, data)`` pairs, as :meth:`send_raw` takes) through one connection
        at a time and yield one outcome per
        message, in order: its :class:`SendResult`, or the :class:`SmtpError` that stopped
        it (not raised, so one refused message does not stop the rest).

        With PIPELINING, up to ``window`` transactions (the builder's
        ``pipeline_window``, 8 by default) are in flight at once: later messages leave
        before the earlier ones are answered. A message whose send failed before the end
        of its data is tried once more on a fresh connection. Stopping early (``break``)
        first collects the answers to the messages already sent.
        """
        depth = window_depth(self.settings.window if window is None else window)
        requests = bulk(depth, self.settings.pool)
        source = Source(messages)
        held: PooledConnection | None = None
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
                        value = request.pooled.conn.run(request.procedure)
                    elif isinstance(request, Pull):
                        value = source.pull(request.most)
                    elif isinstance(request, Emit):
                        for _, outcome in request.outcomes:
                            if isinstance(outcome, Fatal):
                                raise outcome.error
                            yield outcome
                    elif isinstance(request, Acquire):
                        held = value = self._acquire(fresh=request.fresh)
                    else:
                        held = None
                        self._release(request.pooled)
                except SmtpError as exc:
                    error = exc
        finally:
            requests.close()
            if held is not None:
                self._finish(held)

    def _finish(self, pooled: PooledConnection) -> None:
        """Collect what is still in flight on a connection (its messages were sent),
        then give it back."""
        try:
            while pooled.session.in_flight and pooled.session.usable:
                with contextlib.suppress(SmtpError):
                    pooled.conn.run(pooled.session.collect())
        except BaseException:
            pooled.session.broken()
            raise
        finally:
            if pooled.session.in_flight:
                pooled.session.broken()
            self._release(pooled)

    def test_connection(self) -> bool:
        """True when a connection can be made (and reused) and the server answers NOOP."""
        try:
            pooled = self._acquire()
        except SmtpError as exc:
            log.info("test_connection: %s", exc)
            return False
        try:
            pooled.conn.run(pooled.session.noop())
            return True
        except SmtpError as exc:
            log.info("test_connection: %s", exc)
            return False
        finally:
            self._release(pooled)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the pool's connections (QUIT first); later sends raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
