"""The send side of a connection: building segments, output, retransmission,
and the timers that send (retransmission, persist, keepalive).

``SendSide`` is a part of ``Connection`` (a mixin: the same TCB, the same
``self``); it reads the receive side only through ``_window_field()`` and
``_sack_blocks()`` for the ACK, window and SACK blocks every segment carries.
"""

from __future__ import annotations

from collections import deque

from tcpstack.core.events import TIMER_KEEPALIVE, TIMER_PERSIST, TIMER_RETRANSMIT
from tcpstack.core.options import syn_options, tsval_at
from tcpstack.core.state import State
from tcpstack.core.timers import (
    DELAYED_ACK,
    KEEPALIVE,
    LOSS_PROBE,
    PERSIST,
    REORDER,
    RETRANSMIT,
)
from tcpstack.seq import Seq, seq_diff, wire_seq
from tcpstack.wire.tcp import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    TcpOptions,
    TcpSegment,
    new_options,
    new_segment,
)

__all__ = ["SEND_STATES", "SendSide"]

_MASK = 0xFFFFFFFF
_add = int.__add__

# States in which our data (and FIN) may go out.
SEND_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING,
                         State.LAST_ACK})
# States in which keepalive probes are sent (Linux: also FIN-WAIT-2).
_KEEPALIVE_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_2})
# Our FIN is sent and not yet acknowledged.
_CLOSING_STATES = frozenset({State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK})
# States in which ABORT sends a RST (RFC 9293 §3.10.5).
_RST_ON_ABORT = frozenset({State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1,
                           State.FIN_WAIT_2, State.CLOSE_WAIT})
_NO_OPTIONS = TcpOptions()
# Retransmission timeouts in a row before a PMTU black hole is suspected
# (Linux tcp_retries1, which starts tcp_mtu_probing's black-hole search).
BLACKHOLE_RTOS = 3


class SendSide:
    """Segment building, output and retransmission of ``Connection``."""

    __slots__ = ()

    # ------------------------------------------------------------ building
    def _tsval(self, now: float) -> int:
        return tsval_at(now, self._ts_offset)

    def _segment(self, seq: int, flags: int, now: float, payload: bytes = b"",
                 sack: tuple = ()) -> TcpSegment:
        """Build one segment carrying our current ACK, window and options."""
        if flags & ACK:
            ack = int(self.rcv_nxt)
            window = self._window_field()
            self._last_ack_sent = self.rcv_nxt
            self._ack_pending = 0
            self._ack_now = False
            self._timers.at[DELAYED_ACK] = None
        else:
            ack = 0
            window = min(self._rcv_cap, 0xFFFF)
        # new_options/new_segment: the same frozen instances as TcpOptions(...)
        # and TcpSegment(...), built faster (all fields positional).
        if self._ts_ok:
            # TSval: tsval_at(now, self._ts_offset) (RFC 7323 §5.4), inline: every segment.
            opts = new_options(None, None, False, sack,
                               ((int(now * 1000) + self._ts_offset) & _MASK, self._ts_recent))
        elif sack:
            opts = new_options(None, None, False, sack, None)
        else:
            opts = _NO_OPTIONS
        return new_segment(self.local[1], self.remote[1], int(seq) & _MASK, ack, flags, window,
                           0, opts, payload)

    def _emit(self, seg: TcpSegment, now: float) -> None:
        self._ctx.emit(self.local, self.remote, seg, now)

    def _send_ack(self, now: float) -> None:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (with SACK blocks when we hold holes).

        SND.NXT here is the highest sequence number sent (``snd_max``): after a
        timeout ``snd_nxt`` is rewound for go-back-N, but an ACK must not look
        like an old duplicate to the peer.
        """
        sack = self._sack_blocks() if self._sack_ok and self._ooo else ()
        self._emit(self._segment(self.snd_max, ACK, now, sack=sack), now)

    def _oow_ack_allowed(self, now: float) -> bool:
        """At most one ACK per ``invalid_ack_interval`` answering what the peer should
        not have sent (Linux ``tcp_oow_rate_limited``): a flood of invalid segments
        must not become a flood of ACKs, nor an ACK loop between two stacks."""
        if now - self._last_oow_ack < self._cfg.invalid_ack_interval:
            self._ctx.count("oow_acks_rate_limited")
            return False
        self._last_oow_ack = now
        return True

    def _send_oow_ack(self, seg: TcpSegment, now: float) -> None:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> for an unacceptable segment; rate-limited
        unless it carried data or a FIN (no ACK loop is made of those; Linux alike)."""
        if ((seg.payload or seg.flags & FIN) and not seg.flags & SYN) or self._oow_ack_allowed(now):
            self._send_ack(now)

    def _send_challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§5.2 challenge ACK, rate-limited per connection and per
        stack (§7)."""
        ctx = self._ctx
        if not self._oow_ack_allowed(now):
            ctx.count("challenge_acks_rate_limited")
        elif ctx.challenge_ack_allowed(now):
            ctx.count("challenge_acks")
            self._send_ack(now)
        else:
            ctx.count("challenge_acks_rate_limited")

    def _send_rst_abort(self, now: float) -> None:
        """RFC 9293 §3.10.5: <SEQ=SND.NXT><CTL=RST> in the synchronized states."""
        if self.state in _RST_ON_ABORT:
            self._emit(self._rst(int(self.snd_max), now), now)

    def _send_rst_for(self, seg: TcpSegment, now: float) -> None:
        """<SEQ=SEG.ACK><CTL=RST>: the answer to an unacceptable ACK (§3.10.7.3/4)."""
        self._emit(self._rst(seg.ack, now), now)

    def _rst(self, seq: int, now: float) -> TcpSegment:
        """A RST, with our timestamps once they are in use (RFC 7323 §3.2: SHOULD)."""
        opts = (new_options(None, None, False, (), (self._tsval(now), self._ts_recent))
                if self._ts_ok else _NO_OPTIONS)
        return TcpSegment(self.local[1], self.remote[1], seq, 0, RST, 0, 0, opts)

    def _send_syn(self, now: float) -> None:
        """SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), always with the same ISS."""
        if self.state is State.SYN_SENT:
            seg = new_segment(self.local[1], self.remote[1], int(self.iss), 0, SYN,
                              min(self._rcv_cap, 0xFFFF), 0,
                              syn_options(self._our_options, self._tsval(now), None), b"")
        else:
            opts = syn_options(self._our_options, self._tsval(now), self._peer_syn_options)
            window = min(self._rcv_cap, 0xFFFF)  # RFC 7323 §2.2: SYN windows are unscaled
            self._rcv_adv = Seq(int(self.rcv_nxt) + window)
            self._last_ack_sent = self.rcv_nxt
            seg = new_segment(self.local[1], self.remote[1], int(self.iss), int(self.rcv_nxt),
                              SYN | ACK, window, 0, opts, b"")
        if seq_diff(self.snd_nxt, self.iss) == 0:
            self.snd_nxt = self.iss + 1
            self.snd_max = self.snd_nxt
            self._rtt_seq = self.iss
            self._rtt_time = now
        self._emit(seg, now)
        if self._timers.at[RETRANSMIT] is None:
            self._timers.arm(RETRANSMIT, now + self.rtt.rto)

    # ------------------------------------------------------------ output
    def _effective_window(self) -> int:
        # Each short segment in flight costs a whole MSS of cwnd (``_short_charge``):
        # cwnd bounds packets as well as bytes, as Linux's cwnd counts packets, so
        # 1-byte nodelay writes put at most cwnd/MSS packets in flight.
        cwnd = self.cc.cwnd + self._recovery.inflate - self._short_charge
        return self.snd_wnd if self.snd_wnd < cwnd else cwnd

    def _output(self, now: float, force_one: bool = False, limit: int = 0) -> bool:
        """Send what the windows, Nagle and SWS avoidance allow; True if anything went out.

        ``force_one`` is the persist timer's override of SWS avoidance
        (RFC 9293 §3.8.6.2.1 "override timeout"); ``limit`` > 0 stops after
        that many segments (limited transmit, loss probes, recovery).
        """
        if self.state not in SEND_STATES:
            if self._ack_now:
                self._send_ack(now)
            return False
        sndbuf = self._sndbuf
        fin_seq = self._fin_seq
        # Fast path: nothing queued beyond SND.NXT and no FIN to send.
        if (sndbuf.nbytes == seq_diff(self.snd_nxt, self._buf_seq)
                and (fin_seq is None or seq_diff(self.snd_nxt, fin_seq) > 0)):
            if self._ack_now:
                self._send_ack(now)
            return False
        if self._pmtu_expires is not None and now >= self._pmtu_expires:
            self._pmtu_check_expiry(now)         # RFC 1191 §6.3: try a larger MTU again
        sent = False
        mss = self.mss
        sack = self._sack_blocks() if self._sack_ok and self._ooo else ()
        maxseg = mss
        tso_max = self._cfg.tso_max
        if sack:
            # Room for the SACK option: a full-sized segment is this much smaller
            # (RFC 9293 §3.7.1), also for the SWS/Nagle test below.
            maxseg = mss = mss - (2 + 8 * len(sack) + 2)
        elif tso_max > mss:
            maxseg = tso_max - tso_max % mss
        if seq_diff(self.snd_una, self.snd_max) == 0 and now - self._last_send > self.rtt.rto:
            # RFC 5681 §4.1: restart window after an idle period.
            self.cc.on_idle_restart(now, self.rtt.rto)
        # Sending changes none of these, only SND.NXT/SND.MAX.
        una = self.snd_una
        buf_seq = self._buf_seq
        buffered = sndbuf.nbytes
        wnd = self._effective_window()
        if self._probe_low and self.mtu_probe is None and not limit and not force_one:
            # RFC 4821: one probe segment ahead of the rest (core/icmp.py).
            sent = self._mtu_probe_maybe(now, buffered - seq_diff(self.snd_nxt, buf_seq),
                                         seq_diff(una, self.snd_nxt) + wnd)
        while True:
            snd_nxt = self.snd_nxt
            off = seq_diff(snd_nxt, buf_seq)
            unsent = buffered - off
            if unsent > 0:
                n = unsent if unsent < maxseg else maxseg
                usable = seq_diff(una, snd_nxt) + wnd
                if usable < n:
                    n = usable
                if n <= 0:
                    break
                if n < mss and not force_one:
                    # RFC 9293 §3.8.6.2.1 sender SWS avoidance and Nagle (RFC 896,
                    # RFC 1122 4.2.3.4): send a short segment only if it is all we
                    # have and nothing is unacknowledged (or Nagle is off), or it
                    # fills at least half the largest window the peer offered.
                    # After shutdown the tail goes at once (Linux pushes it with the FIN).
                    idle = (seq_diff(snd_nxt, una) == 0 or self.options.nodelay
                            or fin_seq is not None)
                    if not ((n == unsent and idle) or n >= (self.max_snd_wnd >> 1)):
                        break
                elif n > mss:
                    n -= n % mss            # TSO super-segment: whole MSS multiples
                force_one = False
                flags = ACK
                end = wire_seq(_add(snd_nxt, n) & _MASK)
                if fin_seq is not None and seq_diff(end, fin_seq) == 0:
                    flags |= FIN
                if n == unsent:
                    flags |= PSH
                payload = sndbuf.peek(off, n)
                seg = self._segment(snd_nxt, flags, now, payload, sack)
                self._emit(seg, now)
                if flags & FIN:
                    end = wire_seq(_add(end, 1) & _MASK)
                self._account_sent(snd_nxt, end, now)
                sent = True
                limit -= 1
                if limit == 0:
                    break
                continue
            if (fin_seq is not None and seq_diff(snd_nxt, fin_seq) == 0
                    and (seq_diff(una, snd_nxt) + wnd > 0 or force_one)):
                # All data is out: send the FIN. Like data it needs room in the
                # window (Linux tcp_snd_wnd_test counts the FIN); against a zero
                # window the persist timer probes until it opens.
                self._emit(self._segment(snd_nxt, FIN | ACK, now, sack=sack), now)
                self._account_sent(snd_nxt, snd_nxt + 1, now)
                sent = True
            break
        if not sent and self._ack_now:
            self._send_ack(now)
        if sent:
            self._recovery.arm_probe(self, now)
        # RFC 1122 4.2.2.17: data waiting, nothing in flight, window closed -> persist.
        at = self._timers.at
        if (at[RETRANSMIT] is None and at[PERSIST] is None
                and seq_diff(self.snd_una, self.snd_max) == 0 and self._unsent()):
            self._timers.arm(PERSIST, now + self._persist_interval())
        return sent

    def _unsent(self) -> bool:
        """Data or our FIN waits beyond SND.NXT."""
        if seq_diff(self._buf_seq + self._sndbuf.nbytes, self.snd_nxt) > 0:
            return True
        fin = self._fin_seq
        return fin is not None and seq_diff(fin, self.snd_nxt) >= 0

    def _account_sent(self, start: Seq, end: Seq, now: float) -> None:
        """Bookkeeping after sending [start, end) of sequence space."""
        snd_max = self.snd_max
        fresh = seq_diff(start, snd_max) >= 0
        self._recovery.on_send(start, end, now, not fresh)
        if fresh:
            self._last_send = now            # RFC 5681 §4.1: the last time new data went out
            size = seq_diff(end, start)
            if size < self.mss:
                if self._short_sent is None:
                    self._short_sent = deque()
                self._short_sent.append((end, self.mss - size))
                self._short_charge += self.mss - size
        if seq_diff(end, snd_max) > 0:
            if fresh and self._rtt_seq is None and not self._ts_ok:
                self._rtt_seq = start        # time this segment (RFC 6298 §3, Karn)
                self._rtt_time = now
            if not fresh:
                self._count_retransmit()
            self.snd_max = end
        else:
            self._count_retransmit()
        self.snd_nxt = end
        # How full the window is, per round (Linux tcp_cwnd_validate: max_packets_out
        # and cwnd_usage_seq): the most in flight since the previous round was ACKed.
        flight = seq_diff(self.snd_max, self.snd_una)
        if flight > self._max_flight or seq_diff(self.snd_una, self._flight_round_end) >= 0:
            self._max_flight = flight
            self._flight_round_end = self.snd_max
        timers = self._timers
        if timers.at[RETRANSMIT] is None:
            timers.arm(RETRANSMIT, now + self.rtt.rto)     # RFC 6298 §5.1
        timers.at[PERSIST] = None

    def _count_retransmit(self) -> None:
        self.retransmits += 1
        self._ctx.count("retransmitted_segments")

    # ------------------------------------------------------------ ACKs of our data
    def _on_new_ack(self, seg: TcpSegment, ack: Seq, acked: int, now: float) -> None:
        """SND.UNA < SEG.ACK =< SND.MAX: new data acknowledged."""
        # RTT sample (RFC 7323 §4 with timestamps, else RFC 6298 §3 with Karn's rule).
        ts = seg.options.timestamps
        rtt = self.rtt
        if self._ts_ok and ts is not None and ts[1]:
            # After an RTO, an echo older than our latest retransmission is stale:
            # the receiver answers a duplicate with the TS.Recent of the first
            # copy (RFC 7323 §4.3 leaves it unchanged for an unacceptable
            # segment), and the "sample" would include every backoff. Karn's
            # rule for timestamps: use only an echo of the retransmission itself.
            if not rtt.backoffs or seq_diff(ts[1], self._rto_tsval) >= 0:
                # (now's TSval, tsval_at inline, less the echo: RFC 7323 §4.1)
                rtt.sample(((int(now * 1000) + self._ts_offset - ts[1]) & _MASK) / 1000)
        elif self._rtt_seq is not None and seq_diff(ack, self._rtt_seq) > 0:
            rtt.sample(now - self._rtt_time)
            self._rtt_seq = None
        self.snd_una = ack
        if seq_diff(self.snd_nxt, ack) < 0:
            self.snd_nxt = ack
        short = self._short_sent
        while short and seq_diff(ack, short[0][0]) >= 0:
            self._short_charge -= short.popleft()[1]
        data_acked = seq_diff(ack, self._buf_seq)
        if data_acked > 0:
            buffered = self._sndbuf.nbytes
            if data_acked > buffered:
                data_acked = buffered            # the rest was our FIN
            self._sndbuf.consume(data_acked)
            self._buf_seq = wire_seq(_add(self._buf_seq, data_acked) & _MASK)
            self.bytes_sent += data_acked
            self._ctx.changed.add(self)          # writable
        rtt.progress()                           # new data ACKed: retries start again
        if self.mtu_probe is not None:
            self._mtu_probe_acked(ack, now)      # RFC 4821 §7.6.1 (core/icmp.py)
        self._recovery.on_new_ack(self, ack, acked, now)
        timers = self._timers
        if seq_diff(self.snd_una, self.snd_max) == 0:
            at = timers.at
            at[RETRANSMIT] = at[LOSS_PROBE] = at[REORDER] = None   # RFC 6298 §5.2
        else:
            timers.arm(RETRANSMIT, now + rtt.rto)  # RFC 6298 §5.3
            self._recovery.arm_probe(self, now)
        fin = self._fin_seq
        if fin is not None and seq_diff(ack, fin) > 0:
            self._our_fin_acked(now)

    def _cwnd_limited(self) -> bool:
        """Whether the window, not the application, limited what was in flight
        (Linux tcp_is_cwnd_limited): only then may cwnd grow (RFC 7661 §4.1,
        RFC 9438 §5.8). In slow start, cwnd may grow to twice the flight."""
        cc = self.cc
        if cc.cwnd < cc.ssthresh:
            return cc.cwnd < 2 * self._max_flight
        return self._max_flight + self.mss > cc.cwnd

    # ------------------------------------------------------------ retransmission
    def _retransmit_head(self, now: float) -> None:
        """Resend the first unacknowledged segment (fast retransmit, RFC 5681 §3.2)."""
        una = self.snd_una
        off = seq_diff(una, self._buf_seq)
        if off < 0:
            return                               # our SYN is the head: the RTO resends it
        # What was sent, never beyond SND.MAX: against a closed window new data
        # waits for the persist timer, not for a retransmission.
        avail = min(self._sndbuf.nbytes, seq_diff(self.snd_max, self._buf_seq)) - off
        self._rtt_seq = None                     # Karn: no sample from a retransmission
        fin = self._fin_seq
        if avail > 0:
            n = min(avail, self.mss)
            end = una + n
            flags = ACK
            if fin is not None and seq_diff(end, fin) == 0:
                flags |= FIN
            self._emit(self._segment(una, flags, now, self._sndbuf.peek(off, n)), now)
            if flags & FIN:
                n += 1
        elif fin is not None and seq_diff(una, fin) == 0:
            self._emit(self._segment(una, FIN | ACK, now), now)
            n = 1
        else:
            return
        self._recovery.on_send(una, una + n, now, True)
        self._count_retransmit()
        self._timers.arm(RETRANSMIT, now + self.rtt.rto)

    def _retransmit_segment(self, seq: Seq, length: int, now: float) -> bool:
        """Resend at most one MSS of ``[seq, seq+length)``."""
        return self._retransmit_range(seq, length if length < self.mss else self.mss, now)

    def _retransmit_range(self, seq: Seq, length: int, now: float) -> bool:
        """Resend ``[seq, seq+length)`` of the send queue (a SACK hole)."""
        off = seq_diff(seq, self._buf_seq)
        avail = self._sndbuf.nbytes - off
        if off < 0:
            return False
        flags = ACK
        fin = self._fin_seq
        n = min(length, avail)
        if n <= 0:
            if fin is None or seq_diff(seq, fin) != 0:
                return False
            n = 0
            flags |= FIN
        elif fin is not None and seq_diff(seq + n, fin) == 0 and n < length:
            flags |= FIN
        if n and n == avail:
            flags |= PSH                          # the end of the queue, as first sent
        payload = self._sndbuf.peek(off, n) if n else b""
        self._rtt_seq = None                      # Karn
        self._emit(self._segment(seq, flags, now, payload), now)
        self._recovery.on_send(seq, seq + n + (1 if flags & FIN else 0), now, True)
        self._count_retransmit()
        return True

    # ------------------------------------------------------------ timers that send
    def _persist_interval(self) -> float:
        return min(self.rtt.rto * (1 << min(self._persist_backoff, 30)),
                   self._cfg.max_rto)

    def _on_retransmit_timer(self, now: float) -> None:
        """RFC 6298 §5.4-§5.6: retransmit the earliest segment, back off, maybe give up."""
        state = self.state
        rtt = self.rtt
        cfg = self._cfg
        timers = self._timers
        self._trace_timer(TIMER_RETRANSMIT, now, f"retry {rtt.retries + 1}")
        if (state is State.SYN_SENT or state is State.SYN_RECEIVED
                or seq_diff(self.snd_una, self.iss) == 0):   # our SYN not yet ACKed
            limit = cfg.syn_retries if state is State.SYN_SENT else cfg.synack_retries
            if rtt.retries >= limit:
                self._give_up(now)
                return
            rtt.backoff()
            self._rtt_seq = None
            self._syn_lost = True
            self._count_retransmit()
            timers.at[RETRANSMIT] = None
            self._send_syn(now)                  # the same ISS (RFC 9293 §3.4.1)
            return
        if seq_diff(self.snd_una, self.snd_max) == 0:
            return
        if rtt.retries >= cfg.retries2:
            self._give_up(now)
            return
        flight = seq_diff(self.snd_max, self.snd_una)
        self._rto_tsval = self._tsval(now)       # what the retransmission will carry
        self.cc.on_rto(now, flight)              # RFC 5681 §3.1 equation 4, cwnd = 1 MSS
        rtt.backoff()                            # RFC 6298 §5.5
        self._rtt_seq = None                     # Karn's rule
        self._mtu_probe_lost()                   # a probe in flight timed out too
        if rtt.retries >= BLACKHOLE_RTOS:
            self._blackhole_suspected(now)       # RFC 4821 §7.7 (core/icmp.py)
        self._recovery.on_rto(self)
        self._short_sent = None                  # go-back-N: nothing counts as in flight
        self._short_charge = 0
        timers.at[LOSS_PROBE] = timers.at[REORDER] = None
        self.snd_nxt = self.snd_una              # go back N from the first unacked byte
        timers.at[RETRANSMIT] = None
        if not self._output(now, force_one=True):
            self._retransmit_head(now)
        if timers.at[RETRANSMIT] is None:
            timers.arm(RETRANSMIT, now + rtt.rto)

    def _give_up(self, now: float) -> None:
        self._ctx.count("timeouts")
        if self.state is State.SYN_RECEIVED and self.passive:
            # A half-open connection expires silently (Linux sends no RST): a
            # spoofed SYN's victim must not be sent backscatter.
            self._ctx.count("half_open_expired")
        elif self.state is not State.SYN_SENT:
            self._send_rst_abort(now)
        self._fail(self._timeout_error(), now)

    def _on_persist_timer(self, now: float) -> None:
        """RFC 1122 4.2.2.17 / RFC 9293 §3.8.6.1: zero window probing."""
        if self.state not in SEND_STATES:
            return
        if not self._unsent() or seq_diff(self.snd_una, self.snd_max) != 0:
            self._persist_backoff = 0
            return
        self._trace_timer(TIMER_PERSIST, now, f"probe {self._persist_probes + 1}")
        self._persist_probes += 1
        if self._persist_probes > self._cfg.retries2:
            self._give_up(now)                   # the peer stopped answering at all
            return
        if seq_diff(self.snd_una, self.snd_nxt) + self._effective_window() > 0:
            self._output(now, force_one=True)    # the window opened a little: send anyway
        else:
            # Linux-style probe: <SEQ=SND.UNA-1><ACK=RCV.NXT>, no data; the peer
            # answers with an ACK carrying its current window.
            self._emit(self._segment(self.snd_una - 1, ACK, now), now)
            self._ctx.count("zero_window_probes")
        self._persist_backoff += 1
        if self._timers.at[RETRANSMIT] is None:
            self._timers.arm(PERSIST, now + self._persist_interval())

    def _on_keepalive_timer(self, now: float) -> None:
        """RFC 1122 4.2.3.6: probe an idle connection, abort after ``count`` misses."""
        ka = self.options.keepalive
        if ka is None:
            return
        idle, interval, count = ka
        timers = self._timers
        if self.state not in _KEEPALIVE_STATES:
            if self.state in _CLOSING_STATES:
                # Our FIN is in flight (the retransmission timer watches it); keep
                # the keepalive for the FIN-WAIT-2 that may follow (Linux alike).
                timers.arm(KEEPALIVE, now + idle)
            return
        if seq_diff(self.snd_una, self.snd_max) != 0 or self._sndbuf.nbytes:
            # Data in flight: the retransmission timer watches the peer.
            timers.arm(KEEPALIVE, now + idle)
            return
        # Compare deadlines, not differences: now - last < idle can hold at the
        # very deadline in floating point, and the timer would re-arm for now.
        if self._ka_probes == 0 and self._last_rcv + idle > now:
            timers.arm(KEEPALIVE, self._last_rcv + idle)
            return
        if self._ka_probes >= count:
            self._trace_timer(TIMER_KEEPALIVE, now, f"{count} probes unanswered")
            self._give_up(now)
            return
        self._ka_probes += 1
        self._trace_timer(TIMER_KEEPALIVE, now, f"probe {self._ka_probes}/{count}")
        # <SEQ=SND.NXT-1> with no data: outside the peer's window, so it ACKs.
        self._emit(self._segment(self.snd_max - 1, ACK, now), now)
        self._ctx.count("keepalive_probes")
        timers.arm(KEEPALIVE, now + interval)
