"""The command writer: SMTP commands and message data queued into one write buffer.

This is the pure-Python twin and the specification; ``_writer_c.pyx`` is the compiled
twin and behaves identically (same bytes, same exception classes, same messages).

The protocol engine queues a whole pipelined group (RFC 2920) -- ``MAIL`` + every
``RCPT`` + ``DATA``, or ``MAIL`` + ``RCPT``\\s + ``BDAT n LAST`` + the body (RFC 3030),
possibly followed by the next message's group -- into one :class:`CommandBuffer`, then
sends :meth:`CommandBuffer.take` in one system call (``socket.sendmsg`` or
``transport.writelines``).

Validation
    Every argument is checked *before* anything is appended: a refused command leaves
    the buffer exactly as it was. Wrong values raise
    :class:`smtpx.errors.InvalidInputError` with a message of the form
    ``"<COMMAND> <argument> <what is wrong> [at index <i>]"``, e.g.
    ``"MAIL FROM address contains a control character (CR) at index 5"``. Indexes count
    characters of the ``str`` argument (bytes of a ``bytes`` one). Messages never echo
    an argument: they name a control character, and may quote the one printable
    character that breaks the syntax -- but never a byte of a SASL response.
    Wrong *types* are programming errors and raise :class:`TypeError`
    (``"MAIL SIZE must be an int, not bool"``); ``bool`` is never accepted as an int.
    Subclasses of ``str``/``int``/``bytes`` are read by their stored value.

Characters refused in every text argument, before any other check
    The C0 controls (NUL, CR, LF, HT ...), DEL, the C1 controls U+0080..U+009F and
    U+2028/U+2029 (nothing ``str.splitlines`` would split on can reach the wire), and
    lone surrogates. Non-ASCII text is allowed only where SMTPUTF8 allows it
    (``smtputf8=True``: addresses and parameter values, sent as UTF-8, RFC 6531);
    elsewhere it is refused, with ``", which requires SMTPUTF8"`` added to the message
    where ``smtputf8=True`` would have allowed it. The first refused character wins.

Addresses (``MAIL FROM``, ``RCPT TO``, ``ORCPT``)
    ``""`` (``MAIL`` only: the null reverse-path ``<>``), ``postmaster`` (``RCPT`` only,
    ASCII case-insensitive), or ``local@domain``: ``local`` is a dot-string (RFC 5321
    atext runs separated by single dots) or a quoted-string (printable ASCII and space,
    with backslash escapes of printable ASCII); ``domain`` is dot-separated labels of
    letters, digits and hyphens (no hyphen first or last, 1..63 octets) or an address
    literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``, checked with :mod:`ipaddress`).
    With SMTPUTF8, non-ASCII characters may also appear in atext, quoted text and
    domain labels. At most 254 octets in all (RFC 5321 4.5.3.1.3: 256 with the angle
    brackets), 64 for the local part.

Line lengths (octets, CRLF included)
    512 for a plain command (RFC 5321 4.5.3.1.4); 2048 for ``MAIL``/``RCPT``, whose
    extensions each raise the 512 (RFC 1869) -- 2048 holds every standard parameter at
    its maximum, and longer lines are chopped into pieces by common servers (Postfix's
    ``line_length_limit``), which would turn the rest into a command; 12288 for
    ``AUTH`` and SASL responses (RFC 4954 4).

Message data
    :meth:`CommandBuffer.body` appends data as it is (already encoded by the DATA
    encoder). Data smaller than ``copy_threshold`` is copied into the current segment;
    larger data is kept by reference, as a read-only ``memoryview`` of the caller's
    object, and must not be changed until the buffer has been sent. The buffer is a list
    of segments: runs of copied bytes become one ``bytes`` each, referenced data stays a
    ``memoryview``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Final, NoReturn

from smtpx.errors import InvalidInputError

__all__ = ["CommandBuffer"]

#: Largest SIZE / BDAT value: fits a signed 64-bit integer (RFC 1870 allows 20 digits,
#: but no message or chunk comes near 2**63 octets).
_MAX_SIZE: Final = 2**63 - 1
#: RFC 5321 4.5.3.1.3: a path is at most 256 octets, 254 without its angle brackets.
_MAX_ADDRESS: Final = 254
#: RFC 5321 4.5.3.1.1.
_MAX_LOCAL_PART: Final = 64
#: RFC 5321 4.5.3.1.2 (the hello name).
_MAX_DOMAIN: Final = 255
#: RFC 1035 2.3.4; counted in UTF-8 octets for U-labels.
_MAX_LABEL: Final = 63
#: RFC 3461 4.4: ENVID is at most 100 characters before xtext encoding.
_MAX_ENVID: Final = 100
#: RFC 4422 3.1: SASL mechanism names are 1 to 20 characters.
_MAX_MECHANISM: Final = 20
#: Command line lengths, CRLF included (see the module docstring for why).
_MAX_LINE: Final = 512
_MAX_PARAMETER_LINE: Final = 2048
_MAX_AUTH_LINE: Final = 12288
#: Bodies of at least this many bytes are kept by reference instead of copied.
_COPY_THRESHOLD: Final = 16384

# How a text argument may use non-ASCII characters (see _scan).
_ASCII: Final = 0  # refused
_ASCII_UNLESS_SMTPUTF8: Final = 1  # refused, and the message says SMTPUTF8 would allow it
_UTF8: Final = 2  # allowed (sent as UTF-8)

# fmt: off
_C0_NAMES: Final = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT",
    "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
    "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
)
# fmt: on
# The first character _scan refuses: anything but printable ASCII, or (with UTF-8) a
# control, a line or paragraph separator, or a surrogate.
_REFUSED_ASCII: Final = re.compile("[^\x20-\x7e]")
_REFUSED_UTF8: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

_DIGITS: Final = "0123456789"
_LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: RFC 5321 atext (RFC 5322 3.2.3).
_ATEXT: Final = frozenset(_LETTERS + _DIGITS + "!#$%&'*+-/=?^_`{|}~")
_LDH: Final = frozenset(_LETTERS + _DIGITS + "-")
# Fast paths for the common all-ASCII case: what these match, the loops of _local_part and
# _domain accept too; anything else goes through the loops, which find the error.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_STRING: Final = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LDH_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LDH_DOMAIN: Final = re.compile(rf"{_LDH_LABEL}(?:\.{_LDH_LABEL})*")
_MECHANISM_CHARS: Final = frozenset(_LETTERS + _DIGITS + "-_")
_IPV4_CHARS: Final = frozenset(_DIGITS + ".")
_IPV6_CHARS: Final = frozenset(_DIGITS + "abcdefABCDEF:.")
_BASE64_CANONICAL: Final = re.compile(
    rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
)
_BASE64_ALPHABET: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

#: RFC 3461 4: xtext encodes characters outside 33..126, "+" and "=" as "+HH".
_XTEXT: Final = {c: f"+{c:02X}" for c in range(128) if not 33 <= c <= 126 or c in b"+="}
#: RFC 6533 3: utf-8-addr-xtext writes those, and "\", as "\x{HEX}" (as non-ASCII).
_ADDR_XTEXT_SPECIAL: Final = frozenset(chr(c) for c in range(128) if c in _XTEXT or c == 0x5C)

_BODY_VALUES: Final = ("7BIT", "8BITMIME", "BINARYMIME")
_RET_VALUES: Final = ("FULL", "HDRS")
_NOTIFY_VALUES: Final = ("NEVER", "SUCCESS", "FAILURE", "DELAY")


def _refuse(message: str) -> NoReturn:
    raise InvalidInputError(message)


def _text(value: object, what: str) -> str:
    """``value`` as an exact ``str`` (a subclass is read by its stored value)."""
    if type(value) is str:
        return value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return str.__str__(value)


def _integer(value: object, what: str) -> int:
    """``value`` as an exact ``int`` in ``0..2**63-1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    number = int.__index__(value)
    if number < 0:
        _refuse(f"{what} must not be negative")
    if number > _MAX_SIZE:
        _refuse(f"{what} is too large (the limit is {_MAX_SIZE})")
    return number


def _control_name(code: int) -> str:
    if code < 0x20:
        return _C0_NAMES[code]
    return "DEL" if code == 0x7F else f"U+{code:04X}"


def _scan(text: str, what: str, mode: int) -> None:
    """Refuse the first control, separator, surrogate, or non-ASCII character (by mode)."""
    found = (_REFUSED_UTF8 if mode == _UTF8 else _REFUSED_ASCII).search(text)
    if found is None:
        return
    index = found.start()
    code = ord(text[index])
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
        _refuse(f"{what} contains a control character ({_control_name(code)}) at index {index}")
    if mode == _UTF8:
        _refuse(f"{what} contains a surrogate (U+{code:04X}) at index {index}")
    hint = ", which requires SMTPUTF8" if mode == _ASCII_UNLESS_SMTPUTF8 else ""
    _refuse(f"{what} contains a non-ASCII character at index {index}{hint}")


def _octets(text: str) -> int:
    """Length of ``text`` in UTF-8."""
    return len(text) if text.isascii() else len(text.encode())


def _choice(value: object, what: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, ASCII case-insensitively, upper-cased."""
    text = _text(value, what)
    upper = text.upper() if text.isascii() else text
    if upper not in choices:
        _scan(text, what, _ASCII)
        _refuse(f"{what} must be {', '.join(choices[:-1])} or {choices[-1]}")
    return upper


def _address_literal(literal: str) -> bool:
    """``[IPv4]`` or ``[IPv6:addr]`` (RFC 5321 4.1.3); general literals are refused."""
    if len(literal) < 3 or literal[-1] != "]":
        return False
    inner = literal[1:-1]
    tag = inner[:5]
    parse: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
    if tag.isascii() and tag.lower() == "ipv6:":
        address, chars, parse = inner[5:], _IPV6_CHARS, ipaddress.IPv6Address
    else:
        address, chars, parse = inner, _IPV4_CHARS, ipaddress.IPv4Address
    if not address or not chars.issuperset(address):
        return False
    try:
        parse(address)
    except ValueError:
        return False
    return True


def _domain(text: str, start: int, what: str) -> None:
    """Check ``text[start:]``: LDH labels (non-ASCII allowed if it passed the scan) or a
    bracketed address literal."""
    if _LDH_DOMAIN.fullmatch(text, start):
        return
    end = len(text)
    if start == end:
        _refuse(f"{what} domain is empty")
    if text[start] == "[":
        if not _address_literal(text[start:]):
            _refuse(f"{what} has an invalid address literal at index {start}")
        return
    label = start
    for index in range(start, end + 1):
        char = text[index] if index < end else "."
        if char == ".":
            if index == label:
                _refuse(f"{what} has an empty domain label at index {index}")
            if text[label] == "-":
                _refuse(f"{what} has a domain label starting with '-' at index {label}")
            if text[index - 1] == "-":
                _refuse(f"{what} has a domain label ending with '-' at index {index - 1}")
            if _octets(text[label:index]) > _MAX_LABEL:
                _refuse(
                    f"{what} has a domain label longer than {_MAX_LABEL} octets at index {label}"
                )
            label = index + 1
        elif char not in _LDH and char < "\x80":
            _refuse(f"{what} contains {char!r} at index {index}, which is not allowed in a domain")


def _closing_quote(text: str, what: str) -> int:
    """The index of the quote that closes the quoted-string opened at ``text[0]``."""
    end = len(text)
    index = 1
    while index < end:
        char = text[index]
        if char == '"':
            return index
        if char == "\\":
            if index + 1 < end and text[index + 1] > "\x7e":
                _refuse(f"{what} has an invalid escape at index {index}")
            index += 2
        else:
            index += 1
    _refuse(f"{what} has an unterminated quoted local part")


def _local_part(text: str, what: str) -> int:
    """Check the local part at the start of ``text``; return the index of its ``@``."""
    if text[0] == '"':
        at = _closing_quote(text, what) + 1
        if at == len(text):
            _refuse(f"{what} has no '@' (expected local@domain)")
        if text[at] != "@":
            _refuse(f"{what} has {text[at]!r} at index {at} where '@' should follow the quotes")
        return at
    at = text.find("@")
    if at > 0 and _DOT_STRING.fullmatch(text, 0, at):
        return at
    local = text if at < 0 else text[:at]
    for index, char in enumerate(local):
        if char == ".":
            if index == 0 or local[index - 1] == ".":
                _refuse(f"{what} has a misplaced '.' at index {index}")
        elif char not in _ATEXT and char < "\x80":
            _refuse(
                f"{what} contains {char!r} at index {index}, "
                "which is not allowed in an unquoted local part"
            )
    if at < 0:
        _refuse(f"{what} has no '@' (expected local@domain)")
    if at == 0:
        _refuse(f"{what} local part is empty")
    if local[-1] == ".":
        _refuse(f"{what} has a misplaced '.' at index {at - 1}")
    return at


def _address(
    value: object, what: str, *, smtputf8: bool, null: bool = False, postmaster: bool = False
) -> str:
    """A validated mailbox (see the module docstring), returned as an exact ``str``."""
    text = _text(value, what)
    if not text:
        if null:
            return text
        _refuse(f"{what} is empty")
    _scan(text, what, _UTF8 if smtputf8 else _ASCII_UNLESS_SMTPUTF8)
    if postmaster and len(text) == 10 and text.isascii() and text.lower() == "postmaster":
        return text
    octets = _octets(text)
    if octets > _MAX_ADDRESS:
        _refuse(f"{what} is too long ({octets} octets; the limit is {_MAX_ADDRESS})")
    at = _local_part(text, what)
    octets = _octets(text[:at])
    if octets > _MAX_LOCAL_PART:
        _refuse(f"{what} local part is too long ({octets} octets; the limit is {_MAX_LOCAL_PART})")
    _domain(text, at + 1, what)
    return text


def _hello_name(value: object, what: str) -> str:
    """A domain or an address literal, ASCII only (an IDN goes as its A-labels)."""
    name = _text(value, what)
    if not name:
        _refuse(f"{what} is empty")
    _scan(name, what, _ASCII)
    if len(name) > _MAX_DOMAIN:
        _refuse(f"{what} is too long ({len(name)} octets; the limit is {_MAX_DOMAIN})")
    _domain(name, 0, what)
    return name


def _xtext(text: str) -> str:
    """RFC 3461 4 xtext of ASCII ``text``."""
    return text.translate(_XTEXT)


def _addr_xtext(text: str) -> str:
    """RFC 6533 3 utf-8-addr-xtext: non-ASCII and xtext specials as ``\\x{HEX}``."""
    return "".join(
        f"\\x{{{ord(char):X}}}" if char > "\x7f" or char in _ADDR_XTEXT_SPECIAL else char
        for char in text
    )


def _envid(value: object) -> str:
    what = "MAIL ENVID"
    envid = _text(value, what)
    _scan(envid, what, _ASCII)
    if not envid:
        _refuse(f"{what} is empty")
    if len(envid) > _MAX_ENVID:
        _refuse(f"{what} is too long ({len(envid)} octets; the limit is {_MAX_ENVID})")
    return _xtext(envid)


def _orcpt(value: object, smtputf8: bool) -> str:
    address = _address(value, "RCPT ORCPT address", smtputf8=smtputf8)
    if address.isascii():
        return "rfc822;" + _xtext(address)
    return "utf-8;" + _addr_xtext(address)


def _sequence(value: object, what: str) -> Sequence[object]:
    if type(value) is tuple or type(value) is list:
        return value
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence of str, not {type(value).__name__}")
    return value


def _notify(value: object) -> str:
    items = _sequence(value, "RCPT notify")
    if not items:
        _refuse("RCPT notify is empty (give NEVER alone, or SUCCESS, FAILURE and/or DELAY)")
    seen: list[str] = []
    for index, item in enumerate(items):
        what = f"RCPT notify[{index}]"
        text = _text(item, what)
        upper = text.upper() if text.isascii() else text
        if upper not in _NOTIFY_VALUES:
            _scan(text, what, _ASCII)
            _refuse(f"{what} must be NEVER, SUCCESS, FAILURE or DELAY")
        if upper in seen:
            _refuse(f"{what} repeats {upper}")
        if seen and (upper == "NEVER" or seen[0] == "NEVER"):
            _refuse(f"{what} combines {upper} with {seen[0]} (NEVER must be alone)")
        seen.append(upper)
    return ",".join(seen)


def _parameters(value: object, verb: str, smtputf8: bool, taken: dict[str, str]) -> list[str]:
    """Custom ``KEYWORD`` / ``KEYWORD=value`` parameters, each checked; ``taken`` maps
    the keywords the keyword arguments set to those arguments' names."""
    params = _sequence(value, f"{verb} params")
    seen: dict[str, int] = {}
    checked: list[str] = []
    for index, item in enumerate(params):
        what = f"{verb} params[{index}]"
        param = _text(item, what)
        _scan(param, what, _UTF8 if smtputf8 else _ASCII_UNLESS_SMTPUTF8)
        if not param:
            _refuse(f"{what} is empty")
        equals = param.find("=")
        keyword = param if equals < 0 else param[:equals]
        if not keyword:
            _refuse(f"{what} has an empty keyword")
        if keyword[0] == "-":
            _refuse(f"{what} keyword starts with '-'")
        for position, char in enumerate(keyword):
            if char not in _LDH:
                _refuse(
                    f"{what} keyword contains {char!r} at index {position} "
                    "(expected A-Z, a-z, 0-9 or '-')"
                )
        if equals >= 0:
            if equals == len(param) - 1:
                _refuse(f"{what} has an empty value")
            for position in range(equals + 1, len(param)):
                if param[position] in " =":
                    _refuse(f"{what} value contains {param[position]!r} at index {position}")
        upper = keyword.upper()
        if upper in taken:
            _refuse(f"{what} repeats {upper}, which the {taken[upper]} argument sets")
        if upper in seen:
            _refuse(f"{what} repeats {upper} of {verb} params[{seen[upper]}]")
        seen[upper] = index
        checked.append(param)
    return checked


def _mechanism(value: object) -> str:
    what = "AUTH mechanism"
    mechanism = _text(value, what)
    _scan(mechanism, what, _ASCII)
    if not mechanism:
        _refuse(f"{what} is empty")
    if len(mechanism) > _MAX_MECHANISM:
        _refuse(f"{what} is too long ({len(mechanism)} octets; the limit is {_MAX_MECHANISM})")
    for index, char in enumerate(mechanism):
        if char not in _MECHANISM_CHARS:
            _refuse(f"{what} contains {char!r} at index {index} (expected A-Z, 0-9, '-' or '_')")
    return mechanism.upper()


def _bytes(value: object, what: str) -> bytes:
    """``value`` as an exact ``bytes`` (a subclass is read by its stored value)."""
    if type(value) is bytes:
        return value
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(memoryview(value))


def _check_base64(data: bytes, what: str) -> None:
    """Refuse anything but canonical base64 text (RFC 4648 4, padded). The messages give
    positions only: this is credential material."""
    if _BASE64_CANONICAL.fullmatch(data) is None:
        end = len(data)
        for index, byte in enumerate(data):
            if byte == 0x3D:  # "=": only as the last one or two bytes
                if index != end - 1 and not (index == end - 2 and data[end - 1] == 0x3D):
                    _refuse(f"{what} has misplaced '=' padding at index {index}")
            elif byte not in _BASE64_ALPHABET:
                _refuse(f"{what} contains a byte outside the base64 alphabet at index {index}")
        _refuse(f"{what} is not valid base64 (its length is not a multiple of 4)")


class CommandBuffer:
    """SMTP commands and message data, queued in order to leave in one write.

    Every method validates all its arguments before it appends anything (see the module
    docstring); :meth:`chunks` / :meth:`take` hand the queued bytes to the transport.
    """

    __slots__ = ("_commands", "_copy_threshold", "_current", "_pieces", "_size")

    def __init__(self, *, copy_threshold: int = _COPY_THRESHOLD) -> None:
        """``copy_threshold``: bodies of at least this many bytes are kept by reference
        (a ``memoryview``) instead of copied; 0 keeps every non-empty body by reference."""
        self._copy_threshold = _integer(copy_threshold, "copy_threshold")
        self._pieces: list[bytes | memoryview] = []  # closed segments
        self._current = bytearray()  # the open segment
        self._size = 0  # bytes in _pieces
        self._commands = 0

    def __reduce__(self) -> NoReturn:
        raise TypeError("CommandBuffer cannot be pickled or copied")

    # ------------------------------------------------------------------ commands
    def _queue(self, line: bytes) -> None:
        self._current += line
        self._commands += 1

    def _queue_bounded(self, line: bytes, label: str, limit: int) -> None:
        """Queue a line whose arguments can make it longer than ``limit`` octets."""
        if len(line) > limit:
            _refuse(f"{label} is too long ({len(line)} octets with CRLF; the limit is {limit})")
        self._queue(line)

    def ehlo(self, name: str) -> None:
        """Queue ``EHLO name``: a domain (ASCII; an IDN as A-labels) or an address
        literal such as ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``."""
        self._queue(f"EHLO {_hello_name(name, 'EHLO name')}\r\n".encode())

    def helo(self, name: str) -> None:
        """Queue ``HELO name`` (the same rules as :meth:`ehlo`)."""
        self._queue(f"HELO {_hello_name(name, 'HELO name')}\r\n".encode())

    def mail(
        self,
        sender: str,
        *,
        size: int | None = None,
        body: str | None = None,
        smtputf8: bool = False,
        ret: str | None = None,
        envid: str | None = None,
        requiretls: bool = False,
        params: Sequence[str] = (),
    ) -> None:
        """Queue ``MAIL FROM:<sender> [SIZE=n] [BODY=b] [SMTPUTF8] [RET=r] [ENVID=e]
        [REQUIRETLS] [params...]``.

        ``sender`` ``""`` is the null reverse-path. ``size``: an int >= 0 (RFC 1870).
        ``body``: ``7BIT``, ``8BITMIME`` or ``BINARYMIME``; ``ret``: ``FULL`` or ``HDRS``
        (both ASCII case-insensitive, sent upper-case). ``envid``: 1..100 printable ASCII
        characters, sent as xtext (RFC 3461). ``smtputf8`` allows UTF-8 in the sender and
        in parameter values. ``params``: further ``KEYWORD`` or ``KEYWORD=value`` strings,
        none repeating a keyword, nor one that a keyword argument sets.
        """
        parts = [
            "MAIL FROM:<",
            _address(sender, "MAIL FROM address", smtputf8=smtputf8, null=True),
            ">",
        ]
        taken: dict[str, str] = {}
        if size is not None:
            parts += (" SIZE=", str(_integer(size, "MAIL SIZE")))
            taken["SIZE"] = "size"
        if body is not None:
            parts += (" BODY=", _choice(body, "MAIL BODY", _BODY_VALUES))
            taken["BODY"] = "body"
        if smtputf8:
            parts.append(" SMTPUTF8")
            taken["SMTPUTF8"] = "smtputf8"
        if ret is not None:
            parts += (" RET=", _choice(ret, "MAIL RET", _RET_VALUES))
            taken["RET"] = "ret"
        if envid is not None:
            parts += (" ENVID=", _envid(envid))
            taken["ENVID"] = "envid"
        if requiretls:
            parts.append(" REQUIRETLS")
            taken["REQUIRETLS"] = "requiretls"
        for param in _parameters(params, "MAIL", smtputf8, taken):
            parts += (" ", param)
        parts.append("\r\n")
        self._queue_bounded("".join(parts).encode(), "MAIL command line", _MAX_PARAMETER_LINE)

    def rcpt(
        self,
        recipient: str,
        *,
        notify: Sequence[str] | None = None,
        orcpt: str | None = None,
        smtputf8: bool = False,
        params: Sequence[str] = (),
    ) -> None:
        """Queue ``RCPT TO:<recipient> [NOTIFY=...] [ORCPT=...] [params...]``.

        ``recipient``: a mailbox or ``postmaster``. ``notify`` (RFC 3461): ``["NEVER"]``,
        or SUCCESS, FAILURE and/or DELAY without repeats (ASCII case-insensitive, sent
        upper-case, in the order given). ``orcpt``: the original recipient's mailbox,
        sent as ``rfc822;`` + xtext, or -- when non-ASCII, which needs ``smtputf8`` --
        ``utf-8;`` + utf-8-addr-xtext (RFC 6533). ``smtputf8`` allows UTF-8 in the
        recipient and parameter values (SMTPUTF8 itself goes on MAIL). ``params`` as for
        :meth:`mail`.
        """
        parts = [
            "RCPT TO:<",
            _address(recipient, "RCPT TO address", smtputf8=smtputf8, postmaster=True),
            ">",
        ]
        taken: dict[str, str] = {}
        if notify is not None:
            parts += (" NOTIFY=", _notify(notify))
            taken["NOTIFY"] = "notify"
        if orcpt is not None:
            parts += (" ORCPT=", _orcpt(orcpt, smtputf8))
            taken["ORCPT"] = "orcpt"
        for param in _parameters(params, "RCPT", smtputf8, taken):
            parts += (" ", param)
        parts.append("\r\n")
        self._queue_bounded("".join(parts).encode(), "RCPT command line", _MAX_PARAMETER_LINE)

    def data(self) -> None:
        """Queue ``DATA``."""
        self._queue(b"DATA\r\n")

    def rset(self) -> None:
        """Queue ``RSET``."""
        self._queue(b"RSET\r\n")

    def noop(self) -> None:
        """Queue ``NOOP``."""
        self._queue(b"NOOP\r\n")

    def quit(self) -> None:
        """Queue ``QUIT``."""
        self._queue(b"QUIT\r\n")

    def starttls(self) -> None:
        """Queue ``STARTTLS``."""
        self._queue(b"STARTTLS\r\n")

    def bdat(self, size: int, *, last: bool = False) -> None:
        """Queue ``BDAT size`` or ``BDAT size LAST`` (RFC 3030); the chunk follows with
        :meth:`body`."""
        count = _integer(size, "BDAT size")
        line = f"BDAT {count} LAST\r\n" if last else f"BDAT {count}\r\n"
        self._queue(line.encode())

    def auth(self, mechanism: str, initial_response: bytes | None = None) -> None:
        """Queue ``AUTH MECHANISM [initial-response]`` (RFC 4954).

        ``mechanism``: 1..20 characters of ``A-Z 0-9 - _`` (ASCII case-insensitive, sent
        upper-case). ``initial_response``: base64 text, ``b""`` is sent as ``=``.
        Messages about the response give positions, never its content.
        """
        name = _mechanism(mechanism).encode()
        if initial_response is None:
            line = b"".join((b"AUTH ", name, b"\r\n"))
        else:
            what = "AUTH initial response"
            response = _bytes(initial_response, what)
            _check_base64(response, what)
            line = b"".join((b"AUTH ", name, b" ", response or b"=", b"\r\n"))
        self._queue_bounded(line, "AUTH command line", _MAX_AUTH_LINE)

    def auth_response(self, response: bytes) -> None:
        """Queue a SASL continuation line: base64 text (``b""`` for an empty response),
        or ``b"*"`` to cancel the exchange (RFC 4954 4)."""
        what = "AUTH response"
        data = _bytes(response, what)
        if data != b"*":
            _check_base64(data, what)
        self._queue_bounded(data + b"\r\n", "AUTH response line", _MAX_AUTH_LINE)

    def vrfy(self, argument: str) -> None:
        """Queue ``VRFY argument``: a user name or mailbox, printable ASCII and space."""
        what = "VRFY argument"
        text = _text(argument, what)
        _scan(text, what, _ASCII)
        if not text:
            _refuse(f"{what} is empty")
        self._queue_bounded(f"VRFY {text}\r\n".encode(), "VRFY command line", _MAX_LINE)

    # ------------------------------------------------------------------ data
    def body(self, data: bytes | bytearray | memoryview) -> None:
        """Append message data as it is (already encoded by the DATA encoder).

        Data smaller than ``copy_threshold`` is copied; larger data is kept by reference,
        as a read-only ``memoryview`` of ``data`` (which must not change until sent).
        Empty data appends nothing; ``data`` must be C-contiguous.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"body must be bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        view = memoryview(data)
        if not view.c_contiguous:
            raise TypeError("body must be a C-contiguous buffer")
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        if not view:
            return
        if len(view) < self._copy_threshold:
            self._current += view
            return
        if self._current:
            self._close_segment()
        self._pieces.append(view if view.readonly else view.toreadonly())
        self._size += len(view)

    def _close_segment(self) -> None:
        self._pieces.append(bytes(self._current))
        self._size += len(self._current)
        self._current.clear()

    # ------------------------------------------------------------------ output
    def chunks(self) -> list[bytes | memoryview]:
        """Everything queued, in order, as few pieces as possible: one ``bytes`` per run
        of commands and copied data, one ``memoryview`` per body kept by reference."""
        if self._current:
            return [*self._pieces, bytes(self._current)]
        return list(self._pieces)

    def take(self) -> list[bytes | memoryview]:
        """:meth:`chunks`, then :meth:`clear`: the pieces to send, leaving the buffer empty."""
        pieces = self.chunks()
        self.clear()
        return pieces

    def getvalue(self) -> bytes:
        """Everything queued, joined into one ``bytes`` (a copy: for tests and small use)."""
        return b"".join(self.chunks())

    def clear(self) -> None:
        """Drop everything queued and reset :attr:`commands`."""
        self._pieces = []
        self._current = bytearray()
        self._size = 0
        self._commands = 0

    def __len__(self) -> int:
        """Bytes queued."""
        return self._size + len(self._current)

    @property
    def commands(self) -> int:
        """Command lines queued since the last :meth:`clear` / :meth:`take` (every
        method but :meth:`body` queues one; a pipelined server answers each)."""
        return self._commands
