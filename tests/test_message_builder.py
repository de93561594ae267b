"""The message builder: golden messages, structure, transfer encodings, envelopes, errors."""

from __future__ import annotations

import email
import email.message
import email.policy
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import smtpx.message._parts
from smtpx import _hot
from smtpx.config import Envelope
from smtpx.errors import InvalidInputError
from smtpx.message import Address, Mailbox, Message, MessageBuilder

DATE = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def fixed_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Multipart boundaries "=_0.TOKEN", "=_1.TOKEN"...: golden output."""
    monkeypatch.setattr(smtpx.message._parts, "_token", lambda: b"TOKEN")


def base() -> MessageBuilder:
    return Message.builder().from_("a@example.com").to("b@example.com")


def parse(message: Message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# ---------------------------------------------------------------- golden messages
def test_the_seed_example() -> None:
    email_ = (
        Message.builder()
        .from_("NoBody <nobody@domain.tld>")
        .reply_to("Yuin <yuin@domain.tld>")
        .to("Hei <hei@domain.tld>")
        .subject("Happy new year")
        .date(DATE)
        .message_id("<golden@domain.tld>")
        .body("Be happy!")
    )
    assert email_.as_bytes() == crlf(
        "Date: Thu, 01 Jan 2026 12:00:00 +0000\n"
        "From: NoBody <nobody@domain.tld>\n"
        "Reply-To: Yuin <yuin@domain.tld>\n"
        "To: Hei <hei@domain.tld>\n"
        "Subject: Happy new year\n"
        "Message-ID: <golden@domain.tld>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        "Be happy!"
    )
    assert email_.envelope == Envelope("nobody@domain.tld", ["hei@domain.tld"])
    assert email_.message_id == "<golden@domain.tld>"


@pytest.mark.usefixtures("fixed_boundaries")
def test_golden_international_multipart_message() -> None:
    message = (
        Message.builder()
        .from_("Jörg Müller <joerg@bücher.de>")
        .to("Ann <ann@example.com>")
        .cc("bob@example.com")
        .bcc("eve@example.com")
        .subject("Grüße zum Jahreswechsel")
        .date(DATE)
        .message_id("golden@xn--bcher-kva.de")
        .in_reply_to("<earlier@example.com>")
        .references("<first@example.com> <earlier@example.com>")
        .header("X-Campaign", "new year")
        .text("Hallo Ann,\nfrohes neues Jahr! Ünd so.\n")
        .html('<p>Hallo Ann,</p><img src="cid:logo">')
        .inline("logo", b"\x89PNG\r\n", "logo.png")
        .attach(b"col1,col2\n1,2\n", "Übersicht.csv", "text/csv; charset=utf-8")
        .build()
    )
    assert message.as_bytes() == crlf(
        "Date: Thu, 01 Jan 2026 12:00:00 +0000\n"
        "From: =?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <joerg@xn--bcher-kva.de>\n"
        "To: Ann <ann@example.com>\n"
        "Cc: bob@example.com\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_zum_Jahreswechsel?=\n"
        "Message-ID: <golden@xn--bcher-kva.de>\n"
        "In-Reply-To: <earlier@example.com>\n"
        "References: <first@example.com> <earlier@example.com>\n"
        "X-Campaign: new year\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed;\n"
        ' boundary="=_0.TOKEN"\n'
        "\n"
        "--=_0.TOKEN\n"
        "Content-Type: multipart/alternative;\n"
        ' boundary="=_1.TOKEN"\n'
        "\n"
        "--=_1.TOKEN\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Hallo Ann,\n"
        "frohes neues Jahr! =C3=9Cnd so.\n"
        "\n"
        "--=_1.TOKEN\n"
        'Content-Type: multipart/related; type="text/html";\n'
        ' boundary="=_2.TOKEN"\n'
        "\n"
        "--=_2.TOKEN\n"
        "Content-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        '<p>Hallo Ann,</p><img src="cid:logo">\n'
        "--=_2.TOKEN\n"
        'Content-Type: image/png; name="logo.png"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: inline; filename="logo.png"\n'
        "Content-ID: <logo>\n"
        "\n"
        "iVBORw0K\n"
        "--=_2.TOKEN--\n"
        "--=_1.TOKEN--\n"
        "--=_0.TOKEN\n"
        "Content-Type: text/csv; charset=utf-8; name*=utf-8''%C3%9Cbersicht.csv\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename*=utf-8''%C3%9Cbersicht.csv\n"
        "\n"
        "Y29sMSxjb2wyCjEsMgo=\n"
        "--=_0.TOKEN--\n"
    )
    assert message.envelope == Envelope(
        "joerg@xn--bcher-kva.de", ["ann@example.com", "bob@example.com", "eve@example.com"]
    )


@pytest.mark.usefixtures("fixed_boundaries")
def test_golden_long_headers_and_names() -> None:
    message = (
        Message.builder()
        .from_("Very Long Sender Name That Goes On <sender@example.com>")
        .to(Mailbox("first@example.com", "First, Recipient"))
        .to("Second Recipient With A Name <second@example.com>")
        .to("third@example.com")
        .subject("A subject that is long enough to need folding over more than one line of text")
        .date(DATE)
        .message_id("<long@example.com>")
        .attach(b"x", "a-file-name-that-is-far-too-long-to-fit-in-one-quoted-parameter.txt")
        .build()
    )
    assert message.as_bytes() == crlf(
        "Date: Thu, 01 Jan 2026 12:00:00 +0000\n"
        "From: Very Long Sender Name That Goes On <sender@example.com>\n"
        'To: "First, Recipient" <first@example.com>, Second Recipient With A Name\n'
        " <second@example.com>, third@example.com\n"
        "Subject: A subject that is long enough to need folding over more than one line\n"
        " of text\n"
        "Message-ID: <long@example.com>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed;\n"
        ' boundary="=_0.TOKEN"\n'
        "\n"
        "--=_0.TOKEN\n"
        "Content-Type: text/plain;\n"
        " name*0*=utf-8''a-file-name-that-is-far-too-long-to-fit-in-one-q;\n"
        " name*1*=uoted-parameter.txt\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment;\n"
        " filename*0*=utf-8''a-file-name-that-is-far-too-long-to-fit-in-one-q;\n"
        " filename*1*=uoted-parameter.txt\n"
        "\n"
        "eA==\n"
        "--=_0.TOKEN--\n"
    )


def test_golden_binary_body() -> None:
    message = (
        base().date(DATE).message_id("<bin@example.com>").body(b'{"a": 1}', "application/json")
    )
    assert message.as_bytes().partition(b"MIME-Version: 1.0\r\n")[2] == crlf(
        "Content-Type: application/json\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: inline\n"
        "\n"
        "eyJhIjogMX0=\n"
    )


# ---------------------------------------------------------------- structure
def shape(part: email.message.EmailMessage) -> object:
    """The tree of content types."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])  # type: ignore[arg-type]
    return part.get_content_type()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"text"}, "text/plain"),
        ({"html"}, "text/html"),
        ({"text", "html"}, ("multipart/alternative", ["text/plain", "text/html"])),
        ({"attach"}, ("multipart/mixed", ["application/pdf"])),
        ({"text", "attach"}, ("multipart/mixed", ["text/plain", "application/pdf"])),
        ({"html", "inline"}, ("multipart/related", ["text/html", "image/png"])),
        ({"text", "inline"}, ("multipart/related", ["text/plain", "image/png"])),
        (
            {"text", "html", "inline"},
            (
                "multipart/alternative",
                ["text/plain", ("multipart/related", ["text/html", "image/png"])],
            ),
        ),
        (
            {"text", "html", "inline", "attach"},
            (
                "multipart/mixed",
                [
                    (
                        "multipart/alternative",
                        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
                    ),
                    "application/pdf",
                ],
            ),
        ),
    ],
)
def test_structure_follows_the_parts(parts: set[str], expected: object) -> None:
    builder = base()
    if "text" in parts:
        builder.text("plain")
    if "html" in parts:
        builder.html("<p>html</p>")
    if "inline" in parts:
        builder.inline("logo", b"png", "logo.png")
    if "attach" in parts:
        builder.attach(b"%PDF", "a.pdf")
    assert shape(parse(builder.build())) == expected


def test_related_names_its_root_type() -> None:
    parsed = parse(
        base().html("<img src='cid:x'>").inline("x", b"1", content_type="image/gif").build()
    )
    assert parsed.get_param("type") == "text/html"
    image = list(parsed.iter_parts())[1]
    assert image["Content-ID"] == "<x>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == b"1"


def test_setters_replace_and_adders_add() -> None:
    parsed = parse(
        base()
        .to("c@example.com")
        .subject("one")
        .subject("two")
        .text("first")
        .text("second")
        .references("<a@x>")
        .references("<b@x>")
        .header("X-A", "1")
        .header("X-A", "2")
        .build()
    )
    assert [a.addr_spec for a in parsed["To"].addresses] == ["b@example.com", "c@example.com"]
    assert parsed["Subject"] == "two"
    assert parsed.get_content() == "second"
    assert parsed["References"] == "<a@x> <b@x>"
    assert parsed.get_all("X-A") == ["1", "2"]


# ---------------------------------------------------------------- transfer encodings
def body_of(message: Message) -> tuple[str, bytes]:
    head, _, body = message.as_bytes().partition(b"\r\n\r\n")
    encoding = head.rpartition(b"Content-Transfer-Encoding: ")[2].split(b"\r\n")[0]
    return encoding.decode(), body


@pytest.mark.parametrize(
    ("text", "eight_bit", "encoding", "body"),
    [
        ("Be happy!", False, "7bit", b"Be happy!"),
        ("a\nb\rc\r\nd", False, "7bit", b"a\r\nb\r\nc\r\nd"),
        ("x" * 998, False, "7bit", b"x" * 998),
        ("x" * 999, False, "quoted-printable", b"x" * 75 + b"=\r\n"),
        ("a nul\x00 in ASCII", False, "quoted-printable", b"a nul=00 in ASCII"),
        ("Grüße aus dem hohen Norden", False, "quoted-printable", b"Gr=C3=BC=C3=9Fe aus"),
        ("Grüße", False, "base64", b"R3LDvMOfZQ=="),  # 4 octets in 7 to escape
        ("Grüße", True, "8bit", "Grüße".encode()),
        ("Grüße\n" + "ü" * 999, True, "base64", b"R3LDvMOfZQ0K"),
        ("日本語のテキスト", False, "base64", b"5pel5pys6Kqe44Gu44OG44Kt44K544OI"),
        ("日本語のテキスト", True, "8bit", "日本語のテキスト".encode()),
    ],
)
def test_transfer_encoding_per_text(text: str, eight_bit: bool, encoding: str, body: bytes) -> None:
    message = base().allow_8bit(eight_bit).body(text)
    assert body_of(message)[0] == encoding
    assert body_of(message)[1].startswith(body)
    assert parse(message).get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n").replace(
        "\r", "\n"
    )


def test_attachments_are_base64_and_shared_bodies_are_chunks_of_their_own() -> None:
    data = os.urandom(64 * 1024)
    message = base().text("see attached").attach(data, "noise.bin").build()
    chunks = message.chunks()
    assert len(chunks) == 3
    assert chunks[1] == _hot.b64encode_mime(data)
    assert message.chunks() is not message.chunks()
    assert b"".join(chunks) == message.as_bytes()
    attachment = next(parse(message).iter_attachments())
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_content() == data
    assert attachment.get_content_type() == "application/octet-stream"


def test_no_line_is_over_998_octets() -> None:
    message = (
        base()
        .subject("s" * 989)
        .text("t" * 5000 + "\n" + "ü" * 3000)
        .html("<p>" + "h" * 5000 + "</p>")
        .attach(b"\n" * 5000 + b"x" * 5000, "x.txt")
        .build()
    )
    lines = message.as_bytes().split(b"\r\n")
    assert max(map(len, lines)) <= 998
    assert b"\n" not in b"".join(lines)
    assert b"\r" not in b"".join(lines)


@pytest.mark.parametrize("marker", [b"AAAA", b"=_0.AAAA"])
def test_a_boundary_never_appears_in_a_literal_body(
    monkeypatch: pytest.MonkeyPatch, marker: bytes
) -> None:
    tokens = iter([b"AAAA", b"BBBB"])
    monkeypatch.setattr(smtpx.message._parts, "_token", lambda: next(tokens))
    message = base().text(f"--{marker.decode()}\nhi").html("<p>hi</p>").build()
    assert b'boundary="=_0.BBBB"' in message.as_bytes()
    assert parse(message).get_body(("plain",)).get_content() == f"--{marker.decode()}\r\nhi"  # type: ignore[union-attr]


# ---------------------------------------------------------------- headers and envelope
def test_date_defaults_to_now_in_utc() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    date = parse(base().body("x"))["Date"].datetime
    assert before <= date <= datetime.now(timezone.utc)
    assert date.utcoffset() == timedelta(0)


def test_date_keeps_its_offset() -> None:
    when = datetime(2026, 5, 1, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    assert b"Date: Fri, 01 May 2026 08:30:00 +0200\r\n" in base().date(when).body("x").as_bytes()


def test_date_must_be_an_aware_datetime() -> None:
    with pytest.raises(InvalidInputError, match="date must be timezone-aware"):
        base().date(datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="date must be a datetime, not str"):
        base().date("today")  # type: ignore[arg-type]


def test_message_ids_are_generated_with_the_senders_domain() -> None:
    first = base().body("x")
    second = base().sender("s@Sender.example").body("x")
    assert first.message_id is not None
    assert first.message_id.endswith("@example.com>")
    assert second.message_id is not None
    assert second.message_id.endswith("@Sender.example>")
    assert parse(first)["Message-ID"] == first.message_id
    ids = {base().body("x").message_id for _ in range(100)}
    assert len(ids) == 100
    idn = Message.builder().from_("a@bücher.de").to("b@x.org").body("x").message_id
    assert idn is not None
    assert idn.endswith("@xn--bcher-kva.de>")


def test_envelope_from_the_headers() -> None:
    message = (
        Message.builder()
        .from_("Author <author@example.com>")
        .to("a@example.com")
        .to("b@EXAMPLE.com")
        .cc("b@example.com")
        .cc("c@example.com")
        .bcc("a@example.com")
        .bcc("d@example.com")
        .body("x")
    )
    assert message.envelope.sender == "author@example.com"
    assert message.envelope.recipients == (
        "a@example.com", "b@EXAMPLE.com", "c@example.com", "d@example.com",
    )  # fmt: skip


def test_the_sender_is_the_envelope_sender() -> None:
    message = (
        Message.builder()
        .from_("one@example.com")
        .from_("two@example.com")
        .sender("Secretary <sec@example.com>")
        .to("r@example.com")
        .body("x")
    )
    assert message.envelope.sender == "sec@example.com"
    parsed = parse(message)
    assert [a.addr_spec for a in parsed["From"].addresses] == ["one@example.com", "two@example.com"]
    assert parsed["Sender"].address.addr_spec == "sec@example.com"


def test_an_envelope_overrides_the_headers() -> None:
    envelope = Envelope("bounce@example.com", ["x@example.com"], mail_params=["RET=HDRS"])
    message = base().envelope(envelope).body("x")
    assert message.envelope is envelope
    with pytest.raises(TypeError, match=r"envelope must be an smtpx\.Envelope"):
        base().envelope(("a", ["b"]))  # type: ignore[arg-type]


def test_an_envelope_is_enough_without_recipient_headers() -> None:
    message = (
        Message.builder().from_("a@example.com").envelope(Envelope(None, ["x@y.org"])).body("x")
    )
    assert message.envelope.sender is None
    assert "To" not in parse(message)


def test_bcc_is_removed_unless_kept() -> None:
    dropped = base().bcc("Hidden <hidden@example.com>").body("x")
    kept = base().bcc("Hidden <hidden@example.com>").keep_bcc().body("x")
    assert b"hidden" not in dropped.as_bytes()
    assert "hidden@example.com" in dropped.envelope.recipients
    assert parse(kept)["Bcc"] == "Hidden <hidden@example.com>"
    assert "hidden@example.com" in kept.envelope.recipients


def test_utf8_addresses_are_written_as_utf8() -> None:
    message = Message.builder().from_("Jörg <jörg@bücher.de>").to("ñ@ejemplo.es").body("x")
    assert message.envelope.needs_smtputf8
    assert message.envelope.sender == "jörg@bücher.de"
    head = message.as_bytes().partition(b"\r\n\r\n")[0].decode("utf-8")
    assert "From: =?utf-8?b?SsO2cmc=?= <jörg@bücher.de>\r\n" in head
    assert "To: ñ@ejemplo.es\r\n" in head
    # The stdlib reads RFC 6532 headers from text, not bytes.
    parsed = email.message_from_string(message.as_bytes().decode(), policy=email.policy.SMTPUTF8)
    assert parsed["To"].addresses[0].addr_spec == "ñ@ejemplo.es"


def test_builder_methods_take_text_mailboxes_and_addresses() -> None:
    message = (
        Message.builder()
        .from_(Mailbox("a@example.com", "A"))
        .reply_to(Address("r@example.com"))
        .to("B <b@example.com>")
        .body("x")
    )
    parsed = parse(message)
    assert str(parsed["From"]) == "A <a@example.com>"
    assert str(parsed["Reply-To"]) == "r@example.com"
    with pytest.raises(TypeError, match="To must be a str, not int"):
        base().to(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- attachments
def test_attach_a_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7 data")
    for data in (path, str(path)):
        attachment = next(parse(base().text("x").attach(data).build()).iter_attachments())
        assert attachment.get_filename() == "report.pdf"
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_content() == b"%PDF-1.7 data"


def test_attach_a_file_with_its_own_name_and_type(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"1,2\n")
    attachment = next(
        parse(
            base().text("x").attach(path, "numbers.csv", "text/csv; header=present").build()
        ).iter_attachments()
    )
    assert attachment.get_filename() == "numbers.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_param("header") == "present"


def test_attach_a_missing_file_raises_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        base().attach(tmp_path / "missing.pdf")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("a.png", "image/png"),
        ("a.txt", "text/plain"),
        ("a.tar.gz", "application/octet-stream"),
        ("a.unknown-extension", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_attachment_types_are_guessed_from_the_name(filename: str | None, expected: str) -> None:
    attachment = next(parse(base().text("x").attach(b"data", filename).build()).iter_attachments())
    assert attachment.get_content_type() == expected
    assert attachment.get_filename() == filename


def test_attachment_data_is_copied_when_attached() -> None:
    data = bytearray(b"before")
    builder = base().text("x").attach(data, "a.bin").attach(memoryview(b"view"), "b.bin")
    data[:] = b"after!"
    contents = [part.get_content() for part in parse(builder.build()).iter_attachments()]
    assert contents == [b"before", b"view"]


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (
            "pdf",
            "attach() content_type must start with type/subtype, like text/csv or application/pdf",
        ),
        ("text/csv; charset", "attach() content_type has a malformed parameter at index 8"),
        ("text/csv; a=b c", "attach() content_type has a malformed parameter at index 14"),
        (
            "multipart/mixed",
            "attach() content_type must not be multipart/*: "
            "smtpx makes the multipart structure itself",
        ),
        (
            "message/rfc822",
            "attach() content_type must not be message/* "
            "(attach a message as application/octet-stream)",
        ),
        ("text/plain; name=é", "attach() content_type is not ASCII"),
        (
            "text/plain\r\nX: y",
            "attach() content_type contains a control character (CR) at index 10",
        ),
    ],
)
def test_bad_content_types(content_type: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        base().attach(b"x", "x", content_type)
    assert str(info.value) == message


def test_content_type_parameters_are_kept() -> None:
    parsed = parse(
        base()
        .text("x")
        .attach(b"x", "x.ics", 'Text/Calendar; method=REQUEST; name="invite.ics"')
        .build()
    )
    attachment = next(parsed.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_param("name") == "invite.ics"  # the caller's, not the file name
    assert attachment.get_filename() == "x.ics"


def test_bad_attachment_arguments() -> None:
    with pytest.raises(
        TypeError, match="attach\\(\\) data must be bytes, bytearray, memoryview or a path, not int"
    ):
        base().attach(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="attach\\(\\) filename is empty"):
        base().attach(b"x", "")
    with pytest.raises(
        InvalidInputError, match=r"inline\(\) filename contains a control character \(LF\)"
    ):
        base().inline("id", b"x", "a\nb")


# ---------------------------------------------------------------- one-part bodies
def test_body_types() -> None:
    calendar = parse(base().body("BEGIN:VCALENDAR", "text/calendar; method=REQUEST"))
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("charset") == "utf-8"
    assert calendar.get_param("method") == "REQUEST"
    latin = parse(base().body("é".encode("latin-1"), "text/plain; charset=iso-8859-1"))
    assert latin.get_content() == "é"
    assert parse(base().body(b"utf-8 \xc3\xa9")).get_content() == "utf-8 é"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            "x",
            "application/json",
            "body() content_type must be text/* for a str body (give bytes for other types)",
        ),
        (
            "x",
            "text/plain; charset=latin-1",
            "body() content_type charset must be utf-8 for a str body (give bytes)",
        ),
        (b"\xff", None, "body() bytes are not UTF-8: give their content_type (with its charset)"),
        ("\ud800", None, "body() contains a surrogate (U+D800) at index 0"),
    ],
)
def test_bad_bodies(body: Any, content_type: str | None, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        base().body(body, content_type)
    assert str(info.value) == message


def test_body_takes_text_or_bytes() -> None:
    with pytest.raises(TypeError, match="body\\(\\) takes str or bytes, not int"):
        base().body(42)  # type: ignore[arg-type]


def test_text_parts_refuse_surrogates() -> None:
    with pytest.raises(
        InvalidInputError, match=r"html contains a surrogate \(U\+DC00\) at index 3"
    ):
        base().html("<p>\udc00").build()


# ---------------------------------------------------------------- incomplete messages
@pytest.mark.parametrize(
    ("builder", "message"),
    [
        (
            lambda: Message.builder().to("b@example.com").text("x"),
            "the message has no From: call from_()",
        ),
        (
            lambda: base().from_("c@example.com").text("x"),
            "the message has 2 From mailboxes: give a sender() (RFC 5322 3.6.2)",
        ),
        (
            lambda: Message.builder().from_("a@example.com").text("x"),
            "the message has no recipient: add to(), cc() or bcc(), or an envelope()",
        ),
        (
            base,
            "the message has no content: add text(), html() or attach(), or use body()",
        ),
        (
            lambda: base().attach(b"x").inline("logo", b"x"),
            "inline() parts need an html() (or text()) part that refers to them",
        ),
    ],
)
def test_incomplete_messages(builder: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        builder().build()
    assert str(info.value) == message


def test_body_after_parts_is_refused() -> None:
    with pytest.raises(
        InvalidInputError, match="body\\(\\) makes a one-part message, but parts were added"
    ):
        base().text("x").body("y")


# ---------------------------------------------------------------- the standard library
def test_to_email_message() -> None:
    message = base().subject("Grüße").text("Hallo").attach(b"\x00\x01", "a.bin").build()
    parsed = message.to_email_message()
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed["Subject"] == "Grüße"
    assert parsed.get_body(("plain",)).get_content() == "Hallo"  # type: ignore[union-attr]
    assert next(parsed.iter_attachments()).get_content() == b"\x00\x01"


def std_message(**headers: str) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello\n")
    return message


def test_from_email_message() -> None:
    original = std_message(
        From="Ann <ann@example.com>",
        To="Bob <bob@example.com>, carol@example.com",
        Cc="dave@example.com",
        Bcc="Eve <eve@example.com>",
        Subject="Grüße",
        Message_ID="<std@example.com>",
    )
    message = Message.from_email_message(original)
    assert message.envelope == Envelope(
        "ann@example.com",
        ["bob@example.com", "carol@example.com", "dave@example.com", "eve@example.com"],
    )
    assert message.message_id == "<std@example.com>"
    data = message.as_bytes()
    assert b"eve@" not in data
    assert "Bcc" in original  # the caller's message is untouched
    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    parsed = message.to_email_message()
    assert parsed["Subject"] == "Grüße"
    assert parsed.get_content() == "Hello\r\n"
    kept = Message.from_email_message(original, keep_bcc=True)
    assert b"Bcc: Eve <eve@example.com>" in kept.as_bytes()


def test_from_email_message_sender_and_utf8() -> None:
    original = std_message(
        From="a@example.com, b@example.com", Sender="s@example.com", To="ñ@ejemplo.es"
    )
    message = Message.from_email_message(original)
    assert message.envelope.sender == "s@example.com"
    assert message.envelope.needs_smtputf8
    assert "ñ@ejemplo.es".encode() in message.as_bytes()


ONE_SENDER = "the message needs exactly one Sender or From address to derive the envelope sender"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"To": "b@example.com"}, f"{ONE_SENDER} (found 0)"),
        ({"From": "a@x.org, b@x.org", "To": "b@example.com"}, f"{ONE_SENDER} (found 2)"),
        ({"From": "a@example.com"}, "the message has no recipient in To, Cc or Bcc"),
        (
            {"From": "a@example.com", "To": "not an address"},
            "To address has no '@' (expected local@domain)",
        ),
    ],
)
def test_from_email_message_refuses(headers: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Message.from_email_message(std_message(**headers))
    assert str(info.value) == message


def test_from_email_message_refuses_long_lines() -> None:
    original = std_message(From="a@example.com", To="b@example.com")
    original.set_content("x" * 1200, cte="7bit")
    with pytest.raises(InvalidInputError, match="the message has a line of 1200 octets"):
        Message.from_email_message(original)
    with pytest.raises(TypeError, match=r"from_email_message\(\) takes an email\.message\.Message"):
        Message.from_email_message(b"From: a@b")  # type: ignore[arg-type]


def test_repr() -> None:
    message = base().message_id("<r@example.com>").body("x")
    assert repr(message) == (
        f"<Message <r@example.com> from a@example.com to 1 recipient(s), "
        f"{len(message.as_bytes())} octets>"
    )


def test_utf8_header_addresses_mark_an_ascii_envelope_for_smtputf8() -> None:
    def base() -> MessageBuilder:
        return Message.builder().from_("a@x.test").subject("s")

    ascii_only = base().to("b@x.test").envelope(Envelope("a@x.test", ["c@x.test"])).body("b")
    assert not ascii_only.envelope.needs_smtputf8
    utf8 = base().to("Jörg <jörg@x.test>").envelope(Envelope("a@x.test", ["c@x.test"])).body("b")
    assert utf8.envelope.smtputf8
    assert utf8.envelope.recipients == ("c@x.test",)
    derived = base().to("Jörg <jörg@x.test>").body("b")  # the envelope is UTF-8 already
    assert derived.envelope.needs_smtputf8
    assert not derived.envelope.smtputf8
