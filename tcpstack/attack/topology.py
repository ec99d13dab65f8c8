"""The attack's private network: two identical worlds it creates and always removes.

::

    world s (tcpstack target)                      world k (kernel target)

    <p>-sa  attacker + legitimate clients          <p>-ka  the same
            atk0 10.9.0.1/24 ──┐ veth                      atk0 10.9.0.1/24 ──┐ veth
    <p>-sr  router             │                   <p>-kr  router             │
            rtr0 10.9.0.2/24 ──┘                           rtr0 10.9.0.2/24 ──┘
            TUN  10.7.0.1/24 (made by tcpstack)            rtr1 10.7.0.1/24 ──┐ veth
            tcpstack 10.7.0.2 behind the TUN       <p>-kt  tgt0 10.7.0.2/24 ──┘ kernel listener

Same addresses, same hops: the attacker's packets cross one veth, are
forwarded by the router and reach the target over its link (the TUN, or a
veth to the kernel target's namespace). The router routes the spoofed range
``10.66.0.0/16`` back to the attacker's namespace, where an nftables rule on
the ingress of ``atk0`` counts what the target answers to spoofed addresses
(SYN-ACK, RST, other) and drops it, so that no kernel socket there ever sees
those packets (it could not answer anyway: the addresses are not its own and
forwarding is off). The crafted-peer workloads use addresses of that range
too and read their replies with an AF_PACKET tap, which sees a frame before
the ingress hook drops it.

Every namespace name starts with ``tcpsatk-<pid>-``; namespaces of an
earlier run whose process is gone are removed at start (``remove_stale``).
Nothing touches the root namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from typing import Any

from tcpstack.errors import UserError
from tcpstack.link import netns as ns

PREFIX = "tcpsatk"
WORLDS = ("tcpstack", "kernel")

ATTACKER_IF, ROUTER_IF = "atk0", "rtr0"
ROUTER_TARGET_IF, TARGET_IF = "rtr1", "tgt0"
TUN_NAME = "tcpsatk0"
ATTACKER_ADDR, ROUTER_ADDR = "10.9.0.1", "10.9.0.2"
LINK_PREFIX = 24
TARGET_NET = "10.7.0.0/24"
ROUTER_TARGET_ADDR, TARGET_ADDR = "10.7.0.1", "10.7.0.2"
SPOOF_NET = "10.66.0.0/16"
# The flood's sources are drawn from 10.66.0.0 - 10.66.254.255; crafted peers
# use 10.66.255.x, so their replies are never confused with the flood's.
PEER_ADDR_BASE = "10.66.255."

ATTACKER_MAC = "02:74:63:70:61:01"
ROUTER_MAC = "02:74:63:70:61:02"
ROUTER_TARGET_MAC = "02:74:63:70:61:03"
TARGET_MAC = "02:74:63:70:61:04"

NFT_TABLE = "tcpstack_attack"
COUNTERS = ("synack", "rst", "other")



@dataclass
class World:
    """One attacker -> router -> target chain."""

    side: str            # "tcpstack" or "kernel"
    attacker_ns: str
    router_ns: str
    target_ns: str       # tcpstack: the router namespace (its TUN is there)

    @property
    def target_link(self) -> str:
        """The router's device towards the target (the TUN or the veth)."""
        return TUN_NAME if self.side == "tcpstack" else ROUTER_TARGET_IF


@dataclass
class AttackNetwork(ns.OwnsNamespaces):
    prefix: str = field(default_factory=lambda: f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}")
    created: list[str] = field(default_factory=list)
    worlds: dict[str, World] = field(default_factory=dict)

    def create(self) -> None:
        """Create both worlds; undo everything on failure."""
        try:
            for side in WORLDS:
                letter = "s" if side == "tcpstack" else "k"
                attacker, router = f"{self.prefix}-{letter}a", f"{self.prefix}-{letter}r"
                target = router if side == "tcpstack" else f"{self.prefix}-{letter}t"
                for name in dict.fromkeys((attacker, router, target)):
                    self.make_netns(name)
                world = World(side, attacker, router, target)
                ns.run_in_netns(attacker, _make_veth, ATTACKER_IF, ATTACKER_MAC, ROUTER_IF,
                                ROUTER_MAC, router)
                ns.run_in_netns(attacker, _setup_attacker)
                ns.run_in_netns(router, _setup_router)
                if side == "kernel":
                    ns.run_in_netns(router, _make_veth, ROUTER_TARGET_IF, ROUTER_TARGET_MAC,
                                    TARGET_IF, TARGET_MAC, target)
                    ns.run_in_netns(router, _configure, ROUTER_TARGET_IF, ROUTER_TARGET_ADDR)
                    ns.run_in_netns(target, _setup_kernel_target)
                self.worlds[side] = world
                self.reset_counters(side)
        except BaseException:
            self.remove()
            raise

    # -- what the target answered to spoofed addresses ---------------------------------

    def reset_counters(self, side: str) -> None:
        """(Re)create the counting table on the attacker's ingress: counters at 0."""
        world = self.worlds[side]
        _nft(world.attacker_ns, ["delete", "table", "netdev", NFT_TABLE], check=False)
        counters = "".join(f"  counter {name} {{ }}\n" for name in COUNTERS)
        rules = (f"table netdev {NFT_TABLE} {{\n{counters}"
                 f"  chain ingress {{\n"
                 f"    type filter hook ingress device \"{ATTACKER_IF}\" priority 0; "
                 f"policy accept;\n"
                 f"    ip daddr {SPOOF_NET} tcp flags & (syn | ack) == syn | ack "
                 f"counter name \"synack\" drop\n"
                 f"    ip daddr {SPOOF_NET} tcp flags & rst == rst counter name \"rst\" drop\n"
                 f"    ip daddr {SPOOF_NET} counter name \"other\" drop\n"
                 f"  }}\n"
                 f"}}\n")
        _nft(world.attacker_ns, ["-f", "-"], rules)

    def counters(self, side: str) -> dict[str, int]:
        """Packets the target sent to spoofed addresses so far: synack, rst, other."""
        out = _nft(self.worlds[side].attacker_ns,
                   ["-j", "list", "counters", "table", "netdev", NFT_TABLE]).stdout
        found = {name: 0 for name in COUNTERS}
        for item in json.loads(out).get("nftables", []):
            counter = item.get("counter")
            if counter and counter.get("name") in found:
                found[counter["name"]] = int(counter.get("packets", 0))
        return found

    def target_link_stats(self, side: str) -> dict[str, int]:
        """The router's device towards the target: packets handed to the target
        (tx_packets) and dropped because its queue was full (tx_dropped)."""
        world = self.worlds[side]
        return ns.run_in_netns(world.router_ns, link_stats, world.target_link)


def remove_stale() -> list[str]:
    """Remove namespaces of earlier runs whose process is gone (``tcpsatk-<pid>-*``)."""
    removed = []
    try:
        names = os.listdir(ns.NETNS_RUN_DIR)
    except FileNotFoundError:
        return removed
    pattern = re.compile(rf"^{PREFIX}-(\d+)-[0-9a-f]+-[a-z]+$")
    for name in sorted(names):
        match = pattern.match(name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        if alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError, UserError):
            ns.remove_netns(name)
            removed.append(name)
    return removed


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- helpers run inside a namespace (on a helper thread) ---------------------------------

_write_sysctl = ns.write_sysctl
_no_rp_filter = ns.no_rp_filter


def _make_veth(ifname: str, mac: str, peer: str, peer_mac: str, peer_netns: str) -> None:
    """A veth pair from the current namespace to ``peer_netns``, with fixed MACs."""
    ns.make_veth(ifname, peer, peer_netns, mac, peer_mac)


def _configure(ifname: str, address: str) -> None:
    ns.configure_interface(ifname, ipaddress.IPv4Interface(f"{address}/{LINK_PREFIX}"), None)


def _setup_attacker() -> None:
    """atk0 up with its address; the target's subnet via the router; never forward
    (an IPv4 namespace inherits the root's conf/all, forwarding included)."""
    from pyroute2 import IPRoute

    _configure(ATTACKER_IF, ATTACKER_ADDR)
    _write_sysctl("ipv4/conf/all/forwarding", "0")
    with IPRoute() as ipr:
        ipr.route("add", dst=TARGET_NET, gateway=ROUTER_ADDR)


def _setup_router() -> None:
    from pyroute2 import IPRoute

    _configure(ROUTER_IF, ROUTER_ADDR)
    _no_rp_filter(ROUTER_IF)
    _write_sysctl("ipv4/conf/all/forwarding", "1")
    with IPRoute() as ipr:
        ipr.route("add", dst=SPOOF_NET, gateway=ATTACKER_ADDR)


def _setup_kernel_target() -> None:
    from pyroute2 import IPRoute

    _configure(TARGET_IF, TARGET_ADDR)
    _no_rp_filter(TARGET_IF)
    _write_sysctl("ipv4/conf/all/forwarding", "0")
    with IPRoute() as ipr:
        ipr.route("add", dst="0.0.0.0/0", gateway=ROUTER_TARGET_ADDR)


def link_stats(ifname: str) -> dict[str, int]:
    """tx_packets and tx_dropped of ``ifname`` in the calling thread's namespace."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return {"tx_packets": 0, "tx_dropped": 0}
        (link,) = ipr.get_links(found[0])
        stats = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS") or {}
        return {"tx_packets": int(stats.get("tx_packets", 0)),
                "tx_dropped": int(stats.get("tx_dropped", 0))}


def _nft(netns_name: str, args: list[str], stdin: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = ns.netns_run(netns_name, ["nft", *args], input=stdin, capture_output=True,
                              text=True, timeout=20)
    except FileNotFoundError:
        raise UserError("nft (nftables) is not installed; the attack counts the target's "
                        "answers with it") from None
    if check and result.returncode != 0:
        raise UserError(f"nft {' '.join(args[:2])} failed in namespace {netns_name}: "
                        f"{(result.stderr or '').strip() or 'no message'}")
    return result


def describe() -> dict[str, Any]:
    """The topology in a few words, for the JSON report."""
    return {"attacker": f"{ATTACKER_ADDR}/{LINK_PREFIX}", "router": ROUTER_ADDR,
            "target": TARGET_ADDR, "spoofed": SPOOF_NET}
