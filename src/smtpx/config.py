"""The transports' configuration: time-outs, pool limits, TLS, credentials, envelopes, URLs.

Every object here is a small, frozen, slotted dataclass (or an enum), validated when it is
made, so that a transport built from them never meets a bad value halfway through a
conversation. The protocol engine and both transports read them; none of them does I/O,
except :meth:`TlsParameters.create_context` (which reads certificate files) and
:func:`default_hello_name` (which may ask the resolver for this machine's name).

Refused input
    A value of the wrong *type* is a programming error and raises :class:`TypeError`
    (``"Timeouts connect must be a number of seconds, not bool"``: ``bool`` is never a
    number here). A wrong *value* raises :class:`smtpx.errors.InvalidInputError` saying
    what is wrong and where (``"Envelope recipients[1] has no '@' (expected
    local@domain)"``). Like the command writer, messages do not echo text arguments
    (addresses, names, parameters, URLs); they may quote one offending character and
    give its index, and name a URL's unsupported scheme or query key. No message and no
    ``repr`` ever shows a password or a token: a ``repr`` shows ``'***'`` in its place.

Decisions worth knowing
    - Time-outs are seconds, more than 0 and at most :data:`MAX_SECONDS` (one day).
    - TLS: certificates and host names are verified against the system's trust store, or
      against *only* the roots given as ``ca_file``/``ca_data``; TLS 1.2 is the minimum.
    - Authentication: see :data:`DEFAULT_MECHANISMS` and
      :attr:`Credentials.default_mechanisms`.
    - URLs: see :func:`parse_url` for the grammar and the default ports.
    - Hello names: see :func:`default_hello_name` and :func:`validate_hello_name`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum
from typing import Final, Literal, NoReturn, TypeVar, get_args
from urllib.parse import unquote_to_bytes

from smtpx.errors import InvalidInputError

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_MECHANISMS",
    "MAX_SECONDS",
    "SMTP_PORT",
    "SUBMISSIONS_PORT",
    "SUBMISSION_PORT",
    "TIMEOUT_PHASES",
    "Credentials",
    "Envelope",
    "Mechanism",
    "PoolConfig",
    "TimeoutPhase",
    "Timeouts",
    "Tls",
    "TlsMode",
    "TlsParameters",
    "TransportUrl",
    "default_hello_name",
    "parse_url",
    "validate_hello_name",
]

#: Plain SMTP (relay to relay, or a local MTA), RFC 5321.
SMTP_PORT: Final = 25
#: Message submission with STARTTLS, RFC 6409.
SUBMISSION_PORT: Final = 587
#: Message submission over implicit TLS, RFC 8314.
SUBMISSIONS_PORT: Final = 465

#: The longest time-out, in seconds: a day is longer than any SMTP server keeps a
#: connection or a phase waiting, and far below what socket and threading time-outs take.
MAX_SECONDS: Final = 86_400.0

#: RFC 1035: 255 octets on the wire are at most 253 characters as text.
_MAX_DOMAIN: Final = 253
#: RFC 1035 2.3.4.
_MAX_LABEL: Final = 63

_LETTERS_DIGITS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#: Letters, digits and hyphens: the characters of a domain label (RFC 5321 4.1.2).
_LDH: Final = frozenset(_LETTERS_DIGITS + "-")
#: A host to connect to may also hold "_" (container and intranet names do; resolvers
#: take them), though a hello name may not.
_HOST_CHARS: Final = frozenset(_LETTERS_DIGITS + "-_")
_IPV4_CHARS: Final = frozenset("0123456789.")
_IPV6_CHARS: Final = frozenset("0123456789abcdefABCDEF:.")
#: An ESMTP parameter keyword (RFC 5321 4.1.2 esmtp-keyword).
_KEYWORD: Final = re.compile("[A-Za-z0-9][A-Za-z0-9-]*")
#: A URL scheme (RFC 3986 3.1), only to decide whether naming it in a message is safe.
_SCHEME: Final = re.compile("[A-Za-z][A-Za-z0-9+.-]*")

# fmt: off
_C0_NAMES: Final = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT",
    "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
    "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
)
# fmt: on
#: The first character refused in ASCII-only text: anything but printable ASCII and space.
_REFUSED_ASCII: Final = re.compile("[^\x20-\x7e]")
#: The first character refused in UTF-8 text: a control, a line or paragraph separator
#: (nothing ``str.splitlines`` splits on reaches the wire) or a lone surrogate.
_REFUSED_UTF8: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
#: Characters that would split an SMTP line, in credentials.
_LINE_BREAKERS: Final = re.compile("[\x00\r\n]")


def _refuse(message: str) -> NoReturn:
    raise InvalidInputError(message)


def _text(value: object, what: str) -> str:
    """``value`` as an exact ``str`` (a subclass is read by its stored value)."""
    if type(value) is str:
        return value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return str.__str__(value)


def _control_name(code: int) -> str:
    if code < 0x20:
        return _C0_NAMES[code]
    return "DEL" if code == 0x7F else f"U+{code:04X}"


def _scan(text: str, what: str, *, utf8: bool, hint: str = "") -> None:
    """Refuse the first control character, separator, surrogate or (unless ``utf8``)
    non-ASCII character of ``text``; ``hint`` follows the non-ASCII message."""
    found = (_REFUSED_UTF8 if utf8 else _REFUSED_ASCII).search(text)
    if found is None:
        return
    index = found.start()
    code = ord(text[index])
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
        _refuse(f"{what} contains a control character ({_control_name(code)}) at index {index}")
    if utf8:
        _refuse(f"{what} contains a surrogate (U+{code:04X}) at index {index}")
    _refuse(f"{what} contains a non-ASCII character at index {index}{hint}")


def _sequence(value: object, what: str) -> Sequence[object]:
    """``value`` as a sequence of items, refusing a lone string (a common slip)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence of str, not {type(value).__name__}")
    return value


def _seconds(value: object, what: str) -> float:
    """A time-out: a finite number of seconds, more than 0 and at most a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not 0 < value <= MAX_SECONDS:  # NaN fails every comparison
        _refuse(f"{what} must be more than 0 and at most {MAX_SECONDS:g} seconds, not {value!r}")
    return float(value)


def _count(value: object, what: str, minimum: int) -> int:
    """An ``int`` (never a ``bool``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        _refuse(f"{what} must be at least {minimum}, not {value!r}")
    return int(value)


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


# ---------------------------------------------------------------------- names


def _domain(text: str, what: str, chars: frozenset[str]) -> None:
    """Check a non-empty ASCII ``text`` as a domain name: dot-separated labels of
    ``chars``, 1..63 characters, no hyphen first or last; not all digits at the end."""
    if len(text) > _MAX_DOMAIN:
        _refuse(f"{what} is too long ({len(text)} characters; the limit is {_MAX_DOMAIN})")
    if text.endswith("."):
        _refuse(f"{what} ends with '.' (write the name without the final dot)")
    labels = text.split(".")
    start = 0
    for label in labels:
        if not label:
            _refuse(f"{what} has an empty label at index {start}")
        if len(label) > _MAX_LABEL:
            _refuse(f"{what} has a label longer than {_MAX_LABEL} characters at index {start}")
        if label[0] == "-":
            _refuse(f"{what} has a label starting with '-' at index {start}")
        if label[-1] == "-":
            _refuse(f"{what} has a label ending with '-' at index {start + len(label) - 1}")
        for offset, char in enumerate(label):
            if char not in chars:
                _refuse(
                    f"{what} contains {char!r} at index {start + offset}, "
                    "which is not allowed in a domain name"
                )
        start += len(label) + 1
    if labels[-1].isdigit():
        # "10.1.2" is no IPv4 address, yet resolvers would read it as one (inet_aton).
        _refuse(f"{what} ends with an all-digit label (neither a domain name nor an IPv4 address)")


def _address_literal(text: str) -> bool:
    """``[IPv4]`` or ``[IPv6:address]`` (RFC 5321 4.1.3); general literals are refused."""
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    parse: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
    if inner[:5].lower() == "ipv6:":
        address, chars, parse = inner[5:], _IPV6_CHARS, ipaddress.IPv6Address
    else:
        address, chars, parse = inner, _IPV4_CHARS, ipaddress.IPv4Address
    if not address or not chars.issuperset(address):
        return False
    try:
        parse(address)
    except ValueError:
        return False
    return True


def _is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 address without a zone (``%eth0``)."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host(value: object, what: str) -> str:
    """A host to connect to and verify: an IP address (IPv6 without brackets) or an
    ASCII host name (an international name as its A-labels)."""
    text = _text(value, what)
    if not text:
        _refuse(f"{what} is empty")
    if _is_ip_address(text):
        return text
    _scan(text, what, utf8=False, hint=" (write an international name as A-labels, xn--...)")
    if text[0] == "[":
        _refuse(f"{what} is in brackets (give an IP address without them)")
    _domain(text, what, _HOST_CHARS)
    return text


def validate_host(host: str) -> str:
    """A host to connect to: an IP address or an ASCII host name (``InvalidInputError``
    otherwise)."""
    return _host(host, "host")


def validate_hello_name(name: str) -> str:
    """Return ``name`` if it can follow ``EHLO``/``HELO``, else raise ``InvalidInputError``.

    A hello name is a domain name -- ASCII labels of letters, digits and hyphens, an
    international name as its A-labels (``xn--...``), without a final dot -- or an
    address literal: ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 4.1.3). A bare
    IP address is refused: it must be written as an address literal.
    """
    what = "hello name"
    text = _text(name, what)
    if not text:
        _refuse(f"{what} is empty")
    _scan(text, what, utf8=False, hint=" (write an international name as A-labels, xn--...)")
    if text[0] == "[":
        if not _address_literal(text):
            _refuse(f"{what} is not a valid address literal (like [192.0.2.1] or [IPv6:::1])")
        return text
    if _is_ip_address(text):
        _refuse(f"{what} is a bare IP address (write it as [192.0.2.1] or [IPv6:2001:db8::1])")
    _domain(text, what, _LDH)
    return text


#: First or last labels that mark a host name as a placeholder rather than a name the
#: world can resolve ("localhost", "localhost.localdomain", "ip6-localhost" has no dot).
_PLACEHOLDER_LABELS: Final = frozenset(("localhost", "localdomain", "localhost6", "localdomain6"))
#: The hello name when the machine has no usable name (what lettre and Nodemailer send).
_FALLBACK_HELLO_NAME: Final = "[127.0.0.1]"


def default_hello_name() -> str:
    """The hello name to use when none was given: this machine's fully qualified name, or
    ``"[127.0.0.1]"`` when it has none worth sending.

    The name is :func:`socket.getfqdn` without a final dot (``"host.example.com."`` is
    refused by some servers, e.g. Outlook's ``501 5.5.4``). It is used when it passes
    :func:`validate_hello_name`, holds at least one dot, and neither its first nor its last
    label is ``localhost``, ``localdomain``, ``localhost6`` or ``localdomain6``. Otherwise
    (a bare host name, ``localhost.localdomain``, an IP address, an invalid name) the
    address literal ``[127.0.0.1]`` is returned: an honest "no name", which servers
    accept. :func:`socket.getfqdn` may wait for the resolver: call this once per
    transport, not per connection.
    """
    name = socket.getfqdn().removesuffix(".")
    labels = name.lower().split(".")
    if len(labels) < 2 or {labels[0], labels[-1]} & _PLACEHOLDER_LABELS:
        return _FALLBACK_HELLO_NAME
    try:
        return validate_hello_name(name)
    except InvalidInputError:
        return _FALLBACK_HELLO_NAME


# ---------------------------------------------------------------------- time-outs

#: The phases of a conversation that have their own deadline; ``SmtpTimeoutError.phase``
#: holds one of them.
TimeoutPhase = Literal["connect", "greeting", "command", "data", "data_block", "data_end", "quit"]
TIMEOUT_PHASES: Final[tuple[TimeoutPhase, ...]] = get_args(TimeoutPhase)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """The deadline of each phase of a conversation, in seconds (floats > 0, at most a day).

    The defaults are RFC 5321 4.5.3.2's minimums, and 30 s to connect and to say QUIT:

    ``connect`` (30)
        To open the TCP connection and, with implicit TLS, finish the handshake.
    ``greeting`` (300)
        For the server's 220 greeting.
    ``command`` (300)
        For the reply to each command: EHLO, STARTTLS (and its handshake), AUTH, MAIL,
        RCPT, RSET, NOOP.
    ``data`` (120)
        For the 354 reply to DATA.
    ``data_block`` (180)
        For each write of message data to make progress.
    ``data_end`` (600)
        For the reply after the end of the data (``.`` or ``BDAT ... LAST``).
    ``quit`` (30)
        For the reply to QUIT.

    ``Timeouts.uniform(60)`` gives every phase the same deadline (``builder.timeout(60)``).
    """

    connect: float = 30.0
    greeting: float = 300.0
    command: float = 300.0
    data: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0
    quit: float = 30.0

    def __post_init__(self) -> None:
        for phase in TIMEOUT_PHASES:
            seconds = _seconds(getattr(self, phase), f"Timeouts {phase}")
            object.__setattr__(self, phase, seconds)

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        """Every phase with the same deadline of ``seconds``."""
        value = _seconds(seconds, "Timeouts.uniform seconds")
        return cls(**dict.fromkeys(TIMEOUT_PHASES, value))

    def for_phase(self, name: TimeoutPhase) -> float:
        """The deadline of phase ``name`` (one of :data:`TIMEOUT_PHASES`)."""
        if name not in TIMEOUT_PHASES:
            _refuse(f"Timeouts has no phase {name!r} (phases: {', '.join(TIMEOUT_PHASES)})")
        seconds: float = getattr(self, name)
        return seconds


# ---------------------------------------------------------------------- pool


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """The limits of a transport's connection pool.

    ``max_size`` (10)
        The most connections open at once, in use or idle: a hard cap.
    ``min_idle`` (0)
        Idle connections kept open for the next message (at most ``max_size``).
    ``idle_timeout`` (60 s)
        An idle connection is closed after this long unused.
    ``max_lifetime`` (300 s)
        No connection is reused once it is this old.
    ``max_messages`` (100)
        No connection carries more messages than this (provider quotas).
    ``acquire_timeout`` (30 s)
        The longest a sender waits for a free connection when ``max_size`` are busy.
    """

    max_size: int = 10
    min_idle: int = 0
    idle_timeout: float = 60.0
    max_lifetime: float = 300.0
    max_messages: int = 100
    acquire_timeout: float = 30.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_size", _count(self.max_size, "PoolConfig max_size", 1))
        set_(self, "min_idle", _count(self.min_idle, "PoolConfig min_idle", 0))
        if self.min_idle > self.max_size:
            _refuse(
                f"PoolConfig min_idle ({self.min_idle}) must not exceed max_size ({self.max_size})"
            )
        for name in ("idle_timeout", "max_lifetime", "acquire_timeout"):
            set_(self, name, _seconds(getattr(self, name), f"PoolConfig {name}"))
        set_(self, "max_messages", _count(self.max_messages, "PoolConfig max_messages", 1))


# ---------------------------------------------------------------------- TLS

#: The protocol versions a caller may ask for as the minimum.
_MIN_VERSIONS: Final = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


def _check_path(value: object, what: str) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str or os.PathLike, not {type(value).__name__}")
    if not os.fspath(value):
        _refuse(f"{what} is empty")


def _refuse_key_password() -> NoReturn:
    """The password callback of ``load_cert_chain``: without it OpenSSL would prompt on
    the terminal for the password of an encrypted key."""
    _refuse(
        "TlsParameters client_key is encrypted; give an unencrypted key "
        "(or an ssl_context with the chain already loaded)"
    )


def _load(what: str, path: str | os.PathLike[str] | None, load: Callable[[], _T]) -> _T:
    """``load()``, with the ``OSError``/``ssl.SSLError`` of reading ``what`` (from
    ``path``) raised as ``InvalidInputError``."""
    try:
        return load()
    except OSError as exc:  # ssl.SSLError included
        where = f" {os.fsdecode(path)!r}" if path is not None else ""
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or str(exc)
        else:
            reason = exc.strerror or str(exc)
        message = f"TlsParameters {what}{where} cannot be loaded: {reason}"
        raise InvalidInputError(message) from exc


@dataclass(frozen=True, slots=True, repr=False)
class TlsParameters:
    """How to set up TLS with one server: the name to verify, the trust, the client
    certificate.

    ``domain``
        The name sent as SNI and verified against the server's certificate: an ASCII
        host name (an international name as its A-labels, ``xn--...``) or an IP address
        (IPv6 without brackets; Python's :mod:`ssl` verifies IP addresses too).
    ``ca_file`` / ``ca_data``
        Trust *only* these roots instead of the system's trust store: a PEM file, or
        certificates in memory (PEM text as ``str`` or ``bytes``, or DER ``bytes``).
        Both may be given.
    ``client_cert`` / ``client_key``
        A PEM client certificate chain to present, and its unencrypted private key
        (omit ``client_key`` when the key is in the ``client_cert`` file).
    ``accept_invalid_hostnames``
        Skip only the check that the certificate names ``domain``. Dangerous.
    ``accept_invalid_certs``
        Skip certificate verification entirely (and so the host name check too): anyone
        on the path can read and change the mail. Dangerous; cannot be combined with
        ``ca_file``/``ca_data``, which it would ignore.
    ``min_version``
        The oldest protocol version accepted: ``TLSVersion.TLSv1_2`` (the default) or
        ``TLSVersion.TLSv1_3``. Older versions are refused.
    ``ssl_context``
        Your own client :class:`ssl.SSLContext`, used as it is; then every other knob
        above must keep its default (they would be silently ignored otherwise).

    Files are read by :meth:`create_context`, which raises ``InvalidInputError`` when
    they cannot be loaded.
    """

    domain: str
    _: KW_ONLY
    ca_file: str | os.PathLike[str] | None = None
    ca_data: str | bytes | None = None
    ssl_context: ssl.SSLContext | None = None
    client_cert: str | os.PathLike[str] | None = None
    client_key: str | os.PathLike[str] | None = None
    accept_invalid_certs: bool = False
    accept_invalid_hostnames: bool = False
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    _context: ssl.SSLContext | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", _host(self.domain, "TlsParameters domain"))
        for name in ("ca_file", "client_cert", "client_key"):
            value = getattr(self, name)
            if value is not None:
                _check_path(value, f"TlsParameters {name}")
        if self.ca_data is not None:
            if not isinstance(self.ca_data, (str, bytes)):
                raise TypeError(
                    f"TlsParameters ca_data must be a str or bytes, "
                    f"not {type(self.ca_data).__name__}"
                )
            if not self.ca_data:
                _refuse("TlsParameters ca_data is empty")
            if _is_pem_bytes(self.ca_data) and not self.ca_data.isascii():
                _refuse("TlsParameters ca_data is PEM with non-ASCII bytes")
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise TypeError(
                "TlsParameters ssl_context must be an ssl.SSLContext, "
                f"not {type(self.ssl_context).__name__}"
            )
        _flag(self.accept_invalid_certs, "TlsParameters accept_invalid_certs")
        _flag(self.accept_invalid_hostnames, "TlsParameters accept_invalid_hostnames")
        if not isinstance(self.min_version, ssl.TLSVersion):
            raise TypeError(
                "TlsParameters min_version must be an ssl.TLSVersion, "
                f"not {type(self.min_version).__name__}"
            )
        if self.min_version not in _MIN_VERSIONS:
            _refuse(
                f"TlsParameters min_version must be TLSv1_2 or TLSv1_3, not {self.min_version.name}"
            )
        if self.client_key is not None and self.client_cert is None:
            _refuse("TlsParameters client_key needs client_cert")
        if self.ssl_context is not None:
            if self.ssl_context.protocol == ssl.PROTOCOL_TLS_SERVER:
                _refuse("TlsParameters ssl_context is a server context (use PROTOCOL_TLS_CLIENT)")
            changed = self._changed_knobs()
            if changed:
                _refuse(
                    f"TlsParameters ssl_context is used as it is; "
                    f"{changed[0]} cannot be combined with it"
                )
        if self.accept_invalid_certs and (self.ca_file is not None or self.ca_data is not None):
            roots = "ca_file" if self.ca_file is not None else "ca_data"
            _refuse(
                f"TlsParameters accept_invalid_certs skips verification; "
                f"{roots} cannot be combined with it"
            )

    def _changed_knobs(self) -> list[str]:
        """The keyword arguments (but ``ssl_context``) that differ from their defaults."""
        changed = [
            name
            for name in ("ca_file", "ca_data", "client_cert", "client_key")
            if getattr(self, name) is not None
        ]
        changed += [
            name
            for name in ("accept_invalid_certs", "accept_invalid_hostnames")
            if getattr(self, name)
        ]
        if self.min_version != ssl.TLSVersion.TLSv1_2:
            changed.append("min_version")
        return changed

    @property
    def server_hostname(self) -> str:
        """The name to pass as ``server_hostname`` when wrapping: ``domain`` (SNI is sent
        for names only; an IP address is still verified)."""
        return self.domain

    def create_context(self) -> ssl.SSLContext:
        """The client :class:`ssl.SSLContext` for these parameters.

        ``ssl_context`` is returned as it is when given. Otherwise a context is built
        once and then reused by every later call (building one reads the trust store):
        verification on (``CERT_REQUIRED``, ``check_hostname``) unless an
        ``accept_invalid_*`` flag says otherwise, the system trust store or only
        ``ca_file``/``ca_data``, ``min_version`` as the minimum, and the client
        certificate loaded. Treat the result as read-only: transports share it.
        Two threads calling this at once may each build a context; one is kept.

        Raises ``InvalidInputError`` when a certificate or key cannot be loaded.
        """
        if self.ssl_context is not None:
            return self.ssl_context
        context = self._context
        if context is None:
            context = self._build_context()
            object.__setattr__(self, "_context", context)
        return context

    def _build_context(self) -> ssl.SSLContext:
        if self.accept_invalid_certs:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = self._verifying_context()
            if self.accept_invalid_hostnames:
                context.check_hostname = False
        context.minimum_version = self.min_version
        if self.client_cert is not None:
            cert, key = self.client_cert, self.client_key
            what = "client_cert" if key is None else "client_cert/client_key"
            _load(what, cert, lambda: context.load_cert_chain(cert, key, _refuse_key_password))
        return context

    def _verifying_context(self) -> ssl.SSLContext:
        """A context that verifies certificates and host names against the system's roots,
        or only against ``ca_file``/``ca_data`` (``ssl.create_default_context`` loads the
        system's roots only when given neither, and brings the stdlib's hardening)."""
        ca_file = self.ca_file
        ca_data = None if self.ca_data is None else _cadata(self.ca_data)
        if ca_file is not None:
            context = _load("ca_file", ca_file, lambda: ssl.create_default_context(cafile=ca_file))
            if ca_data is not None:
                _load("ca_data", None, lambda: context.load_verify_locations(cadata=ca_data))
            return context
        if ca_data is not None:
            return _load("ca_data", None, lambda: ssl.create_default_context(cadata=ca_data))
        return ssl.create_default_context()

    def __repr__(self) -> str:
        parts = [repr(self.domain)]
        for name in ("ca_file", "client_cert", "client_key"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        if self.ca_data is not None:
            unit = "characters" if isinstance(self.ca_data, str) else "bytes"
            parts.append(f"ca_data=<{len(self.ca_data)} {unit}>")
        if self.ssl_context is not None:
            parts.append("ssl_context=<ssl.SSLContext>")
        for name in ("accept_invalid_certs", "accept_invalid_hostnames"):
            if getattr(self, name):
                parts.append(f"{name}=True")
        if self.min_version != ssl.TLSVersion.TLSv1_2:
            parts.append(f"min_version=TLSVersion.{self.min_version.name}")
        return f"TlsParameters({', '.join(parts)})"


def _is_pem_bytes(data: str | bytes) -> bool:
    return isinstance(data, bytes) and data.lstrip().startswith(b"-----BEGIN")


def _cadata(data: str | bytes) -> str | bytes:
    """``ca_data`` as :meth:`ssl.SSLContext.load_verify_locations` takes it: PEM as
    ``str``, DER as ``bytes`` (PEM given as ``bytes``, checked ASCII, is decoded)."""
    return data.decode("ascii") if isinstance(data, bytes) and _is_pem_bytes(data) else data


class TlsMode(Enum):
    """When TLS is used (see :class:`Tls`)."""

    #: Never: plain text only.
    NONE = "none"
    #: STARTTLS when the server offers it, plain text otherwise.
    OPPORTUNISTIC = "opportunistic"
    #: STARTTLS, or fail with ``TlsRequiredError`` before anything else is sent.
    REQUIRED = "required"
    #: TLS from the first byte (implicit TLS, port 465).
    WRAPPER = "wrapper"


@dataclass(frozen=True, slots=True, repr=False)
class Tls:
    """The TLS policy of a transport: ``Tls.none()``, ``Tls.opportunistic(p)``,
    ``Tls.required(p)`` or ``Tls.wrapper(p)``, with ``p`` a :class:`TlsParameters`.

    ``mode`` is the :class:`TlsMode`; ``parameters`` is ``None`` exactly when the mode is
    ``NONE``.
    """

    mode: TlsMode
    parameters: TlsParameters | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, TlsMode):
            raise TypeError(f"Tls mode must be a TlsMode, not {type(self.mode).__name__}")
        if self.mode is TlsMode.NONE:
            if self.parameters is not None:
                _refuse("Tls.none() takes no TlsParameters")
        elif not isinstance(self.parameters, TlsParameters):
            raise TypeError(
                f"Tls.{self.mode.value}() needs TlsParameters, "
                f"not {type(self.parameters).__name__} (e.g. TlsParameters('smtp.example.com'))"
            )

    @classmethod
    def none(cls) -> Tls:
        """No TLS: the whole conversation is plain text (and so credentials are refused
        unless ``allow_insecure_auth``)."""
        return cls(TlsMode.NONE)

    @classmethod
    def opportunistic(cls, parameters: TlsParameters) -> Tls:
        """STARTTLS when offered, else plain text (credentials still need TLS unless
        ``allow_insecure_auth``)."""
        return cls(TlsMode.OPPORTUNISTIC, parameters)

    @classmethod
    def required(cls, parameters: TlsParameters) -> Tls:
        """STARTTLS, or fail before sending anything else."""
        return cls(TlsMode.REQUIRED, parameters)

    @classmethod
    def wrapper(cls, parameters: TlsParameters) -> Tls:
        """Implicit TLS: the handshake comes first (port 465)."""
        return cls(TlsMode.WRAPPER, parameters)

    @property
    def is_implicit(self) -> bool:
        """TLS starts with the connection (``WRAPPER``)."""
        return self.mode is TlsMode.WRAPPER

    @property
    def uses_starttls(self) -> bool:
        """TLS is started with STARTTLS (``OPPORTUNISTIC`` or ``REQUIRED``)."""
        return self.mode in (TlsMode.OPPORTUNISTIC, TlsMode.REQUIRED)

    @property
    def requires_tls(self) -> bool:
        """No mail crosses without TLS (``REQUIRED`` or ``WRAPPER``)."""
        return self.mode in (TlsMode.REQUIRED, TlsMode.WRAPPER)

    def __repr__(self) -> str:
        inner = "" if self.parameters is None else repr(self.parameters)
        return f"Tls.{self.mode.value}({inner})"


# ---------------------------------------------------------------------- authentication


class Mechanism(Enum):
    """A SASL mechanism for AUTH; the value is its name on the wire."""

    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    XOAUTH2 = "XOAUTH2"
    CRAM_MD5 = "CRAM-MD5"
    SCRAM_SHA_256 = "SCRAM-SHA-256"

    _value_: str

    @property
    def wire(self) -> str:
        """The name as the server advertises it and AUTH sends it (``"CRAM-MD5"``)."""
        return self.value

    @property
    def sends_cleartext(self) -> bool:
        """The secret itself crosses the connection (PLAIN, LOGIN, XOAUTH2), so this
        mechanism is only used over TLS, unless ``allow_insecure_auth`` is set."""
        return self in _CLEARTEXT

    @classmethod
    def from_wire(cls, name: str) -> Mechanism:
        """The mechanism named ``name``, ASCII case-insensitively (``"cram-md5"``)."""
        text = _text(name, "Mechanism name")
        mechanism = _BY_WIRE.get(text.upper() if text.isascii() else text)
        if mechanism is None:
            _scan(text, "Mechanism name", utf8=False)
            _refuse(
                "Mechanism name is not one of "
                + ", ".join(member.value for member in cls)
                + " (ASCII case-insensitive)"
            )
        return mechanism


_CLEARTEXT: Final = frozenset((Mechanism.PLAIN, Mechanism.LOGIN, Mechanism.XOAUTH2))
_BY_WIRE: Final = {member.value: member for member in Mechanism}

#: The mechanisms tried for a password, in order, when ``builder.authentication()`` was
#: not called: the first one the server offers is used. Challenge-response mechanisms come
#: first because the password never crosses the connection, so a server that could read
#: it (a misissued certificate, or TLS that ``allow_insecure_auth`` let go) learns nothing
#: it can replay: SCRAM-SHA-256 (RFC 7677, mutual and salted), then CRAM-MD5 (RFC 2195),
#: then PLAIN and LOGIN, which need TLS (see :attr:`Mechanism.sends_cleartext`). XOAUTH2 is
#: never tried for a password: it carries an OAuth 2 token, so it is chosen when asked for
#: by name, or by default for a token provider (:attr:`Credentials.default_mechanisms`).
DEFAULT_MECHANISMS: Final[tuple[Mechanism, ...]] = (
    Mechanism.SCRAM_SHA_256,
    Mechanism.CRAM_MD5,
    Mechanism.PLAIN,
    Mechanism.LOGIN,
)


def _check_secret(secret: str, message: str) -> None:
    """Refuse an empty secret or one that holds NUL, CR or LF; ``message`` never shows it."""
    if not secret:
        _refuse(f"{message} is empty")
    if _LINE_BREAKERS.search(secret) is not None:
        _refuse(f"{message} contains NUL, CR or LF")


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A user name and a secret for AUTH.

    ``secret`` is a password or token (``str``), or a *token provider*: a callable taking
    no arguments that returns a fresh ``str`` token each time it is called (for XOAUTH2,
    whose tokens expire; it is called once per authentication, and what it raises
    propagates). Neither may be empty or hold NUL, CR or LF. The ``repr`` never shows the
    secret, and no error message quotes it.
    """

    username: str
    secret: str | Callable[[], str]

    def __post_init__(self) -> None:
        username = _text(self.username, "Credentials username")
        if not username:
            _refuse("Credentials username is empty")
        found = _LINE_BREAKERS.search(username)
        if found is not None:
            _refuse(
                f"Credentials username contains a control character "
                f"({_C0_NAMES[ord(found.group())]}) at index {found.start()}"
            )
        object.__setattr__(self, "username", username)
        if isinstance(self.secret, str):
            secret = _text(self.secret, "Credentials secret")
            _check_secret(secret, "Credentials secret")
            object.__setattr__(self, "secret", secret)
        elif not callable(self.secret):
            raise TypeError(
                "Credentials secret must be a str or a callable returning one, "
                f"not {type(self.secret).__name__}"
            )

    @property
    def is_token_provider(self) -> bool:
        """The secret is a callable that makes a fresh token on each call."""
        return not isinstance(self.secret, str)

    @property
    def default_mechanisms(self) -> tuple[Mechanism, ...]:
        """The mechanisms to try when none were configured: ``(XOAUTH2,)`` for a token
        provider (a token is no password), else :data:`DEFAULT_MECHANISMS`."""
        return (Mechanism.XOAUTH2,) if self.is_token_provider else DEFAULT_MECHANISMS

    def resolve_secret(self) -> str:
        """The secret to send now: the ``str`` secret, or a fresh token from the provider
        (checked like a ``str`` secret)."""
        secret = self.secret
        if isinstance(secret, str):
            return secret
        token = secret()
        if not isinstance(token, str):
            raise TypeError(
                f"Credentials token provider must return a str, not {type(token).__name__}"
            )
        _check_secret(token, "Credentials token provider returned a token that")
        return token

    def __repr__(self) -> str:
        secret = "<token provider>" if self.is_token_provider else "'***'"
        return f"Credentials(username={self.username!r}, secret={secret})"


# ---------------------------------------------------------------------- envelope


def _address(value: object, what: str, *, postmaster: bool) -> str:
    """A light check of a mailbox: no control characters, no angle brackets, no space
    outside a quoted local part, ``local@domain`` (or ``postmaster`` for a recipient).
    The command writer checks the full RFC 5321 grammar when the address is sent."""
    text = _text(value, what)
    if not text:
        _refuse(f"{what} is empty")
    _scan(text, what, utf8=True)
    for index, char in enumerate(text):
        if char in "<>":
            _refuse(
                f"{what} contains {char!r} at index {index} "
                "(give the bare address, without angle brackets)"
            )
    if postmaster and text.isascii() and text.lower() == "postmaster":
        return text
    local, at, domain = text.rpartition("@")
    if not at:
        _refuse(f"{what} has no '@' (expected local@domain)")
    if not local:
        _refuse(f"{what} local part is empty")
    if not domain:
        _refuse(f"{what} domain is empty")
    space = text.find(" ", len(local) if local.startswith('"') else 0)
    if space >= 0:
        _refuse(f"{what} contains ' ' at index {space}")
    return text


def _parameters(value: object, what: str) -> tuple[str, ...]:
    """ESMTP parameters: ``KEYWORD`` or ``KEYWORD=value`` (RFC 5321 4.1.2, values may be
    UTF-8 per RFC 6531), each keyword once (ASCII case-insensitively)."""
    params = _sequence(value, what)
    seen: dict[str, int] = {}
    checked: list[str] = []
    for index, item in enumerate(params):
        where = f"{what}[{index}]"
        param = _text(item, where)
        if not param:
            _refuse(f"{where} is empty")
        _scan(param, where, utf8=True)
        keyword, equals, argument = param.partition("=")
        if not keyword:
            _refuse(f"{where} has an empty keyword")
        if _KEYWORD.fullmatch(keyword) is None:
            if keyword[0] == "-":
                _refuse(f"{where} keyword starts with '-'")
            position, char = next((i, c) for i, c in enumerate(keyword) if c not in _LDH)
            _refuse(
                f"{where} keyword contains {char!r} at index {position} "
                "(expected A-Z, a-z, 0-9 or '-')"
            )
        if equals and not argument:
            _refuse(f"{where} has an empty value")
        for position, char in enumerate(argument, len(keyword) + 1):
            if char in " =":
                _refuse(f"{where} value contains {char!r} at index {position}")
        upper = keyword.upper()
        if upper in seen:
            _refuse(f"{where} repeats {upper} of {what}[{seen[upper]}]")
        seen[upper] = index
        checked.append(param)
    return tuple(checked)


def _recipient_key(address: str) -> str:
    """Recipients are the same when they differ only in the case of their domain (the
    local part is case-sensitive, RFC 5321 2.4; ``postmaster`` is not, 4.5.1)."""
    local, at, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}" if at else address.lower()


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, as SMTP sees it (MAIL FROM and RCPT TO).

    ``sender``
        The reverse-path: an address, or ``None``/``""`` for the null reverse-path
        (``MAIL FROM:<>``, for bounces and auto-replies); ``""`` is stored as ``None``.
    ``recipients``
        A non-empty sequence of addresses (``postmaster`` without a domain is allowed).
        Repeats are dropped, keeping the first: addresses that differ only in the case of
        their domain are the same recipient. Stored as a tuple.
    ``mail_params`` / ``rcpt_params``
        Extra ESMTP parameters for MAIL FROM / for every RCPT TO, as ``"KEYWORD"`` or
        ``"KEYWORD=value"`` strings (``"RET=HDRS"``, ``"NOTIFY=FAILURE,DELAY"``). A
        keyword is letters, digits and ``-`` (not first), at most once per list; a value
        is printable ASCII but space and ``=``, or UTF-8 (RFC 6531). Stored as tuples.
    ``smtputf8``
        Ask for SMTPUTF8 even when every address is ASCII: the message itself has UTF-8
        headers (RFC 6532). A server that does not offer SMTPUTF8 then gets nothing
        (:class:`~smtpx.InvalidInputError`): such a message has no ASCII form.
        Non-ASCII addresses ask for it by themselves (:attr:`needs_smtputf8`).

    Addresses get a light check here (no control characters, no ``<``/``>``, the
    ``local@domain`` shape); the command writer checks the full grammar before sending.
    """

    sender: str | None
    recipients: Sequence[str]
    _: KW_ONLY
    mail_params: Sequence[str] = ()
    rcpt_params: Sequence[str] = ()
    smtputf8: bool = False
    _utf8: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.sender is not None:
            sender = _text(self.sender, "Envelope sender")
            set_(
                self,
                "sender",
                _address(sender, "Envelope sender", postmaster=False) if sender else None,
            )
        recipients = _sequence(self.recipients, "Envelope recipients")
        if not recipients:
            _refuse("Envelope recipients is empty (give at least one address)")
        unique: dict[str, str] = {}
        for index, item in enumerate(recipients):
            address = _address(item, f"Envelope recipients[{index}]", postmaster=True)
            unique.setdefault(_recipient_key(address), address)
        set_(self, "recipients", tuple(unique.values()))
        set_(self, "mail_params", _parameters(self.mail_params, "Envelope mail_params"))
        set_(self, "rcpt_params", _parameters(self.rcpt_params, "Envelope rcpt_params"))
        set_(self, "smtputf8", _flag(self.smtputf8, "Envelope smtputf8"))
        texts = (self.sender or "", *self.recipients, *self.mail_params, *self.rcpt_params)
        set_(self, "_utf8", self.smtputf8 or not all(text.isascii() for text in texts))

    @property
    def needs_smtputf8(self) -> bool:
        """An address or a parameter value is not ASCII (or ``smtputf8`` was set), so
        the server must offer SMTPUTF8 (RFC 6531) and MAIL FROM must ask for it."""
        return self._utf8


# ---------------------------------------------------------------------- URLs

_URL_SCHEMES: Final = ("smtp", "smtps")
#: ``tls=`` values of an ``smtp://`` URL, and their default ports.
_URL_TLS: Final = {
    "none": (TlsMode.NONE, SMTP_PORT),
    "opportunistic": (TlsMode.OPPORTUNISTIC, SUBMISSION_PORT),
    "required": (TlsMode.REQUIRED, SUBMISSION_PORT),
}
_PERCENT_ESCAPE: Final = re.compile("%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class TransportUrl:
    """A transport's connection settings, as :func:`parse_url` reads them from a URL.

    ``tls_mode`` is :class:`TlsMode`; :meth:`tls` makes the matching :class:`Tls` policy
    (verifying ``host``). ``credentials`` and ``hello_name`` are ``None`` when the URL has
    none. The ``repr`` hides the password.
    """

    host: str
    port: int
    tls_mode: TlsMode
    credentials: Credentials | None = None
    hello_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _host(self.host, "TransportUrl host"))
        port = _count(self.port, "TransportUrl port", 1)
        if port > 65535:
            _refuse(f"TransportUrl port must be at most 65535, not {port}")
        object.__setattr__(self, "port", port)
        if not isinstance(self.tls_mode, TlsMode):
            raise TypeError(
                f"TransportUrl tls_mode must be a TlsMode, not {type(self.tls_mode).__name__}"
            )
        if self.credentials is not None and not isinstance(self.credentials, Credentials):
            raise TypeError(
                "TransportUrl credentials must be Credentials or None, "
                f"not {type(self.credentials).__name__}"
            )
        if self.hello_name is not None:
            object.__setattr__(self, "hello_name", validate_hello_name(self.hello_name))

    def tls(self) -> Tls:
        """The TLS policy: ``Tls.none()``, or the mode with ``TlsParameters(host)``."""
        if self.tls_mode is TlsMode.NONE:
            return Tls.none()
        return Tls(self.tls_mode, TlsParameters(self.host))


def _percent_decode(text: str, what: str) -> str:
    """Strict percent-decoding (RFC 3986 2.1) to UTF-8; messages never quote ``text``."""
    bad = _PERCENT_ESCAPE.search(text)
    if bad is not None:
        _refuse(f"URL {what} has an invalid percent-escape at index {bad.start()}")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        _refuse(f"URL {what} is not UTF-8 once percent-decoded")


def _url_host_and_port(hostport: str) -> tuple[str, int | None]:
    """The host (lower-cased; an IPv6 address without its brackets) and the port, if
    given, of ``host[:port]``. The port is never quoted: a URL that lost its host can
    hold a password there."""
    if hostport.startswith("["):
        close = hostport.find("]")
        host = hostport[1:close] if close > 0 else ""
        if not _is_ip_address(host) or ":" not in host:
            _refuse("URL host in brackets is not a valid IPv6 address")
        after = hostport[close + 1 :]
        if after and after[0] != ":":
            _refuse("URL host has text after ']' (expected ':port' or nothing)")
        port = after[1:] if after else None
    else:
        host, colon, after = hostport.partition(":")
        if ":" in after:
            _refuse("URL host has more than one ':' (write an IPv6 address in brackets)")
        if not host:
            _refuse("URL has no host")
        _host(host, "URL host")
        port = after if colon else None
    if port is None:
        return host.lower(), None
    if not port:
        _refuse("URL port is empty (omit the ':' to use the default port)")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        _refuse("URL port must be a number from 1 to 65535")
    return host.lower(), int(port)


def _url_tls(scheme: str, query: str | None) -> tuple[TlsMode, int]:
    """The TLS mode and default port of a URL with ``scheme`` and ``query`` (the text
    after ``?``, or ``None`` without one)."""
    value: str | None = None
    parameters = [] if query is None else query.split("&")
    for parameter in parameters:
        key, equals, text = parameter.partition("=")
        if not key:
            _refuse("URL query has an empty parameter")
        if key.lower() != "tls":
            _refuse(f"URL query parameter {key!r} is unknown (the only one is tls)")
        if not equals:
            _refuse("URL query parameter tls has no value")
        if value is not None:
            _refuse("URL query parameter tls is repeated")
        value = text.lower()
    if scheme == "smtps":
        if value is not None:
            _refuse("URL query parameter tls is not allowed with smtps:// (always implicit TLS)")
        return TlsMode.WRAPPER, SUBMISSIONS_PORT
    setting = _URL_TLS.get("none" if value is None else value)
    if setting is None:
        _refuse("URL tls must be none, opportunistic or required (smtps:// is implicit TLS)")
    return setting


def _url_credentials(userinfo: str) -> Credentials:
    """The credentials of ``user:password`` (percent-encoded), quoting neither."""
    user, colon, password = userinfo.partition(":")
    if not user:
        _refuse("URL user name is empty")
    if not colon:
        _refuse("URL has a user name but no password (write user:password@host)")
    if not password:
        _refuse("URL password is empty")
    return Credentials(_percent_decode(user, "user name"), _percent_decode(password, "password"))


def parse_url(url: str) -> TransportUrl:
    """Read a transport URL (``SmtpTransport.from_url``)::

        smtp://[user:password@]host[:port][/hello-name][?tls=none|opportunistic|required]
        smtps://[user:password@]host[:port][/hello-name]

    - ``smtps://`` is implicit TLS, port 465 by default; it takes no ``tls=``.
    - ``smtp://`` is plain text (``tls=none``, the default) on port 25, or STARTTLS
      (``tls=required`` or ``tls=opportunistic``) on port 587 by default, as lettre does.
    - ``user`` and ``password`` are percent-decoded (UTF-8): ``smtp://us%40er:p%2Fss@host``
      is user ``us@er``, password ``p/ss``. A user needs a password, and neither may be
      empty. Percent-encode ``/``, ``?``, ``#`` and ``%`` in them.
    - ``host`` is a host name (ASCII; lower-cased) or an IP address, IPv6 in brackets
      (``smtp://[::1]:2525``).
    - ``/hello-name``, when present, is the name to send with EHLO (see
      :func:`validate_hello_name`).
    - Scheme, query key and ``tls`` value are ASCII case-insensitive.

    Anything else -- another scheme or query key, a repeated or empty ``tls``, a
    fragment, a bad port, a space, a control or non-ASCII character (percent-encode it)
    -- raises ``InvalidInputError``. Messages quote nothing of the user name, password or
    port, and at most one offending character of the host or hello name; the password is
    in no ``repr``.
    """
    text = _text(url, "URL")
    bad = re.search("[^\x21-\x7e]", text)
    if bad is not None:
        code = ord(bad.group())
        if code == 0x20:
            kind = "a space (percent-encode it as %20)"
        elif code > 0x7F:
            kind = "a non-ASCII character (percent-encode its UTF-8)"
        else:
            kind = f"a control character ({_control_name(code)})"
        _refuse(f"URL contains {kind} at index {bad.start()}")
    scheme, separator, rest = text.partition("://")
    if not separator:
        _refuse("URL must start with smtp:// or smtps://")
    scheme = scheme.lower()
    if scheme not in _URL_SCHEMES:
        if _SCHEME.fullmatch(scheme) is None:
            _refuse("URL must start with smtp:// or smtps://")
        _refuse(f"URL scheme {scheme!r} is not supported (use smtp:// or smtps://)")

    # The authority runs up to the first "/", "?" or "#" (RFC 3986 3.2). An "@" after it
    # means a user name or password holds one of those: stop before quoting any of it.
    end = next((index for index, char in enumerate(rest) if char in "/?#"), len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        _refuse(
            "URL has '@' after the host: percent-encode '/', '?' and '#' "
            "in the user name and password"
        )
    if "#" in tail:
        _refuse("URL must not have a fragment ('#...')")
    path, question, query = tail.partition("?")
    userinfo, at, hostport = authority.rpartition("@")

    host, port = _url_host_and_port(hostport)
    tls_mode, default_port = _url_tls(scheme, query if question else None)
    credentials = _url_credentials(userinfo) if at else None
    hello_name = None
    if path not in ("", "/"):
        if "/" in path[1:]:
            _refuse("URL path must be a single hello name (like /client.example.com)")
        hello_name = validate_hello_name(path[1:])
    return TransportUrl(
        host, default_port if port is None else port, tls_mode, credentials, hello_name
    )
