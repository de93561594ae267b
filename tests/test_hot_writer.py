"""The command writer (CommandBuffer): both twins, same bytes, same errors, same messages."""

from __future__ import annotations

import array
import copy
import itertools
import pickle
import re
import string
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError

from twins import both, differential


def examples(count: int) -> settings:
    """Hypothesis settings for a test that takes a twin fixture: it holds no state, so
    hypothesis may reuse it across examples."""
    return settings(max_examples=count, suppress_health_check=[HealthCheck.function_scoped_fixture])


# fmt: off
C0_NAMES = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
    "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB",
    "ESC", "FS", "GS", "RS", "US",
)
# fmt: on
CONTROLS = [(chr(c), name) for c, name in enumerate(C0_NAMES)] + [("\x7f", "DEL")]
MAX_SIZE = 2**63 - 1

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def queued(mod: ModuleType, method: str, *args: Any, **kwargs: Any) -> bytes:
    """The bytes one command queues into a fresh buffer."""
    buf = mod.CommandBuffer()
    getattr(buf, method)(*args, **kwargs)
    assert buf.commands == 1
    value: bytes = buf.getvalue()
    return value


def snapshot(buf: Any) -> tuple[Any, ...]:
    """Everything observable about a buffer's contents."""
    pieces = [(type(p), bytes(p)) for p in buf.chunks()]
    return pieces, buf.getvalue(), len(buf), buf.commands


def busy(mod: ModuleType) -> Any:
    """A buffer holding commands, a copied body and a body kept by reference."""
    buf = mod.CommandBuffer(copy_threshold=64)
    buf.ehlo("client.example.org")
    buf.mail("a@example.com")
    buf.body(b"small\r\n")
    buf.body(b"B" * 100)
    buf.noop()
    return buf


def refusal(
    mod: ModuleType,
    method: str,
    *args: Any,
    error: type[Exception] = InvalidInputError,
    **kwargs: Any,
) -> str:
    """The message of the error a command raises; the buffer it was refused by (holding
    commands and bodies) must be exactly as it was."""
    buf = busy(mod)
    before = snapshot(buf)
    with pytest.raises(error) as info:
        getattr(buf, method)(*args, **kwargs)
    assert type(info.value) is error
    assert snapshot(buf) == before
    return str(info.value)


def outcome(mod: ModuleType, call: Call) -> tuple[str, Any]:
    """What a call does to a fresh buffer: its bytes, or the error class and message."""
    name, args, kwargs = call
    buf = mod.CommandBuffer()
    try:
        getattr(buf, name)(*args, **kwargs)
    except (InvalidInputError, TypeError) as exc:
        assert buf.getvalue() == b""
        assert buf.commands == 0
        return type(exc).__name__, str(exc)
    return "ok", buf.getvalue()


def test_the_compiled_twin_is_an_extension(writer_mod: ModuleType, implementation: str) -> None:
    assert str(writer_mod.__file__).endswith(".py") == (implementation == "python")


# ------------------------------------------------------------------ exact bytes
@pytest.mark.parametrize(
    "name",
    [
        "mail.example.com",
        "localhost",
        "a-b.x1.example",
        "xn--mnchen-3ya.de",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "[ipv6:::1]",
        "[IPv6:::ffff:192.0.2.1]",
        "a" * 63 + ".com",
        ".".join(["a" * 63] * 4),  # 255 octets
    ],
)
def test_hello(writer_mod: ModuleType, name: str) -> None:
    assert queued(writer_mod, "ehlo", name) == f"EHLO {name}\r\n".encode()
    assert queued(writer_mod, "helo", name) == f"HELO {name}\r\n".encode()


@pytest.mark.parametrize(
    ("sender", "kwargs", "line"),
    [
        ("", {}, "MAIL FROM:<>"),
        ("user@example.com", {}, "MAIL FROM:<user@example.com>"),
        ("a@b.c", {"size": 0}, "MAIL FROM:<a@b.c> SIZE=0"),
        ("a@b.c", {"size": MAX_SIZE}, f"MAIL FROM:<a@b.c> SIZE={MAX_SIZE}"),
        ("a@b.c", {"size": 1024, "body": "8bitmime"}, "MAIL FROM:<a@b.c> SIZE=1024 BODY=8BITMIME"),
        ("a@b.c", {"body": "7bit"}, "MAIL FROM:<a@b.c> BODY=7BIT"),
        ("a@b.c", {"body": "BinaryMime"}, "MAIL FROM:<a@b.c> BODY=BINARYMIME"),
        ("a@b.c", {"smtputf8": True}, "MAIL FROM:<a@b.c> SMTPUTF8"),
        ("a@b.c", {"ret": "full"}, "MAIL FROM:<a@b.c> RET=FULL"),
        ("a@b.c", {"ret": "Hdrs"}, "MAIL FROM:<a@b.c> RET=HDRS"),
        ("a@b.c", {"envid": "QQ314159"}, "MAIL FROM:<a@b.c> ENVID=QQ314159"),
        ("a@b.c", {"envid": "a+b=c d"}, "MAIL FROM:<a@b.c> ENVID=a+2Bb+3Dc+20d"),
        ("a@b.c", {"requiretls": True}, "MAIL FROM:<a@b.c> REQUIRETLS"),
        ("a@b.c", {"params": ["AUTH=<>", "X-Flag"]}, "MAIL FROM:<a@b.c> AUTH=<> X-Flag"),
        ("a@b.c", {"params": ("SIZE=12",)}, "MAIL FROM:<a@b.c> SIZE=12"),
        ("", {"ret": "hdrs", "envid": "id"}, "MAIL FROM:<> RET=HDRS ENVID=id"),
        (
            "jöe@exämple.com",
            {
                "size": 1,
                "body": "8BITMIME",
                "smtputf8": True,
                "ret": "HDRS",
                "envid": "x",
                "requiretls": True,
                "params": ["X-A=ü", "X-FLAG"],
            },
            "MAIL FROM:<jöe@exämple.com> SIZE=1 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x "
            "REQUIRETLS X-A=ü X-FLAG",
        ),
        ("'weird'!#$%&*+/=?^_`{|}~-@x.y", {}, "MAIL FROM:<'weird'!#$%&*+/=?^_`{|}~-@x.y>"),
        ('"john \\"q\\" doe"@example.com', {}, 'MAIL FROM:<"john \\"q\\" doe"@example.com>'),
        ('""@example.com', {}, 'MAIL FROM:<""@example.com>'),
        ('"a@b<c>"@[192.0.2.1]', {}, 'MAIL FROM:<"a@b<c>"@[192.0.2.1]>'),
        ("user@[IPv6:2001:db8::1]", {}, "MAIL FROM:<user@[IPv6:2001:db8::1]>"),
    ],
)
def test_mail(writer_mod: ModuleType, sender: str, kwargs: dict[str, Any], line: str) -> None:
    assert queued(writer_mod, "mail", sender, **kwargs) == f"{line}\r\n".encode()


@pytest.mark.parametrize(
    ("recipient", "kwargs", "line"),
    [
        ("user@example.com", {}, "RCPT TO:<user@example.com>"),
        ("postmaster", {}, "RCPT TO:<postmaster>"),
        ("PostMaster", {}, "RCPT TO:<PostMaster>"),
        ("a@b.c", {"notify": ["never"]}, "RCPT TO:<a@b.c> NOTIFY=NEVER"),
        ("a@b.c", {"notify": ("Delay", "success")}, "RCPT TO:<a@b.c> NOTIFY=DELAY,SUCCESS"),
        (
            "a@b.c",
            {"notify": ["success", "FAILURE", "delay"]},
            "RCPT TO:<a@b.c> NOTIFY=SUCCESS,FAILURE,DELAY",
        ),
        # RFC 3461 6.2
        (
            "Carol@Ivory.EDU",
            {"notify": ["SUCCESS", "FAILURE"], "orcpt": "Carol@Ivory.EDU"},
            "RCPT TO:<Carol@Ivory.EDU> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Carol@Ivory.EDU",
        ),
        ("a@b.c", {"orcpt": "joe+smith@x.y"}, "RCPT TO:<a@b.c> ORCPT=rfc822;joe+2Bsmith@x.y"),
        ("a@b.c", {"orcpt": "a=b@x.y"}, "RCPT TO:<a@b.c> ORCPT=rfc822;a+3Db@x.y"),
        (
            "a@b.c",
            {"orcpt": '"john doe"@x.y'},
            'RCPT TO:<a@b.c> ORCPT=rfc822;"john+20doe"@x.y',
        ),
        (
            "a@b.c",
            {"orcpt": "a@b.c", "smtputf8": True},
            "RCPT TO:<a@b.c> ORCPT=rfc822;a@b.c",
        ),
        # RFC 6533 utf-8-addr-xtext
        (
            "jöe@x.y",
            {"orcpt": "jöe@x.y", "smtputf8": True},
            "RCPT TO:<jöe@x.y> ORCPT=utf-8;j\\x{F6}e@x.y",
        ),
        (
            "a@b.c",
            {"orcpt": "用户@例子.广告", "smtputf8": True},
            "RCPT TO:<a@b.c> ORCPT=utf-8;\\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.\\x{5E7F}\\x{544A}",
        ),
        (
            "a@b.c",
            {"orcpt": "😀+=@ü.x", "smtputf8": True},
            "RCPT TO:<a@b.c> ORCPT=utf-8;\\x{1F600}\\x{2B}\\x{3D}@\\x{FC}.x",
        ),
        (
            "a@b.c",
            {"orcpt": '"a b\\\\c"@ü.x', "smtputf8": True},
            'RCPT TO:<a@b.c> ORCPT=utf-8;"a\\x{20}b\\x{5C}\\x{5C}c"@\\x{FC}.x',
        ),
        (
            "a@b.c",
            {"notify": ["DELAY"], "orcpt": "o@x.y", "params": ["X-P=1", "X-Q"]},
            "RCPT TO:<a@b.c> NOTIFY=DELAY ORCPT=rfc822;o@x.y X-P=1 X-Q",
        ),
        ("a@b.c", {"params": ["NOTIFY=NEVER"]}, "RCPT TO:<a@b.c> NOTIFY=NEVER"),
        ("müller@bücher.de", {"smtputf8": True}, "RCPT TO:<müller@bücher.de>"),
    ],
)
def test_rcpt(writer_mod: ModuleType, recipient: str, kwargs: dict[str, Any], line: str) -> None:
    assert queued(writer_mod, "rcpt", recipient, **kwargs) == f"{line}\r\n".encode()


@pytest.mark.parametrize(
    ("method", "line"),
    [
        ("data", b"DATA\r\n"),
        ("rset", b"RSET\r\n"),
        ("noop", b"NOOP\r\n"),
        ("quit", b"QUIT\r\n"),
        ("starttls", b"STARTTLS\r\n"),
    ],
)
def test_commands_without_arguments(writer_mod: ModuleType, method: str, line: bytes) -> None:
    assert queued(writer_mod, method) == line


@pytest.mark.parametrize(
    ("size", "last", "line"),
    [
        (0, False, b"BDAT 0\r\n"),
        (1234, False, b"BDAT 1234\r\n"),
        (1234, True, b"BDAT 1234 LAST\r\n"),
        (0, True, b"BDAT 0 LAST\r\n"),
        (MAX_SIZE, True, f"BDAT {MAX_SIZE} LAST\r\n".encode()),
    ],
)
def test_bdat(writer_mod: ModuleType, size: int, last: bool, line: bytes) -> None:
    assert queued(writer_mod, "bdat", size, last=last) == line


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("PLAIN",), b"AUTH PLAIN\r\n"),
        (("plain", b""), b"AUTH PLAIN =\r\n"),
        (("PLAIN", b"AGFsaWNlAHNlY3JldA=="), b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        (("xoauth2", b"YWJj"), b"AUTH XOAUTH2 YWJj\r\n"),
        (("scram-sha-256", b"YWI="), b"AUTH SCRAM-SHA-256 YWI=\r\n"),
        (("Cram_MD5",), b"AUTH CRAM_MD5\r\n"),
        (("A" * 20,), b"AUTH " + b"A" * 20 + b"\r\n"),
        (("PLAIN", b"+/09" * 3068), b"AUTH PLAIN " + b"+/09" * 3068 + b"\r\n"),  # 12285 octets
    ],
)
def test_auth(writer_mod: ModuleType, args: tuple[Any, ...], line: bytes) -> None:
    assert queued(writer_mod, "auth", *args) == line


@pytest.mark.parametrize(
    ("response", "line"),
    [
        (b"*", b"*\r\n"),
        (b"", b"\r\n"),
        (b"dGVzdA==", b"dGVzdA==\r\n"),
        (b"abcd" * 3071, b"abcd" * 3071 + b"\r\n"),  # 12286 octets
    ],
)
def test_auth_response(writer_mod: ModuleType, response: bytes, line: bytes) -> None:
    assert queued(writer_mod, "auth_response", response) == line


@pytest.mark.parametrize("argument", ["Smith", "john smith", "<a@b.c>", "x" * 505])
def test_vrfy(writer_mod: ModuleType, argument: str) -> None:
    assert queued(writer_mod, "vrfy", argument) == f"VRFY {argument}\r\n".encode()


def test_a_pipelined_group(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer()
    buf.mail("sender@example.com", size=1024, body="8BITMIME")
    for name in ("a", "b", "c"):
        buf.rcpt(f"{name}@example.org", notify=["FAILURE"])
    buf.bdat(1024, last=True)
    buf.body(b"x" * 1024)
    buf.rset()
    assert buf.commands == 6
    assert buf.getvalue() == (
        b"MAIL FROM:<sender@example.com> SIZE=1024 BODY=8BITMIME\r\n"
        b"RCPT TO:<a@example.org> NOTIFY=FAILURE\r\n"
        b"RCPT TO:<b@example.org> NOTIFY=FAILURE\r\n"
        b"RCPT TO:<c@example.org> NOTIFY=FAILURE\r\n"
        b"BDAT 1024 LAST\r\n" + b"x" * 1024 + b"RSET\r\n"
    )
    assert [type(p) for p in buf.chunks()] == [bytes]  # one piece: one system call
    assert len(buf) == len(buf.getvalue())


def test_subclasses_are_read_by_their_stored_value(writer_mod: ModuleType) -> None:
    class Text(str):
        def __str__(self) -> str:
            return "x\r\nRSET"

        def __format__(self, spec: str) -> str:
            return "x\r\nRSET"

        def upper(self) -> str:
            return "x\r\nRSET"

    class Number(int):
        def __str__(self) -> str:
            return "1\r\nRSET"

        def __format__(self, spec: str) -> str:
            return "1\r\nRSET"

        def __index__(self) -> int:
            return 7

    class Data(bytes):
        def __add__(self, other: object) -> bytes:
            return b"\r\nRSET"

    buf = writer_mod.CommandBuffer()
    buf.mail(Text("a@b.c"), size=Number(5), ret=Text("full"), params=[Text("X=1")])
    buf.rcpt(Text("c@d.e"), notify=[Text("never")], orcpt=Text("f@g.h"))
    buf.bdat(Number(5))
    buf.auth(Text("plain"), Data(b"YWJj"))
    buf.auth_response(Data(b"YWJj"))
    assert buf.getvalue() == (
        b"MAIL FROM:<a@b.c> SIZE=5 RET=FULL X=1\r\n"
        b"RCPT TO:<c@d.e> NOTIFY=NEVER ORCPT=rfc822;f@g.h\r\n"
        b"BDAT 5\r\n"
        b"AUTH PLAIN YWJj\r\n"
        b"YWJj\r\n"
    )


# ------------------------------------------------------------------ refusals
def _address(value: str) -> Call:
    return "rcpt", (value,), {}


# (method, how to pass the value, a valid value, the argument's name in messages)
TEXT_ARGUMENTS: list[tuple[str, Callable[[str], Call], str, str]] = [
    ("ehlo", lambda v: ("ehlo", (v,), {}), "mail.example.com", "EHLO name"),
    ("helo", lambda v: ("helo", (v,), {}), "mail.example.com", "HELO name"),
    ("mail", lambda v: ("mail", (v,), {}), "user@example.com", "MAIL FROM address"),
    ("rcpt", lambda v: ("rcpt", (v,), {}), "user@example.com", "RCPT TO address"),
    ("orcpt", lambda v: ("rcpt", ("a@b.c",), {"orcpt": v}), "user@x.y", "RCPT ORCPT address"),
    ("envid", lambda v: ("mail", ("a@b.c",), {"envid": v}), "QQ314159", "MAIL ENVID"),
    ("ret", lambda v: ("mail", ("a@b.c",), {"ret": v}), "HDRS", "MAIL RET"),
    ("body", lambda v: ("mail", ("a@b.c",), {"body": v}), "8BITMIME", "MAIL BODY"),
    (
        "notify",
        lambda v: ("rcpt", ("a@b.c",), {"notify": ["SUCCESS", v]}),
        "FAILURE",
        "RCPT notify[1]",
    ),
    (
        "mail param",
        lambda v: ("mail", ("a@b.c",), {"params": ["X-A=1", v]}),
        "X-B=2",
        "MAIL params[1]",
    ),
    ("rcpt param", lambda v: ("rcpt", ("a@b.c",), {"params": [v]}), "X-B=2", "RCPT params[0]"),
    ("mechanism", lambda v: ("auth", (v,), {}), "PLAIN", "AUTH mechanism"),
    ("vrfy", lambda v: ("vrfy", (v,), {}), "Smith", "VRFY argument"),
]


@pytest.mark.parametrize("where", ["start", "middle", "end"])
@pytest.mark.parametrize(
    ("build", "valid", "what"),
    [argument[1:] for argument in TEXT_ARGUMENTS],
    ids=[argument[0] for argument in TEXT_ARGUMENTS],
)
def test_every_control_in_every_text_argument_is_refused(
    writer_mod: ModuleType, build: Callable[[str], Call], valid: str, what: str, where: str
) -> None:
    index = {"start": 0, "middle": len(valid) // 2, "end": len(valid)}[where]
    assert outcome(writer_mod, build(valid))[0] == "ok"
    for char, name in CONTROLS:
        method, args, kwargs = build(valid[:index] + char + valid[index:])
        message = refusal(writer_mod, method, *args, **kwargs)
        assert message == f"{what} contains a control character ({name}) at index {index}"


@pytest.mark.parametrize("char", ["\x80", "\x85", "\x9f", "\u2028", "\u2029"])
@pytest.mark.parametrize(
    "build",
    [
        lambda v: ("mail", (v,), {"smtputf8": True}),
        lambda v: ("rcpt", (v,), {"smtputf8": True}),
        lambda v: ("rcpt", ("ü@x.y",), {"smtputf8": True, "orcpt": v}),
    ],
)
def test_c1_controls_and_separators_are_refused_even_with_smtputf8(
    writer_mod: ModuleType, build: Callable[[str], Call], char: str
) -> None:
    method, args, kwargs = build(f"jö{char}e@x.y")
    message = refusal(writer_mod, method, *args, **kwargs)
    assert message.endswith(f"contains a control character (U+{ord(char):04X}) at index 2")


def test_the_first_refused_character_wins(writer_mod: ModuleType) -> None:
    assert refusal(writer_mod, "rcpt", "é\r@x") == (
        "RCPT TO address contains a non-ASCII character at index 0, which requires SMTPUTF8"
    )
    assert refusal(writer_mod, "rcpt", "é\r@x", smtputf8=True) == (
        "RCPT TO address contains a control character (CR) at index 1"
    )
    # Controls are found before any syntax error, wherever they are.
    assert refusal(writer_mod, "rcpt", "a b@c\n") == (
        "RCPT TO address contains a control character (LF) at index 5"
    )


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "is empty"),
        ("user", "has no '@' (expected local@domain)"),
        ("postmaster@", "domain is empty"),
        ("@example.com", "local part is empty"),
        ("user@", "domain is empty"),
        (".user@x.y", "has a misplaced '.' at index 0"),
        ("us..er@x.y", "has a misplaced '.' at index 3"),
        ("user.@x.y", "has a misplaced '.' at index 4"),
        ("us er@x.y", "contains ' ' at index 2, which is not allowed in an unquoted local part"),
        ("<user@x.y>", "contains '<' at index 0, which is not allowed in an unquoted local part"),
        ("a,b@x.y", "contains ',' at index 1, which is not allowed in an unquoted local part"),
        ('a"b@x.y', "contains '\"' at index 1, which is not allowed in an unquoted local part"),
        ("a\\b@x.y", "contains '\\\\' at index 1, which is not allowed in an unquoted local part"),
        ("user@x.y>", "contains '>' at index 8, which is not allowed in a domain"),
        ("a@b@c", "contains '@' at index 3, which is not allowed in a domain"),
        ("user@x_y.z", "contains '_' at index 6, which is not allowed in a domain"),
        ("user@x y", "contains ' ' at index 6, which is not allowed in a domain"),
        ('"unterminated@x.y', "has an unterminated quoted local part"),
        ('"a\\"@x.y', "has an unterminated quoted local part"),
        ('"ab\\', "has an unterminated quoted local part"),
        ('"ab"x@y.z', "has 'x' at index 4 where '@' should follow the quotes"),
        ('"ab"', "has no '@' (expected local@domain)"),
        ("user@-x.com", "has a domain label starting with '-' at index 5"),
        ("user@x-.com", "has a domain label ending with '-' at index 6"),
        ("user@x.-", "has a domain label starting with '-' at index 7"),
        ("user@x..com", "has an empty domain label at index 7"),
        ("user@x.com.", "has an empty domain label at index 11"),
        ("user@.x", "has an empty domain label at index 5"),
        ("user@" + "a" * 64 + ".com", "has a domain label longer than 63 octets at index 5"),
        ("a" * 65 + "@x.y", "local part is too long (65 octets; the limit is 64)"),
        (
            "a" * 64 + "@" + "b" * 60 + ("." + "c" * 60) * 3,
            "is too long (308 octets; the limit is 254)",
        ),
        ("user@[192.0.2.1", "has an invalid address literal at index 5"),
        ("user@[300.0.2.1]", "has an invalid address literal at index 5"),
        ("user@[01.2.3.4]", "has an invalid address literal at index 5"),
        ("user@[1.2.3]", "has an invalid address literal at index 5"),
        ("user@[]", "has an invalid address literal at index 5"),
        ("user@[IPv6:1.2.3.4]", "has an invalid address literal at index 5"),
        ("user@[IPv6:fe80::1%eth0]", "has an invalid address literal at index 5"),
        ("user@[IPv6:1::2::3]", "has an invalid address literal at index 5"),
        ("user@[IPv6:]", "has an invalid address literal at index 5"),
        ("user@[tag:content]", "has an invalid address literal at index 5"),
        ("user@[1.2.3.4]x", "has an invalid address literal at index 5"),
        ("jöe@x.y", "contains a non-ASCII character at index 1, which requires SMTPUTF8"),
        ("joe@bücher.de", "contains a non-ASCII character at index 5, which requires SMTPUTF8"),
    ],
)
def test_bad_addresses(writer_mod: ModuleType, address: str, problem: str) -> None:
    assert refusal(writer_mod, "rcpt", address) == f"RCPT TO address {problem}"
    if address:
        assert refusal(writer_mod, "mail", address) == f"MAIL FROM address {problem}"
        assert refusal(writer_mod, "rcpt", "a@b.c", orcpt=address) == (
            f"RCPT ORCPT address {problem}"
        )


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ('"a\\é"@x.y', "has an invalid escape at index 2"),
        ("a@\ud800.y", "contains a surrogate (U+D800) at index 2"),
        ("é" * 33 + "@x.y", "local part is too long (66 octets; the limit is 64)"),
        ("a@" + "é" * 32 + ".y", "has a domain label longer than 63 octets at index 2"),
        (
            "é" * 32 + "@" + ("é" * 31 + ".") * 2 + "é" * 31 + "ab",
            "is too long (255 octets; the limit is 254)",
        ),
    ],
)
def test_bad_utf8_addresses(writer_mod: ModuleType, address: str, problem: str) -> None:
    assert refusal(writer_mod, "rcpt", address, smtputf8=True) == f"RCPT TO address {problem}"


@pytest.mark.parametrize(
    "address",
    [
        "a" * 64 + "@x.y",
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61,  # 254 octets
        "é" * 32 + "@" + "é" * 31 + "a.y",  # 64-octet local part, 63-octet label
        "é" * 32 + "@" + ("é" * 31 + ".") * 2 + "é" * 31 + "a",  # 254 octets
        '"a\\ b\\\\c\\"d"@x.y',
        '" "@x.y',
        '"ü"@ö.y',
        "😀@😀.y",
    ],
)
def test_addresses_at_the_limits(writer_mod: ModuleType, address: str) -> None:
    line = f"RCPT TO:<{address}>\r\n".encode()
    assert queued(writer_mod, "rcpt", address, smtputf8=True) == line


def test_null_and_postmaster_paths(writer_mod: ModuleType) -> None:
    assert queued(writer_mod, "mail", "") == b"MAIL FROM:<>\r\n"
    assert refusal(writer_mod, "rcpt", "") == "RCPT TO address is empty"
    assert refusal(writer_mod, "mail", "postmaster") == (
        "MAIL FROM address has no '@' (expected local@domain)"
    )
    assert refusal(writer_mod, "rcpt", "a@b.c", orcpt="postmaster") == (
        "RCPT ORCPT address has no '@' (expected local@domain)"
    )
    assert refusal(writer_mod, "rcpt", "a@b.c", orcpt="") == "RCPT ORCPT address is empty"
    assert refusal(writer_mod, "rcpt", "postmaster2") == (
        "RCPT TO address has no '@' (expected local@domain)"
    )
    # Only ASCII letters fold: "ſ" upper-cases to "S" in Python, but is not "s".
    assert refusal(writer_mod, "rcpt", "poſtmaster", smtputf8=True) == (
        "RCPT TO address has no '@' (expected local@domain)"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        ("-a.com", "has a domain label starting with '-' at index 0"),
        ("a-.com", "has a domain label ending with '-' at index 1"),
        ("a..b", "has an empty domain label at index 2"),
        ("a.", "has an empty domain label at index 2"),
        (".a", "has an empty domain label at index 0"),
        ("a b", "contains ' ' at index 1, which is not allowed in a domain"),
        ("a_b", "contains '_' at index 1, which is not allowed in a domain"),
        ("a@b", "contains '@' at index 1, which is not allowed in a domain"),
        ("a" * 64, "has a domain label longer than 63 octets at index 0"),
        ("a." * 128, "is too long (256 octets; the limit is 255)"),
        ("[1.2.3.4", "has an invalid address literal at index 0"),
        ("[1.2.3]", "has an invalid address literal at index 0"),
        ("[IPv6:::1]x", "has an invalid address literal at index 0"),
        ("[IPv7:::1]", "has an invalid address literal at index 0"),
        ("münchen.de", "contains a non-ASCII character at index 1"),
    ],
)
def test_bad_hello_names(writer_mod: ModuleType, name: str, problem: str) -> None:
    assert refusal(writer_mod, "ehlo", name) == f"EHLO name {problem}"
    assert refusal(writer_mod, "helo", name) == f"HELO name {problem}"


KEYWORD_CHARS = "(expected A-Z, a-z, 0-9 or '-')"


@pytest.mark.parametrize(
    ("params", "kwargs", "problem"),
    [
        ([""], {}, "is empty"),
        (["=1"], {}, "has an empty keyword"),
        (["-X"], {}, "keyword starts with '-'"),
        (["X_Y"], {}, f"keyword contains '_' at index 1 {KEYWORD_CHARS}"),
        (["X Y=1"], {}, f"keyword contains ' ' at index 1 {KEYWORD_CHARS}"),
        (["é=1"], {"smtputf8": True}, f"keyword contains 'é' at index 0 {KEYWORD_CHARS}"),
        (["X="], {}, "has an empty value"),
        (["X=a b"], {}, "value contains ' ' at index 3"),
        (["X=a=b"], {}, "value contains '=' at index 3"),
        (["X=é"], {}, "contains a non-ASCII character at index 2, which requires SMTPUTF8"),
    ],
)
def test_bad_mail_params(
    writer_mod: ModuleType, params: list[str], kwargs: dict[str, Any], problem: str
) -> None:
    message = refusal(writer_mod, "mail", "a@b.c", params=params, **kwargs)
    assert message == f"MAIL params[0] {problem}"


@pytest.mark.parametrize(
    ("argument", "value", "param"),
    [
        ("size", 1, "size=1"),
        ("body", "7BIT", "BODY=8BITMIME"),
        ("smtputf8", True, "SmtpUtf8"),
        ("ret", "FULL", "RET=HDRS"),
        ("envid", "x", "ENVID=y"),
        ("requiretls", True, "REQUIRETLS"),
    ],
)
def test_params_may_not_repeat_a_keyword(
    writer_mod: ModuleType, argument: str, value: Any, param: str
) -> None:
    keyword = param.partition("=")[0].upper()
    message = refusal(writer_mod, "mail", "a@b.c", params=["X-A", param], **{argument: value})
    assert message == f"MAIL params[1] repeats {keyword}, which the {argument} argument sets"
    assert refusal(writer_mod, "mail", "a@b.c", params=["X-A", "B", "x-a=1"]) == (
        "MAIL params[2] repeats X-A of MAIL params[0]"
    )
    # Without the keyword argument, the parameter is the caller's to give.
    assert queued(writer_mod, "mail", "", params=[param]) == f"MAIL FROM:<> {param}\r\n".encode()


def test_bad_rcpt_params(writer_mod: ModuleType) -> None:
    assert refusal(writer_mod, "rcpt", "a@b.c", notify=["NEVER"], params=["notify=x"]) == (
        "RCPT params[0] repeats NOTIFY, which the notify argument sets"
    )
    assert refusal(writer_mod, "rcpt", "a@b.c", orcpt="o@x.y", params=["ORCPT=x"]) == (
        "RCPT params[0] repeats ORCPT, which the orcpt argument sets"
    )
    assert refusal(writer_mod, "rcpt", "a@b.c", params=["X", "X"]) == (
        "RCPT params[1] repeats X of RCPT params[0]"
    )
    # SIZE is no RCPT keyword argument: a custom SIZE on RCPT is the caller's business.
    assert queued(writer_mod, "rcpt", "a@b.c", params=["SIZE=1"]) == (b"RCPT TO:<a@b.c> SIZE=1\r\n")
    assert queued(writer_mod, "rcpt", "a@b.c", smtputf8=True, params=["X=ü"]) == (
        "RCPT TO:<a@b.c> X=ü\r\n".encode()
    )


@pytest.mark.parametrize(
    ("notify", "problem"),
    [
        ([], "RCPT notify is empty (give NEVER alone, or SUCCESS, FAILURE and/or DELAY)"),
        (["sometimes"], "RCPT notify[0] must be NEVER, SUCCESS, FAILURE or DELAY"),
        (["SUCCESS", ""], "RCPT notify[1] must be NEVER, SUCCESS, FAILURE or DELAY"),
        (["SUCCESS", "success"], "RCPT notify[1] repeats SUCCESS"),
        (["NEVER", "DELAY"], "RCPT notify[1] combines DELAY with NEVER (NEVER must be alone)"),
        (["DELAY", "never"], "RCPT notify[1] combines NEVER with DELAY (NEVER must be alone)"),
        (["NEVER", "NEVER"], "RCPT notify[1] repeats NEVER"),
        (["ſuccess"], "RCPT notify[0] contains a non-ASCII character at index 0"),
    ],
)
def test_bad_notify(writer_mod: ModuleType, notify: list[str], problem: str) -> None:
    assert refusal(writer_mod, "rcpt", "a@b.c", notify=notify) == problem


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"ret": "HEADERS"}, "MAIL RET must be FULL or HDRS"),
        ({"ret": ""}, "MAIL RET must be FULL or HDRS"),
        ({"ret": "ＦＵＬＬ"}, "MAIL RET contains a non-ASCII character at index 0"),
        ({"body": "8BIT"}, "MAIL BODY must be 7BIT, 8BITMIME or BINARYMIME"),
        ({"body": "8BITMIME "}, "MAIL BODY must be 7BIT, 8BITMIME or BINARYMIME"),
        ({"size": -1}, "MAIL SIZE must not be negative"),
        ({"size": -(2**70)}, "MAIL SIZE must not be negative"),
        ({"size": MAX_SIZE + 1}, f"MAIL SIZE is too large (the limit is {MAX_SIZE})"),
        ({"size": 10**5000}, f"MAIL SIZE is too large (the limit is {MAX_SIZE})"),
        ({"envid": ""}, "MAIL ENVID is empty"),
        ({"envid": "x" * 101}, "MAIL ENVID is too long (101 octets; the limit is 100)"),
        ({"envid": "é", "smtputf8": True}, "MAIL ENVID contains a non-ASCII character at index 0"),
    ],
)
def test_bad_mail_arguments(writer_mod: ModuleType, kwargs: dict[str, Any], problem: str) -> None:
    assert refusal(writer_mod, "mail", "a@b.c", **kwargs) == problem


def test_envid_at_its_limit(writer_mod: ModuleType) -> None:
    assert queued(writer_mod, "mail", "", envid="=" * 100) == (
        b"MAIL FROM:<> ENVID=" + b"+3D" * 100 + b"\r\n"
    )


def test_bad_bdat_sizes(writer_mod: ModuleType) -> None:
    assert refusal(writer_mod, "bdat", -1) == "BDAT size must not be negative"
    assert refusal(writer_mod, "bdat", MAX_SIZE + 1, last=True) == (
        f"BDAT size is too large (the limit is {MAX_SIZE})"
    )


@pytest.mark.parametrize(
    ("mechanism", "problem"),
    [
        ("", "AUTH mechanism is empty"),
        ("X" * 21, "AUTH mechanism is too long (21 octets; the limit is 20)"),
        ("PLAIN LOGIN", "AUTH mechanism contains ' ' at index 5 (expected A-Z, 0-9, '-' or '_')"),
        ("A=B", "AUTH mechanism contains '=' at index 1 (expected A-Z, 0-9, '-' or '_')"),
        ("ñ", "AUTH mechanism contains a non-ASCII character at index 0"),
    ],
)
def test_bad_mechanisms(writer_mod: ModuleType, mechanism: str, problem: str) -> None:
    assert refusal(writer_mod, "auth", mechanism) == problem
    assert refusal(writer_mod, "auth", mechanism, b"YWJj") == problem


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (b"=", "is not valid base64 (its length is not a multiple of 4)"),
        (b"YWJjZ", "is not valid base64 (its length is not a multiple of 4)"),
        (b"ab=c", "has misplaced '=' padding at index 2"),
        (b"====", "has misplaced '=' padding at index 0"),
        (b"a===", "has misplaced '=' padding at index 1"),
        (b"YW Jj", "contains a byte outside the base64 alphabet at index 2"),
        (b"YWJj\r\n", "contains a byte outside the base64 alphabet at index 4"),
        (b"\x00YWJ", "contains a byte outside the base64 alphabet at index 0"),
        (b"YWJ\x7f", "contains a byte outside the base64 alphabet at index 3"),
        (b"YW-_", "contains a byte outside the base64 alphabet at index 2"),  # base64url
        (b"YW\xc3\xa9", "contains a byte outside the base64 alphabet at index 2"),
        (b"**", "contains a byte outside the base64 alphabet at index 0"),
    ],
)
def test_bad_sasl_responses(writer_mod: ModuleType, response: bytes, problem: str) -> None:
    assert refusal(writer_mod, "auth", "PLAIN", response) == f"AUTH initial response {problem}"
    assert refusal(writer_mod, "auth_response", response) == f"AUTH response {problem}"


def test_sasl_messages_never_show_the_response(writer_mod: ModuleType) -> None:
    secret = b"c2VjcmV0\nc2VjcmV0"
    for method, args in (("auth", ("PLAIN", secret)), ("auth_response", (secret,))):
        message = refusal(writer_mod, method, *args)
        assert "c2Vj" not in message
        assert "\n" not in message
    # A control in the response is not named either: it is a byte of a credential.
    for char, name in CONTROLS:
        message = refusal(writer_mod, "auth_response", b"YW" + char.encode() + b"J")
        assert message == "AUTH response contains a byte outside the base64 alphabet at index 2"
        assert name not in message


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "problem"),
    [
        ("mail", ("a@b.c",), {"params": ["X=" + "v" * 2027]},
         "MAIL command line is too long (2049 octets with CRLF; the limit is 2048)"),
        ("rcpt", ("a@b.c",), {"params": ["X=" + "v" * 2029]},
         "RCPT command line is too long (2049 octets with CRLF; the limit is 2048)"),
        ("auth", ("PLAIN", b"abcd" * 3069), {},
         "AUTH command line is too long (12289 octets with CRLF; the limit is 12288)"),
        ("auth_response", (b"abcd" * 3072,), {},
         "AUTH response line is too long (12290 octets with CRLF; the limit is 12288)"),
        ("vrfy", ("x" * 506,), {},
         "VRFY command line is too long (513 octets with CRLF; the limit is 512)"),
    ],
)  # fmt: skip
def test_line_limits(
    writer_mod: ModuleType, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    assert refusal(writer_mod, method, *args, **kwargs) == problem


def test_lines_at_the_limits(writer_mod: ModuleType) -> None:
    assert len(queued(writer_mod, "mail", "a@b.c", params=["X=" + "v" * 2026])) == 2048
    assert len(queued(writer_mod, "rcpt", "a@b.c", params=["X=" + "v" * 2028])) == 2048


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "problem"),
    [
        ("ehlo", (None,), {}, "EHLO name must be a str, not NoneType"),
        ("helo", (b"x",), {}, "HELO name must be a str, not bytes"),
        ("mail", (b"a@b.c",), {}, "MAIL FROM address must be a str, not bytes"),
        ("mail", ("a@b.c",), {"size": True}, "MAIL SIZE must be an int, not bool"),
        ("mail", ("a@b.c",), {"size": 1.0}, "MAIL SIZE must be an int, not float"),
        ("mail", ("a@b.c",), {"size": "1"}, "MAIL SIZE must be an int, not str"),
        ("mail", ("a@b.c",), {"body": 8}, "MAIL BODY must be a str, not int"),
        ("mail", ("a@b.c",), {"ret": b"FULL"}, "MAIL RET must be a str, not bytes"),
        ("mail", ("a@b.c",), {"envid": 5}, "MAIL ENVID must be a str, not int"),
        ("mail", ("a@b.c",), {"params": "X=1"}, "MAIL params must be a sequence of str, not str"),
        ("mail", ("a@b.c",), {"params": {"X"}}, "MAIL params must be a sequence of str, not set"),
        ("mail", ("a@b.c",), {"params": [b"X"]}, "MAIL params[0] must be a str, not bytes"),
        ("rcpt", (None,), {}, "RCPT TO address must be a str, not NoneType"),
        ("rcpt", ("a@b.c",), {"orcpt": 5}, "RCPT ORCPT address must be a str, not int"),
        ("rcpt", ("a@b.c",), {"notify": "NEVER"}, "RCPT notify must be a sequence of str, not str"),
        ("rcpt", ("a@b.c",), {"notify": [None]}, "RCPT notify[0] must be a str, not NoneType"),
        ("rcpt", ("a@b.c",), {"params": b"X"}, "RCPT params must be a sequence of str, not bytes"),
        ("bdat", (False,), {}, "BDAT size must be an int, not bool"),
        ("bdat", (None,), {}, "BDAT size must be an int, not NoneType"),
        ("auth", (None,), {}, "AUTH mechanism must be a str, not NoneType"),
        ("auth", ("PLAIN", "YWJj"), {}, "AUTH initial response must be bytes, not str"),
        ("auth", ("X", bytearray()), {}, "AUTH initial response must be bytes, not bytearray"),
        ("auth_response", ("*",), {}, "AUTH response must be bytes, not str"),
        ("vrfy", (1,), {}, "VRFY argument must be a str, not int"),
        ("body", ("text",), {}, "body must be bytes, bytearray or memoryview, not str"),
        ("body", (None,), {}, "body must be bytes, bytearray or memoryview, not NoneType"),
        ("body", (memoryview(b"abcdef")[::2],), {}, "body must be a C-contiguous buffer"),
    ],
)  # fmt: skip
def test_wrong_types(
    writer_mod: ModuleType, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    assert refusal(writer_mod, method, *args, error=TypeError, **kwargs) == problem


def test_constructor(writer_mod: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^copy_threshold must be an int, not bool$"):
        writer_mod.CommandBuffer(copy_threshold=True)
    with pytest.raises(InvalidInputError, match=r"^copy_threshold must not be negative$"):
        writer_mod.CommandBuffer(copy_threshold=-1)
    with pytest.raises(TypeError):
        writer_mod.CommandBuffer(16384)  # keyword only
    buf = writer_mod.CommandBuffer()
    assert (len(buf), buf.commands, buf.chunks(), buf.getvalue()) == (0, 0, [], b"")


def test_a_buffer_cannot_be_pickled_or_copied(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer()
    buf.noop()
    for action in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match=r"^CommandBuffer cannot be pickled or copied$"):
            action(buf)


# ------------------------------------------------------------------ bodies
def test_a_small_body_is_copied(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=16)
    data = bytearray(b"0123456789abcde")  # 15 bytes: below the threshold
    buf.bdat(15, last=True)
    buf.body(data)
    data[:] = b"X" * 15
    assert buf.chunks() == [b"BDAT 15 LAST\r\n0123456789abcde"]
    assert [type(p) for p in buf.chunks()] == [bytes]


def test_a_large_body_is_kept_by_reference(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=16)
    data = bytearray(b"0123456789abcdef")  # 16 bytes: at the threshold
    buf.bdat(16, last=True)
    buf.body(data)
    buf.quit()
    head, view, tail = buf.chunks()
    assert (head, tail) == (b"BDAT 16 LAST\r\n", b"QUIT\r\n")
    assert isinstance(view, memoryview)
    assert view.obj is data
    assert view.readonly
    data[0:1] = b"!"  # the very same memory, not a copy
    assert bytes(view) == b"!123456789abcdef"
    assert buf.getvalue() == b"BDAT 16 LAST\r\n!123456789abcdefQUIT\r\n"
    assert len(buf) == 14 + 16 + 6


def test_bodies_of_every_buffer_type(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=8)
    big_bytes = b"b" * 8
    big_array = array.array("I", [0x61616161, 0x62626262])  # 8 bytes, format "I"
    source = bytearray(b"0123456789")
    buf.body(b"abc")
    buf.body(bytearray(b"def"))
    buf.body(memoryview(b"ghi"))
    buf.body(memoryview(array.array("H", [0x6A6A])))  # 2 bytes: copied
    buf.body(big_bytes)
    buf.body(memoryview(big_array))
    buf.body(memoryview(source)[1:9])
    pieces = buf.chunks()
    assert pieces[0] == b"abcdefghijj"
    assert [type(p) for p in pieces] == [bytes, memoryview, memoryview, memoryview]
    assert pieces[1].obj is big_bytes
    assert pieces[2].obj is big_array
    assert pieces[2].format == "B"
    assert len(pieces[2]) == 8
    assert pieces[3].obj is source
    assert bytes(pieces[3]) == b"12345678"
    assert len(buf) == 11 + 8 + 8 + 8


def test_empty_bodies_append_nothing(writer_mod: ModuleType) -> None:
    for threshold in (0, 16):
        buf = writer_mod.CommandBuffer(copy_threshold=threshold)
        buf.body(b"")
        buf.body(bytearray())
        buf.body(memoryview(b""))
        assert (buf.chunks(), len(buf), buf.commands) == ([], 0, 0)


def test_a_zero_threshold_keeps_every_body_by_reference(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=0)
    data = b"x"
    buf.body(data)
    (view,) = buf.chunks()
    assert isinstance(view, memoryview)
    assert view.obj is data


def test_pieces_are_as_few_as_possible(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=100)
    big1, big2 = b"1" * 100, b"2" * 200
    buf.mail("a@b.c")
    buf.rcpt("d@e.f")
    buf.data()
    buf.body(b"small")
    buf.body(big1)
    buf.body(big2)
    buf.body(b".\r\n")
    buf.mail("g@h.i")
    pieces = buf.chunks()
    assert [type(p) for p in pieces] == [bytes, memoryview, memoryview, bytes]
    assert pieces[0] == b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nsmall"
    assert pieces[3] == b".\r\nMAIL FROM:<g@h.i>\r\n"
    assert buf.commands == 4


# ------------------------------------------------------------------ take / clear / len
def test_take_clear_len_and_commands(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=4)
    body = b"body"
    buf.ehlo("x.y")
    buf.body(body)
    buf.noop()
    assert (len(buf), buf.commands) == (10 + 4 + 6, 2)
    assert buf.chunks() == buf.chunks()  # chunks() does not consume
    taken = buf.take()
    assert [bytes(p) for p in taken] == [b"EHLO x.y\r\n", b"body", b"NOOP\r\n"]
    assert taken[1].obj is body
    assert (len(buf), buf.commands, buf.chunks(), buf.getvalue()) == (0, 0, [], b"")
    buf.quit()
    assert buf.take() == [b"QUIT\r\n"]
    assert [bytes(p) for p in taken] == [b"EHLO x.y\r\n", b"body", b"NOOP\r\n"]  # still valid
    buf.rset()
    buf.body(b"abcdef")
    buf.clear()
    assert (len(buf), buf.commands, buf.take()) == (0, 0, [])
    buf.data()
    assert (buf.getvalue(), buf.commands) == (b"DATA\r\n", 1)


def test_a_large_queue_grows_and_is_released(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer()
    lines = [f"RCPT TO:<user{i}@example.com>\r\n".encode() for i in range(5000)]
    for round_ in range(2):
        for i in range(5000):
            buf.rcpt(f"user{i}@example.com")
        assert buf.commands == 5000
        assert len(buf) == sum(map(len, lines))
        assert buf.take() == [b"".join(lines)], round_
    buf.noop()
    assert buf.take() == [b"NOOP\r\n"]


def test_a_refused_command_after_growth_leaves_the_queue_intact(writer_mod: ModuleType) -> None:
    buf = writer_mod.CommandBuffer()
    buf.noop()
    before = snapshot(buf)
    with pytest.raises(InvalidInputError):  # writes 2 KiB of scratch before it is refused
        buf.mail("a@b.c", params=["X=" + "v" * 3000])
    assert snapshot(buf) == before
    buf.quit()
    assert buf.getvalue() == b"NOOP\r\nQUIT\r\n"


# ------------------------------------------------------------------ hypothesis
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
UTF8_LETTERS = "éüß中文😀Ω"
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?"
PRINTABLE = "".join(chr(c) for c in range(32, 127))


def valid_addresses(utf8: bool = False) -> st.SearchStrategy[str]:
    letters = ATEXT + (UTF8_LETTERS if utf8 else "")
    atom = st.text(alphabet=letters, min_size=1, max_size=8)
    dot_string = st.lists(atom, min_size=1, max_size=4).map(".".join)
    quoted = st.text(alphabet=PRINTABLE + (UTF8_LETTERS if utf8 else ""), max_size=10).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )
    label = st.from_regex(LABEL, fullmatch=True)
    if utf8:
        label = label | st.text(alphabet=UTF8_LETTERS + "ab", min_size=1, max_size=5)
    domain = st.lists(label, min_size=1, max_size=4).map(".".join) | st.sampled_from(
        ["[192.0.2.1]", "[IPv6:2001:db8::1]"]
    )
    return st.builds(lambda local, dom: f"{local}@{dom}", dot_string | quoted, domain)


NASTY: list[str] = [
    *"aZ09.-_@\"\\[]:<>+=,;()!#~' ",
    *("\r", "\n", "\x00", "\t", "\x7f", "\x85", "\u2028", "é", "中", "😀", "\ud800", "ſ"),
]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A valid value with one character inserted, replaced or removed."""
    text = draw(base)
    i = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from(NASTY))
    how = draw(st.sampled_from(["insert", "replace", "delete"]))
    if how == "insert":
        return text[:i] + char + text[i:]
    if how == "replace":
        return text[:i] + char + text[i + 1 :]
    return text[:i] + text[i + 1 :]


texts = st.text(alphabet=st.sampled_from(NASTY) | st.characters(), max_size=24)
addresses = st.one_of(
    texts, valid_addresses(), valid_addresses(utf8=True), mutated(valid_addresses(utf8=True))
)
hello_names = st.one_of(
    texts,
    st.from_regex(rf"{LABEL}(\.{LABEL}){{0,3}}", fullmatch=True),
    mutated(st.sampled_from(["mail.example.com", "[192.0.2.1]", "[IPv6:::1]"])),
)
words = st.sampled_from(
    ["7bit", "8BITMIME", "binarymime", "FULL", "hdrs", "never", "Success", "failure", "DELAY"]
) | mutated(st.sampled_from(["HDRS", "8BITMIME", "NEVER", "DELAY"]))
params = st.sampled_from(
    ["X-A=1", "SIZE=5", "x-a", "=", "A=", "A=b c", "-A", "AUTH=<>", "ENVID=x", "X=ü", "NOTIFY=x"]
) | mutated(st.sampled_from(["X-A=1", "KEY=value"]))
sizes = st.integers(-3, 2**64) | st.booleans()
base64ish = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"", b"*", b"=", b"dGVzdA==", b"YWJj", b"ab=c", b"YQ=="]),
    st.text(alphabet="ABCxyz019+/=", max_size=12).map(str.encode),
)
flags = st.booleans()
calls: st.SearchStrategy[Call] = st.one_of(
    st.tuples(st.sampled_from(["ehlo", "helo"]), st.tuples(hello_names), st.just({})),
    st.tuples(st.just("vrfy"), st.tuples(texts), st.just({})),
    st.tuples(
        st.just("mail"),
        st.tuples(addresses | st.just("")),
        st.fixed_dictionaries(
            {},
            optional={
                "size": sizes,
                "body": words,
                "smtputf8": flags,
                "ret": words,
                "envid": texts,
                "requiretls": flags,
                "params": st.lists(params | texts, max_size=3),
            },
        ),
    ),
    st.tuples(
        st.just("rcpt"),
        st.tuples(addresses | st.sampled_from(["postmaster", "PostMaster"])),
        st.fixed_dictionaries(
            {},
            optional={
                "notify": st.lists(words, max_size=3),
                "orcpt": addresses,
                "smtputf8": flags,
                "params": st.lists(params | texts, max_size=3),
            },
        ),
    ),
    st.tuples(
        st.just("auth"),
        st.tuples(words | texts | st.just("PLAIN")) | st.tuples(st.just("PLAIN"), base64ish),
        st.just({}),
    ),
    st.tuples(st.just("auth_response"), st.tuples(base64ish), st.just({})),
    st.tuples(
        st.just("bdat"), st.tuples(sizes), st.fixed_dictionaries({}, optional={"last": flags})
    ),
)


@differential
@settings(max_examples=1000)
@given(call=calls)
def test_the_twins_agree(call: Call) -> None:
    pure, compiled = both("_writer")
    assert outcome(pure, call) == outcome(compiled, call)


@examples(300)
@given(call=calls)
def test_only_the_final_crlf_ends_an_accepted_command(writer_mod: ModuleType, call: Call) -> None:
    kind, line = outcome(writer_mod, call)
    if kind == "ok":
        assert line.endswith(b"\r\n")
        assert re.search(rb"[\x00-\x1f\x7f]", line[:-2]) is None, line


def parse_line(line: bytes) -> tuple[str, str, dict[str, str | None]]:
    """A MAIL/RCPT line -> (verb, path, {keyword: value}): a small independent parser."""
    assert line.endswith(b"\r\n")
    text = line[:-2].decode("utf-8")
    verb, separator, rest = text.partition(":<")
    assert separator
    index, quoted = 0, False
    while quoted or rest[index] != ">":  # the path ends at the first ">" outside quotes
        if quoted and rest[index] == "\\":
            index += 1
        elif rest[index] == '"':
            quoted = not quoted
        index += 1
    path, tail = rest[:index], rest[index + 1 :]
    found: dict[str, str | None] = {}
    for param in tail.split(" ")[1:] if tail else []:
        keyword, equals, value = param.partition("=")
        assert keyword not in found
        found[keyword] = value if equals else None
    assert tail == "".join(f" {k}" + ("" if v is None else f"={v}") for k, v in found.items())
    return verb, path, found


def from_xtext(text: str) -> str:
    assert re.fullmatch(r"([!-*,-<>-~]|\+[0-9A-F]{2})*", text), text
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), text)


def from_addr_xtext(text: str) -> str:
    assert re.fullmatch(r"([!-*,-<>-\[\]-~]|\\x\{[1-9A-F][0-9A-F]*\})*", text), text
    return re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: chr(int(m[1], 16)), text)


@examples(150)
@given(
    sender=valid_addresses(utf8=True) | st.just(""),
    options=st.fixed_dictionaries({
        "size": st.none() | st.integers(0, MAX_SIZE),
        "body": st.none() | st.sampled_from(["7bit", "8BITMIME", "BinaryMime"]),
        "ret": st.none() | st.sampled_from(["full", "HDRS"]),
        "envid": st.none() | st.text(alphabet=PRINTABLE, min_size=1, max_size=100),
        "requiretls": st.booleans(),
    }),
    extra=st.dictionaries(st.from_regex(r"X-[A-Z0-9]{1,5}", fullmatch=True),
                          st.none() | st.text(alphabet="abc<>+!~é", min_size=1, max_size=5),
                          max_size=3),
)  # fmt: skip
def test_mail_round_trips(
    writer_mod: ModuleType, sender: str, options: dict[str, Any], extra: dict[str, str | None]
) -> None:
    custom = [k if v is None else f"{k}={v}" for k, v in extra.items()]
    line = queued(writer_mod, "mail", sender, smtputf8=True, params=custom, **options)
    size, body, ret, envid = (options[k] for k in ("size", "body", "ret", "envid"))
    verb, path, found = parse_line(line)
    assert (verb, path) == ("MAIL FROM", sender)
    expected: dict[str, str | None] = {}
    if size is not None:
        expected["SIZE"] = str(size)
    if body is not None:
        expected["BODY"] = body.upper()
    expected["SMTPUTF8"] = None
    if ret is not None:
        expected["RET"] = ret.upper()
    if envid is not None:
        expected["ENVID"] = found["ENVID"]
        assert from_xtext(str(found["ENVID"])) == envid
    if options["requiretls"]:
        expected["REQUIRETLS"] = None
    expected.update(extra)
    assert found == expected
    assert list(found) == list(expected)  # in that order


@examples(200)
@given(
    recipient=valid_addresses(utf8=True) | st.just("Postmaster"),
    notify=st.none() | st.just(["never"])
    | st.lists(st.sampled_from(["success", "FAILURE", "Delay"]), min_size=1, max_size=3,
               unique_by=str.upper),
    orcpt=st.none() | valid_addresses() | valid_addresses(utf8=True),
)  # fmt: skip
def test_rcpt_round_trips(
    writer_mod: ModuleType, recipient: str, notify: list[str] | None, orcpt: str | None
) -> None:
    line = queued(writer_mod, "rcpt", recipient, notify=notify, orcpt=orcpt, smtputf8=True)
    verb, path, found = parse_line(line)
    assert (verb, path) == ("RCPT TO", recipient)
    assert list(found) == [k for k, v in (("NOTIFY", notify), ("ORCPT", orcpt)) if v is not None]
    if notify is not None:
        assert found["NOTIFY"] == ",".join(n.upper() for n in notify)
    if orcpt is not None:
        kind, _, encoded = str(found["ORCPT"]).partition(";")
        if orcpt.isascii():
            assert (kind, from_xtext(encoded)) == ("rfc822", orcpt)
        else:
            assert (kind, from_addr_xtext(encoded)) == ("utf-8", orcpt)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("noop"), st.just(b"")),
        st.tuples(st.just("rcpt"), st.just(b"")),
        st.tuples(st.just("body"), st.binary(max_size=40)),
        st.tuples(st.just("take"), st.just(b"")),
    ),
    max_size=20,
)


@examples(200)
@given(ops=operations, threshold=st.integers(0, 32), split=st.data())
def test_any_sequence_of_operations_queues_the_concatenation(
    writer_mod: ModuleType, ops: list[tuple[str, bytes]], threshold: int, split: st.DataObject
) -> None:
    buf = writer_mod.CommandBuffer(copy_threshold=threshold)
    sent: list[bytes] = []  # what take() handed out
    model, commands = b"", 0
    for name, data in ops:
        if name == "body":
            # A body fed whole or in pieces queues the same bytes.
            cut = split.draw(st.integers(0, len(data)))
            buf.body(data[:cut])
            buf.body(memoryview(data)[cut:])
            model += data
        elif name == "take":
            sent.append(b"".join(buf.take()))
            assert sent[-1] == model
            model, commands = b"", 0
        else:
            getattr(buf, name)(*(("a@b.c",) if name == "rcpt" else ()))
            model += b"NOOP\r\n" if name == "noop" else b"RCPT TO:<a@b.c>\r\n"
            commands += 1
        pieces = buf.chunks()
        assert b"".join(pieces) == model == buf.getvalue()
        assert (len(buf), buf.commands) == (len(model), commands)
        assert all(p for p in pieces)  # no empty pieces
        for first, second in itertools.pairwise(pieces):  # no two copied runs side by side
            assert not (isinstance(first, bytes) and isinstance(second, bytes))
        for piece in pieces:
            if isinstance(piece, memoryview):
                assert len(piece) >= threshold
                assert piece.readonly


@differential
@settings(max_examples=200)
@given(ops=operations, threshold=st.integers(0, 32))
def test_the_twins_chunk_alike(ops: list[tuple[str, bytes]], threshold: int) -> None:
    results = []
    for mod in both("_writer"):
        buf = mod.CommandBuffer(copy_threshold=threshold)
        log = []
        for name, data in ops:
            if name == "body":
                buf.body(data)
            elif name == "take":
                log.append([(type(p), bytes(p)) for p in buf.take()])
            else:
                getattr(buf, name)(*(("a@b.c",) if name == "rcpt" else ()))
        log.append([(type(p), bytes(p)) for p in buf.chunks()])
        results.append(log)
    assert results[0] == results[1]
