"""Figures from the network lab, for docs/benchmarks.md: what the scenario tests assert, measured.

Run as root:  .venv/bin/python bench/lab_figures.py
Builds the simulated municipality, then: idle vs loaded RTT on the 1 Mbit/s Vannvåg uplink,
the firewall's SNMP out_bps on that interface during saturation, and loss_pct under 20% loss.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from collector.lab import KARLSOY_LAB, Lab
from collector.lab.municipality import Municipality, MunicipalityConfig
from collector.localservers import wait_until


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Lab(KARLSOY_LAB) as lab:
        town = Municipality(lab, Path(tmp), MunicipalityConfig(icmp_count=20, icmp_interval_ms=25)).start()
        wait_until(lambda: town.query("SELECT last(out_bps) FROM interface WHERE ifname = 'to-vannvag'"), 60, "first rates")
        t0 = time.time_ns()
        time.sleep(10)
        idle = [r["rtt_ms"] for r in town.query(f"SELECT rtt_ms FROM probe WHERE host = 'vannvag-1' AND target = 'internett' AND time >= {t0}")]
        transfer = lab.saturate("inet", "vannvag", seconds=40)
        time.sleep(5)
        t1 = time.time_ns()
        time.sleep(33)
        t2 = time.time_ns()
        transfer.wait(timeout=60)
        loaded = [r["rtt_ms"] for r in town.query(f"SELECT rtt_ms FROM probe WHERE host = 'vannvag-1' AND target = 'internett' AND time >= {t1} AND time <= {t2}") if r.get("rtt_ms")]
        rates = [r["out_bps"] for r in town.query(f"SELECT out_bps FROM interface WHERE device = 'fw' AND ifname = 'to-vannvag' AND time > {t1 + 6 * 10**9} AND time <= {t2}")]
        print(f"vannvag rtt_ms idle median {statistics.median(idle):.2f} (n={len(idle)}), loaded median {statistics.median(loaded):.1f} (n={len(loaded)})")
        print(f"fw to-vannvag out_bps during saturation: {[round(r) for r in rates]} (shaped 1000000; goodput at receiver {transfer.goodput_kbit:.0f} kbit/s)")
        lab.set_loss("helse", 20, toward="helse")
        t3 = time.time_ns()
        time.sleep(60)
        lab.clear_loss("helse")
        rows = town.query(f"SELECT sent, received FROM probe WHERE host = 'plo-pc' AND kind = 'icmp' AND time >= {t3 + 3 * 10**9}")
        sent, received = sum(r["sent"] for r in rows), sum(r["received"] for r in rows)
        print(f"helse 20% loss toward the site: loss_pct {100 * (sent - received) / sent:.1f} over {sent:.0f} echoes")


if __name__ == "__main__":
    main()
