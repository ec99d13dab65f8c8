"""ICMPv6 messages (RFC 4443) inside IPv6 packets: parse with checksum, build.

The checksum covers the RFC 8200 §8.1 pseudo-header with next header 58
(RFC 4443 §2.3). Only what tcpstack answers or reads is named here: echo
request and reply (§4.1, §4.2), and the error types (§3), which
``icmp6_error`` maps onto the family-neutral ``IcmpError`` of
``tcpstack.wire.icmp`` -- the same values and the same core entry point
(``StackCore.icmp_error``) as ICMPv4.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpstack.seq import Seq
from tcpstack.wire.addr import addr6_text
from tcpstack.wire.checksum import checksum_ok, fold, ones_sum
from tcpstack.wire.errors import BadChecksum, NotTcp, Truncated, WireError
from tcpstack.wire.icmp import IcmpError, IcmpErrorKind, IcmpNotTcp, IcmpUnsupported
from tcpstack.wire.ipv6 import (
    PROTO_ICMPV6,
    Ipv6Header,
    ipv6_header_bytes,
    parse_ipv6_at,
    pseudo_header6_sum,
    walk_extensions,
)

DEST_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
CODE_UNRECOGNIZED_NEXT_HEADER = 1      # RFC 4443 §3.4
ECHO_REQUEST = 128
ECHO_REPLY = 129

_HEAD = struct.Struct("!BBH")
_WORD = struct.Struct("!I")
_QUOTED_IP6 = struct.Struct("!IHBB16s16s")
_QUOTED_TCP = struct.Struct("!HHI")
PROTO_TCP = 6

# RFC 4443 §3.1 Destination Unreachable codes, as Linux icmpv6_err_convert reads them.
_UNREACHABLE_KINDS: dict[int, IcmpErrorKind] = {
    0: IcmpErrorKind.NET_UNREACHABLE,          # no route to destination
    1: IcmpErrorKind.ADMIN_PROHIBITED,         # communication administratively prohibited
    2: IcmpErrorKind.HOST_UNREACHABLE,         # beyond scope of source address
    3: IcmpErrorKind.HOST_UNREACHABLE,         # address unreachable
    4: IcmpErrorKind.PORT_UNREACHABLE,         # port unreachable
    5: IcmpErrorKind.ADMIN_PROHIBITED,         # source address failed ingress/egress policy
    6: IcmpErrorKind.ADMIN_PROHIBITED,         # reject route to destination
}


@dataclass(frozen=True, slots=True)
class Icmp6Message:
    """``type``, ``code`` and the body after the 4-byte type/code/checksum
    (for an echo: identifier, sequence number, data; for an error: the
    32-bit field, then as much of the invoking packet as fit)."""

    ip: Ipv6Header
    type: int
    code: int
    body: bytes


def parse_icmp6(buf: bytes | memoryview) -> Icmp6Message:
    """An IPv6 packet carrying ICMPv6; only ``WireError`` subclasses for bad bytes
    (``NotTcp`` -- "not the protocol expected" -- when it carries something else)."""
    ip, start, end, _src, _dst = parse_ipv6_at(buf)
    if ip.next_header != PROTO_ICMPV6:
        raise NotTcp(f"IPv6 next header {ip.next_header}, not ICMPv6")
    if end - start < _HEAD.size:
        raise Truncated(f"ICMPv6 message of {end - start} bytes is shorter than 4")
    pseudo = pseudo_header6_sum(ip.src, ip.dst, PROTO_ICMPV6, end - start)
    if not checksum_ok(pseudo + ones_sum(buf, start, end)):
        raise BadChecksum("ICMPv6 checksum does not verify")
    kind, code, _csum = _HEAD.unpack_from(buf, start)
    return Icmp6Message(ip, kind, code, bytes(buf[start + 4:end]))


def build_icmp6(src: str, dst: str, kind: int, code: int, body: bytes | memoryview,
                hop_limit: int = 64) -> bytes:
    """An IPv6 packet with one ICMPv6 message and its checksum (RFC 4443 §2.3)."""
    length = _HEAD.size + len(body)
    pseudo = pseudo_header6_sum(src, dst, PROTO_ICMPV6, length)
    csum = 0xFFFF - fold(pseudo + (kind << 8 | code) + ones_sum(body))
    return (ipv6_header_bytes(src, dst, length, PROTO_ICMPV6, hop_limit)
            + _HEAD.pack(kind, code, csum) + bytes(body))


def icmp6_error(msg: Icmp6Message) -> IcmpError:
    """The ``IcmpError`` an ICMPv6 error message reports about one of our segments.

    RFC 4443 §3: the body is a 32-bit field (the MTU of a Packet Too Big,
    §3.2; unused or a pointer otherwise), then as much of the invoking packet
    as fit: its IPv6 header, extension headers, and at least the first 8 bytes
    of TCP (ports and sequence number) are needed. Raises ``IcmpUnsupported``,
    ``IcmpNotTcp`` or ``Truncated`` (all ``WireError``).
    """
    kind_code = (msg.type, msg.code)
    mtu = 0
    if msg.type == DEST_UNREACHABLE:
        kind = _UNREACHABLE_KINDS.get(msg.code)
        if kind is None:
            raise IcmpUnsupported(f"ICMPv6 destination unreachable with code {msg.code}")
    elif msg.type == PACKET_TOO_BIG:
        kind = IcmpErrorKind.PACKET_TOO_BIG
        if len(msg.body) >= 4:
            mtu = _WORD.unpack_from(msg.body, 0)[0]   # RFC 4443 §3.2: 32 bits
    elif msg.type == TIME_EXCEEDED:
        kind = IcmpErrorKind.TIME_EXCEEDED
    elif msg.type == PARAMETER_PROBLEM:
        kind = IcmpErrorKind.PARAMETER_PROBLEM
    else:
        raise IcmpUnsupported(f"ICMPv6 type {kind_code[0]} code {kind_code[1]}")
    quote = msg.body[4:]
    if len(quote) < 40 + 8:
        raise Truncated(f"ICMPv6 error quotes {len(quote)} bytes; an IPv6 header and 8 more "
                        "are needed")
    word, _plen, next_header, _hops, src, dst = _QUOTED_IP6.unpack_from(quote, 0)
    if word >> 28 != 6:
        raise IcmpNotTcp(f"ICMPv6 error quotes an IP version {word >> 28} packet")
    try:
        proto, start = walk_extensions(quote, next_header, 40, len(quote))
    except WireError as exc:
        raise Truncated(f"ICMPv6 error quotes a cut extension header chain ({exc})") from None
    if proto != PROTO_TCP:
        raise IcmpNotTcp(f"ICMPv6 error about next header {proto}, not TCP")
    if len(quote) < start + 8:
        raise Truncated(f"ICMPv6 error quotes {len(quote) - start} bytes of the TCP header, "
                        "fewer than 8")
    src_port, dst_port, seq = _QUOTED_TCP.unpack_from(quote, start)
    return IcmpError(kind, mtu, msg.ip.src, addr6_text(src), addr6_text(dst), src_port,
                     dst_port, Seq(seq))
