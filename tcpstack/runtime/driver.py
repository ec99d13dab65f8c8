"""The runtime's engine: moves packets between a link and the sans-IO core on
an asyncio loop, and owns the clock.

One ``loop.add_reader`` on the link's file descriptor and one ``loop.call_at``
for the earliest deadline (the stack's, or a delaying link's). Each wake-up
works in a batch: read the device until it is empty (EAGAIN; a TUN is asked
first whether a second packet waits, cheaper than a failed read), feed every
packet to the core, let the connections' owners react (streams pull data and
push writes), then write all output in one go and re-arm the timer.

Without TSO on the link the driver cuts the core's super-segments into
MSS-sized packets itself (software GSO, ``wire.segment_packets``); with
``coalesce`` it merges consecutive data segments of one wake-up before the
core sees them (software GRO, ``runtime.gro``).
Application calls between wake-ups (reads that reopen the window,
``write_eof``...) only ``kick()`` the driver, which runs one such service pass
on the next loop iteration (or none, when another pass ran first: a write's,
a wake-up's); a ``write``, a connect's SYN and a ``close``'s FIN run the pass
at once (``service_now()``), so they leave before the caller awaits
anything, as a socket's ``send``, ``connect`` and ``close`` would. A kick
from inside a pass (an owner reacting) needs no pass of its own: the running
one writes and re-arms after the owners are done.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.runtime.gro import ReceiveCoalescer
from tcpstack.runtime.icmp6 import Icmp6Responder
from tcpstack.runtime.iphost import IpHost
from tcpstack.runtime.wirefaults import WireFaults
from tcpstack.wire.errors import Fragmented, NotTcp, WireError
from tcpstack.wire.ipv6 import PROTO_ICMPV6, flow_label
from tcpstack.wire.packet import build_packet, packet_headers, parse_packet, segment_packets
from tcpstack.wire.tcp import PSH

if TYPE_CHECKING:
    from tcpstack.core.stack import StackCore
    from tcpstack.link.base import Link

IPV4_VERSION = 4
IPV6_VERSION = 6
PROTO_TCP = 6
# Flow labels kept per 4-tuple (RFC 6437: one label for the life of a flow);
# a flood of new tuples only makes the cache start over.
_LABELS_KEPT = 4096
# The core never makes a segment's payload smaller than this its MSS, so a
# payload up to here is never a super-segment (no need to look up the MSS).
MIN_MSS = 64

# Packets taken from the link in one wake-up before the batch is answered (the
# output flushed, timers run): under a flood the stack keeps talking instead of
# reading until the flood stops (Linux's NAPI budget plays this part). The
# descriptor stays readable, so the loop comes back for the rest at once.
READ_BUDGET = 512

# Busy polling: a reader whose reads keep being answered while it spins never
# hands control back to the event loop. After this long without a loop
# iteration the next read waits on the loop as usual, so that other tasks,
# the timers and the driver's own kicked passes get their turn.
BUSY_POLL_YIELD = 0.001


def _pushed(packet: bytes | memoryview) -> bool:
    """Whether ``packet`` is a TCP segment with PSH set (IPv6: without extension headers)."""
    version = packet[0] >> 4
    if version == IPV4_VERSION:
        if packet[9] != PROTO_TCP:
            return False
        at = (packet[0] & 0x0F) * 4 + 13
    elif version == IPV6_VERSION and packet[6] == PROTO_TCP:
        at = 53
    else:
        return False
    return len(packet) > at and packet[at] & PSH != 0


class StackDriver:
    """Runs one core ``Stack`` over one ``Link`` on the running asyncio loop.

    ``watch(obj, callback)`` registers a callback for a connection or
    listener; it runs whenever the core reports ``obj`` in ``take_changed()``.
    ``pcap`` is anything with ``write(packet, ts)``; ``tracer`` gets the
    runtime's own ``DROP`` events (malformed packets) like the core's.
    """

    def __init__(self, core: StackCore, link: Link, local_addr: str | tuple[str, ...], *,
                 pcap: Any = None, tracer: Callable[[TraceEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, coalesce: bool = False,
                 busy_poll: float = 0.0) -> None:
        self.core = core
        self.link = link
        addrs = (local_addr,) if isinstance(local_addr, str) else tuple(local_addr)
        self.local_addr = addrs[0]
        self.local_addrs = frozenset(addrs)
        self.pcap = pcap
        self.tracer = tracer
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self._label_key = core.config.isn_secret
        self._labels: dict[tuple[str, int, str, int], int] = {}
        self._watchers: dict[Any, Callable[[], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._kicked = False
        self._in_pass = False           # _service() is running the owners' callbacks
        self._kick_in_pass = False      # ... and one of them asked for a pass
        self._reading = False
        self._ident = 0
        self._running = False
        self._pollable = callable(getattr(link, "next_deadline", None))
        # Offloading link (TunLink with virtio-net headers): partial checksums
        # out, TSO super-segments out, GSO packets in whose checksum may be partial.
        self._offload = bool(getattr(link, "offload", False)) and callable(
            getattr(link, "send_offload", None))
        # A TUN hands out views of its read buffer: parsed at once, never kept;
        # and it can tell whether a packet is waiting without a read.
        self._recv_checked = getattr(link, "recv_view", None)
        self._readable: Callable[[], bool] | None = getattr(link, "readable", None)
        self._wire_size = int(getattr(link, "mtu", 0) or 0)
        # Busy polling (off at 0): seconds a reader about to wait may spin on the link.
        self.busy_poll_time = busy_poll if self._readable is not None else 0.0
        self._busy_since: float | None = None   # first busy poll answered since the loop ran
        # Software GRO: consecutive data segments read in one wake-up reach
        # the core as one (off where wire-sized segments matter: fault injection).
        self._gro = ReceiveCoalescer(core.receive) if coalesce else None
        self._receive = self._gro.add if self._gro is not None else core.receive
        # Faults over an offloading TUN: applied per wire-sized piece of the
        # super-segments both ways, the offloads kept (runtime/wirefaults.py).
        self._wire_faults: WireFaults | None = None
        inner = getattr(link, "inner", None)
        if (getattr(link, "egress", None) is not None or getattr(link, "ingress", None)
                is not None) and getattr(inner, "offload", False):
            self._wire_faults = WireFaults(inner, link.egress, link.ingress,  # type: ignore[attr-defined]
                                           self._receive, self.counters)
            self._receive = self._wire_faults.receive
            self._offload = True
            self._recv_checked = inner.recv_view  # type: ignore[union-attr]
            self._readable = inner.readable       # type: ignore[union-attr]
        # Everything at our address that is not TCP: ICMP in and out (runtime/iphost.py),
        # ICMPv6 (runtime/icmp6.py) under the same rate limit, as Linux's global one.
        addr4 = next((a for a in addrs if ":" not in a), addrs[0])
        self.iphost = IpHost(core, addr4, self._send_packet, self.counters,
                             deliver=self._dispatch, tracer=tracer)
        self._icmp6 = Icmp6Responder(core, self.local_addrs, self.counters, self.iphost.bucket)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        fd = self.link.fileno()
        if fd >= 0:
            self._loop.add_reader(fd, self._on_readable)
            self._reading = True
        self._running = True
        self._service()

    def stop(self) -> None:
        """Write what is queued, then stop reading and cancel the timer."""
        if not self._running:
            return
        self._flush()
        self._running = False
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.link.fileno())
            self._reading = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def running(self) -> bool:
        return self._running

    def now(self) -> float:
        return self.clock()

    def watch(self, obj: Any, callback: Callable[[], None]) -> None:
        self._watchers[obj] = callback

    def unwatch(self, obj: Any) -> None:
        self._watchers.pop(obj, None)

    def kick(self) -> None:
        """Schedule one service pass soon (coalesced per loop iteration)."""
        if self._in_pass:
            self._kick_in_pass = True   # the running pass flushes and re-arms
            return
        if not self._kicked and self._running and self._loop is not None:
            self._kicked = True
            self._loop.call_soon(self._kicked_service)

    def kick_if_needed(self) -> None:
        """``kick()`` when the core has something for a pass: after a read,
        which queues a segment (a window update) or nothing at all."""
        if self.core.needs_service():
            self.kick()

    def service_now(self) -> None:
        """Run one service pass at once: what an application call just handed
        the core is written now, not on the next loop iteration. Inside a
        pass it is what ``kick()`` is."""
        if self._in_pass:
            self.kick()                 # the running pass writes it
        elif self._running:
            self._service()

    def busy_poll(self, done: Callable[[], bool]) -> bool:
        """Spin on the link for up to ``busy_poll_time`` seconds instead of
        letting the loop sleep, and run a service pass for every packet that
        arrives; True as soon as ``done()`` (a reader's data came), False when
        the time is up. What Linux's ``SO_BUSY_POLL`` / ``net.core.busy_read``
        does for a blocking read: the response is taken in while the caller
        still runs, with no sleep, wake-up or extra loop iteration in between,
        at the price of a core kept busy meanwhile and the loop's other
        callbacks and timers held back: at most ``busy_poll_time`` per read,
        and once the loop has not run for ``BUSY_POLL_YIELD`` no spinning
        until it has. Off unless asked for.
        """
        readable = self._readable
        if (not self.busy_poll_time or readable is None or not self._running
                or self._in_pass or self._loop is None):
            return False
        clock = time.perf_counter
        start = clock()
        since = self._busy_since
        if since is not None and start - since > BUSY_POLL_YIELD:
            return False                # the loop's turn first (_loop_turned resets)
        end = start + self.busy_poll_time
        while True:
            if readable():
                self._on_readable()
                if done():
                    if since is None:
                        # Answered without the loop running: note when this
                        # began, and learn when the loop runs again.
                        self._busy_since = start
                        self._loop.call_soon(self._loop_turned)
                    return True
            if clock() >= end:
                return False

    def _loop_turned(self) -> None:
        self._busy_since = None

    # -- the service pass --------------------------------------------------

    def _kicked_service(self) -> None:
        # A pass that ran since the kick (a write's, a wake-up's) did what it asked.
        if self._kicked:
            self._kicked = False
            if self._running:
                self._service()

    def _on_readable(self) -> None:
        now = self.clock()
        self._drain_link(now)
        self._service()

    def _on_timer(self) -> None:
        self._timer = None
        when = self._timer_when
        self._timer_when = None
        # The timer may be one armed for an earlier deadline that has moved
        # (see _arm_timer): then nothing is due yet and the core is not polled.
        # asyncio may run a timer a hair early; never hand the core a time
        # before the deadline it asked for, or it would ask again at once.
        now = max(self.clock(), when or 0.0)
        if self._pollable:
            self.link.poll(now)  # type: ignore[attr-defined]
            self._drain_link(now)
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= now:
            self.core.poll(now)
        self._service()

    def _service(self) -> None:
        # Owners react to changes (pull received data, push pending writes,
        # accept connections); what they do may change more, so repeat a
        # bounded number of times before writing out the batch.
        self._in_pass = True
        self._kick_in_pass = False
        self._kicked = False            # a kick waiting for its pass gets this one
        settled = False
        try:
            for _ in range(4):
                changed = self.core.take_changed()
                if not changed:
                    settled = True
                    break
                for obj in changed:
                    callback = self._watchers.get(obj)
                    if callback is not None:
                        callback()
        finally:
            self._in_pass = False
        if not settled and self._kick_in_pass:
            self.kick()                 # changes may be left: a new pass takes them
        self._flush()
        self._arm_timer()

    def _drain_link(self, now: float) -> None:
        self._read_link(now)
        if self._wire_faults is not None:
            self._wire_faults.poll(now)
        gro = self._gro
        if gro is not None:
            gro.flush()
            if gro.merged:
                self.counters["gro_merged"] += gro.merged
                gro.merged = 0

    def _read_link(self, now: float) -> None:
        recv_checked = self._recv_checked
        if recv_checked is not None:
            got = recv_checked()
            if got is None:
                return
            packet = got[0]
            self._input(packet, now, got[1])
            # Mostly one packet is all there is (request/response): ask before
            # a read that would fail -- or not even ask after a wire-sized
            # segment with PSH, which ends what its sender had to send (RFC
            # 9293 §3.9.1.2: a response, the last piece of a write; a GSO
            # super-packet may have more behind it). A packet that comes later
            # makes the (level-triggered) descriptor readable again.
            readable = self._readable
            if readable is not None and (
                    (len(packet) <= self._wire_size and _pushed(packet)) or not readable()):
                return
            for _ in range(READ_BUDGET):
                got = recv_checked()
                if got is None:
                    return
                self._input(got[0], now, got[1])
            self._more_to_read()
            return
        recv = self.link.recv
        for _ in range(READ_BUDGET):
            packet = recv()
            if packet is None:
                return
            self._input(packet, now)
        self._more_to_read()

    def _more_to_read(self) -> None:
        """The read budget ran out: a readable descriptor brings the loop back by
        itself; a link without one is read again on the next iteration."""
        self.counters["read_budget_exhausted"] += 1
        if not self._reading and self._running and self._loop is not None:
            self._loop.call_soon(self._on_readable)

    def _input(self, packet: bytes | memoryview, now: float, verify: bool = True) -> None:
        self.counters["link_rx_packets"] += 1
        if self.pcap is not None:
            self.pcap.write(bytes(packet), time.time())
        wire = self._wire_faults
        if wire is not None and _ip_not_tcp(packet):
            wire.receive_other(packet, now, self._dispatch)   # TCP meets them in pieces
            return
        self._dispatch(packet, now, verify)

    def _dispatch(self, packet: bytes | memoryview, now: float, verify: bool = True) -> None:
        """A packet from the link, or a datagram reassembled from its fragments."""
        version = packet[0] >> 4 if packet else 0
        if version == IPV4_VERSION:
            if len(packet) >= 20 and packet[9] != PROTO_TCP:
                self.iphost.input(packet, now)           # ICMP, UDP...
                return
        elif version == IPV6_VERSION:
            if len(packet) >= 40 and packet[6] == PROTO_ICMPV6:
                self._on_icmp6(packet, now)
                return
        else:
            self.counters["ignored_not_ip"] += 1
            return
        try:
            ip, seg = parse_packet(packet, verify)
        except NotTcp:
            self.counters["ignored_not_tcp"] += 1        # UDP..., behind IPv6 extensions too
            reply = self._icmp6.unrecognized_next_header(packet, now)
            if reply is not None:
                self._send_packet(reply)
            return
        except WireError as exc:
            if isinstance(exc, Fragmented) and version == IPV4_VERSION:
                self.iphost.fragment(packet, now)     # reassembled, then input again
                return
            # (IPv6 fragments are not reassembled: RFC 8200 §4.5 leaves it to the node.)
            self.counters["drop_" + exc.reason.replace("-", "_")] += 1
            if self.tracer is not None:
                self.tracer(TraceEvent(now, EventKind.DROP, None, None, reason=exc.reason))
            return
        if ip.dst not in self.local_addrs:
            self.counters["drop_not_for_us"] += 1
            return
        self._receive(ip.src, ip.dst, seg, now)

    def _on_icmp6(self, packet: bytes | memoryview, now: float) -> None:
        """ICMPv6: echo requests answered at once (rate-limited), errors to the core."""
        reply = self._icmp6.handle(packet, now)
        if reply is not None:
            self._send_packet(reply)

    def _flow_label(self, src: str, dst: str, seg: Any) -> int:
        """RFC 6437 §3: the connection's flow label, a keyed hash of its 4-tuple."""
        key = (src, seg.src_port, dst, seg.dst_port)
        label = self._labels.get(key)
        if label is None:
            if len(self._labels) >= _LABELS_KEPT:
                self._labels.clear()
            label = self._labels[key] = flow_label(self._label_key, *key)
        return label

    def _send_packet(self, packet: bytes) -> None:
        """A complete IP packet the IP host made (ICMP, ICMPv6), written at once."""
        if self.pcap is not None:
            self.pcap.write(packet, time.time())
        self.link.send(packet)
        self.counters["link_tx_packets"] += 1

    def _flush(self) -> None:
        output = self.core.take_output()
        if not output:
            return
        if self._offload:
            self._flush_offload(output)
            return
        send = self.link.send
        pcap = self.pcap
        stamp = time.time() if pcap is not None else 0.0
        sent = 0
        for src, dst, seg in output:
            self._ident = (self._ident + 1) & 0xFFFF
            mss = self._cut_size(src, dst, seg)
            if mss:
                # A super-segment, on a link without TSO: cut here (GSO).
                packets = segment_packets(src, dst, seg, mss, self._ident,
                                          flow_label=self._flow_label(src, dst, seg)
                                          if ":" in src else 0)
                self._ident = (self._ident + len(packets) - 1) & 0xFFFF
                for packet in packets:
                    if pcap is not None:
                        pcap.write(packet, stamp)
                    send(packet)
                sent += len(packets)
                self.counters["gso_segmented"] += 1
                continue
            if ":" in src:
                packet = build_packet(src, dst, seg, flow_label=self._flow_label(src, dst, seg))
            else:
                packet = build_packet(src, dst, seg, ident=self._ident)
            if pcap is not None:
                pcap.write(packet, stamp)
            send(packet)
            sent += 1
        self.counters["link_tx_packets"] += sent

    def _flush_offload(self, output: list[Any]) -> None:
        """Write with checksum offload: headers and payload as separate pieces
        (no copy of the payload), the TCP checksum left to the kernel, and a
        payload larger than the connection's MSS as one TSO super-segment."""
        wire = self._wire_faults
        if wire is not None:
            self._flush_faulty(wire, output)
            return
        send = self.link.send_offload  # type: ignore[attr-defined]
        pcap = self.pcap
        stamp = time.time() if pcap is not None else 0.0
        ident = self._ident
        for src, dst, seg in output:
            ident = (ident + 1) & 0xFFFF
            label = self._flow_label(src, dst, seg) if ":" in src else 0
            head = packet_headers(src, dst, seg, ident, offload=True, flow_label=label)
            if pcap is not None:
                pcap.write(build_packet(src, dst, seg, ident=ident, flow_label=label), stamp)
            mss = self._cut_size(src, dst, seg)
            if mss:
                send((head, seg.payload), mss, len(head))
            else:
                send((head, seg.payload))
        self._ident = ident
        self.counters["link_tx_packets"] += len(output)

    def _flush_faulty(self, wire: WireFaults, output: list[Any]) -> None:
        """``_flush_offload`` with the egress faults applied to each wire-sized
        piece; the pieces keep consecutive IP identifications."""
        pcap = self.pcap
        now = self.clock()
        stamp = time.time() if pcap is not None else 0.0
        ident = self._ident
        for src, dst, seg in output:
            label = self._flow_label(src, dst, seg) if ":" in src else 0
            ident = (ident + 1) & 0xFFFF
            if pcap is not None:
                pcap.write(build_packet(src, dst, seg, ident=ident, flow_label=label), stamp)
            mss = self._cut_size(src, dst, seg)
            wire.send(src, dst, seg, mss, ident, label, now)
            if mss:
                ident = (ident + (len(seg.payload) - 1) // mss) & 0xFFFF
        self._ident = ident
        self.counters["link_tx_packets"] += len(output)

    def _cut_size(self, src: str, dst: str, seg: Any) -> int:
        """For a super-segment the size of its pieces (the connection's send
        MSS: the GSO size), else 0."""
        size = len(seg.payload)
        if size <= MIN_MSS:
            return 0
        conn = self.core.connection((src, seg.src_port), (dst, seg.dst_port))
        # Not found (cannot happen for data): the most that fits the MTU with timestamps.
        if conn is None:
            mss = self.link.mtu - 40 - 12
        else:
            probe = conn.mtu_probe
            if probe is not None and probe[0] == seg.seq and probe[1] == size:
                return 0                  # an RFC 4821 MTU probe: larger than the MSS, whole
            mss = conn.mss
        return mss if size > mss else 0

    def _arm_timer(self) -> None:
        if not self._running or self._loop is None:
            return
        deadline = self.core.next_deadline()
        if self._pollable:
            link_deadline = self.link.next_deadline()  # type: ignore[attr-defined]
            if link_deadline is not None and (deadline is None or link_deadline < deadline):
                deadline = link_deadline
            if self._wire_faults is not None:
                held = self._wire_faults.next_deadline()
                if held is not None and (deadline is None or held < deadline):
                    deadline = held
        timer = self._timer
        if timer is not None and (deadline is None or self._timer_when <= deadline):
            # Deadlines mostly move later (every ACK pushes the retransmission
            # timer out): keep the armed timer; when it fires early it finds
            # nothing due and re-arms. Only an earlier deadline re-arms now.
            return
        if timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = deadline
        if deadline is not None:
            # loop.time() is time.monotonic(), the clock we hand the core.
            self._timer = self._loop.call_at(deadline, self._on_timer)


def _ip_not_tcp(packet: bytes | memoryview) -> bool:
    """An IPv4 or IPv6 packet whose (first) protocol is not TCP."""
    version = packet[0] >> 4 if packet else 0
    if version == IPV4_VERSION:
        return len(packet) >= 20 and packet[9] != PROTO_TCP
    return version == IPV6_VERSION and len(packet) >= 40 and packet[6] != PROTO_TCP
