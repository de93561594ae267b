"""The connection pool of the asyncio transport: the same rules as the sync pool
(:mod:`._sync_pool`), on one event loop, so no lock is needed; waiters are futures,
served in arrival order. What to close, probe and retry is asked of :mod:`.policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from smtpx.errors import NetworkError, SmtpError, SmtpTimeoutError

from .policy import ConnectionRecord, expired, needs_probe

__all__ = ["AsyncPool", "AsyncPooledConnection"]

log = logging.getLogger("smtpx")


class AsyncPooledConnection:
    """A driver connection, its engine session and the pool's record of it."""

    __slots__ = ("conn", "lane", "record", "session")

    def __init__(self, conn: Any, session: Any, now: float) -> None:
        self.conn = conn
        self.session = session
        self.record = ConnectionRecord(created=now, last_used=now)
        #: The sharing state of the transport's concurrent senders (see ``_lanes``).
        self.lane: Any = None

    @property
    def usable(self) -> bool:
        return bool(self.session.usable)

    async def close(self, *, polite: bool) -> None:
        try:
            if polite and self.session.usable:
                await self.conn.run(self.session.quit())
        except SmtpError:
            pass
        finally:
            self.session.broken()
            self.conn.close()


class _Waiter:
    __slots__ = ("conn", "future", "may_open")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.conn: AsyncPooledConnection | None = None
        self.may_open = False


class AsyncPool:
    """A bounded pool of connections made by ``connect``."""

    def __init__(
        self, connect: Callable[[], Awaitable[AsyncPooledConnection]], config: Any
    ) -> None:
        self._connect = connect
        self.config = config
        self._idle: deque[AsyncPooledConnection] = deque()
        self._waiters: deque[_Waiter] = deque()
        self._open = 0
        self._closed = False
        self._reaper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<AsyncPool active={self._open - len(self._idle)} idle={len(self._idle)} "
            f"waiting={len(self._waiters)} max_size={self.config.max_size}>"
        )

    def can_serve_now(self) -> bool:
        """An acquire now would not wait: a connection is idle, or one may be opened."""
        return (
            not self._closed
            and not self._waiters
            and (bool(self._idle) or self._open < self.config.max_size)
        )

    @property
    def active(self) -> int:
        return self._open - len(self._idle)

    async def acquire(self, *, fresh: bool = False) -> AsyncPooledConnection:
        deadline = time.monotonic() + self.config.acquire_timeout
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.ensure_future(self._reap())
        while True:
            pooled, may_open = await self._claim(deadline, fresh)
            if pooled is None and may_open:
                try:
                    return await self._connect()
                except BaseException:
                    self._forget()
                    raise
            assert pooled is not None
            try:
                healthy = await self._healthy(pooled)
            except BaseException:  # cancelled during the probe: the connection goes
                pooled.session.broken()
                pooled.conn.close()
                self._forget()
                raise
            if healthy:
                return pooled
            await pooled.close(polite=False)
            self._forget()

    async def _claim(
        self, deadline: float, fresh: bool
    ) -> tuple[AsyncPooledConnection | None, bool]:
        if self._closed:
            raise NetworkError("the transport is closed")
        now = time.monotonic()
        if not self._waiters:
            while self._idle:
                pooled = self._idle.pop()
                reason = "a fresh connection is needed" if fresh else None
                reason = reason or expired(pooled.record, self.config, now)
                if reason is None:
                    return pooled, False
                log.debug("closing a pooled connection: %s", reason)
                self._open -= 1
                await pooled.close(polite=True)
            if self._open < self.config.max_size:
                self._open += 1
                return None, True
        waiter = _Waiter(asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(
                asyncio.shield(waiter.future), max(0.0, deadline - time.monotonic())
            )
        except (TimeoutError, asyncio.TimeoutError):  # distinct before 3.11
            if not waiter.future.done():
                self._waiters.remove(waiter)
                raise SmtpTimeoutError(
                    f"no pooled connection became free within "
                    f"{self.config.acquire_timeout:g} s (max_size={self.config.max_size})",
                    phase="acquire",
                ) from None
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            else:  # it was served just now: give what it got back
                self._hand_back(waiter)
            raise
        if waiter.conn is None and not waiter.may_open:  # woken by close()
            raise NetworkError("the transport is closed")
        return waiter.conn, waiter.may_open

    def _hand_back(self, waiter: _Waiter) -> None:
        if waiter.conn is not None:
            self._give(waiter.conn, None)
        elif waiter.may_open:
            self._forget()

    async def _healthy(self, pooled: AsyncPooledConnection) -> bool:
        try:
            if pooled.conn.has_pending_data():
                log.debug("discarding a pooled connection: the server sent data or closed it")
                return False
            pooled.session.check_idle()
            if needs_probe(pooled.record, time.monotonic()):
                await pooled.conn.run(pooled.session.noop())
        except SmtpError as exc:
            log.debug("discarding a pooled connection: %s", exc)
            return False
        return True

    async def release(self, pooled: AsyncPooledConnection) -> None:
        now = time.monotonic()
        pooled.record.last_used = now
        keep = pooled.usable and not self._closed
        reason = expired(pooled.record, self.config, now) if keep else "not usable"
        if reason is not None:
            self._open -= 1
            self._give(None, reason)
            await pooled.close(polite=pooled.usable)
        else:
            self._give(pooled, None)

    def _give(self, pooled: AsyncPooledConnection | None, reason: str | None) -> None:
        """Hand a connection (or, when it was closed, the right to open one) to the first
        waiter; else park it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.future.done():  # timed out or cancelled meanwhile
                continue
            if pooled is not None:
                waiter.conn = pooled
            else:
                waiter.may_open = True
                self._open += 1
            waiter.future.set_result(None)
            return
        if pooled is not None:
            self._idle.append(pooled)

    def _forget(self) -> None:
        self._open -= 1
        if self._open < self.config.max_size:
            self._give(None, "freed")

    async def _reap(self) -> None:
        """Close idle connections past their time, and keep ``min_idle`` open."""
        interval = min(1.0, self.config.idle_timeout / 2)
        while not self._closed:
            await asyncio.sleep(interval)
            now = time.monotonic()
            doomed = [p for p in self._idle if expired(p.record, self.config, now)]
            for pooled in doomed:
                self._idle.remove(pooled)
                self._open -= 1
            for pooled in doomed:
                await pooled.close(polite=True)
            missing = min(self.config.min_idle - len(self._idle), self.config.max_size - self._open)
            for _ in range(missing if not self._waiters else 0):
                self._open += 1
                try:
                    fresh = await self._connect()
                except SmtpError as exc:
                    log.debug("could not open an idle connection: %s", exc)
                    self._forget()
                    break
                await self.release(fresh)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        idle = list(self._idle)
        self._idle.clear()
        self._open -= len(idle)
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)
        self._waiters.clear()
        for pooled in idle:
            with contextlib.suppress(Exception):
                await pooled.close(polite=True)
