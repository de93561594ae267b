"""Large streamed bodies: a 1 GiB message goes through each driver with bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import smtpx

from drivers import Client

Connect = Callable[[smtpx.TransportBuilder[Any]], Client]

GIB = 1 << 30
CHUNK = 1 << 20
#: The most Python memory a 1 GiB send may hold at once: a few chunks in flight.
MEMORY_BOUND = 48 << 20


@pytest.fixture
def sink_process() -> Iterator[tuple[int, Callable[[], dict[str, int]]]]:
    """A counting sink in its own process (so it does not share the test's GIL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smtpx.testing.sink", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["listening"], line
    port = int(line[2])

    def stats() -> dict[str, int]:
        proc.terminate()
        assert proc.stdout is not None
        out, _ = proc.communicate(timeout=30)
        result: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return result

    try:
        yield port, stats
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def gigabyte() -> Iterator[bytes]:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy\r\n"
    chunk = line * (CHUNK // len(line)) + b"x" * (CHUNK % len(line))
    yield b"Subject: big\r\n\r\n"
    for _ in range(GIB // CHUNK):
        yield chunk


@pytest.mark.slow
def test_a_1_gib_streamed_body_with_bounded_memory(
    connect: Connect, sink_process: tuple[int, Callable[[], dict[str, int]]]
) -> None:
    port, stats = sink_process
    client = connect(
        smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(port).timeout(60).pool(None)
    )
    tracemalloc.start()
    try:
        result = client.send_raw(smtpx.Envelope("a@x.test", ["b@x.test"]), gigabyte())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.response.code == 250
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB"
    received = stats()
    assert received["messages"] == 1
    assert received["bytes"] >= GIB


# ---------------------------------------------------------------- asynchronous bodies
def _async_send(loop: Any, coro_factory: Callable[[Any], Any]) -> Any:
    """Run ``coro_factory(transport)`` against a capturing sink; returns (result, sink)."""
    from smtpx.testing.sink import Sink

    async def scenario(port: int) -> Any:
        builder = smtpx.AsyncSmtpTransport.builder_dangerous("127.0.0.1").port(port).timeout(10)
        async with builder.build() as t:
            return await coro_factory(t)

    sink = Sink(capture=True).start()
    try:
        return loop.run_until_complete(scenario(sink.port)), sink
    finally:
        sink.close()


ENVELOPE = smtpx.Envelope("a@x.test", ["b@x.test"])


async def _chunks(*parts: Any) -> Any:
    for part in parts:
        yield part


def test_async_iterable_body_is_streamed_and_encoded_across_chunks(
    event_loop_instance: Any,
) -> None:
    parts = (b"Subject: s\r\n\r\na\r", b"\n.", b"dot\n", b"bare\rcr", b"\n")

    async def send(t: smtpx.AsyncSmtpTransport) -> Any:
        return await t.send_raw(ENVELOPE, _chunks(*parts))

    result, sink = _async_send(event_loop_instance, send)
    assert result.accepted == ["b@x.test"]
    (message,) = sink.messages
    assert message.data == b"Subject: s\r\n\r\na\r\n.dot\r\nbare\r\ncr\r\n"


def test_a_failing_async_body_is_raised_and_nothing_is_delivered(event_loop_instance: Any) -> None:
    async def broken() -> Any:
        yield b"Subject: s\r\n\r\nstart\r\n"
        raise ValueError("the body source failed")

    async def send(t: smtpx.AsyncSmtpTransport) -> Any:
        with pytest.raises(ValueError, match="body source failed"):
            await t.send_raw(ENVELOPE, broken())
        assert "active=0 idle=0" in repr(t)  # the half-sent connection was dropped
        with pytest.raises(TypeError, match="yielded str"):
            await t.send_raw(ENVELOPE, _chunks(b"ok\r\n", "text"))
        return await t.send_raw(ENVELOPE, _chunks(b"after\r\n"))

    result, sink = _async_send(event_loop_instance, send)
    assert result.accepted == ["b@x.test"]
    assert [m.data for m in sink.messages] == [b"after\r\n"]


def test_async_bodies_in_send_many(event_loop_instance: Any) -> None:
    async def send(t: smtpx.AsyncSmtpTransport) -> Any:
        items = [(ENVELOPE, _chunks(b"one\r\n", b"two\r\n")), (ENVELOPE, b"three\r\n")]
        return [outcome async for outcome in t.send_many(items)]

    outcomes, sink = _async_send(event_loop_instance, send)
    assert all(isinstance(o, smtpx.SendResult) for o in outcomes)
    assert [m.data for m in sink.messages] == [b"one\r\ntwo\r\n", b"three\r\n"]


def test_the_sync_transport_refuses_async_bodies() -> None:
    t = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").build()
    with pytest.raises(TypeError, match="asynchronous iterable"):
        t.send_raw(ENVELOPE, _chunks(b"x"))
    with pytest.raises(TypeError, match="asynchronous iterable"):
        list(t.send_many([(ENVELOPE, _chunks(b"x"))]))
    t.close()
