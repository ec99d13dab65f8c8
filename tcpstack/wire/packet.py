"""Whole IPv4+TCP packets: what the link carries, to and from what the core uses."""

from __future__ import annotations

import struct

from tcpstack.wire import ipv4, tcp
from tcpstack.wire.addr import addr_text, addr_wire
from tcpstack.wire.checksum import checksum_ok, ones_sum
from tcpstack.wire.errors import NotTcp, WireError
from tcpstack.wire.ipv4 import Ipv4Header, ipv4_header_bytes, new_header, parse_ipv4_at
from tcpstack.wire.tcp import (
    PROTO_TCP,
    TcpSegment,
    new_segment,
    parse_options,
    parse_tcp_at,
    tcp_header_bytes,
)

_from_bytes = int.from_bytes
_SYN = tcp.SYN
_RST_FIN = tcp.RST | tcp.FIN
# An IPv4 header without options followed by the fixed TCP header, in one unpack.
_PLAIN = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
_PLAIN_MIN = 40
_MF_OR_OFFSET = ipv4.FLAG_MF | ipv4.OFFSET_MASK


def _parse_general(buf: bytes | memoryview, verify_checksum: bool) -> tuple[Ipv4Header, TcpSegment]:
    """Every check in order; raises the ``WireError`` that names the first problem."""
    header, start, end, src, dst = parse_ipv4_at(buf)
    if header.protocol != PROTO_TCP:
        raise NotTcp(f"IPv4 protocol {header.protocol}, not TCP")
    pseudo = None
    if verify_checksum:
        # RFC 9293 §3.1 pseudo-header: source, destination, zero + PTCL, TCP length
        pseudo = _from_bytes(src, "big") + _from_bytes(dst, "big") + PROTO_TCP + end - start
    return header, parse_tcp_at(buf, start, end, pseudo)


def _parse_plain(buf: bytes | memoryview,
                 verify_checksum: bool) -> tuple[Ipv4Header, TcpSegment] | None:
    """The common case in one pass: IHL 5, TCP, all fields sane.

    Returns None at the first anomaly; ``_parse_general`` then names it. The
    checks are the same, so both paths accept exactly the same packets.
    """
    (_vihl, tos, total, ident, frag, ttl, proto, _ip_csum, src, dst,
     src_port, dst_port, seq, ack, offset, flags, window, _tcp_csum, urgent) = \
        _PLAIN.unpack_from(buf, 0)
    header_end = 20 + ((offset >> 4) << 2)
    if (total > len(buf) or proto != PROTO_TCP or frag & _MF_OR_OFFSET or header_end < 40
            or header_end > total or (flags & _SYN and flags & _RST_FIN)):
        return None
    if _from_bytes(buf[:20], "big") % 0xFFFF:   # header checksum (RFC 791 §3.1)
        return None
    # TCP checksum (RFC 9293 §3.1): the addresses sit right before the TCP
    # header, so one sum from offset 12 covers them and the whole segment;
    # the pseudo-header's protocol and TCP length are added to it.
    if verify_checksum and not checksum_ok(ones_sum(buf[12:total]) + PROTO_TCP + total - 20):
        return None
    options = parse_options(buf, 40, header_end)  # fast for none and timestamps only
    payload = buf[header_end:total]
    if type(payload) is not bytes:
        payload = bytes(payload)
    return (new_header(addr_text(src), addr_text(dst), PROTO_TCP, ttl, ident, tos,
                       bool(frag & ipv4.FLAG_DF), total, 20),
            new_segment(src_port, dst_port, seq, ack, flags, window, urgent, options, payload))


def parse_packet(buf: bytes | memoryview,
                 verify_checksum: bool = True) -> tuple[Ipv4Header, TcpSegment]:
    """Parse an IPv4 packet carrying TCP.

    ``verify_checksum=False`` skips the TCP checksum only (a TUN with checksum
    offload hands over segments whose checksum is partial); the IPv4 header
    checksum is always checked. Whatever the bytes, the only exceptions are
    ``WireError`` subclasses.
    """
    try:
        if len(buf) >= _PLAIN_MIN and buf[0] == 0x45:
            parsed = _parse_plain(buf, verify_checksum)
            if parsed is not None:
                return parsed
        return _parse_general(buf, verify_checksum)
    except WireError:
        raise
    except Exception as exc:  # a codec bug must still not escape as anything else
        raise WireError(f"undecodable packet: {type(exc).__name__}: {exc}") from exc


def build_packet(src: str, dst: str, seg: TcpSegment, ident: int = 0, ttl: int = 64,
                 checksum: bool = True, *, offload: bool = False) -> bytes:
    """IPv4 header (DF set, no options) + TCP segment, with both checksums.

    ``checksum=False`` leaves the TCP checksum 0; ``offload=True`` stores the
    folded pseudo-header sum there instead, for a link that completes the
    checksum (virtio ``NEEDS_CSUM``). The IPv4 checksum is always computed.
    ``ValueError`` for a bad address or a field that does not fit.
    """
    base = None
    if checksum or offload:
        base = addr_wire(src)[1] + addr_wire(dst)[1] + PROTO_TCP
    header = tcp_header_bytes(seg, base, offload)
    payload = seg.payload
    ip = ipv4_header_bytes(src, dst, len(header) + len(payload), PROTO_TCP, ident, ttl)
    return b"".join((ip, header, payload))

