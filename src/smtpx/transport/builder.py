"""The transport builders, shared by the sync and the asyncio transport.

A builder is immutable: each method returns a new builder, so a half-configured builder
can be shared and specialised (``base.port(2525)`` leaves ``base`` as it was).
``build()`` makes the transport the builder was made for.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from smtpx.config import (
    Credentials,
    Mechanism,
    PoolConfig,
    Timeouts,
    Tls,
    TlsMode,
    TlsParameters,
    default_hello_name,
    parse_url,
    validate_hello_name,
    validate_host,
)
from smtpx.errors import InvalidInputError
from smtpx.protocol.session import SUPPORTED_MECHANISMS, SessionConfig, TlsPolicy

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_WINDOW", "MAX_WINDOW", "TransportBuilder", "TransportSettings", "window_depth"]

T = TypeVar("T")


SUBMISSION_PORT = 587
SMTPS_PORT = 465
SMTP_PORT = 25
#: Transactions in flight per connection in ``send_many`` unless configured: enough to
#: keep a connection busy, few enough that a connection failing leaves few messages
#: with an unknown outcome.
DEFAULT_WINDOW = 8
MAX_WINDOW = 64


def window_depth(depth: object) -> int:
    """A pipelining window (1 to :data:`MAX_WINDOW` transactions in flight)."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"the pipelining window must be an int, not {type(depth).__name__}")
    if not 1 <= depth <= MAX_WINDOW:
        raise InvalidInputError(f"the pipelining window {depth} is out of range (1-{MAX_WINDOW})")
    return depth


_DEFAULT_TIMEOUTS = Timeouts()
_NO_TLS = Tls.none()
_DEFAULT_POOL = PoolConfig()


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Everything a transport needs to open and run its connections."""

    host: str
    port: int = SMTP_PORT
    hello_name: str | None = None
    credentials: Credentials | None = None
    mechanisms: tuple[Mechanism, ...] | None = None
    timeouts: Timeouts = _DEFAULT_TIMEOUTS
    tls: Tls = _NO_TLS
    pool: PoolConfig | None = _DEFAULT_POOL
    allow_insecure_auth: bool = False
    pipelining: bool = True
    window: int = DEFAULT_WINDOW

    def session_config(self) -> SessionConfig:
        """The engine's view of these settings."""
        credentials = self.credentials
        mechanisms: tuple[str, ...] = ()
        if credentials is not None:
            chosen = self.mechanisms or credentials.default_mechanisms
            mechanisms = tuple(m.wire for m in chosen if m.wire in SUPPORTED_MECHANISMS)
        policy = {
            TlsMode.NONE: TlsPolicy.NONE,
            TlsMode.OPPORTUNISTIC: TlsPolicy.OPPORTUNISTIC,
            TlsMode.REQUIRED: TlsPolicy.REQUIRED,
            TlsMode.WRAPPER: TlsPolicy.NONE,  # TLS from the first byte: the driver's job
        }[self.tls.mode]
        return SessionConfig(
            hello_name=self.hello_name or default_hello_name(),
            starttls=policy,
            credentials=(
                None if credentials is None else (credentials.username, credentials.resolve_secret)
            ),
            mechanisms=mechanisms,
            allow_insecure_auth=self.allow_insecure_auth,
            pipelining=self.pipelining,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        params = self.tls.parameters
        return params.create_context() if params is not None else None

    def server_hostname(self) -> str | None:
        params = self.tls.parameters
        return params.server_hostname if params is not None else None


class TransportBuilder(Generic[T]):
    """Configures a transport; every method returns a new builder."""

    __slots__ = ("_factory", "_settings")

    def __init__(self, factory: type[T], settings: TransportSettings) -> None:
        self._factory = factory
        self._settings = settings

    def _with(self, **changes: Any) -> TransportBuilder[T]:
        return TransportBuilder(self._factory, dataclasses.replace(self._settings, **changes))

    @property
    def settings(self) -> TransportSettings:
        return self._settings

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"<{self._factory.__name__} builder {s.host}:{s.port} tls={s.tls.mode.value} "
            f"credentials={s.credentials!r} pool={s.pool!r}>"
        )

    def port(self, port: int) -> TransportBuilder[T]:
        """The TCP port (1-65535)."""
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, not {type(port).__name__}")
        if not 0 < port < 65536:
            raise InvalidInputError(f"port {port} is out of range (1-65535)")
        return self._with(port=port)

    def hello_name(self, name: str) -> TransportBuilder[T]:
        """The name sent with EHLO/HELO: a domain name or an address literal."""
        return self._with(hello_name=validate_hello_name(name))

    def credentials(self, credentials: Credentials) -> TransportBuilder[T]:
        """Authenticate with these credentials (AUTH) after connecting."""
        if not isinstance(credentials, Credentials):
            raise TypeError(
                f"credentials must be smtpx.Credentials, not {type(credentials).__name__}"
            )
        return self._with(credentials=credentials)

    def authentication(self, mechanisms: Iterable[Mechanism]) -> TransportBuilder[T]:
        """The SASL mechanisms to use, in order of preference; the first one the server
        offers is used (and the next only when it answers 504, 534 or 538)."""
        chosen = tuple(mechanisms)
        if not chosen:
            raise InvalidInputError("authentication() needs at least one mechanism")
        for m in chosen:
            if not isinstance(m, Mechanism):
                raise TypeError(f"mechanisms must be smtpx.Mechanism, not {type(m).__name__}")
            if m.wire not in SUPPORTED_MECHANISMS:
                raise InvalidInputError(f"the {m.wire} mechanism is not supported yet")
        return self._with(mechanisms=chosen)

    def timeout(self, timeout: float | Timeouts) -> TransportBuilder[T]:
        """A number sets every phase's deadline; a :class:`Timeouts` sets each one."""
        if isinstance(timeout, Timeouts):
            return self._with(timeouts=timeout)
        return self._with(timeouts=Timeouts.uniform(timeout))

    def tls(self, tls: Tls) -> TransportBuilder[T]:
        """The TLS policy: ``Tls.none()``, ``.opportunistic(p)``, ``.required(p)`` or
        ``.wrapper(p)``."""
        if not isinstance(tls, Tls):
            raise TypeError(f"tls must be smtpx.Tls, not {type(tls).__name__}")
        return self._with(tls=tls)

    def pool(self, pool: PoolConfig | None) -> TransportBuilder[T]:
        """The connection pool's limits, or ``None`` for one connection per message."""
        if pool is not None and not isinstance(pool, PoolConfig):
            raise TypeError(f"pool must be smtpx.PoolConfig or None, not {type(pool).__name__}")
        return self._with(pool=pool)

    def allow_insecure_auth(self, allow: bool) -> TransportBuilder[T]:
        """Allow PLAIN, LOGIN and XOAUTH2 over an unencrypted connection. The only way to
        send credentials in clear text; off by default."""
        return self._with(allow_insecure_auth=bool(allow))

    def pipelining(self, enabled: bool) -> TransportBuilder[T]:
        """``False``: one command at a time, no PIPELINING and no CHUNKING."""
        return self._with(pipelining=bool(enabled))

    def pipeline_window(self, depth: int) -> TransportBuilder[T]:
        """How many transactions ``send_many`` keeps in flight on one connection (1-64;
        8 by default) when the server offers PIPELINING: the next messages' commands (and,
        with CHUNKING, their bodies) leave before the earlier ones are answered. Should
        the connection fail, every message in flight whose data was sent has an unknown
        outcome (:class:`~smtpx.DeliveryUnknownError`), so a small window is safer. 1 sends
        one message at a time."""
        return self._with(window=window_depth(depth))

    def build(self) -> T:
        """The transport."""
        return self._factory(self._settings)  # type: ignore[call-arg]  # T takes settings


class BuilderConstructors:
    """The class-level constructors of a transport (lettre's names). A transport class
    takes a :class:`TransportSettings` as its only constructor argument."""

    def __init__(self, settings: TransportSettings) -> None:
        raise NotImplementedError  # pragma: no cover - the transports define it

    @classmethod
    def relay(cls, host: str) -> TransportBuilder[Self]:
        """A relay with implicit TLS on port 465, certificate verified."""
        return TransportBuilder(
            cls, TransportSettings(host, SMTPS_PORT, tls=Tls.wrapper(TlsParameters(host)))
        )

    @classmethod
    def starttls_relay(cls, host: str) -> TransportBuilder[Self]:
        """A relay on port 587 with STARTTLS required, certificate verified."""
        return TransportBuilder(
            cls, TransportSettings(host, SUBMISSION_PORT, tls=Tls.required(TlsParameters(host)))
        )

    @classmethod
    def builder_dangerous(cls, host: str) -> TransportBuilder[Self]:
        """Port 25 with no TLS at all: explicitly insecure (local relays, tests)."""
        return TransportBuilder(cls, TransportSettings(validate_host(host), SMTP_PORT))

    @classmethod
    def unencrypted_localhost(cls) -> Self:
        """A built transport for the local MTA at 127.0.0.1:25, no TLS."""
        return TransportBuilder(cls, TransportSettings("127.0.0.1", SMTP_PORT)).build()

    @classmethod
    def from_url(cls, url: str) -> TransportBuilder[Self]:
        """A builder from a URL: ``smtps://user:pass@host:465``,
        ``smtp://host:587?tls=required``, ``smtp://host/ehlo.name``."""
        parsed = parse_url(url)
        return TransportBuilder(
            cls,
            TransportSettings(
                parsed.host,
                parsed.port,
                hello_name=parsed.hello_name,
                credentials=parsed.credentials,
                tls=parsed.tls(),
            ),
        )
