"""The collector's gate, as a user meets it: real `nettvakt collector run` processes on loopback.

Start-up failures are one line on stderr and exit 2, never a traceback; a changed inventory
that does not validate is refused, announced through alerting (a real webhook receiver
here), and the collector keeps watching: the next good file is applied.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.localservers import free_port, wait_until, wait_until_async
from inventories import InventoryBuilder

REPO = Path(__file__).resolve().parents[1]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def gate_inventory(folder: Path, port: int, webhook_port: int, agents: tuple[str, ...] = ("pc1",)) -> InventoryBuilder:
    """The collector on `port`; agents at one site, each with the token `<id>-token`; alerts to a webhook at once."""
    inv = (
        InventoryBuilder(folder)
        .collector(listen=f"127.0.0.1:{port}")
        .alerting(group_wait_s=0)
        .channel("vakt", "webhook", url=f"http://127.0.0.1:{webhook_port}/hook")
        .route("vakt")
    )
    for agent in agents:
        inv.agent(agent)
    return inv


class Webhook:
    """A real HTTP receiver on loopback, in a thread of its own, keeping every JSON body posted to it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def hook(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> "Webhook":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _config_status(port: int, agent: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/agents/{agent}/config", headers={"Authorization": f"Bearer {agent}-token"}
    )
    try:
        with _NO_PROXY.open(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_bad_reload_is_refused_announced_and_the_next_good_one_applied(nettvakt, tmp_path: Path) -> None:
    port = free_port()
    with Webhook() as hook:
        path = gate_inventory(tmp_path, port, hook.port).write()
        log = tmp_path / "collector.log"
        proc = nettvakt.start(["collector", "run", "--inventory", str(path)], log)
        wait_until(lambda: _config_status(port, "pc1") == 200, 30, "the collector serving pc1")
        # The mistake that used to kill the file watcher (an SNMP profile under its SSH name), and a bad address.
        bad = gate_inventory(tmp_path, port, hook.port, ("pc1", "pc2")).device(
            "fw", host="127.0.0.300", hardware={"kind": "firewall", "lifetime_years": 8},
            snmp={"community": "env:NETTVAKT_NEVER_SET", "profile": "fortinet"},
        )
        bad.write()

        def announced() -> list[dict[str, Any]]:
            return [b for b in hook.bodies if "inventory_reload_failed" in json.dumps(b)]

        (event,) = wait_until(announced, 30, "the refused reload announced on the webhook")
        text = json.dumps(event, ensure_ascii=False)
        line = bad.text().splitlines().index('host = "127.0.0.300"') + 1
        assert f"{path}:{line}: device 'fw': host: '127.0.0.300' is not an IP address or host name" in text, text
        assert "(and 1 more; `nettvakt check" in text
        assert _config_status(port, "pc2") == 401  # the old inventory is in force
        # The next good file is applied: the watcher is alive.
        gate_inventory(tmp_path, port, hook.port, ("pc1", "pc2")).write()
        wait_until(lambda: _config_status(port, "pc2") == 200, 30, "the good inventory applied")
        assert proc.poll() is None
    nettvakt.stop(proc)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output
    refusals = [l for l in output.splitlines() if "inventory reload (file changed) refused" in l]
    assert len(refusals) == 1 and "(and 1 more; `nettvakt check" in refusals[0], refusals


def run_collector(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "collector", "run", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_start_up_failures_are_one_line_and_exit_2(tmp_path: Path) -> None:
    # A port already in use.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    path = gate_inventory(tmp_path, port, free_port()).write()
    try:
        result = run_collector("--inventory", str(path))
    finally:
        taken.close()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"nettvakt collector run: cannot listen on 127.0.0.1:{port}: address already in use"
    assert "Traceback" not in result.stderr
    # A certificate that is not a certificate.
    (tmp_path / "cert.pem").write_text("not a certificate\n", encoding="utf-8")
    (tmp_path / "key.pem").write_text("not a key\n", encoding="utf-8")
    gate_inventory(tmp_path, free_port(), free_port()).collector(tls_cert="cert.pem", tls_key="file:key.pem").write()
    result = run_collector("--inventory", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (last,) = result.stderr.strip().splitlines()[-1:]
    assert last.startswith("nettvakt collector run: cannot load the TLS certificate cert.pem and its key:"), result.stderr
    # A data folder it cannot create (a file stands where the folder should be).
    (tmp_path / "blocked").write_text("", encoding="utf-8")
    gate_inventory(tmp_path, free_port(), free_port()).collector(data_dir=tmp_path / "blocked" / "data").write()
    result = run_collector("--inventory", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("nettvakt collector run: cannot start:"), result.stderr
    # An unset secret: found before anything starts, with its line.
    gate_inventory(tmp_path, free_port(), free_port()).influxdb(
        "http://127.0.0.1:8086", "n", username="u", password="env:NETTVAKT_NEVER_SET"
    ).write()
    started = time.monotonic()
    result = run_collector("--inventory", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = path.read_text().splitlines().index('password = "env:NETTVAKT_NEVER_SET"') + 1
    assert f"{path}:{line}: storage.password: env:NETTVAKT_NEVER_SET: environment variable NETTVAKT_NEVER_SET is not set" in result.stderr
    assert time.monotonic() - started < 30


def test_init_writes_a_first_inventory_that_passes_check_and_starts_a_collector(nettvakt, tmp_path: Path) -> None:
    path = tmp_path / "kommune" / "inventory.toml"
    init = subprocess.run([sys.executable, "-m", "agent.cli", "init", str(path), "--site", "hansnes", "--site-name", "Hansnes"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert init.returncode == 0, init.stderr
    assert "# Check it with `nettvakt check`" in path.read_text(encoding="utf-8")  # commented, for people
    check = subprocess.run([sys.executable, "-m", "agent.cli", "check", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 0 and "OK (1 sites" in check.stdout, check.stderr
    again = subprocess.run([sys.executable, "-m", "agent.cli", "init", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert again.returncode == 2 and "never overwritten without --force" in again.stderr
    port = free_port()
    log = tmp_path / "collector.log"
    proc = nettvakt.start(["collector", "run", "--inventory", str(path), "--listen", f"127.0.0.1:{port}"], log)

    def health() -> dict[str, Any]:
        assert proc.poll() is None, log.read_text(errors="replace")
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as resp:
            return json.load(resp)

    assert wait_until(health, 30, "the collector started on the new inventory")["status"] == "ok"
    nettvakt.stop(proc)
    assert (path.parent / "var" / "collector" / "queue.sqlite3").exists()  # data_dir relative to the file


def test_one_failing_part_at_run_time_does_not_stop_the_others(tmp_path: Path, monkeypatch) -> None:
    """The queue refuses writes for a while (a full disk): liveness and the SNMP poller go on after it."""
    import sqlite3

    import collector.app as app_module
    from collector.app import QUEUE, create_app
    from collector.config import load_inventory

    monkeypatch.setattr(app_module, "HOUSEKEEPING_INTERVAL_S", 0.1)
    inv = gate_inventory(tmp_path, free_port(), free_port())
    snmp = {"community": inv.secret_file("community", "public"), "port": free_port(kind="udp"), "interval_s": 0.2, "timeout_s": 0.1, "retries": 0}
    path = inv.device("sw", hardware={"kind": "switch", "lifetime_years": 8}, snmp=snmp).write()

    async def scenario() -> set[str]:
        app = create_app(load_inventory(path, startup=True))
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            queue = app[QUEUE]
            real = queue.put_local
            failures = {"collector": 2, "device:sw": 2}  # each part meets the full disk twice
            stored: set[str] = set()

            def flaky(source: str, points: list) -> None:
                if failures.get(source, 0) > 0:
                    failures[source] -= 1
                    raise sqlite3.OperationalError("database or disk is full")
                real(source, points)
                stored.add(source)

            queue.put_local = flaky  # type: ignore[method-assign]
            await wait_until_async(lambda: {"collector", "device:sw"} <= stored, 30, "both parts storing again after the full disk")
            assert failures == {"collector": 0, "device:sw": 0}
            return stored
        finally:
            await runner.cleanup()

    assert {"collector", "device:sw"} <= asyncio.run(scenario())
