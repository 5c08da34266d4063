"""Device sessions: netmiko in a bounded thread pool, host keys pinned on first use.

netmiko blocks, so each session runs in a worker thread of `SshRunner`; the pool size is the
bound on concurrent sessions. Every wait inside a session (TCP connect, banner, auth, each
command's prompt) has the device's `timeout_s`, so a hung device ends its own session with a
reason and never holds a worker forever; other devices are unaffected.

Host keys live in a known_hosts file of ours (never ~/.ssh/known_hosts). A device seen for
the first time has its key fetched and pinned; after that paramiko itself checks the key on
every connect (netmiko with `ssh_strict`), and a different key is refused with
`HostKeyChanged`, naming the file and line to remove if the device was really replaced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from agent.secrets import SecretError, resolve_secret
from collector.config import Device

from .linuxfiles import files_command
from .platforms import PLATFORMS

DEFAULT_MAX_SESSIONS = 4


class SshFailure(RuntimeError):
    """A session that failed; `reason` is short and fit for a point's `reason` field."""

    def __init__(self, device: str, reason: str, detail: str = ""):
        self.device, self.reason, self.detail = device, reason, detail
        super().__init__(f"{device}: {reason}" + (f" ({detail})" if detail else ""))


class HostKeyChanged(SshFailure):
    """The device presented a host key other than the pinned one: refused, never accepted."""


@dataclass(frozen=True)
class SshTarget:
    device: str
    site: str
    host: str
    port: int
    device_type: str
    username: str
    password: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    timeout_s: float = 30.0
    kind: str = "network"  # the inventory hardware kind, for `hardware` points
    key_passphrase: str | None = field(default=None, repr=False)
    enable_secret: str | None = field(default=None, repr=False)
    config_files: tuple[str, ...] = ()  # linux: the files that are its configuration


# An exec channel's output beyond this is refused: configuration files, not logs or disk images.
MAX_EXEC_OUTPUT_BYTES = 16 * 1024 * 1024


class ExecCommand(str):
    """A command run on an exec channel of its own (no terminal, no prompt): exact output, any length.

    The interactive shell netmiko drives echoes a command longer than its 511-column terminal
    wrapped, so netmiko never recognises the echo; and file contents could hold the prompt.
    """

    label: str  # what error messages call it, instead of the whole command

    def __new__(cls, command: str, label: str) -> "ExecCommand":
        self = super().__new__(cls, command)
        self.label = label
        return self


def config_command(device_type: str, config_files: Sequence[str] = ()) -> str | None:
    """The command that prints the device's configuration; None when it has none to back up."""
    platform = PLATFORMS[device_type]
    if platform.config_from_files:
        return ExecCommand(files_command(config_files), "the config_files listing") if config_files else None
    return platform.config_command


def target_from_inventory(device: Device, base_dir: Path | None = None) -> SshTarget:
    """An SshTarget from an inventory device with an `ssh` table; secrets resolved here."""
    ssh = device.ssh
    if ssh is None:
        raise SshFailure(device.id, "no [device.ssh] table in the inventory")
    resolved: dict[str, str | None] = {}
    for name in ("password", "key_passphrase", "enable_secret"):
        ref = getattr(ssh, name)
        try:
            resolved[name] = resolve_secret(ref, base_dir) if ref else None
        except SecretError as exc:
            label = "password secret" if name == "password" else name  # the TOML key otherwise
            raise SshFailure(device.id, f"{label} does not resolve", str(exc)) from None
    key_file = ssh.key_file
    if key_file is not None and not key_file.is_absolute() and base_dir is not None:
        key_file = base_dir / key_file
    return SshTarget(
        device=device.id,
        site=device.site,
        host=device.host,
        port=ssh.port,
        device_type=ssh.device_type,
        username=ssh.username,
        password=resolved["password"],
        key_file=key_file,
        timeout_s=ssh.timeout_s,
        kind=device.hardware.kind,
        key_passphrase=resolved["key_passphrase"],
        enable_secret=resolved["enable_secret"],
        config_files=tuple(ssh.config_files),
    )


def _host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class PinnedHostKeys:
    """Our known_hosts file: trust on first use, then only the pinned key."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        if self.path.exists():
            keys.load(str(self.path))
        return keys

    def pinned(self, host: str, port: int) -> paramiko.PKey | None:
        with self._lock:
            found = self._load().lookup(_host_entry(host, port))
        return next(iter(found.values()), None) if found else None

    def pin(self, host: str, port: int, key: paramiko.PKey) -> None:
        with self._lock:
            keys = self._load()
            entry = _host_entry(host, port)
            if keys.lookup(entry):
                return  # pinned meanwhile by another session; paramiko checks it on connect
            keys.add(entry, key.get_name(), key)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            keys.save(str(tmp))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)

    def ensure_pinned(self, target: SshTarget) -> None:
        """Fetch and pin the key of a device seen for the first time."""
        if self.pinned(target.host, target.port) is not None:
            return
        self.pin(target.host, target.port, fetch_host_key(target.host, target.port, target.timeout_s))


def fetch_host_key(host: str, port: int, timeout_s: float) -> paramiko.PKey:
    sock = socket.create_connection((host, port), timeout=timeout_s)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout_s
        transport.start_client(timeout=timeout_s)
        return transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." as ssh-keygen -l prints it


@dataclass
class SessionResult:
    device: str
    outputs: dict[str, str] = field(default_factory=dict)
    error: SshFailure | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_key_file(target: SshTarget) -> None:
    """Open the private key here, so a wrong passphrase reads as that, not as a refused login."""
    assert target.key_file is not None
    try:
        passphrase = target.key_passphrase.encode() if target.key_passphrase is not None else None
        paramiko.PKey.from_path(target.key_file, password=passphrase)  # type: ignore[arg-type]  # wants bytes
    except OSError as exc:
        raise SshFailure(target.device, "key file does not open", f"{target.key_file}: {exc.strerror or exc}") from None
    except (TypeError, ValueError, paramiko.SSHException) as exc:
        hint = "wrong key_passphrase?" if target.key_passphrase else "encrypted? then it needs key_passphrase"
        raise SshFailure(target.device, "key file does not open", f"{target.key_file} ({hint}): {exc}") from None


def run_session(target: SshTarget, commands: Sequence[str], host_keys: PinnedHostKeys) -> dict[str, str]:
    """Log in, run `commands` in order, log out. Blocking; raises SshFailure with the reason."""
    from netmiko import ConnectHandler
    from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException, ReadTimeout

    t = target.timeout_s
    platform = PLATFORMS[target.device_type]
    if target.key_file is not None:
        check_key_file(target)
    try:
        host_keys.ensure_pinned(target)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SshFailure(target.device, "cannot reach ssh", f"{target.host}:{target.port}: {exc}") from None
    params: dict[str, object] = {
        "device_type": platform.netmiko_type,
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "password": target.password or "",
        "allow_agent": False,
        "use_keys": target.key_file is not None,
        "key_file": str(target.key_file) if target.key_file else None,
        "passphrase": target.key_passphrase,
        "secret": target.enable_secret or "",
        # Reject unknown keys, check known ones against our file only.
        "ssh_strict": True,
        "system_host_keys": False,
        "alt_host_keys": True,
        "alt_key_file": str(host_keys.path),
        "conn_timeout": t,
        "auth_timeout": t,
        "banner_timeout": t,
        "blocking_timeout": t,
        "session_timeout": t,
        "read_timeout_override": t,
    }
    conn = None
    command = "(login)"
    try:
        conn = ConnectHandler(**params)
        if platform.uses_enable and not conn.check_enable_mode():
            command = "enable"
            try:
                conn.enable()
            except (ValueError, ReadTimeout):
                raise SshFailure(
                    target.device, "enable failed", "the device refused `enable`; check [device.ssh] enable_secret"
                ) from None
        outputs = {}
        for command in commands:
            if isinstance(command, ExecCommand):
                outputs[command] = _exec(conn.remote_conn_pre, target, command)
            else:
                outputs[command] = conn.send_command(command, read_timeout=t)
        return outputs
    except NetmikoAuthenticationException:
        raise SshFailure(target.device, "authentication failed", f"user {target.username!r}") from None
    except NetmikoTimeoutException as exc:
        text = str(exc)
        if "does not match" in text:
            pinned = host_keys.pinned(target.host, target.port)
            raise HostKeyChanged(
                target.device,
                "host key changed",
                f"{target.host}:{target.port} no longer presents the pinned key "
                f"{fingerprint(pinned) if pinned else '?'}; refused. If the device was really replaced, "
                f"remove the line for {_host_entry(target.host, target.port)} from {host_keys.path}",
            ) from None
        where = f"{target.host}:{target.port}"
        if "TCP connection to device failed" in text:
            raise SshFailure(target.device, "cannot reach ssh", f"{where}: TCP connection failed") from None
        if "protocol banner" in text or "No existing session" in text:
            # The port accepts connections but no SSH server speaks (paramiko words it either
            # way, depending on when it notices): a hung device or daemon.
            raise SshFailure(target.device, "timeout", f"{where}: no SSH banner within {t:g} s") from None
        # netmiko's message is a headline ending in ':' and the cause on a later line.
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        detail = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
        raise SshFailure(target.device, "connect failed", f"{where}: {detail}") from None
    except ReadTimeout:
        channel = getattr(conn, "remote_conn", None)
        if channel is not None and getattr(channel, "closed", False):
            # netmiko only sees silence; the channel tells that the device hung up.
            raise SshFailure(target.device, "disconnected", f"device closed the session during {_named(command)}") from None
        raise SshFailure(target.device, "timeout", f"no prompt after {_named(command)} within {t:g} s") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SshFailure(target.device, "disconnected", f"during {_named(command)}: {exc or type(exc).__name__}") from None
    except ValueError as exc:  # netmiko's "Unexpected FortiOS version", prompt not found, ...
        raise SshFailure(target.device, "unexpected output", f"during {_named(command)}: {exc}") from None
    finally:
        if conn is not None:
            try:
                conn.disconnect()
            except (OSError, EOFError, paramiko.SSHException, ValueError):
                pass  # the session is over either way; disconnect() closes the transport first


def _named(command: str) -> str:
    return command.label if isinstance(command, ExecCommand) else repr(command)


def _exec(client: paramiko.SSHClient, target: SshTarget, command: ExecCommand) -> str:
    """`command` on a new channel of the logged-in connection; its stdout (stderr is dropped)."""
    t = target.timeout_s
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise SshFailure(target.device, "disconnected", f"before {command.label}")
    channel = transport.open_session(timeout=t)
    try:
        channel.settimeout(t)
        channel.exec_command(command)
        deadline = time.monotonic() + t
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                data = channel.recv(65536)
            except TimeoutError:
                data = None
            if data is None or time.monotonic() > deadline:
                raise SshFailure(target.device, "timeout", f"{command.label} did not end within {t:g} s")
            if not data:
                break
            size += len(data)
            if size > MAX_EXEC_OUTPUT_BYTES:
                raise SshFailure(target.device, "unexpected output", f"{command.label} printed more than {MAX_EXEC_OUTPUT_BYTES} bytes")
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        channel.close()


class SshRunner:
    """A bounded pool of SSH sessions. `close()` (or `async with`) ends the pool's threads."""

    def __init__(self, known_hosts: Path | str, max_sessions: int = DEFAULT_MAX_SESSIONS):
        # paramiko logs three INFO lines per login; our own log says what matters, once.
        if logging.getLogger("paramiko").level == logging.NOTSET:
            logging.getLogger("paramiko").setLevel(logging.WARNING)
        self.host_keys = PinnedHostKeys(known_hosts)
        self.max_sessions = max_sessions
        self._pool = ThreadPoolExecutor(max_workers=max_sessions, thread_name_prefix="ssh-session")

    def run_blocking(self, target: SshTarget, commands: Sequence[str]) -> SessionResult:
        try:
            return SessionResult(target.device, run_session(target, commands, self.host_keys))
        except SshFailure as exc:
            return SessionResult(target.device, error=exc)

    async def run(self, target: SshTarget, commands: Sequence[str]) -> SessionResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.run_blocking, target, list(commands))

    async def run_many(self, jobs: Sequence[tuple[SshTarget, Sequence[str]]]) -> list[SessionResult]:
        """Every job's result, in order; a failing device never affects the others."""
        return list(await asyncio.gather(*(self.run(t, c) for t, c in jobs)))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def __aenter__(self) -> "SshRunner":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)
