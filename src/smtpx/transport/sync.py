"""``smtpx.SmtpTransport``: the blocking transport, pooled and thread-safe."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from smtpx.config import Envelope
from smtpx.errors import NetworkError, SmtpError
from smtpx.protocol.session import SendResult, Session

from ._sync_conn import SyncConnection
from ._sync_pool import PooledConnection, SyncPool
from .builder import BuilderConstructors, TransportSettings
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

    def send_many(self, messages: Iterable[Any]) -> Iterator[SendResult | SmtpError]:
        """Send each message in turn; yield one outcome per message, in order: its
        :class:`SendResult`, or the :class:`SmtpError` that stopped it (not raised, so
        one refused message does not stop the rest)."""
        for message in messages:
            try:
                yield self.send(message)
            except SmtpError as exc:
                yield exc

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
