"""smtpx.testing.scripted: every step type, driven by a plain socket (and ssl) client."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest

from smtpx.testing.scripted import (
    Call,
    Close,
    Expect,
    ExpectBytes,
    ExpectClosed,
    ExpectData,
    Reset,
    ScriptedServer,
    ScriptError,
    Send,
    Sleep,
    StartTls,
    Step,
    Trickle,
)

from servers import certificates

#: Bound on every client-side socket operation, so that no test can hang.
CLIENT_TIMEOUT = 5.0
GREETING = b"220 fake ESMTP\r\n"


@contextmanager
def client(srv: ScriptedServer) -> Iterator[socket.socket]:
    with socket.create_connection(srv.address, timeout=CLIENT_TIMEOUT) as sock:
        yield sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


def recv_until_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def run_one(script: Sequence[Step], payload: bytes, *, half_close: bool = False) -> ScriptedServer:
    """Serve ``script``; the client sends ``payload`` after the greeting (then a FIN, with
    ``half_close``) and reads to EOF. Returns the finished server (failures raise)."""
    with ScriptedServer([Send(GREETING), *script]) as srv, client(srv) as sock:
        assert recv_exactly(sock, len(GREETING)) == GREETING
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        recv_until_eof(sock)
        srv.wait()
    return srv


# ---------------------------------------------------------------- Send / Expect
def test_a_conversation_is_recorded_exactly() -> None:
    script = [
        Send(GREETING),
        Expect(b"EHLO *\r\n"),
        Send(b"250-fake\r\n250 PIPELINING\r\n"),
        Expect(b"QUIT\r\n"),
        Send(b"221 bye\r\n"),
    ]
    with ScriptedServer(script) as srv, client(srv) as sock:
        assert recv_exactly(sock, len(GREETING)) == GREETING
        sock.sendall(b"EHLO [127.0.0.1]\r\n")
        assert recv_exactly(sock, 26) == b"250-fake\r\n250 PIPELINING\r\n"
        sock.sendall(b"QUIT\r\n")
        assert recv_until_eof(sock) == b"221 bye\r\n"
        srv.wait()
    assert srv.received == b"EHLO [127.0.0.1]\r\nQUIT\r\n"
    assert srv.transcript == [
        ("S", GREETING),
        ("C", b"EHLO [127.0.0.1]\r\n"),
        ("S", b"250-fake\r\n250 PIPELINING\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    assert srv.connections == 1
    assert srv.failures == []
    [record] = srv.records
    assert (record.index, record.received) == (1, srv.received)
    assert list(record.transcript) == srv.transcript


@pytest.mark.parametrize(
    ("glob", "line"),
    [
        (b"EHLO *\r\n", b"EHLO client.example\r\n"),
        (b"EHLO *\r\n", b"EHLO \r\n"),
        (b"EHLO [127.0.0.1]\r\n", b"EHLO [127.0.0.1]\r\n"),  # brackets are literal
        (b"RCPT TO:<?@x.test>\r\n", b"RCPT TO:<b@x.test>\r\n"),
        (b"MAIL FROM:<*> SIZE=*\r\n", b"MAIL FROM:<a@x.test> SIZE=1024\r\n"),
        (b"A.B\r\n", b"A.B\r\n"),  # regex metacharacters are literal
    ],
)
def test_glob_matches(glob: bytes, line: bytes) -> None:
    srv = run_one([Expect(glob)], line)
    assert ("C", line) in srv.transcript


@pytest.mark.parametrize(
    ("glob", "line"),
    [
        (b"EHLO *\r\n", b"HELO client\r\n"),
        (b"EHLO [127.0.0.1]\r\n", b"EHLO 1\r\n"),  # not a character class
        (b"RCPT TO:<?@x.test>\r\n", b"RCPT TO:<bb@x.test>\r\n"),
        (b"A.B\r\n", b"AxB\r\n"),
        (b"EHLO *\r\n", b"EHLO a\nb\r\n"),  # "*" never spans a bare LF
        (b"ehlo *\r\n", b"EHLO x\r\n"),  # case matters
    ],
)
def test_glob_mismatches(glob: bytes, line: bytes) -> None:
    with pytest.raises(ScriptError) as info:
        run_one([Expect(glob)], line)
    assert f"expected {glob!r}, the client sent {line!r}" in str(info.value)


def test_a_regex_matches_in_full_over_its_lines() -> None:
    pattern = re.compile(rb"MAIL FROM:<[a-z]+@x\.test>\r\nRCPT TO:<[^>]+>\r\n")
    srv = run_one([Expect(pattern, lines=2)], b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n")
    assert srv.transcript[-1] == ("C", b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n")

    with pytest.raises(ScriptError, match=r"expected re\.compile"):
        run_one([Expect(re.compile(rb"EHLO \d+\r\n"))], b"EHLO 12x\r\n")


def test_a_multi_line_expect_waits_for_all_its_lines() -> None:
    block = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"
    script = [Send(GREETING), Expect(block), Send(b"250 ok\r\n250 ok\r\n354 go\r\n")]
    with ScriptedServer(script) as srv, client(srv) as sock:
        recv_exactly(sock, len(GREETING))
        for line in block.splitlines(keepends=True):  # one line at a time
            sock.sendall(line)
        assert recv_until_eof(sock) == b"250 ok\r\n250 ok\r\n354 go\r\n"
        srv.wait()
    assert ("C", block) in srv.transcript


def test_a_multi_line_expect_fails_when_the_client_waits_after_one_line() -> None:
    script = [Expect(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n", timeout=0.2)]
    with ScriptedServer(script) as srv, client(srv) as sock:
        sock.sendall(b"MAIL FROM:<a@x.test>\r\n")  # lock-step: no pipelining
        with pytest.raises(ScriptError) as info:
            srv.wait()
        assert recv_until_eof(sock) == b""  # the server closed the connection
    message = str(info.value)
    assert "timed out after 0.2s waiting for 2 lines" in message
    assert "b'MAIL FROM:<a@x.test>\\r\\n'" in message


def test_leftover_bytes_stay_for_the_next_step() -> None:
    script = [Expect(b"NOOP\r\n"), Expect(b"RSET\r\n"), Send(b"250 ok\r\n250 ok\r\n")]
    srv = run_one(script, b"NOOP\r\nRSET\r\n")  # one write, two steps
    assert srv.transcript[1:] == [
        ("C", b"NOOP\r\n"),
        ("C", b"RSET\r\n"),
        ("S", b"250 ok\r\n250 ok\r\n"),
    ]


def test_a_mismatch_fails_the_script_and_closes_the_connection() -> None:
    script = [Send(GREETING), Expect(b"EHLO *\r\n"), Send(b"250 never sent\r\n")]
    with ScriptedServer(script) as srv, client(srv) as sock:
        recv_exactly(sock, len(GREETING))
        sock.sendall(b"HELO old.example\r\n")
        assert recv_until_eof(sock) == b""
        with pytest.raises(ScriptError) as info:
            srv.wait()
    err = info.value
    assert (err.connection, err.step) == (1, 2)
    assert str(err).startswith("connection 1, step 2 Expect(")
    assert "expected b'EHLO *\\r\\n', the client sent b'HELO old.example\\r\\n'" in str(err)
    assert ("S", b"250 never sent\r\n") not in srv.transcript


def test_eof_before_the_expected_line_fails() -> None:
    with ScriptedServer([Expect(b"QUIT\r\n")]) as srv:
        with client(srv) as sock:
            sock.sendall(b"QU")
        with pytest.raises(
            ScriptError, match=r"closed the connection before 1 line; it sent b'QU'"
        ):
            srv.wait()


def test_a_runaway_client_fails_an_expect() -> None:
    with ScriptedServer([Expect(b"EHLO *\r\n")]) as srv, client(srv) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(b"x" * (1 << 20 | 1))
        with pytest.raises(ScriptError, match="bytes without 1 line"):
            srv.wait()


# ---------------------------------------------------------------- segmentation and pacing
def test_segments_with_a_delay_arrive_in_separate_receives() -> None:
    script = [Send(b"250-one\r\n", b"250-two\r\n", b"250 three\r\n", segments=True, delay=0.1)]
    with ScriptedServer(script) as srv, client(srv) as sock:
        received = [sock.recv(4096) for _ in range(3)]
        assert sock.recv(4096) == b""
        srv.wait()
    assert received == [b"250-one\r\n", b"250-two\r\n", b"250 three\r\n"]
    assert srv.transcript == [("S", chunk) for chunk in received]


def test_chunks_without_segments_go_in_one_send() -> None:
    with ScriptedServer([Send(b"250-one\r\n", b"250 two\r\n")]) as srv, client(srv) as sock:
        assert recv_until_eof(sock) == b"250-one\r\n250 two\r\n"
        srv.wait()
    assert srv.transcript == [("S", b"250-one\r\n250 two\r\n")]


def test_trickle_sends_one_byte_at_a_time() -> None:
    data = b"250 ok\r\n"
    with ScriptedServer([Trickle(data, 0.03)]) as srv, client(srv) as sock:
        received = []
        while chunk := sock.recv(4096):
            received.append(chunk)
        srv.wait()
    assert b"".join(received) == data
    assert len(received) > 1  # paced: never all at once
    assert srv.transcript == [("S", data)]


def test_trickle_allow_close_stops_quietly_when_the_client_gives_up() -> None:
    data = b"250 a slow reply\r\n"
    script = [Trickle(data, 0.05, allow_close=True), ExpectClosed()]
    with ScriptedServer(script) as srv:
        with client(srv) as sock:
            assert sock.recv(1) == b"2"
        srv.wait()
    [(direction, sent)] = srv.transcript
    assert direction == "S"
    assert data.startswith(sent)
    assert len(sent) < len(data)


def test_trickle_to_a_closed_client_fails_without_allow_close() -> None:
    with ScriptedServer([Trickle(b"250 a slow reply\r\n", 0.05)]) as srv:
        with client(srv) as sock:
            assert sock.recv(1) == b"2"
        with pytest.raises(ScriptError, match=r"step 1 Trickle\(.*(Broken pipe|reset)"):
            srv.wait()


def test_sleep_pauses_between_steps() -> None:
    with ScriptedServer([Sleep(0.1), Send(b"220 late\r\n")]) as srv, client(srv) as sock:
        start = time.monotonic()
        assert recv_until_eof(sock) == b"220 late\r\n"
        assert time.monotonic() - start >= 0.1  # a lower bound: it cannot be flaky
        srv.wait()


def test_close_interrupts_a_long_sleep() -> None:
    with (
        pytest.raises(ScriptError, match="interrupted: the server was closed"),
        ScriptedServer([Send(GREETING), Sleep(60)]) as srv,
        client(srv) as sock,
    ):
        recv_exactly(sock, len(GREETING))  # then leave: close() interrupts the Sleep
    assert srv.failures[0].step == 2


# ---------------------------------------------------------------- the end of a connection
def test_close_sends_eof() -> None:
    with ScriptedServer([Send(b"421 bye\r\n"), Close()]) as srv, client(srv) as sock:
        assert recv_exactly(sock, 9) == b"421 bye\r\n"
        assert sock.recv(4096) == b""
        srv.wait()


def test_close_is_eof_even_with_unread_client_bytes() -> None:
    """Closing with unread input would make the kernel send a reset; the server reads
    what the client still sends until it closes, so the client sees a clean EOF."""
    script = [Expect(b"EHLO *\r\n"), Send(b"250 ok\r\n"), Close()]
    with ScriptedServer(script) as srv, client(srv) as sock:
        sock.sendall(b"EHLO a\r\n")
        assert recv_exactly(sock, 8) == b"250 ok\r\n"  # the server is past its Expect
        sock.sendall(b"MAIL FROM:<a@x.test>\r\n")  # no step reads this
        assert sock.recv(4096) == b""
        srv.wait()
    assert srv.received == b"EHLO a\r\nMAIL FROM:<a@x.test>\r\n"


def test_reset_makes_the_client_see_a_connection_reset() -> None:
    with ScriptedServer([Send(GREETING), Expect(b"NOOP\r\n"), Reset()]) as srv:
        with client(srv) as sock:
            recv_exactly(sock, len(GREETING))
            sock.sendall(b"NOOP\r\n")
            with pytest.raises(ConnectionResetError):
                sock.recv(4096)
        srv.wait()


def test_expect_closed_passes_when_the_client_closes() -> None:
    with ScriptedServer([Send(b"221 bye\r\n"), ExpectClosed()]) as srv:
        with client(srv) as sock:
            recv_exactly(sock, 9)
        srv.wait()


def test_expect_closed_fails_when_the_client_sends_more() -> None:
    with ScriptedServer([Send(b"250 ok\r\n"), ExpectClosed()]) as srv, client(srv) as sock:
        recv_exactly(sock, 8)
        sock.sendall(b"RSET\r\n")
        with pytest.raises(ScriptError, match=r"expected the client to close .*it sent b'RSET"):
            srv.wait()


def test_expect_closed_counts_bytes_already_buffered() -> None:
    with pytest.raises(ScriptError, match=r"it sent b'QUIT\\r\\n'"):
        run_one([Expect(b"NOOP\r\n"), ExpectClosed()], b"NOOP\r\nQUIT\r\n")


def test_expect_closed_times_out() -> None:
    with (
        ScriptedServer([ExpectClosed(0.2)]) as srv,
        client(srv),
        pytest.raises(ScriptError, match=r"did not close the connection within 0\.2s"),
    ):
        srv.wait()


# ---------------------------------------------------------------- DATA and BDAT
BODY = b"Subject: x\r\n\r\n..leading dot\r\nend\r\n.\r\n"


@pytest.mark.parametrize("step", [1, 2, 7, len(BODY)])
def test_expect_data_reads_to_the_end_of_data_however_it_arrives(step: int) -> None:
    script = [Expect(b"DATA\r\n"), ExpectData(BODY), Expect(b"QUIT\r\n")]
    with ScriptedServer([Send(GREETING), *script]) as srv, client(srv) as sock:
        recv_exactly(sock, len(GREETING))
        wire = b"DATA\r\n" + BODY + b"QUIT\r\n"
        for i in range(0, len(wire), step):
            sock.sendall(wire[i : i + step])
        recv_until_eof(sock)
        srv.wait()
    assert srv.captured == [BODY]
    assert srv.transcript[-1] == ("C", b"QUIT\r\n")  # left over after the body


def test_expect_data_takes_an_empty_body() -> None:
    srv = run_one([Expect(b"DATA\r\n"), ExpectData(b".\r\n")], b"DATA\r\n.\r\n")
    assert srv.captured == [b".\r\n"]


def test_expect_data_is_not_fooled_by_a_dot_inside_a_line() -> None:
    srv = run_one([ExpectData()], b"a.\r\n.b\r\nx\r\n.\r\n")
    assert srv.captured == [b"a.\r\n.b\r\nx\r\n.\r\n"]


def test_expect_data_with_a_pattern_and_a_mismatch() -> None:
    srv = run_one([ExpectData(re.compile(rb"Subject: \w+\r\n.*", re.DOTALL))], BODY)
    assert srv.captured == [BODY]
    with pytest.raises(ScriptError, match=r"expected data b'other"):
        run_one([ExpectData(b"other\r\n.\r\n")], BODY)


def test_expect_bytes_reads_a_bdat_chunk_exactly() -> None:
    script = [Expect(b"BDAT 5 LAST\r\n"), ExpectBytes(5, b"a\r\n.\r"), Expect(b"QUIT\r\n")]
    srv = run_one(script, b"BDAT 5 LAST\r\na\r\n.\rQUIT\r\n")
    assert srv.captured == [b"a\r\n.\r"]
    assert srv.transcript[1:] == [
        ("C", b"BDAT 5 LAST\r\n"),
        ("C", b"a\r\n.\r"),
        ("C", b"QUIT\r\n"),
    ]


def test_expect_bytes_mismatch_and_short_read() -> None:
    with pytest.raises(ScriptError, match=r"expected b'hello', the client sent b'HELLO'"):
        run_one([ExpectBytes(5, b"hello")], b"HELLO")
    with pytest.raises(ScriptError, match=r"before 5 bytes; it sent b'abc'"):
        run_one([ExpectBytes(5)], b"abc", half_close=True)


# ---------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def server_tls() -> ssl.SSLContext:
    return certificates().server_context()


@pytest.fixture(scope="module")
def client_tls() -> ssl.SSLContext:
    return certificates().client_context()


def test_starttls_then_the_conversation_goes_on_encrypted(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    script = [
        Expect(b"STARTTLS\r\n"),
        Send(b"220 go ahead\r\n"),
        StartTls(),
        Expect(b"EHLO *\r\n"),
        Send(b"250 secure\r\n"),
    ]
    with ScriptedServer(script, tls_context=server_tls) as srv, client(srv) as sock:
        sock.sendall(b"STARTTLS\r\n")
        assert recv_exactly(sock, 14) == b"220 go ahead\r\n"
        with client_tls.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"EHLO me\r\n")
            assert recv_until_eof(tls) == b"250 secure\r\n"
        srv.wait()
    assert srv.received == b"STARTTLS\r\nEHLO me\r\n"  # plaintext, also after TLS


def test_starttls_after_injected_data_reaches_the_client_first(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """The STARTTLS injection attack: a reply line sent in plaintext right after the
    220, which a vulnerable client would read as the answer to its first TLS command."""
    injected = b"220 go ahead\r\n250 injected\r\n"
    script = [Expect(b"STARTTLS\r\n"), Send(injected), StartTls(), ExpectClosed()]
    with ScriptedServer(script, tls_context=server_tls) as srv, client(srv) as sock:
        sock.sendall(b"STARTTLS\r\n")
        assert recv_exactly(sock, len(injected)) == injected  # before any handshake
        with client_tls.wrap_socket(sock, server_hostname="localhost"):
            pass  # handshake, then close without sending a command
        srv.wait()


def test_starttls_refuses_plaintext_pipelined_after_starttls(server_tls: ssl.SSLContext) -> None:
    script = [Expect(b"STARTTLS\r\n"), Send(b"220 go ahead\r\n"), StartTls()]
    with ScriptedServer(script, tls_context=server_tls) as srv, client(srv) as sock:
        sock.sendall(b"STARTTLS\r\nNOOP\r\n")
        with pytest.raises(ScriptError, match=r"sent b'NOOP\\r\\n' before the TLS handshake"):
            srv.wait()


def test_a_failed_handshake_fails_the_script(client_tls: ssl.SSLContext) -> None:
    untrusted = certificates().server_context(certificates().unknown_ca)
    with ScriptedServer([StartTls(timeout=2)], tls_context=untrusted) as srv, client(srv) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_tls.wrap_socket(sock, server_hostname="localhost")
        with pytest.raises(ScriptError, match="the TLS handshake failed") as info:
            srv.wait()
    assert isinstance(info.value.__cause__, ssl.SSLError)


def test_implicit_tls_wraps_at_accept(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    script = [Send(GREETING), Expect(b"QUIT\r\n"), Send(b"221 bye\r\n")]
    with (
        ScriptedServer(script, tls_context=server_tls, implicit_tls=True) as srv,
        client(srv) as sock,
        client_tls.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        assert recv_exactly(tls, len(GREETING)) == GREETING
        tls.sendall(b"QUIT\r\n")
        assert recv_until_eof(tls) == b"221 bye\r\n"
        srv.wait()
    assert srv.received == b"QUIT\r\n"


def test_implicit_tls_handshake_failure_is_step_zero(server_tls: ssl.SSLContext) -> None:
    with ScriptedServer([Send(GREETING)], tls_context=server_tls, implicit_tls=True) as srv:
        with client(srv) as sock:
            sock.sendall(b"EHLO not-tls\r\n")
        with pytest.raises(ScriptError, match="implicit TLS handshake: the TLS handshake") as info:
            srv.wait()
    assert info.value.step == 0


# ---------------------------------------------------------------- Call
def test_call_runs_in_the_server_thread_between_steps() -> None:
    seen: list[tuple[str, bytes]] = []
    with ScriptedServer(
        [
            Expect(b"NOOP\r\n"),
            Call(lambda: seen.append((threading.current_thread().name, srv.received))),
        ]
    ) as srv:
        with client(srv) as sock:
            sock.sendall(b"NOOP\r\n")
            recv_until_eof(sock)
        srv.wait()
    [(thread_name, received)] = seen
    assert thread_name == f"scripted-smtp-{srv.port}-1"
    assert received == b"NOOP\r\n"


def test_an_exception_in_call_fails_the_script() -> None:
    def boom() -> None:
        raise KeyError("boom")

    with (
        ScriptedServer([Call(boom)]) as srv,
        client(srv),
        pytest.raises(ScriptError, match=r"step 1 Call\(.*\): KeyError: 'boom'") as info,
    ):
        srv.wait()
    assert isinstance(info.value.__cause__, KeyError)


# ---------------------------------------------------------------- connections
def test_one_script_per_connection_in_order() -> None:
    first = [Send(b"220 first\r\n"), Expect(b"QUIT\r\n")]
    second = [Send(b"220 second\r\n"), Expect(b"QUIT\r\n")]
    with ScriptedServer(scripts=[first, second]) as srv:
        with client(srv) as one, client(srv) as two:  # open at the same time
            assert recv_exactly(one, 11) == b"220 first\r\n"
            assert recv_exactly(two, 12) == b"220 second\r\n"
            two.sendall(b"QUIT\r\n")
            one.sendall(b"QUIT\r\n")
        srv.wait()
    assert srv.connections == 2
    assert [r.index for r in srv.records] == [1, 2]
    assert [r.transcript[0] for r in srv.records] == [
        ("S", b"220 first\r\n"),
        ("S", b"220 second\r\n"),
    ]


def test_a_connection_beyond_the_scripts_fails() -> None:
    srv = ScriptedServer([Send(GREETING)]).start()
    try:
        with client(srv) as sock:
            assert recv_until_eof(sock) == GREETING
        srv.wait()
        with client(srv) as extra:
            assert extra.recv(4096) == b""  # closed at once
    finally:
        srv.close()  # joins the accept loop, which records the failure
    [failure] = srv.failures
    assert "unexpected connection 2: there are only 1 script(s)" in str(failure)
    assert failure.connection == 2
    assert srv.connections == 2


def test_extra_connections_can_be_allowed() -> None:
    with ScriptedServer([Send(GREETING)], extra_connections="close") as srv:
        for _ in range(3):
            with client(srv) as sock:
                recv_until_eof(sock)
        srv.wait()
    assert srv.connections == 3
    assert srv.failures == []


def test_no_connection_within_the_accept_timeout() -> None:
    with ScriptedServer(scripts=[[Send(GREETING)], [Send(GREETING)]], accept_timeout=0.2) as srv:
        with client(srv) as sock:
            recv_until_eof(sock)
        with pytest.raises(ScriptError, match="no connection 2 to run its script: it did not come"):
            srv.wait()


def test_wait_times_out_saying_where_each_script_is() -> None:
    with ScriptedServer([Send(GREETING), Expect(b"EHLO *\r\n")]) as srv, client(srv):
        with pytest.raises(
            ScriptError, match=r"did not finish within 0\.1s \(connection 1 at step 2"
        ):
            srv.wait(timeout=0.1)
        srv.close()  # while the client is still connected: the script is interrupted
        with pytest.raises(ScriptError, match="interrupted: the server was closed before"):
            srv.wait()


def test_leaving_the_block_raises_a_failure_nobody_waited_for() -> None:
    with (  # noqa: PT012 - the very point: leaving the block raises
        pytest.raises(ScriptError, match="expected b'EHLO"),
        ScriptedServer([Expect(b"EHLO *\r\n")]) as srv,
        client(srv) as sock,
    ):
        sock.sendall(b"HELO x\r\n")
        recv_until_eof(sock)


def test_a_failure_raised_by_wait_is_not_raised_again_at_exit() -> None:
    with ScriptedServer([Expect(b"EHLO *\r\n")]) as srv, client(srv) as sock:
        sock.sendall(b"HELO x\r\n")
        with pytest.raises(ScriptError):
            srv.wait()
    assert len(srv.failures) == 1


def test_close_joins_every_thread() -> None:
    script = [Send(GREETING), Expect(b"EHLO *\r\n")]
    srv = ScriptedServer(scripts=[script, script]).start()
    with client(srv) as one, client(srv) as two:
        recv_exactly(one, len(GREETING))
        recv_exactly(two, len(GREETING))  # both scripts are running
        srv.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(f"scripted-smtp-{srv.port}")]
    assert len(srv.failures) == 2  # both scripts were interrupted
    srv.close()  # again: harmless


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback() -> None:
    with ScriptedServer([Send(GREETING)], host="::1") as srv, client(srv) as sock:
        assert sock.family == socket.AF_INET6
        assert recv_until_eof(sock) == GREETING
        srv.wait()


def test_everything_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="smtpx.testing"):
        run_one([Expect(b"QUIT\r\n")], b"QUIT\r\n")
    messages = [r.getMessage() for r in caplog.records if r.name == "smtpx.testing"]
    assert "connection 1 S: b'220 fake ESMTP\\r\\n'" in messages
    assert "connection 1 C: b'QUIT\\r\\n'" in messages


# ---------------------------------------------------------------- misuse
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (Send, ValueError, "at least one chunk"),
        (lambda: Send("220 x\r\n"), TypeError, "must be bytes, not str"),  # type: ignore[arg-type]
        (lambda: Send(b"a", b"b", delay=0.1), ValueError, "needs segments=True"),
        (lambda: Send(b"a", segments=True, delay=-1), ValueError, "delay must be"),
        (lambda: Trickle(b"", 0.1), ValueError, "at least one byte"),
        (lambda: Expect(b"EHLO x"), ValueError, "must end with CRLF"),
        (lambda: Expect("EHLO x\r\n"), TypeError, "bytes or a compiled pattern"),  # type: ignore[arg-type]
        (lambda: Expect(re.compile("x")), TypeError, "must match bytes"),  # type: ignore[arg-type]
        (lambda: Expect(b"x\r\n", lines=2), ValueError, "lines= is for a compiled pattern"),
        (lambda: Expect(re.compile(b"x"), lines=0), ValueError, "lines must be >= 1"),
        (lambda: Expect(b"x\r\n", timeout=0), ValueError, "timeout must be"),
        (lambda: Expect(b"x\r\n", timeout=float("nan")), ValueError, "timeout must be"),
        (lambda: ExpectBytes(-1), ValueError, "n must be >= 0"),
        (lambda: ExpectBytes(1.5), TypeError, "integer"),  # type: ignore[arg-type]
        (lambda: ExpectData(expected="x"), TypeError, "expected must be"),  # type: ignore[arg-type]
        (lambda: Sleep(-1), ValueError, "seconds must be"),
        (lambda: Call(42), TypeError, "needs a callable"),  # type: ignore[arg-type]
        (ScriptedServer, TypeError, "either script or scripts"),
        (lambda: ScriptedServer([], scripts=[[]]), TypeError, "either script or scripts"),
        (lambda: ScriptedServer(scripts=[]), ValueError, "at least one script"),
        (lambda: ScriptedServer(["x"]), TypeError, "step 1 is not a script step"),  # type: ignore[list-item]
        (lambda: ScriptedServer([Close(), Sleep(0)]), ValueError, "must be the last step"),
        (lambda: ScriptedServer([Reset(), Sleep(0)]), ValueError, "must be the last step"),
        (lambda: ScriptedServer([StartTls()]), ValueError, "StartTls needs a tls_context"),
        (lambda: ScriptedServer([], implicit_tls=True), ValueError, "needs a tls_context"),
        (lambda: ScriptedServer([], host="0.0.0.0"), ValueError, "loopback"),
        (lambda: ScriptedServer([], host="localhost"), ValueError, "loopback"),
        (lambda: ScriptedServer([], accept_timeout=0), ValueError, "accept_timeout"),
        (lambda: ScriptedServer([], extra_connections="x"), ValueError, "extra_connections"),  # type: ignore[arg-type]
    ],
)
def test_misuse_is_refused_with_a_clear_message(
    make: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_port_before_start_and_double_start() -> None:
    srv = ScriptedServer([])
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.port
    with srv:
        with pytest.raises(RuntimeError, match="already started"):
            srv.start()
        with client(srv) as sock:
            assert recv_until_eof(sock) == b""  # an empty script: accept and close
        srv.wait()
