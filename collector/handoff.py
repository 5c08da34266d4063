"""What an ingest worker and the collector's main process say to each other (collector/workers.py).

One unix-socket connection per worker; each message is one frame: its length (4 bytes, big
endian) and a JSON object whose `op` says what it is.

worker -> main: `hello` (its index; main knows its pid from the socket); `ready` (it listens) or `failed` (it cannot, and why);
`batch` (a batch it has checked, with a request id); `limited` (it answered an agent 429); `took`
(it runs on the inventory of that reload).
main -> worker: `start` (the inventory in force and where to listen), `inventory` (a reload), and
for each batch one `answer` (the agent's answer, once the batch is committed) or `failed` (main
could not commit it; the agent gets the 500 a lone collector gives).

A batch travels as its stored points and their lines: each series (measurement and tags) once,
then each point as its series' index, its fields and its time, so main builds the points without
checking or encoding anything again. The inventory travels pickled: main and its workers are the
same program, on a socket only their user can open.
"""

from __future__ import annotations

import asyncio
import base64
import pickle
import struct
from typing import Any

import orjson

from agent.points import Point
from collector.config import Inventory
from collector.logins import UserNames
from collector.queue import made_lines
from collector.service import PreparedBatch, TargetState

_LENGTH = struct.Struct(">I")
# A frame is the batch's points and lines: a little more than the request body (4 MiB by default).
MAX_FRAME_BYTES = 1 << 30


class CollectorUnreachableError(Exception):
    """The collector's main process did not take the batch (it is gone, or going): HTTP 503, the agent resends."""


class FrameError(Exception):
    """Something on the socket that is not a frame of this protocol."""


def frame(message: dict[str, Any]) -> bytes:
    payload = orjson.dumps(message)
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None once the other side has closed the connection."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("connection closed inside a frame's length") from None
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME_BYTES:
        raise FrameError(f"a frame of {length} bytes, more than {MAX_FRAME_BYTES}")
    try:
        message = orjson.loads(await reader.readexactly(length))
    except asyncio.IncompleteReadError:
        raise FrameError(f"connection closed inside a frame of {length} bytes") from None
    if type(message) is not dict or type(message.get("op")) is not str:
        raise FrameError("a frame that is not an object with an op")
    return message


def batch_message(request_id: int, batch: PreparedBatch) -> dict[str, Any]:
    series: list[tuple[str, Any]] = []
    index: dict[tuple[Any, ...], int] = {}
    points = []
    for point in batch.points:
        key = (point.measurement, *point.tags.items())
        at = index.get(key)
        if at is None:
            at = index[key] = len(series)
            series.append((point.measurement, point.tags))
        points.append((at, point.fields, point.time_ns))
    return {
        "op": "batch", "id": request_id, "agent": batch.agent, "seq": batch.seq, "series": series, "points": points,
        "lines": made_lines(batch.points, batch.lines), "too_old": batch.too_old, "newest_ns": batch.newest_ns,
        "probes": {target: (s.time_ns, s.up, s.latency_ms, s.reason) for target, s in batch.probes.items()},
    }


def batch_of(message: dict[str, Any]) -> PreparedBatch:
    """The batch a `batch` message carries; the points of a series share its tags, as read back from lines."""
    series = message["series"]
    return PreparedBatch(
        message["agent"], message["seq"], [Point(*series[at], fields, time_ns) for at, fields, time_ns in message["points"]],
        message["lines"], message["too_old"], message["newest_ns"],
        {target: TargetState(*state) for target, state in message["probes"].items()},
    )


def inventory_blob(inventory: Inventory, user_names: UserNames) -> str:
    """The inventory in force and its user-name key, as main has them (the worker resolves no secret of them)."""
    return base64.b64encode(pickle.dumps((inventory, user_names), protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def inventory_of(blob: str) -> tuple[Inventory, UserNames]:
    inventory, user_names = pickle.loads(base64.b64decode(blob))
    return inventory, user_names


__all__ = ["CollectorUnreachableError", "FrameError", "batch_message", "batch_of", "frame", "inventory_blob", "inventory_of", "read_frame"]
