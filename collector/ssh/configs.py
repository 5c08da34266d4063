"""Configuration backups: redaction, change detection and history in git.

Two git repositories under the backup folder, one file per device (`<device>.cfg`):
- `full/`: the configuration exactly as fetched, secrets included. Folder 0700, files 0600.
- `readable/`: the same with secrets redacted, for people to read and diff.
A new configuration is committed (to both, same message and time) only when its
*normalised* form differs from the last one: volatile lines (timestamps, `ntp clock-period`,
FortiOS `#conf_file_ver=`) are dropped and FortiOS `ENC` blobs, which FortiOS re-encrypts
on every export, are replaced by a constant. So every commit is a real change, and
`diff()` shows only the lines that changed in meaning, redacted.

Those rules, and the secrets each platform writes, are data in the platforms' descriptors
(collector.ssh.platforms `ConfigFilters`); every platform's apply to every configuration.

Redacted secrets other than FortiOS ENC values read `<redacted:1a2b3c4d>`: an HMAC of the
secret under a key kept in the restricted folder, so a reader sees that a secret changed
without learning it (nor being able to test guesses against it).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import hmac
import os
import re
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .platforms import ConfigFilters, all_config_filters

CONFIG_SUFFIX = ".cfg"
# Inventory ids are slugs; the file name is the id, so nothing else may pass.
_DEVICE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# Private keys are secrets on any platform. A quoted PEM block of an encrypted one: FortiOS
# re-encrypts it on each export, so it is compared as a constant.
_PEM_KEY = re.compile(r'"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"', re.DOTALL)
# An unquoted one (a key file among config_files, OpenVPN inline <key>): a real change shows as one.
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY|OpenVPN Static key V1)-----.*?-----END \1-----", re.DOTALL)


class BackupError(RuntimeError):
    """git failed, or a device id that cannot be a file name."""


def _without_churn(line: str, filters: ConfigFilters) -> str:
    for pattern, constant in filters.churn:
        line = pattern.sub(constant, line)
    return line


def normalise(config: str) -> str:
    """The configuration as compared for changes: volatile lines out, churning values constant, LF line ends."""
    filters = all_config_filters()
    text = config.replace("\r\n", "\n").replace("\r", "\n")
    text = _PEM_KEY.sub('"<private key>"', text)
    lines = [_without_churn(line.rstrip(), filters) for line in text.split("\n")]
    kept = [line for line in lines if not any(p.match(line) for p in filters.volatile_lines)]
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n"


def redact(config: str, key: bytes = b"") -> str:
    """A copy for reading: every secret replaced by `<redacted:HMAC>` (churning values by their constant)."""
    filters = all_config_filters()
    # A rule scoped to a block runs before the others, so a value inside it is tagged whole.
    scoped = [(rule, rule.block[0], rule.block[1]) for rule in filters.secrets if rule.block is not None]
    unscoped = [rule for rule in filters.secrets if rule.block is None]
    text = config.replace("\r\n", "\n").replace("\r", "\n")
    text = _PEM_KEY.sub("<redacted private key>", text)

    def tag(secret: str) -> str:
        digest = hmac.new(key or b"nettvakt", secret.encode(), hashlib.sha256).hexdigest()[:8]
        return f"<redacted:{digest}>"

    text = _PEM_BLOCK.sub(lambda m: f"<redacted {m.group(1).lower()}:{tag(m.group(0))[len('<redacted:'):]}", text)

    out = []
    inside = dict.fromkeys((rule for rule, _, _ in scoped), False)
    for line in text.split("\n"):
        line = _without_churn(line, filters)
        for rule, start, end in scoped:
            if start.match(line):
                inside[rule] = True
            elif inside[rule] and end.match(line):
                inside[rule] = False
            if inside[rule]:
                line = rule.pattern.sub(lambda m, g=rule.group: _replace_group(m, g, tag), line)
        # Every rule, every match: one line can hold several secrets (SNMPv3 auth and priv keys).
        for rule in unscoped:
            line = rule.pattern.sub(lambda m, g=rule.group: _replace_group(m, g, tag), line)
        out.append(line)
    return "\n".join(out)


def _replace_group(match: re.Match[str], group: int, tag: Callable[[str], str]) -> str:
    value = match.group(group)
    if value.startswith(("<redacted", '"<redacted')):
        return match.group(0)  # already redacted by an earlier rule
    start, end = match.start(group) - match.start(), match.end(group) - match.start()
    return match.group(0)[:start] + tag(value) + match.group(0)[end:]


@dataclass(frozen=True)
class Revision:
    rev: str
    time: dt.datetime
    message: str


@dataclass(frozen=True)
class BackupResult:
    device: str
    changed: bool
    revision: str | None  # the readable repository's commit (None when nothing changed)
    diff: str  # redacted, normalised unified diff ("" when unchanged)
    first: bool = False  # the device's first backup: stored, but not a change to tell anyone about


class ConfigStore:
    """Backups under `root` (normally `<collector data_dir>/config-backups`)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.full = self.root / "full"
        self.readable = self.root / "readable"

    # --- git plumbing ---------------------------------------------------------------
    def _run_git(self, repo: Path, args: tuple[str, ...], when: dt.datetime | None) -> subprocess.CompletedProcess[str]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,  # the operator's ~/.gitconfig (signing, hooks) stays out
            "GIT_TERMINAL_PROMPT": "0",
        }
        if when is not None:
            stamp = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = stamp
        cmd = ["git", "-C", str(repo), "-c", "user.name=nettvakt", "-c", "user.email=nettvakt@localhost", "-c", "core.autocrlf=false", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)

    def _git(self, repo: Path, *args: str, when: dt.datetime | None = None) -> str:
        proc = self._run_git(repo, args, when)
        if proc.returncode != 0:
            raise BackupError(f"git {' '.join(args[:2])} in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def _git_try(self, repo: Path, *args: str) -> str | None:
        """stdout, or None when git says no (a path missing at a revision, an empty repository)."""
        proc = self._run_git(repo, args, None)
        return proc.stdout if proc.returncode == 0 else None

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for repo, mode in ((self.full, 0o700), (self.readable, 0o755)):
            repo.mkdir(exist_ok=True)
            os.chmod(repo, mode)
            if not (repo / ".git").exists():
                self._git(repo, "init", "-q", "-b", "main")
        key_file = self.full / ".redaction-key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            (self.full / ".gitignore").write_text(".redaction-key\n")

    def _key(self) -> bytes:
        return (self.full / ".redaction-key").read_text().strip().encode()

    def redact(self, text: str) -> str:
        """`text` with secrets redacted under this store's key (the tags match its readable copies)."""
        self.init()
        return redact(text, self._key())

    @staticmethod
    def _file(device: str) -> str:
        if not _DEVICE_ID.match(device):
            raise BackupError(f"{device!r} is not a device id")
        return device + CONFIG_SUFFIX

    # --- reading ----------------------------------------------------------------------
    def read(self, device: str, rev: str = "HEAD", *, full: bool = False) -> str | None:
        """The configuration at `rev` (a readable-repository revision); None when there is none."""
        repo = self.full if full else self.readable
        if not (repo / ".git").exists() or not self.history(device):
            return None
        if full and rev != "HEAD":
            rev = self._full_rev(rev)
        spec = f"{rev}:{self._file(device)}"
        if self._git_try(repo, "cat-file", "-e", spec) is None:
            return None
        return self._git(repo, "show", spec)

    def _full_rev(self, readable_rev: str) -> str:
        """The full repository's commit recorded for a readable revision."""
        full_sha = self._git(self.readable, "log", "-1", "--format=%(trailers:key=Full-Commit,valueonly)", readable_rev).strip()
        if not full_sha:
            raise BackupError(f"revision {readable_rev} has no Full-Commit trailer")
        return full_sha

    def history(self, device: str) -> list[Revision]:
        """Newest first."""
        if not (self.readable / ".git").exists():
            return []
        out = self._git_try(self.readable, "log", "--format=%H%x1f%cI%x1f%s", "--", self._file(device)) or ""
        revs = []
        for line in out.splitlines():
            sha, when, subject = line.split("\x1f", 2)
            revs.append(Revision(sha, dt.datetime.fromisoformat(when), subject))
        return revs

    def diff(self, device: str, from_rev: str | None = None, to_rev: str | None = None) -> str:
        """Redacted unified diff of the normalised configs; default: the previous revision to the latest."""
        revs = self.history(device)
        if not revs:
            raise BackupError(f"no backups of {device}")
        to_rev = to_rev or revs[0].rev
        if from_rev is None:
            index = next((i for i, r in enumerate(revs) if r.rev.startswith(to_rev)), 0)
            from_rev = revs[index + 1].rev if index + 1 < len(revs) else None
        old = self._git(self.readable, "show", f"{from_rev}:{self._file(device)}") if from_rev else ""
        new = self._git(self.readable, "show", f"{to_rev}:{self._file(device)}")
        return _unified(device, normalise(old) if old else "", normalise(new), from_rev or "empty", to_rev)

    # --- writing ----------------------------------------------------------------------
    def save(self, device: str, config: str, *, when: dt.datetime | None = None, message: str | None = None) -> BackupResult:
        self.init()
        name = self._file(device)
        when = when or dt.datetime.now(dt.timezone.utc)
        previous = self.read(device, full=True)
        if previous is not None and normalise(previous) == normalise(config):
            return BackupResult(device, False, None, "")
        full_path = self.full / name
        fd = os.open(full_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(config)
        os.chmod(full_path, 0o600)
        readable_text = redact(config, self._key())
        (self.readable / name).write_text(readable_text, encoding="utf-8", newline="")
        subject = message or (f"{device}: first backup" if previous is None else f"{device}: configuration changed")
        self._git(self.full, "add", "--", name)
        self._git(self.full, "commit", "-q", "--no-verify", "-m", subject, when=when)
        full_sha = self._git(self.full, "rev-parse", "HEAD").strip()
        self._git(self.readable, "add", "--", name)
        self._git(self.readable, "commit", "-q", "--no-verify", "-m", subject, "-m", f"Full-Commit: {full_sha}", when=when)
        rev = self._git(self.readable, "rev-parse", "HEAD").strip()
        old_readable = normalise(redact(previous, self._key())) if previous is not None else ""
        diff = _unified(device, old_readable, normalise(readable_text), "previous", rev[:12])
        return BackupResult(device, True, rev, diff, first=previous is None)


    def save_run(self, device: str, command: str, output: str, *, when: dt.datetime | None = None) -> tuple[Path, Path]:
        """Keep the output of an on-demand command with the device's history: `runs/<device>/<time>-<slug>.txt`.

        As with configurations, the exact output goes to the restricted repository and a
        redacted copy to the readable one, each committed. Returns (full path, readable path).
        """
        self.init()
        self._file(device)  # the id check
        when = when or dt.datetime.now(dt.timezone.utc)
        slug = re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-")[:48] or "command"
        stem = f"{when.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{slug}"
        rel = Path("runs") / device / f"{stem}.txt"
        n = 1
        while (self.full / rel).exists():  # the same command twice within a second
            n += 1
            rel = rel.with_name(f"{stem}-{n}.txt")
        header = f"# {device}: {command}\n# {when.astimezone(dt.timezone.utc).isoformat()}\n"
        subject = f"{device}: ssh run {command}"[:200]
        paths = []
        for repo, text in ((self.full, header + output), (self.readable, header + self.redact(output))):
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if repo is self.full else 0o644)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
            self._git(repo, "add", "--", str(rel))
            self._git(repo, "commit", "-q", "--no-verify", "-m", subject, when=when)
            paths.append(path)
        return paths[0], paths[1]


def _unified(device: str, old: str, new: str, from_label: str, to_label: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{device} {from_label[:12]}", f"{device} {to_label[:12]}", n=3
    )
    return "".join(lines)
