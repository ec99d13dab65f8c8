"""IPv4 reassembly (RFC 791 §3.2, RFC 815) for datagrams addressed to us.

tcpstack sends with DF set and never fragments; a peer or a router may still
fragment what it sends us. Fragments are kept per (source, destination,
protocol, identification) until the datagram is whole, with bounds like every
resource here:

- memory: at most ``max_bytes`` of fragment payload held across all datagrams
  (Linux ``ipfrag_high_thresh``, 4 MB); the oldest datagrams go first to make
  room, counted as ``frag_evicted``;
- time: a datagram not complete within ``timeout`` seconds (Linux
  ``ipfrag_time``, RFC 791's "timer" -- 30 s) is thrown away, ``frag_timeout``;
- overlaps: a fragment that overlaps another with different bytes discards
  the whole datagram (``frag_overlap``), the stance RFC 5722 takes for IPv6
  and Linux takes for IPv4: overlapping fragments have no honest use and are
  how filters are evaded. An exact duplicate is ignored (``frag_duplicate``).

Pure apart from the counters: time comes in as ``now``.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from tcpstack.wire.checksum import fold, ones_sum

__all__ = ["FragmentReassembler"]

FRAG_TIMEOUT = 30.0                 # Linux net.ipv4.ipfrag_time
FRAG_MAX_BYTES = 4 * 1024 * 1024    # Linux net.ipv4.ipfrag_high_thresh
MAX_DATAGRAM = 65535                # RFC 791: the total length field
# Pieces one datagram may be cut into (a 64 KB datagram in 512-byte pieces):
# bounds the work a flood of tiny fragments can make (``frag_too_many``).
MAX_PIECES = 128
_MF = 0x2000
_OFFSET = 0x1FFF

Key = tuple[bytes, bytes, int, int]


@dataclass
class _Datagram:
    started: float
    header: bytes = b""                             # the first fragment's IPv4 header
    pieces: dict[int, bytes] = field(default_factory=dict)   # offset -> payload
    end: int | None = None                          # payload length, once the last is here
    held: int = 0


class FragmentReassembler:
    """Fragments in, whole IPv4 packets out."""

    def __init__(self, counters: Counter[str], timeout: float = FRAG_TIMEOUT,
                 max_bytes: int = FRAG_MAX_BYTES) -> None:
        self.counters = counters
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.held = 0
        self._datagrams: dict[Key, _Datagram] = {}

    def __len__(self) -> int:
        return len(self._datagrams)

    def add(self, packet: bytes | memoryview, now: float) -> bytes | None:
        """One fragment (an IPv4 packet whose header was checked); the whole
        datagram as one packet once its last missing piece arrives, else None."""
        counters = self.counters
        counters["frag_received"] += 1
        self._expire(now)
        hlen = (packet[0] & 0x0F) << 2
        total, ident, frag = struct.unpack_from("!HHH", packet, 2)
        offset = (frag & _OFFSET) << 3
        data = bytes(packet[hlen:total])
        more = bool(frag & _MF)
        end = offset + len(data)
        if end > MAX_DATAGRAM - hlen or (more and len(data) % 8) or (more and not data):
            counters["frag_malformed"] += 1           # RFC 791: non-last pieces are 8k bytes
            return None
        key = (bytes(packet[12:16]), bytes(packet[16:20]), packet[9], ident)
        dgram = self._datagrams.get(key)
        if dgram is None:
            dgram = self._datagrams[key] = _Datagram(now)
        elif len(dgram.pieces) >= MAX_PIECES:
            counters["frag_too_many"] += 1
            self._discard(key)
            return None
        for start, piece in dgram.pieces.items():
            if start < end and offset < start + len(piece):
                if start == offset and piece == data:
                    counters["frag_duplicate"] += 1
                    return None
                counters["frag_overlap"] += 1         # RFC 5722's stance: drop it all
                self._discard(key)
                return None
        if not more:
            if dgram.end is not None or any(s + len(p) > end for s, p in dgram.pieces.items()):
                counters["frag_malformed"] += 1       # two ends, or data past the end
                self._discard(key)
                return None
            dgram.end = end
        elif dgram.end is not None and end > dgram.end:
            counters["frag_malformed"] += 1
            self._discard(key)
            return None
        if not self._make_room(len(data), key):
            return None
        if offset == 0:
            dgram.header = bytes(packet[:hlen])
        dgram.pieces[offset] = data
        dgram.held += len(data)
        self.held += len(data)
        if dgram.end is None or dgram.held != dgram.end or not dgram.header:
            return None
        self._discard(key)
        counters["frag_reassembled"] += 1
        return _rebuild(dgram)

    def _make_room(self, size: int, keep: Key) -> bool:
        """Evict the oldest datagrams until ``size`` more bytes fit."""
        if size > self.max_bytes:
            self.counters["frag_evicted"] += 1
            self._discard(keep)
            return False
        while self.held + size > self.max_bytes:
            oldest = next(iter(self._datagrams))
            self.counters["frag_evicted"] += 1
            self._discard(oldest)
            if oldest == keep:
                return False
        return True

    def _expire(self, now: float) -> None:
        """RFC 791: a datagram whose timer ran out is thrown away (oldest first)."""
        datagrams = self._datagrams
        while datagrams:
            key, dgram = next(iter(datagrams.items()))
            if now - dgram.started < self.timeout:
                return
            self.counters["frag_timeout"] += 1
            self._discard(key)

    def _discard(self, key: Key) -> None:
        dgram = self._datagrams.pop(key, None)
        if dgram is not None:
            self.held -= dgram.held


def _rebuild(dgram: _Datagram) -> bytes:
    """The first fragment's header (flags and offset cleared, total length and
    checksum set) followed by the pieces in order."""
    payload = b"".join(piece for _, piece in sorted(dgram.pieces.items()))
    header = bytearray(dgram.header)
    struct.pack_into("!HHH", header, 2, len(header) + len(payload),
                     struct.unpack_from("!H", header, 4)[0], 0)
    struct.pack_into("!H", header, 10, 0)
    struct.pack_into("!H", header, 10, 0xFFFF - fold(ones_sum(header)))
    return bytes(header) + payload
