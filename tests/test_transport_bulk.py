"""``send_many``: a window of transactions in flight per connection, outcomes in order,
retries on a fresh connection, and the pool's limits. Each scenario runs through the sync
and the asyncio driver (the ``connect`` fixture) against real servers (aiosmtpd, the
sink) and the scripted fake server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

import smtpx
from smtpx.testing.scripted import (
    Close,
    Expect,
    ExpectBytes,
    ExpectClosed,
    ExpectData,
    ScriptedServer,
    Send,
    Step,
)
from smtpx.testing.sink import Sink

from drivers import Client
from servers import SmtpServer
from steps import CAPS_CHUNK, CAPS_PIPE, EHLO, GREETING, QUIT

Connect = Callable[[smtpx.TransportBuilder[Any]], Client]
Factory = Callable[..., SmtpServer]

GROUP = Expect(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
BDAT_GROUP = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 5 LAST\r\n"
ENV = smtpx.Envelope("a@x.test", ["b@x.test"])


def scripted(srv: ScriptedServer, window: int = 4) -> smtpx.TransportBuilder[Any]:
    return (
        smtpx.SmtpTransport.builder_dangerous("127.0.0.1")
        .port(srv.port)
        .hello_name("client.test")
        .timeout(5)
        .pool(smtpx.PoolConfig(max_size=1))
        .pipeline_window(window)
    )


def to_sink(sink: Sink, **pool: int) -> smtpx.TransportBuilder[Any]:
    return (
        smtpx.SmtpTransport.builder_dangerous("127.0.0.1")
        .port(sink.port)
        .timeout(10)
        .pool(smtpx.PoolConfig(**pool))
    )


def numbered(n: int) -> list[tuple[smtpx.Envelope, bytes]]:
    return [(smtpx.Envelope("s@x.test", [f"r{i}@x.test"]), b"Subject: %d\r\n\r\nhi\r\n" % i)
            for i in range(n)]  # fmt: skip


# ---------------------------------------------------------------- real servers
def test_send_many_with_data_keeps_order_and_reports_each_message(
    connect: Connect, smtp_server_factory: Factory
) -> None:
    server = smtp_server_factory(refuse={"bad@x.test": "550 5.1.1 no such user"})
    stdlib = EmailMessage()
    stdlib["From"], stdlib["To"], stdlib["Subject"] = "s@x.test", "m@x.test", "stdlib"
    stdlib.set_content("from the standard library\n")
    messages: list[Any] = [*numbered(3)]
    messages.append((smtpx.Envelope("s@x.test", ["bad@x.test"]), b"refused\r\n"))
    no_sender = EmailMessage()
    no_sender["To"] = "m@x.test"
    no_sender.set_content("bad input\n")
    messages.append(no_sender)  # no From: refused before anything is sent
    messages.append(stdlib)
    messages += numbered(12)[3:]
    builder = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(server.port).timeout(10)
    with connect(builder.pool(smtpx.PoolConfig(max_size=1))) as t:
        outcomes = t.send_many(messages)
    assert len(outcomes) == len(messages)
    assert isinstance(outcomes[3], smtpx.RecipientsRefusedError)
    assert outcomes[3].rejected["bad@x.test"].enhanced_code == "5.1.1"
    assert isinstance(outcomes[4], smtpx.InvalidInputError)
    delivered = [o for i, o in enumerate(outcomes) if i not in (3, 4)]
    assert all(isinstance(o, smtpx.SendResult) for o in delivered)
    assert outcomes[5].accepted == ["m@x.test"]  # type: ignore[union-attr]
    received = [m.rcpt_tos for m in server.messages]
    expected = [(f"r{i}@x.test",) for i in range(3)] + [("m@x.test",)]
    assert received == expected + [(f"r{i}@x.test",) for i in range(3, 12)]
    assert not any(b"bad input" in m.content for m in server.messages)


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_send_many_rotates_connections_at_max_messages(connect: Connect, chunking: bool) -> None:
    with Sink(capture=True, chunking=chunking) as sink:
        with connect(to_sink(sink, max_size=1, max_messages=5)) as t:
            outcomes = t.send_many(numbered(23))
        assert all(isinstance(o, smtpx.SendResult) for o in outcomes)
        assert [m.rcpt_tos[0] for m in sink.messages] == [f"r{i}@x.test" for i in range(23)]
        assert sink.stats().connections == 5  # 5 + 5 + 5 + 5 + 3
        assert all(m.chunks == (1 if chunking else 0) for m in sink.messages)


def test_send_many_over_several_connections(connect: Connect) -> None:
    with Sink(capture=True) as sink:
        with connect(to_sink(sink, max_size=3)) as t:
            outcomes = t.send_many(numbered(200))
        assert [o.accepted for o in outcomes] == [  # type: ignore[union-attr]
            [f"r{i}@x.test"] for i in range(200)
        ]
        assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(
            f"r{i}@x.test" for i in range(200)
        )
        assert sink.stats().connections <= 3


def test_send_many_delivers_medium_bodies_intact(connect: Connect) -> None:
    # Bodies of tens of KiB: a window's write is over the size sent in one piece, so
    # the asyncio driver joins its chunks into writes of a few hundred KiB.
    bodies = [
        b"Subject: %d\r\n\r\n" % i + (b"line %06d of message %d\r\n" % (i, i)) * (1500 + i * 700)
        for i in range(12)
    ]
    items = [(smtpx.Envelope("s@x.test", [f"r{i}@x.test"]), b) for i, b in enumerate(bodies)]
    with Sink(capture=True) as sink:
        with connect(to_sink(sink, max_size=1)) as t:
            outcomes = t.send_many(items)
        assert all(isinstance(o, smtpx.SendResult) for o in outcomes)
        got = {m.rcpt_tos[0]: m.data for m in sink.messages}
    assert got == {f"r{i}@x.test": b for i, b in enumerate(bodies)}


# ---------------------------------------------------------------- the window, exactly
def test_the_window_sends_before_the_earlier_messages_are_answered(connect: Connect) -> None:
    # The server reads all three transactions before it answers any: without the
    # window the client would wait for the first answer and the script would time out.
    script: list[Step] = [GREETING, EHLO, CAPS_CHUNK]
    for i, body in enumerate((b"one\r\n", b"two\r\n", b"thr\r\n")):
        script += [Expect((b"RSET\r\n" if i else b"") + BDAT_GROUP), ExpectBytes(5, body)]
    script += [
        Send(b"250 ok\r\n250 ok\r\n250 first\r\n"),
        Send(b"250 ok\r\n250 ok\r\n250 ok\r\n250 second\r\n"),
        Send(b"250 ok\r\n250 ok\r\n250 ok\r\n250 third\r\n"),
        *QUIT,
    ]
    with ScriptedServer(scripts=[script]) as srv:
        with connect(scripted(srv, window=3)) as t:
            outcomes = t.send_many([(ENV, b"one"), (ENV, b"two"), (ENV, b"thr")])
        srv.wait(5)
    assert [o.response.text for o in outcomes] == ["first", "second", "third"]  # type: ignore[union-attr]


def test_a_disconnect_in_the_window_leaves_the_sent_messages_unknown(connect: Connect) -> None:
    script: list[Step] = [GREETING, EHLO, CAPS_CHUNK]
    for i, body in enumerate((b"one\r\n", b"two\r\n", b"thr\r\n")):
        script += [Expect((b"RSET\r\n" if i else b"") + BDAT_GROUP), ExpectBytes(5, body)]
    script += [Send(b"250 ok\r\n250 ok\r\n250 first\r\n"), Close()]
    with ScriptedServer(scripts=[script]) as srv:
        with connect(scripted(srv, window=3)) as t:
            first, second, third = t.send_many([(ENV, b"one"), (ENV, b"two"), (ENV, b"thr")])
        srv.wait(5)
    assert isinstance(first, smtpx.SendResult)
    assert isinstance(second, smtpx.DeliveryUnknownError)
    assert isinstance(third, smtpx.DeliveryUnknownError)
    assert srv.connections == 1  # never retried


def test_messages_not_taken_before_a_421_are_retried_on_a_fresh_connection(
    connect: Connect,
) -> None:
    # DATA: the second message's commands follow the first's end of data; the server
    # answers that end with 421. Neither message was taken: both go again, once.
    first = [
        GREETING, EHLO, CAPS_PIPE, GROUP, Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        ExpectData(b"one\r\n.\r\n"), GROUP, Send(b"421 4.3.2 shutting down\r\n"),
        ExpectClosed(),
    ]  # fmt: skip
    second = [
        GREETING, EHLO, CAPS_PIPE, GROUP, Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        ExpectData(b"one\r\n.\r\n"), GROUP, Send(b"250 first\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        ExpectData(b"two\r\n.\r\n"), Send(b"250 second\r\n"), *QUIT,
    ]  # fmt: skip
    with ScriptedServer(scripts=[first, second]) as srv:
        with connect(scripted(srv)) as t:
            outcomes = t.send_many([(ENV, b"one"), (ENV, b"two")])
        srv.wait(5)
    assert [o.response.text for o in outcomes] == ["first", "second"]  # type: ignore[union-attr]
    assert srv.connections == 2


def test_a_window_of_one_waits_for_each_answer(connect: Connect) -> None:
    script: list[Step] = [GREETING, EHLO, CAPS_CHUNK]
    for body in (b"one\r\n", b"two\r\n"):  # no RSET: nothing is in flight behind
        script += [Expect(BDAT_GROUP), ExpectBytes(5, body), Send(b"250 ok\r\n" * 3)]
    script += QUIT
    with ScriptedServer(scripts=[script]) as srv:
        with connect(scripted(srv, window=1)) as t:
            outcomes = t.send_many([(ENV, b"one"), (ENV, b"two")])
        srv.wait(5)
    assert all(isinstance(o, smtpx.SendResult) for o in outcomes)


# ---------------------------------------------------------------- the caller's side
def test_a_non_message_is_raised_in_its_turn_and_nothing_after_it_is_sent() -> None:
    with Sink(capture=True) as sink:
        with smtpx.SmtpTransport(to_sink(sink).settings) as t:
            got: list[Any] = []
            with pytest.raises(TypeError, match=r"smtpx\.Envelope"):
                got.extend(t.send_many([*numbered(3), ("not", b"a message"), *numbered(2)]))
            assert len(got) == 3
            assert "active=0 idle=1" in repr(t)
        assert sink.stats().messages == 3


def test_a_failing_iterable_is_raised_after_the_earlier_outcomes() -> None:
    def messages() -> Iterator[Any]:
        yield from numbered(2)
        raise ValueError("the caller's generator broke")

    with Sink() as sink, smtpx.SmtpTransport(to_sink(sink).settings) as t:
        got: list[Any] = []
        with pytest.raises(ValueError, match="generator broke"):
            got.extend(t.send_many(messages()))
        assert sink.stats().messages == 2


def test_stopping_early_collects_what_was_sent_and_keeps_the_connection() -> None:
    with Sink() as sink, smtpx.SmtpTransport(to_sink(sink).settings) as t:
        for n, _ in enumerate(t.send_many(numbered(50)), 1):
            if n == 2:
                break
        assert "active=0 idle=1" in repr(t)
        sent = sink.stats().messages
        assert 2 <= sent <= 2 + 8  # the window (8) at most beyond what was taken
        assert t.send_raw(*numbered(1)[0]).accepted == ["r0@x.test"]


def test_async_send_many_stops_early_and_cancels(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    async def scenario(sink: Sink) -> None:
        async with smtpx.AsyncSmtpTransport(to_sink(sink, max_size=2).settings) as t:
            outcomes = t.send_many(numbered(100), concurrency=2)
            got = [await outcomes.__anext__() for _ in range(3)]
            await outcomes.aclose()
            assert all(isinstance(o, smtpx.SendResult) for o in got)
            assert "active=0" in repr(t)
            taken = sink.stats().messages
            assert 3 <= taken < 100

            item = numbered(1)[0]
            endless = (item for _ in range(10**6))

            async def consume() -> None:
                async with contextlib.aclosing(t.send_many(endless, concurrency=2)) as it:
                    async for _ in it:
                        await asyncio.sleep(0)

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert "active=0" in repr(t)
            assert sink.stats().messages < 10**6

    with Sink() as sink:
        event_loop_instance.run_until_complete(scenario(sink))


def test_async_send_many_refuses_a_bad_concurrency(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    async def scenario() -> None:
        t = smtpx.AsyncSmtpTransport.builder_dangerous("127.0.0.1").build()
        with pytest.raises(smtpx.InvalidInputError, match="concurrency"):
            await t.send_many([], concurrency=0).__anext__()
        with pytest.raises(TypeError, match="concurrency"):
            await t.send_many([], concurrency=True).__anext__()
        await t.aclose()

    event_loop_instance.run_until_complete(scenario())


@pytest.mark.parametrize("depth", [0, 65, -1])
def test_pipeline_window_range(depth: int) -> None:
    with pytest.raises(smtpx.InvalidInputError, match="pipelining window"):
        smtpx.SmtpTransport.builder_dangerous("h.test").pipeline_window(depth)


@pytest.mark.parametrize("depth", [True, 2.0, "4"])
def test_pipeline_window_type(depth: Any) -> None:
    with pytest.raises(TypeError, match="pipelining window"):
        smtpx.SmtpTransport.builder_dangerous("h.test").pipeline_window(depth)


def test_pipeline_window_default_and_setting() -> None:
    builder = smtpx.AsyncSmtpTransport.builder_dangerous("h.test")
    assert builder.settings.window == 8
    assert builder.pipeline_window(16).settings.window == 16
    with pytest.raises(smtpx.InvalidInputError):
        list(smtpx.SmtpTransport(builder.settings).send_many([], window=0))


def test_async_send_many_runs_a_bounded_way_ahead_of_a_slow_consumer(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    pulled = 0
    item = numbered(1)[0]

    def source() -> Iterator[tuple[smtpx.Envelope, bytes]]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield item

    async def scenario(sink: Sink) -> None:
        builder = to_sink(sink, max_size=2).pipeline_window(2)
        async with smtpx.AsyncSmtpTransport(builder.settings) as t:
            outcomes = t.send_many(source(), concurrency=2)
            for _ in range(5):
                assert isinstance(await outcomes.__anext__(), smtpx.SendResult)
            await asyncio.sleep(0.3)  # the senders may go on only so far meanwhile
            assert pulled <= 5 + 2 * 2 * 2  # what was taken, plus 2 x senders x window
            await outcomes.aclose()
        assert sink.stats().messages == pulled  # every message taken was sent and answered

    with Sink() as sink:
        event_loop_instance.run_until_complete(scenario(sink))
