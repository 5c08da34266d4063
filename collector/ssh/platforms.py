"""SSH platforms: what the collector knows about one kind of device's CLI, one descriptor each.

`PLATFORMS` maps an inventory `device_type` to its `SshPlatform`: the netmiko driver, whether
the login needs `enable`, the facts commands and their parsers, the command that prints the
configuration, the read-only commands `nettvakt ssh run` allows, what the CLI prints when it
refuses, and the filters for its configurations (volatile lines, re-encrypted values,
secrets). collector.ssh.session, .commands, .tasks, .configs and .simulator read it; nothing
else keeps a list of platforms or asks which one a device is.

Adding a platform is one entry in `_PLATFORMS` (its facts parsers in a `facts_<name>.py`
when they are more than a line); tests/test_ssh_platform_registry.py registers a toy one at
test time and shows it picked up everywhere with no other edit.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from agent import registry

from .facts import FactsRecipe
from .facts_fortios import parse_fortios_hardware, parse_fortios_status
from .facts_ios import parse_ios_inventory, parse_ios_version
from .facts_linux import LINUX_FACTS_COMMAND, parse_linux
from .facts_procurve import parse_procurve_system


@dataclass(frozen=True)
class SecretRule:
    """A secret in a configuration line: the `group` of each match of `pattern` reads `<redacted:HMAC>`."""

    pattern: re.Pattern[str]
    group: int = 1
    # Only between a line matching the first pattern and one matching the second (FortiOS
    # names its SNMP communities with a plain `set name` inside `config system snmp community`).
    block: tuple[re.Pattern[str], re.Pattern[str]] | None = None


@dataclass(frozen=True)
class ConfigFilters:
    """How configurations are compared and made fit to read (collector.ssh.configs applies them)."""

    # Lines whose content changes without the configuration changing: dropped before comparing.
    volatile_lines: tuple[re.Pattern[str], ...] = ()
    # (pattern, constant) on every line, before comparing and before reading: values the device
    # writes anew on every export although nothing changed (FortiOS re-encrypts each ENC secret).
    churn: tuple[tuple[re.Pattern[str], str], ...] = ()
    secrets: tuple[SecretRule, ...] = ()


@dataclass(frozen=True)
class SshPlatform:
    """One `device_type`: how to log in, what to run, how to read it and what it may run."""

    name: str  # the inventory's device_type
    netmiko_type: str  # netmiko's ConnectHandler device_type
    facts: tuple[FactsRecipe, ...]  # the facts commands, in the order they run, each with its parser
    # `nettvakt ssh run` (collector.ssh.commands): the read-only commands, each matched against
    # the whole command, and what may follow a `|` (the device's own output filters).
    read_only: tuple[str, ...]
    pipe_filters: tuple[str, ...]
    # How its CLI answers a command it does not know ({command}, and {word} its first word),
    # as collector.ssh.simulator replays it.
    unknown_command_reply: str
    # The command that prints the running configuration; None when it has none of its own.
    config_command: str | None = None
    # Its configuration is the files an inventory entry lists in `config_files`
    # (collector.ssh.linuxfiles); without them it gives facts only.
    config_from_files: bool = False
    # An account may log in unprivileged (prompt `>`): `enable` with the device's enable_secret first.
    uses_enable: bool = False
    # Its commands name files, so `..` in one is refused: a path must not leave the allowed folders.
    commands_take_paths: bool = False
    # How its CLI starts what it prints instead of output when a command or the privilege is
    # wrong: such output is never stored as a configuration.
    error_prefixes: tuple[str, ...] = ()
    config_filters: ConfigFilters = field(default_factory=ConfigFilters)
    # Asked before the session ends, answered with a key (ProCurve); for the simulator.
    logout_question: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"platform name {self.name!r}: lower-case letters, digits and _ only (inventories write it as device_type)")
        if self.config_command is not None and self.config_from_files:
            raise ValueError(f"platform {self.name!r}: a config_command or config_from_files, not both")
        if not self.read_only:
            raise ValueError(f"platform {self.name!r}: no read-only commands; `nettvakt ssh run` needs at least one")
        for pattern in self.read_only + self.pipe_filters:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"platform {self.name!r}: {pattern!r} is not a regular expression: {exc}") from None


# --- configuration filters shared or too long for the table ------------------------------
# IOS-style secrets; ProCurve's CLI writes its secrets the same way.
# Cisco: enable secret 9 $9$..., username x secret 5 ..., password 7 0822..., password 0 cisco
_IOS_STYLE_SECRETS = (
    SecretRule(re.compile(r"\b(?:secret|password)\s+[0-9]\s+(\S+)")),
    SecretRule(re.compile(r"^\s*enable (?:secret|password)\s+(?!\d\s)(\S+)")),
    SecretRule(re.compile(r"\b(?:password|secret)\s+(?![0-9]\s)(?!ENC\s)(\S+)\s*$")),
    SecretRule(re.compile(r"\bsnmp-server community\s+(\"[^\"]*\"|\S+)")),
    SecretRule(re.compile(r"\bsnmp-server host\s+\S+\s+(?:vrf\s+\S+\s+)?(?:(?:informs|traps)\s+)?(?:version\s+(?:1|2c|3\s+(?:auth|noauth|priv))\s+)?(\S+)")),
    SecretRule(re.compile(r"\b(?:auth|priv)\s+(?:md5|sha\S*|des\S*|aes(?:\s+\d+)?|3des)\s+(\S+)")),
    SecretRule(re.compile(r"\bkey(?:-string)?\s+(?:[0-9]\s+)?(\S+)\s*$")),
    SecretRule(re.compile(r"\bcrypto isakmp key\s+(?:[0-9]\s+)?(\S+)")),
    SecretRule(re.compile(r"\bpre-shared-key\s+(?:local\s+|remote\s+)?(?:[0-9]\s+)?(\S+)")),
)

ENC_PLACEHOLDER = "ENC <redacted>"
_FORTIOS_FILTERS = ConfigFilters(
    volatile_lines=(re.compile(r"^#conf_file_ver="),),
    churn=((re.compile(r"\bENC \S+"), ENC_PLACEHOLDER),),
    secrets=(
        SecretRule(
            re.compile(r"^\s*set name\s+(\"[^\"]*\"|\S+)"),
            block=(re.compile(r"^\s*config system snmp community\s*$"), re.compile(r"^end\s*$")),
        ),
        # set passwd/psksecret/... "value" (plain, where not ENC)
        SecretRule(re.compile(r"^\s*set\s+(?:\S+-)?(?:password|passwd|psksecret|secret|key|pwd|community)\s+(?!ENC\s)(?!<redacted)(\"[^\"]*\"|\S+)")),
    ),
)

# Secrets in the files that configure Linux devices (collector.ssh.linuxfiles).
# Each has an example in tests/test_ssh_linuxfiles.py.
_USM_TOKEN = r"(?:\"[^\"]*\"|\S+)"
_USM_USER = r"^\s*usmUser" + (r"\s+" + _USM_TOKEN) * 7 + r"\s+"
_KV_VALUE = r"(\"[^\"]*\"|'[^']*'|\S(?:.*\S)?)"  # quoted, or the rest of the line
_LINUX_SECRETS = (
    # net-snmp snmpd.conf: rocommunity/rwcommunity[6] COMMUNITY [SOURCE [OID]], trapcommunity, sinks.
    SecretRule(re.compile(r"^\s*(?:ro|rw)community6?\s+(\S+)")),
    SecretRule(re.compile(r"^\s*trapcommunity\s+(\S+)")),
    SecretRule(re.compile(r"^\s*(?:trapsink|trap2sink|informsink)\s+\S+\s+(\S+)")),
    SecretRule(re.compile(r"^\s*com2sec6?\s+(?:-Cn\s+\S+\s+)?\S+\s+\S+\s+(\S+)")),
    SecretRule(re.compile(r"^\s*authcommunity\s+\S+\s+(\S+)")),
    # createUser [-e ENGINEID] NAME (MD5|SHA...) [-l|-m] AUTHPASS [(DES|AES...) [-l|-m] [PRIVPASS]]
    SecretRule(re.compile(r"^\s*createUser\s+(?:-e\s+\S+\s+)?\S+\s+(?:MD5|SHA\S*)\s+(?:-[lm]\s+)?(\"[^\"]*\"|\S+)", re.I)),
    SecretRule(re.compile(r"^\s*createUser\s.*?\s(?:DES|AES\S*)\s+(?:-[lm]\s+)?(\"[^\"]*\"|\S+)", re.I)),
    # snmpd's persistent file (/var/lib/snmp/snmpd.conf) keeps each user as `usmUser ... AUTHPROTO-OID
    # 0xAUTHKEY PRIVPROTO-OID 0xPRIVKEY ""`: keys localised to the engine, as good as the pass phrases.
    # By position (status, storage, engine id, name, security name, clone-from, auth protocol), so
    # every protocol OID is covered (AES-192/256 are under net-snmp's and Cisco's enterprise OIDs).
    SecretRule(re.compile(_USM_USER + r"(0x[0-9A-Fa-f]+|\"[^\"]*\")")),
    # (the auth key may already read <redacted:...> when this rule runs)
    SecretRule(re.compile(_USM_USER + r"\S+\s+\S+\s+(0x[0-9A-Fa-f]+|\"[^\"]*\")")),
    # key = value / key: value / key="value" (WireGuard PrivateKey/PresharedKey, wpa_supplicant
    # psk=, hostapd wpa_passphrase=, .env, ini and YAML files); commented-out ones too.
    SecretRule(
        re.compile(
            r"^\s*(?:[#;]\s*)?(?:export\s+)?[\"']?[\w.-]*(?:password|passwd|passphrase|secret|psk|wep_key\d|private_?key|"
            r"pre_?shared_?key|api_?key|token)\w*[\"']?\s*[=:]\s*" + _KV_VALUE,
            re.I,
        )
    ),
    # Debian /etc/network/interfaces with wpasupplicant: wpa-psk SECRET, wpa-password SECRET.
    SecretRule(re.compile(r"^\s*wpa-(?:psk|password)\s+" + _KV_VALUE)),
    # strongSwan/Libreswan ipsec.secrets: `left right : PSK "secret"`.
    SecretRule(re.compile(r":\s*(?:PSK|EAP|XAUTH)\s+(\"[^\"]*\"|\S+)")),
    # /etc/shadow and htpasswd: name:$hash$...:
    SecretRule(re.compile(r"^[\w.-]+:(\$[^:\s]+)(?::|$)")),
)

# `show ...` as IOS and ProCurve take it, abbreviations too.
_SHOW = r"sh(o|ow)? \S.*"


# --- the table ---------------------------------------------------------------------------
# Every platform's configuration filters apply to every configuration (see all_config_filters),
# in this order; the order of the secret rules matters where two could match one value.
_PLATFORMS: dict[str, SshPlatform] = {
    platform.name: platform
    for platform in (
        SshPlatform(
            name="cisco_ios",
            netmiko_type="cisco_ios",
            facts=(
                FactsRecipe("show version", parse_ios_version),
                FactsRecipe("show inventory", parse_ios_inventory, required=False),
            ),
            config_command="show running-config",
            uses_enable=True,
            read_only=(_SHOW, r"dir( \S+)?"),
            pipe_filters=(r"(i|in|inc|include|e|ex|exclude|b|begin|s|sec|section|count) \S.*",),
            error_prefixes=("%",),
            config_filters=ConfigFilters(
                volatile_lines=(
                    re.compile(r"^! Last configuration change at "),
                    re.compile(r"^! NVRAM config last updated at "),
                    re.compile(r"^! No configuration change since last restart"),
                    re.compile(r"^\s*ntp clock-period \d+"),
                    re.compile(r"^Building configuration\.\.\."),
                    re.compile(r"^Current configuration ?: \d+ bytes"),
                ),
                secrets=_IOS_STYLE_SECRETS,
            ),
            unknown_command_reply="% Invalid input detected at '^' marker.\n",
        ),
        SshPlatform(
            name="hp_procurve",
            netmiko_type="hp_procurve",
            facts=(FactsRecipe("show system", parse_procurve_system),),
            config_command="show running-config",
            uses_enable=True,
            read_only=(_SHOW, r"display \S.*"),
            pipe_filters=(r"(i|in|include|e|ex|exclude|b|begin) \S.*",),
            error_prefixes=("Invalid input",),
            config_filters=ConfigFilters(
                # Its header names the running release, which an upgrade changes.
                volatile_lines=(re.compile(r"^; .*Configuration Editor; Created on release"),),
                secrets=_IOS_STYLE_SECRETS,
            ),
            unknown_command_reply="Invalid input: {command}\n",
            logout_question="Do you want to log out [y/n]? ",
        ),
        SshPlatform(
            name="fortinet",
            netmiko_type="fortinet",
            facts=(
                FactsRecipe("get system status", parse_fortios_status),
                FactsRecipe("get hardware status", parse_fortios_hardware, required=False),
            ),
            config_command="show | grep .",  # `show` without the blank lines FortiOS pads it with
            read_only=(
                r"get \S.*",
                r"show( \S.*)?",
                # `diagnose sys` also kills processes and clears sessions: only the listing verbs.
                r"diagnose sys (top( \d+){0,2}|top-summary|session (list|stat|full-stat)|ha (status|checksum (show|cluster))"
                r"|mpstat( \d+)?|vd list|link-monitor status( \S+)?|sdwan (health-check|member|service)( \S+)*)",
                r"diagnose hardware deviceinfo (nic|disk)( \S+)?",
                r"diagnose (ip (arp|route|address) list|netlink interface list( \S+)?|firewall iprope list( \S+)?)",
                r"execute (ping|traceroute) \S+",
            ),
            pipe_filters=(r"grep( -[a-zA-Z]+)* \S.*",),
            error_prefixes=("Unknown action", "command parse error", "Command fail"),
            config_filters=_FORTIOS_FILTERS,
            unknown_command_reply="Unknown action 0\nCommand fail. Return code -1\n",
        ),
        SshPlatform(
            name="linux",
            netmiko_type="linux",
            facts=(FactsRecipe(LINUX_FACTS_COMMAND, parse_linux),),
            config_from_files=True,
            read_only=(
                r"uptime( -[ps])?",
                r"(hostname|whoami|w|who|date)",
                r"uname( -[a-z]+)?",
                r"df( -[hHiTlP]+)*( /\S*)*",
                r"free( -[bkmgh]+)?",
                r"ip( -(4|6|s|d|br|c|o))* (a|addr|address|l|link|r|route|n|neigh|neighbour|rule)( (show|list)( \S+)*)?",
                r"ss( -[a-zA-Z]+)*",
                r"cat( /proc/[\w./-]+)+",
                r"ps( -?[a-zA-Z]+)*",
                r"systemctl (status|is-active|is-enabled|list-units)( [\w@.-]+)*( --no-pager)?",
                r"lsblk( -[a-zA-Z]+)*",
            ),
            pipe_filters=(r"(e|f)?grep( -[a-zA-Z]+)* \S.*", r"(head|tail)( -n)?( -?\d+)?", r"wc( -[lwc])?"),
            commands_take_paths=True,
            config_filters=ConfigFilters(secrets=_LINUX_SECRETS),
            unknown_command_reply="sh: 1: {word}: not found\n",
        ),
    )
}
PLATFORMS: MappingProxyType[str, SshPlatform] = MappingProxyType(_PLATFORMS)


def all_config_filters() -> ConfigFilters:
    """Every platform's filters as one, in table order, each rule once.

    Applied to every configuration whatever its device_type: a line that holds a secret in
    any platform's syntax is redacted (one redacted needlessly costs nothing, one missed
    leaks), and stored configurations, diffs and `ssh run` outputs are read without knowing
    the platform.
    """
    filters = [platform.config_filters for platform in _PLATFORMS.values()]
    return ConfigFilters(
        volatile_lines=tuple(dict.fromkeys(p for f in filters for p in f.volatile_lines)),
        churn=tuple(dict.fromkeys(c for f in filters for c in f.churn)),
        secrets=tuple(dict.fromkeys(r for f in filters for r in f.secrets)),
    )


def all_error_prefixes() -> tuple[str, ...]:
    """Every platform's error prefixes: a device entered with a near-miss device_type (an IOS
    box as hp_procurve logs in alike) must not have its refusal stored as its configuration."""
    return tuple(dict.fromkeys(prefix for platform in _PLATFORMS.values() for prefix in platform.error_prefixes))


def registered(platform: SshPlatform) -> contextlib.AbstractContextManager[SshPlatform]:
    """For tests: `platform` is in the table while the block runs; afterwards the table is as before.

    Everything else only reads PLATFORMS (a read-only view of this table).
    """
    return registry.registered(_PLATFORMS, platform.name, platform, "platform")
