"""The configuration objects: defaults, validation (exact messages), secrets kept out of
reprs and messages, TLS contexts in real handshakes, URL parsing and hello names."""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import socket
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from smtpx import config
from smtpx.config import (
    DEFAULT_MECHANISMS,
    MAX_SECONDS,
    TIMEOUT_PHASES,
    Credentials,
    Envelope,
    Mechanism,
    PoolConfig,
    Timeouts,
    Tls,
    TlsMode,
    TlsParameters,
    TransportUrl,
    default_hello_name,
    parse_url,
    validate_hello_name,
)
from smtpx.errors import InvalidInputError, SmtpTimeoutError

HOST = "smtp.example.test"


def refused(message: str) -> AbstractContextManager[pytest.ExceptionInfo[InvalidInputError]]:
    """Expect ``InvalidInputError`` with exactly ``message``."""
    return pytest.raises(InvalidInputError, match=f"^{re.escape(message)}$")


def type_error(message: str) -> AbstractContextManager[pytest.ExceptionInfo[TypeError]]:
    """Expect ``TypeError`` with exactly ``message``."""
    return pytest.raises(TypeError, match=f"^{re.escape(message)}$")


# ---------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    ("cls", "keywords"),
    [
        (
            TlsParameters,
            (
                "ca_file",
                "ca_data",
                "ssl_context",
                "client_cert",
                "client_key",
                "accept_invalid_certs",
                "accept_invalid_hostnames",
                "min_version",
            ),
        ),
        (Timeouts, TIMEOUT_PHASES),
        (
            PoolConfig,
            (
                "max_size",
                "min_idle",
                "idle_timeout",
                "max_lifetime",
                "max_messages",
                "acquire_timeout",
            ),
        ),
        (Envelope, ("mail_params", "rcpt_params")),
    ],
)
def test_keyword_names_are_the_contract(cls: type, keywords: tuple[str, ...]) -> None:
    params = inspect.signature(cls).parameters
    for name in keywords:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_timeout_phases_are_the_ones_smtp_timeout_error_names() -> None:
    assert TIMEOUT_PHASES == (
        "connect",
        "greeting",
        "command",
        "data",
        "data_block",
        "data_end",
        "quit",
    )
    documented = SmtpTimeoutError.__doc__ or ""
    for phase in TIMEOUT_PHASES:
        assert f'``"{phase}"``' in documented


def test_every_public_name_is_defined() -> None:
    assert sorted(config.__all__) == sorted(set(config.__all__))
    for name in config.__all__:
        assert hasattr(config, name), name


@pytest.mark.parametrize(
    "obj",
    [
        Timeouts(),
        PoolConfig(),
        TlsParameters(HOST),
        Tls.none(),
        Credentials("user", "secret"),
        Envelope("a@example.com", ["b@example.com"]),
        TransportUrl("h", 25, TlsMode.NONE),
    ],
    ids=lambda obj: type(obj).__name__,
)
def test_frozen_and_slotted(obj: object) -> None:
    assert not hasattr(obj, "__dict__")
    field = dataclasses.fields(obj)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)


# ---------------------------------------------------------------------- Timeouts


def test_timeouts_defaults() -> None:
    timeouts = Timeouts()
    assert dataclasses.astuple(timeouts) == (30.0, 300.0, 300.0, 120.0, 180.0, 600.0, 30.0)
    assert all(type(getattr(timeouts, phase)) is float for phase in TIMEOUT_PHASES)


def test_timeouts_ints_become_floats() -> None:
    timeouts = Timeouts(connect=5, quit=MAX_SECONDS)
    assert timeouts.connect == 5.0
    assert type(timeouts.connect) is float
    assert timeouts.quit == 86_400.0


def test_timeouts_uniform_sets_every_phase() -> None:
    timeouts = Timeouts.uniform(60)
    assert [timeouts.for_phase(phase) for phase in TIMEOUT_PHASES] == [60.0] * 7
    assert timeouts == Timeouts(**dict.fromkeys(TIMEOUT_PHASES, 60.0))


def test_for_phase_reads_each_phase() -> None:
    timeouts = Timeouts(
        connect=1, greeting=2, command=3, data=4, data_block=5, data_end=6, quit=7.5
    )
    assert [timeouts.for_phase(phase) for phase in TIMEOUT_PHASES] == [1, 2, 3, 4, 5, 6, 7.5]


def test_for_phase_refuses_an_unknown_phase() -> None:
    with refused(
        "Timeouts has no phase 'rcpt' "
        "(phases: connect, greeting, command, data, data_block, data_end, quit)"
    ):
        Timeouts().for_phase("rcpt")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, MAX_SECONDS + 0.5, 10**400]
)
def test_timeouts_refuse_bad_seconds(value: float) -> None:
    with refused(f"Timeouts data_end must be more than 0 and at most 86400 seconds, not {value!r}"):
        Timeouts(data_end=value)


@pytest.mark.parametrize(("value", "kind"), [(True, "bool"), ("30", "str"), (None, "NoneType")])
def test_timeouts_refuse_non_numbers(value: object, kind: str) -> None:
    with type_error(f"Timeouts connect must be a number of seconds, not {kind}"):
        Timeouts(connect=value)  # type: ignore[arg-type]


def test_timeouts_uniform_refuses_bad_seconds() -> None:
    with refused("Timeouts.uniform seconds must be more than 0 and at most 86400 seconds, not 0"):
        Timeouts.uniform(0)
    with type_error("Timeouts.uniform seconds must be a number of seconds, not bool"):
        Timeouts.uniform(False)


def test_timeouts_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Timeouts(30)  # type: ignore[call-arg]


# ---------------------------------------------------------------------- PoolConfig


def test_pool_config_defaults() -> None:
    pool = PoolConfig()
    assert (
        pool.max_size,
        pool.min_idle,
        pool.idle_timeout,
        pool.max_lifetime,
        pool.max_messages,
        pool.acquire_timeout,
    ) == (10, 0, 60.0, 300.0, 100, 30.0)
    assert type(pool.idle_timeout) is float


def test_pool_config_edges() -> None:
    pool = PoolConfig(max_size=1, min_idle=1, max_messages=1, idle_timeout=0.001)
    assert (pool.max_size, pool.min_idle, pool.max_messages) == (1, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 0}, "PoolConfig max_size must be at least 1, not 0"),
        ({"min_idle": -1}, "PoolConfig min_idle must be at least 0, not -1"),
        ({"max_size": 3, "min_idle": 4}, "PoolConfig min_idle (4) must not exceed max_size (3)"),
        ({"max_messages": 0}, "PoolConfig max_messages must be at least 1, not 0"),
        (
            {"idle_timeout": 0},
            "PoolConfig idle_timeout must be more than 0 and at most 86400 seconds, not 0",
        ),
        (
            {"max_lifetime": -5.0},
            "PoolConfig max_lifetime must be more than 0 and at most 86400 seconds, not -5.0",
        ),
        (
            {"acquire_timeout": math.nan},
            "PoolConfig acquire_timeout must be more than 0 and at most 86400 seconds, not nan",
        ),
    ],
)
def test_pool_config_refuses_bad_values(kwargs: dict[str, float], message: str) -> None:
    with refused(message):
        PoolConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": True}, "PoolConfig max_size must be an int, not bool"),
        ({"min_idle": 1.0}, "PoolConfig min_idle must be an int, not float"),
        ({"max_messages": "5"}, "PoolConfig max_messages must be an int, not str"),
        ({"idle_timeout": True}, "PoolConfig idle_timeout must be a number of seconds, not bool"),
    ],
)
def test_pool_config_refuses_bad_types(kwargs: dict[str, object], message: str) -> None:
    with type_error(message):
        PoolConfig(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- TlsParameters


def test_tls_parameters_defaults() -> None:
    params = TlsParameters(HOST)
    assert params.domain == params.server_hostname == HOST
    assert (params.ca_file, params.ca_data, params.ssl_context) == (None, None, None)
    assert (params.client_cert, params.client_key) == (None, None)
    assert (params.accept_invalid_certs, params.accept_invalid_hostnames) == (False, False)
    assert params.min_version is ssl.TLSVersion.TLSv1_2
    assert repr(params) == "TlsParameters('smtp.example.test')"


@pytest.mark.parametrize(
    "domain",
    [
        "smtp.example.com",
        "localhost",
        "mail_relay",
        "xn--bcher-kva.example",
        "127.0.0.1",
        "::1",
        "2001:db8::1",
        "a" * 63 + ".example",
    ],
)
def test_tls_parameters_accept_host_names_and_ip_addresses(domain: str) -> None:
    assert TlsParameters(domain).server_hostname == domain


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("", "TlsParameters domain is empty"),
        (
            "smtp example.com",
            "TlsParameters domain contains ' ' at index 4, which is not allowed in a domain name",
        ),
        (
            "smtp\r\n.example.com",
            "TlsParameters domain contains a control character (CR) at index 4",
        ),
        (
            "smtp.example.com\x00",
            "TlsParameters domain contains a control character (NUL) at index 16",
        ),
        (
            "bücher.example",
            "TlsParameters domain contains a non-ASCII character at index 1 "
            "(write an international name as A-labels, xn--...)",
        ),
        ("[::1]", "TlsParameters domain is in brackets (give an IP address without them)"),
        (
            "smtp.example.com.",
            "TlsParameters domain ends with '.' (write the name without the final dot)",
        ),
        ("a..b", "TlsParameters domain has an empty label at index 2"),
        ("-a.example", "TlsParameters domain has a label starting with '-' at index 0"),
        ("a-.example", "TlsParameters domain has a label ending with '-' at index 1"),
        (
            "a" * 64 + ".example",
            "TlsParameters domain has a label longer than 63 characters at index 0",
        ),
        ("a." * 127 + "com", "TlsParameters domain is too long (257 characters; the limit is 253)"),
        (
            "10.1.2",
            "TlsParameters domain ends with an all-digit label "
            "(neither a domain name nor an IPv4 address)",
        ),
        (
            "010.0.0.1",
            "TlsParameters domain ends with an all-digit label "
            "(neither a domain name nor an IPv4 address)",
        ),
        (
            "fe80::1%eth0",
            "TlsParameters domain contains ':' at index 4, which is not allowed in a domain name",
        ),
    ],
)
def test_tls_parameters_refuse_bad_domains(domain: str, message: str) -> None:
    with refused(message):
        TlsParameters(domain)


@pytest.mark.parametrize(
    "version",
    [
        ssl.TLSVersion.TLSv1_1,
        ssl.TLSVersion.TLSv1,
        ssl.TLSVersion.SSLv3,
        ssl.TLSVersion.MINIMUM_SUPPORTED,
        ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ],
)
def test_tls_parameters_refuse_old_min_versions(version: ssl.TLSVersion) -> None:
    with refused(f"TlsParameters min_version must be TLSv1_2 or TLSv1_3, not {version.name}"):
        TlsParameters(HOST, min_version=version)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ca_file": ""}, "TlsParameters ca_file is empty"),
        ({"client_cert": ""}, "TlsParameters client_cert is empty"),
        ({"ca_data": ""}, "TlsParameters ca_data is empty"),
        ({"ca_data": b""}, "TlsParameters ca_data is empty"),
        (
            {"ca_data": "-----BEGIN CERTIFICATE-----\né".encode()},
            "TlsParameters ca_data is PEM with non-ASCII bytes",
        ),
        ({"client_key": "key.pem"}, "TlsParameters client_key needs client_cert"),
        (
            {"accept_invalid_certs": True, "ca_file": "ca.pem"},
            "TlsParameters accept_invalid_certs skips verification; "
            "ca_file cannot be combined with it",
        ),
        (
            {"accept_invalid_certs": True, "ca_data": "pem"},
            "TlsParameters accept_invalid_certs skips verification; "
            "ca_data cannot be combined with it",
        ),
    ],
)
def test_tls_parameters_refuse_bad_combinations(kwargs: dict[str, object], message: str) -> None:
    with refused(message):
        TlsParameters(HOST, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "knob"),
    [
        ({"ca_file": "ca.pem"}, "ca_file"),
        ({"ca_data": "pem"}, "ca_data"),
        ({"client_cert": "cert.pem"}, "client_cert"),
        ({"accept_invalid_certs": True}, "accept_invalid_certs"),
        ({"accept_invalid_hostnames": True}, "accept_invalid_hostnames"),
        ({"min_version": ssl.TLSVersion.TLSv1_3}, "min_version"),
    ],
)
def test_tls_parameters_refuse_knobs_beside_an_ssl_context(
    kwargs: dict[str, object], knob: str
) -> None:
    context = ssl.create_default_context()
    with refused(f"TlsParameters ssl_context is used as it is; {knob} cannot be combined with it"):
        TlsParameters(HOST, ssl_context=context, **kwargs)  # type: ignore[arg-type]


def test_tls_parameters_refuse_a_server_context() -> None:
    with refused("TlsParameters ssl_context is a server context (use PROTOCOL_TLS_CLIENT)"):
        TlsParameters(HOST, ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ca_file": b"/ca.pem"}, "TlsParameters ca_file must be a str or os.PathLike, not bytes"),
        ({"ca_data": 5}, "TlsParameters ca_data must be a str or bytes, not int"),
        ({"ssl_context": "ctx"}, "TlsParameters ssl_context must be an ssl.SSLContext, not str"),
        (
            {"accept_invalid_certs": 1},
            "TlsParameters accept_invalid_certs must be a bool, not int",
        ),
        (
            {"accept_invalid_hostnames": "yes"},
            "TlsParameters accept_invalid_hostnames must be a bool, not str",
        ),
        ({"min_version": 771}, "TlsParameters min_version must be an ssl.TLSVersion, not int"),
    ],
)
def test_tls_parameters_refuse_bad_types(kwargs: dict[str, object], message: str) -> None:
    with type_error(message):
        TlsParameters(HOST, **kwargs)  # type: ignore[arg-type]


def test_tls_parameters_refuse_a_non_str_domain() -> None:
    with type_error("TlsParameters domain must be a str, not NoneType"):
        TlsParameters(None)  # type: ignore[arg-type]


def test_tls_parameters_repr_shows_what_differs_from_the_defaults() -> None:
    params = TlsParameters(
        "::1",
        ca_file="/etc/ca.pem",
        ca_data=b"\x30" * 40,
        client_cert="c.pem",
        client_key="k.pem",
        accept_invalid_hostnames=True,
        min_version=ssl.TLSVersion.TLSv1_3,
    )
    assert repr(params) == (
        "TlsParameters('::1', ca_file='/etc/ca.pem', client_cert='c.pem', client_key='k.pem', "
        "ca_data=<40 bytes>, accept_invalid_hostnames=True, min_version=TLSVersion.TLSv1_3)"
    )
    context = ssl.create_default_context()
    assert repr(TlsParameters(HOST, ssl_context=context)) == (
        "TlsParameters('smtp.example.test', ssl_context=<ssl.SSLContext>)"
    )
    assert repr(TlsParameters(HOST, accept_invalid_certs=True)) == (
        "TlsParameters('smtp.example.test', accept_invalid_certs=True)"
    )


def test_tls_parameters_equality_ignores_the_cached_context() -> None:
    one, two = TlsParameters(HOST), TlsParameters(HOST)
    one.create_context()
    assert one == two
    assert hash(one) == hash(two)
    assert one != TlsParameters(HOST, accept_invalid_hostnames=True)


# ---------------------------------------------------------------------- TLS contexts


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    other_ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path
    client_combined_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert(HOST, "127.0.0.1")
    client = ca.issue_cert("client.example.test")
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    (base / "client.crt").write_bytes(b"".join(pem.bytes() for pem in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(base / "client.key"))
    client.private_key_and_cert_chain_pem.write_to_path(str(base / "client.pem"))
    return Pki(
        ca,
        other_ca,
        server,
        client,
        base / "ca.pem",
        base / "client.crt",
        base / "client.key",
        base / "client.pem",
    )


def server_context(
    pki: Pki, *, require_client_cert: bool = False, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki.server.configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        pki.ca.configure_trust(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


def handshake(params: TlsParameters, server: ssl.SSLContext) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A real TLS handshake between a client made from ``params`` and ``server``, over
    memory BIOs; raises what either side raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = params.create_context().wrap_bio(
        c_in, c_out, server_hostname=params.server_hostname
    )
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, out, peer_in in (
            ("client", client_side, c_out, s_in),
            ("server", server_side, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return client_side, server_side
    raise AssertionError("the handshake did not finish")


def pem_text(pki: Pki) -> str:
    return pki.ca.cert_pem.bytes().decode()


def peer_names(side: ssl.SSLObject) -> tuple[object, ...]:
    """The subjectAltName entries of the certificate the peer presented."""
    certificate = side.getpeercert()
    assert certificate is not None
    names = certificate["subjectAltName"]
    assert isinstance(names, tuple)
    return names


@pytest.mark.parametrize("form", ["pem-str", "pem-bytes", "der-bytes", "file-str", "file-path"])
def test_a_custom_ca_verifies_the_server(pki: Pki, form: str) -> None:
    trust: dict[str, dict[str, object]] = {  # the keyword arguments that give the roots
        "pem-str": {"ca_data": pem_text(pki)},
        "pem-bytes": {"ca_data": pki.ca.cert_pem.bytes()},
        "der-bytes": {"ca_data": ssl.PEM_cert_to_DER_cert(pem_text(pki))},
        "file-str": {"ca_file": str(pki.ca_file)},
        "file-path": {"ca_file": pki.ca_file},
    }
    params = TlsParameters(HOST, **trust[form])  # type: ignore[arg-type]
    client, _ = handshake(params, server_context(pki))
    assert client.version() in ("TLSv1.2", "TLSv1.3")
    assert ("DNS", HOST) in peer_names(client)


def test_the_context_verifies_and_is_built_once() -> None:
    params = TlsParameters(HOST)
    context = params.create_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.protocol is ssl.PROTOCOL_TLS_CLIENT
    assert params.create_context() is context
    assert dataclasses.replace(params).create_context() is not context
    assert TlsParameters(
        HOST, min_version=ssl.TLSVersion.TLSv1_3
    ).create_context().minimum_version is (ssl.TLSVersion.TLSv1_3)


def test_an_ip_address_domain_is_verified(pki: Pki) -> None:
    params = TlsParameters("127.0.0.1", ca_data=pem_text(pki))
    client, _ = handshake(params, server_context(pki))
    assert ("IP Address", "127.0.0.1") in peer_names(client)
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        handshake(TlsParameters("127.0.0.2", ca_data=pem_text(pki)), server_context(pki))


def test_the_system_trust_store_refuses_an_unknown_ca(pki: Pki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(TlsParameters(HOST), server_context(pki))


def test_custom_roots_replace_the_system_ones(pki: Pki) -> None:
    other = pki.other_ca.cert_pem.bytes().decode()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(TlsParameters(HOST, ca_data=other), server_context(pki))
    assert TlsParameters(HOST, ca_data=other).create_context().cert_store_stats()["x509_ca"] == 1


def test_ca_file_and_ca_data_are_both_trusted(pki: Pki) -> None:
    params = TlsParameters(
        HOST, ca_file=pki.ca_file, ca_data=pki.other_ca.cert_pem.bytes().decode()
    )
    assert params.create_context().cert_store_stats()["x509_ca"] == 2
    handshake(params, server_context(pki))


def test_a_wrong_host_name_is_refused(pki: Pki) -> None:
    params = TlsParameters("other.example.test", ca_data=pem_text(pki))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(params, server_context(pki))


def test_accept_invalid_hostnames_skips_only_the_name_check(pki: Pki) -> None:
    params = TlsParameters(
        "other.example.test", ca_data=pem_text(pki), accept_invalid_hostnames=True
    )
    context = params.create_context()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, False)
    handshake(params, server_context(pki))
    unknown_ca = pki.other_ca.cert_pem.bytes().decode()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(
            TlsParameters("other.example.test", ca_data=unknown_ca, accept_invalid_hostnames=True),
            server_context(pki),
        )


def test_accept_invalid_certs_skips_verification(pki: Pki) -> None:
    params = TlsParameters("other.example.test", accept_invalid_certs=True)
    context = params.create_context()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    client, _ = handshake(params, server_context(pki))
    assert client.version() in ("TLSv1.2", "TLSv1.3")


def test_min_version_is_enforced(pki: Pki) -> None:
    params = TlsParameters(HOST, ca_data=pem_text(pki), min_version=ssl.TLSVersion.TLSv1_3)
    with pytest.raises(ssl.SSLError):
        handshake(params, server_context(pki, max_version=ssl.TLSVersion.TLSv1_2))
    client, _ = handshake(
        TlsParameters(HOST, ca_data=pem_text(pki)),
        server_context(pki, max_version=ssl.TLSVersion.TLSv1_2),
    )
    assert client.version() == "TLSv1.2"


@pytest.mark.parametrize("combined", [False, True], ids=["cert+key", "one-file"])
def test_a_client_certificate_is_presented(pki: Pki, combined: bool) -> None:
    if combined:
        params = TlsParameters(HOST, ca_file=pki.ca_file, client_cert=pki.client_combined_file)
    else:
        params = TlsParameters(
            HOST,
            ca_file=pki.ca_file,
            client_cert=pki.client_cert_file,
            client_key=str(pki.client_key_file),
        )
    _, server = handshake(params, server_context(pki, require_client_cert=True))
    assert ("DNS", "client.example.test") in peer_names(server)


def test_without_a_client_certificate_the_server_refuses(pki: Pki) -> None:
    with pytest.raises(ssl.SSLError, match="PEER_DID_NOT_RETURN_A_CERTIFICATE"):
        handshake(
            TlsParameters(HOST, ca_file=pki.ca_file),
            server_context(pki, require_client_cert=True),
        )


def test_an_ssl_context_is_used_as_it_is(pki: Pki) -> None:
    context = ssl.create_default_context(cadata=pem_text(pki))
    params = TlsParameters(HOST, ssl_context=context)
    assert params.create_context() is context
    handshake(params, server_context(pki))


def test_an_encrypted_client_key_is_refused_without_a_prompt(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.client.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (tmp_path / "encrypted.key").write_bytes(encrypted)
    params = TlsParameters(
        HOST, client_cert=pki.client_cert_file, client_key=tmp_path / "encrypted.key"
    )
    with refused(
        "TlsParameters client_key is encrypted; give an unencrypted key "
        "(or an ssl_context with the chain already loaded)"
    ):
        params.create_context()


def test_unloadable_files_are_refused_and_not_cached(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "later.pem"
    params = TlsParameters(HOST, ca_file=missing)
    with refused(
        f"TlsParameters ca_file {str(missing)!r} cannot be loaded: No such file or directory"
    ):
        params.create_context()
    missing.write_bytes(pki.ca.cert_pem.bytes())
    handshake(params, server_context(pki))


@pytest.mark.parametrize(
    "case", ["ca_file", "ca_data-pem", "ca_data-der", "client_cert", "mismatched-key"]
)
def test_bad_certificate_material_is_refused(pki: Pki, tmp_path: Path, case: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    other_key = tmp_path / "other.key"
    pki.other_ca.issue_cert("x.example.test").private_key_pem.write_to_path(str(other_key))
    kwargs, prefix = {
        "ca_file": ({"ca_file": garbage}, f"ca_file {str(garbage)!r}"),
        "ca_data-pem": ({"ca_data": "-----BEGIN CERTIFICATE-----\nAAAA\n"}, "ca_data"),
        "ca_data-der": ({"ca_data": b"\x30\x03\x02\x01\x00"}, "ca_data"),
        "client_cert": ({"client_cert": garbage}, f"client_cert {str(garbage)!r}"),
        "mismatched-key": (
            {"client_cert": pki.client_cert_file, "client_key": other_key},
            f"client_cert/client_key {str(pki.client_cert_file)!r}",
        ),
    }[case]
    params = TlsParameters(HOST, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as caught:
        params.create_context()
    message = str(caught.value)
    assert message.startswith(f"TlsParameters {prefix} cannot be loaded: ")
    assert len(message) > len(f"TlsParameters {prefix} cannot be loaded: ")  # gives a reason
    assert isinstance(caught.value.__cause__, ssl.SSLError)


# ---------------------------------------------------------------------- Tls


@pytest.mark.parametrize(
    ("make", "mode", "implicit", "starttls", "requires"),
    [
        (lambda p: Tls.none(), TlsMode.NONE, False, False, False),
        (Tls.opportunistic, TlsMode.OPPORTUNISTIC, False, True, False),
        (Tls.required, TlsMode.REQUIRED, False, True, True),
        (Tls.wrapper, TlsMode.WRAPPER, True, False, True),
    ],
)
def test_tls_policies(
    make: Callable[[TlsParameters], Tls],
    mode: TlsMode,
    implicit: bool,
    starttls: bool,
    requires: bool,
) -> None:
    params = TlsParameters(HOST)
    tls = make(params)
    assert tls.mode is mode
    assert tls.parameters is (None if mode is TlsMode.NONE else params)
    assert (tls.is_implicit, tls.uses_starttls, tls.requires_tls) == (implicit, starttls, requires)
    assert tls == Tls(mode, tls.parameters)


def test_tls_reprs() -> None:
    assert repr(Tls.none()) == "Tls.none()"
    assert (
        repr(Tls.required(TlsParameters(HOST)))
        == "Tls.required(TlsParameters('smtp.example.test'))"
    )
    assert repr(Tls.wrapper(TlsParameters("::1", accept_invalid_certs=True))) == (
        "Tls.wrapper(TlsParameters('::1', accept_invalid_certs=True))"
    )


def test_tls_refuses_a_mismatch() -> None:
    with type_error(
        "Tls.required() needs TlsParameters, not str (e.g. TlsParameters('smtp.example.com'))"
    ):
        Tls.required(HOST)  # type: ignore[arg-type]
    with type_error(
        "Tls.wrapper() needs TlsParameters, not NoneType (e.g. TlsParameters('smtp.example.com'))"
    ):
        Tls(TlsMode.WRAPPER)
    with refused("Tls.none() takes no TlsParameters"):
        Tls(TlsMode.NONE, TlsParameters(HOST))
    with type_error("Tls mode must be a TlsMode, not str"):
        Tls("required", TlsParameters(HOST))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- Mechanism


@pytest.mark.parametrize(
    ("mechanism", "wire", "cleartext"),
    [
        (Mechanism.PLAIN, "PLAIN", True),
        (Mechanism.LOGIN, "LOGIN", True),
        (Mechanism.XOAUTH2, "XOAUTH2", True),
        (Mechanism.CRAM_MD5, "CRAM-MD5", False),
        (Mechanism.SCRAM_SHA_256, "SCRAM-SHA-256", False),
    ],
)
def test_mechanisms(mechanism: Mechanism, wire: str, cleartext: bool) -> None:
    assert mechanism.wire == wire
    assert mechanism.sends_cleartext is cleartext
    assert Mechanism.from_wire(wire) is mechanism
    assert Mechanism.from_wire(wire.lower()) is mechanism
    assert Mechanism.from_wire(wire.title()) is mechanism


@pytest.mark.parametrize("name", ["GSSAPI", "", "CRAM_MD5", "SCRAM-SHA-1"])
def test_from_wire_refuses_unknown_mechanisms(name: str) -> None:
    with refused(
        "Mechanism name is not one of PLAIN, LOGIN, XOAUTH2, CRAM-MD5, SCRAM-SHA-256 "
        "(ASCII case-insensitive)"
    ):
        Mechanism.from_wire(name)


def test_from_wire_folds_only_ascii_case() -> None:
    # str.upper() would turn "ı" into "I" and "ſ" into "S"; a server's name is ASCII.
    assert "PLAıN".upper() == "PLAIN"
    with refused("Mechanism name contains a non-ASCII character at index 3"):
        Mechanism.from_wire("PLAıN")
    with refused("Mechanism name contains a non-ASCII character at index 0"):
        Mechanism.from_wire("ſcram-sha-256")


def test_from_wire_refuses_controls_and_non_str() -> None:
    with refused("Mechanism name contains a control character (CR) at index 5"):
        Mechanism.from_wire("PLAIN\r\n")
    with type_error("Mechanism name must be a str, not bytes"):
        Mechanism.from_wire(b"PLAIN")  # type: ignore[arg-type]


def test_default_mechanisms() -> None:
    assert DEFAULT_MECHANISMS == (
        Mechanism.SCRAM_SHA_256,
        Mechanism.CRAM_MD5,
        Mechanism.PLAIN,
        Mechanism.LOGIN,
    )
    assert Mechanism.XOAUTH2 not in DEFAULT_MECHANISMS
    assert Credentials("u", "password").default_mechanisms == DEFAULT_MECHANISMS
    assert Credentials("u", lambda: "token").default_mechanisms == (Mechanism.XOAUTH2,)


# ---------------------------------------------------------------------- Credentials

SECRET = "hunter2-Secret"


def test_credentials_with_a_password() -> None:
    credentials = Credentials("user@example.com", SECRET)
    assert credentials.username == "user@example.com"
    assert credentials.resolve_secret() == SECRET
    assert credentials.is_token_provider is False
    assert credentials == Credentials("user@example.com", SECRET)
    assert hash(credentials) == hash(Credentials("user@example.com", SECRET))
    assert credentials != Credentials("user@example.com", SECRET + "!")


def test_a_token_provider_is_called_for_each_secret() -> None:
    tokens = iter(["token-1", "token-2"])
    credentials = Credentials("user", lambda: next(tokens))
    assert credentials.is_token_provider is True
    assert credentials.resolve_secret() == "token-1"
    assert credentials.resolve_secret() == "token-2"


def test_a_token_providers_error_propagates() -> None:
    def failing() -> str:
        raise RuntimeError("refresh failed")

    with pytest.raises(RuntimeError, match=r"^refresh failed$"):
        Credentials("user", failing).resolve_secret()


@pytest.mark.parametrize(
    "credentials",
    [
        Credentials("user", SECRET),
        Credentials("user", lambda: SECRET),
        Credentials("user", partial(str, SECRET)),  # a provider whose own repr has it
    ],
)
def test_credentials_repr_hides_the_secret(credentials: Credentials) -> None:
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert SECRET not in text
        assert text.startswith("Credentials(username='user', secret=")
    expected = "<token provider>" if credentials.is_token_provider else "'***'"
    assert repr(credentials) == f"Credentials(username='user', secret={expected})"


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("", "Credentials username is empty"),
        ("us\rer", "Credentials username contains a control character (CR) at index 2"),
        ("user\n", "Credentials username contains a control character (LF) at index 4"),
        ("\x00user", "Credentials username contains a control character (NUL) at index 0"),
    ],
)
def test_credentials_refuse_bad_usernames(username: str, message: str) -> None:
    with refused(message):
        Credentials(username, SECRET)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "Credentials secret is empty"),
        (f"{SECRET}\r\n", "Credentials secret contains NUL, CR or LF"),
        (f"\x00{SECRET}", "Credentials secret contains NUL, CR or LF"),
        (f"{SECRET}\nX", "Credentials secret contains NUL, CR or LF"),
    ],
)
def test_credentials_refuse_bad_secrets_without_echoing_them(secret: str, message: str) -> None:
    with refused(message) as caught:
        Credentials("user", secret)
    assert SECRET not in repr(caught.value.args)


def test_credentials_refuse_bad_types() -> None:
    with type_error("Credentials username must be a str, not bytes"):
        Credentials(b"user", SECRET)  # type: ignore[arg-type]
    with type_error("Credentials secret must be a str or a callable returning one, not bytes"):
        Credentials("user", SECRET.encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "error", "message"),
    [
        ("", InvalidInputError, "Credentials token provider returned a token that is empty"),
        (
            f"{SECRET}\r\n",
            InvalidInputError,
            "Credentials token provider returned a token that contains NUL, CR or LF",
        ),
        (
            SECRET.encode(),
            TypeError,
            "Credentials token provider must return a str, not bytes",
        ),
    ],
)
def test_a_bad_token_is_refused_without_echoing_it(
    token: object, error: type[Exception], message: str
) -> None:
    credentials = Credentials("user", lambda: token)  # type: ignore[arg-type, return-value]
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        credentials.resolve_secret()


# ---------------------------------------------------------------------- Envelope


def test_envelope_fields() -> None:
    envelope = Envelope(
        "sender@example.com",
        ["a@example.com", "b@example.org"],
        mail_params=["RET=HDRS", "ENVID=abc"],
        rcpt_params=("NOTIFY=FAILURE,DELAY",),
    )
    assert envelope.sender == "sender@example.com"
    assert envelope.recipients == ("a@example.com", "b@example.org")
    assert envelope.mail_params == ("RET=HDRS", "ENVID=abc")
    assert envelope.rcpt_params == ("NOTIFY=FAILURE,DELAY",)
    assert envelope.needs_smtputf8 is False
    assert envelope == Envelope(
        "sender@example.com",
        ("a@example.com", "b@example.org"),
        mail_params=("RET=HDRS", "ENVID=abc"),
        rcpt_params=["NOTIFY=FAILURE,DELAY"],
    )
    assert hash(envelope) == hash(dataclasses.replace(envelope))


@pytest.mark.parametrize("sender", [None, ""])
def test_the_null_reverse_path(sender: str | None) -> None:
    envelope = Envelope(sender, ["a@example.com"])
    assert envelope.sender is None
    assert envelope == Envelope(None, ["a@example.com"])


def test_recipients_are_deduplicated_on_the_domain_case() -> None:
    envelope = Envelope(
        None,
        [
            "a@Example.COM",
            "b@example.com",
            "a@example.com",
            "A@example.com",
            "Postmaster",
            "postmaster",
            '"x@y"@example.com',
            '"x@y"@EXAMPLE.com',
        ],
    )
    assert envelope.recipients == (
        "a@Example.COM",
        "b@example.com",
        "A@example.com",
        "Postmaster",
        '"x@y"@example.com',
    )


@pytest.mark.parametrize(
    ("sender", "recipients", "params", "expected"),
    [
        ("a@example.com", ["b@example.com"], [], False),
        ("ä@example.com", ["b@example.com"], [], True),
        (None, ["b@exämple.com"], [], True),
        (None, ["b@example.com", "用户@例子.广告"], [], True),
        (None, ["b@example.com"], ["X-TAG=ü"], True),
    ],
)
def test_needs_smtputf8(
    sender: str | None, recipients: list[str], params: list[str], expected: bool
) -> None:
    assert Envelope(sender, recipients, rcpt_params=params).needs_smtputf8 is expected
    assert Envelope(sender, recipients, mail_params=params).needs_smtputf8 is expected


def test_quoted_local_parts_may_hold_spaces() -> None:
    assert Envelope('"john doe"@example.com', ["b@[192.0.2.1]"]).sender == '"john doe"@example.com'


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "Envelope recipients[0] is empty"),
        ("ab", "Envelope recipients[0] has no '@' (expected local@domain)"),
        ("@example.com", "Envelope recipients[0] local part is empty"),
        ("a@", "Envelope recipients[0] domain is empty"),
        (
            "a\r\n@example.com",
            "Envelope recipients[0] contains a control character (CR) at index 1",
        ),
        ("a\tb@example.com", "Envelope recipients[0] contains a control character (HT) at index 1"),
        (
            "a@exa\x7fmple.com",
            "Envelope recipients[0] contains a control character (DEL) at index 5",
        ),
        (
            "a\x85@example.com",
            "Envelope recipients[0] contains a control character (U+0085) at index 1",
        ),
        (
            "a\u2028@example.com",
            "Envelope recipients[0] contains a control character (U+2028) at index 1",
        ),
        ("a\ud800@example.com", "Envelope recipients[0] contains a surrogate (U+D800) at index 1"),
        (
            "<a@example.com>",
            "Envelope recipients[0] contains '<' at index 0 "
            "(give the bare address, without angle brackets)",
        ),
        (
            "a@example.com> NOTIFY=NEVER",
            "Envelope recipients[0] contains '>' at index 13 "
            "(give the bare address, without angle brackets)",
        ),
        ("a b@example.com", "Envelope recipients[0] contains ' ' at index 1"),
        (" a@example.com", "Envelope recipients[0] contains ' ' at index 0"),
        ('"a b"@exam ple.com', "Envelope recipients[0] contains ' ' at index 10"),
    ],
)
def test_envelope_refuses_bad_recipients(address: str, message: str) -> None:
    with refused(message):
        Envelope(None, [address])
    if address:  # "" is the null reverse-path for a sender
        with refused(message.replace("recipients[0]", "sender")):
            Envelope(address, ["a@example.com"])


def test_envelope_refuses_a_bad_sender() -> None:
    with refused("Envelope sender has no '@' (expected local@domain)"):
        Envelope("postmaster", ["a@example.com"])
    with refused("Envelope sender contains a control character (LF) at index 1"):
        Envelope("a\n@example.com", ["b@example.com"])
    with type_error("Envelope sender must be a str, not bytes"):
        Envelope(b"a@example.com", ["b@example.com"])  # type: ignore[arg-type]


def test_envelope_refuses_bad_recipient_lists() -> None:
    with refused("Envelope recipients is empty (give at least one address)"):
        Envelope("a@example.com", [])
    with type_error("Envelope recipients must be a sequence of str, not str"):
        Envelope("a@example.com", "b@example.com")
    with type_error("Envelope recipients must be a sequence of str, not set"):
        Envelope("a@example.com", {"b@example.com"})  # type: ignore[arg-type]
    with type_error("Envelope recipients[1] must be a str, not int"):
        Envelope("a@example.com", ["b@example.com", 5])  # type: ignore[list-item]
    with refused("Envelope recipients[2] has no '@' (expected local@domain)"):
        Envelope("a@example.com", ["b@example.com", "c@example.com", "d"])


@pytest.mark.parametrize(
    "param", ["SMTPUTF8", "RET=HDRS", "X-Custom=v!~", "A1-B=x", "7BIT", "X=ü", "NOTIFY=a,b"]
)
def test_envelope_accepts_parameters(param: str) -> None:
    assert Envelope(None, ["a@example.com"], mail_params=[param]).mail_params == (param,)


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("", "[0] is empty"),
        ("=x", "[0] has an empty keyword"),
        ("-X", "[0] keyword starts with '-'"),
        ("A_B", "[0] keyword contains '_' at index 1 (expected A-Z, a-z, 0-9 or '-')"),
        ("Ä=1", "[0] keyword contains 'Ä' at index 0 (expected A-Z, a-z, 0-9 or '-')"),
        ("X=", "[0] has an empty value"),
        ("X=a b", "[0] value contains ' ' at index 3"),
        ("X=a=b", "[0] value contains '=' at index 3"),
        ("X=a\r\nRSET", "[0] contains a control character (CR) at index 3"),
        ("X Y", "[0] keyword contains ' ' at index 1 (expected A-Z, a-z, 0-9 or '-')"),
    ],
)
@pytest.mark.parametrize("which", ["mail_params", "rcpt_params"])
def test_envelope_refuses_bad_parameters(param: str, message: str, which: str) -> None:
    params: dict[str, Any] = {which: [param]}
    with refused(f"Envelope {which}{message}"):
        Envelope(None, ["a@example.com"], **params)


def test_envelope_refuses_repeated_and_non_str_parameters() -> None:
    with refused("Envelope mail_params[2] repeats RET of Envelope mail_params[0]"):
        Envelope(None, ["a@example.com"], mail_params=["RET=HDRS", "ENVID=x", "ret=FULL"])
    with type_error("Envelope rcpt_params must be a sequence of str, not str"):
        Envelope(None, ["a@example.com"], rcpt_params="NOTIFY=NEVER")
    with type_error("Envelope mail_params[0] must be a str, not bytes"):
        Envelope(None, ["a@example.com"], mail_params=[b"RET=HDRS"])  # type: ignore[list-item]


# ---------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "host", "port", "mode", "hello_name"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, TlsMode.NONE, None),
        ("smtp://mail.example.com:2525", "mail.example.com", 2525, TlsMode.NONE, None),
        ("smtp://mail.example.com?tls=none", "mail.example.com", 25, TlsMode.NONE, None),
        ("smtp://mail.example.com?tls=required", "mail.example.com", 587, TlsMode.REQUIRED, None),
        (
            "smtp://mail.example.com?tls=opportunistic",
            "mail.example.com",
            587,
            TlsMode.OPPORTUNISTIC,
            None,
        ),
        ("smtp://mail.example.com:25?tls=required", "mail.example.com", 25, TlsMode.REQUIRED, None),
        ("smtps://mail.example.com", "mail.example.com", 465, TlsMode.WRAPPER, None),
        ("smtps://mail.example.com:2465", "mail.example.com", 2465, TlsMode.WRAPPER, None),
        ("SMTPS://Mail.Example.COM", "mail.example.com", 465, TlsMode.WRAPPER, None),
        ("smtp://h?TLS=Required", "h", 587, TlsMode.REQUIRED, None),
        ("smtp://[::1]:2525", "::1", 2525, TlsMode.NONE, None),
        ("smtps://[2001:DB8::1]", "2001:db8::1", 465, TlsMode.WRAPPER, None),
        ("smtp://127.0.0.1:1025", "127.0.0.1", 1025, TlsMode.NONE, None),
        ("smtp://mail_relay", "mail_relay", 25, TlsMode.NONE, None),
        ("smtp://h/", "h", 25, TlsMode.NONE, None),
        ("smtp://h/client.example.com", "h", 25, TlsMode.NONE, "client.example.com"),
        ("smtp://h/[127.0.0.1]", "h", 25, TlsMode.NONE, "[127.0.0.1]"),
        ("smtp://h/[IPv6:::1]", "h", 25, TlsMode.NONE, "[IPv6:::1]"),
        (
            "smtp://h:2525/client.example?tls=required",
            "h",
            2525,
            TlsMode.REQUIRED,
            "client.example",
        ),
        ("smtps://h:465/client.example", "h", 465, TlsMode.WRAPPER, "client.example"),
    ],
)
def test_parse_url(url: str, host: str, port: int, mode: TlsMode, hello_name: str | None) -> None:
    parsed = parse_url(url)
    assert parsed == TransportUrl(host, port, mode, None, hello_name)
    tls = parsed.tls()
    assert tls.mode is mode
    if mode is TlsMode.NONE:
        assert tls.parameters is None
    else:
        assert tls.parameters == TlsParameters(host)


@pytest.mark.parametrize(
    ("url", "username", "password"),
    [
        ("smtps://user:pass@h", "user", "pass"),
        ("smtp://us%40er:p%2Fss@h?tls=required", "us@er", "p/ss"),
        ("smtps://u:p%3Aa%25s%23s%3F%26@h", "u", "p:a%s#s?&"),
        ("smtps://u:pa:ss@h", "u", "pa:ss"),
        ("smtps://u:p@ss@h", "u", "p@ss"),
        ("smtps://user%2Bsub@example.com:pw@h", "user+sub@example.com", "pw"),
        ("smtps://%C3%BCser:p%C3%A4ss%20word@h", "üser", "päss word"),
        ("smtps://u:%E2%82%AC%f0%9f%94%91@h:2465/me.example", "u", "€🔑"),
    ],
)
def test_parse_url_percent_decodes_credentials(url: str, username: str, password: str) -> None:
    parsed = parse_url(url)
    assert parsed.credentials is not None
    assert parsed.credentials.username == username
    assert parsed.credentials.resolve_secret() == password
    assert password not in repr(parsed)
    assert "secret='***'" in repr(parsed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mail.example.com", "URL must start with smtp:// or smtps://"),
        ("smtp:/h", "URL must start with smtp:// or smtps://"),
        ("user:pass@h://x", "URL must start with smtp:// or smtps://"),
        ("http://h", "URL scheme 'http' is not supported (use smtp:// or smtps://)"),
        ("smtp://", "URL has no host"),
        ("smtp://:25", "URL has no host"),
        ("smtp://u:p@", "URL has no host"),
        ("smtp://::1", "URL host has more than one ':' (write an IPv6 address in brackets)"),
        ("smtp://h:25:26", "URL host has more than one ':' (write an IPv6 address in brackets)"),
        ("smtp://h:", "URL port is empty (omit the ':' to use the default port)"),
        ("smtp://h:0", "URL port must be a number from 1 to 65535"),
        ("smtp://h:65536", "URL port must be a number from 1 to 65535"),
        ("smtp://h:123456", "URL port must be a number from 1 to 65535"),
        ("smtp://h:-1", "URL port must be a number from 1 to 65535"),
        ("smtp://h:2S", "URL port must be a number from 1 to 65535"),
        ("smtp://[::1", "URL host in brackets is not a valid IPv6 address"),
        ("smtp://[1.2.3.4]", "URL host in brackets is not a valid IPv6 address"),
        ("smtp://[fe80::1%25eth0]", "URL host in brackets is not a valid IPv6 address"),
        ("smtp://[::1]x", "URL host has text after ']' (expected ':port' or nothing)"),
        ("smtp://[::1]:", "URL port is empty (omit the ':' to use the default port)"),
        ("smtp://bad..host", "URL host has an empty label at index 4"),
        (
            "smtp://10.0.1",
            "URL host ends with an all-digit label (neither a domain name nor an IPv4 address)",
        ),
        (
            "smtp://h%41",
            "URL host contains '%' at index 1, which is not allowed in a domain name",
        ),
        (
            "smtp://h?tls=maybe",
            "URL tls must be none, opportunistic or required (smtps:// is implicit TLS)",
        ),
        (
            "smtp://h?tls=wrapper",
            "URL tls must be none, opportunistic or required (smtps:// is implicit TLS)",
        ),
        (
            "smtps://h?tls=required",
            "URL query parameter tls is not allowed with smtps:// (always implicit TLS)",
        ),
        ("smtp://h?foo=bar", "URL query parameter 'foo' is unknown (the only one is tls)"),
        ("smtp://h?tls", "URL query parameter tls has no value"),
        (
            "smtp://h?tls=",
            "URL tls must be none, opportunistic or required (smtps:// is implicit TLS)",
        ),
        ("smtp://h?tls=none&tls=required", "URL query parameter tls is repeated"),
        ("smtp://h?", "URL query has an empty parameter"),
        ("smtp://h?tls=none&", "URL query has an empty parameter"),
        ("smtp://h#frag", "URL must not have a fragment ('#...')"),
        ("smtp://h/a/b", "URL path must be a single hello name (like /client.example.com)"),
        (
            "smtp://h/bad_name",
            "hello name contains '_' at index 3, which is not allowed in a domain name",
        ),
        (
            "smtp://h/%41",
            "hello name contains '%' at index 0, which is not allowed in a domain name",
        ),
        ("smtp://user@h", "URL has a user name but no password (write user:password@host)"),
        ("smtp://:pw@h", "URL user name is empty"),
        ("smtp://@h", "URL user name is empty"),
        ("smtp://u:@h", "URL password is empty"),
        ("smtp://u:p%zzw@h", "URL password has an invalid percent-escape at index 1"),
        ("smtp://u%4:p@h", "URL user name has an invalid percent-escape at index 1"),
        ("smtp://u:pw%@h", "URL password has an invalid percent-escape at index 2"),
        ("smtp://u:%FF@h", "URL password is not UTF-8 once percent-decoded"),
        ("smtp://u:p%0Aw@h", "Credentials secret contains NUL, CR or LF"),
        ("smtp://u%0D:pw@h", "Credentials username contains a control character (CR) at index 1"),
        (
            "smtp://u:p/w@h",
            "URL has '@' after the host: percent-encode '/', '?' and '#' "
            "in the user name and password",
        ),
        (
            "smtp://u:p?w@h",
            "URL has '@' after the host: percent-encode '/', '?' and '#' "
            "in the user name and password",
        ),
        (
            "smtp://u:p#w@h",
            "URL has '@' after the host: percent-encode '/', '?' and '#' "
            "in the user name and password",
        ),
        ("smtp://h x", "URL contains a space (percent-encode it as %20) at index 8"),
        ("smtp://h\n", "URL contains a control character (LF) at index 8"),
        ("smtp://h\x7f", "URL contains a control character (DEL) at index 8"),
        (
            "smtp://hé",
            "URL contains a non-ASCII character (percent-encode its UTF-8) at index 8",
        ),
        (" smtp://h", "URL contains a space (percent-encode it as %20) at index 0"),
    ],
)
def test_parse_url_refuses(url: str, message: str) -> None:
    with refused(message):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "smtp://user:Tr0ub4dor",  # the host was forgotten: the password sits where the port goes
        "smtp://user:Tr0ub?4dor=x",  # ... and the rest of it where a query key goes
        "smtp://user:Tr0ub/4dor",
        "smtp://user:Tr0ub4dor/x@host",
        "smtp://user:Tr0ub4dor#x@host",
        "smtp://user:Tr0ub4dor%@host",
        "smtp://user:Tr0ub4dor%0D@host",
        "smtp://user:Tr0ub4dor\r@host",
        "smtp://user:Tr0ub4dor@bad..host",
        "smtp://user:Tr0ub4dor@host:99999",
        "smtp://user:Tr0ub4dor@host?tls=bad",
        "ftp://user:Tr0ub4dor@host",
    ],
)
def test_parse_url_never_echoes_a_password(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_url(url)
    message = str(caught.value)
    password = "Tr0ub4dor"
    for start in range(len(password) - 2):
        assert password[start : start + 3] not in message


def test_parse_url_refuses_non_str() -> None:
    with type_error("URL must be a str, not bytes"):
        parse_url(b"smtp://h")  # type: ignore[arg-type]


# Printable characters and beyond, without NUL/CR/LF (which credentials refuse).
_credential_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\r\n"), min_size=1, max_size=40
)


@given(username=_credential_text, password=_credential_text)
def test_percent_encoded_credentials_round_trip(username: str, password: str) -> None:
    url = f"smtps://{quote(username, safe='')}:{quote(password, safe='')}@h/client.example"
    parsed = parse_url(url)
    assert parsed.credentials == Credentials(username, password)
    assert parsed.host == "h"
    assert parsed.hello_name == "client.example"


@given(
    password=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    rest=st.sampled_from(
        ["@h", "@h:25", "@h?tls=required", "@[::1]", "@bad..h", "@h:0", "", "@h/x/y", "@h#f"]
    ),
)
def test_a_raw_password_is_never_echoed(password: str, rest: str) -> None:
    secret = "~~" + password  # no message holds "~~"
    try:
        shown = repr(parse_url(f"smtp://user:{secret}{rest}"))
    except InvalidInputError as exc:
        shown = str(exc)
    assert secret not in shown


def test_transport_url_validates_its_fields() -> None:
    with refused("TransportUrl port must be at most 65535, not 65536"):
        TransportUrl("h", 65536, TlsMode.NONE)
    with refused("TransportUrl port must be at least 1, not 0"):
        TransportUrl("h", 0, TlsMode.NONE)
    with refused("TransportUrl host is empty"):
        TransportUrl("", 25, TlsMode.NONE)
    with refused("hello name is empty"):
        TransportUrl("h", 25, TlsMode.NONE, hello_name="")
    with type_error("TransportUrl tls_mode must be a TlsMode, not str"):
        TransportUrl("h", 25, "none")  # type: ignore[arg-type]
    with type_error("TransportUrl credentials must be Credentials or None, not tuple"):
        TransportUrl("h", 25, TlsMode.NONE, ("u", "p"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- hello names


@pytest.mark.parametrize(
    "name",
    [
        "client.example.com",
        "localhost",
        "xn--bcher-kva.example",
        "a" * 63 + ".example",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "[ipv6:::1]",
        "[IPv6:::ffff:192.0.2.1]",
    ],
)
def test_validate_hello_name_accepts(name: str) -> None:
    assert validate_hello_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "hello name is empty"),
        ("client.example.com.", "hello name ends with '.' (write the name without the final dot)"),
        ("bad_name", "hello name contains '_' at index 3, which is not allowed in a domain name"),
        ("exa mple", "hello name contains ' ' at index 3, which is not allowed in a domain name"),
        ("ex\r\nample", "hello name contains a control character (CR) at index 2"),
        (
            "bücher.de",
            "hello name contains a non-ASCII character at index 1 "
            "(write an international name as A-labels, xn--...)",
        ),
        (
            "192.0.2.1",
            "hello name is a bare IP address (write it as [192.0.2.1] or [IPv6:2001:db8::1])",
        ),
        ("::1", "hello name is a bare IP address (write it as [192.0.2.1] or [IPv6:2001:db8::1])"),
        (
            "1.2.3.4.5",
            "hello name ends with an all-digit label (neither a domain name nor an IPv4 address)",
        ),
        (
            "[192.0.2.256]",
            "hello name is not a valid address literal (like [192.0.2.1] or [IPv6:::1])",
        ),
        ("[IPv6:zz]", "hello name is not a valid address literal (like [192.0.2.1] or [IPv6:::1])"),
        ("[::1]", "hello name is not a valid address literal (like [192.0.2.1] or [IPv6:::1])"),
        ("[tag:x]", "hello name is not a valid address literal (like [192.0.2.1] or [IPv6:::1])"),
        ("[]", "hello name is not a valid address literal (like [192.0.2.1] or [IPv6:::1])"),
        (
            "[IPv6:fe80::1%eth0]",
            "hello name is not a valid address literal (like [192.0.2.1] or [IPv6:::1])",
        ),
        ("-client.example", "hello name has a label starting with '-' at index 0"),
        ("a" * 64, "hello name has a label longer than 63 characters at index 0"),
    ],
)
def test_validate_hello_name_refuses(name: str, message: str) -> None:
    with refused(message):
        validate_hello_name(name)


def test_validate_hello_name_refuses_non_str() -> None:
    with type_error("hello name must be a str, not int"):
        validate_hello_name(5)  # type: ignore[arg-type]


@pytest.fixture
def fqdn(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Set what ``socket.getfqdn`` answers."""

    def set_name(name: str) -> None:
        monkeypatch.setattr(socket, "getfqdn", lambda *args: name)

    return set_name


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("mail.example.com", "mail.example.com"),
        ("mail.example.com.", "mail.example.com"),
        ("laptop.local", "laptop.local"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("localhost", "[127.0.0.1]"),
        ("localhost.localdomain", "[127.0.0.1]"),
        ("LocalHost.example.com", "[127.0.0.1]"),
        ("build-42.localdomain", "[127.0.0.1]"),
        ("localhost6.localdomain6", "[127.0.0.1]"),
        ("ip6-localhost", "[127.0.0.1]"),
        ("buildhost", "[127.0.0.1]"),
        ("192.0.2.1", "[127.0.0.1]"),
        ("2001:db8::1", "[127.0.0.1]"),
        ("bad_name.example.com", "[127.0.0.1]"),
        ("", "[127.0.0.1]"),
        (".", "[127.0.0.1]"),
    ],
)
def test_default_hello_name(fqdn: Callable[[str], None], machine: str, expected: str) -> None:
    fqdn(machine)
    assert default_hello_name() == expected


def test_default_hello_name_is_always_valid() -> None:
    name = default_hello_name()
    assert validate_hello_name(name) == name


def test_envelope_smtputf8_flag() -> None:
    plain = Envelope("a@x.test", ["b@x.test"])
    assert not plain.needs_smtputf8
    flagged = Envelope("a@x.test", ["b@x.test"], smtputf8=True)
    assert flagged.needs_smtputf8
    assert flagged != plain
    assert Envelope("a@x.test", ["b@x.test"], smtputf8=False) == plain
    with pytest.raises(TypeError, match="Envelope smtputf8 must be a bool"):
        Envelope("a@x.test", ["b@x.test"], smtputf8=1)  # type: ignore[arg-type]
