"""Email addresses and mailboxes: ``local@domain`` and ``Name <local@domain>``.

:class:`Address`
    An address, checked against RFC 5321/5322 and RFC 6531/6532 when it is made:

    - the local part is a dot-atom (``first.last``) or a quoted string
      (``"first last"``); UTF-8 is allowed in it, which makes the address need SMTPUTF8
      (:attr:`Address.needs_smtputf8`);
    - the domain is a host name, international names included (IDNA: ``bücher.de`` is
      sent as ``xn--bcher-kva.de`` when the local part is ASCII), or an address literal
      (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``);
    - RFC 5321 limits: 64 octets of local part, 253 of domain, 254 in all; labels of at
      most 63 characters.

    IDNA uses the standard library's codec (IDNA 2003), and so refuses the four
    characters that IDNA 2003 and IDNA 2008 encode differently (``ß``, ``ς``, ZWJ and
    ZWNJ): give such a domain as its A-labels (``xn--...``).
:class:`Mailbox`
    An address with an optional display name. :meth:`Mailbox.parse` reads
    ``local@domain``, ``<local@domain>``, ``Name <local@domain>``, ``"Name, Jr."
    <local@domain>`` and names made of RFC 2047 encoded words (``=?utf-8?q?...?=``).

Anything else raises :class:`~smtpx.errors.InvalidInputError` saying what is wrong and
where (an index into the text); like the rest of smtpx, the message quotes at most one
offending character, never the address.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from typing import Final

from smtpx.message._text import (
    as_str,
    encoded_words,
    quote,
    refuse,
    scan,
)

__all__ = ["Address", "Mailbox"]

#: RFC 5321 4.5.3.1.1-3 limits, in octets.
_MAX_LOCAL: Final = 64
_MAX_DOMAIN: Final = 253
_MAX_ADDRESS: Final = 254
_MAX_LABEL: Final = 63
_ATEXT: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~"
)
_LDH: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
#: Characters IDNA 2003 and 2008 map differently: "straße.de" would reach "strasse.de".
_IDNA_DEVIATIONS: Final = {"\u00df": "'ß'", "\u03c2": "'ς'", "\u200c": "ZWNJ", "\u200d": "ZWJ"}
#: A display name written as is: atoms separated by single spaces.
_ATOMS: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
#: The longest display name written as a quoted string; longer ones are encoded words,
#: which can be folded.
_MAX_QUOTED_NAME: Final = 60
#: The longest first encoded word of a name: after "Reply-To: " it ends by column 76.
_FIRST_NAME_WORD: Final = 60
#: The tokens of a display name: a quoted string, an encoded word, an atom, white space.
_NAME_TOKEN: Final = re.compile(
    r'"(?P<quoted>(?:[^"\\]|\\.)*)"'
    r"|(?P<encoded>=\?(?P<charset>[^?* ]+)(?:\*[^? ]*)?\?(?P<kind>[bBqQ])\?(?P<text>[!->@-~]*)\?=)"
    r'|(?P<atom>[^ "]+)'
    r"|(?P<space> +)"
)
_QUOTED_PAIR: Final = re.compile(r"\\(.)")
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: The common address, checked by this alone (and the length limits): an ASCII
#: dot-atom, "@", a host name of letters, digits and hyphens.
_COMMON: Final = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    rf"@({_LABEL}(?:\.{_LABEL})*)"
)
_Q_ESCAPE: Final = re.compile(rb"=([0-9A-Fa-f]{2})")
_BASE64: Final = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


class Address:
    """An email address, ``local@domain``, checked when it is made (see the module
    docstring). ``str(address)`` is the address as smtpx writes it in headers and the
    envelope: the domain in A-labels (``xn--...``) unless the local part is UTF-8 (then
    SMTPUTF8 is needed anyway, and the domain keeps its Unicode form).

    Two addresses are equal when they differ at most in the case of their domain.
    """

    __slots__ = ("_ascii_domain", "_domain", "_key", "_local", "_text")

    def __init__(self, address: str, *, _what: str = "address") -> None:
        text = as_str(address, _what)
        common = _COMMON.fullmatch(text)
        if (
            common is not None
            and len(common[1]) <= _MAX_LOCAL
            and len(common[2]) <= _MAX_DOMAIN
            and not common[2].rpartition(".")[2].isdigit()
        ):
            local, domain = common[1], common[2]
            ascii_domain = domain
        else:
            local, domain, ascii_domain = _check(text, _what)
        self._local = local
        self._domain = domain
        self._ascii_domain = ascii_domain
        if local.isascii():
            self._text = f"{local}@{ascii_domain}"
        else:
            self._text = f"{local}@{_unicode_domain(ascii_domain)}"
        size = len(self._text.encode("utf-8"))
        if size > _MAX_ADDRESS:
            refuse(f"{_what} is longer than {_MAX_ADDRESS} octets ({size})")
        self._key = (local, ascii_domain.lower())

    @property
    def local(self) -> str:
        """The local part, as given (quotes included, for a quoted one)."""
        return self._local

    @property
    def domain(self) -> str:
        """The domain, as given."""
        return self._domain

    @property
    def ascii_domain(self) -> str:
        """The domain in ASCII: international labels as A-labels (``xn--...``)."""
        return self._ascii_domain

    @property
    def needs_smtputf8(self) -> bool:
        """The local part is UTF-8: the server must offer SMTPUTF8 (RFC 6531)."""
        return not self._local.isascii()

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Address({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def _check(text: str, what: str) -> tuple[str, str, str]:
    """Check an address in full: its local part, its domain and the domain's ASCII
    form, or InvalidInputError naming the first fault."""
    if not text:
        refuse(f"{what} is empty")
    scan(text, what)
    for index, char in enumerate(text):
        if char in "<>":
            refuse(f"{what} contains {char!r} at index {index}")
    local, at, domain = text.rpartition("@")
    if not at:
        refuse(f"{what} has no '@' (expected local@domain)")
    _check_local(local, what)
    return local, domain, _check_domain(domain, len(local) + 1, what)


def _check_local(local: str, what: str) -> None:
    """A dot-atom or a quoted string (RFC 5322 3.4.1, UTF-8 allowed by RFC 6532)."""
    if not local:
        refuse(f"{what} local part is empty")
    size = len(local.encode("utf-8"))
    if size > _MAX_LOCAL:
        refuse(f"{what} local part is longer than {_MAX_LOCAL} octets ({size})")
    if local == '""':
        refuse(f"{what} local part is empty")
    if local[0] == '"':
        _check_quoted_local(local, what)
        return
    for index, char in enumerate(local):
        if char == ".":
            if index == 0 or index == len(local) - 1 or local[index - 1] == ".":
                refuse(f"{what} local part has a misplaced '.' at index {index}")
        elif char not in _ATEXT and char.isascii():
            refuse(
                f"{what} contains {char!r} at index {index}, which is not allowed "
                "in a local part unless it is quoted"
            )


def _check_quoted_local(local: str, what: str) -> None:
    index = 1
    while index < len(local):
        char = local[index]
        if char == "\\":
            index += 2  # a quoted-pair; the scan refused every control it could hide
            continue
        if char == '"':
            if index != len(local) - 1:
                refuse(f"{what} local part has text after its closing quote at index {index}")
            return
        index += 1
    refuse(f"{what} local part has no closing quote")


def _check_domain(domain: str, offset: int, what: str) -> str:
    """The domain's ASCII form (A-labels); ``offset`` places it in the address."""
    if not domain:
        refuse(f"{what} domain is empty")
    if domain[0] == "[":
        if not _address_literal(domain):
            refuse(
                f"{what} domain is not a valid address literal "
                "(like [192.0.2.1] or [IPv6:2001:db8::1])"
            )
        return domain
    if not domain.isascii():
        for char, name in _IDNA_DEVIATIONS.items():
            index = domain.find(char)
            if index >= 0:
                refuse(
                    f"{what} domain contains {name} at index {offset + index}, which IDNA "
                    "2003 and 2008 encode differently: give the domain as A-labels (xn--...)"
                )
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            refuse(f"{what} domain is not a valid international domain name")
        offset = -1  # indexes into the A-labels would mislead: name none
    if len(domain) > _MAX_DOMAIN:
        refuse(f"{what} domain is longer than {_MAX_DOMAIN} characters ({len(domain)})")
    if domain.endswith("."):
        refuse(f"{what} domain ends with '.'")
    start = 0
    labels = domain.split(".")
    for label in labels:
        where = f" at index {offset + start}" if offset >= 0 else ""
        if not label:
            refuse(f"{what} domain has an empty label{where}")
        if len(label) > _MAX_LABEL:
            refuse(f"{what} domain has a label longer than {_MAX_LABEL} characters{where}")
        if label[0] == "-" or label[-1] == "-":
            refuse(f"{what} domain has a label that starts or ends with '-'{where}")
        for position, char in enumerate(label, start):
            if char not in _LDH:
                at = f" at index {offset + position}" if offset >= 0 else ""
                refuse(f"{what} domain contains {char!r}{at}, which is not allowed in a domain")
        start += len(label) + 1
    if labels[-1].isdigit():
        refuse(f"{what} domain ends with an all-digit label (neither a name nor an address)")
    return domain


def _address_literal(text: str) -> bool:
    """``[IPv4]`` or ``[IPv6:address]`` (RFC 5321 4.1.3)."""
    if len(text) < 3 or text[-1] != "]":
        return False
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return "%" not in inner  # no IPv6 zone


def _unicode_domain(ascii_domain: str) -> str:
    """The U-label form of a domain in A-labels (address literals stay as they are)."""
    if ascii_domain.startswith("["):
        return ascii_domain
    try:
        return ascii_domain.encode("ascii").decode("idna")
    except UnicodeError:  # an "xn--" label that does not decode: keep the A-label
        return ascii_domain


class Mailbox:
    """An :class:`Address` with an optional display name: ``Name <local@domain>``.

    ``Mailbox(address, name=None)`` takes an :class:`Address` or its text;
    :meth:`Mailbox.parse` reads the usual written forms. ``str(mailbox)`` is the
    readable form (``Name <local@domain>``), not the encoded header form.
    """

    __slots__ = ("_address", "_name", "_words")

    def __init__(
        self, address: Address | str, name: str | None = None, *, _what: str = "mailbox"
    ) -> None:
        if not isinstance(address, Address):
            address = Address(as_str(address, f"{_what} address"), _what=f"{_what} address")
        if name is not None:
            name = as_str(name, f"{_what} name")
            scan(name, f"{_what} name")
        self._address = address
        self._name = name or None
        self._words: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str, *, _what: str = "mailbox") -> Mailbox:
        """Read ``local@domain``, ``<local@domain>`` or ``Name <local@domain>``; the name
        may hold quoted strings and RFC 2047 encoded words."""
        text = as_str(text, _what).strip(" ")
        scan(text, _what)
        if not text.endswith(">"):
            return cls(Address(text, _what=f"{_what} address"), _what=_what)
        start = text.rfind("<")
        if start < 0:
            refuse(f"{_what} has '>' without '<'")
        address = Address(text[start + 1 : -1].strip(" "), _what=f"{_what} address")
        return cls(address, _display_name(text[:start].rstrip(" "), _what), _what=_what)

    @property
    def address(self) -> Address:
        """The :class:`Address`."""
        return self._address

    @property
    def name(self) -> str | None:
        """The display name, or ``None``."""
        return self._name

    @property
    def needs_smtputf8(self) -> bool:
        """The address needs SMTPUTF8 (its local part is UTF-8)."""
        return self._address.needs_smtputf8

    def header_words(self) -> tuple[str, ...]:
        """The mailbox as header words (see :func:`smtpx.message._text.fold`): the name as
        atoms, a quoted string or encoded words, then ``<address>``."""
        if self._words is None:
            address = str(self.address)
            name = self.name
            if name is None:
                self._words = (address,)
            elif _plain_name(name):
                self._words = (*name.split(" "), f"<{address}>")
            elif name.isascii() and len(name) <= _MAX_QUOTED_NAME and "=?" not in name:
                self._words = (quote(name), f"<{address}>")
            else:
                self._words = (*encoded_words(name, _FIRST_NAME_WORD), f"<{address}>")
        return self._words

    def __str__(self) -> str:
        if self.name is None:
            return str(self.address)
        name = self.name if _plain_name(self.name) else quote(self.name)
        return f"{name} <{self.address}>"

    def __repr__(self) -> str:
        return f"Mailbox({str(self.address)!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mailbox):
            return NotImplemented
        return (self.address, self.name) == (other.address, other.name)

    def __hash__(self) -> int:
        return hash((self.address, self.name))


def _plain_name(name: str) -> bool:
    """Whether a display name can be written as is: atoms separated by single spaces,
    nothing a reader could take for an encoded word."""
    return _ATOMS.fullmatch(name) is not None and "=?" not in name


def _display_name(text: str, what: str) -> str | None:
    """The display name before ``<address>``: atoms and white space as written (runs of
    white space made one space), quoted strings unquoted, encoded words decoded (white
    space between two of them dropped, RFC 2047 6.2). The caller checks the result for
    control characters (an encoded word can hold any)."""
    if _plain_name(text):  # the common case: nothing to unquote or decode
        return text or None
    parts: list[str] = []
    position = 0
    previous = ""  # the kind of the last token kept
    pending_space = False
    while position < len(text):
        match = _NAME_TOKEN.match(text, position)
        if match is None:
            refuse(f"{what} name has an unbalanced '\"' at index {position}")
        position = match.end()
        kind = match.lastgroup
        if kind == "space":
            pending_space = True
            continue
        if kind == "encoded":
            value = _decode_word(match, what)
        elif kind == "quoted":
            value = _QUOTED_PAIR.sub(r"\1", match["quoted"])
        else:
            value = match["atom"]
        if pending_space and parts and not (kind == previous == "encoded"):
            parts.append(" ")
        parts.append(value)
        previous = kind or ""
        pending_space = False
    return "".join(parts) or None


def _decode_word(match: re.Match[str], what: str) -> str:
    """The text of an RFC 2047 encoded word."""
    payload = match["text"].encode("ascii")
    try:
        if match["kind"] in "bB":
            if _BASE64.fullmatch(payload) is None:
                raise binascii.Error("not base64")
            data = binascii.a2b_base64(payload)
        else:
            data = _Q_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), payload.replace(b"_", b" "))
        return data.decode(match["charset"])
    except (binascii.Error, LookupError, UnicodeError):
        refuse(f"{what} name has an encoded word that cannot be decoded")
