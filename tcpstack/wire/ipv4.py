"""IPv4 header as a frozen dataclass (RFC 791). Options are skipped on parse.

``parse_ipv4`` checks what a receiver must check before trusting a header
(RFC 1122 §3.2.1): version, header length, total length against what
arrived, and the header checksum. Fragments are refused (``Fragmented``):
tcpstack sets DF on everything it sends, and the runtime reassembles what it
receives in pieces (``tcpstack/runtime/fragments.py``) before parsing again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpstack.wire.addr import addr_text, addr_wire
from tcpstack.wire.checksum import checksum_ok, fold
from tcpstack.wire.errors import (
    BadChecksum,
    BadHeaderLength,
    BadTotalLength,
    Fragmented,
    NotIPv4,
    Truncated,
)
from tcpstack.wire.fastinit import fast_constructor

PROTO_TCP = 6


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    """Addresses are dotted-quad strings; ``header_length`` in bytes."""

    src: str
    dst: str
    protocol: int = PROTO_TCP
    ttl: int = 64
    ident: int = 0
    tos: int = 0
    dont_fragment: bool = True
    total_length: int = 0
    header_length: int = 20


HEADER_LENGTH = 20
MAX_TOTAL_LENGTH = 0xFFFF
FLAG_DF = 0x4000   # RFC 791 §3.1 "Flags": bit 1, don't fragment
FLAG_MF = 0x2000   # bit 2, more fragments
OFFSET_MASK = 0x1FFF

_HEADER = struct.Struct("!BBHHHBBH4s4s")
_HEADER_NO_CSUM = struct.Struct("!BBHHHBBH")
_from_bytes = int.from_bytes


# Same frozen instances as Ipv4Header(...), built faster (tcpstack.wire.fastinit).
new_header = fast_constructor(Ipv4Header)


def parse_ipv4_at(buf: bytes | memoryview) -> tuple[Ipv4Header, int, int, bytes, bytes]:
    """Check and parse the IPv4 header at the start of ``buf``.

    Returns ``(header, payload_start, payload_end, src_bytes, dst_bytes)``;
    bytes after ``total_length`` (link padding) are ignored. Raises only
    ``WireError`` subclasses.
    """
    size = len(buf)
    if size == 0:
        raise Truncated("empty packet")
    if buf[0] >> 4 != 4:
        raise NotIPv4(f"IP version {buf[0] >> 4}, not 4")
    if size < HEADER_LENGTH:
        raise Truncated(f"IPv4 packet of {size} bytes is shorter than its 20-byte header")
    vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = _HEADER.unpack_from(buf, 0)
    hlen = (vihl & 0x0F) << 2
    if hlen < HEADER_LENGTH:
        raise BadHeaderLength(f"IPv4 IHL {vihl & 0x0F} is below 5")
    if total > size:
        raise BadTotalLength(f"IPv4 total length {total} exceeds the {size} bytes received")
    if total < HEADER_LENGTH:
        raise BadTotalLength(f"IPv4 total length {total} is shorter than a header")
    if hlen > total:
        raise BadHeaderLength(f"IPv4 header of {hlen} bytes runs past the total length {total}")
    if not checksum_ok(_from_bytes(buf[:hlen], "big")):
        raise BadChecksum("IPv4 header checksum does not verify")
    if frag & (FLAG_MF | OFFSET_MASK):
        raise Fragmented(f"IPv4 fragment (id {ident}, offset {(frag & OFFSET_MASK) * 8}"
                         f"{', more fragments' if frag & FLAG_MF else ''})")
    header = new_header(addr_text(src), addr_text(dst), proto, ttl, ident, tos,
                        bool(frag & FLAG_DF), total, hlen)
    return header, hlen, total, src, dst


def parse_ipv4(buf: bytes | memoryview) -> tuple[Ipv4Header, memoryview]:
    """Parse an IPv4 packet into its header and a view of its payload.

    Header options are skipped. Raises only ``WireError`` subclasses.
    """
    header, start, end, _src, _dst = parse_ipv4_at(buf)
    return header, memoryview(buf)[start:end]


def ipv4_header_bytes(src: str, dst: str, payload_length: int, protocol: int = PROTO_TCP,
                      ident: int = 0, ttl: int = 64, tos: int = 0,
                      dont_fragment: bool = True) -> bytes:
    """A 20-byte IPv4 header (no options) with its checksum, for ``payload_length`` bytes.

    ``ValueError`` for a bad address or a value that does not fit its field.
    """
    src_raw, src_sum = addr_wire(src)
    dst_raw, dst_sum = addr_wire(dst)
    total = HEADER_LENGTH + payload_length
    if total > MAX_TOTAL_LENGTH:
        raise ValueError(f"IPv4 packet of {total} bytes exceeds {MAX_TOTAL_LENGTH}")
    frag = FLAG_DF if dont_fragment else 0
    try:
        words = _HEADER_NO_CSUM.pack(0x45, tos, total, ident, frag, ttl, protocol, 0)
    except struct.error as exc:
        raise ValueError(f"cannot build IPv4 header: {exc}") from None
    # RFC 791 §3.1 "Header Checksum": complement of the one's complement sum.
    csum = 0xFFFF - fold(_from_bytes(words, "big") + src_sum + dst_sum)
    return words[:10] + csum.to_bytes(2, "big") + src_raw + dst_raw


def build_ipv4(src: str, dst: str, payload: bytes | memoryview, protocol: int = PROTO_TCP,
               ident: int = 0, ttl: int = 64, tos: int = 0, dont_fragment: bool = True) -> bytes:
    """An IPv4 packet: a 20-byte header with checksum, then ``payload``."""
    return ipv4_header_bytes(src, dst, len(payload), protocol, ident, ttl, tos,
                             dont_fragment) + bytes(payload)
