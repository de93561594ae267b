"""tests/servers.py: the aiosmtpd servers work, as the stdlib's smtplib sees them."""

from __future__ import annotations

import base64
import hmac
import json
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import servers
from servers import USERS, Certificates, SmtpServer

Factory = Callable[..., SmtpServer]
TIMEOUT = 5.0
MESSAGE = b"From: a@x.test\r\nSubject: hi\r\n\r\n.a line starting with a dot\r\nbye\r\n"
PASSWORD = USERS["alice"]


def features(smtp: smtplib.SMTP) -> dict[str, str]:
    code, _ = smtp.ehlo()
    assert code == 250
    return dict(smtp.esmtp_features)


def connect_starttls(srv: SmtpServer, certs: Certificates) -> smtplib.SMTP:
    """An smtplib client past STARTTLS, verifying the server's certificate for localhost."""
    smtp = smtplib.SMTP("localhost", srv.port, timeout=TIMEOUT)
    smtp.starttls(context=certs.client_context())
    return smtp


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------- plain
def test_a_plain_send_is_recorded_as_sent(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(*smtp_server.address, timeout=TIMEOUT) as smtp:
        ehlo = features(smtp)
        refused = smtp.sendmail(
            "a@x.test", ["b@x.test", "c@x.test"], MESSAGE, mail_options=["BODY=8BITMIME"]
        )
    assert refused == {}
    assert set(ehlo) == {"size", "8bitmime", "pipelining", "help"}  # no AUTH, TLS, UTF-8
    [message] = smtp_server.messages
    assert message.mail_from == "a@x.test"
    assert message.mail_options == (f"SIZE={len(MESSAGE)}", "BODY=8BITMIME")
    assert message.rcpt_tos == ("b@x.test", "c@x.test")
    assert message.rcpt_options == ()
    assert message.content == MESSAGE  # smtplib stuffed the dot; aiosmtpd removed it
    assert message.login is None
    assert message.tls is False
    assert message.reply == "250 2.0.0 OK"


def test_eight_bit_content_is_kept_byte_for_byte(smtp_server: SmtpServer) -> None:
    body = "Subject: caf\u00e9\r\n\r\nna\u00efve \u2603\r\n".encode()
    with smtplib.SMTP(*smtp_server.address, timeout=TIMEOUT) as smtp:
        smtp.sendmail("a@x.test", ["b@x.test"], body, mail_options=["BODY=8BITMIME"])
    assert smtp_server.messages[0].content == body


def test_pipelined_commands_are_answered_in_order(smtp_server: SmtpServer) -> None:
    with socket.create_connection(smtp_server.address, timeout=TIMEOUT) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"EHLO me\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
        replies = [reader.readline() for _ in range(8)]
        sock.sendall(b"hello\r\n.\r\nQUIT\r\n")
        replies += [reader.readline(), reader.readline()]
        reader.close()
    assert replies[:5] == [
        b"250-smtp.test\r\n",
        b"250-SIZE 33554432\r\n",
        b"250-8BITMIME\r\n",
        b"250-PIPELINING\r\n",
        b"250 HELP\r\n",
    ]
    assert [r[:3] for r in replies[5:]] == [b"250", b"250", b"354", b"250", b"221"]
    assert smtp_server.messages[0].content == b"hello\r\n"


def test_pipelining_can_be_left_unadvertised(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(pipelining=False)
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        assert "pipelining" not in features(smtp)


# ---------------------------------------------------------------- TLS
def test_starttls_with_verification(smtp_server_factory: Factory, tls_certs: Certificates) -> None:
    srv = smtp_server_factory(tls="starttls")
    with smtplib.SMTP("localhost", srv.port, timeout=TIMEOUT) as smtp:
        assert "starttls" in features(smtp)
        code, _ = smtp.starttls(context=tls_certs.client_context())
        assert code == 220
        assert isinstance(smtp.sock, ssl.SSLSocket)
        assert "starttls" not in features(smtp)
        smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert srv.messages[0].tls is True


def test_the_ca_file_fixture_verifies_too(smtp_server_factory: Factory, tls_ca_file: Path) -> None:
    srv = smtp_server_factory(tls="starttls")
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(tls_ca_file)))
        assert isinstance(smtp.sock, ssl.SSLSocket)
        assert smtp.sock.getpeercert() is not None  # verified against the CA in the file


def test_require_starttls_refuses_mail_before_it(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(tls="starttls", require_starttls=True)
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        features(smtp)
        assert smtp.mail("a@x.test")[0] == 530
    assert srv.messages == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_implicit_tls_with_smtp_ssl(
    smtp_server_factory: Factory, tls_certs: Certificates, host: str
) -> None:
    srv = smtp_server_factory(tls="implicit", auth=True)
    context = tls_certs.client_context()
    with smtplib.SMTP_SSL(host, srv.port, context=context, timeout=TIMEOUT) as smtp:
        assert "starttls" not in features(smtp)
        smtp.login("alice", PASSWORD)  # AUTH over implicit TLS, auth_require_tls on
        smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    [message] = srv.messages
    assert (message.tls, message.login) == (True, "alice")


@pytest.mark.parametrize(
    ("leaf", "error"),
    [("unknown_ca", "certificate verify failed"), ("wrong_host", "match")],
)
def test_bad_certificates_fail_verification(
    smtp_server_factory: Factory, tls_certs: Certificates, leaf: str, error: str
) -> None:
    context = tls_certs.server_context(getattr(tls_certs, leaf))
    srv = smtp_server_factory(tls="starttls", tls_context=context)
    with smtplib.SMTP("localhost", srv.port, timeout=TIMEOUT) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError, match=error):
            smtp.starttls(context=tls_certs.client_context())
        smtp.close()  # the TLS layer failed; QUIT cannot be sent


# ---------------------------------------------------------------- AUTH
def auth_plain(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    return smtp.auth("PLAIN", smtp.auth_plain)


def auth_login(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    return smtp.auth("LOGIN", smtp.auth_login)


def auth_cram_md5(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    return smtp.auth("CRAM-MD5", smtp.auth_cram_md5, initial_response_ok=False)


def auth_xoauth2(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    def respond(challenge: bytes | None = None) -> str:
        """The initial response, then "" to the server's error challenge."""
        return "" if challenge else f"user={smtp.user}\x01auth=Bearer {smtp.password}\x01\x01"

    return smtp.auth("XOAUTH2", respond)


AUTHS = {
    "PLAIN": auth_plain,
    "LOGIN": auth_login,
    "CRAM-MD5": auth_cram_md5,
    "XOAUTH2": auth_xoauth2,
}


@pytest.mark.parametrize("mechanism", sorted(AUTHS))
def test_auth_after_starttls(
    smtp_server_factory: Factory, tls_certs: Certificates, mechanism: str
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        assert features(smtp)["auth"].split() == ["CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2"]
        smtp.user, smtp.password = "alice", PASSWORD
        code, reply = AUTHS[mechanism](smtp)
        assert (code, reply) == (235, b"2.7.0 Authentication successful")
        smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert srv.messages[0].login == "alice"


@pytest.mark.parametrize("mechanism", sorted(AUTHS))
def test_a_wrong_password_gets_535(
    smtp_server_factory: Factory, tls_certs: Certificates, mechanism: str
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        smtp.user, smtp.password = "alice", "not the password"
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            AUTHS[mechanism](smtp)
        assert info.value.smtp_code == 535
        assert smtp.mail("a@x.test")[0] == 250  # still usable, unauthenticated
        smtp.rset()


@pytest.mark.parametrize("mechanism", sorted(AUTHS))
def test_an_unknown_user_gets_535(
    smtp_server_factory: Factory, tls_certs: Certificates, mechanism: str
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        smtp.user, smtp.password = "mallory", PASSWORD
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            AUTHS[mechanism](smtp)
        assert info.value.smtp_code == 535


def test_auth_is_withheld_before_tls(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        assert "auth" not in features(smtp)
        code, _ = smtp.docmd("AUTH", "PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()))
        assert code == 538


def test_auth_in_cleartext_when_allowed(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(auth=True, auth_require_tls=False)
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        assert "auth" in features(smtp)
        smtp.login("alice", PASSWORD)
        smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert (srv.messages[0].login, srv.messages[0].tls) == ("alice", False)


def test_a_utf8_password_with_plain(smtp_server_factory: Factory, tls_certs: Certificates) -> None:
    """smtplib encodes credentials as ASCII, so the exchange is written by hand."""
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        response = b"\0bob\0" + USERS["bob"].encode("utf-8")
        assert smtp.docmd("AUTH", "PLAIN " + b64(response))[0] == 235
        smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert srv.messages[0].login == "bob"


def test_cram_md5_challenge_and_digest(
    smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        code, challenge_b64 = smtp.docmd("AUTH", "CRAM-MD5")
        assert code == 334
        challenge = base64.b64decode(challenge_b64)
        assert challenge.startswith(b"<")
        assert challenge.endswith(b"@smtp.test>")
        digest = hmac.new(PASSWORD.encode(), challenge, "md5").hexdigest()
        assert smtp.docmd(b64(f"alice {digest}".encode()))[0] == 235


def test_login_prompts_are_the_usual_ones(
    smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        assert smtp.docmd("AUTH", "LOGIN") == (334, b64(b"Username:").encode())
        assert smtp.docmd(b64(b"alice")) == (334, b64(b"Password:").encode())
        assert smtp.docmd(b64(PASSWORD.encode()))[0] == 235


def test_xoauth2_after_an_empty_challenge(
    smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        assert smtp.docmd("AUTH", "XOAUTH2") == (334, b"")
        payload = f"user=alice\x01auth=Bearer {PASSWORD}\x01\x01".encode()
        assert smtp.docmd(b64(payload))[0] == 235


def test_a_refused_xoauth2_token_gets_googles_error_then_535(
    smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        payload = b"user=alice\x01auth=Bearer expired\x01\x01"
        code, challenge = smtp.docmd("AUTH", "XOAUTH2 " + b64(payload))
        assert code == 334
        assert json.loads(base64.b64decode(challenge))["status"] == "401"
        assert smtp.docmd("")[0] == 535


def test_a_malformed_xoauth2_response_gets_501(
    smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True)
    with connect_starttls(srv, tls_certs) as smtp:
        features(smtp)
        assert smtp.docmd("AUTH", "XOAUTH2 " + b64(b"user=alice\x01"))[0] == 501


def test_auth_off_advertises_and_accepts_no_mechanism(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(*smtp_server.address, timeout=TIMEOUT) as smtp:
        assert "auth" not in features(smtp)
        code, reply = smtp.docmd("AUTH", "PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()))
        assert (code, reply) == (503, b"5.5.1 Error: authentication not enabled")


def test_only_the_chosen_mechanisms_are_offered(
    smtp_server_factory: Factory, tls_certs: Certificates
) -> None:
    srv = smtp_server_factory(tls="starttls", auth=True, mechanisms=["PLAIN"])
    with connect_starttls(srv, tls_certs) as smtp:
        assert features(smtp)["auth"].split() == ["PLAIN"]
        assert smtp.docmd("AUTH", "LOGIN")[0] == 504


# ---------------------------------------------------------------- SIZE and SMTPUTF8
def test_size_is_advertised_and_enforced(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(data_size_limit=100)
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        assert features(smtp)["size"] == "100"
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            smtp.sendmail("a@x.test", ["b@x.test"], b"x" * 101)  # declares SIZE=101
        assert info.value.smtp_code == 552
        assert smtp.mail("a@x.test")[0] == 250  # no SIZE declared: refused after DATA
        assert smtp.rcpt("b@x.test")[0] == 250
        assert smtp.data(b"x" * 200)[0] == 552
    assert srv.messages == []


def test_no_size_limit(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(data_size_limit=None)
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        assert "size" not in features(smtp)


def test_smtputf8(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(smtputf8=True)
    sender, recipient = "j\u00f6rg@x.test", "\u00e5sa@\u00e9x.test"
    body = f"From: {sender}\r\n\r\nhi\r\n".encode()
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        assert "smtputf8" in features(smtp)
        smtp.sendmail(sender, [recipient], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [message] = srv.messages
    assert (message.mail_from, message.rcpt_tos) == (sender, (recipient,))
    assert "SMTPUTF8" in message.mail_options
    assert message.content == body


def test_smtputf8_off_refuses_it(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(*smtp_server.address, timeout=TIMEOUT) as smtp:
        assert "smtputf8" not in features(smtp)
        assert smtp.docmd("MAIL", "FROM:<a@x.test> SMTPUTF8")[0] == 501


# ---------------------------------------------------------------- reply hooks
def test_refused_recipients_get_the_chosen_reply(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(
        refuse={"bad@x.test": "550 5.1.1 no such user", "full@x.test": "452 4.2.2 mailbox full"}
    )
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        refused = smtp.sendmail("a@x.test", ["bad@x.test", "b@x.test", "full@x.test"], MESSAGE)
        assert refused == {
            "bad@x.test": (550, b"5.1.1 no such user"),
            "full@x.test": (452, b"4.2.2 mailbox full"),
        }
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@x.test", ["bad@x.test"], MESSAGE)
    [message] = srv.messages
    assert message.rcpt_tos == ("b@x.test",)


def test_data_gets_the_chosen_reply(smtp_server_factory: Factory) -> None:
    srv = smtp_server_factory(data_reply="451 4.3.0 try again later")
    with smtplib.SMTP(*srv.address, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
        assert (info.value.smtp_code, info.value.smtp_error) == (451, b"4.3.0 try again later")
    [message] = srv.messages
    assert (message.content, message.reply) == (MESSAGE, "451 4.3.0 try again later")


# ---------------------------------------------------------------- life cycle
def test_stopping_with_open_connections_is_clean(tls_certs: Certificates) -> None:
    """Open sessions of every kind are cut at stop: no hang, no leaked socket or task
    (pytest's -W error turns a ResourceWarning into a failure)."""
    with SmtpServer(tls="starttls") as srv, SmtpServer(tls="implicit") as implicit:
        plain = smtplib.SMTP(*srv.address, timeout=TIMEOUT)
        secure = connect_starttls(srv, tls_certs)
        context = tls_certs.client_context()
        wrapped = smtplib.SMTP_SSL("localhost", implicit.port, context=context, timeout=TIMEOUT)
        for smtp in (plain, secure, wrapped):
            features(smtp)
    for smtp in (plain, secure, wrapped):
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            smtp.noop()
        smtp.close()
    assert not [t for t in threading.enumerate() if t.name == "aiosmtpd"]


def test_start_and_stop_are_checked() -> None:
    srv = SmtpServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.port
    srv.stop()  # never started: nothing to do
    with srv, pytest.raises(RuntimeError, match="already started"):
        srv.start()
    srv.stop()  # stopped: nothing to do


def test_a_start_failure_is_raised_in_the_test_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot_bind(self: object) -> None:
        raise OSError("cannot bind")

    monkeypatch.setattr(servers._Controller, "begin", cannot_bind)
    srv = SmtpServer()
    with pytest.raises(RuntimeError, match="could not start") as info:
        srv.start()
    assert isinstance(info.value.__cause__, OSError)
    assert not [t for t in threading.enumerate() if t.name == "aiosmtpd"]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback(smtp_server_factory: Factory, tls_certs: Certificates) -> None:
    srv = smtp_server_factory(host="::1", tls="starttls")
    with smtplib.SMTP("::1", srv.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_certs.client_context())  # the certificate names ::1
        smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert srv.messages[0].tls is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tls": "ssl"}, "tls must be"),
        ({"require_starttls": True}, 'require_starttls needs tls="starttls"'),
        ({"tls_context": ssl.create_default_context()}, "a tls_context needs"),
        ({"auth": True, "mechanisms": ["GSSAPI"]}, "unknown AUTH mechanisms ['GSSAPI']"),
        ({"host": "0.0.0.0"}, "loopback"),
        ({"host": "localhost"}, "loopback"),
        ({"refuse": {"x@x.test": "no"}}, "not a one-line SMTP reply: 'no'"),
        ({"data_reply": "250 ok\r\n250 injected"}, "not a one-line SMTP reply"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SmtpServer(**options)  # type: ignore[arg-type]
