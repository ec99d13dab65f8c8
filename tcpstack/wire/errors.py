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
    """IPv4 IHL < 5, TCP data offset < 5, or a header that runs past the end."""

    reason = "bad-header-length"


class BadTotalLength(WireError):
    """IPv4 total length smaller than a header or larger than what arrived."""

    reason = "bad-total-length"


class BadChecksum(WireError):
    """IPv4 header checksum or TCP checksum (with pseudo-header) is wrong."""

    reason = "bad-checksum"


class BadOption(WireError):
    """A TCP option with length 0 or 1, or one that overflows the header."""

    reason = "bad-option"


class Fragmented(WireError):
    """An IPv4 fragment (MF set or offset != 0): the runtime reassembles those (fragments.py)."""

    reason = "fragment"


class NotIPv4(WireError):
    """IP version field is not 4 (IPv6 router solicitations land here)."""

    reason = "not-ipv4"


class NotTcp(WireError):
    """IPv4 protocol field is not 6."""

    reason = "not-tcp"


class Contradictory(WireError):
    """Control bits that cannot go together: SYN+RST, SYN+FIN."""

    reason = "contradictory-flags"


ALL_ERRORS: tuple[type[WireError], ...] = (
    Truncated, BadHeaderLength, BadTotalLength, BadChecksum, BadOption,
    Fragmented, NotIPv4, NotTcp, Contradictory,
)
