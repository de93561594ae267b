"""Base64: MIME body encoding (1 MiB and 10 MiB of random bytes) and a SASL-size encode.

Rows of the MIME groups, besides the two twins:

``stdlib``
    ``base64.encodebytes``: 76-character lines ended by LF, not CRLF, so it writes one
    byte less per line than the others (its output is checked after LF -> CRLF).
``binascii``
    ``binascii.b2a_base64`` on each 57-byte slice, the lines joined with CRLF: the
    fastest way we found to get the exact CRLF output from the standard library
    (encoding the whole input at once and slicing it into lines is no faster).

The SASL group encodes 64 bytes on one line; its baseline is ``base64.b64encode``.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Callable
from functools import cache

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import TWINS, twin

MIME_GROUPS = {"mime-base64 1 MiB": (1 << 20, 50), "mime-base64 10 MiB": (10 << 20, 10)}
SASL_SIZE = 64


@cache
def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def binascii_mime(data: bytes) -> bytes:
    """MIME base64 with CRLF line ends from the standard library, a line at a time."""
    view = memoryview(data)
    b2a = binascii.b2a_base64
    lines = [b2a(view[i : i + 57], newline=False) for i in range(0, len(view), 57)]
    lines.append(b"")  # the join then ends the last line with CRLF too
    return b"\r\n".join(lines)


def mime_encoder(impl: str) -> Callable[[bytes], bytes]:
    if impl in TWINS:
        encode: Callable[[bytes], bytes] = twin("_base64", impl).b64encode_mime
        return encode
    return {"stdlib": base64.encodebytes, "binascii": binascii_mime}[impl]


@pytest.mark.parametrize("impl", [*TWINS, "stdlib", "binascii"])
@pytest.mark.parametrize("group", list(MIME_GROUPS))
def test_mime_encode(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    size, rounds = MIME_GROUPS[group]
    data = random_bytes(size)
    encode = mime_encoder(impl)
    output = encode(data)
    if impl == "stdlib":
        output = output.replace(b"\n", b"\r\n")
    assert output == binascii_mime(data)
    benchmark.group = group
    benchmark.extra_info["work"] = size
    benchmark.extra_info["unit"] = "B"
    benchmark.pedantic(encode, args=(data,), rounds=rounds, warmup_rounds=1)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("impl", [*TWINS, "stdlib"])
def test_sasl_encode(benchmark: BenchmarkFixture, impl: str) -> None:
    encode: Callable[[bytes], bytes] = (
        twin("_base64", impl).b64encode if impl in TWINS else base64.b64encode
    )
    data = random_bytes(SASL_SIZE)
    assert encode(data) == base64.b64encode(data)
    benchmark.group = f"b64encode {SASL_SIZE} B"
    benchmark.extra_info["work"] = SASL_SIZE
    benchmark.extra_info["unit"] = "B"
    benchmark(encode, data)
