"""Fault injection on an offloading link without giving up its offloads.

A ``FaultyLink`` decides the fate of each packet it carries. Over a TUN with
TSO and GRO the packets are 64 KB super-segments, one fate for some 45 wire
segments, so the runtime used to switch the offloads off under ``--fault``
and pay one system call per wire segment. ``WireFaults`` keeps them on and
asks the link's injectors (``FaultInjector.decide``) for the fate of every
wire-sized piece of a super-segment, without ever building the piece:

- **out**: the pieces that go out now, one after another, leave as one TSO
  write (a loss splits a super-segment in two); a corrupted piece leaves on
  its own as a complete packet with a real checksum and one bit flipped (the
  kernel's TCP rejects it, as it would off the wire); a delayed, reordered
  or duplicated piece is written when it falls due, as often as it arrives;
- **in**: a GSO packet from the kernel is cut where the sender's TSO would
  have cut it (the MTU less the headers); what survives reaches the core as
  segments holding views of the packet (no copy), a corrupted piece is
  counted as a checksum failure (``drop_bad_checksum``) and dropped. A
  packet that is not TCP (ICMP, a ping) meets the faults whole.

The faults are the same as on the packet path with the same seed and the same
pieces: loss, duplication, reordering, corruption, delay, jitter and rate all
apply per wire segment.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from tcpstack.link.fault import FaultInjector, ip_header_length
from tcpstack.wire.packet import build_packet, packet_headers
from tcpstack.wire.tcp import CWR, FIN, PSH, TcpSegment, new_segment, options_length

_LAST_ONLY = FIN | PSH          # Linux tcp_gso_segment(): on the last piece only
_FIRST_ONLY = CWR               # ... and CWR on the first only (RFC 3168 §6.1.2)
TCP_HEADER = 20

Deliver = Callable[[str, str, TcpSegment, float], None]
# A run of consecutive pieces with one fate: (first offset, end offset, arrival
# times, bit to flip or -1).
Run = tuple[int, int, list[float], int]


def ip_header_for(addr: str) -> int:
    """The IP header length of a packet from ``addr`` (no options, no extensions)."""
    return 40 if ":" in addr else 20


def runs_of(injector: FaultInjector, size: int, piece: int, header: int, ip_header: int,
            now: float) -> list[Run]:
    """The fates of the ``piece``-byte pieces of a ``size``-byte payload, as runs:
    consecutive pieces that all arrive once, unchanged, at the same time share
    a run; any other piece is a run of its own. Lost pieces are in no run."""
    runs: list[Run] = []
    decide = injector.decide
    offset = 0
    while True:
        end = min(offset + piece, size)
        dues, bit = decide(header + end - offset, now, ip_header)
        if dues:
            last = runs[-1] if runs else None
            if (last is not None and last[1] == offset and bit < 0 and last[3] < 0
                    and len(dues) == 1 and len(last[2]) == 1 and last[2][0] == dues[0]):
                runs[-1] = (last[0], end, dues, -1)
            else:
                runs.append((offset, end, dues, bit))
        offset = end
        if offset >= size:
            return runs


def piece_of(seg: TcpSegment, start: int, end: int) -> TcpSegment:
    """The part ``start:end`` of ``seg``'s payload as a segment of its own, with
    the flags a TSO device gives it (FIN and PSH on the last piece, CWR on the
    first)."""
    size = len(seg.payload)
    if start == 0 and end == size:
        return seg
    flags = seg.flags
    if end < size:
        flags &= ~_LAST_ONLY
    if start:
        flags &= ~_FIRST_ONLY
    return new_segment(seg.src_port, seg.dst_port, (seg.seq + start) & 0xFFFFFFFF, seg.ack,
                       flags, seg.window, seg.urgent, seg.options, seg.payload[start:end])


class WireFaults:
    """Faults per wire segment for an offloading ``link`` (a ``TunLink`` with
    virtio-net headers). ``egress``/``ingress`` are the ``FaultyLink``'s
    injectors (``None``: that direction is untouched); ``deliver`` takes the
    segments that survive the way in; ``counters`` gets ``drop_bad_checksum``.
    Held pieces wait here: ``next_deadline()`` says when, ``poll(now)``
    writes and delivers what fell due.
    """

    def __init__(self, link: Any, egress: FaultInjector | None, ingress: FaultInjector | None,
                 deliver: Deliver, counters: Any) -> None:
        self.link = link
        self.egress = egress
        self.ingress = ingress
        self.deliver = deliver
        self.counters = counters
        self._held_out: list[tuple[float, int, Callable[[], None]]] = []
        self._held_in: list[tuple[float, int, Callable[[float], None]]] = []
        self._order = itertools.count()

    # -- out -----------------------------------------------------------------------

    def send(self, src: str, dst: str, seg: TcpSegment, mss: int, ident: int, label: int,
             now: float) -> None:
        """Write ``seg`` (a super-segment to be cut at ``mss`` when ``mss``) with
        the egress faults applied to each piece. IP identifications follow the
        pieces (``ident + i`` for the ``i``-th), as the kernel's TSO numbers them."""
        injector = self.egress
        size = len(seg.payload)
        if injector is None:
            self._write(src, dst, seg, mss, ident, label, -1)
            return
        piece = mss or max(size, 1)
        ip_header = ip_header_for(src)
        header = ip_header + TCP_HEADER + options_length(seg.options)
        for start, end, dues, bit in runs_of(injector, size, piece, header, ip_header, now):
            part = piece_of(seg, start, end)
            part_ident = (ident + start // piece) & 0xFFFF
            gso = mss if end - start > mss > 0 else 0
            for due in dues:
                if due <= now:
                    self._write(src, dst, part, gso, part_ident, label, bit)
                else:
                    heapq.heappush(self._held_out, (due, next(self._order), _later(
                        self._write, src, dst, part, gso, part_ident, label, bit)))

    def _write(self, src: str, dst: str, seg: TcpSegment, gso: int, ident: int, label: int,
               bit: int) -> None:
        if bit >= 0:
            # A complete packet whose checksum was right before the bit flipped:
            # written without checksum offload, so nobody recomputes it.
            packet = bytearray(build_packet(src, dst, seg, ident=ident, flow_label=label))
            packet[bit >> 3] ^= 0x80 >> (bit & 7)
            self.link.send(bytes(packet))
            return
        head = packet_headers(src, dst, seg, ident, offload=True, flow_label=label)
        if gso:
            self.link.send_offload((head, seg.payload), gso, len(head))
        else:
            self.link.send_offload((head, seg.payload))

    # -- in ------------------------------------------------------------------------

    def receive(self, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        """A segment read from the link (maybe a GSO packet): its pieces meet the
        ingress faults; the survivors go to ``deliver`` now or when due."""
        injector = self.ingress
        if injector is None:
            self.deliver(src, dst, seg, now)
            return
        size = len(seg.payload)
        ip_header = ip_header_for(src)
        header = ip_header + TCP_HEADER + options_length(seg.options)
        piece = max(self.link.mtu - header, 1) if size else 1
        for start, end, dues, bit in runs_of(injector, size, piece, header, ip_header, now):
            if bit >= 0:
                # Any one flipped bit changes the one's complement sum: the
                # checksum check the piece never reaches would have failed.
                self.counters["drop_bad_checksum"] += len(dues)
                continue
            part = piece_of(seg, start, end)
            for due in dues:
                if due <= now:
                    self.deliver(src, dst, part, now)
                else:
                    heapq.heappush(self._held_in, (due, next(self._order), _arrival(
                        self.deliver, src, dst, part)))

    def receive_other(self, packet: bytes | memoryview, now: float,
                      deliver: Callable[[bytes | memoryview, float], None]) -> None:
        """A packet that is not TCP (ICMP, UDP...) meets the ingress faults whole,
        as on the packet path; a corrupted one goes on with its bit flipped (its
        own checksum catches it)."""
        injector = self.ingress
        if injector is None:
            deliver(packet, now)
            return
        dues, bit = injector.decide(len(packet), now, ip_header_length(packet))
        if bit >= 0:
            mutable = bytearray(packet)
            mutable[bit >> 3] ^= 0x80 >> (bit & 7)
            packet = bytes(mutable)
        elif dues and dues[-1] > now:
            packet = bytes(packet)          # a view of a read buffer must not wait
        for due in dues:
            if due <= now:
                deliver(packet, now)
            else:
                heapq.heappush(self._held_in, (due, next(self._order),
                                               _later_with_time(deliver, packet)))

    # -- held pieces ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        heads = [queue[0][0] for queue in (self._held_out, self._held_in) if queue]
        return min(heads) if heads else None

    def poll(self, now: float) -> None:
        """Write the held outgoing pieces due by ``now``, deliver the incoming ones."""
        out = self._held_out
        while out and out[0][0] <= now:
            heapq.heappop(out)[2]()
        held = self._held_in
        while held and held[0][0] <= now:
            heapq.heappop(held)[2](now)

    def held(self) -> int:
        return len(self._held_out) + len(self._held_in)


def _later(write: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: write(*args)


def _arrival(deliver: Deliver, src: str, dst: str, seg: TcpSegment) -> Callable[[float], None]:
    return lambda now: deliver(src, dst, seg, now)


def _later_with_time(deliver: Callable[[bytes | memoryview, float], None],
                     packet: bytes | memoryview) -> Callable[[float], None]:
    return lambda now: deliver(packet, now)
