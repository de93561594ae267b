"""Build smtpx's compiled core (the Cython twins of ``src/smtpx/_hot``).

Environment switches:

``SMTPX_NO_EXTENSIONS=1``   build nothing: a pure-Python install.
``SMTPX_DEBUG_BUILD=1``     no optimisation, debug symbols, C asserts on, Cython bounds
                            and wraparound checks on.
``SMTPX_CYTHON_TRACE=1``    Cython line tracing (for coverage and profilers); slow.
``SMTPX_BUILD_ONLY=a,b``    development only: build just these twins (``_reply,_data``);
                            the selector then runs pure until all are built.

A compile error is fatal: there is no silent fallback to pure Python. Users who cannot
compile set ``SMTPX_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
HOT = os.path.join("src", "smtpx", "_hot")


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# base name of the twin -> plain C helpers from csrc/ it links in
EXTENSIONS: dict[str, list[str]] = {
    "_reply": [],
    "_data": ["data_scan.c"],
    "_base64": ["b64.c"],
    "_sasl": [],
    "_writer": [],
    "_qp": [],
}


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    debug = flag("SMTPX_DEBUG_BUILD")
    trace = flag("SMTPX_CYTHON_TRACE")
    only = {b.strip() for b in os.environ.get("SMTPX_BUILD_ONLY", "").split(",") if b.strip()}
    macros: list[tuple[str, str | None]] = []
    compile_args: list[str] = []
    directives: dict[str, object] = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": True,
        "embedsignature": True,
    }
    if sys.platform == "win32":
        compile_args += ["/Od", "/Zi"] if debug else ["/O2"]
    else:
        compile_args += ["-O0", "-g3", "-UNDEBUG"] if debug else ["-O3"]
    if trace:
        directives["linetrace"] = True
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    exts = [
        Extension(
            f"smtpx._hot.{base}_c",
            [os.path.join(HOT, f"{base}_c.pyx"), *(os.path.join("csrc", c) for c in csrc)],
            include_dirs=["csrc"],
            define_macros=macros,
            extra_compile_args=compile_args,
        )
        for base, csrc in EXTENSIONS.items()
        if not only or base in only
    ]
    return cythonize(exts, compiler_directives=directives, nthreads=0, quiet=True)


setup(ext_modules=[] if flag("SMTPX_NO_EXTENSIONS") else extensions())
