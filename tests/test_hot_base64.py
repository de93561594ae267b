"""The base64 twins: RFC 4648 vectors, the stdlib as oracle, strict challenge decoding."""

from __future__ import annotations

import array
import base64
import binascii
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError, ProtocolError

from twins import both, differential

MALFORMED = "malformed base64 in server challenge: "
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
LINE_LENGTHS = list(range(4, 77, 4))
# The twin fixtures hand out stateless modules: one may serve every generated input.
with_twin = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# RFC 4648 section 10.
RFC4648 = [
    (b"", b""),
    (b"f", b"Zg=="),
    (b"fo", b"Zm8="),
    (b"foo", b"Zm9v"),
    (b"foob", b"Zm9vYg=="),
    (b"fooba", b"Zm9vYmE="),
    (b"foobar", b"Zm9vYmFy"),
]


def mime_oracle(data: bytes, line_length: int = 76) -> bytes:
    """The MIME encoding built from the stdlib's one-line encoding."""
    encoded = base64.b64encode(data)
    return b"".join(
        encoded[i : i + line_length] + b"\r\n" for i in range(0, len(encoded), line_length)
    )


def outcome(func: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: ("ok", result) or (exception type, message)."""
    try:
        return ("ok", func(*args))
    except Exception as exc:
        return (type(exc), str(exc))


def test_the_twin_under_test_is_the_one_asked_for(
    base64_mod: ModuleType, implementation: str
) -> None:
    # A missing build must not run the pure twin twice.
    assert str(base64_mod.__file__).endswith(".py") == (implementation == "python")


# ---------------------------------------------------------------- b64encode
@pytest.mark.parametrize(("raw", "encoded"), RFC4648)
def test_encode_rfc4648_vectors(base64_mod: ModuleType, raw: bytes, encoded: bytes) -> None:
    result = base64_mod.b64encode(raw)
    assert type(result) is bytes
    assert result == encoded


@pytest.mark.parametrize(
    "data",
    [
        bytearray(b"foobar!"),
        memoryview(b"foobar!"),
        memoryview(b"xxfoobar!xx")[2:-2],
        memoryview(array.array("i", [1, -2, 3])),  # read as its bytes, not its items
        memoryview(bytes(range(24))).cast("B", (4, 6)),  # two-dimensional
        memoryview(bytes(range(40)))[::3],  # strided: copied
        memoryview(b""),
    ],
    ids=["bytearray", "memoryview", "slice", "int-array", "2d", "strided", "empty"],
)
def test_encode_bytes_like_inputs(base64_mod: ModuleType, data: bytearray | memoryview) -> None:
    expected = base64.b64encode(bytes(data) if isinstance(data, bytearray) else data.tobytes())
    result = base64_mod.b64encode(data)
    assert type(result) is bytes
    assert result == expected


@pytest.mark.parametrize(
    ("data", "kind"), [("Zm9v", "str"), (42, "int"), (None, "NoneType"), ([1, 2], "list")]
)
def test_encode_refuses_what_is_not_bytes_like(
    base64_mod: ModuleType, data: object, kind: str
) -> None:
    message = f"b64encode() argument must be bytes, bytearray or memoryview, not {kind}"
    with pytest.raises(TypeError) as info:
        base64_mod.b64encode(data)
    assert str(info.value) == message


def test_encode_refuses_a_released_memoryview(base64_mod: ModuleType) -> None:
    view = memoryview(b"abc")
    view.release()
    with pytest.raises(ValueError, match="released memoryview"):
        base64_mod.b64encode(view)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 6, 7, 8, 13, 57, 58, 16 * 1024 - 1, 16 * 1024])
def test_encode_sizes_around_the_loop_and_gil_boundaries(base64_mod: ModuleType, size: int) -> None:
    data = os.urandom(size)
    assert base64_mod.b64encode(data) == base64.b64encode(data)


def test_encode_large_input(base64_mod: ModuleType) -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)  # encoded with the GIL released
    assert base64_mod.b64encode(data) == base64.b64encode(data)
    assert base64_mod.b64encode(bytearray(data)) == base64.b64encode(data)


def test_encode_from_several_threads(base64_mod: ModuleType) -> None:
    # Large inputs are encoded with the GIL released: threads must not disturb each other.
    inputs = [os.urandom(256 * 1024 + i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        encoded = list(pool.map(base64_mod.b64encode, inputs))
        mime = list(pool.map(base64_mod.b64encode_mime, map(bytearray, inputs)))
    assert encoded == [base64.b64encode(data) for data in inputs]
    assert mime == [mime_oracle(data) for data in inputs]


@with_twin
@given(data=st.binary(max_size=5000))
def test_encode_matches_the_stdlib(base64_mod: ModuleType, data: bytes) -> None:
    assert base64_mod.b64encode(data) == base64.b64encode(data)


# ---------------------------------------------------------------- b64decode
@pytest.mark.parametrize(("raw", "encoded"), RFC4648)
def test_decode_rfc4648_vectors(base64_mod: ModuleType, raw: bytes, encoded: bytes) -> None:
    for data in (encoded, encoded.decode("ascii"), bytearray(encoded), memoryview(encoded)):
        result = base64_mod.b64decode(data)
        assert type(result) is bytes
        assert result == raw


def test_decode_strided_memoryview(base64_mod: ModuleType) -> None:
    assert base64_mod.b64decode(memoryview(b"Z.m.9.v.")[::2]) == b"foo"


def test_decode_empty_challenge(base64_mod: ModuleType) -> None:
    assert base64_mod.b64decode(b"") == b""
    assert base64_mod.b64decode("") == b""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # 1. a str must be ASCII
        ("Zm9vé===", "non-ASCII character at offset 4"),
        ("€", "non-ASCII character at offset 0"),
        ("Zm!v\U0001f600", "non-ASCII character at offset 4"),  # checked before the alphabet
        # 2. the alphabet: the first offending byte, shown escaped
        (b"Zm9v!Zm9", "invalid character b'!' at offset 4"),
        ("Zm9v!Zm9", "invalid character b'!' at offset 4"),
        (b"Zm9v Zm9", "invalid character b' ' at offset 4"),
        (b"Zm9v\r\n", "invalid character b'\\r' at offset 4"),
        (b"Zm9v\n", "invalid character b'\\n' at offset 4"),
        (b"\tZm9v", "invalid character b'\\t' at offset 0"),
        (b"Zm9v\x00", "invalid character b'\\x00' at offset 4"),
        (b"Zm9v\xff", "invalid character b'\\xff' at offset 4"),
        (b"Zm-v", "invalid character b'-' at offset 2"),  # URL-safe alphabet
        (b"Zm_v", "invalid character b'_' at offset 2"),
        (b"Zm9'", 'invalid character b"\'" at offset 3'),
        (b"Z!=", "invalid character b'!' at offset 1"),  # checked before the length
        # 3. the length
        (b"Z", "length 1 is not a multiple of 4"),
        (b"Zm9", "length 3 is not a multiple of 4"),
        (b"Zm9vY", "length 5 is not a multiple of 4"),
        (b"Zg=", "length 3 is not a multiple of 4"),  # checked before the padding
        (b"Zg===", "length 5 is not a multiple of 4"),
        # 4. padding only at the end, once or twice; the first '=' is named
        (b"====", "misplaced padding '=' at offset 0"),
        (b"Z===", "misplaced padding '=' at offset 1"),
        (b"Zm=v", "misplaced padding '=' at offset 2"),
        (b"Zg==Zg==", "misplaced padding '=' at offset 2"),
        (b"Zm9=Zm9v", "misplaced padding '=' at offset 3"),
        (b"=m9v", "misplaced padding '=' at offset 0"),
        # 5. canonical: the bits the padding drops are zero
        (b"Zh==", "non-zero unused bits at offset 1"),
        (b"Zm9vZv==", "non-zero unused bits at offset 5"),
        (b"Zm9=", "non-zero unused bits at offset 2"),
        (b"Zm9vYmF=", "non-zero unused bits at offset 6"),
    ],
)
def test_decode_refuses_malformed_challenges(
    base64_mod: ModuleType, data: bytes | str, message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        base64_mod.b64decode(data)
    assert str(info.value) == MALFORMED + message
    assert info.value.code is None


def test_decode_error_does_not_echo_the_input(base64_mod: ModuleType) -> None:
    secret = base64.b64encode(b"very secret session material " * 4)
    for data in (secret + b"!", b"!" + secret, secret[:-1], secret + b"=" + secret):
        with pytest.raises(ProtocolError) as info:
            base64_mod.b64decode(data)
        assert secret.decode() not in str(info.value)
        assert len(str(info.value)) < 100


@pytest.mark.parametrize(("data", "kind"), [(42, "int"), (None, "NoneType"), ([1], "list")])
def test_decode_refuses_other_types(base64_mod: ModuleType, data: object, kind: str) -> None:
    message = f"b64decode() argument must be str, bytes, bytearray or memoryview, not {kind}"
    with pytest.raises(TypeError) as info:
        base64_mod.b64decode(data)
    assert str(info.value) == message


@with_twin
@given(data=st.binary(max_size=5000))
def test_decode_round_trip(base64_mod: ModuleType, data: bytes) -> None:
    encoded = base64.b64encode(data)
    assert base64_mod.b64decode(encoded) == data
    assert base64_mod.b64decode(encoded.decode("ascii")) == data


def stdlib_accepts(data: bytes | str) -> bool:
    """The oracle of strictness: the stdlib's validating decoder takes it, and it is the
    one canonical encoding of what it decodes to."""
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    raw = data if isinstance(data, bytes) else data.encode("ascii")
    return base64.b64encode(decoded) == raw


# Challenge-like text: mostly the alphabet, with padding and a few invalid characters.
challenges = st.text(alphabet=ALPHABET[:6] + "+/09==== \n!é", max_size=16)


@with_twin
@given(data=st.one_of(challenges, challenges.map(lambda s: s.encode("utf-8"))))
def test_decode_accepts_exactly_canonical_base64(base64_mod: ModuleType, data: bytes | str) -> None:
    result = outcome(base64_mod.b64decode, data)
    if stdlib_accepts(data):
        assert result == ("ok", base64.b64decode(data))
    else:
        assert result[0] is ProtocolError
        assert result[1].startswith(MALFORMED)


@with_twin
@given(
    data=st.binary(min_size=1, max_size=60),
    position=st.integers(0),
    char=st.sampled_from(b"=A/+Q!\x00 \n\xff"),
)
def test_decode_refuses_corrupted_encodings(
    base64_mod: ModuleType, data: bytes, position: int, char: int
) -> None:
    encoded = bytearray(base64.b64encode(data))
    position %= len(encoded)
    encoded[position] = char
    result = outcome(base64_mod.b64decode, bytes(encoded))
    if stdlib_accepts(bytes(encoded)):
        assert result == ("ok", base64.b64decode(bytes(encoded)))
    else:
        assert result[0] is ProtocolError


# ---------------------------------------------------------------- b64encode_mime
def test_mime_empty_input_is_empty(base64_mod: ModuleType) -> None:
    assert base64_mod.b64encode_mime(b"") == b""
    assert base64_mod.b64encode_mime(b"", 4) == b""


@pytest.mark.parametrize(
    ("data", "line_length", "expected"),
    [
        (b"f", 76, b"Zg==\r\n"),
        (b"foobar", 76, b"Zm9vYmFy\r\n"),
        (b"foobar", 4, b"Zm9v\r\nYmFy\r\n"),
        (b"foobar", 8, b"Zm9vYmFy\r\n"),
        (b"fooba", 4, b"Zm9v\r\nYmE=\r\n"),
        (b"\xff" * 57, 76, b"/" * 76 + b"\r\n"),
        (b"\xff" * 58, 76, b"/" * 76 + b"\r\n/w==\r\n"),
    ],
)
def test_mime_known_answers(
    base64_mod: ModuleType, data: bytes, line_length: int, expected: bytes
) -> None:
    result = base64_mod.b64encode_mime(data, line_length)
    assert type(result) is bytes
    assert result == expected


def test_mime_default_matches_encodebytes_with_crlf(base64_mod: ModuleType) -> None:
    data = os.urandom(10_000)
    assert base64_mod.b64encode_mime(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")


@pytest.mark.parametrize("line_length", LINE_LENGTHS)
def test_mime_every_line_length(base64_mod: ModuleType, line_length: int) -> None:
    data = os.urandom(1000)
    assert base64_mod.b64encode_mime(data, line_length) == mime_oracle(data, line_length)


def test_mime_bytes_like_inputs(base64_mod: ModuleType) -> None:
    data = os.urandom(200)
    expected = mime_oracle(data)
    assert base64_mod.b64encode_mime(bytearray(data)) == expected
    assert base64_mod.b64encode_mime(memoryview(data)) == expected
    strided = memoryview(data * 2)[::3]
    assert base64_mod.b64encode_mime(strided) == mime_oracle(strided.tobytes())


def test_mime_large_input(base64_mod: ModuleType) -> None:
    data = os.urandom(5 * 1024 * 1024 + 2)  # encoded with the GIL released
    assert base64_mod.b64encode_mime(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")
    assert base64_mod.b64encode_mime(data, 64) == mime_oracle(data, 64)


@pytest.mark.parametrize("line_length", [0, -4, 1, 2, 3, 5, 74, 77, 78, 80, 1000, 2**64, True])
def test_mime_refuses_bad_line_lengths(base64_mod: ModuleType, line_length: int) -> None:
    with pytest.raises(InvalidInputError) as info:
        base64_mod.b64encode_mime(b"data", line_length)
    assert str(info.value) == (
        f"line_length must be a positive multiple of 4 and at most 76, got {line_length}"
    )


@pytest.mark.parametrize(
    ("line_length", "kind"), [("76", "str"), (76.0, "float"), (None, "NoneType")]
)
def test_mime_line_length_must_be_an_int(
    base64_mod: ModuleType, line_length: object, kind: str
) -> None:
    with pytest.raises(TypeError) as info:
        base64_mod.b64encode_mime(b"data", line_length)
    assert str(info.value) == f"line_length must be an int, not {kind}"


def test_mime_checks_the_data_before_the_line_length(base64_mod: ModuleType) -> None:
    with pytest.raises(TypeError) as info:
        base64_mod.b64encode_mime("text", 5)
    assert str(info.value) == (
        "b64encode_mime() argument must be bytes, bytearray or memoryview, not str"
    )


@with_twin
@given(data=st.binary(max_size=5000), line_length=st.sampled_from(LINE_LENGTHS))
def test_mime_matches_the_oracle(base64_mod: ModuleType, data: bytes, line_length: int) -> None:
    result = base64_mod.b64encode_mime(data, line_length)
    assert result == mime_oracle(data, line_length)
    lines = result.split(b"\r\n")
    assert lines[-1] == b""
    assert all(0 < len(line) <= line_length for line in lines[:-1])
    assert all(len(line) == line_length for line in lines[:-2])
    assert b"".join(lines) == base64.b64encode(data)


# ---------------------------------------------------------------- twin against twin
@differential
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=40), challenges))
def test_twins_decode_alike(data: bytes | str) -> None:
    py, c = both("_base64")
    assert outcome(py.b64decode, data) == outcome(c.b64decode, data)


@differential
@given(
    data=st.binary(max_size=5000),
    line_length=st.one_of(st.sampled_from(LINE_LENGTHS), st.integers(-8, 100)),
)
def test_twins_encode_alike(data: bytes, line_length: int) -> None:
    py, c = both("_base64")
    assert outcome(py.b64encode, data) == outcome(c.b64encode, data)
    assert outcome(py.b64encode_mime, data, line_length) == outcome(
        c.b64encode_mime, data, line_length
    )


@differential
@settings(max_examples=10)
@given(size=st.integers(16 * 1024, 2 * 1024 * 1024), line_length=st.sampled_from(LINE_LENGTHS))
def test_twins_encode_large_inputs_alike(size: int, line_length: int) -> None:
    py, c = both("_base64")
    data = os.urandom(size)
    assert py.b64encode(data) == c.b64encode(data)
    assert py.b64encode_mime(data, line_length) == c.b64encode_mime(data, line_length)
    assert py.b64decode(base64.b64encode(data)) == c.b64decode(base64.b64encode(data)) == data
