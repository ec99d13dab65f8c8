"""ICMPv6 messages (RFC 4443) inside IPv6 packets: parse with checksum, build.

The checksum covers the RFC 8200 §8.1 pseudo-header with next header 58
(RFC 4443 §2.3). Only what tcpstack answers or reads is named here: echo
request and reply (§4.1, §4.2), and the error types (§3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpstack.wire.checksum import checksum_ok, fold, ones_sum
from tcpstack.wire.errors import BadChecksum, NotTcp, Truncated
from tcpstack.wire.ipv6 import (
    PROTO_ICMPV6,
    Ipv6Header,
    ipv6_header_bytes,
    parse_ipv6_at,
    pseudo_header6_sum,
)

DEST_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129

_HEAD = struct.Struct("!BBH")


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
