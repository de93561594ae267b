"""SMTP replies: the :class:`Response` value and the incremental :class:`ReplyParser`
(the compiled twin).

Behaves exactly as :mod:`smtpx._hot._reply_py`, which is the specification (read its
docstring for the grammar, the order in which errors are found and their messages).
"""

from collections.abc import Sequence
from typing import NoReturn, final

from typing_extensions import disjoint_base

__all__ = ["ReplyParser", "Response"]

@final
class Response:
    """One server reply: its code, its lines of text and its bytes as received.

    ``Response(code, lines=("",), *, raw=None)`` builds one (for tests and fakes): ``code``
    must be 200..559 with a middle digit 0..5, and no line may contain CR, LF or NUL
    (:class:`~smtpx.errors.InvalidInputError`; :class:`TypeError` for a wrong type).
    ``raw`` defaults to the wire form (``250-a\\r\\n250 b\\r\\n``). Replies parsed by
    :class:`ReplyParser` decode their lines only when first asked. Responses are
    immutable, compare and hash by ``(code, raw)``, and cannot be subclassed.
    """

    def __init__(
        self, code: int, lines: Sequence[str] = ("",), *, raw: bytes | None = None
    ) -> None: ...
    @property
    def code(self) -> int:
        """The three-digit reply code."""
    @property
    def lines(self) -> tuple[str, ...]:
        """The text of each line: after the code and its separator, without CRLF, decoded
        as UTF-8 (invalid bytes become U+FFFD). ``250`` and ``250 `` have text ``""``."""
    @property
    def text(self) -> str:
        """The lines joined with ``"\\n"``."""
    @property
    def raw(self) -> bytes:
        """The bytes of the reply exactly as received, CRLFs included."""
    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 status code (``"2.1.0"``) that starts the first line's text, or None.

        It is ``class.subject.detail``: class 2, 4 or 5 and equal to the first digit of
        ``code``, subject and detail of 1 to 3 digits, then a space or the end of the line.
        """
    @property
    def message(self) -> str:
        """``text`` without the enhanced status code (and the space after it) that starts
        each line carrying one."""
    @property
    def is_success(self) -> bool:
        """A 2yz reply: the command was accepted."""
    @property
    def is_intermediate(self) -> bool:
        """A 3yz reply: the server waits for more (DATA, AUTH)."""
    @property
    def is_transient(self) -> bool:
        """A 4yz reply: the command failed; it may succeed later."""
    @property
    def is_permanent(self) -> bool:
        """A 5yz reply: the command failed and will fail again unchanged."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[object, tuple[int, bytes, tuple[str, ...] | None]]: ...

@disjoint_base
class ReplyParser:
    """Split a byte stream from an SMTP server into :class:`Response` objects (sans-IO).

    ``feed()`` the bytes as they arrive, then take the replies with ``next_reply()`` (one
    at a time) or ``replies()`` (all complete ones). ``max_line`` and ``max_reply`` cap a
    line (CRLF included) and a whole reply, in octets (5..2**30;
    :class:`~smtpx.errors.InvalidInputError` otherwise, :class:`TypeError` for a non-int).

    A stream that breaks the grammar or a limit raises
    :class:`~smtpx.errors.ProtocolError` from ``next_reply()``/``replies()`` (never from
    ``feed()``): ``next_reply()`` raises as soon as the reply it would return is bad;
    ``replies()`` first returns every good reply that precedes the error, and raises it
    on the next call. After that, the parser is unusable: every later call raises
    ``ProtocolError("reply parser is unusable after an earlier protocol error")`` and
    ``feed()`` drops its data. Whatever the chunking of the stream, draining after each
    ``feed()`` yields the same replies and then the same error.
    """

    def __init__(self, *, max_line: int = 8192, max_reply: int = 65536) -> None: ...
    def __reduce__(self) -> NoReturn:
        """Refused: a parser is not pickled or copied (TypeError)."""
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the server. Nothing is parsed here."""
    def next_reply(self) -> Response | None:
        """The next complete reply, or None until more bytes are fed.

        Raises ProtocolError as soon as that reply breaks the grammar or a limit.
        """
    def replies(self) -> list[Response]:
        """Every complete reply buffered now, in order (an empty list if none).

        Good replies that precede a protocol error are returned first; the error is raised
        by the next call (at once when no good reply precedes it).
        """
    @property
    def pending(self) -> int:
        """Bytes buffered and not yet returned as a reply: once drained, the bytes of a
        reply that is not complete yet."""
    def clear(self) -> int:
        """Drop every buffered byte that was not returned as a reply (at STARTTLS: data
        the server sent before TLS must not be trusted); return how many there were.

        Stream offsets and line numbers in later messages go on counting the dropped bytes.
        """
