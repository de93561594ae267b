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
