"""SASL client responses for SMTP AUTH: PLAIN, LOGIN, XOAUTH2, CRAM-MD5 (the compiled twin).

Behaves exactly as :mod:`smtpx._hot._sasl_py`, which is the specification (read its
docstring for the rules). Base64 comes from the compiled ``_base64_c``.
"""

__all__ = ["sasl_cram_md5", "sasl_login", "sasl_plain", "sasl_xoauth2"]

def sasl_plain(username: str | bytes, password: str | bytes, authzid: str | bytes = "") -> bytes:
    """The PLAIN response (RFC 4616): ``base64(authzid NUL username NUL password)``."""

def sasl_login(challenge: str | bytes, username: str | bytes, password: str | bytes) -> bytes:
    """The LOGIN response to one server prompt: ``base64(username)`` when ``challenge``
    asks for the username, ``base64(password)`` when it asks for the password.

    Prompts are matched without case and surrounding whitespace against a fixed list:
    ``username``, ``user name``, ``user``, ``login`` and ``password``, each with or
    without a trailing colon. Any other prompt raises
    :class:`~smtpx.errors.ProtocolError` showing at most its first 40 bytes.
    """

def sasl_xoauth2(username: str | bytes, token: str | bytes) -> bytes:
    """The XOAUTH2 response: ``base64("user=" username "\\x01auth=Bearer " token "\\x01\\x01")``."""

def sasl_cram_md5(challenge: str | bytes, username: str | bytes, password: str | bytes) -> bytes:
    """The CRAM-MD5 response (RFC 2195): ``base64(username SP hex(HMAC-MD5(password,
    decoded challenge)))``, the digest in lower-case hex. An empty challenge raises
    :class:`~smtpx.errors.ProtocolError`."""
