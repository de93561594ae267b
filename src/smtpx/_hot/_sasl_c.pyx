"""SASL client responses for SMTP AUTH: PLAIN, LOGIN, XOAUTH2, CRAM-MD5 (the compiled twin).

Behaves exactly as :mod:`smtpx._hot._sasl_py`, which is the specification (read its
docstring for the rules). Base64 comes from the compiled ``_base64_c``; credentials are
scanned for forbidden characters in one typed pass each.
"""

import hmac

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from smtpx._hot._base64_c import b64decode, b64encode
from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["sasl_cram_md5", "sasl_login", "sasl_plain", "sasl_xoauth2"]

# LOGIN prompts (decoded, stripped of trailing NULs (aiosmtpd sends
# ``User Name\x00``) and of ASCII whitespace, lower-cased) that ask for the
# username: "Username:" is what almost every server sends; the rest are seen in the wild.
cdef frozenset _USERNAME_PROMPTS = frozenset(
    {
        b"username:",
        b"username",
        b"user name:",
        b"user name",
        b"user:",
        b"user",
        b"login:",
        b"login",
    }
)
# LOGIN prompts that ask for the password.
cdef frozenset _PASSWORD_PROMPTS = frozenset({b"password:", b"password"})
# How much of an unexpected LOGIN prompt the error shows (server data, but unbounded).
cdef Py_ssize_t _PROMPT_SHOWN = 40


cdef object _utf8(str text):
    """``text`` UTF-8 encoded, or None if it holds a lone surrogate (the failed encode's
    exception, which references the text, does not outlive this call)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


cdef bint _has_forbidden(object raw, bint soh):
    """Whether the bytes ``raw`` hold NUL, CR or LF (or, with ``soh``, ``\\x01``)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(PyBytes_GET_SIZE(raw)):
        c = p[i]
        if c == 0 or c == 13 or c == 10 or (soh and c == 1):
            return True
    return False


cdef object _credential(object value, str field, bint soh=False, bint optional=False):
    """The bytes of one credential, refused as the pure twin's docstring says.

    ``soh``: refuse ``\\x01`` too (XOAUTH2); ``optional``: allow it to be empty.
    """
    if isinstance(value, str):
        raw = _utf8(value)
        if raw is None:
            raise InvalidInputError(f"SASL {field} is not valid Unicode: it has a lone surrogate")
    elif isinstance(value, bytes):
        raw = value
    else:
        raise TypeError(f"SASL {field} must be str or bytes, not {type(value).__name__}")
    if _has_forbidden(raw, soh):
        if soh:
            raise InvalidInputError(f"SASL {field} contains a NUL, CR, LF or \\x01 character")
        raise InvalidInputError(f"SASL {field} contains a NUL, CR or LF character")
    if PyBytes_GET_SIZE(raw) == 0 and not optional:
        raise InvalidInputError(f"SASL {field} is empty")
    return raw


cdef int _check_challenge(object challenge) except -1:
    """TypeError unless ``challenge`` is ``str`` or ``bytes`` (its content is checked later)."""
    if not isinstance(challenge, (str, bytes)):
        raise TypeError(f"SASL challenge must be str or bytes, not {type(challenge).__name__}")
    return 0


def sasl_plain(username, password, authzid=""):
    """The PLAIN response (RFC 4616): ``base64(authzid NUL username NUL password)``."""
    user = _credential(username, "username")
    secret = _credential(password, "password")
    identity = _credential(authzid, "authzid", soh=False, optional=True)
    return b64encode(b"\0".join((identity, user, secret)))


def sasl_login(challenge, username, password):
    """The LOGIN response to one server prompt: ``base64(username)`` when ``challenge``
    asks for the username, ``base64(password)`` when it asks for the password.

    Prompts are matched without case and surrounding whitespace against a fixed list:
    ``username``, ``user name``, ``user``, ``login`` and ``password``, each with or
    without a trailing colon. Any other prompt raises
    :class:`~smtpx.errors.ProtocolError` showing at most its first 40 bytes.
    """
    _check_challenge(challenge)
    user = _credential(username, "username")
    secret = _credential(password, "password")
    prompt = b64decode(challenge).rstrip(b"\x00").strip()
    asked = prompt.lower()
    if asked in _USERNAME_PROMPTS:
        return b64encode(user)
    if asked in _PASSWORD_PROMPTS:
        return b64encode(secret)
    shown = repr(prompt[:_PROMPT_SHOWN]) + ("..." if len(prompt) > _PROMPT_SHOWN else "")
    raise ProtocolError(f"unexpected LOGIN prompt {shown}: expected a username or password prompt")


def sasl_xoauth2(username, token):
    """The XOAUTH2 response: ``base64("user=" username "\\x01auth=Bearer " token "\\x01\\x01")``."""
    user = _credential(username, "username", soh=True)
    bearer = _credential(token, "token", soh=True)
    return b64encode(b"user=" + user + b"\x01auth=Bearer " + bearer + b"\x01\x01")


def sasl_cram_md5(challenge, username, password):
    """The CRAM-MD5 response (RFC 2195): ``base64(username SP hex(HMAC-MD5(password,
    decoded challenge)))``, the digest in lower-case hex. An empty challenge raises
    :class:`~smtpx.errors.ProtocolError`."""
    _check_challenge(challenge)
    user = _credential(username, "username")
    secret = _credential(password, "password")
    decoded = b64decode(challenge)
    if not decoded:
        raise ProtocolError("empty CRAM-MD5 challenge")
    digest = hmac.digest(secret, decoded, "md5").hex()
    return b64encode(user + b" " + digest.encode("ascii"))
