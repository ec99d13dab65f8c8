"""The receive side of a connection: segment text in and out of order, the
peer's FIN, the window we advertise, SACK blocks, and when to ACK.

``ReceiveSide`` is a part of ``Connection`` (a mixin: the same TCB, the same
``self``). In-order bytes go to ``_rcvbuf`` (a ``ByteQueue`` the application
reads); out-of-order ones are held in ``_ooo`` (``core/reassembly.py``),
keyed by stream offset, until the hole before them is filled.
"""

from __future__ import annotations

from tcpstack.core.errors import TcpConnectionAborted
from tcpstack.core.events import TIMER_DELAYED_ACK
from tcpstack.core.state import State
from tcpstack.core.timers import DELAYED_ACK
from tcpstack.seq import Seq, seq_diff, wire_seq
from tcpstack.wire.tcp import FIN, TcpSegment

__all__ = ["RECV_STATES", "ReceiveSide"]

_MASK = 0xFFFFFFFF
_add = int.__add__

# States in which segment text is accepted (RFC 9293 §3.10.7.4 seventh).
RECV_STATES = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})


class ReceiveSide:
    """Receiving data and FIN, advertising the window, ACK policy of ``Connection``."""

    __slots__ = ()

    # ------------------------------------------------------------ what we advertise
    def _window_field(self) -> int:
        """The window to advertise, with receiver SWS avoidance (RFC 9293 §3.8.6.2.2).

        The right edge RCV.NXT+RCV.WND moves only when it can move by at least
        min(RCV.BUFF/2, MSS), and never moves left (§3.8.6.2.2: no shrinking).
        """
        rcv_nxt = self.rcv_nxt
        free = 0 if self._closed else self._rcv_cap - self._rcvbuf.nbytes
        ctx = self._ctx
        if free > 0 and ctx.rcv_mem > ctx.config.rcv_mem_limit:   # ctx.memory_pressure()
            free = 0             # memory pressure: the window opens no further (edge kept)
        if rcv_nxt is self._wf_nxt and free == self._wf_free and self._rcv_adv is self._wf_adv:
            return self._wf_field                # nothing it depends on has changed
        adv_now = seq_diff(self._rcv_adv, rcv_nxt)
        if adv_now < 0:
            adv_now = 0
        # Move the edge only by a worthwhile amount, else keep it where it is.
        win = free if free - adv_now >= min(self._rcv_cap >> 1, self._rcv_mss) else adv_now
        ws = self._rcv_wscale if self._ws_ok else 0
        # Round down (RFC 7323 §2.4): the edge never passes the free space. That
        # may retract it by less than one scale unit, which §2.4 allows; the
        # edge we promised (_rcv_adv) still never moves left.
        field = win >> ws
        if field > 0xFFFF:
            field = 0xFFFF
        right = wire_seq(_add(rcv_nxt, field << ws) & _MASK)
        if seq_diff(right, self._rcv_adv) > 0:
            self._rcv_adv = right
        self._wf_nxt = rcv_nxt
        self._wf_free = free
        self._wf_adv = self._rcv_adv
        self._wf_field = field
        return field

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 §4: SACK blocks for the out-of-order data we hold."""
        limit = 3 if self._ts_ok else 4
        base = int(self.rcv_nxt) - self._rcv_off
        return tuple(((base + s) & _MASK, (base + e) & _MASK)
                     for s, e in self._ooo.blocks(limit))

    # ------------------------------------------------------------ text and FIN
    def _text_and_fin(self, seg: TcpSegment, seq: Seq, now: float) -> None:
        """§3.10.7.4 seventh (segment text) and eighth (FIN) steps."""
        state = self.state
        payload = seg.payload
        flags = seg.flags
        n = len(payload)
        fin_off: int | None = None
        if state in RECV_STATES:
            rcv_nxt = self.rcv_nxt
            d = seq_diff(seq, rcv_nxt)               # >= -n (acceptable)
            if flags & FIN:
                fin_off = self._rcv_off + d + n
            if n and self._closed and d + n > 0:
                # New data after the application closed: RST (Linux, RFC 2525 §2.17).
                # A retransmission of bytes already received (with or without a
                # FIN) is not new: it is ACKed (Linux: end_seq - fin > rcv_nxt).
                self._drop(seg, "data-after-close", now)
                self._send_rst_abort(now)
                self._fail(TcpConnectionAborted("data received after close"), now)
                return
            if n:
                start = 0 if d >= 0 else -d
                limit = seq_diff(self._rcv_adv, rcv_nxt) - d   # bytes that fit in the window
                end = n if n < limit else limit
                if end < n:
                    fin_off = None                   # FIN beyond the window is dropped
                    self._ctx.count("bytes_beyond_window_dropped", n - max(end, start))
                if end > start:
                    if d <= 0:
                        self._append_in_order(payload, start, end, now)
                    else:
                        data = memoryview(payload)[start:end]
                        if self._ctx.memory_pressure():
                            self._drop(seg, "ooo-memory-pressure", now)   # first to go
                            return
                        if not self._ooo.insert(self._rcv_off + d, data):
                            # Dropped for want of room: no ACK, no FIN (Linux,
                            # tcp_data_queue_ofo). It was not received, and an
                            # ACK for each would answer a flood of them in kind.
                            self._drop(seg, "ooo-queue-full", now)
                            return
                        self._ctx.count("ooo_segments")
                        self._ack_now = True        # RFC 5681 §4.2: immediate dup ACK
                if d > 0 or end < n:
                    self._ack_now = True            # out of order or beyond the window
            if fin_off is not None:
                if fin_off == self._rcv_off:
                    self._on_fin(now)
                elif fin_off > self._rcv_off:
                    self._fin_rcv_off = fin_off      # FIN beyond a hole waits for it
                    self._ack_now = True
        elif flags & FIN and state in (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK):
            # Eighth step: remain in the state (a retransmitted FIN); ACK it.
            self._ack_now = True
        self._recharge()

    def _append_in_order(self, payload: bytes | memoryview, start: int, end: int,
                         now: float) -> None:
        """Bytes at RCV.NXT: to the application's queue, with any held ones they reach."""
        if start == 0 and end == len(payload):
            self._rcvbuf.append(payload)
        else:
            self._rcvbuf.append(memoryview(payload)[start:end])
        got = end - start
        if got > self._rcv_mss and got <= self._adv_mss:
            self._rcv_mss = got
        if self._ooo:
            self._rcv_off += got
            self._ack_now = True                    # filling a hole: ACK at once
            while True:
                more = self._ooo.pop_ready(self._rcv_off)
                if more is None:
                    break
                self._rcvbuf.append(more)
                self._rcv_off += len(more)
                got += len(more)
        else:
            self._rcv_off += got
        self.rcv_nxt = self.rcv_nxt + got
        self.bytes_received += got
        self._ctx.changed.add(self)
        # RFC 1122 4.2.3.2 / RFC 5681 §4.2: ACK at least every second full segment.
        self._ack_pending += got
        if self._ack_pending >= 2 * self._rcv_mss:
            self._ack_now = True
        if self._fin_rcv_off is not None and self._fin_rcv_off == self._rcv_off:
            self._on_fin(now)

    def _on_fin(self, now: float) -> None:
        """Eighth step: the FIN is next in sequence."""
        if self._fin_rcvd:
            return                                   # a copy of a FIN already taken
        self._fin_rcv_off = None
        self._ooo.clear()                            # nothing lies beyond the FIN
        self._fin_rcvd = True
        self.rcv_nxt = self.rcv_nxt + 1              # the FIN occupies one sequence number
        self._ack_now = True
        self._ctx.changed.add(self)                  # EOF is readable
        state = self.state
        if state is State.SYN_RECEIVED or state is State.ESTABLISHED:
            self._set_state(State.CLOSE_WAIT, now)
        elif state is State.FIN_WAIT_1:
            if self._fin_seq is not None and seq_diff(self.snd_una, self._fin_seq) > 0:
                self._enter_time_wait(now)           # FIN+ACK together
            else:
                self._set_state(State.CLOSING, now)  # simultaneous close
        elif state is State.FIN_WAIT_2:
            self._enter_time_wait(now)

    def _recharge(self) -> None:
        """Tell the stack how many received bytes this connection holds now."""
        held = self._rcvbuf.nbytes + self._ooo.held
        self._ctx.rcv_mem += held - self._mem_charged
        self._mem_charged = held

    def _rcv_space_adjust(self, now: float) -> None:
        """Receive-buffer autotuning (Linux ``tcp_rcv_space_adjust``): once per RTT,
        if the application read more than last time, let the buffer grow to twice
        that (plus room for 16 segments), up to ``recv_buffer``. A connection whose
        reader keeps up gets the window it needs; an idle one promises little."""
        srtt = self.rtt.srtt
        if now - self._rcv_space_time < (srtt if srtt is not None else 0.2):
            return
        read = self._rcv_off - self._rcvbuf.nbytes          # stream bytes read so far
        copied = read - self._rcv_space_off
        self._rcv_space_off = read
        self._rcv_space_time = now
        if copied <= self._rcv_space:
            return
        self._rcv_space = copied
        cap = self.options.recv_buffer
        if self._rcv_cap < cap:
            grown = min(cap, 2 * copied + 16 * self._adv_mss)
            if grown > self._rcv_cap:
                self._rcv_cap = grown
                self._ctx.count("rcvbuf_autotuned")

    def _urgent(self, seq: Seq, pointer: int) -> None:
        """Record the urgent mark SEG.SEQ + SEG.UP if it advances (RFC 9293 §3.8.5)."""
        if pointer == 0:
            return
        mark = Seq(seq + pointer)
        if self._rcv_up is None or seq_diff(mark, self._rcv_up) > 0:
            self._rcv_up = mark
            self._ctx.count("urgent_marks_received")
            self._ctx.changed.add(self)          # MUST-32: tell the application

    # ------------------------------------------------------------ ACK policy
    def _maybe_window_update(self, now: float) -> None:
        """After the application read: announce a window that opened enough.

        RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): only when the right edge
        can move by min(RCV.BUFF/2, MSS), and only when it at least doubles the
        window the peer knows about (otherwise normal ACKs carry it).
        """
        if self.state not in RECV_STATES or self._fin_rcvd:
            return
        adv_now = seq_diff(self._rcv_adv, self.rcv_nxt)
        ws = self._rcv_wscale if self._ws_ok else 0
        # What the window field can say: a window pinned at 65535 << ws does not
        # grow however much is read, and repeating it would be a duplicate ACK.
        win = min(self._rcv_cap - self._rcvbuf.nbytes, 0xFFFF << ws)
        growth = win - adv_now
        if growth >= min(self._rcv_cap >> 1, self._rcv_mss) and win >= 2 * adv_now:
            self._ctx.count("window_updates_sent")
            self._send_ack(now)

    def _arm_delayed_ack(self, now: float) -> None:
        """Data waits to be acknowledged and no ACK went out: RFC 1122 4.2.3.2."""
        if (self._ack_pending and self._timers.at[DELAYED_ACK] is None
                and self.state is not State.CLOSED):
            self._timers.arm(DELAYED_ACK, now + self._cfg.delayed_ack)

    def _on_delayed_ack_timer(self, now: float) -> None:
        if self._ack_pending or self._ack_now:
            self._trace_timer(TIMER_DELAYED_ACK, now)
            self._send_ack(now)
