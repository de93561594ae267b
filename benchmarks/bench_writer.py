"""The command writer: a pipelined group queued into one buffer and taken for sending.

Groups (one round builds one group and takes it, ready for one system call):

``mail-rcpt-bdat group``
    ``MAIL FROM:<...> SIZE=1024`` + 3 × ``RCPT TO:<...>`` + ``BDAT 1024 LAST`` + a 1 KiB
    body: one message on a CHUNKING connection.
``rcpt x100``
    ``MAIL FROM:<...>`` + 100 × ``RCPT TO:<...>``: a newsletter's envelope.

Rows, besides the two twins (one ``CommandBuffer`` reused across rounds, as on a
connection; each round ends with ``take()``):

``fstring``
    The straightforward Python way: f-strings, ``str.encode`` and ``b"".join``, with the
    check a careful library makes -- a regex search for CR, LF or NUL in every argument
    (smtplib checks only CR and LF). It checks no address syntax, length, parameter or
    other control character, where the twins check all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import TWINS, twin

SENDER = "newsletter-bounces@example.com"
BODY = bytes(range(33, 127)) * 10 + b"\r\n" * 42  # 1 KiB, as the DATA encoder leaves it
UNSAFE = re.compile(r"[\r\n\x00]")


def checked(argument: str) -> str:
    if UNSAFE.search(argument):
        raise ValueError("CR, LF or NUL in an SMTP command argument")
    return argument


def fstring_group(recipients: list[str], body: bytes) -> list[bytes]:
    lines = [f"MAIL FROM:<{checked(SENDER)}> SIZE={len(body)}\r\n".encode()]
    lines += [f"RCPT TO:<{checked(r)}>\r\n".encode() for r in recipients]
    lines.append(f"BDAT {len(body)} LAST\r\n".encode())
    lines.append(body)
    return [b"".join(lines)]


def fstring_envelope(recipients: list[str]) -> list[bytes]:
    lines = [f"MAIL FROM:<{checked(SENDER)}>\r\n".encode()]
    lines += [f"RCPT TO:<{checked(r)}>\r\n".encode() for r in recipients]
    return [b"".join(lines)]


def twin_group(impl: str) -> Callable[[list[str], bytes], list[Any]]:
    buf = twin("_writer", impl).CommandBuffer()

    def group(recipients: list[str], body: bytes) -> list[Any]:
        buf.mail(SENDER, size=len(body))
        for recipient in recipients:
            buf.rcpt(recipient)
        buf.bdat(len(body), last=True)
        buf.body(body)
        pieces: list[Any] = buf.take()
        return pieces

    return group


def twin_envelope(impl: str) -> Callable[[list[str]], list[Any]]:
    buf = twin("_writer", impl).CommandBuffer()

    def envelope(recipients: list[str]) -> list[Any]:
        buf.mail(SENDER)
        for recipient in recipients:
            buf.rcpt(recipient)
        pieces: list[Any] = buf.take()
        return pieces

    return envelope


def recipients(count: int) -> list[str]:
    return [f"subscriber.{i:05d}@mail{i % 7}.example.org" for i in range(count)]


@pytest.mark.parametrize("impl", [*TWINS, "fstring"])
def test_mail_rcpt_bdat_group(benchmark: BenchmarkFixture, impl: str) -> None:
    args = (recipients(3), BODY)
    run = fstring_group if impl == "fstring" else twin_group(impl)
    assert run(*args) == fstring_group(*args)
    benchmark.group = "mail-rcpt-bdat group"
    benchmark.extra_info["work"] = 1
    benchmark.extra_info["unit"] = "groups"
    benchmark(run, *args)


@pytest.mark.parametrize("impl", [*TWINS, "fstring"])
def test_rcpt_x100(benchmark: BenchmarkFixture, impl: str) -> None:
    args = (recipients(100),)
    run = fstring_envelope if impl == "fstring" else twin_envelope(impl)
    assert run(*args) == fstring_envelope(*args)
    benchmark.group = "rcpt x100"
    benchmark.extra_info["work"] = 1
    benchmark.extra_info["unit"] = "groups"
    benchmark(run, *args)
