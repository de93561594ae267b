"""Shared fixtures.

Hot-path tests take a twin fixture (``reply_mod``, ``data_mod``, ``base64_mod``,
``sasl_mod``, ``writer_mod``) parametrised over the pure-Python and the compiled twin, so
every such test runs against both. The compiled twin is imported directly: when it is
missing the test errors, which fails the run, unless pure mode was asked for with
``SMTPX_NO_EXTENSIONS=1`` (then only the pure twin is collected).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from types import ModuleType
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

import smtpx

from drivers import AsyncClient, Client, SyncClient
from servers import smtp_server, smtp_server_factory, tls_ca_file, tls_certs  # noqa: F401 - fixtures
from twins import IMPLEMENTATIONS, twin

# Twin fixtures are function-scoped but hold no state: sharing them across examples is safe.
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("default", deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("ci", deadline=None, max_examples=200, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

T = TypeVar("T")


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def reply_mod(implementation: str) -> ModuleType:
    return twin("_reply", implementation)


@pytest.fixture
def data_mod(implementation: str) -> ModuleType:
    return twin("_data", implementation)


@pytest.fixture
def base64_mod(implementation: str) -> ModuleType:
    return twin("_base64", implementation)


@pytest.fixture
def sasl_mod(implementation: str) -> ModuleType:
    return twin("_sasl", implementation)


@pytest.fixture
def writer_mod(implementation: str) -> ModuleType:
    return twin("_writer", implementation)


@pytest.fixture
def qp_mod(implementation: str) -> ModuleType:
    return twin("_qp", implementation)


# ---------------------------------------------------------------- event loops
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop that async tests run on (default: asyncio)",
    )


@pytest.fixture(scope="session")
def event_loop_name(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--event-loop"))


@pytest.fixture
def run_async(event_loop_name: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on the loop chosen with ``--event-loop``."""
    if event_loop_name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:  # a requested loop that is missing fails the run
            raise pytest.UsageError(f"--event-loop=uvloop but uvloop is missing: {exc}") from exc

        def run(coro: Coroutine[Any, Any, T]) -> T:
            return uvloop.run(coro)

        return run
    return asyncio.run


@pytest.fixture
def event_loop_instance(event_loop_name: str) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop of the chosen kind, closed after the test."""
    if event_loop_name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(params=["sync", "async"])
def connect(
    request: pytest.FixtureRequest, event_loop_instance: asyncio.AbstractEventLoop
) -> Iterator[Callable[[smtpx.TransportBuilder[Any]], Client]]:
    """Build a client from a transport builder, for the sync or the asyncio driver."""
    made: list[Client] = []

    def make(builder: smtpx.TransportBuilder[Any]) -> Client:
        client: Client
        if request.param == "sync":
            client = SyncClient(builder.settings)
        else:
            client = AsyncClient(builder.settings, event_loop_instance)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
