"""The SASL twins: known answers, LOGIN prompts, credential refusals that never leak."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError, ProtocolError

from twins import both, differential

# The twin fixtures hand out stateless modules: one may serve every generated input.
with_twin = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

SECRET = "s3cr3t-Value"
# RFC 2195 section 2.
CRAM_CHALLENGE = b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
CRAM_RESPONSE = b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
USERNAME_PROMPT = base64.b64encode(b"Username:")
PASSWORD_PROMPT = base64.b64encode(b"Password:")


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def unb64(data: bytes) -> bytes:
    return base64.b64decode(data, validate=True)


def outcome(func: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: ("ok", result) or (exception type, message)."""
    try:
        return ("ok", func(*args))
    except Exception as exc:
        return (type(exc), str(exc))


def call(sasl_mod: ModuleType, mechanism: str, field: str, value: object) -> bytes:
    """Run ``mechanism`` with valid arguments, except the credential ``field`` = ``value``."""
    args: dict[str, object] = {"username": "tim", "password": "tanstaaftanstaaf"}
    if mechanism == "plain":
        args["authzid"] = ""
        args[field] = value
        result = sasl_mod.sasl_plain(args["username"], args["password"], args["authzid"])
    elif mechanism == "login":
        args[field] = value
        result = sasl_mod.sasl_login(PASSWORD_PROMPT, args["username"], args["password"])
    elif mechanism == "cram_md5":
        args[field] = value
        result = sasl_mod.sasl_cram_md5(CRAM_CHALLENGE, args["username"], args["password"])
    else:
        args = {"username": "tim", "token": "ya29.token"}
        args[field] = value
        result = sasl_mod.sasl_xoauth2(args["username"], args["token"])
    assert isinstance(result, bytes)
    return result


FIELDS = [
    ("plain", "username"),
    ("plain", "password"),
    ("plain", "authzid"),
    ("login", "username"),
    ("login", "password"),
    ("cram_md5", "username"),
    ("cram_md5", "password"),
    ("xoauth2", "username"),
    ("xoauth2", "token"),
]


def test_the_twin_under_test_is_the_one_asked_for(
    sasl_mod: ModuleType, implementation: str
) -> None:
    # A missing build must not run the pure twin twice.
    assert str(sasl_mod.__file__).endswith(".py") == (implementation == "python")


# ---------------------------------------------------------------- PLAIN
def test_plain_rfc4616_examples(sasl_mod: ModuleType) -> None:
    assert sasl_mod.sasl_plain("tim", "tanstaaftanstaaf") == b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
    assert sasl_mod.sasl_plain("Kurt", "xipj3plmq", "Ursel") == b"VXJzZWwAS3VydAB4aXBqM3BsbXE="


def test_plain_accepts_bytes_and_encodes_text_as_utf8(sasl_mod: ModuleType) -> None:
    assert sasl_mod.sasl_plain(b"tim", b"tanstaaftanstaaf", b"") == b64(b"\0tim\0tanstaaftanstaaf")
    assert sasl_mod.sasl_plain("jöran", "pässwörd€", "ädmin") == b64(
        "ädmin\0jöran\0pässwörd€".encode()
    )
    # bytes go out as given, even when they are not UTF-8
    assert sasl_mod.sasl_plain("j", b"p\xe4ss") == b64(b"\0j\0p\xe4ss")


def test_plain_allows_soh_and_spaces(sasl_mod: ModuleType) -> None:
    assert sasl_mod.sasl_plain("a b", "\x01 \t") == b64(b"\0a b\0\x01 \t")


def test_plain_accepts_bytes_subclasses(sasl_mod: ModuleType) -> None:
    class Secret(bytes):
        pass

    assert sasl_mod.sasl_plain(Secret(b"tim"), Secret(b"pw")) == b64(b"\0tim\0pw")


# ---------------------------------------------------------------- LOGIN
@pytest.mark.parametrize(
    "prompt",
    [
        b"Username:",
        b"username:",
        b"USERNAME",
        b"User Name:",
        b"user name",
        b"User:",
        b"user",
        b"Login:",
        b"LOGIN",
        b"  Username: \r\n",
        b"\tuser\t",
        b"User Name\x00",  # aiosmtpd's default prompt
    ],
)
def test_login_answers_username_prompts(sasl_mod: ModuleType, prompt: bytes) -> None:
    for challenge in (b64(prompt), b64(prompt).decode("ascii")):
        assert sasl_mod.sasl_login(challenge, "tim", SECRET) == b64(b"tim")


@pytest.mark.parametrize(
    "prompt", [b"Password:", b"password", b"PASSWORD:", b" Password: ", b"Password\x00"]
)
def test_login_answers_password_prompts(sasl_mod: ModuleType, prompt: bytes) -> None:
    for challenge in (b64(prompt), b64(prompt).decode("ascii")):
        assert sasl_mod.sasl_login(challenge, "tim", SECRET) == b64(SECRET.encode())


def test_login_typical_exchange(sasl_mod: ModuleType) -> None:
    assert sasl_mod.sasl_login(b"VXNlcm5hbWU6", "jöran", "pässwörd") == b64("jöran".encode())
    assert sasl_mod.sasl_login(b"UGFzc3dvcmQ6", "jöran", "pässwörd") == b64("pässwörd".encode())


@pytest.mark.parametrize(
    ("prompt", "shown"),
    [
        (b"Passcode:", "b'Passcode:'"),
        (b"", "b''"),
        (b"  ", "b''"),
        (b"Pass word:", "b'Pass word:'"),
        (b"User\x00name:", "b'User\\x00name:'"),
        (b"Passw\xc3\xb6rd:", "b'Passw\\xc3\\xb6rd:'"),
        (b"x" * 40, "b'" + "x" * 40 + "'"),
        (b"Who are you? " * 5, "b'Who are you? Who are you? Who are you? W'..."),
    ],
)
def test_login_refuses_unexpected_prompts(sasl_mod: ModuleType, prompt: bytes, shown: str) -> None:
    with pytest.raises(ProtocolError) as info:
        sasl_mod.sasl_login(b64(prompt), "tim", SECRET)
    assert str(info.value) == (
        f"unexpected LOGIN prompt {shown}: expected a username or password prompt"
    )


@pytest.mark.parametrize(
    ("challenge", "message"),
    [
        (b"VXNlcm5hbWU6\r\n", "invalid character b'\\r' at offset 12"),
        ("VXNlcm5hbWU", "length 11 is not a multiple of 4"),
        ("VXNlcm5hbWU6=", "length 13 is not a multiple of 4"),
        ("VXNlcm5hbWV=", "non-zero unused bits at offset 10"),
        ("VXNlcm5hbWU€", "non-ASCII character at offset 11"),
    ],
)
def test_login_refuses_malformed_challenges(
    sasl_mod: ModuleType, challenge: bytes | str, message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        sasl_mod.sasl_login(challenge, "tim", SECRET)
    assert str(info.value) == "malformed base64 in server challenge: " + message


# ---------------------------------------------------------------- XOAUTH2
def test_xoauth2_known_answer(sasl_mod: ModuleType) -> None:
    # Google's XOAUTH2 documentation example.
    token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    assert sasl_mod.sasl_xoauth2("someuser@example.com", token) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52Yj"
        b"NSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_xoauth2_format(sasl_mod: ModuleType) -> None:
    assert unb64(sasl_mod.sasl_xoauth2("jöran@example.com", b"t0k=n")) == (
        "user=jöran@example.com\x01auth=Bearer t0k=n\x01\x01".encode()
    )


# ---------------------------------------------------------------- CRAM-MD5
def test_cram_md5_rfc2195_example(sasl_mod: ModuleType) -> None:
    assert sasl_mod.sasl_cram_md5(CRAM_CHALLENGE, "tim", "tanstaaftanstaaf") == CRAM_RESPONSE
    assert sasl_mod.sasl_cram_md5(CRAM_CHALLENGE.decode(), b"tim", b"tanstaaftanstaaf") == (
        CRAM_RESPONSE
    )
    assert unb64(CRAM_RESPONSE) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_cram_md5_utf8_credentials(sasl_mod: ModuleType) -> None:
    digest = hmac.digest("pässwörd".encode(), b"<1.2@host>", "md5").hex()
    response = sasl_mod.sasl_cram_md5(b64(b"<1.2@host>"), "jöran", "pässwörd")
    assert unb64(response) == "jöran ".encode() + digest.encode()


def test_cram_md5_refuses_an_empty_challenge(sasl_mod: ModuleType) -> None:
    for challenge in (b"", ""):
        with pytest.raises(ProtocolError) as info:
            sasl_mod.sasl_cram_md5(challenge, "tim", SECRET)
        assert str(info.value) == "empty CRAM-MD5 challenge"


def test_cram_md5_refuses_a_malformed_challenge(sasl_mod: ModuleType) -> None:
    with pytest.raises(ProtocolError) as info:
        sasl_mod.sasl_cram_md5(CRAM_CHALLENGE[:-1], "tim", SECRET)
    assert str(info.value) == (
        "malformed base64 in server challenge: length 55 is not a multiple of 4"
    )


# ---------------------------------------------------------------- refusals
def forbidden(mechanism: str) -> list[str]:
    return ["\0", "\r", "\n", "\r\n", *(["\x01"] if mechanism == "xoauth2" else [])]


@pytest.mark.parametrize(("mechanism", "field"), FIELDS)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_injection_is_refused_without_leaking_the_value(
    sasl_mod: ModuleType, mechanism: str, field: str, as_bytes: bool
) -> None:
    chars = "NUL, CR, LF or \\x01" if mechanism == "xoauth2" else "NUL, CR or LF"
    for char in forbidden(mechanism):
        for value in (SECRET + char, char + SECRET, SECRET + char + "AUTH PLAIN"):
            with pytest.raises(InvalidInputError) as info:
                call(sasl_mod, mechanism, field, value.encode() if as_bytes else value)
            assert str(info.value) == f"SASL {field} contains a {chars} character"
            assert SECRET not in repr(info.value.args)
            assert info.value.__context__ is None
            assert info.value.__cause__ is None


@pytest.mark.parametrize(("mechanism", "field"), FIELDS)
def test_soh_is_refused_only_by_xoauth2(sasl_mod: ModuleType, mechanism: str, field: str) -> None:
    result = outcome(call, sasl_mod, mechanism, field, "a\x01b")
    if mechanism == "xoauth2":
        assert result == (
            InvalidInputError,
            f"SASL {field} contains a NUL, CR, LF or \\x01 character",
        )
    else:
        assert result[0] == "ok"


@pytest.mark.parametrize(("mechanism", "field"), FIELDS)
def test_empty_credentials(sasl_mod: ModuleType, mechanism: str, field: str) -> None:
    for empty in ("", b""):
        result = outcome(call, sasl_mod, mechanism, field, empty)
        if field == "authzid":  # empty: act as the username
            assert result == ("ok", b64(b"\0tim\0tanstaaftanstaaf"))
        else:
            assert result == (InvalidInputError, f"SASL {field} is empty")


@pytest.mark.parametrize(("mechanism", "field"), FIELDS)
def test_lone_surrogates_are_refused_without_leaking(
    sasl_mod: ModuleType, mechanism: str, field: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        call(sasl_mod, mechanism, field, SECRET + "\udcff")
    assert str(info.value) == f"SASL {field} is not valid Unicode: it has a lone surrogate"
    assert info.value.__context__ is None  # the UnicodeEncodeError held the whole value
    assert info.value.__cause__ is None


@pytest.mark.parametrize(("mechanism", "field"), FIELDS)
@pytest.mark.parametrize(
    ("value", "kind"), [(42, "int"), (None, "NoneType"), (bytearray(b"x"), "bytearray")]
)
def test_credentials_must_be_str_or_bytes(
    sasl_mod: ModuleType, mechanism: str, field: str, value: object, kind: str
) -> None:
    with pytest.raises(TypeError) as info:
        call(sasl_mod, mechanism, field, value)
    assert str(info.value) == f"SASL {field} must be str or bytes, not {kind}"


@pytest.mark.parametrize("mechanism", ["sasl_login", "sasl_cram_md5"])
@pytest.mark.parametrize(
    ("challenge", "kind"),
    [(None, "NoneType"), (123, "int"), (memoryview(b"UGFzcw=="), "memoryview")],
)
def test_challenges_must_be_str_or_bytes(
    sasl_mod: ModuleType, mechanism: str, challenge: object, kind: str
) -> None:
    with pytest.raises(TypeError) as info:
        getattr(sasl_mod, mechanism)(challenge, "tim", SECRET)
    assert str(info.value) == f"SASL challenge must be str or bytes, not {kind}"


def test_checks_run_in_argument_order_then_the_challenge(sasl_mod: ModuleType) -> None:
    cases: list[tuple[Callable[[], bytes], type[Exception], str]] = [
        (lambda: sasl_mod.sasl_plain("", "a\n", 1), InvalidInputError, "SASL username is empty"),
        (lambda: sasl_mod.sasl_plain("u", "", 1), InvalidInputError, "SASL password is empty"),
        (lambda: sasl_mod.sasl_plain("u", "p", 1), TypeError, "SASL authzid must be"),
        (lambda: sasl_mod.sasl_login(1, "", ""), TypeError, "SASL challenge must be"),
        (lambda: sasl_mod.sasl_login("!", "u", "\0"), InvalidInputError, "SASL password"),
        (lambda: sasl_mod.sasl_cram_md5("", 1, ""), TypeError, "SASL username must be"),
        (lambda: sasl_mod.sasl_cram_md5("", "u", "\r"), InvalidInputError, "SASL password"),
        (lambda: sasl_mod.sasl_xoauth2("u\x01", ""), InvalidInputError, "SASL username"),
    ]
    for func, error, message in cases:
        with pytest.raises(error) as info:
            func()
        assert str(info.value).startswith(message)


# ---------------------------------------------------------------- properties
credentials = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\0\r\n\x01"), min_size=1
)


@with_twin
@given(username=credentials, password=credentials, authzid=st.one_of(st.just(""), credentials))
def test_plain_round_trip(sasl_mod: ModuleType, username: str, password: str, authzid: str) -> None:
    response = sasl_mod.sasl_plain(username, password, authzid)
    assert unb64(response).split(b"\0") == [s.encode() for s in (authzid, username, password)]


@with_twin
@given(username=credentials, token=credentials)
def test_xoauth2_round_trip(sasl_mod: ModuleType, username: str, token: str) -> None:
    response = unb64(sasl_mod.sasl_xoauth2(username, token))
    assert response == f"user={username}\x01auth=Bearer {token}\x01\x01".encode()


@with_twin
@given(challenge=st.binary(min_size=1, max_size=200), username=credentials, password=credentials)
def test_cram_md5_matches_hmac(
    sasl_mod: ModuleType, challenge: bytes, username: str, password: str
) -> None:
    digest = hmac.digest(password.encode(), challenge, "md5").hex()
    response = sasl_mod.sasl_cram_md5(b64(challenge), username, password)
    assert unb64(response) == f"{username} {digest}".encode()


# Text credentials of any kind: forbidden characters, surrogates, empty, non-ASCII.
any_text = st.one_of(st.text(max_size=12), st.sampled_from(["", "\0", "a\r", "\x01", "\udc80"]))
any_credential = st.one_of(any_text, any_text.map(lambda s: s.encode("utf-8", "surrogatepass")))
prompts = st.sampled_from([b"Username:", b"Password:", b" user ", b"Passcode:", b"", b"x" * 50])
any_challenge = st.one_of(
    prompts.map(b64),
    prompts.map(lambda p: b64(p).decode("ascii")),
    st.binary(max_size=20),
    st.text(alphabet="QUJDZm9v+/=é \n", max_size=12),
)


@differential
@given(username=any_credential, password=any_credential, authzid=any_credential)
def test_twins_plain_alike(
    username: str | bytes, password: str | bytes, authzid: str | bytes
) -> None:
    py, c = both("_sasl")
    assert outcome(py.sasl_plain, username, password, authzid) == outcome(
        c.sasl_plain, username, password, authzid
    )


@differential
@given(username=any_credential, token=any_credential)
def test_twins_xoauth2_alike(username: str | bytes, token: str | bytes) -> None:
    py, c = both("_sasl")
    assert outcome(py.sasl_xoauth2, username, token) == outcome(c.sasl_xoauth2, username, token)


@differential
@given(challenge=any_challenge, username=any_credential, password=any_credential)
def test_twins_challenge_responses_alike(
    challenge: bytes | str, username: str | bytes, password: str | bytes
) -> None:
    py, c = both("_sasl")
    for name in ("sasl_login", "sasl_cram_md5"):
        args = (challenge, username, password)
        assert outcome(getattr(py, name), *args) == outcome(getattr(c, name), *args)
