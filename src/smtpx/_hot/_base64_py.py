"""Base64 for SMTP: SASL responses, server challenges and MIME bodies (the pure twin).

The specification of the hot path ``_base64``; the compiled twin ``_base64_c`` behaves
identically (same results, same exceptions, same messages). Three functions, all on the
standard RFC 4648 alphabet (``A-Z a-z 0-9 + /``) with ``=`` padding:

:func:`b64encode`
    The encoding on one line, without a line break: a SASL response.
:func:`b64decode`
    Strict decoding of a server challenge (the text of a 334 reply). A challenge is
    tiny and comes from the network, so it is checked rather than repaired; checks run
    in this order and the first that fails raises :class:`~smtpx.errors.ProtocolError`,
    naming the fault and its offset (never the input, which may be sensitive):

    1. a ``str`` must be ASCII ("non-ASCII character at offset 3");
    2. every character is in the alphabet or ``=``: no whitespace, no line breaks, no
       URL-safe ``-``/``_`` ("invalid character b'!' at offset 7": the first one);
    3. the length is a multiple of 4 ("length 7 is not a multiple of 4");
    4. ``=`` appears only as the final padding, once or twice ("misplaced padding '='
       at offset 2": the first ``=``);
    5. the encoding is canonical: the bits that the padding discards are zero
       ("non-zero unused bits at offset 2", the character before the padding). RFC 4648
       section 3.5 allows decoders to reject such input; we do, so that every byte
       string has exactly one accepted encoding and a garbled challenge is caught.

    An empty input is valid and decodes to ``b""`` (an empty challenge, ``334 ``).
:func:`b64encode_mime`
    The ``Content-Transfer-Encoding: base64`` body encoding of RFC 2045: lines of
    ``line_length`` characters (76 by default, the RFC's maximum; any positive multiple
    of 4 up to 76), the last one shorter, each ending with CRLF, the last one too.
    Empty input gives ``b""``.

Binary inputs are ``bytes``, ``bytearray`` or ``memoryview`` (read as its bytes in C
order, whatever its format or shape); anything else raises :class:`TypeError`. An
output too large to allocate raises :class:`MemoryError`.
"""

from __future__ import annotations

import binascii

from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["b64decode", "b64encode", "b64encode_mime"]

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#: Every byte that may appear in an encoding.
_VALID = _ALPHABET + b"="
#: The 6-bit value of each character of the alphabet.
_VALUES = {char: value for value, char in enumerate(_ALPHABET)}
#: The longest MIME line (RFC 2045 section 6.8), and the default.
_MAX_LINE_LENGTH = 76

_MALFORMED = "malformed base64 in server challenge"
_BINARY = "bytes, bytearray or memoryview"


def _bytes_like(data: object, func: str, expected: str = _BINARY) -> bytes | bytearray | memoryview:
    """``data`` as a C-contiguous buffer (a strided memoryview is copied); TypeError
    naming ``func`` and the ``expected`` types when it is not bytes-like."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, memoryview):
        return data if data.c_contiguous else data.tobytes()
    raise TypeError(f"{func}() argument must be {expected}, not {type(data).__name__}")


def b64encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` in base64 with padding, on one line (no line break)."""
    return binascii.b2a_base64(_bytes_like(data, "b64encode"), newline=False)


def b64decode(data: bytes | bytearray | memoryview | str) -> bytes:
    """Decode a server challenge strictly (see the module docstring for the rules).

    Raises :class:`~smtpx.errors.ProtocolError` when ``data`` is not canonical base64.
    """
    if isinstance(data, str):
        if not data.isascii():
            offset = next(i for i, char in enumerate(data) if not char.isascii())
            raise ProtocolError(f"{_MALFORMED}: non-ASCII character at offset {offset}")
        raw = data.encode("ascii")
    else:
        raw = bytes(_bytes_like(data, "b64decode", f"str, {_BINARY}"))
    invalid = raw.translate(None, _VALID)
    if invalid:
        offset = raw.index(invalid[0])
        raise ProtocolError(f"{_MALFORMED}: invalid character {invalid[:1]!r} at offset {offset}")
    size = len(raw)
    if size % 4:
        raise ProtocolError(f"{_MALFORMED}: length {size} is not a multiple of 4")
    first_pad = raw.find(b"=")
    pads = 0 if first_pad < 0 else size - first_pad
    if pads > 2 or (pads == 2 and raw[-1:] != b"="):
        raise ProtocolError(f"{_MALFORMED}: misplaced padding '=' at offset {first_pad}")
    if pads:
        last = size - pads - 1  # the character whose low bits the padding discards
        unused = 0x3 if pads == 1 else 0xF
        if _VALUES[raw[last]] & unused:
            raise ProtocolError(f"{_MALFORMED}: non-zero unused bits at offset {last}")
    return binascii.a2b_base64(raw)


def _check_line_length(line_length: object) -> None:
    """TypeError unless an ``int``; InvalidInputError unless a multiple of 4 in 4..76."""
    if not isinstance(line_length, int):
        raise TypeError(f"line_length must be an int, not {type(line_length).__name__}")
    if not 0 < line_length <= _MAX_LINE_LENGTH or line_length % 4:
        raise InvalidInputError(
            f"line_length must be a positive multiple of 4 and at most "
            f"{_MAX_LINE_LENGTH}, got {line_length}"
        )


def b64encode_mime(data: bytes | bytearray | memoryview, line_length: int = 76) -> bytes:
    """Encode ``data`` as a MIME base64 body: CRLF-terminated lines of ``line_length``.

    ``line_length`` must be a positive multiple of 4, at most 76
    (:class:`~smtpx.errors.InvalidInputError` otherwise; :class:`TypeError` if it is
    not an ``int``).
    """
    buffer = _bytes_like(data, "b64encode_mime")
    _check_line_length(line_length)
    encoded = binascii.b2a_base64(buffer, newline=False)
    lines = [encoded[i : i + line_length] for i in range(0, len(encoded), line_length)]
    lines.append(b"")  # the join then ends the last line with CRLF too (b"" for no lines)
    return b"\r\n".join(lines)
