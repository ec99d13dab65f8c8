"""RACK's record of what is in flight (RFC 8985 §6), in the order it was sent.

``SentLog`` keeps one entry per transmitted range of sequence space that is
neither cumulatively ACKed nor SACKed, with its send time and marks, and
answers the RFC 8985 and RFC 6675 questions of ``SackRecovery``
(``core/recovery.py``) from it: what is lost, the first lost range, pipe.
SACKed parts of an entry are cut out of it as they are reported (as Linux
splits an skb, ``tcp_sacktag_walk`` / ``tcp_fragment``), so a TSO
super-segment lost in one piece is resent in that piece only. How it stays
O(log n) per ACK is in the class's docstring; the scoreboard it reads is
``core/sack.py``'s.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter

from tcpstack.core.sack import _HALF, _MASK, SackScoreboard, _signed
from tcpstack.seq import Seq

__all__ = ["SentLog"]


def _pieces(e: list, parts: list[tuple[int, int]]) -> list[list]:
    """The SACKed parts (offsets from its start) of send-log entry ``e``, as entries
    of the same transmission (their transmission keys ordered by offset)."""
    s0, order, first = e[0], e[5], e[7]
    return [[s0 + a, s0 + b, e[2], e[3], e[4], order, (order << 32) + (s0 + a - first), first]
            for a, b in parts]


def _unsacked(s0: int, e0: int, parts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[s0, e0)`` less the SACKed parts (offsets from ``s0``), lowest first."""
    out = []
    pos = s0
    for a, b in parts:
        if s0 + a > pos:
            out.append((pos, s0 + a))
        pos = s0 + b
    if pos < e0:
        out.append((pos, e0))
    return out


_START = itemgetter(0)
_TKEY = itemgetter(6)


def _insert(ents: list[list], e: list, key: itemgetter) -> None:
    """Put ``e`` into ``ents``, sorted by ``key``."""
    ents.insert(bisect_left(ents, key(e), key=key), e)


def _discard(ents: list[list], gone: list[list], key: itemgetter) -> list[list]:
    """``ents`` (sorted by ``key``, keys unique) without ``gone``: one by one (each
    deletion also moves the list's tail), or for many at once one new list."""
    if len(gone) <= 16 + (len(ents) >> 6):
        for e in gone:
            del ents[bisect_left(ents, key(e), key=key)]
        return ents
    dead = {id(e) for e in gone}
    return [e for e in ents if id(e) not in dead]


class SentLog:
    """RACK (RFC 8985 §6): what is in flight, in the order it was (re)transmitted.

    One entry per transmitted range ``[start, end)`` of sequence space that is
    neither cumulatively ACKed nor SACKed, with its send time, "has been
    retransmitted", "deemed lost" and a transmission counter. "Sent after"
    compares the counter: a retransmission and new data sent at the same
    instant still have an order (RFC 8985 breaks ties by sequence number,
    which is wrong for a retransmission sent before new data). Retransmitting
    part of an entry cuts it out and appends it anew with the new time, so
    the log is in transmission order, each byte in flight in exactly one entry
    (Linux's time-sorted send queue).

    From it the sender gets, per RFC 8985:

    - ``on_ack`` (``_delivered``): RACK.xmit_ts / RACK.end_seq / RACK.rtt of
      the most recently *sent* segment that has been delivered (§6.2 steps
      1-2), RACK.min_RTT, and whether reordering was seen (§6.2 step 3);
    - ``detect_loss``: an unacknowledged segment sent before that one, and
      longer ago than RACK.rtt + reo_wnd, is lost (§6.2 step 5). This finds a
      lost *retransmission* (its new send time is older than a delivered
      segment sent after it) and a loss in a window too small for three
      duplicate ACKs, which RFC 6675's IsLost cannot;
    - ``pipe``: bytes in flight, the unSACKed, not-lost ones (each
      retransmission is its own entry, so RFC 6675 SetPipe's "+1 if
      retransmitted" is already counted once).

    No ACK makes it look at the whole flight (Linux: an rb-tree by sequence
    and the tsorted list). Three sorted lists hold the entries -- all of them
    by start (``_se``), the not-lost ones in transmission order (``_nl``, by
    tkey), the lost ones by start (``_le``) -- and pipe and lost bytes are
    running totals:

    - a retransmission finds the entries it cuts by bisection (``_cut``);
    - ``on_ack`` looks at what the cumulative ACK covers and at the entries
      that may have become SACKed in full since it last looked: those
      overlapping the bytes the scoreboard newly SACKed (``_take_added``) and
      those made or changed since (``_dirty``);
    - ``detect_loss`` marks from the head of ``_nl`` and stops at the first
      entry not yet due: send times never go down along it, so neither does
      the time left (if a clock ever goes back, ``_mono`` goes off and it
      looks at every entry sent before the delivered one);
    - ``mark_lost_by_sack`` bisects for the last start IsLost holds for (it is
      monotonic) and never looks below ``_wm`` again (every entry below,
      never retransmitted, is lost already);
    - ``first_lost`` is the head of ``_le``.

    While nothing is lost or retransmitted (``_simple``), sequence order is
    transmission order, and ``_nl`` would be ``_se`` again: it is made only
    when needed, so bulk transfer keeps one list, as before.

    Sequence numbers in use are taken to lie within 2**31 of each other. New
    data (``retrans`` False) recorded below the end of an entry makes entries
    overlap, which the indexes cannot hold: the log then keeps them all in one
    list in transmission order (``_q``) and does everything by scanning it,
    until it is empty again. (tcpstack's sender no longer does that -- its
    retransmissions stop at SND.MAX -- but the log stays correct for any
    sender that does, as the reference's tests check.)
    """

    __slots__ = ("_calm", "_count", "_dirty", "_full", "_last_ts", "_le", "_lost_bytes",
                 "_mono", "_nl", "_okey", "_pipe", "_q", "_rb", "_retrans", "_rs", "_sb", "_se",
                 "_simple", "_wm", "fack", "min_rtt", "order", "reordering_seen", "rtt",
                 "xmit_ts")

    def __init__(self) -> None:
        self._se: list[list] = []    # every entry, by start
        self._nl: list[list] = []    # the entries not lost, by tkey (unless _simple)
        self._le: list[list] = []    # the lost entries, by start
        self._simple = True          # nothing lost or retransmitted; no _nl kept
        self._calm = 0               # ACKs without loss since _nl was made
        self._pipe = 0               # bytes of the entries not lost
        self._lost_bytes = 0         # bytes of the lost entries
        self._retrans = 0            # entries with retrans set (slow path on ACK when > 0)
        self._rs = 0                 # unwrapping: sequence number _rs is the integer _rb
        self._rb = 0                 # (_rs follows SND.UNA)
        self._wm: int | None = None  # entries never retransmitted below it are all lost
        self._mono = True            # send times never went down
        self._last_ts = float("-inf")
        self._dirty: list[list] = []  # entries made or changed since on_ack last looked
        self._full = False           # on_ack must look at every entry
        self._sb: SackScoreboard | None = None   # the scoreboard on_ack last looked at
        self._q: list[list] | None = None        # overlapping entries, by time (see above)
        self._count = 0              # transmissions so far
        self.xmit_ts: float | None = None   # RACK.xmit_ts
        self.order = -1              # the transmission counter of that segment
        self._okey = -1              # and its transmission key (the piece, if cut)
        self.rtt = 0.0               # RACK.rtt
        self.min_rtt: float | None = None   # RACK.min_RTT (minimum since the connection began)
        self.fack: int | None = None  # RACK.fack: the highest end sequence delivered
        self.reordering_seen = False

    def __len__(self) -> int:
        return len(self._se) if self._q is None else len(self._q)

    def entries(self) -> list[tuple[Seq, Seq, float, bool, bool]]:
        """``(start, end, xmit_ts, retransmitted, lost)`` in transmission order."""
        q = sorted(self._se, key=_TKEY) if self._q is None else self._q
        return [(Seq(e[0] & _MASK), Seq(e[1] & _MASK), e[2], e[3], e[4]) for e in q]

    def clear(self) -> None:
        """Forget what is in flight (after an RTO the sender goes back N)."""
        self._se = []
        self._nl = []
        self._le = []
        self._dirty = []
        self._simple = True
        self._pipe = self._lost_bytes = self._retrans = 0
        self._wm = self._q = None
        self._full = False

    def _index(self) -> None:
        """Make ``_nl``: loss or retransmission is about to happen."""
        if self._simple:
            self._nl = list(self._se)    # sequence order is transmission order
            self._simple = False
        self._calm = 0

    # -- sending ----------------------------------------------------------------
    def on_send(self, start: int, end: int, now: float, retrans: bool) -> None:
        """Record one transmission of ``[start, end)``."""
        start &= 0xFFFFFFFF        # (_MASK and _HALF as constants on this path:
        end &= 0xFFFFFFFF          # once per segment sent)
        se = self._se
        if not se and not self._q:
            # Nothing in flight: start afresh (unwrapping, watermark, time order).
            self.clear()
            se = self._se
            self._rs = self._rb = start
            self._mono = True
            self._last_ts = now
        u = self._rb + ((start - self._rs + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        ue = u + ((end - start) & 0xFFFFFFFF)
        if self._q is not None or (not retrans and se and u < se[-1][1]):
            if self._q is None:           # new data overlaps an entry
                self._q = sorted(se, key=_TKEY)
                self._se, self._nl, self._le = [], [], []
            self._scan_send(u, ue, now, retrans)
            return
        if retrans:
            self._index()
            if se:
                self._cut(u, ue)
        if now < self._last_ts:
            self._mono = False
        self._last_ts = now
        order = self._count = self._count + 1
        e = [u, ue, now, retrans, False, order, order << 32, u]
        self._pipe += ue - u
        if not retrans:
            se.append(e)                  # above every entry
            if not self._simple:
                self._nl.append(e)        # the newest transmission: last in time
            sb = self._sb
            if sb is None or not sb._ends or \
                    sb._ends[-1] - sb._off <= ((start - sb._base + _HALF) & _MASK) - _HALF:
                return
            # (New data is SACKed only once the scoreboard gains its bytes, which
            # on_ack hears of -- unless it has them already.)
        else:
            if not se or u > se[-1][0]:
                se.append(e)
            else:
                _insert(se, e, _START)
            self._nl.append(e)
            self._retrans += 1
        dirty = self._dirty
        dirty.append(e)
        if len(dirty) > 2 * len(se) + 64:  # on_ack has not looked for long (sb None)
            dirty.clear()
            self._full = True

    def _cut(self, u: int, ue: int) -> None:
        """Remove ``[u, ue)`` from the entries (keeping what lies either side)."""
        se, dirty = self._se, self._dirty
        i = bisect_right(se, u, key=_START) - 1
        if i < 0 or se[i][1] <= u:
            i += 1
        j = i
        while j < len(se) and se[j][0] < ue:
            j += 1
        keep: list[list] = []
        gone: list[list] = []
        for k in range(i, j):
            e = se[k]
            s0, e0, lost = e[0], e[1], e[4]
            cut = (e0 if e0 < ue else ue) - (s0 if s0 > u else u)
            if lost:
                self._lost_bytes -= cut
            else:
                self._pipe -= cut
            if s0 < u:                                   # a piece stays on the left
                e[1] = u
                keep.append(e)
                dirty.append(e)
                if e0 > ue:                              # and one on the right
                    piece = [ue, e0, e[2], e[3], lost, e[5], (e[5] << 32) + (ue - e[7]), e[7]]
                    keep.append(piece)
                    dirty.append(piece)
                    if lost:
                        _insert(self._le, piece, _START)
                    else:
                        _insert(self._nl, piece, _TKEY)
                    self._retrans += bool(e[3])
            elif e0 > ue:                                # only on the right
                if lost:
                    self._le = _discard(self._le, [e], _START)
                # Its place among its transmission's pieces moves with its start
                # (a SACKed piece cut out on its left was sent before it).
                e[0] = ue
                e[6] = (e[5] << 32) + (ue - e[7])
                if lost:
                    _insert(self._le, e, _START)
                keep.append(e)
                dirty.append(e)
            else:
                gone.append(e)
                self._retrans -= bool(e[3])
        se[i:j] = keep
        self._forget(gone)

    def _forget(self, gone: list[list]) -> None:
        """Take entries out of ``_nl`` / ``_le`` (not out of ``_se``)."""
        lost = [e for e in gone if e[4]]
        if len(lost) < len(gone):
            self._nl = _discard(self._nl, [e for e in gone if not e[4]], _TKEY)
        if lost:
            self._le = _discard(self._le, lost, _START)

    def _mark_lost(self, marked: list[list]) -> None:
        """Deem these entries lost (already out of ``_nl``)."""
        n = 0
        for e in marked:
            e[4] = True
            n += e[1] - e[0]
        self._pipe -= n
        self._lost_bytes += n
        if len(marked) <= 16 + (len(self._le) >> 6):
            for e in marked:
                _insert(self._le, e, _START)
        else:
            self._le = sorted(self._le + marked, key=_START)

    # -- ACKs -------------------------------------------------------------------
    def on_ack(self, snd_una: int, sb: SackScoreboard | None, now: float) -> None:
        """Drop what ``snd_una`` and the scoreboard now cover; update the RACK state."""
        if sb is not None and sb is not self._sb:
            self._full = self._full or self._sb is not None   # a new scoreboard
            self._sb = sb
        se = self._se
        if not se:
            if sb is not None:
                sb._take_added()
            if not self._q:
                return
        una = int(snd_una) & _MASK
        u = self._rb = self._rb + ((una - self._rs + _HALF) & _MASK) - _HALF
        self._rs = una
        if self._q is not None:
            self._scan_ack(u, sb, now)
            return
        n = 0                    # entries the cumulative ACK covers: a prefix by sequence
        total = len(se)
        while n < total and se[n][1] <= u:
            n += 1
        if not self._retrans and (sb is None or not sb._starts):
            # Fast path (no loss episode): nothing was retransmitted, so the
            # order of sequence is the order of transmission.
            if n:
                self._delivered(se[n - 1], now, None)   # the newest of them decides
                if self._simple:                # nothing lost
                    for k in range(n):
                        self._pipe -= se[k][1] - se[k][0]
                    del se[:n]
                else:
                    nl = 0
                    for k in range(n):
                        e = se[k]
                        if e[4]:
                            self._lost_bytes -= e[1] - e[0]
                        else:
                            nl += 1
                            self._pipe -= e[1] - e[0]
                    del se[:n]
                    del self._nl[:nl]       # the not-lost ones first in time,
                    del self._le[:n - nl]   # the lost ones first by sequence
            if se and se[0][0] < u:
                self._clip(u)
            if not self._simple and not self._le:
                self._calm += 1
                if self._calm > 4 + (len(se) >> 2):
                    self._simple = True     # no loss for a while: drop _nl
                    self._nl = []
            if sb is not None:
                # Nothing is SACKed: nothing can be until the scoreboard says so.
                if sb._added is None or sb._added:
                    sb._added = []
                if self._dirty:
                    self._dirty.clear()
                self._full = False
            return
        self._index()
        fack_before = self.fack
        gone = se[:n]                          # cumulatively ACKed in full
        if n:
            self._forget(gone)
            del se[:n]
        if se and se[0][0] < u:
            self._clip(u)                      # ACKed in part: the rest stays
        sacked: list[list] = []
        pieces: list[list] = []                # SACKed parts of entries SACKed in part
        if sb is not None:
            for e in self._candidates(u, 0, sb):
                parts = sb.sacked_within(e[0] & _MASK, e[1] - e[0])
                if not parts:
                    continue
                if parts[0] == (0, e[1] - e[0]):
                    sacked.append(e)
                else:
                    pieces += _pieces(e, parts)
            self._dirty.clear()
            self._full = False
        if sacked:
            self._forget(sacked)
            self._se = _discard(se, sacked, _START)
            gone += sacked
        if gone or pieces:
            delivered = gone + pieces if pieces else gone
            delivered.sort(key=_TKEY)          # in transmission order, as RACK sees them
            for e in delivered:
                self._delivered(e, now, fack_before)
            self._pipe -= sum(e[1] - e[0] for e in gone if not e[4])
            self._lost_bytes -= sum(e[1] - e[0] for e in gone if e[4])
            self._retrans -= sum(1 for e in gone if e[3])
            for piece in pieces:
                # Cut out of its entry like a retransmission would be, so that
                # what is marked lost and resent is never a SACKed byte (RFC
                # 6675 §4; Linux splits the skb, tcp_sacktag_walk/tcp_fragment).
                self._cut(piece[0], piece[1])

    def _candidates(self, u: int, n: int, sb: SackScoreboard) -> list[list]:
        """Entries (past the first ``n``) that may have become SACKed in full since
        on_ack last looked, each once."""
        se = self._se
        added = sb._take_added()
        if self._full or added is None:
            return se[n:]
        cands = [e for e in self._dirty if e[1] > u]
        if n < len(se) and se[n][0] < u:
            cands.append(se[n])                 # the entry SND.UNA falls in
        for left, right in added:
            a = self._rb + ((left - self._rs + _HALF) & _MASK) - _HALF
            b = a + ((right - left + _HALF) & _MASK) - _HALF
            i = bisect_right(se, a, key=_START) - 1   # the entry a falls in, if any
            if i < n:
                i = n
            elif se[i][1] <= a:
                i += 1
            while i < len(se) and se[i][0] < b:
                cands.append(se[i])
                i += 1
        out = []
        seen: set[int] = set()
        for e in cands:
            # Once each, and only if still in the log (_dirty keeps what went).
            if id(e) not in seen:
                seen.add(id(e))
                i = bisect_left(se, e[0], key=_START)
                if i >= n and i < len(se) and se[i] is e:
                    out.append(e)
        return out

    def _clip(self, u: int) -> None:
        """The first entry (by sequence) begins below ``u`` = SND.UNA: cut it there.
        (If lost, it is the first lost one too: ``_le`` stays sorted.)"""
        e = self._se[0]
        if e[4]:
            self._lost_bytes -= u - e[0]
        else:
            self._pipe -= u - e[0]
        e[0] = u
        self._dirty.append(e)         # looked at with its old start: look again

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
        end = e[1] & _MASK
        if e[6] > self._okey:
            # The most recently sent (RFC 8985 §6.2 step 2; pieces of one
            # transmission by sequence, as RACK.end_seq breaks the tie).
            self.xmit_ts = ts
            self.order = e[5]
            self._okey = e[6]
        # Step 3: a never-retransmitted segment delivered below one delivered
        # earlier was reordered.
        if not e[3] and fack_before is not None and _signed(end - fack_before) < 0:
            self.reordering_seen = True
        if self.fack is None or _signed(end - self.fack) > 0:
            self.fack = end

    # -- loss -------------------------------------------------------------------
    def detect_loss(self, now: float, reo_wnd: float) -> float:
        """RFC 8985 §6.2 step 5: mark lost entries; the reorder timeout (0: none needed).

        An entry sent before the most recently sent delivered one is lost once
        RACK.rtt + reo_wnd have passed since it was sent; otherwise the
        returned time is how long to wait before checking again (§6.3).
        """
        if self.xmit_ts is None:
            return 0.0
        wait = self.rtt + reo_wnd
        timeout = 0.0
        if self._q is None:
            self._index()
            nl = self._nl
            hi = bisect_left(nl, self._okey, key=_TKEY)   # those sent before it
            if self._mono:
                # Send times never go down along _nl, so neither does the time left:
                # the due ones come first, the last one sent has the most left.
                k = 0
                while k < hi and nl[k][2] + wait - now <= 1e-9:
                    k += 1
                if k < hi:
                    timeout = nl[hi - 1][2] + wait - now
                if k:
                    due = nl[:k]
                    del nl[:k]
                    self._mark_lost(due)
                return timeout
        # Every entry not lost sent before (or as) the delivered one, one by one.
        due = []
        for e in self._nl[:hi] if self._q is None else self._q:
            if e[4] or e[6] >= self._okey:
                continue
            remaining = e[2] + wait - now
            if remaining <= 1e-9:
                due.append(e)
            elif remaining > timeout:
                timeout = remaining
        if self._q is not None:
            for e in due:
                e[4] = True
        elif due:
            self._nl = _discard(self._nl, due, _TKEY)
            self._mark_lost(due)
        return timeout

    def mark_lost_by_sack(self, sb: SackScoreboard, mss: int) -> None:
        """RFC 6675 §4 IsLost for entries never retransmitted (DupThresh SACKed above)."""
        if self._q is not None:
            for e in self._q:
                if not e[4] and not e[3] and sb.is_lost(e[0] & _MASK, mss):
                    e[4] = True
            return
        se = self._se
        lo = 0 if self._wm is None else bisect_left(se, self._wm, key=_START)
        if lo >= len(se) or not sb.is_lost(se[lo][0] & _MASK, mss):
            return
        a, b = lo + 1, len(se)       # IsLost holds below some start and not above
        while a < b:
            mid = (a + b) >> 1
            if sb.is_lost(se[mid][0] & _MASK, mss):
                a = mid + 1
            else:
                b = mid
        self._wm = se[a - 1][0] + 1
        due = [e for e in se[lo:a] if not e[4] and not e[3]]
        if due:
            self._index()
            self._nl = _discard(self._nl, due, _TKEY)
            self._mark_lost(due)

    def mark_head_lost(self) -> None:
        """RFC 5681 §3.2: the first unacknowledged segment is deemed lost."""
        if self._q is not None:
            if self._q:
                min(self._q, key=_START)[4] = True   # the first one, on a tie
        elif self._se and not self._se[0][4]:
            self._index()
            self._nl = _discard(self._nl, [self._se[0]], _TKEY)
            self._mark_lost([self._se[0]])

    @property
    def has_lost(self) -> bool:
        return bool(self._le) if self._q is None else any(e[4] for e in self._q)

    @property
    def has_retransmitted(self) -> bool:
        return self._retrans > 0

    def first_lost(self) -> tuple[Seq, int] | None:
        """The lowest range deemed lost as ``(start, length)``, or None."""
        if self._q is not None:
            lost = [e for e in self._q if e[4]]
            e = min(lost, key=_START) if lost else None   # the first one, on a tie
        else:
            e = self._le[0] if self._le else None
        return None if e is None else (Seq(e[0] & _MASK), e[1] - e[0])

    def lost_bytes(self) -> int:
        if self._q is not None:
            return sum(e[1] - e[0] for e in self._q if e[4])
        return self._lost_bytes

    def pipe(self) -> int:
        """Bytes estimated in flight: every recorded byte not deemed lost."""
        if self._q is not None:
            return sum(e[1] - e[0] for e in self._q if not e[4])
        return self._pipe

    # -- overlapping entries (_q): every operation a scan, as RFC 8985 has it ----
    def _scan_send(self, u: int, ue: int, now: float, retrans: bool) -> None:
        q = self._q
        if retrans and q:
            out: list[list] = []
            for e in q:
                s0, e0 = e[0], e[1]
                if e0 <= u or s0 >= ue:
                    out.append(e)
                    continue
                if u > s0:
                    out.append([s0, u, *e[2:]])
                if e0 > ue:
                    out.append([ue, e0, *e[2:6], (e[5] << 32) + (ue - e[7]), e[7]])
            self._q = q = out
            self._retrans = sum(1 for e in q if e[3])
        self._count += 1
        q.append([u, ue, now, retrans, False, self._count, self._count << 32, u])
        self._retrans += bool(retrans)

    def _scan_ack(self, u: int, sb: SackScoreboard | None, now: float) -> None:
        q = self._q
        if not self._retrans and (sb is None or not sb._starts):
            n = 0
            while n < len(q) and q[n][1] <= u:
                n += 1
            if n:
                self._delivered(q[n - 1], now, None)
                del q[:n]
            if q and q[0][0] < u:
                q[0][0] = u
            return
        fack_before = self.fack
        out: list[list] = []
        for e in q:
            if e[1] <= u:
                self._delivered(e, now, fack_before)
                continue
            if e[0] < u:
                e[0] = u                           # ACKed in part
            parts = [] if sb is None else sb.sacked_within(e[0] & _MASK, e[1] - e[0])
            if not parts:
                out.append(e)
                continue
            for piece in _pieces(e, parts):        # SACKed, in whole or in part
                self._delivered(piece, now, fack_before)
            out += ([start, end, *e[2:6], (e[5] << 32) + (start - e[7]), e[7]]
                    for start, end in _unsacked(e[0], e[1], parts))
        self._q = out
        self._retrans = sum(1 for e in out if e[3])
