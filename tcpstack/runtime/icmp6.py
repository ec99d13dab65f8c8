"""ICMPv6 at our addresses (RFC 4443), the IPv6 half of ``runtime/iphost.py``:

- echo requests (§4.2) are answered, so ``ping -6`` gets a reply, within the
  IP host's token bucket (Linux's ``icmp_msgs_per_sec`` 1000 and
  ``icmp_msgs_burst`` 50 are one limit for both families; RFC 4443 §2.4 (f));
- a packet of a protocol we do not speak draws a Parameter Problem,
  unrecognized Next Header (§3.4, code 1; the IPv6 twin of ICMPv4's protocol
  unreachable), within the same bucket and never about a multicast or
  unspecified address (§2.4 (e));
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
from tcpstack.wire.addr import addr6_text
from tcpstack.wire.errors import WireError
from tcpstack.wire.icmp6 import (
    CODE_UNRECOGNIZED_NEXT_HEADER,
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
from tcpstack.wire.ipv6 import EXT_DEST_OPTS, EXT_FRAGMENT, EXT_HOP_BY_HOP, EXT_ROUTING

if TYPE_CHECKING:
    from tcpstack.core.stack import StackCore

_EXTENSIONS = frozenset((EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_DEST_OPTS))

_ERRORS = frozenset((DEST_UNREACHABLE, PACKET_TOO_BIG, TIME_EXCEEDED, PARAMETER_PROBLEM))
# RFC 4443 §2.4 (c): an error carries as much of the invoking packet as fits
# in the minimum MTU (RFC 8200 §5): 1280 - 40 (IPv6) - 8 (ICMPv6 header).
MAX_QUOTE = 1280 - 40 - 8
NEXT_HEADER_OFFSET = 6           # the Next Header field of the fixed IPv6 header


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

    def unrecognized_next_header(self, packet: bytes | memoryview, now: float) -> bytes | None:
        """RFC 4443 §3.4 code 1 for an IPv6 packet to our address whose upper-layer
        protocol we lack (UDP...), or None: not ours, not a unicast source,
        behind extension headers (only the fixed header's field is pointed at),
        or rate-limited. Counted."""
        counters = self.counters
        if len(packet) < 40 or packet[0] >> 4 != 6:
            return None
        src, dst = addr6_text(bytes(packet[8:24])), addr6_text(bytes(packet[24:40]))
        if dst not in self.local_addrs or packet[NEXT_HEADER_OFFSET] in _EXTENSIONS:
            return None
        if src == "::" or src.startswith("ff"):   # §2.4 (e): unspecified or multicast
            counters["icmp6_error_suppressed"] += 1
            return None
        if not self.bucket.take(now):
            counters["icmp6_rate_limited"] += 1
            return None
        counters["icmp6_param_problem_sent"] += 1
        pointer = NEXT_HEADER_OFFSET.to_bytes(4, "big")
        return build_icmp6(dst, src, PARAMETER_PROBLEM, CODE_UNRECOGNIZED_NEXT_HEADER,
                           pointer + bytes(packet[:MAX_QUOTE]))
