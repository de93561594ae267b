"""SMTP replies: the :class:`Response` value and the incremental :class:`ReplyParser`.

The compiled twin of ``_reply_py.py``, which is the specification (grammar, error order,
messages); both must behave identically. Here the stream lives in one C buffer, lines
are scanned with typed C loops, and a parsed reply costs one ``bytes`` object (its raw
form) and one :class:`Response`, whose lines are decoded only when first asked for.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy, memmove

from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["ReplyParser", "Response"]

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef enum:
    _CR = 0x0D
    _LF = 0x0A
    _SP = 0x20
    _DASH = 0x2D

# What _scan_line found (the same kinds as in _reply_py).
cdef enum:
    _FINAL
    _MORE
    _NEED
    _BAD_CODE
    _MISMATCH
    _BAD_SEP
    _BARE_LF
    _BARE_CR
    _NUL

cdef enum:
    _LIMIT_MIN = 5  # the shortest reply line, 250\r\n
    _LIMIT_MAX = 1 << 30  # larger limits would not limit anything
    _REPR_TEXT = 60  # repr() shows at most this many characters of the first line
    _KEEP_CAP = 1 << 16  # a drained buffer larger than this is given back

cdef str _UNUSABLE = "reply parser is unusable after an earlier protocol error"


# ---------------------------------------------------------------------------- Response
cdef Py_ssize_t _enhanced_len(int code, str text):
    """Length of the RFC 3463 code that starts ``text`` (its class must be the first digit
    of ``code``), or 0 when it does not start with one."""
    cdef Py_ssize_t n = len(text)
    cdef Py_ssize_t i = 1
    cdef Py_ssize_t first
    cdef int _
    cdef Py_UCS4 c
    if n < 5:
        return 0
    c = text[0]
    if c != <Py_UCS4>(0x30 + code // 100) or not (c == u"2" or c == u"4" or c == u"5"):
        return 0
    for _ in range(2):  # subject, then detail
        if i == n or text[i] != u".":
            return 0
        i += 1
        first = i
        while i < n and i - first <= 3 and u"0" <= text[i] <= u"9":
            i += 1
        if i == first or i - first > 3:
            return 0
    if i < n and text[i] != u" ":
        return 0
    return i


cdef str _strip_enhanced(int code, str text):
    """``text`` without the RFC 3463 code that starts it and the space after it."""
    cdef Py_ssize_t size = _enhanced_len(code, text)
    return text[size + 1:] if size else text


cdef tuple _decode_lines(bytes raw):
    """The text of each line of a well-formed reply: after the code and separator."""
    cdef list lines = raw[:len(raw) - 2].split(b"\r\n")
    return tuple([line[4:].decode("utf-8", "replace") for line in lines])


@cython.final
@cython.no_gc  # holds an int, a bytes and a tuple of str: it cannot be part of a cycle
cdef class Response:
    """One server reply: its code, its lines of text and its bytes as received.

    ``Response(code, lines=("",), *, raw=None)`` builds one (for tests and fakes): ``code``
    must be 200..559 with a middle digit 0..5, and no line may contain CR, LF or NUL
    (:class:`~smtpx.errors.InvalidInputError`). ``raw`` defaults to the wire form
    (``250-a\\r\\n250 b\\r\\n``). Replies parsed by :class:`ReplyParser` decode their
    lines only when first asked. Responses are immutable, compare and hash by
    ``(code, raw)``, and cannot be subclassed.
    """

    cdef int _code
    cdef bytes _raw
    cdef tuple _lines  # None until decoded from _raw

    def __init__(self, code, lines=("",), *, raw=None):
        if self._raw is not None:
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
                raise InvalidInputError(
                    f"line {number} of the reply is not valid UTF-8"
                ) from exc
            sep = b" " if number == len(texts) else b"-"
            wire.append(b"%d%s%s\r\n" % (code, sep, encoded))
        if raw is None:
            raw = b"".join(wire)
        elif not isinstance(raw, bytes):
            raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
        self._code = code
        self._raw = bytes(raw)
        self._lines = texts

    @property
    def code(self):
        """The three-digit reply code."""
        return self._code

    @property
    def lines(self):
        """The text of each line: after the code and its separator, without CRLF, decoded
        as UTF-8 (invalid bytes become U+FFFD). ``250`` and ``250 `` have text ``""``."""
        if self._lines is None:
            self._lines = _decode_lines(self._raw)
        return self._lines

    @property
    def text(self):
        """The lines joined with ``"\\n"``."""
        return "\n".join(self.lines)

    @property
    def raw(self):
        """The bytes of the reply exactly as received, CRLFs included."""
        return self._raw

    @property
    def enhanced_code(self):
        """The RFC 3463 status code (``"2.1.0"``) that starts the first line's text, or None.

        It is ``class.subject.detail``: class 2, 4 or 5 and equal to the first digit of
        ``code``, subject and detail of 1 to 3 digits, then a space or the end of the line.
        """
        cdef str first = self.lines[0]
        cdef Py_ssize_t size = _enhanced_len(self._code, first)
        return first[:size] if size else None

    @property
    def message(self):
        """``text`` without the enhanced status code (and the space after it) that starts
        each line carrying one."""
        return "\n".join([_strip_enhanced(self._code, line) for line in self.lines])

    @property
    def is_success(self):
        """A 2yz reply: the command was accepted."""
        return self._code < 300

    @property
    def is_intermediate(self):
        """A 3yz reply: the server waits for more (DATA, AUTH)."""
        return 300 <= self._code < 400

    @property
    def is_transient(self):
        """A 4yz reply: the command failed; it may succeed later."""
        return 400 <= self._code < 500

    @property
    def is_permanent(self):
        """A 5yz reply: the command failed and will fail again unchanged."""
        return self._code >= 500

    def __eq__(self, other):
        if not isinstance(other, Response):
            return NotImplemented
        return self._code == (<Response>other)._code and self._raw == (<Response>other)._raw

    def __hash__(self):
        return hash((self._code, self._raw))

    def __repr__(self):
        cdef str text = self.lines[0]
        if len(text) > _REPR_TEXT:
            text = text[:_REPR_TEXT - 3] + "..."
        return f"<Response {self._code} {text!r}>"

    def __reduce__(self):
        return _restore, (self._code, self._raw, self._lines)


def _restore(int code, bytes raw, tuple lines=None):
    """A Response from fields already validated (before pickling); ``lines=None`` decodes
    them from ``raw`` when first asked."""
    cdef Response response = Response.__new__(Response)
    response._code = code
    response._raw = raw
    response._lines = lines
    return response


# ---------------------------------------------------------------------------- parser
def _check_limit(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not _LIMIT_MIN <= value <= _LIMIT_MAX:
        raise InvalidInputError(f"{name} must be {_LIMIT_MIN}..{_LIMIT_MAX}, not {value}")
    return int(value)


cdef inline bint _is_code(const unsigned char* p) noexcept nogil:
    """``p[0:3]`` is a reply code: ``[2-5][0-5][0-9]``."""
    return 0x32 <= p[0] <= 0x35 and 0x30 <= p[1] <= 0x35 and 0x30 <= p[2] <= 0x39


cdef inline int _scan_line(
    const unsigned char* b, Py_ssize_t ls, Py_ssize_t end, Py_ssize_t rs, Py_ssize_t* at
) noexcept nogil:
    """Scan the line that starts at ``b[ls]``, looking at ``b[ls:end]`` only.

    ``rs`` is where its reply starts. Returns ``_FINAL`` or ``_MORE`` with ``at`` = the end
    of the line, ``_NEED`` with ``at`` = ``end`` when the line goes on past ``end``, or an
    error kind with ``at`` = the offending byte, except for ``_BAD_CODE`` (the end of the
    code field, which starts at ``ls``) and ``_MISMATCH`` (``ls``).
    """
    cdef Py_ssize_t i
    cdef unsigned char c, sep
    if end - ls < 3 or not _is_code(b + ls):
        i = ls
        while i < end and i < ls + 3:
            if b[i] == _CR or b[i] == _LF:
                at[0] = i
                return _BAD_CODE
            i += 1
        if end - ls < 3:
            at[0] = end
            return _NEED
        at[0] = ls + 3
        return _BAD_CODE
    if ls != rs and (b[ls] != b[rs] or b[ls + 1] != b[rs + 1] or b[ls + 2] != b[rs + 2]):
        at[0] = ls
        return _MISMATCH
    if end - ls == 3:
        at[0] = end
        return _NEED
    sep = b[ls + 3]
    if sep == _SP or sep == _DASH:
        i = ls + 4
        while i < end:
            c = b[i]
            if c <= _CR:  # the bytes that end or spoil a line are all <= CR
                if c == _CR:
                    break
                if c == _LF:
                    at[0] = i
                    return _BARE_LF
                if c == 0:
                    at[0] = i
                    return _NUL
            i += 1
        else:
            at[0] = end
            return _NEED
    elif sep == _CR:
        i = ls + 3
    elif sep == _LF:
        at[0] = ls + 3
        return _BARE_LF
    else:
        at[0] = ls + 3
        return _BAD_SEP
    # b[i] is the CR that should end the line
    if i + 1 == end:
        at[0] = end
        return _NEED
    if b[i + 1] != _LF:
        at[0] = i
        return _BARE_CR
    at[0] = i + 2
    return _MORE if sep == _DASH else _FINAL


cdef class ReplyParser:
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

    cdef unsigned char* _data  # the buffer: _cap bytes, of which _len are in use
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len
    cdef Py_ssize_t _start  # where the next reply starts in _data
    cdef Py_ssize_t _line  # where the next line of that reply to scan starts in _data
    cdef Py_ssize_t _nlines  # lines of that reply before _line
    cdef Py_ssize_t _max_line
    cdef Py_ssize_t _max_reply
    cdef uint64_t _offset  # stream offset of _data[0]
    cdef uint64_t _lines_done  # lines of the stream before _start
    cdef str _failure  # the protocol error found, if any
    cdef bint _raised  # whether _failure was raised already

    def __init__(self, *, max_line=8192, max_reply=65536):
        self._max_line = _check_limit("max_line", max_line)
        self._max_reply = _check_limit("max_reply", max_reply)
        self._len = self._start = self._line = self._nlines = 0
        self._offset = self._lines_done = 0
        self._failure = None
        self._raised = False

    def __dealloc__(self):
        PyMem_Free(self._data)

    def __reduce__(self):
        raise TypeError("a ReplyParser cannot be pickled or copied")

    def feed(self, data):
        """Append bytes received from the server. Nothing is parsed here."""
        cdef Py_buffer view
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"feed() takes bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        if self._failure is not None:
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._append(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def next_reply(self):
        """The next complete reply, or None until more bytes are fed.

        Raises ProtocolError as soon as that reply breaks the grammar or a limit.
        """
        self._check_usable()
        response = self._parse()
        self._release()
        if response is None and self._failure is not None:
            self._raised = True
            raise ProtocolError(self._failure)
        return response

    def replies(self):
        """Every complete reply buffered now, in order (an empty list if none).

        Good replies that precede a protocol error are returned first; the error is raised
        by the next call (at once when no good reply precedes it).
        """
        cdef list out = []
        cdef Response response
        self._check_usable()
        while True:
            response = self._parse()
            if response is None:
                break
            out.append(response)
        self._release()
        if not out and self._failure is not None:
            self._raised = True
            raise ProtocolError(self._failure)
        return out

    @property
    def pending(self):
        """Bytes buffered and not yet returned as a reply: once drained, the bytes of a
        reply that is not complete yet."""
        return self._len - self._start

    def clear(self):
        """Drop every buffered byte that was not returned as a reply (at STARTTLS: data
        the server sent before TLS must not be trusted); return how many there were.

        Stream offsets and line numbers in later messages go on counting the dropped bytes.
        """
        cdef Py_ssize_t dropped = self._len - self._start
        cdef const unsigned char* p = self._data + self._start
        cdef const unsigned char* stop = self._data + self._len
        while dropped and p != stop:
            p = <const unsigned char*>memchr(p, _LF, stop - p)
            if p == NULL:  # a line begun and cut off
                self._lines_done += 1
                break
            self._lines_done += 1
            p += 1
        self._start = self._len
        self._release()
        return dropped

    cdef int _check_usable(self) except -1:
        if self._failure is not None:
            if self._raised:
                raise ProtocolError(_UNUSABLE)
            self._raised = True
            raise ProtocolError(self._failure)
        return 0

    cdef int _append(self, const unsigned char* src, Py_ssize_t n) except -1:
        """Append ``src[:n]``, first moving the unread bytes to the front of the buffer."""
        cdef Py_ssize_t keep = self._len - self._start
        cdef Py_ssize_t need, cap
        cdef unsigned char* data
        if n == 0:
            return 0
        if self._start:
            memmove(self._data, self._data + self._start, keep)
            self._offset += <uint64_t>self._start
            self._line -= self._start
            self._start = 0
            self._len = keep
        if n > PY_SSIZE_T_MAX - keep:
            raise MemoryError()
        need = keep + n
        if need > self._cap:  # grow geometrically
            cap = self._cap * 2 if self._cap < PY_SSIZE_T_MAX // 2 else need
            cap = max(cap, need, 1024)
        elif self._cap > _KEEP_CAP and need <= self._cap // 4:  # give back what is unused
            cap = max(need, <Py_ssize_t>_KEEP_CAP)
        else:
            cap = self._cap
        if cap != self._cap:
            data = <unsigned char*>PyMem_Realloc(self._data, <size_t>cap)
            if data == NULL:
                raise MemoryError()
            self._data = data
            self._cap = cap
        memcpy(self._data + keep, src, <size_t>n)
        self._len = need
        return 0

    cdef void _release(self) noexcept:
        """Once every buffered byte is consumed, empty the buffer (and free a large one)."""
        if self._start != self._len:
            return
        self._offset += <uint64_t>self._len
        self._len = self._start = self._line = self._nlines = 0
        if self._cap > _KEEP_CAP:
            PyMem_Free(self._data)
            self._data = NULL
            self._cap = 0

    cdef Response _parse(self):
        """The reply at ``_start`` if it is complete; None when it is not, or when it is
        bad (then ``_failure`` says why)."""
        cdef const unsigned char* b = self._data
        cdef Py_ssize_t n = self._len
        cdef Py_ssize_t rs = self._start
        cdef Py_ssize_t ls = self._line
        cdef Py_ssize_t reply_room, room, end, at
        cdef int kind
        cdef Response response
        if self._failure is not None:
            return None
        while True:
            # how far this line may go: the first byte past a limit is an error
            reply_room = self._max_reply - (ls - rs)
            room = reply_room if reply_room < self._max_line else self._max_line
            end = ls + room if room < n - ls else n
            kind = _scan_line(b, ls, end, rs, &at)
            if kind == _FINAL:
                response = Response.__new__(Response)
                response._code = (b[rs] - 0x30) * 100 + (b[rs + 1] - 0x30) * 10 + b[rs + 2] - 0x30
                response._raw = PyBytes_FromStringAndSize(<const char*>b + rs, at - rs)
                self._lines_done += <uint64_t>self._nlines + 1
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
                self._failure = self._describe(kind, at, ls, reply_room <= self._max_line)
                return None

    cdef str _describe(self, int kind, Py_ssize_t at, Py_ssize_t ls, bint reply_limit):
        """The message of an error of ``kind`` at ``_data[at]`` on the line at ``_data[ls]``."""
        cdef const char* b = <const char*>self._data
        line = self._lines_done + self._nlines + 1
        if kind == _NEED:  # a byte past a limit is buffered
            if reply_limit:
                what = f"oversized reply: longer than {self._max_reply} octets"
            else:
                what = f"oversized reply: line longer than {self._max_line} octets"
        elif kind == _BAD_CODE:
            what = f"malformed reply: bad code {PyBytes_FromStringAndSize(b + ls, at - ls)!r}"
            at = ls  # the code field starts the line
        elif kind == _MISMATCH:
            what = (
                f"malformed reply: code {PyBytes_FromStringAndSize(b + ls, 3).decode()} "
                f"differs from the reply's first code "
                f"{PyBytes_FromStringAndSize(b + self._start, 3).decode()}"
            )
        elif kind == _BAD_SEP:
            what = (
                f"malformed reply: bad separator {PyBytes_FromStringAndSize(b + at, 1)!r} "
                f"after the code"
            )
        elif kind == _BARE_LF:
            what = "malformed reply: bare LF"
        elif kind == _BARE_CR:
            what = "malformed reply: bare CR"
        else:
            what = "malformed reply: NUL byte"
        return f"{what} at line {line} (stream offset {self._offset + <uint64_t>at})"
