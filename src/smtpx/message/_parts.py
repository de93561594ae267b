"""MIME parts: encoding bodies, content types, and laying a tree of parts out as chunks.

A message body is a tree: :class:`Leaf` parts (a body, encoded once, with its
``Content-*`` headers) under :class:`Multipart` nodes. :func:`assemble` lays the tree
out after the message's headers as a list of byte chunks; a large leaf body is a chunk
of its own, the very object the leaf holds, so a body shared by many messages (a bulk
attachment) is encoded once and never copied.

Transfer encodings, per part (RFC 2045 6, RFC 6152):

- text (line ends made CRLF first): ``7bit`` when it is ASCII, has no NUL and no line
  over 998 octets; else ``8bit`` when 8BITMIME may be used and the same holds but for
  ASCII; else ``quoted-printable`` when at most one octet in six needs escaping (mostly
  Latin text), else ``base64``;
- anything else (attachments, inline parts, non-text bodies): ``base64``.

Quoted-printable and base64 lines are 76 characters at most, so no line of a message
is longer than 998 octets. Multipart boundaries are random per message (``=_`` cannot
occur in quoted-printable or base64 text) and checked against ``7bit``/``8bit`` bodies.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, NamedTuple

from smtpx import _hot
from smtpx.message._text import HARD_LINE, fold, header_text, parameter, refuse

#: A leaf body this large (or larger) is a chunk of its own; smaller pieces are joined.
_OWN_CHUNK: Final = 4096
#: Text that has more than one octet in this many to escape goes as base64.
_QP_DENSITY: Final = 6
#: Octets that quoted-printable escapes in text (CR and LF are line breaks by then).
_QP_ESCAPED: Final = bytes(
    [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x3D, *range(0x7F, 0x100)]
)
_TCHARS: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE: Final = re.compile(rf" *({_TCHARS})/({_TCHARS}) *")
_PARAMETER: Final = re.compile(rf'; *({_TCHARS}) *= *({_TCHARS}|"(?:[^"\\]|\\.)*") *')
_QUOTED_PAIR: Final = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Leaf:
    """A part with a body: its ``Content-*`` header lines (CRLF-terminated) and its
    encoded body."""

    headers: bytes
    body: bytes
    encoding: str

    @property
    def padded(self) -> bool:
        """The body ends with a CRLF that is not content (base64): the delimiter after
        it may take that CRLF as its own."""
        return self.encoding == "base64" and bool(self.body)


@dataclass(frozen=True, slots=True)
class Multipart:
    """A ``multipart/<subtype>`` node; ``root_type`` is the type of the first part of a
    ``related`` one (its ``type`` parameter, required by RFC 2387)."""

    subtype: str
    parts: tuple[Leaf | Multipart, ...]
    root_type: str | None = None

    def leaves(self) -> Iterator[Leaf]:
        for part in self.parts:
            if isinstance(part, Leaf):
                yield part
            else:
                yield from part.leaves()


class MediaType(NamedTuple):
    """A content type: main type and subtype (lower case), parameters (names lower case,
    values as written: a token or a quoted string)."""

    main: str
    sub: str
    parameters: tuple[tuple[str, str], ...] = ()

    def words(self) -> list[str]:
        return [f"{self.main}/{self.sub}", *(f"{name}={value}" for name, value in self.parameters)]

    def parameter(self, name: str) -> str | None:
        """The value of parameter ``name``, unquoted; ``None`` when it is absent."""
        for key, value in self.parameters:
            if key == name:
                return _QUOTED_PAIR.sub(r"\1", value[1:-1]) if value[:1] == '"' else value
        return None


#: The types of the text and HTML parts: UTF-8 text.
PLAIN: Final = MediaType("text", "plain", (("charset", "utf-8"),))
HTML: Final = MediaType("text", "html", (("charset", "utf-8"),))


def parse_content_type(value: object, what: str) -> MediaType:
    """Parse ``type/subtype; name=value; ...`` (RFC 2045 5.1)."""
    text = header_text(value, what)
    if not text.isascii():
        refuse(f"{what} is not ASCII")
    match = _MEDIA_TYPE.match(text)
    if match is None:
        refuse(f"{what} must start with type/subtype, like text/csv or application/pdf")
    main, sub = match[1].lower(), match[2].lower()
    if main == "multipart":
        refuse(f"{what} must not be multipart/*: smtpx makes the multipart structure itself")
    if main == "message":
        refuse(f"{what} must not be message/* (attach a message as application/octet-stream)")
    parameters = []
    position = match.end()
    while position < len(text):
        found = _PARAMETER.match(text, position)
        if found is None:
            refuse(f"{what} has a malformed parameter at index {position}")
        parameters.append((found[1].lower(), found[2]))
        position = found.end()
    return MediaType(main, sub, tuple(parameters))


def _crlf(data: bytes) -> bytes:
    """Every line break of ``data`` (CRLF, bare CR, bare LF) as CRLF."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.replace(b"\n", b"\r\n")


def _encode_text(data: bytes, eight_bit: bool) -> tuple[str, bytes]:
    """The transfer encoding of text and the encoded text (see the module docstring)."""
    data = _crlf(data)
    plain = b"\x00" not in data and (
        len(data) <= HARD_LINE or max(map(len, data.split(b"\r\n"))) <= HARD_LINE
    )
    if plain and (eight_bit or data.isascii()):
        return ("7bit" if data.isascii() else "8bit"), data
    escaped = len(data) - len(data.translate(None, _QP_ESCAPED))
    if escaped * _QP_DENSITY <= len(data):
        return "quoted-printable", _hot.qp_encode(data)
    return "base64", _hot.b64encode_mime(data)


def text_leaf(text: str, media_type: MediaType, eight_bit: bool, what: str) -> Leaf:
    """A text part: ``text`` encoded as UTF-8 (``media_type`` says so)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        refuse(f"{what} contains a surrogate (U+{ord(text[exc.start]):04X}) at index {exc.start}")
    return encoded_text_leaf(data, media_type, eight_bit)


def encoded_text_leaf(data: bytes, media_type: MediaType, eight_bit: bool) -> Leaf:
    """A text part from encoded text (its charset is in ``media_type``)."""
    encoding, body = _encode_text(data, eight_bit)
    return Leaf(_text_headers(media_type, encoding), body, encoding)


@lru_cache(maxsize=64)
def _text_headers(media_type: MediaType, encoding: str) -> bytes:
    content = fold("Content-Type", _with_semicolons(media_type.words()))
    return f"{content}Content-Transfer-Encoding: {encoding}\r\n".encode("ascii")


def file_leaf(
    data: bytes,
    media_type: MediaType,
    *,
    disposition: str,
    filename: str | None,
    content_id: str | None = None,
) -> Leaf:
    """An attachment or inline part, base64-encoded; ``filename`` goes in the
    ``Content-Disposition`` and, for older readers, as ``name`` in the
    ``Content-Type``, RFC 2231-encoded when it is not short ASCII."""
    type_words = media_type.words()
    disposition_words = [disposition]
    if filename is not None:
        if media_type.parameter("name") is None:
            type_words += parameter("name", filename)
        disposition_words += parameter("filename", filename)
    lines = [
        fold("Content-Type", _with_semicolons(type_words)),
        "Content-Transfer-Encoding: base64\r\n",
        fold("Content-Disposition", _with_semicolons(disposition_words)),
    ]
    if content_id is not None:
        lines.append(fold("Content-ID", [content_id]))
    return Leaf("".join(lines).encode("ascii"), _hot.b64encode_mime(data), "base64")


def _with_semicolons(words: list[str]) -> list[str]:
    """``["a", "b=1", "c=2"]`` -> ``["a;", "b=1;", "c=2"]``: MIME parameters as words."""
    return [f"{word};" for word in words[:-1]] + words[-1:]


def assemble(head: bytes, root: Leaf | Multipart) -> list[bytes]:
    """The message as chunks: ``head`` (the header lines, ``MIME-Version`` last), the
    root's ``Content-*`` headers, then its body or its parts."""
    if isinstance(root, Leaf):
        return _coalesce([head, root.headers, b"\r\n", root.body])
    literal = [leaf.body for leaf in root.leaves() if leaf.encoding in ("7bit", "8bit")]
    token = _token()
    while any(token in body for body in literal):  # never in practice: 144 random bits
        token = _token()
    pieces = [head]
    _lay_out(root, pieces, token, itertools.count())
    return _coalesce(pieces)


def _token() -> bytes:
    return secrets.token_urlsafe(18).encode("ascii")


def _lay_out(node: Multipart, pieces: list[bytes], token: bytes, serial: Iterator[int]) -> None:
    boundary = b"=_%d.%s" % (next(serial), token)  # "=_1." is no prefix of "=_10."
    media = f"multipart/{node.subtype}"
    if node.root_type is not None:
        media += f'; type="{node.root_type}"'
    pieces.append(b'Content-Type: %s;\r\n boundary="%s"\r\n\r\n' % (media.encode(), boundary))
    delimiter = b"--%s\r\n" % boundary
    for part in node.parts:
        pieces.append(delimiter)
        if isinstance(part, Multipart):
            _lay_out(part, pieces, token, serial)  # ends with CRLF: the delimiter's
            continue
        pieces += (part.headers, b"\r\n", part.body)
        if not part.padded:
            pieces.append(b"\r\n")
    pieces.append(b"--%s--\r\n" % boundary)


def _coalesce(pieces: list[bytes]) -> list[bytes]:
    """Join runs of small pieces; a large one stays the very object it is."""
    chunks = []
    small: list[bytes] = []
    for piece in pieces:
        if len(piece) >= _OWN_CHUNK:
            if small:
                chunks.append(b"".join(small))
                small = []
            chunks.append(piece)
        elif piece:
            small.append(piece)
    if small:
        chunks.append(b"".join(small))
    return chunks
