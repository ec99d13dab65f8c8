"""SYN cookies (RFC 4987 §3.6): the cookie arithmetic, and a listener whose SYN
queue is full still taking legitimate connections, with nothing lost that
matters, while spoofed SYNs leave no state and half-open ones expire silently."""

from __future__ import annotations

import hypothesis.strategies as st
from core_helpers import ACK, RST, SYN, Harness, State, TcpOptions, default_config
from hypothesis import given

from tcpstack.core import syncookies
from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.stack import StackCore

SECRET = b"cookie-test-secret-0123456789"
TUPLE = ("192.0.2.1", 80, "192.0.2.2", 49152)


@given(peer_isn=st.integers(0, 2**32 - 1), mss=st.integers(1, 9000),
       now=st.floats(0, 1e7), later=st.floats(0, 119))
def test_a_cookie_checks_out_within_its_age_and_gives_the_mss_back(peer_isn, mss, now, later):
    cookie = syncookies.make_cookie(SECRET, TUPLE, peer_isn, mss, now)
    # Two minute counts at most: valid for at least 60 s and at most 120 s.
    back = syncookies.check_cookie(SECRET, TUPLE, peer_isn, cookie, now + later)
    if later < 60:
        assert back == syncookies.MSS_TABLE[syncookies.mss_index(mss)]
    if back is not None:
        assert back <= max(mss, 536)


@given(peer_isn=st.integers(0, 2**32 - 1))
def test_an_old_cookie_or_one_for_another_4_tuple_fails(peer_isn):
    cookie = syncookies.make_cookie(SECRET, TUPLE, peer_isn, 1460, 1000.0)
    assert syncookies.check_cookie(SECRET, TUPLE, peer_isn, cookie, 1000.0) == 1460
    assert syncookies.check_cookie(SECRET, TUPLE, peer_isn, cookie, 1000.0 + 200) is None
    assert syncookies.check_cookie(b"another-secret-456789", TUPLE, peer_isn, cookie,
                                   1000.0) is None
    other = ("192.0.2.1", 80, "192.0.2.3", 49152)
    assert syncookies.check_cookie(SECRET, other, peer_isn, cookie, 1000.0) is None


def test_forged_cookies_almost_never_validate():
    hits = sum(syncookies.check_cookie(SECRET, TUPLE, 7, guess * 7919, 1000.0) is not None
               for guess in range(20000))
    assert hits < 20000 * 4 / 2**22 * 4 + 5         # ~ one in a million per guess


@given(tsval=st.integers(0, 2**32 - 1), wscale=st.one_of(st.none(), st.integers(0, 14)),
       sack=st.booleans())
def test_options_travel_in_the_tsval_low_bits_and_never_run_ahead(tsval, wscale, sack):
    value = syncookies.encode_ts_options(tsval, wscale, sack)
    assert syncookies.decode_ts_options(value) == (wscale, sack)
    assert 0 <= (tsval - value) & 0xFFFFFFFF < 128   # at most 127 ms behind


def _flooded(h: Harness, count: int) -> None:
    """``count`` spoofed SYNs from other ports; their SYN-ACKs are never answered."""
    for i in range(count):
        h.peer_port = 20000 + i
        h.deliver(flags=SYN, ack=0, seq=1000 + i, advance_peer=False)
    h.tx()
    h.peer_port = 40000


def test_a_full_syn_queue_answers_with_cookies_and_the_client_still_connects():
    h = Harness(options=ConnectionOptions())
    h.open_listen(backlog=4)
    _flooded(h, 10)
    assert len(list(h.stack.connections())) == 4              # only the queue's worth
    assert h.stack.counters["syncookies_sent"] == 6
    syn = TcpOptions(mss=1400, wscale=9, sack_permitted=True, timestamps=(555, 0))
    h.deliver(flags=SYN, ack=0, options=syn)
    synack = h.expect_tx(flags=SYN | ACK)
    assert synack.options.wscale is not None and synack.options.sack_permitted
    h.deliver(flags=ACK, ack=(synack.seq + 1) & 0xFFFFFFFF,
              options=TcpOptions(timestamps=(556, synack.options.timestamps[0])))
    conn = h.listener.accept()
    assert conn is not None and conn.state is State.ESTABLISHED and conn.syncookie
    info = conn.info()
    assert info["mss"] == 1300 - 12          # the table entry below 1400, less the TS option
    assert info["wscale"] == (9, conn.info()["wscale"][1]) and info["sack"]
    assert info["timestamps"]
    assert h.stack.counters["syncookies_validated"] == 1
    assert h.listener.info()["syncookies_validated"] == 1
    conn.send(b"hello", h.now)
    assert h.expect_tx().payload == b"hello"


def test_an_ack_with_a_forged_cookie_is_reset_and_builds_nothing():
    h = Harness()
    h.open_listen(backlog=1)
    _flooded(h, 3)
    before = len(list(h.stack.connections()))
    h.deliver(flags=ACK, seq=5000, ack=123456)
    h.expect_tx(flags=RST, seq=123456)
    assert len(list(h.stack.connections())) == before
    assert h.stack.counters["syncookies_failed"] == 1


def test_no_cookie_is_accepted_when_none_was_sent_recently():
    h = Harness()
    h.open_listen()
    h.deliver(flags=ACK, seq=5000, ack=123456)
    h.expect_tx(flags=RST)
    assert "syncookies_failed" not in h.stack.counters


def test_the_tsval_offset_is_a_keyed_hash_of_the_4_tuple_not_of_the_iss():
    h = Harness(options=ConnectionOptions())
    conn = h.open_established(syn_options=TcpOptions(timestamps=(1, 0)))
    tsval = conn._tsval(h.now)
    assert (tsval - int(h.now * 1000)) & 0xFFFFFFFF != (int(conn.iss) * 2654435761) & 0xFFFFFFFF
    other = StackCore("192.0.2.1", StackConfig(isn_secret=b"another-secret-123456"))
    c2 = other.connect("192.0.2.2", 49152, 0.0, local_port=80)
    assert c2._tsval(0.0) != conn._tsval(0.0)


def test_two_stacks_connect_through_cookies_end_to_end():
    """A client's SYN meets a full SYN queue; the cookie handshake completes and data
    flows both ways (the server kept nothing for the SYN)."""
    server = StackCore("10.0.0.2", StackConfig(isn_secret=b"s" * 16))
    client = StackCore("10.0.0.1", StackConfig(isn_secret=b"c" * 16))
    listener = server.listen(80, backlog=1)
    from tcpstack.wire.tcp import TcpSegment
    server.receive("10.0.0.9", "10.0.0.2", TcpSegment(1, 80, 5, 0, SYN, 1000), 0.0)
    server.take_output()                                # the spoofed SYN's SYN-ACK
    conn = client.connect("10.0.0.2", 80, 0.0)
    now = 0.0
    for _ in range(10):
        now += 0.001
        for src, dst, seg in client.take_output():
            server.receive(src, dst, seg, now)
        for src, dst, seg in server.take_output():
            client.receive(src, dst, seg, now)
    accepted = listener.accept()
    assert conn.state is State.ESTABLISHED and accepted is not None and accepted.syncookie
    conn.send(b"ping", now)
    for src, dst, seg in client.take_output():
        server.receive(src, dst, seg, now)
    assert accepted.recv(10, now) == b"ping"
    assert accepted.info()["sack"] and accepted.info()["wscale"] is not None


def test_half_open_connections_expire_without_backscatter():
    h = Harness(default_config(synack_retries=1))
    h.open_listen()
    h.deliver(flags=SYN, ack=0)
    h.tx()
    while h.stack.next_deadline() is not None:
        h.fire_next()
        assert not any(s.flags & RST for s in h.tx())
    assert not list(h.stack.connections())
