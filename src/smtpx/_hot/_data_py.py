"""The DATA encoder: message bytes in, smuggling-safe SMTP wire bytes out (pure-Python twin).

This module is the specification; ``_data_c.pyx`` is its compiled twin and behaves
identically: same output, same exceptions, same messages.

Encoding (RFC 5321 4.1.1.4 and 4.5.2)
    1. Line ends are normalised: CRLF stays, a bare CR becomes CRLF, a bare LF becomes
       CRLF. ``b"\\r\\r\\n"`` is two line ends, and so is ``b"\\n\\r"``.
    2. With ``dot_stuff=True`` (DATA) every line that starts with ``.`` gets one more
       ``.``, the first line of the data included. With ``dot_stuff=False`` (BDAT, where
       the chunk length delimits the data) step 1 is all.

    So the output never holds a bare CR, a bare LF or an early end of data
    (``CRLF . CRLF``, or ``. CRLF`` at its very start), whatever the input.

Streaming
    :class:`DataEncoder` takes the data in chunks split anywhere: the output of all
    :meth:`~DataEncoder.encode` calls plus :meth:`~DataEncoder.finish` is the same for
    every split of the same input. Nothing is held back: a chunk that ends with a CR
    gives its CRLF at once, and an LF opening the next chunk is then swallowed; a ``.``
    opening a chunk that follows a line end is stuffed.

    :meth:`~DataEncoder.finish` returns the end of the data: with ``dot_stuff=True``
    ``b".\\r\\n"`` when the data ended with a line end (or was empty), else
    ``b"\\r\\n.\\r\\n"``; with ``dot_stuff=False`` ``b""`` or ``b"\\r\\n"`` likewise.

Input
    Any C-contiguous buffer of 1-byte items: ``bytes``, ``bytearray``, ``memoryview``,
    ``array.array("B")``, ``mmap``... Anything else, ``str`` included, raises
    ``TypeError``: the kind of object is wrong, not its content.

Refused data (``smtpx.errors.InvalidInputError``)
    - a NUL octet, unless ``allow_nul=True``;
    - with ``max_line`` set, an output line (dot-stuffing included, CRLF excluded) longer
      than ``max_line`` octets.

    The message names the input offset, counted from the start of the data (so it does
    not depend on the split) of the first octet that cannot be encoded: the NUL, or the
    octet that takes the line past the limit (for a stuffed line the added ``.`` counts
    with the line's first octet). When a chunk holds several faults, the first one is
    reported. A refused chunk is refused whole: nothing of it is returned and the
    encoder is left as it was before the call.

An encoder serves one stream from one thread at a time.

Scanning a whole body (:func:`scan_body`)
    One pass over a body held in memory gives what a sender decides before it encodes:
    ``BODY_8BIT`` when an octet is above 127, and ``BODY_NEEDS_ENCODING`` unless the body
    is already in wire form for BDAT, that is, unless ``encode_data(body,
    dot_stuff=False)`` would give back the very same octets: no NUL, every CR followed by
    an LF, every LF after a CR, and a CRLF at the end (or no octet at all).
"""

from __future__ import annotations

import re

from smtpx.errors import InvalidInputError

__all__ = ["BODY_8BIT", "BODY_NEEDS_ENCODING", "DataEncoder", "encode_data", "scan_body"]

#: :func:`scan_body` flag: the body has an octet above 127.
BODY_8BIT = 1
#: :func:`scan_body` flag: the body is not its own encoding for BDAT.
BODY_NEEDS_ENCODING = 2

_CR = 0x0D
_LF = 0x0A
#: One line end of the input: CRLF, a bare CR or a bare LF (as bytes.splitlines() sees them).
_LINE_END = re.compile(rb"\r\n?|\n")


def _check_max_line(max_line: object) -> int | None:
    """Validate the ``max_line`` option: ``None`` or an ``int`` of at least 1."""
    if max_line is None:
        return None
    if isinstance(max_line, bool) or not isinstance(max_line, int):
        raise TypeError(f"max_line must be an int or None, not {type(max_line).__name__}")
    if max_line < 1:
        raise InvalidInputError(f"max_line must be at least 1, got {max_line}")
    return max_line


def _octets(chunk: bytes | bytearray | memoryview) -> bytes:
    """The octets of a chunk of message data, as ``bytes``."""
    if isinstance(chunk, bytes):
        return chunk
    try:
        view = memoryview(chunk)
    except TypeError:
        raise TypeError(
            f"message data must be a bytes-like object, not {type(chunk).__name__}"
        ) from None
    with view:
        # (An empty buffer counts as contiguous, as for PyBuffer_IsContiguous().)
        if view.itemsize != 1 or not (view.c_contiguous or view.nbytes == 0):
            raise TypeError("message data must be a C-contiguous buffer of 1-byte items")
        return view.tobytes()


class DataEncoder:
    """Encode message data for the wire, chunk by chunk (see the module docstring).

    ``dot_stuff``: stuff lines that start with ``.`` (DATA; turn off for BDAT).
    ``allow_nul``: let NUL octets through instead of refusing them.
    ``max_line``: refuse output lines longer than this many octets (RFC 5321: 998); with
    ``None`` lines are only measured (:attr:`longest_line`) and the caller decides.
    """

    __slots__ = (
        "_allow_nul",
        "_bytes_in",
        "_bytes_out",
        "_dot_stuff",
        "_finished",
        "_line",
        "_line_start",
        "_line_stuffed",
        "_longest",
        "_max_line",
        "_pending_cr",
    )

    def __init__(
        self, *, dot_stuff: bool = True, allow_nul: bool = False, max_line: int | None = None
    ) -> None:
        self._dot_stuff = bool(dot_stuff)
        self._allow_nul = bool(allow_nul)
        self._max_line = _check_max_line(max_line)
        self._finished = False
        self._bytes_in = 0
        self._bytes_out = 0
        self._longest = 0
        # The output line in progress: its length in octets (0 at the start of a line),
        # and, while it is not empty and max_line is set, the input offset of its first
        # octet and whether it was stuffed.
        self._line = 0
        self._line_start = 0
        self._line_stuffed = False
        # The last octet consumed was a CR, already sent as CRLF: an LF next is swallowed.
        self._pending_cr = False

    @property
    def longest_line(self) -> int:
        """The longest output line so far, the line in progress included, in octets
        (after dot-stuffing, CRLF excluded)."""
        return self._longest

    @property
    def bytes_in(self) -> int:
        """Input octets consumed so far (a refused chunk is not counted)."""
        return self._bytes_in

    @property
    def bytes_out(self) -> int:
        """Output octets produced so far, the end of data included after :meth:`finish`."""
        return self._bytes_out

    def encode(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode the next chunk of the data and return its output (possibly empty)."""
        if self._finished:
            raise InvalidInputError("DataEncoder.finish() has already been called")
        data = _octets(chunk)
        if not data:
            return b""
        # The LF of a CRLF whose CR ended the previous chunk: that CRLF is already out.
        skip = 1 if self._pending_cr and data[0] == _LF else 0
        text = data[skip:] if skip else data
        # bytes.splitlines() breaks at exactly CRLF, CR and LF: the normalisation. lines[0]
        # goes on with the line in progress; lines[-1] is the new line in progress.
        lines = text.splitlines()
        if not lines or text[-1] in (_CR, _LF):
            lines.append(b"")
        if self._dot_stuff:
            going_on = lines[0]
            lines = [b"." + line if line.startswith(b".") else line for line in lines]
            if self._line:
                lines[0] = going_on
        first = self._line + len(lines[0])
        widest = max(map(len, lines))
        longest = max(self._longest, first, widest)

        fault = self._first_fault(data, skip, lines, longest)
        if fault is not None:
            raise InvalidInputError(fault)

        if self._max_line is not None:
            self._track_line_start(data, skip, lines)
        self._line = len(lines[-1]) if len(lines) > 1 else first
        self._longest = longest
        self._pending_cr = data[-1] == _CR
        self._bytes_in += len(data)
        out = b"\r\n".join(lines)
        self._bytes_out += len(out)
        return out

    def finish(self) -> bytes:
        """Return the end of the data; the encoder cannot be used after this."""
        if self._finished:
            raise InvalidInputError("DataEncoder.finish() has already been called")
        self._finished = True
        if self._dot_stuff:
            end = b".\r\n" if self._line == 0 else b"\r\n.\r\n"
        else:
            end = b"" if self._line == 0 else b"\r\n"
        self._bytes_out += len(end)
        return end

    def _first_fault(self, data: bytes, skip: int, lines: list[bytes], longest: int) -> str | None:
        """The error for the first octet of the chunk that cannot be encoded, if any.

        A NUL that would also take its line past the limit is reported as a NUL.
        """
        nul = -1 if self._allow_nul else data.find(0)
        limit = self._max_line
        if limit is not None and longest > limit:
            offset = self._past_limit(data, skip, lines, limit)
            if nul < 0 or offset < self._bytes_in + nul:
                return f"line longer than {limit} octets at offset {offset}"
        if nul >= 0:
            return f"NUL byte in message data at offset {self._bytes_in + nul}"
        return None

    def _past_limit(self, data: bytes, skip: int, lines: list[bytes], limit: int) -> int:
        """The input offset of the octet that first takes a line of the chunk past
        ``limit`` (there is such a line)."""
        # The octets of a line map one to one to the input, but for its stuffed dot. (An
        # error path: finding where the lines start in the input again is fine here.)
        if self._line + len(lines[0]) > limit:
            if self._line:
                return self._line_start + limit - self._line_stuffed
            return self._bytes_in + skip + limit - self._stuffed(lines[0])
        ends = _LINE_END.finditer(data, skip)
        for line, end in zip(lines[1:], ends, strict=True):
            if len(line) > limit:
                return self._bytes_in + end.end() + limit - self._stuffed(line)
        raise AssertionError("no line of the chunk is over the limit")  # pragma: no cover

    def _stuffed(self, line: bytes) -> bool:
        """Whether an encoded line that starts in this chunk was dot-stuffed."""
        return self._dot_stuff and line.startswith(b".")

    def _track_line_start(self, data: bytes, skip: int, lines: list[bytes]) -> None:
        """Record where the line in progress after this chunk started (for max_line)."""
        if len(lines) > 1:
            last_end = max(data.rfind(b"\r"), data.rfind(b"\n"))
            self._line_start = self._bytes_in + last_end + 1
            self._line_stuffed = self._stuffed(lines[-1])
        elif self._line == 0:
            self._line_start = self._bytes_in + skip
            self._line_stuffed = self._stuffed(lines[0])


def encode_data(
    data: bytes | bytearray | memoryview,
    *,
    dot_stuff: bool = True,
    allow_nul: bool = False,
    max_line: int | None = None,
) -> bytes:
    """Encode data already in memory in one go: ``encode(data) + finish()`` of a new
    :class:`DataEncoder` with these options."""
    encoder = DataEncoder(dot_stuff=dot_stuff, allow_nul=allow_nul, max_line=max_line)
    return encoder.encode(data) + encoder.finish()


def scan_body(data: bytes | bytearray | memoryview) -> int:
    """The ``BODY_8BIT`` and ``BODY_NEEDS_ENCODING`` flags of a whole body (see the module
    docstring), from any C-contiguous buffer of 1-byte items (``TypeError`` otherwise)."""
    octets = _octets(data)
    flags = 0 if octets.isascii() else BODY_8BIT
    # Every CR is followed by an LF and every LF follows a CR exactly when there are as
    # many CRLF pairs as CRs and as LFs.
    pairs = octets.count(b"\r\n")
    if octets and not (
        octets.endswith(b"\r\n")
        and octets.count(b"\r") == pairs == octets.count(b"\n")
        and b"\0" not in octets
    ):
        flags |= BODY_NEEDS_ENCODING
    return flags
