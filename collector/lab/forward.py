"""TCP forwarder bridging the root namespace into a lab namespace.

`python -m collector.lab.forward --listen-fd N --to HOST:PORT`, started with
`ip netns exec NS`. The listening socket N was created by the parent in the ROOT namespace
and inherited: a socket keeps the namespace it was made in, so connections accepted on it
come from the root namespace's 127.0.0.1, while the sockets this process opens are made in
NS. That reaches a service inside a namespace without giving the root namespace any address.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close so the other direction can still finish."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _handle(host: str, port: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        target_r, target_w = await asyncio.open_connection(host, port)
    except OSError as exc:
        print(f"forward: connect {host}:{port} failed: {exc}", file=sys.stderr, flush=True)
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, target_w), _pipe(target_r, client_w))
    finally:
        for w in (target_w, client_w):
            w.close()
        for w in (target_w, client_w):
            try:
                await w.wait_closed()
            except (ConnectionError, OSError):
                pass


async def serve(listen_fd: int, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and return."""
    sock = socket.socket(fileno=listen_fd)
    sock.setblocking(False)
    server = await asyncio.start_server(lambda r, w: _handle(host, port, r, w), sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"forward: fd {listen_fd} -> {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.lab.forward")
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--to", required=True, help="HOST:PORT inside the namespace")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    asyncio.run(serve(args.listen_fd, host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
