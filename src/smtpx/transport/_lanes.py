"""Concurrent ``send()`` calls of one :class:`~smtpx.AsyncSmtpTransport` sharing pooled
connections: a window of transactions in flight on each.

A *lane* is a pooled connection in use. While the pool can give a sender a connection
at once, it takes one (servers work on connections in parallel) and, alone on it, runs
its whole transaction as one procedure. Once the pool is at its cap, a sender joins a
lane that has room (PIPELINING and CHUNKING, fewer than ``window`` senders, the
connection neither broken nor spent), or waits in line for a place. On a lane, one
engine procedure runs at a time (the lane's lock): a sender *submits* its transaction,
which leaves behind those already in flight, waits for replies without the lock (others
submit meanwhile), then *collects* outcomes in order until its own is in, handing the
others theirs.

A sender cancelled in the middle of a procedure with others on the lane does not cut
the connection under them: the driver finishes the procedure in the background, holding
the lock (``AsyncConnection.run(detach=...)``). What a cancellation means:

- before its transaction was started: nothing is sent (``CancelledError``);
- after: the message may be delivered (:class:`~smtpx.errors.DeliveryUnknownError`);
- when the sender is the lane's only user, its connection is dropped at once, as with a
  connection of its own: ``CancelledError`` when the end of its data had not been sent,
  ``DeliveryUnknownError`` when it had.

Streamed bodies do not share: a failing body source breaks its connection, and must not
take others' messages with it. The pool's rules (:mod:`.policy`) apply as for any use.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from smtpx.config import PoolConfig
from smtpx.errors import DeliveryUnknownError, NetworkError, SmtpError, SmtpTimeoutError
from smtpx.protocol.session import SendResult

from .policy import spent

__all__ = ["DEFAULT_ACQUIRE_TIMEOUT", "Lanes"]

#: How long a sender waits for a place when there is no pool to say (``pool(None)``).
DEFAULT_ACQUIRE_TIMEOUT = 30.0


class _Turns:
    """The lane's lock: one engine procedure at a time, in turn. Uncontended, taking it
    is one attribute (no coroutine): ``if turns.busy: await turns.wait() else:
    turns.busy = True``; :meth:`release` hands it to the next in line."""

    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.busy = False
        self.queue: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        if self.busy:
            await self.wait()
        else:
            self.busy = True

    async def wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self.queue:
                self.queue.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as this one gave up: pass it on
            raise

    def release(self) -> None:
        while self.queue:
            waiter = self.queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the lock passes on, still taken
                return
        self.busy = False


class _Lane:
    __slots__ = ("detach", "exclusive", "gone", "lock", "pooled", "results", "users")

    def __init__(self, pooled: Any, exclusive: bool) -> None:
        self.pooled = pooled
        #: Asked by the driver when a sender is cancelled mid-procedure: others are on it.
        self.detach: Callable[[], bool] = lambda: self.users > 1
        self.exclusive = exclusive
        self.lock = _Turns()
        self.users = 1
        #: Outcomes collected and not yet taken by their senders, by ticket.
        self.results: dict[int, Any] = {}
        #: Tickets whose senders left: their outcomes are dropped when collected.
        self.gone: set[int] = set()

    async def run(
        self, procedure: Any, *, shared: bool, after: Callable[[Any], None] | None = None
    ) -> Any:
        """Run an engine procedure under the lock; ``after(result)`` takes its result.
        On a ``shared`` lane with other senders, a cancellation leaves the procedure to
        finish in the background, still holding the lock (the connection is never cut
        mid-procedure under the others); otherwise it drops the connection."""
        await self.lock.take()
        conn = self.pooled.conn
        detach = (lambda: self.users > 1) if shared else None
        try:
            result = await conn.run(procedure, detach=detach)
        except asyncio.CancelledError:
            finishing, conn.detached = conn.detached, None
            if finishing is None:
                self.lock.release()
                raise
            finishing.add_done_callback(lambda task: self._finished(task, after))
            raise
        except BaseException:
            self.lock.release()
            raise
        try:
            if after is not None:
                after(result)
        finally:
            self.lock.release()
        return result

    def _finished(self, task: asyncio.Future[Any], after: Callable[[Any], None] | None) -> None:
        try:
            if not task.cancelled() and task.exception() is None and after is not None:
                after(task.result())
        finally:
            self.lock.release()

    def finished_alone(self, task: asyncio.Future[Any]) -> None:
        """A lone sender's transaction, finished in the background after it left."""
        try:
            if not task.cancelled():
                task.exception()  # nobody's to see
        finally:
            self.lock.release()

    def store(self, outcomes: list[Any]) -> None:
        """Outcomes just collected, in order (tickets are the session's collection
        order); those of senders who left are dropped."""
        done = self.pooled.session.collected - len(outcomes)
        for outcome in outcomes:
            if done in self.gone:
                self.gone.discard(done)
            else:
                self.results[done] = outcome
            done += 1


class _Request:
    __slots__ = ("started", "submitted")

    def __init__(self) -> None:
        self.started = False  # its transaction began (it may reach the server)
        self.submitted = False  # its transaction was written whole


class Lanes:
    """The lanes of one transport. ``acquire(fresh)`` / ``release(pooled)`` are the
    transport's; ``can_open()`` says whether a connection is to be had without waiting."""

    def __init__(
        self,
        acquire: Callable[..., Awaitable[Any]],
        release: Callable[[Any], Awaitable[None]],
        can_open: Callable[[], bool],
        window: int,
        pool: PoolConfig | None,
    ) -> None:
        self._acquire = acquire
        self._release = release
        self._can_open = can_open
        self._window = window
        self._pool = pool
        self._lanes: list[_Lane] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._opening = 0  # connections being acquired for shareable lanes

    def send(self, envelope: Any, body: Any, *, fresh: bool, shared: bool) -> Awaitable[SendResult]:
        """One transaction on a lane (a fresh connection with ``fresh``; never shared
        unless ``shared``)."""
        if shared and not fresh and not self._waiters and self._can_open():
            return self._alone(envelope, body)
        return self._anywhere(envelope, body, fresh=fresh, shared=shared)

    async def _anywhere(self, envelope: Any, body: Any, *, fresh: bool, shared: bool) -> SendResult:
        lane = await self._enter(fresh=fresh, shared=shared)
        clean = False  # the connection's state is known: what is in flight can be collected
        try:
            result = await self._through(lane, envelope, body)
            clean = True
            return result
        except SmtpError:
            clean = True
            raise
        finally:
            await self._leave(lane, drain=clean)

    async def _alone(self, envelope: Any, body: Any) -> SendResult:
        """The common case: the pool gives a connection at once. The transaction runs as
        one procedure, as on a connection of one's own; meanwhile the connection is a
        lane, which senders who find the pool at its cap may join (after the lock)."""
        self._opening += 1
        try:
            pooled = await self._acquire(fresh=False)
        finally:
            self._opening -= 1
        lane = pooled.lane
        if lane is None:  # one per connection, for its lifetime
            lane = pooled.lane = _Lane(pooled, exclusive=False)
        else:
            lane.users, lane.exclusive = 1, False
        self._lanes.append(lane)
        if self._waiters:
            self._wake()  # they may join it
        session, conn, lock = pooled.session, pooled.conn, lane.lock
        drain = False
        try:
            if lock.busy:  # pragma: no cover - nobody could take it since the lane appeared
                await lock.wait()
            else:
                lock.busy = True
            try:
                result = await conn.run(session.send(envelope, body), detach=lane.detach)
            except asyncio.CancelledError:
                finishing, conn.detached = conn.detached, None
                if finishing is None:
                    lock.release()
                    raise
                finishing.add_done_callback(lane.finished_alone)  # it goes on, for the others
                raise
            except SmtpError:
                lock.release()
                drain = True
                raise
            except BaseException:
                lock.release()
                raise
            lock.release()
            drain = True
            pooled.record.messages += 1
            assert isinstance(result, SendResult)
            return result
        except asyncio.CancelledError as exc:
            if lane.users > 1:  # others on it: the transaction went on without this sender
                raise _unknown() from exc
            session.broken()  # alone: the connection goes, as if it were its own
            conn.abort()
            if session.last_in_doubt:
                raise _unknown() from exc
            raise
        finally:
            lane.users -= 1
            if lane.users or not drain or session.in_flight:
                await self._leave(lane, drain=drain, left=True)
            else:  # the common end: give it back
                self._lanes.remove(lane)
                await self._release(pooled)
                if self._waiters:
                    self._wake()

    # ------------------------------------------------------------------ places
    @staticmethod
    def _shareable(lane: _Lane) -> bool:
        """The connection can carry several senders' transactions: PIPELINING and
        CHUNKING (with BDAT a transaction is one write and its replies; DATA would make
        each submit wait for its 354, and read the others' replies on the way)."""
        session = lane.pooled.session
        return bool(
            not lane.exclusive
            and session.usable
            and session.config.pipelining
            and session.capabilities.pipelining
            and session.capabilities.chunking
        )

    def _open(self, lane: _Lane) -> bool:
        """``lane`` takes one more sender now."""
        return (
            lane.users < self._window
            and self._shareable(lane)
            and spent(lane.pooled.record, self._pool, time.monotonic(), lane.users) is None
        )

    async def _enter(self, *, fresh: bool, shared: bool) -> _Lane:
        """A place on a lane. Connections of their own first, while the pool can give
        them at once (servers work on connections in parallel); then places on lanes;
        then a wait, in line, for a place or a connection."""
        timeout = self._pool.acquire_timeout if self._pool else DEFAULT_ACQUIRE_TIMEOUT
        deadline = time.monotonic() + timeout
        my_turn = not self._waiters  # those already waiting go first
        while shared and not fresh:
            if my_turn:
                if self._can_open():
                    break
                lane = next((lane for lane in self._lanes if self._open(lane)), None)
                if lane is not None:
                    lane.users += 1
                    if self._open(lane):
                        self._wake()  # room for the next in line too
                    return lane
                if not (self._opening or any(self._shareable(lane) for lane in self._lanes)):
                    self._wake()
                    break  # nothing to share: wait in the pool's line
            # Every lane is full and the pool at its cap: wait in line for a place.
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if my_turn:
                self._waiters.appendleft(waiter)  # keep the head of the line
            else:
                self._waiters.append(waiter)
            try:
                await asyncio.wait_for(
                    asyncio.shield(waiter), max(0.0, deadline - time.monotonic())
                )
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                if waiter.done():
                    self._wake()  # it was this one's turn: pass it on
                if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # distinct before 3.11
                    raise SmtpTimeoutError(
                        f"no place on a pooled connection became free within {timeout:g} s",
                        phase="acquire",
                    ) from None
                raise
            my_turn = True
        self._opening += 1
        try:
            pooled = await self._acquire(fresh=fresh)
        except BaseException:
            self._wake()  # a waiter may open one instead
            raise
        finally:
            self._opening -= 1
        lane = pooled.lane
        if lane is None:  # one per connection, for its lifetime
            lane = pooled.lane = _Lane(pooled, exclusive=not shared)
        else:
            lane.users, lane.exclusive = 1, not shared
        self._lanes.append(lane)
        self._wake()  # waiters may join it
        return lane

    def _wake(self) -> None:
        """Let the first in line look again (a place, or a connection, came free)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _leave(self, lane: _Lane, *, drain: bool, left: bool = False) -> None:
        """The last sender out collects what senders who left abandoned (``drain``;
        otherwise the connection is dropped), then gives the connection back. ``left``:
        the caller already counted itself out."""
        if not left:
            lane.users -= 1
        if lane.users:
            self._wake()
            return
        self._lanes.remove(lane)
        session = lane.pooled.session
        try:
            if drain and session.in_flight and session.usable:
                await lane.lock.take()
                try:
                    await lane.pooled.conn.run(session.collect_many(session.in_flight))
                finally:
                    lane.lock.release()
        finally:
            if session.in_flight:
                session.broken()
            await self._release(lane.pooled)
            self._wake()

    # ------------------------------------------------------------------ the transaction
    async def _through(self, lane: _Lane, envelope: Any, body: Any) -> SendResult:
        request = _Request()
        session, conn = lane.pooled.session, lane.pooled.conn
        shared = self._shareable(lane) and self._window > 1
        try:
            if lane.users == 1 and not session.in_flight and not lane.lock.busy:
                # Alone on the connection: the whole transaction in one procedure, as on
                # a connection of one's own (whoever joins meanwhile waits for the lock).
                request.started = True
                outcome = await lane.run(_whole(session, envelope, body), shared=shared)
                if isinstance(outcome, BaseException):
                    raise outcome
                lane.pooled.record.messages += 1
                assert isinstance(outcome, SendResult)
                return outcome
            return await self._transaction(lane, request, envelope, body, shared=shared)
        except asyncio.CancelledError as exc:
            if not shared or lane.users == 1:  # its own connection, in effect: drop it
                session.broken()
                conn.abort()
                if session.last_in_doubt or request.submitted:
                    raise _unknown() from exc
                raise
            if request.started:  # it goes on without this sender, who cannot know
                raise _unknown() from exc
            raise

    async def _transaction(
        self, lane: _Lane, request: _Request, envelope: Any, body: Any, *, shared: bool
    ) -> SendResult:
        """Submit, then collect until this transaction's outcome is in. On a ``shared``
        lane, replies are awaited without the lock, so that others may submit meanwhile
        (the window fills); the collect then reads what has come."""
        session, conn = lane.pooled.session, lane.pooled.conn
        submitting = _Submit(lane, request)
        await lane.run(submitting.procedure(envelope, body), shared=shared)
        ticket = submitting.ticket
        if ticket is None:  # refused before anything was queued (the session broke)
            raise NetworkError(f"the connection is not usable ({session.state.value})")
        request.submitted = True
        try:
            while ticket not in lane.results:
                if (
                    shared
                    and session.awaits_replies
                    and not (session.replies_waiting or conn.has_pending_data())
                ):
                    await self._wait_replies(lane)
                if ticket in lane.results:
                    break
                await lane.run(
                    session.collect_many(ticket - session.collected + 1),
                    shared=shared,
                    after=lane.store,
                )
        except BaseException:
            if lane.results.pop(ticket, None) is None:
                lane.gone.add(ticket)
            raise
        outcome = lane.results.pop(ticket)
        if isinstance(outcome, BaseException):
            raise outcome
        lane.pooled.record.messages += 1
        assert isinstance(outcome, SendResult)
        return outcome

    @staticmethod
    async def _wait_replies(lane: _Lane) -> None:
        """Wait for the server to answer, within the end-of-data deadline (the replies
        to a BDAT group come together, the end of data's last); past it, the messages
        in flight are given up (the driver's time-out, as if it came while reading)."""
        conn, timeout = lane.pooled.conn, lane.pooled.conn.timeouts.data_end
        try:
            await conn.wait_data(timeout)
        except (TimeoutError, asyncio.TimeoutError):  # distinct before 3.11
            await lane.lock.take()
            try:
                if lane.pooled.session.awaits_replies and not conn.has_pending_data():
                    conn.abort()
                    lane.pooled.session.abandon(
                        SmtpTimeoutError(
                            f"timed out waiting for a reply (data_end time-out, {timeout:g} s)",
                            phase="data_end",
                        )
                    )
            finally:
                lane.lock.release()


def _whole(session: Any, envelope: Any, body: Any) -> Generator[Any, Any, Any]:
    """``session.send``, its refusal returned rather than raised (the lane's order moves
    on either way)."""
    try:
        return (yield from session.send(envelope, body))
    except SmtpError as exc:
        return exc


class _Submit:
    """The submit procedure of one sender, with its ticket: its place in the lane's
    order, taken (under the lock) as the procedure starts."""

    __slots__ = ("lane", "request", "ticket")

    def __init__(self, lane: _Lane, request: _Request) -> None:
        self.lane = lane
        self.request = request
        self.ticket: int | None = None

    def procedure(self, envelope: Any, body: Any) -> Generator[Any, Any, None]:
        session = self.lane.pooled.session
        if not session.usable:
            return
        self.request.started = True
        ticket = session.collected + session.in_flight
        try:
            yield from session.submit(((envelope, body),))
        except BaseException:
            if session.in_flight > ticket - session.collected:
                self.lane.gone.add(ticket)  # submitted, but nobody will collect it
            raise
        self.ticket = ticket


def _unknown() -> DeliveryUnknownError:
    return DeliveryUnknownError(
        "the send was cancelled after its transaction began: the message may or may not "
        "have been delivered"
    )
