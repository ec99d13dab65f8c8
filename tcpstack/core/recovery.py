"""Loss recovery: what a sender does about duplicate ACKs, SACK blocks and lost
segments, as a named state behind one interface.

A connection picks its recovery once, when the SYNs are exchanged
(``make_recovery``): ``RenoRecovery`` (RFC 5681 §3.2 fast retransmit, RFC
6582 NewReno, RFC 3042 limited transmit) without SACK, ``SackRecovery``
(RFC 6675 SACK-based recovery with RFC 8985 RACK loss detection and TLP
tail loss probes) with it. Both keep ``state``, Linux's congestion-avoidance
states (``tcp_ca_state``, gVisor's ``ccState``):

- OPEN: nothing looks wrong;
- DISORDER: duplicate ACKs or SACK blocks, no loss decided yet;
- RECOVERY: fast recovery, repairing losses found by ACKs, until SND.UNA
  passes ``recover`` (RFC 6582 "recover", RFC 6675 RecoveryPoint);
- LOSS: after a retransmission timeout, until everything sent before it
  is acknowledged.

The connection calls the hooks below from its ACK processing, its output and
its timers; the recovery calls back the connection's send primitives
(``_output``, ``_retransmit_head``, ``_retransmit_segment``,
``_retransmit_range``), which are the TCB's own.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from tcpstack.core.events import TIMER_LOSS_PROBE, TIMER_REORDER
from tcpstack.core.sack import DUP_THRESH, SackScoreboard
from tcpstack.core.sentlog import SentLog
from tcpstack.core.state import State
from tcpstack.core.timers import LOSS_PROBE, REORDER, RETRANSMIT
from tcpstack.seq import Seq, seq_diff

if TYPE_CHECKING:
    from tcpstack.core.connection import Connection

__all__ = ["RecoveryState", "RenoRecovery", "SackRecovery", "make_recovery"]

WC_DEL_ACK = 0.2               # RFC 8985 §7.2 WCDelAckT: worst-case delayed-ACK timer
TLP_EXTRA = 0.002              # PTO = 2*SRTT + this (Linux: TCP_TIMEOUT_MIN, 2 jiffies)

_SEND_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1,
                          State.CLOSING, State.LAST_ACK})


class RecoveryState(enum.Enum):
    OPEN = "open"
    DISORDER = "disorder"
    RECOVERY = "recovery"
    LOSS = "loss"

    def __str__(self) -> str:
        return self.value


OPEN = RecoveryState.OPEN
DISORDER = RecoveryState.DISORDER
RECOVERY = RecoveryState.RECOVERY
LOSS = RecoveryState.LOSS


def _ignore_send(start: int, end: int, now: float, retrans: bool) -> None:
    """``on_send`` of a recovery that keeps no send log."""


class RenoRecovery:
    """RFC 5681 §3.2 + RFC 6582 (NewReno) + RFC 3042, for a connection without SACK."""

    __slots__ = ("cc_recovery", "dupacks", "inflate", "lt_sent", "on_send", "recover", "state")

    sack = False
    tlp_end: Seq | None = None            # no tail loss probes without SACK

    def __init__(self, iss: Seq) -> None:
        self.state = OPEN
        self.dupacks = 0
        self.recover = iss                # RFC 6582 "recover"
        self.inflate = 0                  # window inflation (recovery, limited transmit)
        self.cc_recovery = False          # this recovery reduced cwnd (a new loss episode)
        self.lt_sent = 0                  # RFC 3042: bytes sent since the last new ACK
        # Called for every segment sent: on_send(start, end, now, retransmission).
        self.on_send = _ignore_send

    # -------------------------------------------------------------- ACKs
    def advance(self, ack: Seq) -> None:
        """SND.UNA moved to ``ack`` (an ACK without SACK blocks)."""

    def record_sack(self, blocks: tuple, ack: Seq, d_una: int, snd_una: Seq,
                    snd_max: Seq) -> int:
        """The SACK blocks of an ACK; returns the bytes newly SACKed."""
        return 0

    def sample_delivery(self, conn: Connection, now: float) -> None:
        """After every ACK, for a controller that models the path (BBR): what is
        in flight and the smoothed RTT (no SACK, so nothing is SACKed)."""
        conn.cc.on_delivery(now, 0, seq_diff(conn.snd_max, conn.snd_una), conn.rtt.srtt,
                            not conn._cwnd_limited())

    def on_new_ack(self, conn: Connection, ack: Seq, acked: int, now: float) -> None:
        """SND.UNA advanced by ``acked`` to ``ack`` (buffers and RTT done)."""
        self._new_ack_common(conn, acked, now)
        if self.state is RECOVERY:
            if seq_diff(ack, self.recover) >= 0:
                # RFC 6582 §3.2 step 5: full acknowledgment, leave recovery.
                self.exit_recovery(conn, now)
            else:
                # RFC 6582 §3.2 step 4 partial acknowledgment: retransmit the
                # next hole, deflate.
                self.inflate = max(0, self.inflate - acked) + conn.mss
                conn._retransmit_head(now)
        else:
            self._leave_disorder(ack)
            self.inflate = 0              # RFC 3042: limited transmit ends

    def _new_ack_common(self, conn: Connection, acked: int, now: float) -> None:
        self.dupacks = 0
        self.lt_sent = 0
        hold = (self.state is RECOVERY and self.cc_recovery) or not conn._cwnd_limited()
        conn.cc.on_ack(acked, now, conn.rtt.srtt, hold)

    def _leave_disorder(self, ack: Seq) -> None:
        state = self.state
        if state is DISORDER or (state is LOSS and seq_diff(ack, self.recover) >= 0):
            self.state = OPEN

    def on_dup_ack(self, conn: Connection, now: float) -> None:
        """RFC 5681 §3.2 / RFC 6582 §3.2 duplicate ACK handling."""
        self._count_dup_ack(conn)
        if self.state is RECOVERY:
            self.inflate += conn.mss      # step 4: inflate by one segment
            return
        if self.dupacks == DUP_THRESH and seq_diff(conn.snd_una, self.recover) >= 0:
            # Step 2/3: fast retransmit and enter fast recovery.
            flight = seq_diff(conn.snd_max, conn.snd_una) - self.lt_sent
            self.recover = conn.snd_max
            self.state = RECOVERY
            self.cc_recovery = True
            conn.cc.on_enter_recovery(now, flight)
            self.inflate = 3 * conn.mss
            conn._ctx.count("fast_retransmits")
            conn._retransmit_head(now)
        elif self.dupacks < DUP_THRESH:
            self.limited_transmit(conn, now)

    def _count_dup_ack(self, conn: Connection) -> None:
        self.dupacks += 1
        conn._ctx.count("dup_acks_received")
        if self.state is OPEN:
            self.state = DISORDER

    def limited_transmit(self, conn: Connection, now: float) -> None:
        """RFC 3042 §2: on each of the first two duplicate ACKs send one new segment,
        if the peer's window allows, with at most cwnd + 2*SMSS outstanding; cwnd
        itself is unchanged."""
        if self.dupacks > 2:
            return
        self.inflate = self.dupacks * conn.mss
        before = conn.snd_max
        if conn._output(now, limit=1):
            # RFC 3042 §2: these segments do not count in the FlightSize that
            # sets ssthresh when recovery starts.
            self.lt_sent += max(0, seq_diff(conn.snd_max, before))

    def exit_recovery(self, conn: Connection, now: float) -> None:
        self.state = OPEN
        self.inflate = 0
        if self.cc_recovery:
            self.cc_recovery = False
            conn.cc.on_exit_recovery(now)

    # -------------------------------------------------------------- timers
    def on_rto(self, conn: Connection) -> None:
        """RFC 6298 §5.4-5.6 / RFC 5681 §3.1: a retransmission timeout (cwnd already cut)."""
        self.state = LOSS
        self.cc_recovery = False
        self.inflate = 0
        self.dupacks = 0
        self.lt_sent = 0
        self.recover = conn.snd_max       # RFC 6582 §3.2 step 1 after a timeout

    def arm_probe(self, conn: Connection, now: float) -> None:
        """Data is in flight after a send or an ACK: schedule a loss probe if any."""

    def on_loss_probe_timer(self, conn: Connection, now: float) -> None:
        pass

    def on_reorder_timer(self, conn: Connection, now: float) -> None:
        pass


class SackRecovery(RenoRecovery):
    """RFC 6675 SACK recovery with RFC 8985 RACK-TLP loss detection."""

    __slots__ = ("rack", "rprobe", "sb", "tlp_end", "tlp_retrans")

    sack = True

    def __init__(self, iss: Seq) -> None:
        super().__init__(iss)
        self.sb = SackScoreboard()        # RFC 6675 scoreboard
        self.rack = SentLog()             # RFC 8985 send log
        self.on_send = self.rack.on_send
        self.tlp_end: Seq | None = None   # RFC 8985 §7 TLP.end_seq of the outstanding probe
        self.tlp_retrans = False          # that probe was a retransmission
        self.rprobe = False               # this recovery's stall probe was sent

    # -------------------------------------------------------------- ACKs
    def advance(self, ack: Seq) -> None:
        self.sb.advance(ack)

    def record_sack(self, blocks: tuple, ack: Seq, d_una: int, snd_una: Seq,
                    snd_max: Seq) -> int:
        if blocks:
            # RFC 2018 §3 / RFC 6675 §2: record what the peer holds above SND.UNA.
            added = self.sb.update(ack if d_una > 0 else snd_una, snd_max, blocks)
            if self.tlp_end is not None and seq_diff(blocks[0][1], ack) <= 0:
                # RFC 2883 D-SACK: a copy arrived twice, so the probe was
                # not needed (RFC 8985 §7.4.2).
                self.tlp_retrans = False
            return added
        if d_una > 0:
            self.sb.advance(ack)
        return 0

    def sample_delivery(self, conn: Connection, now: float) -> None:
        """BBR's sample: the bytes SACKed, those in flight beyond them and RACK's
        RTT of the latest delivered segment (RFC 8985 §6.2 step 2)."""
        sacked = self.sb.sacked_bytes
        conn.cc.on_delivery(now, sacked, seq_diff(conn.snd_max, conn.snd_una) - sacked,
                            self.rack.rtt, not conn._cwnd_limited())

    def on_new_ack(self, conn: Connection, ack: Seq, acked: int, now: float) -> None:
        self._new_ack_common(conn, acked, now)
        if self.tlp_end is not None and seq_diff(ack, self.tlp_end) >= 0:
            self._tlp_acked(conn, now, seq_diff(conn.snd_max, ack) + acked)
        self.rack.on_ack(ack, self.sb, now)
        if self.state is RECOVERY:
            if seq_diff(ack, self.recover) >= 0:
                self.exit_recovery(conn, now)     # RFC 6675 §5: full acknowledgment
        else:
            self._leave_disorder(ack)
            self.inflate = 0
        # RFC 6675 §5 (C) on a partial ACK, RFC 8985 §6.2 on every ACK.
        self.loss_recovery(conn, now)

    def on_dup_ack(self, conn: Connection, now: float) -> None:
        """RFC 6675 §5 duplicate ACK (or one with new SACK information)."""
        self._count_dup_ack(conn)
        rack = self.rack
        sb = self.sb
        rack.on_ack(conn.snd_una, sb, now)
        if self.dupacks >= DUP_THRESH and self.state is not RECOVERY and not len(sb):
            # Duplicate ACKs without SACK blocks: RFC 5681 §3.2 step 2 deems
            # the first unacknowledged segment lost.
            rack.mark_head_lost()
        self.loss_recovery(conn, now)
        if self.state is not RECOVERY:
            self.limited_transmit(conn, now)

    def _reo_wnd(self, conn: Connection) -> float:
        """RFC 8985 §6.2 step 4: the reordering window."""
        rack = self.rack
        if not rack.reordering_seen and (
                self.state is RECOVERY or self.sb.sacked_bytes >= DUP_THRESH * conn.mss):
            return 0.0
        min_rtt = rack.min_rtt or 0.0
        srtt = conn.rtt.srtt
        wnd = min_rtt / 4
        return wnd if srtt is None or wnd < srtt else srtt

    def loss_recovery(self, conn: Connection, now: float) -> None:
        """Detect losses (RFC 8985 RACK and RFC 6675 IsLost), start or continue recovery."""
        rack = self.rack
        sb = self.sb
        timers = conn._timers
        if self.state is not RECOVERY and not len(sb) and not rack.has_retransmitted \
                and not rack.has_lost:
            timers.at[REORDER] = None
            return                               # no hole known: nothing can be lost
        if len(sb):
            rack.mark_lost_by_sack(sb, conn.mss)
        timeout = rack.detect_loss(now, self._reo_wnd(conn))
        if timeout > 0:
            timers.arm(REORDER, now + timeout)   # RFC 8985 §6.3
        else:
            timers.at[REORDER] = None
        if self.state is not RECOVERY:
            if not rack.has_lost:
                return
            # RFC 6675 §5 (4): enter loss recovery, RecoveryPoint = HighData.
            # One reduction per window of data (RFC 6582 §3.2 step 2, RFC 5681
            # §3.2): losses below the previous recovery point (e.g. data sent
            # again after an RTO, whose window was cut already) are repaired
            # without reducing cwnd again.
            ctx = conn._ctx
            if seq_diff(conn.snd_una, self.recover) >= 0:
                flight = seq_diff(conn.snd_max, conn.snd_una) - self.lt_sent
                conn.cc.on_enter_recovery(now, flight)
                self.cc_recovery = True
                ctx.count("fast_retransmits")
                ctx.count("sack_recoveries")
            else:
                self.cc_recovery = False
                ctx.count("rack_repairs")
            self.recover = conn.snd_max
            self.state = RECOVERY
            self.inflate = 0
            self.rprobe = False
            # RFC 6675 §5 (4.3) / RFC 5681 §3.2 step 2: the fast retransmit goes
            # out on entering recovery whatever cwnd - pipe says (RFC 6937 §3
            # likewise sends at least one segment); a peer that ACKs every few
            # segments may not send another ACK to clock it out.
            # Not after an RTO (the rack_repairs case): go-back-N is resending
            # already, within the loss window.
            lost = rack.first_lost() if self.cc_recovery else None
            if lost is not None:
                seq, length = lost
                conn._retransmit_segment(seq, length, now)
        self._recovery_send(conn, now)
        if self.state is RECOVERY:
            self.arm_probe(conn, now)            # the stall probe (see arm_probe)

    def _recovery_send(self, conn: Connection, now: float) -> None:
        """RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send NextSeg().

        Rule (1): the lowest segment deemed lost (by RFC 6675 IsLost or by
        RACK, RFC 8985 §6.2) and not retransmitted since; rule (2): new data
        through ``_output`` with the window opened by exactly cwnd - pipe.
        A retransmission that is itself lost is deemed lost again by RACK
        once a segment sent after it is delivered, and goes out again here.
        """
        rack = self.rack
        mss = conn.mss
        cwnd = conn.cc.cwnd
        for _ in range(64):                       # bounded work per ACK
            pipe = rack.pipe()
            if cwnd - pipe < mss:
                break
            lost = rack.first_lost()
            if lost is not None:
                seq, length = lost
                if not conn._retransmit_segment(seq, length, now):
                    break
                continue
            self.inflate = max(0, seq_diff(conn.snd_nxt, conn.snd_una) - pipe)
            if not conn._output(now, limit=1):
                break
        self.inflate = max(0, seq_diff(conn.snd_nxt, conn.snd_una) - rack.pipe())

    # -------------------------------------------------------------- timers
    def on_rto(self, conn: Connection) -> None:
        super().on_rto(conn)
        self.tlp_end = None
        self.tlp_retrans = False
        self.sb.clear()                  # the receiver may have reneged (RFC 2018 §8)
        self.rack.clear()                # go-back-N records everything anew

    def arm_probe(self, conn: Connection, now: float) -> None:
        """RFC 8985 §7.2: schedule a tail loss probe (PTO) while data is in flight.

        In recovery RFC 8985 §7.2 schedules no probe and relies on ACKs to clock
        out retransmissions. A peer that ACKs every few segments (Linux does,
        and compresses SACKs) may send one ACK for what is left in flight; when
        that ACK or the retransmission is lost, nothing happens until the RTO
        (>= 200 ms). So tcpstack arms one *stall probe* per recovery: after a
        PTO without a new or duplicate ACK (one that tells of delivery, RFC
        5681 §2) it resends the first unacknowledged segment, which either
        repairs a lost retransmission or draws an ACK (with a D-SACK) that
        tells RACK where things stand. It is one segment beyond cwnd, like the
        probe outside recovery.
        """
        timers = conn._timers
        if conn.state not in _SEND_STATES or seq_diff(conn.snd_una, conn.snd_max) == 0 \
                or conn.rtt.retries \
                or (self.rprobe if self.state is RECOVERY else self.tlp_end is not None):
            # No probe after an RTO until new data is ACKed (Linux: only in the
            # Open and CWR states), nor a second one for the same tail.
            timers.at[LOSS_PROBE] = None
            return
        srtt = conn.rtt.srtt
        if srtt is None:
            pto = 1.0                            # §7.2: 1 s before any RTT sample
        elif seq_diff(conn.snd_max, conn.snd_una) <= conn.mss:
            pto = 2 * srtt + WC_DEL_ACK          # one segment: the ACK may be delayed
        else:
            pto = 2 * srtt + TLP_EXTRA
        deadline = now + pto
        rtx = timers.at[RETRANSMIT]
        if rtx is not None and deadline >= rtx:
            # §7.2 says PTO = min(PTO, RTO), i.e. a probe instead of the first
            # timeout. We let the RTO fire instead (as before RACK-TLP): with
            # one segment in flight the retransmission is the same segment.
            timers.at[LOSS_PROBE] = None
        else:
            timers.arm(LOSS_PROBE, deadline)

    def on_loss_probe_timer(self, conn: Connection, now: float) -> None:
        """RFC 8985 §7.3: send one new segment, or resend the last one, to get an ACK
        (with SACK blocks) that lets RACK find a tail loss instead of waiting for RTO."""
        if conn.state not in _SEND_STATES or seq_diff(conn.snd_una, conn.snd_max) == 0:
            return
        if self.state is RECOVERY:
            self._recovery_stall_probe(conn, now)
            return
        if self.tlp_end is not None:
            return
        conn._trace_timer(TIMER_LOSS_PROBE, now)
        conn._ctx.count("loss_probes")
        saved = self.inflate
        # New data, if the peer's window allows, regardless of cwnd (§7.3).
        self.inflate = seq_diff(conn.snd_nxt, conn.snd_una) + conn.mss
        sent = conn._output(now, force_one=True, limit=1)
        self.inflate = saved
        self.tlp_retrans = False
        if not sent:
            # Else the highest-sequence segment sent so far.
            start = conn.snd_max - conn.mss
            if seq_diff(start, conn.snd_una) < 0:
                start = conn.snd_una
            if not conn._retransmit_range(start, seq_diff(conn.snd_max, start), now):
                return
            self.tlp_retrans = True
        self.tlp_end = conn.snd_max
        conn._timers.at[LOSS_PROBE] = None
        conn._timers.arm(RETRANSMIT, now + conn.rtt.rto)   # §7.3: re-arm RTO, not PTO

    def _recovery_stall_probe(self, conn: Connection, now: float) -> None:
        """No ACK for a PTO in recovery: resend the first unacknowledged segment
        (once per recovery; the RTO remains the backstop). See ``arm_probe``."""
        if self.rprobe:
            return
        self.rprobe = True
        conn._trace_timer(TIMER_LOSS_PROBE, now, "in recovery")
        conn._ctx.count("recovery_stall_probes")
        if conn._retransmit_segment(conn.snd_una, seq_diff(conn.snd_max, conn.snd_una), now):
            conn._timers.arm(RETRANSMIT, now + conn.rtt.rto)   # as after a probe (§7.3)

    def _tlp_acked(self, conn: Connection, now: float, flight: int) -> None:
        """RFC 8985 §7.4: the probe is acknowledged; if it was a retransmission that
        (without a D-SACK saying the original arrived too) repaired a loss, the
        loss still calls for a congestion response (one reduction)."""
        self.tlp_end = None
        if self.tlp_retrans and self.state is not RECOVERY:
            conn._ctx.count("loss_probe_repairs")
            conn.cc.on_enter_recovery(now, flight)
            conn.cc.on_exit_recovery(now)
        self.tlp_retrans = False

    def on_reorder_timer(self, conn: Connection, now: float) -> None:
        """RFC 8985 §6.3: the reordering window of a suspect segment has passed."""
        if conn.state not in _SEND_STATES:
            return
        conn._trace_timer(TIMER_REORDER, now)
        self.loss_recovery(conn, now)


def make_recovery(sack: bool, iss: Seq) -> RenoRecovery:
    """The recovery for a connection, chosen once: SACK-based when both ends agreed
    on SACK-permitted (RFC 2018 §2), NewReno otherwise."""
    return SackRecovery(iss) if sack else RenoRecovery(iss)
