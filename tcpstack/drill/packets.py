"""TCP packets over IPv4 or IPv6 as the drill sees them: raw options kept in order.

tcpstack's wire codec normalises options (``TcpOptions``); packetdrill
compares and writes them byte for byte, in the order written, NOPs and EOLs
included. So inbound packets are built here from the script's option list, and
outbound ones (from a TUN, or the core's segments put through
``build_packet``) are read back into a ``WirePacket`` with their options as
``(kind, data)`` pairs.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tcpstack.wire.addr import addr6_text, addr_text
from tcpstack.wire.checksum import fold, ones_sum, pseudo_header_sum
from tcpstack.wire.errors import WireError
from tcpstack.wire.ipv6 import ipv6_header_bytes, pseudo_header6_sum, walk_extensions

EOL, NOP, MSS, WSCALE, SACK_OK, SACK, TS, MD5, FASTOPEN, EXP = 0, 1, 2, 3, 4, 5, 8, 19, 34, 254
FOEXP_MAGIC = 0xF989
OPTION_NAMES = {EOL: "eol", NOP: "nop", MSS: "mss", WSCALE: "wscale", SACK_OK: "sackOK",
                SACK: "sack", TS: "TS", MD5: "md5", FASTOPEN: "FO", EXP: "FOEXP"}
NAME_KINDS = {name: kind for kind, name in OPTION_NAMES.items()}

# TCP flag bits, and packetdrill's letters for them.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
LETTERS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR}
_PRINT_ORDER = "SFRP.UEW"

RawOption = tuple[int, bytes]


def flags_from_letters(letters: str) -> int:
    bits = 0
    for ch in letters:
        bits |= LETTERS.get(ch, 0)
    return bits


def letters_from_flags(bits: int) -> str:
    return "".join(ch for ch in _PRINT_ORDER if bits & LETTERS[ch])


@dataclass(frozen=True, slots=True)
class WirePacket:
    src: str
    dst: str
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int = 0
    options: tuple[RawOption, ...] = ()
    payload: bytes = b""
    tos: int = 0

    def has(self, bit: int) -> bool:
        return bool(self.flags & bit)

    def option(self, kind: int) -> bytes | None:
        for k, data in self.options:
            if k == kind:
                return data
        return None

    @property
    def ts(self) -> tuple[int, int] | None:
        data = self.option(TS)
        if data is None or len(data) != 8:
            return None
        val, ecr = struct.unpack("!II", data)
        return val, ecr


def encode_options(options: tuple[RawOption, ...]) -> bytes:
    out = bytearray()
    for kind, data in options:
        if kind in (EOL, NOP):
            out.append(kind)
        else:
            out += bytes((kind, 2 + len(data))) + data
    return bytes(out)


def decode_options(raw: bytes) -> tuple[RawOption, ...]:
    """Options in order. EOL ends the list but is kept (with any EOLs after it,
    as packetdrill's iterator walks them); a malformed tail becomes one
    ``(-1, bytes)`` entry so that a comparison fails rather than crashes."""
    out: list[RawOption] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind in (EOL, NOP):
            out.append((kind, b""))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            out.append((-1, bytes(raw[i:])))
            break
        length = raw[i + 1]
        out.append((kind, bytes(raw[i + 2:i + length])))
        i += length
    return tuple(out)


def build_ip_tcp(pkt: WirePacket, ident: int = 0, ttl: int = 64) -> bytes:
    """The complete IPv4 or IPv6 packet (by the addresses) with its checksums;
    ``tos`` is the IPv6 traffic class, ``ident`` unused, over IPv6."""
    opts = encode_options(pkt.options)
    if len(opts) % 4:
        opts += bytes(4 - len(opts) % 4)
    offset = (20 + len(opts)) // 4
    tcp = bytearray(struct.pack("!HHIIBBHHH", pkt.src_port, pkt.dst_port, pkt.seq & 0xFFFFFFFF,
                                pkt.ack & 0xFFFFFFFF, offset << 4, pkt.flags & 0xFF,
                                pkt.window & 0xFFFF, 0, pkt.urgent & 0xFFFF))
    tcp += opts
    tcp += pkt.payload
    if ":" in pkt.src:       # RFC 8200 §8.1 pseudo-header
        total = pseudo_header6_sum(pkt.src, pkt.dst, 6, len(tcp)) + ones_sum(tcp)
        struct.pack_into("!H", tcp, 16, (~fold(total)) & 0xFFFF)
        return ipv6_header_bytes(pkt.src, pkt.dst, len(tcp), 6, ttl, pkt.tos) + bytes(tcp)
    total = pseudo_header_sum(pkt.src, pkt.dst, 6, len(tcp)) + ones_sum(tcp)
    struct.pack_into("!H", tcp, 16, (~fold(total)) & 0xFFFF)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, pkt.tos, 20 + len(tcp), ident & 0xFFFF,
                               0x4000, ttl, 6, 0, socket.inet_aton(pkt.src),
                               socket.inet_aton(pkt.dst)))
    struct.pack_into("!H", ip, 10, (~fold(ones_sum(ip))) & 0xFFFF)
    return bytes(ip) + bytes(tcp)


def parse_ip_tcp(raw: bytes | memoryview) -> WirePacket | None:
    """A TCP packet over IPv4 or IPv6, or None for anything else (UDP, ICMP, truncated)."""
    raw = bytes(raw)
    if len(raw) >= 40 and raw[0] >> 4 == 6:
        return _parse_ipv6_tcp(raw)
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    ihl = (raw[0] & 0x0F) * 4
    total = struct.unpack_from("!H", raw, 2)[0]
    if raw[9] != 6 or len(raw) < ihl + 20 or total < ihl + 20:
        return None
    raw = raw[:total]
    return _tcp_part(raw, ihl, addr_text(raw[12:16]), addr_text(raw[16:20]), raw[1])


def _parse_ipv6_tcp(raw: bytes) -> WirePacket | None:
    word, plen, next_header = struct.unpack_from("!IHB", raw, 0)
    raw = raw[:40 + plen]
    try:
        proto, start = walk_extensions(raw, next_header, 40, len(raw))
    except WireError:
        return None
    if proto != 6 or len(raw) < start + 20:
        return None
    return _tcp_part(raw, start, addr6_text(raw[8:24]), addr6_text(raw[24:40]),
                     (word >> 20) & 0xFF)


def _tcp_part(raw: bytes, start: int, src: str, dst: str, tos: int) -> WirePacket | None:
    sport, dport, seq, ack, off, flags, win, _csum, urg = struct.unpack_from(
        "!HHIIBBHHH", raw, start)
    doff = (off >> 4) * 4
    if doff < 20 or start + doff > len(raw):
        return None
    options = decode_options(raw[start + 20:start + doff])
    return WirePacket(src, dst, sport, dport, seq, ack, flags, win, urg, options,
                      raw[start + doff:], tos)


def option_text(kind: int, data: bytes) -> str:
    if kind in (EOL, NOP):
        return OPTION_NAMES[kind]
    if kind == MSS and len(data) == 2:
        return f"mss {struct.unpack('!H', data)[0]}"
    if kind == WSCALE and len(data) == 1:
        return f"wscale {data[0]}"
    if kind == SACK_OK and not data:
        return "sackOK"
    if kind == SACK and data and len(data) % 8 == 0:
        blocks = [struct.unpack_from("!II", data, i) for i in range(0, len(data), 8)]
        return "sack " + " ".join(f"{left}:{right}" for left, right in blocks)
    if kind == TS and len(data) == 8:
        val, ecr = struct.unpack("!II", data)
        return f"TS val {val} ecr {ecr}"
    return f"opt{kind} {data.hex()}".rstrip()


def packet_text(direction: str, pkt: WirePacket) -> str:
    """packetdrill's dump: ``> S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 7>``."""
    n = len(pkt.payload)
    end = (pkt.seq + n) & 0xFFFFFFFF
    text = f"{direction} {letters_from_flags(pkt.flags) or '-'} {pkt.seq}:{end}({n})"
    if pkt.flags & ACK:
        text += f" ack {pkt.ack}"
    text += f" win {pkt.window}"
    if pkt.urgent:
        text += f" urg {pkt.urgent}"
    if pkt.options:
        text += " <" + ",".join(option_text(k, d) for k, d in pkt.options) + ">"
    return text


def options_from_spec(options: tuple) -> tuple[RawOption, ...]:
    """A script's option list (``model.TcpOption``s) as raw ``(kind, data)`` pairs."""
    out: list[RawOption] = []
    for opt in options:
        if opt.kind in ("nop", "eol", "sackOK"):
            out.append((NAME_KINDS[opt.kind], b""))
        elif opt.kind == "mss":
            out.append((MSS, struct.pack("!H", opt.values[0])))
        elif opt.kind == "wscale":
            out.append((WSCALE, bytes((opt.values[0],))))
        elif opt.kind == "TS":
            out.append((TS, struct.pack("!II", *opt.values)))
        elif opt.kind == "sack":
            out.append((SACK, struct.pack(f"!{len(opt.values)}I",
                                          *(v & 0xFFFFFFFF for v in opt.values))))
        elif opt.kind == "md5":
            out.append((MD5, bytes.fromhex(opt.blob) if opt.blob else b""))
        elif opt.kind == "FO":
            out.append((FASTOPEN, bytes.fromhex(opt.blob) if opt.blob else b""))
        elif opt.kind == "FOEXP":
            out.append((EXP, struct.pack("!H", FOEXP_MAGIC) +
                        (bytes.fromhex(opt.blob) if opt.blob else b"")))
        else:
            raise ValueError(f"TCP option {opt.kind!r} is not supported")
    return tuple(out)
