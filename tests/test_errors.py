"""The error tree: classes, bases and the questions every error answers."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import pytest

import smtpx
from smtpx import errors


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced_code: str | None = None


ALL = [getattr(errors, name) for name in errors.__all__]


def test_every_error_is_an_smtp_error_and_exported() -> None:
    for cls in ALL:
        assert issubclass(cls, smtpx.SmtpError)
        assert getattr(smtpx, cls.__name__) is cls


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (errors.InvalidInputError, ValueError),
        (errors.NetworkError, ConnectionError),
        (errors.SmtpTimeoutError, TimeoutError),
        (errors.TransientError, errors.ResponseError),
        (errors.PermanentError, errors.ResponseError),
        (errors.RecipientsRefusedError, errors.ResponseError),
        (errors.TlsRequiredError, errors.TlsError),
        (errors.InsecureAuthError, errors.AuthError),
    ],
)
def test_bases(cls: type[Exception], base: type[Exception]) -> None:
    assert issubclass(cls, base)


def test_no_reply_means_no_code() -> None:
    err = errors.NetworkError("connection reset")
    assert (err.code, err.enhanced_code, err.response) == (None, None, None)
    assert str(err) == err.message == "connection reset"


@pytest.mark.parametrize(
    ("code", "transient", "permanent"), [(421, True, False), (451, True, False), (550, False, True)]
)
def test_reply_code_decides_transient_or_permanent(
    code: int, transient: bool, permanent: bool
) -> None:
    err = errors.ResponseError("refused", response=Reply(code, "4.7.1"))
    assert err.code == code
    assert err.enhanced_code == "4.7.1"
    assert (err.is_transient, err.is_permanent) == (transient, permanent)


def test_an_auth_error_takes_its_class_from_the_reply() -> None:
    assert errors.AuthError("bad credentials", response=Reply(535)).is_permanent
    assert errors.AuthError("try later", response=Reply(454)).is_transient
    no_reply = errors.AuthError("no common mechanism")
    assert not no_reply.is_transient
    assert not no_reply.is_permanent


@pytest.mark.parametrize(
    ("err", "transient", "permanent"),
    [
        (errors.NetworkError("reset"), True, False),
        (errors.SmtpTimeoutError("slow", phase="greeting"), True, False),
        (errors.InvalidInputError("CR in address"), False, True),
        (errors.InsecureAuthError("cleartext"), False, True),
        (errors.ProtocolError("garbage"), False, False),
        (errors.TlsError("bad certificate"), False, False),
        (errors.DeliveryUnknownError("no reply after end of data"), False, False),
    ],
)
def test_classification_without_a_reply(
    err: errors.SmtpError, transient: bool, permanent: bool
) -> None:
    assert (err.is_transient, err.is_permanent) == (transient, permanent)


def test_delivery_unknown_is_never_transient_even_with_a_reply() -> None:
    err = errors.DeliveryUnknownError("ambiguous", response=Reply(451))
    assert not err.is_transient
    assert not err.is_permanent


def test_timeout_phase_and_predicate() -> None:
    err = errors.SmtpTimeoutError("no reply to DATA", phase="data")
    assert err.phase == "data"
    assert err.is_timeout
    assert not errors.NetworkError("reset").is_timeout


def test_timeout_and_tls_found_in_the_cause_chain() -> None:
    timeout = errors.SmtpTimeoutError("end of data reply late", phase="data_end")
    unknown = errors.DeliveryUnknownError("unknown")
    unknown.__cause__ = timeout
    assert unknown.is_timeout
    assert not unknown.is_tls

    network = errors.NetworkError("handshake")
    network.__context__ = ssl.SSLCertVerificationError("certificate verify failed")
    assert network.is_tls
    assert not network.is_timeout
    assert errors.TlsRequiredError("no STARTTLS").is_tls


def test_a_cause_cycle_ends_the_search() -> None:
    a = errors.ProtocolError("a")
    b = errors.ProtocolError("b")
    a.__cause__ = b
    b.__cause__ = a
    assert not a.is_timeout


def test_recipients_refused_keeps_every_refusal() -> None:
    rejected = {"a@x.test": Reply(550, "5.1.1"), "b@x.test": Reply(450, "4.2.0")}
    err = errors.RecipientsRefusedError("no recipient accepted", rejected=rejected)
    assert err.rejected == rejected
    assert err.code == 550  # the first refusal
    assert err.enhanced_code == "5.1.1"
    assert not err.is_transient  # mixed: a 5yz among them
    assert not err.is_permanent  # mixed: a 4yz among them
    all_temp = errors.RecipientsRefusedError("later", rejected={"a@x.test": Reply(452)})
    assert all_temp.is_transient
    assert not all_temp.is_permanent
