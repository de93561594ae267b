"""SASL client responses for SMTP AUTH: PLAIN, LOGIN, XOAUTH2, CRAM-MD5 (the pure twin).

The specification of the hot path ``_sasl``; the compiled twin ``_sasl_c`` behaves
identically (same results, same exceptions, same messages). Each function returns the
base64 text to send (after ``AUTH <mechanism> `` or as the answer to a 334 reply),
without CRLF. Base64 comes from the ``_base64`` twin of the same kind.

Credentials
    ``username``, ``password``, ``authzid`` and ``token`` are ``str``, sent UTF-8
    encoded as given (RFC 4616; no SASLprep), or ``bytes``, sent as they are (for a
    server that expects another encoding). Anything else raises :class:`TypeError`
    naming the field. Each is checked before anything is encoded, in argument order,
    and refused with :class:`~smtpx.errors.InvalidInputError` when it

    * is a ``str`` that cannot be UTF-8 encoded (a lone surrogate);
    * contains NUL, CR or LF, which would end the field or the command line early
      (and, for XOAUTH2, ``\\x01``, its field separator);
    * is empty: an empty username or password (or token) is refused by every
      mechanism (RFC 4616 forbids an empty authentication identity and password).
      Only ``authzid`` may be empty, which means "act as ``username``".

    The message names the field, never its value, and the exception carries no
    reference to the value (no ``__context__`` holding it).

Challenges
    ``challenge`` is the base64 text of the 334 reply, ``str`` or ``bytes`` (its type
    is checked first, with the other arguments; its content after the credentials),
    decoded strictly by ``b64decode``: a malformed one raises
    :class:`~smtpx.errors.ProtocolError`, as does a LOGIN prompt that is neither a
    username nor a password prompt, or an empty CRAM-MD5 challenge.
"""

from __future__ import annotations

import hmac

from smtpx._hot._base64_py import b64decode, b64encode
from smtpx.errors import InvalidInputError, ProtocolError

__all__ = ["sasl_cram_md5", "sasl_login", "sasl_plain", "sasl_xoauth2"]

#: LOGIN prompts (decoded, stripped of trailing NULs (aiosmtpd sends
#: ``User Name\x00``) and of ASCII whitespace, lower-cased) that ask for the
#: username: "Username:" is what almost every server sends; the rest are seen in the wild.
_USERNAME_PROMPTS = frozenset(
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
#: LOGIN prompts that ask for the password.
_PASSWORD_PROMPTS = frozenset({b"password:", b"password"})
#: How much of an unexpected LOGIN prompt the error shows (server data, but unbounded).
_PROMPT_SHOWN = 40

_NUL_CR_LF = (b"\0", b"\r", b"\n")
_NUL_CR_LF_SOH = (*_NUL_CR_LF, b"\x01")


def _utf8(text: str) -> bytes | None:
    """``text`` UTF-8 encoded, or None if it holds a lone surrogate (the failed encode's
    exception, which references the text, does not outlive this call)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _credential(value: object, field: str, *, soh: bool = False, optional: bool = False) -> bytes:
    """The bytes of one credential, refused as the module docstring says.

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
    if soh:
        if any(char in raw for char in _NUL_CR_LF_SOH):
            raise InvalidInputError(f"SASL {field} contains a NUL, CR, LF or \\x01 character")
    elif any(char in raw for char in _NUL_CR_LF):
        raise InvalidInputError(f"SASL {field} contains a NUL, CR or LF character")
    if not raw and not optional:
        raise InvalidInputError(f"SASL {field} is empty")
    return raw


def _check_challenge(challenge: object) -> None:
    """TypeError unless ``challenge`` is ``str`` or ``bytes`` (its content is checked later)."""
    if not isinstance(challenge, (str, bytes)):
        raise TypeError(f"SASL challenge must be str or bytes, not {type(challenge).__name__}")


def sasl_plain(username: str | bytes, password: str | bytes, authzid: str | bytes = "") -> bytes:
    """The PLAIN response (RFC 4616): ``base64(authzid NUL username NUL password)``."""
    user = _credential(username, "username")
    secret = _credential(password, "password")
    identity = _credential(authzid, "authzid", optional=True)
    return b64encode(b"\0".join((identity, user, secret)))


def sasl_login(challenge: str | bytes, username: str | bytes, password: str | bytes) -> bytes:
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


def sasl_xoauth2(username: str | bytes, token: str | bytes) -> bytes:
    """The XOAUTH2 response: ``base64("user=" username "\\x01auth=Bearer " token "\\x01\\x01")``."""
    user = _credential(username, "username", soh=True)
    bearer = _credential(token, "token", soh=True)
    return b64encode(b"user=" + user + b"\x01auth=Bearer " + bearer + b"\x01\x01")


def sasl_cram_md5(challenge: str | bytes, username: str | bytes, password: str | bytes) -> bytes:
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
