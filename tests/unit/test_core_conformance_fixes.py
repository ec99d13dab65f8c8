"""Regressions for rules tcpstack broke when tried against scripts and peers written
elsewhere (each also has a drill script under tests/drill/fixes/). Every test here
failed before its fix."""

from __future__ import annotations

import pytest
from core_helpers import (
    ACK,
    FIN,
    MSS,
    RST,
    SYN,
    Harness,
    State,
    TcpOptions,
    default_config,
)

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.errors import TcpConnectionReset
from tcpstack.core.options import negotiate
from tcpstack.wire.tcp import PSH, URG


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_reads_that_cannot_move_a_pinned_window_send_no_update(h: Harness) -> None:
    """RFC 9293 §3.8.6.2.2: without window scaling the field is pinned at 65535; a
    read that frees buffer space cannot move the right edge, so no ACK (two
    identical ACKs in a row would be a duplicate ACK to the peer)."""
    conn = h.open_established()
    for _ in range(4):
        h.deliver(payload=b"x" * MSS)
    h.tx()
    conn.recv(MSS, h.now)                 # the first read after the window filled a bit
    h.tx()
    for _ in range(3):
        conn.recv(MSS, h.now)
        h.expect_nothing()


def test_a_fin_waits_for_a_zero_window_and_the_connection_survives_probing(h: Harness) -> None:
    """A FIN needs room in the window like data (Linux tcp_snd_wnd_test); meanwhile the
    persist timer probes, and a peer that answers every probe keeps the connection."""
    conn = h.open_established()
    h.deliver(window=0)
    h.expect_nothing()
    conn.shutdown(h.now)
    h.expect_nothing()                    # no FIN into a closed window
    assert "persist" in conn.timers()
    for _ in range(40):                   # far more than retries2 probes, each answered
        h.fire_next()
        probe = h.expect_tx(flags=ACK)
        assert probe.seq == (int(conn.snd_una) - 1) & 0xFFFFFFFF
        h.deliver(window=0, advance_peer=False)
        h.tx()
    assert conn.state is State.FIN_WAIT_1 and conn.error is None
    h.deliver(window=1000)                # the window opens: the FIN goes out
    h.expect_tx(flags=FIN | ACK)


def test_old_data_with_a_new_fin_after_close_is_acked_not_reset(h: Harness) -> None:
    """Only data beyond RCV.NXT after close() draws a RST (Linux: end_seq - fin >
    rcv_nxt); a retransmission of received bytes carrying the FIN is a clean close."""
    conn = h.open_established()
    h.deliver(payload=b"hello", flags=ACK | PSH)
    h.tx()
    conn.recv(100, h.now)
    conn.close(h.now)
    h.tx()                                # our FIN
    old = h.peer_nxt - 5
    h.deliver(seq=int(old), payload=b"hello", flags=FIN | ACK, advance_peer=False)
    out = h.tx()
    assert out and not any(s.flags & RST for s in out)
    assert conn.error is None


def test_new_data_after_close_is_still_reset(h: Harness) -> None:
    conn = h.open_established()
    conn.close(h.now)
    h.tx()
    h.deliver(payload=b"more")
    assert any(s.flags & RST for s in h.tx())


@pytest.mark.parametrize("opener", ["open_last_ack", "open_closing"])
def test_rst_in_last_ack_or_closing_is_a_reset_for_the_application(h: Harness,
                                                                   opener: str) -> None:
    conn = getattr(h, opener)()
    h.deliver(flags=RST, advance_peer=False)
    assert conn.state is State.CLOSED
    assert isinstance(conn.error, TcpConnectionReset)


def test_time_wait_acks_an_acceptable_segment_that_is_not_a_bare_ack(h: Harness) -> None:
    conn = h.open_time_wait()
    h.deliver(payload=b"late", advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(conn.rcv_nxt))
    h.deliver()                           # a bare ACK at RCV.NXT: silence (no ACK loop)
    h.expect_nothing()


def test_syn_fin_to_a_listener_is_dropped(h: Harness) -> None:
    h.open_listen()
    h.deliver(flags=SYN | FIN, ack=0)
    h.expect_nothing()
    assert "syn-fin-to-listener" in h.drops()
    assert not list(h.stack.connections())


def test_restart_after_idle_counts_from_the_last_data_sent() -> None:
    """RFC 5681 §4.1: ACKs alone do not keep the window warm."""
    h = Harness(options=ConnectionOptions(sack=False, timestamps=False, window_scale=False,
                                          nodelay=True))
    conn = h.open_established()
    for _ in range(6):                    # grow cwnd with window-limited rounds
        conn.send(b"d" * conn.cc.cwnd * 2, h.now)
        for s in h.tx():
            h.deliver(ack=(s.seq + len(s.payload)) & 0xFFFFFFFF)
        h.tx()
    grown = conn.cc.cwnd
    assert grown > 10 * MSS
    for _ in range(200):                  # 20 s of receiving only: we send pure ACKs,
        h.advance(0.05)                   # never more than an RTO apart
        h.deliver(payload=b"r" * 10)
        h.advance(0.05)
        h.tx()
    conn.send(b"d" * grown, h.now)
    sent = h.tx()
    assert sum(len(s.payload) for s in sent) <= 10 * MSS   # restart window, not `grown`


def test_cwnd_does_not_grow_while_application_limited() -> None:
    """RFC 7661, RFC 9438 §5.8: one segment in flight at a time is no reason to grow."""
    h = Harness(options=ConnectionOptions(sack=False, timestamps=False, window_scale=False,
                                          nodelay=True))
    conn = h.open_established()
    start = conn.cc.cwnd
    for _ in range(200):
        conn.send(b"x" * 100, h.now)
        seg = h.expect_tx()
        h.deliver(ack=(seg.seq + len(seg.payload)) & 0xFFFFFFFF, t=h.now + 0.01)
        h.tx()
    assert conn.cc.cwnd <= start


def test_a_lost_syn_means_rto_three_seconds_and_an_initial_window_of_one() -> None:
    h = Harness()
    conn = h.open_syn_sent()
    h.fire_next()                          # the SYN is retransmitted
    h.expect_tx(flags=SYN)
    h.deliver(flags=SYN | ACK, ack=int(conn.iss) + 1)
    h.tx()
    assert conn.state is State.ESTABLISHED
    assert conn.rtt.rto == 3.0             # RFC 6298 §5.7: no RTT sample (Karn)
    assert conn.cc.cwnd == conn.mss        # RFC 5681 §3.1


def test_a_segment_at_rcv_nxt_into_a_zero_window_still_has_its_ack_processed() -> None:
    h = Harness(options=ConnectionOptions(sack=False, timestamps=False, window_scale=False,
                                          recv_buffer=1000))
    conn = h.open_established()
    h.deliver(payload=b"a" * 1000)         # fills the window
    h.tx()
    assert conn.info()["rcv_wnd"] == 0
    conn.send(b"ours", h.now)
    h.tx()
    h.deliver(payload=b"b", ack=int(conn.snd_max), advance_peer=False)
    h.expect_tx(flags=ACK, window=0)       # the byte is refused, the window said again
    assert conn.snd_una == conn.snd_max    # ... but our data's ACK was taken


def test_the_send_window_is_updated_only_by_an_ack_at_or_above_snd_una(h: Harness) -> None:
    conn = h.open_established()
    conn.send(b"x" * 100, h.now)
    h.tx()
    h.deliver(ack=int(conn.snd_max))       # all ACKed, window 65535
    h.deliver(payload=b"a")                # SND.WL1 = this segment's SEQ
    old_ack = int(conn.snd_una) - 50       # SND.UNA - 50: old, yet not too old (RFC 5961)
    h.deliver(ack=old_ack, window=10, payload=b"z")   # SEG.SEQ > SND.WL1
    assert conn.snd_wnd == 65535


def test_paws_after_24_days_idle_takes_the_timestamp_as_ts_recent() -> None:
    h = Harness(options=ConnectionOptions(sack=False, timestamps=True, window_scale=False))
    conn = h.open_established(syn_options=TcpOptions(timestamps=(1_000_000, 0)))
    h.advance(25 * 24 * 3600.0)            # more than 24 days idle (RFC 7323 §5.5)
    h.deliver(payload=b"x", options=TcpOptions(timestamps=(5, 1)))
    h.tx()
    assert conn._ts_recent == 5
    h.deliver(payload=b"y", options=TcpOptions(timestamps=(6, 1)))
    assert "paws" not in h.drops()


def test_urgent_data_is_delivered_inline_and_the_mark_recorded(h: Harness) -> None:
    conn = h.open_established()
    start = int(conn.rcv_nxt)
    h.deliver(payload=b"abcdef", flags=ACK | URG, urgent=3)
    assert conn.recv(100, h.now) == b"abcdef"
    assert conn.info()["rcv_up"] == start + 3
    assert h.stack.counters["urgent_marks_received"] == 1


def test_an_mtu_of_68_is_accepted_with_an_mss_of_28() -> None:
    config = StackConfig(mtu=68)
    assert default_config(mtu=68).mtu == 68 and config.mtu == 68
    ours = TcpOptions(mss=config.mtu - 40, timestamps=None)
    assert negotiate(ours, TcpOptions(mss=1460)).mss == 28
    with pytest.raises(ValueError):
        StackConfig(mtu=67)


def test_close_in_syn_received_sends_the_fin_at_once_and_still_repairs_its_syn() -> None:
    """RFC 9293 §3.10.4 SYN-RECEIVED with nothing queued: FIN now, FIN-WAIT-1; if our
    SYN-ACK was lost, the retransmission timer resends it first."""
    h = Harness()
    conn = h.open_syn_sent()
    h.deliver(flags=SYN, ack=0)                   # simultaneous open
    h.expect_tx(flags=SYN | ACK)
    assert conn.state is State.SYN_RECEIVED
    conn.close(h.now)
    h.expect_tx(flags=FIN | ACK, seq=int(conn.iss) + 1)
    assert conn.state is State.FIN_WAIT_1
    h.fire_next()                                 # nothing came back: the SYN-ACK again
    h.expect_tx(flags=SYN | ACK, seq=int(conn.iss))
    h.deliver(ack=int(conn.iss) + 2)              # the peer ACKs our SYN and our FIN
    assert conn.state is State.FIN_WAIT_2
