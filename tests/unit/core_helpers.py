"""Helpers for the core unit tests, in smoltcp's style.

A ``Harness`` holds one ``StackCore`` on a virtual clock and plays the remote
peer by hand: ``deliver(...)`` sends it a segment (fields default to "the
next in-order segment from the peer"), ``expect_tx(...)`` asserts the one
segment the stack sent, ``expect_nothing()`` that it sent none. Fixtures in
the test modules use ``open_*`` helpers to put a connection in each state.
"""

from __future__ import annotations

from dataclasses import replace

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.connection import Connection
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.core.stack import Listener, StackCore
from tcpstack.core.state import State
from tcpstack.seq import Seq
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, TcpOptions, TcpSegment

LOCAL = "192.0.2.1"
REMOTE = "192.0.2.2"
LOCAL_PORT = 80
REMOTE_PORT = 49152
REMOTE_ISS = 10_000
MSS = 536            # no MSS option from the peer -> RFC 9293 default
RTT = 0.1            # the handshake takes this long: SRTT 0.1, RTO 0.3 afterwards

__all__ = ["ACK", "FIN", "LOCAL", "LOCAL_PORT", "MSS", "REMOTE", "REMOTE_ISS", "REMOTE_PORT",
           "RST", "RTT", "SYN", "Harness", "State", "TcpOptions", "TcpSegment"]


def default_config(**kw) -> StackConfig:
    base = dict(isn_secret=b"unit-test-secret", msl=30.0)
    base.update(kw)
    return StackConfig(**base)


class Harness:
    """One stack, one scripted peer, one virtual clock."""

    def __init__(self, config: StackConfig | None = None,
                 options: ConnectionOptions | None = None) -> None:
        self.events: list[TraceEvent] = []
        self.stack = StackCore(LOCAL, config or default_config(), tracer=self.events.append)
        self.options = options or ConnectionOptions(sack=False, timestamps=False,
                                                    window_scale=False)
        self.now = 0.0
        self.conn: Connection | None = None
        self.listener: Listener | None = None
        self.peer_nxt = Seq(REMOTE_ISS)       # the next sequence number the peer sends
        self.peer_port = REMOTE_PORT
        self.local_port = LOCAL_PORT

    # -- the peer's segments ----------------------------------------------
    def seg(self, **fields) -> TcpSegment:
        """The peer's next in-order segment, fields overridden."""
        base = TcpSegment(
            src_port=self.peer_port, dst_port=self.local_port, seq=int(self.peer_nxt),
            ack=int(self.conn.snd_nxt) if self.conn is not None else 0,
            flags=ACK, window=65535)
        return replace(base, **fields)

    def deliver(self, seg: TcpSegment | None = None, t: float | None = None,
                advance_peer: bool = True, **fields) -> None:
        if seg is None:
            seg = self.seg(**fields)
        elif fields:
            seg = replace(seg, **fields)
        if t is not None:
            self.advance_to(t)
        if advance_peer and Seq(seg.seq) == self.peer_nxt:
            self.peer_nxt = self.peer_nxt + seg.seg_len
        self.stack.receive(REMOTE, LOCAL, seg, self.now)

    # -- what the stack sent ----------------------------------------------
    def tx(self) -> list[TcpSegment]:
        out = []
        for src, dst, seg in self.stack.take_output():
            assert src == LOCAL and dst == REMOTE
            out.append(seg)
        return out

    def expect_tx(self, **fields) -> TcpSegment:
        """Exactly one segment went out, and it has these field values."""
        out = self.tx()
        assert len(out) == 1, f"expected one segment, got {[str(s) for s in out]}"
        check(out[0], fields)
        return out[0]

    def expect_nothing(self) -> None:
        out = self.tx()
        assert out == [], f"expected nothing, got {[str(s) for s in out]}"

    # -- the clock ----------------------------------------------------------
    def advance_to(self, t: float) -> None:
        """Move the clock to ``t``, firing every timer on the way at its deadline."""
        while True:
            d = self.stack.next_deadline()
            if d is None or d > t:
                break
            self.now = max(self.now, d)
            self.stack.poll(self.now)
        self.now = max(self.now, t)

    def advance(self, dt: float) -> None:
        self.advance_to(self.now + dt)

    def fire_next(self) -> float:
        """Jump to the next deadline and fire it; return the time."""
        d = self.stack.next_deadline()
        assert d is not None, "no timer armed"
        self.now = max(self.now, d)
        self.stack.poll(self.now)
        return self.now

    # -- trace ----------------------------------------------------------------
    def states(self) -> list[State]:
        return [e.new_state for e in self.events if e.kind is EventKind.STATE]

    def timers_fired(self) -> list[str]:
        return [e.timer for e in self.events if e.kind is EventKind.TIMER]

    def drops(self) -> list[str]:
        return [e.reason for e in self.events if e.kind is EventKind.DROP]

    # -- putting a connection in a state --------------------------------------
    def open_listen(self, backlog: int = 128) -> Listener:
        self.listener = self.stack.listen(LOCAL_PORT, backlog, self.options)
        return self.listener

    def open_syn_received(self, syn_options: TcpOptions | None = None) -> Connection:
        if self.listener is None:
            self.open_listen()
        self.deliver(flags=SYN, ack=0, options=syn_options or TcpOptions())
        synack = self.expect_tx(flags=SYN | ACK, ack=int(self.peer_nxt))
        self.conn = next(c for c in self.stack.connections()
                         if c.remote == (REMOTE, self.peer_port))
        assert self.conn.state is State.SYN_RECEIVED
        assert synack.seq == self.conn.iss
        return self.conn

    def open_established(self, syn_options: TcpOptions | None = None) -> Connection:
        conn = self.open_syn_received(syn_options)
        self.deliver(t=self.now + RTT)             # the third step, one RTT later
        self.expect_nothing()
        assert conn.state is State.ESTABLISHED
        assert self.listener.accept() is conn
        return conn

    def open_syn_sent(self) -> Connection:
        self.local_port = 40000
        self.conn = self.stack.connect(REMOTE, REMOTE_PORT, self.now, local_port=40000,
                                       options=self.options)
        self.expect_tx(flags=SYN, seq=int(self.conn.iss))
        return self.conn

    def open_established_active(self) -> Connection:
        conn = self.open_syn_sent()
        self.deliver(flags=SYN | ACK, ack=int(conn.iss) + 1, t=self.now + RTT)
        self.expect_tx(flags=ACK, seq=int(conn.iss) + 1, ack=REMOTE_ISS + 1)
        assert conn.state is State.ESTABLISHED
        return conn

    def open_fin_wait_1(self) -> Connection:
        conn = self.open_established()
        conn.close(self.now)
        self.expect_tx(flags=FIN | ACK)
        assert conn.state is State.FIN_WAIT_1
        return conn

    def open_fin_wait_2(self) -> Connection:
        conn = self.open_fin_wait_1()
        self.deliver()                              # ACK of our FIN
        self.expect_nothing()
        assert conn.state is State.FIN_WAIT_2
        return conn

    def open_close_wait(self) -> Connection:
        conn = self.open_established()
        self.deliver(flags=FIN | ACK)
        self.expect_tx(flags=ACK, ack=int(self.peer_nxt))
        assert conn.state is State.CLOSE_WAIT
        return conn

    def open_last_ack(self) -> Connection:
        conn = self.open_close_wait()
        conn.close(self.now)
        self.expect_tx(flags=FIN | ACK)
        assert conn.state is State.LAST_ACK
        return conn

    def open_closing(self) -> Connection:
        conn = self.open_fin_wait_1()
        # The peer's FIN crosses ours: it does not acknowledge our FIN.
        self.deliver(flags=FIN | ACK, ack=int(conn.snd_nxt) - 1)
        self.expect_tx(flags=ACK)
        assert conn.state is State.CLOSING
        return conn

    def open_time_wait(self) -> Connection:
        conn = self.open_fin_wait_2()
        self.deliver(flags=FIN | ACK)
        self.expect_tx(flags=ACK, ack=int(self.peer_nxt))
        assert conn.state is State.TIME_WAIT
        return conn


def check(seg: TcpSegment, fields: dict) -> None:
    for name, want in fields.items():
        got = getattr(seg, name)
        if name == "flags":
            assert got == want, f"flags: got {seg} want {want:#x}"
        else:
            assert got == want, f"{name}: got {got!r} want {want!r} in {seg}"
