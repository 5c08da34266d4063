"""Run a fake-switches Cisco switch over SSH, for tests and demos: `python -m collector.ssh.fakeswitch`.

fake-switches' own launcher stores the enable password as bytes, so `enable` with a
non-empty secret never succeeds; here the core gets it as str. It also listens on all
addresses unless told; `--host` defaults to 127.0.0.1 here.

Passwords come from the environment (FAKESWITCH_PASSWORD, FAKESWITCH_ENABLE_SECRET), not
the command line, so they do not show in `ps`.

The emulated IOS knows vlans, interfaces and routes. We add the two secret-bearing lines a
real switch has, so backups of it exercise redaction: `enable secret 9 ...` (a hash of the
enable secret, as IOS shows it) and `snmp-server community NAME RO|RW`, both settable in
configuration mode (`snmp-server community NAME RO`, `no snmp-server community NAME`,
`enable secret NEW`, which also changes what `enable` accepts).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import os
import sys

from fake_switches.cisco.cisco_core import Cisco2960SwitchCore
from fake_switches.cisco.command_processor.config import ConfigCommandProcessor
from fake_switches.cisco.command_processor.config_interface import ConfigInterfaceCommandProcessor
from fake_switches.cisco.command_processor.config_vlan import ConfigVlanCommandProcessor
from fake_switches.cisco.command_processor.config_vrf import ConfigVRFCommandProcessor
from fake_switches.cisco.command_processor.enabled import EnabledCommandProcessor
from fake_switches.switch_configuration import SwitchConfiguration
from fake_switches.transports.ssh_service import SwitchSshService

PASSWORD_ENV = "FAKESWITCH_PASSWORD"
ENABLE_ENV = "FAKESWITCH_ENABLE_SECRET"


def ios_secret_hash(secret: str) -> str:
    """Looks like IOS type 9 (`$9$salt$hash`); a stand-in, not scrypt: only redaction sees it."""
    digest = base64.b64encode(hashlib.sha256(b"nettvakt" + secret.encode()).digest(), altchars=b"./").decode().rstrip("=")
    return f"$9$nettvakt${digest}"


class _Config(ConfigCommandProcessor):
    def do_end(self) -> None:
        # IOS leaves configuration mode from any sub-mode with `end` (netmiko relies on it).
        self.is_done = True

    def do_snmp_server(self, *args: str) -> None:
        if len(args) >= 2 and "community".startswith(args[0]):
            self.switch_configuration.snmp_communities[args[1]] = (args[2] if len(args) > 2 else "RO").upper()
        else:
            self.write_line("% Invalid input detected at '^' marker.")

    def do_no_snmp_server(self, *args: str) -> None:
        if len(args) >= 2 and "community".startswith(args[0]):
            self.switch_configuration.snmp_communities.pop(args[1], None)

    def do_enable(self, *args: str) -> None:
        if len(args) == 2 and "secret".startswith(args[0]):
            self.switch_configuration.privileged_passwords = [args[1]]
        else:
            self.write_line("% Invalid input detected at '^' marker.")


class _Enabled(EnabledCommandProcessor):
    def write_line(self, data: str) -> None:
        super().write_line(data)
        # show_run writes `hostname X` once, near the top, as IOS does; the global secret lines follow it.
        if data.startswith("hostname "):
            config = self.switch_configuration
            for secret in config.privileged_passwords[:1]:
                super().write_line("!")
                super().write_line(f"enable secret 9 {ios_secret_hash(secret)}")
            for name, mode in sorted(config.snmp_communities.items()):
                super().write_line(f"snmp-server community {name} {mode}")


class LabCiscoCore(Cisco2960SwitchCore):
    def new_command_processor(self) -> EnabledCommandProcessor:
        return _Enabled(
            config=_Config(
                config_vlan=ConfigVlanCommandProcessor(),
                config_vrf=ConfigVRFCommandProcessor(),
                config_interface=ConfigInterfaceCommandProcessor(),
            )
        )


def build_switch(hostname: str, enable_secret: str, snmp_communities: dict[str, str] | None = None) -> LabCiscoCore:
    configuration = SwitchConfiguration(
        "127.0.0.1", name=hostname, privileged_passwords=[enable_secret], ports=LabCiscoCore.get_default_ports()
    )
    configuration.snmp_communities = dict(snmp_communities or {})
    return LabCiscoCore(configuration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.ssh.fakeswitch", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hostname", default="lab-sw1")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--snmp-community", action="append", default=[], metavar="NAME", help="a read-only community in the start configuration")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    enable_secret = os.environ.get(ENABLE_ENV)
    if not password or not enable_secret:
        print(f"fakeswitch: set {PASSWORD_ENV} and {ENABLE_ENV}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    from twisted.internet import reactor

    core = build_switch(args.hostname, enable_secret, {name: "RO" for name in args.snmp_community})
    # twisted's checker compares bytes; the enable check compares str (hence the two forms).
    service = SwitchSshService(ip=args.host, port=args.port, switch_core=core, users={args.username: password.encode()})
    service.hook_to_reactor(reactor)
    print(f"fakeswitch {args.hostname} listening on {args.host}:{args.port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
