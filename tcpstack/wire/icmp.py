"""ICMPv4 (RFC 792) as frozen dataclasses: errors about our TCP segments, echo.

An ICMP error quotes the IPv4 header of the packet that failed and at least
its first 8 bytes (RFC 792; RFC 1812 §4.3.2.3 routers quote more), which for
TCP are the ports and the sequence number: enough to find the connection and
to check the report (RFC 5927 §4.1). ``parse_icmp`` turns one into an
``IcmpError`` whose ``kind`` does not depend on the IP family, so an ICMPv6
Packet Too Big or Destination Unreachable maps onto the same values and the
same core entry point (``StackCore.icmp_error``).

Malformed or unsupported messages raise ``WireError`` subclasses (counted and
dropped by the receive path), never anything else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from tcpstack.seq import Seq
from tcpstack.wire.addr import addr_text
from tcpstack.wire.checksum import checksum_ok, internet_checksum, ones_sum
from tcpstack.wire.errors import BadChecksum, BadHeaderLength, Truncated, WireError
from tcpstack.wire.ipv4 import Ipv4Header, build_ipv4

__all__ = [
    "PROTO_ICMP", "IcmpEcho", "IcmpError", "IcmpErrorKind", "IcmpNotTcp", "IcmpUnsupported",
    "build_echo_reply", "build_icmp_error", "parse_icmp",
]

PROTO_ICMP = 1
PROTO_TCP = 6

# RFC 792 types.
ECHO_REPLY = 0
DEST_UNREACHABLE = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAMETER_PROBLEM = 12

# Destination Unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
CODE_PROTOCOL_UNREACHABLE = 2
CODE_FRAGMENTATION_NEEDED = 4

HEADER_LENGTH = 8          # type, code, checksum, 4 bytes of "rest of header"
QUOTED_TRANSPORT = 8       # RFC 792: "the first 64 bits of the original datagram's data"
# RFC 1812 §4.3.2.3: an ICMP error is at most 576 bytes in all (IPv4 header included).
MAX_ERROR_LENGTH = 576

_HEAD = struct.Struct("!BBHHH")          # type, code, checksum, and two 16-bit words
_QUOTED_IP = struct.Struct("!BBHHHBBH4s4s")
_QUOTED_TCP = struct.Struct("!HHI")


class IcmpErrorKind(enum.Enum):
    """What went wrong, in words both ICMPv4 and ICMPv6 have."""

    PACKET_TOO_BIG = "packet-too-big"           # v4: unreachable, fragmentation needed
    NET_UNREACHABLE = "net-unreachable"
    HOST_UNREACHABLE = "host-unreachable"
    PROTOCOL_UNREACHABLE = "protocol-unreachable"
    PORT_UNREACHABLE = "port-unreachable"
    ADMIN_PROHIBITED = "admin-prohibited"
    SOURCE_ROUTE_FAILED = "source-route-failed"
    TIME_EXCEEDED = "time-exceeded"
    PARAMETER_PROBLEM = "parameter-problem"


# RFC 792 / RFC 1122 §3.2.2.1 / RFC 1812 §5.2.7.1 Destination Unreachable codes.
_UNREACHABLE_KINDS: dict[int, IcmpErrorKind] = {
    0: IcmpErrorKind.NET_UNREACHABLE,
    1: IcmpErrorKind.HOST_UNREACHABLE,
    2: IcmpErrorKind.PROTOCOL_UNREACHABLE,
    3: IcmpErrorKind.PORT_UNREACHABLE,
    4: IcmpErrorKind.PACKET_TOO_BIG,
    5: IcmpErrorKind.SOURCE_ROUTE_FAILED,
    6: IcmpErrorKind.NET_UNREACHABLE,          # destination network unknown
    7: IcmpErrorKind.HOST_UNREACHABLE,         # destination host unknown
    8: IcmpErrorKind.HOST_UNREACHABLE,         # source host isolated
    9: IcmpErrorKind.ADMIN_PROHIBITED,         # network administratively prohibited
    10: IcmpErrorKind.ADMIN_PROHIBITED,        # host administratively prohibited
    11: IcmpErrorKind.NET_UNREACHABLE,         # network unreachable for TOS
    12: IcmpErrorKind.HOST_UNREACHABLE,        # host unreachable for TOS
    13: IcmpErrorKind.ADMIN_PROHIBITED,        # communication administratively prohibited
    14: IcmpErrorKind.HOST_UNREACHABLE,        # host precedence violation
    15: IcmpErrorKind.HOST_UNREACHABLE,        # precedence cutoff in effect
}


class IcmpUnsupported(WireError):
    """An ICMP type or code tcpstack does not act on (redirect, source quench...)."""

    reason = "icmp-unsupported"


class IcmpNotTcp(WireError):
    """An ICMP error about a packet that was not TCP (or not IPv4)."""

    reason = "icmp-not-tcp"


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error about one of our TCP segments.

    ``src``/``dst`` and the ports are those of the quoted packet: ``src`` is
    our address, ``dst`` the peer's. ``reporter`` is who sent the ICMP (a
    router, or the peer). ``mtu`` is the next-hop MTU of a Packet Too Big
    (RFC 1191 §4), 0 when the message gives none. ``seq`` is the quoted
    segment's sequence number.
    """

    kind: IcmpErrorKind
    mtu: int
    reporter: str
    src: str
    dst: str
    src_port: int
    dst_port: int
    seq: Seq


@dataclass(frozen=True, slots=True)
class IcmpEcho:
    """An ICMP echo request (RFC 792): identifier, sequence number, data."""

    ident: int
    sequence: int
    data: bytes


def parse_icmp(ip: Ipv4Header, payload: bytes | memoryview) -> IcmpError | IcmpEcho:
    """The ICMP message carried in ``payload`` (``ip`` is its IPv4 header).

    Raises ``Truncated``, ``BadChecksum``, ``BadHeaderLength``,
    ``IcmpUnsupported`` or ``IcmpNotTcp``: all ``WireError``.
    """
    size = len(payload)
    if size < HEADER_LENGTH:
        raise Truncated(f"ICMP message of {size} bytes is shorter than its 8-byte header")
    if not checksum_ok(ones_sum(payload)):
        raise BadChecksum("ICMP checksum does not verify")
    icmp_type, code, _csum, word1, word2 = _HEAD.unpack_from(payload, 0)
    if icmp_type == ECHO_REQUEST:
        if code != 0:
            raise IcmpUnsupported(f"ICMP echo request with code {code}")
        return IcmpEcho(word1, word2, bytes(payload[HEADER_LENGTH:]))
    if icmp_type == DEST_UNREACHABLE:
        kind = _UNREACHABLE_KINDS.get(code)
        if kind is None:
            raise IcmpUnsupported(f"ICMP destination unreachable with code {code}")
        # RFC 1191 §4: the next-hop MTU in the low 16 bits (0 from an old router).
        mtu = word2 if kind is IcmpErrorKind.PACKET_TOO_BIG else 0
    elif icmp_type == TIME_EXCEEDED:
        kind, mtu = IcmpErrorKind.TIME_EXCEEDED, 0
    elif icmp_type == PARAMETER_PROBLEM:
        kind, mtu = IcmpErrorKind.PARAMETER_PROBLEM, 0
    else:
        raise IcmpUnsupported(f"ICMP type {icmp_type} code {code}")
    return _quoted(kind, mtu, ip.src, payload)


def _quoted(kind: IcmpErrorKind, mtu: int, reporter: str,
            payload: bytes | memoryview) -> IcmpError:
    """The ``IcmpError`` for the IPv4 + TCP headers quoted after the ICMP header."""
    quote = payload[HEADER_LENGTH:]
    if len(quote) < 20 + QUOTED_TRANSPORT:
        raise Truncated(f"ICMP error quotes {len(quote)} bytes; an IPv4 header and 8 more "
                        "are needed")
    vihl, _tos, _total, _ident, _frag, _ttl, proto, _csum, src, dst = \
        _QUOTED_IP.unpack_from(quote, 0)
    if vihl >> 4 != 4:
        raise IcmpNotTcp(f"ICMP error quotes an IP version {vihl >> 4} packet")
    hlen = (vihl & 0x0F) << 2
    if hlen < 20:
        raise BadHeaderLength(f"ICMP error quotes an IPv4 header with IHL {vihl & 0x0F}")
    if len(quote) < hlen + QUOTED_TRANSPORT:
        raise Truncated(f"ICMP error quotes {len(quote) - hlen} bytes of the transport "
                        "header, fewer than 8")
    if proto != PROTO_TCP:
        raise IcmpNotTcp(f"ICMP error about IPv4 protocol {proto}, not TCP")
    src_port, dst_port, seq = _QUOTED_TCP.unpack_from(quote, hlen)
    return IcmpError(kind, mtu, reporter, addr_text(src), addr_text(dst), src_port,
                     dst_port, Seq(seq))


def _message(icmp_type: int, code: int, word1: int, word2: int,
             body: bytes | memoryview) -> bytes:
    """An ICMP message with its RFC 792 checksum over all of it."""
    head = _HEAD.pack(icmp_type, code, 0, word1, word2)
    csum = internet_checksum(head + bytes(body))
    return _HEAD.pack(icmp_type, code, csum, word1, word2) + bytes(body)


def build_echo_reply(src: str, dst: str, echo: IcmpEcho, ident: int = 0,
                     ttl: int = 64) -> bytes:
    """RFC 792 echo reply: the request's identifier, sequence number and data."""
    message = _message(ECHO_REPLY, 0, echo.ident, echo.sequence, echo.data)
    return build_ipv4(src, dst, message, PROTO_ICMP, ident=ident, ttl=ttl,
                      dont_fragment=False)


def build_icmp_error(src: str, dst: str, icmp_type: int, code: int,
                     offending: bytes | memoryview, ident: int = 0, ttl: int = 64,
                     mtu: int = 0) -> bytes:
    """An ICMP error from ``src`` to ``dst`` quoting ``offending`` (an IPv4 packet):
    as much of it as keeps the whole at 576 bytes (RFC 1812 §4.3.2.3)."""
    room = MAX_ERROR_LENGTH - 20 - HEADER_LENGTH
    message = _message(icmp_type, code, 0, mtu, offending[:room])
    return build_ipv4(src, dst, message, PROTO_ICMP, ident=ident, ttl=ttl,
                      dont_fragment=False)
