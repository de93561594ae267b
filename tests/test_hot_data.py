"""The DATA encoder (``_data``): CRLF normalisation, dot-stuffing and the smuggling firewall.

Every behaviour test takes ``data_mod`` and so runs against both twins. The reference
below is a deliberately naive octet-by-octet model of the contract; hypothesis checks
both twins against it, against each other, and against a model of the receiving server.
"""

from __future__ import annotations

import array
import copy
import itertools
import pickle
import re
import threading
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError

from twins import both, differential

Chunk = bytes | bytearray | memoryview


# ---------------------------------------------------------------- helpers and models
def encode_chunks(mod: ModuleType, chunks: Iterable[Chunk], **options: Any) -> bytes:
    """Feed ``chunks`` to a new encoder; the concatenated output, end of data included."""
    encoder = mod.DataEncoder(**options)
    out: bytes = b"".join([encoder.encode(chunk) for chunk in chunks])
    end: bytes = encoder.finish()
    return out + end


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (sorted, duplicates give empty chunks)."""
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def reference(
    data: bytes, *, dot_stuff: bool = True, allow_nul: bool = False, max_line: int | None = None
) -> bytes:
    """The contract, one octet at a time: what ``encode_data`` must return or raise."""
    out = bytearray()
    line = 0  # octets of the output line in progress
    i = 0
    while i < len(data):
        octet = data[i]
        if octet == 0 and not allow_nul:
            raise InvalidInputError(f"NUL byte in message data at offset {i}")
        if octet in b"\r\n":
            if data[i : i + 2] == b"\r\n":
                i += 1
            out += b"\r\n"
            line = 0
        else:
            if line == 0 and octet == ord(".") and dot_stuff:
                out += b"."
                line += 1
            out.append(octet)
            line += 1
            if max_line is not None and line > max_line:
                raise InvalidInputError(f"line longer than {max_line} octets at offset {i}")
        i += 1
    if dot_stuff:
        out += b".\r\n" if line == 0 else b"\r\n.\r\n"
    elif line:
        out += b"\r\n"
    return bytes(out)


def normalise(data: bytes) -> bytes:
    """``data`` with every line end as CRLF, and one at its end unless it is empty."""
    lines = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return lines if lines.endswith(b"\r\n") or not lines else lines + b"\r\n"


def receive(wire: bytes) -> bytes:
    """What an SMTP server takes from the wire after DATA (RFC 5321 4.5.2): lines up to
    the first line that is a lone ``.``, each with one leading ``.`` removed. The wire
    must hold exactly that: no octet may follow the end of data."""
    assert wire.endswith(b"\r\n"), wire
    lines = wire[:-2].split(b"\r\n")
    assert lines.index(b".") == len(lines) - 1, f"early end of data in {wire!r}"
    return b"".join(line.removeprefix(b".") + b"\r\n" for line in lines[:-1])


def assert_no_bare_cr_or_lf(wire: bytes) -> None:
    bare = re.search(rb"\r(?!\n)|(?<!\r)\n", wire)
    assert bare is None, f"bare CR or LF at {bare.start()} in {wire!r}"


def outcome(func: Any, *args: Any, **kwargs: Any) -> object:
    """The result of a call, or its exception as (class, message), for comparisons."""
    try:
        return func(*args, **kwargs)
    except (InvalidInputError, TypeError) as exc:
        return type(exc), str(exc)


# ---------------------------------------------------------------- golden cases
GOLDEN = [
    # (input, with dot-stuffing, without)
    (b"", b".\r\n", b""),
    (b"a", b"a\r\n.\r\n", b"a\r\n"),
    (b"a\r\n", b"a\r\n.\r\n", b"a\r\n"),
    (b"a\n", b"a\r\n.\r\n", b"a\r\n"),
    (b"a\r", b"a\r\n.\r\n", b"a\r\n"),
    (b".", b"..\r\n.\r\n", b".\r\n"),
    (b"..", b"...\r\n.\r\n", b"..\r\n"),
    (b".a", b"..a\r\n.\r\n", b".a\r\n"),
    (b"a.", b"a.\r\n.\r\n", b"a.\r\n"),
    (b"a\r\n.b", b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
    (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
    (b"\r\n.\r\n", b"\r\n..\r\n.\r\n", b"\r\n.\r\n"),
    (b"\n.\n", b"\r\n..\r\n.\r\n", b"\r\n.\r\n"),
    (b"\r.\r", b"\r\n..\r\n.\r\n", b"\r\n.\r\n"),
    (b"\r.\n", b"\r\n..\r\n.\r\n", b"\r\n.\r\n"),
    (b"\n.\r\n", b"\r\n..\r\n.\r\n", b"\r\n.\r\n"),
    (b"\r\n.\r\r\n", b"\r\n..\r\n\r\n.\r\n", b"\r\n.\r\n\r\n"),
    (b"\r\r\n.\r\r\n", b"\r\n\r\n..\r\n\r\n.\r\n", b"\r\n\r\n.\r\n\r\n"),
    (b"\r\r\n", b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    (b"\n\r", b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    (b"\n\n", b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    (b"\r\n", b"\r\n.\r\n", b"\r\n"),
    (b".\r\n", b"..\r\n.\r\n", b".\r\n"),
    (b"a\r\n..\r\n", b"a\r\n...\r\n.\r\n", b"a\r\n..\r\n"),
    (b"a\n.\n.\nb", b"a\r\n..\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\n.\r\nb\r\n"),
    # no other octet ends a line (str.splitlines() would break at these)
    (
        b"a\x0bb\x0cc\x1c\x1d\x1e\x85",
        b"a\x0bb\x0cc\x1c\x1d\x1e\x85\r\n.\r\n",
        b"a\x0bb\x0cc\x1c\x1d\x1e\x85\r\n",
    ),
]


@pytest.mark.parametrize(("data", "stuffed", "unstuffed"), GOLDEN)
def test_golden(data_mod: ModuleType, data: bytes, stuffed: bytes, unstuffed: bytes) -> None:
    assert data_mod.encode_data(data) == stuffed
    assert data_mod.encode_data(data, dot_stuff=False) == unstuffed
    assert reference(data) == stuffed  # the model agrees with the table


@pytest.mark.parametrize(("data", "stuffed", "unstuffed"), GOLDEN)
def test_golden_at_every_split(
    data_mod: ModuleType, data: bytes, stuffed: bytes, unstuffed: bytes
) -> None:
    for cut in range(len(data) + 1):
        assert encode_chunks(data_mod, split_at(data, [cut])) == stuffed, cut
        assert encode_chunks(data_mod, split_at(data, [cut]), dot_stuff=False) == unstuffed
        for cut2 in range(cut, len(data) + 1):
            assert encode_chunks(data_mod, split_at(data, [cut, cut2])) == stuffed, (cut, cut2)
    assert encode_chunks(data_mod, [data[i : i + 1] for i in range(len(data))]) == stuffed


@pytest.mark.parametrize(
    "sequence",
    [
        b"\r\n.\r\n",
        b"\n.\n",
        b"\r.\r",
        b"\r.\n",
        b"\n.\r\n",
        b"\r\n.\r",
        b"\r\n.\n",
        b"\r\n.\r\r\n",
        b"\r\r\n.\r\r\n",
        b"\r\n\x00.\r\n",
        b"\n.\r",
        b"\r\n.\r\n.\r\n",
    ],
)
@pytest.mark.parametrize("place", ["alone", "inside", "at start", "at end"])
def test_smuggling_sequences_never_end_the_data_early(
    data_mod: ModuleType, sequence: bytes, place: str
) -> None:
    data = {
        "alone": sequence,
        "inside": b"MAIL FROM:<a@b>" + sequence + b"RCPT TO:<c@d>",
        "at start": sequence + b"tail",
        "at end": b"head" + sequence,
    }[place]
    for cut in range(len(data) + 1):
        wire = encode_chunks(data_mod, split_at(data, [cut]), allow_nul=True)
        assert receive(wire) == normalise(data)
        assert_no_bare_cr_or_lf(wire)
        assert wire.find(b"\r\n.\r\n") == len(wire) - 5


# ---------------------------------------------------------------- chunk boundaries
@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\r", b"\nb"], b"a\r\nb"),  # the LF completes the CRLF already sent
        ([b"a\r", b".b"], b"a\r\n..b"),  # a dot after the CR starts a line
        ([b"a\r", b""], b"a\r\n"),
        ([b"a\r", b"\r"], b"a\r\n\r\n"),
        ([b"a\r", b"\n", b"\n"], b"a\r\n\r\n"),  # only the first LF is swallowed
        ([b"a\r", b"\n", b".b"], b"a\r\n..b"),
        ([b"a\r", b"", b"\nb"], b"a\r\nb"),
        ([b"a\r\n", b".b"], b"a\r\n..b"),
        ([b"a\n", b"."], b"a\r\n.."),
        ([b"a", b".b"], b"a.b"),  # a dot in mid-line is left alone
        ([b"", b"."], b".."),
        ([b".", b"."], b"..."),
    ],
)
def test_chunk_boundaries(data_mod: ModuleType, chunks: list[bytes], expected: bytes) -> None:
    encoder = data_mod.DataEncoder()
    assert b"".join([encoder.encode(chunk) for chunk in chunks]) == expected


def test_nothing_is_held_back(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder()
    assert encoder.encode(b"x\r") == b"x\r\n"
    assert encoder.encode(b".") == b".."
    assert encoder.encode(b"\r") == b"\r\n"
    assert encoder.encode(b"\n") == b""
    assert encoder.finish() == b".\r\n"


@pytest.mark.parametrize(
    ("chunks", "dot_stuff", "end"),
    [
        ([], True, b".\r\n"),
        ([b""], True, b".\r\n"),
        ([b"a"], True, b"\r\n.\r\n"),
        ([b"a\r\n"], True, b".\r\n"),
        ([b"a\r"], True, b".\r\n"),
        ([b"a\r", b"\n"], True, b".\r\n"),
        ([b"a\n", b"b"], True, b"\r\n.\r\n"),
        ([], False, b""),
        ([b"a"], False, b"\r\n"),
        ([b"a\n"], False, b""),
        ([b"a\r"], False, b""),
        ([b"."], False, b"\r\n"),
    ],
)
def test_finish_returns_the_end_of_data(
    data_mod: ModuleType, chunks: list[bytes], dot_stuff: bool, end: bytes
) -> None:
    encoder = data_mod.DataEncoder(dot_stuff=dot_stuff)
    for chunk in chunks:
        encoder.encode(chunk)
    assert encoder.finish() == end


def test_large_input_in_every_chunk_size(data_mod: ModuleType) -> None:
    # Large enough for the compiled twin's SIMD runs and its GIL-free path.
    unit = b"Subject: hi\n.hidden\r\n..\rplain text line of a message body\r\n\r\n.\r"
    data = unit * 4000 + b"no line end at the end"
    expected = reference(data)
    assert data_mod.encode_data(data) == expected
    for size in (7, 16, 17, 4096, 65536):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert encode_chunks(data_mod, chunks) == expected, size
    prefix = data[:3000]
    assert encode_chunks(data_mod, [prefix[i : i + 1] for i in range(3000)]) == reference(prefix)


# ---------------------------------------------------------------- NUL octets
def test_nul_is_refused_with_its_offset(data_mod: ModuleType) -> None:
    with pytest.raises(InvalidInputError, match=r"^NUL byte in message data at offset 2$"):
        data_mod.encode_data(b"\r\n\x00.\r\n")


def test_nul_is_let_through_when_allowed(data_mod: ModuleType) -> None:
    assert data_mod.encode_data(b"\r\n\x00.\r\n", allow_nul=True) == b"\r\n\x00.\r\n.\r\n"
    assert data_mod.encode_data(b"\x00", allow_nul=True) == b"\x00\r\n.\r\n"


def test_nul_offset_counts_from_the_start_of_the_data(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder()
    assert encoder.encode(b"abc\r") == b"abc\r\n"
    assert encoder.encode(b"\nde") == b"de"
    with pytest.raises(InvalidInputError, match=r"^NUL byte in message data at offset 9$"):
        encoder.encode(b"fg\x00h")


def test_first_nul_of_a_chunk_is_reported(data_mod: ModuleType) -> None:
    with pytest.raises(InvalidInputError, match=r"at offset 1$"):
        data_mod.encode_data(b"a\x00\x00\r\n\x00")


def test_refused_chunk_is_refused_whole(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder(max_line=5)
    assert encoder.encode(b"ab\r") == b"ab\r\n"
    for bad in (b"\n.cd\x00", b"\n123456"):
        with pytest.raises(InvalidInputError):
            encoder.encode(bad)
        # as if the refused chunk had never been given
        assert (encoder.bytes_in, encoder.bytes_out, encoder.longest_line) == (3, 4, 2)
    assert encoder.encode(b"\n.x") == b"..x"  # the pending CR and the line start survive
    assert encoder.finish() == b"\r\n.\r\n"


# ---------------------------------------------------------------- line lengths
def test_longest_line_is_measured_after_stuffing(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder()
    encoder.encode(b"abc\r\n.de\r\n")
    assert encoder.longest_line == 4  # "..de"
    encoder.encode(b"x" * 3)
    assert encoder.longest_line == 4
    encoder.encode(b"y" * 2)  # the line in progress counts: "xxxyy"
    assert encoder.longest_line == 5
    encoder.finish()
    assert encoder.longest_line == 5


def test_longest_line_without_stuffing(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder(dot_stuff=False)
    encoder.encode(b".de\n" + b"z" * 1200 + b"\r\n")
    assert encoder.longest_line == 1200


def test_long_lines_pass_when_there_is_no_limit(data_mod: ModuleType) -> None:
    line = b"x" * 100_000
    wire = data_mod.encode_data(line + b"\n" + line)
    assert wire == line + b"\r\n" + line + b"\r\n.\r\n"


@pytest.mark.parametrize(
    ("data", "max_line", "offset"),
    [
        (b"x" * 999, 998, 998),  # the 999th octet takes the line past 998
        (b"ab\r\n" + b"x" * 11, 10, 14),
        (b"." + b"x" * 9, 9, 8),  # the stuffed dot counts: "..xxxxxxxxx" is 11
        (b"a\r\n.xyz", 1, 3),  # ".." is already too long: the dot is the culprit
        (b"ab\nabc\nabcd", 3, 10),
        (b"ok\r\r\n" + b"x" * 4, 3, 8),
    ],
)
def test_max_line_refuses_a_longer_line(
    data_mod: ModuleType, data: bytes, max_line: int, offset: int
) -> None:
    message = f"^line longer than {max_line} octets at offset {offset}$"
    with pytest.raises(InvalidInputError, match=message):
        data_mod.encode_data(data, max_line=max_line)
    for cut in (1, len(data) // 2, len(data) - 1):  # the same whatever the split
        with pytest.raises(InvalidInputError, match=message):
            encode_chunks(data_mod, split_at(data, [cut]), max_line=max_line)


def test_max_line_allows_lines_up_to_the_limit(data_mod: ModuleType) -> None:
    data = b"x" * 998 + b"\r\n." + b"y" * 996 + b"\n"
    assert data_mod.encode_data(data, max_line=998) == reference(data)
    assert data_mod.encode_data(b"." * 998, max_line=998, dot_stuff=False) == (b"." * 998 + b"\r\n")


def test_max_line_across_chunks(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder(max_line=10)
    assert encoder.encode(b"ok\n.abcd") == b"ok\r\n..abcd"  # 6 octets so far
    assert encoder.encode(b"efg") == b"efg"  # 9
    with pytest.raises(InvalidInputError, match=r"^line longer than 10 octets at offset 12$"):
        encoder.encode(b"hi")  # "h" makes 10, "i" 11: the offset of the "i"
    assert encoder.encode(b"h\r\n") == b"h\r\n"


def test_first_fault_of_a_chunk_wins(data_mod: ModuleType) -> None:
    with pytest.raises(InvalidInputError, match=r"^line longer than 3 octets at offset 3$"):
        data_mod.encode_data(b"abcd\x00", max_line=3)
    with pytest.raises(InvalidInputError, match=r"^NUL byte in message data at offset 3$"):
        data_mod.encode_data(b"abc\x00d", max_line=3)  # the NUL comes first
    with pytest.raises(InvalidInputError, match=r"^NUL byte in message data at offset 1$"):
        data_mod.encode_data(b"a\x00\nabcdef", max_line=3)


@pytest.mark.parametrize("max_line", [0, -1, -998])
def test_max_line_must_be_positive(data_mod: ModuleType, max_line: int) -> None:
    with pytest.raises(InvalidInputError, match=f"^max_line must be at least 1, got {max_line}$"):
        data_mod.DataEncoder(max_line=max_line)
    with pytest.raises(InvalidInputError, match=r"^max_line must be at least 1, got"):
        data_mod.encode_data(b"a", max_line=max_line)


@pytest.mark.parametrize(("max_line", "name"), [("998", "str"), (998.0, "float"), (True, "bool")])
def test_max_line_must_be_an_int(data_mod: ModuleType, max_line: object, name: str) -> None:
    with pytest.raises(TypeError, match=f"^max_line must be an int or None, not {name}$"):
        data_mod.DataEncoder(max_line=max_line)


def test_huge_max_line_is_no_limit(data_mod: ModuleType) -> None:
    assert data_mod.encode_data(b"abc", max_line=2**100) == b"abc\r\n.\r\n"


# ---------------------------------------------------------------- the encoder's life
def test_counters(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder()
    assert (encoder.bytes_in, encoder.bytes_out, encoder.longest_line) == (0, 0, 0)
    encoder.encode(b".a\nb\r")
    assert (encoder.bytes_in, encoder.bytes_out) == (5, 8)  # "..a\r\nb\r\n"
    encoder.encode(b"\n")
    assert (encoder.bytes_in, encoder.bytes_out) == (6, 8)
    encoder.finish()
    assert (encoder.bytes_in, encoder.bytes_out) == (6, 11)


def test_use_after_finish_is_refused(data_mod: ModuleType) -> None:
    encoder = data_mod.DataEncoder()
    encoder.encode(b"a")
    encoder.finish()
    message = r"^DataEncoder\.finish\(\) has already been called$"
    with pytest.raises(InvalidInputError, match=message):
        encoder.encode(b"b")
    with pytest.raises(InvalidInputError, match=message):
        encoder.encode(b"")
    with pytest.raises(InvalidInputError, match=message):
        encoder.encode("not even bytes")
    with pytest.raises(InvalidInputError, match=message):
        encoder.finish()
    assert encoder.bytes_out == 6


def test_encode_data_is_encode_then_finish(data_mod: ModuleType) -> None:
    data = b".a\nb\r\n.\r\nc"
    for options in ({}, {"dot_stuff": False}, {"allow_nul": True, "max_line": 4}):
        encoder = data_mod.DataEncoder(**options)
        expected = encoder.encode(data) + encoder.finish()
        assert data_mod.encode_data(data, **options) == expected


@pytest.mark.parametrize("duplicate", [copy.copy, lambda e: pickle.loads(pickle.dumps(e))])
def test_a_copy_goes_on_from_the_same_state(data_mod: ModuleType, duplicate: Any) -> None:
    encoder = data_mod.DataEncoder(max_line=6, allow_nul=True)
    encoder.encode(b"ab\r")
    copied = duplicate(encoder)
    assert type(copied) is type(encoder)
    for each in (encoder, copied):  # both swallow the LF, stuff the dot, know the limit
        assert each.encode(b"\n.x\x00") == b"..x\x00"
        with pytest.raises(InvalidInputError, match=r"^line longer than 6 octets at offset 9$"):
            each.encode(b"yzw")
        assert (each.bytes_in, each.bytes_out, each.longest_line) == (7, 8, 4)
        assert each.finish() == b"\r\n.\r\n"


def test_options_are_keyword_only(data_mod: ModuleType) -> None:
    with pytest.raises(TypeError):
        data_mod.DataEncoder(False)
    with pytest.raises(TypeError):
        data_mod.encode_data(b"a", False)


def test_options_take_any_truth_value(data_mod: ModuleType) -> None:
    assert data_mod.encode_data(b".\x00", dot_stuff=0, allow_nul=1) == b".\x00\r\n"


# ---------------------------------------------------------------- input types
def test_every_bytes_like_input_is_accepted(data_mod: ModuleType) -> None:
    raw = b".a\nb\x00c"
    expected = b"..a\r\nb\x00c\r\n.\r\n"
    inputs: list[Any] = [
        raw,
        bytearray(raw),
        memoryview(raw),
        memoryview(bytearray(raw)),
        memoryview(raw).cast("c"),
        memoryview(raw).cast("b"),
        memoryview(b"xx" + raw + b"yy")[2:-2],
        memoryview(raw).cast("B", (2, 3)),  # C-contiguous: its octets in order
        array.array("B", raw),
    ]
    for data in inputs:
        result = data_mod.encode_data(data, allow_nul=True)
        assert type(result) is bytes
        assert result == expected, data
        encoder = data_mod.DataEncoder(allow_nul=True)
        assert encoder.encode(data) + encoder.finish() == expected


def test_empty_inputs_of_every_kind(data_mod: ModuleType) -> None:
    for data in (b"", bytearray(), memoryview(b""), memoryview(b"abcd")[::2][0:0]):
        assert data_mod.DataEncoder().encode(data) == b""
        assert data_mod.encode_data(data) == b".\r\n"


NOT_OCTETS = "message data must be a C-contiguous buffer of 1-byte items"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("text", "message data must be a bytes-like object, not str"),
        (None, "message data must be a bytes-like object, not NoneType"),
        (42, "message data must be a bytes-like object, not int"),
        ([13, 10], "message data must be a bytes-like object, not list"),
        (array.array("H", [1, 2]), NOT_OCTETS),
        (memoryview(b"abcd").cast("H"), NOT_OCTETS),
        (memoryview(b"abcdef")[::2], NOT_OCTETS),
    ],
)
def test_other_inputs_are_refused(data_mod: ModuleType, data: object, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        data_mod.encode_data(data)
    encoder = data_mod.DataEncoder()
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        encoder.encode(data)
    assert encoder.encode(b"a") == b"a"  # the encoder is still usable


def test_a_buffer_written_meanwhile_never_gives_unsafe_output(data_mod: ModuleType) -> None:
    # Another thread scribbles line ends and dots over the buffer while it is encoded
    # (the compiled twin reads it without the GIL, twice): the output may encode any mix
    # of old and new octets, but it must still be safe on the wire.
    buffer = bytearray(b"a line of text\r\n.dot\n" * 100_000)
    done = threading.Event()

    def scribble() -> None:
        position = 0
        while not done.is_set():
            for _ in range(256):
                buffer[position % len(buffer)] = b"\r\n.a"[position % 4]
                position += 4099
            time.sleep(0)  # let the encoding thread take the GIL back soon

    for _ in range(4):
        done.clear()
        writer = threading.Thread(target=scribble)
        writer.start()
        try:
            wire = data_mod.encode_data(buffer)
        finally:
            done.set()
            writer.join()
        assert_no_bare_cr_or_lf(wire)
        receive(wire)


# ---------------------------------------------------------------- property-based
# Octets that matter, often; arbitrary octets sometimes.
PIECES = st.sampled_from([b"\r", b"\n", b".", b"\x00", b"a", b"\r\n", b"\r\n.\r\n", b".."])
MESSAGES = st.one_of(st.lists(PIECES, max_size=40).map(b"".join), st.binary(max_size=64))
OPTIONS = st.fixed_dictionaries(
    {
        "dot_stuff": st.booleans(),
        "allow_nul": st.booleans(),
        "max_line": st.none() | st.integers(min_value=1, max_value=8),
    }
)
KINDS = st.sampled_from([bytes, bytearray, memoryview])
# ``data_mod`` is a module: nothing in it needs resetting between examples.
with_twin = settings(
    suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture]
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[Chunk]]:
    """A message, and the same message split at random points into chunks of mixed types."""
    data = draw(MESSAGES)
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=6))
    return data, [draw(KINDS)(chunk) for chunk in split_at(data, cuts)]


@with_twin
@given(case=chunked(), options=OPTIONS)
def test_matches_the_reference_whatever_the_split(
    data_mod: ModuleType, case: tuple[bytes, list[Chunk]], options: dict[str, Any]
) -> None:
    data, chunks = case
    expected = outcome(reference, data, **options)
    assert outcome(data_mod.encode_data, data, **options) == expected
    assert outcome(encode_chunks, data_mod, chunks, **options) == expected


@with_twin
@given(case=chunked())
def test_the_wire_is_safe_and_gives_back_the_data(
    data_mod: ModuleType, case: tuple[bytes, list[Chunk]]
) -> None:
    data, chunks = case
    wire = encode_chunks(data_mod, chunks, allow_nul=True)
    assert_no_bare_cr_or_lf(wire)
    assert receive(wire) == normalise(data)  # exactly one end of data, at the very end
    assert wire.startswith(b".\r\n") == (data == b"")
    unstuffed = data_mod.encode_data(data, dot_stuff=False, allow_nul=True)
    assert_no_bare_cr_or_lf(unstuffed)
    assert unstuffed == normalise(data)


@with_twin
@given(data=MESSAGES)
def test_byte_by_byte_is_the_same(data_mod: ModuleType, data: bytes) -> None:
    expected = outcome(data_mod.encode_data, data, max_line=4)
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert outcome(encode_chunks, data_mod, one_by_one, max_line=4) == expected


@given(data=st.binary(min_size=1000, max_size=5000) | MESSAGES.map(lambda m: m * 100))
@settings(with_twin, max_examples=50)
def test_large_inputs_match_the_reference(data_mod: ModuleType, data: bytes) -> None:
    assert data_mod.encode_data(data, allow_nul=True) == reference(data, allow_nul=True)


@differential
@given(case=chunked(), options=OPTIONS)
def test_twins_agree(case: tuple[bytes, list[Chunk]], options: dict[str, Any]) -> None:
    _, chunks = case
    states = []
    for mod in both("_data"):
        encoder = mod.DataEncoder(**options)
        steps = [outcome(encoder.encode, chunk) for chunk in chunks]
        steps.append(outcome(encoder.finish))
        steps.append((encoder.bytes_in, encoder.bytes_out, encoder.longest_line))
        states.append(steps)
    assert states[0] == states[1]


@differential
@given(data=st.one_of(MESSAGES, st.text(max_size=4), st.integers(), st.none()), options=OPTIONS)
def test_twins_agree_on_one_shot_and_bad_input(data: object, options: dict[str, Any]) -> None:
    pure, compiled = both("_data")
    assert outcome(pure.encode_data, data, **options) == outcome(
        compiled.encode_data, data, **options
    )


# ---------------------------------------------------------------- scan_body
def scan_reference(data: bytes) -> int:
    """What ``scan_body`` must return, from its definition: 8-bit when an octet is above
    127; needs encoding unless ``encode_data(dot_stuff=False)`` gives the octets back."""
    flags = 0 if all(octet < 128 for octet in data) else 1
    if outcome(reference, data, dot_stuff=False) != data:
        flags |= 2
    return flags


@pytest.mark.parametrize(
    ("data", "flags"),
    [
        (b"", 0),
        (b"\r\n", 0),
        (b"a\r\n", 0),
        (b"a\r\nb\r\n\r\n", 0),
        (b"caf\xc3\xa9\r\n", 1),
        (b"a", 2),  # no line end at the end
        (b"\n", 2),  # a bare LF, even the first octet
        (b"\r", 2),
        (b"a\r", 2),
        (b"a\n", 2),
        (b"a\r\r\n", 2),
        (b"a\n\r\n", 2),
        (b"a\r\nb\n\r\n", 2),
        (b"a\x00\r\n", 2),  # a NUL is refused by encode_data
        (b"\x00\r\n", 2),
        (b"\xff", 3),
        (b"\xff\n", 3),
        (b".\r\n", 0),  # BDAT: dots are plain octets
    ],
)
def test_scan_body_golden(data_mod: ModuleType, data: bytes, flags: int) -> None:
    assert data_mod.scan_body(data) == flags
    assert scan_reference(data) == flags


def test_scan_body_flag_values(data_mod: ModuleType) -> None:
    assert (data_mod.BODY_8BIT, data_mod.BODY_NEEDS_ENCODING) == (1, 2)


def test_scan_body_finds_a_fault_at_every_offset(data_mod: ModuleType) -> None:
    # Each fault at each offset of bodies around the 16-octet blocks of the SIMD loop.
    for size in range(2, 70):
        clean = bytearray((b"abcdefghijklmno\r\n" * 5)[: size - 2] + b"\r\n")
        if b"\r\r" in clean or clean[:-2].endswith(b"\r"):
            clean[size - 3] = ord("z")  # keep the clean body clean where a cut split a CRLF
        clean_flags = data_mod.scan_body(bytes(clean))
        assert clean_flags == scan_reference(bytes(clean)) == 0, clean
        for offset in range(size):
            for octet in (0x0D, 0x0A, 0x00, 0x80, 0xFF, ord(".")):
                body = bytearray(clean)
                body[offset] = octet
                expected = scan_reference(bytes(body))
                assert data_mod.scan_body(body) == expected, (size, offset, octet)


def test_scan_body_large_bodies(data_mod: ModuleType) -> None:
    # Past the size where the compiled twin releases the GIL.
    body = b"The quick brown fox jumps over the lazy dog.\r\n" * 10_000
    assert data_mod.scan_body(body) == 0
    assert data_mod.scan_body(body[:-1]) == 2
    assert data_mod.scan_body(body[:200_001] + b"\n" + body) == 2
    assert data_mod.scan_body(body[:300_001] + b"\x80" + body[300_001:]) == 1
    assert data_mod.scan_body(memoryview(body)[46:]) == 0


def test_scan_body_takes_every_bytes_like_input(data_mod: ModuleType) -> None:
    raw = b"a\r\n\xe9\r\n"
    inputs: list[Any] = [
        raw,
        bytearray(raw),
        memoryview(raw),
        memoryview(raw).cast("c"),
        memoryview(b"xx" + raw + b"yy")[2:-2],
        array.array("B", raw),
    ]
    for data in inputs:
        assert data_mod.scan_body(data) == 1, data
    for data in (bytearray(), memoryview(b""), memoryview(b"abcd")[::2][0:0]):
        assert data_mod.scan_body(data) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("text\r\n", "message data must be a bytes-like object, not str"),
        (None, "message data must be a bytes-like object, not NoneType"),
        (array.array("H", [1, 2]), NOT_OCTETS),
        (memoryview(b"abcdef")[::2], NOT_OCTETS),
    ],
)
def test_scan_body_refuses_other_inputs(data_mod: ModuleType, data: object, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        data_mod.scan_body(data)


BODY_OCTETS = st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\x00", b"\xc3"]))


@with_twin
@given(data=BODY_OCTETS.map(b"".join) | MESSAGES, kind=KINDS)
def test_scan_body_matches_its_definition(data_mod: ModuleType, data: bytes, kind: Any) -> None:
    flags = data_mod.scan_body(kind(data))
    assert flags == scan_reference(data)
    # What a sender relies on: no BODY_NEEDS_ENCODING means encode_data is the identity.
    if not flags & data_mod.BODY_NEEDS_ENCODING:
        assert data_mod.encode_data(data, dot_stuff=False) == data


@differential
@given(data=st.one_of(BODY_OCTETS.map(b"".join), MESSAGES, st.text(max_size=4), st.none()))
def test_twins_agree_on_scan_body(data: object) -> None:
    pure, compiled = both("_data")
    assert outcome(pure.scan_body, data) == outcome(compiled.scan_body, data)
