"""The plain C core of the DATA encoder (``csrc/data_scan.c``), built both ways.

The compiled twin only ever runs the SIMD loops of the machine it was built on (SSE2 on
x86-64, NEON on AArch64). A wheel for another architecture runs the portable scalar
loops instead, so those are built here too, with ``SMTPX_DATA_SCAN_SCALAR``, and both
builds are held to the pure-Python twin, the specification, through ``ctypes``.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx._hot import _data_py as spec
from smtpx.errors import InvalidInputError

SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "data_scan.c"


class Options(ctypes.Structure):
    _fields_ = [
        ("dot_stuff", ctypes.c_int),
        ("allow_nul", ctypes.c_int),
        ("max_line", ctypes.c_uint64),
    ]


class State(ctypes.Structure):
    _fields_ = [
        ("bytes_in", ctypes.c_uint64),
        ("longest", ctypes.c_uint64),
        ("line", ctypes.c_uint64),
        ("line_start", ctypes.c_uint64),
        ("line_stuffed", ctypes.c_int),
        ("pending_cr", ctypes.c_int),
    ]


OK, NUL, LONG_LINE = 0, 1, 2
NO_LIMIT = 2**64 - 1


def build(directory: Path, scalar: bool) -> ctypes.CDLL:
    """``csrc/data_scan.c`` as a shared library, with the SIMD loops or the scalar ones."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not SOURCE.exists():
        pytest.skip("needs a C compiler and the source tree's csrc/")
    library = directory / ("scalar.so" if scalar else "simd.so")
    flags = ["-DSMTPX_DATA_SCAN_SCALAR"] if scalar else []
    command = [compiler, "-O2", "-shared", "-fPIC", *flags, "-o", str(library), str(SOURCE)]
    subprocess.run(command, check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.smtpx_data_scan.restype = ctypes.c_int
    lib.smtpx_data_scan.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.smtpx_data_measure.restype = ctypes.c_size_t
    lib.smtpx_data_measure.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.POINTER(State),
    ]
    lib.smtpx_data_encode.restype = ctypes.c_int
    lib.smtpx_data_encode.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(Options),
        ctypes.POINTER(State),
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_uint64),
    ]
    return lib


@pytest.fixture(scope="module", params=["simd", "scalar"])
def core(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    return build(tmp_path_factory.mktemp("data_scan"), request.param == "scalar")


def encode_with(
    lib: ctypes.CDLL, chunks: list[bytes], dot_stuff: bool, allow_nul: bool, max_line: int | None
) -> object:
    """Every chunk through measure + encode, then the end of data, as the compiled twin
    does it: the output, or the fault as the twin's exception would name it."""
    options = Options(dot_stuff, allow_nul, NO_LIMIT if max_line is None else max_line)
    state = State()
    out = b""
    for chunk in chunks:
        room = lib.smtpx_data_measure(chunk, len(chunk), dot_stuff, ctypes.byref(state))
        dst = ctypes.create_string_buffer(room + 1)
        size, fault = ctypes.c_size_t(), ctypes.c_uint64()
        status = lib.smtpx_data_encode(
            chunk, len(chunk), dst, room, options, state, ctypes.byref(size), ctypes.byref(fault)
        )
        if status == NUL:
            return InvalidInputError, f"NUL byte in message data at offset {fault.value}"
        if status == LONG_LINE:
            return InvalidInputError, f"line longer than {max_line} octets at offset {fault.value}"
        assert status == OK
        assert size.value == room  # the measure is exact
        out += dst.raw[: size.value]
        state.bytes_in += len(chunk)
    if dot_stuff:
        return out + (b".\r\n" if state.line == 0 else b"\r\n.\r\n")
    return out + (b"" if state.line == 0 else b"\r\n")


def encode_with_spec(
    chunks: list[bytes], dot_stuff: bool, allow_nul: bool, max_line: int | None
) -> object:
    encoder = spec.DataEncoder(dot_stuff=dot_stuff, allow_nul=allow_nul, max_line=max_line)
    try:
        return b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.finish()
    except InvalidInputError as exc:
        return InvalidInputError, str(exc)


# Octets that matter to the encoder, in runs long enough to cross 16-octet blocks.
PIECES = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b".", b"\x00", b"\xe9", b"a", b"plain text run, ", b"x" * 17]
)
BODIES = st.lists(PIECES, max_size=60).map(b"".join) | st.binary(max_size=80)


@st.composite
def split(draw: st.DrawFn) -> list[bytes]:
    data = draw(BODIES)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@given(
    chunks=split(),
    dot_stuff=st.booleans(),
    allow_nul=st.booleans(),
    limit=st.none() | st.integers(1, 20),
)
@settings(max_examples=300)
def test_encoding_matches_the_specification(
    core: ctypes.CDLL, chunks: list[bytes], dot_stuff: bool, allow_nul: bool, limit: int | None
) -> None:
    expected = encode_with_spec(chunks, dot_stuff, allow_nul, limit)
    assert encode_with(core, chunks, dot_stuff, allow_nul, limit) == expected


@given(data=BODIES)
@settings(max_examples=300)
def test_scan_matches_the_specification(core: ctypes.CDLL, data: bytes) -> None:
    assert core.smtpx_data_scan(data, len(data)) == spec.scan_body(data)


def test_scan_finds_each_fault_at_each_offset(core: ctypes.CDLL) -> None:
    clean = b"0123456789abcd\r\n" * 5
    assert core.smtpx_data_scan(clean, len(clean)) == 0
    for offset in range(len(clean)):
        for octet in (0x0D, 0x0A, 0x00, 0x80):
            body = bytearray(clean)
            body[offset] = octet
            found = core.smtpx_data_scan(bytes(body), len(body))
            assert found == spec.scan_body(bytes(body)), (offset, octet)


def test_the_scalar_build_leaves_the_simd_loops_out() -> None:
    # Otherwise the tests above would test the same code twice.
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not SOURCE.exists():
        pytest.skip("needs a C compiler and the source tree's csrc/")

    def preprocessed(*flags: str) -> str:
        command = [compiler, "-E", *flags, str(SOURCE)]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    simd_loads = re.compile(r"\b(_mm_loadu_si128|vld1q_u8)\s*\(")
    assert not simd_loads.search(preprocessed("-DSMTPX_DATA_SCAN_SCALAR"))
    machine = subprocess.run(
        [compiler, "-dumpmachine"], capture_output=True, text=True, check=True
    ).stdout
    if re.match(r"(x86_64|aarch64|arm64)", machine):
        assert simd_loads.search(preprocessed())
