"""`kind = "slack"`: a Slack incoming webhook, `text` (notifications, old clients) plus Block Kit blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from collector.alerting.channels import chat
from collector.alerting.channels.base import ChannelKind
from collector.alerting.channels.text import shorten
from collector.alerting.notification import Notification


class SlackSettings(chat.ChatSettings):
    kind: Literal["slack"]


SLACK_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:",
               "resolved": ":white_check_mark:"}
SLACK_HEADER_MAX = 150  # Slack's limits for a header block and a section text
SLACK_SECTION_MAX = 3000


def slack_escape(text: str) -> str:
    """Slack reads &, < and > in mrkdwn as markup (links, mentions); these three are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class SlackSender(chat.ChatSender):
    kind: ClassVar[str] = "slack"

    def payload(self, notification: Notification) -> dict[str, Any]:
        words = self.locale.words()
        header = f"{SLACK_EMOJI.get(chat.state(notification.events), '')} {notification.title}".strip()
        lines = []
        for e in notification.events:
            emoji = SLACK_EMOJI["resolved"] if e.event == "resolved" else SLACK_EMOJI.get(e.severity, "")
            state = f"*{slack_escape(words.get(e.event, e.event))}*"
            lines.append(f"{emoji} {state} {slack_escape(words.get(e.severity, e.severity))}: {slack_escape(e.summary)}")
            if e.affected and e.event != "resolved":
                lines.append(f"    _{slack_escape(words['affected'])}: {slack_escape(', '.join(e.affected))}_")
        section = "\n".join(lines) or slack_escape(notification.body)
        facts = "  ·  ".join(f"*{slack_escape(k)}:* {slack_escape(v)}" for k, v in chat.facts(notification, self.locale))
        return {
            "text": slack_escape(notification.title),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": shorten(header, SLACK_HEADER_MAX), "emoji": True}},
                {"type": "section", "text": {"type": "mrkdwn", "text": shorten(section, SLACK_SECTION_MAX)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
            ],
        }


KIND = ChannelKind(
    name="slack",
    settings=SlackSettings,
    sender=SlackSender.from_settings,
    help="Slack incoming webhook",
)
