"""IPv6 header as a frozen dataclass (RFC 8200), extension headers walked.

``parse_ipv6_at`` checks what a receiver must check before trusting a
header: version, payload length against what arrived, and the chain of
extension headers (RFC 8200 §4), each skipped by its own length: hop-by-hop
options (0), routing (43), destination options (60). A Fragment header (44)
is accepted only as an atomic fragment (offset 0, M clear; RFC 6946 §4);
any other fragment is refused (``Fragmented``): tcpstack does not reassemble
(RFC 8200 §4.5 allows a node not to), and TCP segments that fit the path
MTU never need it. The chain is at most ``MAX_EXTENSION_HEADERS`` long.

There is no header checksum: the upper layer's covers the pseudo-header of
RFC 8200 §8.1 (``pseudo_header6_sum``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from tcpstack.wire.addr import addr6_text, addr6_wire
from tcpstack.wire.errors import BadHeaderLength, BadTotalLength, Fragmented, NotIPv6, Truncated
from tcpstack.wire.fastinit import fast_constructor

PROTO_TCP = 6
PROTO_ICMPV6 = 58
HEADER_LENGTH = 40
MAX_PAYLOAD_LENGTH = 0xFFFF
# RFC 8200 §4.1: extension header types a node walks past.
EXT_HOP_BY_HOP = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DEST_OPTS = 60
NO_NEXT_HEADER = 59
_SKIPPED = frozenset((EXT_HOP_BY_HOP, EXT_ROUTING, EXT_DEST_OPTS))
# Enough for any sane chain (RFC 8200 §4.1 recommends one of each, the
# destination options header at most twice); more is a resource attack.
MAX_EXTENSION_HEADERS = 8
FLOW_LABEL_MASK = 0xFFFFF
FRAG_OFFSET_MASK = 0xFFF8
FRAG_MORE = 0x0001


@dataclass(frozen=True, slots=True)
class Ipv6Header:
    """Addresses are RFC 5952 text; ``next_header`` is the upper-layer protocol
    after the extension headers; ``header_length`` counts them (40 without)."""

    src: str
    dst: str
    next_header: int = PROTO_TCP
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int = 0
    header_length: int = HEADER_LENGTH

    @property
    def protocol(self) -> int:
        """The upper-layer protocol, named as on ``Ipv4Header``."""
        return self.next_header


_HEADER = struct.Struct("!IHBB16s16s")
_FIRST_WORD = struct.Struct("!IHBB")
_EXT = struct.Struct("!BB")
_FRAG = struct.Struct("!BBHI")

new_header6 = fast_constructor(Ipv6Header)


def walk_extensions(buf: bytes | memoryview, next_header: int, offset: int,
                     end: int) -> tuple[int, int]:
    """Skip the extension headers from ``offset`` (``next_header`` names the first);
    ``(upper-layer protocol, its offset)``. ``end`` bounds the walk."""
    for _ in range(MAX_EXTENSION_HEADERS):
        if next_header in _SKIPPED:
            if offset + 8 > end:
                raise BadHeaderLength(f"IPv6 extension header {next_header} runs past the "
                                      f"{end}-byte packet")
            following, ext_len = _EXT.unpack_from(buf, offset)
            offset += (ext_len + 1) << 3       # RFC 8200 §4.3: 8-octet units, not the first
            if offset > end:
                raise BadHeaderLength(f"IPv6 extension header {next_header} of "
                                      f"{(ext_len + 1) << 3} bytes runs past the packet")
            next_header = following
        elif next_header == EXT_FRAGMENT:
            if offset + 8 > end:
                raise BadHeaderLength(f"IPv6 fragment header runs past the {end}-byte packet")
            following, _res, frag, ident = _FRAG.unpack_from(buf, offset)
            if frag & (FRAG_OFFSET_MASK | FRAG_MORE):   # RFC 6946 §4: atomic ones pass
                raise Fragmented(f"IPv6 fragment (id {ident}, offset {frag & FRAG_OFFSET_MASK}"
                                 f"{', more fragments' if frag & FRAG_MORE else ''})")
            offset += 8
            next_header = following
        else:
            return next_header, offset
    raise BadHeaderLength(f"IPv6 extension header chain longer than {MAX_EXTENSION_HEADERS}")


def parse_ipv6_at(buf: bytes | memoryview) -> tuple[Ipv6Header, int, int, bytes, bytes]:
    """Check and parse the IPv6 header (and extension headers) at the start of ``buf``.

    Returns ``(header, payload_start, payload_end, src_bytes, dst_bytes)``
    where the payload is the upper-layer protocol's; bytes after the payload
    length (link padding) are ignored. Raises only ``WireError`` subclasses.
    """
    size = len(buf)
    if size == 0:
        raise Truncated("empty packet")
    if buf[0] >> 4 != 6:
        raise NotIPv6(f"IP version {buf[0] >> 4}, not 6")
    if size < HEADER_LENGTH:
        raise Truncated(f"IPv6 packet of {size} bytes is shorter than its 40-byte header")
    word, plen, next_header, hops, src, dst = _HEADER.unpack_from(buf, 0)
    if plen == 0:
        # RFC 2675 jumbograms (length in a hop-by-hop option) need a link
        # MTU above 64 KiB; nothing tcpstack runs on has one.
        raise BadTotalLength("IPv6 payload length 0 (a jumbogram, or nothing)")
    end = HEADER_LENGTH + plen
    if end > size:
        raise BadTotalLength(f"IPv6 payload length {plen} exceeds the {size - HEADER_LENGTH} "
                             "bytes received")
    start = HEADER_LENGTH
    if next_header in _SKIPPED or next_header == EXT_FRAGMENT:
        next_header, start = walk_extensions(buf, next_header, start, end)
    header = new_header6(addr6_text(src), addr6_text(dst), next_header, hops,
                         (word >> 20) & 0xFF, word & FLOW_LABEL_MASK, plen, start)
    return header, start, end, src, dst


def parse_ipv6(buf: bytes | memoryview) -> tuple[Ipv6Header, memoryview]:
    """Parse an IPv6 packet into its header and a view of the upper-layer payload."""
    header, start, end, _src, _dst = parse_ipv6_at(buf)
    return header, memoryview(buf)[start:end]


def first_word(traffic_class: int, flow_label: int) -> int:
    """Version 6, traffic class and flow label as the header's first 32 bits."""
    return 0x60000000 | (traffic_class & 0xFF) << 20 | (flow_label & FLOW_LABEL_MASK)


def ipv6_header_bytes(src: str, dst: str, payload_length: int, next_header: int = PROTO_TCP,
                      hop_limit: int = 64, traffic_class: int = 0, flow_label: int = 0) -> bytes:
    """A 40-byte IPv6 header (no extension headers) for ``payload_length`` bytes.

    ``ValueError`` for a bad address or a value that does not fit its field.
    """
    src_raw = addr6_wire(src)[0]
    dst_raw = addr6_wire(dst)[0]
    if payload_length > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"IPv6 payload of {payload_length} bytes exceeds {MAX_PAYLOAD_LENGTH}")
    if not 0 <= flow_label <= FLOW_LABEL_MASK or not 0 <= traffic_class <= 0xFF:
        raise ValueError(f"IPv6 traffic class {traffic_class} / flow label {flow_label} "
                         "does not fit its field")
    try:
        return _HEADER.pack(first_word(traffic_class, flow_label), payload_length, next_header,
                            hop_limit, src_raw, dst_raw)
    except struct.error as exc:
        raise ValueError(f"cannot build IPv6 header: {exc}") from None


def build_ipv6(src: str, dst: str, payload: bytes | memoryview, next_header: int = PROTO_TCP,
               hop_limit: int = 64, traffic_class: int = 0, flow_label: int = 0) -> bytes:
    """An IPv6 packet: a 40-byte header, then ``payload``."""
    return ipv6_header_bytes(src, dst, len(payload), next_header, hop_limit, traffic_class,
                             flow_label) + bytes(payload)


def pseudo_header6_sum(src: str, dst: str, next_header: int, length: int) -> int:
    """Unfolded sum of the RFC 8200 §8.1 pseudo-header: source, destination,
    upper-layer packet length (32 bits), three zero bytes, next header."""
    return addr6_wire(src)[1] + addr6_wire(dst)[1] + (length >> 16) + (length & 0xFFFF) \
        + next_header


def flow_label(key: bytes, src: str, src_port: int, dst: str, dst_port: int) -> int:
    """RFC 6437 §3: a flow's label, a keyed hash of its 5-tuple (never 0: a zero
    label means "no flow", and the same flow keeps one label for its life)."""
    data = f"{src}|{src_port}|{dst}|{dst_port}".encode()
    digest = hashlib.blake2s(data, digest_size=4, key=key[:32], person=b"ip6-flow").digest()
    return (int.from_bytes(digest, "big") & FLOW_LABEL_MASK) or 1
