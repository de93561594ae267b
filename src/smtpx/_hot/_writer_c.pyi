"""The command writer: SMTP commands and message data queued into one write buffer
(the compiled twin).

Behaves exactly as :mod:`smtpx._hot._writer_py`, which is the specification (read its
docstring for what each argument may hold, the order in which problems are found and
their messages, the line limits, and the copy/reference rule for message data).
Wrong values raise :class:`~smtpx.errors.InvalidInputError` and leave the buffer as it
was; wrong types raise :class:`TypeError`.
"""

from collections.abc import Sequence
from typing import NoReturn

__all__ = ["CommandBuffer"]

class CommandBuffer:
    """SMTP commands and message data, queued in order to leave in one write.

    Every method validates all its arguments before it appends anything;
    :meth:`chunks` / :meth:`take` hand the queued bytes to the transport.
    """

    def __init__(self, *, copy_threshold: int = 16384) -> None:
        """``copy_threshold``: bodies of at least this many bytes are kept by reference
        (a ``memoryview``) instead of copied; 0 keeps every non-empty body by reference."""
    def __reduce__(self) -> NoReturn: ...
    def ehlo(self, name: str) -> None:
        """Queue ``EHLO name``: a domain (ASCII; an IDN as A-labels) or an address
        literal such as ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``."""
    def helo(self, name: str) -> None:
        """Queue ``HELO name`` (the same rules as :meth:`ehlo`)."""
    def mail(
        self,
        sender: str,
        *,
        size: int | None = None,
        body: str | None = None,
        smtputf8: bool = False,
        ret: str | None = None,
        envid: str | None = None,
        requiretls: bool = False,
        params: Sequence[str] = (),
    ) -> None:
        """Queue ``MAIL FROM:<sender> [SIZE=n] [BODY=b] [SMTPUTF8] [RET=r] [ENVID=e]
        [REQUIRETLS] [params...]``.

        ``sender`` ``""`` is the null reverse-path. ``size``: an int >= 0 (RFC 1870).
        ``body``: ``7BIT``, ``8BITMIME`` or ``BINARYMIME``; ``ret``: ``FULL`` or ``HDRS``
        (both ASCII case-insensitive, sent upper-case). ``envid``: 1..100 printable ASCII
        characters, sent as xtext (RFC 3461). ``smtputf8`` allows UTF-8 in the sender and
        in parameter values. ``params``: further ``KEYWORD`` or ``KEYWORD=value`` strings,
        none repeating a keyword, nor one that a keyword argument sets.
        """
    def rcpt(
        self,
        recipient: str,
        *,
        notify: Sequence[str] | None = None,
        orcpt: str | None = None,
        smtputf8: bool = False,
        params: Sequence[str] = (),
    ) -> None:
        """Queue ``RCPT TO:<recipient> [NOTIFY=...] [ORCPT=...] [params...]``.

        ``recipient``: a mailbox or ``postmaster``. ``notify`` (RFC 3461): ``["NEVER"]``,
        or SUCCESS, FAILURE and/or DELAY without repeats (ASCII case-insensitive, sent
        upper-case, in the order given). ``orcpt``: the original recipient's mailbox,
        sent as ``rfc822;`` + xtext, or -- when non-ASCII, which needs ``smtputf8`` --
        ``utf-8;`` + utf-8-addr-xtext (RFC 6533). ``smtputf8`` allows UTF-8 in the
        recipient and parameter values (SMTPUTF8 itself goes on MAIL). ``params`` as for
        :meth:`mail`.
        """
    def data(self) -> None:
        """Queue ``DATA``."""
    def rset(self) -> None:
        """Queue ``RSET``."""
    def noop(self) -> None:
        """Queue ``NOOP``."""
    def quit(self) -> None:
        """Queue ``QUIT``."""
    def starttls(self) -> None:
        """Queue ``STARTTLS``."""
    def bdat(self, size: int, *, last: bool = False) -> None:
        """Queue ``BDAT size`` or ``BDAT size LAST`` (RFC 3030); the chunk follows with
        :meth:`body`."""
    def auth(self, mechanism: str, initial_response: bytes | None = None) -> None:
        """Queue ``AUTH MECHANISM [initial-response]`` (RFC 4954).

        ``mechanism``: 1..20 characters of ``A-Z 0-9 - _`` (ASCII case-insensitive, sent
        upper-case). ``initial_response``: base64 text, ``b""`` is sent as ``=``.
        Messages about the response give positions, never its content.
        """
    def auth_response(self, response: bytes) -> None:
        """Queue a SASL continuation line: base64 text (``b""`` for an empty response),
        or ``b"*"`` to cancel the exchange (RFC 4954 4)."""
    def vrfy(self, argument: str) -> None:
        """Queue ``VRFY argument``: a user name or mailbox, printable ASCII and space."""
    def body(self, data: bytes | bytearray | memoryview) -> None:
        """Append message data as it is (already encoded by the DATA encoder).

        Data smaller than ``copy_threshold`` is copied; larger data is kept by reference,
        as a read-only ``memoryview`` of ``data`` (which must not change until sent).
        Empty data appends nothing; ``data`` must be C-contiguous.
        """
    def chunks(self) -> list[bytes | memoryview]:
        """Everything queued, in order, as few pieces as possible: one ``bytes`` per run
        of commands and copied data, one ``memoryview`` per body kept by reference."""
    def take(self) -> list[bytes | memoryview]:
        """:meth:`chunks`, then :meth:`clear`: the pieces to send, leaving the buffer empty."""
    def getvalue(self) -> bytes:
        """Everything queued, joined into one ``bytes`` (a copy: for tests and small use)."""
    def clear(self) -> None:
        """Drop everything queued and reset :attr:`commands`."""
    def __len__(self) -> int:
        """Bytes queued."""
    @property
    def commands(self) -> int:
        """Command lines queued since the last :meth:`clear` / :meth:`take` (every
        method but :meth:`body` queues one; a pipelined server answers each)."""
