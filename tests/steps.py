"""Script steps the transport tests share, for the scripted fake server
(:mod:`smtpx.testing.scripted`): a session opened by ``client.test`` and closed with
QUIT, against a server that offers PIPELINING (and CHUNKING)."""

from __future__ import annotations

from smtpx.testing.scripted import Expect, Send, Step

GREETING = Send(b"220 fake.test ESMTP\r\n")
EHLO = Expect(b"EHLO client.test\r\n")
CAPS_PIPE = Send(b"250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
CAPS_CHUNK = Send(b"250-fake.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n")
QUIT: list[Step] = [Expect(b"QUIT\r\n"), Send(b"221 bye\r\n")]
