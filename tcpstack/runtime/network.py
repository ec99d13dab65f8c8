"""The piece of network a stack runs on: a namespace (created if missing) with a
TUN device whose kernel end has an address, and the stack's own address on
that subnet. ``NetworkSetup.open()`` builds it, ``close()`` removes exactly
what ``open()`` created."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpstack.errors import UsageError
from tcpstack.link import netns as ns
from tcpstack.link.tun import TunLink, open_tun

DEFAULT_NETNS = "tcpstack"
DEFAULT_TUN = "tcps0"
DEFAULT_ADDR = "10.7.0.2"
DEFAULT_TUN_ADDR = "10.7.0.1/24"
DEFAULT_ADDR6 = "fd00:7::2"
DEFAULT_TUN_ADDR6 = "fd00:7::1/64"
# Both families unless told otherwise.
DEFAULT_ADDRS = (DEFAULT_ADDR, DEFAULT_ADDR6)
DEFAULT_TUN_ADDRS = (DEFAULT_TUN_ADDR, DEFAULT_TUN_ADDR6)
IPV6_MIN_MTU = 1280                  # RFC 8200 §5
_NAME = {4: "IPv4", 6: "IPv6"}

Addresses = str | Sequence[str] | None


def _as_tuple(value: Addresses) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _one_per_family(items: list[tuple[int, Any]], what: str) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for family, item in items:
        if family in out:
            raise UsageError(f"{what} given twice for {_NAME[family]} ({out[family]} and "
                             f"{item}): once per family")
        out[family] = item
    return out


@dataclass
class NetworkSetup:
    """What to build. ``create_netns`` False makes a missing namespace an error.
    ``offload`` asks for the TUN's checksum/TSO offloads (used when the kernel
    accepts them; ``link.offload`` tells).

    ``addr`` (the stack's addresses) and ``tun_addr`` (the kernel side's) are
    one address or a sequence of at most one per family; None (the default)
    means both families' defaults -- or, when the other one is given, the
    defaults of the families it names. Every family of ``addr`` needs a
    ``tun_addr`` of the same family, whose subnet holds it."""

    netns: str = DEFAULT_NETNS
    tun: str = DEFAULT_TUN
    addr: Addresses = None
    tun_addr: Addresses = None
    mtu: int = 1500
    create_netns: bool = True
    offload: bool = True
    created_netns: bool = field(default=False, init=False)
    link: TunLink | None = field(default=None, init=False)

    def addresses(self) -> dict[int, str]:
        """The stack's address per family (4, 6), canonical text."""
        return {f: a for f, (a, _i) in self._pairs().items()}

    def interfaces(self) -> dict[int, ns.Interface]:
        """The kernel side's interface address per family."""
        return {f: i for f, (_a, i) in self._pairs().items()}

    def _pairs(self) -> dict[int, tuple[str, ns.Interface]]:
        addrs, tun_addrs = _as_tuple(self.addr), _as_tuple(self.tun_addr)
        if tun_addrs is None:
            tun_addrs = DEFAULT_TUN_ADDRS
            if addrs is not None:   # the defaults of the families asked for
                wanted = {6 if ":" in a else 4 for a in addrs}
                tun_addrs = tuple(t for t in tun_addrs if (6 if ":" in t else 4) in wanted)
        ifaces = _one_per_family([(i.version, i) for i in map(ns.parse_interface, tun_addrs)],
                                 "--tun-addr")
        if addrs is None:
            addrs = tuple(a for a in DEFAULT_ADDRS if (6 if ":" in a else 4) in ifaces)
            if not addrs:
                raise UsageError("no stack address: give --addr")
        parsed = [ns.parse_ip(a, "stack address") for a in addrs]
        stack = _one_per_family([(6 if ":" in a else 4, a) for a in parsed], "--addr")
        pairs = {}
        for family, addr in stack.items():
            iface = ifaces.get(family)
            if iface is None:
                raise UsageError(f"stack address {addr} needs an {_NAME[family]} --tun-addr "
                                 f"(e.g. {ns._EXAMPLE[family]}) for the kernel side")
            pairs[family] = (addr, iface)
        extra = set(ifaces) - set(stack)
        if extra:
            family = extra.pop()
            raise UsageError(f"TUN address {ifaces[family]} has no {_NAME[family]} stack "
                             "address: give one with --addr")
        return dict(sorted(pairs.items()))

    def validate(self) -> dict[int, ns.Interface]:
        """Check names and addresses without touching anything (UsageError on bad input)."""
        ns.validate_netns_name(self.netns)
        ns.validate_ifname(self.tun)
        pairs = self._pairs()
        for family, (text, iface) in pairs.items():
            addr = ipaddress.ip_address(text)
            if addr not in iface.network:
                raise UsageError(f"stack address {addr} is not in the TUN subnet {iface.network}")
            if addr == iface.ip:
                raise UsageError(f"stack address {addr} is the kernel's own TUN address; "
                                 f"pick another in {iface.network}")
            if family == 4 and addr in (iface.network.network_address,
                                        iface.network.broadcast_address):
                raise UsageError(f"stack address {addr} is not a host address of {iface.network}")
        if not 68 <= self.mtu <= 65535:
            raise UsageError(f"bad MTU {self.mtu} (576..65535)")
        if 6 in pairs and self.mtu < IPV6_MIN_MTU:
            raise UsageError(f"MTU {self.mtu} is below IPv6's minimum of {IPV6_MIN_MTU} "
                             "(RFC 8200 §5): use an IPv4 address only, or a larger MTU")
        return {f: i for f, (_a, i) in pairs.items()}

    @property
    def kernel_addr(self) -> str:
        """The kernel side's address (its IPv4 one when it has both)."""
        return str(next(iter(self.interfaces().values())).ip)

    @property
    def kernel_addrs(self) -> dict[int, str]:
        return {f: str(i.ip) for f, i in self.interfaces().items()}

    def open(self) -> TunLink:
        """Create the namespace if needed, open and configure the TUN. Blocking."""
        ifaces = list(self.validate().values())
        if not ns.netns_exists(self.netns):
            if not self.create_netns:
                raise UsageError(f"network namespace {self.netns!r} does not exist")
            ns.create_netns(self.netns)
            self.created_netns = True
        try:
            self.link = open_tun(self.netns, self.tun, ifaces, self.mtu,
                                 offload=self.offload)
        except BaseException:
            self.close()
            raise
        return self.link

    def close(self) -> None:
        """Close the TUN (a non-persistent device disappears with it) and remove
        the namespace if ``open()`` created it."""
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.created_netns:
            self.created_netns = False
            ns.remove_netns(self.netns)
