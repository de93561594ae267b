"""The I/O requests the protocol engine makes of a driver.

The engine's procedures are generators: they yield one of these requests, and the driver
(sync socket or asyncio) carries it out and sends the result back in — the bytes read
for a :class:`Read`, ``None`` otherwise. A driver maps its OS errors to smtpx errors
(:class:`~smtpx.errors.NetworkError`, :class:`~smtpx.errors.SmtpTimeoutError`,
:class:`~smtpx.errors.TlsError`) and throws them into the generator, so the engine
decides what a failure at that point means (for example, that delivery is unknown).

A driver's loop is therefore::

    def run(procedure):
        result = None
        while True:
            try:
                op = procedure.send(result) if ... else procedure.throw(error)
            except StopIteration as stop:
                return stop.value
            result = carry_out(op)   # errors are thrown back in on the next turn
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["NextChunk", "Op", "Procedure", "Read", "StartTls", "Write"]


@dataclass(frozen=True, slots=True)
class Write:
    """Write every chunk, in order, completely (``socket.sendmsg`` / ``writelines``).

    ``phase`` names the time-out that bounds the write without progress (``"command"``
    or ``"data_block"``).
    """

    chunks: Sequence[bytes | memoryview]
    phase: str


@dataclass(frozen=True, slots=True)
class Read:
    """Read whatever bytes are available (at least one; ``b""`` means end of stream).

    ``phase`` names the time-out for the reply being read. ``new_reply`` starts a new
    deadline; further reads for the same reply share it, so a server that trickles a
    byte at a time cannot stretch a reply's deadline.
    """

    phase: str
    new_reply: bool


@dataclass(frozen=True, slots=True)
class StartTls:
    """Run the TLS handshake on the connection now (after STARTTLS was accepted)."""


@dataclass(frozen=True, slots=True)
class NextChunk:
    """The next chunk of a body the caller gives as an asynchronous iterator
    (``await anext(source, None)``): bytes-like, or None at its end. Only the asyncio
    driver carries it out; the caller's errors are thrown back in."""

    source: Any


Op: TypeAlias = Write | Read | StartTls | NextChunk
#: An engine procedure: yields requests, receives read bytes, returns its result.
Procedure: TypeAlias = Generator[Op, Any, Any]
