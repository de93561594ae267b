"""smtpx.testing.sink, driven by the stdlib's smtplib and by raw sockets; and the C sink
of the throughput harness (benchmarks/csink/smtp_sink.c), built here when a C compiler
is around."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, cast

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx.testing.sink as sink_module
from smtpx.errors import InvalidInputError
from smtpx.testing.sink import MAX_COMMAND_LINE, MAX_ERRORS, ReceivedMessage, Sink, SinkStats

Loop = Literal["asyncio", "uvloop"]
LOOPS: tuple[Loop, ...] = ("asyncio", "uvloop")
C_SINK_SOURCE = Path(__file__).resolve().parents[1] / "benchmarks" / "csink" / "smtp_sink.c"
EHLO = b"EHLO client.example\r\n"
USERS = {"alice": "wonderland"}


# ---------------------------------------------------------------- helpers
class RawClient:
    """A socket that sends bytes and reads whole replies (multi-line or not)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    @classmethod
    def to(cls, sink: Sink, *, ehlo: bool = True) -> RawClient:
        client = cls(sink.host, sink.port)
        assert client.reply().startswith(b"220 ")
        if ehlo:
            assert client.command(EHLO).startswith(b"250-")
        return client

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: bytes) -> bytes:
        self.send(line if line.endswith(b"\r\n") else line + b"\r\n")
        return self.reply()

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def reply(self) -> bytes:
        start = 0
        while True:
            end = self.buffer.find(b"\r\n", start)
            if end < 0:
                if not self._fill():
                    raise ConnectionError(f"EOF in a reply: {self.buffer!r}")
                continue
            if self.buffer[start + 3 : start + 4] != b"-":
                reply, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
                return reply
            start = end + 2

    def replies(self, n: int) -> list[bytes]:
        return [self.reply() for _ in range(n)]

    def segment(self) -> bytes:
        """What one recv() returns: the replies that arrived together."""
        assert not self.buffer
        return self.sock.recv(1 << 16)

    def closed_by_peer(self) -> bool:
        """True once the sink closed the connection (EOF or reset), unread data dropped."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        return True

    def rest_until_eof(self) -> bytes:
        while self._fill():
            pass
        rest, self.buffer = self.buffer, b""
        return rest

    def starttls(self, context: ssl.SSLContext) -> None:
        assert not self.buffer, "plaintext left over after STARTTLS"
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")


def codes(replies: list[bytes]) -> list[int]:
    return [int(r[:3]) for r in replies]


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def stuff(content: bytes) -> bytes:
    """Dot-stuff message content (the client's half of the DATA transparency rule)."""
    content = content.replace(b"\r\n.", b"\r\n..")
    return b"." + content if content.startswith(b".") else content


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> Loop:
    return cast(Loop, request.param)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink(capture=True) as running:
        yield running


# ---------------------------------------------------------------- smtplib
def test_smtplib_message_is_captured_exactly(loop: Loop) -> None:
    content = b"Subject: dots\r\n\r\n.one dot\r\n..two dots\r\n.\r\nno final newline"
    with Sink(capture=True, loop=loop) as sink:
        assert sink.loop_name == loop
        with smtplib.SMTP(sink.host, sink.port, local_hostname="client.example") as client:
            refused = client.sendmail(
                "from@example.org", ["a@example.net", "b@example.net"], content
            )
        assert refused == {}
        assert sink.wait_for(messages=1)
        assert sink.messages == [
            ReceivedMessage(
                mail_from="from@example.org",
                rcpt_tos=("a@example.net", "b@example.net"),
                data=content + b"\r\n",  # smtplib ends the data with CRLF
                mail_options=(f"SIZE={len(content)}",),
                rcpt_options=((), ()),
                helo="client.example",
                auth_user=None,
                tls=False,
                chunks=0,
            )
        ]


def test_smtplib_sees_the_advertised_extensions(sink: Sink) -> None:
    with smtplib.SMTP(sink.host, sink.port) as client:
        code, _ = client.ehlo()
        assert code == 250
        for extension in ("pipelining", "chunking", "8bitmime", "smtputf8", "size", "dsn"):
            assert client.has_extn(extension), extension
        assert not client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.verify("someone") == (
            252,
            b"2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
        )


def test_smtputf8_addresses(sink: Sink) -> None:
    with smtplib.SMTP(sink.host, sink.port) as client:
        client.sendmail("jörg@exämple.org", ["ñoño@例え.jp"], b"x\r\n", mail_options=["SMTPUTF8"])
    [message] = sink.messages
    assert (message.mail_from, message.rcpt_tos) == ("jörg@exämple.org", ("ñoño@例え.jp",))
    assert "SMTPUTF8" in message.mail_options
    with RawClient.to(sink) as raw:
        assert raw.command("MAIL FROM:<jörg@exämple.org>".encode()).startswith(b"553 5.6.7")
        assert raw.command(b"MAIL FROM:<a@b.example> SMTPUTF8").startswith(b"250")
        assert raw.command(b"RCPT TO:<\xff@b.example>").startswith(b"501 5.1.3")


def test_smtputf8_and_8bitmime_can_be_turned_off() -> None:
    with Sink(smtputf8=False, eightbitmime=False) as sink, RawClient.to(sink, ehlo=False) as raw:
        ehlo = raw.command(EHLO)
        assert b"SMTPUTF8" not in ehlo
        assert b"8BITMIME" not in ehlo
        assert raw.command(b"MAIL FROM:<a@b.example> SMTPUTF8").startswith(b"555 5.5.4")
        assert raw.command(b"MAIL FROM:<a@b.example> BODY=8BITMIME").startswith(b"555 5.5.4")
        assert raw.command(b"MAIL FROM:<a@b.example> BODY=7BIT").startswith(b"250")


def test_parameters_are_kept_with_upper_case_keywords(sink: Sink) -> None:
    with RawClient.to(sink) as raw:
        raw.send(
            b"MAIL FROM:<a@b.example> size=3 body=8BITMIME RET=HDRS ENVID=QQ314159\r\n"
            b"RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.example\r\n"
            b"RCPT TO:<e@d.example>\r\nBDAT 3 LAST\r\nabc"
        )
        assert codes(raw.replies(4)) == [250, 250, 250, 250]
    [message] = sink.messages
    assert message.mail_options == ("SIZE=3", "BODY=8BITMIME", "RET=HDRS", "ENVID=QQ314159")
    assert message.rcpt_options == (("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;c@d.example"), ())


# ---------------------------------------------------------------- pipelining and data
def test_pipelined_group_is_answered_in_one_segment(loop: Loop) -> None:
    with Sink(capture=True, loop=loop) as sink, RawClient.to(sink) as raw:
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        assert raw.segment() == (
            b"250 2.1.0 Sender OK\r\n"
            b"250 2.1.5 Recipient OK\r\n"
            b"354 End data with <CR><LF>.<CR><LF>\r\n"
        )
        raw.send(b"Subject: x\r\n\r\nhello\r\n.\r\n")
        assert raw.reply() == b"250 2.0.0 Message accepted\r\n"
        [message] = sink.messages
        assert message.data == b"Subject: x\r\n\r\nhello\r\n"


def test_many_pipelined_messages_in_one_write_are_all_counted(loop: Loop) -> None:
    body = b"Subject: bulk\r\n\r\n" + b"0123456789" * 50 + b"\r\n"
    one = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\n"
    one += b"BDAT %d LAST\r\n" % len(body) + body
    with Sink(loop=loop) as sink, RawClient.to(sink) as raw:
        raw.send(one * 100)
        assert set(codes(raw.replies(400))) == {250}
        assert raw.command(b"QUIT") == b"221 2.0.0 Bye\r\n"
        assert raw.rest_until_eof() == b""
        assert sink.wait_for(messages=100)
        assert eventually(lambda: sink.stats().active_connections == 0)
        assert sink.stats() == SinkStats(
            connections=1,
            active_connections=0,
            messages=100,
            recipients=200,
            bytes=100 * len(body),
            rejected=0,
            tls_handshakes=0,
            auth_successes=0,
            auth_failures=0,
        )


def test_empty_data_and_lone_dots(sink: Sink) -> None:
    with RawClient.to(sink) as raw:
        for content in (b"", b".\r\n", b"..\r\n", b"a\r\n.\r\n.b\r\n", b"\r\n", b"x.\r\n"):
            raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
            assert codes(raw.replies(3)) == [250, 250, 354]
            raw.send(stuff(content) + b".\r\n")
            assert raw.reply() == b"250 2.0.0 Message accepted\r\n"
    assert [m.data for m in sink.messages] == [
        b"",
        b".\r\n",
        b"..\r\n",
        b"a\r\n.\r\n.b\r\n",
        b"\r\n",
        b"x.\r\n",
    ]


def test_end_of_data_needs_crlf_dot_crlf(sink: Sink) -> None:
    """A bare LF before or after the dot is content, not the end (no SMTP smuggling)."""
    content = b"a\n.\nMAIL FROM:<evil@x.example>\r\nb\r\n.\n\r\nc\r.\r\n"
    with RawClient.to(sink) as raw:
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        assert codes(raw.replies(3)) == [250, 250, 354]
        raw.send(stuff(content) + b".\r\n")
        assert raw.reply() == b"250 2.0.0 Message accepted\r\n"
    [message] = sink.messages
    assert message.data == content


def test_data_sent_byte_by_byte(sink: Sink) -> None:
    content = b"Subject: slow\r\n\r\n.dot\r\nend\r\n"
    with RawClient.to(sink) as raw:
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        assert codes(raw.replies(3)) == [250, 250, 354]
        for octet in stuff(content) + b".\r\n":
            raw.send(bytes([octet]))
        assert raw.reply() == b"250 2.0.0 Message accepted\r\n"
    assert [m.data for m in sink.messages] == [content]


def test_bdat_chunks_are_kept_verbatim(sink: Sink) -> None:
    first, last = b"line\r\n.\r\n", b"\x00\xffbare\n"
    with RawClient.to(sink) as raw:
        raw.send(
            b"MAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<c@d.example>\r\n"
            + b"BDAT %d\r\n" % len(first)
            + first
            + b"BDAT %d LAST\r\n" % len(last)
            + last
        )
        assert raw.replies(4) == [
            b"250 2.1.0 Sender OK\r\n",
            b"250 2.1.5 Recipient OK\r\n",
            b"250 2.0.0 9 octets received\r\n",
            b"250 2.0.0 Message accepted\r\n",
        ]
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 0 LAST\r\n")
        assert codes(raw.replies(3)) == [250, 250, 250]
    assert [(m.data, m.chunks) for m in sink.messages] == [(first + last, 2), (b"", 1)]
    assert sink.stats().bytes == len(first + last)


def test_refused_bdat_chunks_are_still_consumed(sink: Sink) -> None:
    with RawClient.to(sink) as raw:
        raw.send(b"BDAT 4\r\nNOOPBDAT 2 LAST\r\nxyNOOP\r\n")
        assert codes(raw.replies(3)) == [503, 503, 250]
        raw.send(b"MAIL FROM:<a@b.example>\r\nBDAT 3 LAST\r\nabcRSET\r\n")
        assert codes(raw.replies(3)) == [250, 554, 250]
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 1\r\nzDATA\r\n")
        assert codes(raw.replies(4)) == [250, 250, 250, 503]
        for bad in (b"BDAT", b"BDAT x", b"BDAT 1 FIRST", b"BDAT -1", b"BDAT 1 LAST x"):
            assert raw.command(bad).startswith(b"501 5.5.4"), bad
    assert sink.stats().messages == 0


def test_chunking_can_be_turned_off() -> None:
    with Sink(chunking=False) as sink, RawClient.to(sink, ehlo=False) as raw:
        assert b"CHUNKING" not in raw.command(EHLO)
        assert raw.command(b"BDAT 0 LAST").startswith(b"502")


# ---------------------------------------------------------------- SIZE
def test_size_limit() -> None:
    with Sink(size_limit=100, capture=True) as sink, RawClient.to(sink, ehlo=False) as raw:
        assert b"250-SIZE 100\r\n" in raw.command(EHLO)
        assert raw.command(b"MAIL FROM:<a@b.example> SIZE=101").startswith(b"552 5.3.4")
        assert raw.command(b"MAIL FROM:<a@b.example> SIZE=x").startswith(b"501")
        for size, expected in ((100, 250), (101, 552)):
            raw.send(b"MAIL FROM:<a@b.example> SIZE=100\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
            assert codes(raw.replies(3)) == [250, 250, 354]
            raw.send(b"x" * (size - 2) + b"\r\n.\r\n")
            assert int(raw.reply()[:3]) == expected
            raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
            raw.send(b"BDAT 60\r\n" + b"y" * 60 + b"BDAT %d LAST\r\n" % (size - 60))
            raw.send(b"z" * (size - 60))
            assert codes(raw.replies(4)) == [250, 250, 250, expected]
        assert raw.command(b"RCPT TO:<c@d.example>").startswith(b"503")  # transaction reset
    assert [len(m.data) for m in sink.messages] == [100, 100]


def test_smtplib_is_refused_an_oversized_message() -> None:
    with (
        Sink(size_limit=1000) as sink,
        smtplib.SMTP(sink.host, sink.port) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refusal,
    ):
        client.sendmail("a@b.example", ["c@d.example"], b"x" * 2000)
    assert refusal.value.smtp_code == 552


# ---------------------------------------------------------------- sequence and syntax
@pytest.mark.parametrize(
    ("setup", "command", "expected"),
    [
        ([], b"RCPT TO:<a@b.example>", b"503 5.5.1"),
        ([], b"DATA", b"503 5.5.1"),
        ([b"MAIL FROM:<a@b.example>"], b"DATA", b"554 5.5.1"),
        ([b"MAIL FROM:<a@b.example>"], b"MAIL FROM:<a@b.example>", b"503 5.5.1"),
        ([], b"MAIL FROM:a@b.example", b"501 5.5.4"),
        ([], b"MAIL TO:<a@b.example>", b"501 5.5.4"),
        ([], b"MAIL FROM:<a@b.example>SIZE=1", b"501 5.5.4"),
        ([], b"MAIL FROM:<a@b.example> FOO=1", b"555 5.5.4"),
        ([], b"MAIL FROM:<a@b.example> SIZE=1 SIZE=1", b"501 5.5.4"),
        ([], b"MAIL FROM:<a\tb@c.example>", b"501 5.1.3"),
        ([b"MAIL FROM:<>"], b"RCPT TO:<>", b"501 5.1.3"),
        ([b"MAIL FROM:<>"], b"RCPT TO:<a@b.example> NOTIFY=SOMETIMES", b"501 5.5.4"),
        ([b"MAIL FROM:<>"], b"RCPT TO:<a@b.example> ORCPT=nosemicolon", b"501 5.5.4"),
        ([b"MAIL FROM:<>"], b"RCPT TO:<a@b.example> FOO", b"555 5.5.4"),
        ([b"MAIL FROM:<>"], b"RCPT TO:<a@b.example> NOTIFY=NEVER", b"250 2.1.5"),
        ([b"MAIL FROM:<>", b"RCPT TO:<a@b.example>"], b"DATA now", b"501 5.5.4"),
        ([], b"EHLO", b"501 5.5.4"),
        ([], b"HELO two words", b"501 5.5.4"),
        ([], b"RSET now", b"501 5.5.4"),
        ([], b"QUIT now", b"501 5.5.4"),
        ([], b"VRFY", b"501 5.5.4"),
        ([], b"NOOP anything", b"250 2.0.0"),
        ([], b"FOO", b"500 5.5.2"),
        ([], b"NOOP a\nRSET", b"500 5.5.2 Bare CR, LF or NUL"),
        ([], b"NOOP a\rb", b"500 5.5.2 Bare CR, LF or NUL"),
        ([], b"NOOP \x00", b"500 5.5.2 Bare CR, LF or NUL"),
        ([], b"STARTTLS", b"502 5.5.1"),
        ([], b"AUTH PLAIN", b"502 5.5.1"),
        ([b"HELO client.example"], b"MAIL FROM:<a@b.example> SIZE=10", b"555 5.5.4"),
        ([b"HELO client.example"], b"MAIL FROM:<a@b.example>", b"250 2.1.0"),
    ],
)
def test_bad_sequences_and_syntax(
    sink: Sink, setup: list[bytes], command: bytes, expected: bytes
) -> None:
    with RawClient.to(sink) as raw:
        for line in setup:
            assert raw.command(line)[:1] == b"2", line
        assert raw.command(command).startswith(expected)
        assert raw.command(b"NOOP") == b"250 2.0.0 OK\r\n"  # the session goes on


def test_mail_needs_a_hello(sink: Sink) -> None:
    with RawClient.to(sink, ehlo=False) as raw:
        assert raw.command(b"MAIL FROM:<a@b.example>").startswith(b"503 5.5.1")
        assert raw.command(b"HELO client.example") == b"250 localhost\r\n"


def test_rset_and_ehlo_end_the_transaction(sink: Sink) -> None:
    with RawClient.to(sink) as raw:
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRSET\r\nRCPT TO:<c@d>\r\n")
        assert codes(raw.replies(4)) == [250, 250, 250, 503]
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n" + EHLO + b"DATA\r\n")
        assert codes(raw.replies(4)) == [250, 250, 250, 503]
    assert sink.stats().messages == 0


def test_recipients_per_message_are_capped(sink: Sink) -> None:
    limit = sink_module.MAX_RECIPIENTS
    with RawClient.to(sink) as raw:
        raw.send(b"MAIL FROM:<a@b.example>\r\n" + b"RCPT TO:<c@d.example>\r\n" * (limit + 1))
        replies = codes(raw.replies(limit + 2))
        assert replies == [250] * (limit + 1) + [452]


# ---------------------------------------------------------------- limits
def test_command_line_length_limit(sink: Sink) -> None:
    longest = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7)  # + CRLF: exactly the limit
    with RawClient.to(sink) as raw:
        assert raw.command(longest) == b"250 2.0.0 OK\r\n"
        assert raw.command(longest + b"x") == b"500 5.5.2 Line too long\r\n"
        raw.send(b"NOOP " + b"y" * 5000)  # the end of the long line comes later
        assert raw.reply() == b"500 5.5.2 Line too long\r\n"
        raw.send(b"y" * 100 + b"\r\nNOOP\r\n")
        assert raw.reply() == b"250 2.0.0 OK\r\n"


def test_an_endless_line_gets_the_client_disconnected(sink: Sink) -> None:
    with RawClient.to(sink) as raw:
        raw.send(b"x" * 100_000)
        assert raw.rest_until_eof() == (
            b"500 5.5.2 Line too long\r\n421 4.7.0 Line too long, closing connection\r\n"
        )
    assert eventually(lambda: sink.stats().active_connections == 0)


def test_too_many_errors_get_the_client_disconnected(sink: Sink) -> None:
    with RawClient.to(sink) as raw:
        raw.send(b"BOGUS\r\n" * (MAX_ERRORS + 5))
        replies = raw.rest_until_eof().splitlines()
    assert replies == [b"500 5.5.2 Command unrecognized"] * MAX_ERRORS + [
        b"421 4.7.0 Too many errors, closing connection"
    ]
    assert sink.stats().rejected == MAX_ERRORS


def test_a_client_that_does_not_read_is_paused_then_served(
    sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """Replies that pile up make the sink stop reading (memory stays bounded by the
    kernel's buffers), and it goes on once the client reads again."""
    caplog.set_level(logging.DEBUG, logger="smtpx.testing")
    count = 400_000  # 5.6 MB of replies: more than the socket buffers hold
    with RawClient.to(sink) as raw:
        flooder = threading.Thread(target=raw.send, args=(b"NOOP\r\n" * count + b"QUIT\r\n",))
        flooder.start()
        try:
            assert eventually(lambda: "stops reading" in caplog.text)
            replies = 0
            while chunk := raw.sock.recv(1 << 20):
                replies += chunk.count(b"\n")
        finally:
            flooder.join()
    assert replies == count + 1  # and the last was QUIT's


# ---------------------------------------------------------------- TLS
def test_starttls_then_auth_and_send(
    loop: Loop, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with (
        Sink(capture=True, tls_context=server_context, auth=USERS, loop=loop) as sink,
        smtplib.SMTP(sink.host, sink.port) as client,
    ):
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # no AUTH in clear
        client.starttls(context=client_context)
        client.ehlo()
        assert not client.has_extn("starttls")
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        client.login("alice", "wonderland")
        client.sendmail("a@b.example", ["c@d.example"], b"Subject: secret\r\n\r\nhi\r\n")
        [message] = sink.messages
        assert (message.tls, message.auth_user) == (True, "alice")
        stats = sink.stats()
        assert (stats.tls_handshakes, stats.auth_successes, stats.messages) == (1, 1, 1)


def test_plaintext_injected_after_starttls_is_discarded(
    loop: Loop, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with (
        Sink(tls_context=server_context, loop=loop) as sink,
        RawClient.to(sink) as raw,
    ):
        raw.send(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nNOOP\r\n")
        assert raw.segment() == b"220 2.0.0 Ready to start TLS\r\n"
        raw.starttls(client_context)
        ehlo = raw.command(EHLO)  # the first reply over TLS answers the EHLO
        assert ehlo.startswith(b"250-localhost\r\n")
        assert b"STARTTLS" not in ehlo
        assert raw.command(b"RCPT TO:<c@d.example>").startswith(b"503 5.5.1")  # no MAIL
        assert raw.command(b"STARTTLS") == b"503 5.5.1 TLS already active\r\n"
        assert raw.command(b"QUIT") == b"221 2.0.0 Bye\r\n"


def test_starttls_forgets_the_session(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with Sink(tls_context=server_context) as sink, RawClient.to(sink) as raw:
        assert raw.command(b"MAIL FROM:<a@b.example>").startswith(b"250")
        assert raw.command(b"STARTTLS").startswith(b"220")
        raw.starttls(client_context)
        assert raw.command(b"MAIL FROM:<a@b.example>") == b"503 5.5.1 Send EHLO or HELO first\r\n"
        assert raw.command(EHLO).startswith(b"250-")
        assert raw.command(b"MAIL FROM:<a@b.example>").startswith(b"250")


def test_a_failed_handshake_closes_only_that_connection(
    server_context: ssl.SSLContext,
) -> None:
    with Sink(tls_context=server_context) as sink:
        with RawClient.to(sink) as raw:
            assert raw.command(b"STARTTLS").startswith(b"220")
            raw.send(b"this is not a TLS client hello\r\n" * 10)
            assert raw.closed_by_peer()
        assert eventually(lambda: sink.stats().active_connections == 0)
        with RawClient.to(sink) as raw:
            assert raw.command(b"NOOP") == b"250 2.0.0 OK\r\n"
        assert sink.stats().tls_handshakes == 0


def test_implicit_tls(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    with (
        Sink(capture=True, tls_context=server_context, implicit_tls=True) as sink,
        smtplib.SMTP_SSL(sink.host, sink.port, context=client_context) as client,
    ):
        client.ehlo()
        assert not client.has_extn("starttls")
        client.sendmail("a@b.example", ["c@d.example"], b"x\r\n")
        assert [m.tls for m in sink.messages] == [True]


# ---------------------------------------------------------------- AUTH
@pytest.fixture
def auth_sink() -> Iterator[Sink]:
    with Sink(auth=USERS, require_tls_for_auth=False, capture=True) as running:
        yield running


@pytest.mark.parametrize(
    "exchange",
    [
        [(b"AUTH PLAIN " + b64("\0alice\0wonderland"), b"235 2.7.0")],
        [(b"AUTH PLAIN " + b64("alice\0alice\0wonderland"), b"235 2.7.0")],
        [(b"AUTH PLAIN", b"334 \r\n"), (b64("\0alice\0wonderland"), b"235 2.7.0")],
        [
            (b"AUTH LOGIN", b"334 VXNlcm5hbWU6"),
            (b64("alice"), b"334 UGFzc3dvcmQ6"),
            (b64("wonderland"), b"235 2.7.0"),
        ],
        [(b"auth login " + b64("alice"), b"334 UGFzc3dvcmQ6"), (b64("wonderland"), b"235")],
    ],
)
def test_auth_success(auth_sink: Sink, exchange: list[tuple[bytes, bytes]]) -> None:
    with RawClient.to(auth_sink) as raw:
        assert raw.command(b"MAIL FROM:<a@b.example>").startswith(b"530 5.7.0")
        for line, expected in exchange:
            assert raw.command(line).startswith(expected)
        assert raw.command(b"AUTH PLAIN " + b64("\0alice\0wonderland")).startswith(b"503")
        raw.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 1 LAST\r\nx")
        assert codes(raw.replies(3)) == [250, 250, 250]
    assert [m.auth_user for m in auth_sink.messages] == ["alice"]
    assert auth_sink.stats().auth_successes == 1


@pytest.mark.parametrize(
    "exchange",
    [
        [(b"AUTH PLAIN " + b64("\0alice\0wrong"), b"535 5.7.8")],
        [(b"AUTH PLAIN " + b64("\0mallory\0wonderland"), b"535 5.7.8")],
        [(b"AUTH PLAIN " + b64("bob\0alice\0wonderland"), b"535 5.7.8")],
        [(b"AUTH PLAIN " + b64("alice wonderland"), b"535 5.7.8")],
        [(b"AUTH PLAIN =", b"535 5.7.8")],
        [(b"AUTH PLAIN", b"334"), (b"*", b"501 5.0.0")],
        [(b"AUTH PLAIN", b"334"), (b"not base64!", b"501 5.5.2")],
        [(b"AUTH LOGIN", b"334"), (b64("alice"), b"334"), (b64("wrong"), b"535 5.7.8")],
        [(b"AUTH LOGIN", b"334"), (b"*", b"501 5.0.0")],
        [(b"AUTH CRAM-MD5", b"504 5.5.4")],
        [(b"AUTH", b"501 5.5.4")],
        [(b"AUTH PLAIN a b", b"501 5.5.4")],
    ],
)
def test_auth_failure(auth_sink: Sink, exchange: list[tuple[bytes, bytes]]) -> None:
    with RawClient.to(auth_sink) as raw:
        for line, expected in exchange:
            assert raw.command(line).startswith(expected)
        assert raw.command(b"MAIL FROM:<a@b.example>").startswith(b"530 5.7.0")


def test_auth_rules(auth_sink: Sink) -> None:
    with RawClient.to(auth_sink, ehlo=False) as raw:
        assert raw.command(b"AUTH PLAIN " + b64("\0alice\0wonderland")).startswith(b"503")
        assert raw.command(b"HELO client.example").startswith(b"250")
        assert raw.command(b"AUTH PLAIN " + b64("\0alice\0wonderland")).startswith(b"503")
        assert raw.command(EHLO).endswith(b"250 AUTH PLAIN LOGIN\r\n")


def test_auth_in_clear_is_refused_when_tls_is_required() -> None:
    with Sink(auth=USERS) as sink, RawClient.to(sink, ehlo=False) as raw:
        assert b"AUTH" not in raw.command(EHLO)
        assert raw.command(b"AUTH PLAIN " + b64("\0alice\0wonderland")) == (
            b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
        )


def test_smtplib_login_failure_never_logs_the_password(
    auth_sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpx.testing")
    with smtplib.SMTP(auth_sink.host, auth_sink.port) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login("alice", "hunter2-secret")
        assert failure.value.smtp_code == 535
        client.login("alice", "wonderland")
    assert eventually(lambda: auth_sink.stats().active_connections == 0)
    stats = auth_sink.stats()
    assert (stats.auth_failures, stats.auth_successes) == (2, 1)  # smtplib tried PLAIN, LOGIN
    assert "authenticated as 'alice'" in caplog.text
    assert "hunter2" not in caplog.text
    assert "wonderland" not in caplog.text


# ---------------------------------------------------------------- lifecycle
def test_wait_for_times_out(sink: Sink) -> None:
    assert not sink.wait_for(messages=1, timeout=0.05)


def test_wait_for_wakes_up_when_a_message_arrives(sink: Sink) -> None:
    def send_later() -> None:
        time.sleep(0.05)
        with smtplib.SMTP(sink.host, sink.port) as client:
            client.sendmail("a@b.example", ["c@d.example"], b"x\r\n")

    sender = threading.Thread(target=send_later)
    sender.start()
    try:
        assert sink.wait_for(messages=1, timeout=5)
    finally:
        sender.join()


def test_close_with_clients_still_connected(
    loop: Loop, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """Plain clients are closed at once; a TLS client that never answers the sink's
    close_notify is cut off after a grace period."""
    sink = Sink(loop=loop, tls_context=server_context)
    sink.start()
    assert "127.0.0.1" in repr(sink)
    with RawClient.to(sink) as idle, RawClient.to(sink) as mid_data, RawClient.to(sink) as tls:
        assert tls.command(b"STARTTLS").startswith(b"220")
        tls.starttls(client_context)
        mid_data.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\npartial")
        assert eventually(lambda: sink.stats().active_connections == 3)
        sink.close()
        assert idle.rest_until_eof() == b""
        assert sink.stats().active_connections == 0
        assert sink.stats().messages == 0
    sink.close()  # idempotent


def test_a_sink_inside_a_running_event_loop_leaves_that_loop_alone(
    run_async: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """The sink runs its own loop in its own thread: starting, using and closing it from
    a coroutine works (it would fail if it ran a loop in the caller's thread)."""

    async def main() -> None:
        with Sink(capture=True) as sink:
            await asyncio.get_running_loop().run_in_executor(None, send_one, sink)
            assert [m.data for m in sink.messages] == [b"x\r\n"]

    def send_one(sink: Sink) -> None:
        with smtplib.SMTP(sink.host, sink.port) as client:
            client.sendmail("a@b.example", ["c@d.example"], b"x\r\n")

    run_async(main())


def test_lifecycle_misuse() -> None:
    sink = Sink()
    with pytest.raises(RuntimeError, match="not listening"):
        _ = sink.port
    sink.close()  # closing a sink that never started is fine
    with sink:
        with pytest.raises(RuntimeError, match="already started"):
            sink.start()
        with pytest.raises(RuntimeError, match="capture=True"):
            _ = sink.messages
    with Sink() as first, pytest.raises(OSError, match="address already in use"):
        Sink(port=first.port).start()  # the port is taken


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"implicit_tls": True}, "needs a tls_context"),
        ({"size_limit": -1}, "size_limit must be >= 0"),
        ({"loop": "trio"}, "loop must be 'asyncio' or 'uvloop'"),
        ({"hostname": "two words"}, "hostname must be printable ASCII"),
        ({"hostname": ""}, "hostname must be printable ASCII"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Sink(**options)


def test_uvloop_missing_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes "import uvloop" fail
    with Sink(loop="uvloop") as sink:
        assert sink.loop_name == "asyncio"
        with RawClient.to(sink) as raw:
            assert raw.command(b"NOOP").startswith(b"250")


def test_standalone_sink_prints_its_port_and_stats() -> None:
    src = Path(sink_module.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(src))
    command = [sys.executable, "-m", "smtpx.testing.sink", "--quiet"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True) as process:
        assert process.stdout is not None
        word, host, port = process.stdout.readline().split()
        assert word == "listening"
        with smtplib.SMTP(host, int(port)) as client:
            for _ in range(3):
                client.sendmail("a@b.example", ["c@d.example", "e@d.example"], b"abc\r\n")
        process.send_signal(signal.SIGTERM)
        stats = json.loads(process.stdout.read())
    assert process.returncode == 0
    assert (stats["messages"], stats["recipients"], stats["bytes"]) == (3, 6, 15)


# ---------------------------------------------------------------- a session without sockets
class _Transport(asyncio.Transport):
    """Collects what a session writes and whether it reads (no socket needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 25) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def _session() -> tuple[sink_module._Session, _Transport, sink_module._Ledger]:
    """A capturing session of a sink's configuration, connected to a :class:`_Transport`."""
    config = Sink(capture=True)._config  # never started: no server, no thread
    ledger = sink_module._Ledger()
    session = sink_module._Session(config, ledger, sink_module._Sessions())
    transport = _Transport()
    session.connection_made(transport)
    return session, transport, ledger


def _feed_session(pieces: list[bytes]) -> tuple[bytes, list[ReceivedMessage]]:
    """Run a session over ``pieces``: (everything it wrote, the messages it accepted)."""
    session, transport, ledger = _session()
    for piece in pieces:
        session.data_received(piece)
    return b"".join(transport.written), ledger.captured()


def test_reading_pauses_while_replies_back_up() -> None:
    session, transport, _ = _session()
    session.pause_writing()  # the transport's buffer passed its high-water mark
    assert not transport.reading
    session.data_received(b"NOOP\r\n")  # what was read before still gets its reply
    assert transport.written[-1] == b"250 2.0.0 OK\r\n"
    assert not transport.reading
    session.resume_writing()
    assert transport.reading


_content = st.lists(
    st.sampled_from([b".", b"..", b"\r\n", b"\r", b"\n", b"x", b"\r\n.\r", b".\r\n"]), max_size=12
).map(lambda parts: b"".join(parts) + b"\r\n" if parts else b"")


@settings(max_examples=60, deadline=None)
@given(contents=st.lists(_content, min_size=1, max_size=4), data=st.data())
def test_replies_and_messages_do_not_depend_on_how_input_is_split(
    contents: list[bytes], data: st.DataObject
) -> None:
    stream = EHLO
    for i, content in enumerate(contents):
        stream += b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
        if i % 2:
            stream += b"BDAT %d LAST\r\n" % len(content) + content
        else:
            stream += b"DATA\r\n" + stuff(content) + b".\r\n"
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=20)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole = _feed_session([stream])
    assert [m.data for m in whole[1]] == contents
    assert _feed_session(pieces) == whole
    assert _feed_session([bytes([octet]) for octet in stream]) == whole


# ---------------------------------------------------------------- the C sink
@pytest.fixture(scope="module")
def c_sink_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        pytest.skip("no C compiler to build the C sink")
    binary = tmp_path_factory.mktemp("csink") / "smtp_sink"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(C_SINK_SOURCE)], check=True)
    return binary


def _start_c_sink(binary: Path, *options: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [str(binary), "--quiet", *options], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    word, host, port = process.stdout.readline().split()
    assert (word, host) == ("listening", "127.0.0.1")
    return process, int(port)


def test_c_sink_counts_pipelined_messages(c_sink_binary: Path) -> None:
    body = b"Subject: c\r\n\r\n.dot\r\n" + b"z" * 3000 + b"\r\n"
    process, port = _start_c_sink(c_sink_binary)
    with process, RawClient("127.0.0.1", port) as raw:
        assert raw.reply().startswith(b"220 ")
        ehlo = raw.command(EHLO)
        for extension in (b"PIPELINING", b"CHUNKING", b"8BITMIME", b"SIZE", b"SMTPUTF8"):
            assert extension in ehlo
        assert raw.command(b"RCPT TO:<c@d.example>").startswith(b"503")
        group = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
        raw.send(group)
        assert raw.segment() == (
            b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
            b"354 End data with <CR><LF>.<CR><LF>\r\n"
        )
        for _ in range(4):  # the end of one message and the next group in one write
            raw.send(stuff(body) + b".\r\n" + group)
            assert codes(raw.replies(4)) == [250, 250, 250, 354]
        raw.send(stuff(body) + b".\r\n")
        assert codes(raw.replies(1)) == [250]
        chunked = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\n"
        chunked += b"BDAT 1000\r\n" + b"q" * 1000 + b"BDAT %d LAST\r\n" % len(body) + body
        raw.send(chunked * 5)
        assert set(codes(raw.replies(25))) == {250}
        data = stuff(body) + b".\r\n"
        for cut in range(len(data) - 5, len(data)):  # CRLF.CRLF split across two reads
            raw.send(group)
            assert codes(raw.replies(3)) == [250, 250, 354]
            raw.send(data[:cut])
            time.sleep(0.02)  # lets the sink read the first part on its own
            raw.send(data[cut:])
            assert codes(raw.replies(1)) == [250]
        for octet in group:  # command lines byte by byte
            raw.send(bytes([octet]))
        assert codes(raw.replies(3)) == [250, 250, 354]
        raw.send(data)
        assert codes(raw.replies(1)) == [250]
        assert raw.command(b"QUIT") == b"221 2.0.0 Bye\r\n"
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        stats = json.loads(process.stdout.read())
    assert process.returncode == 0
    size = len(stuff(body))
    assert stats == {
        "messages": 16,
        "recipients": 11 + 10,
        "bytes": 11 * size + 5 * (1000 + len(body)),
        "connections": 1,
    }


def test_c_sink_stops_after_count(c_sink_binary: Path) -> None:
    process, port = _start_c_sink(c_sink_binary, "--count", "2")
    with process, RawClient("127.0.0.1", port) as raw:
        assert raw.reply().startswith(b"220 ")
        raw.send(
            EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2 LAST\r\nok" * 2
        )
        assert codes(raw.replies(7))[-1] == 250
        assert process.stdout is not None
        stats = json.loads(process.stdout.read())
        assert process.wait(timeout=5) == 0
    assert stats["messages"] == 2
