"""What a server said it can do: the EHLO reply, parsed.

RFC 5321 4.1.1.1: the first line of a positive EHLO reply names the server; every other
line is an extension keyword, optionally followed by parameters. Keywords are matched
case-insensitively. Old-style ``AUTH=PLAIN LOGIN`` lines (sent by servers for clients
that predate RFC 4954) count as ``AUTH``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The extensions a server advertised, with their parameters.

    ``size_limit`` is the SIZE extension's maximum message size in octets, or ``None``
    when SIZE was not advertised, advertised without a limit (``SIZE`` or ``SIZE 0``),
    or with a value that is not a number (treated as unknown rather than guessed).
    """

    server_name: str = ""
    keywords: Mapping[str, str] = field(default_factory=dict)
    auth: frozenset[str] = frozenset()
    size_limit: int | None = None

    @classmethod
    def from_ehlo(cls, lines: Iterable[str]) -> Capabilities:
        """Parse the text lines of a positive EHLO reply (``Response.lines``)."""
        it = iter(lines)
        first = next(it, "")
        server_name = first.split(" ", 1)[0]
        keywords: dict[str, str] = {}
        auth: set[str] = set()
        for line in it:
            keyword, _, params = line.strip().partition(" ")
            if not keyword:
                continue
            keyword = keyword.upper()
            params = params.strip()
            if keyword.startswith("AUTH="):  # old style: "AUTH=PLAIN LOGIN"
                params = f"{keyword[5:]} {params}".strip()
                keyword = "AUTH"
            if keyword == "AUTH":
                auth.update(p.upper() for p in params.split())
                keywords["AUTH"] = " ".join(sorted(auth))
                continue
            keywords.setdefault(keyword, params)
        return cls(server_name, keywords, frozenset(auth), _size_limit(keywords.get("SIZE")))

    def has(self, keyword: str) -> bool:
        """True when ``keyword`` (any case) was advertised."""
        return keyword.upper() in self.keywords

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.keywords

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.keywords

    @property
    def binarymime(self) -> bool:
        return "BINARYMIME" in self.keywords and self.chunking

    @property
    def eightbitmime(self) -> bool:
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.keywords

    @property
    def dsn(self) -> bool:
        return "DSN" in self.keywords

    @property
    def enhanced_status_codes(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def requiretls(self) -> bool:
        return "REQUIRETLS" in self.keywords

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.keywords

    @property
    def size(self) -> bool:
        """SIZE was advertised (with or without a limit)."""
        return "SIZE" in self.keywords


def _size_limit(value: str | None) -> int | None:
    if not value:
        return None
    text = value.split()[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        return None
    limit = int(text)
    return limit or None
