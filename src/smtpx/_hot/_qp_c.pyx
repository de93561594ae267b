"""Quoted-printable body encoding, RFC 2045 section 6.7 (the compiled twin).

Behaves exactly as :mod:`smtpx._hot._qp_py`, which is the specification (read its
docstring for the rules). One pass of a C loop over the input, deciding most octets
without looking ahead, writes into a bytes object sized for the worst case, which is
then shrunk in place to the output's length. Inputs
of at least ``_NOGIL_MIN`` bytes are encoded with the GIL released.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF

__all__ = ["qp_encode"]


cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


# Releasing and re-taking the GIL costs well under a microsecond; 16 KiB take ~10 µs.
cdef Py_ssize_t _NOGIL_MIN = 16 * 1024
# The worst case writes 3 characters per input octet (an escape, or CRLF for a bare LF)
# plus a 3-character soft line break per output line, and an output line that needs one
# carries at least 73 characters from at least 25 octets: at most 3.12 per octet. The
# output is allocated for 3n + n/8 + 8 octets, which covers that and, up to _MAX_INPUT,
# fits a Py_ssize_t.
cdef Py_ssize_t _MAX_INPUT = (PY_SSIZE_T_MAX - 8) // 4
# The longest encoded line (RFC 2045 6.7 rule 5), CRLF excluded.
cdef enum:
    _MAX_LINE = 76

# The classes of octets.
cdef enum:
    _LITERAL = 0  # printable ASCII but "=": itself
    _ESCAPE = 1  # "=", controls, DEL, 8-bit octets: "=XX"
    _SPACE = 2  # space and tab: themselves, but "=XX" at the end of a line
    _CR = 3
    _LF = 4

cdef unsigned char _CLASS[256]
cdef const char *_HEX = b"0123456789ABCDEF"
_BINARY = "bytes, bytearray or memoryview"


cdef void _init_classes() noexcept:
    cdef int octet
    for octet in range(256):
        if 33 <= octet <= 126 and octet != 61:
            _CLASS[octet] = _LITERAL
        else:
            _CLASS[octet] = _ESCAPE
    _CLASS[32] = _SPACE
    _CLASS[9] = _SPACE
    _CLASS[13] = _CR
    _CLASS[10] = _LF


_init_classes()


cdef object _bytes_like(object data):
    """``data`` as a C-contiguous buffer (a strided memoryview is copied); TypeError
    when it is not bytes-like."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, memoryview):
        return data if data.c_contiguous else data.tobytes()
    raise TypeError(f"qp_encode() argument must be {_BINARY}, not {type(data).__name__}")


cdef inline bint _line_ends(const unsigned char *src, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Whether the octet before ``src[i]`` is the last of its line."""
    return i == n or _CLASS[src[i]] >= _CR


cdef Py_ssize_t _encode_into(
    const unsigned char *src, Py_ssize_t n, unsigned char *dst
) noexcept nogil:
    """Encode ``src[:n]`` into ``dst`` (room for the worst case); return the length."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t out = 0
    cdef Py_ssize_t column = 0  # characters on the output line so far
    cdef Py_ssize_t width, limit
    cdef unsigned char octet, kind
    cdef bint last
    while i < n:
        octet = src[i]
        kind = _CLASS[octet]
        i += 1
        if kind >= _CR:
            if kind == _CR and i < n and src[i] == 10:
                i += 1  # CRLF is one line break
            dst[out] = 13
            dst[out + 1] = 10
            out += 2
            column = 0
            continue
        # The common cases: the octet's encoding ends by column 75, so it fits whether or
        # not a soft line break follows.
        if kind == _LITERAL and column < _MAX_LINE - 1:
            dst[out] = octet
            out += 1
            column += 1
            continue
        if kind == _ESCAPE and column < _MAX_LINE - 3:
            dst[out] = 61
            dst[out + 1] = _HEX[octet >> 4]
            dst[out + 2] = _HEX[octet & 15]
            out += 3
            column += 3
            continue
        last = _line_ends(src, i, n)
        if kind == _SPACE and column < _MAX_LINE - 1 and not last:
            dst[out] = octet
            out += 1
            column += 1
            continue
        # Near the end of the line, or white space at the end of one: rule 4 of the
        # specification in full.
        width = 1 if kind == _LITERAL or (kind == _SPACE and not last) else 3
        limit = _MAX_LINE if last else _MAX_LINE - 1
        if column + width > limit:
            dst[out] = 61
            dst[out + 1] = 13
            dst[out + 2] = 10
            out += 3
            column = 0
        if width == 1:
            dst[out] = octet
        else:
            dst[out] = 61
            dst[out + 1] = _HEX[octet >> 4]
            dst[out + 2] = _HEX[octet & 15]
        out += width
        column += width
    return out


def qp_encode(data):
    """Encode text as quoted-printable with CRLF line ends (see ``smtpx._hot._qp_py``)."""
    cdef Py_buffer view
    cdef Py_ssize_t size
    cdef PyObject *raw
    cdef const unsigned char *src
    cdef unsigned char *dst
    PyObject_GetBuffer(_bytes_like(data), &view, PyBUF_SIMPLE)
    try:
        if view.len > _MAX_INPUT:
            raise MemoryError()
        out = PyBytes_FromStringAndSize(NULL, 3 * view.len + view.len // 8 + 8)
        src = <const unsigned char *>view.buf
        dst = <unsigned char *>PyBytes_AS_STRING(out)
        if view.len < _NOGIL_MIN:
            size = _encode_into(src, view.len, dst)
        else:
            with nogil:
                size = _encode_into(src, view.len, dst)
    finally:
        PyBuffer_Release(&view)
    # Shrink in place: _PyBytes_Resize needs the only reference, so take it from `out`.
    raw = <PyObject *>out
    Py_INCREF(out)
    out = None
    _PyBytes_Resize(&raw, size)
    result = <object>raw  # a new reference: drop the one `raw` held
    Py_DECREF(result)
    return result
