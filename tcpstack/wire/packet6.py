"""Whole IPv6+TCP packets, the IPv6 half of ``tcpstack.wire.packet``.

As for IPv4 there is a fast way for the usual shape (no extension headers,
one ``struct`` call for both headers and the timestamps option) and a
general way through ``ipv6`` and ``tcp`` that names every error; both
accept, refuse and produce the same. The TCP checksum covers the RFC 8200
§8.1 pseudo-header: both addresses sit right before the TCP header, so one
sum from offset 8 covers them and the segment.
"""

from __future__ import annotations

import struct

from tcpstack.wire import tcp
from tcpstack.wire.addr import addr6_text, addr6_wire
from tcpstack.wire.checksum import fold, ones_sum
from tcpstack.wire.errors import NotTcp
from tcpstack.wire.ipv6 import (
    HEADER_LENGTH,
    Ipv6Header,
    first_word,
    ipv6_header_bytes,
    new_header6,
    parse_ipv6_at,
    pseudo_header6_sum,
)
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
_PLAIN_FORMAT = "!IHBB16s16sHHIIBBHHH"
_PLAIN = struct.Struct(_PLAIN_FORMAT)
_PLAIN_LENGTH = 60
_PLAIN_TS = struct.Struct(_PLAIN_FORMAT + "III")
_PLAIN_TS_LENGTH = 72
_NO_TS = (0, 0, 0)
_U16 = struct.Struct("!H")
_CSUM_AT = HEADER_LENGTH + 16


def _parse_general(buf: bytes | memoryview, verify_checksum: bool) -> tuple[Ipv6Header, TcpSegment]:
    header, start, end, _src, _dst = parse_ipv6_at(buf)
    if header.next_header != PROTO_TCP:
        raise NotTcp(f"IPv6 next header {header.next_header}, not TCP")
    pseudo = None
    if verify_checksum:
        pseudo = pseudo_header6_sum(header.src, header.dst, PROTO_TCP, end - start)
    return header, parse_tcp_at(buf, start, end, pseudo)


def _parse_plain(buf: bytes | memoryview,
                 verify_checksum: bool) -> tuple[Ipv6Header, TcpSegment] | None:
    """No extension headers, all fields sane; None at the first anomaly."""
    size = len(buf)
    fields = (_PLAIN_TS.unpack_from(buf, 0) if size >= _PLAIN_TS_LENGTH
              else _PLAIN.unpack_from(buf, 0) + _NO_TS)
    (word, plen, next_header, hops, src, dst, src_port, dst_port, seq, ack, offset, flags,
     window, _tcp_csum, urgent, ts_prefix, tsval, tsecr) = fields
    total = HEADER_LENGTH + plen
    header_end = HEADER_LENGTH + ((offset >> 4) << 2)
    if (total > size or next_header != PROTO_TCP or header_end < _PLAIN_LENGTH
            or header_end > total or (flags & _SYN and flags & _RST_FIN)):
        return None
    # RFC 8200 §8.1 pseudo-header: the addresses (offset 8 on), the TCP
    # length and the next header; never zero, so "verifies" is "0 mod 0xffff".
    if verify_checksum and (ones_sum(buf, 8, total) + (PROTO_TCP + plen)) % 0xFFFF:
        return None
    if header_end == _PLAIN_TS_LENGTH and ts_prefix == TS_PREFIX:
        options = new_options(None, None, False, (), (tsval, tsecr))
    else:
        options = parse_options(buf, _PLAIN_LENGTH, header_end)
    payload = buf[header_end:total]
    if type(payload) is not bytes and (type(payload) is not memoryview or not payload.readonly):
        payload = bytes(payload)
    return (new_header6(addr6_text(src), addr6_text(dst), PROTO_TCP, hops,
                        (word >> 20) & 0xFF, word & 0xFFFFF, plen, HEADER_LENGTH),
            new_segment(src_port, dst_port, seq, ack, flags, window, urgent, options, payload))


def parse_packet6(buf: bytes | memoryview,
                  verify_checksum: bool = True) -> tuple[Ipv6Header, TcpSegment]:
    """``parse_packet`` for a buffer whose version nibble is 6."""
    if len(buf) >= _PLAIN_LENGTH and buf[6] == PROTO_TCP:
        parsed = _parse_plain(buf, verify_checksum)
        if parsed is not None:
            return parsed
    return _parse_general(buf, verify_checksum)


def headers6_general(src: str, dst: str, seg: TcpSegment, hop_limit: int, checksum: bool,
                     offload: bool, flow_label: int) -> bytes:
    """IPv6 + TCP header from the two header builders: the reference for ``headers6``."""
    base = None
    if checksum or offload:
        base = addr6_wire(src)[1] + addr6_wire(dst)[1] + PROTO_TCP
    header = tcp_header_bytes(seg, base, offload)
    return ipv6_header_bytes(src, dst, len(header) + len(seg.payload), PROTO_TCP, hop_limit,
                             0, flow_label) + header


def headers6(src: str, dst: str, seg: TcpSegment, hop_limit: int, checksum: bool, offload: bool,
             flow_label: int) -> bytes:
    """The same bytes as ``headers6_general``, both headers packed in one call.

    Raises ``struct.error`` / ``TypeError`` / ``ValueError`` / ``OverflowError``
    for anything that does not fit, leaving the message to the general path.
    """
    src_raw, src_sum = addr6_wire(src)
    dst_raw, dst_sum = addr6_wire(dst)
    opts = seg.options
    if timestamps_only(opts):
        tsval, tsecr = opts.timestamps  # type: ignore[misc]
        options = None
        tcp_header_length = 32
    else:
        tsval = tsecr = 0
        options = encode_options(opts)
        tcp_header_length = 20 + len(options)
    tcp_length = tcp_header_length + len(seg.payload)
    if tcp_length > 0xFFFF or not 0 <= flow_label <= 0xFFFFF:
        raise ValueError("does not fit")
    tcp_csum = 0
    if offload:  # the folded pseudo-header sum (virtio NEEDS_CSUM)
        tcp_csum = fold(src_sum + dst_sum + PROTO_TCP + tcp_length)
    head = _PLAIN_TS.pack(first_word(0, flow_label), tcp_length, PROTO_TCP, hop_limit, src_raw,
                          dst_raw, seg.src_port, seg.dst_port, seg.seq, seg.ack,
                          tcp_header_length << 2, seg.flags, seg.window, tcp_csum, seg.urgent,
                          TS_PREFIX, tsval, tsecr)
    if options is not None:
        head = head[:_PLAIN_LENGTH] + options
    if offload or not checksum:
        return head
    total_sum = _from_bytes(head[8:], "big") + (PROTO_TCP + tcp_length)
    if seg.payload:
        total_sum += ones_sum(seg.payload)
    return head[:_CSUM_AT] + _U16.pack(0xFFFF - fold(total_sum)) + head[_CSUM_AT + 2:]
