"""`nettvakt demo`: the whole product on this machine, with nothing to configure.

All on 127.0.0.1, and all stopped when the demo stops (Ctrl-C, SIGTERM or --duration):

- a collector, writing to a local influxd when one can be started, else keeping the points in
  its durable store (storage kind `local`) until InfluxDB is configured;
- an agent for this machine;
- when snmpsim is installed, the town hall's firewall, switch, printer and UPS, simulated from
  the project's own recordings (demo_data/snmprec) and polled by the collector;
- alert rules, and a channel of the demo's own: a webhook receiver that keeps each message in
  `alerts.jsonl` (and prints its title), so alerting works offline and nothing is sent anywhere.

The inventory it writes (collector/demo_inventory.py) carries hardware with ages and costs, so
`nettvakt report hardware --inventory <workdir>/inventory.toml` prints a replacement plan.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import shutil
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.commandline import Command
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE, run_until_signal
from agent.runner import Agent, AgentSettings
from collector.app import serve
from collector.config import Inventory, load_inventory
from collector.demo_inventory import DEMO_AGENT, DEMO_DATABASE, DEMO_DEVICES, RECORDINGS, demo_inventory, write_communities
from collector.localservers import (
    InfluxdServer,
    ServiceError,
    SnmpsimServer,
    free_port,
    resolve_binary,
    start_influxd,
    start_snmpsim,
)

log = logging.getLogger("nettvakt.demo")

ALERTS_PATH = "/alerts"
SNMPSIM_MISSING = "not installed (pip install snmpsim): the demo runs without the firewall, switch, printer and UPS"


def _start_local_influxd(workdir: Path) -> InfluxdServer | None:
    if shutil.which("influxd") is None:
        log.warning("influxd is not installed (Debian package influxdb): points stay in the collector's local store")
        return None
    try:
        server = start_influxd(workdir / "influxd")
    except ServiceError as exc:
        log.warning("could not start influxd (%s): points stay in the collector's local store", exc)
        return None
    body = f"q=CREATE DATABASE {DEMO_DATABASE}".encode()
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/query", data=body), timeout=10).read()
    return server


def _start_snmpsim(workdir: Path) -> tuple[SnmpsimServer | None, str]:
    """snmpsim serving the demo's recordings, and what to tell about it; None when it is absent or failed."""
    try:
        resolve_binary("snmpsim-command-responder")
    except ServiceError:
        return None, SNMPSIM_MISSING
    try:
        server = start_snmpsim(RECORDINGS, workdir / "snmpsim")
    except ServiceError as exc:
        log.error("snmpsim did not start: %s", exc)
        return None, "did not start (the log above says why): the demo runs without the simulated devices"
    return server, f"udp {server.host}:{server.port}, answering from {RECORDINGS}"


class AlertInbox:
    """The demo's alert channel: a webhook receiver on loopback that appends each message to a
    file, one JSON object a line, and in text mode prints its title.

    The socket is bound when the inbox is made, so the inventory can name its URL before the
    event loop runs."""

    def __init__(self, path: Path, echo: bool) -> None:
        self.path = path
        self.echo = echo
        self.sock = socket.create_server(("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{ALERTS_PATH}"

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            message = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON notification") from None
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(message, ensure_ascii=False) + "\n")
        if self.echo:
            print(f"  alert      {message.get('title', '')}", flush=True)
        return web.Response(status=204)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        app = web.Application()
        app.router.add_post(ALERTS_PATH, self._receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, self.sock).start()
            yield
        finally:
            await runner.cleanup()

    def close(self) -> None:
        self.sock.close()


def _nettvakt_command() -> str:
    """How to run nettvakt from a shell: by name when PATH finds this install's, else by its path
    (scripts/demo.sh runs .venv/bin/nettvakt, which is seldom on PATH)."""
    beside = Path(sys.executable).parent / "nettvakt"
    if beside.is_file() and shutil.which("nettvakt") != str(beside):
        return str(beside)
    return "nettvakt"


def _where(port: int, inventory_path: Path, workdir: Path, influx: InfluxdServer | None,
           snmpsim: SnmpsimServer | None, snmpsim_said: str, inbox: AlertInbox) -> dict[str, Any]:
    """What the demo prints: where to look, and what to try."""
    base = f"http://127.0.0.1:{port}"
    where: dict[str, Any] = {
        "collector": f"{base}/",
        "last_hour": f"{base}/?latency=1h",
        "health": f"{base}/api/v1/health",
        "alerts": f"{base}/api/v1/alerts",
        "inventory": str(inventory_path),
        "storage": "influxdb" if influx else f"local store {workdir / 'collector' / 'queue.sqlite3'}",
        "devices": [d.id for d in DEMO_DEVICES] if snmpsim else [],
        "snmpsim": snmpsim_said,
        "channel": f"webhook {inbox.url}",
        "received": str(inbox.path),
        "report": f"{_nettvakt_command()} report hardware --inventory {inventory_path}",
    }
    if influx is not None:
        where["influxdb"] = influx.url
        where["database"] = DEMO_DATABASE
        query = ("SELECT mean(in_bps) FROM interface WHERE time > now() - 5m GROUP BY device, ifname" if snmpsim
                 else "SELECT * FROM probe ORDER BY time DESC LIMIT 5")
        where["try"] = f"curl -G '{influx.url}/query' --data-urlencode 'db={DEMO_DATABASE}' --data-urlencode \"q={query}\""
    return where


# What a newcomer may not guess from the key alone, printed beside the value in text mode.
_NOTES = {
    "collector": "the status page: open it in a browser",
    "last_hour": "the same, latency by the minute: its charts fill within two minutes",
    "alerts": "what fires, as JSON",
    "received": "every message the demo's channel got",
}


def _print_where(where: dict[str, Any]) -> None:
    print("nettvakt demo is running (Ctrl-C stops it):")
    for key, value in where.items():
        shown = (", ".join(value) or "(none)") if isinstance(value, list) else value
        note = f"  ({_NOTES[key]})" if key in _NOTES else ""
        print(f"  {key:10} {shown}{note}")
    print("Within a minute: traffic and CPU of the simulated devices, an alert (the printer's black toner), "
          "and the replacement plan (the report command above)." if where["devices"] else
          "Within a minute: the agent's probes and host metrics, and the replacement plan (the report command above).")
    sys.stdout.flush()


async def _run(inventory: Inventory, agent: Agent, inbox: AlertInbox, where: dict[str, Any], args: argparse.Namespace) -> None:
    """The alert inbox, the collector and the agent, until cancelled or --duration has passed."""
    async with inbox.serving():
        collector_ready = asyncio.Event()
        server = asyncio.create_task(serve(inventory, ready=lambda url: collector_ready.set()))
        ready = asyncio.create_task(collector_ready.wait())
        await asyncio.wait({server, ready}, return_when=asyncio.FIRST_COMPLETED)
        if server.done():  # it failed before it listened: say why instead of waiting for ever
            ready.cancel()
            server.result()
        if args.json:
            print(json.dumps(where), flush=True)
        else:
            _print_where(where)
        agent_task = asyncio.create_task(agent.run())
        try:
            if args.duration:
                await asyncio.sleep(args.duration)
            else:
                await asyncio.gather(server, agent_task)
        finally:
            for task in (agent_task, server):
                task.cancel()
            await asyncio.gather(agent_task, server, return_exceptions=True)


def run_demo(args: argparse.Namespace) -> int:
    if args.lab:
        from collector.lab.demo import run_lab_demo

        return run_lab_demo(args)
    workdir = Path(args.workdir).resolve()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"nettvakt demo: cannot use --workdir {workdir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    influx = _start_local_influxd(workdir)
    snmpsim: SnmpsimServer | None = None
    inbox: AlertInbox | None = None
    try:
        snmpsim, snmpsim_said = _start_snmpsim(workdir)
        inbox = AlertInbox(workdir / "alerts.jsonl", echo=not args.json)
        port = free_port()
        token = secrets.token_urlsafe(24)
        inventory_path = workdir / "inventory.toml"
        write_communities(workdir)
        inventory_path.write_text(
            demo_inventory(workdir, port, hashlib.sha256(token.encode()).hexdigest(), influx.url if influx else None,
                           snmpsim.port if snmpsim else None, inbox.url),
            encoding="utf-8",
        )
        inventory = load_inventory(inventory_path)
        agent = Agent(
            AgentSettings(
                agent_id=DEMO_AGENT,
                collector_url=f"http://127.0.0.1:{port}",
                token=token,
                spool_path=workdir / "agent-spool.sqlite3",
            )
        )
        where = _where(port, inventory_path, workdir, influx, snmpsim, snmpsim_said, inbox)
        run_until_signal(_run(inventory, agent, inbox, where, args))
        return EXIT_OK
    except Exception as exc:  # the demo reports any start failure plainly, then cleans up below
        log.error("demo failed: %s", exc)
        return EXIT_FAIL
    finally:
        if inbox is not None:
            inbox.close()
        if snmpsim is not None:
            snmpsim.stop()
        if influx is not None:
            influx.stop()


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", action="store_true", help="build the simulated municipality in network namespaces (root)")
    parser.add_argument("--workdir", default="var/demo", metavar="PATH", help="where the demo keeps its data")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print the demo's endpoints as JSON")


COMMANDS = (
    Command(
        "demo", help="run a collector, a local agent and simulated devices",
        description="Start a collector and a local agent, writing to a local InfluxDB if one can be started, "
        "else to the collector's own durable store; with snmpsim installed, also a simulated firewall, switch, "
        "printer and UPS. Alert rules and hardware with ages and costs are in the inventory it writes.",
        arguments=_arguments, run=run_demo,
    ),
)
