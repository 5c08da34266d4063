"""The one list of channel kinds, read-only, and the senders built from an inventory's channels.

A new kind is a module of this package declaring its `ChannelKind` as `KIND`, and one line here;
collector/config.py builds the `[[channel]]` model from CHANNELS, so nothing else changes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from agent import registry
from collector.alerting.channels import email, slack, sms, teams, webhook
from collector.alerting.channels.base import DEFAULT_LOCALE, ChannelKind, ChannelSettings, Locale, SecretResolver, Sender

log = logging.getLogger("nettvakt.alerting")

_KINDS: dict[str, ChannelKind[Any]] = {kind.name: kind for kind in (
    email.KIND,
    webhook.KIND,
    teams.KIND,
    slack.KIND,
    sms.KIND,
)}
CHANNELS: Mapping[str, ChannelKind[Any]] = MappingProxyType(_KINDS)


def registered(kind: ChannelKind[Any]) -> contextlib.AbstractContextManager[ChannelKind[Any]]:
    """For tests: `kind` is in the registry while the block runs; afterwards the registry is as before.

    Everything else only reads CHANNELS (a read-only view of this list).
    """
    return registry.registered(_KINDS, kind.name, kind, "channel kind")


def build_senders(
    channels: Sequence[ChannelSettings], secret: SecretResolver, locale: Locale = DEFAULT_LOCALE
) -> tuple[dict[str, Sender], list[str]]:
    """Senders by channel id, and a problem per channel that could not be built (logged, never fatal)."""
    senders: dict[str, Sender] = {}
    problems: list[str] = []
    for i, channel in enumerate(channels):
        try:
            senders[channel.id] = CHANNELS[channel.kind].sender(channel, secret, locale)
        except (KeyError, ValueError) as exc:  # SecretError is a ValueError
            problems.append(f"channel[{i}] ({channel.id}): {exc}")
    for problem in problems:
        log.error("alerting: %s", problem)
    return senders, problems
