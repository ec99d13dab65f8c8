"""Errors for malformed or unacceptable packets.

The receive path catches ``WireError``, counts the drop under ``reason`` and
moves on: a hostile packet never raises further than that. ``reason`` is a
short, stable name meant for drop counters and trace events.
"""

from __future__ import annotations


class WireError(Exception):
    """A packet the wire layer refuses. ``str(err)`` says what exactly."""

    reason = "malformed"


class Truncated(WireError):
    """Fewer bytes than a fixed header needs."""

    reason = "truncated"


class BadHeaderLength(WireError):
    """IPv4 IHL < 5, TCP data offset < 5, a header (IPv6 extension headers
    included) that runs past the end, or too long an IPv6 extension header chain."""

    reason = "bad-header-length"


class BadTotalLength(WireError):
    """IPv4 total length (IPv6 payload length) smaller than a header or larger
    than what arrived; an IPv6 jumbogram (payload length 0)."""

    reason = "bad-total-length"


class BadChecksum(WireError):
    """IPv4 header checksum or TCP checksum (with pseudo-header) is wrong."""

    reason = "bad-checksum"


class BadOption(WireError):
    """A TCP option with length 0 or 1, or one that overflows the header."""

    reason = "bad-option"


class Fragmented(WireError):
    """An IPv4 fragment (MF set or offset != 0): the runtime reassembles those
    (fragments.py); or an IPv6 Fragment header that is not an atomic fragment
    (RFC 6946): those are counted and dropped."""

    reason = "fragment"


class NotIPv4(WireError):
    """IP version field is not 4 where an IPv4 header was expected, or neither 4 nor 6."""

    reason = "not-ipv4"


class NotIPv6(WireError):
    """IP version field is not 6 where an IPv6 header was expected."""

    reason = "not-ipv6"


class NotTcp(WireError):
    """The IPv4 protocol field, or the IPv6 header chain's last next header, is not 6."""

    reason = "not-tcp"


class Contradictory(WireError):
    """Control bits that cannot go together: SYN+RST, SYN+FIN."""

    reason = "contradictory-flags"


ALL_ERRORS: tuple[type[WireError], ...] = (
    Truncated, BadHeaderLength, BadTotalLength, BadChecksum, BadOption,
    Fragmented, NotIPv4, NotIPv6, NotTcp, Contradictory,
)
