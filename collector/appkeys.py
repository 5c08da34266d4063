"""The collector app's typed keys, in one place: what lives in `app[...]`, and who puts it there.

The app (collector/app.py) and the contexts it installs (collector/alerting/context.py) both
read them from here, so neither imports the other.
"""

from __future__ import annotations

from aiohttp import web

from collector.alerting.service import AlertService
from collector.config import Inventory
from collector.connections import ConnectionGuard
from collector.history import HistoryService
from collector.laterollups import LateRollups
from collector.queue import DurableQueue
from collector.reload import InventoryReloader
from collector.resolution_rows import ResolutionRowKeeper
from collector.retention import RollupMaintainer
from collector.rollup_engine import RollupEngine
from collector.service import BatchIngest, CollectorService
from collector.workers import IngestWorkers
from collector.writer import QueueWriter

INVENTORY = web.AppKey("inventory", Inventory)  # as at start (create_app); the live one is SERVICE.inventory
QUEUE = web.AppKey("queue", DurableQueue)  # the queue context
SERVICE = web.AppKey("service", CollectorService)  # the queue context
INGEST = web.AppKey("ingest", BatchIngest)  # what ingest runs on: SERVICE in the collector, a worker's own in an ingest worker
INGEST_WORKERS = web.AppKey("ingest_workers", IngestWorkers)  # serve(), with [collector] ingest_workers
WRITER = web.AppKey("writer", QueueWriter)  # the writer context, when storage is InfluxDB
RELOADER = web.AppKey("reloader", InventoryReloader)  # create_app, when it knows the inventory's path
CONNECTIONS = web.AppKey("connections", ConnectionGuard)  # serve(), when it listens
ALERTS = web.AppKey("alerts", AlertService)  # the alerting context, when alerting runs
ROLLUPS = web.AppKey("rollups", RollupMaintainer)  # the retention context, when InfluxDB 1.x's continuous queries make the rollups
ROLLUP_ENGINE = web.AppKey("rollup_engine", RollupEngine)  # the retention context, when the collector makes them
LATE_ROLLUPS = web.AppKey("late_rollups", LateRollups)  # the retention context, beside ROLLUPS
RESOLUTION_ROWS = web.AppKey("resolution_rows", ResolutionRowKeeper)  # the rollup engine context, on InfluxDB 1.x
HISTORY = web.AppKey("history", HistoryService)  # create_app: what the status pages read of the past, kept briefly
