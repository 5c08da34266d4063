"""The collector's aiohttp application: app factory, resources in cleanup_ctx, one route table."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from agent.points import Point, PointError
from agent.report import INGEST_PATH
from collector.config import Inventory
from collector.queue import DurableQueue
from collector.service import AuthError, CollectorService, UnknownAgentError
from collector.writer import QueueWriter, make_sink

log = logging.getLogger("nettvakt.collector")

SERVICE = web.AppKey("service", CollectorService)
QUEUE = web.AppKey("queue", DurableQueue)
WRITER = web.AppKey("writer", QueueWriter)
INVENTORY = web.AppKey("inventory", Inventory)

# How often the collector evaluates liveness and reports on itself.
HOUSEKEEPING_INTERVAL_S = 5.0


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def handle_ingest(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        agent = service.authenticate(request.headers.get("Authorization"))
    except AuthError as exc:
        return _error(401, str(exc))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[INVENTORY].collector.max_batch_bytes
        return _error(413, f"batch larger than {limit} bytes; send smaller batches", max_bytes=limit)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    try:
        result = await service.ingest(agent, data)
    except PointError as exc:
        status = 413 if "points in one batch" in str(exc) else 400
        return _error(status, str(exc))
    except UnknownAgentError as exc:
        return _error(403, str(exc))
    return web.json_response(result)


async def handle_agent_config(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        agent = service.authenticate(request.headers.get("Authorization"))
    except AuthError as exc:
        return _error(401, str(exc))
    wanted = request.match_info["agent_id"]
    if wanted != agent.id:
        return _error(403, f"token belongs to agent {agent.id!r}, not {wanted!r}")
    return web.json_response(service.agent_config(agent))


async def handle_health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = service.health()
    body["queue"] = await asyncio.to_thread(request.app[QUEUE].stats)
    writer = request.app.get(WRITER)
    body["storage"] = {"kind": request.app[INVENTORY].storage.kind}
    if writer is not None:
        stats = writer.stats
        body["storage"].update(
            {"write_errors": stats.write_errors, "last_error": stats.last_error, "backoff_s": stats.backoff_s}
        )
    return web.json_response(body)


async def _queue_ctx(app: web.Application) -> AsyncIterator[None]:
    inventory = app[INVENTORY]
    queue = DurableQueue(inventory.data_dir() / "queue.sqlite3", inventory.collector.queue_max_bytes)
    app[QUEUE] = queue
    app[SERVICE] = CollectorService(inventory, queue)
    yield
    queue.close()


async def _writer_ctx(app: web.Application) -> AsyncIterator[None]:
    inventory = app[INVENTORY]
    sink = make_sink(inventory)
    if sink is None:
        log.info("storage kind 'local': points are kept in %s until InfluxDB is configured", app[QUEUE].path)
        yield
        return
    storage = inventory.storage
    writer = QueueWriter(app[QUEUE], sink, storage.batch_size, storage.flush_interval_s)
    app[WRITER] = writer
    app[SERVICE].on_ingest.append(writer.wake)
    task = asyncio.create_task(writer.run(), name="influx-writer")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # One last drain attempt so a clean shutdown leaves nothing behind that could be written now.
    try:
        await asyncio.wait_for(writer.drain_once(), timeout=5)
    except Exception as exc:  # the points stay queued on disk; they are written at next start
        log.info("final drain skipped (%s); points stay queued", exc)
    await sink.close()


async def store_local(app: web.Application, source: str, points: list[Point]) -> None:
    """Queue points the collector made itself (liveness, self-monitoring, SNMP) and wake the writer."""
    await asyncio.to_thread(app[QUEUE].put_local, source, points)
    writer = app.get(WRITER)
    if writer is not None:
        writer.wake()


def collector_points(app: web.Application, now_ns: int) -> list[Point]:
    service = app[SERVICE]
    stats = app[QUEUE].stats()
    writer = app.get(WRITER)
    fields: dict[str, float] = {
        "points_in": float(service.points_in),
        "batches_in": float(service.batches_in),
        "duplicates": float(service.duplicates),
        "queue_points": float(stats["queue_points"]),
        "queue_bytes": float(stats["queue_bytes"]),
        "written_points": float(stats["written_points"]),
        "dropped_points": float(stats["dropped_points"]),
        "rejected_points": float(stats["rejected_points"]),
        "agents_up": float(sum(1 for s in service.agents.values() if s.up)),
        "agents_total": float(len(service.agents)),
    }
    if writer is not None:
        fields["write_errors"] = float(writer.stats.write_errors)
    return [Point("collector", {"collector": "main"}, fields, now_ns)]


async def _housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            now = time.time_ns()
            points = app[SERVICE].evaluate_liveness(now)
            points += await asyncio.to_thread(collector_points, app, now)
            await store_local(app, "collector", points)

    task = asyncio.create_task(loop(), name="housekeeping")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _snmp_ctx(app: web.Application) -> AsyncIterator[None]:
    from collector.pollers import SnmpScheduler

    scheduler = SnmpScheduler(app[INVENTORY], lambda source, points: store_local(app, source, points))
    scheduler.start()
    yield
    await scheduler.stop()


LIFECYCLE_INTERVAL_S = 3600.0


async def _lifecycle_ctx(app: web.Application) -> AsyncIterator[None]:
    """The inventory's replacement plan as `lifecycle` points, at start and hourly (ages move)."""
    from collector.lifecycle import lifecycle_points

    async def loop() -> None:
        while True:
            await store_local(app, "lifecycle", lifecycle_points(app[INVENTORY], time.time_ns()))
            await asyncio.sleep(LIFECYCLE_INTERVAL_S)

    task = asyncio.create_task(loop(), name="lifecycle")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def create_app(inventory: Inventory, extra_contexts: list[Any] | None = None) -> web.Application:
    app = web.Application(client_max_size=inventory.collector.max_batch_bytes)
    app[INVENTORY] = inventory
    app.cleanup_ctx.append(_queue_ctx)
    app.cleanup_ctx.append(_writer_ctx)
    app.cleanup_ctx.append(_housekeeping_ctx)
    app.cleanup_ctx.append(_snmp_ctx)
    app.cleanup_ctx.append(_lifecycle_ctx)
    for ctx in extra_contexts or []:
        app.cleanup_ctx.append(ctx)
    app.router.add_post(INGEST_PATH, handle_ingest)
    app.router.add_get("/api/v1/agents/{agent_id}/config", handle_agent_config)
    app.router.add_get("/api/v1/health", handle_health)
    return app


async def serve(inventory: Inventory, listen: str | None = None, ready: Callable[[str], None] | None = None) -> None:
    """Run the collector until cancelled; `ready` gets the base URL once the port is bound."""
    host, _, port = (listen or inventory.collector.listen).rpartition(":")
    ssl_context = None
    if inventory.collector.tls_cert is not None and inventory.collector.tls_key is not None:
        ssl_context = _server_tls(inventory)
    runner = web.AppRunner(create_app(inventory), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=ssl_context)
        await site.start()
        scheme = "https" if ssl_context else "http"
        bound_port = runner.addresses[0][1]
        url = f"{scheme}://{host}:{bound_port}"
        log.info("collector listening on %s", url)
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _server_tls(inventory: Inventory) -> "ssl.SSLContext":
    import os
    import ssl
    import tempfile

    settings = inventory.collector
    cert = settings.tls_cert if settings.tls_cert.is_absolute() else inventory.base_dir / settings.tls_cert  # type: ignore[union-attr]
    key_pem = inventory.secret(settings.tls_key)  # type: ignore[arg-type]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl wants the key as a file; keep it only for the call, readable by us alone.
    fd, key_path = tempfile.mkstemp(prefix="nettvakt-key-")
    try:
        os.write(fd, key_pem.encode())
        os.close(fd)
        context.load_cert_chain(str(cert), key_path)
    finally:
        os.unlink(key_path)
    return context
