"""Header prediction: the two segments a bulk transfer is made of, in a few steps.

Van Jacobson's header prediction (4.3BSD-Reno ``tcp_input``; Linux's "fast
path" in ``tcp_rcv_established``): in ESTABLISHED, a segment with only ACK
(and maybe PSH), exactly the next sequence number, timestamps that pass
PAWS, no SACK blocks and an ACK of nothing new or of new data is the next
in-order data (a bulk receiver's, and with a new ACK a request's or a
response's) or a pure ACK of new data (a bulk sender's); a changed window
is then a window update, never a duplicate ACK. For those every check of
RFC 9293 §3.10.7.4 has a known outcome, so the steps that do something are
run directly. Any other segment takes the full path in ``connection.py``;
the result is the same either way (tests/unit/test_core_prediction.py),
only cheaper here. Counted as ``predicted_data`` / ``predicted_acks``.
"""

from __future__ import annotations

from tcpstack.core.recovery import RECOVERY
from tcpstack.core.state import State
from tcpstack.core.timers import PERSIST
from tcpstack.seq import seq_diff, wire_seq
from tcpstack.wire.tcp import ACK, PSH, TcpSegment

__all__ = ["HeaderPrediction"]


class HeaderPrediction:
    """``_predicted(seg, now)`` of ``Connection`` (a mixin: the same TCB)."""

    __slots__ = ()

    def _predicted(self, seg: TcpSegment, now: float) -> bool:
        """Handle ``seg`` if it is predictable; False (and nothing changed) if not."""
        rec = self._recovery
        if seg.flags | PSH != ACK | PSH or self._ooo or rec.state is RECOVERY or self._closed:
            return False
        seq = seg.seq
        if seq_diff(self.rcv_nxt, seq) != 0:
            return False
        opts = seg.options
        if (opts.sack_blocks or self._fin_rcv_off is not None or rec.tlp_end is not None
                or self._timers.at[PERSIST] is not None or self._persist_probes):
            return False
        ts = opts.timestamps if self._ts_ok else None
        if ts is not None:
            if seq_diff(ts[0], self._ts_recent) < 0:
                return False                     # PAWS has a say (RFC 7323 §5.3)
        elif self._ts_ok:
            return False
        # Window update rule (RFC 9293 §3.10.7.4 fifth): SND.WL1/WL2 must not move back.
        ack = seg.ack
        wl = seq_diff(seq, self.snd_wl1)
        wl2 = seq_diff(ack, self.snd_wl2)
        if wl < 0 or (wl == 0 and wl2 < 0):
            return False
        payload = seg.payload
        n = len(payload)
        # SEG.ACK - SND.UNA: 0 (nothing new) or new data up to SND.MAX.
        acked = seq_diff(ack, self.snd_una)
        if acked < 0 or acked > seq_diff(self.snd_max, self.snd_una):
            return False
        counters = self._ctx.counters
        if n:
            # In-order data, all of it inside the window.
            room = seq_diff(self._rcv_adv, seq)
            if room < 0 or n > room:
                return False
            counters["predicted_data"] = counters.get("predicted_data", 0) + 1
        else:
            if acked == 0:
                return False                     # a duplicate ACK or a window update
            counters["predicted_acks"] = counters.get("predicted_acks", 0) + 1
        self._heard_from_peer(now)
        if ts is not None and seq_diff(self._last_ack_sent, seq) >= 0:
            self._ts_recent = ts[0]              # RFC 7323 §4.3 (R3)
            self._ts_recent_time = now
        if wl or wl2:
            self.snd_wl1 = wire_seq(seq)
            self.snd_wl2 = wire_seq(ack)
        window = seg.window << self._snd_wscale
        if window != self.snd_wnd:
            self.snd_wnd = window                # a window update (never a dup ACK here)
            if window > self.max_snd_wnd:
                self.max_snd_wnd = window
        if acked:
            rec.advance(ack)
            self._on_new_ack(seg, wire_seq(ack), acked, now)
            if self.cc.samples_delivery:
                rec.sample_delivery(self, now)          # BBR's model (core/bbr.py)
            state = self.state
            if state is State.CLOSED or state is State.TIME_WAIT:
                return True
            if n and state is not State.ESTABLISHED:
                self._text_and_fin(seg, wire_seq(seq), now)   # our FIN was ACKed
                n = 0
        if n:
            self._append_in_order(payload, 0, n, now)     # §3.10.7.4 seventh
            self._recharge()
        self._output(now)
        self._arm_delayed_ack(now)
        return True
