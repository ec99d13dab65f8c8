"""The SACK scoreboard and RACK send log as they were before they were made
incremental (``git show 5973cb4:tcpstack/core/sack.py``, unchanged since
d512fa5), kept verbatim as the reference that tests/unit/test_sack_scaling.py
and tools/bench-sack compare tcpstack.core.sack and tcpstack.core.sentlog
against. Do not edit the classes below: they are the specification of the
observable behaviour. (One change since: SentLog cuts the SACKed parts out of
an entry SACKed in part, and RACK orders the pieces of one transmission by
sequence, RACK.end_seq's tie-break -- the same change in both.)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from tcpstack.seq import Seq

DUP_THRESH = 3  # RFC 6675 §2, DupThresh
MAX_RANGES = 256

_MASK = 0xFFFFFFFF
_HALF = 1 << 31


def _signed(d: int) -> int:
    d &= _MASK
    return d - (1 << 32) if d >= _HALF else d


class SackScoreboard:
    """SACKed ranges above SND.UNA, with RFC 6675 IsLost / NextSeg / SetPipe."""

    __slots__ = ("_base", "_ends", "_sacked", "_starts")

    def __init__(self) -> None:
        self._base = 0  # absolute sequence number that offset 0 stands for
        self._starts: list[int] = []  # offsets from _base, sorted
        self._ends: list[int] = []  # exclusive ends, sorted; ends[i] < starts[i+1]
        self._sacked = 0

    # -- maintenance ----------------------------------------------------------
    def clear(self) -> None:
        """Forget everything (e.g. after an RTO, RFC 6675 §5.1, or on reneging)."""
        self._starts.clear()
        self._ends.clear()
        self._sacked = 0

    def advance(self, snd_una: int) -> None:
        """Move the base to the new cumulative ACK; drop what lies below it.

        An ``snd_una`` behind the current base (an old ACK) changes nothing.
        """
        if not self._starts:
            self._base = int(snd_una) & _MASK  # nothing to shift: any jump is fine
            return
        delta = (int(snd_una) - self._base) & _MASK
        if delta == 0 or delta >= _HALF:
            return
        self._base = (self._base + delta) & _MASK
        starts, ends = self._starts, self._ends
        keep = bisect_right(ends, delta)  # ranges ending at or below the new base go
        new_starts = []
        new_ends = []
        sacked = 0
        for i in range(keep, len(starts)):
            s = starts[i] - delta
            if s < 0:
                s = 0
            e = ends[i] - delta
            new_starts.append(s)
            new_ends.append(e)
            sacked += e - s
        self._starts = new_starts
        self._ends = new_ends
        self._sacked = sacked

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
        added = 0
        for left, right in blocks:
            start = _signed(int(left) - base)
            end = _signed(int(right) - base)
            if end <= 0 or end > limit or start >= end:
                continue
            if start < 0:
                start = 0
            added += self._insert(start, end)
        if len(self._starts) > MAX_RANGES:
            for s, e in zip(self._starts[MAX_RANGES:], self._ends[MAX_RANGES:], strict=True):
                self._sacked -= e - s
            del self._starts[MAX_RANGES:]
            del self._ends[MAX_RANGES:]
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
        return Seq(self._base + self._ends[-1])

    def ranges(self) -> list[tuple[Seq, Seq]]:
        """The SACKed ranges as ``(start, end)`` sequence numbers, lowest first."""
        b = self._base
        return [(Seq(b + s), Seq(b + e)) for s, e in zip(self._starts, self._ends, strict=True)]

    def __len__(self) -> int:
        return len(self._starts)

    def is_sacked(self, seq: int, length: int) -> bool:
        """True if every byte of ``[seq, seq + length)`` has been SACKed."""
        start = _signed(int(seq) - self._base)
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and start + max(length, 1) <= self._ends[i]

    def is_lost(self, seq: int, mss: int) -> bool:
        """RFC 6675 §4 IsLost(SeqNum).

        True when DupThresh discontiguous SACKed ranges lie above ``seq``, or
        more than (DupThresh - 1) * SMSS bytes above it have been SACKed.
        """
        off = _signed(int(seq) - self._base)
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
            lo = ends[k - 1] if k > 0 else 0
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
        when there is no new data to send).
        """
        self.advance(snd_una)
        if not self._starts:
            return None
        rxt = _signed(int(high_rxt) - self._base)
        if rxt < 0:
            rxt = 0
        fallback: tuple[Seq, int] | None = None
        # rule (1.b): holes lie below the highest SACKed byte by construction
        for lo, hi, lost in self._holes(mss):
            start = lo if lo > rxt else rxt  # rule (1.a): not yet retransmitted
            if start >= hi:
                continue
            seg = (Seq(self._base + start), min(mss, hi - start))
            if lost:  # rule (1.c)
                return seg
            if rule3 and fallback is None:
                fallback = seg
        return fallback

    def pipe(self, snd_una: int, snd_nxt: int, high_rxt: int, mss: int) -> int:
        """RFC 6675 §4 SetPipe(): bytes estimated to be in the network.

        For each unSACKed byte between HighACK and HighData: +1 if it is not
        deemed lost (it may still be in flight), +1 if it has been
        retransmitted (below ``high_rxt``).
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
        # Every unSACKed byte below high_rxt counts once for the retransmission,
        # every unSACKed byte below snd_nxt that is not lost once more.
        total = (rxt - self._sacked_below(rxt)) + (top - self._sacked_below(top))
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


class SentLog:
    """RACK (RFC 8985 §6): what is in flight, in the order it was (re)transmitted.

    One entry per transmitted range ``[start, end)`` of sequence space that is
    neither cumulatively ACKed nor SACKed: ``[start, end, xmit_ts, retrans,
    lost, order]`` (absolute sequence numbers, the send time, "has been
    retransmitted", "deemed lost", a transmission counter). "Sent after"
    compares the counter: a retransmission and new data sent at the same
    instant still have an order (RFC 8985 breaks ties by sequence number,
    which is wrong for a retransmission sent before new data). Retransmitting
    part of an entry cuts it out and appends it anew with the new time, so the list stays ordered by
    transmission time, each byte in flight in exactly one entry (Linux's
    time-sorted send queue).

    From it the sender gets, per RFC 8985:

    - ``on_delivered``: RACK.xmit_ts / RACK.end_seq / RACK.rtt of the most
      recently *sent* segment that has been delivered (§6.2 steps 1-2),
      RACK.min_RTT, and whether reordering was seen (§6.2 step 3);
    - ``detect_loss``: an unacknowledged segment sent before that one, and
      longer ago than RACK.rtt + reo_wnd, is lost (§6.2 step 5). This finds a
      lost *retransmission* (its new send time is older than a delivered
      segment sent after it) and a loss in a window too small for three
      duplicate ACKs, which RFC 6675's IsLost cannot;
    - ``pipe``: bytes in flight, the unSACKed, not-lost ones (each
      retransmission is its own entry, so RFC 6675 SetPipe's "+1 if
      retransmitted" is already counted once).
    """

    __slots__ = ("_count", "_marked", "_ostart", "_q", "_retrans", "fack", "min_rtt", "order",
                 "reordering_seen", "rtt", "xmit_ts")

    def __init__(self) -> None:
        self._q: list[list] = []
        self._retrans = 0            # entries with retrans set (slow path on ACK when > 0)
        self._marked = False         # an entry may be marked lost (has_lost must look)
        self._count = 0              # transmissions so far
        self.xmit_ts: float | None = None   # RACK.xmit_ts
        self.order = -1              # the transmission counter of that segment
        self._ostart = 0             # and its start (pieces of one transmission by sequence)
        self.rtt = 0.0               # RACK.rtt
        self.min_rtt: float | None = None   # RACK.min_RTT (minimum since the connection began)
        self.fack: int | None = None  # RACK.fack: the highest end sequence delivered
        self.reordering_seen = False

    def __len__(self) -> int:
        return len(self._q)

    def entries(self) -> list[tuple[Seq, Seq, float, bool, bool]]:
        """``(start, end, xmit_ts, retransmitted, lost)`` in transmission order."""
        return [(Seq(s), Seq(e), t, r, lost) for s, e, t, r, lost, _ in self._q]

    def clear(self) -> None:
        """Forget what is in flight (after an RTO the sender goes back N)."""
        self._q.clear()
        self._retrans = 0
        self._marked = False

    def on_send(self, start: int, end: int, now: float, retrans: bool) -> None:
        """Record one transmission of ``[start, end)``."""
        start &= _MASK
        end &= _MASK
        if retrans and self._q:
            self._cut(start, end)
        self._count += 1
        self._q.append([start, end, now, retrans, False, self._count])
        if retrans:
            self._retrans += 1

    def _cut(self, start: int, end: int) -> None:
        """Remove ``[start, end)`` from the entries (keeping what lies either side)."""
        out: list[list] = []
        retrans = 0
        for e in self._q:
            s0, e0 = e[0], e[1]
            if _signed(e0 - start) <= 0 or _signed(s0 - end) >= 0:
                out.append(e)
                retrans += e[3]
                continue
            if _signed(start - s0) > 0:
                out.append([s0, start, e[2], e[3], e[4], e[5]])
                retrans += e[3]
            if _signed(e0 - end) > 0:
                out.append([end, e0, e[2], e[3], e[4], e[5]])
                retrans += e[3]
        self._q = out
        self._retrans = retrans

    def on_ack(self, snd_una: int, sb: SackScoreboard | None, now: float) -> None:
        """Drop what ``snd_una`` and the scoreboard now cover; update the RACK state."""
        q = self._q
        una = int(snd_una) & _MASK
        if not self._retrans and (sb is None or not sb._starts):
            # Fast path (no loss episode): entries are in sequence order.
            n = 0
            for e in q:
                if _signed(e[1] - una) > 0:
                    break
                n += 1
            if n:
                self._delivered(q[n - 1], now, None)   # the newest of them decides
                del q[:n]
            if q and _signed(q[0][0] - una) < 0:
                q[0][0] = una
            return
        fack_before = self.fack
        out: list[list] = []
        retrans = 0
        for e in q:
            s0, e0 = e[0], e[1]
            if _signed(e0 - una) <= 0:
                self._delivered(e, now, fack_before)
                continue
            if _signed(s0 - una) < 0:
                e[0] = s0 = una                  # ACKed in part
            if sb is not None and sb.is_sacked(s0, _signed(e0 - s0)):
                self._delivered(e, now, fack_before)
                continue
            # SACKed in part: the SACKed pieces are delivered, the rest stays,
            # each piece with the entry's time and flags.
            pieces = []
            pos = s0
            for left, right in [] if sb is None else sb.ranges():
                a = left if _signed(left - s0) > 0 else s0
                b = right if _signed(right - e0) < 0 else e0
                if _signed(b - a) <= 0:
                    continue
                self._delivered([a, b, *e[2:]], now, fack_before)
                if _signed(a - pos) > 0:
                    pieces.append([pos, a, *e[2:]])
                pos = b
            if not pieces and pos == s0:
                pieces = [e]                     # nothing of it SACKed
            elif _signed(e0 - pos) > 0:
                pieces.append([pos, e0, *e[2:]])
            out += pieces
            retrans += sum(piece[3] for piece in pieces)
        self._q = out
        self._retrans = retrans

    def _delivered(self, e: list, now: float, fack_before: int | None) -> None:
        """RFC 8985 §6.2 steps 2-3 for one newly delivered entry."""
        ts = e[2]
        rtt = now - ts
        if e[3]:
            # Step 2: a retransmission ACKed sooner than min_RTT after it was
            # sent is probably the original's ACK: it says nothing of the timing.
            if self.min_rtt is not None and rtt < self.min_rtt:
                return
        elif self.min_rtt is None or rtt < self.min_rtt:
            self.min_rtt = rtt
        self.rtt = rtt
        end = e[1]
        if e[5] > self.order or (e[5] == self.order and _signed(e[0] - self._ostart) > 0):
            self.xmit_ts = ts
            self.order = e[5]
            self._ostart = e[0]
        # Step 3: a never-retransmitted segment delivered below one delivered
        # earlier was reordered.
        if not e[3] and fack_before is not None and _signed(end - fack_before) < 0:
            self.reordering_seen = True
        if self.fack is None or _signed(end - self.fack) > 0:
            self.fack = end

    def detect_loss(self, now: float, reo_wnd: float) -> float:
        """RFC 8985 §6.2 step 5: mark lost entries; the reorder timeout (0: none needed).

        An entry sent before the most recently sent delivered one is lost once
        RACK.rtt + reo_wnd have passed since it was sent; otherwise the
        returned time is how long to wait before checking again (§6.3).
        """
        if self.xmit_ts is None:
            return 0.0
        order = self.order
        wait = self.rtt + reo_wnd
        timeout = 0.0
        for e in self._q:
            if e[4] or e[5] > order or (e[5] == order and _signed(e[0] - self._ostart) >= 0):
                continue                     # lost already, or sent after it
            remaining = e[2] + wait - now
            if remaining <= 1e-9:
                e[4] = self._marked = True
            elif remaining > timeout:
                timeout = remaining
        return timeout

    def mark_lost_by_sack(self, sb: SackScoreboard, mss: int) -> None:
        """RFC 6675 §4 IsLost for entries never retransmitted (DupThresh SACKed above)."""
        for e in self._q:
            if not e[4] and not e[3] and sb.is_lost(e[0], mss):
                e[4] = self._marked = True

    def mark_head_lost(self) -> None:
        """RFC 5681 §3.2: the first unacknowledged segment is deemed lost."""
        head = None
        for e in self._q:
            if head is None or _signed(e[0] - head[0]) < 0:
                head = e
        if head is not None:
            head[4] = self._marked = True

    @property
    def has_lost(self) -> bool:
        # Asked on every ACK: without a mark since the last look that found
        # none, skip the scan of everything in flight.
        if self._marked:
            self._marked = any(e[4] for e in self._q)
        return self._marked

    @property
    def has_retransmitted(self) -> bool:
        return self._retrans > 0

    def first_lost(self) -> tuple[Seq, int] | None:
        """The lowest range deemed lost as ``(start, length)``, or None."""
        best = None
        for e in self._q:
            if e[4] and (best is None or _signed(e[0] - best[0]) < 0):
                best = e
        if best is None:
            return None
        return Seq(best[0]), _signed(best[1] - best[0])

    def lost_bytes(self) -> int:
        return sum(_signed(e[1] - e[0]) for e in self._q if e[4])

    def pipe(self) -> int:
        """Bytes estimated in flight: every recorded byte not deemed lost."""
        return sum(_signed(e[1] - e[0]) for e in self._q if not e[4])
