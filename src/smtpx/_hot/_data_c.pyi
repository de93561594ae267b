"""The DATA encoder: message bytes in, smuggling-safe SMTP wire bytes out (compiled twin).

Behaves exactly as :mod:`smtpx._hot._data_py`, which is the specification: line ends
normalised to CRLF (a bare CR or LF becomes CRLF), then, for DATA, every line that starts
with ``.`` stuffed with one more ``.``; the same output for every split of the input;
NUL octets and (with ``max_line``) over-long lines refused with
:class:`smtpx.errors.InvalidInputError` naming the input offset of the first octet that
cannot be encoded. Input: any C-contiguous buffer of 1-byte items (``TypeError``
otherwise, ``str`` included).
"""

__all__ = ["BODY_8BIT", "BODY_NEEDS_ENCODING", "DataEncoder", "encode_data", "scan_body"]

#: :func:`scan_body` flag: the body has an octet above 127.
BODY_8BIT: int
#: :func:`scan_body` flag: the body is not its own encoding for BDAT.
BODY_NEEDS_ENCODING: int

class DataEncoder:
    """Encode message data for the wire, chunk by chunk.

    ``dot_stuff``: stuff lines that start with ``.`` (DATA; turn off for BDAT).
    ``allow_nul``: let NUL octets through instead of refusing them.
    ``max_line``: refuse output lines longer than this many octets (RFC 5321: 998); with
    ``None`` lines are only measured (:attr:`longest_line`) and the caller decides.
    ``max_line`` must be an ``int`` of at least 1 (``TypeError``, ``InvalidInputError``).
    """

    def __init__(
        self, *, dot_stuff: bool = True, allow_nul: bool = False, max_line: int | None = None
    ) -> None: ...
    @property
    def longest_line(self) -> int:
        """The longest output line so far, the line in progress included, in octets
        (after dot-stuffing, CRLF excluded)."""
    @property
    def bytes_in(self) -> int:
        """Input octets consumed so far (a refused chunk is not counted)."""
    @property
    def bytes_out(self) -> int:
        """Output octets produced so far, the end of data included after :meth:`finish`."""
    def encode(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode the next chunk of the data and return its output (possibly empty).

        A refused chunk (``InvalidInputError``) is refused whole: nothing of it is
        returned and the encoder is left as it was before the call."""
    def finish(self) -> bytes:
        """Return the end of the data; the encoder cannot be used after this.

        With ``dot_stuff``: ``b".\\r\\n"`` when the data ended with a line end (or was
        empty), else ``b"\\r\\n.\\r\\n"``; without: ``b""`` or ``b"\\r\\n"`` likewise."""

def encode_data(
    data: bytes | bytearray | memoryview,
    *,
    dot_stuff: bool = True,
    allow_nul: bool = False,
    max_line: int | None = None,
) -> bytes:
    """Encode data already in memory in one go: ``encode(data) + finish()`` of a new
    :class:`DataEncoder` with these options."""

def scan_body(data: bytes | bytearray | memoryview) -> int:
    """The flags of a whole body: ``BODY_8BIT`` when an octet is above 127,
    ``BODY_NEEDS_ENCODING`` unless ``encode_data(data, dot_stuff=False)`` would give back
    the same octets (no NUL, every CR followed by an LF, every LF after a CR, a CRLF at
    the end, or no octet at all). Input as for :func:`encode_data`."""
