"""The quoted-printable twins: known answers, a reference encoder, the stdlib decoder as
oracle, and twin against twin."""

from __future__ import annotations

import array
import binascii
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twins import both, differential

# The twin fixtures hand out stateless modules: one may serve every generated input.
with_twin = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# Text-like input: line breaks of every kind, white space, "=", controls, 8-bit octets.
texty = st.lists(
    st.sampled_from([b"a", b"Z", b"~", b" ", b"\t", b"=", b"\r", b"\n", b"\r\n", b"\x00", b"\xff"])
    | st.binary(min_size=1, max_size=3),
    max_size=400,
).map(b"".join)


def view(data: bytes) -> memoryview:
    return memoryview(data)


def reference(data: bytes) -> bytes:
    """RFC 2045 6.7 as the pure twin's docstring states it, one octet at a time."""
    lines = []
    for line in LINE_BREAK.split(data):
        out, column = [], 0
        for index, octet in enumerate(line):
            last = index == len(line) - 1
            literal = (33 <= octet <= 126 and octet != 61) or (octet in b" \t" and not last)
            token = bytes([octet]) if literal else b"=%02X" % octet
            if column + len(token) > (76 if last else 75):
                out.append(b"=\r\n")
                column = 0
            out.append(token)
            column += len(token)
        lines.append(b"".join(out))
    return b"\r\n".join(lines)


def crlf(data: bytes) -> bytes:
    """``data`` with every line break made CRLF: what the encoding decodes to."""
    return LINE_BREAK.sub(b"\r\n", data)


def check_shape(encoded: bytes) -> None:
    """What every encoding must look like on the wire."""
    assert encoded.isascii()
    lines = encoded.split(b"\r\n")
    bare = encoded.replace(b"\r\n", b"")
    assert b"\r" not in bare
    assert b"\n" not in bare
    for line in lines:
        assert len(line) <= 76
        assert not line.endswith((b" ", b"\t"))
        assert re.fullmatch(rb"(?:[\x21-\x3c\x3e-\x7e \t]|=[0-9A-F]{2})*=?", line)


def outcome(func: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: ("ok", result) or (exception type, message)."""
    try:
        return ("ok", func(*args))
    except Exception as exc:
        return (type(exc), str(exc))


def test_the_twin_under_test_is_the_one_asked_for(qp_mod: ModuleType, implementation: str) -> None:
    # A missing build must not run the pure twin twice.
    assert str(qp_mod.__file__).endswith(".py") == (implementation == "python")


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"", b""),
        (b"Be happy!", b"Be happy!"),
        (b"a=b", b"a=3Db"),
        (b"caf\xc3\xa9", b"caf=C3=A9"),
        (b"\x00\x1f\x7f\x80", b"=00=1F=7F=80"),
        # line breaks: CRLF, LF and CR are each one break; the final one is kept
        (b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd"),
        (b"a\n", b"a\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b"\r\r\n", b"\r\n\r\n"),
        (b"\r\n\r\n", b"\r\n\r\n"),
        # white space: literal inside a line, escaped at its end
        (b"a b\tc", b"a b\tc"),
        (b"a ", b"a=20"),
        (b"a\t\r\nb  \n", b"a=09\r\nb =20\r\n"),
        (b" ", b"=20"),
        (b"  \r", b" =20\r\n"),
        # soft breaks: 76 characters at most, 75 and "=" when the line goes on
        (b"x" * 76, b"x" * 76),
        (b"x" * 77, b"x" * 75 + b"=\r\nxx"),
        (b"x" * 76 + b"\n", b"x" * 76 + b"\r\n"),
        (b"x" * 150, b"x" * 75 + b"=\r\n" + b"x" * 75),
        (b"x" * 151, b"x" * 75 + b"=\r\n" + b"x" * 76),
        (b"x" * 152, b"x" * 75 + b"=\r\n" + b"x" * 75 + b"=\r\nxx"),
        (b"x" * 73 + b"=", b"x" * 73 + b"=3D"),  # a last escape may reach column 76
        (b"x" * 74 + b"=", b"x" * 74 + b"=\r\n=3D"),
        (b"x" * 73 + b"=y", b"x" * 73 + b"=\r\n=3Dy"),  # not last: 75 at most
        (b"x" * 72 + b"=y", b"x" * 72 + b"=3Dy"),
        (b"x" * 75 + b" ", b"x" * 75 + b"=\r\n=20"),
        (b"x" * 74 + b" y", b"x" * 74 + b" y"),
        (b"x" * 74 + b" yz", b"x" * 74 + b" =\r\nyz"),  # a space before "=" is not trailing
        (b"\xff" * 26, b"=FF" * 25 + b"=\r\n=FF"),
        (b"\xff" * 25 + b"a", b"=FF" * 25 + b"a"),
    ],
)
def test_known_answers(qp_mod: ModuleType, data: bytes, encoded: bytes) -> None:
    result = qp_mod.qp_encode(data)
    assert type(result) is bytes
    assert result == encoded
    assert reference(data) == encoded
    assert binascii.a2b_qp(result) == crlf(data)


@pytest.mark.parametrize(
    "data",
    [
        bytearray(b"caf\xc3\xa9 =\n"),
        memoryview(b"caf\xc3\xa9 =\n"),
        memoryview(b"xxcaf\xc3\xa9 =\nxx")[2:-2],
        memoryview(array.array("i", [1, -2, 3])),  # read as its bytes, not its items
        memoryview(bytes(range(24))).cast("B", (4, 6)),  # two-dimensional
        memoryview(bytes(range(40)))[::3],  # strided: copied
        memoryview(b""),
    ],
    ids=["bytearray", "memoryview", "slice", "int-array", "2d", "strided", "empty"],
)
def test_bytes_like_inputs(qp_mod: ModuleType, data: bytearray | memoryview) -> None:
    raw = bytes(data) if isinstance(data, bytearray) else data.tobytes()
    result = qp_mod.qp_encode(data)
    assert type(result) is bytes
    assert result == reference(raw)


@pytest.mark.parametrize(
    ("data", "kind"), [("text", "str"), (42, "int"), (None, "NoneType"), ([1, 2], "list")]
)
def test_refuses_what_is_not_bytes_like(qp_mod: ModuleType, data: object, kind: str) -> None:
    with pytest.raises(TypeError) as info:
        qp_mod.qp_encode(data)
    assert str(info.value) == (
        f"qp_encode() argument must be bytes, bytearray or memoryview, not {kind}"
    )


def test_refuses_a_released_memoryview(qp_mod: ModuleType) -> None:
    view = memoryview(b"abc")
    view.release()
    with pytest.raises(ValueError, match="released memoryview"):
        qp_mod.qp_encode(view)


@pytest.mark.parametrize("octet", range(256))
def test_every_octet_alone_and_inside_a_line(qp_mod: ModuleType, octet: int) -> None:
    for data in (bytes([octet]), b"a" + bytes([octet]) + b"b", bytes([octet]) * 100):
        result = qp_mod.qp_encode(data)
        assert result == reference(data)
        assert binascii.a2b_qp(result) == crlf(data)


def test_large_input(qp_mod: ModuleType) -> None:
    # Encoded with the GIL released; the worst case (all escapes) fills the bound.
    text = (b"Dear reader, the caf\xc3\xa9 = open.  \r\n" * 40_000) + b"x" * 5000
    assert qp_mod.qp_encode(text) == reference(text)
    noise = os.urandom(300_000)
    encoded = qp_mod.qp_encode(noise)
    assert binascii.a2b_qp(encoded) == crlf(noise)
    check_shape(encoded)
    worst = b"\xff" * 250_000
    assert qp_mod.qp_encode(worst) == reference(worst)


def test_from_several_threads(qp_mod: ModuleType) -> None:
    inputs = [os.urandom(64 * 1024 + i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        encoded = list(pool.map(qp_mod.qp_encode, inputs))
    assert encoded == [reference(data) for data in inputs]


@with_twin
@given(data=texty)
def test_matches_the_reference(qp_mod: ModuleType, data: bytes) -> None:
    assert qp_mod.qp_encode(data) == reference(data)


@with_twin
@given(data=st.one_of(texty, st.binary(max_size=2000)))
def test_decodes_to_the_input_and_keeps_the_shape(qp_mod: ModuleType, data: bytes) -> None:
    encoded = qp_mod.qp_encode(data)
    check_shape(encoded)
    assert binascii.a2b_qp(encoded) == crlf(data)
    assert encoded.endswith(b"\r\n") == data.endswith((b"\r", b"\n"))


@with_twin
@given(
    lines=st.lists(st.binary(max_size=200).map(lambda b: LINE_BREAK.sub(b"", b)), min_size=1),
    line_break=st.sampled_from([b"\r\n", b"\n", b"\r"]),
)
def test_lines_are_encoded_independently(
    qp_mod: ModuleType, lines: list[bytes], line_break: bytes
) -> None:
    # The encoding of a text is the encodings of its lines, joined by CRLF: whatever
    # the line break and wherever the input is split between lines.
    data = b"".join(line + line_break for line in lines)
    expected = b"".join(qp_mod.qp_encode(line) + b"\r\n" for line in lines)
    assert qp_mod.qp_encode(data) == expected


# ---------------------------------------------------------------- twin against twin
@differential
@given(
    data=st.one_of(
        texty,
        st.binary(max_size=3000),
        st.text(max_size=20),
        st.integers(),
        st.none(),
        texty.map(bytearray),
        texty.map(view),
    )
)
def test_twins_encode_alike(data: object) -> None:
    py, c = both("_qp")
    assert outcome(py.qp_encode, data) == outcome(c.qp_encode, data)


@differential
@settings(max_examples=10)
@given(size=st.integers(16 * 1024, 512 * 1024), text=st.booleans())
def test_twins_encode_large_inputs_alike(size: int, text: bool) -> None:
    py, c = both("_qp")
    data = os.urandom(size)
    if text:  # mostly printable, with line breaks and white space at line ends
        data = data.translate(bytes(32 + b % 95 for b in range(256))).replace(b"~", b" \n")
    assert py.qp_encode(data) == c.qp_encode(data)
