"""One TCP connection (a TCB): the RFC 9293 §3.10 event processing, sans-IO.

A ``Connection`` never reads a clock or a device. Segments come in through
``_input(seg, now)`` (called by the ``Stack``), timers fire through
``_on_timers(now)``, and the application calls ``send``/``recv``/``shutdown``
/``close``/``abort``. Segments go out through the stack's output queue.

Reading guide: ``_input`` follows RFC 9293 §3.10.7.4 in order -- first the
sequence number (acceptability) check, second RST, fourth SYN, fifth ACK,
sixth URG (ignored), seventh segment text, eighth FIN -- with the clause
number on each branch. SYN-SENT is §3.10.7.3; LISTEN and CLOSED live in the
stack (§3.10.7.1, §3.10.7.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpstack.core.bytequeue import ByteQueue
from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.congestion import make_congestion_control
from tcpstack.core.errors import (
    TcpConnectionAborted,
    TcpConnectionClosing,
    TcpConnectionRefused,
    TcpConnectionReset,
    TcpTimeout,
)
from tcpstack.core.events import (
    TIMER_DELAYED_ACK,
    TIMER_FIN_WAIT_2,
    TIMER_KEEPALIVE,
    TIMER_LOSS_PROBE,
    TIMER_PERSIST,
    TIMER_REORDER,
    TIMER_RETRANSMIT,
    TIMER_TIME_WAIT,
    EventKind,
    TraceEvent,
)
from tcpstack.core.reassembly import Reassembly
from tcpstack.core.rtt import RttEstimator
from tcpstack.core.sack import DUP_THRESH, SackScoreboard, SentLog
from tcpstack.core.state import State
from tcpstack.seq import Seq, wire_seq
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

if TYPE_CHECKING:
    from tcpstack.core.stack import Listener, Stack

__all__ = ["Connection", "ConnectionOptions"]

_MASK = 0xFFFFFFFF
_UNBOUNDED = 1 << 62
_SEQ_ZERO = Seq(0)
_HALF = 1 << 31

DEFAULT_MSS = 536              # RFC 9293 §3.7.1: assume 536 when the peer sends no MSS
TS_OPTION_LEN = 12             # RFC 7323 Appendix A: NOP NOP TS(10)
MAX_WSCALE = 14                # RFC 7323 §2.3
PAWS_IDLE = 24 * 24 * 3600.0   # RFC 7323 §5.5: TS.Recent invalid after 24 days idle
WC_DEL_ACK = 0.2               # RFC 8985 §7.2 WCDelAckT: worst-case delayed-ACK timer
TLP_EXTRA = 0.002              # PTO = 2*SRTT + this (Linux: TCP_TIMEOUT_MIN, 2 jiffies)

CLOSED = State.CLOSED
LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RECEIVED = State.SYN_RECEIVED
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT

# States in which our data (and FIN) may go out.
_SEND_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})
# States in which segment text is accepted (RFC 9293 §3.10.7.4 seventh).
_RECV_STATES = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
# States in which keepalive probes are sent (Linux: also FIN-WAIT-2).
_KEEPALIVE_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2})


_sub = int.__sub__   # plain-int arithmetic on Seq values, without Seq's Python operators
_add = int.__add__
_eq = int.__eq__     # Seq values are normalised to [0, 2**32): int equality is exact


def _sdist(a: int, b: int) -> int:
    """Signed distance a - b in sequence space (hot path)."""
    d = _sub(a, b) & _MASK
    return d - 0x100000000 if d >= _HALF else d


class Connection:
    """One TCB. Created by ``Stack.connect`` or by a listener; see docs/architecture.md."""

    __slots__ = (
        "__weakref__", "_ack_now", "_ack_pending", "_adv_mss", "_buf_seq", "_cc_recovery", "_cfg",
        "_closed", "_deadline", "_dupacks", "_fin_rcv_off", "_fin_rcvd", "_fin_seq",
        "_heap_deadline", "_in_recovery", "_inflate", "_ka_probes", "_key", "_last_ack_sent",
        "_last_rcv", "_last_send", "_listener", "_lt_sent", "_ooo", "_peer_syn_options",
        "_persist_backoff", "_persist_probes", "_rack", "_rcv_adv", "_rcv_cap", "_rcv_mss",
        "_rcv_off", "_rcv_wscale", "_rcvbuf", "_recover", "_rprobe", "_rto_tsval", "_rtt_seq",
        "_rtt_time", "_sack_ok", "_sb", "_shut_wr", "_snd_wscale", "_sndbuf", "_stack",
        "_t_delack", "_t_fin_wait_2", "_t_keepalive", "_t_persist", "_t_reo", "_t_rtx",
        "_t_time_wait", "_t_tlp", "_tlp_end", "_tlp_retrans", "_tracer", "_ts_offset", "_ts_ok",
        "_ts_recent", "_ts_recent_time", "_wf_adv", "_wf_field", "_wf_free", "_wf_nxt", "_ws_ok",
        "bytes_received", "bytes_sent", "cc", "created", "error", "irs", "iss", "local",
        "max_snd_wnd", "mss", "options", "passive", "rcv_nxt", "remote", "retransmits", "rtt",
        "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2", "snd_wnd", "state",
    )

    def __init__(self, stack: Stack, local_port: int, remote_addr: str, remote_port: int,
                 options: ConnectionOptions | None, now: float, iss: Seq,
                 listener: Listener | None = None) -> None:
        cfg: StackConfig = stack.config
        opts = options or ConnectionOptions()
        self._stack = stack
        self._cfg = cfg
        self.options = opts
        self.local: tuple[str, int] = (stack.local_addr, local_port)
        self.remote: tuple[str, int] = (remote_addr, remote_port)
        self._key = (local_port, remote_addr, remote_port)
        self._listener = listener          # set while a passive open is not yet accepted
        self.passive = listener is not None
        self.state = CLOSED
        self.error: ConnectionError | None = None
        self.created = now

        # Send sequence variables (RFC 9293 §3.3.1).
        # Seq is immutable: one object may stand for several variables.
        iss = Seq(iss)
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss               # highest sequence sent + 1 (snd_nxt rewinds on RTO)
        self.snd_wnd = 0
        self.snd_wl1 = _SEQ_ZERO
        self.snd_wl2 = _SEQ_ZERO
        self.max_snd_wnd = 0             # RFC 5961 §5.2 MAX.SND.WND
        self._sndbuf = ByteQueue(opts.send_buffer)
        self._buf_seq = Seq(iss + 1)     # sequence number of the first byte in _sndbuf
        self._fin_seq: Seq | None = None  # our FIN's sequence number once queued

        # Receive sequence variables.
        self.irs = _SEQ_ZERO
        self.rcv_nxt = _SEQ_ZERO
        self._rcv_adv = _SEQ_ZERO        # right edge advertised: RCV.NXT + RCV.WND
        self._rcv_cap = opts.recv_buffer
        self._rcvbuf = ByteQueue(_UNBOUNDED)    # the window bounds it, not the queue
        self._ooo = Reassembly(cfg.max_ooo_segments)
        self._rcv_off = 0                # stream offset of rcv_nxt (payload bytes in order)
        self._fin_rcv_off: int | None = None  # peer FIN beyond a hole (stream offset)
        self._fin_rcvd = False

        # Options (RFC 9293 §3.7.1, RFC 7323, RFC 2018).
        self._adv_mss = opts.mss or (cfg.mtu - 40)
        self.mss = DEFAULT_MSS           # effective send MSS (payload bytes per segment)
        self._rcv_mss = DEFAULT_MSS      # estimate of the peer's segment size
        ws = 0
        if opts.window_scale:
            while ws < MAX_WSCALE and (opts.recv_buffer >> ws) > 0xFFFF:
                ws += 1
        self._rcv_wscale = ws
        self._snd_wscale = 0
        self._ws_ok = False
        # The last window field computed and what it was computed from
        # (_window_field: RCV.NXT, free space, the right edge then).
        self._wf_nxt: Seq | None = None
        self._wf_free = 0
        self._wf_adv: Seq | None = None
        self._wf_field = 0
        self._ts_ok = False
        self._ts_recent = 0
        self._ts_recent_time = now
        self._ts_offset = (int(iss) * 2654435761) & _MASK  # TSval offset per connection
        self._rto_tsval = 0                   # TSval of the latest RTO retransmission
        self._last_ack_sent = _SEQ_ZERO
        self._sack_ok = False
        self._peer_syn_options: TcpOptions | None = None

        # Retransmission, congestion control, recovery.
        self.rtt = RttEstimator(cfg.initial_rto, cfg.min_rto, cfg.max_rto)
        self.cc = make_congestion_control(opts.cc, DEFAULT_MSS, opts.min_ssthresh)
        self._rtt_seq: Seq | None = None     # Karn: the segment being timed (no timestamps)
        self._rtt_time = 0.0
        self._dupacks = 0
        self._in_recovery = False
        self._recover = iss                  # RFC 6582 "recover"
        self._inflate = 0                    # NewReno window inflation during recovery
        self._sb: SackScoreboard | None = None   # RFC 6675 scoreboard when SACK is on
        self._rack: SentLog | None = None     # RFC 8985 RACK send log when SACK is on
        self._cc_recovery = False            # this recovery reduced cwnd (a new loss episode)
        self._lt_sent = 0                    # RFC 3042 bytes sent since the last new ACK
        self._tlp_end: Seq | None = None     # RFC 8985 §7 TLP.end_seq of the outstanding probe
        self._tlp_retrans = False            # that probe was a retransmission
        self.retransmits = 0
        self.bytes_sent = 0                  # payload bytes the peer acknowledged
        self.bytes_received = 0
        self._last_send = now

        # Timers: absolute deadlines or None (Linux names).
        self._t_rtx: float | None = None
        self._t_persist: float | None = None
        self._t_keepalive: float | None = None
        self._t_delack: float | None = None
        self._t_time_wait: float | None = None
        self._t_fin_wait_2: float | None = None
        self._t_tlp: float | None = None      # RFC 8985 §7.2 probe timeout (PTO)
        self._rprobe = False                  # this recovery's stall probe was sent
        self._t_reo: float | None = None      # RFC 8985 §6.3 reordering timer
        self._persist_backoff = 0
        self._persist_probes = 0
        self._ka_probes = 0
        self._last_rcv = now

        # ACK policy.
        self._ack_pending = 0        # bytes received and not yet acknowledged
        self._ack_now = False

        # Application side.
        self._shut_wr = False        # shutdown()/close() called
        self._closed = False         # close() called: the application reads no more
        self._tracer = stack._tracer
        self._heap_deadline: float | None = None   # the stack's timer heap entry
        self._deadline: float | None = None        # next_deadline() when last dirty

    # ------------------------------------------------------------------ public
    def __repr__(self) -> str:
        return (f"<Connection {self.local[0]}:{self.local[1]} <> {self.remote[0]}:{self.remote[1]}"
                f" {self.state}>")

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it was read."""
        return self._fin_rcvd and not self._rcvbuf.nbytes

    def send_space(self) -> int:
        if self._shut_wr or self.error is not None or self.state is CLOSED:
            return 0
        return self._sndbuf.space()

    def recv_available(self) -> int:
        return self._rcvbuf.nbytes

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """RFC 9293 §3.10.2 SEND: queue data; returns the number of bytes accepted."""
        self._stack._dirty.add(self)         # timers may change
        if self.error is not None:
            raise self.error
        if self._shut_wr:
            raise TcpConnectionClosing("connection closing: send after shutdown")
        state = self.state
        if state is CLOSED or state in (CLOSING, LAST_ACK, TIME_WAIT, FIN_WAIT_1, FIN_WAIT_2):
            raise TcpConnectionClosing(f"connection closing: send in {state}")
        n = self._sndbuf.append(data)
        if n and state in _SEND_STATES:
            self._output(now)
        return n

    def recv(self, max_bytes: int, now: float) -> bytes:
        """RFC 9293 §3.10.3 RECEIVE: up to ``max_bytes`` buffered bytes (b"" if none)."""
        if not self._readable():
            return b""
        data = self._rcvbuf.take(max_bytes)
        self._maybe_window_update(now)
        return data

    def recv_into(self, buffer: bytearray | memoryview, now: float) -> int:
        """RECEIVE into ``buffer`` (like ``socket.recv_into``): the bytes copied, 0 if none.

        One copy, from the receive buffer straight into the caller's memory.
        """
        if not self._readable():
            return 0
        n = self._rcvbuf.take_into(buffer)
        self._maybe_window_update(now)
        return n

    def _readable(self) -> bool:
        """Whether received bytes wait; raises the connection's error when none
        do and it failed (an abort by our own close() reads as end of stream)."""
        self._stack._dirty.add(self)
        if self._rcvbuf.nbytes:
            return True
        if self.error is not None and not isinstance(self.error, TcpConnectionAborted):
            raise self.error
        return False

    def shutdown(self, now: float) -> None:
        """Half-close: RFC 9293 §3.10.4 CLOSE for the sending direction."""
        self._stack._dirty.add(self)
        if self._shut_wr or self.state is CLOSED:
            return
        state = self.state
        self._shut_wr = True
        self._fin_seq = self._buf_seq + self._sndbuf.nbytes
        if state is ESTABLISHED:
            self._set_state(FIN_WAIT_1, now)
        elif state is CLOSE_WAIT:
            self._set_state(LAST_ACK, now)
        # SYN-SENT / SYN-RECEIVED: the FIN is queued and follows the queued data once
        # ESTABLISHED (§3.10.4 SYN-RECEIVED; for SYN-SENT a half-close keeps the data
        # already queued instead of deleting the TCB -- close() deletes it).
        if self.state in _SEND_STATES:
            self._output(now)

    def close(self, now: float) -> None:
        """RFC 9293 §3.10.4 CLOSE: no more sends, no more reads.

        Unread received data makes it an abort (RFC 2525 §2.17, as Linux does).
        """
        self._stack._dirty.add(self)
        if self._closed:
            return
        self._closed = True
        if self.state is CLOSED:
            return
        if self.state is SYN_SENT:
            self._terminate(now)           # §3.10.4 SYN-SENT: "Delete the TCB"
            return
        if self._rcvbuf.nbytes:
            self._send_rst_abort(now)
            self._terminate(now)
            return
        self.shutdown(now)
        if self.state is FIN_WAIT_2:
            self._t_fin_wait_2 = now + self._cfg.fin_wait_2_timeout

    def abort(self, now: float) -> None:
        """RFC 9293 §3.10.5 ABORT: RST to the peer, everything dropped."""
        self._stack._dirty.add(self)
        if self.state is CLOSED:
            return
        self._send_rst_abort(now)
        if self.error is None:
            self.error = TcpConnectionAborted("connection aborted by the application")
        self._terminate(now)

    def info(self) -> dict:
        """An ``ss -ti`` style snapshot."""
        return {
            "state": str(self.state),
            "local": self.local,
            "remote": self.remote,
            "snd_una": int(self.snd_una),
            "snd_nxt": int(self.snd_nxt),
            "snd_max": int(self.snd_max),
            "rcv_nxt": int(self.rcv_nxt),
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": max(0, self._rcv_adv - self.rcv_nxt),
            "mss": self.mss,
            "rto": self.rtt.rto,
            "srtt": self.rtt.srtt,
            "rttvar": self.rtt.rttvar,
            "cwnd": self.cc.cwnd,
            "ssthresh": self.cc.ssthresh,
            "retransmits": self.retransmits,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "send_queue": self._sndbuf.nbytes,
            "recv_queue": self._rcvbuf.nbytes,
            "ooo_bytes": self._ooo.held,
            "wscale": (self._snd_wscale, self._rcv_wscale) if self._ws_ok else None,
            "timestamps": self._ts_ok,
            "sack": self._sack_ok,
            "timers": self.timers(),
            "error": repr(self.error) if self.error else None,
        }

    def timers(self) -> dict[str, float]:
        """Armed timers by Linux name -> absolute deadline."""
        out = {}
        for name, t in ((TIMER_RETRANSMIT, self._t_rtx), (TIMER_PERSIST, self._t_persist),
                        (TIMER_KEEPALIVE, self._t_keepalive), (TIMER_DELAYED_ACK, self._t_delack),
                        (TIMER_TIME_WAIT, self._t_time_wait),
                        (TIMER_FIN_WAIT_2, self._t_fin_wait_2), (TIMER_LOSS_PROBE, self._t_tlp),
                        (TIMER_REORDER, self._t_reo)):
            if t is not None:
                out[name] = t
        return out

    def next_deadline(self) -> float | None:
        best = None
        for t in (self._t_rtx, self._t_persist, self._t_keepalive, self._t_delack,
                  self._t_time_wait, self._t_fin_wait_2, self._t_tlp, self._t_reo):
            if t is not None and (best is None or t < best):
                best = t
        return best

    # ------------------------------------------------------------ state, trace
    def _set_state(self, new: State, now: float) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        if self._tracer is not None:
            self._tracer(TraceEvent(now, EventKind.STATE, self.local, self.remote,
                                    old_state=old, new_state=new))
        self._stack._state_changed(self, old, new)

    def _trace_timer(self, name: str, now: float, note: str = "") -> None:
        self._stack._count("timer_" + name.replace("-", "_"))
        if self._tracer is not None:
            self._tracer(TraceEvent(now, EventKind.TIMER, self.local, self.remote,
                                    timer=name, reason=note))

    def _drop(self, seg: TcpSegment, reason: str, now: float) -> None:
        self._stack._drop(self.local, self.remote, seg, reason, now)

    def _terminate(self, now: float) -> None:
        """Delete the TCB (enter CLOSED)."""
        self._t_rtx = self._t_persist = self._t_keepalive = None
        self._t_delack = self._t_time_wait = self._t_fin_wait_2 = None
        self._t_tlp = self._t_reo = None
        self._ooo.clear()
        self._set_state(CLOSED, now)
        self._stack._remove(self)

    def _fail(self, error: ConnectionError, now: float) -> None:
        """Report ``error`` to the application and delete the TCB."""
        if self.error is None:
            self.error = error
        self._rcvbuf.clear()     # RFC 9293 §3.10.7.4: "segment queues should be flushed"
        self._sndbuf.clear()
        self._terminate(now)

    # ---------------------------------------------------------------- output
    def _tsval(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & _MASK

    def _window_field(self) -> int:
        """The window to advertise, with receiver SWS avoidance (RFC 9293 §3.8.6.2.2).

        The right edge RCV.NXT+RCV.WND moves only when it can move by at least
        min(RCV.BUFF/2, MSS), and never moves left (§3.8.6.2.2: no shrinking).
        """
        rcv_nxt = self.rcv_nxt
        free = 0 if self._closed else self._rcv_cap - self._rcvbuf.nbytes
        if rcv_nxt is self._wf_nxt and free == self._wf_free and self._rcv_adv is self._wf_adv:
            return self._wf_field                # nothing it depends on has changed
        adv_now = _sdist(self._rcv_adv, rcv_nxt)
        if adv_now < 0:
            adv_now = 0
        # Move the edge only by a worthwhile amount, else keep it where it is.
        win = free if free - adv_now >= min(self._rcv_cap >> 1, self._rcv_mss) else adv_now
        ws = self._rcv_wscale if self._ws_ok else 0
        # Round up so the right edge never moves left through the scaling.
        field = (win + (1 << ws) - 1) >> ws
        if field > 0xFFFF:
            field = 0xFFFF
        right = Seq(int(rcv_nxt) + (field << ws))
        if right > self._rcv_adv:
            self._rcv_adv = right
        self._wf_nxt = rcv_nxt
        self._wf_free = free
        self._wf_adv = self._rcv_adv
        self._wf_field = field
        return field

    def _segment(self, seq: int, flags: int, now: float, payload: bytes = b"",
                 sack: tuple = ()) -> TcpSegment:
        """Build one segment carrying our current ACK, window and options."""
        if flags & ACK:
            ack = int(self.rcv_nxt)
            window = self._window_field()
            self._last_ack_sent = self.rcv_nxt
            self._ack_pending = 0
            self._ack_now = False
            self._t_delack = None
        else:
            ack = 0
            window = min(self._rcv_cap, 0xFFFF)
        # new_options/new_segment: the same frozen instances as TcpOptions(...)
        # and TcpSegment(...), built faster (all fields positional).
        if self._ts_ok:
            opts = new_options(None, None, False, sack, (self._tsval(now), self._ts_recent))
        elif sack:
            opts = new_options(None, None, False, sack, None)
        else:
            opts = _NO_OPTIONS
        return new_segment(self.local[1], self.remote[1], int(seq) & _MASK, ack, flags, window,
                           0, opts, payload)

    def _emit(self, seg: TcpSegment, now: float) -> None:
        self._last_send = now
        self._stack._emit(self, seg, now)

    def _send_ack(self, now: float) -> None:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (with SACK blocks when we hold holes).

        SND.NXT here is the highest sequence number sent (``snd_max``): after a
        timeout ``snd_nxt`` is rewound for go-back-N, but an ACK must not look
        like an old duplicate to the peer.
        """
        sack = self._sack_blocks() if self._sack_ok and self._ooo else ()
        self._emit(self._segment(self.snd_max, ACK, now, sack=sack), now)

    def _send_challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§5.2 challenge ACK, rate-limited per stack (§7)."""
        if self._stack._challenge_ack_allowed(now):
            self._stack._count("challenge_acks")
            self._send_ack(now)
        else:
            self._stack._count("challenge_acks_rate_limited")

    def _send_rst_abort(self, now: float) -> None:
        """RFC 9293 §3.10.5: <SEQ=SND.NXT><CTL=RST> in the synchronized states."""
        if self.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._emit(TcpSegment(self.local[1], self.remote[1], int(self.snd_max), 0, RST,
                                  0), now)

    def _syn_options(self, now: float, reply_to: TcpOptions | None) -> TcpOptions:
        """Options for our SYN (reply_to None) or SYN-ACK (only what the peer offered)."""
        o = self.options
        wscale = self._rcv_wscale if (o.window_scale and
                                      (reply_to is None or reply_to.wscale is not None)) else None
        sack = o.sack and (reply_to is None or reply_to.sack_permitted)
        ts = None
        if o.timestamps and (reply_to is None or reply_to.timestamps is not None):
            ts = (self._tsval(now), reply_to.timestamps[0] if reply_to else 0)
        return TcpOptions(mss=self._adv_mss, wscale=wscale, sack_permitted=sack, timestamps=ts)

    def _send_syn(self, now: float) -> None:
        """SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), always with the same ISS."""
        if self.state is SYN_SENT:
            seg = TcpSegment(self.local[1], self.remote[1], int(self.iss), 0, SYN,
                             min(self._rcv_cap, 0xFFFF), 0, self._syn_options(now, None))
        else:
            opts = self._syn_options(now, self._peer_syn_options)
            window = min(self._rcv_cap, 0xFFFF)  # RFC 7323 §2.2: SYN windows are unscaled
            self._rcv_adv = Seq(int(self.rcv_nxt) + window)
            self._last_ack_sent = self.rcv_nxt
            seg = TcpSegment(self.local[1], self.remote[1], int(self.iss), int(self.rcv_nxt),
                             SYN | ACK, window, 0, opts)
        if self.snd_nxt == self.iss:
            self.snd_nxt = self.iss + 1
            self.snd_max = self.snd_nxt
            self._rtt_seq = self.iss
            self._rtt_time = now
        self._emit(seg, now)
        if self._t_rtx is None:
            self._t_rtx = now + self.rtt.rto

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 §4: SACK blocks for the out-of-order data we hold."""
        limit = 3 if self._ts_ok else 4
        base = int(self.rcv_nxt) - self._rcv_off
        return tuple(((base + s) & _MASK, (base + e) & _MASK)
                     for s, e in self._ooo.blocks(limit))

    def _effective_window(self) -> int:
        cwnd = self.cc.cwnd + self._inflate
        return self.snd_wnd if self.snd_wnd < cwnd else cwnd

    def _output(self, now: float, force_one: bool = False, limit: int = 0) -> bool:
        """Send what the windows, Nagle and SWS avoidance allow; True if anything went out.

        ``force_one`` is the persist timer's override of SWS avoidance
        (RFC 9293 §3.8.6.2.1 "override timeout"); ``limit`` > 0 stops after
        that many segments (limited transmit, loss probes, recovery).
        """
        state = self.state
        if state not in _SEND_STATES:
            if self._ack_now:
                self._send_ack(now)
            return False
        sndbuf = self._sndbuf
        fin_seq = self._fin_seq
        # Fast path: nothing queued beyond SND.NXT and no FIN to send.
        if (sndbuf.nbytes == _sdist(self.snd_nxt, self._buf_seq)
                and (fin_seq is None or _sdist(self.snd_nxt, fin_seq) > 0)):
            if self._ack_now:
                self._send_ack(now)
            return False
        sent = False
        mss = self.mss
        sack = self._sack_blocks() if self._sack_ok and self._ooo else ()
        maxseg = mss
        if sack:
            maxseg = mss - (2 + 8 * len(sack) + 2)  # room for the SACK option
        elif self._cfg.tso_max > mss:
            maxseg = self._cfg.tso_max - self._cfg.tso_max % mss
        if _eq(self.snd_una, self.snd_max) and now - self._last_send > self.rtt.rto:
            # RFC 5681 §4.1: restart window after an idle period.
            self.cc.on_idle_restart(now, self.rtt.rto)
        # Sending changes none of these, only SND.NXT/SND.MAX.
        una = self.snd_una
        buf_seq = self._buf_seq
        buffered = sndbuf.nbytes
        wnd = self._effective_window()
        while True:
            snd_nxt = self.snd_nxt
            off = _sdist(snd_nxt, buf_seq)
            unsent = buffered - off
            if unsent > 0:
                n = unsent if unsent < maxseg else maxseg
                usable = _sdist(una, snd_nxt) + wnd
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
                    idle = (_eq(snd_nxt, una) or self.options.nodelay
                            or fin_seq is not None)
                    if not ((n == unsent and idle) or n >= (self.max_snd_wnd >> 1)):
                        break
                elif n > mss:
                    n -= n % mss            # TSO super-segment: whole MSS multiples
                force_one = False
                flags = ACK
                end = wire_seq(_add(snd_nxt, n) & _MASK)
                if fin_seq is not None and _eq(end, fin_seq):
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
            if fin_seq is not None and snd_nxt == fin_seq:
                # All data is out: send the FIN (it may go beyond a zero window;
                # the peer then ACKs and we retransmit it on timeout).
                self._emit(self._segment(snd_nxt, FIN | ACK, now, sack=sack), now)
                self._account_sent(snd_nxt, snd_nxt + 1, now)
                sent = True
            break
        if not sent and self._ack_now:
            self._send_ack(now)
        if sent and self._rack is not None:
            self._arm_tlp(now)
        # RFC 1122 4.2.2.17: data waiting, nothing in flight, window closed -> persist.
        if (self._t_rtx is None and self._t_persist is None and _eq(self.snd_una, self.snd_max)
                and _sdist(self._buf_seq + sndbuf.nbytes, self.snd_nxt) > 0):
            self._t_persist = now + self._persist_interval()
        return sent

    def _account_sent(self, start: Seq, end: Seq, now: float) -> None:
        """Bookkeeping after sending [start, end) of sequence space."""
        snd_max = self.snd_max
        fresh = _sub(start, snd_max) & _MASK < _HALF          # start >= SND.MAX
        if self._rack is not None:
            self._rack.on_send(start, end, now, not fresh)
        if 0 < _sub(end, snd_max) & _MASK < _HALF:             # end > SND.MAX
            if fresh and self._rtt_seq is None and not self._ts_ok:
                self._rtt_seq = start        # time this segment (RFC 6298 §3, Karn)
                self._rtt_time = now
            if not fresh:
                self.retransmits += 1
                self._stack._count("retransmitted_segments")
            self.snd_max = end
        else:
            self.retransmits += 1
            self._stack._count("retransmitted_segments")
        self.snd_nxt = end
        if self._t_rtx is None:
            self._t_rtx = now + self.rtt.rto     # RFC 6298 §5.1
        self._t_persist = None

    def _retransmit_head(self, now: float) -> None:
        """Resend the first unacknowledged segment (fast retransmit, RFC 5681 §3.2)."""
        una = self.snd_una
        off = _sdist(una, self._buf_seq)
        avail = self._sndbuf.nbytes - off
        self._rtt_seq = None                     # Karn: no sample from a retransmission
        if avail > 0:
            n = min(avail, self.mss)
            end = una + n
            flags = ACK
            if self._fin_seq is not None and end == self._fin_seq:
                flags |= FIN
            self._emit(self._segment(una, flags, now, self._sndbuf.peek(off, n)), now)
            if flags & FIN:
                n += 1
        elif self._fin_seq is not None and una == self._fin_seq:
            self._emit(self._segment(una, FIN | ACK, now), now)
            n = 1
        else:
            return
        if self._rack is not None:
            self._rack.on_send(una, una + n, now, True)
        self.retransmits += 1
        self._stack._count("retransmitted_segments")
        self._t_rtx = now + self.rtt.rto

    # ---------------------------------------------------------------- opens
    def _open_active(self, now: float) -> None:
        """RFC 9293 §3.10.1 OPEN (active): send SYN, enter SYN-SENT."""
        self._set_state(SYN_SENT, now)
        self._send_syn(now)

    def _open_passive(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.2 LISTEN + SYN: record IRS, send SYN-ACK, enter SYN-RECEIVED."""
        self.irs = Seq(seg.seq)
        self.rcv_nxt = self.irs + 1
        self._peer_syn_options = seg.options
        self._apply_syn_options(seg.options, now)
        self.snd_wnd = seg.window               # RFC 7323 §2.2: SYN window is unscaled
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = Seq(seg.seq)
        self._set_state(SYN_RECEIVED, now)
        self._send_syn(now)

    def _apply_syn_options(self, o: TcpOptions, now: float) -> None:
        """Negotiate MSS, window scale, timestamps and SACK from the peer's SYN."""
        peer_mss = o.mss if o.mss else DEFAULT_MSS
        opts = self.options
        self._ws_ok = opts.window_scale and o.wscale is not None
        if self._ws_ok:
            self._snd_wscale = min(o.wscale, MAX_WSCALE)  # RFC 7323 §2.3
        else:
            self._rcv_wscale = 0
        self._ts_ok = opts.timestamps and o.timestamps is not None
        if self._ts_ok:
            self._ts_recent = o.timestamps[0]
            self._ts_recent_time = now
        self._sack_ok = opts.sack and o.sack_permitted
        self._sb = SackScoreboard() if self._sack_ok else None
        self._rack = SentLog() if self._sack_ok else None
        mss = min(peer_mss, self._adv_mss)
        if self._ts_ok:
            mss -= TS_OPTION_LEN                  # every segment carries the option
        self.mss = max(mss, 64)
        self._rcv_mss = min(self._adv_mss, 536)
        cc = make_congestion_control(opts.cc, self.mss, opts.min_ssthresh)
        self.cc = cc

    # ---------------------------------------------------------------- input
    def _input(self, seg: TcpSegment, now: float) -> None:
        """One arriving segment for this TCB (RFC 9293 §3.10.7.3 / §3.10.7.4)."""
        state = self.state
        if state is ESTABLISHED and self._predicted(seg, now):
            return
        if state is SYN_SENT:
            self._input_syn_sent(seg, now)
        else:
            self._input_synchronizing(seg, now)

    def _heard_from_peer(self, now: float) -> None:
        """An acceptable segment arrived: the peer is alive (keepalive restarts)."""
        self._last_rcv = now
        if self._t_keepalive is not None:
            self._ka_probes = 0
            self._t_keepalive = now + self.options.keepalive[0]  # type: ignore[index]

    def _arm_delayed_ack(self, now: float) -> None:
        """Data waits to be acknowledged and no ACK went out: RFC 1122 4.2.3.2."""
        if self._ack_pending and self._t_delack is None and self.state is not CLOSED:
            self._t_delack = now + self._cfg.delayed_ack

    def _predicted(self, seg: TcpSegment, now: float) -> bool:
        """Header prediction: the two segments a bulk transfer is made of, in a few steps.

        Van Jacobson's header prediction (4.3BSD-Reno ``tcp_input``; Linux's
        "fast path" in ``tcp_rcv_established``): in ESTABLISHED, a segment
        with only ACK (and maybe PSH), exactly the next sequence number,
        timestamps that pass PAWS, no SACK blocks and an ACK of nothing new
        or of new data is the next in-order data (a bulk receiver's, and with
        a new ACK a request's or a response's) or a pure ACK of new data (a
        bulk sender's); a changed window is then a window update, never a
        duplicate ACK. For those every check of RFC 9293 §3.10.7.4 has a known
        outcome, so the steps that do something are run directly. False (and nothing
        changed) for any other segment, which takes the full path; the result
        is the same either way (tests/unit/test_core_prediction.py), only
        cheaper here. Counted as ``predicted_data`` / ``predicted_acks``.
        """
        if seg.flags | PSH != ACK | PSH or self._ooo or self._in_recovery or self._closed:
            return False
        seq = seg.seq
        if not _eq(self.rcv_nxt, seq):
            return False
        opts = seg.options
        if (opts.sack_blocks or self._fin_rcv_off is not None or self._tlp_end is not None
                or self._t_persist is not None or self._persist_probes):
            return False
        # Sequence distances below are (a - b) mod 2**32 on plain ints: a value
        # of _HALF or more is "a before b" (RFC 9293 §3.4).
        ts = opts.timestamps if self._ts_ok else None
        if ts is not None:
            if (ts[0] - self._ts_recent) & _MASK >= _HALF:
                return False                     # PAWS has a say (RFC 7323 §5.3)
        elif self._ts_ok:
            return False
        # Window update rule (RFC 9293 §3.10.7.4 fifth): SND.WL1/WL2 must move.
        ack = seg.ack
        wl = _sub(seq, self.snd_wl1) & _MASK
        wl2 = _sub(ack, self.snd_wl2) & _MASK
        if wl >= _HALF or (wl == 0 and wl2 >= _HALF):
            return False
        payload = seg.payload
        n = len(payload)
        # SEG.ACK - SND.UNA: 0 (nothing new) or new data up to SND.MAX.
        acked = _sub(ack, self.snd_una) & _MASK
        if acked > (_sub(self.snd_max, self.snd_una) & _MASK):
            return False
        counters = self._stack.counters
        if n:
            # In-order data, all of it inside the window.
            room = _sub(self._rcv_adv, seq) & _MASK
            if room >= _HALF or n > room:
                return False
            counters["predicted_data"] = counters.get("predicted_data", 0) + 1
        else:
            if acked == 0:
                return False                     # a duplicate ACK or a window update
            counters["predicted_acks"] = counters.get("predicted_acks", 0) + 1
        self._heard_from_peer(now)
        if ts is not None and (_sub(self._last_ack_sent, seq) & _MASK) < _HALF:
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
            if self._sb is not None:
                self._sb.advance(ack)
            self._on_new_ack(seg, wire_seq(ack), acked, now)
            state = self.state
            if state is CLOSED or state is TIME_WAIT:
                return True
            if n and state is not ESTABLISHED:
                self._text_and_fin(seg, wire_seq(seq), now)   # our FIN was ACKed
                n = 0
        if n:
            self._append_in_order(payload, 0, n, now)     # §3.10.7.4 seventh
        self._output(now)
        self._arm_delayed_ack(now)
        return True

    def _input_syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.3 SYN-SENT STATE."""
        flags = seg.flags
        # First, check the ACK bit.
        if flags & ACK:
            ack = Seq(seg.ack)
            if ack <= self.iss or ack > self.snd_max:
                # Old duplicate SYN-ACK (the reason for the third step):
                # <SEQ=SEG.ACK><CTL=RST> unless the segment is a RST.
                if not flags & RST:
                    self._emit(TcpSegment(self.local[1], self.remote[1], seg.ack, 0, RST, 0),
                               now)
                self._drop(seg, "syn-sent-bad-ack", now)
                return
        # Second, check the RST bit: acceptable only with an acceptable ACK (RFC 5961 §3.2).
        if flags & RST:
            if flags & ACK:
                self._fail(TcpConnectionRefused("connection refused"), now)
            else:
                self._drop(seg, "syn-sent-rst-without-ack", now)
            return
        # Fourth, check the SYN bit.
        if not flags & SYN:
            self._drop(seg, "syn-sent-no-syn", now)
            return
        self.irs = Seq(seg.seq)
        self.rcv_nxt = self.irs + 1
        self._rcv_adv = self.rcv_nxt + min(self._rcv_cap, 0xFFFF)  # our SYN's window
        self._apply_syn_options(seg.options, now)
        self.snd_wnd = seg.window               # unscaled in a SYN (RFC 7323 §2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = Seq(seg.seq)
        self.snd_wl2 = Seq(seg.ack)
        if flags & ACK:
            self._peer_syn_options = seg.options
            self._ack_syn(Seq(seg.ack), seg, now)
            if self.snd_una > self.iss:
                # "our SYN has been ACKed": ESTABLISHED, <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
                self._set_state(ESTABLISHED, now)
                self._established(now)
                self._ack_now = True
                if seg.payload or flags & FIN:
                    # Data or FIN on the SYN-ACK: continue at the sixth step.
                    self._text_and_fin(seg, Seq(seg.seq + 1), now)
                self._output(now)
                return
        # Simultaneous open: SYN-RECEIVED, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> (same ISS).
        self._peer_syn_options = seg.options
        self._set_state(SYN_RECEIVED, now)
        self._t_rtx = None
        self.rtt.reset_backoff()
        self._send_syn(now)

    def _ack_syn(self, ack: Seq, seg: TcpSegment, now: float) -> None:
        """Our SYN is acknowledged: SND.UNA advances past ISS, sample the handshake RTT."""
        if self._ts_ok and seg.options.timestamps and seg.options.timestamps[1]:
            self.rtt.sample((self._tsval(now) - seg.options.timestamps[1]) % (1 << 32) / 1000)
        elif self._rtt_seq is not None and self.rtt.backoffs == 0:
            self.rtt.sample(now - self._rtt_time)
        self._rtt_seq = None
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self.rtt.reset_backoff()
        self._t_rtx = None if _eq(self.snd_una, self.snd_max) else now + self.rtt.rto

    def _established(self, now: float) -> None:
        """Entering ESTABLISHED: keepalive, accept queue, a queued CLOSE."""
        self._last_rcv = now
        if self.options.keepalive is not None:
            self._t_keepalive = now + self.options.keepalive[0]
        self._stack._established(self)
        if self._shut_wr and self._fin_seq is not None:
            self._set_state(FIN_WAIT_1, now)   # a CLOSE queued in SYN-RECEIVED

    def _input_synchronizing(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state."""
        flags = seg.flags
        state = self.state
        seq = Seq(seg.seq)
        opts = seg.options
        if state is SYN_RECEIVED and flags & SYN and seq == self.irs:
            if not flags & ACK:
                # The peer retransmitted its SYN (our SYN-ACK was lost): resend ours.
                if not flags & RST:
                    self._send_syn(now)
                return
            # Simultaneous open, RFC 9293 Figure 8: the peer's SYN,ACK acknowledges
            # our SYN; its SYN is a duplicate, treat the rest as a plain segment.
            seq = seq + 1
            flags &= ~SYN

        payload = seg.payload
        seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        rcv_nxt = self.rcv_nxt
        rcv_wnd = _sdist(self._rcv_adv, rcv_nxt)
        if rcv_wnd < 0:
            rcv_wnd = 0

        # RFC 7323 §5.3 PAWS, before the acceptability test.
        ts = opts.timestamps if self._ts_ok else None
        if (ts is not None and not flags & RST and _sdist(ts[0], self._ts_recent) < 0
                and now - self._ts_recent_time < PAWS_IDLE):
            self._send_ack(now)
            self._drop(seg, "paws", now)
            return

        # First, check the sequence number (§3.10.7.4 acceptability test).
        d = _sdist(seq, rcv_nxt)
        if seg_len == 0:
            ok = (d == 0) if rcv_wnd == 0 else (0 <= d < rcv_wnd)
        elif rcv_wnd == 0:
            ok = False
        else:
            ok = (0 <= d < rcv_wnd) or (0 <= d + seg_len - 1 < rcv_wnd)
        if not ok:
            if flags & RST:
                self._drop(seg, "rst-out-of-window", now)   # RFC 5961 §3.2: silently
                return
            if state is TIME_WAIT and flags & FIN:
                # §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN; ACK it and
                # restart the 2 MSL timeout.
                self._t_time_wait = now + 2 * self._cfg.msl
            if flags & SYN and state.synchronized:
                self._drop(seg, "syn-in-window-challenge", now)
                self._send_challenge_ack(now)                # RFC 5961 §4.2
                return
            # "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>" and drop (also answers keepalives).
            self._send_ack(now)
            self._drop(seg, "unacceptable-seq", now)
            return
        self._heard_from_peer(now)

        # RFC 7323 §4.3 (R3): remember TS.Recent from the segment that is in order.
        if ts is not None and _sdist(ts[0], self._ts_recent) >= 0 and seq <= self._last_ack_sent:
            self._ts_recent = ts[0]
            self._ts_recent_time = now

        # Second, check the RST bit (RFC 5961 §3.2: exact match or challenge ACK).
        if flags & RST:
            if seq != rcv_nxt:
                self._drop(seg, "rst-not-exact-challenge", now)
                self._send_challenge_ack(now)
                return
            self._on_rst(now)
            return

        # Fourth, check the SYN bit.
        if flags & SYN:
            if state is SYN_RECEIVED and self.passive:
                # "return this connection to the LISTEN state": drop the embryo.
                self._drop(seg, "syn-in-syn-received", now)
                self._terminate(now)
                return
            # RFC 5961 §4.2 / RFC 9293: challenge ACK, drop.
            self._drop(seg, "syn-in-window-challenge", now)
            self._send_challenge_ack(now)
            return

        # Fifth, check the ACK field.
        if not flags & ACK:
            self._drop(seg, "no-ack", now)
            return
        ack = Seq(seg.ack)
        if state is SYN_RECEIVED:
            if self.snd_una < ack <= self.snd_max:
                self._ack_syn(ack, seg, now)
                self.snd_wnd = seg.window << self._snd_wscale
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self.snd_wl1 = seq
                self.snd_wl2 = ack
                self._set_state(ESTABLISHED, now)
                self._established(now)
                state = self.state
            else:
                # <SEQ=SEG.ACK><CTL=RST>
                self._emit(TcpSegment(self.local[1], self.remote[1], seg.ack, 0, RST, 0), now)
                self._drop(seg, "syn-received-bad-ack", now)
                return
        if not self._process_ack(seg, seq, ack, now):
            return
        state = self.state
        if state is CLOSED:
            return
        if state is TIME_WAIT:
            # The only thing that can arrive here is a retransmitted FIN (handled above
            # when it is old); ACK anything else in window and restart 2 MSL.
            if flags & FIN:
                self._t_time_wait = now + 2 * self._cfg.msl
                self._send_ack(now)
            return

        # Sixth, check the URG bit: urgent data is not supported (RFC 6093): ignored.
        # Seventh, process the segment text; eighth, check the FIN bit.
        if payload or flags & FIN:
            self._text_and_fin(seg, seq, now)
        self._output(now)
        self._arm_delayed_ack(now)

    def _on_rst(self, now: float) -> None:
        """§3.10.7.4 second check, an acceptable RST, per state."""
        state = self.state
        self._stack._count("resets_received")
        if state is SYN_RECEIVED:
            if self.passive:
                # Passive open: "return this connection to the LISTEN state".
                self._terminate(now)
            else:
                self._fail(TcpConnectionRefused("connection refused"), now)
        elif state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._fail(TcpConnectionReset("connection reset by peer"), now)
        elif state is TIME_WAIT and self._cfg.rfc1337:
            self._stack._count("rst_ignored_in_time_wait")   # RFC 1337 TW assassination
        else:
            # CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state, delete the TCB".
            self._terminate(now)

    def _process_ack(self, seg: TcpSegment, seq: Seq, ack: Seq, now: float) -> bool:
        """Fifth step for synchronized states. False if the segment must be dropped."""
        snd_una = self.snd_una
        d_una = _sdist(ack, snd_una)
        if _sdist(ack, self.snd_max) > 0:
            # "If the ACK acks something not yet sent ... send an ACK, drop".
            self._send_ack(now)
            self._drop(seg, "ack-of-unsent-data", now)
            return False
        if d_una < -self.max_snd_wnd:
            # RFC 5961 §5.2: too old to be acceptable, challenge ACK and drop.
            self._drop(seg, "ack-too-old", now)
            self._send_challenge_ack(now)
            return False
        if self._t_persist is not None or self._persist_probes:
            self._persist_probes = 0      # RFC 1122 4.2.2.17: the peer is alive
        window = seg.window << self._snd_wscale
        # Window update: SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK).
        wl = _sdist(seq, self.snd_wl1)
        window_changed = False
        if wl > 0 or (wl == 0 and _sdist(ack, self.snd_wl2) >= 0):
            window_changed = window != self.snd_wnd
            self.snd_wnd = window
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if window > self.max_snd_wnd:
                self.max_snd_wnd = window
            if window > 0 and self._t_persist is not None:
                self._t_persist = None
                self._persist_backoff = 0
        sb = self._sb
        sack_added = 0
        if sb is not None:
            blocks = seg.options.sack_blocks
            if blocks:
                # RFC 2018 §3 / RFC 6675 §2: record what the peer holds above SND.UNA.
                sack_added = sb.update(ack if d_una > 0 else snd_una, self.snd_max, blocks)
                if self._tlp_end is not None and _sdist(blocks[0][1], ack) <= 0:
                    # RFC 2883 D-SACK: a copy arrived twice, so the probe was
                    # not needed (RFC 8985 §7.4.2).
                    self._tlp_retrans = False
            elif d_una > 0:
                sb.advance(ack)
        if d_una > 0:
            self._on_new_ack(seg, ack, d_una, now)
        elif d_una == 0 and not _eq(self.snd_max, snd_una) and (
                sack_added > 0 or (not seg.payload and not seg.flags & (SYN | FIN)
                                   and not window_changed)):
            # RFC 5681 §2 duplicate ACK (RFC 6675 §2: or one with new SACK info).
            self._on_dup_ack(now)
        return True

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
            if not rtt.backoffs or (ts[1] - self._rto_tsval) & _MASK < 0x80000000:
                rtt.sample(((self._tsval(now) - ts[1]) & _MASK) / 1000)
        elif self._rtt_seq is not None and ack > self._rtt_seq:
            rtt.sample(now - self._rtt_time)
            self._rtt_seq = None
        self.snd_una = ack
        if _sdist(self.snd_nxt, ack) < 0:
            self.snd_nxt = ack
        data_acked = _sdist(ack, self._buf_seq)
        if data_acked > 0:
            buffered = self._sndbuf.nbytes
            if data_acked > buffered:
                data_acked = buffered            # the rest was our FIN
            self._sndbuf.consume(data_acked)
            self._buf_seq = wire_seq(_add(self._buf_seq, data_acked) & _MASK)
            self.bytes_sent += data_acked
            self._stack._changed.add(self)       # writable
        rtt.reset_backoff()                      # RFC 6298 §5.7: new data ACKed
        self._dupacks = 0
        self._lt_sent = 0
        self.cc.on_ack(acked, now, rtt.srtt, self._in_recovery and self._cc_recovery)
        rack = self._rack
        if self._tlp_end is not None and _sdist(ack, self._tlp_end) >= 0:
            self._tlp_acked(now, _sdist(self.snd_max, ack) + acked)
        if rack is not None:
            rack.on_ack(ack, self._sb, now)
        if self._in_recovery:
            if ack >= self._recover:
                # RFC 6582 §3.2 step 5 / RFC 6675 §5: full acknowledgment, leave recovery.
                self._exit_recovery(now)
            elif rack is None:
                # RFC 6582 §3.2 step 4 partial acknowledgment: retransmit the
                # next hole, deflate.
                self._inflate = max(0, self._inflate - acked) + self.mss
                self._retransmit_head(now)
        else:
            self._inflate = 0                    # RFC 3042: limited transmit ends
        if rack is not None:
            # RFC 6675 §5 (C) on a partial ACK, RFC 8985 §6.2 on every ACK.
            self._sack_loss_recovery(now)
        if _eq(self.snd_una, self.snd_max):
            self._t_rtx = None                   # RFC 6298 §5.2
            self._t_tlp = self._t_reo = None
        else:
            self._t_rtx = now + rtt.rto          # RFC 6298 §5.3
            if rack is not None:
                self._arm_tlp(now)
        fin = self._fin_seq
        if fin is not None and ack > fin:
            self._our_fin_acked(now)

    def _on_dup_ack(self, now: float) -> None:
        """RFC 5681 §3.2 / RFC 6582 §3.2 / RFC 6675 §5 duplicate ACK handling."""
        self._dupacks += 1
        self._stack._count("dup_acks_received")
        rack = self._rack
        if rack is not None:
            sb = self._sb
            assert sb is not None
            rack.on_ack(self.snd_una, sb, now)
            if self._dupacks >= DUP_THRESH and not self._in_recovery and not len(sb):
                # Duplicate ACKs without SACK blocks: RFC 5681 §3.2 step 2 deems
                # the first unacknowledged segment lost.
                rack.mark_head_lost()
            self._sack_loss_recovery(now)
            if not self._in_recovery:
                self._limited_transmit(now)
            return
        if self._in_recovery:
            self._inflate += self.mss             # step 4: inflate by one segment
            return
        if self._dupacks == DUP_THRESH and _sdist(self.snd_una, self._recover) >= 0:
            # Step 2/3: fast retransmit and enter fast recovery.
            flight = _sdist(self.snd_max, self.snd_una) - self._lt_sent
            self._recover = self.snd_max
            self._in_recovery = True
            self._cc_recovery = True
            self.cc.on_enter_recovery(now, flight)
            self._inflate = 3 * self.mss
            self._stack._count("fast_retransmits")
            self._retransmit_head(now)
        elif self._dupacks < DUP_THRESH:
            self._limited_transmit(now)

    def _limited_transmit(self, now: float) -> None:
        """RFC 3042 §2: on each of the first two duplicate ACKs send one new segment,
        if the peer's window allows, with at most cwnd + 2*SMSS outstanding; cwnd
        itself is unchanged."""
        if self._dupacks > 2:
            return
        self._inflate = self._dupacks * self.mss
        before = self.snd_max
        if self._output(now, limit=1):
            # RFC 3042 §2: these segments do not count in the FlightSize that
            # sets ssthresh when recovery starts.
            self._lt_sent += max(0, _sdist(self.snd_max, before))

    def _exit_recovery(self, now: float) -> None:
        self._in_recovery = False
        self._inflate = 0
        if self._cc_recovery:
            self._cc_recovery = False
            self.cc.on_exit_recovery(now)

    def _reo_wnd(self) -> float:
        """RFC 8985 §6.2 step 4: the reordering window."""
        rack = self._rack
        assert rack is not None and self._sb is not None
        if not rack.reordering_seen and (
                self._in_recovery or self._sb.sacked_bytes >= DUP_THRESH * self.mss):
            return 0.0
        min_rtt = rack.min_rtt or 0.0
        srtt = self.rtt.srtt
        wnd = min_rtt / 4
        return wnd if srtt is None or wnd < srtt else srtt

    def _sack_loss_recovery(self, now: float) -> None:
        """Detect losses (RFC 8985 RACK and RFC 6675 IsLost), start or continue recovery."""
        rack = self._rack
        sb = self._sb
        assert rack is not None and sb is not None
        if not self._in_recovery and not len(sb) and not rack.has_retransmitted \
                and not rack.has_lost:
            self._t_reo = None
            return                               # no hole known: nothing can be lost
        if len(sb):
            rack.mark_lost_by_sack(sb, self.mss)
        timeout = rack.detect_loss(now, self._reo_wnd())
        self._t_reo = now + timeout if timeout > 0 else None    # RFC 8985 §6.3
        if not self._in_recovery:
            if not rack.has_lost:
                return
            # RFC 6675 §5 (4): enter loss recovery, RecoveryPoint = HighData.
            # One reduction per window of data (RFC 6582 §3.2 step 2, RFC 5681
            # §3.2): losses below the previous recovery point (e.g. data sent
            # again after an RTO, whose window was cut already) are repaired
            # without reducing cwnd again.
            if _sdist(self.snd_una, self._recover) >= 0:
                flight = _sdist(self.snd_max, self.snd_una) - self._lt_sent
                self.cc.on_enter_recovery(now, flight)
                self._cc_recovery = True
                self._stack._count("fast_retransmits")
                self._stack._count("sack_recoveries")
            else:
                self._cc_recovery = False
                self._stack._count("rack_repairs")
            self._recover = self.snd_max
            self._in_recovery = True
            self._inflate = 0
            self._rprobe = False
            # RFC 6675 §5 (4.3) / RFC 5681 §3.2 step 2: the fast retransmit goes
            # out on entering recovery whatever cwnd - pipe says (RFC 6937 §3
            # likewise sends at least one segment); a peer that ACKs every few
            # segments may not send another ACK to clock it out.
            # Not after an RTO (the rack_repairs case): go-back-N is resending
            # already, within the loss window.
            lost = rack.first_lost() if self._cc_recovery else None
            if lost is not None:
                seq, length = lost
                self._retransmit_segment(seq, length, now)
        self._sack_recovery_send(now)
        if self._in_recovery:
            self._arm_tlp(now)                   # the stall probe (see _arm_tlp)

    def _sack_recovery_send(self, now: float) -> None:
        """RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send NextSeg().

        Rule (1): the lowest segment deemed lost (by RFC 6675 IsLost or by
        RACK, RFC 8985 §6.2) and not retransmitted since; rule (2): new data
        through ``_output`` with the window opened by exactly cwnd - pipe.
        A retransmission that is itself lost is deemed lost again by RACK
        once a segment sent after it is delivered, and goes out again here.
        """
        rack = self._rack
        assert rack is not None
        mss = self.mss
        cwnd = self.cc.cwnd
        for _ in range(64):                       # bounded work per ACK
            pipe = rack.pipe()
            if cwnd - pipe < mss:
                break
            lost = rack.first_lost()
            if lost is not None:
                seq, length = lost
                if not self._retransmit_segment(seq, length, now):
                    break
                continue
            self._inflate = max(0, _sdist(self.snd_nxt, self.snd_una) - pipe)
            if not self._output(now, limit=1):
                break
        self._inflate = max(0, _sdist(self.snd_nxt, self.snd_una) - rack.pipe())

    def _arm_tlp(self, now: float) -> None:
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
        if self.state not in _SEND_STATES or _eq(self.snd_una, self.snd_max) \
                or self.rtt.backoffs \
                or (self._rprobe if self._in_recovery else self._tlp_end is not None):
            # No probe after an RTO until new data is ACKed (Linux: only in the
            # Open and CWR states), nor a second one for the same tail.
            self._t_tlp = None
            return
        srtt = self.rtt.srtt
        if srtt is None:
            pto = 1.0                            # §7.2: 1 s before any RTT sample
        elif _sdist(self.snd_max, self.snd_una) <= self.mss:
            pto = 2 * srtt + WC_DEL_ACK          # one segment: the ACK may be delayed
        else:
            pto = 2 * srtt + TLP_EXTRA
        deadline = now + pto
        rtx = self._t_rtx
        if rtx is not None and deadline >= rtx:
            # §7.2 says PTO = min(PTO, RTO), i.e. a probe instead of the first
            # timeout. We let the RTO fire instead (as before RACK-TLP): with
            # one segment in flight the retransmission is the same segment.
            deadline = None
        self._t_tlp = deadline

    def _on_loss_probe_timer(self, now: float) -> None:
        """RFC 8985 §7.3: send one new segment, or resend the last one, to get an ACK
        (with SACK blocks) that lets RACK find a tail loss instead of waiting for RTO."""
        if self.state not in _SEND_STATES or _eq(self.snd_una, self.snd_max):
            return
        if self._in_recovery:
            self._recovery_stall_probe(now)
            return
        if self._tlp_end is not None:
            return
        self._trace_timer(TIMER_LOSS_PROBE, now)
        self._stack._count("loss_probes")
        saved = self._inflate
        # New data, if the peer's window allows, regardless of cwnd (§7.3).
        self._inflate = _sdist(self.snd_nxt, self.snd_una) + self.mss
        sent = self._output(now, force_one=True, limit=1)
        self._inflate = saved
        self._tlp_retrans = False
        if not sent:
            # Else the highest-sequence segment sent so far.
            start = self.snd_max - self.mss
            if _sdist(start, self.snd_una) < 0:
                start = self.snd_una
            if not self._retransmit_range(start, _sdist(self.snd_max, start), now):
                return
            self._tlp_retrans = True
        self._tlp_end = self.snd_max
        self._t_tlp = None
        self._t_rtx = now + self.rtt.rto         # §7.3: re-arm RTO, not PTO

    def _recovery_stall_probe(self, now: float) -> None:
        """No ACK for a PTO in recovery: resend the first unacknowledged segment
        (once per recovery; the RTO remains the backstop). See ``_arm_tlp``."""
        if self._rprobe:
            return
        self._rprobe = True
        self._trace_timer(TIMER_LOSS_PROBE, now, "in recovery")
        self._stack._count("recovery_stall_probes")
        if self._retransmit_segment(self.snd_una, _sdist(self.snd_max, self.snd_una), now):
            self._t_rtx = now + self.rtt.rto     # as after a probe (§7.3)

    def _tlp_acked(self, now: float, flight: int) -> None:
        """RFC 8985 §7.4: the probe is acknowledged; if it was a retransmission that
        (without a D-SACK saying the original arrived too) repaired a loss, the
        loss still calls for a congestion response (one reduction)."""
        self._tlp_end = None
        if self._tlp_retrans and not self._in_recovery:
            self._stack._count("loss_probe_repairs")
            self.cc.on_enter_recovery(now, flight)
            self.cc.on_exit_recovery(now)
        self._tlp_retrans = False

    def _on_reorder_timer(self, now: float) -> None:
        """RFC 8985 §6.3: the reordering window of a suspect segment has passed."""
        if self._rack is None or self.state not in _SEND_STATES:
            return
        self._trace_timer(TIMER_REORDER, now)
        self._sack_loss_recovery(now)

    def _retransmit_segment(self, seq: Seq, length: int, now: float) -> bool:
        """Resend at most one MSS of ``[seq, seq+length)``."""
        return self._retransmit_range(seq, length if length < self.mss else self.mss, now)

    def _retransmit_range(self, seq: Seq, length: int, now: float) -> bool:
        """Resend ``[seq, seq+length)`` of the send queue (a SACK hole)."""
        off = _sdist(seq, self._buf_seq)
        avail = self._sndbuf.nbytes - off
        if off < 0:
            return False
        flags = ACK
        fin = self._fin_seq
        n = min(length, avail)
        if n <= 0:
            if fin is None or not _eq(seq, fin):
                return False
            n = 0
            flags |= FIN
        elif fin is not None and _eq(seq + n, fin) and n < length:
            flags |= FIN
        if n and n == avail:
            flags |= PSH                          # the end of the queue, as first sent
        payload = self._sndbuf.peek(off, n) if n else b""
        self._rtt_seq = None                      # Karn
        self._emit(self._segment(seq, flags, now, payload), now)
        if self._rack is not None:
            self._rack.on_send(seq, seq + n + (1 if flags & FIN else 0), now, True)
        self.retransmits += 1
        self._stack._count("retransmitted_segments")
        return True

    def _our_fin_acked(self, now: float) -> None:
        """Fifth step, per state, once our FIN is acknowledged."""
        state = self.state
        if state is FIN_WAIT_1:
            self._set_state(FIN_WAIT_2, now)
            if self._closed:
                self._t_fin_wait_2 = now + self._cfg.fin_wait_2_timeout
        elif state is CLOSING:
            self._enter_time_wait(now)
        elif state is LAST_ACK:
            self._terminate(now)

    def _enter_time_wait(self, now: float) -> None:
        self._t_rtx = self._t_persist = self._t_keepalive = self._t_fin_wait_2 = None
        self._t_delack = self._t_tlp = self._t_reo = None
        self._set_state(TIME_WAIT, now)
        self._t_time_wait = now + 2 * self._cfg.msl

    def _text_and_fin(self, seg: TcpSegment, seq: Seq, now: float) -> None:
        """§3.10.7.4 seventh (segment text) and eighth (FIN) steps."""
        state = self.state
        payload = seg.payload
        flags = seg.flags
        n = len(payload)
        fin_off: int | None = None
        if state in _RECV_STATES:
            rcv_nxt = self.rcv_nxt
            d = _sdist(seq, rcv_nxt)                 # >= -n (acceptable)
            if flags & FIN:
                fin_off = self._rcv_off + d + n
            if n and self._closed:
                # Data after the application closed: RST (Linux, RFC 2525 §2.17).
                self._drop(seg, "data-after-close", now)
                self._send_rst_abort(now)
                self._fail(TcpConnectionAborted("data received after close"), now)
                return
            if n:
                start = 0 if d >= 0 else -d
                limit = _sdist(self._rcv_adv, rcv_nxt) - d   # bytes that fit in the window
                end = n if n < limit else limit
                if end < n:
                    fin_off = None                   # FIN beyond the window is dropped
                if end > start:
                    if d <= 0:
                        self._append_in_order(payload, start, end, now)
                    else:
                        data = memoryview(payload)[start:end]
                        if self._ooo.insert(self._rcv_off + d, data):
                            self._stack._count("ooo_segments")
                        else:
                            self._drop(seg, "ooo-queue-full", now)
                        self._ack_now = True        # RFC 5681 §4.2: immediate dup ACK
                if d > 0 or end < n:
                    self._ack_now = True            # out of order or beyond the window
            if fin_off is not None:
                if fin_off == self._rcv_off:
                    self._on_fin(now)
                elif fin_off > self._rcv_off:
                    self._fin_rcv_off = fin_off      # FIN beyond a hole waits for it
                    self._ack_now = True
        elif flags & FIN and state in (CLOSE_WAIT, CLOSING, LAST_ACK):
            # Eighth step: remain in the state (a retransmitted FIN); ACK it.
            self._ack_now = True

    def _append_in_order(self, payload: bytes | memoryview, start: int, end: int,
                         now: float) -> None:
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
        self._stack._changed.add(self)
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
        self._stack._changed.add(self)               # EOF is readable
        state = self.state
        if state in (SYN_RECEIVED, ESTABLISHED):
            self._set_state(CLOSE_WAIT, now)
        elif state is FIN_WAIT_1:
            if self._fin_seq is not None and self.snd_una > self._fin_seq:
                self._enter_time_wait(now)           # FIN+ACK together
            else:
                self._set_state(CLOSING, now)        # simultaneous close
        elif state is FIN_WAIT_2:
            self._enter_time_wait(now)

    def _maybe_window_update(self, now: float) -> None:
        """After the application read: announce a window that opened enough.

        RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): only when the right edge
        can move by min(RCV.BUFF/2, MSS), and only when it at least doubles the
        window the peer knows about (otherwise normal ACKs carry it).
        """
        if self.state not in _RECV_STATES or self._fin_rcvd:
            return
        adv_now = _sdist(self._rcv_adv, self.rcv_nxt)
        free = self._rcv_cap - self._rcvbuf.nbytes
        growth = free - adv_now
        if growth >= min(self._rcv_cap >> 1, self._rcv_mss) and free >= 2 * adv_now:
            self._stack._count("window_updates_sent")
            self._send_ack(now)

    # ---------------------------------------------------------------- timers
    def _persist_interval(self) -> float:
        return min(self.rtt.rto * (1 << min(self._persist_backoff, 30)), self._cfg.max_rto)

    def _on_timers(self, now: float) -> None:
        """Fire every timer whose deadline has passed."""
        if self._t_time_wait is not None and now >= self._t_time_wait:
            self._t_time_wait = None
            self._trace_timer(TIMER_TIME_WAIT, now)
            self._terminate(now)
            return
        if self._t_fin_wait_2 is not None and now >= self._t_fin_wait_2:
            self._t_fin_wait_2 = None
            if self.state is FIN_WAIT_2:
                self._trace_timer(TIMER_FIN_WAIT_2, now)
                self._send_rst_abort(now)            # Linux: orphan FIN-WAIT-2 expires
                self._terminate(now)
                return
        if self._t_tlp is not None and now >= self._t_tlp:
            self._t_tlp = None                   # before the RTO: PTO = min(PTO, RTO)
            self._on_loss_probe_timer(now)
        if self._t_reo is not None and now >= self._t_reo:
            self._t_reo = None
            self._on_reorder_timer(now)
        if self._t_rtx is not None and now >= self._t_rtx:
            self._t_rtx = None
            self._on_retransmit_timer(now)
            if self.state is CLOSED:
                return
        if self._t_persist is not None and now >= self._t_persist:
            self._t_persist = None
            self._on_persist_timer(now)
            if self.state is CLOSED:
                return
        if self._t_keepalive is not None and now >= self._t_keepalive:
            self._t_keepalive = None
            self._on_keepalive_timer(now)
            if self.state is CLOSED:
                return
        if self._t_delack is not None and now >= self._t_delack:
            self._t_delack = None
            if self._ack_pending or self._ack_now:
                self._trace_timer(TIMER_DELAYED_ACK, now)
                self._send_ack(now)

    def _on_retransmit_timer(self, now: float) -> None:
        """RFC 6298 §5.4-§5.6: retransmit the earliest segment, back off, maybe give up."""
        state = self.state
        rtt = self.rtt
        self._trace_timer(TIMER_RETRANSMIT, now, f"retry {rtt.backoffs + 1}")
        if state in (SYN_SENT, SYN_RECEIVED):
            limit = self._cfg.syn_retries if state is SYN_SENT else self._cfg.synack_retries
            if rtt.backoffs >= limit:
                self._give_up(now)
                return
            rtt.backoff()
            self._rtt_seq = None
            self.retransmits += 1
            self._stack._count("retransmitted_segments")
            self._t_rtx = None
            self._send_syn(now)                  # the same ISS (RFC 9293 §3.4.1)
            return
        if _eq(self.snd_una, self.snd_max):
            return
        if rtt.backoffs >= self._cfg.retries2:
            self._give_up(now)
            return
        flight = _sdist(self.snd_max, self.snd_una)
        self._rto_tsval = self._tsval(now)       # what the retransmission will carry
        self.cc.on_rto(now, flight)              # RFC 5681 §3.1 equation 4, cwnd = 1 MSS
        rtt.backoff()                            # RFC 6298 §5.5
        self._rtt_seq = None                     # Karn's rule
        self._in_recovery = False
        self._cc_recovery = False
        self._inflate = 0
        self._dupacks = 0
        self._lt_sent = 0
        self._recover = self.snd_max             # RFC 6582 §3.2 step 1 after a timeout
        self._tlp_end = None
        self._tlp_retrans = False
        self._t_tlp = self._t_reo = None
        if self._sb is not None:
            self._sb.clear()                     # the receiver may have reneged (RFC 2018 §8)
        if self._rack is not None:
            self._rack.clear()                   # go-back-N records everything anew
        self.snd_nxt = self.snd_una              # go back N from the first unacked byte
        self._t_rtx = None
        if not self._output(now, force_one=True):
            self._retransmit_head(now)
        if self._t_rtx is None:
            self._t_rtx = now + rtt.rto

    def _give_up(self, now: float) -> None:
        self._stack._count("timeouts")
        if self.state is not SYN_SENT:
            self._send_rst_abort(now)
        self._fail(TcpTimeout("connection timed out"), now)

    def _on_persist_timer(self, now: float) -> None:
        """RFC 1122 4.2.2.17 / RFC 9293 §3.8.6.1: zero window probing."""
        if self.state not in _SEND_STATES:
            return
        unsent = _sdist(self._buf_seq + self._sndbuf.nbytes, self.snd_nxt)
        if unsent <= 0 or not _eq(self.snd_una, self.snd_max):
            self._persist_backoff = 0
            return
        self._trace_timer(TIMER_PERSIST, now, f"probe {self._persist_probes + 1}")
        self._persist_probes += 1
        if self._persist_probes > self._cfg.retries2:
            self._give_up(now)                   # the peer stopped answering at all
            return
        if _sdist(self.snd_una, self.snd_nxt) + self._effective_window() > 0:
            self._output(now, force_one=True)    # the window opened a little: send anyway
        else:
            # Linux-style probe: <SEQ=SND.UNA-1><ACK=RCV.NXT>, no data; the peer
            # answers with an ACK carrying its current window.
            self._emit(self._segment(self.snd_una - 1, ACK, now), now)
            self._stack._count("zero_window_probes")
        self._persist_backoff += 1
        if self._t_rtx is None:
            self._t_persist = now + self._persist_interval()

    def _on_keepalive_timer(self, now: float) -> None:
        """RFC 1122 4.2.3.6: probe an idle connection, abort after ``count`` misses."""
        ka = self.options.keepalive
        if ka is None or self.state not in _KEEPALIVE_STATES:
            return
        idle, interval, count = ka
        if not _eq(self.snd_una, self.snd_max) or self._sndbuf.nbytes:
            # Data in flight: the retransmission timer watches the peer.
            self._t_keepalive = now + idle
            return
        since = now - self._last_rcv
        if self._ka_probes == 0 and since < idle:
            self._t_keepalive = self._last_rcv + idle
            return
        if self._ka_probes >= count:
            self._trace_timer(TIMER_KEEPALIVE, now, f"{count} probes unanswered")
            self._give_up(now)
            return
        self._ka_probes += 1
        self._trace_timer(TIMER_KEEPALIVE, now, f"probe {self._ka_probes}/{count}")
        # <SEQ=SND.NXT-1> with no data: outside the peer's window, so it ACKs.
        self._emit(self._segment(self.snd_max - 1, ACK, now), now)
        self._stack._count("keepalive_probes")
        self._t_keepalive = now + interval


_NO_OPTIONS = TcpOptions()
