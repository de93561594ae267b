"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the client computations against RFC 7677's
example, every way a server message can be wrong, SASLprep (RFC 4013), and the engine's
exchange (mutual authentication: a server that cannot prove itself is refused)."""

from __future__ import annotations

import base64

import pytest

from smtpx import errors
from smtpx.protocol.scram import ScramSha256, saslprep
from smtpx.protocol.session import Session, SessionConfig, State, TlsPolicy

# RFC 7677 section 3.
NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def client() -> ScramSha256:
    return ScramSha256("user", "pencil", nonce=NONCE)


def test_rfc7677_example() -> None:
    scram = client()
    assert scram.first() == b64(f"n,,n=user,r={NONCE}").encode()
    assert scram.answer(b64(SERVER_FIRST)) == b64(CLIENT_FINAL).encode()
    assert not scram.done
    assert scram.answer(b64(SERVER_FINAL)) == b""
    assert scram.done


def test_a_wrong_server_signature_is_refused() -> None:
    scram = client()
    scram.answer(b64(SERVER_FIRST))
    forged = "v=" + base64.b64encode(b"\0" * 32).decode()
    with pytest.raises(errors.ProtocolError, match="does not know the password"):
        scram.answer(b64(forged))
    assert not scram.done


@pytest.mark.parametrize(
    ("server_first", "match"),
    [
        ("r=someone-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
        (f"r={NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
        (f"r={NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095", "outside 4096"),
        (f"r={NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999", "outside 4096"),
        (f"r={NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "not a number"),
        (f"r={NONCE}x,s=,i=4096", "salt is empty"),
        (f"r={NONCE}x,s=not base64!,i=4096", "malformed"),
        (f"m=ext,r={NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension"),
        (f"r={NONCE}x,i=4096", "malformed SCRAM server-first"),
        (f"r={NONCE}\u00e9,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "printable ASCII"),
    ],
)
def test_bad_server_first_messages(server_first: str, match: str) -> None:
    with pytest.raises(errors.ProtocolError, match=match):
        client().answer(b64(server_first))


@pytest.mark.parametrize(
    ("server_final", "match"),
    [("e=invalid-proof", "error: invalid-proof"), ("x=1", "no v="), ("v=@@@@", "malformed")],
)
def test_bad_server_final_messages(server_final: str, match: str) -> None:
    scram = client()
    scram.answer(b64(SERVER_FIRST))
    with pytest.raises(errors.ProtocolError, match=match):
        scram.answer(b64(server_final))


def test_not_base64_or_not_utf8_or_too_long() -> None:
    with pytest.raises(errors.ProtocolError, match="malformed"):
        client().answer("%%%%")
    with pytest.raises(errors.ProtocolError, match="not UTF-8"):
        client().answer(base64.b64encode(b"\xff\xfe").decode())
    with pytest.raises(errors.ProtocolError, match="too long"):
        client().answer("QUFB" * 2000)


def test_the_server_final_message_inside_a_235() -> None:
    scram = client()
    scram.answer(b64(SERVER_FIRST))
    scram.verify_success_data(f"2.7.0 {b64(SERVER_FINAL)}")
    assert scram.done
    with pytest.raises(errors.ProtocolError, match="without proving"):
        client().verify_success_data("2.7.0 Authentication successful")


def test_username_escaping_and_random_nonces() -> None:
    scram = ScramSha256("a=b,c", "pw")
    first = base64.b64decode(scram.first()).decode()
    assert first.startswith("n,,n=a=3Db=2Cc,r=")
    nonce = first.split(",r=")[1]
    assert len(nonce) == 24
    assert "," not in nonce
    assert nonce != base64.b64decode(ScramSha256("a", "pw").first()).decode().split(",r=")[1]


@pytest.mark.parametrize(
    ("text", "prepared"),
    [
        ("user", "user"),
        ("I\u00adX", "IX"),  # soft hyphen is mapped to nothing
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space becomes a space
        ("\u0627\u0628", "\u0627\u0628"),  # right-to-left only
    ],
)
def test_saslprep(text: str, prepared: str) -> None:
    assert saslprep(text, "password") == prepared


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("\u00ad", "empty after SASLprep"),
        ("a\u0007b", "prohibits"),
        ("a\nb", "prohibits"),
        ("\u0627\u0031", "directions"),  # RandALCat must start and end the string
        ("\u0627a\u0628", "directions"),  # and not be mixed with LCat
    ],
)
def test_saslprep_refusals_never_show_the_value(text: str, match: str) -> None:
    with pytest.raises(errors.InvalidInputError, match=match) as info:
        saslprep(text, "password")
    assert "password" in str(info.value)
    if text.strip("\u00ad"):
        assert text not in str(info.value)


# ---------------------------------------------------------------- the engine's exchange
def exchange(replies: list[bytes], monkeypatch: pytest.MonkeyPatch) -> tuple[Session, list[bytes]]:
    """Open a session whose server offers only SCRAM-SHA-256; the client nonce is RFC
    7677's. Returns the session and what the client wrote."""
    monkeypatch.setattr("smtpx.protocol.scram.secrets.token_urlsafe", lambda n: NONCE)
    config = SessionConfig(
        hello_name="client.test",
        starttls=TlsPolicy.NONE,
        credentials=("user", "pencil"),
        mechanisms=("SCRAM-SHA-256",),
    )
    session = Session(config)
    script = [b"220 mx.test\r\n", b"250-mx.test\r\n250 AUTH SCRAM-SHA-256\r\n", *replies]
    writes: list[bytes] = []
    procedure = session.open()
    value: bytes | None = None
    while True:
        try:
            op = procedure.send(value)
        except StopIteration:
            break
        value = None
        if hasattr(op, "chunks"):
            writes.append(b"".join(bytes(c) for c in op.chunks))
        else:
            value = script.pop(0) if script else b""
    return session, writes


def test_engine_scram_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [
        f"334 {b64(SERVER_FIRST)}\r\n".encode(),
        f"334 {b64(SERVER_FINAL)}\r\n".encode(),
        b"235 2.7.0 ok\r\n",
    ]
    session, writes = exchange(replies, monkeypatch)
    assert session.state is State.READY
    assert writes[1:] == [
        f"AUTH SCRAM-SHA-256 {b64(f'n,,n=user,r={NONCE}')}\r\n".encode(),
        f"{b64(CLIENT_FINAL)}\r\n".encode(),
        b"\r\n",
    ]
    assert not any(b"pencil" in w for w in writes)  # the password never crosses


def test_engine_refuses_a_server_that_cannot_prove_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    forged = "v=" + base64.b64encode(b"\1" * 32).decode()
    replies = [
        f"334 {b64(SERVER_FIRST)}\r\n".encode(),
        f"334 {b64(forged)}\r\n".encode(),
        b"501 cancelled\r\n",
    ]
    with pytest.raises(errors.AuthError, match="does not know the password"):
        exchange(replies, monkeypatch)


def test_engine_refuses_a_235_without_the_server_proof(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [f"334 {b64(SERVER_FIRST)}\r\n".encode(), b"235 2.7.0 ok\r\n"]
    with pytest.raises(errors.AuthError, match="without proving"):
        exchange(replies, monkeypatch)


def test_engine_scram_wrong_password_is_535(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [
        f"334 {b64(SERVER_FIRST)}\r\n".encode(),
        b"535 5.7.8 authentication failed\r\n",
    ]
    with pytest.raises(errors.AuthError, match="535") as info:
        exchange(replies, monkeypatch)
    assert info.value.enhanced_code == "5.7.8"
