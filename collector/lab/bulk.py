"""Bulk TCP transfer used to saturate a lab link: `python -m collector.lab.bulk sink|send ...`.

Run as separate processes under `ip netns exec` because a process, not a thread, is what
lives in a network namespace. Each side writes a small JSON result file so the parent can
measure goodput from what the receiver actually got, not from what the sender queued.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

CHUNK = 16 * 1024


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic write, so a reader never sees half a result."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def run_sink(bind: str, port: int, result: Path, ready: Path, accept_timeout: float) -> int:
    """Accept one connection, count bytes until EOF; record first/last byte times."""
    received = 0
    first: float | None = None
    last: float | None = None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((bind, port))
            srv.listen(1)
            srv.settimeout(accept_timeout)
            _write_json(ready, {"listening": f"{bind}:{port}"})
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(None)
                while True:
                    try:
                        data = conn.recv(65536)
                    except ConnectionResetError:
                        break  # the sender aborts at its deadline
                    if not data:
                        break
                    now = time.monotonic()
                    if first is None:
                        first = now
                    last = now
                    received += len(data)
    except (_Stop, TimeoutError, OSError) as exc:
        print(f"sink: {exc!r}", file=sys.stderr)
    seconds = (last - first) if first is not None and last is not None else 0.0
    _write_json(result, {"bytes_received": received, "seconds": seconds})
    return 0


def run_send(host: str, port: int, seconds: float, result: Path, ready: Path) -> int:
    """Send as fast as TCP allows for `seconds`, then abort the connection (RST)."""
    sent = 0
    started = time.monotonic()
    try:
        deadline_connect = started + 5.0
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=2.0)
                break
            except OSError:
                if time.monotonic() > deadline_connect:
                    raise
                time.sleep(0.05)
        with sock:
            _write_json(ready, {"connected": f"{host}:{port}"})
            payload = b"\0" * CHUNK
            start = time.monotonic()
            deadline = start + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(max(remaining, 0.01))
                try:
                    sent += sock.send(payload)
                except TimeoutError:
                    break
            # Abort rather than close: a graceful close would keep draining the send buffer
            # (hundreds of KB on a slow line) long after `seconds`. The sink counts what arrived.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (_Stop, OSError) as exc:
        print(f"send: {exc!r}", file=sys.stderr)
    _write_json(result, {"bytes_sent": sent, "seconds": time.monotonic() - started})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.lab.bulk")
    sub = parser.add_subparsers(dest="role", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--bind", required=True)
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--accept-timeout", type=float, default=30.0)
    send = sub.add_parser("send")
    send.add_argument("--to", required=True, help="HOST:PORT")
    send.add_argument("--seconds", type=float, required=True)
    for p in (sink, send):
        p.add_argument("--result", type=Path, required=True)
        p.add_argument("--ready", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    if args.role == "sink":
        return run_sink(args.bind, args.port, args.result, args.ready, args.accept_timeout)
    host, _, port = args.to.rpartition(":")
    return run_send(host, int(port), args.seconds, args.result, args.ready)


if __name__ == "__main__":
    sys.exit(main())
