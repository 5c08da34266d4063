"""`nettvakt diagnose SITE`: read the site's window from the store, run the checks, print.

Exit codes: 0 a diagnosis was made (also "insufficient data"), 2 unknown site or bad
inventory, 1 the data source cannot be read (the message names it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.commandline import Command, add_inventory_argument, parse_duration
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from agent.secrets import SecretError
from collector import texts
from collector.config import Inventory, InventoryError, load_inventory
from collector.diagnose.analysis import Diagnosis, diagnose
from collector.diagnose.data import UnknownSiteError, load_site_data, site_context
from collector.diagnose.render import render_json, render_markdown, render_text
from collector.timeseries import SeriesSource, SourceConfigError, SourceError, open_source


def diagnose_site(inventory: Inventory, site_id: str, source: SeriesSource, start_ns: int, end_ns: int) -> Diagnosis:
    """The diagnosis of one site over [start_ns, end_ns). Raises UnknownSiteError, SourceError."""
    ctx = site_context(inventory, site_id)
    return diagnose(ctx, load_site_data(source, ctx, start_ns, end_ns))


def run_diagnose(args: argparse.Namespace) -> int:
    try:
        inventory = load_inventory(Path(args.inventory))
    except InventoryError as exc:
        print(str(exc), file=sys.stderr)
        print(f"nettvakt diagnose: the inventory has {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    lang = args.lang or inventory.alerting.language
    end_ns = time.time_ns()
    start_ns = end_ns - int(args.since * 1e9)
    try:
        ctx = site_context(inventory, args.site)
    except UnknownSiteError as exc:
        print(f"nettvakt diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = open_source(inventory, args.source)
        result = diagnose(ctx, load_site_data(source, ctx, start_ns, end_ns))
    except SecretError as exc:
        print(f"nettvakt diagnose: {args.inventory}: storage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SourceConfigError as exc:
        print(f"nettvakt diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SourceError as exc:
        print(f"nettvakt diagnose: cannot read the data: {exc}", file=sys.stderr)
        return EXIT_FAIL
    tz = inventory.alerting.timezone
    sys.stdout.write(render_json(result, lang, tz) if args.json else render_text(result, lang, tz))
    if args.markdown:
        try:
            Path(args.markdown).write_text(render_markdown(result, lang, tz), encoding="utf-8")
        except OSError as exc:
            print(f"nettvakt diagnose: cannot write {args.markdown}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAIL
    return EXIT_OK


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", metavar="SITE", help="site id in inventory.toml")
    add_inventory_argument(parser)
    parser.add_argument("--since", type=parse_duration, default=24 * 3600.0, metavar="DURATION", help="how far back to look (default 24h)")
    parser.add_argument("--source", choices=["auto", "influx", "local"], default="auto",
                        help="where to read (default: InfluxDB when configured, else the collector's local store)")
    parser.add_argument("--lang", choices=texts.LANGUAGES, default=None, help="language (default: [alerting] language, nb)")
    parser.add_argument("--json", action="store_true", help="machine-readable verdicts")
    parser.add_argument("--markdown", metavar="PATH", help="also write a Markdown report to PATH")


COMMANDS = (
    Command(
        "diagnose", help="explain slowness and loss at a site",
        description="Locate and explain slowness and loss for a site from agent probes and SNMP data: a verdict per finding, "
        "with confidence, evidence and times.",
        arguments=_arguments, run=run_diagnose,
    ),
)
