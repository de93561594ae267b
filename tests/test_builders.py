"""The builders of both transports: lettre's constructors, immutable builder methods."""

from __future__ import annotations

from typing import Any

import pytest

import smtpx
from smtpx import TlsMode

TRANSPORTS = [smtpx.SmtpTransport, smtpx.AsyncSmtpTransport]


@pytest.mark.parametrize("cls", TRANSPORTS)
@pytest.mark.parametrize(
    ("make", "port", "mode"),
    [
        (lambda c: c.relay("smtp.example.com"), 465, TlsMode.WRAPPER),
        (lambda c: c.starttls_relay("smtp.example.com"), 587, TlsMode.REQUIRED),
        (lambda c: c.builder_dangerous("smtp.example.com"), 25, TlsMode.NONE),
    ],
    ids=["relay", "starttls_relay", "builder_dangerous"],
)
def test_constructors(cls: type, make: object, port: int, mode: TlsMode) -> None:
    builder = make(cls)  # type: ignore[operator]
    settings = builder.settings
    assert (settings.host, settings.port, settings.tls.mode) == ("smtp.example.com", port, mode)
    if mode is not TlsMode.NONE:
        assert settings.tls.parameters.domain == "smtp.example.com"
    assert settings.pool == smtpx.PoolConfig()
    assert settings.timeouts == smtpx.Timeouts()
    assert isinstance(builder.build(), cls)


@pytest.mark.parametrize("cls", TRANSPORTS)
def test_unencrypted_localhost_is_built(cls: Any) -> None:
    transport = cls.unencrypted_localhost()
    assert isinstance(transport, cls)
    assert (transport.settings.host, transport.settings.port) == ("127.0.0.1", 25)
    assert transport.settings.tls.mode is TlsMode.NONE


def test_from_url() -> None:
    builder = smtpx.SmtpTransport.from_url("smtps://us%40er:p%2Fss@mail.example.com/client.test")
    s = builder.settings
    assert (s.host, s.port, s.tls.mode, s.hello_name) == (
        "mail.example.com",
        465,
        TlsMode.WRAPPER,
        "client.test",
    )
    assert s.credentials is not None
    assert (s.credentials.username, s.credentials.resolve_secret()) == ("us@er", "p/ss")
    assert "p/ss" not in repr(builder)
    assert smtpx.SmtpTransport.from_url("smtp://h?tls=required").settings.port == 587
    assert smtpx.SmtpTransport.from_url("smtp://h").settings.tls.mode is TlsMode.NONE
    with pytest.raises(smtpx.InvalidInputError):
        smtpx.SmtpTransport.from_url("http://h")


def test_builder_methods_return_new_builders() -> None:
    base = smtpx.SmtpTransport.builder_dangerous("localhost")
    other = base.port(2525).hello_name("client.test").timeout(5).pipelining(False)
    assert base.settings.port == 25
    assert other.settings.port == 2525
    assert other.settings.hello_name == "client.test"
    assert other.settings.timeouts == smtpx.Timeouts.uniform(5)
    assert not other.settings.pipelining
    custom = smtpx.Timeouts(connect=1)
    assert base.timeout(custom).settings.timeouts is custom
    assert base.pool(None).settings.pool is None
    assert base.allow_insecure_auth(True).settings.allow_insecure_auth


def test_authentication_preferences_reach_the_engine() -> None:
    builder = (
        smtpx.SmtpTransport.builder_dangerous("localhost")
        .credentials(smtpx.Credentials("u", "p"))
        .authentication([smtpx.Mechanism.LOGIN, smtpx.Mechanism.PLAIN])
    )
    assert builder.settings.session_config().mechanisms == ("LOGIN", "PLAIN")
    default = smtpx.SmtpTransport.builder_dangerous("localhost").credentials(
        smtpx.Credentials("u", "p")
    )
    assert default.settings.session_config().mechanisms == (
        "SCRAM-SHA-256",
        "CRAM-MD5",
        "PLAIN",
        "LOGIN",
    )
    token = smtpx.SmtpTransport.builder_dangerous("localhost").credentials(
        smtpx.Credentials("u", lambda: "token")
    )
    assert token.settings.session_config().mechanisms == ("XOAUTH2",)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda b: b.port(0), smtpx.InvalidInputError),
        (lambda b: b.port(70000), smtpx.InvalidInputError),
        (lambda b: b.port("25"), TypeError),
        (lambda b: b.hello_name("bad name\r\n"), smtpx.InvalidInputError),
        (lambda b: b.credentials(("u", "p")), TypeError),
        (lambda b: b.authentication([]), smtpx.InvalidInputError),
        (lambda b: b.authentication(["PLAIN"]), TypeError),
        (lambda b: b.timeout(0), smtpx.InvalidInputError),
        (lambda b: b.tls("required"), TypeError),
        (lambda b: b.pool({"max_size": 1}), TypeError),
    ],
)
def test_bad_builder_input(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call(smtpx.SmtpTransport.builder_dangerous("localhost"))  # type: ignore[operator]


def test_bad_host() -> None:
    with pytest.raises(smtpx.InvalidInputError):
        smtpx.SmtpTransport.builder_dangerous("bad host\r\nRCPT")
