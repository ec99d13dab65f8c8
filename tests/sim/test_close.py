"""Closing end to end: four-way close, half-close, simultaneous close, FIN+ACK
in FIN-WAIT-1, and TIME-WAIT re-ACKing a retransmitted FIN."""

from __future__ import annotations

import pytest
from sim_helpers import (
    MSL,
    A,
    B,
    carries_fin,
    establish,
    flag_names,
    is_pure_ack,
    make_sim,
    options,
    state_path,
    state_times,
    wire,
)

from tcpstack.core.state import State

ACTIVE_CLOSE = [State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT,
                State.CLOSED]
PASSIVE_CLOSE = [State.ESTABLISHED, State.CLOSE_WAIT, State.LAST_ACK, State.CLOSED]


def after(path: list[State], state: State) -> list[State]:
    return path[path.index(state):]


def test_four_way_close() -> None:
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    start = len(wire(sim))
    client.close(sim.now)
    sim.run_until(lambda: server.at_eof and client.state is State.FIN_WAIT_2, timeout=5)
    assert server.state is State.CLOSE_WAIT
    server.close(sim.now)
    sim.run_until(lambda: server.state is State.CLOSED, timeout=5)
    assert client.state is State.TIME_WAIT or state_path(sim, client)[-1] is State.TIME_WAIT
    assert flag_names(wire(sim)[start:]) == ["A FIN|ACK", "B ACK", "B FIN|ACK", "A ACK"]
    fin_a, ack_b, fin_b, ack_a = (p.segment for p in wire(sim)[start:])
    assert ack_b.ack == (fin_a.seq + 1) & 0xFFFFFFFF   # the FIN occupies one sequence number
    assert ack_a.ack == (fin_b.seq + 1) & 0xFFFFFFFF
    entered_time_wait = state_times(sim, client, State.TIME_WAIT)[0]
    sim.run_until(lambda: state_path(sim, client)[-1] is State.CLOSED, timeout=3 * MSL)
    closed_at = state_times(sim, client, State.CLOSED)[-1]
    assert closed_at - entered_time_wait == pytest.approx(2 * MSL, abs=0.01)
    assert after(state_path(sim, client), State.ESTABLISHED) == ACTIVE_CLOSE
    assert after(state_path(sim, server), State.ESTABLISHED) == PASSIVE_CLOSE
    assert client.error is None and server.error is None


def test_half_close_the_close_wait_side_keeps_sending() -> None:
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    client.shutdown(sim.now)
    sim.run_until(lambda: server.at_eof and client.state is State.FIN_WAIT_2, timeout=5)
    assert server.state is State.CLOSE_WAIT
    payload = bytes(range(251)) * 800  # 200,800 bytes after our FIN
    got = bytearray()
    sent = 0

    def app(now: float) -> None:
        nonlocal sent
        if sent < len(payload):
            sent += server.send(payload[sent:], now)
        got.extend(client.recv(1 << 20, now))

    sim.every_step(app)
    app(sim.now)
    sim.run_until(lambda: len(got) == len(payload), timeout=60)
    assert bytes(got) == payload
    assert client.state is State.FIN_WAIT_2  # still receiving, still half-open
    server.close(sim.now)
    sim.run_until(lambda: client.at_eof and server.state is State.CLOSED, timeout=10)
    assert after(state_path(sim, client), State.ESTABLISHED)[:4] == ACTIVE_CLOSE[:4]
    assert after(state_path(sim, server), State.ESTABLISHED) == PASSIVE_CLOSE
    assert client.error is None


def test_simultaneous_close() -> None:
    """RFC 9293 §3.6 figure 13: FIN-WAIT-1 -> CLOSING -> TIME-WAIT on both ends."""
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    start = len(wire(sim))
    client.close(sim.now)
    server.close(sim.now)
    sim.run_until(lambda: all(state_path(sim, c)[-1] is State.TIME_WAIT
                              for c in (client, server)), timeout=5)
    expected = [State.ESTABLISHED, State.FIN_WAIT_1, State.CLOSING, State.TIME_WAIT]
    for conn in (client, server):
        assert after(state_path(sim, conn), State.ESTABLISHED) == expected
    assert sorted(flag_names(wire(sim)[start:start + 2])) == ["A FIN|ACK", "B FIN|ACK"]
    assert sorted(flag_names(wire(sim)[start + 2:])) == ["A ACK", "B ACK"]
    sim.run_for(2 * MSL + 1)
    for conn in (client, server):
        assert state_path(sim, conn)[-1] is State.CLOSED


def test_fin_wait_1_receiving_fin_and_ack_together_goes_to_time_wait() -> None:
    """RFC 9293 §3.10.7.4 eighth step: in FIN-WAIT-1, a FIN that also acknowledges
    our FIN leads straight to TIME-WAIT (no FIN-WAIT-2, no CLOSING)."""
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    # B's separate ACK of A's FIN is lost, so its next segment carries both.
    lost_ack = sim.drop(lambda p: p.src == B and is_pure_ack(p))
    client.close(sim.now)
    sim.run_until(lambda: server.at_eof, timeout=5)
    server.close(sim.now)
    sim.run_until(lambda: server.state is State.CLOSED, timeout=10)
    assert lost_ack.dropped
    fin_a = next(p for p in wire(sim, A) if carries_fin(p))
    fin_b = next(p for p in wire(sim, B) if carries_fin(p))
    assert fin_b.segment.ack == (fin_a.segment.seq + 1) & 0xFFFFFFFF  # FIN and ACK of our FIN
    # RFC 9293 §3.10.7.4 processes the segment's ACK first (FIN-WAIT-1 -> FIN-WAIT-2,
    # fifth step) and then its FIN (-> TIME-WAIT, eighth step), so a pass through
    # FIN-WAIT-2 within the same instant is allowed; CLOSING is not.
    path = after(state_path(sim, client), State.ESTABLISHED)
    assert path in ([State.ESTABLISHED, State.FIN_WAIT_1, State.TIME_WAIT],
                    [State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT])
    arrival = fin_b.arrivals[0]
    assert state_times(sim, client, State.TIME_WAIT) == [arrival]
    assert all(t == arrival for t in state_times(sim, client, State.FIN_WAIT_2))
    sim.run_for(2 * MSL + 1)
    assert state_path(sim, client)[-1] is State.CLOSED


def test_time_wait_re_acks_a_retransmitted_fin_and_restarts_2msl() -> None:
    """RFC 9293 §3.10.7.4: TIME-WAIT acknowledges a retransmitted FIN and restarts
    the 2 MSL timeout. Losing the last ACK makes B retransmit its FIN."""
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    client.close(sim.now)
    sim.run_until(lambda: server.at_eof, timeout=5)
    last_ack = sim.drop(lambda p: p.src == A and is_pure_ack(p)
                        and state_path(sim, client)[-1] is State.TIME_WAIT)
    server.close(sim.now)
    sim.run_until(lambda: server.state is State.CLOSED, timeout=30)
    assert len(last_ack.dropped) == 1
    fins_b = [p for p in wire(sim, B) if carries_fin(p)]
    assert len(fins_b) == 2
    assert fins_b[1].segment.seq == fins_b[0].segment.seq  # a retransmission
    re_ack = next(p for p in wire(sim, A, delivered_only=True) if p.time >= fins_b[1].time)
    assert is_pure_ack(re_ack)
    assert re_ack.segment.ack == (fins_b[0].segment.seq + 1) & 0xFFFFFFFF
    sim.run_until(lambda: state_path(sim, client)[-1] is State.CLOSED, timeout=3 * MSL)
    closed_at = state_times(sim, client, State.CLOSED)[-1]
    # 2 MSL from the retransmitted FIN, not from the first one.
    assert closed_at == pytest.approx(re_ack.time + 2 * MSL, abs=0.01)
    first_time_wait = state_times(sim, client, State.TIME_WAIT)[0]
    assert closed_at > first_time_wait + 2 * MSL


def test_fin_beyond_a_hole_waits_for_the_hole() -> None:
    """A FIN that arrives before missing data is not processed until the data is
    in: CLOSE-WAIT starts only when the retransmission fills the hole."""
    sim, a, b = make_sim()
    client, server = establish(sim, a, b, client=options(nodelay=True))
    data = bytes(range(200)) * 20  # 4,000 bytes: three segments
    lost = sim.drop(lambda p: p.src == A and len(p.segment.payload) > 0)
    client.send(data, sim.now)
    client.shutdown(sim.now)
    got = bytearray()
    sim.every_step(lambda now: got.extend(server.recv(1 << 20, now)))
    sim.run_until(lambda: server.at_eof, timeout=30)
    assert bytes(got) == data
    retransmitted = [p for p in wire(sim, A) if p.segment.payload
                     and p.segment.seq == lost.dropped[0].segment.seq]
    assert len(retransmitted) == 2
    fin = next(p for p in wire(sim, A) if carries_fin(p))
    # On this zero-delay link RACK (RFC 8985) resends the hole as soon as the
    # FIN is SACKed, at the same instant: the FIN is still the earlier packet.
    assert fin.arrivals and fin.arrivals[0] <= retransmitted[1].arrivals[0]
    assert sim.packets.index(fin) < sim.packets.index(retransmitted[1])
    close_wait_at = state_times(sim, server, State.CLOSE_WAIT)
    assert close_wait_at == [retransmitted[1].arrivals[0]]


def test_a_new_syn_reopens_a_time_wait_connection() -> None:
    """RFC 9293 §3.10.7.4 / RFC 6191: a SYN for a 4-tuple in TIME-WAIT whose
    sequence number is beyond the old connection's may open a new incarnation."""
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    server.close(sim.now)  # the server closes first and keeps the TIME-WAIT
    sim.run_until(lambda: client.at_eof, timeout=5)
    client.close(sim.now)
    sim.run_until(lambda: client.state is State.CLOSED
                  and state_path(sim, server)[-1] is State.TIME_WAIT, timeout=5)
    sim.run_for(5.0)  # well inside 2 MSL
    port = client.local[1]
    again = a.connect(B, server.local[1], sim.now, local_port=port)
    sim.run_until(lambda: again.state is State.ESTABLISHED, timeout=10)
    syns = [p for p in wire(sim, A) if p.segment.flags == 0x02]
    assert len(syns) == 2
    assert (syns[1].segment.seq - syns[0].segment.seq) & 0xFFFFFFFF < 1 << 31  # higher ISN
    assert syns[1].arrivals  # and it was taken, not answered with RST or an ACK
