"""The pool's decisions (shared by the sync and the asyncio pool), as pure functions."""

from __future__ import annotations

import pytest

import smtpx
from smtpx.transport.policy import (
    PROBE_AFTER,
    ConnectionRecord,
    expired,
    needs_probe,
    retryable,
    spent,
)

CONFIG = smtpx.PoolConfig(idle_timeout=60, max_lifetime=300, max_messages=100)


@pytest.mark.parametrize(
    ("record", "now", "reason"),
    [
        (ConnectionRecord(created=0, last_used=10, messages=5), 20, None),
        (ConnectionRecord(created=0, last_used=10, messages=5), 300, "maximum lifetime reached"),
        (
            ConnectionRecord(created=0, last_used=10, messages=100),
            20,
            "maximum messages per connection reached",
        ),
        (ConnectionRecord(created=0, last_used=10, messages=5), 70, "idle time-out"),
        (ConnectionRecord(created=0, last_used=10, messages=5), 69.9, None),
    ],
)
def test_expired(record: ConnectionRecord, now: float, reason: str | None) -> None:
    assert expired(record, CONFIG, now) == reason


@pytest.mark.parametrize(
    ("messages", "in_flight", "now", "reason"),
    [
        (5, 0, 20, None),
        (5, 0, 300, "maximum lifetime reached"),
        (90, 9, 20, None),
        (90, 10, 20, "maximum messages per connection reached"),
        (100, 0, 20, "maximum messages per connection reached"),
    ],
)
def test_spent_counts_the_messages_in_flight(
    messages: int, in_flight: int, now: float, reason: str | None
) -> None:
    record = ConnectionRecord(created=0, last_used=0, messages=messages)
    assert spent(record, CONFIG, now, in_flight) == reason
    # A connection in use is never spent by idling, and without a pool never at all.
    assert spent(ConnectionRecord(created=0, last_used=-1000, messages=0), CONFIG, 20) is None
    assert spent(record, None, 10**9, 10**9) is None


def test_needs_probe_only_after_a_long_idle() -> None:
    record = ConnectionRecord(created=0, last_used=100)
    assert not needs_probe(record, 100 + PROBE_AFTER)
    assert needs_probe(record, 100 + PROBE_AFTER + 0.01)


class Reply:
    def __init__(self, code: int) -> None:
        self.code = code
        self.enhanced_code = None


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (smtpx.NetworkError("reset"), True),
        (smtpx.SmtpTimeoutError("slow", phase="command"), True),
        (smtpx.ProtocolError("garbage"), True),
        (smtpx.TransientError("closing", response=Reply(421)), True),
        (smtpx.TransientError("mailbox busy", response=Reply(450)), False),
        (smtpx.PermanentError("no such user", response=Reply(550)), False),
        (smtpx.DeliveryUnknownError("no reply after the end of data"), False),
        (smtpx.InvalidInputError("CR in address"), False),
        (smtpx.AuthError("bad password", response=Reply(535)), False),
        (smtpx.TlsError("bad certificate"), False),
    ],
)
def test_retry_only_what_cannot_have_been_delivered(error: smtpx.SmtpError, retry: bool) -> None:
    assert retryable(error, attempt=0) is retry
    assert retryable(error, attempt=1) is False  # one retry at most
