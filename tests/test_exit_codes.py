"""One exit-code rule for every command (README, "Exit codes"): 0 success; 1 a check, probe or report
found a problem or could not read its data; 2 usage or configuration error. A case per command, run
through the real entry point (`agent.cli.main`), each with the message the user sees and no traceback.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
from pathlib import Path

import pytest

from agent.cli import main
from collector.queue import DurableQueue
from collector.localservers import free_port
from inventories import InventoryBuilder


def inventory(tmp_path: Path, name: str = "inventory.toml", *, influx_port: int | None = None) -> Path:
    """A valid inventory with one agent, a server (its services are watched); its local store exists."""
    inv = InventoryBuilder(tmp_path, name=name)
    inv.agent("pc1", hardware={"kind": "pc", "purchased": dt.date(2019, 1, 1)}, services=["sshd"])
    if influx_port:
        inv.influxdb(f"http://127.0.0.1:{influx_port}", "nettvakt", timeout_s=1)
    path = inv.write()
    DurableQueue(inv.data_dir / "queue.sqlite3").close()  # as a collector that has run leaves it
    return path


def closed_tcp_port() -> int:
    with socket.socket() as sock:  # bound and closed: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cases(tmp_path: Path) -> list[tuple[str, list[str], int, str]]:
    good = str(inventory(tmp_path))
    dead = str(inventory(tmp_path, "dead-influx.toml", influx_port=closed_tcp_port()))
    # A site whose line is polled: the capacity report has something to read.
    dead_line = str(InventoryBuilder(tmp_path, name="dead-line.toml").site("radhus", uplink="fw")
                    .device("fw", hardware="firewall", snmp={"community": "env:NETTVAKT_TEST_NEVER_SET"})
                    .influxdb(f"http://127.0.0.1:{closed_tcp_port()}", "nettvakt", timeout_s=1).write())
    missing = str(tmp_path / "missing.toml")
    unset = "env:NETTVAKT_TEST_NEVER_SET"
    return [
        ("usage", ["no-such-command"], 2, "invalid choice"),
        ("init exists", ["init", good], 2, "never overwritten without --force"),
        ("init ok", ["init", str(tmp_path / "new" / "inventory.toml"), "--site", "hansnes"], 0, ""),
        ("check ok", ["check", good], 0, ""),
        ("check missing", ["check", missing], 2, "cannot read"),
        ("collector run bad listen", ["collector", "run", "--inventory", good, "--listen", "127.0.0.1"], 2, "expected HOST:PORT"),
        ("collector run bad inventory", ["collector", "run", "--inventory", missing], 2, "the collector did not start"),
        ("collector tls no days", ["collector", "tls", "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem"),
                                   "--name", "x", "--days", "0"], 2, "--days must be at least 1"),
        ("agent run unset token", ["agent", "run", "--collector", "http://127.0.0.1:1", "--token", unset], 2, "NETTVAKT_TEST_NEVER_SET"),
        ("agent run bad ca file", ["agent", "run", "--collector", "https://127.0.0.1:1", "--token", "file:" + good,
                                   "--spool", str(tmp_path / "s.sqlite3"), "--ca-file", str(tmp_path / "no-ca.pem")], 2, "No such file"),
        ("agent install-service plain token", ["agent", "install-service", "--collector", "http://x:1", "--token", "s3cret"], 2, "never the token"),
        ("agent token", ["agent", "token"], 0, ""),
        ("agent facts", ["agent", "facts", "--json"], 0, ""),
        ("probe bad target", ["probe", "tcp", "127.0.0.1"], 2, "expected host:port"),
        ("probe target down", ["probe", "tcp", f"127.0.0.1:{closed_tcp_port()}", "--timeout", "2"], 1, ""),
        ("probe target up", ["probe", "icmp", "127.0.0.1", "--count", "1"], 0, ""),
        ("snmp poll unknown device", ["snmp", "poll", "nope", "--inventory", good], 2, "nope"),
        ("snmp poll no answer", ["snmp", "poll", "--address", f"127.0.0.1:{free_port(kind='udp')}", "--community", "public",
                                 "--timeout", "0.2"], 1, ""),
        ("discover bad cidr", ["discover", "10.20.0.0/33"], 2, "is not an address or network"),
        ("discover nothing answers", ["discover", "127.0.0.250/32", "--no-icmp", "--community", "x", "--timeout", "0.2",
                                      "--port", str(free_port(kind="udp")), "--inventory", good], 1, ""),
        ("config backup nothing to back up", ["config", "backup", "--inventory", good], 2, "ssh"),
        ("config history unknown device", ["config", "history", "nope", "--inventory", good], 2, "nope"),
        ("config diff unknown device", ["config", "diff", "nope", "--inventory", good], 2, "nope"),
        ("ssh run unknown device", ["ssh", "run", "nope", "show", "version", "--inventory", good], 2, "nope"),
        ("alerts ok", ["alerts", "--inventory", good], 0, ""),
        ("alerts bad inventory", ["alerts", "--inventory", missing], 2, "cannot read"),
        ("ack nothing firing", ["ack", "device-down", "sw-nope", "--inventory", good], 2, "no firing alert"),
        ("silence add unknown site", ["silence", "add", "--site", "nope", "--for", "1h", "--inventory", good], 2, "no such site"),
        ("silence list", ["silence", "list", "--inventory", good], 0, ""),
        ("silence remove unknown id", ["silence", "remove", "abcd1234", "--inventory", good], 2, "no active silence"),
        ("diagnose unknown site", ["diagnose", "nope", "--inventory", good], 2, "nope"),
        ("diagnose influxdb down", ["diagnose", "radhus", "--inventory", dead], 1, "cannot read the data"),
        ("report hardware influxdb down", ["report", "hardware", "--inventory", dead], 1, "without observed facts"),
        ("report servers influxdb down", ["report", "servers", "--inventory", dead], 1, "cannot read the data"),
        ("report servers influx not configured", ["report", "servers", "--inventory", good, "--source", "influx"], 2, "storage.kind = 'local'"),
        ("report hardware ok", ["report", "hardware", "--inventory", good], 0, ""),
        ("report logins influxdb down", ["report", "logins", "--inventory", dead], 1, "cannot read the data"),
        ("report logins unknown host", ["report", "logins", "--inventory", good, "--host", "no-such-agent"], 2, "--host no-such-agent: no agent"),
        ("report logins ok", ["report", "logins", "--inventory", good, "--source", "local"], 0, ""),
        ("report capacity influxdb down", ["report", "capacity", "--inventory", dead_line], 1, "cannot read the data"),
        ("report capacity unknown site", ["report", "capacity", "--inventory", good, "--site", "no-such-site"], 2, "--site no-such-site: no site"),
        ("report capacity bad months", ["report", "capacity", "--inventory", good, "--months", "0"], 2, "expected 1 to 120 complete months"),
        ("report capacity ok", ["report", "capacity", "--inventory", good], 0, ""),
        ("report availability influxdb down", ["report", "availability", "--inventory", dead], 1, "cannot read the data"),
        ("report availability unknown site", ["report", "availability", "--inventory", good, "--site", "nope"], 2, "--site nope: no site"),
        ("report availability pdf without output", ["report", "availability", "--inventory", good, "--format", "pdf"], 2, "needs --output"),
        ("report availability ok", ["report", "availability", "--inventory", good, "--source", "local", "--since", "12mo"], 0, ""),
        ("demo workdir impossible", ["demo", "--workdir", "/proc/nettvakt-demo"], 2, "cannot use --workdir"),
    ]


with tempfile.TemporaryDirectory() as _scratch:  # the cases' names, for the ids (each test builds its own)
    CASE_IDS = [c[0] for c in cases(Path(_scratch))]


@pytest.mark.parametrize("case", CASE_IDS)
def test_exit_code(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETTVAKT_TEST_NEVER_SET", raising=False)
    monkeypatch.chdir(tmp_path)
    (name, argv, expected, message), = [c for c in cases(tmp_path) if c[0] == case]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code  # type: ignore[assignment]
    out = capsys.readouterr()
    assert code == expected, (argv, out.out[-1000:], out.err[-2000:])
    assert message in out.err, out.err
    assert "Traceback" not in out.err


def test_every_command_has_a_case() -> None:
    from test_cli_surface import leaf_commands

    from agent.cli import build_parser

    with tempfile.TemporaryDirectory() as scratch:
        argvs = [argv for _, argv, _, _ in cases(Path(scratch))]
    covered = {" ".join(["nettvakt", *[w for w in argv if not w.startswith("-")][:2]]) for argv in argvs}
    for command in leaf_commands(build_parser()):
        assert any(c == command or c.startswith(command + " ") for c in covered), f"no exit-code case for {command}"
