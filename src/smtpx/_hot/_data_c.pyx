"""The DATA encoder: message bytes in, smuggling-safe SMTP wire bytes out (compiled twin).

Behaves exactly as :mod:`smtpx._hot._data_py`, which is the specification (read its
docstring for the rules). The work is done by the plain C of ``csrc/data_scan.c``, in two
passes over each chunk: a branch-free count of the output length (16 octets at a time
with SSE2 or NEON), then the encoding into a bytes object of exactly that length, which
walks from one CR, LF or NUL to the next, copying the plain run between them 16 octets
at a time. Chunks of at least ``_NOGIL_MIN`` octets are encoded with the GIL released.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_FULL_RO,
    PyBuffer_IsContiguous,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport (
    PyBytes_CheckExact,
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport UINT64_MAX, uint64_t
from libc.string cimport memchr, memcpy

from smtpx.errors import InvalidInputError

__all__ = ["BODY_8BIT", "BODY_NEEDS_ENCODING", "DataEncoder", "encode_data", "scan_body"]

BODY_8BIT = 1
BODY_NEEDS_ENCODING = 2


cdef extern from "data_scan.h" nogil:
    ctypedef struct smtpx_data_options:
        int dot_stuff
        int allow_nul
        uint64_t max_line
    ctypedef struct smtpx_data_state:
        uint64_t bytes_in
        uint64_t longest
        uint64_t line
        uint64_t line_start
        int line_stuffed
        int pending_cr
    ctypedef enum smtpx_data_status:
        SMTPX_DATA_OK
        SMTPX_DATA_NUL
        SMTPX_DATA_LONG_LINE
        SMTPX_DATA_NO_ROOM
    size_t smtpx_data_measure(
        const unsigned char *src, size_t n, int dot_stuff, const smtpx_data_state *st
    )
    enum:
        SMTPX_SCAN_8BIT
        SMTPX_SCAN_ENCODE
    int smtpx_data_scan(const unsigned char *src, size_t n)
    smtpx_data_status smtpx_data_encode(
        const unsigned char *src,
        size_t n,
        unsigned char *dst,
        size_t room,
        const smtpx_data_options *opt,
        smtpx_data_state *st,
        size_t *size,
        uint64_t *fault,
    )


# Releasing and re-taking the GIL costs well under a microsecond; a pass over 16 KiB
# takes a few.
cdef size_t _NOGIL_MIN = 16 * 1024

_FINISHED = "DataEncoder.finish() has already been called"


cdef size_t _measure(
    const unsigned char *src, size_t n, int dot_stuff, const smtpx_data_state *st
) noexcept:
    """:c:func:`smtpx_data_measure`, with the GIL released for a large chunk."""
    cdef size_t size
    if n < _NOGIL_MIN:
        return smtpx_data_measure(src, n, dot_stuff, st)
    with nogil:
        size = smtpx_data_measure(src, n, dot_stuff, st)
    return size


cdef smtpx_data_status _write(
    const unsigned char *src,
    size_t n,
    unsigned char *dst,
    size_t room,
    const smtpx_data_options *opt,
    smtpx_data_state *st,
    size_t *size,
    uint64_t *fault,
) noexcept:
    """:c:func:`smtpx_data_encode`, with the GIL released for a large chunk."""
    cdef smtpx_data_status status
    if n < _NOGIL_MIN:
        return smtpx_data_encode(src, n, dst, room, opt, st, size, fault)
    with nogil:
        status = smtpx_data_encode(src, n, dst, room, opt, st, size, fault)
    return status


cdef bytes _end_of_data(bint dot_stuff, bint at_line_start):
    """What :meth:`DataEncoder.finish` returns."""
    if dot_stuff:
        return b".\r\n" if at_line_start else b"\r\n.\r\n"
    return b"" if at_line_start else b"\r\n"


cdef uint64_t _check_max_line(object max_line) except 0:
    """Validate the ``max_line`` option; UINT64_MAX stands for no limit."""
    if max_line is None:
        return UINT64_MAX
    if isinstance(max_line, bool) or not isinstance(max_line, int):
        raise TypeError(f"max_line must be an int or None, not {type(max_line).__name__}")
    if max_line < 1:
        raise InvalidInputError(f"max_line must be at least 1, got {max_line}")
    return UINT64_MAX if max_line > UINT64_MAX else <uint64_t>max_line


cdef int _get_buffer(object chunk, Py_buffer *view) except -1:
    """Export the octets of a chunk of message data (released by the caller)."""
    try:
        PyObject_GetBuffer(chunk, view, PyBUF_FULL_RO)
    except TypeError:
        raise TypeError(
            f"message data must be a bytes-like object, not {type(chunk).__name__}"
        ) from None
    if view.itemsize != 1 or not PyBuffer_IsContiguous(view, b"C"):
        PyBuffer_Release(view)
        raise TypeError("message data must be a C-contiguous buffer of 1-byte items")
    return 0


cdef int _octets(
    object data, Py_buffer *view, const unsigned char **src, size_t *n
) except -1:
    """Point ``src``/``n`` at the octets of message data: 1 when a buffer was exported
    into ``view`` (the caller releases it), 0 for bytes."""
    if PyBytes_Check(data):
        src[0] = <const unsigned char *>PyBytes_AS_STRING(data)
        n[0] = <size_t>PyBytes_GET_SIZE(data)
        return 0
    _get_buffer(data, view)
    src[0] = <const unsigned char *>view.buf
    n[0] = <size_t>view.len
    return 1


@cython.auto_pickle(True)  # as the pure twin: copy and pickle keep the state
cdef class DataEncoder:
    """Encode message data for the wire, chunk by chunk (see the module docstring).

    ``dot_stuff``: stuff lines that start with ``.`` (DATA; turn off for BDAT).
    ``allow_nul``: let NUL octets through instead of refusing them.
    ``max_line``: refuse output lines longer than this many octets (RFC 5321: 998); with
    ``None`` lines are only measured (:attr:`longest_line`) and the caller decides.
    """

    cdef smtpx_data_options _opt
    cdef smtpx_data_state _st
    cdef uint64_t _bytes_out
    cdef bint _finished

    def __init__(self, *, bint dot_stuff=True, bint allow_nul=False, object max_line=None):
        self._opt.dot_stuff = dot_stuff
        self._opt.allow_nul = allow_nul
        self._opt.max_line = _check_max_line(max_line)
        self._st.bytes_in = 0
        self._st.longest = 0
        self._st.line = 0
        self._st.line_start = 0
        self._st.line_stuffed = 0
        self._st.pending_cr = 0
        self._bytes_out = 0
        self._finished = False

    @property
    def longest_line(self):
        """The longest output line so far, the line in progress included, in octets
        (after dot-stuffing, CRLF excluded)."""
        return self._st.longest

    @property
    def bytes_in(self):
        """Input octets consumed so far (a refused chunk is not counted)."""
        return self._st.bytes_in

    @property
    def bytes_out(self):
        """Output octets produced so far, the end of data included after :meth:`finish`."""
        return self._bytes_out

    def encode(self, chunk):
        """Encode the next chunk of the data and return its output (possibly empty)."""
        return self._encode(chunk, False)

    def finish(self):
        """Return the end of the data; the encoder cannot be used after this."""
        if self._finished:
            raise InvalidInputError(_FINISHED)
        self._finished = True
        end = _end_of_data(self._opt.dot_stuff, self._st.line == 0)
        self._bytes_out += len(end)
        return end

    cdef bytes _encode(self, object chunk, bint finish):
        """Encode a chunk; with ``finish``, also end the data, in the same bytes object.

        The output is measured first (a quick branch-free pass), then written into a
        bytes object of that exact size. Over-allocating then shrinking would save the
        measure but costs more on large outputs: the allocator then maps fresh pages every
        time, and their page faults take longer than the whole encoding."""
        cdef Py_buffer view
        cdef bint exported = False
        cdef const unsigned char *src
        cdef size_t n
        cdef smtpx_data_state st = self._st
        cdef smtpx_data_status status
        cdef size_t size
        cdef size_t written = 0
        cdef uint64_t fault = 0
        cdef bint ends_line
        cdef bint changed = False
        if self._finished:
            raise InvalidInputError(_FINISHED)
        exported = _octets(chunk, &view, &src, &n)
        try:
            if n == 0 and not finish:
                return b""
            size = _measure(src, n, self._opt.dot_stuff, &st)
            # The data ends at a line start when its last octet is a line end.
            ends_line = src[n - 1] == b"\r" or src[n - 1] == b"\n" if n else st.line == 0
            end = _end_of_data(self._opt.dot_stuff, ends_line) if finish else b""
            out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(size + len(end)))
            dst = <unsigned char *>PyBytes_AS_STRING(out)
            status = _write(src, n, dst, size, &self._opt, &st, &written, &fault)
            if status == SMTPX_DATA_NUL:
                raise InvalidInputError(f"NUL byte in message data at offset {fault}")
            if status == SMTPX_DATA_LONG_LINE:
                raise InvalidInputError(
                    f"line longer than {self._opt.max_line} octets at offset {fault}"
                )
            changed = status != SMTPX_DATA_OK or written != size or ends_line != (st.line == 0)
            if changed:
                # Another thread wrote the buffer between the passes: encode a snapshot
                # (bytes, which nothing can change).
                snapshot = PyBytes_FromStringAndSize(<const char *>src, <Py_ssize_t>n)
            else:
                memcpy(dst + size, PyBytes_AS_STRING(end), len(end))
        finally:
            if exported:
                PyBuffer_Release(&view)
        if changed:
            return self._encode(snapshot, finish)
        st.bytes_in += n
        self._st = st
        self._bytes_out += <uint64_t>len(out)
        self._finished = finish
        return out


def encode_data(data, *, bint dot_stuff=True, bint allow_nul=False, object max_line=None):
    """Encode data already in memory in one go: ``encode(data) + finish()`` of a new
    :class:`DataEncoder` with these options."""
    cdef DataEncoder encoder = DataEncoder(
        dot_stuff=dot_stuff, allow_nul=allow_nul, max_line=max_line
    )
    cdef const unsigned char *src
    cdef size_t n
    if not dot_stuff and max_line is None and PyBytes_CheckExact(data):
        # For BDAT: bytes already in canonical form (CRLF line ends only, ending with
        # CRLF, no NUL unless allowed) encode to themselves, so they are returned as they
        # are: a large body leaves without a copy.
        src = <const unsigned char *>PyBytes_AS_STRING(data)
        n = <size_t>PyBytes_GET_SIZE(data)
        if (
            n >= 2
            and src[n - 1] == b"\n"
            and _measure(src, n, False, &encoder._st) == n
            and (allow_nul or memchr(src, 0, n) == NULL)
        ):
            return data
    return encoder._encode(data, True)


def scan_body(data):
    """The ``BODY_8BIT`` and ``BODY_NEEDS_ENCODING`` flags of a whole body, in one pass
    of :c:func:`smtpx_data_scan` (with the GIL released for a large body)."""
    cdef Py_buffer view
    cdef bint exported = False
    cdef const unsigned char *src
    cdef size_t n
    cdef int flags
    exported = _octets(data, &view, &src, &n)
    try:
        if n < _NOGIL_MIN:
            flags = smtpx_data_scan(src, n)
        else:
            with nogil:
                flags = smtpx_data_scan(src, n)
    finally:
        if exported:
            PyBuffer_Release(&view)
    return (BODY_8BIT if flags & SMTPX_SCAN_8BIT else 0) | (
        BODY_NEEDS_ENCODING if flags & SMTPX_SCAN_ENCODE else 0
    )
