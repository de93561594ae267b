"""A loopback TCP proxy that delays each direction by a fixed time, order kept: a round
trip of ``2 x delay`` between the senders and the sink, as with a relay across a network.

    python benchmarks/latency_proxy.py TARGET_PORT DELAY_SECONDS

prints ``listening HOST PORT`` once it accepts connections (on a free port), and runs
until it is terminated. ``throughput.py --delay-ms`` starts one per row.
"""

from __future__ import annotations

import asyncio
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward what ``reader`` gives to ``writer``, each chunk ``delay`` seconds later."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    delivery = asyncio.ensure_future(deliver())
    while True:
        data = await reader.read(1 << 16)
        await queue.put((loop.time() + delay, data))
        if not data:
            break
    await delivery


async def _serve(target: int, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(
            _pump(reader, up_writer, delay), _pump(up_reader, writer, delay), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening {host} {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    asyncio.run(_serve(int(sys.argv[1]), float(sys.argv[2])))


if __name__ == "__main__":
    main()
