"""Header text: encoded words, folding, parameters, identifiers, and injection attempts."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from collections.abc import Callable
from email.header import decode_header, make_header

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError
from smtpx.message import Mailbox, Message, MessageBuilder
from smtpx.message._text import (
    encoded_words,
    fold,
    needs_encoding,
    parameter,
    parse_content_id,
    parse_msg_ids,
    unstructured,
)

header_texts = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")))


def decoded(words: list[str]) -> str:
    """What a reader makes of encoded words separated by folding white space."""
    return str(make_header(decode_header(" ".join(words))))


def stdlib_filename(name: str) -> str:
    """What the stdlib's ``get_filename()`` makes of a file name: it unquotes the value
    once more than the parameter syntax asks (``"x"`` and ``<x>`` lose their quotes or
    brackets, however they were encoded), then strips white space."""
    return email.utils.unquote(name).strip()


def base() -> MessageBuilder:
    return Message.builder().from_("a@example.com").to("b@example.com")


def header_block(message: Message) -> bytes:
    return message.as_bytes().partition(b"\r\n\r\n")[0]


# ---------------------------------------------------------------- encoded words
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("é", ["=?utf-8?b?w6k=?="]),
        ("Grüße", ["=?utf-8?b?R3LDvMOfZQ==?="]),
        ("Happy new year, Jörg", ["=?utf-8?q?Happy_new_year=2C_J=C3=B6rg?="]),
        ("a b_c", ["=?utf-8?q?a_b=5Fc?="]),
        ("日本語", ["=?utf-8?b?5pel5pys6Kqe?="]),
        (" lead", ["=?utf-8?q?_lead?="]),
    ],
)
def test_encoded_words_known_answers(text: str, words: list[str]) -> None:
    assert encoded_words(text) == words


@given(text=header_texts.filter(bool), first=st.integers(0, 75))
def test_encoded_words_decode_to_the_text(text: str, first: int) -> None:
    words = encoded_words(text, first)
    assert decoded(words) == text
    for index, word in enumerate(words):
        assert re.fullmatch(r"=\?utf-8\?[bq]\?[A-Za-z0-9!*+\-/=_]*\?=", word)
        assert len(word) <= (75 if index else max(first, 24))
        # whole characters only: each word decodes on its own
        assert str(make_header(decode_header(word)))


def test_q_and_b_are_chosen_by_size() -> None:
    # "Q" costs 3 characters per escaped octet, "B" 4 per 3 octets
    assert encoded_words("Dear Jörg, hello")[0].startswith("=?utf-8?q?")
    assert encoded_words("Jörg")[0].startswith("=?utf-8?b?")
    assert encoded_words("Ñandú")[0].startswith("=?utf-8?b?")


@pytest.mark.parametrize(
    ("text", "needed"),
    [
        ("", False),
        ("Happy new year", False),
        ("a", False),
        ("x" * 2000, False),
        ("Grüße", True),
        (" lead", True),
        ("trail ", True),
        ("two  spaces", True),
        ("=?utf-8?q?x?=", True),
        ("cost=?", True),
    ],
)
def test_what_needs_encoding(text: str, needed: bool) -> None:
    assert needs_encoding(text) is needed


# ---------------------------------------------------------------- folding
def test_fold_keeps_short_lines_on_one_line() -> None:
    assert fold("Subject", ["Happy", "new", "year"]) == "Subject: Happy new year\r\n"
    assert fold("Subject", []) == "Subject:\r\n"


def test_fold_breaks_before_the_word_that_would_pass_78() -> None:
    words = ["word"] * 30
    lines = fold("Subject", words).split("\r\n")
    assert lines[-1] == ""
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(" ") for line in lines[1:-1])
    assert "".join(lines) == "Subject: " + " ".join(words)  # unfolding restores it


def test_fold_puts_a_long_word_on_its_own_line() -> None:
    long_word = "x" * 200
    assert fold("X-Long", ["a", long_word, "b"]) == f"X-Long: a\r\n {long_word}\r\n b\r\n"


def test_fold_refuses_a_line_over_998_octets() -> None:
    with pytest.raises(InvalidInputError) as info:
        fold("X-Long", ["a", "x" * 998])
    assert str(info.value) == (
        "header X-Long has a word too long to fit a line of 998 octets (line 2 would have 999)"
    )
    assert fold("X-Long", ["a", "x" * 997]).split("\r\n")[1] == " " + "x" * 997


def test_fold_counts_octets_of_utf8_words() -> None:
    with pytest.raises(InvalidInputError, match="line 1 would have 1000"):
        fold("To", ["ü" * 498])  # "To: " and 996 octets
    assert len(fold("To", ["ü" * 497]).encode()) == 998 + 2


@given(text=header_texts, name=st.sampled_from(["Subject", "X-A", "X-" + "n" * 68]))
def test_unstructured_headers_read_back_the_same(text: str, name: str) -> None:
    line = unstructured(name, text)
    for physical in line.split("\r\n")[:-1]:
        assert len(physical) <= 998
    if needs_encoding(text) and len(name) < 20:
        assert all(len(physical) <= 76 for physical in line.split("\r\n"))  # RFC 2047 2
    elif len(name) < 20 and len(max(text.split(" "), key=len)) < 60:
        assert all(len(physical) <= 78 for physical in line.split("\r\n"))
    parsed = email.message_from_bytes(line.encode() + b"\r\n", policy=email.policy.default)
    assert parsed[name] == text


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("report.pdf", ['filename="report.pdf"']),
        ('my "best" \\ file.txt', ["filename*=utf-8''my%20%22best%22%20%5C%20file.txt"]),
        ("Grüße.txt", ["filename*=utf-8''Gr%C3%BC%C3%9Fe.txt"]),
        ("a b.txt", ['filename="a b.txt"']),
        ("=?utf-8?q?x?=", ["filename*=utf-8''%3D%3Futf-8%3Fq%3Fx%3F%3D"]),
        (
            "é" * 20,
            [
                "filename*0*=utf-8''" + "%C3%A9" * 8,
                "filename*1*=" + "%C3%A9" * 8,
                "filename*2*=" + "%C3%A9" * 4,
            ],
        ),
        ("x" * 61, [f"filename*0*=utf-8''{'x' * 48}", f"filename*1*={'x' * 13}"]),
    ],
)
def test_parameter_known_answers(value: str, words: list[str]) -> None:
    assert parameter("filename", value) == words


@given(value=header_texts.filter(bool))
def test_parameters_read_back_the_same(value: str) -> None:
    words = parameter("filename", value)
    line = fold("Content-Disposition", ["attachment;", *(w + ";" for w in words[:-1]), words[-1]])
    assert all(len(physical) <= 78 for physical in line.split("\r\n"))
    parsed = email.message_from_bytes(line.encode() + b"\r\n", policy=email.policy.default)
    assert parsed.get_filename() == stdlib_filename(value)


# ---------------------------------------------------------------- identifiers
@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("<a.b@example.com>", ["<a.b@example.com>"]),
        ("a.b@example.com", ["<a.b@example.com>"]),
        ("<a@x> b@y  <c@[192.0.2.1]>", ["<a@x>", "<b@y>", "<c@[192.0.2.1]>"]),
    ],
)
def test_message_ids(value: str, ids: list[str]) -> None:
    assert parse_msg_ids(value, "References") == ids


NOT_AN_ID = (
    "References is not a valid identifier (like <unique@example.com>, in ASCII, without spaces)"
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "References is empty"),
        ("   ", "References is empty"),
        (
            "<no-at-sign>",
            NOT_AN_ID,
        ),
        (
            "<a@b",
            NOT_AN_ID,
        ),
        (
            "<a@b>>",
            NOT_AN_ID,
        ),
        (
            "<é@b>",
            NOT_AN_ID,
        ),
        ("<a@b>\r\nBcc: x@y", "References contains a control character (CR) at index 5"),
    ],
)
def test_message_ids_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_msg_ids(value, "References")
    assert str(info.value) == message


def test_long_identifiers_are_refused_by_the_line_limit() -> None:
    setters: list[Callable[[MessageBuilder], MessageBuilder]] = [
        lambda b: b.message_id(f"<{'x' * 990}@example.com>"),
        lambda b: b.inline("x" * 1000, b"png"),
        lambda b: b.references(f"<{'x' * 990}@example.com>"),
    ]
    for setter in setters:
        with pytest.raises(InvalidInputError, match="too long to fit a line of 998 octets"):
            setter(base().text("x")).build()


def test_content_ids() -> None:
    assert parse_content_id("logo", "cid") == "<logo>"
    assert parse_content_id("<logo@example.com>", "cid") == "<logo@example.com>"
    for bad in ("", "lo go", "<logo", "a@b@c"):
        with pytest.raises(InvalidInputError, match="cid is not a valid identifier"):
            parse_content_id(bad, "cid")


# ---------------------------------------------------------------- injection
INJECTIONS = [
    "x\r\nBcc: victim@example.com",
    "x\nBcc: victim@example.com",
    "x\rBcc: victim@example.com",
    "x\r\n\r\n<html>body</html>",
    "x\x00y",
    "x\u2028Bcc: victim@example.com",
    "x\x85y",
]
SETTERS: list[tuple[str, Callable[[MessageBuilder, str], object]]] = [
    ("subject", lambda b, v: b.subject(v)),
    ("header value", lambda b, v: b.header("X-Campaign", v)),
    ("header name", lambda b, v: b.header(v, "value")),
    ("from name", lambda b, v: b.from_(Mailbox("a@example.com", v))),
    ("to mailbox", lambda b, v: b.to(f"{v} <b@example.com>")),
    ("to address", lambda b, v: b.to(f"<{v}@example.com>")),
    ("cc name", lambda b, v: b.cc(f'"{v}" <c@example.com>')),
    ("reply-to", lambda b, v: b.reply_to(v + "@example.com")),
    ("message id", lambda b, v: b.message_id(f"<{v}@example.com>")),
    ("in-reply-to", lambda b, v: b.in_reply_to(f"<{v}@example.com>")),
    ("references", lambda b, v: b.references(f"<{v}@example.com>")),
    ("attachment filename", lambda b, v: b.attach(b"data", v)),
    ("attachment type", lambda b, v: b.attach(b"data", "a.bin", f"application/{v}")),
    ("inline content id", lambda b, v: b.inline(v, b"data")),
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(("where", "setter"), SETTERS, ids=[where for where, _ in SETTERS])
def test_line_breaks_and_controls_never_reach_a_header(
    where: str, setter: Callable[[MessageBuilder, str], object], value: str
) -> None:
    with pytest.raises(InvalidInputError, match=r"control character|not a valid|header name"):
        setter(base(), value)


def test_encoded_line_breaks_are_refused_too() -> None:
    with pytest.raises(InvalidInputError, match=r"control character \(CR\)"):
        base().to("=?utf-8?q?x=0D=0ABcc:_v@example.com?= <b@example.com>")


@given(
    subject=header_texts,
    name=header_texts,
    filename=header_texts.filter(bool),
    value=header_texts,
)
def test_whatever_the_text_no_header_is_added(
    subject: str, name: str, filename: str, value: str
) -> None:
    message = (
        base()
        .from_(Mailbox("c@example.com", name))
        .sender("a@example.com")
        .subject(subject)
        .header("X-Value", value)
        .text("body")
        .attach(b"data", filename)
        .build()
    )
    data = message.as_bytes()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert [key for key, _ in parsed.items()] == [
        "Date", "From", "Sender", "To", "Subject", "Message-ID", "X-Value", "MIME-Version",
        "Content-Type",
    ]  # fmt: skip
    assert parsed["Subject"] == subject
    assert parsed["X-Value"] == value
    # The stdlib's address parser normalises white space in display names, and puts a
    # space between adjacent encoded words (see test_message_roundtrip.same_name).
    assert "".join(parsed["From"].addresses[1].display_name.split()) == "".join(name.split())
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == stdlib_filename(filename)
    assert [key for key, _ in attachment.items()] == [
        "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    ]  # fmt: skip


def test_header_names() -> None:
    assert b"\r\nX-Campaign: spring\r\n" in header_block(
        base().header("X-Campaign", "spring").body("x")
    )
    for name in ("", "X Campaign", "X:Campaign", "X-É", "x" * 71):
        with pytest.raises(InvalidInputError, match="header name must be 1 to 70"):
            base().header(name, "v")
    for name, method in [
        ("Subject", "subject()"),
        ("bcc", "bcc()"),
        ("Message-Id", "message_id()"),
        ("Content-Type", "the builder"),
        ("MIME-Version", "the builder"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            base().header(name, "v")
        assert str(info.value) == f"header {name} is written by the builder: use {method}"


@given(names=st.lists(header_texts, min_size=1, max_size=4))
def test_address_headers_with_encoded_names_stay_within_76_columns(names: list[str]) -> None:
    builder = base().reply_to(Mailbox("r@example.com", names[0]))
    for name in names:
        builder.cc(Mailbox("c@example.com", name))
    head = header_block(builder.body("x")).decode()
    for line in head.split("\r\n"):
        assert len(line) <= (76 if "=?" in line else 78)
