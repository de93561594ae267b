"""The message, its builder, and templates for personalised bulk mail.

:class:`MessageBuilder` (``Message.builder()``) mirrors lettre's: set the headers, then
finish with ``.body(...)`` for a one-part message, or add ``.text()``, ``.html()``,
``.attach()`` and ``.inline()`` parts and call ``.build()``. ``.template()`` instead
prepares a :class:`MessageTemplate`: its subject, custom headers, text and HTML hold
``{name}`` fields, filled in per recipient by :meth:`MessageTemplate.render`, while the
attachments are encoded once and shared by every message it makes.

A :class:`Message` is serialised when it is made: :meth:`Message.chunks` hands out the
byte chunks (headers, then each encoded part), :meth:`Message.as_bytes` joins them, and
:attr:`Message.envelope` is what SMTP sends in MAIL FROM and RCPT TO.
"""

from __future__ import annotations

import copy
import dataclasses
import email.message
import email.policy
import email.utils
import html
import mimetypes
import os
import secrets
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Final

from smtpx.config import Envelope
from smtpx.message._format import Format
from smtpx.message._parts import (
    HTML,
    PLAIN,
    Leaf,
    MediaType,
    Multipart,
    assemble,
    encoded_text_leaf,
    file_leaf,
    parse_content_type,
    text_leaf,
)
from smtpx.message._text import (
    HARD_LINE,
    as_str,
    fold,
    header_text,
    parse_content_id,
    parse_msg_ids,
    refuse,
    scan,
    unstructured,
)
from smtpx.message.address import Address, Mailbox

__all__ = ["Message", "MessageBuilder", "MessageTemplate"]

#: What the builder takes wherever it wants a mailbox.
MailboxLike = str | Mailbox | Address
#: Attachment data: the bytes, or the path of a file to read.
Data = bytes | bytearray | memoryview | str | os.PathLike[str]

#: Header names the builder writes itself (lower case), and the method that sets each.
_MANAGED: Final = {
    "date": "date()",
    "from": "from_()",
    "sender": "sender()",
    "reply-to": "reply_to()",
    "to": "to()",
    "cc": "cc()",
    "bcc": "bcc()",
    "subject": "subject()",
    "message-id": "message_id()",
    "in-reply-to": "in_reply_to()",
    "references": "references()",
    "mime-version": "the builder",
    "content-type": "the builder",
    "content-transfer-encoding": "the builder",
    "content-disposition": "the builder",
    "content-id": "the builder",
}
#: The longest custom header name: its line can then hold a value within 78 columns.
_MAX_HEADER_NAME: Final = 70
_FTEXT: Final = frozenset(chr(code) for code in range(33, 127) if code != 58)  # but ":"


def _mailbox(value: object, what: str) -> Mailbox:
    if isinstance(value, Mailbox):
        return value
    if isinstance(value, Address):
        return Mailbox(value)
    return Mailbox.parse(as_str(value, what), _what=f"{what} mailbox")


def _mailboxes(value: object, what: str) -> list[Mailbox]:
    """One mailbox, or a sequence of them (``render``'s recipients)."""
    if isinstance(value, (str, Mailbox, Address)):
        return [_mailbox(value, what)]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{what} must be a str, Mailbox, Address or a sequence of them")
    return [_mailbox(item, f"{what}[{index}]") for index, item in enumerate(value)]


def _mailbox_list(name: str, mailboxes: Sequence[Mailbox]) -> str:
    """An address header (``To: a <a@x>, b@y``), folded between and inside mailboxes."""
    words: list[str] = []
    for mailbox in mailboxes:
        if words:
            words[-1] += ","
        words += mailbox.header_words()
    return fold(name, words)


def _date(when: datetime) -> str:
    return f"Date: {email.utils.format_datetime(when)}\r\n"


@lru_cache(maxsize=1)
def _date_at(second: int) -> str:
    """The ``Date`` header of a Unix time, in UTC; cached, as messages made in the same
    second share it."""
    return _date(datetime.fromtimestamp(second, timezone.utc))


def _read(data: object, what: str) -> tuple[bytes, str | None]:
    """Attachment bytes, and the file's name when ``data`` is a path."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as file:
            return file.read(), os.path.basename(os.fsdecode(data))
    raise TypeError(
        f"{what} data must be bytes, bytearray, memoryview or a path, not {type(data).__name__}"
    )


def _guess_type(filename: str | None) -> MediaType:
    """The type for a file name's extension; ``application/octet-stream`` when unknown
    or compressed (``.tar.gz`` is no ``application/x-tar``)."""
    guessed, compressed = mimetypes.guess_type(filename or "", strict=False)
    if guessed is None or compressed is not None:
        return MediaType("application", "octet-stream")
    main, _, sub = guessed.partition("/")
    return MediaType(main, sub)


class Message:
    """A serialised email message and its envelope.

    Made by :class:`MessageBuilder` (``Message.builder()``), :class:`MessageTemplate`
    or :meth:`from_email_message`, not directly; transports send it with ``send()``.
    """

    __slots__ = ("_chunks", "_envelope", "_message_id")

    def __init__(self, chunks: Sequence[bytes], envelope: Envelope, message_id: str | None) -> None:
        self._chunks = tuple(chunks)
        self._envelope = envelope
        self._message_id = message_id

    @staticmethod
    def builder() -> MessageBuilder:
        """A new :class:`MessageBuilder`."""
        return MessageBuilder()

    @property
    def envelope(self) -> Envelope:
        """The SMTP envelope: the sender (``Sender``, else ``From``) and the recipients
        (``To``, ``Cc`` and ``Bcc``, without repeats), unless one was given."""
        return self._envelope

    @property
    def message_id(self) -> str | None:
        """The ``Message-ID`` (``<...@...>``), or ``None`` when the message has none."""
        return self._message_id

    def chunks(self) -> list[bytes]:
        """The message as byte chunks, in order: headers and parts, large bodies each a
        chunk of its own (shared, never copied, between the messages of a template)."""
        return list(self._chunks)

    def as_bytes(self) -> bytes:
        """The whole message: CRLF line ends, no line over 998 octets."""
        return b"".join(self._chunks)

    def to_email_message(self) -> email.message.EmailMessage:
        """The message parsed by the standard library (``policy.default``). Bcc
        recipients are only in :attr:`envelope` unless ``keep_bcc()`` was used."""
        return email.message_from_bytes(self.as_bytes(), policy=email.policy.default)

    @classmethod
    def from_email_message(
        cls, message: email.message.Message, *, keep_bcc: bool = False
    ) -> Message:
        """A standard-library message, serialised (``policy.SMTP``, or ``SMTPUTF8`` when
        an address needs it), with the envelope its headers give: the sender from
        ``Sender``, else ``From``; the recipients from ``To``, ``Cc`` and ``Bcc``.
        ``Bcc`` is removed unless ``keep_bcc``. Raises InvalidInputError when the
        headers give no sender or no recipient, or a line would pass 998 octets."""
        if not isinstance(message, email.message.Message):
            raise TypeError(
                f"from_email_message() takes an email.message.Message, not {type(message).__name__}"
            )
        senders = _header_addresses(message, "Sender") or _header_addresses(message, "From")
        if len(senders) != 1:
            refuse(
                "the message needs exactly one Sender or From address to derive the "
                f"envelope sender (found {len(senders)})"
            )
        recipients = [
            address
            for field in ("To", "Cc", "Bcc")
            for address in _header_addresses(message, field)
        ]
        if not recipients:
            refuse("the message has no recipient in To, Cc or Bcc")
        envelope = Envelope(str(senders[0]), [str(address) for address in recipients])
        if not keep_bcc and ("Bcc" in message or "Resent-Bcc" in message):
            message = copy.copy(message)  # deleting rebinds the header list: the caller's stays
            del message["Bcc"]
            del message["Resent-Bcc"]
        utf8 = any(address.needs_smtputf8 for address in (*senders, *recipients))
        data = message.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
        longest = max(map(len, data.split(b"\r\n")))
        if longest > HARD_LINE:
            refuse(f"the message has a line of {longest} octets (the limit is {HARD_LINE})")
        message_id = message.get("Message-ID")
        return cls([data], envelope, None if message_id is None else str(message_id).strip())

    def __repr__(self) -> str:
        size = sum(map(len, self._chunks))
        count = len(self._envelope.recipients)
        return (
            f"<Message {self._message_id or '(no Message-ID)'} from "
            f"{self._envelope.sender or '<>'} to {count} recipient(s), {size} octets>"
        )


def _header_addresses(message: email.message.Message, field: str) -> list[Address]:
    values = [str(value) for value in message.get_all(field) or ()]
    return [
        Address(address, _what=f"{field} address")
        for _name, address in email.utils.getaddresses(values)
        if address
    ]


class MessageBuilder:
    """Builds a :class:`Message` (see the module docstring); every method returns the
    builder. Mailboxes are ``"Name <local@domain>"`` text, :class:`Mailbox` or
    :class:`Address`, checked at once: a bad one raises
    :class:`~smtpx.errors.InvalidInputError` from the method that was given it.

    ``from_``, ``reply_to``, ``to``, ``cc``, ``bcc``, ``references`` and ``header`` add
    to what earlier calls gave; the other setters replace.
    """

    def __init__(self) -> None:
        self._from: list[Mailbox] = []
        self._sender: Mailbox | None = None
        self._reply_to: list[Mailbox] = []
        self._to: list[Mailbox] = []
        self._cc: list[Mailbox] = []
        self._bcc: list[Mailbox] = []
        self._subject: str | None = None
        self._date: str | None = None
        self._message_id: str | None = None
        self._in_reply_to: list[str] = []
        self._references: list[str] = []
        self._headers: list[tuple[str, str]] = []
        self._keep_bcc = False
        self._envelope: Envelope | None = None
        self._eight_bit = False
        self._text: str | None = None
        self._html: str | None = None
        self._attachments: list[tuple[bytes, str | None, MediaType]] = []
        self._inlines: list[tuple[str, bytes, str | None, MediaType]] = []

    # ------------------------------------------------------------------ headers
    def from_(self, mailbox: MailboxLike) -> MessageBuilder:
        """Add an author (``From``); more than one needs a :meth:`sender`."""
        self._from.append(_mailbox(mailbox, "From"))
        return self

    def sender(self, mailbox: MailboxLike) -> MessageBuilder:
        """Set the ``Sender``: who sent the message, when not its author. It is also
        the envelope sender."""
        self._sender = _mailbox(mailbox, "Sender")
        return self

    def reply_to(self, mailbox: MailboxLike) -> MessageBuilder:
        """Add a ``Reply-To`` mailbox."""
        self._reply_to.append(_mailbox(mailbox, "Reply-To"))
        return self

    def to(self, mailbox: MailboxLike) -> MessageBuilder:
        """Add a ``To`` recipient."""
        self._to.append(_mailbox(mailbox, "To"))
        return self

    def cc(self, mailbox: MailboxLike) -> MessageBuilder:
        """Add a ``Cc`` recipient."""
        self._cc.append(_mailbox(mailbox, "Cc"))
        return self

    def bcc(self, mailbox: MailboxLike) -> MessageBuilder:
        """Add a ``Bcc`` recipient: in the envelope, not in the message (unless
        :meth:`keep_bcc`)."""
        self._bcc.append(_mailbox(mailbox, "Bcc"))
        return self

    def subject(self, subject: str) -> MessageBuilder:
        """Set the ``Subject``: any text without control characters (RFC 2047-encoded
        when it is not plain ASCII)."""
        self._subject = header_text(subject, "Subject")
        return self

    def date(self, when: datetime) -> MessageBuilder:
        """Set the ``Date`` (an aware datetime); by default, the time the message is
        made, in UTC."""
        if not isinstance(when, datetime):
            raise TypeError(f"date must be a datetime, not {type(when).__name__}")
        if when.utcoffset() is None:
            refuse("date must be timezone-aware (like datetime.now(timezone.utc))")
        self._date = _date(when)
        return self

    def message_id(self, message_id: str | None = None) -> MessageBuilder:
        """Set the ``Message-ID`` (``<unique@domain>``, brackets optional); ``None``
        (the default) generates one with the sender's domain."""
        self._message_id = (
            None if message_id is None else parse_msg_ids(message_id, "Message-ID", single=True)[0]
        )
        return self

    def in_reply_to(self, message_ids: str) -> MessageBuilder:
        """Set ``In-Reply-To``: the ``Message-ID`` (or ids, space-separated) replied to."""
        self._in_reply_to = parse_msg_ids(message_ids, "In-Reply-To")
        return self

    def references(self, message_ids: str) -> MessageBuilder:
        """Add to ``References``: message ids, space-separated."""
        self._references += parse_msg_ids(message_ids, "References")
        return self

    def header(self, name: str, value: str) -> MessageBuilder:
        """Add a custom header (``X-Campaign``, ``List-Unsubscribe``...); ``value`` is
        text without control characters. Headers that the builder writes itself
        (``Subject``, ``Content-Type``...) are refused: use their methods."""
        name = as_str(name, "header name")
        if not name or len(name) > _MAX_HEADER_NAME or not _FTEXT.issuperset(name):
            refuse(
                f"header name must be 1 to {_MAX_HEADER_NAME} printable ASCII characters "
                "other than ':' and space"
            )
        method = _MANAGED.get(name.lower())
        if method is not None:
            refuse(f"header {name} is written by the builder: use {method}")
        self._headers.append((name, header_text(value, f"header {name}")))
        return self

    def keep_bcc(self) -> MessageBuilder:
        """Keep the ``Bcc`` header in the message (it is removed by default)."""
        self._keep_bcc = True
        return self

    def envelope(self, envelope: Envelope) -> MessageBuilder:
        """Send with this envelope instead of the one the headers give."""
        if not isinstance(envelope, Envelope):
            raise TypeError(f"envelope must be an smtpx.Envelope, not {type(envelope).__name__}")
        self._envelope = envelope
        return self

    def allow_8bit(self, allowed: bool = True) -> MessageBuilder:
        """Send text parts as ``8bit`` when they can be: for a server that offers
        8BITMIME. By default text that is not ASCII is quoted-printable or base64."""
        self._eight_bit = bool(allowed)
        return self

    # ------------------------------------------------------------------ content
    def text(self, content: str) -> MessageBuilder:
        """Set the plain text part (``text/plain; charset=utf-8``)."""
        self._text = as_str(content, "text")
        return self

    def html(self, content: str) -> MessageBuilder:
        """Set the HTML part (``text/html; charset=utf-8``); with :meth:`text` the two
        are alternatives."""
        self._html = as_str(content, "html")
        return self

    def attach(
        self, data: Data, filename: str | None = None, content_type: str | None = None
    ) -> MessageBuilder:
        """Attach a file: its bytes, or a path to read now (the file name then defaults
        to the path's). ``content_type`` defaults to the one the file name suggests,
        else ``application/octet-stream``."""
        raw, name = _read(data, "attach()")
        filename = self._filename(filename if filename is not None else name, "attach()")
        self._attachments.append((raw, filename, self._type(content_type, filename, "attach()")))
        return self

    def inline(
        self,
        content_id: str,
        data: Data,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> MessageBuilder:
        """Add an inline part (an image the HTML shows as ``<img src="cid:logo">``) with
        ``Content-ID`` ``content_id``; ``data`` and the rest as for :meth:`attach`."""
        cid = parse_content_id(content_id, "inline() content_id")
        raw, name = _read(data, "inline()")
        filename = self._filename(filename if filename is not None else name, "inline()")
        self._inlines.append((cid, raw, filename, self._type(content_type, filename, "inline()")))
        return self

    @staticmethod
    def _filename(filename: object, what: str) -> str | None:
        if filename is None:
            return None
        text = as_str(filename, f"{what} filename")
        if not text:
            refuse(f"{what} filename is empty")
        scan(text, f"{what} filename")
        return text

    @staticmethod
    def _type(value: str | None, filename: str | None, what: str) -> MediaType:
        if value is None:
            return _guess_type(filename)
        return parse_content_type(value, f"{what} content_type")

    # ------------------------------------------------------------------ finishing
    def body(self, body: str | bytes, content_type: str | None = None) -> Message:
        """The message with one part. ``str`` is UTF-8 text, ``text/plain`` unless
        ``content_type`` names another ``text/*`` type; ``bytes`` are text in the
        charset of ``content_type`` (UTF-8 by default), or, for a type that is not
        ``text/*``, any data (sent as base64)."""
        if self._text is not None or self._html is not None or self._attachments or self._inlines:
            refuse("body() makes a one-part message, but parts were added: call build()")
        return MessageTemplate(
            self, template=False, single=_body_leaf(body, content_type, self._eight_bit)
        ).render()

    def build(self) -> Message:
        """The message with the parts added: ``multipart/alternative`` for text and HTML,
        ``related`` around HTML and its inline parts, ``mixed`` with attachments."""
        return MessageTemplate(self, template=False).render()

    def template(self) -> MessageTemplate:
        """A :class:`MessageTemplate` for personalised bulk mail: the subject, custom
        header values, text and HTML are read as templates with ``{name}`` fields."""
        return MessageTemplate(self, template=True)


def _body_leaf(body: object, content_type_text: str | None, eight_bit: bool) -> Leaf:
    media = None
    if content_type_text is not None:
        media = parse_content_type(content_type_text, "body() content_type")
    if isinstance(body, str):
        if media is None:
            media = PLAIN
        elif media.main != "text":
            refuse("body() content_type must be text/* for a str body (give bytes for other types)")
        charset = media.parameter("charset")
        if charset is not None and charset.lower() != "utf-8":
            refuse("body() content_type charset must be utf-8 for a str body (give bytes)")
        if charset is None:
            media = media._replace(parameters=(*media.parameters, ("charset", "utf-8")))
        return text_leaf(body, media, eight_bit, "body()")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body() takes str or bytes, not {type(body).__name__}")
    data = bytes(body)
    if media is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            refuse("body() bytes are not UTF-8: give their content_type (with its charset)")
        media = PLAIN
    if media.main == "text":
        return encoded_text_leaf(data, media, eight_bit)
    return file_leaf(data, media, disposition="inline", filename=None)


class MessageTemplate:
    """A prepared message that makes personalised copies cheaply: made by
    ``builder.template()`` (and, behind ``build()`` and ``body()``, for one message).

    The headers that do not change are written once and the attachments and inline
    parts encoded once; :meth:`render` formats the subject, the custom header values,
    the text and the HTML with the values it is given (HTML-escaped in the HTML part),
    and gives each message its own ``Date`` (unless one was set), ``Message-ID`` and
    multipart boundaries. Field syntax: ``{name}``, ``{name!r}``, ``{amount:.2f}``;
    ``{{``/``}}`` for braces; plain names only (no ``{user.password}``).
    """

    __slots__ = (
        "_date",
        "_domain",
        "_eight_bit",
        "_envelope",
        "_files",
        "_fixed_headers",
        "_headers",
        "_html",
        "_inlines",
        "_message_id",
        "_originator",
        "_recipients",
        "_sender",
        "_single",
        "_static_recipients",
        "_subject",
        "_text",
        "_to",
    )

    def __init__(
        self, builder: MessageBuilder, *, template: bool, single: Leaf | None = None
    ) -> None:
        b = builder
        if not b._from:
            refuse("the message has no From: call from_()")
        if len(b._from) > 1 and b._sender is None:
            refuse(
                f"the message has {len(b._from)} From mailboxes: give a sender() (RFC 5322 3.6.2)"
            )
        if template and b._message_id is not None:
            refuse("a template gives each message its own Message-ID: do not set message_id()")
        if template and b._envelope is not None:
            refuse("a template makes each message's envelope from its recipients: no envelope()")
        if single is None and b._text is None and b._html is None and not b._attachments:
            refuse("the message has no content: add text(), html() or attach(), or use body()")
        if b._inlines and b._text is None and b._html is None:
            refuse("inline() parts need an html() (or text()) part that refers to them")
        sender = b._sender or b._from[0]
        self._sender = str(sender.address)
        self._domain = sender.address.ascii_domain
        self._date = b._date
        self._message_id = b._message_id
        self._envelope = b._envelope
        self._eight_bit = b._eight_bit
        self._to = list(b._to)
        lines = [_mailbox_list("From", b._from)]
        if b._sender is not None:
            lines.append(_mailbox_list("Sender", [b._sender]))
        if b._reply_to:
            lines.append(_mailbox_list("Reply-To", b._reply_to))
        self._originator = "".join(lines)
        lines = []
        if b._cc:
            lines.append(_mailbox_list("Cc", b._cc))
        if b._bcc and b._keep_bcc:
            lines.append(_mailbox_list("Bcc", b._bcc))
        self._recipients = "".join(lines)
        self._subject = (
            None if b._subject is None else Format(b._subject, "Subject", literal=not template)
        )
        lines = []
        if b._in_reply_to:
            lines.append(fold("In-Reply-To", b._in_reply_to))
        if b._references:
            lines.append(fold("References", b._references))
        self._fixed_headers = "".join(lines)
        self._headers = [
            (name, Format(value, f"header {name}", literal=not template))
            for name, value in b._headers
        ]
        self._static_recipients = [str(box.address) for box in (*b._cc, *b._bcc)]
        self._text = None if b._text is None else Format(b._text, "text", literal=not template)
        self._html = None if b._html is None else Format(b._html, "html", literal=not template)
        self._files = [
            file_leaf(data, media, disposition="attachment", filename=filename)
            for data, filename, media in b._attachments
        ]
        self._inlines = [
            file_leaf(data, media, disposition="inline", filename=filename, content_id=cid)
            for cid, data, filename, media in b._inlines
        ]
        self._single = single

    def render(
        self, to: MailboxLike | Sequence[MailboxLike] | None = None, /, **values: object
    ) -> Message:
        """One message, to ``to`` (one mailbox or a sequence; by default the builder's
        ``To``), with the template fields filled from ``values``.

        Raises :class:`~smtpx.errors.InvalidInputError` for a bad recipient, a field
        without a value, or a value that puts a control character in a header.
        """
        boxes = self._to if to is None else _mailboxes(to, "To")
        lines = [self._date or _date_at(int(time.time())), self._originator]
        if boxes:
            lines.append(_mailbox_list("To", boxes))
        lines.append(self._recipients)
        if self._subject is not None:
            subject = header_text(self._subject.render(values), "Subject")
            lines.append(unstructured("Subject", subject))
        message_id = self._message_id or f"<{secrets.token_urlsafe(18)}@{self._domain}>"
        lines.append(fold("Message-ID", [message_id]))
        lines.append(self._fixed_headers)
        for name, value in self._headers:
            lines.append(unstructured(name, header_text(value.render(values), f"header {name}")))
        lines.append("MIME-Version: 1.0\r\n")
        envelope = self._envelope
        if envelope is None:
            recipients = [str(box.address) for box in boxes] + self._static_recipients
            if not recipients:
                refuse("the message has no recipient: add to(), cc() or bcc(), or an envelope()")
            envelope = Envelope(self._sender, recipients)
        header = "".join(lines).encode("utf-8")
        if not envelope.needs_smtputf8 and not header.isascii():
            # A UTF-8 address in a header (RFC 6532), under an ASCII envelope given with
            # envelope(): the message still needs SMTPUTF8 on the way.
            envelope = dataclasses.replace(envelope, smtputf8=True)
        root = self._single if self._single is not None else self._body(values)
        return Message(assemble(header, root), envelope, message_id)

    def _body(self, values: dict[str, object]) -> Leaf | Multipart:
        """The parts, the text and HTML formatted: alternative(text, related(html,
        inline...)), inside mixed(..., attachments...), each level only when needed."""
        text: Leaf | Multipart | None = None
        page: Leaf | Multipart | None = None
        if self._text is not None:
            text = text_leaf(self._text.render(values), PLAIN, self._eight_bit, "text")
        if self._html is not None:
            page = text_leaf(self._html.render(values, html.escape), HTML, self._eight_bit, "html")
        if self._inlines:
            if page is not None:
                page = Multipart("related", (page, *self._inlines), "text/html")
            elif text is not None:
                text = Multipart("related", (text, *self._inlines), "text/plain")
        body: Leaf | Multipart | None
        if text is not None and page is not None:
            body = Multipart("alternative", (text, page))
        else:
            body = page if text is None else text
        if not self._files:
            assert body is not None  # checked when the template was made
            return body
        return Multipart("mixed", (*(() if body is None else (body,)), *self._files))
