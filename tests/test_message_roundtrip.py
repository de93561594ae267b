"""The standard library's parser as an oracle: whatever the names, subjects, bodies and
attachments, the serialised message reads back with the same content."""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx.message import Mailbox, Message

# Header text: anything but controls, separators and surrogates (refused by design).
header_text = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120)
# Body text: anything but lone surrogates; line breaks of every kind included.
body_text = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8"), max_size=80),
        st.sampled_from(["\r\n", "\n", "\r", " ", "\t", "=", ".", "-", "é", "\x00"]),
    ),
    max_size=60,
).map("".join)
long_lines = st.integers(990, 1100).map(lambda n: "x" * n)
addresses = st.sampled_from(
    ["ann@example.com", "o'neil+tag@sub.example.org", '"quoted local"@example.net', "u@bücher.de"]
)
filenames = header_text.filter(lambda name: name.strip())


def lines_of(text: str) -> str:
    """``text`` with every line break made LF: what a text part carries."""
    return re.sub("\r\n|\r|\n", "\n", text)


def same_name(parsed: str, name: str | None) -> bool:
    """Display names compare without their white space: the stdlib's address parser
    normalises it, and puts a space between adjacent encoded words, which RFC 2047 6.2
    says to drop (names are read back exactly in test_message_address.py)."""
    return "".join(parsed.split()) == "".join((name or "").split())


def check_wire_form(data: bytes, eight_bit: bool) -> None:
    lines = data.split(b"\r\n")
    assert max(map(len, lines)) <= 998
    joined = b"".join(lines)
    assert b"\r" not in joined
    assert b"\n" not in joined
    if not eight_bit:
        assert data.isascii()


@settings(max_examples=150)
@given(
    name=header_text,
    to_name=header_text,
    address=addresses,
    subject=header_text,
    text=st.one_of(body_text, long_lines),
    html=st.none() | body_text,
    attachments=st.lists(st.tuples(st.binary(max_size=3000), filenames), max_size=3),
    eight_bit=st.booleans(),
)
def test_messages_read_back_the_same(
    *,
    name: str,
    to_name: str,
    address: str,
    subject: str,
    text: str,
    html: str | None,
    attachments: list[tuple[bytes, str]],
    eight_bit: bool,
) -> None:
    builder = (
        Message.builder()
        .from_(Mailbox("sender@example.com", name))
        .to(Mailbox(address, to_name))
        .subject(subject)
        .text(text)
        .allow_8bit(eight_bit)
    )
    if html is not None:
        builder.html(html)
    for data, filename in attachments:
        builder.attach(data, filename)
    message = builder.build()
    data = message.as_bytes()
    check_wire_form(data, eight_bit)

    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == subject
    sender = parsed["From"].addresses[0]
    assert sender.addr_spec == "sender@example.com"
    assert same_name(sender.display_name, name)
    assert same_name(parsed["To"].addresses[0].display_name, to_name)
    assert parsed["Message-ID"] == message.message_id

    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert lines_of(plain.get_content()) == lines_of(text)
    if html is not None:
        page = parsed.get_body(("html",))
        assert page is not None
        assert lines_of(page.get_content()) == lines_of(html)
    found = [(part.get_content(), part.get_filename()) for part in parsed.iter_attachments()]
    # The stdlib unquotes file names once too often, then strips them.
    expected = [(data, email.utils.unquote(name).strip()) for data, name in attachments]
    assert found == expected
    assert not parsed.defects
    for part in parsed.walk():
        assert not part.defects


@given(text=body_text, content_type=st.sampled_from(["text/plain", "text/html", "text/csv"]))
def test_one_part_bodies_read_back_the_same(text: str, content_type: str) -> None:
    message = Message.builder().from_("a@example.com").to("b@example.com").body(text, content_type)
    check_wire_form(message.as_bytes(), eight_bit=False)
    parsed = message.to_email_message()
    assert parsed.get_content_type() == content_type
    assert lines_of(parsed.get_content()) == lines_of(text)


@given(data=st.binary(max_size=5000), main=st.sampled_from(["application", "image", "audio"]))
def test_binary_bodies_read_back_the_same(data: bytes, main: str) -> None:
    message = Message.builder().from_("a@example.com").to("b@example.com").body(data, f"{main}/x-y")
    check_wire_form(message.as_bytes(), eight_bit=False)
    assert message.to_email_message().get_content() == data


@given(addresses=st.lists(addresses, min_size=1, max_size=6), names=st.lists(header_text))
def test_address_lists_read_back_the_same(addresses: list[str], names: list[str]) -> None:
    builder = Message.builder().from_("a@example.com")
    mailboxes = [Mailbox(a, names[i] if i < len(names) else None) for i, a in enumerate(addresses)]
    for mailbox in mailboxes:
        builder.cc(mailbox)
    message = builder.body("x")
    check_wire_form(message.as_bytes(), eight_bit=False)
    parsed = message.to_email_message()
    found = parsed["Cc"].addresses
    assert [a.addr_spec for a in found] == [str(m.address) for m in mailboxes]
    assert all(same_name(a.display_name, m.name) for a, m in zip(found, mailboxes, strict=True))
    assert message.envelope.recipients == tuple(dict.fromkeys(str(m.address) for m in mailboxes))
