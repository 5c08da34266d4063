"""A small network-device CLI over real SSH (paramiko's server API), replaying recorded outputs.

For tests and demos: it listens on 127.0.0.1 (a free port), authenticates one user by password
or public key, echoes what is typed like a device does, and answers each command line with the
recorded output followed by the prompt. `CMD | grep PATTERN` filters the output of CMD, as
FortiOS does (netmiko's fortinet driver relies on it). Configuration-mode commands that print
nothing on a real device (`config ...`, `set ...`, `end`, `terminal ...`) print nothing here.

Misbehaviour for bad-input tests, per command: `hang` (prints the first line, then nothing,
so no prompt ever comes) and `disconnect` (closes the connection mid-session).
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import paramiko

from .platforms import PLATFORMS

_QUIET = re.compile(r"^(config\b|set\b|end$|next$|terminal\b|abort$|edit\b|unset\b)")


@dataclass
class DeviceScript:
    prompt: str  # "LAB-SW123_9200L#" or "TEST-FW1234 #"
    outputs: dict[str, str]  # command -> output with "\n" line ends
    # The platform (collector.ssh.platforms) whose CLI habits it has: how unknown commands are
    # answered, whether logging out asks first.
    flavour: str = "cisco_ios"
    misbehave: dict[str, str] = field(default_factory=dict)  # command -> "hang" | "disconnect"
    banner: str = ""

    def __post_init__(self) -> None:
        if self.flavour not in PLATFORMS:
            raise ValueError(f"flavour {self.flavour!r} is no platform (known: {', '.join(sorted(PLATFORMS))})")


_moduli_lock = threading.Lock()


def _load_moduli() -> None:
    """Give paramiko's server a prime for diffie-hellman-group-exchange.

    netmiko's fortinet driver offers only the key exchanges FortiOS has long had, and of
    those paramiko still implements only group-exchange-sha256, which a paramiko server
    offers only with a moduli file. Without /etc/ssh/moduli we write one holding the
    RFC 3526 2048-bit MODP prime (the group 14 prime paramiko itself carries).
    """
    import os
    import tempfile

    from paramiko.kex_group14 import KexGroup14SHA256

    with _moduli_lock:
        if getattr(paramiko.Transport, "_modulus_pack", None):
            return
        prime = KexGroup14SHA256.P
        line = f"20240101000000 2 6 100 {prime.bit_length() - 1} 2 {prime:X}\n"
        fd, path = tempfile.mkstemp(prefix="nettvakt-moduli-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(line)
            if not paramiko.Transport.load_server_moduli(path):
                raise RuntimeError("paramiko did not accept the moduli file")
        finally:
            os.unlink(path)


class _Server(paramiko.ServerInterface):
    def __init__(self, username: str, password: str | None, public_key: paramiko.PKey | None):
        self.username, self.password, self.public_key = username, password, public_key
        self.shell = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        kinds = (["password"] if self.password is not None else []) + (["publickey"] if self.public_key else [])
        return ",".join(kinds)

    def check_auth_password(self, username: str, password: str) -> int:
        ok = self.password is not None and username == self.username and password == self.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = self.public_key is not None and username == self.username and key == self.public_key
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.shell.set()
        return True


class CliSimulator:
    """Use as a context manager; `port` is set once started. Stops all its threads on exit."""

    def __init__(
        self,
        script: DeviceScript,
        *,
        username: str = "admin",
        password: str | None = "secret",
        public_key: paramiko.PKey | None = None,
        host_key: paramiko.PKey | None = None,
        port: int = 0,
    ):
        self.script = script
        self.username, self.password, self.public_key = username, password, public_key
        # ECDSA: paramiko cannot generate ed25519 keys, and RSA generation is slow.
        self.host_key = host_key or paramiko.ECDSAKey.generate()
        self.port = port
        self.commands: list[str] = []
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> "CliSimulator":
        _load_moduli()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()
        for thread in list(self._threads):
            thread.join(timeout=10)

    def __enter__(self) -> "CliSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"cli-simulator-{self.port}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    # --- one connection ---------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        with self._lock:
            self._transports.append(transport)
        try:
            transport.add_server_key(self.host_key)
            server = _Server(self.username, self.password, self.public_key)
            try:
                transport.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError):
                return  # a client that only fetched the host key, or went away
            channel = None
            # Short waits, so a client that went away (refused our host key) or a stop() ends this thread.
            while channel is None and transport.is_active() and not self._stopping.is_set():
                channel = transport.accept(timeout=0.2)
            if channel is None or not server.shell.wait(10):
                return
            self._shell(channel)
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the client went away mid-answer, as clients do
        finally:
            transport.close()
            with self._lock:
                self._transports.remove(transport)

    def _send(self, channel: paramiko.Channel, text: str) -> None:
        channel.sendall(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    def _shell(self, channel: paramiko.Channel) -> None:
        script = self.script
        if script.banner:
            self._send(channel, script.banner + ("" if script.banner.endswith("continue") else "\n"))
            if script.banner.endswith("any key to continue"):
                # ProCurve: the prompt comes only after a key press.
                channel.settimeout(10)
                if not channel.recv(16):
                    return
                self._send(channel, "\n")
        self._send(channel, "\n" + script.prompt + " ")
        line = ""
        last_cr = False
        channel.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                data = channel.recv(1024)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            for char in data.decode(errors="replace"):
                if char == "\n" and last_cr:
                    last_cr = False
                    continue  # the LF of a CRLF: one Enter, not two
                last_cr = char == "\r"
                if char in "\r\n":
                    self._send(channel, "\n")
                    if not self._answer(channel, line.strip()):
                        return
                    line = ""
                else:
                    channel.sendall(char.encode())  # echo, as a terminal line does
                    line += char

    def _answer(self, channel: paramiko.Channel, command: str) -> bool:
        """Print the command's output and the next prompt; False to end the connection."""
        script = self.script
        if command:
            self.commands.append(command)
        action = script.misbehave.get(command)
        if action == "disconnect":
            channel.close()
            return False
        output = self._output(command)
        if action == "hang":
            self._send(channel, output.split("\n", 1)[0] + "\n")
            while not self._stopping.wait(0.2) and not channel.closed:
                pass  # nothing more, ever: no prompt comes (until the client gives up)
            return False
        if command in ("exit", "quit", "logout"):
            question = PLATFORMS[script.flavour].logout_question
            if question is not None:
                self._send(channel, question)
                channel.settimeout(5)
                channel.recv(16)  # the answer; either way the session ends
            channel.close()
            return False
        self._send(channel, output + script.prompt + " ")
        return True

    def _output(self, command: str) -> str:
        outputs: Mapping[str, str] = self.script.outputs
        if not command or command in outputs:
            return outputs.get(command, "")
        base, bar, pattern = command.partition(" | grep ")
        if bar and base.strip() in outputs:
            regex = re.compile(pattern.strip().strip('"'))
            kept = [line for line in outputs[base.strip()].split("\n") if line and regex.search(line)]
            return "".join(line + "\n" for line in kept)
        if _QUIET.match(command):
            return ""
        reply = PLATFORMS[self.script.flavour].unknown_command_reply
        return reply.format(command=command, word=command.split()[0])
