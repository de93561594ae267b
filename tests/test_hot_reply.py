"""The reply parser and Response: both twins, same results, same errors, same messages."""

from __future__ import annotations

import copy
import pickle
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError, ProtocolError

from twins import both, differential

UNUSABLE = "reply parser is unusable after an earlier protocol error"
# The twin fixture holds no state, so hypothesis may reuse it across examples.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

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

# An outcome: each reply as (code, raw), then the error message (or None), then pending
# (None after an error: what is buffered then depends on where the error was seen).
Outcome = tuple[list[tuple[int, bytes]], str | None, int | None]


def parse(mod: ModuleType, data: bytes, **limits: int) -> list[Any]:
    parser = mod.ReplyParser(**limits)
    parser.feed(data)
    replies: list[Any] = parser.replies()
    return replies


def only(mod: ModuleType, data: bytes) -> Any:
    replies = parse(mod, data)
    assert len(replies) == 1
    return replies[0]


def error_of(mod: ModuleType, data: bytes, **limits: int) -> str:
    """The message of the error that data raises, after any good replies before it."""
    error = outcome(mod, [data], limits)[1]
    assert error is not None, "no ProtocolError"
    return error


def feed_until_error(
    drain: Callable[[], object], feed: Callable[[bytes], None], chunk: bytes
) -> str:
    """Feed chunk after chunk, draining after each, until that raises; its message."""
    for _ in range(100_000):
        feed(chunk)
        try:
            assert not drain()
        except ProtocolError as exc:
            return str(exc)
    raise AssertionError("no ProtocolError")


def outcome(
    mod: ModuleType,
    chunks: Iterable[bytes],
    limits: dict[str, int] | None = None,
    *,
    one_by_one: bool = False,
) -> Outcome:
    """Feed the chunks, draining after each one (with replies() or next_reply())."""
    parser = mod.ReplyParser(**(limits or {}))
    got: list[tuple[int, bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            if one_by_one:
                while (reply := parser.next_reply()) is not None:
                    got.append((reply.code, reply.raw))
            else:
                while replies := parser.replies():
                    got += [(r.code, r.raw) for r in replies]
    except ProtocolError as exc:
        return got, str(exc), None
    return got, None, parser.pending


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def wire(code: int, texts: Sequence[bytes], bare_last: bool = False) -> bytes:
    """A reply's bytes; with bare_last, an empty last line is sent as ``250\\r\\n``."""
    out = []
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        if last and bare_last and not text:
            out.append(b"%d\r\n" % code)
        else:
            out.append(b"%d%s%s\r\n" % (code, b" " if last else b"-", text))
    return b"".join(out)


def details(reply: Any) -> tuple[Any, ...]:
    return (
        type(reply.code),
        reply.code,
        reply.raw,
        reply.lines,
        reply.text,
        reply.enhanced_code,
        reply.message,
        repr(reply),
        reply.is_success,
        reply.is_intermediate,
        reply.is_transient,
        reply.is_permanent,
    )


# ------------------------------------------------------------------ well-formed replies
def test_single_line(reply_mod: ModuleType) -> None:
    reply = only(reply_mod, b"250 2.1.0 Ok\r\n")
    assert reply.code == 250
    assert type(reply.code) is int
    assert reply.lines == ("2.1.0 Ok",)
    assert type(reply.lines) is tuple
    assert reply.text == "2.1.0 Ok"
    assert reply.raw == b"250 2.1.0 Ok\r\n"
    assert type(reply.raw) is bytes
    assert reply.enhanced_code == "2.1.0"
    assert reply.message == "Ok"


def test_multi_line_ehlo(reply_mod: ModuleType) -> None:
    reply = only(reply_mod, EHLO)
    assert reply.code == 250
    assert reply.raw == EHLO
    assert len(reply.lines) == 10
    assert reply.lines[0] == "mail.example.com Hello client.example.org [192.0.2.1]"
    assert reply.lines[-1] == "STARTTLS"
    assert reply.text == "\n".join(reply.lines)
    assert reply.text.splitlines()[8] == "AUTH PLAIN LOGIN XOAUTH2"
    assert reply.enhanced_code is None
    assert reply.message == reply.text


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"250\r\n", ("",)),
        (b"250 \r\n", ("",)),
        (b"250-\r\n250 x\r\n", ("", "x")),
        (b"250-a\r\n250\r\n", ("a", "")),
        (b"250  two spaces \r\n", (" two spaces ",)),
        (b"250 tab\there \x01\x7f\r\n", ("tab\there \x01\x7f",)),
        (b"250 a-b 250 c\r\n", ("a-b 250 c",)),
    ],
)
def test_line_text(reply_mod: ModuleType, data: bytes, lines: tuple[str, ...]) -> None:
    reply = only(reply_mod, data)
    assert reply.lines == lines
    assert reply.raw == data


def test_utf8_and_invalid_utf8(reply_mod: ModuleType) -> None:
    reply = only(reply_mod, b"250-h\xc3\xa9llo \xe2\x9c\x93\r\n250 bad \xff\xc3 end\r\n")
    assert reply.lines == ("héllo ✓", "bad \ufffd\ufffd end")
    assert reply.raw == b"250-h\xc3\xa9llo \xe2\x9c\x93\r\n250 bad \xff\xc3 end\r\n"


@pytest.mark.parametrize(
    ("data", "enhanced", "message"),
    [
        (b"250 2.1.0 Ok\r\n", "2.1.0", "Ok"),
        (b"250 2.1.0\r\n", "2.1.0", ""),
        (b"250 2.1.0 \r\n", "2.1.0", ""),
        (b"250 2.123.456 Ok\r\n", "2.123.456", "Ok"),
        (b"451 4.3.0 Try later\r\n", "4.3.0", "Try later"),
        (b"550 5.7.1 Relaying denied\r\n", "5.7.1", "Relaying denied"),
        (b"250 5.1.0 Ok\r\n", None, "5.1.0 Ok"),  # class is not the code's first digit
        (b"550 2.0.0 Odd\r\n", None, "2.0.0 Odd"),
        (b"354 3.0.0 Go on\r\n", None, "3.0.0 Go on"),  # 3 is no RFC 3463 class
        (b"250 2.1000.0 Ok\r\n", None, "2.1000.0 Ok"),  # 4-digit subject
        (b"250 2.1.0000 Ok\r\n", None, "2.1.0000 Ok"),  # 4-digit detail
        (b"250 2.10 Ok\r\n", None, "2.10 Ok"),  # a missing dot
        (b"250 2..0 Ok\r\n", None, "2..0 Ok"),
        (b"250 2.1. Ok\r\n", None, "2.1. Ok"),
        (b"250 2.1.0Ok\r\n", None, "2.1.0Ok"),  # no space after it
        (b"250 2.1.0.1 Ok\r\n", None, "2.1.0.1 Ok"),
        (b"250 2.1.0\tOk\r\n", None, "2.1.0\tOk"),
        (b"250  2.1.0 Ok\r\n", None, " 2.1.0 Ok"),
        (b"250 2.\xd9\xa1.0 Ok\r\n", None, "2.\u0661.0 Ok"),  # a non-ASCII digit
        (b"250\r\n", None, ""),
        (b"250-2.1.0 first\r\n250 2.1.0 second\r\n", "2.1.0", "first\nsecond"),
        (b"250-2.1.0 first\r\n250 no code\r\n", "2.1.0", "first\nno code"),
        (b"250-hello\r\n250 2.1.0 x\r\n", None, "hello\nx"),
        (b"550-5.1.1 No such user\r\n550 5.1.1 x\r\n", "5.1.1", "No such user\nx"),
    ],
)
def test_enhanced_code_and_message(
    reply_mod: ModuleType, data: bytes, enhanced: str | None, message: str
) -> None:
    reply = only(reply_mod, data)
    assert reply.enhanced_code == enhanced
    assert reply.message == message


def test_pipelined_replies_in_order(reply_mod: ModuleType) -> None:
    data = b"250 2.1.0 Sender ok\r\n250 2.1.5 Rcpt ok\r\n550 5.1.1 No\r\n354 Go ahead\r\n"
    replies = parse(reply_mod, data)
    assert [r.code for r in replies] == [250, 250, 550, 354]
    assert b"".join(r.raw for r in replies) == data
    parser = reply_mod.ReplyParser()
    parser.feed(data)
    assert [parser.next_reply().code for _ in range(4)] == [250, 250, 550, 354]
    assert parser.next_reply() is None
    assert parser.replies() == []


def test_incomplete_reply_waits(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    for chunk in (b"25", b"0-first\r", b"\n250", b" last\r"):
        parser.feed(chunk)
        assert parser.next_reply() is None
        assert parser.replies() == []
    parser.feed(b"\n")
    assert parser.replies() == [reply_mod.Response(250, ["first", "last"])]


def test_feed_accepts_bytes_like(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(bytearray(b"250-a\r\n"))
    parser.feed(memoryview(b"xx250 b\r\n")[2:])
    parser.feed(b"")
    assert [r.lines for r in parser.replies()] == [("a", "b")]


@pytest.mark.parametrize("data", ["250 Ok\r\n", 250, None, [b"250 Ok\r\n"]])
def test_feed_refuses_other_types(reply_mod: ModuleType, data: object) -> None:
    parser = reply_mod.ReplyParser()
    with pytest.raises(TypeError, match="feed\\(\\) takes bytes, bytearray or memoryview"):
        parser.feed(data)
    assert parser.pending == 0


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"2x0 Ok\r\n", "bad code b'2x0' at line 1 (stream offset 0)"),
        (b"150 Ok\r\n", "bad code b'150' at line 1 (stream offset 0)"),
        (b"650 Ok\r\n", "bad code b'650' at line 1 (stream offset 0)"),
        (b"260 Ok\r\n", "bad code b'260' at line 1 (stream offset 0)"),
        (b"25a Ok\r\n", "bad code b'25a' at line 1 (stream offset 0)"),
        (b" 250 Ok\r\n", "bad code b' 25' at line 1 (stream offset 0)"),
        (b"2_5 Ok\r\n", "bad code b'2_5' at line 1 (stream offset 0)"),
        (b"\x0050 Ok\r\n", "bad code b'\\x0050' at line 1 (stream offset 0)"),
        (b"25\r\n", "bad code b'25' at line 1 (stream offset 0)"),
        (b"2\n", "bad code b'2' at line 1 (stream offset 0)"),
        (b"\r\n", "bad code b'' at line 1 (stream offset 0)"),
        (b"250 Ok\r\n\r\n", "bad code b'' at line 2 (stream offset 8)"),
        (b"250x\r\n", "bad separator b'x' after the code at line 1 (stream offset 3)"),
        (b"250\t\r\n", "bad separator b'\\t' after the code at line 1 (stream offset 3)"),
        (b"250\x00\r\n", "bad separator b'\\x00' after the code at line 1 (stream offset 3)"),
        (b"2500 Ok\r\n", "bad separator b'0' after the code at line 1 (stream offset 3)"),
        (b"250 Ok\n", "bare LF at line 1 (stream offset 6)"),
        (b"250\n", "bare LF at line 1 (stream offset 3)"),
        (b"250-a\r\n250 b\n", "bare LF at line 2 (stream offset 12)"),
        (b"250 O\rk\r\n", "bare CR at line 1 (stream offset 5)"),
        (b"250\r250 Ok\r\n", "bare CR at line 1 (stream offset 3)"),
        (b"250 Ok\r\r\n", "bare CR at line 1 (stream offset 6)"),
        (b"250 O\x00k\r\n", "NUL byte at line 1 (stream offset 5)"),
        (b"250-a\x00\r\n", "NUL byte at line 1 (stream offset 5)"),
        (
            b"250-a\r\n251 b\r\n",
            "code 251 differs from the reply's first code 250 at line 2 (stream offset 7)",
        ),
        (
            b"250-a\r\n250-b\r\n550 c\r\n",
            "code 550 differs from the reply's first code 250 at line 3 (stream offset 14)",
        ),
        (b"250 a\r\n220 b\r\n2x0 c\r\n", "bad code b'2x0' at line 3 (stream offset 14)"),
    ],
)
def test_malformed_reply_messages(reply_mod: ModuleType, data: bytes, message: str) -> None:
    assert error_of(reply_mod, data) == f"malformed reply: {message}"


def test_error_seen_as_soon_as_its_byte_is_buffered(reply_mod: ModuleType) -> None:
    for data in (b"2x0", b"250-a\r\n251", b"250 O\x00", b"250 Ok\rX", b"250x", b"25\r"):
        parser = reply_mod.ReplyParser()
        parser.feed(data)
        with pytest.raises(ProtocolError, match=r"^malformed reply: "):
            parser.next_reply()
    for data in (b"2x", b"250 Ok\r", b"250-a\r\n25", b"250"):
        parser = reply_mod.ReplyParser()
        parser.feed(data)
        assert parser.next_reply() is None
        assert parser.pending == len(data)


def test_error_location_counts_the_whole_stream(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"220 ready\r\n")
    assert parser.next_reply() is not None
    parser.feed(b"250-a\r\n250 b\r\n")
    assert len(parser.replies()) == 1
    parser.feed(b"354 go\r\n250 Ok\n")
    assert parser.next_reply() is not None
    with pytest.raises(ProtocolError) as info:
        parser.next_reply()
    assert str(info.value) == "malformed reply: bare LF at line 5 (stream offset 39)"


def test_next_reply_raises_at_the_bad_reply(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"250 a\r\n251 b\r\n2x0 c\r\n250 d\r\n")
    assert parser.next_reply().lines == ("a",)
    assert parser.next_reply().lines == ("b",)
    with pytest.raises(ProtocolError, match=r"^malformed reply: bad code b'2x0' at line 3 "):
        parser.next_reply()
    for call in (parser.next_reply, parser.replies, parser.next_reply):
        with pytest.raises(ProtocolError) as info:
            call()
        assert str(info.value) == UNUSABLE


def test_replies_returns_the_good_ones_then_raises(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"250 a\r\n251 b\r\n2x0 c\r\n250 d\r\n")
    assert [r.lines for r in parser.replies()] == [("a",), ("b",)]
    with pytest.raises(ProtocolError) as info:
        parser.replies()
    assert str(info.value) == "malformed reply: bad code b'2x0' at line 3 (stream offset 14)"
    with pytest.raises(ProtocolError) as info:
        parser.replies()
    assert str(info.value) == UNUSABLE


def test_a_pending_error_is_raised_by_next_reply_too(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"250 a\r\n250\n")
    assert len(parser.replies()) == 1
    with pytest.raises(ProtocolError, match=r"^malformed reply: bare LF at line 2"):
        parser.next_reply()
    with pytest.raises(ProtocolError, match=f"^{UNUSABLE}$"):
        parser.next_reply()


def test_broken_parser_drops_what_it_is_fed(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"2x0\r\n")
    with pytest.raises(ProtocolError):
        parser.replies()
    pending = parser.pending
    parser.feed(b"250 Ok\r\n" * 100)  # never raises
    assert parser.pending == pending
    with pytest.raises(ProtocolError, match=f"^{UNUSABLE}$"):
        parser.replies()


def test_parser_cannot_be_pickled_or_copied(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"250 a\r\n25")
    for clone in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match=r"^a ReplyParser cannot be pickled or copied$"):
            clone(parser)
    assert [r.raw for r in parser.replies()] == [b"250 a\r\n"]


# ------------------------------------------------------------------- pending and clear
def test_pending(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    assert parser.pending == 0
    parser.feed(b"250 a\r\n250 b\r\n25")
    assert parser.pending == 16
    assert parser.next_reply() is not None
    assert parser.pending == 9
    assert len(parser.replies()) == 1
    assert parser.pending == 2
    parser.feed(b"0 c\r\n")
    assert parser.replies()[0].raw == b"250 c\r\n"
    assert parser.pending == 0


def test_clear_drops_buffered_bytes(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"220 Ready to start TLS\r\n250-injected\r\n250 x\r\n250 y")
    assert parser.next_reply().code == 220
    assert parser.clear() == 26
    assert parser.pending == 0
    assert parser.replies() == []
    assert parser.clear() == 0
    parser.feed(b"250 fresh\r\n")
    assert [r.lines for r in parser.replies()] == [("fresh",)]


def test_clear_keeps_counting_the_stream(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    parser.feed(b"220 go\r\n250-a\r\n250 b")  # 8 bytes of a reply, then 2 lines begun
    assert parser.next_reply() is not None
    assert parser.clear() == 12
    parser.feed(b"2x0\r\n")
    with pytest.raises(ProtocolError) as info:
        parser.replies()
    assert str(info.value) == "malformed reply: bad code b'2x0' at line 4 (stream offset 20)"


# ------------------------------------------------------------------------------ limits
def test_line_of_exactly_max_line_is_accepted(reply_mod: ModuleType) -> None:
    line = b"250 " + b"x" * 14 + b"\r\n"
    assert len(line) == 20
    assert parse(reply_mod, line, max_line=20)[0].raw == line
    assert parse(reply_mod, b"250-" + b"x" * 14 + b"\r\n" + line, max_line=20)[0].code == 250


@pytest.mark.parametrize(
    "data",
    [
        b"250 " + b"x" * 15 + b"\r\n",  # 21 octets with its CRLF
        b"250 " + b"x" * 100,  # no line end in sight
        b"250-a\r\n250-" + b"x" * 15 + b"\r\n250 b\r\n",
    ],
)
def test_line_over_max_line(reply_mod: ModuleType, data: bytes) -> None:
    start = data.rfind(b"250-x")
    start = max(start, 0)
    line = data[:start].count(b"\n") + 1
    assert error_of(reply_mod, data, max_line=20) == (
        f"oversized reply: line longer than 20 octets at line {line} (stream offset {start + 20})"
    )


def test_reply_over_max_reply(reply_mod: ModuleType) -> None:
    reply = b"250-" + b"x" * 46 + b"\r\n"  # 52 octets a line
    exact = reply * 2 + b"250 " + b"y" * 40 + b"\r\n"  # 150 octets
    assert len(exact) == 150
    assert parse(reply_mod, exact, max_reply=150)[0].raw == exact
    parser = reply_mod.ReplyParser(max_reply=150)
    parser.feed(b"250 first\r\n" + reply * 2 + b"250 " + b"y" * 41 + b"\r\n")
    assert parser.next_reply().lines == ("first",)
    with pytest.raises(ProtocolError) as info:
        parser.next_reply()
    assert (
        str(info.value) == "oversized reply: longer than 150 octets at line 4 (stream offset 161)"
    )


def test_reply_limit_wins_where_both_limits_meet(reply_mod: ModuleType) -> None:
    message = error_of(reply_mod, b"250 abcdefgh\r\n", max_line=10, max_reply=10)
    assert message == "oversized reply: longer than 10 octets at line 1 (stream offset 10)"


def test_limit_comes_before_the_grammar_of_its_byte(reply_mod: ModuleType) -> None:
    # The byte past the limit is a bare LF and would end the line: the limit is seen first.
    message = error_of(reply_mod, b"250 " + b"x" * 16 + b"\n", max_line=20)
    assert message == "oversized reply: line longer than 20 octets at line 1 (stream offset 20)"
    # An error before the limit is seen first.
    message = error_of(reply_mod, b"250 " + b"x" * 15 + b"\x00" + b"x" * 30, max_line=20)
    assert message == "malformed reply: NUL byte at line 1 (stream offset 19)"


def test_endless_line_raises_before_buffering_much(reply_mod: ModuleType) -> None:
    chunk = b"x" * 1000
    parser = reply_mod.ReplyParser(max_line=8192)
    parser.feed(b"250 ")
    assert feed_until_error(parser.replies, parser.feed, chunk) == (
        "oversized reply: line longer than 8192 octets at line 1 (stream offset 8192)"
    )
    assert parser.pending <= 8192 + len(chunk)


def test_endless_reply_raises_before_buffering_much(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser(max_reply=65536)
    line = b"250-" + b"x" * 96 + b"\r\n"
    assert feed_until_error(parser.next_reply, parser.feed, line) == (
        "oversized reply: longer than 65536 octets at line 643 (stream offset 65536)"
    )
    assert parser.pending <= 65536 + len(line)


@pytest.mark.parametrize("name", ["max_line", "max_reply"])
def test_limit_validation(reply_mod: ModuleType, name: str) -> None:
    for value in (5, 1 << 30):
        assert reply_mod.ReplyParser(**{name: value}).pending == 0
    for value in (4, 0, -1, (1 << 30) + 1):
        with pytest.raises(InvalidInputError, match=f"^{name} must be 5..1073741824, not "):
            reply_mod.ReplyParser(**{name: value})
    for bad in (8192.0, True, "8192", None):
        with pytest.raises(TypeError, match=f"^{name} must be an int, not "):
            reply_mod.ReplyParser(**{name: bad})


def test_memory_does_not_grow_with_replies_parsed(reply_mod: ModuleType) -> None:
    parser = reply_mod.ReplyParser()
    chunk = b"250 2.1.0 Ok\r\n" * 73 + b"250-partial"

    def run(rounds: int) -> None:
        for _ in range(rounds):
            parser.feed(chunk)
            parser.replies()
            parser.feed(b"\r\n250 end\r\n")
            assert len(parser.replies()) == 1

    run(50)
    tracemalloc.start()
    try:
        run(50)
        before = tracemalloc.get_traced_memory()[0]
        run(300)  # 22,000 replies, 300 kB
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 16_384


@pytest.mark.parametrize("tail", [b"", b"250 par"])
def test_a_drained_big_buffer_is_given_back(reply_mod: ModuleType, tail: bytes) -> None:
    parser = reply_mod.ReplyParser()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parser.feed(b"250 2.1.0 Ok\r\n" * 20_000 + tail)  # 280 kB
        assert len(parser.replies()) == 20_000
        if tail:
            parser.feed(b"tial\r\n")
            assert [r.raw for r in parser.replies()] == [b"250 partial\r\n"]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 100_000


# ---------------------------------------------------------------------------- Response
@pytest.mark.parametrize("code", [200, 250, 259, 354, 421, 452, 500, 554, 559])
def test_response_constructor(reply_mod: ModuleType, code: int) -> None:
    reply = reply_mod.Response(code, ["2.0.0 first", "second"])
    assert reply.code == code
    assert reply.lines == ("2.0.0 first", "second")
    assert reply.raw == b"%d-2.0.0 first\r\n%d second\r\n" % (code, code)
    assert reply_mod.Response(code).raw == b"%d \r\n" % code
    assert reply_mod.Response(code).lines == ("",)


def test_response_constructor_raw_and_utf8(reply_mod: ModuleType) -> None:
    assert reply_mod.Response(250, ("héllo",)).raw == b"250 h\xc3\xa9llo\r\n"
    reply = reply_mod.Response(250, ["Ok"], raw=b"250 Ok\r\n")
    assert reply.raw == b"250 Ok\r\n"
    assert reply == only(reply_mod, b"250 Ok\r\n")


@pytest.mark.parametrize(
    ("code", "lines", "error", "message"),
    [
        (199, ("",), InvalidInputError, "reply code must be 200..559 with a middle digit"),
        (560, ("",), InvalidInputError, "reply code must be 200..559 with a middle digit"),
        (
            260,
            ("",),
            InvalidInputError,
            "reply code must be 200..559 with a middle digit 0..5, not 260",
        ),
        (25, ("",), InvalidInputError, "reply code must be"),
        (True, ("",), TypeError, "code must be an int, not bool"),
        ("250", ("",), TypeError, "code must be an int, not str"),
        (250.0, ("",), TypeError, "code must be an int, not float"),
        (250, "Ok", TypeError, "lines must be a sequence of str, not str"),
        (250, b"Ok", TypeError, "lines must be a sequence of str, not bytes"),
        (250, (), InvalidInputError, "a reply has at least one line"),
        (250, ("a", b"b"), TypeError, "line 2 of the reply must be str, not bytes"),
        (250, ("a\r\nMAIL FROM:<x>",), InvalidInputError, "line 1 of the reply contains CR"),
        (250, ("a", "b\nc"), InvalidInputError, "line 2 of the reply contains LF"),
        (250, ("a\0",), InvalidInputError, "line 1 of the reply contains NUL"),
        (250, ("\udcff",), InvalidInputError, "line 1 of the reply is not valid UTF-8"),
    ],
)
def test_response_constructor_validation(
    reply_mod: ModuleType, code: object, lines: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        reply_mod.Response(code, lines)
    assert str(info.value).startswith(message)


def test_response_raw_must_be_bytes(reply_mod: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^raw must be bytes, not bytearray$"):
        reply_mod.Response(250, ["Ok"], raw=bytearray(b"250 Ok\r\n"))


def test_response_is_immutable(reply_mod: ModuleType) -> None:
    for reply in (reply_mod.Response(250, ["Ok"]), only(reply_mod, b"250 Ok\r\n")):
        for name in ("code", "lines", "raw", "text", "enhanced_code", "_code", "_raw", "other"):
            with pytest.raises(AttributeError):
                setattr(reply, name, 500)
        with pytest.raises(AttributeError):
            del reply.code
        with pytest.raises(AttributeError, match="Response is immutable"):
            reply.__init__(550, ["no"])
        assert (reply.code, reply.raw, reply.lines) == (250, b"250 Ok\r\n", ("Ok",))


def test_response_cannot_be_subclassed(reply_mod: ModuleType) -> None:
    with pytest.raises(TypeError):
        type("Mine", (reply_mod.Response,), {})


def test_response_repr(reply_mod: ModuleType) -> None:
    assert repr(only(reply_mod, b"250 2.1.0 Ok\r\n")) == "<Response 250 '2.1.0 Ok'>"
    assert repr(only(reply_mod, EHLO)) == (
        "<Response 250 'mail.example.com Hello client.example.org [192.0.2.1]'>"
    )
    assert repr(reply_mod.Response(421, ['it\'s "quoted"'])) == (
        "<Response 421 'it\\'s \"quoted\"'>"
    )
    long = reply_mod.Response(550, ["x" * 61])
    assert repr(long) == f"<Response 550 '{'x' * 57}...'>"
    assert repr(reply_mod.Response(550, ["x" * 60])) == f"<Response 550 '{'x' * 60}'>"


def test_response_equality_and_hash(reply_mod: ModuleType) -> None:
    parsed = only(reply_mod, b"250-a\r\n250 b\r\n")
    built = reply_mod.Response(250, ["a", "b"])
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert len({parsed, built}) == 1
    assert parsed != reply_mod.Response(250, ["a", "c"])
    assert only(reply_mod, b"250\r\n") != only(reply_mod, b"250 \r\n")  # raw differs
    assert parsed != (250, b"250-a\r\n250 b\r\n")
    assert parsed != "250"


def test_response_copy_and_pickle(reply_mod: ModuleType) -> None:
    for reply in (
        only(reply_mod, b"250-2.1.0 a\r\n250 b\xff\r\n"),
        reply_mod.Response(550, ["5.1.1 x"]),
        reply_mod.Response(250, ["kept"], raw=b"250 other\r\n"),
    ):
        for clone in (
            copy.copy(reply),
            copy.deepcopy(reply),
            pickle.loads(pickle.dumps(reply)),
        ):
            assert type(clone) is type(reply)
            assert clone == reply
            assert details(clone) == details(reply)


@pytest.mark.parametrize(
    ("code", "flags"),
    [
        (220, (True, False, False, False)),
        (259, (True, False, False, False)),
        (334, (False, True, False, False)),
        (354, (False, True, False, False)),
        (421, (False, False, True, False)),
        (452, (False, False, True, False)),
        (500, (False, False, False, True)),
        (554, (False, False, False, True)),
    ],
)
def test_response_predicates(
    reply_mod: ModuleType, code: int, flags: tuple[bool, bool, bool, bool]
) -> None:
    for reply in (reply_mod.Response(code, ["x"]), only(reply_mod, b"%d x\r\n" % code)):
        assert (
            reply.is_success,
            reply.is_intermediate,
            reply.is_transient,
            reply.is_permanent,
        ) == flags


# -------------------------------------------------------------------------- hypothesis
codes = st.integers(200, 559).filter(lambda c: c // 10 % 10 <= 5)
text_bytes = st.lists(
    st.sampled_from(
        [
            *(b"2.1.0", b"5.7.1", b"4.4.", b"2.10.300", b" ", b"Ok", b".", b"1", b"\t", b"-"),
            *(b"\xc3\xa9", b"\xff", b"\xe2\x9c", b"\x7f", b"250", b"x" * 30),
        ]
    ),
    max_size=6,
).map(b"".join)
reply_wires = st.tuples(codes, st.lists(text_bytes, min_size=1, max_size=4), st.booleans()).map(
    lambda r: wire(*r)
)
streams = st.lists(reply_wires, max_size=6).map(b"".join)
noise = st.lists(
    st.tuples(
        st.sampled_from(["insert", "replace", "delete"]),
        st.integers(0, 1 << 16),
        st.sampled_from([b"\r", b"\n", b"\0", b"\r\n", b"x", b"-", b" ", b"9", b"1", b"251-"]),
    ),
    max_size=3,
)
tokens = st.lists(
    st.sampled_from(
        [
            *(b"2", b"5", b"0", b"6", b"-", b" ", b"\r", b"\n", b"\r\n", b"\0", b"x", b"\xff"),
            *(b"250 ", b"250-", b"251-", b"550 ", b"2.1.0 ", b"Ok", b"\t"),
        ]
    ),
    max_size=40,
).map(b"".join)
# Small limits, often equal or close (where the two limits meet, the reply's comes first).
limits = st.integers(5, 40).flatmap(
    lambda max_line: st.fixed_dictionaries(
        {
            "max_line": st.just(max_line),
            "max_reply": st.integers(5, 120) | st.integers(max_line, max_line + 12),
        }
    )
)
cut_points = st.lists(st.integers(0, 1 << 16), max_size=8)


def mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    for kind, where, token in edits:
        at = where % (len(data) + 1)
        if kind == "insert":
            data = data[:at] + token + data[at:]
        elif kind == "replace":
            data = data[:at] + token + data[at + 1 :]
        else:
            data = data[:at] + data[at + 1 :]
    return data


noisy_streams = st.one_of(
    st.binary(max_size=200),
    tokens,
    st.builds(mutate, streams, noise),
)


def full_outcome(mod: ModuleType, chunks: Iterable[bytes], **limits: int) -> Any:
    """Like outcome() but with every property of every reply."""
    parser = mod.ReplyParser(**limits)
    got: list[tuple[Any, ...]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while replies := parser.replies():
                got += [details(r) for r in replies]
    except ProtocolError as exc:
        return got, (type(exc), str(exc)), None
    return got, None, parser.pending


@differential
@given(data=noisy_streams, limits=limits, cuts=cut_points)
def test_differential_random_streams(data: bytes, limits: dict[str, int], cuts: list[int]) -> None:
    pure, compiled = both("_reply")
    expected = full_outcome(pure, [data], **limits)
    assert full_outcome(compiled, [data], **limits) == expected
    assert full_outcome(compiled, split(data, cuts), **limits) == expected


@differential
@given(data=st.builds(mutate, streams, noise), cuts=cut_points)
def test_differential_default_limits(data: bytes, cuts: list[int]) -> None:
    pure, compiled = both("_reply")
    chunks = split(data, cuts)
    assert full_outcome(compiled, chunks) == full_outcome(pure, chunks)


@differential
@given(code=codes, lines=st.lists(st.text(max_size=12), min_size=1, max_size=3))
def test_differential_response(code: int, lines: list[str]) -> None:
    pure, compiled = both("_reply")
    try:
        expected: Any = details(pure.Response(code, lines))
    except (InvalidInputError, TypeError) as exc:
        expected = (type(exc), str(exc))
    try:
        got: Any = details(compiled.Response(code, lines))
    except (InvalidInputError, TypeError) as exc:
        got = (type(exc), str(exc))
    assert got == expected


@differential
@given(
    code=codes,
    text=st.lists(st.sampled_from(["2", "4", "5", ".", "1", "23", "456", " ", "x", "٣"])).map(
        "".join
    ),
)
def test_differential_enhanced_code(code: int, text: str) -> None:
    pure, compiled = both("_reply")
    lines = [text, text[::-1]]
    a, b = pure.Response(code, lines), compiled.Response(code, lines)
    assert (a.enhanced_code, a.message) == (b.enhanced_code, b.message)


@fixture_ok
@given(data=noisy_streams, limits=limits, cuts=cut_points)
def test_chunking_invariance(
    reply_mod: ModuleType, data: bytes, limits: dict[str, int], cuts: list[int]
) -> None:
    whole = outcome(reply_mod, [data], limits)
    assert outcome(reply_mod, split(data, cuts), limits) == whole
    assert outcome(reply_mod, [data[i : i + 1] for i in range(len(data))], limits) == whole
    assert outcome(reply_mod, split(data, cuts), limits, one_by_one=True) == whole


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=streams, tail=reply_wires, cut=st.integers(0, 1 << 16), cuts=cut_points)
def test_well_formed_stream_with_trailing_data(
    reply_mod: ModuleType, data: bytes, tail: bytes, cut: int, cuts: list[int]
) -> None:
    trailing = tail[: cut % len(tail)]  # a reply cut short: never complete
    got, error, pending = outcome(reply_mod, split(data + trailing, cuts))
    assert error is None
    assert b"".join(raw for _, raw in got) == data
    assert pending == len(trailing)
    assert [code for code, _ in got] == [int(raw[:3]) for _, raw in got]


@fixture_ok
@given(code=codes, lines=st.lists(st.text(max_size=20), min_size=1, max_size=5))
def test_round_trip(reply_mod: ModuleType, code: int, lines: list[str]) -> None:
    try:
        built = reply_mod.Response(code, lines)
    except InvalidInputError:  # CR, LF, NUL or a lone surrogate in a line
        assert any(ch in "\r\n\0" or 0xD800 <= ord(ch) < 0xE000 for ch in "".join(lines))
        return
    (parsed,) = parse(reply_mod, built.raw)
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert parsed.lines == built.lines == tuple(lines)
    assert (parsed.enhanced_code, parsed.message, repr(parsed)) == (
        built.enhanced_code,
        built.message,
        repr(built),
    )
