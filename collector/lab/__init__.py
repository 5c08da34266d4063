"""Network-namespace lab: the Karlsøy network in miniature, for tests and `nettvakt demo --lab`."""

from collector.lab.lab import Lab, LabError, PingStats, SaturateHandle, check_lab_possible, cleanup_stale, parse_ping
from collector.lab.topology import INET_TARGET, KARLSOY_LAB, SITES, Link, Node, Route, Topology, TopologyError

__all__ = [
    "INET_TARGET",
    "KARLSOY_LAB",
    "SITES",
    "Lab",
    "LabError",
    "Link",
    "Node",
    "PingStats",
    "Route",
    "SaturateHandle",
    "Topology",
    "TopologyError",
    "check_lab_possible",
    "cleanup_stale",
    "parse_ping",
]
