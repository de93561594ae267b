"""What users and smtpx's own tests need to exercise SMTP clients without the network.

``smtpx.testing.sink``
    An embedded local SMTP sink (stdlib only): PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8,
    SIZE, optional STARTTLS and AUTH; counts or captures what it receives.
``smtpx.testing.scripted``
    A scripted fake server for fault injection: exact bytes in and out, segmentation,
    delays, EOF, reset, TLS.

Both listen on loopback only.
"""
