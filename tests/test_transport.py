"""The transports against real servers on loopback: aiosmtpd (TLS, AUTH, extensions) and
smtpx's own sink. Each scenario runs through the sync and the asyncio driver (the
``connect`` fixture); the suite runs twice (compiled core, then pure), so these run with
both twins too."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import smtpx
from smtpx.testing.sink import Sink

from drivers import Client
from servers import Certificates, SmtpServer

Factory = Callable[..., SmtpServer]
Connect = Callable[[smtpx.TransportBuilder[Any]], Client]


def envelope(*rcpts: str, sender: str = "sender@x.test") -> smtpx.Envelope:
    return smtpx.Envelope(sender, list(rcpts) or ["rcpt@x.test"])


def plain(server: SmtpServer) -> smtpx.TransportBuilder[smtpx.SmtpTransport]:
    return smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(server.port).timeout(10)


def tls_params(certs: Certificates, host: str = "127.0.0.1") -> smtpx.TlsParameters:
    return smtpx.TlsParameters(host, ca_data=certs.ca_pem)


# ---------------------------------------------------------------- plain sending
def test_send_raw_arrives_intact(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory()
    body = b"Subject: hi\r\n\r\nline one\n.leading dot\r\nbare cr\rend"
    with connect(plain(server)) as t:
        result = t.send_raw(envelope("a@x.test", "b@x.test"), body)
    assert result.response.code == 250
    assert result.accepted == ["a@x.test", "b@x.test"]
    assert result.rejected == {}
    (msg,) = server.messages
    assert msg.mail_from == "sender@x.test"
    assert msg.rcpt_tos == ("a@x.test", "b@x.test")
    assert msg.content == b"Subject: hi\r\n\r\nline one\r\n.leading dot\r\nbare cr\r\nend\r\n"
    assert any(o.startswith("SIZE=") for o in msg.mail_options)


def test_partial_recipient_refusal(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(refuse={"bad@x.test": "550 5.1.1 no such user"})
    with connect(plain(server)) as t:
        result = t.send_raw(envelope("good@x.test", "bad@x.test"), b"x")
        assert result.accepted == ["good@x.test"]
        assert result.rejected["bad@x.test"].code == 550
        assert result.rejected["bad@x.test"].enhanced_code == "5.1.1"
        with pytest.raises(smtpx.RecipientsRefusedError) as info:
            t.send_raw(envelope("bad@x.test"), b"x")
        assert info.value.is_permanent
        # the connection was reset and is reused for the next message
        assert t.send_raw(envelope("good@x.test"), b"again").accepted == ["good@x.test"]
    assert [m.rcpt_tos for m in server.messages] == [("good@x.test",), ("good@x.test",)]


def test_refused_message_raises_with_the_reply(
    connect: Connect, smtp_server_factory: Factory
) -> None:
    server = smtp_server_factory(data_reply="554 5.6.0 content rejected")
    with connect(plain(server)) as t, pytest.raises(smtpx.PermanentError) as info:
        t.send_raw(envelope(), b"x")
    assert info.value.code == 554
    assert info.value.enhanced_code == "5.6.0"


def test_email_message_envelope_and_bcc(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory()
    msg = EmailMessage()
    msg["From"] = "Alice <alice@x.test>"
    msg["To"] = "Bob <bob@x.test>, carol@x.test"
    msg["Cc"] = "dave@x.test"
    msg["Bcc"] = "eve@x.test"
    msg["Subject"] = "hello"
    msg.set_content("Hi all.\n")
    with connect(plain(server)) as t:
        result = t.send(msg)
    assert result.accepted == ["bob@x.test", "carol@x.test", "dave@x.test", "eve@x.test"]
    (got,) = server.messages
    assert got.mail_from == "alice@x.test"
    assert b"eve@x.test" not in got.content
    assert b"Bcc" not in got.content
    assert msg["Bcc"] == "eve@x.test"  # the caller's message is untouched


def test_eight_bit_body_declares_8bitmime(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory()
    with connect(plain(server)) as t:
        t.send_raw(envelope(), "Subject: é\r\n\r\nÀ bientôt\r\n".encode())
    assert "BODY=8BITMIME" in server.messages[0].mail_options


def test_smtputf8_address(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(smtputf8=True)
    with connect(plain(server)) as t:
        t.send_raw(smtpx.Envelope("jöran@x.test", ["mötley@x.test"]), b"x")
    assert "SMTPUTF8" in server.messages[0].mail_options
    assert server.messages[0].rcpt_tos == ("mötley@x.test",)


def test_size_limit_refused_before_sending(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(data_size_limit=1000)
    with connect(plain(server)) as t:
        with pytest.raises(smtpx.InvalidInputError, match="SIZE limit"):
            t.send_raw(envelope(), b"x" * 2000)
        t.send_raw(envelope(), b"x" * 100)  # the connection is still fine
    assert len(server.messages) == 1


def test_streamed_bodies(connect: Connect, smtp_server_factory: Factory, tmp_path: Path) -> None:
    server = smtp_server_factory()
    path = tmp_path / "body.eml"
    path.write_bytes(b"Subject: file\n\n" + b"line\n" * 50_000)
    with connect(plain(server)) as t:
        with path.open("rb") as f:
            t.send_raw(envelope(), f)
        t.send_raw(envelope(), iter([b"Subject: it\r\n\r\n", b"par", b"t\r", b"\n.x\r\n"]))
        t.send_raw(envelope(), io.BytesIO(b"Subject: bio\r\n\r\nbody"))
    first, second, third = server.messages
    assert first.content == b"Subject: file\r\n\r\n" + b"line\r\n" * 50_000
    assert second.content == b"Subject: it\r\n\r\npart\r\n.x\r\n"
    assert third.content == b"Subject: bio\r\n\r\nbody\r\n"


def test_bad_input_sends_nothing(connect: Connect, smtp_server_factory: Factory) -> None:
    server = smtp_server_factory()
    with connect(plain(server)) as t:
        with pytest.raises(TypeError):
            t.send_raw(envelope(), "text is not bytes")
        with pytest.raises(smtpx.InvalidInputError):
            smtpx.Envelope("a@x.test", ["b@x.test\r\nRCPT TO:<c@x.test>"])
        t.send_raw(envelope(), b"ok")
    assert len(server.messages) == 1


# ---------------------------------------------------------------- TLS
def test_starttls_required_with_verified_certificate(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    server = smtp_server_factory(tls="starttls", require_starttls=True)
    t = connect(plain(server).tls(smtpx.Tls.required(tls_params(tls_certs))))
    with t:
        t.send_raw(envelope(), b"secret stuff")
    assert server.messages[0].tls


def test_starttls_required_but_not_offered(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    server = smtp_server_factory()
    t = connect(plain(server).tls(smtpx.Tls.required(tls_params(tls_certs))))
    with t, pytest.raises(smtpx.TlsRequiredError):
        t.send_raw(envelope(), b"x")
    assert server.messages == []


def test_opportunistic_tls(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    offered = smtp_server_factory(tls="starttls")
    missing = smtp_server_factory()
    for server, encrypted in ((offered, True), (missing, False)):
        t = connect(plain(server).tls(smtpx.Tls.opportunistic(tls_params(tls_certs))))
        with t:
            t.send_raw(envelope(), b"x")
        assert server.messages[0].tls is encrypted


def test_implicit_tls(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    server = smtp_server_factory(tls="implicit")
    t = connect(
        smtpx.SmtpTransport.relay("127.0.0.1")
        .port(server.port)
        .tls(smtpx.Tls.wrapper(tls_params(tls_certs)))
        .timeout(10)
    )
    with t:
        t.send_raw(envelope(), b"x")
    assert server.messages[0].tls


@pytest.mark.parametrize("leaf", ["unknown_ca", "wrong_host"])
def test_certificate_verification_failures(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates, leaf: str
) -> None:
    context = tls_certs.server_context(getattr(tls_certs, leaf))
    server = smtp_server_factory(tls="implicit", tls_context=context)
    t = connect(plain(server).tls(smtpx.Tls.wrapper(tls_params(tls_certs))))
    with t, pytest.raises(smtpx.TlsError) as info:
        t.send_raw(envelope(), b"x")
    assert info.value.is_tls
    assert server.messages == []


def test_accept_invalid_certs_is_explicit(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    context = tls_certs.server_context(tls_certs.unknown_ca)
    server = smtp_server_factory(tls="implicit", tls_context=context)
    params = smtpx.TlsParameters("127.0.0.1", accept_invalid_certs=True)
    with connect(plain(server).tls(smtpx.Tls.wrapper(params))) as t:
        t.send_raw(envelope(), b"x")
    assert len(server.messages) == 1


# ---------------------------------------------------------------- AUTH
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM_MD5", "XOAUTH2"])
def test_auth_mechanisms_over_tls(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates, mechanism: str
) -> None:
    server = smtp_server_factory(tls="starttls", auth=True)
    t = connect(
        plain(server)
        .tls(smtpx.Tls.required(tls_params(tls_certs)))
        .credentials(smtpx.Credentials("bob", "p\u00e4ssw\u00f6rd \u2603"))
        .authentication([smtpx.Mechanism[mechanism]])
    )
    with t:
        t.send_raw(envelope(), b"x")
    assert server.messages[0].login == "bob"


def test_wrong_password_is_an_auth_error(
    connect: Connect, smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    server = smtp_server_factory(tls="starttls", auth=True)
    t = connect(
        plain(server)
        .tls(smtpx.Tls.required(tls_params(tls_certs)))
        .credentials(smtpx.Credentials("alice", "not her password"))
        .authentication([smtpx.Mechanism.PLAIN, smtpx.Mechanism.LOGIN])
    )
    with t, pytest.raises(smtpx.AuthError) as info:
        t.send_raw(envelope(), b"x")
    assert info.value.code == 535
    assert "not her password" not in str(info.value)
    assert server.messages == []


def test_cleartext_credentials_refused_without_opt_in(
    connect: Connect, smtp_server_factory: Factory
) -> None:
    server = smtp_server_factory(auth=True, auth_require_tls=False)
    builder = plain(server).credentials(smtpx.Credentials("alice", "wonderland"))
    with (
        connect(builder.authentication([smtpx.Mechanism.PLAIN])) as t,
        pytest.raises(smtpx.InsecureAuthError),
    ):
        t.send_raw(envelope(), b"x")
    with connect(builder.allow_insecure_auth(True)) as t:
        t.send_raw(envelope(), b"x")
    assert [m.login for m in server.messages] == ["alice"]


def test_credentials_never_logged(
    connect: Connect,
    smtp_server_factory: Factory,
    tls_certs: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp_server_factory(tls="starttls", auth=True)
    t = connect(
        plain(server)
        .tls(smtpx.Tls.required(tls_params(tls_certs)))
        .credentials(smtpx.Credentials("alice", "wonderland"))
        .authentication([smtpx.Mechanism.PLAIN])
    )
    with caplog.at_level(logging.DEBUG, logger="smtpx"), t:
        t.send_raw(envelope(), b"x")
    assert "C: AUTH PLAIN ***" in caplog.text
    assert "wonderland" not in caplog.text
    assert "d29uZGVybGFuZ" not in caplog.text  # nor its base64
    assert "AGFsaWNlAHdvbmRlcmxhbmQ" not in caplog.text


# ---------------------------------------------------------------- pool and lifetime
def test_pool_reuses_one_connection_sequentially() -> None:
    with Sink() as sink:
        t = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(sink.port).build()
        with t:
            for _ in range(20):
                t.send_raw(envelope(), b"x")
            assert "active=0 idle=1 waiting=0" in repr(t)
        assert sink.stats().messages == 20
        assert sink.stats().connections == 1


def test_pool_max_messages_rotates_connections() -> None:
    with Sink() as sink:
        t = (
            smtpx.SmtpTransport.builder_dangerous("127.0.0.1")
            .port(sink.port)
            .pool(smtpx.PoolConfig(max_messages=3))
            .build()
        )
        with t:
            for _ in range(7):
                t.send_raw(envelope(), b"x")
        assert sink.stats().connections == 3


def test_pool_caps_connections_across_threads() -> None:
    with Sink() as sink:
        t = (
            smtpx.SmtpTransport.builder_dangerous("127.0.0.1")
            .port(sink.port)
            .pool(smtpx.PoolConfig(max_size=2))
            .build()
        )
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(10):
                    t.send_raw(envelope(), b"x")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        with t:
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
        assert errors == []
        assert sink.stats().messages == 60
        assert sink.stats().connections <= 2


def test_no_pool_uses_one_connection_per_message() -> None:
    with Sink() as sink:
        t = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(sink.port).pool(None).build()
        with t:
            for _ in range(3):
                t.send_raw(envelope(), b"x")
        assert sink.stats().connections == 3


def test_test_connection_and_close() -> None:
    with Sink() as sink:
        t = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(sink.port).build()
        assert t.test_connection()
        t.close()
        with pytest.raises(smtpx.NetworkError, match="closed"):
            t.send_raw(envelope(), b"x")
    dead = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(sink.port).timeout(2).build()
    assert not dead.test_connection()  # the sink is gone: nothing listens there
    dead.close()


def test_connection_refused_is_a_network_error() -> None:
    with Sink() as sink:
        port = sink.port
    t = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(port).timeout(2).build()
    with t, pytest.raises(smtpx.NetworkError):
        t.send_raw(envelope(), b"x")


def test_min_idle_connections_are_opened_and_idle_ones_expire(connect: Connect) -> None:
    with Sink() as sink:
        t = connect(
            smtpx.SmtpTransport.builder_dangerous("127.0.0.1")
            .port(sink.port)
            .pool(smtpx.PoolConfig(min_idle=2, idle_timeout=0.6, max_lifetime=300))
        )

        def wait_for_connections(n: int) -> None:
            deadline = time.monotonic() + 5
            while sink.stats().connections < n:
                assert time.monotonic() < deadline, sink.stats()
                # the asyncio pool's housekeeping runs while its loop does
                t.test_connection() if t.kind == "async" else time.sleep(0.05)

        with t:
            t.send_raw(envelope(), b"x")  # starts the pool's housekeeping
            wait_for_connections(2)  # min_idle: a second one is opened
            wait_for_connections(4)  # idle past idle_timeout: closed and replaced
        assert sink.stats().messages == 1


def test_smtpx_message_with_attachment_and_bcc(
    connect: Connect, smtp_server_factory: Factory
) -> None:
    server = smtp_server_factory()
    message = (
        smtpx.Message.builder()
        .from_("NoBody <nobody@x.test>")
        .to("Hei <hei@x.test>")
        .bcc("audit@x.test")
        .subject("Happy new year")
        .text("Be happy!\n.\nReally.")
        .attach(b"\x00\x01binary" * 100, filename="data.bin")
        .build()
    )
    with connect(plain(server)) as t:
        result = t.send(message)
    assert result.accepted == ["hei@x.test", "audit@x.test"]
    (got,) = server.messages
    assert got.mail_from == "nobody@x.test"
    assert got.content == message.as_bytes()
    assert b"audit@x.test" not in got.content


@pytest.mark.parametrize("offered", [True, False], ids=["smtputf8", "no-smtputf8"])
def test_utf8_headers_under_an_ascii_envelope_ask_for_smtputf8(
    connect: Connect, offered: bool
) -> None:
    message = (
        smtpx.Message.builder()
        .from_("a@x.test")
        .to("Jörg <jörg@x.test>")
        .envelope(smtpx.Envelope("a@x.test", ["joerg@x.test"]))
        .subject("hi")
        .body("hello")
    )
    assert message.envelope.smtputf8
    with Sink(capture=True, smtputf8=offered) as sink:
        builder = smtpx.SmtpTransport.builder_dangerous("127.0.0.1").port(sink.port)
        with connect(builder) as t:
            if offered:
                assert t.send(message).accepted == ["joerg@x.test"]
            else:
                with pytest.raises(smtpx.InvalidInputError, match="RFC 6532"):
                    t.send(message)
        if offered:
            (received,) = sink.messages
            assert "SMTPUTF8" in received.mail_options
            assert "jörg@x.test".encode() in received.data
        else:
            assert sink.stats().messages == 0
