"""SCRAM-SHA-256 (RFC 5802, RFC 7677), the client side, for SMTP AUTH.

The password never crosses the connection, the server stores only a salted, iterated
hash, and the server proves it knows that hash: a server that cannot (a man in the
middle) is refused before the session goes on. No channel binding (``n,,``): smtpx does
not offer ``SCRAM-SHA-256-PLUS``.

The work is HMAC and PBKDF2 from :mod:`hashlib` (C) and base64 from the hot-path twins,
so this module has no compiled twin of its own.

Exchange (each message base64-encoded on the wire)::

    C: AUTH SCRAM-SHA-256 n,,n=user,r=<client nonce>
    S: 334 r=<client nonce><server nonce>,s=<salt>,i=<iterations>
    C: c=biws,r=<nonce>,p=<client proof>
    S: 334 v=<server signature>            (or e=<error>)
    C: (empty line)
    S: 235
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from typing import Final

from smtpx import _hot
from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["MAX_ITERATIONS", "MIN_ITERATIONS", "ScramSha256", "saslprep"]

#: RFC 7677 5: at least 4096 iterations. Fewer would let whoever sits on the path (and
#: answers for the server) make the proof cheap to attack offline.
MIN_ITERATIONS: Final = 4096
#: More would let a server keep the client computing for minutes (a denial of service).
MAX_ITERATIONS: Final = 1_000_000
#: The longest server message read (server-first and server-final are well under 1 KiB).
_MAX_MESSAGE: Final = 4096

_PROHIBITED: Final = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
    stringprep.in_table_a1,  # unassigned code points (stored strings)
)


def saslprep(text: str, what: str) -> str:
    """``text`` prepared by SASLprep (RFC 4013): non-ASCII spaces become spaces, "commonly
    mapped to nothing" characters go, NFKC; prohibited characters and bad bidirectional
    text raise :class:`InvalidInputError`, which names ``what``, never the value."""
    if text.isascii() and text.isprintable():  # the common case: nothing to map or refuse
        if not text:
            raise InvalidInputError(f"the SCRAM {what} is empty")
        return text
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared:
        raise InvalidInputError(f"the SCRAM {what} is empty after SASLprep")
    for index, char in enumerate(prepared):
        if any(table(char) for table in _PROHIBITED):
            raise InvalidInputError(
                f"the SCRAM {what} holds a character SASLprep prohibits (at index {index})"
            )
    right_to_left = [stringprep.in_table_d1(c) for c in prepared]
    if any(right_to_left) and (
        any(stringprep.in_table_d2(c) for c in prepared)
        or not (right_to_left[0] and right_to_left[-1])
    ):
        raise InvalidInputError(f"the SCRAM {what} mixes text directions (RFC 3454 6)")
    return prepared


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


class ScramSha256:
    """One SCRAM-SHA-256 exchange: :meth:`first`, then :meth:`answer` for each 334.

    ``nonce`` is for tests (RFC 7677's example); by default 24 random characters.
    """

    __slots__ = ("_bare", "_nonce", "_password", "_server_signature", "done")

    def __init__(self, username: str, password: str, *, nonce: str | None = None) -> None:
        user = saslprep(username, "username").replace("=", "=3D").replace(",", "=2C")
        self._password = saslprep(password, "password").encode()
        self._nonce = nonce if nonce is not None else secrets.token_urlsafe(18)
        self._bare = f"n={user},r={self._nonce}"
        self._server_signature: bytes | None = None
        #: The server proved it knows the password: the exchange may end with 235.
        self.done = False

    def first(self) -> bytes:
        """The initial response (client-first message), base64."""
        return _hot.b64encode(f"n,,{self._bare}".encode())

    def answer(self, challenge: str) -> bytes:
        """The answer (base64, possibly empty) to a 334 challenge. Raises
        :class:`ProtocolError` for a malformed, unsafe or failed server message, and
        when the server's signature is wrong."""
        message = self._decode(challenge)
        if self._server_signature is None:
            return self._client_final(message)
        self.verify(message)
        return b""

    def verify(self, message: str) -> None:
        """Check the server-final message (``v=``): the server knows the password."""
        if self._server_signature is None or self.done:
            raise ProtocolError("unexpected SCRAM message from the server")
        if message.startswith("e="):
            raise ProtocolError(f"the server ended SCRAM with an error: {message[2:80]}")
        if not message.startswith("v="):
            raise ProtocolError("malformed SCRAM server-final message (no v=)")
        signature = _hot.b64decode(message[2:])
        if not hmac.compare_digest(signature, self._server_signature):
            raise ProtocolError(
                "the server's SCRAM signature is wrong: it does not know the password "
                "(someone else may be answering for it)"
            )
        self.done = True

    def verify_success_data(self, text: str) -> None:
        """A 235 that carries the server-final message itself (RFC 4954 forbids it, some
        servers do it): verify it, or refuse a server that never proved itself."""
        if self.done:
            return
        words = text.split()
        if self._server_signature is not None and words:
            try:
                message = self._decode(words[-1])
            except ProtocolError:
                message = ""
            if message.startswith(("v=", "e=")):
                self.verify(message)
                return
        raise ProtocolError("the server accepted SCRAM without proving it knows the password")

    def _decode(self, challenge: str) -> str:
        if len(challenge) > _MAX_MESSAGE:
            raise ProtocolError("SCRAM server message too long")
        try:
            return _hot.b64decode(challenge.strip()).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("SCRAM server message is not UTF-8") from None

    def _client_final(self, server_first: str) -> bytes:
        fields = server_first.split(",")
        if fields[0].startswith("m="):
            raise ProtocolError("the server requires a SCRAM extension smtpx does not know")
        if len(fields) < 3 or not (
            fields[0].startswith("r=") and fields[1].startswith("s=") and fields[2].startswith("i=")
        ):
            raise ProtocolError("malformed SCRAM server-first message")
        nonce, salt_b64, count = fields[0][2:], fields[1][2:], fields[2][2:]
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ProtocolError("the server's SCRAM nonce does not extend the client's")
        if not nonce.isascii() or not nonce.isprintable():
            raise ProtocolError("the server's SCRAM nonce is not printable ASCII")
        salt = _hot.b64decode(salt_b64)
        if not salt:
            raise ProtocolError("the server's SCRAM salt is empty")
        if not (count.isascii() and count.isdigit() and len(count) <= 10):
            raise ProtocolError("the server's SCRAM iteration count is not a number")
        iterations = int(count)
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ProtocolError(
                f"the server's SCRAM iteration count ({iterations}) is outside "
                f"{MIN_ITERATIONS}..{MAX_ITERATIONS}"
            )
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._bare},{server_first},{without_proof}".encode()
        client_signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        final = f"{without_proof},p={_hot.b64encode(proof).decode('ascii')}"
        return _hot.b64encode(final.encode())
