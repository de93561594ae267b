"""Drivers that move bytes for the protocol engine: blocking sockets and asyncio, the
connection pools, TLS, time-outs and the builders."""

from .aio import AsyncSmtpTransport
from .builder import TransportBuilder, TransportSettings
from .sync import SmtpTransport

__all__ = ["AsyncSmtpTransport", "SmtpTransport", "TransportBuilder", "TransportSettings"]
