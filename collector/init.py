"""`nettvakt init`: a first inventory.toml that validates, so nobody starts from an empty file.

Like `telegraf config`: everything a small municipality needs, on, with the rest written out
as comments to uncomment. It names one site; agents and devices come with `nettvakt agent
token` and `nettvakt discover --add-to`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from agent.commandline import Command
from agent.process import EXIT_OK, EXIT_USAGE
from collector.config import InventoryError, load_inventory
from collector.models import SLUG_RE

PROG = "nettvakt init"

TEMPLATE = """\
# inventory.toml for {organisation}: the single source of truth of nettvakt.
# Check it with `nettvakt check`; the collector applies changes while it runs.
organisation = {organisation_toml}

[collector]
# Where agents reach the collector. 127.0.0.1 only serves this machine: use the server's
# address on the municipal network (and tls_cert/tls_key, `nettvakt collector tls`).
listen = "127.0.0.1:8650"
data_dir = "var/collector"
# sha256 of the token that may set silences over HTTP (`nettvakt agent token` makes one).
# admin_token_sha256 = "..."

[storage]
# Points stay in the collector's own store until InfluxDB is configured:
kind = "local"
# kind = "influxdb_v1"
# url = "http://127.0.0.1:8086"
# database = "nettvakt"
# username = "nettvakt"
# password = "env:NETTVAKT_INFLUX_PASSWORD"   # secrets are env:NAME or file:PATH, never inline

[alerting]
language = "nb"  # or "en"
timezone = "Europe/Oslo"

# Lifetimes and replacement costs per hardware kind, for `nettvakt report hardware`.
[lifecycle.kinds.pc]
lifetime_years = 5
replacement_cost_nok = 12000

[lifecycle.kinds.laptop]
lifetime_years = 4
replacement_cost_nok = 15000

[lifecycle.kinds.server]
lifetime_years = 6
replacement_cost_nok = 90000

[lifecycle.kinds.switch]
lifetime_years = 8
replacement_cost_nok = 25000

[lifecycle.kinds.firewall]
lifetime_years = 6
replacement_cost_nok = 40000

[lifecycle.kinds.ups]
lifetime_years = 8
replacement_cost_nok = 15000

[lifecycle.kinds.network]
lifetime_years = 8
replacement_cost_nok = 20000

[[site]]
id = {site_toml}
name = {site_name_toml}
# uplink = "fw"   # the device whose line connects this site, for `nettvakt diagnose`

# One [[agent]] per machine with the agent on it. `nettvakt agent token` prints a token for
# the machine and the sha256 that goes here:
# [[agent]]
# id = "pc-resepsjon"
# name = "PC i resepsjonen"
# site = {site_toml}
# token_sha256 = "..."
# hardware = {{ kind = "pc", purchased = 2021-03-15 }}

# Network devices polled over SNMP; `nettvakt discover 10.20.0.0/24 --add-to inventory.toml --site {site}`
# finds them and adds them here.
# [[device]]
# id = "fw"
# name = "Brannmur"
# site = {site_toml}
# host = "10.20.0.1"
# hardware = {{ kind = "firewall", purchased = 2026-09-15 }}
# [device.snmp]
# version = "2c"
# community = "env:NETTVAKT_SNMP_COMMUNITY"

# What the agents at a site measure:
# [[probe]]
# name = "gw"
# kind = "icmp"          # icmp, tcp ("host:port"), http ("https://..."), dns, traceroute
# target = "10.20.0.1"
# sites = [{site_toml}]

[[alert]]
id = "agent-silent"
kind = "agent_silent"
severity = "critical"

[[alert]]
id = "agent-never-reported"
kind = "agent_never_reported"
severity = "warning"

[[alert]]
id = "device-down"
kind = "device_down"
severity = "critical"

[[alert]]
id = "site-down"
kind = "site_unreachable"
severity = "critical"

# Where alerts go:
# [[channel]]
# id = "vakt-epost"
# kind = "email"
# to = ["it-vakt@example.kommune.no"]
# smtp_host = "smtp.example.kommune.no"
#
# [[route]]
# channels = ["vakt-epost"]
"""


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def render(organisation: str, site: str, site_name: str) -> str:
    return TEMPLATE.format(
        organisation=organisation, organisation_toml=_toml(organisation), site=site, site_toml=_toml(site), site_name_toml=_toml(site_name)
    )


def run_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not SLUG_RE.match(args.site):
        print(f"{PROG}: --site {args.site!r} is not an id: use lower-case ASCII letters, digits and '-' (the name goes in --site-name)", file=sys.stderr)
        return EXIT_USAGE
    if path.exists() and not args.force:
        print(f"{PROG}: {path} exists; it is never overwritten without --force", file=sys.stderr)
        return EXIT_USAGE
    text = render(args.organisation, args.site, args.site_name or args.site)
    candidate = path.with_name(f".{path.name}.init")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate.write_text(text, encoding="utf-8")
        load_inventory(candidate, startup=True)  # what we write, the collector starts on
        os.replace(candidate, path)
    except InventoryError as exc:  # a bug of ours, or an odd name: say so, write nothing
        candidate.unlink(missing_ok=True)
        print("\n".join(exc.lines()), file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        candidate.unlink(missing_ok=True)
        print(f"{PROG}: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}: site {args.site!r}; next: `nettvakt check {path}`, then `nettvakt collector run --inventory {path}`")
    return EXIT_OK


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default="inventory.toml", metavar="PATH", help="where to write it (default ./inventory.toml)")
    parser.add_argument("--organisation", default="Karlsøy kommune", metavar="NAME", help="the municipality or organisation")
    parser.add_argument("--site", default="radhus", metavar="ID", help="id of the first site (lower-case letters, digits, '-')")
    parser.add_argument("--site-name", metavar="NAME", help="its display name (default: the id)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


COMMANDS = (
    Command(
        "init", help="write a first inventory.toml",
        description="Write a small, valid, commented inventory.toml for one site; `nettvakt check` passes on it and the collector starts on it.",
        arguments=_arguments, run=run_init,
    ),
)
