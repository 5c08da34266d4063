"""`nettvakt demo --lab`: the whole simulated municipality, until Ctrl-C or --duration."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from collector.lab.lab import Lab, LabError, check_lab_possible, cleanup_stale
from collector.lab.municipality import Municipality
from collector.lab.topology import KARLSOY_LAB


def run_lab_demo(args: argparse.Namespace) -> int:
    reason = check_lab_possible()
    if reason is not None:
        print(f"nettvakt demo --lab: the lab cannot run here: {reason} (it needs root and ip netns)", file=sys.stderr)
        return EXIT_USAGE
    cleanup_stale()
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    lab = Lab(KARLSOY_LAB)
    try:
        lab.start()
        town = Municipality(lab, Path(args.workdir).resolve() / "lab").start()
        where = town.where_to_look()
        if args.json:
            print(json.dumps(where), flush=True)
        else:
            print("nettvakt lab demo: the simulated Karlsøy municipality is running (Ctrl-C stops it).")
            print("Links: hansnes 2 Mbit/s, vannvag 1 Mbit/s; the firewall namespace runs snmpd.")
            for key, value in where.items():
                print(f"  {key:10} {value}")
            print(f"Try: curl -G '{town.influx_url}/query' --data-urlencode 'db=nettvakt' "
                  "--data-urlencode \"q=SELECT mean(rtt_ms) FROM probe WHERE time > now() - 5m GROUP BY site\"")
            sys.stdout.flush()
        stop.wait(args.duration)
        return EXIT_OK
    except LabError as exc:
        print(f"nettvakt demo --lab: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGINT, previous)
        lab.stop()
