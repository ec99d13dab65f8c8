"""The benchmark's private network: three namespaces it creates and always removes.

::

    <prefix>-t   TUN namespace: tcpstack's TUN (kernel end 10.7.0.1/24, stack 10.7.0.2;
                 with ``ipv6`` fd00:7::1/64 and fd00:7::2) and the kernel peer serving
                 tcpstack
    <prefix>-a   kernel client, veth end 10.8.0.1/24, fd00:8::1/64  ─┐ veth pair
    <prefix>-b   kernel server, veth end 10.8.0.2/24, fd00:8::2/64  ─┘

The kernel-to-kernel baseline runs the same peer program between ``-a`` and
``-b``; nothing touches the root namespace. Loss for the baseline comes from
nftables (``numgen random mod 100 < N drop``) on the veth, in both
directions, like tcpstack's own ``fault=`` on its link.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field

from tcpstack.errors import UserError
from tcpstack.link import netns as ns

TUN_NAME = "tcpsb0"
TUN_KERNEL_ADDR = "10.7.0.1"
TUN_PREFIX = 24
STACK_ADDR = "10.7.0.2"
TUN_KERNEL_ADDR6, STACK_ADDR6, TUN_PREFIX6 = "fd00:7::1", "fd00:7::2", 64
VETH_A, VETH_B = "tcpsb-a", "tcpsb-b"
VETH_A_ADDR, VETH_B_ADDR = "10.8.0.1", "10.8.0.2"
VETH_A_ADDR6, VETH_B_ADDR6 = "fd00:8::1", "fd00:8::2"
NFT_TABLE = "tcpstack_bench_loss"
SEGMENTATION_FEATURES = ("tx-tcp-segmentation", "tx-generic-segmentation")


@dataclass
class BenchNetwork(ns.OwnsNamespaces):
    prefix: str = field(default_factory=lambda: f"tcpsb-{secrets.token_hex(3)}")
    created: list[str] = field(default_factory=list)
    ipv6: bool = False        # both sides over IPv6 (the veth carries both families anyway)

    @property
    def tun_ns(self) -> str:
        return f"{self.prefix}-t"

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-a"

    @property
    def server_ns(self) -> str:
        return f"{self.prefix}-b"

    tun_name = TUN_NAME

    @property
    def stack_addr(self) -> str:
        return STACK_ADDR6 if self.ipv6 else STACK_ADDR

    @property
    def tun_kernel_addr(self) -> str:
        return TUN_KERNEL_ADDR6 if self.ipv6 else TUN_KERNEL_ADDR

    @property
    def tun_cidr(self) -> str:
        return f"{self.tun_kernel_addr}/{TUN_PREFIX6 if self.ipv6 else TUN_PREFIX}"

    @property
    def veth_server_addr(self) -> str:
        return VETH_B_ADDR6 if self.ipv6 else VETH_B_ADDR

    def create(self) -> None:
        """Create the three namespaces and the veth pair; undo everything on failure."""
        try:
            for name in (self.tun_ns, self.client_ns, self.server_ns):
                self.make_netns(name)
            ns.run_in_netns(self.client_ns, _make_veth, self.server_ns)
            ns.run_in_netns(self.server_ns, _configure, VETH_B, VETH_B_ADDR, VETH_B_ADDR6)
        except BaseException:
            self.remove()
            raise

    # -- what the kernel side did ------------------------------------------------

    def kernel_congestion_control(self) -> str:
        """The congestion control the baseline's kernel TCP uses (net.ipv4 sysctl)."""
        return ns.run_in_netns(self.client_ns, _read_text,
                               "/proc/sys/net/ipv4/tcp_congestion_control")

    def set_kernel_congestion_control(self, name: str) -> None:
        """Make every kernel socket of the benchmark use ``name`` (a per-namespace
        sysctl: the root namespace is not touched). The kernel allows only what
        ``net.ipv4.tcp_allowed_congestion_control`` lists outside the root namespace."""
        for netns_name in (self.tun_ns, self.client_ns, self.server_ns):
            try:
                ns.run_in_netns(netns_name, _write_text,
                                "/proc/sys/net/ipv4/tcp_congestion_control", name)
            except OSError:
                allowed = _read_text("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
                raise UserError(f"the kernel does not allow congestion control {name!r} in a "
                                f"namespace (allowed here: {allowed})") from None

    def kernel_timeouts(self, namespaces: tuple[str, ...]) -> int:
        """Retransmission timeouts (TcpExt TCPTimeouts) so far in these namespaces."""
        return sum(ns.run_in_netns(name, _tcp_counter, "TcpExt", "TCPTimeouts")
                   for name in namespaces)

    def kernel_retransmitted_segments(self, namespaces: tuple[str, ...]) -> int:
        """Segments the kernel resent (Tcp RetransSegs) so far in these namespaces."""
        return sum(ns.run_in_netns(name, _tcp_counter, "Tcp", "RetransSegs")
                   for name in namespaces)

    # -- kernel-side loss ----------------------------------------------------------

    def set_kernel_loss(self, percent: int) -> None:
        """Drop ``percent``% of the packets crossing the veth, each direction.

        A dropped packet must be one TCP segment, as on tcpstack's link
        without offloads. Linux TCP builds 64 KB GSO packets even with TSO/GSO
        off on the device, and the egress hook sees them before they are
        cut up (a veth never cuts them up at all). So TSO/GSO go off on both
        ends -- the kernel then segments at transmit, as it does for a TUN
        without offloads -- and the rule sits on the *ingress* hook of each
        end, where the packets arrive one segment each."""
        for name, dev in ((self.client_ns, VETH_A), (self.server_ns, VETH_B)):
            ns.run_in_netns(name, _set_segmentation_offload, dev, False)
            rules = (f"table netdev {NFT_TABLE} {{\n"
                     f"  chain ingress {{\n"
                     f"    type filter hook ingress device \"{dev}\" priority 0; "
                     f"policy accept;\n"
                     f"    numgen random mod 100 < {int(percent)} counter drop\n"
                     f"  }}\n"
                     f"}}\n")
            result = _nft(name, ["-f", "-"], rules)
            if result.returncode != 0:
                raise UserError(f"nftables cannot drop packets on the veth "
                                f"({result.stderr.strip() or 'nft failed'}); "
                                f"the kernel loss baseline needs nft with netdev hooks")

    def kernel_loss_dropped(self) -> int:
        """Packets the nftables rules dropped so far (both ends)."""
        total = 0
        for name in (self.client_ns, self.server_ns):
            out = _nft(name, ["list", "table", "netdev", NFT_TABLE]).stdout
            for line in out.splitlines():
                words = line.split()
                if "counter" in words and "packets" in words:
                    total += int(words[words.index("packets") + 1])
        return total

    def clear_kernel_loss(self) -> None:
        for name, dev in ((self.client_ns, VETH_A), (self.server_ns, VETH_B)):
            if ns.netns_exists(name):
                _nft(name, ["delete", "table", "netdev", NFT_TABLE])
                ns.run_in_netns(name, _set_segmentation_offload, dev, True)


def _read_text(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def _tcp_counter(table: str, name: str) -> int:
    """One counter of the calling thread's namespace: ``table`` "TcpExt"
    (/proc/net/netstat) or "Tcp" (/proc/net/snmp)."""
    path = "/proc/thread-self/net/" + ("netstat" if table == "TcpExt" else "snmp")
    lines = _read_text(path).splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith(table + ":"):
            fields = dict(zip(header.split()[1:], values.split()[1:], strict=True))
            return int(fields.get(name, 0))
    return 0


def _nft(netns_name: str, args: list[str], stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    try:
        return ns.netns_run(netns_name, ["nft", *args], input=stdin, capture_output=True,
                            text=True, timeout=20)
    except FileNotFoundError:
        raise UserError("nft (nftables) is not installed; the kernel loss baseline "
                        "needs it") from None


def _make_veth(peer_netns: str) -> None:
    """In the client namespace: a veth pair whose other end goes to ``peer_netns``."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("add", ifname=VETH_A, kind="veth",
                 peer={"ifname": VETH_B, "net_ns_fd": peer_netns})
    _configure(VETH_A, VETH_A_ADDR, VETH_A_ADDR6)


def _set_segmentation_offload(ifname: str, enabled: bool) -> None:
    """``ethtool -K IF tso on|off gso on|off`` in the current thread's namespace."""
    from pyroute2.ethtool import Ethtool

    ethtool = Ethtool()
    try:
        features = ethtool.get_features(ifname)
        for name in SEGMENTATION_FEATURES:
            if name in features.features:
                features.features[name].enable = enabled
        ethtool.set_features(ifname, features)
    finally:
        ethtool.close()


def _configure(ifname: str, address: str, address6: str) -> None:
    import ipaddress

    ns.configure_interface(ifname, [ipaddress.IPv4Interface(f"{address}/24"),
                                    ipaddress.IPv6Interface(f"{address6}/64")], None)
