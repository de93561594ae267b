"""Base64 for SMTP: SASL responses, server challenges and MIME bodies (the compiled twin).

Behaves exactly as :mod:`smtpx._hot._base64_py`, which is the specification (read its
docstring for the rules). Inputs of at least 16 KiB are encoded with the GIL released.
"""

__all__ = ["b64decode", "b64encode", "b64encode_mime"]

def b64encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` in base64 with padding, on one line (no line break)."""

def b64decode(data: bytes | bytearray | memoryview | str) -> bytes:
    """Decode a server challenge strictly (see ``smtpx._hot._base64_py`` for the rules).

    Raises :class:`~smtpx.errors.ProtocolError` when ``data`` is not canonical base64.
    """

def b64encode_mime(data: bytes | bytearray | memoryview, line_length: int = 76) -> bytes:
    """Encode ``data`` as a MIME base64 body: CRLF-terminated lines of ``line_length``.

    ``line_length`` must be a positive multiple of 4, at most 76
    (:class:`~smtpx.errors.InvalidInputError` otherwise; :class:`TypeError` if it is
    not an ``int``).
    """
