"""TCP header and options as frozen dataclasses (RFC 9293 §3.1, RFC 7323, RFC 2018).

``parse_tcp`` turns the bytes of a segment into a ``TcpSegment`` and
``build_tcp`` turns one back into bytes, with the checksum over the IPv4
pseudo-header. Options are written in the order and padding Linux uses, so
captures of tcpstack look like captures of Linux.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpstack.wire.addr import any_addr_wire
from tcpstack.wire.checksum import checksum_ok, fold, ones_sum
from tcpstack.wire.errors import BadChecksum, BadHeaderLength, BadOption, Contradictory, Truncated
from tcpstack.wire.fastinit import fast_constructor

# Control bits, RFC 9293 §3.1 (plus ECE/CWR from RFC 3168).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
               (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))


def flags_str(flags: int) -> str:
    """``SYN|ACK`` style text for a flags byte (``-`` for none)."""
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return "|".join(names) if names else "-"


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The TCP options tcpstack understands. ``None``/empty means absent."""

    mss: int | None = None                      # RFC 9293 §3.7.1, kind 2
    wscale: int | None = None                   # RFC 7323 §2, kind 3 (shift count)
    sack_permitted: bool = False                # RFC 2018 §2, kind 4
    sack_blocks: tuple[tuple[int, int], ...] = ()  # RFC 2018 §3, kind 5: (left, right)
    timestamps: tuple[int, int] | None = None   # RFC 7323 §3, kind 8: (TSval, TSecr)


NO_OPTIONS = TcpOptions()


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """One TCP segment. ``seq``/``ack`` are the raw 32-bit wire values.

    ``window`` is the raw 16-bit field (not scaled). ``payload`` may be longer
    than the MSS when it is a TSO super-segment for an offloading link. A
    segment tcpstack sends may carry a read-only ``memoryview`` of the
    application's own bytes, and one read from the TUN a view of the packet
    it came in (no copy either way); otherwise it is ``bytes``.
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int = 0
    options: TcpOptions = NO_OPTIONS
    payload: bytes | memoryview = b""

    @property
    def seg_len(self) -> int:
        """SEG.LEN: payload length plus one for each of SYN and FIN (RFC 9293 §3.4)."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __str__(self) -> str:
        return (f"{self.src_port}>{self.dst_port} [{flags_str(self.flags)}] seq={self.seq} "
                f"ack={self.ack} win={self.window} len={len(self.payload)}")


# ---------------------------------------------------------------------------
# Codec

PROTO_TCP = 6
HEADER_LENGTH = 20
MAX_OPTIONS_LENGTH = 40  # data offset is 4 bits of 32-bit words: 60 - 20

# Option kinds (IANA "TCP Option Kind Numbers").
OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMPS = 8

_HEADER = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_U32X2 = struct.Struct("!II")
# What Linux writes before timestamps: NOP NOP kind=8 len=10 (RFC 7323 App. A).
TS_PREFIX = OPT_NOP << 24 | OPT_NOP << 16 | OPT_TIMESTAMPS << 8 | 10
_PREFIX_TS = TS_PREFIX.to_bytes(4, "big")
_PREFIX_SACKOK_TS = b"\x04\x02\x08\x0a"      # SACK-permitted packed with timestamps
_SACKOK_ALONE = b"\x01\x01\x04\x02"

# Receive-path constructors: same frozen instances, built several times faster
# (see tcpstack.wire.fastinit). They take every field positionally.
new_segment = fast_constructor(TcpSegment)
new_options = fast_constructor(TcpOptions)


# ----- options ---------------------------------------------------------------

def parse_options(buf: bytes | memoryview, start: int, end: int) -> TcpOptions:
    """Parse the option bytes ``buf[start:end]`` (RFC 9293 §3.1, "Options").

    EOL ends the list, NOP is skipped, and an option of an unknown kind is
    skipped by its length (RFC 9293 §3.1, MUST-6/MUST-68). A length below 2 or
    one that runs past the header is ``BadOption`` (MUST-7). A known option
    with the wrong length is ignored, as Linux does. When an option appears
    twice the last one counts. Values are kept raw (a window scale above 14
    is clamped by the connection, RFC 7323 §2.3, not here).
    """
    if start == end:
        return NO_OPTIONS
    mss: int | None = None
    wscale: int | None = None
    sack_permitted = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamps: tuple[int, int] | None = None
    i = start
    while i < end:
        kind = buf[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise BadOption(f"TCP option kind {kind} has no length byte")
        length = buf[i + 1]
        if length < 2:
            raise BadOption(f"TCP option kind {kind} has length {length} (must be >= 2)")
        if i + length > end:
            raise BadOption(f"TCP option kind {kind} of length {length} runs "
                            f"{i + length - end} bytes past the header")
        if kind == OPT_MSS:
            if length == 4:
                mss = _U16.unpack_from(buf, i + 2)[0]
        elif kind == OPT_WSCALE:
            if length == 3:
                wscale = buf[i + 2]
        elif kind == OPT_SACK_PERMITTED:
            if length == 2:
                sack_permitted = True
        elif kind == OPT_SACK:
            if length >= 10 and (length - 2) % 8 == 0:
                sack_blocks = tuple(_U32X2.unpack_from(buf, j) for j in range(i + 2, i + length, 8))
        elif kind == OPT_TIMESTAMPS and length == 10:
            timestamps = _U32X2.unpack_from(buf, i + 2)
        i += length
    if (mss is None and wscale is None and not sack_permitted and not sack_blocks
            and timestamps is None):
        return NO_OPTIONS
    return new_options(mss, wscale, sack_permitted, sack_blocks, timestamps)


def timestamps_only(opts: TcpOptions) -> bool:
    """True for the data path's usual options: timestamps and nothing else."""
    return (opts.timestamps is not None and opts.mss is None and opts.wscale is None
            and not opts.sack_permitted and not opts.sack_blocks)


def encode_options(opts: TcpOptions) -> bytes:
    """Option bytes in Linux's order and padding (``tcp_options_write``).

    MSS first; timestamps behind two NOPs, or behind SACK-permitted when both
    are present; SACK-permitted alone behind two NOPs; window scale behind one
    NOP; SACK blocks behind two NOPs. The result is a multiple of 4 bytes.
    ``ValueError`` if it would not fit in 40 bytes or a value is out of range.
    """
    if opts is NO_OPTIONS:
        return b""
    ts = opts.timestamps
    if timestamps_only(opts):
        try:
            return _PREFIX_TS + _U32X2.pack(*ts)
        except struct.error as exc:
            raise ValueError(f"bad TCP timestamps {ts!r}: {exc}") from None
    try:
        out = []
        if opts.mss is not None:
            out.append(struct.pack("!BBH", OPT_MSS, 4, opts.mss))
        if ts is not None:
            out.append(_PREFIX_SACKOK_TS if opts.sack_permitted else _PREFIX_TS)
            out.append(_U32X2.pack(*ts))
        elif opts.sack_permitted:
            out.append(_SACKOK_ALONE)
        if opts.wscale is not None:
            out.append(struct.pack("!BBBB", OPT_NOP, OPT_WSCALE, 3, opts.wscale))
        if opts.sack_blocks:
            count = len(opts.sack_blocks)
            out.append(struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * count))
            out.extend(_U32X2.pack(left, right) for left, right in opts.sack_blocks)
    except (struct.error, TypeError, ValueError) as exc:
        raise ValueError(f"cannot encode TCP options {opts!r}: {exc}") from None
    data = b"".join(out)
    if len(data) > MAX_OPTIONS_LENGTH:
        raise ValueError(f"TCP options need {len(data)} bytes, at most {MAX_OPTIONS_LENGTH} fit "
                         f"(send fewer SACK blocks)")
    return data


def options_length(opts: TcpOptions) -> int:
    """Bytes the options take in the header (what they cost the MSS)."""
    return len(encode_options(opts))


# ----- segments ----------------------------------------------------------------

def parse_tcp_at(buf: bytes | memoryview, start: int, end: int,
                 pseudo: int | None) -> TcpSegment:
    """Parse the segment in ``buf[start:end]`` (e.g. inside an IPv4 packet).

    ``pseudo`` is the unfolded pseudo-header sum (addresses, protocol, TCP
    length) to verify the checksum with, or None not to verify it.
    """
    if end - start < HEADER_LENGTH:
        raise Truncated(f"TCP segment of {end - start} bytes is shorter than its 20-byte header")
    src_port, dst_port, seq, ack, offset, flags, window, _csum, urgent = \
        _HEADER.unpack_from(buf, start)
    header_end = start + ((offset >> 4) << 2)
    if header_end - start < HEADER_LENGTH:
        raise BadHeaderLength(f"TCP data offset {offset >> 4} is below 5")
    if header_end > end:
        raise BadHeaderLength(f"TCP data offset {offset >> 4} ({header_end - start} bytes) "
                              f"runs past the {end - start}-byte segment")
    if pseudo is not None and not checksum_ok(pseudo + ones_sum(buf[start:end])):
        raise BadChecksum("TCP checksum does not verify")
    if flags & SYN and flags & (RST | FIN):
        raise Contradictory(f"TCP control bits {flags_str(flags)} contradict each other")
    options = parse_options(buf, start + HEADER_LENGTH, header_end)
    payload = buf[header_end:end]
    if type(payload) is not bytes:
        payload = bytes(payload)
    return new_segment(src_port, dst_port, seq, ack, flags, window, urgent, options, payload)


def parse_tcp(buf: bytes | memoryview, src: str, dst: str,
              verify_checksum: bool = True) -> TcpSegment:
    """Parse one TCP segment (header + payload, nothing after it).

    ``src``/``dst`` are the addresses for the pseudo-header (IPv4 or IPv6:
    RFC 8200 §8.1's sums the same way for a segment under 64 KiB). Raises only
    ``WireError`` subclasses for bad bytes (``ValueError`` for a bad address).
    """
    pseudo = None
    if verify_checksum:
        pseudo = any_addr_wire(src)[1] + any_addr_wire(dst)[1] + PROTO_TCP + len(buf)
    return parse_tcp_at(buf, 0, len(buf), pseudo)


def tcp_header_bytes(seg: TcpSegment, pseudo_base: int | None, offload: bool = False) -> bytes:
    """The TCP header with options and checksum, without the payload.

    ``pseudo_base`` is the unfolded sum of both addresses and the protocol
    (the TCP length is added here); None leaves the checksum field 0.
    """
    opts = encode_options(seg.options)
    hlen = HEADER_LENGTH + len(opts)
    try:
        header = _HEADER.pack(seg.src_port, seg.dst_port, seg.seq, seg.ack, hlen << 2,
                              seg.flags, seg.window, 0, seg.urgent) + opts
        if pseudo_base is None:
            return header
        pseudo = pseudo_base + hlen + len(seg.payload)
        if offload:
            # Checksum offload (virtio NEEDS_CSUM): the field holds the folded
            # pseudo-header sum and the device completes it, like Linux's
            # __tcp_v4_send_check for CHECKSUM_PARTIAL.
            csum = fold(pseudo)
        else:
            csum = 0xFFFF - fold(pseudo + ones_sum(header) + ones_sum(seg.payload))
        return header[:16] + _U16.pack(csum) + header[18:]
    except struct.error as exc:
        raise ValueError(f"cannot build TCP segment {seg}: {exc}") from None


def build_tcp(src: str, dst: str, seg: TcpSegment, checksum: bool = True, *,
              offload: bool = False) -> bytes:
    """Bytes of ``seg`` (header, options, payload) with its checksum.

    ``checksum=False`` leaves the field 0; ``offload=True`` stores the folded
    pseudo-header sum for a link that completes checksums itself.
    ``ValueError`` for values that do not fit their fields.
    """
    base = None
    if checksum or offload:
        base = any_addr_wire(src)[1] + any_addr_wire(dst)[1] + PROTO_TCP
    return tcp_header_bytes(seg, base, offload) + bytes(seg.payload)
