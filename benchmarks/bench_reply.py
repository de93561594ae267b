"""Reply parsing: pipelined replies fed in one buffer and drained with ``replies()``.

Groups:

``reply-parse 1M short pipelined``
    1,000,000 × ``250 2.1.0 Ok\\r\\n`` (what a server sends back to pipelined MAIL/RCPT).
``reply-parse 100k EHLO``
    100,000 × a realistic 10-line EHLO reply.

Rows, besides the two twins (a fresh ``ReplyParser``, ``feed()``, ``replies()``):

``naive``
    The straightforward parser of smtplib/aiosmtplib: split on CRLF, ``int()`` of the
    first three characters, group continuation lines. It checks nothing (no grammar, no
    limits, no same-code rule) and keeps each line's bytes, where the twins also keep the
    reply's raw bytes and decode the text only when asked.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import TWINS, twin

SHORT = b"250 2.1.0 Ok\r\n"
EHLO = (
    b"250-mail.example.com Hello client.example.org [192.0.2.1]\r\n"
    b"250-SIZE 52428800\r\n"
    b"250-8BITMIME\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-DSN\r\n"
    b"250-AUTH PLAIN LOGIN XOAUTH2\r\n"
    b"250 STARTTLS\r\n"
)
# group -> (one reply, how many in the buffer, rounds for the compiled twin / the others)
GROUPS = {
    "reply-parse 1M short pipelined": (SHORT, 1_000_000, (10, 3)),
    "reply-parse 100k EHLO": (EHLO, 100_000, (10, 3)),
}


def naive(data: bytes) -> list[tuple[int, list[bytes]]]:
    """Replies as (code, text of each line), the way smtplib-style code parses them."""
    replies = []
    lines: list[bytes] = []
    for line in data.split(b"\r\n")[:-1]:
        lines.append(line[4:])
        if line[3:4] != b"-":
            replies.append((int(line[:3]), lines))
            lines = []
    return replies


@cache
def stream(group: str) -> bytes:
    reply, count, _ = GROUPS[group]
    return reply * count


@cache
def expected(group: str) -> list[tuple[int, list[str]]]:
    """What every row must find in the group's stream: the naive parser's replies."""
    return [(code, [t.decode() for t in texts]) for code, texts in naive(stream(group))]


def twin_parser(impl: str) -> Any:
    reply_parser = twin("_reply", impl).ReplyParser

    def parse(data: bytes) -> list[Any]:
        parser = reply_parser()
        parser.feed(data)
        replies: list[Any] = parser.replies()
        return replies

    return parse


@pytest.mark.parametrize("impl", [*TWINS, "naive"])
@pytest.mark.parametrize("group", list(GROUPS))
def test_reply_parse(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    _, count, (compiled_rounds, rounds) = GROUPS[group]
    data = stream(group)
    if impl == "naive":
        parse: Any = naive
    else:
        parse = twin_parser(impl)
        got = parse(data)
        assert [(r.code, list(r.lines)) for r in got] == expected(group)
        assert b"".join(r.raw for r in got) == data
        del got
        if impl == "cython":
            rounds = compiled_rounds
    benchmark.group = group
    benchmark.extra_info["work"] = count
    benchmark.extra_info["unit"] = "replies"
    benchmark.pedantic(parse, args=(data,), rounds=rounds, warmup_rounds=1)  # type: ignore[no-untyped-call]
