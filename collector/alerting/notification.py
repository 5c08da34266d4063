"""What the alert engine tells people: a `Notification` to one channel, made of `AlertEvent` lines
(their words, per language, are the `alert` section of collector/texts).

Kept apart from the engine so that the channels that format and send notifications need not
import the engine (which imports collector.config, which builds its `[[channel]]` model from
the channels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# "event": a one-off happening with no state to resolve (a configuration change, the monthly digest).
EventKind = Literal["firing", "resolved", "flapping", "repeat", "event"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One line of a notification."""

    event: EventKind
    rule: str
    kind: str
    severity: str
    site: str
    subject: str
    summary: str
    since: float
    affected: tuple[str, ...] = ()
    uplink: str = ""  # site alerts: the uplink device that is down, by name

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.subject)

    def to_json(self) -> dict[str, Any]:
        return {
            "uplink": self.uplink,
            "event": self.event,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "site": self.site,
            "subject": self.subject,
            "summary": self.summary,
            "since": self.since,
            "affected": list(self.affected),
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one channel; it may carry several alerts that fired together."""

    channel: str
    title: str
    body: str
    events: tuple[AlertEvent, ...]
    created: float

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "title": self.title,
            "body": self.body,
            "created": self.created,
            "alerts": [e.to_json() for e in self.events],
        }
