"""The agent must run with only psutil and aiohttp: it never imports collector, pydantic, pysnmp or netmiko."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A meta-path finder that makes the collector's dependencies unimportable, as on a PC
# where only `pip install nettvakt` (no extra) was run.
BLOCKER = """
import sys
class Block:
    BLOCKED = ("collector", "pydantic", "pysnmp", "netmiko")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"blocked: {name}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_agent_modules_import_without_collector_dependencies() -> None:
    result = run(
        "import agent.cli, agent.runner, agent.probes, agent.hostmetrics, agent.spool, agent.report,"
        " agent.hwfacts, agent.services, agent.listening, agent.install, agent.probes.dns_query, agent.probes.traceroute_hops\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in Block.BLOCKED]\n"
        "assert not bad, bad\n"
        "print('ok')"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_agent_cli_works_and_collector_commands_explain_the_missing_extra() -> None:
    result = run("import agent.cli; sys.exit(agent.cli.main(['probe', 'tcp', '127.0.0.1:1', '--timeout', '2', '--json']))")
    assert result.returncode == 1, result.stderr  # nothing listens on port 1: a probe that fails, as data
    assert '"up": 0.0' in result.stdout and "connection refused" in result.stdout
    result = run("import agent.cli; sys.exit(agent.cli.main(['check', 'inventory.toml']))")
    assert result.returncode == 2
    assert "this command needs the collector extra: pip install 'nettvakt[collector]'" in result.stderr
