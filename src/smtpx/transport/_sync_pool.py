"""The thread-safe connection pool of the sync transport.

Decisions happen under one lock, I/O outside it. ``max_size`` caps the connections that
are open or being opened; callers beyond it wait in arrival order (a released connection
is handed to the first waiter, so a newcomer cannot overtake) up to the acquire time-out.
What to close, what to probe and what to retry is asked of :mod:`.policy`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from smtpx.errors import NetworkError, SmtpError, SmtpTimeoutError

from .policy import ConnectionRecord, expired, needs_probe

__all__ = ["PooledConnection", "SyncPool"]

log = logging.getLogger("smtpx")


class PooledConnection:
    """A driver connection, its engine session and the pool's record of it."""

    __slots__ = ("conn", "record", "session")

    def __init__(self, conn: Any, session: Any, now: float) -> None:
        self.conn = conn
        self.session = session
        self.record = ConnectionRecord(created=now, last_used=now)

    @property
    def usable(self) -> bool:
        return bool(self.session.usable)

    def close(self, *, polite: bool) -> None:
        """QUIT (when ``polite`` and the session is usable), then close the socket."""
        try:
            if polite and self.session.usable:
                self.conn.run(self.session.quit())
        except SmtpError:
            pass
        finally:
            self.session.broken()
            self.conn.close()


class _Waiter:
    __slots__ = ("conn", "event", "may_open")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.conn: PooledConnection | None = None
        self.may_open = False


class SyncPool:
    """A bounded pool of connections made by ``connect`` (which returns an opened
    :class:`PooledConnection`)."""

    def __init__(self, connect: Callable[[], PooledConnection], config: Any) -> None:
        self._connect = connect
        self.config = config
        self._lock = threading.Lock()
        self._idle: deque[PooledConnection] = deque()
        self._waiters: deque[_Waiter] = deque()
        self._open = 0  # connections open or being opened (idle + active + connecting)
        self._closed = False
        self._reaper: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)

    # ------------------------------------------------------------------ introspection
    @property
    def active(self) -> int:
        with self._lock:
            return self._open - len(self._idle)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<SyncPool active={self._open - len(self._idle)} idle={len(self._idle)} "
                f"waiting={len(self._waiters)} max_size={self.config.max_size}>"
            )

    # ------------------------------------------------------------------ acquire / release
    def acquire(self, *, fresh: bool = False) -> PooledConnection:
        """A healthy connection: a reused idle one, or a new one (always a new one with
        ``fresh``, for a retry). Waits in line, up to ``acquire_timeout``, when
        ``max_size`` connections are in use."""
        deadline = time.monotonic() + self.config.acquire_timeout
        self._start_reaper()
        while True:
            pooled, may_open, retired = self._claim(deadline, fresh)
            for old in retired:
                old.close(polite=True)
            if pooled is None and may_open:
                try:
                    return self._open_new()
                except BaseException:
                    self._forget()
                    raise
            assert pooled is not None
            try:
                healthy = self._healthy(pooled)
            except BaseException:  # interrupted during the probe: the connection goes
                pooled.close(polite=False)
                self._forget()
                raise
            if healthy:
                return pooled
            pooled.close(polite=False)
            self._forget()

    def _claim(
        self, deadline: float, fresh: bool = False
    ) -> tuple[PooledConnection | None, bool, list[PooledConnection]]:
        """Under the lock: an idle connection, or the right to open one, or a place in
        line until one of those is handed over. Also returns the expired idle connections
        it dropped, for the caller to close outside the lock."""
        retired: list[PooledConnection] = []
        with self._lock:
            if self._closed:
                raise NetworkError("the transport is closed")
            now = time.monotonic()
            if not self._waiters:
                while self._idle:
                    pooled = self._idle.pop()  # most recently used: warmest
                    reason = "a fresh connection is needed" if fresh else None
                    reason = reason or expired(pooled.record, self.config, now)
                    if reason is None:
                        return pooled, False, retired
                    log.debug("closing a pooled connection: %s", reason)
                    self._open -= 1
                    retired.append(pooled)
                if self._open < self.config.max_size:
                    self._open += 1
                    return None, True, retired
            waiter = _Waiter()
            self._waiters.append(waiter)
        for old in retired:
            old.close(polite=True)
        retired = []
        if not waiter.event.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                timed_out = not waiter.event.is_set()
                if timed_out:
                    self._waiters.remove(waiter)
            if timed_out:
                raise SmtpTimeoutError(
                    f"no pooled connection became free within "
                    f"{self.config.acquire_timeout:g} s (max_size={self.config.max_size})",
                    phase="acquire",
                )
        if waiter.conn is None and not waiter.may_open:  # woken by close()
            raise NetworkError("the transport is closed")
        return waiter.conn, waiter.may_open, retired

    def _open_new(self) -> PooledConnection:
        return self._connect()

    def _healthy(self, pooled: PooledConnection) -> bool:
        """The reuse check: nothing may be waiting on an idle socket (a 421 or EOF), and a
        connection idle for long is probed with NOOP."""
        try:
            if pooled.conn.has_pending_data():
                log.debug("discarding a pooled connection: the server sent data or closed it")
                return False
            pooled.session.check_idle()
            if needs_probe(pooled.record, time.monotonic()):
                pooled.conn.run(pooled.session.noop())
        except (SmtpError, OSError, ValueError) as exc:
            log.debug("discarding a pooled connection: %s", exc)
            return False
        return True

    def release(self, pooled: PooledConnection) -> None:
        """Give a connection back: reused if usable, closed otherwise; the first waiter
        gets it (or, when it was closed, the right to open a new one)."""
        now = time.monotonic()
        pooled.record.last_used = now
        keep = pooled.usable and not self._closed
        reason = expired(pooled.record, self.config, now) if keep else "not usable"
        if reason is not None:
            pooled.close(polite=pooled.usable)
        with self._lock:
            if reason is not None:
                self._open -= 1
            if self._waiters:
                waiter = self._waiters.popleft()
                if reason is None:
                    waiter.conn = pooled
                else:
                    waiter.may_open = True
                    self._open += 1
                waiter.event.set()
            elif reason is None:
                self._idle.append(pooled)

    def _forget(self) -> None:
        """A connection being opened or reused failed: free its place for a waiter."""
        with self._lock:
            self._open -= 1
            if self._waiters and self._open < self.config.max_size:
                waiter = self._waiters.popleft()
                waiter.may_open = True
                self._open += 1
                waiter.event.set()

    # ------------------------------------------------------------------ housekeeping
    def _start_reaper(self) -> None:
        if self._reaper is None:  # checked without the lock first: the common case
            self._start_reaper_locked()

    def _start_reaper_locked(self) -> None:
        with self._lock:
            if self._reaper is not None or self._closed:
                return
            self._reaper = threading.Thread(target=self._reap, name="smtpx-pool", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        """Close idle connections past their time, and keep ``min_idle`` open."""
        interval = min(1.0, self.config.idle_timeout / 2)
        while True:
            with self._lock:
                if self._wake.wait_for(lambda: self._closed, interval):
                    return
                now = time.monotonic()
                doomed = [p for p in self._idle if expired(p.record, self.config, now)]
                for pooled in doomed:
                    self._idle.remove(pooled)
                    self._open -= 1
                top_up = min(
                    self.config.min_idle - len(self._idle), self.config.max_size - self._open
                )
                top_up = top_up if not self._waiters else 0
                self._open += max(0, top_up)
            for pooled in doomed:
                pooled.close(polite=True)
            for _ in range(max(0, top_up)):
                try:
                    fresh = self._connect()
                except SmtpError as exc:
                    log.debug("could not open an idle connection: %s", exc)
                    self._forget()
                    continue
                self.release(fresh)

    def close(self) -> None:
        """Close every idle connection (politely) and refuse new acquisitions; active ones
        are closed when released."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._open -= len(idle)
            waiters = list(self._waiters)
            self._waiters.clear()
            self._wake.notify_all()
            reaper = self._reaper
        for waiter in waiters:
            waiter.event.set()
        for pooled in idle:
            pooled.close(polite=True)
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=5)
