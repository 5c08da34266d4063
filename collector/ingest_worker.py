"""One ingest worker process (collector/workers.py says what they are for).

    python -m collector.ingest_worker --handoff SOCKET --index N

started by the collector's main process, never by hand. It connects to main at SOCKET, takes
the inventory and the address to listen on, listens there beside the other workers
(SO_REUSEPORT), and serves the agents: an ingest request is authenticated, decoded and checked
here exactly as a lone collector does it (collector/app.py `handle_ingest`, collector/service.py
`prepare_batch`) and committed by main; any other request is passed to main as it came and its
answer passed back. SIGTERM: it stops listening and finishes its requests. When main's
connection closes (main stopped or died), every request still waiting and every new one is
answered 503, and the worker exits.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from agent.report import INGEST_PATH
from agent.secrets import SecretError
from collector import connections
from collector.app import _read_body, _server_tls, handle_ingest, json_errors, unavailable
from collector.appkeys import INGEST, INVENTORY
from collector.config import AgentEntry, Inventory
from collector.handoff import CollectorUnreachableError, FrameError, batch_message, frame, inventory_of, read_frame
from collector.logins import UserNames
from collector.service import AgentGate, PreparedBatch, prepare_batch

log = logging.getLogger("nettvakt.ingest_worker")

# Headers of one connection, not of the request: not passed on (RFC 9110 7.6.1), and the length is the body's own.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host"})
# A request passed to main may take as long as main's slowest page (the status pages read history).
FORWARD_TIMEOUT_S = 120.0
# How long requests still being answered get at SIGTERM.
SHUTDOWN_TIMEOUT_S = 10.0


class CollectorLink:
    """This worker's connection to main: batches out, main's answers back, matched by request id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.closed = False

    def tell(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self.writer.write(frame(message))

    async def commit(self, batch: PreparedBatch) -> dict[str, Any]:
        """Main's answer for the agent, once main has committed the batch; CollectorUnreachableError when it cannot say."""
        if self.closed:
            raise CollectorUnreachableError("the collector is restarting: batch not taken, send it again")
        request_id = next(self._ids)
        answer = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        try:
            self.writer.write(frame(batch_message(request_id, batch)))
            await self.writer.drain()
            return await answer
        except ConnectionError:
            raise CollectorUnreachableError("the collector is restarting: batch not taken, send it again") from None
        finally:
            self._waiting.pop(request_id, None)

    async def run(self, on_inventory: Any) -> None:
        """Read main's messages until it closes the connection; then every waiting request is told."""
        try:
            while (message := await read_frame(self.reader)) is not None:
                op = message["op"]
                if op in ("answer", "failed"):
                    waiting = self._waiting.get(message["id"])
                    if waiting is None or waiting.done():
                        continue  # its request was given up (the agent went away)
                    if op == "answer":
                        waiting.set_result(message["answer"])
                    else:
                        waiting.set_exception(RuntimeError("the collector could not commit the batch (its log says why)"))
                elif op == "inventory":
                    on_inventory(*inventory_of(message["inventory"]))
                    self.tell({"op": "took", "reload": message["reload"]})
                else:
                    raise FrameError(f"unknown op {op!r}")
        except (FrameError, ConnectionError) as exc:
            log.error("connection to the collector broken: %s", exc)
        except Exception:  # a message this worker cannot take (its inventory, say): it stops, and main starts it again
            log.exception("a message from the collector could not be taken; this worker stops")
        finally:
            self.closed = True
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(CollectorUnreachableError("the collector stopped before it answered: send the batch again"))
            self.writer.close()


class _Gate(AgentGate):
    """The worker's own rate limit per agent, each refusal counted by main as its own."""

    def __init__(self, inventory: Inventory, link: CollectorLink):
        super().__init__(inventory)
        self.link = link

    def admit(self, agent: AgentEntry) -> float:
        wait_s = super().admit(agent)
        if wait_s:
            self.link.tell({"op": "limited"})
        return wait_s


class WorkerIngest:
    """`BatchIngest` of a worker: the checks here, the commit in main."""

    def __init__(self, inventory: Inventory, user_names: UserNames, link: CollectorLink):
        self.inventory, self.user_names, self.link = inventory, user_names, link
        self.gate = _Gate(inventory, link)

    def reload(self, inventory: Inventory, user_names: UserNames) -> None:
        self.inventory, self.user_names = inventory, user_names
        self.gate.reload(inventory)
        log.info("inventory reloaded (%d agents)", len(inventory.agent))

    def prepare(self, agent: AgentEntry, data: Any) -> PreparedBatch:
        return prepare_batch(self.inventory, self.user_names, agent, data)

    async def commit(self, batch: PreparedBatch) -> dict[str, Any]:
        return await self.link.commit(batch)


MAIN_HTTP = web.AppKey("main_http", aiohttp.ClientSession)


async def handle_forward(request: web.Request) -> web.StreamResponse:
    """Any request but ingest: to main as it came (body read within the same bounds), main's answer back as it is."""
    settings = request.app[INVENTORY].collector
    body = await _read_body(request, settings.request_body_timeout_s, settings.max_batch_bytes)
    headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
    try:
        url = URL.build(scheme="http", host="collector", path=request.rel_url.raw_path, query_string=request.rel_url.raw_query_string,
                        encoded=True)
        async with request.app[MAIN_HTTP].request(request.method, url, headers=headers, data=body or None, allow_redirects=False) as answer:
            payload = await answer.read()
            status, answer_headers = answer.status, answer.headers
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return unavailable(f"the collector did not answer ({exc.__class__.__name__}); try again")
    passed = {name: value for name, value in answer_headers.items() if name.lower() not in HOP_BY_HOP}
    return web.Response(status=status, body=payload, headers=passed)


def worker_app(ingest: WorkerIngest, main_http: str) -> web.Application:
    app = web.Application(client_max_size=ingest.inventory.collector.max_batch_bytes, middlewares=[json_errors])
    app[INVENTORY] = ingest.inventory  # [collector]'s limits, read at start only as in main
    app[INGEST] = ingest

    async def main_session(app: web.Application) -> AsyncIterator[None]:
        # Bodies as main made them (a compressed page stays compressed); main's own limits apply there.
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S, sock_connect=5)
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(main_http), auto_decompress=False, timeout=timeout) as session:
            app[MAIN_HTTP] = session
            yield

    app.cleanup_ctx.append(main_session)
    app.router.add_post(INGEST_PATH, handle_ingest)
    app.router.add_route("*", "/{tail:.*}", handle_forward)
    return app


async def run(handoff: str, index: int) -> int:
    reader, writer = await asyncio.open_unix_connection(handoff)
    writer.write(frame({"op": "hello", "index": index}))
    start = await read_frame(reader)
    if start is None or start.get("op") != "start":
        log.error("the collector did not start this worker (%r)", start)
        return EXIT_FAIL
    inventory, user_names = inventory_of(start["inventory"])
    link = CollectorLink(reader, writer)
    ingest = WorkerIngest(inventory, user_names, link)
    settings = inventory.collector
    runner = web.AppRunner(worker_app(ingest, start["main_http"]), access_log=None, keepalive_timeout=settings.request_head_timeout_s,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    server = reading = None
    try:
        try:
            ssl_context = _server_tls(inventory) if settings.tls_cert is not None else None
            assert runner.server is not None
            server = await connections.listen(runner.server, start["host"].strip("[]"), start["port"],
                                              connections.ConnectionGuard(settings.max_connections_per_client), ssl_context, reuse_port=True)
        except (OSError, ValueError, SecretError) as exc:
            writer.write(frame({"op": "failed", "error": f"cannot listen on {start['host']}:{start['port']}: {exc}"}))
            await writer.drain()
            return EXIT_USAGE
        writer.write(frame({"op": "ready"}))
        link.tell({"op": "took", "reload": start["reload"]})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reading = asyncio.create_task(link.run(ingest.reload), name="collector-link")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if reading.done():
            log.warning("the link to the collector's main process ended; this worker stops")
        return EXIT_OK
    finally:
        if server is not None:
            server.close()  # no new connection
        await runner.cleanup()  # those open finish their requests: main still answers them, or they are answered 503
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="an ingest worker of the nettvakt collector (started by it)")
    parser.add_argument("--handoff", required=True, help="the collector's unix socket for its workers")
    parser.add_argument("--index", type=int, required=True, help="which of the collector's workers this is")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s %(levelname)s %(name)s[worker {args.index}]: %(message)s")
    try:
        return asyncio.run(run(args.handoff, args.index))
    except (ConnectionError, FileNotFoundError, FrameError) as exc:
        log.error("cannot reach the collector at %s: %s", args.handoff, exc)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
