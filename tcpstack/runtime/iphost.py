"""The IP host around the TCP core: everything but TCP that arrives at our address.

- ICMP errors about our segments (RFC 792, RFC 1122 §3.2.2) are parsed
  (``wire.icmp``) and handed to the core (``StackCore.icmp_error``), which
  checks and acts on them.
- ICMP echo requests to our address are answered (RFC 1122 §3.2.2.6: every
  host MUST), within a token bucket (RFC 1812 §4.3.2.8 style; Linux
  ``icmp_msgs_per_sec`` 1000 and ``icmp_msgs_burst`` 50).
- A protocol we do not speak (UDP, ...) draws an ICMP protocol unreachable
  (RFC 1122 §3.2.2.1 SHOULD), within the same bucket. TCP never draws a port
  unreachable: a RST says that (RFC 9293 §3.10.7.1).

Malformed or unsupported ICMP is counted (``drop_<reason>``) and dropped.
What the host sends goes out through ``send`` (a complete IPv4 packet).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.runtime.fragments import FragmentReassembler
from tcpstack.wire.addr import addr_text
from tcpstack.wire.errors import Fragmented, WireError
from tcpstack.wire.icmp import (
    CODE_PROTOCOL_UNREACHABLE,
    DEST_UNREACHABLE,
    PROTO_ICMP,
    IcmpEcho,
    build_echo_reply,
    build_icmp_error,
    parse_icmp,
)
from tcpstack.wire.ipv4 import parse_ipv4

if TYPE_CHECKING:
    from tcpstack.core.stack import StackCore

__all__ = ["IpHost", "TokenBucket"]

PROTO_TCP = 6

ICMP_RATE = 1000.0        # messages per second (Linux icmp_msgs_per_sec)
ICMP_BURST = 50           # Linux icmp_msgs_burst


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Time comes in as ``now``."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """One token if there is one."""
        last = self._last
        if last is not None and now > last:
            self._tokens = min(float(self.burst), self._tokens + (now - last) * self.rate)
        self._last = now if last is None or now > last else last
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class IpHost:
    """ICMP in and out for one address; TCP goes to the core, not here."""

    def __init__(self, core: StackCore, local_addr: str, send: Callable[[bytes], None],
                 counters: Counter[str], rate: float = ICMP_RATE,
                 burst: int = ICMP_BURST,
                 deliver: Callable[[bytes, float], None] | None = None,
                 tracer: Callable[[TraceEvent], None] | None = None) -> None:
        self.core = core
        self.local_addr = local_addr
        self.send = send
        self.counters = counters
        self.bucket = TokenBucket(rate, burst)
        self.fragments = FragmentReassembler(counters)
        # Where a reassembled datagram goes (the driver's input, TCP included).
        self.deliver = deliver or self.input
        self.tracer = tracer                  # gets a DROP event for each refused message
        self._ident = 0

    def fragment(self, packet: bytes | memoryview, now: float) -> None:
        """An IPv4 fragment whose header checked out (RFC 791 §3.2 reassembly)."""
        if addr_text(packet[16:20]) != self.local_addr:
            self.counters["drop_not_for_us"] += 1
            return
        whole = self.fragments.add(packet, now)
        if whole is not None:
            self.deliver(whole, now)

    def input(self, packet: bytes | memoryview, now: float) -> None:
        """One IPv4 packet that is not TCP. Never raises for hostile input."""
        counters = self.counters
        try:
            try:
                ip, payload = parse_ipv4(packet)
            except Fragmented:
                self.fragment(packet, now)
                return
            if ip.dst != self.local_addr:
                counters["drop_not_for_us"] += 1
                return
            if ip.protocol == PROTO_TCP:
                # Never an ICMP error about TCP (a RST says that); TCP belongs to the
                # core, and the driver never hands it here but through ``deliver``.
                counters["ip_host_tcp_ignored"] += 1
                return
            if ip.protocol != PROTO_ICMP:
                counters["ip_protocol_unsupported"] += 1
                self._protocol_unreachable(ip.src, packet, now)
                return
            counters["icmp_in"] += 1
            message = parse_icmp(ip, payload)
        except WireError as exc:
            counters["drop_" + exc.reason.replace("-", "_")] += 1
            if self.tracer is not None:
                self.tracer(TraceEvent(now, EventKind.DROP, None, None, reason=exc.reason))
            return
        if isinstance(message, IcmpEcho):
            self._echo(ip.src, message, now)
        else:
            self.core.icmp_error(message, now)

    def _next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _echo(self, src: str, echo: IcmpEcho, now: float) -> None:
        """RFC 792 / RFC 1122 §3.2.2.6: the reply carries the request's data back."""
        counters = self.counters
        counters["icmp_echo_requests"] += 1
        if not self.bucket.take(now):
            counters["icmp_rate_limited"] += 1
            return
        self.send(build_echo_reply(self.local_addr, src, echo, ident=self._next_ident()))
        counters["icmp_echo_replies"] += 1

    def _protocol_unreachable(self, src: str, packet: bytes | memoryview, now: float) -> None:
        """RFC 1122 §3.2.2.1: protocol unreachable for a transport we lack."""
        counters = self.counters
        first = int(src.split(".", 1)[0])
        if src == "0.0.0.0" or first >= 224 or first == 127:
            # RFC 1122 §3.2.2: no ICMP error about a datagram whose source does not
            # name a single host (unspecified, multicast, class E, loopback).
            counters["icmp_error_suppressed"] += 1
            return
        if not self.bucket.take(now):
            counters["icmp_rate_limited"] += 1
            return
        self.send(build_icmp_error(self.local_addr, src, DEST_UNREACHABLE,
                                   CODE_PROTOCOL_UNREACHABLE, packet,
                                   ident=self._next_ident()))
        counters["icmp_protocol_unreachable_sent"] += 1
