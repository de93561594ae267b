"""``smtpx demo``: three messages sent one at a time, each with its result, then many
messages through the pooled transport's ``send_many``, to a local sink.

The sink runs in its own process (``python -m smtpx.testing.sink``), so client and
server do not share an interpreter lock; the client sends from one thread per pooled
connection. Bounded in count and in time: it always stops by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

from smtpx import IMPLEMENTATION
from smtpx.config import Envelope, PoolConfig
from smtpx.errors import SmtpError
from smtpx.message import Message
from smtpx.transport import SmtpTransport
from smtpx.transport.builder import DEFAULT_WINDOW

__all__ = ["run_demo"]

#: Seconds to wait for the sink to start and to report.
SINK_TIMEOUT = 20.0
#: Messages sent one at a time, each result printed, before the bulk run.
FIRST_MESSAGES = 3


class Progress:
    """A progress bar on a terminal (at most ten redraws a second), or a line every
    tenth of the way when the output is not a terminal."""

    WIDTH = 30

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total = max(1, total)
        self.out = out
        self.tty = out.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_tenth = -1

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw < 0.1 and done < self.total:
                return
            self._last_draw = now
            filled = self.WIDTH * done // self.total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            rate = done / max(now - self.start, 1e-9)
            self.out.write(f"\r[{bar}] {done}/{self.total} {rate:8.0f} msg/s")
            self.out.flush()
        else:
            tenth = 10 * done // self.total
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.out.write(f"{10 * tenth:3d}% {done}/{self.total}\n")
                self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def _start_sink() -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "smtpx.testing.sink", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = _readline(proc.stdout, SINK_TIMEOUT)
    parts = line.split()
    if len(parts) != 3 or parts[0] != "listening":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the sink did not start (it said {line!r})")
    return proc, parts[1], int(parts[2])


def _readline(stream: IO[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""


def run_demo(
    *, messages: int, size: int, connections: int, seconds: float, window: int = DEFAULT_WINDOW
) -> int:
    """Send ``messages`` messages of ``size`` bytes over ``connections`` pooled
    connections (one sending thread each, ``window`` transactions in flight on each),
    then print the throughput."""
    if messages < 1 or size < 64 or connections < 1 or seconds <= 0 or not 1 <= window <= 64:
        print(
            "demo: --messages >= 1, --size >= 64, --connections >= 1, --seconds > 0, --window 1..64"
        )
        return 2
    header = b"From: demo@smtpx.test\r\nTo: sink@smtpx.test\r\nSubject: smtpx demo\r\n\r\n"
    body = header + b"x" * (size - len(header) - 2) + b"\r\n"
    sink, host, port = _start_sink()
    print(
        f"smtpx demo: {messages} messages of {size} bytes to a local sink at {host}:{port}, "
        f"{connections} pooled connections, window {window}, core: {IMPLEMENTATION}"
    )
    transport = (
        SmtpTransport.builder_dangerous(host)
        .port(port)
        .hello_name("demo.smtpx.test")
        .timeout(30)
        .pool(PoolConfig(max_size=connections, max_messages=100_000, max_lifetime=3600))
        .build()
    )
    # First a few real messages, one at a time, each with its result; then the bulk run.
    greeted = 0
    for number in range(1, FIRST_MESSAGES + 1):
        message = (
            Message.builder()
            .from_("smtpx demo <demo@smtpx.test>")
            .to(f"Reader {number} <reader{number}@smtpx.test>")
            .subject(f"smtpx demo, message {number} of {FIRST_MESSAGES}")
            .body(f"Hello from smtpx: message {number} of {FIRST_MESSAGES}.\n")
        )
        try:
            result = transport.send(message)
        except SmtpError as exc:
            print(f"message {number}: failed: {type(exc).__name__}: {exc}")
            continue
        greeted += 1
        reply = result.response
        print(
            f"message {number}: {reply.code} {reply.text} "
            f"(accepted: {', '.join(result.accepted)}; refused: {len(result.rejected)})"
        )
    envelope = Envelope("demo@smtpx.test", ["sink@smtpx.test"])
    progress = Progress(messages, sys.stderr)
    lock = threading.Lock()
    counts = {"next": 0, "sent": 0, "failed": 0}
    deadline = time.perf_counter() + seconds
    errors: list[SmtpError] = []

    def share() -> Iterator[tuple[Envelope, bytes]]:
        """This thread's next messages, until all are taken or time is up."""
        while time.perf_counter() < deadline:
            with lock:
                if counts["next"] >= messages:
                    return
                counts["next"] += 1
            yield envelope, body

    def worker() -> None:
        # send_many keeps up to `window` transactions in flight on the connection.
        for outcome in transport.send_many(share(), window=window):
            if isinstance(outcome, SmtpError):
                errors.append(outcome)
            with lock:
                counts["failed" if isinstance(outcome, SmtpError) else "sent"] += 1
                done = counts["sent"] + counts["failed"]
            progress.update(done)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        progress.finish()
    finally:
        transport.close()
        sink.terminate()
        assert sink.stdout is not None
        report = _readline(sink.stdout, SINK_TIMEOUT)
        sink.wait(SINK_TIMEOUT)
        sink.stdout.close()
    received = json.loads(report)["messages"] if report.startswith("{") else None
    if received is not None:
        received -= greeted  # the first messages were counted too
    sent = counts["sent"]
    print(
        f"sent {sent} messages ({sent * size / 1e6:.1f} MB) in {elapsed:.2f} s: "
        f"{sent / elapsed:,.0f} msgs/s, {sent * size / elapsed / 1e6:.1f} MB/s; "
        f"the sink received {received}; failures: {counts['failed']}"
    )
    for error in errors[:3]:
        print(f"  failure: {type(error).__name__}: {error}")
    ok = counts["failed"] == 0 and greeted == FIRST_MESSAGES and received == sent
    return 0 if ok else 1
