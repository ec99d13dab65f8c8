"""The sender's SACK scoreboard and the RFC 6675 loss-recovery queries.

The scoreboard remembers which bytes above SND.UNA the peer has reported in
SACK blocks (RFC 2018 §3), as a sorted list of disjoint, non-touching ranges.
Ranges are stored as integer offsets, so every comparison is a plain integer
comparison and wrap-around at 2**32 needs no special case: offset ``_off``
stands for the base sequence number (the last SND.UNA seen), and a sequence
number ``x`` is at offset ``_off + signed(x - base)``. Advancing the base by
``d`` adds ``d`` to ``_off`` and drops what falls below it; nothing else moves.

RFC 6675 terms, as the methods take them:

- HighACK is ``snd_una``; HighData is ``snd_nxt`` (exclusive end).
- ``high_rxt`` is the *exclusive* end of what has been retransmitted in the
  current recovery: bytes below it have been resent. Set it to ``snd_una``
  on entering recovery and to ``seq + length`` after retransmitting the
  segment ``next_seg`` returned.
- DupThresh is 3 (§2).

At most ``MAX_RANGES`` (256) disjoint ranges are kept; beyond that the
highest ones are forgotten. Forgetting SACK information is always safe (the
sender must be prepared for the receiver reneging anyway, RFC 2018 §8): it
only means some bytes may be retransmitted needlessly.

What one ACK costs, with n entries in the send log, R <= 256 ranges and b
SACK blocks: ``update`` O(b log R); ``SentLog.on_ack`` O((b + k) log n) for k
entries delivered; ``detect_loss`` and ``mark_lost_by_sack`` O(log n) plus,
amortised, O(log n) per entry they mark; ``pipe``, ``first_lost`` and
``has_lost`` O(1); a retransmission (``SentLog.on_send``) O(log n) per entry
it cuts. The sorted indexes are Python lists, so an insertion or deletion in
the middle also moves the list's tail (one memmove, a few microseconds at
10,000 entries). tests/unit/test_sack_scaling.py checks both that the work
per ACK does not grow with the flight and that everything observable is what
the straightforward implementation this replaced (tests/unit/sack_reference.py)
does.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from tcpstack.seq import Seq

DUP_THRESH = 3  # RFC 6675 §2, DupThresh
MAX_RANGES = 256

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_MAX_ADDED = 64  # additions remembered between two looks of the send log (then: "look at all")


def _signed(d: int) -> int:
    d &= _MASK
    return d - (1 << 32) if d >= _HALF else d


class SackScoreboard:
    """SACKed ranges above SND.UNA, with RFC 6675 IsLost / NextSeg / SetPipe."""

    __slots__ = ("_added", "_base", "_ends", "_off", "_sacked", "_starts")

    def __init__(self) -> None:
        self._base = 0  # absolute sequence number of the base (the last SND.UNA)
        self._off = 0  # the offset that stands for _base
        self._starts: list[int] = []  # offsets, sorted, none below _off
        self._ends: list[int] = []  # exclusive ends, sorted; ends[i] < starts[i+1]
        self._sacked = 0
        # What update() newly SACKed since the send log last looked
        # (_take_added): (left, right) sequence numbers; None when there
        # were more than _MAX_ADDED of them.
        self._added: list[tuple[int, int]] | None = []

    # -- maintenance ----------------------------------------------------------
    def clear(self) -> None:
        """Forget everything (e.g. after an RTO, RFC 6675 §5.1, or on reneging)."""
        self._starts.clear()
        self._ends.clear()
        self._sacked = 0
        self._off = 0
        self._added = []

    def advance(self, snd_una: int) -> None:
        """Move the base to the new cumulative ACK; drop what lies below it.

        An ``snd_una`` behind the current base (an old ACK) changes nothing.
        """
        if not self._starts:
            self._base = int(snd_una) & _MASK  # nothing to shift: any jump is fine
            self._off = 0
            return
        delta = (int(snd_una) - self._base) & _MASK
        if delta == 0 or delta >= _HALF:
            return
        self._base = (self._base + delta) & _MASK
        off = self._off = self._off + delta
        starts, ends = self._starts, self._ends
        keep = bisect_right(ends, off)  # ranges ending at or below the new base go
        if keep:
            self._sacked -= sum(ends[:keep]) - sum(starts[:keep])
            del starts[:keep]
            del ends[:keep]
        if starts and starts[0] < off:
            self._sacked -= off - starts[0]
            starts[0] = off

    def update(self, snd_una: int, snd_nxt: int, blocks: Iterable[tuple[int, int]]) -> int:
        """Record the SACK blocks of one ACK; return the number of newly SACKed bytes.

        Blocks are ``(left_edge, right_edge)`` pairs as on the wire (RFC 2018
        §3, right edge exclusive). A block entirely at or below ``snd_una``
        (a D-SACK, RFC 2883, or a stale one) is ignored; one straddling it is
        clipped. Malformed blocks (empty, inverted, or reaching beyond
        ``snd_nxt``) are ignored. A positive return value is what RFC 6675 §2
        requires of a "duplicate acknowledgment" with SACK.
        """
        self.advance(snd_una)
        base = self._base
        limit = (int(snd_nxt) - base) & _MASK
        if limit >= _HALF:
            return 0
        off = self._off
        added = 0
        new: list[tuple[int, int]] | None = None
        for left, right in blocks:
            start = _signed(int(left) - base)
            end = _signed(int(right) - base)
            if end <= 0 or end > limit or start >= end:
                continue
            if start < 0:
                start = 0
            n = self._insert(start + off, end + off)
            if n:
                added += n
                if new is None:
                    new = []
                new.append((start + off, end + off))
        starts, ends = self._starts, self._ends
        if len(starts) > MAX_RANGES:
            self._sacked -= sum(ends[MAX_RANGES:]) - sum(starts[MAX_RANGES:])
            del starts[MAX_RANGES:]
            del ends[MAX_RANGES:]
        if new is not None and self._added is not None:
            # What the send log must look at again: the new bytes that are
            # still recorded (not forgotten beyond MAX_RANGES).
            top = ends[-1]
            rec = self._added
            for s, e in new:
                if s < top:
                    rec.append(((base + s - off) & _MASK,
                                (base + (e if e < top else top) - off) & _MASK))
            if len(rec) > _MAX_ADDED:
                self._added = None
        return added

    def _take_added(self) -> list[tuple[int, int]] | None:
        """The ranges newly SACKed since the last call (None: too many to say)."""
        added = self._added
        self._added = []
        return added

    def _insert(self, start: int, end: int) -> int:
        starts, ends = self._starts, self._ends
        i = bisect_left(ends, start)  # first range that ends at or after start (touching merges)
        j = bisect_right(starts, end)  # ranges i..j-1 start at or before end
        if i == j:
            starts.insert(i, start)
            ends.insert(i, end)
            self._sacked += end - start
            return end - start
        old = 0
        for k in range(i, j):
            old += ends[k] - starts[k]
        new_start = min(start, starts[i])
        new_end = max(end, ends[j - 1])
        starts[i:j] = [new_start]
        ends[i:j] = [new_end]
        added = (new_end - new_start) - old
        self._sacked += added
        return added

    # -- queries --------------------------------------------------------------
    @property
    def sacked_bytes(self) -> int:
        return self._sacked

    @property
    def highest_sacked(self) -> Seq | None:
        """The end (exclusive) of the highest SACKed range, or None."""
        if not self._ends:
            return None
        return Seq(self._base + self._ends[-1] - self._off)

    def ranges(self) -> list[tuple[Seq, Seq]]:
        """The SACKed ranges as ``(start, end)`` sequence numbers, lowest first."""
        b = self._base - self._off
        return [(Seq(b + s), Seq(b + e)) for s, e in zip(self._starts, self._ends, strict=True)]

    def __len__(self) -> int:
        return len(self._starts)

    def is_sacked(self, seq: int, length: int) -> bool:
        """True if every byte of ``[seq, seq + length)`` has been SACKed."""
        start = self._off + _signed(int(seq) - self._base)
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and start + max(length, 1) <= self._ends[i]

    def sacked_within(self, seq: int, length: int) -> list[tuple[int, int]]:
        """The SACKed parts of ``[seq, seq + length)`` as ``(from, to)`` offsets
        from ``seq``, lowest first (empty: none of it). O(log R + parts)."""
        start = self._off + _signed(int(seq) - self._base)
        end = start + length
        starts, ends = self._starts, self._ends
        out = []
        i = bisect_right(ends, start)              # the first range ending after start
        while i < len(starts) and starts[i] < end:
            a, b = starts[i], ends[i]
            out.append(((a if a > start else start) - start, (b if b < end else end) - start))
            i += 1
        return out

    def is_lost(self, seq: int, mss: int) -> bool:
        """RFC 6675 §4 IsLost(SeqNum).

        True when DupThresh discontiguous SACKed ranges lie above ``seq``, or
        more than (DupThresh - 1) * SMSS bytes above it have been SACKed.
        Monotonic: if it holds for ``seq``, it holds for every byte below.
        """
        off = self._off + _signed(int(seq) - self._base)
        starts, ends = self._starts, self._ends
        # ranges containing bytes > off: those whose end > off + 1
        i = bisect_right(ends, off + 1)
        n = len(starts) - i
        if n >= DUP_THRESH:
            return True
        above = 0
        for k in range(i, len(starts)):
            s = starts[k]
            above += ends[k] - (s if s > off else off + 1)
        return above > (DUP_THRESH - 1) * mss

    def _holes(self, mss: int) -> list[tuple[int, int, bool]]:
        """Unsacked ranges below the highest SACKed byte, as offsets, with IsLost.

        IsLost (RFC 6675 §4) is the same for every byte of one hole: the
        SACKed data above any of its bytes is exactly the SACKed data above
        the whole hole. Computed in one pass from the top.
        """
        starts, ends = self._starts, self._ends
        n = len(starts)
        holes: list[tuple[int, int, bool]] = []
        above_bytes = 0
        limit = (DUP_THRESH - 1) * mss
        for k in range(n - 1, -1, -1):
            above_bytes += ends[k] - starts[k]
            lo = ends[k - 1] if k > 0 else self._off
            hi = starts[k]
            if hi > lo:
                # ranges k..n-1 lie above this hole
                holes.append((lo, hi, n - k >= DUP_THRESH or above_bytes > limit))
        holes.reverse()
        return holes

    def next_seg(
        self, snd_una: int, snd_nxt: int, high_rxt: int, mss: int, rule3: bool = False
    ) -> tuple[Seq, int] | None:
        """RFC 6675 §4 NextSeg() rule (1): the first lost, not yet retransmitted hole.

        Returns ``(seq, length)`` with ``length <= mss``, or None. Rule (2),
        new data, is the caller's; with ``rule3=True`` an unSACKed,
        not-yet-retransmitted segment below the highest SACKed byte is
        returned even if it is not deemed lost (rule (3): call it so only
        when there is no new data to send). O(ranges): the connection uses
        ``SentLog.first_lost`` instead.
        """
        self.advance(snd_una)
        if not self._starts:
            return None
        off = self._off
        rxt = _signed(int(high_rxt) - self._base)
        if rxt < 0:
            rxt = 0
        rxt += off
        fallback: tuple[Seq, int] | None = None
        # rule (1.b): holes lie below the highest SACKed byte by construction
        for lo, hi, lost in self._holes(mss):
            start = lo if lo > rxt else rxt  # rule (1.a): not yet retransmitted
            if start >= hi:
                continue
            seg = (Seq(self._base + start - off), min(mss, hi - start))
            if lost:  # rule (1.c)
                return seg
            if rule3 and fallback is None:
                fallback = seg
        return fallback

    def pipe(self, snd_una: int, snd_nxt: int, high_rxt: int, mss: int) -> int:
        """RFC 6675 §4 SetPipe(): bytes estimated to be in the network.

        For each unSACKed byte between HighACK and HighData: +1 if it is not
        deemed lost (it may still be in flight), +1 if it has been
        retransmitted (below ``high_rxt``). O(ranges): the connection uses
        ``SentLog.pipe`` instead.
        """
        self.advance(snd_una)
        top = _signed(int(snd_nxt) - self._base)
        if top <= 0:
            return 0
        rxt = _signed(int(high_rxt) - self._base)
        if rxt < 0:
            rxt = 0
        elif rxt > top:
            rxt = top
        off = self._off
        # Every unSACKed byte below high_rxt counts once for the retransmission,
        # every unSACKed byte below snd_nxt that is not lost once more.
        total = (rxt - self._sacked_below(off + rxt)) + (top - self._sacked_below(off + top))
        top += off
        for lo, hi, lost in self._holes(mss):
            if lost and lo < top:
                total -= (hi if hi < top else top) - lo
        return total

    def _sacked_below(self, off: int) -> int:
        """SACKed bytes at offsets below ``off``."""
        ends = self._ends
        if not ends or off >= ends[-1]:
            return self._sacked
        total = 0
        for s, e in zip(self._starts, ends, strict=True):
            if s >= off:
                break
            total += (e if e < off else off) - s
        return total

    def __repr__(self) -> str:
        shown = ", ".join(f"[{s}, {e})" for s, e in self.ranges()[:8])
        return f"SackScoreboard(base={self._base}, sacked={self._sacked}, ranges={shown})"


# A SentLog entry is a list: [start, end, xmit_ts, retrans, lost, order, tkey, orig].
# start/end are "unwrapped" sequence numbers (integers that do not wrap at 2**32,
# see SentLog._rb); order is the transmission counter; orig where that
# transmission began; tkey = (order << 32) + (where this piece began - orig),
# its place in transmission order (a piece cut out of an entry keeps order and orig).
