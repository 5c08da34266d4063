"""Recorded CLI sessions (Oxidized `#simulation.yaml` files) as plain command -> output text.

Oxidized stores each response with Ruby string escapes (`\\r`, `\\x20`, `\\"`) and with the
device's `--More--` paging split into extra `" "` commands. `load_session` undoes both, so
the result is what the device would print with paging off: the command's output without the
echoed command and without the trailing prompt. Used to test parsers and config handling on
real outputs, and by the CLI simulator (`collector.ssh.simulator`) to replay them over SSH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_SIMPLE = {"r": "\r", "n": "\n", "t": "\t", "e": "\x1b", "s": " ", "0": "\0", "\\": "\\", '"': '"', "#": "#", "\n": ""}
# FortiOS erases "--More-- " with a carriage return, spaces and another carriage return.
_MORE = re.compile(r"--More-- ?(?:\r *\r)?|\r *\r")


def ruby_unescape(text: str) -> str:
    """Undo Ruby's String#dump escapes, as Oxidized's `"\\"#{text}\\"".undump` does."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "xu" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, text)


@dataclass
class RecordedSession:
    prompt: str  # e.g. "TEST-FW1234 #" (trailing space stripped)
    outputs: dict[str, str]  # command (no newline) -> output, "\n" line ends
    banner: str = ""


def _pairs(commands: object) -> list[tuple[str, str]]:
    if isinstance(commands, dict):
        return [(str(k), str(v)) for k, v in commands.items()]
    pairs = []
    for item in commands or []:
        for key, value in dict(item).items():
            pairs.append((str(key), str(value)))
    return pairs


def load_session(path: Path | str) -> RecordedSession:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    init = ruby_unescape(str(data["init_prompt"])).replace("\r", "")
    init_lines = init.rstrip(" ").split("\n")
    prompt = init_lines[-1].strip()
    outputs: dict[str, str] = {}
    last: str | None = None
    for raw_cmd, raw_out in _pairs(data.get("commands")):
        command = ruby_unescape(raw_cmd)
        text = ruby_unescape(raw_out)
        if command == " " and last is not None:
            outputs[last] += text  # a --More-- continuation of the previous command
            continue
        last = command.rstrip("\n")
        outputs[last] = text
    return RecordedSession(prompt=prompt, outputs={c: _clean_output(c, t, prompt) for c, t in outputs.items()}, banner="\n".join(init_lines[:-1]).strip())


def _clean_output(command: str, text: str, prompt: str) -> str:
    text = _MORE.sub("", text).replace("\r\n", "\n").replace("\r", "")
    lines = text.split("\n")
    if lines and lines[0].strip() == command.strip():
        lines = lines[1:]  # the device echoes the command
    while lines and (not lines[-1].strip() or _is_prompt(lines[-1], prompt)):
        lines.pop()  # the prompt that ends the output, and blank lines before it
    return "\n".join(lines) + "\n" if lines else ""


def _is_prompt(line: str, prompt: str) -> bool:
    """The recorded prompt, or the same host in another context ("FW (global) #")."""
    line = line.strip()
    host = prompt.rstrip("#> ").split(" ")[0]
    return line == prompt or (bool(host) and line.startswith(host) and line.endswith(("#", ">")))
