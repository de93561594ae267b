"""The hot paths, compiled or pure: the one place that chooses.

Every hot path is a pair: ``_<name>_py.py`` (the typed, documented specification) and
``_<name>_c.pyx`` (the Cython twin, with a ``.pyi``). This module loads *all* compiled
twins or *all* pure ones, never a mix, and re-exports their public names. Nothing else
in smtpx imports a twin directly.

Environment:

``SMTPX_NO_EXTENSIONS=1``
    Use the pure-Python twins even when the compiled ones are installed.
``SMTPX_REQUIRE_EXTENSIONS=1``
    Fail at import when the compiled twins cannot be loaded (wheel tests, production).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = [
    "BODY_8BIT",
    "BODY_NEEDS_ENCODING",
    "EXTENSION_PATHS",
    "IMPLEMENTATION",
    "MODULES",
    "REASON",
    "CommandBuffer",
    "DataEncoder",
    "ReplyParser",
    "Response",
    "b64decode",
    "b64encode",
    "b64encode_mime",
    "encode_data",
    "qp_encode",
    "sasl_cram_md5",
    "sasl_login",
    "sasl_plain",
    "sasl_xoauth2",
    "scan_body",
]

#: The hot paths, by base name, with the public names each one provides.
MODULES: dict[str, tuple[str, ...]] = {
    "_reply": ("Response", "ReplyParser"),
    "_data": ("DataEncoder", "encode_data", "scan_body", "BODY_8BIT", "BODY_NEEDS_ENCODING"),
    "_base64": ("b64encode", "b64decode", "b64encode_mime"),
    "_sasl": ("sasl_plain", "sasl_login", "sasl_xoauth2", "sasl_cram_md5"),
    "_writer": ("CommandBuffer",),
    "_qp": ("qp_encode",),
}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def load_twins(kind: str) -> dict[str, ModuleType]:
    """Import every twin of one kind (``"c"`` or ``"py"``); raise ImportError if one fails."""
    return {base: importlib.import_module(f"{__name__}.{base}_{kind}") for base in MODULES}


def _select() -> tuple[str, str, dict[str, ModuleType]]:
    no_ext = _flag("SMTPX_NO_EXTENSIONS")
    require = _flag("SMTPX_REQUIRE_EXTENSIONS")
    if no_ext and require:
        raise ImportError(
            "smtpx: SMTPX_NO_EXTENSIONS=1 and SMTPX_REQUIRE_EXTENSIONS=1 contradict each other"
        )
    if no_ext:
        return "python", "SMTPX_NO_EXTENSIONS=1 is set", load_twins("py")
    try:
        mods = load_twins("c")
    except ImportError as exc:
        if require:
            raise ImportError(
                f"smtpx: SMTPX_REQUIRE_EXTENSIONS=1 is set but the compiled core "
                f"could not be loaded: {exc}"
            ) from exc
        return "python", f"the compiled core could not be loaded ({exc})", load_twins("py")
    return "cython", "the compiled core is installed", mods


IMPLEMENTATION, REASON, _mods = _select()
#: Files of the loaded compiled twins (empty for the pure implementation).
EXTENSION_PATHS: tuple[str, ...] = (
    tuple(str(m.__file__) for m in _mods.values()) if IMPLEMENTATION == "cython" else ()
)

if TYPE_CHECKING:
    from ._base64_py import b64decode, b64encode, b64encode_mime
    from ._data_py import (
        BODY_8BIT,
        BODY_NEEDS_ENCODING,
        DataEncoder,
        encode_data,
        scan_body,
    )
    from ._qp_py import qp_encode
    from ._reply_py import ReplyParser, Response
    from ._sasl_py import sasl_cram_md5, sasl_login, sasl_plain, sasl_xoauth2
    from ._writer_py import CommandBuffer
else:
    for _base, _names in MODULES.items():
        for _name in _names:
            globals()[_name] = getattr(_mods[_base], _name)
    del _base, _names, _name
