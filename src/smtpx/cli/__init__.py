"""The ``smtpx`` command (also ``python -m smtpx``).

``smtpx info``
    The version, the active core (compiled or pure) and why, and the extension files.
``smtpx demo``
    A bulk send through the pooled transport to a local sink, with a progress bar and a
    throughput line.
``smtpx sink``
    A local SMTP sink on loopback that accepts and counts everything (for trying things).
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Sequence

from smtpx import __version__, _hot

__all__ = ["main"]


def _info() -> int:
    print(f"smtpx {__version__}")
    print(f"python {platform.python_implementation()} {platform.python_version()}")
    print(f"implementation: {_hot.IMPLEMENTATION}")
    print(f"reason: {_hot.REASON}")
    if _hot.EXTENSION_PATHS:
        print("extensions:")
        for path in _hot.EXTENSION_PATHS:
            print(f"  {path}")
    else:
        print("extensions: none loaded")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smtpx", description="smtpx command-line tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("info", help="show the version and which core (compiled or pure) is active")
    demo = commands.add_parser(
        "demo", help="bulk-send through the pooled transport to a local sink and time it"
    )
    demo.add_argument("--messages", type=int, default=20_000, help="how many (default 20000)")
    demo.add_argument("--size", type=int, default=1024, help="message size in bytes (1024)")
    demo.add_argument("--connections", type=int, default=4, help="pool size and threads (4)")
    demo.add_argument("--seconds", type=float, default=60.0, help="stop after this long (60)")
    demo.add_argument(
        "--window", type=int, default=None, help="transactions in flight per connection (8)"
    )
    sink = commands.add_parser("sink", help="run a local SMTP sink that accepts everything")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=2525)
    sink.add_argument("--count", type=int, default=0, help="stop after this many messages")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    if args.command == "demo":
        from .demo import run_demo  # noqa: PLC0415 - only this command needs it

        window = {} if args.window is None else {"window": args.window}
        return run_demo(
            messages=args.messages,
            size=args.size,
            connections=args.connections,
            seconds=args.seconds,
            **window,
        )
    from smtpx.testing.sink import main as sink_main  # noqa: PLC0415

    return sink_main(
        ["--host", args.host, "--port", str(args.port), "--count", str(args.count), "--quiet"]
    )
