"""CLOSED, LISTEN, SYN-SENT and SYN-RECEIVED (RFC 9293 §3.10.7.1-§3.10.7.3)."""

from __future__ import annotations

import pytest
from core_helpers import (
    ACK,
    FIN,
    LOCAL_PORT,
    REMOTE_ISS,
    REMOTE_PORT,
    RST,
    SYN,
    Harness,
    State,
    TcpOptions,
    default_config,
)

from tcpstack.core.config import ConnectionOptions


@pytest.fixture
def h() -> Harness:
    return Harness()


# -- CLOSED (no socket): §3.10.7.1 ------------------------------------------------
def test_closed_port_ack_gets_rst_with_seq_of_ack(h):
    h.deliver(flags=ACK, ack=12345)
    h.expect_tx(flags=RST, seq=12345, src_port=LOCAL_PORT, dst_port=REMOTE_PORT)
    assert h.stack.counters["drop_no_socket"] == 1


def test_closed_port_syn_gets_rst_ack_covering_segment(h):
    h.deliver(flags=SYN, ack=0, payload=b"abc")
    h.expect_tx(flags=RST | ACK, seq=0, ack=REMOTE_ISS + 1 + 3)


def test_closed_port_rst_is_never_answered(h):
    h.deliver(flags=RST, ack=0)
    h.expect_nothing()
    assert "rst-no-socket" in h.drops()


def test_segment_for_other_address_is_dropped(h):
    h.stack.receive("192.0.2.2", "198.51.100.1", h.seg(flags=SYN), 0.0)
    h.expect_nothing()
    assert h.stack.counters["drop_wrong_address"] == 1


# -- LISTEN: §3.10.7.2 --------------------------------------------------------------
def test_listen_ignores_rst(h):
    h.open_listen()
    h.deliver(flags=RST)
    h.expect_nothing()


def test_listen_answers_ack_with_rst(h):
    h.open_listen()
    h.deliver(flags=ACK, ack=777)
    h.expect_tx(flags=RST, seq=777)


def test_listen_syn_creates_syn_received_with_syn_ack(h):
    conn = h.open_syn_received()
    assert conn.passive and conn.rcv_nxt == REMOTE_ISS + 1
    assert h.listener.pending() == 0


def test_listen_backlog_full_of_embryos_answers_with_a_syn_cookie(h):
    """The SYN queue is as long as the backlog (as Linux); past it a SYN is answered
    with a cookie and no state (RFC 4987 §3.6)."""
    h.open_listen(backlog=1)
    h.deliver(flags=SYN, ack=0)
    h.expect_tx(flags=SYN | ACK)
    h.peer_port += 1
    h.deliver(flags=SYN, ack=0)
    h.expect_tx(flags=SYN | ACK)
    assert len(list(h.stack.connections())) == 1
    assert h.stack.counters["syncookies_sent"] == 1


def test_listen_backlog_limits_embryonic_connections_without_cookies():
    h = Harness(default_config(syncookies=False))
    h.open_listen(backlog=1)
    h.deliver(flags=SYN, ack=0)
    h.expect_tx(flags=SYN | ACK)
    h.peer_port += 1
    h.deliver(flags=SYN, ack=0)
    h.expect_nothing()
    assert h.stack.counters["drop_syn_queue_full"] == 1


def test_syn_ack_options_answer_only_what_was_offered(h):
    h.open_listen()
    h.deliver(flags=SYN, ack=0, options=TcpOptions(mss=1000))
    synack = h.expect_tx(flags=SYN | ACK)
    assert synack.options.mss == 1460
    assert synack.options.wscale is None and synack.options.timestamps is None


def test_syn_ack_negotiates_scale_sack_timestamps():
    h = Harness(options=ConnectionOptions())
    h.open_listen()
    h.deliver(flags=SYN, ack=0, options=TcpOptions(mss=1460, wscale=7, sack_permitted=True,
                                                   timestamps=(5000, 0)))
    synack = h.expect_tx(flags=SYN | ACK)
    o = synack.options
    assert o.wscale == 7 and o.sack_permitted and o.timestamps[1] == 5000
    conn = next(iter(h.stack.connections()))
    h.conn = conn
    h.deliver(window=100, options=TcpOptions(timestamps=(5001, o.timestamps[0])))
    assert conn.state is State.ESTABLISHED
    assert conn.snd_wnd == 100 << 7 and conn.mss == 1448
    assert conn.info()["srtt"] is not None


# -- SYN-SENT: §3.10.7.3 -----------------------------------------------------------
def test_syn_sent_syn_ack_establishes_and_acks(h):
    conn = h.open_established_active()
    assert h.states() == [State.SYN_SENT, State.ESTABLISHED]
    assert conn.snd_una == conn.iss + 1


def test_syn_sent_stale_syn_ack_gets_rst_and_is_ignored(h):
    """The old-duplicate SYN problem: a SYN-ACK acking an older ISS is answered with RST."""
    conn = h.open_syn_sent()
    h.deliver(flags=SYN | ACK, ack=int(conn.iss) - 5000)
    h.expect_tx(flags=RST, seq=int(conn.iss) - 5000)
    assert conn.state is State.SYN_SENT
    # The real SYN-ACK still works afterwards.
    h.deliver(flags=SYN | ACK, ack=int(conn.iss) + 1)
    h.expect_tx(flags=ACK)
    assert conn.state is State.ESTABLISHED


def test_syn_sent_rst_with_acceptable_ack_refuses(h):
    conn = h.open_syn_sent()
    h.deliver(flags=RST | ACK, seq=0, ack=int(conn.iss) + 1)
    h.expect_nothing()
    assert conn.state is State.CLOSED
    assert isinstance(conn.error, ConnectionRefusedError)
    assert list(h.stack.connections()) == []


def test_syn_sent_rst_with_bad_ack_is_ignored(h):
    conn = h.open_syn_sent()
    h.deliver(flags=RST | ACK, seq=0, ack=int(conn.iss) + 99)
    h.expect_nothing()
    assert conn.state is State.SYN_SENT


def test_syn_sent_rst_without_ack_is_ignored(h):
    conn = h.open_syn_sent()
    h.deliver(flags=RST, seq=0, ack=0)
    assert conn.state is State.SYN_SENT


def test_simultaneous_open_goes_through_syn_received_with_same_iss(h):
    conn = h.open_syn_sent()
    h.deliver(flags=SYN, ack=0)
    synack = h.expect_tx(flags=SYN | ACK, seq=int(conn.iss), ack=REMOTE_ISS + 1)
    assert conn.state is State.SYN_RECEIVED
    # The peer's SYN-ACK (RFC 9293 Figure 8) completes it.
    h.deliver(flags=SYN | ACK, seq=REMOTE_ISS, ack=int(conn.iss) + 1, advance_peer=False)
    assert conn.state is State.ESTABLISHED
    assert synack.options.mss is not None
    assert h.states() == [State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED]


def test_syn_retransmissions_reuse_iss_with_backoff_then_time_out():
    h = Harness(default_config(syn_retries=3))
    conn = h.open_syn_sent()
    times = []
    for _ in range(3):
        times.append(h.fire_next())
        h.expect_tx(flags=SYN, seq=int(conn.iss))
    assert times == [1.0, 3.0, 7.0]             # RFC 6298 §5.5: 1, 2, 4 s
    h.fire_next()
    h.expect_nothing()
    assert conn.state is State.CLOSED and isinstance(conn.error, TimeoutError)


def test_syn_ack_with_data_delivers_it(h):
    conn = h.open_syn_sent()
    h.deliver(flags=SYN | ACK, ack=int(conn.iss) + 1, payload=b"hello")
    h.expect_tx(flags=ACK, ack=REMOTE_ISS + 1 + 5)
    assert conn.recv(10, h.now) == b"hello"


def test_syn_sent_data_is_sent_after_handshake(h):
    conn = h.open_syn_sent()
    assert conn.send(b"early", h.now) == 5
    h.expect_nothing()
    h.deliver(flags=SYN | ACK, ack=int(conn.iss) + 1)
    h.expect_tx(flags=ACK | 0x08, payload=b"early")


def test_close_in_syn_sent_deletes_tcb(h):
    conn = h.open_syn_sent()
    conn.close(h.now)
    assert conn.state is State.CLOSED
    h.expect_nothing()


# -- SYN-RECEIVED ---------------------------------------------------------------
def test_syn_received_third_ack_with_data(h):
    conn = h.open_syn_received()
    h.deliver(payload=b"data on the third ACK")
    assert conn.state is State.ESTABLISHED
    assert conn.recv(100, h.now) == b"data on the third ACK"


def test_syn_received_retransmitted_syn_gets_same_syn_ack(h):
    conn = h.open_syn_received()
    h.deliver(flags=SYN, seq=REMOTE_ISS, ack=0, advance_peer=False)
    h.expect_tx(flags=SYN | ACK, seq=int(conn.iss))


def test_syn_received_bad_ack_gets_rst(h):
    conn = h.open_syn_received()
    h.deliver(ack=int(conn.iss) + 50)
    h.expect_tx(flags=RST, seq=int(conn.iss) + 50)
    assert conn.state is State.SYN_RECEIVED


def test_syn_received_rst_returns_to_listen(h):
    """Old duplicate SYN: the peer's RST sends the passive open back to LISTEN."""
    conn = h.open_syn_received()
    h.deliver(flags=RST, ack=0)
    assert conn.state is State.CLOSED
    assert h.listener.pending() == 0 and list(h.stack.connections()) == []
    assert conn.error is None
    # The listener still accepts new connections.
    h.peer_nxt = h.peer_nxt + 100000
    h.open_established()


def test_syn_received_syn_ack_retransmission_then_give_up():
    h = Harness(default_config(synack_retries=2))
    conn = h.open_syn_received()
    h.fire_next()
    h.expect_tx(flags=SYN | ACK, seq=int(conn.iss))
    h.fire_next()
    h.expect_tx(flags=SYN | ACK, seq=int(conn.iss))
    h.fire_next()
    h.expect_nothing()          # a half-open connection expires silently (no backscatter)
    assert conn.state is State.CLOSED
    assert h.stack.counters["half_open_expired"] == 1


def test_syn_received_fin_on_third_ack_goes_to_close_wait(h):
    conn = h.open_syn_received()
    h.deliver(flags=FIN | ACK)
    assert conn.state is State.CLOSE_WAIT
    h.expect_tx(flags=ACK, ack=REMOTE_ISS + 2)
    assert h.listener.accept() is conn and conn.at_eof


def test_close_in_syn_received_with_nothing_queued_sends_the_fin_at_once(h):
    """RFC 9293 §3.10.4 SYN-RECEIVED: no SENDs, nothing pending: FIN, FIN-WAIT-1."""
    conn = h.open_syn_received()
    conn.close(h.now)
    h.expect_tx(flags=FIN | ACK)
    assert conn.state is State.FIN_WAIT_1
    h.deliver(ack=int(conn.iss) + 1)              # the handshake ACK: SYN ACKed, FIN not
    h.expect_nothing()
    assert conn.state is State.FIN_WAIT_1


def test_close_in_syn_received_with_data_queued_sends_the_fin_after_established(h):
    """§3.10.4: "otherwise, queue for processing after entering ESTABLISHED state"."""
    conn = h.open_syn_received()
    conn.send(b"queued", h.now)
    conn.close(h.now)
    h.expect_nothing()
    h.deliver()
    out = h.tx()
    assert out[-1].flags & FIN and b"".join(bytes(s.payload) for s in out) == b"queued"
    assert conn.state is State.FIN_WAIT_1


def test_ephemeral_ports_are_deterministic_and_distinct(h):
    ports = {h.stack.connect("192.0.2.9", 80, 0.0).local[1] for _ in range(50)}
    assert len(ports) == 50
    assert all(32768 <= p <= 60999 for p in ports)
    h2 = Harness()
    ports2 = {h2.stack.connect("192.0.2.9", 80, 0.0).local[1] for _ in range(50)}
    assert ports == ports2


def test_shutdown_in_syn_sent_sends_data_then_fin_after_handshake(h):
    conn = h.open_syn_sent()
    conn.send(b"queued", h.now)
    conn.shutdown(h.now)
    assert conn.state is State.SYN_SENT
    h.deliver(flags=SYN | ACK, ack=int(conn.iss) + 1)
    h.expect_tx(flags=ACK | FIN | 0x08, payload=b"queued")
    assert conn.state is State.FIN_WAIT_1
