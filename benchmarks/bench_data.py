"""DATA encoding: CRLF normalisation + dot-stuffing + end of data, of a whole message body.

Groups (one ``encode_data()`` call per round; ``work`` is the input size):

``data-encode 1 MiB`` / ``data-encode 10 MiB``
    A realistic text body: lines of 60 to 76 characters ended by CRLF, 2 % of them
    starting with a dot.
``data-encode 1 MiB bare LF``
    The same text with bare LF line ends (as written by Unix tools), so every line end
    is rewritten.
``data-encode 4 KiB``
    A small message (4 KiB of the CRLF text), where the cost of a call counts.
``body-scan 1 MiB``
    ``scan_body()`` of the 1 MiB CRLF text: what a sender decides before BDAT, in one
    pass: does the body need ``BODY=8BITMIME``, and can it go as it is (no NUL, no bare
    CR or LF, a CRLF at the end)? Beside it, ``stdlib``: the quickest way found with
    ``bytes`` methods alone (``isascii()``, and counting CR, LF and CRLF: they are
    equal when every CR and LF is part of a CRLF), about ten times quicker than a
    regular expression that looks for bare line ends.

Rows, besides the two twins:

``smtplib``
    CPython's path for the same job, as ``smtplib.SMTP.data()`` takes it:
    ``smtplib._fix_eols`` (a regex on ``str``, so the body is decoded from latin-1 and
    encoded back around it), then ``smtplib._quote_periods`` (a regex on bytes), then the
    end of data appended. (``SMTP.data()`` itself only runs ``_fix_eols`` on ``str``
    messages: given bytes it sends bare CR and LF as they are.)
"""

from __future__ import annotations

import random
import re
import smtplib
from collections.abc import Callable
from functools import cache

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import TWINS, twin

# group -> (input size, line end, rounds: None to let pytest-benchmark calibrate)
GROUPS = {
    "data-encode 1 MiB": (1 << 20, b"\r\n", 50),
    "data-encode 10 MiB": (10 << 20, b"\r\n", 10),
    "data-encode 1 MiB bare LF": (1 << 20, b"\n", 50),
    "data-encode 4 KiB": (4 << 10, b"\r\n", None),
}


@cache
def text_body(size: int, line_end: bytes) -> bytes:
    """``size`` octets of text lines, the same for every run."""
    rng = random.Random(size)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 10))) for _ in range(2000)
    ]
    lines: list[bytes] = []
    total = 0
    while total < size:
        line = b" ".join(rng.choices(words, k=16))[: rng.randint(60, 76)]
        if rng.random() < 0.02:
            line = b"." + line[1:]
        lines.append(line)
        total += len(line) + len(line_end)
    return line_end.join(lines)[:size]


def smtplib_encode(data: bytes) -> bytes:
    """What ``smtplib.SMTP.data()`` sends for a ``str`` message, from bytes."""
    fixed = smtplib._fix_eols(data.decode("latin-1")).encode("latin-1")  # type: ignore[attr-defined]
    quoted: bytes = smtplib._quote_periods(fixed)  # type: ignore[attr-defined]
    if quoted[-2:] != smtplib.bCRLF:
        quoted += smtplib.bCRLF
    return quoted + b"." + smtplib.bCRLF


def encoder(impl: str) -> Callable[[bytes], bytes]:
    if impl in TWINS:
        encode: Callable[[bytes], bytes] = twin("_data", impl).encode_data
        return encode
    return smtplib_encode


@pytest.mark.parametrize("impl", [*TWINS, "smtplib"])
@pytest.mark.parametrize("group", list(GROUPS))
def test_data_encode(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    size, line_end, rounds = GROUPS[group]
    data = text_body(size, line_end)
    encode = encoder(impl)
    assert encode(data) == smtplib_encode(data)
    benchmark.group = group
    benchmark.extra_info["work"] = size
    benchmark.extra_info["unit"] = "B"
    if rounds is None:
        benchmark(encode, data)
    else:
        benchmark.pedantic(encode, args=(data,), rounds=rounds, warmup_rounds=1)  # type: ignore[no-untyped-call]


#: A NUL, a CR not followed by LF, or an LF not preceded by CR (to check the baseline).
_NOT_WIRE_FORM = re.compile(rb"\x00|\r(?!\n)|(?<!\r)\n")


def stdlib_scan(data: bytes) -> int:
    """``scan_body()``'s answer with ``bytes`` methods."""
    flags = 0 if data.isascii() else 1
    pairs = data.count(b"\r\n")
    if data and (
        not data.endswith(b"\r\n")
        or b"\x00" in data
        or not data.count(b"\r") == pairs == data.count(b"\n")
    ):
        flags |= 2
    return flags


@pytest.mark.parametrize("impl", [*TWINS, "stdlib"])
def test_body_scan(benchmark: BenchmarkFixture, impl: str) -> None:
    data = text_body(1 << 20, b"\r\n")
    data = data[: data.rindex(b"\r\n") + 2]  # a body in wire form: the common case
    scan: Callable[[bytes], int] = twin("_data", impl).scan_body if impl in TWINS else stdlib_scan
    assert scan(data) == stdlib_scan(data) == 0
    assert scan(data[:-1]) == stdlib_scan(data[:-1]) == 2
    assert _NOT_WIRE_FORM.search(data) is None
    benchmark.group = "body-scan 1 MiB"
    benchmark.extra_info["work"] = len(data)
    benchmark.extra_info["unit"] = "B"
    benchmark.pedantic(scan, args=(data,), rounds=50, warmup_rounds=1)  # type: ignore[no-untyped-call]
