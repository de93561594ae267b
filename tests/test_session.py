"""The protocol engine, driven in memory: bytes out, scripted replies in, no sockets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx import errors
from smtpx.protocol.ops import Read, StartTls, Write
from smtpx.protocol.session import SendResult, Session, SessionConfig, State, TlsPolicy

EHLO_FULL = (
    b"250-mx.test greets you\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n"
    b"250-SIZE 1000\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 STARTTLS\r\n"
)
EHLO_PIPE = b"250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-mx.test\r\n250 8BITMIME\r\n"


@dataclass
class Envelope:
    sender: str
    recipients: list[str]
    mail_params: tuple[str, ...] = ()
    rcpt_params: tuple[str, ...] = ()
    needs_smtputf8: bool = False


class Failure:
    """A scripted driver failure, thrown into the procedure instead of bytes."""

    def __init__(self, error: errors.SmtpError) -> None:
        self.error = error


class Driver:
    """Carries out engine requests against a script of server bytes."""

    def __init__(self, replies: Iterable[bytes | Failure]) -> None:
        self.replies = list(replies)
        self.writes: list[bytes] = []
        self.events: list[str] = []
        #: Failures thrown in instead of carrying out the next writes (None: succeed).
        self.write_failures: list[Failure | None] = []

    @property
    def sent(self) -> bytes:
        return b"".join(self.writes)

    def run(self, procedure: Any) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = procedure.throw(error) if error else procedure.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            if isinstance(op, Write):
                failure = self.write_failures.pop(0) if self.write_failures else None
                if failure is not None:
                    self.events.append(f"failed-write:{op.phase}")
                    error = failure.error
                    continue
                self.writes.append(b"".join(bytes(c) for c in op.chunks))
                self.events.append(f"write:{op.phase}")
            elif isinstance(op, Read):
                self.events.append(f"read:{op.phase}")
                nxt = self.replies.pop(0) if self.replies else b""
                if isinstance(nxt, Failure):
                    error = nxt.error
                else:
                    value = nxt
            elif isinstance(op, StartTls):
                self.events.append("starttls")
                self.writes.append(b"<TLS>")


def session(**kw: Any) -> Session:
    return Session(SessionConfig(hello_name="client.test", **kw))


def opened(ehlo: bytes, **kw: Any) -> tuple[Session, Driver]:
    s = session(**kw)
    d = Driver([b"220 mx.test ESMTP\r\n", ehlo])
    d.run(s.open())
    assert s.state is State.READY
    d.writes.clear()
    d.events.clear()
    return s, d


# ---------------------------------------------------------------- session setup
def test_open_reads_greeting_and_capabilities() -> None:
    s = session()
    d = Driver([b"220 mx.test ESMTP\r\n", EHLO_FULL])
    caps = d.run(s.open())
    assert d.sent == b"EHLO client.test\r\n"
    assert caps.pipelining
    assert caps.chunking
    assert caps.size_limit == 1000
    assert caps.auth == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert s.usable


@pytest.mark.parametrize(
    ("greeting", "error"),
    [(b"554 go away\r\n", errors.PermanentError), (b"421 busy\r\n", errors.TransientError)],
)
def test_refused_greeting(greeting: bytes, error: type[Exception]) -> None:
    s = session()
    d = Driver([greeting])
    with pytest.raises(error):
        d.run(s.open())
    assert s.state is State.BROKEN
    assert d.sent == b""


def test_malformed_greeting_is_a_protocol_error() -> None:
    s = session()
    with pytest.raises(errors.ProtocolError):
        Driver([b"hello there\r\n"]).run(s.open())
    assert s.state is State.BROKEN


def test_eof_before_greeting_is_a_network_error() -> None:
    with pytest.raises(errors.NetworkError, match="closed the connection"):
        Driver([]).run(session().open())


def test_helo_fallback_when_ehlo_is_unknown() -> None:
    s = session()
    d = Driver([b"220 old\r\n", b"502 what\r\n", b"250 old.test\r\n"])
    d.run(s.open())
    assert d.sent == b"EHLO client.test\r\nHELO client.test\r\n"
    assert not s.capabilities.pipelining
    assert s.usable


def test_no_helo_fallback_when_tls_is_required() -> None:
    s = session(starttls=TlsPolicy.REQUIRED)
    d = Driver([b"220 old\r\n", b"500 what\r\n"])
    with pytest.raises(errors.PermanentError, match="refused EHLO"):
        d.run(s.open())
    assert d.sent == b"EHLO client.test\r\n"


def test_starttls_required_but_not_offered_sends_nothing_more() -> None:
    s = session(starttls=TlsPolicy.REQUIRED)
    d = Driver([b"220 mx\r\n", EHLO_PIPE])
    with pytest.raises(errors.TlsRequiredError, match="does not offer STARTTLS"):
        d.run(s.open())
    assert d.sent == b"EHLO client.test\r\n"
    assert s.state is State.BROKEN


def test_starttls_refused_with_tls_required() -> None:
    s = session(starttls=TlsPolicy.REQUIRED)
    d = Driver([b"220 mx\r\n", b"250-mx\r\n250 STARTTLS\r\n", b"454 4.7.0 not now\r\n"])
    with pytest.raises(errors.TlsRequiredError, match="refused STARTTLS"):
        d.run(s.open())
    assert d.sent == b"EHLO client.test\r\nSTARTTLS\r\n"


def test_starttls_opportunistic_without_offer_stays_plain() -> None:
    s = session(starttls=TlsPolicy.OPPORTUNISTIC)
    d = Driver([b"220 mx\r\n", EHLO_PIPE])
    d.run(s.open())
    assert not s.tls_active
    assert s.usable


def test_starttls_discards_injected_replies_and_says_ehlo_again() -> None:
    s = session(starttls=TlsPolicy.REQUIRED)
    injected = b"220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"
    d = Driver([b"220 mx\r\n", b"250-mx\r\n250 STARTTLS\r\n", injected, EHLO_PIPE])
    d.run(s.open())
    assert d.writes == [b"EHLO client.test\r\n", b"STARTTLS\r\n", b"<TLS>", b"EHLO client.test\r\n"]
    assert s.tls_active
    assert s.capabilities.pipelining  # the capabilities announced under TLS
    assert not s.capabilities.auth  # not the injected ones


# ---------------------------------------------------------------- AUTH
def test_plain_credentials_refused_without_tls() -> None:
    s = session(credentials=("user", "secret"), mechanisms=("PLAIN",))
    d = Driver([b"220 mx\r\n", b"250-mx\r\n250 AUTH PLAIN\r\n"])
    with pytest.raises(errors.InsecureAuthError):
        d.run(s.open())
    assert d.sent == b"EHLO client.test\r\n"


def test_plain_credentials_with_opt_in() -> None:
    s = session(credentials=("user", "secret"), mechanisms=("PLAIN",), allow_insecure_auth=True)
    d = Driver([b"220 mx\r\n", b"250-mx\r\n250 AUTH PLAIN\r\n", b"235 ok\r\n"])
    d.run(s.open())
    assert d.writes[1] == b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"


def test_auth_falls_back_on_504_but_not_on_535() -> None:
    s = session(
        credentials=("user", "secret"), mechanisms=("CRAM-MD5", "PLAIN"), allow_insecure_auth=True
    )
    d = Driver(
        [
            b"220 mx\r\n",
            b"250-mx\r\n250 AUTH PLAIN CRAM-MD5\r\n",
            b"504 no\r\n",
            b"535 5.7.8 bad\r\n",
        ]
    )
    with pytest.raises(errors.AuthError, match="PLAIN failed: 535") as info:
        d.run(s.open())
    assert info.value.code == 535
    assert info.value.is_permanent
    assert [w.split(b" ")[1] for w in d.writes[1:]] == [b"CRAM-MD5\r\n", b"PLAIN"]


def test_auth_535_stops_at_once() -> None:
    s = session(credentials=("u", "p"), mechanisms=("LOGIN", "PLAIN"), allow_insecure_auth=True)
    d = Driver([b"220 mx\r\n", b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n", b"535 no\r\n"])
    with pytest.raises(errors.AuthError):
        d.run(s.open())
    assert d.writes[1:] == [b"AUTH LOGIN\r\n"]


def test_login_exchange_and_redacted_transcript(caplog: pytest.LogCaptureFixture) -> None:
    s = session(credentials=("user", "hunter2"), mechanisms=("LOGIN",), allow_insecure_auth=True)
    d = Driver(
        [
            b"220 mx\r\n",
            b"250-mx\r\n250 AUTH LOGIN\r\n",
            b"334 VXNlcm5hbWU6\r\n",
            b"334 UGFzc3dvcmQ6\r\n",
            b"235 ok\r\n",
        ]
    )
    with caplog.at_level(logging.DEBUG, logger="smtpx"):
        d.run(s.open())
    assert d.writes[1:] == [b"AUTH LOGIN\r\n", b"dXNlcg==\r\n", b"aHVudGVyMg==\r\n"]
    assert "hunter2" not in caplog.text
    assert "aHVudGVyMg" not in caplog.text
    assert "dXNlcg" not in caplog.text


def test_credentials_without_auth_offered() -> None:
    s = session(credentials=("u", "p"))
    with pytest.raises(errors.AuthError, match="does not offer AUTH"):
        Driver([b"220 mx\r\n", EHLO_PIPE]).run(s.open())


def test_malformed_challenge_is_cancelled() -> None:
    s = session(credentials=("u", "p"), mechanisms=("CRAM-MD5",))
    d = Driver(
        [b"220 mx\r\n", b"250-mx\r\n250 AUTH CRAM-MD5\r\n", b"334 !!!\r\n", b"501 cancelled\r\n"]
    )
    with pytest.raises(errors.AuthError, match="CRAM-MD5 failed"):
        d.run(s.open())
    assert d.writes[-1] == b"*\r\n"


# ---------------------------------------------------------------- transactions
def test_pipelined_bdat_goes_out_in_one_write() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n"]
    result = d.run(s.send(Envelope("a@x.test", ["b@x.test", "c@x.test"]), b"Hi\nthere\n"))
    assert d.writes == [
        b"MAIL FROM:<a@x.test> SIZE=9\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
        b"BDAT 11 LAST\r\nHi\r\nthere\r\n"
    ]
    assert result.accepted == ["b@x.test", "c@x.test"]
    assert result.response.enhanced_code == "2.0.0"
    assert d.events == ["write:data_block", "read:command"]  # one write, one read


def test_pipelined_data_with_partial_recipient_failure() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n", b"250 done\r\n"]
    result = d.run(s.send(Envelope("a@x.test", ["b@x.test", "bad@x.test"]), b".dot\r\n"))
    assert d.writes == [
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<bad@x.test>\r\nDATA\r\n",
        b"..dot\r\n.\r\n",
    ]
    assert result.accepted == ["b@x.test"]
    assert result.rejected["bad@x.test"].enhanced_code == "5.1.1"


def test_no_recipient_accepted_ends_empty_data_and_resets() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"250 ok\r\n550 no\r\n354 go\r\n", b"554 no valid recipients\r\n", b"250 ok\r\n"]
    with pytest.raises(errors.RecipientsRefusedError) as info:
        d.run(s.send(Envelope("a@x.test", ["bad@x.test"]), b"body"))
    assert list(info.value.rejected) == ["bad@x.test"]
    assert d.writes[1:] == [b".\r\n", b"RSET\r\n"]
    assert s.usable


def test_refused_sender_resets_and_stays_usable() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [b"550 5.7.1 no\r\n503 bad sequence\r\n503 bad sequence\r\n", b"250 ok\r\n"]
    with pytest.raises(errors.PermanentError, match="refused the sender") as info:
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert info.value.enhanced_code == "5.7.1"
    assert d.writes[-1] == b"RSET\r\n"
    assert s.usable


def test_lockstep_without_pipelining() -> None:
    s, d = opened(EHLO_PLAIN)
    d.replies = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n"]
    result = d.run(s.send(Envelope("", ["b@x.test"]), b"x"))
    assert d.writes == [
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<b@x.test>\r\n",
        b"DATA\r\n",
        b"x\r\n.\r\n",
    ]
    assert result.accepted == ["b@x.test"]


def test_pipelining_switch_forces_lockstep() -> None:
    s, d = opened(EHLO_FULL, pipelining=False)
    d.replies = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n"]
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert len(d.writes) == 4


def test_invalid_recipient_sends_nothing_and_leaves_nothing_behind() -> None:
    s, d = opened(EHLO_FULL)
    with pytest.raises(errors.InvalidInputError):
        d.run(s.send(Envelope("a@x.test", ["b@x.test", "evil@x.test>\r\nRSET"]), b"x"))
    assert d.writes == []
    assert s.usable
    # the next message goes out alone: nothing of the refused one was left queued
    d.replies = [b"250 ok\r\n250 ok\r\n250 ok\r\n"]
    d.run(s.send(Envelope("c@x.test", ["d@x.test"]), b"y"))
    assert d.writes == [
        b"MAIL FROM:<c@x.test> SIZE=1\r\nRCPT TO:<d@x.test>\r\nBDAT 3 LAST\r\ny\r\n"
    ]


def test_message_over_size_limit_sends_nothing() -> None:
    s, d = opened(EHLO_FULL)
    with pytest.raises(errors.InvalidInputError, match="SIZE limit"):
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x" * 1001))
    assert d.writes == []


def test_eight_bit_needs_8bitmime() -> None:
    s, d = opened(b"250-mx\r\n250 PIPELINING\r\n")
    with pytest.raises(errors.InvalidInputError, match="8BITMIME"):
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), "é".encode()))
    assert d.writes == []
    s2, d2 = opened(EHLO_PIPE)
    d2.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"]
    d2.run(s2.send(Envelope("a@x.test", ["b@x.test"]), "é".encode()))
    assert d2.writes[0].startswith(b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n")


def test_421_during_transaction_breaks_the_connection() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"421 4.3.2 shutting down\r\n"]
    with pytest.raises(errors.TransientError, match="421"):
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert s.state is State.BROKEN


def test_disconnect_before_end_of_data_is_safe_to_retry() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [Failure(errors.NetworkError("reset"))]
    with pytest.raises(errors.NetworkError):
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert s.state is State.BROKEN


def test_disconnect_after_end_of_data_is_delivery_unknown() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b""]
    with pytest.raises(errors.DeliveryUnknownError) as info:
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert isinstance(info.value.__cause__, errors.NetworkError)
    assert s.state is State.BROKEN


def test_timeout_after_pipelined_bdat_is_delivery_unknown() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [Failure(errors.SmtpTimeoutError("slow", phase="command"))]
    with pytest.raises(errors.DeliveryUnknownError) as info:
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert info.value.is_timeout


def test_unsolicited_data_on_idle_connection() -> None:
    s, d = opened(EHLO_PIPE)
    # A stray reply left in the parser (e.g. read together with the last one).
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n250 surprise\r\n"]
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    with pytest.raises(errors.ProtocolError, match="unsolicited"):
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert s.state is State.BROKEN


def test_quit() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"221 bye\r\n"]
    reply = d.run(s.quit())
    assert reply.code == 221
    assert d.writes == [b"QUIT\r\n"]
    assert s.state is State.CLOSED


def test_452_recipients_go_in_a_follow_up_transaction() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [
        b"250 ok\r\n250 ok\r\n452 4.5.3 too many recipients\r\n250 2.0.0 first\r\n",
        b"250 ok\r\n250 ok\r\n250 2.0.0 second\r\n",
    ]
    result = d.run(s.send(Envelope("a@x.test", ["b@x.test", "c@x.test"]), b"x"))
    assert d.writes == [
        b"MAIL FROM:<a@x.test> SIZE=1\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
        b"BDAT 3 LAST\r\nx\r\n",
        b"MAIL FROM:<a@x.test> SIZE=1\r\nRCPT TO:<c@x.test>\r\nBDAT 3 LAST\r\nx\r\n",
    ]
    assert result.accepted == ["b@x.test", "c@x.test"]
    assert result.rejected == {}
    assert result.response.text == "2.0.0 second"


def test_452_again_in_the_follow_up_ends_as_rejected() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [
        b"250 ok\r\n250 ok\r\n452 4.5.3 too many\r\n250 first\r\n",
        b"250 ok\r\n452 4.5.3 still too many\r\n503 no recipients\r\n",
        b"250 reset\r\n",
    ]
    result = d.run(s.send(Envelope("a@x.test", ["b@x.test", "c@x.test"]), b"x"))
    assert result.accepted == ["b@x.test"]
    assert result.rejected["c@x.test"].code == 452
    assert s.usable


def test_all_452_is_recipients_refused() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [b"250 ok\r\n452 4.5.3 too many\r\n503 no recipients\r\n", b"250 reset\r\n"]
    with pytest.raises(errors.RecipientsRefusedError) as info:
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b"x"))
    assert info.value.is_transient


def test_idna_domains_without_smtputf8() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"]
    env = Envelope("a@bücher.test", ["b@münchen.test"], needs_smtputf8=True)
    d.run(s.send(env, b"x"))
    assert d.writes[0] == (
        b"MAIL FROM:<a@xn--bcher-kva.test>\r\nRCPT TO:<b@xn--mnchen-3ya.test>\r\nDATA\r\n"
    )


def test_non_ascii_local_part_needs_smtputf8() -> None:
    s, d = opened(EHLO_PIPE)
    env = Envelope("jöran@x.test", ["b@x.test"], needs_smtputf8=True)
    with pytest.raises(errors.InvalidInputError, match="SMTPUTF8"):
        d.run(s.send(env, b"x"))
    assert d.writes == []
    assert s.usable


def test_smtputf8_when_offered() -> None:
    s, d = opened(b"250-mx\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n")
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"]
    d.run(s.send(Envelope("jöran@x.test", ["b@x.test"], needs_smtputf8=True), b"x"))
    assert d.writes[0].startswith("MAIL FROM:<jöran@x.test> SMTPUTF8\r\n".encode())


def test_stream_body_is_sent_in_chunks_with_the_terminator_last() -> None:
    from smtpx.protocol.session import Stream

    s, d = opened(EHLO_FULL)
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"]
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), Stream(iter([b"a\r", b"\n.b"]), None)))
    # streams use DATA even with CHUNKING; BODY=8BITMIME is declared as it may come
    assert d.writes[0].startswith(b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n")
    assert d.writes[1:] == [b"a\r\n", b"..b", b"\r\n.\r\n"]


def test_stream_with_8bit_data_and_no_8bitmime_is_abandoned() -> None:
    from smtpx.protocol.session import Stream

    s, d = opened(b"250-mx\r\n250 PIPELINING\r\n")
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n"]
    with pytest.raises(errors.InvalidInputError, match="8BITMIME"):
        d.run(s.send(Envelope("a@x.test", ["b@x.test"]), Stream(iter([b"ok", "é".encode()]), 9)))
    assert b".\r\n" not in d.writes[-1]  # never terminated: the server drops it
    assert s.state is State.BROKEN


def test_a_body_in_parts_goes_out_without_joining() -> None:
    s, d = opened(b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE\r\n")
    d.replies = [b"250 ok\r\n250 ok\r\n250 ok\r\n"]
    attachment = b"QUJD\r\n" * 5000  # a large shared part, already canonical
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), [b"Subject: x\r\n\r\n", attachment]))
    assert d.writes == [
        b"MAIL FROM:<a@x.test> SIZE=30014\r\nRCPT TO:<b@x.test>\r\nBDAT 30014 LAST\r\n"
        b"Subject: x\r\n\r\n" + attachment
    ]


def test_parts_are_one_stream_for_dot_stuffing_and_line_ends() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"]
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), [b"a\r", b"\n.b\r\n", b".c"]))
    assert d.writes[1] == b"a\r\n..b\r\n..c\r\n.\r\n"


def test_bdat_parts_split_inside_a_line_end_are_encoded_together() -> None:
    s, d = opened(EHLO_FULL)
    d.replies = [b"250 ok\r\n250 ok\r\n250 ok\r\n"]
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), [b"a\r", b"\nb"]))
    assert d.writes[0].endswith(b"BDAT 6 LAST\r\na\r\nb\r\n")


class ChunkDriver(Driver):
    """A driver that also keeps the chunk objects of every write, to see what was copied
    (a large body goes by reference, as a memoryview of it)."""

    def __init__(self, replies: Iterable[bytes | Failure]) -> None:
        super().__init__(replies)
        self.chunks: list[Any] = []

    def run(self, procedure: Any) -> Any:
        def spy() -> Any:
            value: Any = None
            while True:
                try:
                    op = procedure.send(value)
                except StopIteration as stop:
                    return stop.value
                if isinstance(op, Write):
                    self.chunks.extend(op.chunks)
                value = yield op

        return super().run(spy())


EHLO_BDAT = b"250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"


@pytest.mark.parametrize("eight_bit", [False, True])
def test_bdat_sends_a_body_in_wire_form_as_it_is(eight_bit: bool) -> None:
    s, _ = opened(EHLO_BDAT)
    d = ChunkDriver([b"250 ok\r\n250 ok\r\n250 ok\r\n"])
    body = (b"caf\xc3\xa9\r\n" if eight_bit else b"plain\r\n") * 100_000
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), body))
    assert any(getattr(chunk, "obj", None) is body for chunk in d.chunks)  # not copied
    mail = b"MAIL FROM:<a@x.test>" + (b" BODY=8BITMIME\r\n" if eight_bit else b"\r\n")
    assert d.sent == mail + b"RCPT TO:<b@x.test>\r\n" + f"BDAT {len(body)} LAST\r\n".encode() + body


def test_bdat_sends_wire_form_parts_as_they_are_and_encodes_the_others() -> None:
    s, _ = opened(EHLO_BDAT)
    d = ChunkDriver([b"250 ok\r\n250 ok\r\n250 ok\r\n"])
    shared = b"an attachment\r\n" * 100_000
    bare = b"bare\nline\n" * 100_000
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), [b"head\r\n", shared, bare]))
    kept = [getattr(chunk, "obj", None) for chunk in d.chunks]
    assert any(obj is shared for obj in kept)
    assert not any(obj is bare for obj in kept)
    size = 6 + len(shared) + len(bare) + 200_000
    assert d.sent.endswith(
        f"BDAT {size} LAST\r\n".encode() + b"head\r\n" + shared + b"bare\r\nline\r\n" * 100_000
    )


def test_data_still_stuffs_a_body_in_wire_form() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    d.run(s.send(Envelope("a@x.test", ["b@x.test"]), b".dot\r\n"))
    assert d.sent.endswith(b"DATA\r\n..dot\r\n.\r\n")


# ---------------------------------------------------------------- windows (several in flight)
EHLO_CHUNK = b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
OK3 = b"250 ok\r\n250 ok\r\n250 ok\r\n"


def outcomes(s: Session, d: Driver, n: int) -> list[Any]:
    """Collect ``n`` outcomes: each SendResult, or the error raised for it."""
    got: list[Any] = []
    for _ in range(n):
        try:
            got.append(d.run(s.collect()))
        except errors.SmtpError as exc:
            got.append(exc)
    return got


def msgs(*bodies: bytes) -> list[tuple[Envelope, bytes]]:
    return [(Envelope("a@x.test", [f"r{i}@x.test"]), body) for i, body in enumerate(bodies)]


def test_window_sends_several_transactions_in_one_write_with_rset_between() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n", b"three\n")))
    assert d.writes == [
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<r0@x.test>\r\nBDAT 5 LAST\r\none\r\n"
        b"RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<r1@x.test>\r\nBDAT 5 LAST\r\ntwo\r\n"
        b"RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<r2@x.test>\r\nBDAT 7 LAST\r\nthree\r\n"
    ]
    assert s.in_flight == 3
    d.replies = [OK3 + b"250 ok\r\n" + OK3 + b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 third\r\n"]
    got = outcomes(s, d, 3)
    assert [r.accepted for r in got] == [["r0@x.test"], ["r1@x.test"], ["r2@x.test"]]
    assert got[2].response.text == "2.0.0 third"
    assert d.events == ["write:data_block", "read:command"]  # one write, one read for all
    assert s.in_flight == 0
    assert s.usable


def test_window_a_refused_transaction_does_not_spill_into_the_next() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n", b"three\n")))
    d.replies = [
        OK3  # 1: delivered
        + b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n"
        + b"250 ok\r\n"
        + OK3  # 3: its RSET closed 2's transaction; delivered
    ]
    first, second, third = outcomes(s, d, 3)
    assert first.accepted == ["r0@x.test"]
    assert third.accepted == ["r2@x.test"]
    assert isinstance(second, errors.RecipientsRefusedError)
    assert second.rejected["r1@x.test"].enhanced_code == "5.1.1"
    assert s.usable
    assert d.writes[1:] == []


def test_window_refusal_of_the_last_in_flight_resets_at_once() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n")))
    d.replies = [b"250 ok\r\n550 no\r\n554 no valid recipients\r\n", b"250 ok\r\n"]
    (refused,) = outcomes(s, d, 1)
    assert isinstance(refused, errors.RecipientsRefusedError)
    assert d.writes[1:] == [b"RSET\r\n"]
    assert s.usable


def test_window_disconnect_leaves_every_sent_message_unknown() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n", b"three\n")))
    d.replies = [OK3 + b"250 ok\r\n250 ok\r\n", b""]  # 2's RCPT and BDAT never answered
    first, second, third = outcomes(s, d, 3)
    assert first.accepted == ["r0@x.test"]
    assert isinstance(second, errors.DeliveryUnknownError)
    assert isinstance(second.__cause__, errors.NetworkError)
    assert isinstance(third, errors.DeliveryUnknownError)
    assert s.state is State.BROKEN
    assert s.in_flight == 0


def test_window_421_ends_the_ones_behind_as_not_taken() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n")))
    d.replies = [b"421 4.3.2 shutting down\r\n"]
    first, second = outcomes(s, d, 2)
    assert isinstance(first, errors.TransientError)
    assert first.code == 421
    assert isinstance(second, errors.TransientError)
    assert second.code == 421
    assert "before it took this message" in str(second)
    assert not isinstance(second, errors.DeliveryUnknownError)
    assert s.state is State.BROKEN


def test_window_write_failure_leaves_earlier_ends_in_the_write_unknown() -> None:
    s, d = opened(EHLO_CHUNK)
    d.write_failures = [Failure(errors.NetworkError("broken pipe"))]
    d.run(s.submit(msgs(b"one\n", b"two\n", b"three\n")))
    first, second, third = outcomes(s, d, 3)
    # The write stopped before its last byte: the third's end never left; the first
    # two's may have.
    assert isinstance(first, errors.DeliveryUnknownError)
    assert isinstance(second, errors.DeliveryUnknownError)
    assert type(third) is errors.NetworkError
    assert d.writes == []


def test_window_bad_message_is_refused_alone_and_nothing_of_it_is_written() -> None:
    s, d = opened(EHLO_CHUNK)
    batch = msgs(b"one\n", b"two\n", b"three\n")
    batch[1] = (Envelope("a@x.test", ["evil@x.test>\r\nRCPT TO:<x@y.test"]), b"two\n")
    d.run(s.submit(batch))
    assert b"evil" not in d.sent
    assert b"two" not in d.sent
    assert d.sent.count(b"MAIL FROM") == 2
    assert d.sent.count(b"RSET") == 1
    d.replies = [OK3 + b"250 ok\r\n" + OK3]
    first, second, third = outcomes(s, d, 3)
    assert isinstance(second, errors.InvalidInputError)
    assert first.accepted == ["r0@x.test"]
    assert third.accepted == ["r2@x.test"]


def test_window_with_data_sends_the_next_group_behind_the_end_of_data() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 first\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 second\r\n",
    ]
    d.run(s.submit(msgs(b"one\n", b"two\n")))
    group = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<r%d@x.test>\r\nDATA\r\n"
    assert d.writes == [group % 0, b"one\r\n.\r\n" + group % 1, b"two\r\n.\r\n"]
    first, second = outcomes(s, d, 2)
    assert first.response.text == "first"
    assert second.response.text == "second"
    assert s.usable


def test_window_with_data_and_no_recipient_accepted() -> None:
    s, d = opened(EHLO_PIPE)
    d.replies = [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 first\r\n250 ok\r\n550 no\r\n354 go\r\n",
        b"554 no valid recipients\r\n",
        b"250 reset\r\n",
    ]
    d.run(s.submit(msgs(b"one\n", b"two\n")))
    assert d.writes[2:] == [b".\r\n", b"RSET\r\n"]
    first, second = outcomes(s, d, 2)
    assert first.response.text == "first"
    assert isinstance(second, errors.RecipientsRefusedError)
    assert s.usable


def test_window_without_pipelining_runs_each_message_lock_step() -> None:
    s, d = opened(EHLO_PLAIN)
    d.replies = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 one\r\n"] * 2
    d.run(s.submit(msgs(b"one\n", b"two\n")))
    assert len(d.writes) == 8
    assert not d.replies
    first, second = outcomes(s, d, 2)
    assert first.response.text == "one"
    assert second.response.text == "one"


def test_window_452_follow_up_waits_for_the_ones_in_flight() -> None:
    s, d = opened(EHLO_CHUNK)
    two = [(Envelope("a@x.test", ["b@x.test", "c@x.test"]), b"one\n"), *msgs(b"two\n")]
    d.run(s.submit(two))
    d.replies = [
        b"250 ok\r\n250 ok\r\n452 4.5.3 too many\r\n250 first\r\n250 ok\r\n" + OK3,
        b"250 ok\r\n250 ok\r\n250 follow-up\r\n",
    ]
    first, second = outcomes(s, d, 2)
    assert first.accepted == ["b@x.test", "c@x.test"]
    assert first.response.text == "follow-up"
    assert second.accepted == ["r0@x.test"]
    assert d.writes[1] == b"MAIL FROM:<a@x.test>\r\nRCPT TO:<c@x.test>\r\nBDAT 5 LAST\r\none\r\n"


@pytest.mark.parametrize("many", [False, True])
def test_window_transcript_at_debug(caplog: pytest.LogCaptureFixture, many: bool) -> None:
    # At DEBUG every command and every reply of a window is logged, in order.
    s, d = opened(EHLO_CHUNK)
    with caplog.at_level(logging.DEBUG, logger="smtpx"):
        d.run(s.submit(msgs(b"one\n", b"two\n")))
        d.replies = [OK3 + b"250 reset\r\n" + b"250 a\r\n250 b\r\n250 c\r\n"]
        got = d.run(s.collect_many(2)) if many else outcomes(s, d, 2)
    assert [r.response.text for r in got] == ["ok", "c"]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "C: MAIL FROM:<a@x.test>",
        "C: RCPT TO:<r0@x.test>",
        "C: BDAT 5 LAST",
        "C: <message data, 5 octets>",
        "C: RSET",
        "C: MAIL FROM:<a@x.test>",
        "C: RCPT TO:<r1@x.test>",
        "C: BDAT 5 LAST",
        "C: <message data, 5 octets>",
        "S: 250 ok",
        "S: 250 ok",
        "S: 250 ok",
        "S: 250 reset",
        "S: 250 a",
        "S: 250 b",
        "S: 250 c",
    ]


@pytest.mark.parametrize(
    "failure",
    [
        b"",  # the server closed the connection
        Failure(errors.SmtpTimeoutError("no reply", phase="data_end")),
        b"250 ok\r\n\x00junk\r\n",  # a malformed reply
    ],
)
@pytest.mark.parametrize("many", [False, True])
def test_a_window_cut_short_leaves_every_sent_message_unknown(
    failure: bytes | Failure, many: bool
) -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n", b"three\n")))
    d.replies = [OK3, failure]  # the first message's replies, then the failure
    got = d.run(s.collect_many(3)) if many else outcomes(s, d, 3)
    if many:
        got += d.run(s.collect_many(3))
    assert isinstance(got[0], SendResult)
    assert [type(o) for o in got[1:]] == [errors.DeliveryUnknownError] * 2
    assert s.state is State.BROKEN
    assert s.in_flight == 0


def test_an_interruption_while_collecting_many_breaks_the_connection() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n")))
    d.replies = [Failure(KeyboardInterrupt())]  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        d.run(s.collect_many(2))
    assert s.state is State.BROKEN
    assert s.last_in_doubt
    assert [type(o) for o in outcomes(s, d, 2)] == [errors.DeliveryUnknownError] * 2


def test_collect_many_takes_what_has_arrived_without_waiting_for_more() -> None:
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(msgs(b"one\n", b"two\n", b"three\n", b"four\n")))
    rset_ok = b"250 ok\r\n"
    d.replies = [OK3 + rset_ok + OK3]  # the first two transactions' replies, no more
    first = d.run(s.collect_many(4))
    assert [r.accepted for r in first] == [["r0@x.test"], ["r1@x.test"]]
    assert d.events.count("read:command") == 1  # and no read for the third
    refused = b"250 ok\r\n550 5.1.1 no\r\n554 no valid recipients\r\n"
    d.replies = [rset_ok + b"250 ok\r\n250", b" ok\r\n250 ok\r\n" + rset_ok + refused]
    rest = d.run(s.collect_many(4))  # a partial reply buffered: read on for the rest
    assert rest[0].accepted == ["r2@x.test"]
    assert isinstance(rest[1], errors.RecipientsRefusedError)
    assert s.in_flight == 0
    assert d.run(s.collect_many(4)) == []


def test_an_interruption_leaves_sent_messages_unknown_and_the_rest_unsent() -> None:
    s, d = opened(EHLO_CHUNK)
    d.write_failures = [Failure(KeyboardInterrupt())]  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        d.run(s.submit(msgs(b"one\n", b"two\n")))
    assert s.state is State.BROKEN
    assert s.last_in_doubt  # the first one's end may have left before the interruption
    first, second = outcomes(s, d, 2)
    assert isinstance(first, errors.DeliveryUnknownError)
    assert type(second) is errors.NetworkError


# ---------------------------------------------------------------- windows, any segmentation
REPLIES = {
    "ok": b"250 2.1.0 ok\r\n",
    "multi": b"250-first line\r\n250 2.1.5 last line\r\n",
    "rcpt-refused": b"550 5.1.1 no such user\r\n",
    "final-refused": b"554 5.6.0 content rejected\r\n",
}


FATES = ["ok", "multi", "rcpt-refused", "final-refused", "two-rcpts", "closing"]


@given(
    fates=st.lists(st.sampled_from(FATES), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=30),
    many=st.none() | st.integers(min_value=1, max_value=7),
)
@settings(max_examples=300)
def test_window_outcomes_do_not_depend_on_how_replies_are_segmented(
    fates: list[str], cuts: list[int], many: int | None
) -> None:
    """However the server's replies to a window are cut into reads, and whether they
    are collected one by one or ``many`` at a time, every message gets the outcome its
    own replies say, in order; after a 421 the server took nothing more."""
    stream = b""
    bodies: list[tuple[Envelope, bytes]] = []
    for index, fate in enumerate(fates):
        rcpts = [f"r{index}@x.test"] + ([f"s{index}@x.test"] if fate == "two-rcpts" else [])
        bodies.append((Envelope("a@x.test", rcpts), b"m%d\n" % index))
        stream += b"250 ok\r\n" if index else b""  # the RSET before it
        if fate == "closing":
            stream += REPLIES["ok"] + b"421 4.3.2 shutting down\r\n"
            break
        stream += REPLIES["ok"]
        stream += REPLIES["rcpt-refused"] if fate == "rcpt-refused" else REPLIES["ok"]
        stream += b"251 forwarded\r\n" if fate == "two-rcpts" else b""
        stream += {
            "ok": REPLIES["ok"],
            "multi": REPLIES["multi"],
            "two-rcpts": REPLIES["ok"],
            "rcpt-refused": b"554 5.5.1 no valid recipients\r\n",
            "final-refused": REPLIES["final-refused"],
        }[fate]
    bodies += [(Envelope("a@x.test", ["late@x.test"]), b"late\n")] * (len(fates) - len(bodies))
    reads, start = [], 0
    for cut in cuts:
        if start >= len(stream):
            break
        reads.append(stream[start : start + cut])
        start += cut
    reads.append(stream[start:])
    s, d = opened(EHLO_CHUNK)
    d.run(s.submit(bodies))
    d.replies = [*(r for r in reads if r), b"250 reset\r\n"]
    if many is None:
        got = outcomes(s, d, len(fates))
    else:
        got = []
        while len(got) < len(fates):
            got += d.run(s.collect_many(many))
    closed = False
    for fate, outcome in zip(fates, got, strict=True):
        if closed:
            assert isinstance(outcome, errors.TransientError)
            assert outcome.code == 421
        elif fate in ("ok", "multi"):
            assert isinstance(outcome, SendResult)
            assert outcome.response.raw == REPLIES[fate]
        elif fate == "two-rcpts":
            assert isinstance(outcome, SendResult)
            assert len(outcome.accepted) == 2
        elif fate == "rcpt-refused":
            assert isinstance(outcome, errors.RecipientsRefusedError)
        elif fate == "closing":
            assert isinstance(outcome, errors.TransientError)
            assert outcome.code == 421
            closed = True
        else:
            assert isinstance(outcome, errors.PermanentError)
            assert outcome.code == 554
    assert s.usable is not closed
    assert s.in_flight == 0
