"""Whole IPv4+TCP and IPv6+TCP packets: what the link carries, to and from
what the core uses. The family follows the version nibble on the way in and
the source address on the way out; the IPv6 half is ``wire.packet6``.

Both directions have a fast way for IPv4 headers without options: one
``struct`` call (un)packs both headers, and the timestamps option too when
it is the only one (the data path's usual shape). What the fast way does not
take, and anything wrong, goes the general way through the ``ipv4`` and
``tcp`` modules, which names the error; both ways accept, refuse and produce
exactly the same.
"""

from __future__ import annotations

import struct

from tcpstack.wire import ipv4, tcp
from tcpstack.wire.addr import addr_text, addr_wire
from tcpstack.wire.checksum import fold, ones_sum
from tcpstack.wire.errors import NotTcp, WireError
from tcpstack.wire.ipv4 import Ipv4Header, ipv4_header_bytes, new_header, parse_ipv4_at
from tcpstack.wire.ipv6 import Ipv6Header
from tcpstack.wire.packet6 import headers6, headers6_general, parse_packet6
from tcpstack.wire.tcp import (
    PROTO_TCP,
    TS_PREFIX,
    TcpSegment,
    encode_options,
    new_options,
    new_segment,
    parse_options,
    parse_tcp_at,
    tcp_header_bytes,
    timestamps_only,
)

_from_bytes = int.from_bytes
_SYN = tcp.SYN
_RST_FIN = tcp.RST | tcp.FIN
_DF = ipv4.FLAG_DF
_MF_OR_OFFSET = ipv4.FLAG_MF | ipv4.OFFSET_MASK
# An IPv4 header without options and the fixed TCP header: the shortest
# packet the fast parse takes.
_PLAIN_FORMAT = "!BBHHHBBH4s4sHHIIBBHHH"
_PLAIN = struct.Struct(_PLAIN_FORMAT)
_PLAIN_LENGTH = 40
# The same followed by the timestamps option as Linux aligns it (RFC 7323
# App. A), the data path's usual shape, in one (un)pack.
_PLAIN_TS = struct.Struct(_PLAIN_FORMAT + "III")
_PLAIN_TS_LENGTH = 52
_NO_TS = (0, 0, 0)
_U16 = struct.Struct("!H")
IpHeader = Ipv4Header | Ipv6Header


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
    size = len(buf)
    fields = (_PLAIN_TS.unpack_from(buf, 0) if size >= _PLAIN_TS_LENGTH
              else _PLAIN.unpack_from(buf, 0) + _NO_TS)
    (_vihl, tos, total, ident, frag, ttl, proto, _ip_csum, src, dst, src_port, dst_port, seq,
     ack, offset, flags, window, _tcp_csum, urgent, ts_prefix, tsval, tsecr) = fields
    header_end = 20 + ((offset >> 4) << 2)
    if (total > size or proto != PROTO_TCP or frag & _MF_OR_OFFSET or header_end < _PLAIN_LENGTH
            or header_end > total or (flags & _SYN and flags & _RST_FIN)):
        return None
    if _from_bytes(buf[:20], "big") % 0xFFFF:   # header checksum (RFC 791 §3.1)
        return None
    # TCP checksum (RFC 9293 §3.1): the addresses sit right before the TCP
    # header, so one sum from offset 12 covers them and the whole segment;
    # the pseudo-header's protocol and TCP length are added to it. With
    # those the sum is never zero, so "verifies" is "is 0 modulo 0xffff".
    if verify_checksum and (ones_sum(buf, 12, total) + (PROTO_TCP + total - 20)) % 0xFFFF:
        return None
    if header_end == _PLAIN_TS_LENGTH and ts_prefix == TS_PREFIX:
        options = new_options(None, None, False, (), (tsval, tsecr))
    else:
        options = parse_options(buf, _PLAIN_LENGTH, header_end)
    payload = buf[header_end:total]
    if type(payload) is not bytes and (type(payload) is not memoryview or not payload.readonly):
        payload = bytes(payload)
    return (new_header(addr_text(src), addr_text(dst), PROTO_TCP, ttl, ident, tos,
                       (frag & _DF) != 0, total, 20),
            new_segment(src_port, dst_port, seq, ack, flags, window, urgent, options, payload))


def parse_packet(buf: bytes | memoryview,
                 verify_checksum: bool = True) -> tuple[IpHeader, TcpSegment]:
    """Parse an IPv4 or IPv6 packet carrying TCP (the version nibble decides).

    ``verify_checksum=False`` skips the TCP checksum only (a TUN with checksum
    offload hands over segments whose checksum is partial); the IPv4 header
    checksum is always checked. Whatever the bytes, the only exceptions are
    ``WireError`` subclasses.

    The payload is ``bytes`` — or, when ``buf`` is a read-only memoryview
    (its owner promises the bytes never change), a view of it: no copy.
    """
    try:
        if len(buf) >= _PLAIN_LENGTH and buf[0] == 0x45:
            parsed = _parse_plain(buf, verify_checksum)
            if parsed is not None:
                return parsed
        if buf and buf[0] >> 4 == 6:
            return parse_packet6(buf, verify_checksum)
        return _parse_general(buf, verify_checksum)
    except WireError:
        raise
    except Exception as exc:  # a codec bug must still not escape as anything else
        raise WireError(f"undecodable packet: {type(exc).__name__}: {exc}") from exc


# A refusal by the fast path below; the general path then builds the packet,
# or raises its own error for the same input.
_REFUSED = (struct.error, TypeError, ValueError, OverflowError)
# RFC 791 §3.1 header words that never change here: version 4, IHL 5, TOS 0;
# flags DF, fragment offset 0; the protocol byte (the TTL is added apart).
_IP_FIXED_WORDS = 0x4500 + _DF + PROTO_TCP


def _headers_general(src: str, dst: str, seg: TcpSegment, ident: int, ttl: int,
                     checksum: bool, offload: bool) -> bytes:
    """IPv4 + TCP header from the two header builders: the reference for ``_headers``."""
    base = None
    if checksum or offload:
        base = addr_wire(src)[1] + addr_wire(dst)[1] + PROTO_TCP
    header = tcp_header_bytes(seg, base, offload)
    return ipv4_header_bytes(src, dst, len(header) + len(seg.payload), PROTO_TCP, ident,
                             ttl) + header


def _headers(src: str, dst: str, seg: TcpSegment, ident: int, ttl: int, checksum: bool,
             offload: bool) -> bytes:
    """The same bytes as ``_headers_general``, both headers packed in one call.

    Raises one of ``_REFUSED`` for anything that does not fit, leaving the
    error message to the general path.
    """
    src_raw, src_sum = addr_wire(src)
    dst_raw, dst_sum = addr_wire(dst)
    opts = seg.options
    if timestamps_only(opts):
        tsval, tsecr = opts.timestamps  # type: ignore[misc]
        options = None
        tcp_header_length = 32
    else:  # packed with zero timestamps, which are cut off again below
        tsval = tsecr = 0
        options = encode_options(opts)
        tcp_header_length = 20 + len(options)
    tcp_length = tcp_header_length + len(seg.payload)
    total = 20 + tcp_length
    # RFC 791 §3.1 "Header Checksum", from the words rather than the bytes.
    ip_csum = 0xFFFF - fold(_IP_FIXED_WORDS + (ttl << 8) + total + ident + src_sum + dst_sum)
    tcp_csum = 0
    if offload:  # the folded pseudo-header sum, as tcp_header_bytes() explains
        tcp_csum = fold(src_sum + dst_sum + PROTO_TCP + tcp_length)
    head = _PLAIN_TS.pack(0x45, 0, total, ident, _DF, ttl, PROTO_TCP, ip_csum, src_raw, dst_raw,
                          seg.src_port, seg.dst_port, seg.seq, seg.ack, tcp_header_length << 2,
                          seg.flags, seg.window, tcp_csum, seg.urgent, TS_PREFIX, tsval, tsecr)
    if options is not None:
        head = head[:_PLAIN_LENGTH] + options
    if offload or not checksum:
        return head
    return _with_tcp_checksum(head, tcp_length, seg.payload)


def _with_tcp_checksum(head: bytes, tcp_length: int, payload: bytes) -> bytes:
    """``head`` (both headers, TCP checksum 0) with the TCP checksum filled in.

    RFC 9293 §3.1: the addresses sit right before the TCP header, so one sum
    from offset 12 covers them and the header; protocol and TCP length
    complete the pseudo-header, and the payload's sum the segment.
    """
    total_sum = _from_bytes(head[12:], "big") + (PROTO_TCP + tcp_length)
    if payload:
        total_sum += ones_sum(payload)
    return head[:36] + _U16.pack(0xFFFF - fold(total_sum)) + head[38:]


def packet_headers(src: str, dst: str, seg: TcpSegment, ident: int = 0, ttl: int = 64,
                   checksum: bool = True, *, offload: bool = False, flow_label: int = 0) -> bytes:
    """What ``build_packet`` returns up to the payload: the IP and TCP headers.

    The TCP checksum still covers the payload. For a link that takes the
    headers and the payload as separate pieces (no copy of the payload).
    """
    if ":" in src:
        try:
            return headers6(src, dst, seg, ttl, checksum, offload, flow_label)
        except _REFUSED:
            return headers6_general(src, dst, seg, ttl, checksum, offload, flow_label)
    try:
        return _headers(src, dst, seg, ident, ttl, checksum, offload)
    except _REFUSED:
        return _headers_general(src, dst, seg, ident, ttl, checksum, offload)


def build_packet(src: str, dst: str, seg: TcpSegment, ident: int = 0, ttl: int = 64,
                 checksum: bool = True, *, offload: bool = False, flow_label: int = 0) -> bytes:
    """IPv4 header (DF set, no options) + TCP segment, with both checksums; or,
    for IPv6 addresses, an IPv6 header (hop limit ``ttl``, ``flow_label``, no
    extension headers; ``ident`` unused) + TCP segment.

    ``checksum=False`` leaves the TCP checksum 0; ``offload=True`` stores the
    folded pseudo-header sum there instead, for a link that completes the
    checksum (virtio ``NEEDS_CSUM``). The IPv4 checksum is always computed.
    ``ValueError`` for a bad address or a field that does not fit.
    """
    if ":" in src:
        return b"".join((packet_headers(src, dst, seg, ident, ttl, checksum, offload=offload,
                                        flow_label=flow_label), seg.payload))
    try:
        return b"".join((_headers(src, dst, seg, ident, ttl, checksum, offload), seg.payload))
    except _REFUSED:
        return b"".join((_headers_general(src, dst, seg, ident, ttl, checksum, offload),
                         seg.payload))


# Software segmentation (GSO): what a TSO device does, for a link without it.
_LAST_ONLY = tcp.FIN | tcp.PSH      # Linux tcp_gso_segment(): on the last piece only
_FIRST_ONLY = tcp.CWR               # ... and CWR on the first only (RFC 3168 §6.1.2)


def segment_packets(src: str, dst: str, seg: TcpSegment, mss: int, ident: int = 0,
                    ttl: int = 64, flow_label: int = 0) -> list[bytes]:
    """The packets a TSO device would make of the super-segment ``seg``.

    Payload cut into ``mss``-byte pieces (the last may be shorter), sequence
    numbers advanced, IP identifications ``ident``, ``ident + 1``, ...; every
    piece keeps the options (timestamps); FIN and PSH only on the last piece,
    CWR only on the first. Each packet carries both checksums.
    """
    payload = seg.payload
    size = len(payload)
    if size <= mss:
        return [build_packet(src, dst, seg, ident, ttl, flow_label=flow_label)]
    src_port, dst_port, ack = seg.src_port, seg.dst_port, seg.ack
    window, urgent, options = seg.window, seg.urgent, seg.options
    flags = seg.flags & ~_LAST_ONLY
    last = size - mss
    packets = []
    for offset in range(0, size, mss):
        piece_flags = seg.flags if offset >= last else flags
        if offset:
            piece_flags &= ~_FIRST_ONLY
        piece = new_segment(src_port, dst_port, (seg.seq + offset) & 0xFFFFFFFF, ack,
                            piece_flags, window, urgent, options,
                            payload[offset:offset + mss])
        packets.append(build_packet(src, dst, piece, (ident + len(packets)) & 0xFFFF, ttl,
                                    flow_label=flow_label))
    return packets
