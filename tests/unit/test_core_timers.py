"""Keepalive (RFC 1122 4.2.3.6) and the other timers on a virtual clock."""

from __future__ import annotations

import pytest
from core_helpers import ACK, REMOTE, RST, Harness, State

from tcpstack.core.config import LINUX_KEEPALIVE, ConnectionOptions, StackConfig
from tcpstack.core.events import EventKind


def keepalive_harness(ka=LINUX_KEEPALIVE) -> Harness:
    return Harness(options=ConnectionOptions(keepalive=ka, timestamps=False, sack=False,
                                             window_scale=False))


def test_keepalive_is_off_by_default():
    h = Harness()
    conn = h.open_established()
    assert "keepalive" not in conn.timers()
    assert h.stack.next_deadline() is None      # an idle connection arms nothing
    h.advance(10 * 3600)
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED


def test_keepalive_probe_after_two_hours_answered_keeps_connection():
    h = keepalive_harness()
    conn = h.open_established()
    start = h.now
    h.advance(7200 - 0.001)
    h.expect_nothing()
    h.advance(0.001)
    probe = h.expect_tx(flags=ACK, seq=int(conn.snd_nxt) - 1, payload=b"")
    assert probe.ack == int(h.peer_nxt)
    assert h.now - start == pytest.approx(7200)
    h.deliver()                                  # the peer's ACK answers the probe
    h.advance(7200 - 1)
    h.expect_nothing()
    h.advance(1)
    h.expect_tx(seq=int(conn.snd_nxt) - 1)
    assert conn.state is State.ESTABLISHED


def test_keepalive_gives_up_after_count_unanswered_probes():
    h = keepalive_harness()
    conn = h.open_established()
    start = h.now
    probes = []
    while conn.state is not State.CLOSED:
        h.fire_next()
        probes.extend(h.tx())
    assert [p.flags for p in probes] == [ACK] * 9 + [RST]
    assert h.now - start == pytest.approx(7200 + 9 * 75)
    assert isinstance(conn.error, TimeoutError)
    notes = [e.reason for e in h.events if e.kind is EventKind.TIMER]
    assert notes[0] == "probe 1/9" and notes[-1] == "9 probes unanswered"


def test_keepalive_idle_restarts_with_traffic():
    h = keepalive_harness((10.0, 1.0, 3))
    conn = h.open_established()
    h.advance(8.0)
    h.deliver(payload=b"hi")                     # traffic at t=8: idle restarts
    h.advance(9.0)
    out = [s for s in h.tx() if not s.payload and s.seq == int(conn.snd_nxt) - 1]
    assert out == []
    h.advance(1.1)
    h.expect_tx(seq=int(conn.snd_nxt) - 1)


def test_keepalive_waits_while_data_is_outstanding():
    h = keepalive_harness((10.0, 1.0, 3))
    conn = h.open_established()
    conn.send(b"x", h.now)
    h.tx()
    h.advance(10.0)
    probes = [s for s in h.tx() if not s.payload]
    assert probes == []                          # retransmissions watch the peer instead


def test_delayed_ack_never_exceeds_configured_delay():
    h = Harness(StackConfig(isn_secret=b"k" * 16, delayed_ack=0.2))
    conn = h.open_established()
    h.deliver(payload=b"1")
    assert conn.timers()["delayed-ack"] == pytest.approx(h.now + 0.2)
    with pytest.raises(ValueError):
        StackConfig(delayed_ack=0.5)


def test_timers_report_next_deadline_and_fire_in_order():
    h = keepalive_harness((100.0, 10.0, 2))
    conn = h.open_established()
    conn.send(b"x", h.now)
    h.tx()
    assert h.stack.next_deadline() == pytest.approx(conn.timers()["retransmit"])
    h.deliver(ack=int(conn.snd_nxt))
    assert "retransmit" not in conn.timers()
    assert h.stack.next_deadline() == pytest.approx(conn.timers()["keepalive"])


def test_trace_has_segments_states_and_timers():
    h = keepalive_harness((1.0, 1.0, 1))
    h.open_established()
    h.advance(3.0)
    kinds = {e.kind for e in h.events}
    assert kinds == {EventKind.SEGMENT_IN, EventKind.SEGMENT_OUT, EventKind.STATE,
                     EventKind.TIMER}
    assert all(str(e) for e in h.events)


def test_stack_timer_heap_fires_many_connections_in_deadline_order():
    h = Harness()
    conns = []
    for i in range(50):
        c = h.stack.connect(REMOTE, 1000 + i, now=float(i % 7))
        conns.append(c)
    h.tx()
    # Every SYN retransmission timer is at connect time + 1 s.
    assert h.stack.next_deadline() == pytest.approx(1.0)
    h.stack.poll(1.0)
    retransmitted = {s.dst_port for s in h.tx()}
    assert retransmitted == {1000 + i for i in range(50) if i % 7 == 0}
    conns[1].abort(1.0)                      # its deadline (2.0) must disappear
    h.tx()
    h.stack.poll(2.0)
    assert {s.dst_port for s in h.tx()} == {1000 + i for i in range(50) if i % 7 == 1} - {1001}
    # The earliest armed deadline is now a backed-off one of the first group (1 + 2 s) or
    # a first timeout of a later group (i % 7 == 2 -> 3.0).
    assert h.stack.next_deadline() == pytest.approx(3.0)
