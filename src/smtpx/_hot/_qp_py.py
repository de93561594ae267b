"""Quoted-printable body encoding, RFC 2045 section 6.7 (the pure twin).

The specification of the hot path ``_qp``; the compiled twin ``_qp_c`` behaves
identically (same results, same exceptions, same messages). One function:

:func:`qp_encode`
    The ``Content-Transfer-Encoding: quoted-printable`` encoding of text:

    1. *Hard line breaks.* The input is split into lines at CRLF, at a bare LF and at a
       bare CR (each is one line break, as the DATA encoder reads them). Every line
       break becomes CRLF; the output ends with CRLF exactly when the input ends with
       a line break. Empty input gives ``b""``.
    2. *Literal octets.* Printable ASCII (33 to 126) except ``=`` stands for itself, and
       so do space and tab, except as the last octet of a line (before a line break or
       at the end of the input), where they would be trailing white space that
       transports may strip (rule 3 of RFC 2045 6.7).
    3. *Escapes.* Every other octet -- ``=``, controls, DEL, 8-bit octets, and a final
       space or tab -- becomes ``=XX`` with two upper-case hex digits.
    4. *Soft line breaks.* An output line holds at most 76 characters (CRLF excluded).
       The encoded octets of a line are laid out greedily: an octet's encoding (one
       character, or the three of an escape, never split) joins the current output
       line when the line then has at most 75 characters, or at most 76 when it is the
       last octet of its input line; otherwise a soft line break ``=`` CRLF ends the
       output line first (its ``=`` being the 76th character at most).

    The output is therefore plain ASCII with CRLF line ends, holds no line longer than
    76 characters, and never ends a line with a space or a tab. It decodes (e.g. with
    :func:`binascii.a2b_qp`) to the input with its line breaks made CRLF.

The input is ``bytes``, ``bytearray`` or ``memoryview`` (read as its bytes in C order,
whatever its format or shape); anything else raises :class:`TypeError`. An output too
large to allocate raises :class:`MemoryError`.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["qp_encode"]

#: The longest encoded line (RFC 2045 6.7 rule 5), CRLF excluded.
_MAX_LINE: Final = 76
#: The escape of every octet.
_ESCAPES: Final = tuple(b"=%02X" % octet for octet in range(256))
#: Octets that are not literal anywhere in a line (space and tab are literal inside).
_ESCAPED: Final = re.compile(rb"[^\x21-\x3c\x3e-\x7e \t]")
#: A hard line break: CRLF, or a bare CR or LF.
_LINE_BREAK: Final = re.compile(rb"\r\n|\r|\n")
_BINARY: Final = "bytes, bytearray or memoryview"


def _bytes_like(data: object) -> bytes | bytearray | memoryview:
    """``data`` as a C-contiguous buffer (a strided memoryview is copied); TypeError
    when it is not bytes-like."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, memoryview):
        return data if data.c_contiguous else data.tobytes()
    raise TypeError(f"qp_encode() argument must be {_BINARY}, not {type(data).__name__}")


def _escape(match: re.Match[bytes]) -> bytes:
    return _ESCAPES[match[0][0]]


def _encode_line(line: bytes) -> bytes:
    """One input line (no line break in it), its soft line breaks included."""
    encoded = _ESCAPED.sub(_escape, line)
    if encoded[-1:] in (b" ", b"\t"):
        encoded = encoded[:-1] + _ESCAPES[encoded[-1]]
    if len(encoded) <= _MAX_LINE:
        return encoded
    pieces = []
    start = 0
    # A line that needs a soft break holds at most 75 characters, then "=".
    while len(encoded) - start > _MAX_LINE:
        end = start + _MAX_LINE - 1
        # Never split an escape: "=" appears in the encoding only as an escape's start.
        if encoded[end - 1] == 0x3D:
            end -= 1
        elif encoded[end - 2] == 0x3D:
            end -= 2
        pieces.append(encoded[start:end])
        start = end
    pieces.append(encoded[start:])
    return b"=\r\n".join(pieces)


def qp_encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode text as quoted-printable with CRLF line ends (see the module docstring)."""
    raw = bytes(_bytes_like(data))
    return b"\r\n".join([_encode_line(line) for line in _LINE_BREAK.split(raw)])
