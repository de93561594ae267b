"""Base64 for SMTP: SASL responses, server challenges and MIME bodies (the compiled twin).

Behaves exactly as :mod:`smtpx._hot._base64_py`, which is the specification (read its
docstring for the rules). The work is done by the plain C of ``csrc/b64.c``: a
4096-entry table of character pairs for encoding, a strict validator then a table
decoder for challenges. Inputs of at least ``_NOGIL_MIN`` bytes are encoded with the
GIL released.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["b64decode", "b64encode", "b64encode_mime"]


cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


cdef extern from "b64.h" nogil:
    ctypedef enum smtpx_b64_status:
        SMTPX_B64_OK
        SMTPX_B64_BAD_CHAR
        SMTPX_B64_BAD_LENGTH
        SMTPX_B64_BAD_PADDING
        SMTPX_B64_BAD_BITS
    size_t smtpx_b64_encoded_size(size_t n)
    size_t smtpx_b64_mime_size(size_t n, size_t line_length)
    void smtpx_b64_encode(const unsigned char *src, size_t n, unsigned char *dst)
    void smtpx_b64_encode_mime(
        const unsigned char *src, size_t n, size_t line_length, unsigned char *dst
    )
    smtpx_b64_status smtpx_b64_check(const unsigned char *src, size_t n, size_t *out)
    void smtpx_b64_decode(const unsigned char *src, size_t n, unsigned char *dst)


# Releasing and re-taking the GIL costs well under a microsecond; 16 KiB take ~5 µs.
cdef Py_ssize_t _NOGIL_MIN = 16 * 1024
# The largest input whose encoding surely fits in a Py_ssize_t: the worst case,
# 4-character MIME lines, writes 2 bytes per input byte, plus up to 4.
cdef Py_ssize_t _MAX_INPUT = PY_SSIZE_T_MAX // 2 - 2
# The longest MIME line (RFC 2045 section 6.8), and the default.
cdef Py_ssize_t _MAX_LINE_LENGTH = 76

_MALFORMED = "malformed base64 in server challenge"
_BINARY = "bytes, bytearray or memoryview"


cdef object _bytes_like(object data, str func, str expected):
    """``data`` as a C-contiguous buffer (a strided memoryview is copied); TypeError
    naming ``func`` and the ``expected`` types when it is not bytes-like."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, memoryview):
        return data if data.c_contiguous else data.tobytes()
    raise TypeError(f"{func}() argument must be {expected}, not {type(data).__name__}")


cdef int _check_line_length(object line_length) except -1:
    """TypeError unless an ``int``; InvalidInputError unless a multiple of 4 in 4..76."""
    if not isinstance(line_length, int):
        raise TypeError(f"line_length must be an int, not {type(line_length).__name__}")
    if not 0 < line_length <= _MAX_LINE_LENGTH or line_length % 4:
        raise InvalidInputError(
            f"line_length must be a positive multiple of 4 and at most "
            f"{_MAX_LINE_LENGTH}, got {line_length}"
        )
    return 0


cdef bytes _encode(object buffer, Py_ssize_t line_length):
    """Encode a bytes-like ``buffer``: on one line when ``line_length`` is 0, else MIME."""
    cdef Py_buffer view
    cdef Py_ssize_t size
    cdef bytes out
    cdef const unsigned char *src
    cdef unsigned char *dst
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if view.len > _MAX_INPUT:
            raise MemoryError()
        if line_length:
            size = <Py_ssize_t>smtpx_b64_mime_size(view.len, line_length)
        else:
            size = <Py_ssize_t>smtpx_b64_encoded_size(view.len)
        out = PyBytes_FromStringAndSize(NULL, size)
        src = <const unsigned char *>view.buf
        dst = <unsigned char *>PyBytes_AS_STRING(out)
        if view.len < _NOGIL_MIN:
            _encode_into(src, view.len, line_length, dst)
        else:
            with nogil:
                _encode_into(src, view.len, line_length, dst)
        return out
    finally:
        PyBuffer_Release(&view)


cdef inline void _encode_into(
    const unsigned char *src, Py_ssize_t n, Py_ssize_t line_length, unsigned char *dst
) noexcept nogil:
    if line_length:
        smtpx_b64_encode_mime(src, n, line_length, dst)
    else:
        smtpx_b64_encode(src, n, dst)


cdef bytes _decode(const unsigned char *src, Py_ssize_t n):
    """Decode ``src[:n]`` strictly; ProtocolError naming the first fault."""
    cdef size_t out
    cdef smtpx_b64_status status = smtpx_b64_check(src, n, &out)
    cdef bytes result
    if status == SMTPX_B64_BAD_CHAR:
        raise ProtocolError(
            f"{_MALFORMED}: invalid character {bytes([src[out]])!r} at offset {out}"
        )
    if status == SMTPX_B64_BAD_LENGTH:
        raise ProtocolError(f"{_MALFORMED}: length {n} is not a multiple of 4")
    if status == SMTPX_B64_BAD_PADDING:
        raise ProtocolError(f"{_MALFORMED}: misplaced padding '=' at offset {out}")
    if status == SMTPX_B64_BAD_BITS:
        raise ProtocolError(f"{_MALFORMED}: non-zero unused bits at offset {out}")
    result = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>out)
    smtpx_b64_decode(src, n, <unsigned char *>PyBytes_AS_STRING(result))
    return result


def b64encode(data):
    """Encode ``data`` in base64 with padding, on one line (no line break)."""
    return _encode(_bytes_like(data, "b64encode", _BINARY), 0)


def b64decode(data):
    """Decode a server challenge strictly (see ``smtpx._hot._base64_py`` for the rules).

    Raises :class:`~smtpx.errors.ProtocolError` when ``data`` is not canonical base64."""
    cdef Py_buffer view
    cdef const char *text
    cdef Py_ssize_t size
    if isinstance(data, str):
        if not data.isascii():
            offset = next(i for i, char in enumerate(data) if not char.isascii())
            raise ProtocolError(f"{_MALFORMED}: non-ASCII character at offset {offset}")
        text = PyUnicode_AsUTF8AndSize(data, &size)  # an ASCII str's own buffer: no copy
        return _decode(<const unsigned char *>text, size)
    PyObject_GetBuffer(_bytes_like(data, "b64decode", f"str, {_BINARY}"), &view, PyBUF_SIMPLE)
    try:
        return _decode(<const unsigned char *>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


def b64encode_mime(data, line_length=76):
    """Encode ``data`` as a MIME base64 body: CRLF-terminated lines of ``line_length``.

    ``line_length`` must be a positive multiple of 4, at most 76
    (:class:`~smtpx.errors.InvalidInputError` otherwise; :class:`TypeError` if it is
    not an ``int``)."""
    buffer = _bytes_like(data, "b64encode_mime", _BINARY)
    _check_line_length(line_length)
    return _encode(buffer, line_length)
