"""Building blocks shared by every inventory model: strict models, ids, secret references.

Kept apart from collector/config.py so that feature modules (alerting, ...) can declare their
own inventory tables with the same rules without importing the Inventory that includes them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent.secrets import is_secret_ref

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _slug(value: str) -> str:
    if not SLUG_RE.match(value):
        raise ValueError(
            f"{value!r} is not an id: use lower-case ASCII letters, digits and '-' "
            "(display names with Norwegian letters go in `name`)"
        )
    return value


def _secret(value: str) -> str:
    if not is_secret_ref(value):
        raise ValueError("secrets are never written inline: use env:NAME or file:PATH")
    return value


def check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: expected HOST:PORT")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host_name(value: str) -> str:
    """An IP address (v4 or v6) or a DNS host name; four numbers are an IPv4 address and must be one."""
    import ipaddress

    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if all(label.isdigit() for label in labels) or ":" in value or len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not an IP address or host name")
    return value


SecretRef = Annotated[str, AfterValidator(_secret)]
HostName = Annotated[str, AfterValidator(_host_name)]
HostPort = Annotated[str, AfterValidator(check_host_port)]
PositiveSeconds = Annotated[float, Field(gt=0, le=86400)]


class Model(BaseModel):
    """Unknown keys are errors; models are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
