"""A routed path with a narrow far link, in namespaces it creates and always removes.

::

    <p>-r  router: tcpstack's TUN 10.7.0.1/24 (made by tcpstack; tcpstack is 10.7.0.2)
           far0 10.8.0.1/24, MTU ``far_mtu`` ──┐ veth
    <p>-m  second router                       │
           far1 10.8.0.2/24, MTU ``far_mtu`` ──┘
           peer0 10.9.0.1/24, MTU 1500 ──┐ veth
    <p>-p  the kernel peer               │
           peer1 10.9.0.2/24, MTU 1500 ──┘

Both ends sit on 1500-byte links and the narrow link lies between the two
routers, as a tunnel, a VPN or PPPoE does on an everyday path: plain Linux
forwarding makes the ICMP "fragmentation needed" (RFC 1191 §4) for each end.
``nft(...)`` puts nftables rules on the router next to tcpstack -- drop ICMP
(a PMTU black hole), ``reject with icmp type ...`` -- and ``peer_*`` run
things in the peer's namespace. Nothing touches the root namespace.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from typing import Any

from tcpstack.errors import UserError
from tcpstack.link import netns as ns

PREFIX = "tcpspath"
STACK_ADDR, TUN_ADDR = "10.7.0.2", "10.7.0.1"
TUN_NET = "10.7.0.0/24"
FAR_NEAR, FAR_FAR = "10.8.0.1", "10.8.0.2"
PEER_GW, PEER_ADDR = "10.9.0.1", "10.9.0.2"
PEER_NET = "10.9.0.0/24"
FAR_IF, FAR_PEER_IF = "far0", "far1"
PEER_GW_IF, PEER_IF = "peer0", "peer1"
TUN_NAME = "tcps0"


@dataclass
class NarrowPath(ns.OwnsNamespaces):
    """tcpstack -> router -> (``far_mtu`` link) -> router -> kernel peer."""

    far_mtu: int = 1200
    prefix: str = field(default_factory=lambda: f"{PREFIX}-{os.getpid()}-"
                                                f"{secrets.token_hex(2)}")
    created: list[str] = field(default_factory=list)

    @property
    def router(self) -> str:
        """The namespace holding tcpstack's TUN (pass it as ``netns``)."""
        return f"{self.prefix}-r"

    @property
    def middle(self) -> str:
        return f"{self.prefix}-m"

    @property
    def peer(self) -> str:
        return f"{self.prefix}-p"

    def __enter__(self) -> NarrowPath:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def create(self) -> None:
        """Build the three namespaces and their links; undo everything on failure."""
        try:
            for name in (self.router, self.middle, self.peer):
                self.make_netns(name)
            ns.run_in_netns(self.router, ns.make_veth, FAR_IF, FAR_PEER_IF, self.middle)
            ns.run_in_netns(self.middle, ns.make_veth, PEER_GW_IF, PEER_IF, self.peer)
            ns.run_in_netns(self.router, _router, FAR_IF, FAR_NEAR, self.far_mtu, PEER_NET,
                            FAR_FAR)
            ns.run_in_netns(self.middle, _router, FAR_PEER_IF, FAR_FAR, self.far_mtu,
                            TUN_NET, FAR_NEAR)
            ns.run_in_netns(self.middle, _interface, PEER_GW_IF, PEER_GW, 1500)
            ns.run_in_netns(self.peer, _host, PEER_IF, PEER_ADDR, PEER_GW)
        except BaseException:
            self.remove()
            raise

    def nft(self, rules: str, netns: str | None = None) -> None:
        """Load nftables ``rules`` (``nft -f`` syntax) in the router next to tcpstack
        (or in ``netns``)."""
        where = netns or self.router
        result = ns.netns_run(where, ["nft", "-f", "-"], input=rules,
                              capture_output=True, text=True, timeout=20)
        if result.returncode != 0:
            raise UserError(f"nft failed in namespace {where}: "
                            f"{(result.stderr or '').strip() or 'no message'}")

    def black_hole(self) -> None:
        """Both routers drop the ICMP "fragmentation needed" they make: a PMTU
        black hole (RFC 2923 §2.1) in both directions."""
        rules = """table ip tcps_blackhole {
  chain output {
    type filter hook output priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed counter drop
  }
}
"""
        for where in (self.router, self.middle):
            self.nft(rules, where)

    def black_hole_drops(self) -> int:
        """ICMP messages the router next to tcpstack has dropped so far."""
        out = ns.netns_run(self.router, ["nft", "list", "table", "ip", "tcps_blackhole"],
                           capture_output=True, text=True, timeout=20).stdout
        match = re.search(r"counter packets (\d+)", out)
        return int(match.group(1)) if match else 0

    def peer_popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return ns.netns_popen(self.peer, argv, **kwargs)

    def peer_run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return ns.netns_run(self.peer, argv, **kwargs)

    def in_peer(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return ns.run_in_netns(self.peer, fn, *args, **kwargs)


# -- run inside a namespace (on a helper thread) ------------------------------------------

def _interface(ifname: str, address: str, mtu: int) -> None:
    ns.configure_interface(ifname, ipaddress.IPv4Interface(f"{address}/24"), mtu)


def _router(ifname: str, address: str, mtu: int, far_net: str, gateway: str) -> None:
    """Forwarding on, ``ifname`` up with its address and MTU, ``far_net`` via ``gateway``."""
    _interface(ifname, address, mtu)
    ns.no_rp_filter(ifname)
    ns.write_sysctl("ipv4/conf/all/forwarding", "1")
    ns.add_route(far_net, gateway)


def _host(ifname: str, address: str, gateway: str) -> None:
    """A host: never forwards (a new namespace inherits the root's ``conf/all``)."""
    _interface(ifname, address, 1500)
    ns.write_sysctl("ipv4/conf/all/forwarding", "0")
    ns.add_route("0.0.0.0/0", gateway)
