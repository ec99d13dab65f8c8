"""Opening a connection end to end: three-way handshake, simultaneous open,
old duplicate SYN recovery (RFC 9293 §3.5 figure 9), RST from a closed port."""

from __future__ import annotations

import pytest
from sim_helpers import PORT, A, B, establish, flag_names, make_sim, state_path, wire

from tcpstack.core.state import State
from tcpstack.wire.tcp import ACK, RST, SYN, TcpSegment


def test_three_way_handshake() -> None:
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    syn, syn_ack, ack = wire(sim)[:3]
    assert flag_names([syn, syn_ack, ack]) == ["A SYN", "B SYN|ACK", "A ACK"]
    assert syn_ack.segment.ack == (syn.segment.seq + 1) & 0xFFFFFFFF
    assert ack.segment.seq == syn_ack.segment.ack
    assert ack.segment.ack == (syn_ack.segment.seq + 1) & 0xFFFFFFFF
    assert syn.segment.seq != syn_ack.segment.seq  # each end picks its own ISN
    assert syn.segment.options.mss == 1460 and syn_ack.segment.options.mss == 1460
    assert state_path(sim, client) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED]
    assert state_path(sim, server)[-2:] == [State.SYN_RECEIVED, State.ESTABLISHED]
    assert client.remote == (B, PORT) and server.remote == client.local
    assert len(wire(sim)) == 3  # nothing else was needed


def test_isns_differ_per_connection_and_per_stack() -> None:
    isns = set()
    for seed in range(5):
        sim, a, b = make_sim(seed=seed)
        establish(sim, a, b)
        syn, syn_ack = wire(sim)[:2]
        isns.update((syn.segment.seq, syn_ack.segment.seq))
    assert len(isns) == 10


def test_data_both_ways() -> None:
    sim, a, b = make_sim()
    client, server = establish(sim, a, b)
    upload = bytes(range(256)) * 400        # 102,400 bytes
    download = b"response" * 20_000          # 160,000 bytes
    got_up, got_down = bytearray(), bytearray()
    client_sent = server_sent = 0

    def app(now: float) -> None:
        nonlocal client_sent, server_sent
        if client_sent < len(upload):
            client_sent += client.send(upload[client_sent:], now)
        if server_sent < len(download):
            server_sent += server.send(download[server_sent:], now)
        got_up.extend(server.recv(1 << 20, now))
        got_down.extend(client.recv(1 << 20, now))

    sim.every_step(app)
    app(sim.now)
    sim.run_until(lambda: len(got_up) == len(upload) and len(got_down) == len(download),
                  timeout=60)
    assert bytes(got_up) == upload and bytes(got_down) == download
    assert client.state is State.ESTABLISHED and server.state is State.ESTABLISHED
    assert client.info()["bytes_sent"] >= len(upload)
    assert sim.counters["dropped_by_fault"] == 0


def test_simultaneous_open() -> None:
    """RFC 9293 §3.5 figure 8: both SYN-SENT, SYNs cross, both SYN-RECEIVED."""
    sim, a, b = make_sim()
    left = a.connect(B, 5001, sim.now, local_port=5000)
    right = b.connect(A, 5000, sim.now, local_port=5001)
    sim.run_until(lambda: left.state is State.ESTABLISHED and right.state is State.ESTABLISHED,
                  timeout=30)
    for conn in (left, right):
        assert state_path(sim, conn) == [State.CLOSED, State.SYN_SENT, State.SYN_RECEIVED,
                                         State.ESTABLISHED]
    first = wire(sim)[:4]
    assert sorted(flag_names(first[:2])) == ["A SYN", "B SYN"]
    assert sorted(flag_names(first[2:])) == ["A SYN|ACK", "B SYN|ACK"]
    syn_a, syn_b = first[0].segment, first[1].segment
    synack = {p.src: p.segment for p in first[2:]}
    assert synack[A].seq == syn_a.seq  # the same ISS in the SYN-ACK (RFC 9293 §3.5)
    assert synack[B].seq == syn_b.seq
    left.send(b"ping", sim.now)
    sim.run_until(lambda: right.recv_available() == 4, timeout=5)
    assert right.recv(10, sim.now) == b"ping"


def test_old_duplicate_syn_is_reset_and_the_real_one_connects() -> None:
    """RFC 9293 §3.5 figure 9: an old SYN reaches the listener first; the
    SYN-ACK it draws is unacceptable to A, which answers RST; B returns to
    LISTEN and the real SYN then opens the connection."""
    sim, a, b = make_sim()
    listener = b.listen(PORT)
    first_syn = sim.drop(lambda p: p.src == A and p.segment.flags == SYN)
    client = a.connect(B, PORT, sim.now, local_port=40000)
    sim.flush()
    assert first_syn.dropped
    real_isn = first_syn.dropped[0].segment.seq
    stale_isn = (real_isn - 1_000_000) & 0xFFFFFFFF
    sim.inject(A, B, TcpSegment(40000, PORT, stale_isn, 0, SYN, 65535))
    accepted = []

    def done() -> bool:
        conn = listener.accept()
        if conn is not None:
            accepted.append(conn)
        return client.state is State.ESTABLISHED and bool(accepted)

    sim.run_until(done, timeout=30)
    records = wire(sim)
    assert flag_names(records[:7]) == ["A SYN", "A SYN", "B SYN|ACK", "A RST", "A SYN",
                                       "B SYN|ACK", "A ACK"]
    dropped, stale, stale_synack, reset, retry = records[:5]
    assert dropped.dropped and stale.injected
    assert stale_synack.segment.ack == (stale_isn + 1) & 0xFFFFFFFF
    assert reset.segment.seq == stale_synack.segment.ack  # <SEQ=SEG.ACK><CTL=RST>
    assert retry.segment.seq == real_isn  # the SYN retransmission keeps its ISN
    assert retry.time == pytest.approx(1.0, abs=0.01)  # initial RTO, RFC 6298 §2.1
    server_path = state_path(sim, (B, PORT), (A, 40000))
    assert State.SYN_RECEIVED in server_path
    assert server_path[-1] is State.ESTABLISHED
    assert accepted[0].state is State.ESTABLISHED
    assert client.error is None


def test_old_duplicate_syn_ack_in_syn_sent_gets_a_reset() -> None:
    """RFC 9293 §3.10.7.3: in SYN-SENT an ACK outside ISS+1..SND.NXT draws
    <SEQ=SEG.ACK><CTL=RST> and is dropped; the handshake still completes."""
    sim, a, b = make_sim()
    b.listen(PORT)
    hold = sim.drop(lambda p: p.src == A and p.segment.flags == SYN)
    client = a.connect(B, PORT, sim.now, local_port=40001)
    sim.flush()
    isn = hold.dropped[0].segment.seq
    bogus_ack = (isn + 5000) & 0xFFFFFFFF
    sim.inject(B, A, TcpSegment(PORT, 40001, 777, bogus_ack, SYN | ACK, 65535))
    sim.run_until(lambda: client.state is State.ESTABLISHED, timeout=30)
    names = flag_names(wire(sim))
    assert names[:3] == ["A SYN", "B SYN|ACK", "A RST"]
    reset = wire(sim)[2].segment
    assert reset.seq == bogus_ack and reset.flags & RST
    assert state_path(sim, client) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED]
    # B had no connection for that RST and must not answer it (never answer a RST).
    assert names[3:6] == ["A SYN", "B SYN|ACK", "A ACK"]


def test_rst_from_a_closed_port_refuses_the_connection() -> None:
    sim, a, _ = make_sim()
    client = a.connect(B, 81, sim.now)
    sim.run_until(lambda: client.error is not None, timeout=5)
    assert isinstance(client.error, ConnectionRefusedError)
    assert client.state is State.CLOSED
    syn, reset = wire(sim)
    assert flag_names([syn, reset]) == ["A SYN", "B RST|ACK"]
    # RFC 9293 §3.10.7.1: SEG had no ACK, so <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    assert reset.segment.seq == 0
    assert reset.segment.ack == (syn.segment.seq + 1) & 0xFFFFFFFF
    assert state_path(sim, client) == [State.CLOSED, State.SYN_SENT, State.CLOSED]
    sim.run_for(10)
    assert len(wire(sim)) == 2  # no retries after a refusal
