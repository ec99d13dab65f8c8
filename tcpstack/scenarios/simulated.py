"""Every scenario on the simulator: two tcpstack stacks on a virtual clock.

Both ends are traced, so every state on the diagram is exact. The link
delays each segment by ``LINK_DELAY`` so the time column shows round trips;
losses are scripted with ``sim.drop`` so each run is the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.connection import Connection
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State
from tcpstack.ladder.build import ladder_from_trace
from tcpstack.ladder.model import Ladder, SegmentItem
from tcpstack.link.fault import FaultSpec
from tcpstack.sim import PacketRecord, Simulator
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

CLIENT = "10.7.0.1"
SERVER = "10.7.0.2"
CLIENT_PORT = 40000
PORT = 7
LINK_DELAY = 0.010          # one way: a 20 ms round trip
MSL = 30.0                  # Linux-like: TIME-WAIT lasts 60 s (virtual seconds cost nothing)

SimResult = tuple[Ladder, list[PacketRecord]]


class World:
    """A simulator with a client and a server stack and the scenario's roles."""

    def __init__(self, seed: int = 1, **config: object) -> None:
        self.sim = Simulator(seed=seed)
        self.stacks: dict[str, StackCore] = {}
        for addr in (CLIENT, SERVER):
            secret = hashlib.sha256(f"scenario|{seed}|{addr}".encode()).digest()[:16]
            values = {"isn_secret": secret, "msl": MSL, **config}
            self.stacks[addr] = self.sim.add_stack(addr, StackConfig(**values))  # type: ignore[arg-type]
        self.sim.set_faults_both_ways(CLIENT, SERVER, FaultSpec(delay=LINK_DELAY))
        self.roles = {(CLIENT, CLIENT_PORT): "client", (SERVER, PORT): "server"}
        self.order = [(CLIENT, CLIENT_PORT), (SERVER, PORT)]

    @property
    def a(self) -> StackCore:
        return self.stacks[CLIENT]

    @property
    def b(self) -> StackCore:
        return self.stacks[SERVER]

    def run_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        self.sim.run_until(predicate, timeout)

    def run_for(self, seconds: float) -> None:
        self.sim.run_for(seconds)

    def establish(self, client: ConnectionOptions | None = None,
                  server: ConnectionOptions | None = None) -> tuple[Connection, Connection]:
        listener = self.b.listen(PORT, options=server)
        conn = self.a.connect(SERVER, PORT, self.sim.now, local_port=CLIENT_PORT, options=client)
        accepted: list[Connection] = []

        def done() -> bool:
            if not accepted:
                child = listener.accept()
                if child is not None:
                    accepted.append(child)
            return bool(accepted) and conn.state is State.ESTABLISHED \
                and accepted[0].state is State.ESTABLISHED

        self.run_until(done)
        return conn, accepted[0]

    def read_all(self, conn: Connection) -> bytes:
        return conn.recv(1 << 20, self.sim.now)

    def result(self) -> SimResult:
        return self.ladder(), self.sim.packets

    def ladder(self) -> Ladder:
        return ladder_from_trace(self.sim.events, wire=self.sim.wire_segments(), roles=self.roles,
                                 order=self.order)


def _pure_ack(p: PacketRecord) -> bool:
    f = p.segment.flags
    return f & (SYN | FIN | RST) == 0 and f & ACK != 0 and not p.segment.payload


def _closed(*conns: Connection) -> Callable[[], bool]:
    return lambda: all(c.state is State.CLOSED for c in conns)


# ----- the scenarios ------------------------------------------------------------------

def handshake() -> SimResult:
    w = World()
    w.establish()
    return w.result()


def data() -> SimResult:
    w = World()
    client, server = w.establish()
    client.send(b"hello, server\n", w.sim.now)
    w.run_until(lambda: server.recv_available() == 14)
    w.read_all(server)
    w.run_for(0.1)
    server.send(b"hello, client\n", w.sim.now)
    w.run_until(lambda: client.recv_available() == 14)
    w.read_all(client)
    w.run_for(0.1)
    return w.result()


def active_close() -> SimResult:
    w = World()
    client, server = w.establish()
    w.run_for(0.1)
    client.close(w.sim.now)
    w.run_until(lambda: server.at_eof or server.recv_available() > 0)
    w.read_all(server)
    w.run_for(0.05)
    server.close(w.sim.now)
    w.run_until(_closed(client, server), timeout=3 * MSL)
    return w.result()


def passive_close() -> SimResult:
    w = World()
    client, server = w.establish()
    w.run_for(0.1)
    server.close(w.sim.now)            # the server closes first: the client is passive
    w.run_until(lambda: client.at_eof)
    w.run_for(0.5)                     # the client application takes its time: CLOSE-WAIT
    client.close(w.sim.now)
    w.run_until(lambda: client.state is State.CLOSED)
    return w.result()


def half_close() -> SimResult:
    w = World()
    client, server = w.establish()
    client.send(b"request\n", w.sim.now)
    client.shutdown(w.sim.now)         # "I have nothing more to send" -- but keeps reading
    w.run_until(lambda: server.at_eof or server.recv_available() == 8)
    w.run_until(lambda: server.recv_available() == 8)
    w.read_all(server)
    w.run_for(0.1)
    for line in (b"reply 1\n", b"reply 2\n"):  # CLOSE-WAIT may still send
        server.send(line, w.sim.now)
        w.run_for(0.1)
    w.read_all(client)
    server.close(w.sim.now)
    w.run_until(lambda: server.state is State.CLOSED)
    return w.result()


def simultaneous_open() -> SimResult:
    w = World()
    left = w.a.connect(SERVER, PORT, w.sim.now, local_port=CLIENT_PORT)
    right = w.b.connect(CLIENT, CLIENT_PORT, w.sim.now, local_port=PORT)
    w.roles = {(CLIENT, CLIENT_PORT): "peer A", (SERVER, PORT): "peer B"}
    w.run_until(lambda: left.state is State.ESTABLISHED and right.state is State.ESTABLISHED)
    w.run_for(0.1)
    return w.result()


def simultaneous_close() -> SimResult:
    w = World()
    client, server = w.establish()
    w.roles = {(CLIENT, CLIENT_PORT): "peer A", (SERVER, PORT): "peer B"}
    w.run_for(0.1)
    client.close(w.sim.now)
    server.close(w.sim.now)
    w.run_until(_closed(client, server), timeout=3 * MSL)
    return w.result()


def finwait1_to_timewait() -> SimResult:
    w = World()
    client, server = w.establish()
    w.run_for(0.1)
    # The server's separate ACK of the client's FIN is lost, so the next
    # segment the client receives carries both the ACK and the server's FIN.
    w.sim.drop(lambda p: p.src == SERVER and _pure_ack(p))
    client.close(w.sim.now)
    w.run_until(lambda: server.at_eof)
    server.close(w.sim.now)
    w.run_until(_closed(client, server), timeout=3 * MSL)
    return w.result()


def time_wait_reack() -> SimResult:
    w = World()
    client, server = w.establish()
    w.run_for(0.1)
    client.close(w.sim.now)
    w.run_until(lambda: server.at_eof)
    # The client's last ACK (sent in TIME-WAIT) is lost once.
    w.sim.drop(lambda p: p.src == CLIENT and _pure_ack(p) and client.state is State.TIME_WAIT)
    server.close(w.sim.now)
    w.run_until(_closed(client, server), timeout=4 * MSL)
    return w.result()


def old_duplicate_syn() -> SimResult:
    w = World()
    listener = w.b.listen(PORT)
    # The client's first SYN is delayed in the network (we drop it and let the
    # retransmission stand for its late arrival); meanwhile an old duplicate
    # SYN of an earlier incarnation of the connection arrives.
    first = w.sim.drop(lambda p: p.src == CLIENT and p.segment.flags == SYN)
    client = w.a.connect(SERVER, PORT, w.sim.now, local_port=CLIENT_PORT)
    w.sim.flush()
    real_isn = first.dropped[0].segment.seq
    stale = TcpSegment(CLIENT_PORT, PORT, (real_isn - 1_000_000) & 0xFFFFFFFF, 0, SYN, 65535)
    w.sim.inject(CLIENT, SERVER, stale, delay=LINK_DELAY)
    accepted: list[Connection] = []

    def done() -> bool:
        child = listener.accept()
        if child is not None:
            accepted.append(child)
        return client.state is State.ESTABLISHED and bool(accepted)

    w.run_until(done)
    w.run_for(0.05)
    ladder, packets = w.result()
    for i, item in enumerate(ladder.items):
        if isinstance(item, SegmentItem) and item.note == "injected":
            ladder.items[i] = replace(item, note="old duplicate SYN")
    return ladder, packets


def refused() -> SimResult:
    w = World()
    client = w.a.connect(SERVER, PORT, w.sim.now, local_port=CLIENT_PORT)
    w.run_until(lambda: client.error is not None)
    w.run_for(0.05)
    return w.result()


def keepalive() -> SimResult:
    w = World()
    client, _ = w.establish(client=ConnectionOptions(keepalive=(10.0, 5.0, 3)))
    w.run_for(12.0)                    # one probe, answered: the peer is alive
    # Now the server host vanishes: nothing reaches it any more.
    w.sim.drop(lambda p: p.dst == SERVER, count=None)
    w.run_until(lambda: client.error is not None, timeout=120.0)
    w.run_for(0.05)
    return w.result()


def zero_window() -> SimResult:
    w = World()
    client, server = w.establish(client=ConnectionOptions(mss=1000),
                                 server=ConnectionOptions(recv_buffer=2000, mss=1000))
    payload = bytes(3000)
    sent = client.send(payload, w.sim.now)
    w.run_for(3.5)                     # the receiving application sleeps: window 0, probes
    got = bytearray(w.read_all(server))

    def app(now: float) -> None:
        nonlocal sent
        got.extend(server.recv(1 << 20, now))
        if sent < len(payload):
            sent += client.send(payload[sent:], now)

    w.sim.every_step(app)
    w.run_until(lambda: len(got) == len(payload))
    w.run_for(0.1)
    return w.result()


def lost_segment() -> SimResult:
    w = World()
    client, server = w.establish()
    w.run_for(0.1)
    w.sim.drop(lambda p: p.src == CLIENT and p.segment.payload == b"hello", count=3)
    client.send(b"hello", w.sim.now)
    w.run_until(lambda: server.recv_available() == 5, timeout=60.0)
    w.read_all(server)
    w.run_for(0.1)
    return w.result()


def pmtu() -> SimResult:
    w = World()
    client, server = w.establish()
    w.run_for(0.1)
    # A 1200-byte link whose router's ICMP never arrives: bigger packets vanish.
    w.sim.drop(lambda p: 40 + 12 + len(p.segment.payload) > 1200, count=None)
    client.send(bytes(6000), w.sim.now)
    client.shutdown(w.sim.now)
    w.run_until(lambda: server.recv_available() == 6000, timeout=60.0)
    w.read_all(server)
    server.close(w.sim.now)
    w.run_until(_closed(server), timeout=60.0)
    return w.result()


SIMULATED: dict[str, Callable[[], SimResult]] = {
    "handshake": handshake,
    "data": data,
    "active-close": active_close,
    "passive-close": passive_close,
    "half-close": half_close,
    "simultaneous-open": simultaneous_open,
    "simultaneous-close": simultaneous_close,
    "finwait1-to-timewait": finwait1_to_timewait,
    "time-wait-reack": time_wait_reack,
    "old-duplicate-syn": old_duplicate_syn,
    "refused": refused,
    "keepalive": keepalive,
    "zero-window": zero_window,
    "lost-segment": lost_segment,
    "pmtu": pmtu,
}
