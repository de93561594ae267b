"""Messages: building and serialising, one at a time and personalised in bulk.

Groups:

``message text+html+10 KiB``
    One message a round: From, To, Subject, a text part and an HTML alternative (about
    1 KiB each, Latin text with accents: quoted-printable), a 10 KiB attachment
    (base64); built and serialised to bytes.
``bulk 10k recipients, shared 100 KiB``
    A newsletter to 10,000 recipients, each message with its own To, subject, text and
    HTML (the recipient's name filled in) and the same 100 KiB attachment.

Rows: the builder on each twin of the compiled core (``cython``, ``python``: the
selector's base64 and quoted-printable functions swapped for the twin's), and
``stdlib``: ``email.message.EmailMessage`` with ``set_content``, ``add_alternative`` and
``add_attachment``, serialised with ``policy.SMTP``. For the bulk group the standard
library builds each message from scratch (it cannot share an encoded part); it makes
200 messages a round rather than 10,000, and ``work`` says so. Before timing, every
row's messages are read back with the standard library's parser and compared.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import random
from collections.abc import Callable
from functools import cache

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import TWINS, twin
from smtpx import _hot
from smtpx.message import Message

TEXT = "Grüße aus Köln! This month: café reviews, naïve art and déjà vu.\n" * 16
HTML = "<p>Grüße aus Köln! This month: <b>café</b> reviews and déjà vu.</p>\n" * 14
SINGLE_ATTACHMENT = 10 * 1024
BULK = 10_000
BULK_STDLIB = 200
BULK_ATTACHMENT = 100 * 1024
BULK_TEXT = "Dear {name},\n\nGrüße aus Köln! Your café news for this month.\n" * 8
BULK_HTML = "<p>Dear {name},</p><p>Grüße aus Köln! Your café news.</p>\n" * 8


@cache
def attachment(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.fixture(params=[*TWINS, "stdlib"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The row; for a twin, the selector's encoders are that twin's while it runs."""
    name = str(request.param)
    if name in TWINS:
        for base, function in (
            ("_qp", "qp_encode"),
            ("_base64", "b64encode"),
            ("_base64", "b64encode_mime"),
        ):
            monkeypatch.setattr(_hot, function, getattr(twin(base, name), function))
    return name


# ---------------------------------------------------------------- one message
def smtpx_message() -> bytes:
    return (
        Message.builder()
        .from_("News <news@example.com>")
        .to("Ann Lee <ann@example.org>")
        .subject("Monthly news")
        .text(TEXT)
        .html(HTML)
        .attach(attachment(SINGLE_ATTACHMENT), "report.pdf")
        .build()
        .as_bytes()
    )


def stdlib_message() -> bytes:
    message = email.message.EmailMessage()
    message["From"] = "News <news@example.com>"
    message["To"] = "Ann Lee <ann@example.org>"
    message["Subject"] = "Monthly news"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(
        attachment(SINGLE_ATTACHMENT), maintype="application", subtype="pdf", filename="report.pdf"
    )
    return message.as_bytes(policy=email.policy.SMTP)


def content(data: bytes) -> tuple[object, ...]:
    """What a reader sees: headers, text, HTML and attachments (line ends made LF)."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    plain = parsed.get_body(("plain",))
    page = parsed.get_body(("html",))
    assert plain is not None
    assert page is not None
    return (
        str(parsed["From"]),
        str(parsed["To"]),
        parsed["Subject"],
        plain.get_content().replace("\r\n", "\n"),
        page.get_content().replace("\r\n", "\n"),
        [(p.get_filename(), p.get_content()) for p in parsed.iter_attachments()],
    )


def test_message(benchmark: BenchmarkFixture, impl: str) -> None:
    build: Callable[[], bytes] = stdlib_message if impl == "stdlib" else smtpx_message
    assert content(build()) == content(stdlib_message())
    benchmark.group = "message text+html+10 KiB"
    benchmark.extra_info["work"] = 1
    benchmark.extra_info["unit"] = "messages"
    benchmark(build)


# ---------------------------------------------------------------- bulk
RECIPIENTS = [(f"Reader {i} <reader{i}@example.org>", f"Reader {i}") for i in range(BULK)]


def smtpx_bulk() -> list[Message]:
    template = (
        Message.builder()
        .from_("News <news@example.com>")
        .subject("{name}, your monthly news")
        .text(BULK_TEXT)
        .html(BULK_HTML)
        .attach(attachment(BULK_ATTACHMENT), "brochure.pdf")
        .template()
    )
    return [template.render(to, name=name) for to, name in RECIPIENTS]


def stdlib_bulk() -> list[bytes]:
    messages = []
    for to, name in RECIPIENTS[:BULK_STDLIB]:
        message = email.message.EmailMessage()
        message["From"] = "News <news@example.com>"
        message["To"] = to
        message["Subject"] = f"{name}, your monthly news"
        message.set_content(BULK_TEXT.format(name=name))
        message.add_alternative(BULK_HTML.format(name=name), subtype="html")
        message.add_attachment(
            attachment(BULK_ATTACHMENT),
            maintype="application",
            subtype="pdf",
            filename="brochure.pdf",
        )
        messages.append(message.as_bytes(policy=email.policy.SMTP))
    return messages


def test_bulk(benchmark: BenchmarkFixture, impl: str) -> None:
    if impl == "stdlib":
        run: Callable[[], list[object]] = stdlib_bulk  # type: ignore[assignment]
        work = BULK_STDLIB
        first = stdlib_bulk()[-1]
    else:
        run = smtpx_bulk  # type: ignore[assignment]
        work = BULK
        first = smtpx_bulk()[BULK_STDLIB - 1].as_bytes()
    assert content(first) == content(stdlib_bulk()[-1])
    benchmark.group = "bulk 10k recipients, shared 100 KiB"
    benchmark.extra_info["work"] = work
    benchmark.extra_info["unit"] = "messages"
    benchmark.pedantic(run, rounds=3, warmup_rounds=0)  # type: ignore[no-untyped-call]
