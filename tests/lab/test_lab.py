"""The namespace lab itself: routing through the firewall, shaping, loss, cuts, expose, clean-up.

Everything here is real kernel networking (veth, tbf, nftables) inside namespaces this
module creates; nothing touches the host's own network.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from collector.lab import INET_TARGET, KARLSOY_LAB, SITES, Lab, LabError, Node, Topology, cleanup_stale
from collector.lab.lab import RUN_DIR

pytestmark = pytest.mark.lab

PROJECT_ROOT = Path(__file__).resolve().parents[2]

ECHO_SERVER = """
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(8)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _root_ifnames() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def _assert_nothing_left(prefix: str) -> None:
    assert not [ns for ns in _netns_names() if ns.startswith(f"{prefix}-")]
    assert not [name for name in _root_ifnames() if name.startswith(prefix)]
    assert not (RUN_DIR / f"{prefix}.pid").exists()


def _ping_raw(lab: Lab, node: str, target: str) -> str:
    proc = lab.exec(node, ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", target], check=False, timeout=15)
    assert proc.returncode == 0, f"{node} -> {target}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def test_every_site_reaches_inet_and_each_other_through_fw(lab: Lab) -> None:
    pairs = [(site, INET_TARGET) for site in SITES]
    pairs += [(a, lab.addr(b)) for a in SITES for b in SITES if a != b]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        outputs = list(pool.map(lambda pair: _ping_raw(lab, *pair), pairs))
    for (src, dst), out in zip(pairs, outputs):
        # One router in the path: the reply's TTL (64) was decremented exactly once, by fw.
        assert re.search(r"ttl=63\b", out), f"{src} -> {dst} did not cross exactly one router:\n{out}"


def test_interface_names_are_meaningful_per_namespace(lab: Lab) -> None:
    fw = lab.interfaces("fw")
    assert {"lo", "to-radhus", "to-helse", "to-hansnes", "to-vannvag", "to-inet"} == set(fw)
    for site in SITES:
        assert set(lab.interfaces(site)) == {"lo", "uplink"}
    route = lab.exec("vannvag", ["ip", "-j", "route", "show", "default"]).stdout
    assert json.loads(route)[0]["gateway"] == lab.addr("fw", "vannvag")
    assert lab.exec("fw", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"


def test_shaped_link_limits_goodput_and_queues(lab: Lab) -> None:
    lab.shape("vannvag", 1000)
    idle = lab.ping("vannvag", INET_TARGET, count=10, interval=0.05)
    assert idle.received == 10 and idle.rtt_avg_ms is not None and idle.rtt_avg_ms < 5, idle

    transfer = lab.saturate("inet", "vannvag", seconds=6)
    time.sleep(1.0)  # past slow start: the tbf queue is full from here on
    before, t_before = lab.counters("fw", "to-vannvag"), time.monotonic()
    loaded = lab.ping("vannvag", INET_TARGET, count=10, interval=0.3, timeout_s=3)
    time.sleep(0.5)
    after, t_after = lab.counters("fw", "to-vannvag"), time.monotonic()
    transfer.wait()

    tx_kbit = (after["tx_bytes"] - before["tx_bytes"]) * 8 / (t_after - t_before) / 1000
    print(f"goodput {transfer.goodput_kbit:.0f} kbit/s over {transfer.receive_seconds:.2f} s; "
          f"fw to-vannvag tx {tx_kbit:.0f} kbit/s; rtt idle {idle.rtt_avg_ms} ms, loaded {loaded.rtt_avg_ms} ms "
          f"(loss under load {loaded.loss_pct:.0f} %)")
    assert transfer.bytes_received > 0 and transfer.bytes_sent >= transfer.bytes_received
    assert 900 <= transfer.goodput_kbit <= 1100
    assert 900 <= tx_kbit <= 1100
    assert loaded.rtt_avg_ms is not None and loaded.rtt_avg_ms > 50, loaded
    assert loaded.rtt_avg_ms > 10 * idle.rtt_avg_ms


def test_loss_is_symmetric_and_one_way_on_request(lab: Lab) -> None:
    echoes = 1000
    try:
        lab.set_loss("helse", 30)
        both = lab.ping("helse", INET_TARGET, count=echoes, interval=0.002, timeout_s=1)
        lab.set_loss("helse", 30, toward="helse")
        one_way = lab.ping("helse", INET_TARGET, count=echoes, interval=0.002, timeout_s=1)
    finally:
        lab.clear_loss("helse")
    print(f"loss 30 % each way: ping loss {both.loss_pct:.1f} %; toward helse only: {one_way.loss_pct:.1f} %")

    def five_sigma(p: float) -> float:  # binomial, in percentage points
        return 5 * 100 * (p * (1 - p) / echoes) ** 0.5

    # Each direction drops 30 %: a round trip survives with 0.7 * 0.7 = 49 %.
    assert abs(both.loss_pct - 51.0) <= five_sigma(0.51), both
    assert abs(one_way.loss_pct - 30.0) <= five_sigma(0.30), one_way
    clean = lab.ping("helse", INET_TARGET, count=20, interval=0.01)
    assert clean.loss_pct == 0, clean


def test_cut_breaks_and_restore_repairs_routes(lab: Lab) -> None:
    lab.cut("hansnes")
    try:
        cut = lab.ping("hansnes", INET_TARGET, count=2, timeout_s=1)
        others = lab.ping("helse", INET_TARGET, count=2)
    finally:
        lab.restore("hansnes")
    assert cut.received == 0, cut
    assert others.received == 2, others
    back = lab.ping("hansnes", INET_TARGET, count=2)
    assert back.received == 2, back

    lab.cut("inet")  # takes fw's static route to the internet target with it
    try:
        cut = lab.ping("radhus", INET_TARGET, count=2, timeout_s=1)
    finally:
        lab.restore("inet")
    assert cut.received == 0, cut
    assert lab.ping("radhus", INET_TARGET, count=2).received == 2


def _echo_roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_expose_reaches_a_service_inside_radhus_from_root(lab: Lab) -> None:
    echo = lab.spawn("radhus", [sys.executable, "-c", ECHO_SERVER, "7007"], "echo")
    try:
        port = lab.expose("radhus", 7007)
        payload = os.urandom(200_000)
        deadline = time.monotonic() + 5
        while True:  # the echo server may still be binding
            got = _echo_roundtrip(port, payload)
            if got or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == payload
        # The root namespace got no lab address.
        root_addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        assert "10.231." not in root_addrs
    finally:
        echo.stop()


def test_stop_removes_namespaces_links_and_processes(lab_possible: None) -> None:
    lab = Lab(KARLSOY_LAB)
    lab.start()
    workdir = lab.workdir
    try:
        assert {lab.ns(n.name) for n in KARLSOY_LAB.nodes} <= _netns_names()
        lab.set_loss("helse", 5)
        port = lab.expose("radhus", 7007)
        transfer = lab.saturate("inet", "hansnes", seconds=30)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        pids: dict[int, str] = {}
        for node in KARLSOY_LAB.nodes:
            for pid in subprocess.run(["ip", "netns", "pids", lab.ns(node.name)], capture_output=True, text=True).stdout.split():
                pids[int(pid)] = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        assert {transfer.sink.pid, transfer.sender.pid} <= set(pids)
        assert any("collector.lab.forward" in cmd for cmd in pids.values())
    finally:
        lab.stop()
    _assert_nothing_left(lab.prefix)
    for pid, cmd in pids.items():
        still = Path(f"/proc/{pid}/cmdline")
        assert not still.exists() or still.read_text().replace("\0", " ") != cmd, f"left running: {pid} {cmd}"
    for module in ("collector.lab.forward", "collector.lab.bulk"):
        running = subprocess.run(["pgrep", "-f", module], capture_output=True, text=True).stdout.split()
        assert not set(map(int, running)) & set(pids)
    assert not workdir.exists()
    lab.stop()  # idempotent


def test_failing_command_in_start_leaves_nothing(lab_possible: None) -> None:
    broken = Topology(
        nodes=(*KARLSOY_LAB.nodes[:-1], Node("inet", sysctls={"net.ipv4.no_such_knob": "1"})),
        links=KARLSOY_LAB.links,
        routes=KARLSOY_LAB.routes,
    )
    lab = Lab(broken)
    with pytest.raises(LabError) as info:
        lab.start()
    assert "sysctl" in str(info.value) and "no_such_knob" in str(info.value)
    assert info.value.cmd is not None and info.value.stderr
    _assert_nothing_left(lab.prefix)


def test_cleanup_stale_removes_a_crashed_run(lab_possible: None) -> None:
    crash = (
        "import os\n"
        "from collector.lab import Lab\n"
        "lab = Lab()\n"
        "lab.start()\n"
        "print(lab.prefix, flush=True)\n"
        "os._exit(1)  # no atexit, no stop(): what a crash leaves\n"
    )
    proc = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    prefix = proc.stdout.strip()
    assert prefix, proc.stderr
    try:
        assert any(ns.startswith(f"{prefix}-") for ns in _netns_names())
        removed = cleanup_stale()
        assert {f"{prefix}-{n.name}" for n in KARLSOY_LAB.nodes} <= set(removed)
        _assert_nothing_left(prefix)
    finally:
        for ns in _netns_names():
            if ns.startswith(f"{prefix}-"):
                subprocess.run(["ip", "netns", "delete", ns], check=False)


def test_influxd_inside_radhus_is_reachable_from_root(lab: Lab) -> None:
    influx = lab.start_influxd("radhus")
    try:
        port = lab.expose("radhus", influx.port)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        with opener.open(f"http://127.0.0.1:{port}/ping", timeout=10) as resp:
            assert resp.status == 204
    finally:
        influx.stop()


def test_sigterm_tears_the_lab_down(lab_possible: None) -> None:
    runner = (
        "import time\n"
        "from collector.lab import Lab\n"
        "lab = Lab().start()\n"
        "print(lab.prefix, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    try:
        assert proc.stdout is not None
        prefix = proc.stdout.readline().strip()
        assert any(ns.startswith(f"{prefix}-") for ns in _netns_names())
        proc.terminate()
        assert proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _assert_nothing_left(prefix)
