"""Real SMTP servers (aiosmtpd) and TLS certificates (trustme) for smtpx's tests.

Test-only; it imports nothing from smtpx, so it works while smtpx itself is unfinished.

Certificates
    :func:`certificates` makes, once per process, a trustme CA and certificates signed
    by it for ``localhost``, ``127.0.0.1`` and ``::1`` (``server``) and for another name
    (``wrong_host``), plus one for the right names signed by a CA nobody trusts
    (``unknown_ca``). :class:`Certificates` builds the server-side and the verifying
    client-side ``ssl.SSLContext`` and gives the CA as PEM bytes or a file.

Servers
    :class:`SmtpServer` runs aiosmtpd on 127.0.0.1 (or ``::1``) at a free port, on an
    event loop in its own thread: plain, STARTTLS (optionally required) or implicit TLS;
    AUTH PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 against a fixed user table (:data:`USERS`);
    SIZE, 8BITMIME, SMTPUTF8 and PIPELINING; recipients refused with a chosen reply and
    DATA answered with a chosen reply. It records every message it receives
    (:class:`ReceivedMessage`). Use it as a context manager, or through the fixtures.

Fixtures
    ``tls_certs`` and ``tls_ca_file`` (session-scoped), ``smtp_server_factory`` (call it
    with :class:`SmtpServer`'s options; every server it starts is stopped at teardown) and
    ``smtp_server`` (a plain server). ``conftest.py`` imports them, which makes them
    available to every test module; a module that must not rely on that binds them by
    assignment (an *imported* fixture that a test's parameter shadows trips ruff's F811)::

        import servers

        smtp_server_factory = servers.smtp_server_factory
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import hmac
import ipaddress
import json
import re
import secrets
import ssl
import threading
from base64 import b64decode
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

import pytest
import trustme
from aiosmtpd.controller import UnthreadedController
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

#: The accounts every AUTH mechanism checks against: user name -> password. XOAUTH2
#: takes the password as the bearer token. Bob's password is not ASCII.
USERS: Mapping[str, str] = {"alice": "wonderland", "bob": "p\u00e4ssw\u00f6rd \u2603"}
#: The AUTH mechanisms the server can offer.
MECHANISMS: tuple[str, ...] = ("CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2")

#: Bound on the server thread's start and stop.
_THREAD_TIMEOUT = 10.0
#: A reply a hook may answer with: a code, then text, on one line.
_REPLY = re.compile(r"[2-5][0-9][0-9]( [^\r\n]*)?")


# ---------------------------------------------------------------- certificates
@dataclass(frozen=True)
class Certificates:
    """A test CA and the server certificates the tests need."""

    #: The CA that the client contexts trust.
    ca: trustme.CA
    #: For ``localhost``, ``127.0.0.1`` and ``::1``, signed by :attr:`ca`.
    server: trustme.LeafCert
    #: For ``wrong-host.test`` only, signed by :attr:`ca` (host name mismatch).
    wrong_host: trustme.LeafCert
    #: For ``localhost``, ``127.0.0.1`` and ``::1``, signed by a CA nobody trusts.
    unknown_ca: trustme.LeafCert

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM-encoded."""
        return self.ca.cert_pem.bytes()

    def write_ca(self, directory: Path) -> Path:
        """Write the CA certificate to ``directory/ca.pem`` and return its path."""
        path = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the CA, verifying certificates and host names."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    def server_context(self, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """A server context presenting ``leaf`` (default: :attr:`server`)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or self.server).configure_cert(context)
        return context


@functools.cache
def certificates() -> Certificates:
    """The process-wide test certificates (made on first use; ECDSA keys, so fast)."""
    ca = trustme.CA()
    names = ("localhost", "127.0.0.1", "::1")
    return Certificates(
        ca=ca,
        server=ca.issue_cert(*names),
        wrong_host=ca.issue_cert("wrong-host.test"),
        unknown_ca=trustme.CA().issue_cert(*names),
    )


# ---------------------------------------------------------------- what the server records
@dataclass(frozen=True)
class ReceivedMessage:
    """One message whose DATA the server received, and how it answered."""

    mail_from: str
    #: MAIL FROM parameters, as aiosmtpd gives them (upper-cased): ``("BODY=8BITMIME",)``.
    mail_options: tuple[str, ...]
    #: The accepted recipients (refused ones are not here).
    rcpt_tos: tuple[str, ...]
    #: RCPT TO parameters of the accepted recipients (aiosmtpd refuses any with 555).
    rcpt_options: tuple[str, ...]
    #: The message as received, dot-stuffing removed, CRLF line ends kept.
    content: bytes
    #: The authenticated user name, or ``None`` without AUTH.
    login: str | None
    #: The session was encrypted (implicit TLS or STARTTLS).
    tls: bool
    #: The reply the server gave to the end of DATA.
    reply: str


class _Login(NamedTuple):
    """What a successful AUTH leaves in the session (aiosmtpd reads ``login``)."""

    login: str
    mechanism: str


# ---------------------------------------------------------------- aiosmtpd pieces
class _Handler:
    """The aiosmtpd handler: EHLO keywords, the refuse and DATA hooks, the records."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # this hook's duty, per aiosmtpd
        if not self._owner.auth:
            # aiosmtpd advertises "AUTH" even with every mechanism excluded.
            responses = [line for line in responses if not line.startswith("250-AUTH")]
        if self._owner.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self._owner.refuse.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._owner.data_reply
        assert envelope.mail_from is not None
        assert envelope.original_content is not None
        self._owner._record(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                mail_options=tuple(envelope.mail_options),
                rcpt_tos=tuple(envelope.rcpt_tos),
                rcpt_options=tuple(envelope.rcpt_options),
                content=envelope.original_content,
                login=getattr(session.auth_data, "login", None),
                tls=session.ssl is not None or self._owner.tls == "implicit",
                reply=reply,
            )
        )
        return reply


class _SMTP(SMTP):
    """aiosmtpd's SMTP with CRAM-MD5 and XOAUTH2 added (its ``auth_<NAME>`` convention,
    ``__`` standing for ``-``), and each connection registered with its server so that
    stopping can close it."""

    # The prompts real servers send (Postfix, Exchange, Gmail), not aiosmtpd's own
    # "User Name\0" and "Password\0".
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, handler: _Handler, *, owner: SmtpServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._owner._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._connections.discard(self)
        super().connection_lost(error)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        if not self._owner.auth:  # answered as Postfix does when AUTH is off
            await self.push("503 5.5.1 Error: authentication not enabled")
            return
        await super().smtp_AUTH(arg)

    async def auth_CRAM__MD5(self, _smtp: SMTP, args: list[str]) -> AuthResult:
        """RFC 2195: challenge ``<random@host>``, response ``user SP hex-hmac-md5``."""
        if len(args) != 1:
            await self.push("501 5.5.2 CRAM-MD5 takes no initial response")
            return AuthResult(success=False)
        challenge = f"<{secrets.token_hex(8)}@{self.hostname}>".encode("ascii")
        response = await self.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False)  # challenge_auth has answered
        user, _, digest = response.rpartition(b" ")
        account = self._owner._account(user)
        if account is None:
            return AuthResult(success=False, handled=False)
        login, password = account
        expected = hmac.new(password, challenge, "md5").hexdigest().encode("ascii")
        if not hmac.compare_digest(expected, digest):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=_Login(login, "CRAM-MD5"))

    async def auth_XOAUTH2(self, _smtp: SMTP, args: list[str]) -> AuthResult:
        """Google's XOAUTH2: ``user=U^Aauth=Bearer T^A^A`` (base64), as the initial
        response or after an empty challenge. A refused token gets Google's answer: a
        334 with a JSON error, to which the client sends an empty line, then 535."""
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False)  # challenge_auth has answered
        else:
            try:
                blob = b64decode(args[1], validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False)
        fields: dict[bytes, bytes] = {}
        for item in blob.removesuffix(b"\x01\x01").split(b"\x01"):
            key, _, value = item.partition(b"=")
            fields[key] = value
        if not blob.endswith(b"\x01\x01") or set(fields) != {b"user", b"auth"}:
            await self.push("501 5.5.2 Malformed XOAUTH2 response")
            return AuthResult(success=False)
        account = self._owner._account(fields[b"user"])
        if account is not None and hmac.compare_digest(fields[b"auth"], b"Bearer " + account[1]):
            return AuthResult(success=True, auth_data=_Login(account[0], "XOAUTH2"))
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        if await self.challenge_auth(json.dumps(error)) is MISSING:
            return AuthResult(success=False)
        return AuthResult(success=False, handled=False)


class _Controller(UnthreadedController):
    """aiosmtpd's controller for a loop we run ourselves, making :class:`_SMTP`."""

    def __init__(self, owner: SmtpServer, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(owner._handler, hostname=owner.host, port=0, loop=loop, **kwargs)
        self._owner = owner

    def factory(self) -> _SMTP:
        # The loop is passed explicitly: aiosmtpd would otherwise look it up under
        # warnings.catch_warnings(), which is not thread-safe.
        return _SMTP(self.handler, owner=self._owner, loop=self.loop, **self.SMTP_kwargs)


# ---------------------------------------------------------------- the server
class SmtpServer:
    """An aiosmtpd server on loopback at a free port, run on its own thread.

    ``tls``: ``"none"``; ``"starttls"`` (offered; ``require_starttls=True`` refuses
    other commands before it with 530); ``"implicit"`` (TLS from the first byte).
    ``tls_context`` defaults to one presenting :attr:`Certificates.server`.
    ``auth=True`` offers ``mechanisms`` (default: all of :data:`MECHANISMS`) checked
    against ``users``; with ``auth_require_tls`` (the default) only over TLS.
    ``data_size_limit`` is advertised as SIZE and enforced (``None``: no SIZE);
    ``smtputf8`` advertises SMTPUTF8; ``pipelining`` advertises PIPELINING (aiosmtpd
    reads pipelined commands fine). ``refuse`` maps a recipient address to the reply
    that refuses it (``{"bad@x.test": "550 5.1.1 no such user"}``); ``data_reply``
    answers every end of DATA.

    What aiosmtpd 1.4 cannot do (use ``smtpx.testing.scripted`` for these): BDAT
    (CHUNKING); RCPT TO parameters (DSN's NOTIFY, ORCPT: refused with 555) and MAIL FROM
    parameters other than BODY, SIZE and SMTPUTF8 (RET, ENVID: 555); DATA lines over
    1000 octets are refused with 500.
    """

    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "implicit"] = "none",
        require_starttls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        auth: bool = False,
        mechanisms: Sequence[str] = MECHANISMS,
        users: Mapping[str, str] = USERS,
        auth_require_tls: bool = True,
        data_size_limit: int | None = 33_554_432,
        smtputf8: bool = False,
        pipelining: bool = True,
        refuse: Mapping[str, str] | None = None,
        data_reply: str = "250 2.0.0 OK",
        host: str = "127.0.0.1",
        hostname: str = "smtp.test",
    ) -> None:
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(f'tls must be "none", "starttls" or "implicit", not {tls!r}')
        if require_starttls and tls != "starttls":
            raise ValueError('require_starttls needs tls="starttls"')
        if tls_context is not None and tls == "none":
            raise ValueError('a tls_context needs tls="starttls" or tls="implicit"')
        unknown = set(mechanisms) - set(MECHANISMS)
        if unknown:
            raise ValueError(f"unknown AUTH mechanisms {sorted(unknown)}; known: {MECHANISMS}")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"host must be a loopback address (127.0.0.1 or ::1), not {host!r}")
        self.refuse: Mapping[str, str] = dict(refuse or {})
        for reply in (*self.refuse.values(), data_reply):
            if not _REPLY.fullmatch(reply):
                raise ValueError(f"not a one-line SMTP reply: {reply!r}")
        self.tls = tls
        self.require_starttls = require_starttls
        self.tls_context = tls_context
        if tls != "none" and tls_context is None:
            self.tls_context = certificates().server_context()
        self.auth = auth
        self.mechanisms = tuple(mechanisms) if auth else ()
        self.users = dict(users)
        self.auth_require_tls = auth_require_tls
        self.data_size_limit = data_size_limit
        self.smtputf8 = smtputf8
        self.pipelining = pipelining
        self.data_reply = data_reply
        self.host = host
        self.hostname = hostname
        self._handler = _Handler(self)
        self._connections: set[_SMTP] = set()  # only touched on the server's loop
        self._messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- what happened
    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message received so far, in order."""
        with self._lock:
            return list(self._messages)

    def _record(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def _account(self, user: bytes) -> tuple[str, bytes] | None:
        """The user name and password of a known user, else ``None``."""
        try:
            login = user.decode("utf-8")
        except UnicodeDecodeError:
            return None
        password = self.users.get(login)
        return None if password is None else (login, password.encode("utf-8"))

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's authenticator, for its built-in PLAIN and LOGIN."""
        assert isinstance(data, LoginPassword)
        account = self._account(data.login)
        if account is None or not hmac.compare_digest(account[1], data.password):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=_Login(account[0], mechanism))

    # -- life cycle
    def start(self) -> SmtpServer:
        """Start listening and serving; returns the server once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        loop = asyncio.new_event_loop()
        controller = _Controller(
            self,
            loop,
            ssl_context=self.tls_context if self.tls == "implicit" else None,
            server_hostname=self.hostname,
            data_size_limit=self.data_size_limit,
            enable_SMTPUTF8=self.smtputf8,
            tls_context=self.tls_context if self.tls == "starttls" else None,
            require_starttls=self.require_starttls,
            # aiosmtpd 1.4 only counts STARTTLS as encryption; on implicit TLS every
            # connection is encrypted, so the requirement is met by construction.
            auth_require_tls=self.auth_require_tls and self.tls != "implicit",
            auth_exclude_mechanism=[m for m in MECHANISMS if m not in self.mechanisms],
            authenticator=self._authenticate,
        )
        started = threading.Event()
        failure: list[BaseException] = []
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(controller, started, failure), name="aiosmtpd", daemon=False
        )
        self._thread.start()
        if not started.wait(_THREAD_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the SMTP server did not start within {_THREAD_TIMEOUT:g}s")
        if failure:
            self._thread.join(_THREAD_TIMEOUT)
            raise RuntimeError("the SMTP server could not start") from failure[0]
        return self

    def _run(
        self, controller: _Controller, started: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = controller.loop
        try:
            try:
                controller.begin()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd
                assert isinstance(controller.server, asyncio.Server)
                self._port = controller.server.sockets[0].getsockname()[1]
            except BaseException as exc:  # start() raises it in the test thread
                failure.append(exc)
                return
            finally:
                started.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown(controller))
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    async def _shutdown(self, controller: _Controller) -> None:
        """Stop listening, abort every connection, and let every task end."""
        assert controller.server is not None
        controller.server.close()
        for smtp in list(self._connections):
            if isinstance(smtp.transport, asyncio.Transport):
                smtp.transport.abort()
        await controller.finalize()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Stop serving: close every connection and the listener, and join the thread.
        Safe to call more than once."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_THREAD_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the SMTP server did not stop within {_THREAD_TIMEOUT:g}s")

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tls_certs() -> Certificates:
    """The test CA and server certificates."""
    return certificates()


@pytest.fixture(scope="session")
def tls_ca_file(tmp_path_factory: pytest.TempPathFactory, tls_certs: Certificates) -> Path:
    """The test CA certificate as a PEM file."""
    return tls_certs.write_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpServer]]:
    """Start an :class:`SmtpServer` with the given options; all are stopped at teardown."""
    with ExitStack() as stack:

        def start(**options: Any) -> SmtpServer:
            return stack.enter_context(SmtpServer(**options))

        yield start


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain SMTP server (no TLS, no AUTH)."""
    return smtp_server_factory()
