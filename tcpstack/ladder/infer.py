"""Deduce an endpoint's TCP states from the segments it sent and received.

Nobody traces the kernel (or the hosts in a capture), but the segments on the
wire say a lot: a host that sent a SYN is in SYN-SENT, one that answered a
SYN with a SYN-ACK was in LISTEN and is now in SYN-RECEIVED, and so on
through RFC 9293 §3.10. The deduced states are marked ``inferred`` so the
diagram can tell them from the exact ones of a traced stack.

What cannot be seen on the wire is not guessed: the 2MSL expiry of
TIME-WAIT, a listener that was never contacted, timers.
"""

from __future__ import annotations

from dataclasses import replace

from tcpstack.core.state import State
from tcpstack.ladder.model import Item, Ladder, SegmentItem, StateItem
from tcpstack.seq import Seq
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

S = State


class _Tracker:
    """The inferred TCB of one endpoint: only what the segments reveal."""

    def __init__(self) -> None:
        self.state: State | None = None      # None: not known yet
        self.initial: State | None = None    # the state it was in before anything was seen
        self.iss: Seq | None = None
        self.fin_end: Seq | None = None      # an ACK >= this acknowledges our FIN
        self.rcv_nxt: Seq | None = None
        self.passive = False
        self.saw_syn = False                 # a SYN arrived while the state was unknown
        self.close_wait_fresh = False        # CLOSE-WAIT was the last change, nothing sent since
        self.retract = False                 # the last state reported was wrong: take it back
        self.syns: set[Seq] = set()          # sequence numbers of every SYN it sent
        self.synack_ack: Seq | None = None   # ack of the SYN-ACK that made it ESTABLISHED

    def _go(self, new: State) -> list[State]:
        if self.state is new:
            return []
        self.state = new
        self.close_wait_fresh = new is S.CLOSE_WAIT
        return [new]

    def _assume(self, initial: State) -> None:
        if self.state is None:
            self.state = self.initial = initial

    # -- segments this endpoint sent -------------------------------------------
    def sent(self, seg: TcpSegment) -> list[State]:
        f = seg.flags
        if f & ACK and not f & RST and self.state is S.ESTABLISHED:
            self.synack_ack = None
        if not f & FIN and self.state is S.CLOSE_WAIT:
            self.close_wait_fresh = False
        if f & RST:
            if (self.state is S.ESTABLISHED and self.synack_ack is not None
                    and not f & ACK and Seq(seg.seq) == self.synack_ack):
                # It rejects the SYN-ACK it seemed to accept: that SYN-ACK answered an
                # old duplicate SYN (RFC 9293 §3.5 fig. 8). Still SYN-SENT.
                self.retract = True
                self.state = S.SYN_SENT
                self.synack_ack = None
                return []
            self._assume(S.CLOSED)
            # A RST answering an unacceptable segment in SYN-SENT or LISTEN leaves
            # the state alone (RFC 9293 §3.10.7.2, §3.10.7.3); elsewhere it aborts.
            if self.state in (S.SYN_SENT, S.LISTEN, S.CLOSED):
                return []
            return self._go(S.CLOSED)
        out: list[State] = []
        if f & SYN and not f & ACK:
            self.syns.add(Seq(seg.seq))
            if self.state in (None, S.CLOSED, S.TIME_WAIT, S.LISTEN):
                crossing = self.state is None and self.saw_syn
                self._assume(S.CLOSED)
                self.iss = Seq(seg.seq)
                out += self._go(S.SYN_SENT)
                if crossing:
                    # It answered the peer's SYN with a SYN of its own: the SYNs
                    # crossed, and the peer's arrived in SYN-SENT (simultaneous open).
                    out += self._go(S.SYN_RECEIVED)
        elif f & SYN:
            if self.state is S.SYN_SENT:          # simultaneous open, RFC 9293 §3.5 fig. 7
                out += self._go(S.SYN_RECEIVED)
            elif self.state in (None, S.LISTEN, S.CLOSED, S.TIME_WAIT):
                self._assume(S.LISTEN)
                self.passive = self.state is S.LISTEN or self.initial is S.LISTEN
                out += self._go(S.SYN_RECEIVED)
            self.iss = Seq(seg.seq)
        if f & FIN:
            self._assume(S.ESTABLISHED)
            end = Seq(seg.seq) + seg.seg_len
            if self.fin_end is None or end > self.fin_end:
                self.fin_end = end
            if self.state in (S.ESTABLISHED, S.SYN_RECEIVED):
                out += self._go(S.FIN_WAIT_1)
            elif self.state is S.CLOSE_WAIT and self.close_wait_fresh and f & ACK \
                    and self.rcv_nxt is not None and Seq(seg.ack) < self.rcv_nxt:
                # Its FIN does not acknowledge the peer's: the FINs crossed. It was
                # never in CLOSE-WAIT but in FIN-WAIT-1, then CLOSING (simultaneous close).
                self.retract = True
                self.state = S.FIN_WAIT_1
                out += [S.FIN_WAIT_1, *self._go(S.CLOSING)]
            elif self.state is S.CLOSE_WAIT:
                out += self._go(S.LAST_ACK)
        if not out and self.state is None and f & ACK and not f & SYN:
            self._assume(S.ESTABLISHED)
        return out

    # -- segments this endpoint received ---------------------------------------
    def received(self, seg: TcpSegment) -> list[State]:
        f = seg.flags
        seq = Seq(seg.seq)
        if f & RST:
            if self.state is S.SYN_SENT:
                # RFC 9293 §3.10.7.3: acceptable only if it acknowledges our SYN.
                if f & ACK and self.iss is not None and Seq(seg.ack) == self.iss + 1:
                    return self._go(S.CLOSED)
                return []
            if self.state is S.SYN_RECEIVED and self.passive:
                return self._go(S.LISTEN)             # RFC 9293 §3.10.7.4, passive open
            if self.state in (None, S.LISTEN, S.CLOSED):
                return []
            return self._go(S.CLOSED)
        out: list[State] = []
        if f & SYN:
            self.rcv_nxt = seq + 1
            if f & ACK:
                ours = Seq(seg.ack) - 1 in self.syns
                if self.state in (S.SYN_SENT, S.SYN_RECEIVED) and ours:
                    out += self._go(S.ESTABLISHED)
                    self.synack_ack = Seq(seg.ack)
            elif self.state is None:
                self.saw_syn = True
            elif self.state is S.SYN_SENT:          # simultaneous open, RFC 9293 §3.10.7.3
                out += self._go(S.SYN_RECEIVED)
            return out
        if f & ACK:
            ack = Seq(seg.ack)
            if self.state is S.SYN_RECEIVED and self.iss is not None and ack >= self.iss + 1:
                out += self._go(S.ESTABLISHED)
            if self.fin_end is not None and ack >= self.fin_end:
                if self.state is S.FIN_WAIT_1 and not f & FIN:
                    out += self._go(S.FIN_WAIT_2)
                elif self.state is S.CLOSING:
                    out += self._go(S.TIME_WAIT)
                elif self.state is S.LAST_ACK:
                    out += self._go(S.CLOSED)
        if self.state is None and (seg.payload or f & FIN):
            self._assume(S.ESTABLISHED)
        fin_seq = seq + len(seg.payload)
        new_fin = f & FIN and (self.rcv_nxt is None or seq <= self.rcv_nxt)
        if new_fin and self.rcv_nxt is not None and fin_seq < self.rcv_nxt:
            new_fin = False                         # a retransmitted FIN: nothing new
        if self.rcv_nxt is None or seq <= self.rcv_nxt:
            end = seq + seg.seg_len
            if self.rcv_nxt is None or end > self.rcv_nxt:
                self.rcv_nxt = end
        if new_fin:
            acks_our_fin = (f & ACK and self.fin_end is not None
                            and Seq(seg.ack) >= self.fin_end)
            if self.state in (S.ESTABLISHED, S.SYN_RECEIVED):
                out += self._go(S.CLOSE_WAIT)
            elif self.state is S.FIN_WAIT_1:
                # FIN+ACK of our FIN: straight to TIME-WAIT; FIN alone: CLOSING.
                out += self._go(S.TIME_WAIT if acks_our_fin else S.CLOSING)
            elif self.state is S.FIN_WAIT_2:
                out += self._go(S.TIME_WAIT)
        return out


def infer_states(ladder: Ladder, endpoints: set[int]) -> None:
    """Insert inferred ``StateItem``s for ``endpoints`` into ``ladder.items``.

    Each state is placed right after the segment that caused it. Entering
    SYN-RECEIVED is only certain once the SYN-ACK goes out, but it is placed
    after the SYN that caused it; the state an endpoint was in before its
    first segment is placed before that segment.
    """
    trackers = {i: _Tracker() for i in endpoints}
    # One slot per item: (states before it, the item, states after it).
    slots: list[tuple[list[Item], Item, list[Item]]] = []
    first_slot: dict[int, int] = {}     # endpoint -> slot of its first segment
    last_syn_slot: dict[int, int] = {}  # endpoint -> slot of the last SYN it received
    last_change: dict[int, tuple[int, StateItem]] = {}   # endpoint -> its latest state
    for item in ladder.items:
        slots.append(([], item, []))
        if not isinstance(item, SegmentItem):
            continue
        here = len(slots) - 1
        for who in (item.src, item.dst):
            if who in trackers and who not in first_slot:
                first_slot[who] = here
        if item.src in trackers:
            tracker = trackers[item.src]
            changes = tracker.sent(item.segment)
            if tracker.retract and item.src in last_change:
                where, wrong = last_change[item.src]
                slots[where][2].remove(wrong)
            tracker.retract = False
            for st in changes:
                where = here
                syn_at = last_syn_slot.get(item.src, -1)
                if st is State.SYN_RECEIVED and syn_at > last_change.get(item.src, (-1,))[0]:
                    where = syn_at
                new = StateItem(slots[where][1].time, item.src, st, inferred=True)
                slots[where][2].append(new)
                last_change[item.src] = (where, new)
        if item.dst in trackers and not item.dropped:
            if item.segment.flags & SYN and not item.segment.flags & ACK:
                last_syn_slot[item.dst] = here
            for st in trackers[item.dst].received(item.segment):
                new = StateItem(item.time, item.dst, st, inferred=True)
                slots[here][2].append(new)
                last_change[item.dst] = (here, new)
    for who, index in first_slot.items():
        initial = trackers[who].initial
        if initial is not None:
            slots[index][0].append(StateItem(slots[index][1].time, who, initial, inferred=True))
    ladder.items = [it for before, item, after in slots for it in (*before, item, *after)]


def annotate_segments(ladder: Ladder) -> None:
    """Name segments a learner should notice: retransmissions and probes.

    A segment carrying sequence space its sender already sent is a
    retransmission. A bare segment at SND.NXT-1 after everything was
    acknowledged is a probe: a zero-window probe when the peer's last window
    was 0 (RFC 9293 §3.8.6.1), a keepalive probe otherwise (RFC 1122
    §4.2.3.6). Items that already have a note are left alone.
    """
    sent_end: dict[int, Seq] = {}        # highest seq+len sent per endpoint
    peer_window: dict[int, int] = {}     # last window advertised TO this endpoint
    last_syn: dict[int, tuple[Seq, int]] = {}   # (seq, flags) of the last SYN sent
    out: list[Item] = []
    for item in ladder.items:
        if not isinstance(item, SegmentItem):
            out.append(item)
            continue
        seg = item.segment
        seq = Seq(seg.seq)
        end = seq + seg.seg_len
        high = sent_end.get(item.src)
        note = item.note
        if not note and high is not None and not seg.flags & RST:
            bare = not seg.flags & (SYN | FIN)
            one_byte = len(seg.payload) == 1 and end <= high + 1
            empty_below = not seg.payload and seq + 1 == high
            if peer_window.get(item.src) == 0 and bare and (one_byte or empty_below):
                note = "zero-window probe"
            elif seg.flags & SYN:
                if last_syn.get(item.src) == (seq, seg.flags):
                    note = "retransmission"
            elif seg.seg_len and end <= high:
                note = "retransmission"
            elif seg.seg_len <= 1 and not seg.flags & (SYN | FIN) and seq + 1 == high:
                note = "keepalive probe"
        if seg.flags & SYN and last_syn.get(item.src) != (seq, seg.flags):
            if last_syn.get(item.src, (None,))[0] != seq:
                sent_end[item.src] = end    # a new incarnation (or an old duplicate)
            last_syn[item.src] = (seq, seg.flags)
        elif high is None or end > high:
            sent_end[item.src] = end
        if seg.flags & ACK:
            peer_window[item.dst] = seg.window
        out.append(replace(item, note=note) if note != item.note else item)
    ladder.items = out
