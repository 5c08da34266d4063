"""The configuration of a Linux device: the files its inventory entry lists, fetched as one text.

A Linux server, firewall or router is configured by files (`/etc/nftables.conf`,
`/etc/network/interfaces`, `/etc/snmp/snmpd.conf`, ...). `files_command` builds the one
command that prints them all in one session: each file under a header line
`### nettvakt: <path>`, followed by its content, or by a marker line saying why there is
none (`### nettvakt: (missing)`, `(not a regular file)`, `(unreadable: permission denied)`,
`(unreadable: its folder is not searchable)`, `(unreadable: read error)`). A missing
file is part of the device's state, so it is stored and diffed like content, never an
error that aborts the backup.

The command is a constant POSIX `sh -c` script with the paths as its arguments, each
quoted with shlex.quote (the inventory allows only plain absolute paths besides), so it
runs the same under any login shell and nothing in a path is ever interpreted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

HEADER = "### nettvakt: "
MAX_CONFIG_FILES = 50
# Plain absolute paths only: no shell metacharacters, quotes, spaces or globs.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+@,:=/-]*$")

# Double quotes only inside, so shlex.quote wraps the whole script in one pair of single
# quotes. `-f` before reading: a FIFO or device would block the read forever. awk (not cat)
# so a file without a final newline cannot glue its last line to the next header.
_SCRIPT = (
    'for f do printf "' + HEADER + '%s\\n" "$f"; '
    'if [ -f "$f" ]; then '
    'if [ -r "$f" ]; then awk "{print}" "$f" 2>/dev/null || echo "' + HEADER + '(unreadable: read error)"; '
    'else echo "' + HEADER + '(unreadable: permission denied)"; fi; '
    'elif [ -e "$f" ]; then echo "' + HEADER + '(not a regular file)"; '
    'elif [ -L "$f" ]; then echo "' + HEADER + '(missing: dangling symlink)"; '
    'elif [ -d "${f%/*}/" ] && ! [ -x "${f%/*}/" ]; then echo "' + HEADER + '(unreadable: its folder is not searchable)"; '
    'else echo "' + HEADER + '(missing)"; fi; done'
)


def path_problem(path: str) -> str | None:
    """None when `path` may be listed in `config_files`; else what is wrong with it."""
    if not path.startswith("/"):
        return "is not an absolute path"
    if not _SAFE_PATH.match(path):
        return "holds a character other than letters, digits and . _ + @ , : = / - (no spaces, quotes or shell metacharacters)"
    parts = path.split("/")
    if ".." in parts or "." in parts:
        return "holds a . or .. component"
    if path.endswith("/") or "//" in path:
        return "is not a file path (empty component or trailing /)"
    return None


def config_files_problem(paths: Sequence[str]) -> str | None:
    """None when the list is fine as a device's `config_files`; else the first problem, naming the entry."""
    if len(paths) > MAX_CONFIG_FILES:
        return f"lists {len(paths)} files; at most {MAX_CONFIG_FILES}"
    seen: dict[str, int] = {}
    for i, path in enumerate(paths):
        problem = path_problem(path)
        if problem is not None:
            return f"config_files[{i}] {path!r} {problem}"
        if path in seen:
            return f"config_files[{i}] {path!r} is already listed as config_files[{seen[path]}]"
        seen[path] = i
    return None


def files_command(paths: Sequence[str]) -> str:
    """The one shell command that prints every file in `paths`, labelled (see the module doc)."""
    problem = config_files_problem(paths) if paths else "no files"
    if problem is not None:
        raise ValueError(problem)  # the inventory refuses these; this guards other callers
    return "LC_ALL=C sh -c " + shlex.quote(_SCRIPT) + " nettvakt " + " ".join(shlex.quote(p) for p in paths)


def output_problem(text: str, paths: Sequence[str]) -> str | None:
    """None when `text` is the output of files_command(paths); else why not (a login shell that is no shell, ...)."""
    found = split_files(text)
    if not paths or not text.lstrip().startswith(HEADER + paths[0]) or any(p not in found for p in paths):
        first = text.lstrip().splitlines()[0][:120] if text.strip() else "(nothing)"
        return f"not the listing of config_files; the device said: {first}"
    return None


def split_files(text: str) -> dict[str, str]:
    """path -> its section of a files_command output (content, or the marker line)."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(HEADER) and not line.startswith(HEADER + "("):
            current = files.setdefault(line[len(HEADER):], [])
        elif current is not None:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in files.items()}
