"""The transports against a scripted fake server: faults at exact points of the
conversation (disconnects, stalls, 421s, malformed replies, TLS tricks). Each scenario
runs through the sync and the asyncio driver (the ``connect`` fixture)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
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
    Sleep,
    StartTls,
    Step,
    Trickle,
)
from smtpx.testing.sink import Sink

from drivers import Client
from servers import Certificates
from steps import CAPS_CHUNK, CAPS_PIPE, EHLO, GREETING, QUIT

GROUP = Expect(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
GROUP_OK = Send(b"250 ok\r\n250 ok\r\n354 go\r\n")


def session_ok() -> list[Step]:
    """A whole good conversation: one pipelined message, then QUIT."""
    return [
        GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK,
        ExpectData(b"hello\r\n.\r\n"), Send(b"250 queued\r\n"), *QUIT,
    ]  # fmt: skip


def builder(
    srv: ScriptedServer | int, timeouts: smtpx.Timeouts | float = 5, **pool: float
) -> smtpx.TransportBuilder[smtpx.SmtpTransport]:
    """A plain builder for the server (or port), with the hello name the scripts expect."""
    return (
        smtpx.SmtpTransport.builder_dangerous("127.0.0.1")
        .port(srv if isinstance(srv, int) else srv.port)
        .hello_name("client.test")
        .timeout(timeouts)
        .pool(smtpx.PoolConfig(**pool))  # type: ignore[arg-type]
    )


ENV = smtpx.Envelope("a@x.test", ["b@x.test"])
Connect = Callable[[smtpx.TransportBuilder[Any]], Client]


def run(scripts: Sequence[Sequence[Step]], **kw: object) -> ScriptedServer:
    return ScriptedServer(scripts=scripts, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the happy path, exactly
def test_pipelined_group_and_reply_matching_over_separate_segments(connect: Connect) -> None:
    script = [
        GREETING, EHLO, CAPS_PIPE, GROUP,
        Send(b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", segments=True, delay=0.02),
        ExpectData(b"hello\r\n.\r\n"), Send(b"250 queued\r\n"), *QUIT,
    ]  # fmt: skip
    with run([script]) as srv:
        with connect(builder(srv)) as t:
            result = t.send_raw(ENV, b"hello")
            assert result.response.text == "queued"
        srv.wait(5)


def test_bdat_last_with_the_body_in_one_go(connect: Connect) -> None:
    script = [
        GREETING, EHLO, CAPS_CHUNK,
        Expect(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 7 LAST\r\n"),
        ExpectBytes(7, b"hello\r\n"),
        Send(b"250 ok\r\n250 ok\r\n250 2.0.0 stored\r\n"), *QUIT,
    ]  # fmt: skip
    with run([script]) as srv:
        with connect(builder(srv)) as t:
            assert t.send_raw(ENV, b"hello").response.enhanced_code == "2.0.0"
        srv.wait(5)


# ---------------------------------------------------------------- 421 at each step
@pytest.mark.parametrize(
    "script",
    [
        [Send(b"421 4.3.2 busy\r\n"), ExpectClosed()],
        [GREETING, EHLO, Send(b"421 4.3.2 bye\r\n"), ExpectClosed()],
        [GREETING, EHLO, CAPS_PIPE, GROUP, Send(b"421 4.3.2 bye\r\n"), ExpectClosed()],
    ],
    ids=["greeting", "ehlo", "mail"],
)
def test_421_closes_and_is_retried_once_on_a_fresh_connection(
    connect: Connect, script: list[Step]
) -> None:
    with run([script, session_ok()]) as srv:
        with connect(builder(srv)) as t:
            assert t.send_raw(ENV, b"hello").accepted == ["b@x.test"]
        srv.wait(5)
    assert srv.connections == 2


def test_421_twice_gives_up_with_a_transient_error(connect: Connect) -> None:
    fail = [Send(b"421 4.3.2 busy\r\n"), ExpectClosed()]
    with run([fail, fail]) as srv:
        with connect(builder(srv)) as t, pytest.raises(smtpx.TransientError) as info:
            t.send_raw(ENV, b"hello")
        assert info.value.code == 421
        assert info.value.is_transient
        srv.wait(5)


# ---------------------------------------------------------------- the end of DATA is a line
def test_disconnect_before_end_of_data_is_retried(connect: Connect) -> None:
    first = [GREETING, EHLO, CAPS_PIPE, GROUP, Close()]  # closed before any reply to MAIL
    with run([first, session_ok()]) as srv:
        with connect(builder(srv)) as t:
            t.send_raw(ENV, b"hello")
        srv.wait(5)
    assert srv.captured == [b"hello\r\n.\r\n"]


def test_disconnect_after_the_final_dot_is_delivery_unknown_and_not_retried(
    connect: Connect,
) -> None:
    script = [GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK, ExpectData(), Close()]
    with run([script]) as srv:
        with connect(builder(srv)) as t, pytest.raises(smtpx.DeliveryUnknownError) as info:
            t.send_raw(ENV, b"hello")
        assert not info.value.is_transient
        assert not info.value.is_permanent
        srv.wait(5)
    assert srv.connections == 1  # no second attempt


def test_end_of_data_timeout_is_delivery_unknown(connect: Connect) -> None:
    script = [GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK, ExpectData(), ExpectClosed(5)]
    timeouts = smtpx.Timeouts(data_end=0.3)
    with run([script]) as srv:
        with (
            connect(builder(srv, timeouts)) as t,
            pytest.raises(smtpx.DeliveryUnknownError) as info,
        ):
            t.send_raw(ENV, b"hello")
        assert info.value.is_timeout
        assert isinstance(info.value.__cause__, smtpx.SmtpTimeoutError)
        assert info.value.__cause__.phase == "data_end"
        srv.wait(5)


# ---------------------------------------------------------------- deadlines per phase
@pytest.mark.parametrize(
    ("script", "timeouts", "phase"),
    [
        ([ExpectClosed(3)], smtpx.Timeouts(greeting=0.2), "greeting"),
        ([GREETING, EHLO, ExpectClosed(3)], smtpx.Timeouts(command=0.2), "command"),
        (
            [GREETING, EHLO, CAPS_PIPE, GROUP, Send(b"250 ok\r\n250 ok\r\n"), ExpectClosed(3)],
            smtpx.Timeouts(data=0.2),
            "data",
        ),
    ],
    ids=["greeting", "command", "data"],
)
def test_each_phase_has_its_deadline(
    connect: Connect, script: list[Step], timeouts: smtpx.Timeouts, phase: str
) -> None:
    # The retry meets the same stall; both attempts time out in the same phase.
    with run([script, script]) as srv:
        with connect(builder(srv, timeouts)) as t, pytest.raises(smtpx.SmtpTimeoutError) as info:
            t.send_raw(ENV, b"hello")
        assert info.value.phase == phase
        assert info.value.is_timeout
        srv.wait(5)


def test_a_trickling_server_cannot_stretch_a_deadline(connect: Connect) -> None:
    script = [
        Trickle(b"220 slow greeting that never ends in time\r\n", 0.05, allow_close=True),
        ExpectClosed(5),
    ]
    timeouts = smtpx.Timeouts(greeting=0.5)
    with run([script, script]) as srv:
        with connect(builder(srv, timeouts)) as t:
            start = time.monotonic()
            with pytest.raises(smtpx.SmtpTimeoutError, match="greeting"):
                t.send_raw(ENV, b"hello")
            elapsed = time.monotonic() - start
        srv.wait(5)
    # two attempts, each cut at its 0.5 s deadline although a byte came every 0.05 s
    # (the greeting alone would take 2 s to trickle in)
    assert elapsed < 1.9


# ---------------------------------------------------------------- broken replies
@pytest.mark.parametrize(
    "reply",
    [b"25O ok\r\n", b"250-a\r\n251 b\r\n", b"250 ok\n", b"250 " + b"x" * 9000 + b"\r\n"],
    ids=["bad-code", "mismatched-codes", "bare-lf", "oversized"],
)
def test_malformed_replies_are_protocol_errors(connect: Connect, reply: bytes) -> None:
    script = [GREETING, EHLO, Send(reply), ExpectClosed()]
    with run([script, script]) as srv:
        with connect(builder(srv)) as t, pytest.raises(smtpx.ProtocolError):
            t.send_raw(ENV, b"hello")
        srv.wait(5)


def test_helo_fallback(connect: Connect) -> None:
    script = [
        GREETING, EHLO, Send(b"502 5.5.1 what is EHLO\r\n"),
        Expect(b"HELO client.test\r\n"), Send(b"250 old.test\r\n"),
        Expect(b"MAIL FROM:<a@x.test>\r\n"), Send(b"250 ok\r\n"),
        Expect(b"RCPT TO:<b@x.test>\r\n"), Send(b"250 ok\r\n"),
        Expect(b"DATA\r\n"), Send(b"354 go\r\n"),
        ExpectData(b"hello\r\n.\r\n"), Send(b"250 ok\r\n"), *QUIT,
    ]  # fmt: skip
    with run([script]) as srv:
        with connect(builder(srv)) as t:
            t.send_raw(ENV, b"hello")
        srv.wait(5)


# ---------------------------------------------------------------- STARTTLS attacks
def starttls(srv: ScriptedServer, certs: Certificates) -> smtpx.TransportBuilder[Any]:
    params = smtpx.TlsParameters("127.0.0.1", ca_data=certs.ca_pem)
    return builder(srv).tls(smtpx.Tls.required(params))


def test_starttls_response_injection_is_discarded(
    connect: Connect, tls_certs: Certificates
) -> None:
    script = [
        GREETING, EHLO, Send(b"250-fake.test\r\n250 STARTTLS\r\n"),
        Expect(b"STARTTLS\r\n"),
        # an attacker's replies ride along with the 220, in the clear
        Send(b"220 go ahead\r\n250-evil\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        StartTls(),
        EHLO,  # the client must say EHLO again, under TLS, not take the injected 250
        CAPS_PIPE, GROUP, GROUP_OK, ExpectData(b"hello\r\n.\r\n"), Send(b"250 ok\r\n"), *QUIT,
    ]  # fmt: skip
    with ScriptedServer(script, tls_context=tls_certs.server_context()) as srv:
        with connect(starttls(srv, tls_certs)) as t:
            t.send_raw(ENV, b"hello")
        srv.wait(5)


def test_starttls_stripping_is_refused(connect: Connect, tls_certs: Certificates) -> None:
    # a man in the middle removed STARTTLS from the capabilities
    script = [GREETING, EHLO, CAPS_PIPE, ExpectClosed()]
    with run([script]) as srv:
        with connect(starttls(srv, tls_certs)) as t, pytest.raises(smtpx.TlsRequiredError):
            t.send_raw(ENV, b"hello")
        srv.wait(5)
    assert srv.received == b"EHLO client.test\r\n"  # nothing after it, not even QUIT


# ---------------------------------------------------------------- the pool
def test_a_connection_closed_while_idle_is_not_reused(connect: Connect) -> None:
    first = [
        GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK, ExpectData(), Send(b"250 ok\r\n"),
        Send(b"421 4.4.2 idle too long\r\n"), Close(),
    ]  # fmt: skip
    with run([first, session_ok()]) as srv:
        with connect(builder(srv)) as t:
            t.send_raw(ENV, b"hello")
            deadline = time.monotonic() + 5
            while b"421" not in b"".join(d for _, d in srv.transcript):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.05)  # let the FIN follow the 421
            t.send_raw(ENV, b"hello")  # the stale connection is noticed and replaced
        srv.wait(5)
    assert srv.connections == 2


def test_acquire_timeout_when_the_pool_is_full() -> None:
    slow = [
        GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK, ExpectData(), Sleep(1.0),
        Send(b"250 ok\r\n"), *QUIT,
    ]  # fmt: skip
    with run([slow]) as srv:
        with builder(srv, max_size=1, acquire_timeout=0.2).build() as t:
            worker = threading.Thread(target=t.send_raw, args=(ENV, b"hello"))
            worker.start()
            deadline = time.monotonic() + 5
            while "active=1" not in repr(t):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with pytest.raises(smtpx.SmtpTimeoutError) as info:
                t.send_raw(ENV, b"second")
            assert info.value.phase == "acquire"
            assert "active=1 idle=0 waiting=0" in repr(t)
            worker.join(5)
        srv.wait(5)


def test_waiters_are_served_in_turn() -> None:
    script = [
        GREETING, EHLO, CAPS_PIPE,
        *[s for _ in range(3) for s in (GROUP, GROUP_OK, ExpectData(), Send(b"250 ok\r\n"))],
        *QUIT,
    ]  # fmt: skip
    with run([script]) as srv:
        with builder(srv, max_size=1).build() as t:
            done: list[int] = []

            def send(i: int) -> None:
                t.send_raw(ENV, b"x")
                done.append(i)

            threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(10)
            assert sorted(done) == [0, 1, 2]
        srv.wait(5)
    assert srv.connections == 1


# ---------------------------------------------------------------- the asyncio pool
def test_async_many_tasks_share_a_small_pool(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    async def scenario(port: int) -> list[smtpx.SendResult]:
        t = smtpx.AsyncSmtpTransport(builder(port, max_size=2, max_messages=1000).settings)
        async with t:
            results = await asyncio.gather(*(t.send_raw(ENV, b"x") for _ in range(200)))
            assert "active=0 idle=2 waiting=0" in repr(t)
        return results

    with Sink() as sink:
        results = event_loop_instance.run_until_complete(scenario(sink.port))
        assert sink.wait_for(messages=200, timeout=10)
        assert sink.stats().connections == 2  # never more than max_size
    assert [r.accepted for r in results] == [["b@x.test"]] * 200


def test_async_acquire_timeout(event_loop_instance: asyncio.AbstractEventLoop) -> None:
    slow = [
        GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK, ExpectData(), Sleep(0.6),
        Send(b"250 ok\r\n"), *QUIT,
    ]  # fmt: skip

    async def scenario(port: int) -> None:
        # A window of 1: the second message may not share the busy connection.
        settings = builder(port, max_size=1, acquire_timeout=0.2).pipeline_window(1).settings
        async with smtpx.AsyncSmtpTransport(settings) as t:
            first = asyncio.ensure_future(t.send_raw(ENV, b"x"))
            await asyncio.sleep(0.1)
            with pytest.raises(smtpx.SmtpTimeoutError) as info:
                await t.send_raw(ENV, b"second")
            assert info.value.phase == "acquire"
            await first

    with run([slow]) as srv:
        event_loop_instance.run_until_complete(scenario(srv.port))
        srv.wait(5)


@pytest.mark.parametrize(
    "stall",
    [
        [ExpectClosed(5)],  # waiting for the greeting
        [GREETING, EHLO, ExpectClosed(5)],  # waiting for the EHLO reply
        [GREETING, EHLO, CAPS_PIPE, GROUP, ExpectClosed(5)],  # waiting for MAIL/RCPT replies
        [GREETING, EHLO, CAPS_PIPE, GROUP, Send(b"250 ok\r\n250 ok\r\n"), ExpectClosed(5)],
    ],
    ids=["greeting", "ehlo", "mail", "data"],
)
def test_async_cancellation_before_the_end_of_data_discards_the_connection(
    event_loop_instance: asyncio.AbstractEventLoop, stall: list[Step]
) -> None:

    async def scenario(port: int) -> None:
        t = smtpx.AsyncSmtpTransport(builder(port).settings)
        async with t:
            task = asyncio.ensure_future(t.send_raw(ENV, b"x"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert "active=0 idle=0" in repr(t)  # not returned to the pool

    with run([stall]) as srv:
        event_loop_instance.run_until_complete(scenario(srv.port))
        srv.wait(5)


def test_async_cancellation_after_the_end_of_data_is_delivery_unknown(
    event_loop_instance: asyncio.AbstractEventLoop,
) -> None:
    stall = [GREETING, EHLO, CAPS_PIPE, GROUP, GROUP_OK, ExpectData(), ExpectClosed(5)]

    async def scenario(port: int) -> None:
        t = smtpx.AsyncSmtpTransport(builder(port).settings)
        async with t:
            task = asyncio.ensure_future(t.send_raw(ENV, b"x"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(smtpx.DeliveryUnknownError):
                await task

    with run([stall]) as srv:
        event_loop_instance.run_until_complete(scenario(srv.port))
        srv.wait(5)


def test_async_cancellation_during_the_reuse_probe_frees_the_slot(
    event_loop_instance: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection idle for long is probed with NOOP before reuse; a cancellation while
    # the probe waits must close it and give its place in the pool back.
    monkeypatch.setattr("smtpx.transport._async_pool.needs_probe", lambda record, now: True)
    script = [*session_ok()[:-2], Expect(b"NOOP\r\n"), ExpectClosed(5)]

    async def scenario(port: int) -> None:
        async with smtpx.AsyncSmtpTransport(builder(port, max_size=1).settings) as t:
            await t.send_raw(ENV, b"hello")
            task = asyncio.ensure_future(t.send_raw(ENV, b"again"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert "active=0 idle=0" in repr(t)

    with run([script]) as srv:
        event_loop_instance.run_until_complete(scenario(srv.port))
        srv.wait(5)


def test_interrupt_during_the_reuse_probe_frees_the_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("smtpx.transport._sync_pool.needs_probe", lambda record, now: True)

    def interrupted(self: Any, procedure: Any) -> Any:
        procedure.close()
        raise KeyboardInterrupt

    with run([[*session_ok()[:-2], ExpectClosed(5)]]) as srv:
        with smtpx.SmtpTransport(builder(srv, max_size=1).settings) as t:
            t.send_raw(ENV, b"hello")
            monkeypatch.setattr("smtpx.transport._sync_conn.SyncConnection.run", interrupted)
            with pytest.raises(KeyboardInterrupt):
                t.send_raw(ENV, b"again")
            assert "active=0 idle=0" in repr(t)
        srv.wait(5)


def test_scram_sha_256_is_preferred_and_mutual(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 7677's example exchange; SCRAM comes first in the default preference and,
    # the password never crossing the connection, needs no TLS.
    import base64

    def b64(text: str) -> bytes:
        return base64.b64encode(text.encode())

    nonce = "rOprNGfwEbeRWgbNEkqO"
    full = nonce + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    monkeypatch.setattr("smtpx.protocol.scram.secrets.token_urlsafe", lambda n: nonce)
    script = [
        GREETING, EHLO,
        Send(b"250-fake.test\r\n250-PIPELINING\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n"),
        Expect(b"AUTH SCRAM-SHA-256 " + b64(f"n,,n=user,r={nonce}") + b"\r\n"),
        Send(b"334 " + b64(f"r={full},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") + b"\r\n"),
        Expect(b64(f"c=biws,r={full},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") + b"\r\n"),
        Send(b"334 " + b64("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") + b"\r\n"),
        Expect(b"\r\n"), Send(b"235 2.7.0 ok\r\n"),
        GROUP, Send(b"250 ok\r\n250 ok\r\n354 go\r\n"), ExpectData(b"hello\r\n.\r\n"),
        Send(b"250 queued\r\n"), *QUIT,
    ]  # fmt: skip
    with run([script]) as srv:
        with connect(builder(srv).credentials(smtpx.Credentials("user", "pencil"))) as t:
            assert t.send_raw(ENV, b"hello").response.text == "queued"
        srv.wait(5)
