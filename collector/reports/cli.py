"""`nettvakt report hardware|servers|logins|capacity|availability`: load the inventory, read what was observed, render.

Formats: `table` (aligned text), `csv` (`;` and decimal comma in Norwegian, as Norwegian
Excel expects; `,` and `.` in English), `json`, `html` (one self-contained file with the chart
embedded) and `pdf` (hardware, capacity and availability; needs --output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from agent.commandline import Command, add_inventory_argument, parse_duration
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from agent.secrets import SecretError
from collector import texts
from collector.config import Inventory, InventoryError, load_inventory
from collector.rollups import RAW, RESOLUTIONS
from collector.timeseries import InfluxSource, Sample, SeriesSource, SourceConfigError, SourceError, open_source
from collector.reports.render import Document, render_csv, render_html, render_pdf, render_text

# How far back the hardware report looks for the agents' facts (sent hourly, and at start),
# and for memory and disk sizes (in every host sample: a day is plenty, and cheap to read).
FACTS_LOOKBACK_S = 30 * 86400.0
SIZES_LOOKBACK_S = 86400.0
# Pages per month from the last 30 days of page counts; a UPS's battery dates from its latest poll in them.
PAGES_LOOKBACK_S = 30 * 86400.0
DEVICE_FACT_KINDS = ("printer", "ups")

T = TypeVar("T")


def _load(args: argparse.Namespace, command: str) -> Inventory | None:
    try:
        return load_inventory(Path(args.inventory))
    except InventoryError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        print(f"nettvakt report {command}: the inventory has {len(exc.problems)} problem(s)", file=sys.stderr)
        return None


def _emit(args: argparse.Namespace, command: str, doc: Document, data: Callable[[], dict[str, Any]]) -> int:
    fmt = args.format
    output = Path(args.output) if args.output else None
    try:
        if fmt == "pdf":
            assert output is not None  # checked before any work
            render_pdf(doc, output)
            return EXIT_OK
        if fmt == "json":
            text = json.dumps(data(), ensure_ascii=False, indent=2) + "\n"
        elif fmt == "csv":
            text = render_csv(doc)
        elif fmt == "html":
            text = render_html(doc)
        else:
            text = render_text(doc)
        if output is None:
            sys.stdout.write(text)
        else:
            # newline="" keeps CSV's \r\n as the csv module wrote it.
            output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        print(f"nettvakt report {command}: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


Points = list[tuple[dict[str, str], dict[str, Any]]]


def _observed(args: argparse.Namespace, command: str, read: Callable[[], T]) -> tuple[T | None, int]:
    """(what `read` got from the store, EXIT_OK), or (None, the exit status) after saying on stderr why not."""
    try:
        return read(), EXIT_OK
    except SecretError as exc:
        print(f"nettvakt report {command}: {args.inventory}: storage: {exc}", file=sys.stderr)
        return None, EXIT_USAGE
    except SourceConfigError as exc:
        print(f"nettvakt report {command}: {exc}", file=sys.stderr)
        return None, EXIT_USAGE
    except SourceError as exc:  # no data, no report: say where it failed
        print(f"nettvakt report {command}: cannot read the data ({args.source}): {exc}", file=sys.stderr)
        return None, EXIT_FAIL


def _read(source: SeriesSource, wanted: list[tuple[str, int, dict[str, str] | None]], end_ns: int,
          resolutions: Mapping[str, str] | None = None) -> dict[str, Points]:
    """(tags, fields) per measurement, oldest first: one query per (measurement, since, tags), at
    `resolutions[measurement]` (raw when not named).

    Raises SourceError (store unreachable or unreadable)."""
    out: dict[str, Points] = {}
    for measurement, start_ns, tags in wanted:
        resolution = (resolutions or {}).get(measurement, "raw")
        out.setdefault(measurement, []).extend((s.tags, dict(s.fields)) for s in source.samples(measurement, start_ns, end_ns, tags, resolution))
    return out


def _device_facts(inventory: Inventory, source: SeriesSource, end_ns: int) -> list[Sample]:
    """`device` samples of printers and UPSes, oldest first: page counts over PAGES_LOOKBACK_S at the
    resolution the store names for it (`pages_total` is a counter: a rollup keeps its maximum, so the
    increase reads alike), and the battery dates (strings, never rolled up) from the last day's raw points."""
    start_ns = end_ns - int(PAGES_LOOKBACK_S * 1e9)
    resolution = source.resolution_for(start_ns, end_ns, end_ns)
    out: list[Sample] = []
    for d in inventory.device:
        if d.hardware.kind not in DEVICE_FACT_KINDS and d.hardware.battery is None:
            continue
        tags = {"device": d.id}
        out += source.samples("device", start_ns, end_ns, tags, resolution)
        if resolution != RAW:
            rolled = out[-1].time_ns if out and out[-1].tags.get("device") == d.id else None
            recent = source.samples("device", end_ns - int(SIZES_LOOKBACK_S * 1e9), end_ns, tags)
            # Only the strings: raw page counts among a rollup's bucket maxima would read as resets.
            out += [Sample(s.time_ns, s.tags, {k: v for k, v in s.fields.items() if isinstance(v, str)}) for s in recent]
            # ...except the last count read after the newest bucket closed (a bucket's maximum cannot
            # exceed it): the page total as last read, even before the first rollup exists.
            counted = [s for s in recent if isinstance(s.fields.get("pages_total"), float)]
            bucket_ns = RESOLUTIONS[resolution].bucket_s * 10**9
            if counted and (rolled is None or counted[-1].time_ns >= rolled + bucket_ns):
                out.append(Sample(counted[-1].time_ns, counted[-1].tags, {"pages_total": counted[-1].fields["pages_total"]}))
    out.sort(key=lambda s: s.time_ns)
    return out


def run_hardware(args: argparse.Namespace) -> int:
    from collector.reports.hardware import build_hardware_report, hardware_document, observed_from_points

    if args.format == "pdf" and not args.output:
        print("nettvakt report hardware: --format pdf needs --output PATH", file=sys.stderr)
        return EXIT_USAGE
    if args.year is not None and not 1990 <= args.year <= 2200:
        print(f"nettvakt report hardware: --year {args.year}: expected a budget year such as 2027", file=sys.stderr)
        return EXIT_USAGE
    inventory = _load(args, "hardware")
    if inventory is None:
        return EXIT_USAGE
    today = dt.date.today()
    lang = args.lang or inventory.alerting.language
    end_ns = time.time_ns()
    observed, error = {}, None
    try:
        points = _read(source := open_source(inventory, "auto"), [
            ("hardware", end_ns - int(FACTS_LOOKBACK_S * 1e9), None),
            ("host", end_ns - int(SIZES_LOOKBACK_S * 1e9), None),
            ("host_disk", end_ns - int(SIZES_LOOKBACK_S * 1e9), None),
        ], end_ns)
        observed = observed_from_points(points["hardware"], points["host"], points["host_disk"], _device_facts(inventory, source, end_ns))
    except (SourceError, SecretError) as exc:  # the plan stands without observed facts: printed, saying so
        error = str(exc)
        # An unset secret is the configuration's fault (2); a store that cannot be read, the data's (1).
        failed = EXIT_USAGE if isinstance(exc, (SecretError, SourceConfigError)) else EXIT_FAIL
    report = build_hardware_report(inventory, args.year or today.year, today, observed, facts_error=error)
    status = _emit(args, "hardware", hardware_document(report, lang), report.to_json)
    if error is not None and status == EXIT_OK:
        print(f"nettvakt report hardware: made without observed facts: cannot read the data: {error}", file=sys.stderr)
        return failed
    return status


def run_servers(args: argparse.Namespace) -> int:
    from collector.reports.servers import APPS_LOOKBACK_S, HostUse, build_servers_report, read_use, server_agents, servers_document

    inventory = _load(args, "servers")
    if inventory is None:
        return EXIT_USAGE
    lang = args.lang or inventory.alerting.language
    end_ns = time.time_ns()
    start_ns = end_ns - int(args.since * 1e9)
    # Only the servers' own points (a tag filter per server), and only the recent listening
    # programs: every agent reports those every few minutes, and the report shows what runs now.
    apps_start_ns = max(start_ns, end_ns - int(APPS_LOOKBACK_S * 1e9))
    hosts = [agent.id for agent in server_agents(inventory)]
    strings: list[tuple[str, int, dict[str, str] | None]] = []
    for host in hosts:
        strings += [("service", apps_start_ns, {"host": host}), ("hardware", start_ns, {"host": host})]
    use_of = [(m, start_ns, {"host": host}) for host in hosts for m in ("host", "host_disk")]

    def read() -> tuple[dict[str, Points], dict[str, HostUse] | None, str]:
        source = open_source(inventory, args.source)
        # Use over the period at the resolution the store names for it; programs and facts (strings) raw.
        resolution = source.resolution_for(start_ns, end_ns, end_ns)
        if isinstance(source, InfluxSource):  # InfluxDB folds the use itself
            return _read(source, strings, end_ns), read_use(source, hosts, start_ns, end_ns, resolution), resolution
        return _read(source, strings + use_of, end_ns, {"host": resolution, "host_disk": resolution}), None, resolution

    found, failed = _observed(args, "servers", read)
    if found is None:
        return failed
    points, use, resolution = found
    report = build_servers_report(inventory, points, start_ns, end_ns, resolution=resolution, use=use)
    return _emit(args, "servers", servers_document(report, lang), report.to_json)


def _unknown_id(args: argparse.Namespace, command: str, option: str, value: str | None, known: set[str], what: str) -> bool:
    """True (said on stderr, with a suggestion) when `value` is given and not one of the inventory's `known` ids."""
    from collector.problems import did_you_mean

    if value is None or value in known:
        return False
    print(f"nettvakt report {command}: {option} {value}: no {what} with that id in {args.inventory}{did_you_mean(value, known)}", file=sys.stderr)
    return True


def run_logins(args: argparse.Namespace) -> int:
    from collector.logins import UserNames
    from collector.reports.logins import OPEN_LOOKBACK_S, build_logins_report, logins_document

    inventory = _load(args, "logins")
    if inventory is None:
        return EXIT_USAGE
    if _unknown_id(args, "logins", "--host", args.host, {a.id for a in inventory.agent}, "agent"):
        return EXIT_USAGE
    if args.user is not None and not args.user.strip():
        print("nettvakt report logins: --user: expected an account name (or its h: hash)", file=sys.stderr)
        return EXIT_USAGE
    lang = args.lang or inventory.alerting.language
    end_ns = time.time_ns()
    start_ns = end_ns - int(args.since * 1e9)
    try:
        names = UserNames.from_inventory(inventory)  # with hashed names, the key turns --user NAME into its stored form
    except SecretError as exc:
        print(f"nettvakt report logins: {args.inventory}: logins.key: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # From further back than the period: a session begun before it and still open has only its start point.
    lookback_ns = start_ns - int(OPEN_LOOKBACK_S * 1e9)
    samples, failed = _observed(args, "logins", lambda: open_source(inventory, args.source).samples(
        "login", lookback_ns, end_ns, {"host": args.host} if args.host else None))
    if samples is None:
        return failed
    report = build_logins_report(inventory, samples, start_ns, end_ns, names, host=args.host, user=args.user and args.user.strip())
    return _emit(args, "logins", logins_document(report, lang), report.to_json)


def run_capacity(args: argparse.Namespace) -> int:
    import zoneinfo

    from collector.problems import did_you_mean
    from collector.reports.capacity import build_capacity_report, capacity_document, read_capacity, report_months

    if args.format == "pdf" and not args.output:
        print("nettvakt report capacity: --format pdf needs --output PATH", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.months <= 120:
        print(f"nettvakt report capacity: --months {args.months}: expected 1 to 120 complete months", file=sys.stderr)
        return EXIT_USAGE
    inventory = _load(args, "capacity")
    if inventory is None:
        return EXIT_USAGE
    sites = [s.id for s in inventory.site]
    if args.site is not None and args.site not in sites:
        print(f"nettvakt report capacity: --site {args.site}: no site with that id in {args.inventory}{did_you_mean(args.site, sites)}", file=sys.stderr)
        return EXIT_USAGE
    lang = args.lang or inventory.alerting.language
    months = report_months(dt.datetime.now(zoneinfo.ZoneInfo(inventory.alerting.timezone)).date(), args.months)
    wanted = [args.site] if args.site else sites
    lines, failed = _observed(args, "capacity", lambda: read_capacity(inventory, open_source(inventory, args.source), months, wanted))
    if lines is None:
        return failed
    report = build_capacity_report(inventory, months, lines)
    return _emit(args, "capacity", capacity_document(report, lang), report.to_json)


def _format_arguments(parser: argparse.ArgumentParser, *, pdf: bool, html: str) -> None:
    """--format, --output and --lang, as every report has them (pdf where the report is made for print)."""
    parser.add_argument(
        "--format", choices=["table", "csv", "html", *(["pdf"] if pdf else []), "json"], default="table",
        help="table (terminal); csv (nb: ';' and decimal comma, for Norwegian Excel; en: ',' and '.'); json; "
        f"html ({html})" + ("; pdf (needs --output)" if pdf else ""),
    )
    parser.add_argument("--output", metavar="PATH", help="write here instead of standard output" + (" (required for pdf)" if pdf else ""))
    parser.add_argument("--lang", choices=texts.LANGUAGES, default=None, help="language (default: [alerting] language, nb)")


def run_availability(args: argparse.Namespace) -> int:
    from collector.reports.availability import availability_document, build_availability_report, read_availability

    if args.format == "pdf" and not args.output:
        print("nettvakt report availability: --format pdf needs --output PATH", file=sys.stderr)
        return EXIT_USAGE
    inventory = _load(args, "availability")
    if inventory is None:
        return EXIT_USAGE
    if _unknown_id(args, "availability", "--site", args.site, {s.id for s in inventory.site}, "site"):
        return EXIT_USAGE
    lang = args.lang or inventory.alerting.language
    end_ns = time.time_ns()
    start_ns = end_ns - int(args.since * 1e9)
    data, failed = _observed(args, "availability", lambda: read_availability(open_source(inventory, args.source), inventory, start_ns, end_ns))
    if data is None:
        return failed
    report = build_availability_report(inventory, data, start_ns, end_ns, site=args.site)
    return _emit(args, "availability", availability_document(report, lang), report.to_json)


def _hardware_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_argument(parser)
    parser.add_argument("--year", type=int, metavar="N", help="first budget year of the forecast (default: this year)")
    _format_arguments(parser, pdf=True, html="one self-contained file with the chart")


def _period_arguments(parser: argparse.ArgumentParser, since_s: float, since_help: str,
                      formats: tuple[str, ...] = ("table", "csv", "html", "json")) -> None:
    """The options of a report over a period of what was observed (servers, logins, availability)."""
    add_inventory_argument(parser)
    parser.add_argument("--since", type=parse_duration, default=since_s, metavar="DURATION", help=since_help)
    parser.add_argument("--source", choices=["auto", "influx", "local"], default="auto")
    _format_arguments(parser, pdf="pdf" in formats, html="one self-contained file")


def _availability_arguments(parser: argparse.ArgumentParser) -> None:
    _period_arguments(parser, 30 * 86400.0, "period to report (default 30d; 12mo is a year)", formats=("table", "csv", "html", "pdf", "json"))
    parser.add_argument("--site", metavar="SITE", help="only this site (its id in the inventory)")


def _servers_arguments(parser: argparse.ArgumentParser) -> None:
    _period_arguments(parser, 30 * 86400.0, "period to summarise (default 30d)")


def _logins_arguments(parser: argparse.ArgumentParser) -> None:
    _period_arguments(parser, 7 * 86400.0, "period to list (default 7d)")
    parser.add_argument("--host", metavar="AGENT", help="only this agent's machine (its id in the inventory)")
    parser.add_argument("--user", metavar="NAME", help="only this account: a name (hashed with the inventory's key when names are stored hashed) or an h: hash")


def _capacity_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_argument(parser)
    parser.add_argument("--months", type=int, default=12, metavar="N", help="complete calendar months before this one (default 12)")
    parser.add_argument("--site", metavar="S", help="only this site (its id in the inventory)")
    parser.add_argument("--source", choices=["auto", "influx", "local"], default="auto")
    _format_arguments(parser, pdf=True, html="one self-contained file with a chart per site")


COMMANDS = (
    Command("report", help="reports for managers: hardware renewal, server use, logins, line capacity, availability", subcommands=(
        Command("hardware", help="age, due year and cost of every machine, with a five-year forecast",
                description="Every PC, server, printer, switch and firewall with its age and its source, expected lifetime, "
                "due year and replacement cost, grouped by site and department, with a five-year forecast.",
                arguments=_hardware_arguments, run=run_hardware),
        Command("servers", help="applications, ports and use of every server; consolidation candidates",
                description="Per server: the applications it runs (listening services), their ports, and average and peak "
                "CPU, memory and disk use; servers with little use listed as candidates for consolidation.",
                arguments=_servers_arguments, run=run_servers),
        Command("logins", help="who was logged in on which machine, when and from where; shared accounts",
                description="Every login session the agents saw in the period (start, end or still logged in, duration, "
                "console or remote, from where), per machine and per account; logins to shared accounts marked.",
                arguments=_logins_arguments, run=run_logins),
        Command("capacity", help="each site's line: monthly p95 and peak use, the trend, when it passes 80 percent, latency under load",
                description="Per site uplink: monthly p95 and peak utilisation in and out, the trend, the month the p95 would "
                "pass 80 percent at that trend, and the site's ping time in busy and quiet hours; a chart per site in html and pdf.",
                arguments=_capacity_arguments, run=run_capacity),
        Command("availability", help="availability of every site and service, every outage, mean time to repair",
                description="Per site and per service (probe target): availability in percent over the period, every outage "
                "with start, end and duration, and the mean time to repair, worst sites first; from the collector's own verdicts.",
                arguments=_availability_arguments, run=run_availability),
    )),
)
