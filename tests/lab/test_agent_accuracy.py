"""The agent's icmp numbers agree with fping on the same path, at the same time.

Needs root (raw ICMP sockets, network namespaces) and Debian's `fping`; without them the
tests fail with the reason, never skip. The agent and fping run concurrently, their echoes
interleaved, so both sample the same queue on a loaded link; long bursts (200 echoes, 10 ms
apart) keep the sampling noise of the median and of the loss percentage small.

Agreement rule (issue 3): rtt_ms within 1 ms or 10 % of fping's median, whichever is larger;
loss_pct within 15 percentage points of fping's (binomial noise of two 200-echo samples at 25 %
loss has a standard deviation of about 4.3 points, so 15 is 3.5 sigma).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import threading
from typing import Any

import pytest

from agent.probes import ping
from collector.lab import Lab

pytestmark = pytest.mark.lab

COUNT, INTERVAL_MS = 200, 10

@pytest.fixture(scope="module", autouse=True)
def fping_installed(lab_possible: None) -> None:
    if shutil.which("fping") is None:
        pytest.fail("accuracy tests need fping (Debian: apt-get install fping)", pytrace=False)


def parse_fping(stderr: str, target: str) -> dict[str, float]:
    """`fping -C N -q` prints `target : 0.05 0.04 - 0.06` (a dash is a lost echo) on stderr."""
    line = next(l for l in stderr.splitlines() if l.split(":", 1)[0].strip() == target)
    values = line.split(":", 1)[1].split()
    rtts = [float(v) for v in values if v != "-"]
    return {
        "rtt_ms": statistics.median(rtts) if rtts else float("nan"),
        "loss_pct": 100.0 * (len(values) - len(rtts)) / len(values),
        "sent": float(len(values)),
    }


def fping_argv(target: str) -> list[str]:
    # -t: fping's default 500 ms timeout would count the loaded link's 400 ms+ replies as lost.
    return ["fping", "-C", str(COUNT), "-p", str(INTERVAL_MS), "-t", "3000", "-q", target]


def agent_argv(target: str) -> list[str]:
    return [
        sys.executable, "-m", "agent.cli", "probe", "icmp", target,
        "--count", str(COUNT), "--interval-ms", str(INTERVAL_MS), "--timeout", "3", "--json",
    ]


def side_by_side(lab: Lab, node: str, target: str) -> tuple[dict[str, Any], dict[str, float]]:
    """Agent probe and fping from `node` to `target` at the same time."""
    result: dict[str, Any] = {}

    def run_agent() -> None:
        proc = lab.exec(node, agent_argv(target), check=False, timeout=60)
        result["agent"] = json.loads(proc.stdout)["fields"] if proc.stdout.strip() else {"error": proc.stderr}

    thread = threading.Thread(target=run_agent)
    thread.start()
    fping = lab.exec(node, fping_argv(target), check=False, timeout=60)
    thread.join()
    assert "error" not in result["agent"], result["agent"]
    return result["agent"], parse_fping(fping.stderr, target)


def assert_rtt_agrees(agent: dict[str, Any], fping: dict[str, float]) -> None:
    tolerance = max(1.0, 0.10 * fping["rtt_ms"])
    assert abs(agent["rtt_ms"] - fping["rtt_ms"]) <= tolerance, (agent, fping)


def test_loopback_agrees_with_fping() -> None:
    async def both() -> tuple[dict[str, Any], str]:
        proc = await asyncio.create_subprocess_exec(
            *fping_argv("127.0.0.1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        fields = await ping("127.0.0.1", count=COUNT, interval_ms=INTERVAL_MS, timeout_s=3)
        _, err = await proc.communicate()
        return fields, err.decode()

    agent, stderr = asyncio.run(both())
    fping = parse_fping(stderr, "127.0.0.1")
    assert agent["method"] == "icmp" and agent["sent"] == fping["sent"] == COUNT
    assert agent["loss_pct"] == fping["loss_pct"] == 0.0
    assert_rtt_agrees(agent, fping)


def test_shaped_loaded_link_agrees_with_fping(path_lab: Lab) -> None:
    lab = path_lab
    target = lab.addr("inet")
    lab.shape("wan", 1000)
    bulk = lab.saturate("site", "inet", 30)
    try:
        # Loaded 1 Mbit/s line: the tbf queue adds hundreds of ms, and both tools must see it.
        agent, fping = side_by_side(lab, "site", target)
        assert fping["rtt_ms"] > 30, f"the bulk transfer did not load the link: {fping}"
        assert_rtt_agrees(agent, fping)
        assert abs(agent["loss_pct"] - fping["loss_pct"]) <= 15, (agent, fping)

        # The same loaded line dropping a quarter of what comes back from the internet side.
        # Loss makes the bulk TCP flow back off and refill, so the queue (and any RTT) swings by
        # tens of ms within a second: two tools sampling it at different instants cannot agree
        # to 10% here (seen: 57 vs 49 ms). RTT agreement is proven on the steadily loaded line
        # above; this phase checks what the issue asks of a lossy line, that loss_pct follows fping.
        lab.set_loss("wan", 25, toward="fw")
        agent, fping = side_by_side(lab, "site", target)
        assert fping["loss_pct"] >= 10 and agent["loss_pct"] >= 10, (agent, fping)
        assert abs(agent["loss_pct"] - fping["loss_pct"]) <= 15, (agent, fping)
        assert agent["sent"] == COUNT and agent["received"] == pytest.approx(COUNT * (1 - agent["loss_pct"] / 100))
    finally:
        bulk.stop()
        lab.clear_loss("wan")
        lab.unshape("wan")
