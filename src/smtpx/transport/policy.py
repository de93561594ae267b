"""The pool's decisions, in one place for the sync and the asyncio transport.

Pure functions of a connection's record and the clock: no locks, no I/O. The drivers ask
these questions and act on the answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtpx.config import PoolConfig
from smtpx.errors import (
    DeliveryUnknownError,
    NetworkError,
    ProtocolError,
    SmtpTimeoutError,
    TransientError,
)

__all__ = ["PROBE_AFTER", "ConnectionRecord", "expired", "needs_probe", "retryable", "spent"]

#: A pooled connection idle for longer than this is probed with NOOP before reuse: a
#: server may have timed it out without a word. Shorter idles get only the free check
#: (is anything waiting on the socket?), so a busy pool pays no extra round trip.
PROBE_AFTER = 5.0


@dataclass(slots=True)
class ConnectionRecord:
    """What the pool knows of one connection: when it was made and last used, and how
    many messages it carried."""

    created: float
    last_used: float
    messages: int = 0


def expired(record: ConnectionRecord, config: PoolConfig, now: float) -> str | None:
    """Why this idle connection must be closed rather than reused, or None."""
    if now - record.created >= config.max_lifetime:
        return "maximum lifetime reached"
    if record.messages >= config.max_messages:
        return "maximum messages per connection reached"
    if now - record.last_used >= config.idle_timeout:
        return "idle time-out"
    return None


def spent(
    record: ConnectionRecord, config: PoolConfig | None, now: float, in_flight: int = 0
) -> str | None:
    """Why a connection in use must take no more messages (it is finished and given
    back), or None: its lifetime is over, or it carries (with ``in_flight`` messages
    still unanswered) its share of messages. Without a pool there is no limit."""
    if config is None:
        return None
    if now - record.created >= config.max_lifetime:
        return "maximum lifetime reached"
    if record.messages + in_flight >= config.max_messages:
        return "maximum messages per connection reached"
    return None


def needs_probe(record: ConnectionRecord, now: float) -> bool:
    """Whether reuse must be preceded by a NOOP round trip."""
    return now - record.last_used > PROBE_AFTER


def retryable(error: BaseException, *, attempt: int) -> bool:
    """Whether a failed send may be tried once more on a fresh connection.

    Only the first attempt is retried, and only for failures that prove nothing past
    MAIL/RCPT was committed: the connection failed, stalled, broke the protocol or was
    closed with 421 before the end of the data. Never after the end of the data
    (:class:`DeliveryUnknownError`), and never for the server's considered answer to the
    message itself (another 4yz or 5yz reply) or for refused input.
    """
    if attempt > 0 or isinstance(error, DeliveryUnknownError):
        return False
    if isinstance(error, TransientError):
        return error.code == 421
    return isinstance(error, NetworkError | SmtpTimeoutError | ProtocolError)
