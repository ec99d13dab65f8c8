"""The piece of network a stack runs on: a namespace (created if missing) with a
TUN device whose kernel end has an address, and the stack's own address on
that subnet. ``NetworkSetup.open()`` builds it, ``close()`` removes exactly
what ``open()`` created."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from tcpstack.errors import UsageError
from tcpstack.link import netns as ns
from tcpstack.link.tun import TunLink, open_tun

DEFAULT_NETNS = "tcpstack"
DEFAULT_TUN = "tcps0"
DEFAULT_ADDR = "10.7.0.2"
DEFAULT_TUN_ADDR = "10.7.0.1/24"


@dataclass
class NetworkSetup:
    """What to build. ``create_netns`` False makes a missing namespace an error.
    ``offload`` asks for the TUN's checksum/TSO offloads (used when the kernel
    accepts them; ``link.offload`` tells)."""

    netns: str = DEFAULT_NETNS
    tun: str = DEFAULT_TUN
    addr: str = DEFAULT_ADDR
    tun_addr: str = DEFAULT_TUN_ADDR
    mtu: int = 1500
    create_netns: bool = True
    offload: bool = True
    created_netns: bool = field(default=False, init=False)
    link: TunLink | None = field(default=None, init=False)

    def validate(self) -> ipaddress.IPv4Interface:
        """Check names and addresses without touching anything (UsageError on bad input)."""
        ns.validate_netns_name(self.netns)
        ns.validate_ifname(self.tun)
        addr = ipaddress.IPv4Address(ns.parse_ipv4(self.addr, "stack address"))
        iface = ns.parse_interface(self.tun_addr)
        if addr not in iface.network:
            raise UsageError(f"stack address {addr} is not in the TUN subnet {iface.network}")
        if addr == iface.ip:
            raise UsageError(f"stack address {addr} is the kernel's own TUN address; "
                             f"pick another in {iface.network}")
        if addr in (iface.network.network_address, iface.network.broadcast_address):
            raise UsageError(f"stack address {addr} is not a host address of {iface.network}")
        if not 68 <= self.mtu <= 65535:
            raise UsageError(f"bad MTU {self.mtu} (576..65535)")
        return iface

    @property
    def kernel_addr(self) -> str:
        return str(ns.parse_interface(self.tun_addr).ip)

    def open(self) -> TunLink:
        """Create the namespace if needed, open and configure the TUN. Blocking."""
        iface = self.validate()
        if not ns.netns_exists(self.netns):
            if not self.create_netns:
                raise UsageError(f"network namespace {self.netns!r} does not exist")
            ns.create_netns(self.netns)
            self.created_netns = True
        try:
            self.link = open_tun(self.netns, self.tun, iface, self.mtu,
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
