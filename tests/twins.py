"""The twins of the hot paths, for tests: which to run, and how to import one.

Test modules import from here (``from twins import both, differential``); the fixtures
that parametrise over the twins live in ``conftest.py``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

NO_EXTENSIONS = os.environ.get("SMTPX_NO_EXTENSIONS", "").strip().lower() in (
    "1",
    "true",
    "yes",
    "on",
)
#: The twins every hot-path test runs against.
IMPLEMENTATIONS: tuple[str, ...] = ("python",) if NO_EXTENSIONS else ("python", "cython")


def twin(base: str, implementation: str) -> ModuleType:
    """Import one twin: ``twin("_reply", "cython")`` is ``smtpx._hot._reply_c``."""
    suffix = {"python": "py", "cython": "c"}[implementation]
    return importlib.import_module(f"smtpx._hot.{base}_{suffix}")


def both(base: str) -> tuple[ModuleType, ModuleType]:
    """The pure and the compiled twin, for differential tests."""
    return twin(base, "python"), twin(base, "cython")


#: Mark for differential tests (pure vs compiled); in pure mode there is nothing to compare.
differential = pytest.mark.skipif(
    NO_EXTENSIONS, reason="SMTPX_NO_EXTENSIONS=1: no compiled twin to compare against"
)
