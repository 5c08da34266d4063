"""A probe kind registered at test time is picked up everywhere, with no other edit.

The toy kind "banner" connects to host:port and times the server's first line (as an SMTP or
SSH server greets); its descriptor (run function, checks, latency field, the fields it writes)
lives only in this file. Registered for one test at a time (`agent.probes.registered`): an
inventory using it validates and a mistake in it is named with its line; the configuration the
collector sends an agent carries it and the agent's side runs it against a real server on
loopback; its points fit the contract and pass the collector's ingest; its latency is what
`probe_latency` alerts on; the status page shows its target with that latency once a real agent
has measured it and reported to the real collector app; `nettvakt check` takes an inventory using
it and `nettvakt probe` lists it in its help and runs it. Afterwards the registry is as it was.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import aiohttp
import pytest

from agent.cli import main
from agent.contract import (
    MEASUREMENTS_SPEC,
    PROBE_KINDS,
    PROBE_LATENCY_FIELD,
    contract_errors,
    point_problems,
    probe_kinds_table,
    probe_latency_ms,
)
from agent.points import Point
from agent.probes import PROBES, ProbeConfigError, ProbeFailed, ProbeKind, ProbeSpec, registered, run_probe_points
from agent.probes.checks import check_host_port, split_host_port
from agent.probes.net import ms
from agent.runner import Agent, AgentSettings, RemoteConfig
from agent.schema import FieldSpec
from collector.alerting.config import AlertRule
from collector.alerting.engine import AlertEngine
from collector.app import create_app
from collector.appkeys import SERVICE
from collector.config import InventoryError, load_inventory
from collector.ingest import TimeWindow, agent_point
from collector.localservers import wait_until_async
from collector.queue import DurableQueue
from collector.service import CollectorService
from inventories import InventoryBuilder
from serving import serving
from test_alerting_engine import MONDAY_0814, FakeClock, events
from test_status_page import target_row

ROOT = Path(__file__).resolve().parents[1]
WINDOW = TimeWindow(max_ahead_s=300, max_age_s=90 * 86400)


# --- the toy kind: everything it is, in one place -------------------------------------------
async def probe_banner(target: str, params: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
    host, port = split_host_port(target)
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        line = await reader.readline()
    finally:
        writer.close()
    fields: dict[str, Any] = {"banner_ms": ms(time.perf_counter() - t0), "banner": line.decode("utf-8", "replace").strip()}
    if not line:
        raise ProbeFailed("closed without a banner", {"banner_ms": fields["banner_ms"]})
    if not str(fields["banner"]).startswith(params.get("expect", "")):
        raise ProbeFailed(f"unexpected banner: {fields['banner'][:40]}", fields)
    return fields


def check_expect(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise ProbeConfigError(f"{where}: expected the start of the banner as text, got {value!r}")


BANNER = ProbeKind(
    name="banner",
    run=probe_banner,
    check_target=check_host_port,  # the check tcp uses
    latency_field="banner_ms",
    fields=(
        FieldSpec("banner_ms", "ms", "banner: time from connect to the server's first line"),
        FieldSpec("banner", "string", "banner: the server's first line"),
    ),
    help="connect to host:port and time the server's greeting",
    params=MappingProxyType({"expect": check_expect}),
)


@pytest.fixture
def banner_kind() -> Iterator[ProbeKind]:
    """The toy kind registered for this test; afterwards the registry is as before."""
    before = dict(PROBES)
    with registered(BANNER):
        yield BANNER
    assert dict(PROBES) == before


@asynccontextmanager
async def banner_server(greeting: bytes) -> AsyncIterator[int]:
    """A TCP server on loopback that greets each connection with `greeting`; yields its port."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def toy_inventory(folder: Path, target: str = "127.0.0.1:2525", **params: Any) -> InventoryBuilder:
    """One site with one agent and one banner probe (with `expect = "220"` unless `params` are given)."""
    return (
        InventoryBuilder(folder)
        .agent("radhus-srv", name="Server rådhus")
        .probe("smtp-radhus", "banner", target, sites=["radhus"], params=params or {"expect": "220"})
    )


def written_text(inventory: InventoryBuilder) -> str:
    return inventory.write().read_text(encoding="utf-8")


def line_of(text: str, key: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(f"{key} ="))


# --- the registry itself -------------------------------------------------------------------
def test_the_registry_is_read_only_and_lists_the_five_kinds() -> None:
    with pytest.raises(TypeError):
        PROBES["banner"] = BANNER  # type: ignore[index]
    with pytest.raises(ValueError, match="registered already"), registered(PROBES["icmp"]):
        pass
    assert list(PROBES) == ["icmp", "tcp", "http", "dns", "traceroute"]
    assert all(name == kind.name for name, kind in PROBES.items())


def test_the_agent_loads_the_dns_and_traceroute_code_on_first_use_only() -> None:
    code = (
        "import sys, agent.runner, agent.probes, agent.contract\n"
        "from agent.probes import PROBES, ProbeSpec\n"
        "ProbeSpec.from_json({'kind': 'dns', 'target': 'a.no', 'name': 'd', 'params': {'resolver': '10.0.0.53'}}, 'p')\n"
        "ProbeSpec.from_json({'kind': 'traceroute', 'target': 'h', 'name': 't'}, 'p')\n"
        "print(sorted(m for m in sys.modules if m.endswith(('dns_query', 'traceroute_hops'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # validated, and described in the contract, without their measuring code


# --- inventory validation ------------------------------------------------------------------
def test_an_inventory_with_the_toy_kind_validates(banner_kind: ProbeKind, tmp_path: Path) -> None:
    [probe] = toy_inventory(tmp_path).load(startup=True).probe
    assert (probe.kind, probe.target, probe.params) == ("banner", "127.0.0.1:2525", {"expect": "220"})


def test_without_its_registry_line_the_toy_kind_is_unknown(tmp_path: Path) -> None:
    inventory = toy_inventory(tmp_path)
    text, path = written_text(inventory), inventory.path
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.lines() == [
        f"{path}:{line_of(text, 'kind')}: probe 'smtp-radhus': kind: unknown probe kind 'banner'; known: dns, http, icmp, tcp, traceroute"
    ]


@pytest.mark.parametrize(("params", "message"), [
    ({"expect": 220}, "params.expect: expected the start of the banner as text, got 220"),
    ({"expectt": "220"}, "params.expectt: unknown key for banner probes (known: expect)"),
])
def test_a_bad_param_of_the_toy_kind_is_named_with_its_line(
    banner_kind: ProbeKind, tmp_path: Path, params: dict[str, Any], message: str
) -> None:
    inventory = toy_inventory(tmp_path, **params)
    text, path = written_text(inventory), inventory.path
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.lines() == [f"{path}:{line_of(text, 'params')}: probe 'smtp-radhus': {message}"]


def test_a_bad_target_of_the_toy_kind_is_named_with_its_line(banner_kind: ProbeKind, tmp_path: Path) -> None:
    inventory = toy_inventory(tmp_path, target="mail.radhus")
    text, path = written_text(inventory), inventory.path
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    expected = "target: expected host:port (e.g. \"10.0.0.1:443\" or \"[::1]:22\"), got 'mail.radhus'"
    assert info.value.lines() == [f"{path}:{line_of(text, 'target')}: probe 'smtp-radhus': {expected}"]


# --- from the inventory to the agent's points, the ingest and an alert ----------------------
def agent_rounds(tmp_path: Path, greeting: bytes, rounds: int = 1) -> list[Point]:
    """The toy probe as the collector configures it and the agent runs it, against a real server on loopback."""

    async def scenario() -> list[Point]:
        async with banner_server(greeting) as port:
            inventory = toy_inventory(tmp_path, target=f"127.0.0.1:{port}").load(startup=True)
            queue = DurableQueue(tmp_path / "data" / "queue.sqlite3")
            try:
                [agent] = inventory.agent
                sent = CollectorService(inventory, queue).agent_config(agent)  # GET /api/v1/agents/{id}/config
            finally:
                queue.close()
            config = RemoteConfig.from_json(sent)  # as the agent reads it
            [spec] = config.probes
            assert spec == ProbeSpec("banner", f"127.0.0.1:{port}", "smtp-radhus", params=MappingProxyType({"expect": "220"}))
            tags = {"site": config.site, "host": config.agent}
            points: list[Point] = []
            for _ in range(rounds):
                points += await run_probe_points(spec, tags)  # what the agent's probe job spools
            return points

    return asyncio.run(scenario())


def test_the_agent_runs_the_toy_probe_from_the_collectors_config(banner_kind: ProbeKind, tmp_path: Path) -> None:
    [point] = agent_rounds(tmp_path, b"220 smtp.radhus ESMTP\r\n")
    assert point.measurement == "probe"
    assert dict(point.tags) == {"site": "radhus", "host": "radhus-srv", "kind": "banner", "target": "smtp-radhus"}
    assert point.fields["up"] == 1.0 and point.fields["banner"] == "220 smtp.radhus ESMTP"
    assert 0 <= point.fields["banner_ms"] <= point.fields["duration_ms"]
    assert probe_latency_ms("banner", point.fields) == point.fields["banner_ms"]


def test_a_failed_toy_round_is_a_point_with_its_reason(banner_kind: ProbeKind, tmp_path: Path) -> None:
    [point] = agent_rounds(tmp_path, b"554 go away\r\n")
    assert point.fields["up"] == 0.0 and point.fields["reason"] == "unexpected banner: 554 go away"
    assert point.fields["banner"] == "554 go away"  # what it measured before failing is kept
    spec = ProbeSpec.from_json({"kind": "banner", "target": "127.0.0.1:1", "name": "nobody"}, "probe")
    [refused] = asyncio.run(run_probe_points(spec, {}))
    assert refused.fields["up"] == 0.0 and refused.fields["reason"] == "connection refused"
    assert probe_latency_ms("banner", refused.fields) is None


def test_the_contract_takes_the_toy_kind_and_its_fields(banner_kind: ProbeKind, tmp_path: Path) -> None:
    assert "banner" in PROBE_KINDS and PROBE_LATENCY_FIELD["banner"] == "banner_ms"
    assert contract_errors() == []
    probe = MEASUREMENTS_SPEC["probe"]
    assert probe.tags["kind"].values is not None and "banner" in probe.tags["kind"].values
    assert probe.fields["banner_ms"].unit == "ms" and probe.fields["banner"].type == "string"
    assert "| `banner` | `banner_ms` | `expect` | connect to host:port and time the server's greeting |" in probe_kinds_table()
    [point] = agent_rounds(tmp_path, b"220 ok\r\n")
    assert point_problems(point.measurement, point.tags, point.fields, "agent") == []
    # Ingest compiles the contract into lookups, again whenever a registry changes: nothing to do here.
    posted = {**point.to_json(), "tags": {"kind": "banner", "target": "smtp-radhus"}}  # site and host come from the token
    stored = agent_point(posted, 0, "radhus-srv", "radhus", time.time_ns(), WINDOW)
    assert dict(stored.tags) == dict(point.tags) and stored.fields["banner"] == "220 ok"


def test_without_its_registry_line_the_contract_refuses_the_toy_points() -> None:
    fields = {"up": 1.0, "banner_ms": 3.0}
    problems = point_problems("probe", {"site": "radhus", "host": "pc1", "kind": "banner", "target": "smtp"}, fields, "agent")
    assert problems == [
        "probe.kind: 'banner' is not one of ('icmp', 'tcp', 'http', 'dns', 'traceroute')",
        "probe: field 'banner_ms' is not in the contract",
    ]
    assert probe_latency_ms("banner", fields) is None


def test_probe_latency_alerts_on_the_toy_kinds_latency(banner_kind: ProbeKind, tmp_path: Path) -> None:
    inventory = toy_inventory(tmp_path).channel("vakt", "webhook", url="http://127.0.0.1:9/hook").route("vakt").parse()
    slow = AlertRule(id="slow-target", kind="probe_latency", threshold=200, clear=150, for_s=60)
    clock = FakeClock(AlertEngine(inventory, [slow]), MONDAY_0814)
    tags = {"site": "radhus", "host": "radhus-srv", "kind": "banner", "target": "smtp-radhus"}

    def greeting_after(latency_ms: float) -> Any:
        return lambda now: [Point("probe", tags, {"up": 1.0, "banner_ms": latency_ms, "banner": "220 ok"}, int(now * 1e9))]

    assert clock.run(600, greeting_after(40.0)) == []
    assert events(clock.run(300, greeting_after(900.0))) == [("firing", "slow-target", "smtp-radhus@radhus-srv")]
    assert events(clock.run(300, greeting_after(40.0))) == [("resolved", "slow-target", "smtp-radhus@radhus-srv")]
    assert clock.sent[0].title.endswith("smtp-radhus@radhus-srv: svartid 900 ms (grense 200 ms)"), clock.sent[0].title


# --- the status page -----------------------------------------------------------------------
def test_the_status_page_shows_the_toy_target_with_its_latency(banner_kind: ProbeKind, tmp_path: Path) -> None:
    """A real agent takes its probes from the real collector app, measures two real servers and
    reports; the page shows each target with the latency its descriptor names (`banner_ms`)."""

    async def scenario() -> tuple[dict[str, Point], str]:
        async with banner_server(b"220 smtp.radhus ESMTP\r\n") as good, banner_server(b"554 go away\r\n") as bad:
            inventory = (
                toy_inventory(tmp_path, target=f"127.0.0.1:{good}")
                .probe("smtp-gammel", "banner", f"127.0.0.1:{bad}", sites=["radhus"], params={"expect": "220"})
            )
            app = create_app(inventory.parse(), alerting=None)
            async with serving(app, shutdown_timeout=0.1) as url:
                reported: dict[str, Point] = {}  # what reached the collector, by target
                app[SERVICE].subscribers.append(
                    lambda source, points: reported.update((p.tags["target"], p) for p in points if p.measurement == "probe")
                )
                agent = Agent(AgentSettings(agent_id="radhus-srv", collector_url=url, token=inventory.tokens["radhus-srv"],
                                            spool_path=tmp_path / "spool.sqlite3", send_interval_s=0.1))
                task = asyncio.create_task(agent.run())
                try:
                    await wait_until_async(lambda: reported.keys() >= {"smtp-radhus", "smtp-gammel"}, 30, "both toy rounds at the collector")
                    async with aiohttp.ClientSession(url) as http, http.get("/") as resp:
                        assert resp.status == 200
                        html = await resp.text()
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        return reported, html

    reported, html = asyncio.run(scenario())
    good, bad = reported["smtp-radhus"], reported["smtp-gammel"]
    assert good.fields["up"] == 1.0 and isinstance(good.fields["banner_ms"], float)
    # In the inventory's language (bokmål: a decimal comma).
    ms = lambda value: f"{value:.1f}".replace(".", ",") + " ms"  # noqa: E731  (the row is read with spaces normalised)
    assert target_row(html, "smtp-radhus").startswith(f"smtp-radhus banner radhus-srv oppe {ms(good.fields['banner_ms'])} ")
    # A failed round: down, with its reason; what it measured before failing is its latency still.
    assert bad.fields["up"] == 0.0
    assert target_row(html, "smtp-gammel").startswith(
        f"smtp-gammel banner radhus-srv NEDE {ms(bad.fields['banner_ms'])} (unexpected banner: 554 go away) "
    )


# --- the CLI -------------------------------------------------------------------------------
def test_check_takes_an_inventory_with_the_toy_kind_and_names_its_mistakes(
    banner_kind: ProbeKind, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = toy_inventory(tmp_path).write()
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK (1 sites, 0 devices, 1 agents, 1 probes, 0 channels)"
    inventory = toy_inventory(tmp_path, expectt="220")
    text = written_text(inventory)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"{path}:{line_of(text, 'params')}: probe 'smtp-radhus': params.expectt: unknown key for banner probes (known: expect)" in err, err


async def cli_probe(greeting: bytes, *args: str) -> tuple[int, int]:
    """`nettvakt probe banner 127.0.0.1:PORT ARGS` in-process (its own event loop, in a thread) against a real server; (port, exit code)."""
    async with banner_server(greeting) as port:
        return port, await asyncio.to_thread(main, ["probe", "banner", f"127.0.0.1:{port}", *args])


def test_nettvakt_probe_lists_and_runs_the_toy_kind(banner_kind: ProbeKind, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["probe", "--help"])
    assert done.value.code == 0
    assert "banner: connect to host:port and time the server's greeting" in " ".join(capsys.readouterr().out.split())

    port, code = asyncio.run(cli_probe(b"220 smtp.radhus ESMTP\r\n", "--json"))
    assert code == 0
    [line] = capsys.readouterr().out.splitlines()
    point = json.loads(line)
    assert (point["measurement"], point["tags"]) == ("probe", {"host": socket.gethostname().lower(), "kind": "banner", "target": "cli"})
    assert point["fields"]["up"] == 1.0 and point["fields"]["banner"] == "220 smtp.radhus ESMTP"
    assert 0 <= point["fields"]["banner_ms"] <= point["fields"]["duration_ms"]

    port, code = asyncio.run(cli_probe(b""))  # a server that hangs up without a word
    assert code == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"banner 127.0.0.1:{port}: ") and "up=0.0" in line and "reason=closed without a banner" in line, line

    # Its own parameters, checked by its own checks: no option of the command names them.
    port, code = asyncio.run(cli_probe(b"554 go away\r\n", "--param", 'expect="220"'))
    assert code == 1
    [line] = capsys.readouterr().out.splitlines()
    assert "up=0.0" in line and "reason=unexpected banner: 554 go away" in line, line
    port, code = asyncio.run(cli_probe(b"220 ok\r\n", "--param", "expect=220"))  # a bare word that TOML reads as a number
    assert code == 2
    assert "probe.params.expect: expected the start of the banner as text, got 220" in capsys.readouterr().err
    port, code = asyncio.run(cli_probe(b"220 ok\r\n", "--param", 'expect="220"'))
    assert code == 0 and "up=1.0" in capsys.readouterr().out


def test_without_its_registry_line_nettvakt_probe_refuses_the_toy_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "banner", "127.0.0.1:1"]) == 2
    assert "probe.kind: unknown probe kind 'banner'; known: dns, http, icmp, tcp, traceroute" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    assert "banner" not in capsys.readouterr().out
