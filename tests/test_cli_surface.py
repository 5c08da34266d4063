"""The command line as documented: every command and option in the README is the parser's, and back."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from agent.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "nettvakt") -> dict[str, list[str]]:
    """'nettvakt agent run' -> its option strings (long form) and positional metavars."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        words = []
        for action in parser._actions:
            if action.dest == "help":
                continue
            if action.option_strings:
                words.append(max(action.option_strings, key=len))
            else:
                words.append(action.metavar or action.dest.upper())
        return {prefix: words}
    found: dict[str, list[str]] = {}
    for sub in subs:
        for name, child in sub.choices.items():
            found.update(leaf_commands(child, f"{prefix} {name}"))
    return found


def readme_commands() -> dict[str, str]:
    """Each command line of the README's list, with its continuation lines, by the command it starts with."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## The command line"):text.index("`nettvakt diagnose SITE` explains")]
    commands: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("    nettvakt "):
            words = line.split()
            name = " ".join(w for w in words[:3] if re.fullmatch(r"[a-z][a-z-]*", w))
            current = name
            commands[current] = line
        elif current and line.startswith("        ") and line.strip().startswith("["):
            commands[current] += " " + line.strip()
    return commands


def test_every_command_and_option_of_the_parser_is_in_the_readme() -> None:
    documented = readme_commands()
    for command, words in leaf_commands(build_parser()).items():
        assert command in documented, f"README lacks {command}"
        for word in words:
            assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", documented[command]), f"README: {command} lacks {word}"


def test_the_readme_lists_no_command_the_parser_lacks() -> None:
    commands = leaf_commands(build_parser())
    for command in readme_commands():
        assert command in commands, f"README documents {command!r}, which the parser does not have"


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "agent.cli", "--version"], capture_output=True, text=True, cwd=REPO, timeout=60)
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert result.returncode == 0 and version is not None and result.stdout.strip() == f"nettvakt {version.group(1)}"


def test_help_lists_every_command_also_where_only_the_agent_is_installed() -> None:
    from test_agent_light import run

    from agent.cli import COMMAND_MODULES

    result = run("import agent.cli; agent.cli.main(['--help'])")
    assert result.returncode == 0, result.stderr
    listed = {m.group(1): m.group(0) for m in re.finditer(r"^ {4}([a-z-]+)\b.*$", result.stdout, re.M)}  # not wrapped lines
    assert list(listed) == list(COMMAND_MODULES)
    for name, module in COMMAND_MODULES.items():
        assert ("needs the collector extra" in listed[name]) == module.startswith("collector."), listed[name]
