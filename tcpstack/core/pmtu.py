"""Path MTU discovery (RFC 1191): the per-destination cache and the plateau table.

A router that cannot forward a segment with DF set answers "fragmentation
needed" with its next-hop MTU (RFC 1191 §4; ICMPv6 Packet Too Big alike,
RFC 8201). The stack remembers the lowest MTU reported per destination, so
that every connection to it (and the next one) uses segments that fit, and
forgets it after ``pmtu_expires`` seconds (RFC 1191 §6.3: "increase" by
letting the estimate age out; Linux ``ip_rt_mtu_expires``, 10 minutes), so
that a path that has grown is used in full again. Pure: time comes in as
``now``.
"""

from __future__ import annotations

__all__ = ["PLATEAUS", "PmtuCache", "plateau_below"]

# RFC 1191 §7 table 7-1: MTU plateaus, used when a router does not say its
# next-hop MTU (an RFC 792 router leaves the field 0).
PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)

# Destinations remembered at most (a bound like every resource; beyond it the
# oldest entry goes, counted as ``pmtu_cache_evicted``).
MAX_ENTRIES = 4096


def plateau_below(mtu: int) -> int:
    """RFC 1191 §5: the largest plateau less than ``mtu`` (68 at the bottom)."""
    for plateau in PLATEAUS:
        if plateau < mtu:
            return plateau
    return PLATEAUS[-1]


class PmtuCache:
    """Destination address -> (path MTU, when it expires)."""

    __slots__ = ("_entries", "counters", "expires", "max_entries")

    def __init__(self, expires: float, counters: dict[str, int],
                 max_entries: int = MAX_ENTRIES) -> None:
        self.expires = expires
        self.max_entries = max_entries
        self.counters = counters
        self._entries: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, dst: str, now: float) -> tuple[int, float] | None:
        """``(mtu, expiry time)`` learned for ``dst``, or None (none, or aged out)."""
        entry = self._entries.get(dst)
        if entry is None:
            return None
        if now >= entry[1]:
            del self._entries[dst]
            self.counters["pmtu_expired"] = self.counters.get("pmtu_expired", 0) + 1
            return None
        return entry

    def lower(self, dst: str, mtu: int, now: float) -> float:
        """Remember ``mtu`` for ``dst`` (only ever lower while it lasts); returns
        when it expires."""
        entry = self.get(dst, now)
        if entry is not None and entry[0] <= mtu:
            return entry[1]
        entries = self._entries
        if entry is None and len(entries) >= self.max_entries:
            del entries[next(iter(entries))]          # the oldest one
            self.counters["pmtu_cache_evicted"] = self.counters.get("pmtu_cache_evicted",
                                                                    0) + 1
        entries.pop(dst, None)
        expiry = now + self.expires
        entries[dst] = (mtu, expiry)
        return expiry
