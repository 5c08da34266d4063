"""SNMP poll speed: our pysnmp session against net-snmp's snmpbulkwalk on the same snmpsim agent.

    .venv/bin/python bench/snmp_poll.py [--recording ios_2960x] [--rounds 5] [--json]

Serves shared/snmprec with snmpsim on a free loopback port, then, in the same run:

1. `snmpbulkwalk` of ifTable and ifXTable (the whole IF-MIB interface tables), varbinds/s;
2. SnmpSession.walk of the same two subtrees (one engine, numeric OIDs), varbinds/s, one
   after the other as snmpbulkwalk does, and both at once; then the IF-MIB columns the
   poller reads (profiles.IF_MIB), each walked side by side as the poller does;
3. DevicePoller.poll, the collector's real poll (IF-MIB columns, ENTITY, vendor MIBs): wall
   time per poll, and the CPU time of this process per poll, from which the devices per
   minute one core can poll follows (the agent, snmpsim, runs in another process and is
   not counted).

Wall-clock figures include snmpsim's own time to answer, which on this machine is the larger
part; the ratio of (1) and (2) is the comparison that matters. Best of --rounds each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.localservers import start_snmpsim  # noqa: E402
from collector.snmp.poller import DevicePoller  # noqa: E402
from collector.snmp.profiles import IF_MIB  # noqa: E402
from collector.snmp.session import SnmpAuth, SnmpSession, close_engines  # noqa: E402

IF_TABLES = ("1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1")


def net_snmp_env(tmp: Path) -> dict[str, str]:
    """No MIB loading and no persistent state outside `tmp`: net-snmp at its fastest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNMP", "MIB"))}
    env.update(SNMPCONFPATH=str(tmp), SNMP_PERSISTENT_DIR=str(tmp), MIBDIRS=str(tmp), MIBS="", HOME=str(tmp))
    return env


def bench_snmpbulkwalk(host: str, port: int, community: str, env: dict[str, str], max_rep: int) -> tuple[float, int]:
    started = time.perf_counter()
    varbinds = 0
    for prefix in IF_TABLES:
        proc = subprocess.run(
            ["snmpbulkwalk", "-v2c", "-c", community, f"-Cr{max_rep}", "-On", "-Oq", f"{host}:{port}", prefix],
            capture_output=True, text=True, env=env, timeout=120, check=True,
        )
        varbinds += sum(1 for line in proc.stdout.splitlines() if line.startswith(".1."))
    return time.perf_counter() - started, varbinds


async def bench_session(
    host: str, port: int, community: str, max_rep: int, rounds: int, concurrent: bool
) -> tuple[float, int]:
    """Walk both tables one after the other (like snmpbulkwalk), or both at once (like the poller)."""
    session = SnmpSession(host, port, SnmpAuth("2c", community=community), max_repetitions=max_rep)
    await session.get(["1.3.6.1.2.1.1.3.0"])  # engine and transport set up outside the timing
    best, varbinds = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        if concurrent:
            results = await asyncio.gather(*(session.walk(prefix) for prefix in IF_TABLES))
        else:
            results = [await session.walk(prefix) for prefix in IF_TABLES]
        best = min(best, time.perf_counter() - started)
        varbinds = sum(len(r) for r in results)
    return best, varbinds


async def bench_if_mib_columns(host: str, port: int, community: str, max_rep: int, rounds: int) -> tuple[float, int]:
    """The IF-MIB part of a poll as the poller makes it: the profile's columns, walked side by side."""
    session = SnmpSession(host, port, SnmpAuth("2c", community=community), max_repetitions=max_rep)
    await session.get(["1.3.6.1.2.1.1.3.0"])
    columns = [c.oid for c in IF_MIB.columns if not c.fallback]
    best, varbinds = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        results = await asyncio.gather(*(session.walk(oid) for oid in columns))
        best = min(best, time.perf_counter() - started)
        varbinds = sum(len(r) for r in results)
    return best, varbinds


async def bench_poller(host: str, port: int, community: str, rounds: int) -> tuple[float, float, int]:
    session = SnmpSession(host, port, SnmpAuth("2c", community=community))
    poller = DevicePoller(community, "bench", session)
    points = await poller.poll()  # the first poll also chooses the profile and warms the engine
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        points = await poller.poll()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, sum(1 for p in points if p.measurement == "interface")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recording", default="ios_2960x", help="stem of a shared/snmprec file (default ios_2960x)")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"), metavar="DIR")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-repetitions", type=int, default=25, help="GETBULK max-repetitions for both tools")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nettvakt-bench-snmp-") as tmp_name:
        tmp = Path(tmp_name)
        server = start_snmpsim(Path(args.shared) / "snmprec", tmp / "snmpsim")
        try:
            env = net_snmp_env(tmp)
            bench_snmpbulkwalk(server.host, server.port, args.recording, env, args.max_repetitions)  # warm snmpsim's cache
            walks = [bench_snmpbulkwalk(server.host, server.port, args.recording, env, args.max_repetitions)
                     for _ in range(args.rounds)]
            net_s, net_vb = min(walks)

            async def ours() -> tuple[tuple[float, int], tuple[float, int], tuple[float, int], tuple[float, float, int]]:
                try:
                    host, port, rec, rep, rounds = server.host, server.port, args.recording, args.max_repetitions, args.rounds
                    walk = await bench_session(host, port, rec, rep, rounds, concurrent=False)
                    both = await bench_session(host, port, rec, rep, rounds, concurrent=True)
                    columns = await bench_if_mib_columns(host, port, rec, rep, rounds)
                    poll = await bench_poller(host, port, rec, rounds)
                    return walk, both, columns, poll
                finally:
                    close_engines()

            (our_s, our_vb), (both_s, _), (col_s, col_vb), (poll_s, poll_cpu, interfaces) = asyncio.run(ours())
        finally:
            server.stop()

    result = {
        "recording": args.recording,
        "max_repetitions": args.max_repetitions,
        "if_mib_varbinds": our_vb,
        "snmpbulkwalk_varbinds": net_vb,
        "snmpbulkwalk_s": round(net_s, 4),
        "snmpbulkwalk_varbinds_per_s": round(net_vb / net_s),
        "session_s": round(our_s, 4),
        "session_varbinds_per_s": round(our_vb / our_s),
        "session_vs_snmpbulkwalk": round((our_vb / our_s) / (net_vb / net_s), 2),
        "session_both_tables_at_once_varbinds_per_s": round(our_vb / both_s),
        "poller_if_mib_columns_varbinds": col_vb,
        "poller_if_mib_columns_s": round(col_s, 4),
        "poller_if_mib_columns_varbinds_per_s": round(col_vb / col_s),
        "poll_interfaces": interfaces,
        "poll_wall_s": round(poll_s, 4),
        "poll_cpu_s": round(poll_cpu, 4),
        "devices_per_minute_one_core": round(60 / poll_cpu) if poll_cpu > 0 else None,
    }
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
