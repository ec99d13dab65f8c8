"""Hostile input against the core: floods of invalid segments draw a bounded
number of answers (issue 15 limits), and the connection survives them."""

from __future__ import annotations

from core_helpers import ACK, FIN, RST, SYN, Harness, State, default_config


def test_ten_thousand_out_of_window_acks_draw_at_most_a_few_acks() -> None:
    h = Harness()
    conn = h.open_established()
    far = int(h.peer_nxt) + 10_000_000
    answers = 0
    for i in range(10_000):
        h.deliver(flags=ACK, seq=far + i, t=h.now + 0.00005, advance_peer=False)
        answers += len(h.tx())
    assert answers <= 100                 # 0.5 s of flood: 1 per 500 ms per connection
    assert h.stack.counters["oow_acks_rate_limited"] >= 9_900
    assert conn.state is State.ESTABLISHED


def test_out_of_window_data_is_always_answered() -> None:
    """Data is no ACK loop: the peer may need the ACK to recover (Linux alike)."""
    h = Harness()
    h.open_established()
    old = int(h.peer_nxt) - 100
    for _ in range(5):
        h.deliver(seq=old, payload=b"x" * 10, advance_peer=False)
    assert len(h.tx()) == 5


def test_rsts_for_closed_ports_are_rate_limited_stack_wide() -> None:
    h = Harness(default_config(rst_limit=50))
    sent = 0
    for i in range(500):
        h.peer_port = 1000 + i
        h.deliver(flags=SYN, ack=0, advance_peer=False)
        sent += sum(1 for s in h.tx() if s.flags & RST)
    assert sent == 50
    assert h.stack.counters["rsts_rate_limited"] == 450
    h.advance(1.0)
    h.deliver(flags=SYN, ack=0, advance_peer=False)
    assert any(s.flags & RST for s in h.tx())


def test_blind_rst_and_syn_storms_leave_the_connection_and_its_data() -> None:
    h = Harness()
    conn = h.open_established()
    h.deliver(payload=b"before")
    h.tx()
    base = int(h.peer_nxt)
    for i in range(1000):
        h.deliver(flags=RST, seq=(base + 7 + 13 * i) & 0xFFFFFFFF, advance_peer=False)
        h.deliver(flags=SYN, seq=(base + 11 * i) & 0xFFFFFFFF, ack=0, advance_peer=False)
        h.tx()
    assert conn.state is State.ESTABLISHED
    h.deliver(payload=b" after")
    assert conn.recv(100, h.now) == b"before after"


def _scaled_harness(recv_buffer: int, **config) -> Harness:
    from tcpstack.core.config import ConnectionOptions
    return Harness(default_config(**config),
                   options=ConnectionOptions(sack=False, timestamps=False,
                                             recv_buffer=recv_buffer))


def test_one_byte_segments_never_overfill_the_receive_buffer() -> None:
    """RFC 7323 §2.4: scaled windows rounded down; the cap holds to the byte."""
    from core_helpers import TcpOptions
    cap = 32 * 1024
    h = _scaled_harness(cap, rcvbuf_initial=cap)
    conn = h.open_established(syn_options=TcpOptions(wscale=7))
    accepted = 0
    for _ in range(2 * cap):
        before = conn.recv_available()
        h.deliver(payload=b"x", advance_peer=False, seq=int(conn.rcv_nxt))
        accepted += conn.recv_available() - before
        if conn.info()["rcv_wnd"] == 0:
            break
    h.tx()
    assert conn.recv_available() <= cap
    assert accepted == conn.recv_available()
    h.deliver(payload=b"y" * 100, advance_peer=False, seq=int(conn.rcv_nxt))
    assert conn.recv_available() <= cap
    assert h.stack.counters["zero_window_text_refused"] == 1


def test_the_receive_buffer_grows_only_as_the_application_keeps_up() -> None:
    from core_helpers import TcpOptions
    h = _scaled_harness(4 * 1024 * 1024)
    conn = h.open_established(syn_options=TcpOptions(wscale=7))
    idle = conn.info()
    assert idle["rcv_wnd"] <= 131072                 # an idle connection promises 128 KiB
    for _ in range(40):                              # a reader that drains every RTT
        for _ in range(conn.info()["rcv_wnd"] // 1400):
            h.deliver(payload=b"z" * 1400)
        h.tx()
        h.advance(0.2)
        while conn.recv(1 << 20, h.now):
            pass
        h.tx()
    assert conn.info()["rcv_wnd"] > 1024 * 1024
    assert h.stack.counters["rcvbuf_autotuned"] >= 1


def test_one_byte_nodelay_writes_put_at_most_cwnd_packets_in_flight() -> None:
    """cwnd bounds packets as well as bytes (Linux counts cwnd in packets): 14,600
    one-byte writes do not become 14,600 packets in flight."""
    from tcpstack.core.config import ConnectionOptions
    h = Harness(options=ConnectionOptions(sack=False, timestamps=False, window_scale=False,
                                          nodelay=True))
    conn = h.open_established()
    packets = 0
    for _ in range(14_600):
        conn.send(b"x", h.now)
        packets += len(h.tx())
    assert packets <= conn.cc.cwnd // conn.mss
    h.deliver(ack=int(conn.snd_max))              # everything in flight ACKed
    assert 0 < len(h.tx()) <= conn.cc.cwnd // conn.mss


def test_past_max_time_wait_a_connection_closes_without_time_wait() -> None:
    h = Harness(default_config(max_time_wait=0))
    conn = h.open_fin_wait_2()
    h.deliver(flags=FIN | ACK)
    h.tx()
    assert conn.state is State.CLOSED
    assert h.stack.counters["time_wait_overflow"] == 1


def test_max_connections_bounds_passive_and_active_opens() -> None:
    import pytest

    from tcpstack.core.errors import TcpTooManyConnections
    h = Harness(default_config(max_connections=2))
    h.open_listen()
    for i in range(4):
        h.peer_port = 30000 + i
        h.deliver(flags=SYN, ack=0, advance_peer=False)
    assert len(list(h.stack.connections())) == 2
    assert h.stack.counters["drop_max_connections"] == 2
    with pytest.raises(TcpTooManyConnections):
        h.stack.connect("192.0.2.9", 80, h.now)


def test_memory_pressure_drops_out_of_order_data_first_and_stops_the_window() -> None:
    h = Harness(default_config(rcv_mem_limit=3000))
    conn = h.open_established()
    h.deliver(payload=b"a" * 4000)                 # in order: taken, but now over the limit
    h.tx()
    assert h.stack.counters.get("drop_ooo_memory_pressure", 0) == 0
    h.deliver(seq=int(h.peer_nxt) + 500, payload=b"b" * 100, advance_peer=False)
    assert h.stack.counters["drop_ooo_memory_pressure"] == 1
    h.expect_nothing()            # a segment dropped for want of room draws no ACK (Linux)
    h.advance(1.0)
    conn.send(b"x", h.now)        # the next segment out advertises no new room
    seg = h.tx()[-1]
    assert int(conn.rcv_nxt) + seg.window <= int(conn._rcv_adv)
    conn.recv(10_000, h.now)                       # the application catches up
    h.deliver(seq=int(h.peer_nxt) + 500, payload=b"c" * 100, advance_peer=False)
    assert h.stack.counters["drop_ooo_memory_pressure"] == 1
