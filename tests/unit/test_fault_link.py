"""FaultyLink over an in-memory pair, on a virtual clock; and the memory pair itself."""

from __future__ import annotations

import pytest

from tcpstack.link.base import Link, TimedLink
from tcpstack.link.fault import FaultSpec, FaultyLink
from tcpstack.link.memory import memory_pair


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drain(link: Link) -> list[bytes]:
    out = []
    while (packet := link.recv()) is not None:
        out.append(packet)
    return out


def test_memory_pair_carries_packets_both_ways_in_order() -> None:
    a, b = memory_pair(mtu=9000)
    assert isinstance(a, Link) and a.fileno() == -1 and a.mtu == 9000 and not a.tso
    a.send(b"one")
    a.send(b"two")
    b.send(b"back")
    assert b.pending() == 2
    assert drain(b) == [b"one", b"two"]
    assert drain(a) == [b"back"]
    assert a.recv() is None


def test_memory_pair_queue_limit_drops_the_tail() -> None:
    a, b = memory_pair(queue_limit=2)
    for i in range(4):
        a.send(bytes([i]))
    assert drain(b) == [b"\x00", b"\x01"]
    assert b.overflowed == 2 and a.sent == 4


def test_null_spec_is_a_transparent_wrapper() -> None:
    a, b = memory_pair()
    link = FaultyLink(a, FaultSpec(), Clock())
    assert link.egress is None and link.ingress is None
    link.send(b"x")
    assert drain(b) == [b"x"]
    b.send(b"y")
    assert drain(link) == [b"y"]
    assert link.next_deadline() is None


def test_egress_delay_holds_packets_until_poll() -> None:
    clock = Clock()
    a, b = memory_pair()
    link = FaultyLink(a, FaultSpec(delay=0.05, seed=1), clock)
    assert isinstance(link, TimedLink)
    link.send(b"p1")
    clock.now = 0.01
    link.send(b"p2")
    assert drain(b) == []
    assert link.next_deadline() == 0.05
    link.poll(0.049)
    assert drain(b) == []
    link.poll(0.05)
    assert drain(b) == [b"p1"]
    assert link.next_deadline() == pytest.approx(0.06)
    clock.now = 0.07
    link.send(b"p3")  # sending flushes what fell due first
    assert drain(b) == [b"p2"]
    link.poll(0.13)
    assert drain(b) == [b"p3"]
    assert link.held() == 0


def test_ingress_faults_apply_to_received_packets() -> None:
    clock = Clock()
    a, b = memory_pair()
    link = FaultyLink(a, None, clock, ingress=FaultSpec(delay=0.01, seed=2))
    b.send(b"in")
    assert link.recv() is None
    assert link.next_deadline() == 0.01
    clock.now = 0.01
    assert link.recv() == b"in"
    link.send(b"out")  # egress untouched
    assert drain(b) == [b"out"]


def test_both_ways_uses_independent_streams() -> None:
    clock = Clock()
    a, b = memory_pair()
    link = FaultyLink.both_ways(a, FaultSpec(loss=0.5, seed=10), clock)
    assert link.egress is not None and link.ingress is not None
    assert link.egress.seed == 10 and link.ingress.seed == 11
    for i in range(200):
        link.send(bytes([i]))
        b.send(bytes([i]))
    sent = drain(b)
    received = drain(link)
    assert 50 < len(sent) < 150 and 50 < len(received) < 150
    assert sent != received


def test_recv_after_poll_honours_the_polled_time() -> None:
    """A timer may fire a hair before the deadline by the clock; poll(deadline)
    must still release the packets due at the deadline."""
    clock = Clock()
    a, b = memory_pair()
    link = FaultyLink(a, None, clock, ingress=FaultSpec(delay=0.01, seed=4))
    b.send(b"in")
    assert link.recv() is None
    deadline = link.next_deadline()
    assert deadline is not None
    clock.now = deadline - 1e-6
    link.poll(deadline)
    assert link.recv() == b"in"
