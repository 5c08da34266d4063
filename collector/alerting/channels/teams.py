"""`kind = "teams"`: Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook
request is received").

Workflows take only Adaptive Cards (the Office 365 connector MessageCard is retired), as an
attachment of a `message` activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from collector.alerting.channels import chat
from collector.alerting.channels.base import ChannelKind
from collector.alerting.notification import Notification


class TeamsSettings(chat.ChatSettings):
    kind: Literal["teams"]


# Adaptive Card colours: the container style and the title colour by what the message says.
TEAMS_STYLE = {"critical": "attention", "warning": "warning", "info": "accent", "resolved": "good"}


@dataclass
class TeamsSender(chat.ChatSender):
    kind: ClassVar[str] = "teams"

    def payload(self, notification: Notification) -> dict[str, Any]:
        words = self.locale.words()
        style = TEAMS_STYLE.get(chat.state(notification.events), "default")
        items: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": notification.title, "weight": "Bolder", "size": "Medium", "color": style, "wrap": True}
        ]
        for e in notification.events:
            items.append({"type": "TextBlock", "text": chat.line(e, words), "wrap": True, "spacing": "Small"})
            if e.affected and e.event != "resolved":
                items.append({"type": "TextBlock", "text": f"{words['affected']}: {', '.join(e.affected)}",
                              "wrap": True, "isSubtle": True, "spacing": "None"})
        if not notification.events:  # a failure report or test message: the body is all there is
            items.append({"type": "TextBlock", "text": notification.body, "wrap": True})
        items.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in chat.facts(notification, self.locale)]})
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "Container", "style": style, "bleed": True, "items": items}],
            "msteams": {"width": "Full"},
        }
        return {
            "type": "message",
            "summary": notification.title,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}],
        }


KIND = ChannelKind(
    name="teams",
    settings=TeamsSettings,
    sender=TeamsSender.from_settings,
    help="Microsoft Teams, through a Workflows webhook",
)
