"""What a diagnosis reads: the site's place in the inventory and its stored points in a window."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from collector.config import AgentEntry, Device, Inventory, ProbeTarget, Site
from collector.rollups import NS, RAW, RESOLUTIONS, Aggregate, stored_field
from collector.timeseries import Sample, SeriesSource


class UnknownSiteError(LookupError):
    """The site is not in the inventory; the message lists the known sites."""


@dataclass(frozen=True)
class SiteContext:
    """The inventory as it concerns one site: who measures there and what it depends on."""

    site: Site
    agents: tuple[AgentEntry, ...]
    devices: tuple[Device, ...]  # devices at the site, and the site's uplink wherever it stands
    uplink: Device | None
    probes: tuple[ProbeTarget, ...]  # probes run by the site's agents
    # Hosts that are the site's way out (uplink, routers, firewalls): probes to them are "gateway" probes.
    gateway_hosts: frozenset[str]


@dataclass
class SiteData:
    start_ns: int
    end_ns: int
    probe: list[Sample] = field(default_factory=list)
    host: list[Sample] = field(default_factory=list)
    host_disk: list[Sample] = field(default_factory=list)
    host_net: list[Sample] = field(default_factory=list)
    interface: list[Sample] = field(default_factory=list)
    device: list[Sample] = field(default_factory=list)
    resolution: str = RAW  # what the points are: raw, or rollup buckets seen through ROLLUP_VIEW


# Over a window long enough that the store names a rollup (`SeriesSource.resolution_for`: more than
# two days) the checks read buckets, each field as the bucket's mean, except these, whose meaning
# is an event within the bucket: a restart, a battery episode (its largest), the runtime and uptime
# left at its worst (smallest). What changes on means (docs/diagnose.md): a threshold (CPU, memory,
# disk, utilisation) is met by a bucket whose mean meets it (busy for most of five minutes), not by
# a single reading; traceroute hops (strings) are not rolled up, so loss is not located by hop.
ROLLUP_VIEW: Mapping[str, Mapping[str, Aggregate]] = MappingProxyType({
    "device": MappingProxyType({
        "rebooted": "max", "uptime_s": "min", "ups_on_battery": "max", "ups_seconds_on_battery": "max",
        "ups_minutes_left": "min", "ups_battery_low": "max", "printer_error": "max",
    }),
})


def rollup_view(measurement: str, samples: list[Sample], resolution: str) -> list[Sample]:
    """Rollup buckets as the checks read points: at the bucket's middle (a bucket is stamped with its
    start, and its mean is of the readings across it), the mean under each field's name, ROLLUP_VIEW's
    fields taken from their own aggregate."""
    if resolution == RAW:
        return samples
    middle_ns = (RESOLUTIONS[resolution].bucket_s or 0) * NS // 2
    view = ROLLUP_VIEW.get(measurement, {})
    names = {f: stored_field(measurement, f, aggregate, resolution) for f, aggregate in view.items()}
    return [Sample(s.time_ns + middle_ns, s.tags, {**s.fields, **{f: s.fields[n] for f, n in names.items() if n in s.fields}}) for s in samples]


GATEWAY_KINDS = frozenset({"firewall", "router", "gateway"})


def site_context(inventory: Inventory, site_id: str) -> SiteContext:
    site = next((s for s in inventory.site if s.id == site_id), None)
    if site is None:
        known = ", ".join(s.id for s in inventory.site) or "none"
        raise UnknownSiteError(f"no site {site_id!r} in the inventory; known sites: {known}")
    agents = tuple(a for a in inventory.agent if a.site == site_id)
    uplink = next((d for d in inventory.device if d.id == site.uplink), None) if site.uplink else None
    devices = tuple(d for d in inventory.device if d.site == site_id or d is uplink)
    agent_ids = {a.id for a in agents}
    probes = tuple(p for p in inventory.probe if site_id in p.sites or agent_ids & set(p.agents))
    gateways = {d.host for d in inventory.device if d.hardware.kind in GATEWAY_KINDS}
    if uplink is not None:
        gateways.add(uplink.host)
    return SiteContext(site, agents, devices, uplink, probes, frozenset(gateways))


def load_site_data(source: SeriesSource, ctx: SiteContext, start_ns: int, end_ns: int, now_ns: int | None = None) -> SiteData:
    """Everything the checks look at, read once (SourceError propagates: the caller names the store).

    Raw points for the usual windows; a rollup when the store names one for the window
    (`source.resolution_for`), seen through `rollup_view`."""
    resolution = source.resolution_for(start_ns, end_ns, time.time_ns() if now_ns is None else now_ns)

    def read(measurement: str, tags: dict[str, str]) -> list[Sample]:
        return rollup_view(measurement, source.samples(measurement, start_ns, end_ns, tags, resolution), resolution)

    site = {"site": ctx.site.id}
    data = SiteData(start_ns, end_ns, resolution=resolution)
    data.probe = read("probe", site)
    data.host = read("host", site)
    data.host_disk = read("host_disk", site)
    data.host_net = read("host_net", site)
    for device in ctx.devices:
        if device.snmp is None:
            continue
        # By device, not site: the uplink may stand at another site (the town hall's firewall).
        data.interface += read("interface", {"device": device.id})
        data.device += read("device", {"device": device.id})
    data.interface.sort(key=lambda s: s.time_ns)
    data.device.sort(key=lambda s: s.time_ns)
    return data
