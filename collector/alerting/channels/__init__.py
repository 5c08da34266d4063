"""Where messages go: one module per kind of channel, each declaring one `ChannelKind` (its
settings model, its sender, a line of help), listed once in the read-only `CHANNELS`.

    base.py      the descriptor, the settings every kind has, the Sender interface, ChannelError
    http.py      the HTTP delivery every posting kind shares (one retry loop, secrets redacted)
    chat.py      what teams and slack share;  text.py  shortening to a limit (slack, sms)
    email.py, webhook.py, teams.py, slack.py, sms.py   the kinds
    registry.py  CHANNELS, build_senders (and `registered`, for tests)

Messages arrive rendered by the engine (title, body, events): channels only format and send
them. A channel raises `ChannelError` when it gives up; the service then reports that through
the other channels. The names below are what the rest of nettvakt imports from here.
"""

from collector.alerting.channels.base import (
    DEFAULT_LOCALE,
    ChannelError,
    ChannelKind,
    ChannelSettings,
    Locale,
    SecretResolver,
    Sender,
)
from collector.alerting.channels.chat import ChatSender, ChatSettings
from collector.alerting.channels.email import EmailSender, EmailSettings
from collector.alerting.channels.http import USER_AGENT, HttpDelivery
from collector.alerting.channels.registry import CHANNELS, build_senders, registered
from collector.alerting.channels.slack import SlackSender, SlackSettings, slack_escape
from collector.alerting.channels.sms import SmsSender, SmsSettings, sms_text
from collector.alerting.channels.teams import TeamsSender, TeamsSettings
from collector.alerting.channels.text import shorten
from collector.alerting.channels.webhook import SIGNATURE_HEADER, WebhookSender, WebhookSettings, sign, verify

__all__ = [
    "CHANNELS", "DEFAULT_LOCALE", "SIGNATURE_HEADER", "USER_AGENT",
    "ChannelError", "ChannelKind", "ChannelSettings", "ChatSender", "ChatSettings", "EmailSender", "EmailSettings",
    "HttpDelivery", "Locale", "SecretResolver", "Sender", "SlackSender", "SlackSettings", "SmsSender", "SmsSettings",
    "TeamsSender", "TeamsSettings", "WebhookSender", "WebhookSettings",
    "build_senders", "registered", "shorten", "sign", "slack_escape", "sms_text", "verify",
]
