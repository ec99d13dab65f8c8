"""Segments from a capture file (tcpdump, Wireshark, tcpstack's own pcaps), grouped by connection.

Classic pcap through ``tcpstack.link.pcap`` (raw IP, Ethernet, Linux cooked
capture, BSD loopback). An ICMP or ICMPv6 error about a segment of a
connection becomes a note on that connection's ladder (who sent it, what it
said); anything else that is not TCP over IPv4 or IPv6 is skipped and counted. TCP
checksums are not verified: a capture taken on a host with checksum offload
holds partial checksums.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpstack.errors import UsageError, UserError
from tcpstack.ladder.build import Endpoint, WireSegment
from tcpstack.link.pcap import PcapError, PcapReader
from tcpstack.wire.addr import canonical_addr, endpoint_text
from tcpstack.wire.errors import WireError
from tcpstack.wire.icmp import PROTO_ICMP, IcmpError, parse_icmp
from tcpstack.wire.icmp6 import icmp6_error, parse_icmp6
from tcpstack.wire.ipv4 import parse_ipv4
from tcpstack.wire.packet import parse_packet
from tcpstack.wire.tcp import ACK, SYN


@dataclass(slots=True)
class CaptureConnection:
    """The segments of one TCP connection (one unordered 4-tuple)."""

    a: Endpoint
    b: Endpoint
    segments: list[WireSegment] = field(default_factory=list)
    notes: list[tuple[float, str, Endpoint]] = field(default_factory=list)   # ICMP errors

    @property
    def name(self) -> str:
        return f"{endpoint_text(*self.a)}-{endpoint_text(*self.b)}"

    def matches(self, x: Endpoint, y: Endpoint) -> bool:
        return {x, y} == {self.a, self.b}

    def summary(self) -> str:
        flags = [w.segment.flags for w in self.segments]
        opened = "opened" if any(f & SYN and not f & ACK for f in flags) else "no SYN"
        return (f"{endpoint_text(*self.a)} <-> {endpoint_text(*self.b)}  "
                f"{len(self.segments)} segments, {opened}")


@dataclass(slots=True)
class Capture:
    connections: list[CaptureConnection]
    skipped: int          # frames that were not IPv4/TCP or did not parse
    frames: int


def read_capture(path: str) -> Capture:
    """Every TCP connection in the file, in order of first appearance."""
    conns: dict[frozenset[Endpoint], CaptureConnection] = {}
    skipped = frames = 0
    try:
        reader = PcapReader(path)
        for rec in reader:
            frames += 1
            try:
                ip, seg = parse_packet(rec.data, verify_checksum=False)
            except WireError:
                err = _icmp_error(rec.data)
                if err is None:
                    skipped += 1
                    continue
                src, dst = (err.src, err.src_port), (err.dst, err.dst_port)
                conn = conns.get(frozenset((src, dst)))
                if conn is None:
                    conn = conns[frozenset((src, dst))] = CaptureConnection(src, dst)
                mtu = f" mtu {err.mtu}" if err.mtu else ""
                conn.notes.append((rec.ts, f"ICMP {err.kind.value}{mtu} from {err.reporter}",
                                   src))
                continue
            src, dst = (ip.src, seg.src_port), (ip.dst, seg.dst_port)
            key = frozenset((src, dst))
            conn = conns.get(key)
            if conn is None:
                conn = conns[key] = CaptureConnection(src, dst)
            conn.segments.append(WireSegment(rec.ts, src, dst, seg))
    except PcapError as exc:
        raise UserError(str(exc)) from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a pcap file") from None
    return Capture(list(conns.values()), skipped + reader.skipped, frames + reader.skipped)


def _icmp_error(data: bytes) -> IcmpError | None:
    """The ICMP or ICMPv6 error about a TCP segment that ``data`` is, or None."""
    try:
        if data[:1] and data[0] >> 4 == 6:
            return icmp6_error(parse_icmp6(data))    # WireError unless an error about TCP
        ip, payload = parse_ipv4(data)
        if ip.protocol != PROTO_ICMP:
            return None
        message = parse_icmp(ip, payload)
    except WireError:
        return None
    return message if isinstance(message, IcmpError) else None


def select_connection(capture: Capture, spec: str | None) -> CaptureConnection:
    """The connection ``spec`` names: a number from the listing (1-based) or ADDR:PORT-ADDR:PORT.

    Without ``spec`` the only connection; UsageError if there are several.
    """
    conns = capture.connections
    if not conns:
        raise UserError("no TCP segments in this capture")
    if spec is None:
        if len(conns) == 1:
            return conns[0]
        raise UsageError(f"{len(conns)} connections in this capture; pick one with --conn N "
                         f"or --conn ADDR:PORT-ADDR:PORT (see the list above)")
    if spec.isdigit():
        n = int(spec)
        if not 1 <= n <= len(conns):
            raise UsageError(f"--conn {spec}: there are {len(conns)} connections (1-{len(conns)})")
        return conns[n - 1]
    try:
        left, right = spec.split("-")
        x = _endpoint(left)
        y = _endpoint(right)
    except ValueError:
        raise UsageError(f"--conn {spec}: expected N or ADDR:PORT-ADDR:PORT "
                         "([ADDR]:PORT for IPv6)") from None
    for conn in conns:
        if conn.matches(x, y):
            return conn
    raise UsageError(f"--conn {spec}: no such connection in this capture")


def _endpoint(text: str) -> Endpoint:
    addr, port = text.rsplit(":", 1)
    if addr.startswith("[") and addr.endswith("]"):     # [IPv6]:PORT (RFC 5952 §6)
        return canonical_addr(addr[1:-1]), int(port)
    parts = addr.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(addr)
    return addr, int(port)
