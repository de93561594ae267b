"""The DATA encoder: message bytes in, smuggling-safe SMTP wire bytes out (compiled twin).

Behaves exactly as :mod:`smtpx._hot._data_py`, which is the specification: line ends
normalised to CRLF (a bare CR or LF becomes CRLF), then, for DATA, every line that starts
with ``.`` stuffed with one more ``.``; the same output for every split of the input;
NUL octets and (with ``max_line``) over-long lines refused with
:class:`smtpx.errors.InvalidInputError` naming the input offset of the first octet that
cannot be encoded. Input: any C-contiguous buffer of 1-byte items (``TypeError``
otherwise, ``str`` included).
"""

__all__ = ["DataEncoder", "encode_data"]

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
