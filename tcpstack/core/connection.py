"""One TCP connection (a TCB): the RFC 9293 §3.10 event processing, sans-IO.

A ``Connection`` never reads a clock or a device, and never sees the stack:
it is handed a ``StackContext`` (``core/context.py``) through which its
segments go out and its counters, trace events and timers go in. Segments
come in through ``segment_arrives(seg, now)``, timers fire through
``fire_timers(now)``, and the application calls ``send``/``recv``/
``shutdown``/``close``/``abort``.

Reading guide -- this file is the TCB, the user calls and the SEGMENT ARRIVES
event in RFC order; the rest of the connection lives beside it:

- ``sender.py`` (``SendSide``): building segments, output (Nagle, SWS
  avoidance, TSO), retransmission, the retransmission/persist/keepalive timers;
- ``receiver.py`` (``ReceiveSide``): text and FIN, the advertised window,
  SACK blocks, the delayed ACK;
- ``prediction.py`` (``HeaderPrediction``): the fast path for in-order data
  and pure ACKs;
- ``recovery.py``: NewReno or SACK/RACK-TLP loss recovery, chosen at the
  handshake; ``options.py``: SYN option negotiation; ``timers.py``: the timer
  table.

``segment_arrives`` follows RFC 9293 §3.10.7.4 in order -- first the sequence
number (acceptability) check, second RST, fourth SYN, fifth ACK, sixth URG
(ignored), seventh segment text, eighth FIN -- with the clause number on each
branch. SYN-SENT is §3.10.7.3; LISTEN and CLOSED live in the stack
(§3.10.7.1, §3.10.7.2).
"""

from __future__ import annotations

from collections import deque

from tcpstack.core.bytequeue import ByteQueue
from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.congestion import make_congestion_control
from tcpstack.core.context import StackContext
from tcpstack.core.errors import (
    TcpConnectionAborted,
    TcpConnectionClosing,
    TcpConnectionRefused,
    TcpConnectionReset,
)
from tcpstack.core.events import TIMER_FIN_WAIT_2, TIMER_TIME_WAIT, EventKind, TraceEvent
from tcpstack.core.icmp import IcmpSide
from tcpstack.core.options import DEFAULT_MSS, negotiate, our_offer
from tcpstack.core.prediction import HeaderPrediction
from tcpstack.core.reassembly import Reassembly
from tcpstack.core.receiver import RECV_STATES, ReceiveSide
from tcpstack.core.recovery import RecoveryState, RenoRecovery, make_recovery
from tcpstack.core.rtt import RttEstimator
from tcpstack.core.sender import SEND_STATES, SendSide
from tcpstack.core.state import State
from tcpstack.core.timers import (
    FIN_WAIT_2,
    KEEPALIVE,
    PERSIST,
    RETRANSMIT,
    TIME_WAIT,
    TIMERS,
    TimerTable,
)
from tcpstack.seq import Seq, seq_diff
from tcpstack.wire.addr import endpoint_text
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, URG, TcpOptions, TcpSegment

__all__ = ["Connection", "ConnectionOptions"]

_MASK = 0xFFFFFFFF
_UNBOUNDED = 1 << 62
_SEQ_ZERO = Seq(0)
_DEFAULT_OPTIONS = ConnectionOptions()
_add = int.__add__

PAWS_IDLE = 24 * 24 * 3600.0   # RFC 7323 §5.5: TS.Recent invalid after 24 days idle

CLOSED = State.CLOSED
SYN_SENT = State.SYN_SENT
SYN_RECEIVED = State.SYN_RECEIVED
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2_STATE = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT_STATE = State.TIME_WAIT
_NO_SEND = frozenset({CLOSED, CLOSING, LAST_ACK, TIME_WAIT_STATE, FIN_WAIT_1,
                      FIN_WAIT_2_STATE})


class Connection(SendSide, ReceiveSide, HeaderPrediction, IcmpSide):
    """One TCB. Created by ``StackCore.connect`` or by a listener; see docs/architecture.md."""

    __slots__ = (
        "__weakref__", "_ack_now", "_ack_pending", "_adv_mss", "_buf_seq", "_cfg",
        "_closed", "_ctx", "_fin_rcv_off", "_fin_rcvd", "_fin_seq", "_flight_round_end",
        "_ka_probes", "_last_ack_sent", "_last_oow_ack", "_last_rcv", "_last_send",
        "_max_flight", "_mem_charged", "_mss_cap", "_ooo", "_our_options",
        "_peer_syn_options", "_persist_backoff", "_persist_probes", "_pmtu",
        "_pmtu_expires", "_probe_high", "_probe_low", "_probe_mtu", "_rcv_adv",
        "_rcv_cap", "_rcv_mss", "_rcv_off", "_rcv_space", "_rcv_space_off",
        "_rcv_space_time", "_rcv_up", "_rcv_wscale", "_rcvbuf", "_recovery",
        "_rto_tsval", "_rtt_seq", "_rtt_time", "_sack_ok", "_short_charge",
        "_short_sent", "_shut_wr", "_snd_wscale", "_sndbuf", "_soft_error", "_syn_lost",
        "_timers", "_ts_offset", "_ts_ok", "_ts_recent", "_ts_recent_time", "_wf_adv",
        "_wf_field", "_wf_free", "_wf_nxt", "_ws_ok", "bytes_received", "bytes_sent",
        "cc", "created", "error", "irs", "iss", "local", "max_snd_wnd", "mss",
        "mtu_probe", "options", "passive", "rcv_nxt", "remote", "retransmits", "rtt",
        "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2", "snd_wnd", "state",
        "syncookie",
    )

    def __init__(self, ctx: StackContext, local_port: int, remote_addr: str, remote_port: int,
                 options: ConnectionOptions | None, now: float, iss: Seq,
                 passive: bool = False, ts_offset: int = 0) -> None:
        cfg: StackConfig = ctx.config
        opts = options or _DEFAULT_OPTIONS
        self._ctx = ctx
        self._cfg = cfg
        self.options = opts
        # The stack's address of the peer's family (StackCore checked it has one).
        self.local: tuple[str, int] = (ctx.local_for(remote_addr) or ctx.local_addr, local_port)
        self.remote: tuple[str, int] = (remote_addr, remote_port)
        self.passive = passive             # opened by a listener (RFC 9293 §3.10.7.2)
        self.syncookie = False             # built from a SYN cookie's ACK (RFC 4987 §3.6)
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
        # Receive buffer: starts at rcvbuf_initial, autotuned up to recv_buffer.
        self._rcv_cap = min(opts.recv_buffer, cfg.rcvbuf_initial)
        self._rcv_space = 0              # bytes the application read in the last measure
        self._rcv_space_off = 0          # stream offset read when the measure started
        self._rcv_space_time = now
        self._rcvbuf = ByteQueue(_UNBOUNDED)    # the window bounds it, not the queue
        self._ooo = Reassembly(cfg.max_ooo_segments)
        self._rcv_off = 0                # stream offset of rcv_nxt (payload bytes in order)
        self._fin_rcv_off: int | None = None  # peer FIN beyond a hole (stream offset)
        self._fin_rcvd = False
        self._mem_charged = 0              # this connection's share of ctx.rcv_mem
        self._rcv_up: Seq | None = None   # RCV.UP: the latest urgent mark (RFC 9293 §3.3.1)

        # Options (RFC 9293 §3.7.1, RFC 7323, RFC 2018): what we offer, then what
        # the handshake agreed (options.negotiate).
        self._our_options = ours = our_offer(opts, cfg.mtu, ":" in remote_addr)
        self._adv_mss: int = ours.mss            # type: ignore[assignment]
        self.mss = DEFAULT_MSS           # effective send MSS (payload bytes per segment)
        self._mss_cap = DEFAULT_MSS      # the MSS the handshake agreed (options deducted)
        # Path MTU (RFC 1191): the link's, or what the stack learned for this destination.
        learned = ctx.pmtu.get(remote_addr, now)
        self._pmtu = learned[0] if learned else cfg.mtu
        self._pmtu_expires: float | None = learned[1] if learned else None
        self._soft_error: ConnectionError | None = None   # Linux sk_err_soft (core/icmp.py)
        # RFC 4821 MTU probing (core/icmp.py): floor (0: off), ceiling, the probe's MTU,
        # and the probe in flight as (seq, length) -- the driver must not cut that one.
        self._probe_low = self._probe_high = self._probe_mtu = 0
        self.mtu_probe: tuple[int, int] | None = None
        self._rcv_mss = DEFAULT_MSS      # estimate of the peer's segment size
        self._rcv_wscale = ours.wscale or 0
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
        self._ts_offset = ts_offset           # TSval offset: a keyed hash of the 4-tuple
        self._rto_tsval = 0                   # TSval of the latest RTO retransmission
        self._last_ack_sent = _SEQ_ZERO
        self._last_oow_ack = -1e18           # when an invalid segment was last answered
        self._sack_ok = False
        self._peer_syn_options: TcpOptions | None = None

        # Retransmission, congestion control, loss recovery.
        self.rtt = RttEstimator(cfg.initial_rto, cfg.min_rto, cfg.max_rto)
        self.cc = make_congestion_control(opts.cc, DEFAULT_MSS, opts.min_ssthresh)
        self._recovery: RenoRecovery = RenoRecovery(iss)   # SACK or not: at the handshake
        self._syn_lost = False               # our SYN or SYN-ACK was retransmitted
        # Short segments in flight: (end, MSS - size), and their sum (_effective_window).
        self._short_sent: deque[tuple[Seq, int]] | None = None   # made when first needed
        self._short_charge = 0
        self._max_flight = 0                 # most bytes in flight in this round
        self._flight_round_end = iss         # the round ends when this is ACKed
        self._rtt_seq: Seq | None = None     # Karn: the segment being timed (no timestamps)
        self._rtt_time = 0.0
        self.retransmits = 0
        self.bytes_sent = 0                  # payload bytes the peer acknowledged
        self.bytes_received = 0
        self._last_send = now

        # Timers: one table of absolute deadlines (core/timers.py, Linux names).
        self._timers = TimerTable(ctx.timers, self)
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

    # ------------------------------------------------------------------ public
    def __repr__(self) -> str:
        return (f"<Connection {endpoint_text(*self.local)} <> {endpoint_text(*self.remote)}"
                f" {self.state}>")

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it was read."""
        return self._fin_rcvd and not self._rcvbuf.nbytes

    @property
    def at_urgent_mark(self) -> bool:
        """The next byte ``recv`` returns is the urgent byte, RCV.UP - 1 (RFC 9293
        §3.8.5; the urgent pointer points past the urgent data): SIOCATMARK."""
        up = self._rcv_up
        if up is None:
            return False
        read = self.rcv_nxt - self._rcvbuf.nbytes - (1 if self._fin_rcvd else 0)
        return seq_diff(up - 1, read) == 0

    def send_space(self) -> int:
        if self._shut_wr or self.error is not None or self.state is CLOSED:
            return 0
        return self._sndbuf.space()

    def recv_available(self) -> int:
        return self._rcvbuf.nbytes

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """RFC 9293 §3.10.2 SEND: queue data; returns the number of bytes accepted."""
        if self.error is not None:
            raise self.error
        if self._shut_wr:
            raise TcpConnectionClosing("connection closing: send after shutdown")
        state = self.state
        if state in _NO_SEND:
            raise TcpConnectionClosing(f"connection closing: send in {state}")
        n = self._sndbuf.append(data)
        if n and state in SEND_STATES:
            self._output(now)
        return n

    def recv(self, max_bytes: int, now: float) -> bytes:
        """RFC 9293 §3.10.3 RECEIVE: up to ``max_bytes`` buffered bytes (b"" if none)."""
        if not self._readable():
            return b""
        data = self._rcvbuf.take(max_bytes)
        self._recharge()
        self._rcv_space_adjust(now)
        self._maybe_window_update(now)
        return data

    def recv_into(self, buffer: bytearray | memoryview, now: float) -> int:
        """RECEIVE into ``buffer`` (like ``socket.recv_into``): the bytes copied, 0 if none.

        One copy, from the receive buffer straight into the caller's memory.
        """
        if not self._readable():
            return 0
        n = self._rcvbuf.take_into(buffer)
        self._recharge()
        self._rcv_space_adjust(now)
        self._maybe_window_update(now)
        return n

    def _readable(self) -> bool:
        """Whether received bytes wait; raises the connection's error when none
        do and it failed (an abort by our own close() reads as end of stream)."""
        if self._rcvbuf.nbytes:
            return True
        if self.error is not None and not isinstance(self.error, TcpConnectionAborted):
            raise self.error
        return False

    def shutdown(self, now: float) -> None:
        """Half-close: RFC 9293 §3.10.4 CLOSE for the sending direction."""
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
        if self.state in SEND_STATES:
            self._output(now)

    def close(self, now: float) -> None:
        """RFC 9293 §3.10.4 CLOSE: no more sends, no more reads.

        Unread received data makes it an abort (RFC 2525 §2.17, as Linux does).
        """
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
        if self.state is SYN_RECEIVED and not self._sndbuf.nbytes:
            # §3.10.4 SYN-RECEIVED: "If no SENDs have been issued and there is no
            # pending data to send, then form a FIN segment and send it, and enter
            # FIN-WAIT-1 state" (Linux alike). Our SYN is still unacknowledged:
            # the retransmission timer resends it until it is (SendSide).
            self._set_state(FIN_WAIT_1, now)
            self._output(now)
        if self.state is FIN_WAIT_2_STATE:
            self._timers.arm(FIN_WAIT_2, now + self._cfg.fin_wait_2_timeout)

    def abort(self, now: float, *, reset: bool = True, reason: str = "by the application") -> None:
        """RFC 9293 §3.10.5 ABORT: RST to the peer (none with ``reset=False``), all dropped."""
        if self.state is CLOSED:
            return
        if reset:
            self._send_rst_abort(now)
        if self.error is None:
            self.error = TcpConnectionAborted(f"connection aborted {reason}")
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
            "rcv_wnd": max(0, seq_diff(self._rcv_adv, self.rcv_nxt)),
            "rcv_up": None if self._rcv_up is None else int(self._rcv_up),
            "mss": self.mss,
            "rto": self.rtt.rto,
            "srtt": self.rtt.srtt,
            "rttvar": self.rtt.rttvar,
            "cc": self.cc.name,
            "cwnd": self.cc.cwnd,
            "ssthresh": self.cc.ssthresh,
            **self.cc.info(),
            "ca_state": str(self._recovery.state),
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
            "syncookie": self.syncookie,
            "error": repr(self.error) if self.error else None,
        }

    def timers(self) -> dict[str, float]:
        """Armed timers by Linux name -> absolute deadline."""
        return self._timers.armed()

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    # ------------------------------------------------------------ called by the stack
    def open_active(self, now: float) -> None:
        """RFC 9293 §3.10.1 OPEN (active): send SYN, enter SYN-SENT."""
        self._set_state(SYN_SENT, now)
        self._send_syn(now)

    def open_passive(self, seg: TcpSegment, now: float) -> None:
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

    def open_from_cookie(self, seg: TcpSegment, peer_syn: TcpOptions, now: float) -> None:
        """RFC 4987 §3.6: ``seg`` ACKs a SYN-ACK that went out as a SYN cookie (our
        ISS); ``peer_syn`` is what the cookie kept of the peer's SYN. Rebuild
        SYN-RECEIVED as if the SYN had been kept, then process the ACK."""
        self.syncookie = True
        self.irs = Seq(seg.seq - 1)
        self.rcv_nxt = Seq(seg.seq)
        self._peer_syn_options = peer_syn
        self._apply_syn_options(peer_syn, now)
        self.snd_wl1 = self.irs
        self.snd_nxt = self.snd_max = self.iss + 1          # the SYN-ACK went out
        self._rcv_adv = self.rcv_nxt + min(self._rcv_cap, 0xFFFF)
        self._last_ack_sent = self.rcv_nxt
        self._set_state(SYN_RECEIVED, now)
        self.segment_arrives(seg, now)

    def segment_arrives(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7 SEGMENT ARRIVES for this TCB (§3.10.7.3 / §3.10.7.4)."""
        state = self.state
        if state is ESTABLISHED and self._predicted(seg, now):
            return
        if state is SYN_SENT:
            self._input_syn_sent(seg, now)
        else:
            self._input_synchronizing(seg, now)

    def fire_timers(self, now: float) -> None:
        """Run every timer whose deadline has passed, in ``TIMERS`` order."""
        at = self._timers.at
        for timer, handler in enumerate(_TIMER_HANDLERS):
            t = at[timer]
            if t is not None and now >= t:
                at[timer] = None
                handler(self, now)
                if self.state is CLOSED:
                    return

    def accepts_new_incarnation(self, seg: TcpSegment) -> bool:
        """RFC 6191 §2: a SYN for this TIME-WAIT 4-tuple may open a new connection
        (its timestamp is newer, or without timestamps its sequence number is above
        RCV.NXT)."""
        ts = seg.options.timestamps
        if self._ts_ok and ts is not None:
            return seq_diff(ts[0], self._ts_recent) > 0
        return seq_diff(seg.seq, self.rcv_nxt) > 0

    def expire_time_wait(self, now: float) -> Seq:
        """End TIME-WAIT early (the 4-tuple is reused, or the stack shuts down);
        returns the ISS for a new incarnation, above everything this one sent
        (RFC 1122 4.2.2.13)."""
        self._terminate(now)
        return Seq(int(self.snd_max) + 65535 + 2)

    # ------------------------------------------------------------ state, trace
    def _set_state(self, new: State, now: float) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self._ctx.state_changed(self, old, new, now)

    def _trace_timer(self, name: str, now: float, note: str = "") -> None:
        ctx = self._ctx
        ctx.count("timer_" + name.replace("-", "_"))
        if ctx.tracer is not None:
            ctx.trace(TraceEvent(now, EventKind.TIMER, self.local, self.remote, timer=name,
                                 reason=note))

    def _drop(self, seg: TcpSegment, reason: str, now: float) -> None:
        self._ctx.drop(self.local, self.remote, seg, reason, now)

    def _terminate(self, now: float) -> None:
        """Delete the TCB (enter CLOSED)."""
        self._timers.cancel_all()
        self._ooo.clear()
        self._recharge()
        self._set_state(CLOSED, now)
        self._ctx.connection_closed(self)

    def _fail(self, error: ConnectionError, now: float) -> None:
        """Report ``error`` to the application and delete the TCB."""
        if self.error is None:
            self.error = error
        self._rcvbuf.clear()     # RFC 9293 §3.10.7.4: "segment queues should be flushed"
        self._sndbuf.clear()
        self._terminate(now)

    def _apply_syn_options(self, peer: TcpOptions, now: float) -> None:
        """Adopt what our offer and the peer's SYN agree on (``options.negotiate``)."""
        agreed = negotiate(self._our_options, peer, ":" in self.remote[0])
        self._ws_ok = agreed.window_scale
        self._snd_wscale = agreed.snd_wscale
        self._rcv_wscale = agreed.rcv_wscale
        self._ts_ok = agreed.timestamps
        if agreed.timestamps:
            self._ts_recent = peer.timestamps[0]     # type: ignore[index]
            self._ts_recent_time = now
        self._sack_ok = agreed.sack
        self._recovery = make_recovery(agreed.sack, self.iss)
        self._mss_cap = agreed.mss
        self.mss = self._path_mss()
        self._rcv_mss = min(self._adv_mss, 536)
        self.cc = make_congestion_control(self.options.cc, self.mss, self.options.min_ssthresh)

    # ---------------------------------------------------------------- input
    def _heard_from_peer(self, now: float) -> None:
        """An acceptable segment arrived: the peer is alive (keepalive restarts)."""
        self._last_rcv = now
        if self._timers.at[KEEPALIVE] is not None:
            self._ka_probes = 0
            self._timers.arm(KEEPALIVE, now + self.options.keepalive[0])  # type: ignore[index]

    def _input_syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.3 SYN-SENT STATE."""
        flags = seg.flags
        # First, check the ACK bit.
        if flags & ACK and (seq_diff(seg.ack, self.iss) <= 0
                            or seq_diff(seg.ack, self.snd_max) > 0):
            # Old duplicate SYN-ACK (the reason for the third step):
            # <SEQ=SEG.ACK><CTL=RST> unless the segment is a RST.
            if not flags & RST:
                self._send_rst_for(seg, now)
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
            if seq_diff(self.snd_una, self.iss) > 0:
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
        self._timers.at[RETRANSMIT] = None
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
        if seq_diff(self.snd_nxt, ack) < 0:
            self.snd_nxt = ack
        self.rtt.reset_backoff()
        if seq_diff(self.snd_una, self.snd_max) == 0:
            self._timers.at[RETRANSMIT] = None
        else:
            self._timers.arm(RETRANSMIT, now + self.rtt.rto)

    def _established(self, now: float) -> None:
        """Entering ESTABLISHED: keepalive, accept queue, a queued CLOSE."""
        self._last_rcv = now
        if self._syn_lost:
            # RFC 5681 §3.1: after a lost SYN or SYN-ACK the initial window is one
            # segment (Linux: only after two or more); RFC 6298 §5.7: RTO 3 s if
            # no RTT was measured.
            self.cc.cwnd = self.mss
            self.rtt.fall_back_after_syn_loss()
        if self.options.keepalive is not None:
            self._timers.arm(KEEPALIVE, now + self.options.keepalive[0])
        self._mtu_probing_on_established(now)
        self._ctx.connection_established(self)
        if self._shut_wr and self._fin_seq is not None:
            self._set_state(FIN_WAIT_1, now)   # a CLOSE queued in SYN-RECEIVED

    def _input_synchronizing(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state."""
        flags = seg.flags
        state = self.state
        seq = Seq(seg.seq)
        opts = seg.options
        if state is SYN_RECEIVED and flags & SYN and seq_diff(seq, self.irs) == 0:
            if not flags & ACK:
                if flags & RST:
                    return
                if self.passive:
                    # The peer retransmitted its SYN (our SYN-ACK was lost): resend
                    # ours (Linux alike).
                    self._send_syn(now)
                else:
                    # A SYN-RECEIVED reached from SYN-SENT (simultaneous open): the
                    # SYN again lies below RCV.NXT, unacceptable: an ACK, no SYN-ACK.
                    self._send_oow_ack(seg, now)
                return
            # Simultaneous open, RFC 9293 Figure 8: the peer's SYN,ACK acknowledges
            # our SYN; its SYN is a duplicate, treat the rest as a plain segment.
            seq = seq + 1
            flags &= ~SYN

        payload = seg.payload
        seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        rcv_nxt = self.rcv_nxt
        rcv_wnd = seq_diff(self._rcv_adv, rcv_nxt)
        if rcv_wnd < 0:
            rcv_wnd = 0

        # RFC 7323 §5.3 PAWS, before the acceptability test. After 24 days idle
        # TS.Recent is invalid (§5.5): PAWS is skipped and TS.Recent taken anew.
        ts = opts.timestamps if self._ts_ok else None
        ts_recent_valid = now - self._ts_recent_time < PAWS_IDLE
        if (ts is not None and not flags & RST and seq_diff(ts[0], self._ts_recent) < 0
                and ts_recent_valid):
            self._send_oow_ack(seg, now)
            self._drop(seg, "paws", now)
            return

        # First, check the sequence number (§3.10.7.4 acceptability test).
        d = seq_diff(seq, rcv_nxt)
        if seg_len == 0:
            ok = (d == 0) if rcv_wnd == 0 else (0 <= d < rcv_wnd)
        elif rcv_wnd == 0:
            ok = False
        else:
            ok = (0 <= d < rcv_wnd) or (0 <= d + seg_len - 1 < rcv_wnd)
        text_refused = False
        if not ok and rcv_wnd == 0 and d == 0 and not flags & SYN:
            # §3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable,
            # but special allowance should be made to accept valid ACKs, URGs, and
            # RSTs": the ACK and window are processed, the text and FIN are not.
            ok = text_refused = True
            payload = b""
            flags &= ~FIN
        if not ok:
            if flags & RST:
                self._drop(seg, "rst-out-of-window", now)   # RFC 5961 §3.2: silently
                return
            if state is TIME_WAIT_STATE and flags & FIN:
                # §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN; ACK it and
                # restart the 2 MSL timeout.
                self._timers.arm(TIME_WAIT, now + 2 * self._cfg.msl)
            if flags & SYN and state.synchronized:
                self._drop(seg, "syn-in-window-challenge", now)
                self._send_challenge_ack(now)                # RFC 5961 §4.2
                return
            # "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>" and drop (also answers keepalives).
            self._send_oow_ack(seg, now)
            self._drop(seg, "unacceptable-seq", now)
            return
        self._heard_from_peer(now)

        # RFC 7323 §4.3 (R3): remember TS.Recent from the segment that is in order.
        if (ts is not None and (seq_diff(ts[0], self._ts_recent) >= 0 or not ts_recent_valid)
                and seq_diff(seq, self._last_ack_sent) <= 0):
            self._ts_recent = ts[0]
            self._ts_recent_time = now

        # Second, check the RST bit (RFC 5961 §3.2: exact match or challenge ACK).
        if flags & RST:
            if d != 0:
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
            if seq_diff(ack, self.snd_una) > 0 and seq_diff(ack, self.snd_max) <= 0:
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
                self._send_rst_for(seg, now)
                self._drop(seg, "syn-received-bad-ack", now)
                return
        elif seq_diff(self.snd_una, self.iss) == 0 and not (
                seq_diff(ack, self.snd_una) > 0 and seq_diff(ack, self.snd_max) <= 0):
            # FIN-WAIT-1 entered by CLOSE in SYN-RECEIVED, our SYN still unACKed:
            # the SYN-RECEIVED rule holds, an ACK that does not cover it is bad.
            self._send_rst_for(seg, now)
            self._drop(seg, "syn-received-bad-ack", now)
            return
        if not self._process_ack(seg, seq, ack, now):
            return
        state = self.state
        if state is CLOSED:
            return
        if state is TIME_WAIT_STATE:
            # §3.10.7.4 eighth: a retransmitted FIN is ACKed and restarts 2 MSL. Any
            # other acceptable segment but a bare ACK at RCV.NXT is ACKed too (Linux
            # tcp_timewait_state_process: TCP_TW_ACK), so a peer that lost our last
            # ACK learns where we are.
            if flags & FIN:
                self._timers.arm(TIME_WAIT, now + 2 * self._cfg.msl)
                self._send_ack(now)
            elif seg_len or d != 0:
                self._send_ack(now)
            return

        if text_refused:
            self._ctx.count("zero_window_text_refused")
            self._ack_now = True                 # tell the peer the window is still 0
        # Sixth, check the URG bit (RFC 9293 §3.10.7.4, MUST-30/31): the urgent
        # pointer points past the urgent data; the mark is kept, the data stays
        # inline in the stream (SO_OOBINLINE; RFC 6093 §6). No URG is ever sent.
        if flags & URG and state in RECV_STATES:
            self._urgent(seq, seg.urgent)
        # Seventh, process the segment text; eighth, check the FIN bit.
        if payload or flags & FIN:
            self._text_and_fin(seg, seq, now)
        self._output(now)
        self._arm_delayed_ack(now)

    def _on_rst(self, now: float) -> None:
        """§3.10.7.4 second check, an acceptable RST, per state."""
        state = self.state
        self._ctx.count("resets_received")
        if state is SYN_RECEIVED:
            if self.passive:
                # Passive open: "return this connection to the LISTEN state".
                self._terminate(now)
            else:
                self._fail(TcpConnectionRefused("connection refused"), now)
        elif state is TIME_WAIT_STATE:
            if self._cfg.rfc1337:
                self._ctx.count("rst_ignored_in_time_wait")   # RFC 1337 TW assassination
            else:
                self._terminate(now)   # "enter the CLOSED state, delete the TCB"
        else:
            # ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT; CLOSING and LAST-ACK too: the
            # application hears "connection reset" (Linux: ECONNRESET in every
            # synchronized state), not a clean end, since our FIN was not ACKed.
            self._fail(TcpConnectionReset("connection reset by peer"), now)

    def _process_ack(self, seg: TcpSegment, seq: Seq, ack: Seq, now: float) -> bool:
        """Fifth step for synchronized states. False if the segment must be dropped."""
        snd_una = self.snd_una
        d_una = seq_diff(ack, snd_una)
        if seq_diff(ack, self.snd_max) > 0:
            # "If the ACK acks something not yet sent ... send an ACK, drop".
            self._send_oow_ack(seg, now)
            self._drop(seg, "ack-of-unsent-data", now)
            return False
        if d_una < -self.max_snd_wnd:
            # RFC 5961 §5.2: too old to be acceptable, challenge ACK and drop.
            self._drop(seg, "ack-too-old", now)
            self._send_challenge_ack(now)
            return False
        at = self._timers.at
        if at[PERSIST] is not None or self._persist_probes:
            self._persist_probes = 0      # RFC 1122 4.2.2.17: the peer is alive
        window = seg.window << self._snd_wscale
        # Window update: SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK).
        wl = seq_diff(seq, self.snd_wl1)
        window_changed = False
        # RFC 9293 §3.10.7.4 fifth: only from a segment with SND.UNA =< SEG.ACK.
        if d_una >= 0 and (wl > 0 or (wl == 0 and seq_diff(ack, self.snd_wl2) >= 0)):
            window_changed = window != self.snd_wnd
            self.snd_wnd = window
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if window > self.max_snd_wnd:
                self.max_snd_wnd = window
            if window > 0 and at[PERSIST] is not None:
                at[PERSIST] = None
                self._persist_backoff = 0
        recovery = self._recovery
        sack_added = recovery.record_sack(seg.options.sack_blocks, ack, d_una, snd_una,
                                          self.snd_max)
        if d_una > 0:
            self._on_new_ack(seg, ack, d_una, now)
        elif d_una == 0 and seq_diff(self.snd_max, snd_una) != 0 and (
                sack_added > 0 or (not seg.payload and not seg.flags & (SYN | FIN)
                                   and not window_changed)):
            # RFC 5681 §2 duplicate ACK (RFC 6675 §2: or one with new SACK info).
            recovery.on_dup_ack(self, now)
            if (self.mtu_probe is not None and recovery.state is not RecoveryState.OPEN
                    and recovery.state is not RecoveryState.DISORDER
                    and seq_diff(self.snd_una, self.mtu_probe[0]) <= 0):
                self._mtu_probe_lost()           # recovery begins at or before the probe
        if self.cc.samples_delivery:
            recovery.sample_delivery(self, now)  # BBR's model (core/bbr.py)
        return True

    def _our_fin_acked(self, now: float) -> None:
        """Fifth step, per state, once our FIN is acknowledged."""
        state = self.state
        if state is FIN_WAIT_1:
            self._set_state(FIN_WAIT_2_STATE, now)
            if self._closed:
                self._timers.arm(FIN_WAIT_2, now + self._cfg.fin_wait_2_timeout)
        elif state is CLOSING:
            self._enter_time_wait(now)
        elif state is LAST_ACK:
            self._terminate(now)

    def _enter_time_wait(self, now: float) -> None:
        if self._ctx.time_wait >= self._cfg.max_time_wait:
            # Linux tcp_max_tw_buckets: past the limit, close without TIME-WAIT.
            self._ctx.count("time_wait_overflow")
            self._terminate(now)
            return
        self._timers.cancel_all()
        # Our FIN is acknowledged, nothing is in flight: like Linux's TIME-WAIT
        # minisock keep no loss-recovery state (SACK scoreboard, send log), nor
        # the peer's SYN options (only a SYN-ACK resent in SYN-RECEIVED uses them).
        self._recovery = RenoRecovery(self.snd_max)
        self._peer_syn_options = None
        self._short_sent = None
        self._short_charge = 0
        self._set_state(TIME_WAIT_STATE, now)
        self._timers.arm(TIME_WAIT, now + 2 * self._cfg.msl)

    # ---------------------------------------------------------------- timers
    def _on_time_wait_timer(self, now: float) -> None:
        """RFC 9293 §3.10.8: 2 MSL have passed in TIME-WAIT: delete the TCB."""
        self._trace_timer(TIMER_TIME_WAIT, now)
        self._terminate(now)

    def _on_fin_wait_2_timer(self, now: float) -> None:
        """Linux: an orphaned FIN-WAIT-2 (closed by the application) expires."""
        if self.state is FIN_WAIT_2_STATE:
            self._trace_timer(TIMER_FIN_WAIT_2, now)
            self._send_rst_abort(now)
            self._terminate(now)

    def _on_loss_probe_timer(self, now: float) -> None:
        self._recovery.on_loss_probe_timer(self, now)

    def _on_reorder_timer(self, now: float) -> None:
        self._recovery.on_reorder_timer(self, now)


# TimerTable index -> the Connection method that handles it (core/timers.py TIMERS).
_TIMER_HANDLERS = tuple(getattr(Connection, timer.handler) for timer in TIMERS)
