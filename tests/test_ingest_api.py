"""The collector's HTTP API, served for real on a loopback port: ingest, agent config, health, bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from collector.app import QUEUE, create_app
from collector.config import parse_inventory
from collector.service import token_hash

TOKEN = "token-for-pc1"
OTHER_TOKEN = "token-for-pc2"


def inventory(tmp_path: Path, **collector: Any):
    return parse_inventory(
        {
            "collector": {"data_dir": str(tmp_path / "data"), **collector},
            "lifecycle": {"kinds": {"pc": {"lifetime_years": 5, "replacement_cost_nok": 1}}},
            "site": [{"id": "radhus", "name": "Rådhuset"}],
            "agent": [
                {"id": "pc1", "name": "PC 1", "site": "radhus", "token_sha256": token_hash(TOKEN)},
                {"id": "pc2", "name": "PC 2", "site": "radhus", "token_sha256": token_hash(OTHER_TOKEN)},
            ],
            "probe": [{"name": "gw", "kind": "icmp", "target": "127.0.0.1", "sites": ["radhus"], "params": {"count": 3}}],
        },
        tmp_path / "inventory.toml",
    )


def batch(seq: int, points: list[dict[str, Any]] | None = None, agent: str = "pc1") -> dict[str, Any]:
    return {
        "agent": agent,
        "seq": seq,
        "points": points
        if points is not None
        else [{"measurement": "host", "tags": {"host": "spoofed"}, "fields": {"cpu_pct": 12.5}, "time": 1_700_000_000_000_000_000}],
    }


async def with_collector(tmp_path: Path, scenario, **collector: Any) -> None:
    app = create_app(inventory(tmp_path, **collector))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await scenario(app, http)
    finally:
        await runner.cleanup()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ingest_accepts_dedupes_and_stamps(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", json=batch(7), headers=auth()) as resp:
            assert resp.status == 200
            assert await resp.json() == {"seq": 7, "accepted": 1, "duplicate": False}
        async with http.post("/api/v1/ingest", json=batch(7), headers=auth()) as resp:
            assert resp.status == 200
            assert (await resp.json())["duplicate"] is True
        queued = app[QUEUE].peek(100)
        assert len(queued) == 1
        # site and host come from the inventory, not from what the agent claims
        assert dict(queued[0].points[0].tags) == {"host": "pc1", "site": "radhus"}

    asyncio.run(with_collector(tmp_path, scenario))


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (batch(1), {}, 401, "missing bearer token (Authorization: Bearer <token>)"),
        (batch(1), auth("wrong"), 401, "unknown token"),
        (batch(1, agent="pc2"), auth(), 403, "token belongs to agent 'pc1', batch says 'pc2'"),
        (b"{not json", auth(), 400, None),
        (batch(1, [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": [1]}, "time": 5}]), auth(), 400,
         "points[0].fields.cpu_pct: expected a number, boolean or string, got list"),
        (batch(1, [{"measurement": "bogus", "tags": {}, "fields": {"x": 1}, "time": 5}]), auth(), 400, None),
        (batch(1, [{"measurement": "host", "tags": {}, "fields": {"x": 1}, "time": "yesterday"}]), auth(), 400,
         "points[0].time: expected a positive integer (ns since epoch), got 'yesterday'"),
        (batch(1, [{"measurement": "host", "tags": {"nic": "a\nb"}, "fields": {"x": 1}, "time": 5}]), auth(), 400,
         "points[0].tags.nic: control characters (newline, tab, ...) cannot be stored in a tag"),
        ({"agent": "pc1", "seq": -1, "points": []}, auth(), 400, "seq: expected a non-negative integer, got -1"),
    ],
    ids=["no-token", "wrong-token", "other-agent", "malformed-json", "field-type", "measurement", "time", "tag-newline", "seq"],
)
def test_bad_input_gets_clear_json_error_and_loses_nothing(tmp_path: Path, body: Any, headers: dict[str, str], status: int, message: str | None) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", json=batch(1), headers=auth()) as resp:
            assert resp.status == 200
        kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with http.post("/api/v1/ingest", headers=headers, **kwargs) as resp:
            assert resp.status == status
            answer = await resp.json()
            assert "error" in answer
            if message is not None:
                assert answer["error"] == message
        assert app[QUEUE].stats()["queue_points"] == 1  # what was accepted before is still there

    asyncio.run(with_collector(tmp_path, scenario))


def test_oversized_batches_get_413(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", data=b"x" * 5000, headers=auth()) as resp:
            assert resp.status == 413
            assert (await resp.json())["max_bytes"] == 4000
        many = [{"measurement": "host", "tags": {}, "fields": {"x": 1}, "time": 5}] * 11
        async with http.post("/api/v1/ingest", json=batch(2, many), headers=auth()) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"] == "points: 11 points in one batch, at most 10"

    asyncio.run(with_collector(tmp_path, scenario, max_batch_bytes=4000, max_batch_points=10))


def test_agent_config_and_health(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.get("/api/v1/agents/pc1/config", headers=auth()) as resp:
            assert resp.status == 200
            config = await resp.json()
        assert config["site"] == "radhus"
        assert config["probes"] == [
            {"kind": "icmp", "target": "127.0.0.1", "name": "gw", "interval_s": 30.0, "timeout_s": 5.0, "params": {"count": 3}}
        ]
        async with http.get("/api/v1/agents/pc2/config", headers=auth()) as resp:
            assert resp.status == 403
        async with http.get("/api/v1/health") as resp:
            health = await resp.json()
        assert health["status"] == "ok" and health["storage"]["kind"] == "local"
        assert set(health["agents"]) == {"pc1", "pc2"}

    asyncio.run(with_collector(tmp_path, scenario))
