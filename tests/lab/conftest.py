"""Fixtures for the namespace lab tests: one KARLSOY_LAB for the whole session.

The lab is never skipped: CI runs as root, so a machine that cannot build it is a broken
machine, and the test run must say so loudly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from collector.lab import KARLSOY_LAB, Lab, check_lab_possible, cleanup_stale
from collector.lab.topology import Link, Node, Topology


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: end-to-end scenario in the network-namespace lab (needs root and ip netns)")


def require_lab() -> None:
    """Fail (never skip) when this machine cannot run the lab."""
    reason = check_lab_possible()
    if reason is not None:
        pytest.fail(f"network lab unavailable: {reason}", pytrace=False)
    if shutil.which("ping") is None:
        pytest.fail("network lab unavailable: ping not installed (package iputils-ping)", pytrace=False)


@pytest.fixture(scope="session")
def lab_possible() -> None:
    """Depend on this in tests that build their own Lab."""
    require_lab()


@pytest.fixture(scope="session")
def lab(lab_possible: None) -> Iterator[Lab]:
    cleanup_stale()
    the_lab = Lab(KARLSOY_LAB)
    the_lab.start()
    try:
        yield the_lab
    finally:
        the_lab.stop()


# site -- fw -- inet: two router hops from the site to the internet host, like a Karlsøy outstation.
PATH_TOPOLOGY = Topology(
    nodes=(Node("site"), Node("fw", sysctls={"net.ipv4.ip_forward": "1"}), Node("inet")),
    links=(
        Link("uplink", "site", "fw", "up0", "site0", "10.77.1.0/30", default_route="site"),
        Link("wan", "fw", "inet", "wan0", "fw0", "10.77.2.0/30", default_route="inet"),
    ),
)


@pytest.fixture(scope="module")
def path_lab(lab_possible: None) -> Iterator[Lab]:
    """PATH_TOPOLOGY, for one module's tests (the agent's probes against the same path's tools)."""
    lab = Lab(PATH_TOPOLOGY)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
