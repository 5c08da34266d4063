"""Ingest in more than one process: `[collector] ingest_workers = N` (docs/scaling.md).

The collector's main process keeps everything it owns with one process (the queue and its
de-duplication, the writer, pollers, alerting, liveness, the status pages) and starts N worker
processes (collector/ingest_worker.py) that listen on its port, all bound with SO_REUSEPORT: the
kernel spreads the agents' connections over them. A worker authenticates an ingest request,
decodes its body and checks every point against the contract (collector/ingest.py, the rules
a lone collector applies), then hands the batch to main over a unix socket
(collector/handoff.py) and answers the agent with main's answer, given once the batch is
committed. Main stays the single writer of the queue, so a batch is stored once whichever worker
took it, also when two workers take the same resend at once. Every other request a worker gets
(heartbeats, agent configuration, health, alerts, silences, the status pages) it passes to main
unchanged, over HTTP on a second unix socket.

Main reserves the port first (a socket bound with SO_REUSEPORT that never listens: no other
program can take the port, and one whose address is in use is refused at start, as without
workers), restarts a worker that dies (its agents resend: what main had committed is known by
its agent and seq), sends every worker the inventory again at each reload, and stops them
before it closes the queue. A worker whose main is gone answers 503 and exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.handoff import FrameError, batch_of, frame, inventory_blob, read_frame
from collector.service import CollectorService

log = logging.getLogger("nettvakt.collector")

# How long the workers get to listen at start, and to finish their requests at stop.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# A worker that died is started again after this, doubling while it keeps dying young.
RESTART_FIRST_S = 0.2
RESTART_MAX_S = 30.0
LIVED_LONG_S = 60.0
# A restart this recent makes /health say "degraded".
RECENT_RESTART_S = 900.0


class WorkerStartError(Exception):
    """A worker could not listen at start (the message says which and why)."""


def _bound(family: int, kind: int, proto: int, address: tuple[Any, ...], port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio binds its listening sockets
        sock.bind((address[0], port, *address[2:]))
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_port(host: str, port: int) -> tuple[list[socket.socket], int]:
    """Sockets bound to every address of `host` at `port` (0: one the kernel picks, the same for
    every address) with SO_REUSEPORT, never listening: the workers bind beside them. OSError as bind's.

    Each address is first bound once without SO_REUSEPORT: the kernel would let another process of
    this user (a second collector given the same port) share the port through SO_REUSEPORT, and
    spread the agents' connections over two queues and two resend memories; a socket listening
    there, whatever its options, makes that first bind fail."""
    reserved: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            with _bound(family, kind, proto, address, port, reuse_port=False) as probe:
                port = probe.getsockname()[1]
            reserved.append(_bound(family, kind, proto, address, port, reuse_port=True))
    except BaseException:
        for sock in reserved:
            sock.close()
        raise
    return reserved, port


# A unix socket's path holds at most 107 bytes (Linux).
_MAX_SOCKET_PATH = 100
_TEMP_PREFIX = "nettvakt-ingest-"


def _socket_dir(data_dir: Path) -> Path:
    """Where main's two sockets go: a folder only this user may enter (they take batches and
    requests without a token), in the data folder (one per collector: a socket left by a collector
    that was killed is replaced at its next start), or a temporary one where that path is too long."""
    folder = data_dir.resolve() / "ingest"
    if len(str(folder / "main-http.sock")) > _MAX_SOCKET_PATH:
        return Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def _peer_pid(writer: asyncio.StreamWriter) -> int:
    """The pid of the process at the other end of a unix socket, as the kernel says (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return int(pid)


@dataclass
class _Worker:
    """One worker slot: the process in it now, and what it has done since the collector started."""

    index: int
    process: asyncio.subprocess.Process | None = None
    connection: asyncio.StreamWriter | None = None
    listening: asyncio.Future[None] | None = None
    started_at: float = 0.0
    restarts: int = 0
    last_exit: str | None = None
    last_exit_ns: int = 0
    batches: int = 0
    inventory: int = 0  # the reload it has taken (IngestWorkers.reloads), as it said
    commits: set[asyncio.Task[None]] = field(default_factory=set)


class IngestWorkers:
    """The worker processes of one collector: started, supervised, told of reloads, stopped."""

    def __init__(self, count: int, host: str, port: int):
        self.host, self.port = host, port
        self.service: CollectorService  # given at start, once the collector has opened its queue
        self.reloads = 0  # inventories sent since start: each worker says which it has taken
        self.workers = [_Worker(i) for i in range(count)]
        self._reserved: list[socket.socket] = []
        self._dir: Path | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def handoff_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "handoff.sock"

    @property
    def http_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "main-http.sock"

    async def start(self, service: CollectorService, main_http: Callable[[], asyncio.Protocol]) -> int:
        """Reserve the port, open main's sockets, start every worker and wait until each listens;
        returns the port. `main_http`: main's aiohttp server, for the requests the workers pass on.
        OSError when the port cannot be had, WorkerStartError when a worker cannot listen."""
        self.service = service
        self._reserved, self.port = reserve_port(self.host, self.port)
        self._dir = _socket_dir(service.inventory.data_dir())
        loop = asyncio.get_running_loop()
        self._servers.append(await asyncio.start_unix_server(self._connected, self.handoff_path))
        self._servers.append(await loop.create_unix_server(main_http, str(self.http_path)))
        for worker in self.workers:
            worker.listening = loop.create_future()
            self._supervisors.append(asyncio.create_task(self._supervise(worker), name=f"ingest-worker-{worker.index}"))
        try:
            await asyncio.wait_for(asyncio.gather(*(w.listening for w in self.workers if w.listening is not None)), START_TIMEOUT_S)
        except TimeoutError:
            raise WorkerStartError(f"the ingest workers did not listen within {START_TIMEOUT_S:g} s") from None
        log.info("%d ingest workers listening on port %d (collector/workers.py)", len(self.workers), self.port)
        return self.port

    def _argv(self, worker: _Worker) -> list[str]:
        return [sys.executable, "-m", "collector.ingest_worker", "--handoff", str(self.handoff_path), "--index", str(worker.index),
                "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())]

    async def _supervise(self, worker: _Worker) -> None:
        wait_s = RESTART_FIRST_S
        # Found as `collector` wherever the collector was started from.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH"))))}
        while True:
            worker.started_at = time.monotonic()
            try:
                # A session of its own: Ctrl-C at a terminal reaches main, which stops its workers in order.
                process = await asyncio.create_subprocess_exec(*self._argv(worker), stdin=asyncio.subprocess.DEVNULL, env=env,
                                                               start_new_session=True)
            except OSError as exc:  # fork refused (process limit, memory): said, and tried again after the backoff
                log.error("ingest worker %d could not be started (%s); trying again in %.1f s", worker.index, exc, wait_s)
                if worker.listening is not None and not worker.listening.done():
                    worker.listening.set_exception(WorkerStartError(f"ingest worker {worker.index} could not be started: {exc}"))
                worker.listening = None
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, RESTART_MAX_S)
                continue
            worker.process = process
            if self._stopping:  # stop() came while it was being started: it never saw this one
                process.terminate()
            code = await process.wait()
            if worker.connection is not None:
                worker.connection.close()
                worker.connection = None
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            if self._stopping:
                if worker.listening is not None:
                    worker.listening.cancel()
                return
            if worker.listening is not None and not worker.listening.done():  # start() waits for it
                worker.listening.set_exception(WorkerStartError(f"ingest worker {worker.index} ended before it listened ({how}); its log says why"))
            worker.listening = None  # a worker started again is not waited for: its agents resend meanwhile
            lived_s = time.monotonic() - worker.started_at
            wait_s = RESTART_FIRST_S if lived_s >= LIVED_LONG_S else wait_s
            worker.restarts += 1
            worker.last_exit, worker.last_exit_ns = how, time.time_ns()
            # Exit code 0: it was told to stop (a SIGTERM to it alone, or to all of the service, main next).
            log.log(logging.WARNING if code == 0 else logging.ERROR, "ingest worker %d (pid %d) ended after %.1f s (%s); starting it again in %.1f s",
                    worker.index, worker.process.pid, lived_s, how, wait_s)
            await asyncio.sleep(wait_s)
            if self._stopping:
                return
            wait_s = min(wait_s * 2, RESTART_MAX_S)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One worker's connection: its hello, its start, then its batches until it goes."""
        worker: _Worker | None = None
        try:
            hello = await read_frame(reader)
            if hello is None or hello.get("op") != "hello" or type(hello.get("index")) is not int:
                raise FrameError(f"expected a hello, got {hello!r:.100}")
            index, pid = hello["index"], _peer_pid(writer)
            worker = self.workers[index] if 0 <= index < len(self.workers) else None
            if worker is None or worker.process is None or worker.process.pid != pid:
                log.warning("a process that is not one of this collector's ingest workers (pid %s) connected; closed", pid)
                return
            worker.connection = writer
            writer.write(frame({"op": "start", "inventory": self._inventory(), "reload": self.reloads, "host": self.host,
                                "port": self.port, "main_http": str(self.http_path)}))
            while (message := await read_frame(reader)) is not None:
                op = message["op"]
                if op == "batch":
                    task = asyncio.create_task(self._commit(worker, writer, message))
                    worker.commits.add(task)
                    task.add_done_callback(worker.commits.discard)
                elif op == "limited":
                    self.service.gate.rate_limited += 1
                elif op == "took":
                    worker.inventory = message["reload"]
                elif op == "ready":
                    log.info("ingest worker %d (pid %s) listening", index, pid)
                    if worker.listening is not None and not worker.listening.done():
                        worker.listening.set_result(None)
                elif op == "failed":
                    error = WorkerStartError(f"ingest worker {index}: {message.get('error')}")
                    if worker.listening is not None and not worker.listening.done():
                        worker.listening.set_exception(error)
                    log.error("%s", error)
                else:
                    raise FrameError(f"unknown op {op!r}")
        except (FrameError, ConnectionError) as exc:
            log.error("ingest worker %s: its connection to the collector broke (%s); it answers 503 and is started again",
                      "?" if worker is None else worker.index, exc)
        finally:
            writer.close()

    async def _commit(self, worker: _Worker, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        try:
            answer = await self.service.commit(batch_of(message))
            reply = {"op": "answer", "id": message["id"], "answer": answer}
            worker.batches += 1
        except Exception:  # the disk, most likely: the agent gets what a lone collector answers, and resends
            log.exception("a batch from ingest worker %d (agent %s, seq %s) was not committed", worker.index, message.get("agent"),
                          message.get("seq"))
            reply = {"op": "failed", "id": message["id"]}
        if not writer.is_closing():  # else the worker is gone: committed all the same, the agent's resend is known
            writer.write(frame(reply))

    def _inventory(self) -> str:
        return inventory_blob(self.service.inventory, self.service.user_names)

    def reload(self) -> None:
        """Every worker takes the inventory main has just taken (tokens, agents, sites owned)."""
        self.reloads += 1
        message = frame({"op": "inventory", "inventory": self._inventory(), "reload": self.reloads})
        for worker in self.workers:
            if worker.connection is not None and not worker.connection.is_closing():
                worker.connection.write(message)

    async def stop(self) -> None:
        """The workers stop listening and finish their requests (main still commits them), then main's sockets close."""
        self._stopping = True
        running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        if running:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in running], timeout=STOP_TIMEOUT_S)
            for process in running:
                if process.returncode is None:
                    log.warning("ingest worker pid %d did not stop within %.0f s; killed", process.pid, STOP_TIMEOUT_S)
                    process.kill()
                    await process.wait()
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        # Batches main was committing when their worker went: done before the queue closes.
        await asyncio.gather(*(task for w in self.workers for task in w.commits), return_exceptions=True)
        for server in self._servers:
            server.close()
        for sock in self._reserved:
            sock.close()
        if self._dir is not None:
            for path in (self.handoff_path, self.http_path):
                path.unlink(missing_ok=True)
            if self._dir.name.startswith(_TEMP_PREFIX):
                shutil.rmtree(self._dir, ignore_errors=True)

    def health(self) -> list[dict[str, Any]]:
        """For /health: each worker's process, whether it is connected, its batches and restarts."""
        return [{
            "index": w.index, "pid": w.process.pid if w.process is not None and w.process.returncode is None else None,
            "connected": w.connection is not None and not w.connection.is_closing(), "batches": w.batches, "restarts": w.restarts,
            "last_exit": w.last_exit, "inventory_current": w.inventory == self.reloads,
        } for w in self.workers]

    def problems(self, now_ns: int) -> list[str]:
        return [f"ingest worker {w.index} ended ({w.last_exit}) {(now_ns - w.last_exit_ns) / 1e9:.0f} s ago and was started again "
                f"({w.restarts} time(s) since start); its agents resent what it had not answered"
                for w in self.workers if w.last_exit_ns and now_ns - w.last_exit_ns < RECENT_RESTART_S * 1e9]


__all__ = ["IngestWorkers", "WorkerStartError", "reserve_port"]
