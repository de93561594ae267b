"""One scenario, both drivers: a blocking facade over SmtpTransport and
AsyncSmtpTransport, so each transport test runs through the sync and the asyncio driver.

The asyncio transport runs on one event loop per test (asyncio or uvloop, as chosen with
``--event-loop``), kept open across calls so pooled connections survive between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import smtpx


class Client:
    """The calls the scenarios make, whatever the driver."""

    kind: str

    def send_raw(self, envelope: smtpx.Envelope, data: Any) -> smtpx.SendResult:
        raise NotImplementedError

    def send(self, message: Any) -> smtpx.SendResult:
        raise NotImplementedError

    def send_many(self, messages: Iterable[Any]) -> list[smtpx.SendResult | smtpx.SmtpError]:
        raise NotImplementedError

    def test_connection(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncClient(Client):
    kind = "sync"

    def __init__(self, settings: smtpx.TransportSettings) -> None:
        self.transport = smtpx.SmtpTransport(settings)

    def __repr__(self) -> str:
        return repr(self.transport)

    def send_raw(self, envelope: smtpx.Envelope, data: Any) -> smtpx.SendResult:
        return self.transport.send_raw(envelope, data)

    def send(self, message: Any) -> smtpx.SendResult:
        return self.transport.send(message)

    def send_many(self, messages: Iterable[Any]) -> list[smtpx.SendResult | smtpx.SmtpError]:
        return list(self.transport.send_many(messages))

    def test_connection(self) -> bool:
        return self.transport.test_connection()

    def close(self) -> None:
        self.transport.close()


class AsyncClient(Client):
    kind = "async"

    def __init__(self, settings: smtpx.TransportSettings, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport = smtpx.AsyncSmtpTransport(settings)

    def __repr__(self) -> str:
        return repr(self.transport)

    def send_raw(self, envelope: smtpx.Envelope, data: Any) -> smtpx.SendResult:
        return self.loop.run_until_complete(self.transport.send_raw(envelope, data))

    def send(self, message: Any) -> smtpx.SendResult:
        return self.loop.run_until_complete(self.transport.send(message))

    def send_many(self, messages: Iterable[Any]) -> list[smtpx.SendResult | smtpx.SmtpError]:
        async def collect() -> list[smtpx.SendResult | smtpx.SmtpError]:
            return [outcome async for outcome in self.transport.send_many(messages)]

        return self.loop.run_until_complete(collect())

    def test_connection(self) -> bool:
        return self.loop.run_until_complete(self.transport.test_connection())

    def close(self) -> None:
        self.loop.run_until_complete(self.transport.aclose())
