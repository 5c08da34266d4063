"""The collector's aiohttp application: app factory, resources in cleanup_ctx, one route table.

Its typed keys are in collector/appkeys.py. Every point, an agent's batch or the collector's own,
is committed by the CollectorService (`ingest`, `store_local`) and reaches its subscribers
(live state, the writer, alerting) the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from agent.points import Point, PointError
from agent.secrets import SecretError
from agent.report import HEARTBEAT_PATH, INGEST_PATH, BatchTooLargeError
from collector.alerting.admin import AckError, acknowledge, alert_listing, unknown_names
from collector.alerting.context import AlertingOptions, alerting_context
from collector.alerting.silences import SILENCES_FILE, SilenceError, SilenceStore
from collector.appkeys import (
    ALERTS, CONNECTIONS, HISTORY, INGEST, INGEST_WORKERS, INVENTORY, LATE_ROLLUPS, QUEUE, RELOADER, RESOLUTION_ROWS, ROLLUP_ENGINE, ROLLUPS, SERVICE, WRITER,
)
from collector.config import AgentEntry, Inventory
from collector.handoff import CollectorUnreachableError
from collector.history import HistoryService
from collector import connections
from collector.ingest import IngestError
from collector.queue import DurableQueue
from collector.reload import InventoryReloader
from collector.service import (
    LIVENESS_FILE,
    AdminDisabledError,
    AgentElsewhereError,
    AuthError,
    CollectorService,
    UnknownAgentError,
)
from collector.workers import IngestWorkers, WorkerStartError
from collector.writer import EventCopy, QueueWriter, make_sink

log = logging.getLogger("nettvakt.collector")

# How often the collector evaluates liveness (availability points), and reports on itself.
HOUSEKEEPING_INTERVAL_S = 5.0
SELF_MONITOR_INTERVAL_S = 10.0


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _too_many(agent_id: str, wait_s: float) -> web.Response:
    retry_after = max(1, math.ceil(wait_s))
    response = _error(429, f"agent {agent_id!r} is over its request rate; retry after {retry_after} s", retry_after_s=retry_after)
    response.headers["Retry-After"] = str(retry_after)
    return response


# An ingest worker whose collector is going away or restarting (collector/workers.py): try again this soon.
RETRY_UNAVAILABLE_S = 1


def unavailable(message: str) -> web.Response:
    """503 with Retry-After: try again (a batch the collector had already stored is known by its seq)."""
    response = _error(503, message, retry_after_s=RETRY_UNAVAILABLE_S)
    response.headers["Retry-After"] = str(RETRY_UNAVAILABLE_S)
    return response


class BodyError(Exception):
    """A request body that cannot be taken; carries the JSON answer to give instead."""

    def __init__(self, response: web.Response):
        super().__init__(response.status)
        self.response = response


async def _read_json(request: web.Request, empty: Any = ...) -> Any:
    """The request's JSON body, read within the body timeout; BodyError carries the answer otherwise.

    `empty` is what an empty body means (none given: an empty body is an error like any other).
    """
    settings = request.app[INVENTORY].collector
    raw = await _read_body(request, settings.request_body_timeout_s, settings.max_batch_bytes)
    if empty is not ... and not raw.strip():
        return empty
    try:
        return orjson.loads(raw)  # a third of the time of json.loads on an agent's report
    except orjson.JSONDecodeError:
        pass  # refused, or something it reads otherwise (NaN, huge integers, lone surrogates): Python's parser decides and words it
    try:
        return json.loads(raw)
    except RecursionError:
        raise BodyError(_error(400, "body is not acceptable JSON: nested too deeply")) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise BodyError(_error(400, f"body is not valid JSON: {exc}")) from None


# After request_body_timeout_s, a body must keep arriving at this rate: a big backlog batch
# over a slow rural line gets the time it needs, a client trickling bytes does not.
MIN_BODY_BYTES_PER_S = 1024


async def _read_body(request: web.Request, timeout_s: float, max_bytes: int) -> bytes:
    """The whole body, or BodyError with 408 (too slow) or 413 (too big) as JSON."""
    too_big = _error(413, f"body larger than {max_bytes} bytes; send smaller batches", max_bytes=max_bytes)
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyError(too_big)  # refused before a byte of it is read
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks: list[bytes] = []
    got = 0
    try:
        # One deadline moved on as bytes arrive; no task per chunk, so a body already received is
        # read whole before the loop gets to a connection that closed right after sending it.
        async with asyncio.timeout_at(started + timeout_s) as deadline:
            while chunk := await request.content.readany():
                got += len(chunk)
                if got > max_bytes:  # a chunked body with no length said
                    # aiohttp reads and drops the rest for a few seconds (lingering), so the client gets this answer.
                    raise BodyError(too_big)
                chunks.append(chunk)
                deadline.reschedule(started + timeout_s + got / MIN_BODY_BYTES_PER_S)
    except TimeoutError:
        response = _error(408, f"request body not received within {timeout_s:g} s (and {MIN_BODY_BYTES_PER_S} bytes/s after that)")
        response.force_close()  # the rest of a trickled body is not waited for
        raise BodyError(response) from None
    return b"".join(chunks)


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every error answer is JSON, also aiohttp's own (404, 405, 413), and nothing ever shows a traceback."""
    try:
        return await handler(request)
    except BodyError as exc:
        return exc.response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason, path=request.path)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, "internal error; the collector's log has the details")


def _admitted_agent(request: web.Request) -> AgentEntry | web.Response:
    """The agent the bearer token names, or the 401/421/429 answer to give instead.

    421 Misdirected Request: another collector owns the agent's site ([collectors]); the body
    names it (`collector_url`) and the agent follows. Nothing of the request is taken here.
    """
    gate = request.app[INGEST].gate
    try:
        agent = gate.authenticate(request.headers.get("Authorization"))
    except AuthError as exc:
        return _error(401, str(exc))
    except AgentElsewhereError as exc:
        return web.json_response(exc.answer(), status=421)
    wait_s = gate.admit(agent)
    if wait_s:
        return _too_many(agent.id, wait_s)
    return agent


async def handle_ingest(request: web.Request) -> web.Response:
    """POST /api/v1/ingest: answered once the batch is durably committed. The same handler runs in
    the collector and in its ingest workers (collector/workers.py): `app[INGEST]` is either."""
    ingest = request.app[INGEST]
    agent = _admitted_agent(request)
    if isinstance(agent, web.Response):
        return agent
    data = await _read_json(request)
    try:
        result = await ingest.commit(ingest.prepare(agent, data))
    except BatchTooLargeError as exc:
        return _error(413, str(exc))
    except IngestError as exc:
        return _error(exc.status, str(exc), where=exc.where)
    except PointError as exc:
        return _error(400, str(exc))
    except UnknownAgentError as exc:
        return _error(403, str(exc))
    except CollectorUnreachableError as exc:
        return unavailable(str(exc))
    return web.json_response(result)


def _agent_in_path(request: web.Request) -> AgentEntry | web.Response:
    """The admitted agent, when it is the one the URL names ({agent_id}); else the answer to give."""
    agent = _admitted_agent(request)
    if isinstance(agent, web.Response):
        return agent
    wanted = request.match_info["agent_id"]
    if wanted != agent.id:
        return _error(403, f"token belongs to agent {agent.id!r}, not {wanted!r}")
    return agent


async def handle_agent_config(request: web.Request) -> web.Response:
    agent = _agent_in_path(request)
    if isinstance(agent, web.Response):
        return agent
    return web.json_response(request.app[SERVICE].agent_config(agent))


async def handle_agent_heartbeat(request: web.Request) -> web.Response:
    agent = _agent_in_path(request)
    if isinstance(agent, web.Response):
        return agent
    data = await _read_json(request, empty={})
    try:
        return web.json_response(request.app[SERVICE].heartbeat(agent, data))
    except PointError as exc:
        return _error(400, str(exc))


# Trouble this recent still makes /health say "degraded".
RECENT_TROUBLE_S = 900.0
# With InfluxDB configured, a batch waiting this long means the writer is not keeping up.
QUEUE_AGE_WARN_S = 300.0
QUEUE_FULL_WARN = 0.8


def health_report(app: web.Application, now_ns: int | None = None) -> dict[str, Any]:
    """The /health body: live state, counters, and `problems` in words (blocking: queue stats)."""
    now_ns = now_ns or time.time_ns()
    service, queue = app[SERVICE], app[QUEUE]
    body = service.health()
    stats = queue.stats()
    body["queue"] = stats
    writer = app.get(WRITER)
    body["storage"] = {"kind": app[INVENTORY].storage.kind}
    guard = app.get(CONNECTIONS)
    if guard is not None:
        body["connections"] = guard.stats()
    workers = app.get(INGEST_WORKERS)
    if workers is not None:
        body["ingest_workers"] = workers.health()
    alerts = app.get(ALERTS)
    if alerts is not None:
        # How many times the engine has judged since start: "nothing more came" is provable by waiting for more rounds.
        body["alerting"] = {"evaluations": alerts.evaluations}
    problems: list[str] = []
    reloader = app.get(RELOADER)
    if reloader is not None:
        body["inventory"] = reloader.health()
        if reloader.last_error is not None:
            problems.append(f"inventory.toml was changed but refused; the previous inventory stays in force: {reloader.last_error.splitlines()[0]}")
        if reloader.parts_not_applied:
            problems.append(f"the last inventory reload failed in {', '.join(reloader.parts_not_applied)} (see the log): "
                            "they still run the inventory before it until the next reload or a restart")
    if workers is not None:
        problems += workers.problems(now_ns)
    if writer is not None:
        ws = writer.stats
        body["storage"].update({"write_errors": ws.write_errors, "last_error": ws.last_error, "backoff_s": ws.backoff_s,
                                "writes_in_flight": writer.in_flight})
        if ws.backoff_s > 0:
            problems.append(f"InfluxDB writes failing ({ws.write_errors} failed attempts since start), retrying in {ws.backoff_s:g} s: {ws.last_error}")
        if stats["queue_age_s"] > QUEUE_AGE_WARN_S:
            problems.append(f"the oldest queued batch has waited {stats['queue_age_s']:.0f} s for InfluxDB")
    recent_ns = RECENT_TROUBLE_S * 1e9
    if queue.last_drop_ns and now_ns - queue.last_drop_ns < recent_ns:
        problems.append(
            f"the queue hit its bound of {queue.max_bytes} bytes: oldest points dropped "
            f"({stats['dropped_points']} in all, the last {(now_ns - queue.last_drop_ns) / 1e9:.0f} s ago)"
        )
    elif stats["queue_bytes"] > QUEUE_FULL_WARN * queue.max_bytes:
        problems.append(f"the queue is at {100 * stats['queue_bytes'] / queue.max_bytes:.0f}% of its bound; oldest points go first")
    rollups = app.get(ROLLUPS) or app.get(ROLLUP_ENGINE)
    if rollups is not None:
        body["storage"]["rollups"] = rollups.health()
        problems += rollups.problems()
    late = app.get(LATE_ROLLUPS)
    if late is not None:
        body["storage"]["late_rollups"] = late.health()
        problems += late.problems()
    rows = app.get(RESOLUTION_ROWS)
    if rows is not None:
        body["storage"]["resolution_rows"] = rows.health()
        problems += rows.problems()
    if queue.last_reject_ns and now_ns - queue.last_reject_ns < recent_ns:
        problems.append(f"InfluxDB refused points as bad data ({stats['rejected_points']} in all; kept in the queue's rejected table)")
    return {"status": "degraded" if problems else "ok", "problems": problems, **body}


async def handle_health(request: web.Request) -> web.Response:
    # 200 also when degraded: ingest still works, and a load balancer must not drop the collector.
    return web.json_response(await asyncio.to_thread(health_report, request.app))


async def _reload_ctx(app: web.Application) -> AsyncIterator[None]:
    reloader = app.get(RELOADER)
    if reloader is None:
        yield
        return
    service = app[SERVICE]

    async def apply(old: Inventory, new: Inventory) -> None:
        service.reload(new)
        workers = app.get(INGEST_WORKERS)
        if workers is not None:
            workers.reload()  # what main has just taken

    reloader.hooks.insert(0, apply)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[bool]] = set()

    def on_sighup() -> None:
        task = asyncio.ensure_future(reloader.reload("SIGHUP"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        has_signal = True
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        has_signal = False
    watcher = asyncio.create_task(reloader.watch(), name="inventory-watch")
    yield
    if has_signal:
        loop.remove_signal_handler(signal.SIGHUP)
    watcher.cancel()
    await asyncio.gather(watcher, *pending, return_exceptions=True)


MAX_RECENT_S = 90 * 86400.0


async def handle_alerts(request: web.Request) -> web.Response:
    """GET /api/v1/alerts?recent_s=86400: firing alerts, recent state changes, active silences."""
    try:
        recent_s = float(request.query.get("recent_s", 86400))
    except ValueError:
        return _error(400, "recent_s must be a number of seconds")
    if not 0 < recent_s <= MAX_RECENT_S:
        return _error(400, f"recent_s must be in (0, {MAX_RECENT_S:.0f}]")
    try:
        listing = await asyncio.to_thread(alert_listing, request.app[SERVICE].inventory, recent_s)
    except (OSError, ValueError) as exc:
        return _error(503, f"cannot read the alert state: {exc}")
    return web.json_response(listing)


def _silence_store(app: web.Application) -> SilenceStore:
    alerts = app.get(ALERTS)
    if alerts is not None:
        return alerts.engine.silences  # the engine's own store: one lock for both writers
    return SilenceStore.load(app[SERVICE].inventory.data_dir() / SILENCES_FILE)


def _admin_refusal(request: web.Request) -> web.Response | None:
    try:
        request.app[SERVICE].authenticate_admin(request.headers.get("Authorization"))
    except AdminDisabledError as exc:
        return _error(403, str(exc))
    except AuthError as exc:
        return _error(401, str(exc))
    return None


def _finite_number(value: Any) -> float | None:
    """A JSON number as a float, or None for anything else (booleans, NaN, 1e999, an integer too big for a float)."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


async def handle_silence_add(request: web.Request) -> web.Response:
    """POST /api/v1/silences {sites, rules, subjects, duration_s | until (Unix s), comment, author} → 201."""
    refusal = _admin_refusal(request)
    if refusal is not None:
        return refusal
    body = await _read_json(request)
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    unknown = sorted(set(body) - {"sites", "rules", "subjects", "duration_s", "until", "comment", "author"})
    if unknown:
        return _error(400, f"unknown field(s): {', '.join(unknown)}")
    lists: dict[str, list[str]] = {}
    for key in ("sites", "rules", "subjects"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return _error(400, f"{key} must be a list of strings")
        lists[key] = value
    now = time.time()
    if ("duration_s" in body) == ("until" in body):
        return _error(400, "give exactly one of duration_s and until")
    for key in ("comment", "author"):
        if not isinstance(body.get(key, ""), str):
            return _error(400, f"{key} must be a string")
    key = "duration_s" if "duration_s" in body else "until"
    number = _finite_number(body[key])
    if number is None:
        return _error(400, f"{key} must be a finite number (seconds; until in Unix time)")
    until = now + number if key == "duration_s" else number
    problems = unknown_names(request.app[SERVICE].inventory, lists["sites"], lists["rules"], lists["subjects"])
    if problems:
        return _error(400, "; ".join(problems), problems=problems)
    try:
        silence = _silence_store(request.app).add(
            now, until, sites=lists["sites"], rules=lists["rules"], subjects=lists["subjects"],
            comment=body.get("comment") or "", author=body.get("author") or "",
        )
    except SilenceError as exc:
        return _error(400, str(exc))
    except OSError as exc:  # SilenceStoreError: the file cannot be read and is not written over
        return _error(503, str(exc))
    log.info("silence %s added over HTTP by %s until %s", silence.id, silence.author or "?", silence.until)
    return web.json_response(silence.to_json(), status=201)


async def handle_ack(request: web.Request) -> web.Response:
    """POST /api/v1/alerts/ack {rule, subject, comment, author} (admin token) → 201: someone is on it."""
    refusal = _admin_refusal(request)
    if refusal is not None:
        return refusal
    body = await _read_json(request)
    if not isinstance(body, dict) or not {"rule", "subject"} <= body.keys() or not body.keys() <= {"rule", "subject", "comment", "author"}:
        return _error(400, "expected {rule, subject} and optionally comment and author")
    if not all(isinstance(body.get(k, ""), str) for k in ("rule", "subject", "comment", "author")):
        return _error(400, "rule, subject, comment and author must be strings")
    try:
        ack = await asyncio.to_thread(
            acknowledge, request.app[SERVICE].inventory, body["rule"], body["subject"], body.get("author") or "?", body.get("comment", "")
        )
    except AckError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    except OSError as exc:
        return _error(503, f"cannot keep the acknowledgement: {exc}")
    log.info("alert %s %s acknowledged over HTTP by %s", ack.rule, ack.subject, ack.by)
    return web.json_response({"rule": ack.rule, "subject": ack.subject, "by": ack.by, "at": ack.at, "comment": ack.comment}, status=201)


async def handle_silence_list(request: web.Request) -> web.Response:
    return web.json_response([s.to_json() for s in _silence_store(request.app).active(time.time())])


async def handle_silence_remove(request: web.Request) -> web.Response:
    refusal = _admin_refusal(request)
    if refusal is not None:
        return refusal
    silence_id = request.match_info["silence_id"]
    try:
        removed = _silence_store(request.app).remove(silence_id)
    except OSError as exc:
        return _error(503, str(exc))
    if not removed:
        return _error(404, f"no active silence {silence_id!r}")
    return web.Response(status=204)


def _page(request: web.Request, text: str) -> web.Response:
    """A status page: never cached, compressed when the browser takes gzip (slow lines), and only
    its own inline script may run (collector/status/layout.py)."""
    from collector.status.layout import content_security_policy

    policy = content_security_policy(request.app[SERVICE].inventory.collector.status_refresh_s)
    response = web.Response(text=text, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": policy})
    response.enable_compression()
    return response


def _main_part(request: web.Request) -> bool:
    """`?part=main`: only the live part, for the page's refresh in place."""
    from collector.status.layout import MAIN_PART, PART_PARAM

    return request.query.get(PART_PARAM) == MAIN_PART


async def handle_status_page(request: web.Request) -> web.Response:
    from collector.status import overview, sections

    app = request.app
    service = app[SERVICE]
    view = sections.view_of(request.query)
    health = await asyncio.to_thread(health_report, app)
    alert_service = app.get(ALERTS)
    alerts = alert_service.engine.firing(time.time()) if alert_service is not None else None
    history = await asyncio.to_thread(sections.gather, app[HISTORY], service.inventory, view, time.time())
    render = overview.render_main if _main_part(request) else overview.render_status
    return _page(request, render(service, time.time_ns(), health, alerts, history, view))


async def handle_site_page(request: web.Request) -> web.Response:
    from collector.status import sections, site as site_page

    service = request.app[SERVICE]
    site = next((s for s in service.inventory.site if s.id == request.match_info["site_id"]), None)
    if site is None:
        raise web.HTTPNotFound(reason=f"no site {request.match_info['site_id']!r} in the inventory")
    view = sections.view_of(request.query)
    history = await asyncio.to_thread(sections.gather, request.app[HISTORY], service.inventory, view, time.time())
    render = site_page.render_site_main if _main_part(request) else site_page.render_site
    return _page(request, render(site, service, time.time_ns(), history, view))


async def handle_device_page(request: web.Request) -> web.Response:
    from collector.status import device as device_page
    from collector.timeseries import SourceError

    service = request.app[SERVICE]
    device = next((d for d in service.inventory.device if d.id == request.match_info["device_id"]), None)
    if device is None:
        raise web.HTTPNotFound(reason=f"no device {request.match_info['device_id']!r} in the inventory")
    history, error = None, None
    try:
        history = await asyncio.to_thread(request.app[HISTORY].device, service.inventory, device, time.time())
    except SourceError as exc:
        error = str(exc)
    render = device_page.render_device_main if _main_part(request) else device_page.render_device
    return _page(request, render(device, service, time.time_ns(), history, error))


async def _queue_ctx(app: web.Application) -> AsyncIterator[None]:
    inventory = app[INVENTORY]
    queue = DurableQueue(inventory.data_dir() / "queue.sqlite3", inventory.collector.queue_max_bytes)
    app[QUEUE] = queue
    app[SERVICE] = app[INGEST] = CollectorService(inventory, queue, inventory.data_dir() / LIVENESS_FILE)
    yield
    try:
        app[SERVICE].save_liveness()
    except OSError as exc:
        log.error("liveness state not saved: %s", exc)
    queue.close()


async def _writer_ctx(app: web.Application) -> AsyncIterator[None]:
    inventory = app[INVENTORY]
    sink = make_sink(inventory)
    if sink is None:
        log.info("storage kind 'local': points are kept in %s for %d days (raw_retention_days) and within %d bytes "
                 "(queue_max_bytes), or until InfluxDB is configured", app[QUEUE].path, inventory.storage.raw_retention_days,
                 app[QUEUE].max_bytes)
        expiry = asyncio.create_task(_expire_local_store(app), name="local-store-expiry")
        yield
        expiry.cancel()
        await asyncio.gather(expiry, return_exceptions=True)
        return
    storage = inventory.storage
    writer = QueueWriter(
        app[QUEUE], sink, storage.batch_size, storage.flush_interval_s, backoff_max_s=inventory.collector.write_backoff_max_s,
        write_concurrency=storage.write_concurrency,
    )
    app[WRITER] = writer
    app[SERVICE].subscribers.append(lambda source, points: writer.wake())
    task = asyncio.create_task(writer.run(), name="influx-writer")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # One last drain attempt so a clean shutdown leaves nothing behind that could be written now.
    try:
        await asyncio.wait_for(writer.drain_once(), timeout=5)
    except Exception as exc:  # the points stay queued on disk; they are written at next start
        log.info("final drain skipped (%s); points stay queued", exc)
    engine = app.get(ROLLUP_ENGINE)
    if engine is not None:
        engine.close()  # after the final drain, which folds into it
    await sink.close()


def _event_copy() -> EventCopy:
    """Event points are written whole into the events policy too (docs/storage.md)."""
    from collector.rollups import EVENTS_RETENTION_POLICY, event_measurements

    return EventCopy(EVENTS_RETENTION_POLICY, frozenset(spec.name for spec in event_measurements()))


LOCAL_EXPIRY_INTERVAL_S = 3600.0


async def _expire_local_store(app: web.Application) -> None:
    """The local store's time bound: at start and hourly, batches older than raw_retention_days go."""
    while True:
        try:
            days = app[SERVICE].inventory.storage.raw_retention_days
            expired = await asyncio.to_thread(app[QUEUE].expire, time.time_ns() - days * 86400 * 1_000_000_000)
            if expired:
                log.info("local store: %d points older than %d days (raw_retention_days) removed", expired, days)
        except Exception:  # the disk: try again at the next round, the store keeps its size bound meanwhile
            log.exception("local store: expiry failed; trying again in %.0f s", LOCAL_EXPIRY_INTERVAL_S)
        await asyncio.sleep(LOCAL_EXPIRY_INTERVAL_S)


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """InfluxDB 1.x: retention policies and continuous queries as the inventory asks (collector/retention.py)."""
    from collector.laterollups import LateRollups
    from collector.retention import RollupMaintainer, StoragePlan

    inventory = app[INVENTORY]
    writer = app.get(WRITER)
    if writer is None or inventory.storage.rollups_by != "continuous_queries":
        yield
        return

    # Points written too late for the continuous queries: their hours rolled up again (collector/laterollups.py).
    late = app[LATE_ROLLUPS] = LateRollups(inventory)
    writer.note_late = late.note_written

    def ready(plan: StoragePlan) -> None:
        writer.event_copy = _event_copy()
        late.plan = plan

    maintainer = app[ROLLUPS] = RollupMaintainer(inventory, ready)
    writer.on_copy_refused = lambda error: maintainer.wake()
    tasks = [asyncio.create_task(maintainer.run(), name="retention"), asyncio.create_task(late.run(), name="late-rollups")]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _rollup_engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """Storage without continuous queries: the collector makes the rollups as it writes
    (collector/rollup_engine.py; docs/storage.md, "Storage without continuous queries")."""
    from collector.resolution_rows import ResolutionRowKeeper, rows_wanted_here
    from collector.rollup_engine import CAUGHT_UP_S, STATE_FILE, RollupEngine, destinations, startup_notes

    inventory, queue = app[INVENTORY], app[QUEUE]
    writer = app.get(WRITER)
    if writer is None or inventory.storage.rollups_by != "collector":
        yield
        return
    engine = app[ROLLUP_ENGINE] = RollupEngine(inventory.data_dir() / STATE_FILE, writer.sink, destinations(inventory.storage),
                                               queue_highest_id=queue.highest_batch_id())
    writer.rollups = engine  # closed by the writer's context, after its final drain folded into it
    if inventory.storage.kind == "influxdb_v1":
        writer.event_copy = _event_copy()  # into the policy the storage's admin made, as the rollups' (docs/storage.md)
    for note in await asyncio.to_thread(startup_notes, inventory):
        log.warning("%s", note)
    log.info("rollups are made by the collector as it writes (state in %s, open buckets %s)", engine.path, engine.health()["open_buckets"])
    tasks = [asyncio.create_task(engine.run(lambda: queue.stats()["queue_age_s"] <= CAUGHT_UP_S), name="rollups")]
    if rows_wanted_here(inventory):  # the dashboards' resolution rows, which no retention set-up writes here
        keeper = app[RESOLUTION_ROWS] = ResolutionRowKeeper(inventory)
        tasks.append(asyncio.create_task(keeper.run(), name="resolution-rows"))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
        "queue_age_s": float(stats["queue_age_s"]),
        "rate_limited": float(service.rate_limited),
        "too_old_points": float(service.too_old_points),
        "written_points": float(stats["written_points"]),
        "dropped_points": float(stats["dropped_points"]),
        "rejected_points": float(stats["rejected_points"]),
        "agents_up": float(sum(1 for s in service.agents.values() if s.up)),
        "agents_down": float(sum(1 for s in service.agents.values() if s.up is False)),
        "agents_waiting": float(sum(1 for s in service.agents.values() if s.up is None)),
        "agents_total": float(len(service.agents)),
    }
    if writer is not None:
        fields["write_errors"] = float(writer.stats.write_errors)
    return [Point("collector", {"collector": app[INVENTORY].collector_name or "main"}, fields, now_ns)]


async def _housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        last_report = 0.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                now = time.time_ns()
                points = app[SERVICE].evaluate_liveness(now)
                if time.monotonic() - last_report >= SELF_MONITOR_INTERVAL_S - 0.5:
                    last_report = time.monotonic()
                    points += await asyncio.to_thread(collector_points, app, now)
                await app[SERVICE].store_local("collector", points)
                await asyncio.to_thread(app[SERVICE].save_liveness)
            except Exception:  # one bad round (the queue's disk) must not end liveness for good
                log.exception("housekeeping round failed; trying again in %.0f s", HOUSEKEEPING_INTERVAL_S)

    task = asyncio.create_task(loop(), name="housekeeping")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _snmp_ctx(app: web.Application) -> AsyncIterator[None]:
    from collector.pollers import SnmpScheduler

    emit = app[SERVICE].store_local
    current = SnmpScheduler(app[INVENTORY], emit)
    current.start()

    async def restart(old: Inventory, new: Inventory) -> None:
        nonlocal current
        # Only when devices changed: a restart forgets counters, so the next rates come a poll later.
        if old.device != new.device:
            await current.stop()
            current = SnmpScheduler(new, emit)
            current.start()

    reloader = app.get(RELOADER)
    if reloader is not None:
        reloader.hooks.append(restart)
    yield
    await current.stop()


LIFECYCLE_INTERVAL_S = 3600.0


async def _history_ctx(app: web.Application) -> AsyncIterator[None]:
    """With the local store, the status page's history is folded once as the collector starts
    (collector/history_stores.py `LocalHistory`: a day of batches decoded), in a thread, so the
    first page view does not wait for it."""
    from collector.timeseries import SourceError

    async def fold() -> None:
        started = time.monotonic()
        try:
            await asyncio.to_thread(app[HISTORY].fold_local_store, app[SERVICE].inventory, time.time())
        except SourceError as exc:
            log.warning("status page history not read at start: %s", exc)
            return
        log.info("status page history folded from the local store in %.1f s", time.monotonic() - started)

    task = asyncio.create_task(fold(), name="history-fold") if app[INVENTORY].storage.kind == "local" else None
    yield
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _lifecycle_ctx(app: web.Application) -> AsyncIterator[None]:
    """The inventory's replacement plan as `lifecycle` points, at start and hourly (ages move)."""
    from collector.lifecycle import lifecycle_points

    async def loop() -> None:
        while True:
            try:
                await app[SERVICE].store_local("lifecycle", lifecycle_points(app[SERVICE].inventory, time.time_ns()))
            except Exception:
                log.exception("lifecycle points not stored; trying again in %.0f s", LIFECYCLE_INTERVAL_S)
            await asyncio.sleep(LIFECYCLE_INTERVAL_S)

    task = asyncio.create_task(loop(), name="lifecycle")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _ssh_ctx(app: web.Application) -> AsyncIterator[None]:
    """Facts and configuration backups over SSH for every device with [device.ssh], on its interval."""
    from collector.ssh.scheduler import SshScheduler

    async def announce(**event: Any) -> int:
        # Looked up per call: the alerting context starts after this one.
        alerts = app.get(ALERTS)
        return 0 if alerts is None else await alerts.announce(**event)

    scheduler = SshScheduler(app[INVENTORY], app[SERVICE].store_local, announce=announce)
    scheduler.start()
    yield
    await scheduler.stop()


def create_app(
    inventory: Inventory, *, inventory_path: Path | None = None, alerting: AlertingOptions | None = AlertingOptions()
) -> web.Application:
    """The collector app; with `inventory_path` the inventory reloads on SIGHUP and on file change.

    `alerting`: how the alert engine runs (tests: a shorter interval, group_wait_s=0), or None for
    no alert engine. It runs when the inventory has rules or channels: channels without rules still
    carry one-off events (configuration changes, the monthly digest).
    """
    app = web.Application(client_max_size=inventory.collector.max_batch_bytes, middlewares=[json_errors])
    app[INVENTORY] = inventory
    app[HISTORY] = HistoryService()
    if inventory_path is not None:
        app[RELOADER] = InventoryReloader(inventory_path, inventory)
    app.cleanup_ctx.append(_queue_ctx)
    app.cleanup_ctx.append(_reload_ctx)
    app.cleanup_ctx.append(_writer_ctx)
    app.cleanup_ctx.append(_retention_ctx)
    app.cleanup_ctx.append(_rollup_engine_ctx)
    app.cleanup_ctx.append(_housekeeping_ctx)
    app.cleanup_ctx.append(_snmp_ctx)
    app.cleanup_ctx.append(_lifecycle_ctx)
    app.cleanup_ctx.append(_history_ctx)
    if any(device.ssh is not None for device in inventory.device):
        app.cleanup_ctx.append(_ssh_ctx)
    if alerting is not None and (inventory.alert or inventory.channel):
        app.cleanup_ctx.append(alerting_context(alerting))
    app.router.add_post(INGEST_PATH, handle_ingest)
    app.router.add_get("/api/v1/agents/{agent_id}/config", handle_agent_config)
    app.router.add_post(HEARTBEAT_PATH, handle_agent_heartbeat)
    app.router.add_get("/api/v1/health", handle_health)
    app.router.add_get("/api/v1/alerts", handle_alerts)
    app.router.add_post("/api/v1/alerts/ack", handle_ack)
    app.router.add_get("/api/v1/silences", handle_silence_list)
    app.router.add_post("/api/v1/silences", handle_silence_add)
    app.router.add_delete("/api/v1/silences/{silence_id}", handle_silence_remove)
    app.router.add_get("/", handle_status_page)
    app.router.add_get("/site/{site_id}", handle_site_page)
    app.router.add_get("/device/{device_id}", handle_device_page)
    return app


class StartupError(Exception):
    """The collector cannot start on this machine (port in use, unreadable certificate, data folder): one line for the user."""


async def serve(
    inventory: Inventory,
    listen: str | None = None,
    ready: Callable[[str], None] | None = None,
    inventory_path: Path | None = None,
) -> None:
    """Run the collector until cancelled; `ready` gets the base URL once the port is bound.

    Raises StartupError, naming what and why, when it cannot start.
    """
    address = listen or inventory.collector.listen
    host, _, port = address.rpartition(":")
    settings = inventory.collector
    ssl_context = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            ssl_context = _server_tls(inventory)
        except (OSError, ValueError, SecretError) as exc:  # ssl.SSLError is an OSError
            raise StartupError(f"cannot load the TLS certificate {settings.tls_cert} and its key: {exc}") from None
    app = create_app(inventory, inventory_path=inventory_path)
    if settings.ingest_workers:
        # The workers listen, each with its own connection guard; main answers what they pass on.
        workers = app[INGEST_WORKERS] = IngestWorkers(settings.ingest_workers, host.strip("[]"), int(port))
    else:
        guard = app[CONNECTIONS] = connections.ConnectionGuard(settings.max_connections_per_client)
    # keepalive_timeout: aiohttp closes a connection idle that long without a complete request
    # head, also right after it opened, so idle and trickling clients are let go.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.request_head_timeout_s)
    try:
        await runner.setup()  # opens the queue, starts the writer and pollers
    except (OSError, sqlite3.Error, SecretError) as exc:
        await runner.cleanup()
        raise StartupError(f"cannot start: {exc}") from None
    server = None
    try:
        assert runner.server is not None
        try:
            if settings.ingest_workers:
                bound_port = await workers.start(app[SERVICE], runner.server)
            else:
                server = await connections.listen(runner.server, host.strip("[]"), int(port), guard, ssl_context)
                bound_port = server.sockets[0].getsockname()[1]
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise StartupError(f"cannot listen on {address}: {reason}") from None
        except WorkerStartError as exc:
            raise StartupError(str(exc)) from None
        scheme = "https" if ssl_context else "http"
        url = f"{scheme}://{host}:{bound_port}"
        log.info("collector listening on %s", url)
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        if server is not None:
            server.close()
        if settings.ingest_workers:
            await workers.stop()  # before the queue closes: what they still have in hand is committed
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
