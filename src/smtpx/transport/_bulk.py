"""``send_many``: messages through one connection at a time with a window of
transactions in flight, for the sync and the asyncio transport alike.

:func:`bulk` decides everything (what to send next, on which connection, what to retry,
when to let a connection go) and does no I/O: it is a generator of requests that each
transport's ``send_many`` carries out, the way the engine's procedures are driven
(:mod:`smtpx.protocol.ops`):

- :class:`Pull`: a list of up to ``most`` next ``(index, message)`` pairs of the caller's
  iterable (at least one), None at its end, or :data:`LATER` (not now: the caller's side
  is behind; collect first);
- :class:`Acquire`: a connection from the pool (errors are thrown back in);
- :class:`Run`: drive an engine procedure on the connection, return its result (errors
  are thrown back in);
- :class:`Release`: give the connection back;
- :class:`Emit`: ``(index, outcome)`` pairs, in the order of the messages; an outcome is
  a :class:`~smtpx.protocol.session.SendResult` or an :class:`~smtpx.errors.SmtpError`.

Messages are pulled and outcomes emitted a window at a time, not one by one: per message,
the round trips through the generator would cost as much as a good part of the engine's
own work.

A message whose send failed before the end of its data (the connection failed, stalled
or was closed with 421) is tried once more on a fresh connection, as ``send`` does
(:func:`.policy.retryable`). Outcomes come out in the messages' order.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from smtpx.config import Envelope, PoolConfig
from smtpx.errors import SmtpError

from .message_input import body_of, position, prepare_message, rewind
from .policy import retryable, spent

__all__ = [
    "LATER",
    "Acquire",
    "Emit",
    "Fatal",
    "Pull",
    "Release",
    "Request",
    "Run",
    "Source",
    "bulk",
]

#: The answer to :class:`Pull` that means "nothing for now; collect what is in flight".
LATER: Final = object()


@dataclass(frozen=True, slots=True)
class Pull:
    #: Nothing of this sender is in flight or waiting to be emitted (so blocking is safe).
    idle: bool
    #: How many messages at most (at least 1).
    most: int


@dataclass(frozen=True, slots=True)
class Acquire:
    fresh: bool


@dataclass(frozen=True, slots=True)
class Run:
    pooled: Any
    procedure: Any


@dataclass(frozen=True, slots=True)
class Release:
    pooled: Any


@dataclass(frozen=True, slots=True)
class Emit:
    outcomes: list[tuple[int, Any]]


Request: TypeAlias = Pull | Acquire | Run | Release | Emit


class Fatal:
    """An outcome that is raised, not yielded: the caller's iterable failed, or gave
    something that is not a message (``TypeError``). Nothing after it is sent."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class Source:
    """The caller's messages, numbered; what :class:`Pull` answers with."""

    __slots__ = ("_messages", "count", "done")

    def __init__(self, messages: Iterable[Any]) -> None:
        self._messages = iter(messages)
        self.count = 0
        self.done = False

    def pull(self, most: int) -> list[tuple[int, Any]] | None:
        """Up to ``most`` next messages, numbered; None when there are no more."""
        got: list[tuple[int, Any]] = []
        messages = self._messages
        while not self.done and len(got) < most:
            try:
                message: Any = next(messages)
            except StopIteration:
                self.done = True
                break
            except Exception as exc:  # raised in its turn, after the earlier outcomes
                self.done = True
                message = Fatal(exc)
            got.append((self.count, message))
            self.count += 1
        return got or None


class _Item:
    """One message between its pull and its emission."""

    __slots__ = ("attempt", "body", "data", "envelope", "index", "outcome", "start")

    def __init__(self, index: int, message: Any, asynchronous: bool) -> None:
        self.index = index
        self.attempt = 0
        self.outcome: Any = None
        self.envelope: Envelope | None = None
        self.body: Any = None
        self.data: Any = None
        self.start: int | None = None
        if isinstance(message, Fatal):
            self.outcome = message
            return
        try:
            if type(message) is tuple and len(message) == 2:
                self.envelope, self.data = message
                if not isinstance(self.envelope, Envelope):
                    raise TypeError(
                        "send_many() takes messages or (smtpx.Envelope, data) pairs, not a "
                        f"pair of {type(self.envelope).__name__} and {type(self.data).__name__}"
                    )
            else:
                self.envelope, self.data = prepare_message(message)
            if type(self.data) is bytes:  # the common case: nothing to check or rewind
                self.body = self.data
            else:
                self.body = body_of(self.data, asynchronous=asynchronous)
                self.start = position(self.data)
        except SmtpError as exc:
            self.outcome = exc
        except Exception as exc:
            self.outcome = Fatal(exc)


def bulk(
    depth: int, pool: PoolConfig | None, *, asynchronous: bool = False
) -> Generator[Request, Any, None]:
    """Send every message :class:`Pull` gives, with at most ``depth`` transactions in
    flight on the connection; :class:`Emit` each outcome in order. ``asynchronous``:
    bodies may be asynchronous iterables (the asyncio transport)."""
    line: deque[_Item] = deque()  # pulled and not yet emitted, in order
    todo: deque[_Item] = deque()  # to be submitted, in order
    sent: deque[_Item] = deque()  # submitted on `pooled`, not yet collected, in order
    exhausted = False
    pooled: Any = None
    while True:
        if line and line[0].outcome is not None:
            done = []
            while line and line[0].outcome is not None:
                item = line.popleft()
                done.append((item.index, item.outcome))
            yield Emit(done)
        later = False
        while not exhausted and len(sent) + len(todo) < depth:
            got = yield Pull(not line, depth - len(sent) - len(todo))
            if got is LATER:
                later = True
                break
            if got is None:
                exhausted = True
                break
            for index, message in got:
                item = _Item(index, message, asynchronous)
                line.append(item)
                if item.outcome is None:
                    todo.append(item)
                elif isinstance(item.outcome, Fatal):
                    exhausted = True  # nothing after it is sent
                    break
        if not line:
            if exhausted:
                if pooled is not None:
                    yield Release(pooled)
                return
            continue
        if (
            todo
            and not sent
            and (
                pooled is None
                or not pooled.usable
                or spent(pooled.record, pool, time.monotonic(), 0)
            )
        ):
            if pooled is not None:
                yield Release(pooled)
                pooled = None
            try:
                pooled = yield Acquire(fresh=any(item.attempt for item in todo))
            except SmtpError as exc:
                for item in todo:
                    _decide(item, exc)
                todo = deque(item for item in todo if item.outcome is None)
                continue
        # A connection that must not take more finishes what it carries first.
        if todo and pooled.usable and not spent(pooled.record, pool, time.monotonic(), len(sent)):
            room = depth - len(sent)
            if pool is not None:
                room = min(room, pool.max_messages - pooled.record.messages - len(sent))
            batch = [todo.popleft() for _ in range(min(len(todo), max(room, 1)))]
            sent.extend(batch)
            yield Run(pooled, pooled.session.submit([(i.envelope, i.body) for i in batch]))
            if len(sent) < depth and not (exhausted or later or todo):
                continue  # room left: fill the window before waiting for replies
        # Collect the oldest outcome, then every one whose replies are already here.
        if not sent:
            continue
        outcomes = yield Run(pooled, pooled.session.collect_many(len(sent)))
        retries: list[_Item] = []
        for outcome in outcomes:
            item = sent.popleft()
            if isinstance(outcome, SmtpError):
                _decide(item, outcome)
                if item.outcome is None:
                    retries.append(item)
            else:
                item.outcome = outcome
                pooled.record.messages += 1
        if retries:  # back in line, in order, for a fresh connection
            todo = deque(sorted([*retries, *todo], key=lambda item: item.index))


def _decide(item: _Item, error: SmtpError) -> None:
    """A failed send: its outcome, or another try on a fresh connection."""
    if retryable(error, attempt=item.attempt) and rewind(item.body, item.data, item.start):
        item.attempt += 1
    else:
        item.outcome = error
