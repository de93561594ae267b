"""The command writer: SMTP commands and message data queued into one write buffer.

The compiled twin of ``_writer_py``, which is the specification: read its docstring for
the contract. This twin must behave identically -- same bytes, same exception classes,
same messages -- and checks and writes in the same order.

How it is fast: a command is validated by C loops over the ``str`` argument's own
storage (``PyUnicode_DATA``; no encoding, no copies) while it is written straight into a
growable C buffer (``PyMem_Malloc``, 1 KiB to start, doubled as needed, kept across
``take``/``clear`` up to 64 KiB), past the end of what is queued. Only when every check
has passed does the buffer's length move to include the new line, so a refused command
leaves the queue as it was. Python objects are made on error paths and at ``chunks``
(one ``bytes`` per segment), not per command.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_CheckExact, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport (
    PyUnicode_CheckExact,
    PyUnicode_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_KIND,
    PyUnicode_READ,
)
from libc.string cimport memcpy

import ipaddress
from collections.abc import Sequence

from smtpx.errors import InvalidInputError

cdef extern from *:
    """
    #if PY_VERSION_HEX < 0x030C0000
    #define smtpx_unicode_ready(op) PyUnicode_READY(op)
    #else
    #define smtpx_unicode_ready(op) 0
    #endif
    """
    int smtpx_unicode_ready(object) except -1
    bint PyUnicode_IS_ASCII(object)

__all__ = ["CommandBuffer"]

# The limits, with the reasons, are those of _writer_py.
_MAX_SIZE = 2**63 - 1
_COPY_THRESHOLD = 16384

cdef enum:
    _MAX_ADDRESS = 254
    _MAX_LOCAL_PART = 64
    _MAX_DOMAIN = 255
    _MAX_LABEL = 63
    _MAX_ENVID = 100
    _MAX_MECHANISM = 20
    _MAX_LINE = 512
    _MAX_PARAMETER_LINE = 2048
    _MAX_AUTH_LINE = 12288
    # The C buffer: its first size, and the most that clear() keeps allocated.
    _INITIAL_CAPACITY = 1024
    _RETAINED_CAPACITY = 65536

# How a text argument may use non-ASCII characters (see _scan).
cdef enum:
    _ASCII = 0  # refused
    _ASCII_UNLESS_SMTPUTF8 = 1  # refused, and the message says SMTPUTF8 would allow it
    _UTF8 = 2  # allowed (sent as UTF-8)

# Classes of ASCII characters, as bits of _CLASS[c].
cdef enum:
    _ATEXT = 1  # RFC 5321 atext
    _LDH = 2  # letter, digit, hyphen
    _MECHANISM = 4  # SASL mechanism name
    _BASE64 = 8  # base64 alphabet, without "="
    _XCHAR = 16  # written as itself in xtext (RFC 3461 4)
    _QCHAR = 32  # written as itself in utf-8-addr-xtext (RFC 6533 3)

# Keyword arguments of MAIL and RCPT that set a parameter, as bits of a mask.
cdef enum:
    _SET_SIZE = 1
    _SET_BODY = 2
    _SET_SMTPUTF8 = 4
    _SET_RET = 8
    _SET_ENVID = 16
    _SET_REQUIRETLS = 32
    _SET_NOTIFY = 64
    _SET_ORCPT = 128

cdef unsigned char _CLASS[128]


cdef const char* _HEX_DIGITS = b"0123456789ABCDEF"


cdef void _mark(const char* chars, unsigned char flag) noexcept:
    while chars[0]:
        _CLASS[<unsigned char>chars[0]] |= flag
        chars += 1


cdef void _classify() noexcept:
    cdef int c
    _mark(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
          _ATEXT | _LDH | _MECHANISM | _BASE64)
    _mark(b"!#$%&'*+-/=?^_`{|}~", _ATEXT)
    _mark(b"-", _LDH | _MECHANISM)
    _mark(b"_", _MECHANISM)
    _mark(b"+/", _BASE64)
    for c in range(33, 127):
        if c != 0x2B and c != 0x3D:  # "+", "="
            _CLASS[c] |= _XCHAR | (_QCHAR if c != 0x5C else 0)  # "\"


_classify()

_C0_NAMES = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT",
    "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
    "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
)
_IPV4_CHARS = frozenset("0123456789.")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_BODY_VALUES = ("7BIT", "8BITMIME", "BINARYMIME")
_RET_VALUES = ("FULL", "HDRS")
_NOTIFY_VALUES = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
# Keywords that MAIL/RCPT keyword arguments set: (bit, argument name).
_SET_BY = {
    "SIZE": (_SET_SIZE, "size"),
    "BODY": (_SET_BODY, "body"),
    "SMTPUTF8": (_SET_SMTPUTF8, "smtputf8"),
    "RET": (_SET_RET, "ret"),
    "ENVID": (_SET_ENVID, "envid"),
    "REQUIRETLS": (_SET_REQUIRETLS, "requiretls"),
    "NOTIFY": (_SET_NOTIFY, "notify"),
    "ORCPT": (_SET_ORCPT, "orcpt"),
}


# ---------------------------------------------------------------- text access
# A code point as a plain integer (Cython treats Py_UCS4 as a character, not a number).
ctypedef unsigned int codepoint

cdef struct Text:
    void* data
    Py_ssize_t length
    int kind
    bint ascii


cdef inline int _view(str text, Text* t) except -1:
    smtpx_unicode_ready(text)
    t.data = PyUnicode_DATA(text)
    t.length = PyUnicode_GET_LENGTH(text)
    t.kind = PyUnicode_KIND(text)
    t.ascii = PyUnicode_IS_ASCII(text)
    return 0


cdef inline codepoint _at(const Text* t, Py_ssize_t i) noexcept:
    return <codepoint>PyUnicode_READ(t.kind, t.data, i)


cdef inline bint _in(codepoint c, unsigned char cls) noexcept:
    """``c`` is ASCII and of class ``cls``."""
    return c < 128 and (_CLASS[c] & cls) != 0


cdef Py_ssize_t _octets(const Text* t, Py_ssize_t start, Py_ssize_t end) noexcept:
    """Length of ``text[start:end]`` in UTF-8 (surrogates were refused by _scan)."""
    if t.ascii:
        return end - start
    cdef Py_ssize_t n = 0
    cdef codepoint c
    for i in range(start, end):
        c = _at(t, i)
        n += 1 if c < 0x80 else 2 if c < 0x800 else 3 if c < 0x10000 else 4
    return n


cdef inline bint _upper_equals(const Text* t, str word) noexcept:
    """``text.upper() == word`` for ASCII ``text`` and upper-case ASCII ``word``."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(word)
    cdef const unsigned char* w = <const unsigned char*>PyUnicode_DATA(word)
    cdef const unsigned char* s = <const unsigned char*>t.data
    cdef unsigned char c
    if not t.ascii or t.length != n:
        return False
    for i in range(n):
        c = s[i]
        if 0x61 <= c <= 0x7A:
            c -= 0x20
        if c != w[i]:
            return False
    return True


# ---------------------------------------------------------------- checks
cdef inline str _text(object value, str what):
    """``value`` as an exact ``str`` (a subclass is read by its stored value)."""
    if PyUnicode_CheckExact(value):
        return <str>value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return str.__str__(value)


cdef inline bytes _bytes(object value, str what):
    """``value`` as an exact ``bytes`` (a subclass is read by its stored value)."""
    if PyBytes_CheckExact(value):
        return <bytes>value
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(memoryview(value))


cdef long long _integer(object value, str what) except -1:
    """``value`` as an int in ``0..2**63-1``."""
    cdef int overflow
    cdef long long number
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    number = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow < 0 or (overflow == 0 and number < 0):
        raise InvalidInputError(f"{what} must not be negative")
    if overflow > 0:
        raise InvalidInputError(f"{what} is too large (the limit is {_MAX_SIZE})")
    return number


cdef str _control_name(long code):
    if code < 0x20:
        return _C0_NAMES[code]
    return "DEL" if code == 0x7F else f"U+{code:04X}"


cdef inline bint _is_control(codepoint c) noexcept:
    return c < 0x20 or 0x7F <= c <= 0x9F or c == 0x2028 or c == 0x2029


cdef int _scan(const Text* t, str text, str what, int mode) except -1:
    """Refuse the first control, separator, surrogate, or non-ASCII character (by mode)."""
    cdef const unsigned char* s
    cdef codepoint c
    cdef Py_ssize_t i
    if t.ascii:
        s = <const unsigned char*>t.data
        for i in range(t.length):
            if s[i] < 0x20 or s[i] == 0x7F:
                break
        else:
            return 0
    else:
        for i in range(t.length):
            c = _at(t, i)
            if _is_control(c) or (c >= 0x80 and (mode != _UTF8 or 0xD800 <= c <= 0xDFFF)):
                break
        else:
            return 0
    c = _at(t, i)
    if _is_control(c):
        raise InvalidInputError(
            f"{what} contains a control character ({_control_name(c)}) at index {i}"
        )
    if mode == _UTF8:
        raise InvalidInputError(f"{what} contains a surrogate (U+{c:04X}) at index {i}")
    hint = ", which requires SMTPUTF8" if mode == _ASCII_UNLESS_SMTPUTF8 else ""
    raise InvalidInputError(f"{what} contains a non-ASCII character at index {i}{hint}")


cdef str _choice(object value, str what, tuple choices):
    """One of ``choices``, ASCII case-insensitively, upper-cased."""
    cdef Text t
    text = _text(value, what)
    _view(text, &t)
    for choice in choices:
        if _upper_equals(&t, choice):
            return choice
    _scan(&t, text, what, _ASCII)
    cdef Py_ssize_t last = len(choices) - 1
    raise InvalidInputError(f"{what} must be {', '.join(choices[:last])} or {choices[last]}")


cdef bint _address_literal(str literal) except -1:
    """``[IPv4]`` or ``[IPv6:addr]`` (RFC 5321 4.1.3); general literals are refused."""
    cdef Py_ssize_t end = len(literal) - 1
    if end < 2 or literal[end] != "]":
        return False
    inner = literal[1:end]
    tag = inner[:5]
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


cdef int _domain(const Text* t, str text, Py_ssize_t start, str what) except -1:
    """Check ``text[start:]``: LDH labels (non-ASCII allowed if it passed the scan) or a
    bracketed address literal."""
    cdef Py_ssize_t end = t.length, label = start, index
    cdef codepoint c
    if start == end:
        raise InvalidInputError(f"{what} domain is empty")
    if _at(t, start) == 0x5B:  # "["
        if not _address_literal(text[start:]):
            raise InvalidInputError(f"{what} has an invalid address literal at index {start}")
        return 0
    for index in range(start, end + 1):
        c = _at(t, index) if index < end else 0x2E
        if c == 0x2E:  # "."
            if index == label:
                raise InvalidInputError(f"{what} has an empty domain label at index {index}")
            if _at(t, label) == 0x2D:  # "-"
                raise InvalidInputError(
                    f"{what} has a domain label starting with '-' at index {label}"
                )
            if _at(t, index - 1) == 0x2D:
                raise InvalidInputError(
                    f"{what} has a domain label ending with '-' at index {index - 1}"
                )
            if _octets(t, label, index) > _MAX_LABEL:
                raise InvalidInputError(
                    f"{what} has a domain label longer than {_MAX_LABEL} octets at index {label}"
                )
            label = index + 1
        elif c < 0x80 and not _in(c, _LDH):
            raise InvalidInputError(
                f"{what} contains {text[index]!r} at index {index}, "
                "which is not allowed in a domain"
            )
    return 0


cdef Py_ssize_t _closing_quote(const Text* t, str what) except -1:
    """The index of the quote that closes the quoted-string opened at ``text[0]``."""
    cdef Py_ssize_t end = t.length, index = 1
    cdef codepoint c
    while index < end:
        c = _at(t, index)
        if c == 0x22:  # '"'
            return index
        if c == 0x5C:  # "\"
            if index + 1 < end and _at(t, index + 1) > 0x7E:
                raise InvalidInputError(f"{what} has an invalid escape at index {index}")
            index += 2
        else:
            index += 1
    raise InvalidInputError(f"{what} has an unterminated quoted local part")


cdef Py_ssize_t _local_part(const Text* t, str text, str what) except -1:
    """Check the local part at the start of ``text``; return the index of its ``@``."""
    cdef Py_ssize_t at = -1, end, index
    cdef codepoint c
    if _at(t, 0) == 0x22:
        at = _closing_quote(t, what) + 1
        if at == t.length:
            raise InvalidInputError(f"{what} has no '@' (expected local@domain)")
        if _at(t, at) != 0x40:
            raise InvalidInputError(
                f"{what} has {text[at]!r} at index {at} where '@' should follow the quotes"
            )
        return at
    for index in range(t.length):
        if _at(t, index) == 0x40:  # "@"
            at = index
            break
    end = t.length if at < 0 else at
    for index in range(end):
        c = _at(t, index)
        if c == 0x2E:
            if index == 0 or _at(t, index - 1) == 0x2E:
                raise InvalidInputError(f"{what} has a misplaced '.' at index {index}")
        elif c < 0x80 and not _in(c, _ATEXT):
            raise InvalidInputError(
                f"{what} contains {text[index]!r} at index {index}, "
                "which is not allowed in an unquoted local part"
            )
    if at < 0:
        raise InvalidInputError(f"{what} has no '@' (expected local@domain)")
    if at == 0:
        raise InvalidInputError(f"{what} local part is empty")
    if _at(t, at - 1) == 0x2E:
        raise InvalidInputError(f"{what} has a misplaced '.' at index {at - 1}")
    return at


cdef str _address(object value, str what, bint smtputf8, bint null, bint postmaster):
    """A validated mailbox (see _writer_py), returned as an exact ``str``."""
    cdef Text t
    cdef Py_ssize_t octets, at
    text = _text(value, what)
    _view(text, &t)
    if t.length == 0:
        if null:
            return text
        raise InvalidInputError(f"{what} is empty")
    _scan(&t, text, what, _UTF8 if smtputf8 else _ASCII_UNLESS_SMTPUTF8)
    if postmaster and _upper_equals(&t, "POSTMASTER"):
        return text
    octets = _octets(&t, 0, t.length)
    if octets > _MAX_ADDRESS:
        raise InvalidInputError(
            f"{what} is too long ({octets} octets; the limit is {_MAX_ADDRESS})"
        )
    at = _local_part(&t, text, what)
    octets = _octets(&t, 0, at)
    if octets > _MAX_LOCAL_PART:
        raise InvalidInputError(
            f"{what} local part is too long ({octets} octets; the limit is {_MAX_LOCAL_PART})"
        )
    _domain(&t, text, at + 1, what)
    return text


cdef str _hello_name(object value, str what):
    """A domain or an address literal, ASCII only (an IDN goes as its A-labels)."""
    cdef Text t
    name = _text(value, what)
    _view(name, &t)
    if t.length == 0:
        raise InvalidInputError(f"{what} is empty")
    _scan(&t, name, what, _ASCII)
    if t.length > _MAX_DOMAIN:
        raise InvalidInputError(
            f"{what} is too long ({t.length} octets; the limit is {_MAX_DOMAIN})"
        )
    _domain(&t, name, 0, what)
    return name


cdef object _sequence(object value, str what):
    if type(value) is tuple or type(value) is list:
        return value
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence of str, not {type(value).__name__}")
    return value


cdef int _check_base64(bytes data, str what) except -1:
    """Refuse anything but canonical base64 text (RFC 4648 4, padded). The messages give
    positions only: this is credential material."""
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data), index
    for index in range(end):
        if s[index] == 0x3D:  # "=": only as the last one or two bytes
            if index != end - 1 and not (index == end - 2 and s[end - 1] == 0x3D):
                raise InvalidInputError(f"{what} has misplaced '=' padding at index {index}")
        elif not _in(s[index], _BASE64):
            raise InvalidInputError(
                f"{what} contains a byte outside the base64 alphabet at index {index}"
            )
    if end % 4:
        raise InvalidInputError(f"{what} is not valid base64 (its length is not a multiple of 4)")
    return 0


cdef str _mechanism(object value):
    what = "AUTH mechanism"
    cdef Text t
    cdef Py_ssize_t index
    mechanism = _text(value, what)
    _view(mechanism, &t)
    _scan(&t, mechanism, what, _ASCII)
    if t.length == 0:
        raise InvalidInputError(f"{what} is empty")
    if t.length > _MAX_MECHANISM:
        raise InvalidInputError(
            f"{what} is too long ({t.length} octets; the limit is {_MAX_MECHANISM})"
        )
    for index in range(t.length):
        if not _in(_at(&t, index), _MECHANISM):
            raise InvalidInputError(
                f"{what} contains {mechanism[index]!r} at index {index} "
                "(expected A-Z, 0-9, '-' or '_')"
            )
    return mechanism


# ---------------------------------------------------------------- the buffer
cdef class CommandBuffer:
    """SMTP commands and message data, queued in order to leave in one write.

    Every method validates all its arguments before it appends anything (see
    ``_writer_py``); :meth:`chunks` / :meth:`take` hand the queued bytes to the transport.
    """

    cdef char* _buf  # the open segment; bytes past _used are scratch
    cdef Py_ssize_t _used
    cdef Py_ssize_t _capacity
    cdef list _pieces  # closed segments: bytes, and memoryviews of referenced bodies
    cdef Py_ssize_t _closed  # bytes in _pieces
    cdef long long _copy_threshold
    cdef Py_ssize_t _commands

    def __cinit__(self):
        self._buf = <char*>PyMem_Malloc(_INITIAL_CAPACITY)
        if self._buf is NULL:
            raise MemoryError()
        self._capacity = _INITIAL_CAPACITY
        self._pieces = []

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def __init__(self, *, copy_threshold=_COPY_THRESHOLD):
        """``copy_threshold``: bodies of at least this many bytes are kept by reference
        (a ``memoryview``) instead of copied; 0 keeps every non-empty body by reference."""
        self._copy_threshold = _integer(copy_threshold, "copy_threshold")
        self.clear()

    def __reduce__(self):
        raise TypeError("CommandBuffer cannot be pickled or copied")

    # ------------------------------------------------------------ writing
    cdef int _grow(self, Py_ssize_t needed) except -1:
        cdef Py_ssize_t capacity = self._capacity * 2
        if capacity < needed:
            capacity = needed
        cdef char* buf = <char*>PyMem_Realloc(self._buf, capacity)
        if buf is NULL:
            raise MemoryError()
        self._buf = buf
        self._capacity = capacity
        return 0

    cdef inline Py_ssize_t _put(self, Py_ssize_t pos, const char* data, Py_ssize_t n) except -1:
        if pos + n > self._capacity:
            self._grow(pos + n)
        memcpy(self._buf + pos, data, n)
        return pos + n

    cdef inline Py_ssize_t _put_bytes(self, Py_ssize_t pos, bytes data) except -1:
        return self._put(pos, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef Py_ssize_t _put_text(self, Py_ssize_t pos, str text) except -1:
        """``text`` in UTF-8 (surrogates were refused by _scan)."""
        cdef Text t
        cdef codepoint c
        cdef unsigned char* out
        _view(text, &t)
        if t.ascii:
            return self._put(pos, <const char*>t.data, t.length)
        if pos + 4 * t.length > self._capacity:
            self._grow(pos + 4 * t.length)
        out = <unsigned char*>self._buf
        for i in range(t.length):
            c = _at(&t, i)
            if c < 0x80:
                out[pos] = <unsigned char>c
                pos += 1
            elif c < 0x800:
                out[pos] = <unsigned char>(0xC0 | (c >> 6))
                out[pos + 1] = <unsigned char>(0x80 | (c & 0x3F))
                pos += 2
            elif c < 0x10000:
                out[pos] = <unsigned char>(0xE0 | (c >> 12))
                out[pos + 1] = <unsigned char>(0x80 | ((c >> 6) & 0x3F))
                out[pos + 2] = <unsigned char>(0x80 | (c & 0x3F))
                pos += 3
            else:
                out[pos] = <unsigned char>(0xF0 | (c >> 18))
                out[pos + 1] = <unsigned char>(0x80 | ((c >> 12) & 0x3F))
                out[pos + 2] = <unsigned char>(0x80 | ((c >> 6) & 0x3F))
                out[pos + 3] = <unsigned char>(0x80 | (c & 0x3F))
                pos += 4
        return pos

    cdef Py_ssize_t _put_decimal(self, Py_ssize_t pos, unsigned long long number) except -1:
        cdef char digits[20]
        cdef int start = 20
        while True:
            start -= 1
            digits[start] = <char>(0x30 + number % 10)
            number //= 10
            if number == 0:
                break
        return self._put(pos, digits + start, 20 - start)

    cdef Py_ssize_t _put_hex(self, Py_ssize_t pos, codepoint c, bint minimal) except -1:
        """``c`` in upper-case hex: two digits, or (``minimal``) as few as it needs."""
        cdef char digits[8]
        cdef int start = 8
        while True:
            start -= 1
            digits[start] = _HEX_DIGITS[c & 0xF]
            c >>= 4
            if c == 0 and (minimal or start <= 6):
                break
        return self._put(pos, digits + start, 8 - start)

    cdef Py_ssize_t _put_xtext(self, Py_ssize_t pos, const Text* t) except -1:
        """RFC 3461 4 xtext of ASCII text: "+HH" outside 33..126 and for "+", "="."""
        cdef unsigned char c
        for i in range(t.length):
            c = (<const unsigned char*>t.data)[i]
            if _CLASS[c] & _XCHAR:
                pos = self._put(pos, <const char*>&c, 1)
            else:
                pos = self._put(pos, b"+", 1)
                pos = self._put_hex(pos, c, False)
        return pos

    cdef Py_ssize_t _put_addr_xtext(self, Py_ssize_t pos, const Text* t) except -1:
        """RFC 6533 3 utf-8-addr-xtext: non-ASCII and xtext specials as ``\\x{HEX}``."""
        cdef codepoint c
        cdef char ascii
        for i in range(t.length):
            c = _at(t, i)
            if _in(c, _QCHAR):
                ascii = <char>c
                pos = self._put(pos, &ascii, 1)
            else:
                pos = self._put(pos, b"\\x{", 3)
                pos = self._put_hex(pos, c, True)
                pos = self._put(pos, b"}", 1)
        return pos

    cdef Py_ssize_t _put_parameters(
        self, Py_ssize_t pos, object value, str verb, bint smtputf8, int taken
    ) except -1:
        """Check and write custom ``KEYWORD`` / ``KEYWORD=value`` parameters; ``taken``:
        the _SET_* bits of the keyword arguments given."""
        cdef Text t
        cdef Py_ssize_t index = 0, equals, end, position
        cdef codepoint c
        if type(value) is tuple and not value:
            return pos
        params = _sequence(value, f"{verb} params")
        seen = {}
        for item in params:
            what = f"{verb} params[{index}]"
            param = _text(item, what)
            _view(param, &t)
            _scan(&t, param, what, _UTF8 if smtputf8 else _ASCII_UNLESS_SMTPUTF8)
            if t.length == 0:
                raise InvalidInputError(f"{what} is empty")
            equals = -1
            for position in range(t.length):
                if _at(&t, position) == 0x3D:
                    equals = position
                    break
            end = t.length if equals < 0 else equals
            if end == 0:
                raise InvalidInputError(f"{what} has an empty keyword")
            if _at(&t, 0) == 0x2D:
                raise InvalidInputError(f"{what} keyword starts with '-'")
            for position in range(end):
                if not _in(_at(&t, position), _LDH):
                    raise InvalidInputError(
                        f"{what} keyword contains {param[position]!r} at index {position} "
                        "(expected A-Z, a-z, 0-9 or '-')"
                    )
            if equals >= 0:
                if equals == t.length - 1:
                    raise InvalidInputError(f"{what} has an empty value")
                for position in range(equals + 1, t.length):
                    c = _at(&t, position)
                    if c == 0x20 or c == 0x3D:
                        raise InvalidInputError(
                            f"{what} value contains {param[position]!r} at index {position}"
                        )
            upper = param[:end].upper()
            set_by = _SET_BY.get(upper)
            if set_by is not None and taken & <int>set_by[0]:
                raise InvalidInputError(
                    f"{what} repeats {upper}, which the {set_by[1]} argument sets"
                )
            if upper in seen:
                raise InvalidInputError(f"{what} repeats {upper} of {verb} params[{seen[upper]}]")
            seen[upper] = index
            pos = self._put(pos, b" ", 1)
            pos = self._put_text(pos, param)
            index += 1
        return pos

    cdef Py_ssize_t _put_notify(self, Py_ssize_t pos, object value) except -1:
        cdef Text t
        cdef Py_ssize_t index = 0
        cdef int choice, seen = 0, first = -1
        items = _sequence(value, "RCPT notify")
        if not items:
            raise InvalidInputError(
                "RCPT notify is empty (give NEVER alone, or SUCCESS, FAILURE and/or DELAY)"
            )
        for item in items:
            if PyUnicode_CheckExact(item):
                text = <str>item
            else:
                text = _text(item, f"RCPT notify[{index}]")
            _view(text, &t)
            for choice in range(4):
                if _upper_equals(&t, _NOTIFY_VALUES[choice]):
                    break
            else:
                what = f"RCPT notify[{index}]"
                _scan(&t, text, what, _ASCII)
                raise InvalidInputError(f"{what} must be NEVER, SUCCESS, FAILURE or DELAY")
            if seen & (1 << choice):
                raise InvalidInputError(
                    f"RCPT notify[{index}] repeats {_NOTIFY_VALUES[choice]}"
                )
            if seen and (choice == 0 or first == 0):
                raise InvalidInputError(
                    f"RCPT notify[{index}] combines {_NOTIFY_VALUES[choice]} with "
                    f"{_NOTIFY_VALUES[first]} (NEVER must be alone)"
                )
            if not seen:
                first = choice
            else:
                pos = self._put(pos, b",", 1)
            seen |= 1 << choice
            pos = self._put_text(pos, _NOTIFY_VALUES[choice])
            index += 1
        return pos

    cdef int _commit(self, Py_ssize_t pos) except -1:
        """Take the line written from ``_used`` to ``pos`` into the queue."""
        self._used = pos
        self._commands += 1
        return 0

    cdef int _commit_bounded(self, Py_ssize_t pos, str label, Py_ssize_t limit) except -1:
        """Commit a line whose arguments can make it longer than ``limit`` octets."""
        cdef Py_ssize_t length = pos - self._used
        if length > limit:
            raise InvalidInputError(
                f"{label} is too long ({length} octets with CRLF; the limit is {limit})"
            )
        return self._commit(pos)

    cdef int _simple(self, bytes line) except -1:
        return self._commit(self._put_bytes(self._used, line))

    cdef int _hello(self, bytes verb, object name, str what) except -1:
        text = _hello_name(name, what)
        cdef Py_ssize_t pos = self._put_bytes(self._used, verb)
        pos = self._put_text(pos, text)
        return self._commit(self._put(pos, b"\r\n", 2))

    # ------------------------------------------------------------ commands
    def ehlo(self, name):
        """Queue ``EHLO name``: a domain (ASCII; an IDN as A-labels) or an address
        literal such as ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``."""
        self._hello(b"EHLO ", name, "EHLO name")

    def helo(self, name):
        """Queue ``HELO name`` (the same rules as :meth:`ehlo`)."""
        self._hello(b"HELO ", name, "HELO name")

    def mail(
        self,
        sender,
        *,
        size=None,
        body=None,
        bint smtputf8=False,
        ret=None,
        envid=None,
        bint requiretls=False,
        params=(),
    ):
        """Queue ``MAIL FROM:<sender> [SIZE=n] [BODY=b] [SMTPUTF8] [RET=r] [ENVID=e]
        [REQUIRETLS] [params...]`` (the rules are in ``_writer_py``)."""
        cdef Text t
        cdef int taken = 0
        cdef long long number
        address = _address(sender, "MAIL FROM address", smtputf8, True, False)
        cdef Py_ssize_t pos = self._put(self._used, b"MAIL FROM:<", 11)
        pos = self._put_text(pos, address)
        pos = self._put(pos, b">", 1)
        if size is not None:
            number = _integer(size, "MAIL SIZE")
            pos = self._put(pos, b" SIZE=", 6)
            pos = self._put_decimal(pos, number)
            taken |= _SET_SIZE
        if body is not None:
            pos = self._put(pos, b" BODY=", 6)
            pos = self._put_text(pos, _choice(body, "MAIL BODY", _BODY_VALUES))
            taken |= _SET_BODY
        if smtputf8:
            pos = self._put(pos, b" SMTPUTF8", 9)
            taken |= _SET_SMTPUTF8
        if ret is not None:
            pos = self._put(pos, b" RET=", 5)
            pos = self._put_text(pos, _choice(ret, "MAIL RET", _RET_VALUES))
            taken |= _SET_RET
        if envid is not None:
            what = "MAIL ENVID"
            text = _text(envid, what)
            _view(text, &t)
            _scan(&t, text, what, _ASCII)
            if t.length == 0:
                raise InvalidInputError(f"{what} is empty")
            if t.length > _MAX_ENVID:
                raise InvalidInputError(
                    f"{what} is too long ({t.length} octets; the limit is {_MAX_ENVID})"
                )
            pos = self._put(pos, b" ENVID=", 7)
            pos = self._put_xtext(pos, &t)
            taken |= _SET_ENVID
        if requiretls:
            pos = self._put(pos, b" REQUIRETLS", 11)
            taken |= _SET_REQUIRETLS
        pos = self._put_parameters(pos, params, "MAIL", smtputf8, taken)
        pos = self._put(pos, b"\r\n", 2)
        self._commit_bounded(pos, "MAIL command line", _MAX_PARAMETER_LINE)

    def rcpt(self, recipient, *, notify=None, orcpt=None, bint smtputf8=False, params=()):
        """Queue ``RCPT TO:<recipient> [NOTIFY=...] [ORCPT=...] [params...]`` (the rules
        are in ``_writer_py``)."""
        cdef Text t
        cdef int taken = 0
        address = _address(recipient, "RCPT TO address", smtputf8, False, True)
        cdef Py_ssize_t pos = self._put(self._used, b"RCPT TO:<", 9)
        pos = self._put_text(pos, address)
        pos = self._put(pos, b">", 1)
        if notify is not None:
            pos = self._put(pos, b" NOTIFY=", 8)
            pos = self._put_notify(pos, notify)
            taken |= _SET_NOTIFY
        if orcpt is not None:
            original = _address(orcpt, "RCPT ORCPT address", smtputf8, False, False)
            _view(original, &t)
            if t.ascii:
                pos = self._put(pos, b" ORCPT=rfc822;", 14)
                pos = self._put_xtext(pos, &t)
            else:
                pos = self._put(pos, b" ORCPT=utf-8;", 13)
                pos = self._put_addr_xtext(pos, &t)
            taken |= _SET_ORCPT
        pos = self._put_parameters(pos, params, "RCPT", smtputf8, taken)
        pos = self._put(pos, b"\r\n", 2)
        self._commit_bounded(pos, "RCPT command line", _MAX_PARAMETER_LINE)

    def data(self):
        """Queue ``DATA``."""
        self._simple(b"DATA\r\n")

    def rset(self):
        """Queue ``RSET``."""
        self._simple(b"RSET\r\n")

    def noop(self):
        """Queue ``NOOP``."""
        self._simple(b"NOOP\r\n")

    def quit(self):
        """Queue ``QUIT``."""
        self._simple(b"QUIT\r\n")

    def starttls(self):
        """Queue ``STARTTLS``."""
        self._simple(b"STARTTLS\r\n")

    def bdat(self, size, *, bint last=False):
        """Queue ``BDAT size`` or ``BDAT size LAST`` (RFC 3030); the chunk follows with
        :meth:`body`."""
        cdef long long number = _integer(size, "BDAT size")
        cdef Py_ssize_t pos = self._put(self._used, b"BDAT ", 5)
        pos = self._put_decimal(pos, number)
        if last:
            pos = self._put(pos, b" LAST", 5)
        self._commit(self._put(pos, b"\r\n", 2))

    def auth(self, mechanism, initial_response=None):
        """Queue ``AUTH MECHANISM [initial-response]`` (RFC 4954): ``b""`` is sent as
        ``=``; messages about the response give positions, never its content."""
        cdef const unsigned char* name
        cdef char upper
        cdef Py_ssize_t pos, index
        text = _mechanism(mechanism)
        name = <const unsigned char*>PyUnicode_DATA(text)
        pos = self._put(self._used, b"AUTH ", 5)
        for index in range(PyUnicode_GET_LENGTH(text)):
            upper = <char>(name[index] - 0x20 if 0x61 <= name[index] <= 0x7A else name[index])
            pos = self._put(pos, &upper, 1)
        if initial_response is not None:
            what = "AUTH initial response"
            response = _bytes(initial_response, what)
            _check_base64(response, what)
            pos = self._put(pos, b" ", 1)
            pos = self._put_bytes(pos, response) if response else self._put(pos, b"=", 1)
        pos = self._put(pos, b"\r\n", 2)
        self._commit_bounded(pos, "AUTH command line", _MAX_AUTH_LINE)

    def auth_response(self, response):
        """Queue a SASL continuation line: base64 text (``b""`` for an empty response),
        or ``b"*"`` to cancel the exchange (RFC 4954 4)."""
        what = "AUTH response"
        data = _bytes(response, what)
        if data != b"*":
            _check_base64(data, what)
        cdef Py_ssize_t pos = self._put_bytes(self._used, data)
        pos = self._put(pos, b"\r\n", 2)
        self._commit_bounded(pos, "AUTH response line", _MAX_AUTH_LINE)

    def vrfy(self, argument):
        """Queue ``VRFY argument``: a user name or mailbox, printable ASCII and space."""
        cdef Text t
        what = "VRFY argument"
        text = _text(argument, what)
        _view(text, &t)
        _scan(&t, text, what, _ASCII)
        if t.length == 0:
            raise InvalidInputError(f"{what} is empty")
        cdef Py_ssize_t pos = self._put(self._used, b"VRFY ", 5)
        pos = self._put_text(pos, text)
        pos = self._put(pos, b"\r\n", 2)
        self._commit_bounded(pos, "VRFY command line", _MAX_LINE)

    # ------------------------------------------------------------ data
    def body(self, data):
        """Append message data as it is (already encoded by the DATA encoder).

        Data smaller than ``copy_threshold`` is copied; larger data is kept by reference,
        as a read-only ``memoryview`` of ``data`` (which must not change until sent).
        Empty data appends nothing; ``data`` must be C-contiguous.
        """
        cdef const unsigned char[::1] contents
        cdef Py_ssize_t n
        if PyBytes_CheckExact(data):
            n = PyBytes_GET_SIZE(data)
            if n < self._copy_threshold:
                self._used = self._put(self._used, PyBytes_AS_STRING(data), n)
                return
        elif PyByteArray_CheckExact(data):
            n = PyByteArray_GET_SIZE(data)
            if n < self._copy_threshold:
                self._used = self._put(self._used, PyByteArray_AS_STRING(data), n)
                return
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"body must be bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        view = memoryview(data)
        if not view.c_contiguous:
            raise TypeError("body must be a C-contiguous buffer")
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        n = len(view)
        if n == 0:
            return
        if n < self._copy_threshold:
            contents = view
            self._used = self._put(self._used, <const char*>&contents[0], n)
            return
        if self._used:
            self._close_segment()
        self._pieces.append(view if view.readonly else view.toreadonly())
        self._closed += n

    cdef int _close_segment(self) except -1:
        self._pieces.append(PyBytes_FromStringAndSize(self._buf, self._used))
        self._closed += self._used
        self._used = 0
        return 0

    # ------------------------------------------------------------ output
    def chunks(self):
        """Everything queued, in order, as few pieces as possible: one ``bytes`` per run
        of commands and copied data, one ``memoryview`` per body kept by reference."""
        pieces = list(self._pieces)
        if self._used:
            pieces.append(PyBytes_FromStringAndSize(self._buf, self._used))
        return pieces

    def take(self):
        """:meth:`chunks`, then :meth:`clear`: the pieces to send, leaving the buffer empty."""
        pieces = self._pieces
        if self._used:
            pieces.append(PyBytes_FromStringAndSize(self._buf, self._used))
        self._pieces = []
        self.clear()
        return pieces

    def getvalue(self):
        """Everything queued, joined into one ``bytes`` (a copy: for tests and small use)."""
        return b"".join(self.chunks())

    def clear(self):
        """Drop everything queued and reset :attr:`commands`."""
        cdef char* buf
        if self._pieces:
            self._pieces = []
        self._closed = 0
        self._used = 0
        self._commands = 0
        if self._capacity > _RETAINED_CAPACITY:
            buf = <char*>PyMem_Realloc(self._buf, _INITIAL_CAPACITY)
            if buf is not NULL:  # else keep the larger block
                self._buf = buf
                self._capacity = _INITIAL_CAPACITY

    def __len__(self):
        """Bytes queued."""
        return self._closed + self._used

    @property
    def commands(self):
        """Command lines queued since the last :meth:`clear` / :meth:`take` (every
        method but :meth:`body` queues one; a pipelined server answers each)."""
        return self._commands
