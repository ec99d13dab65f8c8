"""ICMPv6 at our addresses (RFC 4443), the IPv6 half of ``runtime/iphost.py``:

- echo requests (§4.2) are answered, so ``ping -6`` gets a reply, within the
  IP host's token bucket (Linux's ``icmp_msgs_per_sec`` 1000 and
  ``icmp_msgs_burst`` 50 are one limit for both families; RFC 4443 §2.4 (f));
- errors about our segments -- Packet Too Big (§3.2, RFC 8201), destination
  unreachable, time exceeded, parameter problem -- become the family-neutral
  ``IcmpError`` and go to the core (``StackCore.icmp_error``), which checks
  and acts on them as on ICMPv4's.

No neighbour discovery (RFC 4861) is needed: a TUN is a layer-3 device, the
kernel hands IPv6 packets to it without resolving a link-layer address, so
neighbour solicitations never arrive and none is answered; router
solicitations and MLD reports the kernel sends are counted and ignored.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from tcpstack.runtime.iphost import ICMP_BURST, ICMP_RATE, TokenBucket
from tcpstack.wire.errors import WireError
from tcpstack.wire.icmp6 import (
    DEST_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    PACKET_TOO_BIG,
    PARAMETER_PROBLEM,
    TIME_EXCEEDED,
    build_icmp6,
    icmp6_error,
    parse_icmp6,
)

if TYPE_CHECKING:
    from tcpstack.core.stack import StackCore

_ERRORS = frozenset((DEST_UNREACHABLE, PACKET_TOO_BIG, TIME_EXCEEDED, PARAMETER_PROBLEM))


class Icmp6Responder:
    """``handle(packet, now)`` -> the reply to send, or None. Counts in
    ``counters`` (the driver's): ``icmp6_in``, ``icmp6_echo_requests``,
    ``icmp6_echo_replies``, ``icmp6_rate_limited``, ``icmp6_ignored``,
    ``drop_<reason>`` for bad ones; the core counts the errors it is given."""

    def __init__(self, core: StackCore | None, local_addrs: frozenset[str],
                 counters: Counter[str], bucket: TokenBucket | None = None) -> None:
        self.core = core
        self.local_addrs = local_addrs
        self.counters = counters
        self.bucket = bucket if bucket is not None else TokenBucket(ICMP_RATE, ICMP_BURST)

    def handle(self, packet: bytes | memoryview, now: float) -> bytes | None:
        counters = self.counters
        try:
            msg = parse_icmp6(packet)
        except WireError as exc:
            counters["drop_" + exc.reason.replace("-", "_")] += 1
            return None
        if msg.ip.dst not in self.local_addrs:  # multicast (MLD...) or someone else's
            counters["icmp6_ignored"] += 1
            return None
        counters["icmp6_in"] += 1
        if msg.type in _ERRORS:
            try:
                err = icmp6_error(msg)
            except WireError as exc:
                counters["drop_" + exc.reason.replace("-", "_")] += 1
                return None
            if self.core is not None:
                self.core.icmp_error(err, now)
            return None
        if msg.type != ECHO_REQUEST or msg.code != 0:
            counters["icmp6_ignored"] += 1      # router advertisements, redirects...
            return None
        counters["icmp6_echo_requests"] += 1
        if not self.bucket.take(now):
            counters["icmp6_rate_limited"] += 1
            return None
        counters["icmp6_echo_replies"] += 1
        # RFC 4443 §4.2: identifier, sequence number and data copied back.
        return build_icmp6(msg.ip.dst, msg.ip.src, ECHO_REPLY, 0, msg.body)
