"""Quoted-printable: body encoding of 1 MiB of text, Latin (accented) and plain ASCII.

The text is lines of 20 to 120 octets with CRLF line ends, the case the message builder
sends as quoted-printable (mostly ASCII, a few 8-bit characters). Rows, besides the two
twins:

``binascii``
    ``binascii.b2a_qp(data, istext=True)``: the C encoder of the standard library.
``quopri``
    ``quopri.encodestring(data)``, which calls ``binascii.b2a_qp`` when it can.

The standard library places soft line breaks a little differently (it never lets a
last escape reach column 76 and escapes a lone ``.`` line), so each row is checked by
decoding: every output decodes to the input, and the twins' outputs are equal.
"""

from __future__ import annotations

import binascii
import quopri
import random
from collections.abc import Callable
from functools import cache

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import TWINS, twin

SIZE = 1 << 20
LATIN = "the quick brown fox café naïve über déjà vu Ærø = jumps over lazy dog"
ASCII = "the quick brown fox jumps over the lazy dog and a compound-word-of-length"
WORDS = {"latin": LATIN.split(" "), "ascii": ASCII.split(" ")}
# rounds for the compiled twin / the pure twin / the standard library
ROUNDS = {"cython": 50, "python": 3}
OTHER_ROUNDS = 20


@cache
def text(kind: str) -> bytes:
    """1 MiB of lines of words, CRLF-separated, the same for every run."""
    rng = random.Random(kind)
    words = WORDS[kind]
    lines = []
    size = 0
    while size < SIZE:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 24))).encode()
        lines.append(line)
        size += len(line) + 2
    return b"\r\n".join(lines)[:SIZE]


def encoder(impl: str) -> Callable[[bytes], bytes]:
    if impl in TWINS:
        encode: Callable[[bytes], bytes] = twin("_qp", impl).qp_encode
        return encode
    if impl == "quopri":
        return quopri.encodestring
    return lambda data: binascii.b2a_qp(data, istext=True)


@pytest.mark.parametrize("impl", [*TWINS, "binascii", "quopri"])
@pytest.mark.parametrize("kind", list(WORDS))
def test_qp_encode(benchmark: BenchmarkFixture, kind: str, impl: str) -> None:
    data = text(kind)
    encode = encoder(impl)
    output = encode(data)
    assert binascii.a2b_qp(output) == data
    assert max(map(len, output.split(b"\r\n"))) <= 76
    if impl in TWINS:
        assert output == twin("_qp", "cython").qp_encode(data)
    benchmark.group = f"qp-encode 1 MiB {kind} text"
    benchmark.extra_info["work"] = len(data)
    benchmark.extra_info["unit"] = "B"
    rounds = ROUNDS.get(impl, OTHER_ROUNDS)
    benchmark.pedantic(encode, args=(data,), rounds=rounds, warmup_rounds=1)  # type: ignore[no-untyped-call]
