"""The shape of a language's texts: one `Catalog`, which nb.py and en.py each fill in.

A field is one section (the alert words, a report's words, diagnose's titles...): a mapping
from key to text, where `{name}` marks a value filled in with `str.format`. Sections are
fields so that a misspelt section fails type checking; a key that one language lacks, or a
placeholder that differs between them, fails tests/test_texts.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Words = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Plural:
    """A counted word's forms. Bokmål and English both have two: one, and everything else (0, 2, 7)."""

    one: str
    other: str

    def form(self, n: int) -> str:
        return self.one if n == 1 else self.other


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every translated text, in one language, by what it is for."""

    # How numbers, money and dates are written (collector/reports/i18n.py).
    decimal_mark: str
    group_mark: str
    csv_delimiter: str  # a spreadsheet in this language reads `,` as the decimal mark, or does not
    date_format: str  # strftime
    timestamp_format: str  # strftime; the zone label is added after it
    money_nok: str  # {amount}: kroner, the municipality's own currency
    money: str  # {amount} in another {currency}

    # Counted words: "1 maskin", "7 maskiner".
    counted: Mapping[str, Plural]
    # Hardware kinds as people say them (reports, the lifecycle digest); an unknown kind is shown as written.
    kinds: Mapping[str, Plural]

    # Alert messages (mail, SMS, Teams, Slack): states, severities and the phrases around summaries.
    alert: Words
    # Fact labels of the chat kinds (Teams, Slack) that the alert words do not have.
    chat_facts: Words
    # An alert's summary by rule kind (collector/alerting/rules.py); the site alert's under site_unreachable.
    rule_summaries: Words
    # The {detail} of a summary, built from the rule kind's evidence (RuleKind.describe): printer
    # conditions by RFC 3805 name ("printer_<bit>"), a UPS's state in parts ("ups_<part>").
    rule_details: Words
    # Messages of the SSH scheduler: a configuration change, a changed host key.
    ssh_events: Words
    # The monthly lifecycle digest to managers.
    digest: Words
    months: tuple[str, ...]  # January first

    # `nettvakt diagnose`: the report's own words, then one section per kind of sentence.
    diagnose: Words
    diagnose_titles: Words  # by verdict kind
    diagnose_summaries: Words  # by verdict kind
    diagnose_fragments: Words  # the parts of a summary that depend on the evidence
    diagnose_suggestions: Words  # by suggestion code
    diagnose_data: Words  # what there was too little of, by the suggestion's `what`
    diagnose_labels: Words  # evidence keys; a key missing here is shown as it is
    diagnose_checks: Words  # by check name
    diagnose_resources: Words  # host resources
    diagnose_sides: Words  # of the gateway
    diagnose_placeholders: Words  # said instead of an empty value

    # `nettvakt report hardware`, `nettvakt report servers` and `nettvakt report capacity`.
    hardware_report: Words
    servers_report: Words
    capacity_report: Words

    # Logins: the message about a login to a shared account, and `nettvakt report logins`.
    login_events: Words
    logins_report: Words

    # `nettvakt report availability`.
    availability_report: Words

    # The collector's status pages (collector/status/): the overview, a site's page, a device's page.
    status_page: Words
    weekdays: tuple[str, ...]  # short, Monday first: under the 7-day charts
