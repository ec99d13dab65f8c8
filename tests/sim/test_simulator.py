"""The simulator itself: virtual clock, real wire codec, faults, drop rules, determinism."""

from __future__ import annotations

import time

import pytest
from sim_helpers import PORT, A, B, establish, make_sim, wire

from tcpstack.core.events import EventKind
from tcpstack.core.state import State
from tcpstack.link.fault import FaultSpec
from tcpstack.sim import SimulationTimeout, Simulator
from tcpstack.wire.tcp import ACK, TcpSegment


def test_the_clock_jumps_instead_of_sleeping() -> None:
    sim, a, b = make_sim()
    establish(sim, a, b)
    started = time.perf_counter()
    sim.run_for(86_400.0)  # a virtual day
    assert sim.now >= 86_400.0
    assert time.perf_counter() - started < 5.0  # generous: it is a handful of steps


def test_events_are_ordered_and_cover_both_stacks() -> None:
    sim, a, b = make_sim()
    establish(sim, a, b)
    times = [e.time for e in sim.events]
    assert times == sorted(times)
    assert {e.local[0] for e in sim.events if e.local} == {A, B}
    outs = [e for e in sim.events if e.kind is EventKind.SEGMENT_OUT]
    assert [e.segment for e in outs] == [p.segment for p in sim.packets]


def test_corrupted_packets_are_dropped_by_the_checksum_and_counted() -> None:
    sim, a, b = make_sim()
    injector = sim.set_faults(A, B, FaultSpec(corrupt=1.0, seed=3))
    assert injector is not None
    conn = a.connect(B, PORT, sim.now)
    b.listen(PORT)
    sim.run_for(3.5)  # the SYN and its retransmissions at 1 s and 3 s
    syns = wire(sim, A)
    assert len(syns) == 3 and all(p.corrupted == 1 and not p.arrivals for p in syns)
    assert sim.counters["wire_bad-checksum"] == 3
    assert injector.counters.corrupted == 3
    assert conn.state is State.SYN_SENT
    assert not [e for e in sim.events if e.kind is EventKind.SEGMENT_IN]


def test_drop_rules_count_and_expire() -> None:
    sim, a, b = make_sim()
    rule = sim.drop(lambda p: p.src == A, count=2)
    client, _ = establish(sim, a, b)
    assert [p.dropped for p in wire(sim, A)][:3] == [True, True, False]
    assert len(rule.dropped) == 2 and not rule.active
    assert sim.counters["dropped_by_rule"] == 2
    assert client.state is State.ESTABLISHED


def test_inject_and_run_until_timeout_message() -> None:
    sim, _, b = make_sim()
    record = sim.inject(A, B, TcpSegment(1234, 9, 1, 1, ACK, 1000))
    with pytest.raises(SimulationTimeout, match="nothing left to happen"):
        sim.run_until(lambda: False, timeout=10)
    assert record.injected and record.arrivals == [0.0]
    # No socket: an ACK draws <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1).
    [reset] = wire(sim, B)
    assert reset.segment.seq == 1 and reset.segment.flags & 0x04
    sim.drop(lambda p: True, count=None)
    b.connect(A, PORT, sim.now)  # its SYN retransmissions keep events pending
    with pytest.raises(SimulationTimeout, match=r"0\.5 s of virtual time passed"):
        sim.run_until(lambda: False, timeout=0.5)
    assert sim.now == pytest.approx(0.5)


def test_same_seed_same_run_other_seed_other_run() -> None:
    def run(seed: int) -> list[tuple[float, str, str, int, int, int]]:
        sim, a, b = make_sim(seed=seed)
        sim.set_faults_both_ways(A, B, FaultSpec(loss=0.1, dup=0.05, reorder=0.1,
                                                 delay=0.01, jitter=0.002, seed=seed))
        client, _server = establish(sim, a, b, timeout=60)
        client.send(b"x" * 50_000, sim.now)
        sim.run_for(30)
        return [(p.time, p.src, p.dst, p.segment.seq, p.segment.ack, len(p.segment.payload))
                for p in sim.packets]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_address_and_route_checks() -> None:
    sim = Simulator()
    sim.add_stack(A)
    with pytest.raises(ValueError, match="already"):
        sim.add_stack(A)
    sim.inject(A, "10.9.9.9", TcpSegment(1, 2, 3, 4, ACK, 5))
    sim.run_for(1)
    assert sim.counters["no_route"] == 1


def test_wire_segments_feed_the_ladder_renderer() -> None:
    from tcpstack.ladder.build import ladder_from_trace
    from tcpstack.ladder.text import render_text

    sim, a, b = make_sim()
    sim.drop(lambda p: p.src == B and p.segment.flags == (0x02 | ACK))  # lose the SYN-ACK
    client, _ = establish(sim, a, b)
    segments = sim.wire_segments()
    assert [w.dropped for w in segments[:2]] == [False, True]
    assert segments[0].src == client.local and segments[0].dst == client.remote
    text = render_text(ladder_from_trace(sim.events, wire=segments), width=100)
    assert "SYN-SENT" in text and "ESTABLISHED" in text
    assert "X" in text  # the lost SYN-ACK is drawn as lost
