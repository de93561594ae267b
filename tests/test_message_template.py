"""Templates for personalised bulk mail: fields, escaping, shared attachments, envelopes."""

from __future__ import annotations

import email
import email.message
import email.policy
import os
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx.config import Envelope
from smtpx.errors import InvalidInputError
from smtpx.message import Mailbox, Message, MessageBuilder, MessageTemplate

ATTACHMENT = os.urandom(100 * 1024)


def newsletter() -> MessageBuilder:
    return (
        Message.builder()
        .from_("News <news@example.com>")
        .cc("archive@example.com")
        .bcc("audit@example.com")
        .subject("Hello {name}, {count} new items")
        .header("List-Unsubscribe", "<https://example.com/u/{uid}>")
        .text("Dear {name},\n{count:>3} items await.\nBraces: {{}}\n")
        .html("<p>Dear {name},</p><p>{count} items</p>")
        .attach(ATTACHMENT, "brochure.pdf")
    )


def parse(message: Message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def test_render_fills_every_field() -> None:
    template = newsletter().template()
    assert isinstance(template, MessageTemplate)
    message = template.render("Ann Lee <ann@example.org>", name="Ann", count=7, uid="a1")
    parsed = parse(message)
    assert parsed["Subject"] == "Hello Ann, 7 new items"
    assert parsed["List-Unsubscribe"] == "<https://example.com/u/a1>"
    assert str(parsed["To"]) == "Ann Lee <ann@example.org>"
    assert parsed["Cc"] == "archive@example.com"
    assert "Bcc" not in parsed
    plain = parsed.get_body(("plain",))
    page = parsed.get_body(("html",))
    assert plain is not None
    assert page is not None
    assert plain.get_content() == "Dear Ann,\r\n  7 items await.\r\nBraces: {}\r\n"
    assert page.get_content() == "<p>Dear Ann,</p><p>7 items</p>"
    attachment = next(parsed.iter_attachments())
    assert attachment.get_content() == ATTACHMENT
    assert attachment.get_filename() == "brochure.pdf"


def test_each_message_has_its_own_envelope() -> None:
    template = newsletter().template()
    message = template.render(
        ["a@example.org", Mailbox("b@example.org", "B")], name="x", count=1, uid=1
    )
    assert message.envelope == Envelope(
        "news@example.com",
        ["a@example.org", "b@example.org", "archive@example.com", "audit@example.com"],
    )
    other = template.render("c@example.org", name="y", count=2, uid=2)
    assert other.envelope.recipients[0] == "c@example.org"


def test_attachments_are_encoded_once_and_shared() -> None:
    template = newsletter().template()
    first = template.render("a@example.org", name="A", count=1, uid=1)
    second = template.render("b@example.org", name="B", count=2, uid=2)
    shared = [chunk for chunk in first.chunks() if len(chunk) > 100_000]
    assert len(shared) == 1
    assert any(chunk is shared[0] for chunk in second.chunks())
    assert first.message_id != second.message_id
    boundary = parse(first).get_boundary()
    assert boundary is not None
    assert boundary != parse(second).get_boundary()


def test_values_are_html_escaped_in_the_html_part_only() -> None:
    template = newsletter().template()
    value = "<script>alert('x')</script> & Co"
    parsed = parse(template.render("a@example.org", name=value, count=0, uid=0))
    page = parsed.get_body(("html",))
    plain = parsed.get_body(("plain",))
    assert page is not None
    assert plain is not None
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in page.get_content()
    assert value in plain.get_content()
    assert parsed["Subject"] == f"Hello {value}, 0 new items"


def test_the_builders_recipients_by_default() -> None:
    template = (
        Message.builder().from_("a@example.com").to("b@example.com").text("Hi {n}").template()
    )
    message = template.render(n=1)
    assert message.envelope.recipients == ("b@example.com",)
    assert parse(message).get_content() == "Hi 1"
    with pytest.raises(InvalidInputError, match="the message has no recipient"):
        Message.builder().from_("a@example.com").text("x").template().render()


def test_a_fixed_date_is_kept() -> None:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    template = Message.builder().from_("a@example.com").date(when).text("x").template()
    for to in ("b@example.com", "c@example.com"):
        assert parse(template.render(to))["Date"].datetime == when


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"count": 1, "uid": 1}, "Subject template has no value for field {name}"),
        (
            {"name": "x", "count": 1},
            "header List-Unsubscribe template has no value for field {uid}",
        ),
        (
            {"name": "x", "count": object(), "uid": 1},
            "text template field {count} cannot be formatted: "
            "unsupported format string passed to object.__format__",
        ),
        (
            {"name": "x\r\nBcc: victim@example.org", "count": 1, "uid": 1},
            "Subject contains a control character (CR) at index 7",
        ),
        (
            {"name": "x", "count": 1, "uid": "1>\nX-Evil: 1"},
            "header List-Unsubscribe contains a control character (LF) at index 25",
        ),
    ],
)
def test_bad_values(values: dict[str, object], message: str) -> None:
    template = newsletter().template()
    with pytest.raises(InvalidInputError) as info:
        template.render("a@example.org", **values)
    assert str(info.value) == message


PLAIN_NAME = "must be a plain name (no attribute or index access, no positional fields)"


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        (
            "Hi {user.password}",
            f"Subject template field {{user.password}} {PLAIN_NAME}",
        ),
        (
            "Hi {rows[0]}",
            f"Subject template field {{rows[0]}} {PLAIN_NAME}",
        ),
        (
            "Hi {0}",
            f"Subject template field {{0}} {PLAIN_NAME}",
        ),
        (
            "Hi {}",
            f"Subject template field {{}} {PLAIN_NAME}",
        ),
        ("Hi {name:{width}}", "Subject template field {name} has a nested field in its format"),
        ("Hi {name", "Subject is not a valid template: expected '}' before end of string"),
        ("Hi name}", "Subject is not a valid template: Single '}' encountered in format string"),
        ("Hi {name!x}", "Subject template field {name} has an unknown conversion"),
    ],
)
def test_bad_templates(subject: str, message: str) -> None:
    builder = Message.builder().from_("a@example.com").subject(subject).text("x")
    with pytest.raises(InvalidInputError) as info:
        builder.template()
    assert str(info.value).startswith(message)


def test_conversions_and_format_specs() -> None:
    template = (
        Message.builder().from_("a@example.com").text("{a!r} {b!s} {c!a} {d:08.3f}").template()
    )
    text = parse(template.render("b@example.com", a="x", b=1, c="é", d=3.14159)).get_content()
    assert text == "'x' 1 '\\xe9' 0003.142"


def test_build_reads_no_fields() -> None:
    message = (
        Message.builder()
        .from_("a@example.com")
        .to("b@example.com")
        .subject("{literal} {{braces}}")
        .header("X-Json", '{"a": 1}')
        .text("{x}")
        .build()
    )
    parsed = parse(message)
    assert parsed["Subject"] == "{literal} {{braces}}"
    assert parsed["X-Json"] == '{"a": 1}'
    assert parsed.get_content() == "{x}"


def test_a_template_refuses_what_must_differ_per_message() -> None:
    with pytest.raises(InvalidInputError, match="a template gives each message its own Message-ID"):
        newsletter().message_id("<fixed@example.com>").template()
    with pytest.raises(InvalidInputError, match="a template makes each message's envelope"):
        newsletter().envelope(Envelope("a@example.com", ["b@example.com"])).template()


def test_render_checks_its_recipients() -> None:
    template = newsletter().template()
    with pytest.raises(InvalidInputError, match="To\\[1\\] mailbox address has no '@'"):
        template.render(["a@example.org", "nobody"], name="x", count=1, uid=1)
    with pytest.raises(TypeError, match="To must be a str, Mailbox, Address or a sequence of them"):
        template.render(42, name="x", count=1, uid=1)  # type: ignore[arg-type]


names = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)


@given(name=names, count=st.integers())
def test_rendered_messages_read_back_the_same(name: str, count: int) -> None:
    template = newsletter().template()
    message = template.render(Mailbox("r@example.org", name), name=name, count=count, uid=count)
    data = message.as_bytes()
    assert max(map(len, data.split(b"\r\n"))) <= 998
    assert data.isascii()
    parsed = parse(message)
    assert parsed["Subject"] == f"Hello {name}, {count} new items"
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n") == (
        f"Dear {name},\n{count:>3} items await.\nBraces: {{}}\n"
    ).replace("\r", "\n")
