"""Header text: refused characters, RFC 2047 encoded words, folding, RFC 2231 parameters.

Every header line that holds text from a caller comes out of :func:`fold`, from
*words*: pieces of text that hold no line break and are joined by single spaces. A word
is never split, so a header can only be folded where a space already is, and nothing a
caller gives can start a new header line: control characters (CR and LF among them) are
refused before any text becomes a word. Lines are folded to stay within 78 characters
(RFC 5322 2.1.1), 76 in a header with encoded words (RFC 2047 2), where the words allow;
a line over 998 octets is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, NoReturn

from smtpx import _hot
from smtpx.errors import InvalidInputError

#: Fold header lines to stay within this many characters (RFC 5322 2.1.1 "SHOULD")...
MAX_LINE: Final = 78
#: ... or this many when they hold an encoded word (RFC 2047 2).
_MAX_ENCODED_LINE: Final = 76
#: No line of a message may be longer than this many octets (RFC 5322 2.1.1 "MUST").
HARD_LINE: Final = 998
#: The longest encoded word (RFC 2047 2).
_MAX_WORD: Final = 75
_B_PREFIX: Final = "=?utf-8?b?"
_Q_PREFIX: Final = "=?utf-8?q?"
#: Prefix and suffix ("?=") of an encoded word.
_WORD_OVERHEAD: Final = len(_B_PREFIX) + 2

# fmt: off
_C0_NAMES: Final = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT",
    "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
    "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
)
# fmt: on
#: Characters refused in header text: controls (tab included), line and paragraph
#: separators, lone surrogates.
_REFUSED: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
#: ASCII words separated by single spaces: unstructured text that can be written as is.
_PLAIN: Final = re.compile("[!-~]+(?: [!-~]+)*")
#: Octets written as themselves in a "Q" encoded word; safe even in a phrase (RFC 2047
#: 5 (3)). Space is "_"; everything else is "=XX".
_Q_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_TOKENS: Final = tuple(
    "_" if octet == 0x20 else chr(octet) if octet in _Q_SAFE else f"={octet:02X}"
    for octet in range(256)
)
#: Octets that take three characters ("=XX") in a "Q" encoded word.
_Q_ESCAPED: Final = bytes(octet for octet in range(256) if octet not in _Q_SAFE | {0x20})
#: RFC 2231 attribute-char: what a parameter value may hold without percent-encoding.
_ATTRIBUTE_CHARS: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~"
)
_PERCENT: Final = tuple(
    chr(octet) if octet in _ATTRIBUTE_CHARS else f"%{octet:02X}" for octet in range(256)
)
#: A parameter value written as a quoted string: printable ASCII but '"' and '\\'.
_QUOTABLE: Final = re.compile(r"[ !#-\[\]-~]*")
#: The longest quoted parameter written as is; longer values use RFC 2231 sections.
_MAX_QUOTED_PARAMETER: Final = 60
#: Characters of percent-encoded text per RFC 2231 section.
_SECTION: Final = 48
_DOT_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
#: The inside of a msg-id (RFC 5322 3.6.4): id-left "@" id-right.
_MSG_ID: Final = re.compile(rf"{_DOT_ATOM}@(?:{_DOT_ATOM}|\[[!-Z^-~]*\])")
#: The inside of a Content-ID (RFC 2392): a msg-id, or the common bare dot-atom.
_CONTENT_ID: Final = re.compile(rf"{_DOT_ATOM}(?:@(?:{_DOT_ATOM}|\[[!-Z^-~]*\]))?")


def refuse(message: str) -> NoReturn:
    raise InvalidInputError(message)


def as_str(value: object, what: str) -> str:
    """``value`` as an exact ``str`` (a subclass is read by its stored value)."""
    if type(value) is str:
        return value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return str.__str__(value)


def scan(text: str, what: str) -> None:
    """Refuse the first control character (CR, LF and tab included), line or paragraph
    separator, or lone surrogate of ``text``, naming it and its index."""
    found = _REFUSED.search(text)
    if found is None:
        return
    index = found.start()
    code = ord(text[index])
    if 0xD800 <= code <= 0xDFFF:
        refuse(f"{what} contains a surrogate (U+{code:04X}) at index {index}")
    name = _C0_NAMES[code] if code < 0x20 else "DEL" if code == 0x7F else f"U+{code:04X}"
    refuse(f"{what} contains a control character ({name}) at index {index}")


def header_text(value: object, what: str) -> str:
    """A header value: a ``str`` without control characters."""
    text = as_str(value, what)
    scan(text, what)
    return text


def needs_encoding(text: str) -> bool:
    """Whether unstructured ``text`` must be written as encoded words: it is not ASCII,
    has white space that a reader could lose (leading, trailing, or a run), or holds
    ``=?`` (which a reader could take for an encoded word)."""
    return bool(text) and (_PLAIN.fullmatch(text) is None or "=?" in text)


def encoded_words(text: str, first: int = _MAX_WORD) -> list[str]:
    """``text`` as UTF-8 encoded words (RFC 2047), "Q" when that is no longer than "B".

    Each word holds whole characters and is at most 75 characters long; the first at
    most ``first`` (room left on the header's first line), though never less than one
    character's worth.
    """
    data = text.encode("utf-8")
    q_size = len(data) + 2 * (len(data) - len(data.translate(None, _Q_ESCAPED)))
    if q_size <= 4 * ((len(data) + 2) // 3):
        return _q_words(data, first)
    return _b_words(data, first)


def _char_start(data: bytes, index: int) -> int:
    """The start of the UTF-8 character that holds ``data[index]``."""
    while 0x80 <= data[index] < 0xC0:
        index -= 1
    return index


def _b_words(data: bytes, first: int) -> list[str]:
    words = []
    room = first
    start = 0
    while start < len(data):
        # 4 characters of base64 per 3 octets; at least one character (4 octets) a word.
        size = max(4, (room - _WORD_OVERHEAD) // 4 * 3)
        end = start + size
        if end < len(data):
            end = _char_start(data, end)
        encoded = _hot.b64encode(data[start:end]).decode("ascii")
        words.append(f"{_B_PREFIX}{encoded}?=")
        start = end
        room = _MAX_WORD
    return words


def _q_words(data: bytes, first: int) -> list[str]:
    words = []
    tokens: list[str] = []
    room = max(first, _WORD_OVERHEAD + 12) - _WORD_OVERHEAD  # 12: a 4-octet character
    used = 0
    start = 0  # the first octet of the current word
    for index, octet in enumerate(data):
        token = _Q_TOKENS[octet]
        if used + len(token) > room:
            cut = _char_start(data, index) - start  # octets of the word that stay in it
            words.append(_Q_PREFIX + "".join(tokens[:cut]) + "?=")
            tokens = tokens[cut:]
            used = sum(map(len, tokens))
            start += cut
            room = _MAX_WORD - _WORD_OVERHEAD
        tokens.append(token)
        used += len(token)
    if tokens:
        words.append(_Q_PREFIX + "".join(tokens) + "?=")
    return words


def unstructured(name: str, text: str) -> str:
    """The header line(s) of an unstructured field (``Subject``, custom headers):
    ``text`` as is when it is plain ASCII words, else encoded words."""
    if needs_encoding(text):
        return fold(name, encoded_words(text, _MAX_ENCODED_LINE - len(name) - 2))
    return fold(name, text.split(" ") if text else ())


def fold(name: str, words: Sequence[str]) -> str:
    """``name: word word ...`` with CRLF, folded before a word that would take the line
    past 78 characters, or 76 when a word is an encoded word (never before the first).
    InvalidInputError when a line would pass 998 octets (a single word that long)."""
    line = f"{name}: {' '.join(words)}" if words else f"{name}:"
    if len(line) <= _MAX_ENCODED_LINE and line.isascii():  # the common case: one line
        return line + "\r\n"
    limit = _MAX_ENCODED_LINE if any(word[:2] == "=?" for word in words) else MAX_LINE
    lines = []
    line = name + ":"
    bare = True  # no word on the line yet
    for word in words:
        if not bare and len(line) + 1 + len(word) > limit:
            lines.append(line)
            line = " " + word
        else:
            line = f"{line} {word}"
        bare = False
    lines.append(line)
    for index, text in enumerate(lines):
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size > HARD_LINE:
            refuse(
                f"header {name} has a word too long to fit a line of {HARD_LINE} octets "
                f"(line {index + 1} would have {size})"
            )
    lines.append("")
    return "\r\n".join(lines)


def quote(text: str) -> str:
    """An RFC 5322 quoted-string of ASCII ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parameter(name: str, value: str) -> list[str]:
    """The words of a MIME parameter (``filename="a.pdf"``): a quoted string when the
    value is short ASCII without quotes or backslashes (readers differ on unquoting
    them), else RFC 2231 percent-encoded UTF-8, cut into numbered sections
    (``name*0*=utf-8''...; name*1*=...``) that keep lines short."""
    if _QUOTABLE.fullmatch(value) and len(value) <= _MAX_QUOTED_PARAMETER and "=?" not in value:
        return [f'{name}="{value}"']
    encoded = "".join([_PERCENT[octet] for octet in value.encode("utf-8")])
    if len(encoded) <= _SECTION:
        return [f"{name}*=utf-8''{encoded}"]
    sections = []
    start = 0
    while start < len(encoded):
        end = min(start + _SECTION, len(encoded))
        # Never split a "%XX" escape.
        percent = encoded.rfind("%", end - 2, end)
        if end < len(encoded) and percent >= 0:
            end = percent
        sections.append(encoded[start:end])
        start = end
    first = f"{name}*0*=utf-8''{sections[0]}"
    return [first, *(f"{name}*{number}*={text}" for number, text in enumerate(sections[1:], 1))]


def parse_msg_ids(value: object, what: str, *, single: bool = False) -> list[str]:
    """Message identifiers, ``<left@right>`` (the angle brackets may be left out),
    separated by white space; returned with their brackets."""
    text = header_text(value, what)
    ids = text.split()
    if not ids:
        refuse(f"{what} is empty")
    if single and len(ids) > 1:
        refuse(f"{what} must be one identifier, not {len(ids)}")
    return [_bracketed(item, what, _MSG_ID, "like <unique@example.com>") for item in ids]


def parse_content_id(value: object, what: str) -> str:
    """A Content-ID (``logo`` or ``logo@example.com``, brackets optional), with its
    brackets."""
    text = header_text(value, what).strip(" ")
    return _bracketed(text, what, _CONTENT_ID, "like logo or logo@example.com")


def _bracketed(text: str, what: str, pattern: re.Pattern[str], example: str) -> str:
    inner = text[1:-1] if text[:1] == "<" and text[-1:] == ">" else text
    if pattern.fullmatch(inner) is None:
        refuse(f"{what} is not a valid identifier ({example}, in ASCII, without spaces)")
    return f"<{inner}>"
