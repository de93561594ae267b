"""Quoted-printable body encoding, RFC 2045 section 6.7 (the compiled twin).

Behaves exactly as :mod:`smtpx._hot._qp_py`, which is the specification (read its
docstring for the rules). Inputs of at least 16 KiB are encoded with the GIL released.
"""

__all__ = ["qp_encode"]

def qp_encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode text as quoted-printable with CRLF line ends (see ``smtpx._hot._qp_py``).

    Line breaks (CRLF, bare LF, bare CR) become CRLF; printable ASCII but ``=`` is
    literal, as are space and tab except at the end of a line; every other octet is
    ``=XX``; soft line breaks keep every line within 76 characters. ``TypeError`` when
    ``data`` is not bytes-like.
    """
