"""ICMPv6 the runtime answers itself: echo requests (RFC 4443 §4.2), so
``ping -6`` gets a reply, rate-limited like Linux's ICMP output
(``net.ipv4.icmp_msgs_per_sec`` 1000 with a burst of ``icmp_msgs_burst`` 50,
which covers ICMPv6 too; RFC 4443 §2.4 (f) asks for a limit).

No neighbour discovery (RFC 4861) is needed: a TUN is a layer-3 device, the
kernel hands IPv6 packets to it without resolving a link-layer address, so
neighbour solicitations never arrive and none is answered; router
solicitations and MLD reports the kernel sends are counted and ignored.
"""

from __future__ import annotations

from collections import Counter

from tcpstack.wire.errors import WireError
from tcpstack.wire.icmp6 import ECHO_REPLY, ECHO_REQUEST, build_icmp6, parse_icmp6

MSGS_PER_SECOND = 1000      # Linux icmp_msgs_per_sec
BURST = 50                  # Linux icmp_msgs_burst


class Icmp6Responder:
    """``handle(packet, now)`` -> the reply to send, or None. Counts in
    ``counters`` (the driver's): ``icmp6_echo_requests``, ``icmp6_echo_replies``,
    ``icmp6_rate_limited``, ``icmp6_ignored``, ``drop_<reason>`` for bad ones."""

    def __init__(self, local_addrs: frozenset[str], counters: Counter[str],
                 rate: float = MSGS_PER_SECOND, burst: int = BURST) -> None:
        self.local_addrs = local_addrs
        self.counters = counters
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def _allowed(self, now: float) -> bool:
        """A token bucket: ``rate`` per second, at most ``burst`` saved up."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def handle(self, packet: bytes | memoryview, now: float) -> bytes | None:
        counters = self.counters
        try:
            msg = parse_icmp6(packet)
        except WireError as exc:
            counters["drop_" + exc.reason.replace("-", "_")] += 1
            return None
        if msg.type != ECHO_REQUEST or msg.code != 0:
            counters["icmp6_ignored"] += 1      # RS, MLD, errors (handled elsewhere)
            return None
        if msg.ip.dst not in self.local_addrs:  # multicast or someone else's: no answer
            counters["icmp6_ignored"] += 1
            return None
        counters["icmp6_echo_requests"] += 1
        if not self._allowed(now):
            counters["icmp6_rate_limited"] += 1
            return None
        counters["icmp6_echo_replies"] += 1
        # RFC 4443 §4.2: identifier, sequence number and data copied back.
        return build_icmp6(msg.ip.dst, msg.ip.src, ECHO_REPLY, 0, msg.body)
