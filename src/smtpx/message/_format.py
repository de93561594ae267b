"""Text with fields filled in per message: the personalised parts of a template.

A :class:`Format` is ``str.format`` syntax restricted to named fields: ``{name}``,
``{name!r}``, ``{amount:.2f}``, with ``{{`` and ``}}`` for braces. Field names are plain
identifiers: no attribute or index access (``{user.password}``, ``{rows[0]}``), so a
template reaches nothing but the values it is given. The template is parsed once;
:meth:`Format.render` only looks values up, formats them and joins the pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from string import Formatter
from typing import Final

from smtpx.message._text import refuse

_CONVERSIONS: Final[dict[str | None, Callable[[object], object]]] = {
    None: lambda value: value,
    "s": str,
    "r": repr,
    "a": ascii,
}


def _same(text: str) -> str:
    return text


class Format:
    """A text with ``{name}`` fields (see the module docstring); ``literal`` text has
    none, braces included."""

    __slots__ = ("_fields", "_literal", "_what")

    def __init__(self, text: str, what: str, *, literal: bool = False) -> None:
        self._what = what
        self._fields: list[tuple[str, str | None, Callable[[object], object], str]] = []
        if literal:
            self._literal = text
            return
        try:
            parsed = list(Formatter().parse(text))
        except ValueError as exc:
            refuse(f"{what} is not a valid template: {exc}")
        self._literal = ""
        for literal_text, name, spec, conversion in parsed:
            if name is not None:
                if not name.isidentifier():
                    refuse(
                        f"{what} template field {{{name}}} must be a plain name "
                        "(no attribute or index access, no positional fields)"
                    )
                if conversion not in _CONVERSIONS:
                    refuse(f"{what} template field {{{name}}} has an unknown conversion")
                if spec and "{" in spec:
                    refuse(f"{what} template field {{{name}}} has a nested field in its format")
            self._fields.append((literal_text, name, _CONVERSIONS[conversion], spec or ""))
        if all(name is None for _, name, _, _ in self._fields):
            self._literal = "".join(text for text, _, _, _ in self._fields)
            self._fields = []

    def render(self, values: Mapping[str, object], escape: Callable[[str], str] = _same) -> str:
        """The text with every field replaced by its formatted value, passed through
        ``escape`` (``html.escape`` for an HTML part)."""
        if not self._fields:
            return self._literal
        pieces = []
        for text, name, convert, spec in self._fields:
            pieces.append(text)
            if name is None:
                continue
            try:
                value = values[name]
            except KeyError:
                refuse(f"{self._what} template has no value for field {{{name}}}")
            try:
                pieces.append(escape(format(convert(value), spec)))
            except (TypeError, ValueError) as exc:
                refuse(f"{self._what} template field {{{name}}} cannot be formatted: {exc}")
        return "".join(pieces)
