"""What a diagnosis reads: the site's place in the inventory and its stored points in a window."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.config import AgentEntry, Device, Inventory, ProbeTarget, Site
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


def load_site_data(source: SeriesSource, ctx: SiteContext, start_ns: int, end_ns: int) -> SiteData:
    """Everything the checks look at, read once (SourceError propagates: the caller names the store)."""
    site = {"site": ctx.site.id}
    data = SiteData(start_ns, end_ns)
    data.probe = source.samples("probe", start_ns, end_ns, site)
    data.host = source.samples("host", start_ns, end_ns, site)
    data.host_disk = source.samples("host_disk", start_ns, end_ns, site)
    data.host_net = source.samples("host_net", start_ns, end_ns, site)
    for device in ctx.devices:
        if device.snmp is None:
            continue
        # By device, not site: the uplink may stand at another site (the town hall's firewall).
        data.interface += source.samples("interface", start_ns, end_ns, {"device": device.id})
        data.device += source.samples("device", start_ns, end_ns, {"device": device.id})
    data.interface.sort(key=lambda s: s.time_ns)
    data.device.sort(key=lambda s: s.time_ns)
    return data
