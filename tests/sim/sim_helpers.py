"""Shared pieces of the simulator scenarios: two stacks, a connection, trace queries."""

from __future__ import annotations

import dataclasses
import hashlib
import random

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.connection import Connection
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State
from tcpstack.link.fault import FaultSpec
from tcpstack.sim import PacketRecord, Simulator
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, flags_str

A = "10.0.0.1"
B = "10.0.0.2"
PORT = 80
MSL = 30.0


def make_sim(seed: int = 0, **config: object) -> tuple[Simulator, StackCore, StackCore]:
    """A simulator with stacks at A and B; ``config`` overrides StackConfig fields."""
    sim = Simulator(seed=seed)
    stacks = []
    for addr in (A, B):
        secret = hashlib.sha256(f"scenario|{seed}|{addr}".encode()).digest()[:16]
        values = {"isn_secret": secret, "msl": MSL, **config}
        stacks.append(sim.add_stack(addr, StackConfig(**values)))  # type: ignore[arg-type]
    return sim, stacks[0], stacks[1]


def establish(sim: Simulator, a: StackCore, b: StackCore, port: int = PORT,
              client: ConnectionOptions | None = None,
              server: ConnectionOptions | None = None,
              timeout: float = 30.0) -> tuple[Connection, Connection]:
    """Connect A to a listener on B; returns (client, server) once both are ESTABLISHED."""
    listener = b.listen(port, options=server)
    conn = a.connect(B, port, sim.now, options=client)
    accepted: list[Connection] = []

    def done() -> bool:
        if not accepted:
            child = listener.accept()
            if child is not None:
                accepted.append(child)
        return bool(accepted) and conn.state is State.ESTABLISHED

    sim.run_until(done, timeout=timeout)
    return conn, accepted[0]


def state_path(sim: Simulator, conn_or_local: Connection | tuple[str, int],
               remote: tuple[str, int] | None = None) -> list[State]:
    """The states one connection went through: its first old state, then each new state."""
    if isinstance(conn_or_local, tuple):
        local = conn_or_local
    else:
        local, remote = conn_or_local.local, conn_or_local.remote
    path: list[State] = []
    for event in sim.events:
        if event.kind is not EventKind.STATE or event.local != local:
            continue
        if remote is not None and event.remote != remote:
            continue
        if not path and event.old_state is not None:
            path.append(event.old_state)
        assert event.new_state is not None
        path.append(event.new_state)
    return path


def state_times(sim: Simulator, conn: Connection, state: State) -> list[float]:
    """When ``conn`` entered ``state`` (every time it did)."""
    return [e.time for e in sim.events
            if e.kind is EventKind.STATE and e.local == conn.local and e.remote == conn.remote
            and e.new_state is state]


def timer_events(sim: Simulator, conn: Connection, timer: str) -> list[TraceEvent]:
    return [e for e in sim.events
            if e.kind is EventKind.TIMER and e.local == conn.local and e.timer == timer]


def wire(sim: Simulator, src: str | None = None, delivered_only: bool = False,
         since: float = float("-inf")) -> list[PacketRecord]:
    """Segments put on the wire (optionally from ``src``, not dropped, after ``since``)."""
    return [p for p in sim.packets
            if (src is None or p.src == src) and p.time >= since
            and not (delivered_only and p.dropped)]


def flag_names(records: list[PacketRecord]) -> list[str]:
    """``["A SYN", "B SYN|ACK", ...]``: who sent which control bits (PSH left out)."""
    who = {A: "A", B: "B"}
    return [f"{who.get(p.src, p.src)} {flags_str(p.segment.flags & (SYN | FIN | RST | ACK))}"
            for p in records]


def is_pure_ack(record: PacketRecord) -> bool:
    seg = record.segment
    return seg.flags & (SYN | FIN | RST) == 0 and seg.flags & ACK != 0 and not seg.payload


def carries_fin(record: PacketRecord) -> bool:
    return bool(record.segment.flags & FIN)


def options(**values: object) -> ConnectionOptions:
    return dataclasses.replace(ConnectionOptions(), **values)  # type: ignore[arg-type]


def pump(sim: Simulator, conn: Connection, data: bytes, received: bytearray,
         close_after: bool = True) -> None:
    """Application hook: write ``data`` into ``conn`` as space frees up, read everything
    arriving into ``received``; shut down writing once all of ``data`` is accepted."""
    view = memoryview(data)
    sent = 0
    shut = False

    def hook(now: float) -> None:
        nonlocal sent, shut
        while sent < len(view):
            space = conn.send_space()
            if space <= 0:
                break
            accepted = conn.send(view[sent:sent + min(space, 65536)], now)
            if accepted <= 0:
                break
            sent += accepted
        if close_after and sent == len(view) and not shut:
            conn.shutdown(now)
            shut = True
        while conn.recv_available():
            received.extend(conn.recv(1 << 20, now))

    sim.every_step(hook)
    hook(sim.now)


def one_way_transfer(seed: int, spec: FaultSpec, size: int, timeout: float,
                     client_options: ConnectionOptions | None = None,
                     ) -> tuple[Simulator, Connection, Connection, float]:
    """``size`` seeded bytes from A to B through ``spec`` both ways, checked byte
    for byte; returns (sim, client, server, virtual seconds until B's EOF)."""
    sim, a, b = make_sim(seed=seed)
    client, server = establish(sim, a, b, client=client_options)
    sim.set_faults_both_ways(A, B, spec.with_seed(seed))
    data = random.Random(seed).randbytes(size)
    got, unused = bytearray(), bytearray()
    pump(sim, client, data, unused)
    pump(sim, server, b"", got, close_after=False)
    took = sim.run_until(lambda: len(got) == size and server.at_eof, timeout=timeout)
    assert bytes(got) == data
    return sim, client, server, took
