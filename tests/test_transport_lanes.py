"""Concurrent ``send()`` calls on the asyncio transport share pooled connections: a
window of transactions in flight on each (PIPELINING + CHUNKING), against the scripted
fake server — after the first message (sent alone, as on a connection of its own), the
server reads the next ones before it answers any, which only a shared window gets
through — and what cancelling one sender means for the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import smtpx
from smtpx.testing.scripted import Close, Expect, ExpectBytes, ScriptedServer, Send, Sleep, Step
from smtpx.testing.sink import Sink

from steps import CAPS_CHUNK, EHLO, GREETING, QUIT

GROUP = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 5 LAST\r\n"
ENV = smtpx.Envelope("a@x.test", ["b@x.test"])
BODIES = (b"one", b"two", b"thr")


def transport(srv: ScriptedServer, window: int = 3) -> smtpx.AsyncSmtpTransport:
    builder = (
        smtpx.AsyncSmtpTransport.builder_dangerous("127.0.0.1")
        .port(srv.port)
        .hello_name("client.test")
        .timeout(5)
        .pool(smtpx.PoolConfig(max_size=1))
        .pipeline_window(window)
    )
    return builder.build()


def read_transactions(count: int, *, first: bool = True) -> list[Step]:
    """The server takes ``count`` transactions sent together: each after the first of
    them led by RSET (the one before it was still unanswered); ``first``: the session
    starts with them."""
    steps: list[Step] = [GREETING, EHLO, CAPS_CHUNK] if first else []
    for i in range(count):
        steps += [Expect((b"RSET\r\n" if i else b"") + GROUP), ExpectBytes(5)]
    return steps


def first_alone(text: str = "first", delay: float = 0.0) -> list[Step]:
    """The session, and a first message answered on its own (after ``delay``)."""
    steps = read_transactions(1)
    if delay:
        steps.append(Sleep(delay))
    return [*steps, *answers(text)]


def answers(*texts: str) -> list[Step]:
    first, *rest = texts
    out: list[Step] = [Send(b"250 ok\r\n250 ok\r\n250 " + first.encode() + b"\r\n")]
    out += [Send(b"250 ok\r\n250 ok\r\n250 ok\r\n250 " + t.encode() + b"\r\n") for t in rest]
    return out


def run(loop: asyncio.AbstractEventLoop, script: list[Step], scenario: Any) -> ScriptedServer:
    with ScriptedServer(scripts=[script]) as srv:
        loop.run_until_complete(scenario(srv))
        srv.wait(5)
    return srv


def test_concurrent_sends_share_one_connection_in_a_window(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    script = [
        *first_alone(delay=0.1),  # the others join meanwhile
        *read_transactions(2, first=False),
        *answers("second", "third"),
        *QUIT,
    ]
    results: list[Any] = []

    async def scenario(srv: ScriptedServer) -> None:
        async with transport(srv) as t:
            results.extend(await asyncio.gather(*(t.send_raw(ENV, b) for b in BODIES)))
            assert "active=0 idle=1" in repr(t)

    srv = run(event_loop_instance, script, scenario)
    # Each sender got the answer to its own transaction, whatever order they went in.
    order = [bytes(c[:3]) for c in srv.captured]
    assert sorted(order) == sorted(BODIES)
    texts = ["first", "second", "third"]
    assert [r.response.text for r in results] == [texts[order.index(b)] for b in BODIES]


def test_a_refusal_in_a_shared_window_is_its_own_senders_only(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    # The replies to two windowed transactions come in one segment: the first of them
    # refuses its only recipient. Its sender gets that refusal, the next sender its
    # own success, and the connection goes on.
    script = [
        *first_alone(delay=0.1),
        *read_transactions(2, first=False),
        Send(
            b"250 ok\r\n550 5.1.1 no such user\r\n554 no valid recipients\r\n"
            b"250 ok\r\n250 ok\r\n250 ok\r\n250 third\r\n"  # RSET, MAIL, RCPT, data
        ),
        *QUIT,
    ]
    results: list[Any] = []

    async def scenario(srv: ScriptedServer) -> None:
        async with transport(srv) as t:
            sends = (t.send_raw(ENV, b) for b in BODIES)
            results.extend(await asyncio.gather(*sends, return_exceptions=True))
            assert "active=0 idle=1" in repr(t)

    srv = run(event_loop_instance, script, scenario)
    order = [bytes(c[:3]) for c in srv.captured]
    first, refused, third = (results[BODIES.index(b)] for b in order)
    assert isinstance(refused, smtpx.RecipientsRefusedError)
    assert refused.rejected["b@x.test"].code == 550
    assert isinstance(first, smtpx.SendResult)
    assert isinstance(third, smtpx.SendResult)
    assert third.response.text == "third"


def test_a_cancelled_sender_does_not_disturb_the_others(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    script = [
        *first_alone(delay=0.05),
        *read_transactions(2, first=False),
        Sleep(0.3),
        *answers("second", "third"),
        *QUIT,
    ]
    outcomes: list[Any] = []

    async def scenario(srv: ScriptedServer) -> None:
        async with transport(srv) as t:
            tasks = [asyncio.ensure_future(t.send_raw(ENV, b)) for b in BODIES]
            await asyncio.sleep(0.2)  # the first answered, the others sent and unanswered
            tasks[1].cancel()
            outcomes.extend(await asyncio.gather(*tasks, return_exceptions=True))
            assert "active=0 idle=1" in repr(t)  # the connection went on, and back

    run(event_loop_instance, script, scenario)
    first, second, third = outcomes
    assert isinstance(second, smtpx.DeliveryUnknownError)  # it was sent: may be delivered
    assert isinstance(first, smtpx.SendResult)
    assert isinstance(third, smtpx.SendResult)


def test_a_sender_cancelled_before_its_turn_sends_nothing(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    # A window of 2: the third sender waits for a place, and is cancelled there.
    script = [*first_alone(delay=0.3), *read_transactions(1, first=False)]
    script += [*answers("second"), *QUIT]
    outcomes: list[Any] = []

    async def scenario(srv: ScriptedServer) -> None:
        async with transport(srv, window=2) as t:
            tasks = [asyncio.ensure_future(t.send_raw(ENV, b)) for b in BODIES]
            await asyncio.sleep(0.15)
            tasks[2].cancel()
            outcomes.extend(await asyncio.gather(*tasks, return_exceptions=True))

    srv = run(event_loop_instance, script, scenario)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert all(isinstance(o, smtpx.SendResult) for o in outcomes[:2])
    assert len(srv.captured) == 2


def test_a_connection_lost_under_a_window_leaves_the_sent_messages_unknown(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    script = [*first_alone(delay=0.1), *read_transactions(2, first=False), Close()]
    outcomes: list[Any] = []

    async def scenario(srv: ScriptedServer) -> None:
        async with transport(srv) as t:
            coros = (t.send_raw(ENV, b) for b in BODIES)
            outcomes.extend(await asyncio.gather(*coros, return_exceptions=True))

    srv = run(event_loop_instance, script, scenario)
    assert sum(isinstance(o, smtpx.SendResult) for o in outcomes) == 1
    assert sum(isinstance(o, smtpx.DeliveryUnknownError) for o in outcomes) == 2
    assert srv.connections == 1  # nothing retried


def test_many_concurrent_sends_over_a_small_pool_all_arrive(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    async def scenario(port: int) -> list[Any]:
        builder = (
            smtpx.AsyncSmtpTransport.builder_dangerous("127.0.0.1")
            .port(port)
            .pool(smtpx.PoolConfig(max_size=2, max_messages=150))
        )
        async with builder.build() as t:
            coros = (
                t.send_raw(smtpx.Envelope("a@x.test", [f"r{i}@x.test"]), b"x") for i in range(500)
            )
            return list(await asyncio.gather(*coros))

    with Sink(capture=True) as sink:
        results = event_loop_instance.run_until_complete(scenario(sink.port))
        assert [r.accepted for r in results] == [[f"r{i}@x.test"] for i in range(500)]
        assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(
            f"r{i}@x.test" for i in range(500)
        )
        stats = sink.stats()
        assert stats.messages == 500
        assert stats.connections >= 4  # max_messages=150 retires connections on the way


@pytest.mark.parametrize("chunking", [False], ids=["data"])
def test_without_chunking_each_send_keeps_a_connection_of_its_own(
    event_loop_instance: asyncio.AbstractEventLoop, chunking: bool
) -> None:
    async def scenario(port: int) -> None:
        builder = (
            smtpx.AsyncSmtpTransport.builder_dangerous("127.0.0.1")
            .port(port)
            .pool(smtpx.PoolConfig(max_size=2))
        )
        async with builder.build() as t:
            await asyncio.gather(*(t.send_raw(ENV, b"x") for _ in range(50)))

    with Sink(chunking=chunking) as sink:
        event_loop_instance.run_until_complete(scenario(sink.port))
        assert sink.stats().messages == 50
        assert sink.stats().connections == 2


def test_a_lone_sender_cancelled_mid_transaction_leaves_it_to_finish_for_the_others(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    # The first sender is alone on the connection, waiting for its reply inside its
    # procedure, when the second joins (the pool is at its cap); cancelling the first
    # must not cut the connection under the second: its transaction finishes behind it.
    script = [*first_alone(delay=0.3), *read_transactions(1, first=False)]
    script += [*answers("second"), *QUIT]
    outcomes: list[Any] = []

    async def scenario(srv: ScriptedServer) -> None:
        async with transport(srv) as t:
            first = asyncio.ensure_future(t.send_raw(ENV, b"one"))
            await asyncio.sleep(0.1)
            second = asyncio.ensure_future(t.send_raw(ENV, b"two"))
            await asyncio.sleep(0.05)
            first.cancel()
            outcomes.extend(await asyncio.gather(first, second, return_exceptions=True))
            assert "active=0 idle=1" in repr(t)

    srv = run(event_loop_instance, script, scenario)
    assert isinstance(outcomes[0], smtpx.DeliveryUnknownError)
    assert isinstance(outcomes[1], smtpx.SendResult)
    assert outcomes[1].response.text == "second"
    assert [bytes(c[:3]) for c in srv.captured] == [b"one", b"two"]
