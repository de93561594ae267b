"""SMTP replies: the :class:`Response` value and the incremental :class:`ReplyParser`.

This is the pure-Python twin and the specification; ``_reply_c.pyx`` is its compiled twin
and must behave identically (same results, same exception classes, same messages).

Grammar (RFC 5321 4.2, strict)
------------------------------
A reply is one or more lines that all carry the same code. A line is three ASCII digits
``[2-5][0-5][0-9]`` followed by ``-`` (more lines follow), by SP and text (the last line),
or directly by CRLF (a last line with empty text: ``250\\r\\n``). Text may hold any byte
but CR, LF and NUL. Lines end with CRLF only.

Errors
------
The parser reads the stream byte by byte, conceptually, and reports the *first* offending
byte, so the error (and its message) does not depend on how the stream was chunked. At
each byte, in this order:

1. a byte past ``max_reply`` octets of the current reply: the reply is too long;
2. a byte past ``max_line`` octets of the current line: the line is too long;
3. the line's own grammar: a CR or LF among its first three bytes, or three bytes that
   are not a valid code (checked once three bytes are there): bad code; on a
   continuation line, a code other than the first line's: code mismatch; a fourth byte
   other than SP, ``-`` or CR: bad separator (an LF there is a bare LF); in the text, a
   NUL, a bare LF, or a CR whose next byte is not LF (a bare CR).

Limits are thus detected as soon as one byte too many is buffered: a server that sends
an endless line cannot make the parser hold more than ``max_line`` octets of it plus one
chunk (when the caller drains after every :meth:`ReplyParser.feed`).

Messages name the problem and where it is, counted from the start of the stream (lines
from 1, byte offsets from 0), e.g.
``malformed reply: bad code b'2x0' at line 3 (stream offset 41)``. They never depend on
the chunking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, NoReturn, final

from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["ReplyParser", "Response"]

_CR: Final = 0x0D
_LF: Final = 0x0A
_SP: Final = 0x20
_DASH: Final = 0x2D

#: The shortest reply line, ``250\r\n``, is the smallest limit that makes sense.
_LIMIT_MIN: Final = 5
#: Limits above 1 GiB are refused: they would not limit anything.
_LIMIT_MAX: Final = 1 << 30
#: ``repr()`` shows at most this many characters of the first line's text.
_REPR_TEXT: Final = 60

_UNUSABLE: Final = "reply parser is unusable after an earlier protocol error"

# A well-formed line (with its CRLF), and the bytes that end or spoil a line's text.
_LINE: Final = re.compile(rb"[2-5][0-5][0-9](?:[ -][^\r\n\x00]*)?\r\n")
_SPECIAL: Final = re.compile(rb"[\r\n\x00]")
# RFC 3463 status code at the start of a line's text: class.subject.detail, then SP or end.
_ENHANCED: Final = re.compile(r"([245])\.[0-9]{1,3}\.[0-9]{1,3}(?= |\Z)")

# What scanning a line found: a complete last line, a complete continuation line, the end of
# the bytes it may look at, or an error.
_FINAL: Final = 0
_MORE: Final = 1
_NEED: Final = 2
_BAD_CODE: Final = 3
_MISMATCH: Final = 4
_BAD_SEP: Final = 5
_BARE_LF: Final = 6
_BARE_CR: Final = 7
_NUL: Final = 8


def _reply_pattern(max_line: int) -> re.Pattern[bytes]:
    """A whole well-formed reply whose lines (CRLF included) are at most ``max_line``
    octets: lines of a code, ``-``, text and CRLF, then a last line of the same code, SP
    and text or nothing, and CRLF."""
    if max_line < 6:  # no room for a separator: only a bare last line fits
        return re.compile(rb"[2-5][0-5][0-9]\r\n")
    text = rb"[^\r\n\x00]{0,%d}" % (max_line - 6)
    return re.compile(rb"([2-5][0-5][0-9])(?:-%s\r\n\1)*(?: %s)?\r\n" % (text, text))


def _enhanced_len(code: int, text: str) -> int:
    """Length of the RFC 3463 code that starts ``text`` (its class must be the first digit
    of ``code``), or 0 when it does not start with one."""
    m = _ENHANCED.match(text)
    if m is None or int(m.group(1)) != code // 100:
        return 0
    return m.end()


def _strip_enhanced(code: int, text: str) -> str:
    """``text`` without the RFC 3463 code that starts it and the space after it."""
    size = _enhanced_len(code, text)
    return text[size + 1 :] if size else text


def _decode_lines(raw: bytes) -> tuple[str, ...]:
    """The text of each line of a well-formed reply: after the code and separator."""
    return tuple(line[4:].decode("utf-8", "replace") for line in raw[:-2].split(b"\r\n"))


@final
class Response:
    """One server reply: its code, its lines of text and its bytes as received.

    ``Response(code, lines=("",), *, raw=None)`` builds one (for tests and fakes): ``code``
    must be 200..559 with a middle digit 0..5, and no line may contain CR, LF or NUL
    (:class:`~smtpx.errors.InvalidInputError`). ``raw`` defaults to the wire form
    (``250-a\\r\\n250 b\\r\\n``). Replies parsed by :class:`ReplyParser` decode their
    lines only when first asked. Responses are immutable, compare and hash by
    ``(code, raw)``, and cannot be subclassed.
    """

    __slots__ = ("_code", "_lines", "_raw")

    _code: int
    _raw: bytes
    _lines: tuple[str, ...] | None

    def __init__(
        self, code: int, lines: Sequence[str] = ("",), *, raw: bytes | None = None
    ) -> None:
        if hasattr(self, "_raw"):
            raise AttributeError("Response is immutable")
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int, not {type(code).__name__}")
        if not 200 <= code <= 559 or code // 10 % 10 > 5:
            raise InvalidInputError(
                f"reply code must be 200..559 with a middle digit 0..5, not {code}"
            )
        if isinstance(lines, (str, bytes, bytearray)):
            raise TypeError(f"lines must be a sequence of str, not {type(lines).__name__}")
        texts = tuple(lines)
        if not texts:
            raise InvalidInputError("a reply has at least one line")
        wire = []
        for number, text in enumerate(texts, 1):
            if not isinstance(text, str):
                raise TypeError(
                    f"line {number} of the reply must be str, not {type(text).__name__}"
                )
            for char, name in (("\r", "CR"), ("\n", "LF"), ("\0", "NUL")):
                if char in text:
                    raise InvalidInputError(f"line {number} of the reply contains {name}")
            try:
                encoded = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInputError(f"line {number} of the reply is not valid UTF-8") from exc
            sep = b" " if number == len(texts) else b"-"
            wire.append(b"%d%s%s\r\n" % (code, sep, encoded))
        if raw is None:
            raw = b"".join(wire)
        elif not isinstance(raw, bytes):
            raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
        object.__setattr__(self, "_code", int(code))
        object.__setattr__(self, "_raw", bytes(raw))
        object.__setattr__(self, "_lines", texts)

    def __init_subclass__(cls) -> None:
        raise TypeError("Response cannot be subclassed")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Response is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Response is immutable")

    @property
    def code(self) -> int:
        """The three-digit reply code."""
        return self._code

    @property
    def lines(self) -> tuple[str, ...]:
        """The text of each line: after the code and its separator, without CRLF, decoded
        as UTF-8 (invalid bytes become U+FFFD). ``250`` and ``250 `` have text ``""``."""
        lines = self._lines
        if lines is None:
            lines = _decode_lines(self._raw)
            object.__setattr__(self, "_lines", lines)
        return lines

    @property
    def text(self) -> str:
        """The lines joined with ``"\\n"``."""
        return "\n".join(self.lines)

    @property
    def raw(self) -> bytes:
        """The bytes of the reply exactly as received, CRLFs included."""
        return self._raw

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 status code (``"2.1.0"``) that starts the first line's text, or None.

        It is ``class.subject.detail``: class 2, 4 or 5 and equal to the first digit of
        ``code``, subject and detail of 1 to 3 digits, then a space or the end of the line.
        """
        first = self.lines[0]
        size = _enhanced_len(self._code, first)
        return first[:size] if size else None

    @property
    def message(self) -> str:
        """``text`` without the enhanced status code (and the space after it) that starts
        each line carrying one."""
        return "\n".join(_strip_enhanced(self._code, line) for line in self.lines)

    @property
    def is_success(self) -> bool:
        """A 2yz reply: the command was accepted."""
        return self._code < 300

    @property
    def is_intermediate(self) -> bool:
        """A 3yz reply: the server waits for more (DATA, AUTH)."""
        return 300 <= self._code < 400

    @property
    def is_transient(self) -> bool:
        """A 4yz reply: the command failed; it may succeed later."""
        return 400 <= self._code < 500

    @property
    def is_permanent(self) -> bool:
        """A 5yz reply: the command failed and will fail again unchanged."""
        return self._code >= 500

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return self._code == other._code and self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self._code, self._raw))

    def __repr__(self) -> str:
        text = self.lines[0]
        if len(text) > _REPR_TEXT:
            text = text[: _REPR_TEXT - 3] + "..."
        return f"<Response {self._code} {text!r}>"

    def __reduce__(self) -> tuple[object, tuple[int, bytes, tuple[str, ...] | None]]:
        return _restore, (self._code, self._raw, self._lines)


_new_response = object.__new__
_set_slot = object.__setattr__


def _restore(code: int, raw: bytes, lines: tuple[str, ...] | None = None) -> Response:
    """A Response from fields already validated (by the parser, or before pickling);
    ``lines=None`` decodes them from ``raw`` when first asked."""
    response: Response = _new_response(Response)
    _set_slot(response, "_code", code)
    _set_slot(response, "_raw", raw)
    _set_slot(response, "_lines", lines)
    return response


def _check_limit(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not _LIMIT_MIN <= value <= _LIMIT_MAX:
        raise InvalidInputError(f"{name} must be {_LIMIT_MIN}..{_LIMIT_MAX}, not {value}")
    return int(value)


def _diagnose_line(buf: bytearray, ls: int, end: int, rs: int) -> tuple[int, int]:
    """Find what is wrong with the line that starts at ``buf[ls]``, looking at ``buf[ls:end]``
    only, when it is not a complete well-formed line there (``_LINE`` did not match it, or
    its code differs from its reply's first line's, at ``buf[rs:rs + 3]``).

    Returns ``(error kind, index)``: the offending byte, except for ``_BAD_CODE`` (the end
    of the code field, which starts at ``ls``) and ``_MISMATCH`` (``ls``); or
    ``(_NEED, end)`` when nothing is wrong yet and the line goes on past ``end``.
    """
    for j in range(ls, min(ls + 3, end)):
        if buf[j] in (_CR, _LF):
            return _BAD_CODE, j
    if end - ls < 3:
        return _NEED, end
    if not (
        0x32 <= buf[ls] <= 0x35 and 0x30 <= buf[ls + 1] <= 0x35 and 0x30 <= buf[ls + 2] <= 0x39
    ):
        return _BAD_CODE, ls + 3
    if ls != rs and buf[ls : ls + 3] != buf[rs : rs + 3]:
        return _MISMATCH, ls
    if end - ls == 3:
        return _NEED, end
    sep = buf[ls + 3]
    if sep in (_SP, _DASH):
        found = _SPECIAL.search(buf, ls + 4, end)
        if found is None:
            return _NEED, end
        cr = found.start()
        if buf[cr] == 0:
            return _NUL, cr
        if buf[cr] == _LF:
            return _BARE_LF, cr
    elif sep == _CR:
        cr = ls + 3
    elif sep == _LF:
        return _BARE_LF, ls + 3
    else:
        return _BAD_SEP, ls + 3
    if cr + 1 == end:
        return _NEED, end
    assert buf[cr + 1] != _LF, "a well-formed line is matched by _LINE"
    return _BARE_CR, cr


class ReplyParser:
    """Split a byte stream from an SMTP server into :class:`Response` objects (sans-IO).

    ``feed()`` the bytes as they arrive, then take the replies with ``next_reply()`` (one
    at a time) or ``replies()`` (all complete ones). ``max_line`` and ``max_reply`` cap a
    line (CRLF included) and a whole reply, in octets (5..2**30).

    A stream that breaks the grammar or a limit raises
    :class:`~smtpx.errors.ProtocolError` from ``next_reply()``/``replies()`` (never from
    ``feed()``): ``next_reply()`` raises as soon as the reply it would return is bad;
    ``replies()`` first returns every good reply that precedes the error, and raises it
    on the next call. After that, the parser is unusable: every later call raises
    ``ProtocolError("reply parser is unusable after an earlier protocol error")`` and
    ``feed()`` drops its data. Whatever the chunking of the stream, draining after each
    ``feed()`` yields the same replies and then the same error.
    """

    __slots__ = (
        "_buf",
        "_failure",
        "_line",
        "_lines_done",
        "_max_line",
        "_max_reply",
        "_nlines",
        "_offset",
        "_raised",
        "_reply",
        "_start",
    )

    def __init__(self, *, max_line: int = 8192, max_reply: int = 65536) -> None:
        self._max_line = _check_limit("max_line", max_line)
        self._max_reply = _check_limit("max_reply", max_reply)
        self._reply = _reply_pattern(self._max_line)
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]
        self._start = 0  # where the next reply starts in _buf
        self._line = 0  # where the next line of that reply to scan starts in _buf
        self._nlines = 0  # lines of that reply before _line
        self._lines_done = 0  # lines of the stream before _start
        self._failure: str | None = None  # the protocol error found, if any
        self._raised = False  # whether _failure was raised already

    def __reduce__(self) -> NoReturn:
        raise TypeError("a ReplyParser cannot be pickled or copied")

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the server. Nothing is parsed here."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"feed() takes bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        if self._failure is None:
            self._buf += data

    def next_reply(self) -> Response | None:
        """The next complete reply, or None until more bytes are fed.

        Raises ProtocolError as soon as that reply breaks the grammar or a limit.
        """
        self._check_usable()
        response = self._parse()
        self._compact()
        if response is None and self._failure is not None:
            self._raised = True
            raise ProtocolError(self._failure)
        return response

    def replies(self) -> list[Response]:
        """Every complete reply buffered now, in order (an empty list if none).

        Good replies that precede a protocol error are returned first; the error is raised
        by the next call (at once when no good reply precedes it).
        """
        self._check_usable()
        out = []
        while (response := self._parse()) is not None:
            out.append(response)
        self._compact()
        if not out and self._failure is not None:
            self._raised = True
            raise ProtocolError(self._failure)
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet returned as a reply: once drained, the bytes of a
        reply that is not complete yet."""
        return len(self._buf) - self._start

    def clear(self) -> int:
        """Drop every buffered byte that was not returned as a reply (at STARTTLS: data
        the server sent before TLS must not be trusted); return how many there were.

        Stream offsets and line numbers in later messages go on counting the dropped bytes.
        """
        dropped = self._buf[self._start :]
        self._lines_done += dropped.count(b"\n")
        if dropped and dropped[-1] != _LF:
            self._lines_done += 1  # a line begun and cut off
        self._offset += len(self._buf)
        self._buf.clear()
        self._start = self._line = self._nlines = 0
        return len(dropped)

    def _check_usable(self) -> None:
        if self._failure is not None:
            if self._raised:
                raise ProtocolError(_UNUSABLE)
            self._raised = True
            raise ProtocolError(self._failure)

    def _compact(self) -> None:
        """Release the bytes of the replies already returned."""
        start = self._start
        if start:
            del self._buf[:start]
            self._offset += start
            self._line -= start
            self._start = 0

    def _parse(self) -> Response | None:
        """The reply at ``_start`` if it is complete; None when it is not, or when it is
        bad (then ``_failure`` says why)."""
        if self._failure is not None:
            return None
        buf = self._buf
        n = len(buf)
        rs = self._start
        ls = self._line
        max_line = self._max_line
        reply_stop = rs + self._max_reply
        if ls == rs:  # a new reply: most are complete and well formed, in one match
            m = self._reply.match(buf, rs, reply_stop if reply_stop < n else n)
            if m is not None:
                raw = m.group()
                self._lines_done += raw.count(b"\n")
                self._start = self._line = m.end()
                return _restore(raw[0] * 100 + raw[1] * 10 + raw[2] - 0x30 * 111, raw)
        # Line by line: a reply not complete yet, or not well formed.
        while True:
            stop = ls + max_line if ls + max_line < reply_stop else reply_stop
            end = stop if stop < n else n
            m = _LINE.match(buf, ls, end)
            if m is not None and (ls == rs or buf[ls : ls + 3] == buf[rs : rs + 3]):
                kind = _MORE if buf[ls + 3] == _DASH else _FINAL
                at = m.end()
            else:
                kind, at = _diagnose_line(buf, ls, end, rs)
            if kind == _FINAL:
                code = buf[rs] * 100 + buf[rs + 1] * 10 + buf[rs + 2] - 0x30 * 111
                response = _restore(code, bytes(buf[rs:at]))
                self._lines_done += self._nlines + 1
                self._start = self._line = at
                self._nlines = 0
                return response
            if kind == _MORE:
                ls = at
                self._nlines += 1
            elif kind == _NEED and end == n:
                self._line = ls
                return None
            else:
                self._failure = self._describe(kind, at, ls, stop == reply_stop)
                return None

    def _describe(self, kind: int, at: int, ls: int, reply_limit: bool) -> str:
        """The message of an error of ``kind`` at ``buf[at]`` on the line at ``buf[ls]``."""
        buf = self._buf
        line = self._lines_done + self._nlines + 1
        if kind == _NEED:  # a byte past a limit is buffered
            what = (
                f"oversized reply: longer than {self._max_reply} octets"
                if reply_limit
                else f"oversized reply: line longer than {self._max_line} octets"
            )
        elif kind == _BAD_CODE:
            what = f"malformed reply: bad code {bytes(buf[ls:at])!r}"
            at = ls  # the code field starts the line
        elif kind == _MISMATCH:
            what = (
                f"malformed reply: code {bytes(buf[ls : ls + 3]).decode()} differs from "
                f"the reply's first code {bytes(buf[self._start : self._start + 3]).decode()}"
            )
        elif kind == _BAD_SEP:
            what = f"malformed reply: bad separator {bytes(buf[at : at + 1])!r} after the code"
        elif kind == _BARE_LF:
            what = "malformed reply: bare LF"
        elif kind == _BARE_CR:
            what = "malformed reply: bare CR"
        else:
            what = "malformed reply: NUL byte"
        return f"{what} at line {line} (stream offset {self._offset + at})"
