"""Receive coalescing (software GRO): consecutive data segments of one
connection, read in one wake-up, handed to the core as one segment.

What Linux's GRO does for a device, and what a TUN with offloads does for us
already (it hands over up to 64 KB at once): the core then runs once per
batch instead of once per wire segment, and answers the batch with one ACK
(a stretch ACK, as Linux's receiver sends after GRO).

Segments merge only when nothing but the payload would differ, as in Linux's
``tcp_gro_receive``: same addresses and ports, each starting where the last
ended, the same ACK number and window, identical options (so the same
timestamps and no SACK blocks change), only ACK set (PSH on the last one
closes the batch), no urgent pointer. Anything else — SYN, FIN, RST, pure
ACKs (duplicate ACKs must stay countable, RFC 5681 §3.2) — goes to the core
as it came, after whatever was pending.
"""

from __future__ import annotations

from collections.abc import Callable

from tcpstack.wire.tcp import ACK, PSH, TcpSegment, new_segment

# The most payload one merged segment holds: what one IPv4 packet could carry
# after a 20-byte IP header and the largest TCP header.
MAX_MERGED = 65535 - 20 - 60

Deliver = Callable[[str, str, TcpSegment, float], None]


class ReceiveCoalescer:
    """Feed parsed segments with ``add``; ``flush`` at the end of each batch.

    ``deliver(src, dst, segment, now)`` gets every segment, merged or not,
    in arrival order. ``merged`` counts segments that were folded into an
    earlier one.
    """

    __slots__ = ("_deliver", "_dst", "_first", "_next_seq", "_now", "_parts", "_size",
                 "_src", "merged")

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._first: TcpSegment | None = None
        self._parts: list[bytes | memoryview] = []
        self._src = self._dst = ""
        self._next_seq = 0
        self._size = 0
        self._now = 0.0
        self.merged = 0

    def add(self, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        first = self._first
        payload = seg.payload
        size = len(payload)
        if first is not None:
            if (seg.seq == self._next_seq and size and seg.flags & ~PSH == ACK
                    and seg.ack == first.ack and seg.window == first.window
                    and seg.src_port == first.src_port and seg.dst_port == first.dst_port
                    and src == self._src and dst == self._dst and not seg.urgent
                    and self._size + size <= MAX_MERGED and seg.options == first.options):
                self._parts.append(payload)
                self._size += size
                self._next_seq = (self._next_seq + size) & 0xFFFFFFFF
                self.merged += 1
                if seg.flags & PSH:
                    self._emit(PSH)
                return
            self._emit(0)
        if seg.flags == ACK and size and not seg.urgent and size < MAX_MERGED:
            self._first = seg
            self._parts = [payload]
            self._size = size
            self._next_seq = (seg.seq + size) & 0xFFFFFFFF
            self._src, self._dst, self._now = src, dst, now
            return
        self._deliver(src, dst, seg, now)

    def flush(self) -> None:
        """Hand over what is pending (end of a batch)."""
        if self._first is not None:
            self._emit(0)

    def _emit(self, push: int) -> None:
        first = self._first
        assert first is not None
        parts = self._parts
        self._first = None
        self._parts = []
        if len(parts) == 1 and not push:
            self._deliver(self._src, self._dst, first, self._now)
            return
        merged = new_segment(first.src_port, first.dst_port, first.seq, first.ack,
                             first.flags | push, first.window, 0, first.options,
                             b"".join(parts))
        self._deliver(self._src, self._dst, merged, self._now)
