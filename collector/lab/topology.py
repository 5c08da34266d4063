"""Declarative description of a namespace lab: which namespaces exist and how they are wired.

Kept as plain frozen dataclasses so a scenario can be read (and reviewed) without running it,
and so `Lab` is the only place that knows how a description becomes `ip`/`tc` commands.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

# Linux limits interface names to IFNAMSIZ-1 characters.
IFNAME_MAX = 15
_NODE_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")


class TopologyError(ValueError):
    """A topology that cannot describe a working lab (unknown node, overlapping names, ...)."""


@dataclass(frozen=True)
class Node:
    """One network namespace.

    `sysctls` are written inside the namespace after the wiring is done (e.g. the firewall's
    `net.ipv4.ip_forward`). `loopback_addrs` are extra host addresses put on `lo`, used as
    targets that live "behind" a node (the internet host's public-looking address).
    """

    name: str
    sysctls: dict[str, str] = field(default_factory=dict)
    loopback_addrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NODE_NAME.match(self.name):
            raise TopologyError(f"node name {self.name!r}: lower-case letters and digits, at most 16")
        for addr in self.loopback_addrs:
            ipaddress.ip_interface(addr)


@dataclass(frozen=True)
class Link:
    """A veth pair between node `a` and node `b` on the IPv4 `subnet`.

    `a` gets the first host address of the subnet, `b` the second. `default_route` names the
    node whose default route points at the other end (a site's uplink to the firewall).
    `rate_kbit` is the nominal speed of the line, applied with tbf on both ends at start.
    The link's `name` is what the lab controls (`shape`, `cut`, ...) take.
    """

    name: str
    a: str
    b: str
    a_ifname: str
    b_ifname: str
    subnet: str
    rate_kbit: int | None = None
    default_route: str | None = None

    def __post_init__(self) -> None:
        for ifname in (self.a_ifname, self.b_ifname):
            if not ifname or len(ifname) > IFNAME_MAX or "/" in ifname or " " in ifname:
                raise TopologyError(f"link {self.name}: bad interface name {ifname!r} (max {IFNAME_MAX} chars)")
        net = ipaddress.ip_network(self.subnet)
        if net.num_addresses < 4:
            raise TopologyError(f"link {self.name}: subnet {self.subnet} has no room for two hosts")
        if self.default_route not in (None, self.a, self.b):
            raise TopologyError(f"link {self.name}: default_route {self.default_route!r} is not an end of the link")
        if self.rate_kbit is not None and self.rate_kbit <= 0:
            raise TopologyError(f"link {self.name}: rate_kbit must be positive")

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def address_of(self, node: str) -> str:
        """The bare IP address `node` has on this link."""
        hosts = ipaddress.ip_network(self.subnet).hosts()
        first, second = next(hosts), next(hosts)
        if node == self.a:
            return str(first)
        if node == self.b:
            return str(second)
        raise TopologyError(f"node {node!r} is not on link {self.name}")

    def ifname_of(self, node: str) -> str:
        if node == self.a:
            return self.a_ifname
        if node == self.b:
            return self.b_ifname
        raise TopologyError(f"node {node!r} is not on link {self.name}")

    def peer_of(self, node: str) -> str:
        if node == self.a:
            return self.b
        if node == self.b:
            return self.a
        raise TopologyError(f"node {node!r} is not on link {self.name}")


@dataclass(frozen=True)
class Route:
    """A static route on `node` for `prefix`, via the other end of link `via_link`."""

    node: str
    prefix: str
    via_link: str

    def __post_init__(self) -> None:
        ipaddress.ip_network(self.prefix)


@dataclass(frozen=True)
class Topology:
    """Nodes, links and extra routes; validated once so `Lab` can trust every name in it."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise TopologyError(f"duplicate node names in {names}")
        link_names = [link.name for link in self.links]
        if len(set(link_names)) != len(link_names):
            raise TopologyError(f"duplicate link names in {link_names}")
        seen_if: set[tuple[str, str]] = set()
        for link in self.links:
            for end, ifname in ((link.a, link.a_ifname), (link.b, link.b_ifname)):
                if end not in names:
                    raise TopologyError(f"link {link.name}: unknown node {end!r}")
                if (end, ifname) in seen_if:
                    raise TopologyError(f"node {end}: interface {ifname} used twice")
                seen_if.add((end, ifname))
        for route in self.routes:
            link = self.link(route.via_link)
            if route.node not in (link.a, link.b):
                raise TopologyError(f"route on {route.node}: link {route.via_link} does not reach it")

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TopologyError(f"no node {name!r} (have {[n.name for n in self.nodes]})")

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise TopologyError(f"no link {name!r} (have {[link.name for link in self.links]})")

    def links_of(self, node: str) -> list[Link]:
        return [link for link in self.links if node in (link.a, link.b)]

    def primary_address(self, node: str) -> str:
        """The address a node is reached at when no link is named.

        Its first loopback address if it has one (a service "behind" it), else its address on
        the link that carries its default route, else on its first link.
        """
        n = self.node(node)
        if n.loopback_addrs:
            return str(ipaddress.ip_interface(n.loopback_addrs[0]).ip)
        links = self.links_of(node)
        if not links:
            raise TopologyError(f"node {node!r} has no links and no loopback address")
        for link in links:
            if link.default_route == node:
                return link.address_of(node)
        return links[0].address_of(node)


FORWARDING = {"net.ipv4.ip_forward": "1"}


def _site_link(site: str, third_octet: int, rate_kbit: int | None = None) -> Link:
    return Link(
        name=site,
        a="fw",
        b=site,
        a_ifname=f"to-{site}",
        b_ifname="uplink",
        subnet=f"10.231.{third_octet}.0/30",
        rate_kbit=rate_kbit,
        default_route=site,
    )


# Karlsøy: the firewall routes between the town hall, the health centre, two outstations on
# slow rural links and the internet. The internet host carries a public-looking target on lo.
INET_TARGET = "10.231.200.1"

KARLSOY_LAB = Topology(
    nodes=(
        Node("fw", sysctls=dict(FORWARDING)),
        Node("radhus"),
        Node("helse"),
        Node("hansnes"),
        Node("vannvag"),
        Node("inet", loopback_addrs=(f"{INET_TARGET}/32",)),
    ),
    links=(
        _site_link("radhus", 1),
        _site_link("helse", 2),
        _site_link("hansnes", 3, rate_kbit=2000),
        _site_link("vannvag", 4, rate_kbit=1000),
        _site_link("inet", 100),
    ),
    routes=(Route("fw", "10.231.200.0/24", "inet"),),
)

SITES = ("radhus", "helse", "hansnes", "vannvag")
