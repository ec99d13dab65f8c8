"""Timers end to end on the virtual clock: retransmission backoff, zero-window
persist probes, keepalive answered and unanswered (hours in milliseconds)."""

from __future__ import annotations

import itertools

import pytest
from sim_helpers import A, B, establish, make_sim, options, state_path, timer_events, wire

from tcpstack.core.events import TIMER_KEEPALIVE, TIMER_PERSIST, TIMER_RETRANSMIT
from tcpstack.core.state import State

KEEPALIVE = (7200.0, 75.0, 9)  # Linux's values when enabled


def test_lost_data_is_retransmitted_with_exponential_backoff() -> None:
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    sim.run_for(1.0)
    lost = sim.drop(lambda p: p.src == A and p.segment.payload == b"hello", count=3)
    client.send(b"hello", sim.now)
    sim.run_until(lambda: server.recv_available() == 5, timeout=60)
    assert server.recv(5, sim.now) == b"hello"
    sends = [p for p in wire(sim, A) if p.segment.payload == b"hello"]
    assert len(sends) == 4 and len(lost.dropped) == 3
    assert len({p.segment.seq for p in sends}) == 1
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(sends)]
    # RFC 6298 §5.5: the RTO doubles on each expiry.
    assert gaps[1] == pytest.approx(2 * gaps[0], rel=0.01)
    assert gaps[2] == pytest.approx(2 * gaps[1], rel=0.01)
    assert gaps[0] >= 0.2 - 1e-9  # never below the minimum RTO
    fired = timer_events(sim, client, TIMER_RETRANSMIT)
    assert len(fired) >= 3
    assert client.info()["retransmits"] >= 3 or client.state is State.ESTABLISHED
    assert client.error is None


def test_zero_window_persist_probes_back_off_and_transfer_resumes() -> None:
    """RFC 9293 §3.8.6.1 / RFC 1122 4.2.2.17: the sender probes a zero window,
    backing off, for as long as the receiver keeps answering; it resumes when
    the receiving application reads."""
    sim, a, b = make_sim()
    client, server = establish(sim, a, b, server=options(recv_buffer=16 * 1024))
    payload = bytes(range(256)) * 256  # 64 KiB: four times the receive buffer
    sent = client.send(payload, sim.now)
    sim.run_for(600.0)  # ten minutes with the receiving application asleep
    zero_windows = [p for p in wire(sim, B) if p.segment.window == 0]
    assert zero_windows, "the receiver never advertised a zero window"
    closed_at = zero_windows[0].arrivals[0]
    probes = [e for e in timer_events(sim, client, TIMER_PERSIST) if e.time > closed_at]
    assert len(probes) >= 6
    gaps = [b2.time - b1.time for b1, b2 in itertools.pairwise(probes)]
    # Exponential backoff, capped (RFC 1122 4.2.2.17; Linux caps at TCP_RTO_MAX).
    assert all(later >= earlier * 0.99 for earlier, later in itertools.pairwise(gaps))
    assert gaps[1] == pytest.approx(2 * gaps[0], rel=0.05)
    assert gaps[2] == pytest.approx(2 * gaps[1], rel=0.05)
    assert max(gaps) <= 120.0 + 1e-6
    # Each probe is answered (with the still-closed window) and never gives up.
    answers = [p for p in zero_windows if p.time > probes[0].time - 1e-9]
    assert len(answers) >= len(probes)
    assert client.state is State.ESTABLISHED and client.error is None
    got = bytearray()

    def reader(now: float) -> None:
        nonlocal sent
        got.extend(server.recv(1 << 20, now))
        if sent < len(payload):
            sent += client.send(payload[sent:], now)

    sim.every_step(reader)
    reader(sim.now)
    sim.run_until(lambda: len(got) == len(payload), timeout=600)
    assert bytes(got) == payload
    # It resumed promptly after the window opened, not at the next backed-off probe.
    assert sim.now - probes[-1].time < max(gaps[-1], 1.0) + 60


def test_keepalive_probes_answered_keep_an_idle_connection() -> None:
    sim, a, b = make_sim()
    client, server = establish(sim, a, b, client=options(keepalive=KEEPALIVE))
    start = sim.now
    sim.run_for(5 * 3600.0)  # five idle hours
    probes = [p for p in wire(sim, A, since=start + 1)]
    answers = [p for p in wire(sim, B, since=start + 1)]
    assert len(probes) >= 2 and len(answers) >= len(probes)
    first = probes[0]
    assert first.time - start == pytest.approx(KEEPALIVE[0], abs=1.0)
    # RFC 1122 4.2.3.6: the probe is <SEQ=SND.NXT-1> with no data.
    assert first.segment.seq == (client.info()["snd_nxt"] - 1) & 0xFFFFFFFF
    assert len(first.segment.payload) <= 1
    assert client.state is State.ESTABLISHED and server.state is State.ESTABLISHED
    assert client.error is None
    assert len(timer_events(sim, client, TIMER_KEEPALIVE)) >= 2


def test_keepalive_gives_up_when_the_peer_vanishes() -> None:
    sim, a, b = make_sim()
    client, _ = establish(sim, a, b, client=options(keepalive=KEEPALIVE))
    start = sim.now
    vanished = sim.drop(lambda p: p.dst == B, count=None)  # B is gone; nothing reaches it
    sim.run_until(lambda: client.error is not None, timeout=3 * 3600.0)
    assert isinstance(client.error, TimeoutError)
    assert state_path(sim, client)[-1] is State.CLOSED
    probes = [p for p in vanished.dropped if not p.segment.flags & 0x04]  # not the RST
    idle, interval, count = KEEPALIVE
    assert len(probes) == count
    assert probes[0].time - start == pytest.approx(idle, abs=1.0)
    gaps = [q.time - p.time for p, q in itertools.pairwise(probes)]
    assert gaps == pytest.approx([interval] * (count - 1), abs=0.5)
    assert sim.now - start == pytest.approx(idle + count * interval, abs=1.0)
