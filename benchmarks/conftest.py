"""Benchmark conventions (see benchmarks/README.md).

Every benchmark is parametrised over ``impl``: the two twins (``"cython"``, ``"python"``)
and, in the same group, the standard-library or straightforward way it is compared with.
Each sets ``benchmark.group`` (what is measured, e.g. ``"data-encode 1 MiB"``) and
``benchmark.extra_info["work"]`` / ``["unit"]`` (how much one round does: bytes,
replies, groups), from which ``report.py`` derives throughput and ratios.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TWINS = ("cython", "python")


def twin(base: str, impl: str) -> ModuleType:
    """``twin("_data", "cython")`` is ``smtpx._hot._data_c``; the compiled twin must exist."""
    suffix = {"python": "py", "cython": "c"}[impl]
    return importlib.import_module(f"smtpx._hot.{base}_{suffix}")
