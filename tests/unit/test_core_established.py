"""ESTABLISHED: data, ACK policy, windows, RST/SYN validation, retransmission, recovery."""

from __future__ import annotations

import pytest
from core_helpers import (
    ACK,
    FIN,
    MSS,
    REMOTE_ISS,
    RST,
    SYN,
    Harness,
    State,
    TcpOptions,
    default_config,
)

from tcpstack.core.config import ConnectionOptions

PSH = 0x08


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def conn(h):
    return h.open_established()


# -- receiving ---------------------------------------------------------------
def test_in_order_data_is_readable_and_ack_is_delayed(h, conn):
    h.deliver(payload=b"x" * 100)
    h.expect_nothing()
    assert conn.recv_available() == 100 and conn in h.stack.take_changed()
    assert conn.timers()["delayed-ack"] == pytest.approx(h.now + 0.04)
    h.advance(0.04)
    h.expect_tx(flags=ACK, ack=REMOTE_ISS + 1 + 100)
    assert "delayed-ack" in h.timers_fired()


def test_every_second_full_segment_is_acked_at_once(h, conn):
    h.deliver(payload=b"a" * MSS)
    h.expect_nothing()
    h.deliver(payload=b"b" * MSS)
    h.expect_tx(flags=ACK, ack=REMOTE_ISS + 1 + 2 * MSS)
    assert "delayed-ack" not in conn.timers()


def test_out_of_order_data_is_acked_at_once_and_hole_fill_too(h, conn):
    base = int(h.peer_nxt)
    h.deliver(seq=base + 100, payload=b"B" * 100, advance_peer=False)
    h.expect_tx(flags=ACK, ack=base)               # duplicate ACK for the hole
    assert conn.recv_available() == 0
    h.deliver(seq=base, payload=b"A" * 100, advance_peer=False)
    h.expect_tx(flags=ACK, ack=base + 200)         # hole filled: immediate
    assert conn.recv(1000, h.now) == b"A" * 100 + b"B" * 100


def test_sack_blocks_describe_out_of_order_data():
    h = Harness(options=ConnectionOptions(timestamps=False, window_scale=False))
    conn = h.open_established(TcpOptions(sack_permitted=True))
    base = int(h.peer_nxt)
    h.deliver(seq=base + 1000, payload=b"z" * 100, advance_peer=False)
    ack = h.expect_tx(flags=ACK, ack=base)
    assert ack.options.sack_blocks == ((base + 1000, base + 1100),)
    h.deliver(seq=base + 500, payload=b"y" * 100, advance_peer=False)
    ack = h.expect_tx(flags=ACK, ack=base)
    assert ack.options.sack_blocks == ((base + 500, base + 600), (base + 1000, base + 1100))
    assert conn.info()["ooo_bytes"] == 200


def _sacked(acks, base: int) -> set[int]:
    """Stream offsets (from ``base``) that the ACKs told the sender were received."""
    told: set[int] = set()
    for ack in acks:
        told.update(range(ack.ack - base))
        for left, right in ack.options.sack_blocks:
            told.update(range(left - base, right - base))
    return told


def test_one_batch_changing_more_ranges_than_fit_keeps_every_sack_block():
    """RFC 2018 §4 reports only the 4 (3 with timestamps) most recently changed
    ranges. When one batch of arriving segments (a GRO batch spanning several
    holes) changes more, the ACK that reported a range must not be coalesced
    away: a range told in no ACK is one the sender (RFC 6675 IsLost) resends."""
    h = Harness(options=ConnectionOptions(timestamps=False, window_scale=False))
    h.open_established(TcpOptions(sack_permitted=True))
    base = int(h.peer_nxt)
    h.deliver(seq=base + 100, payload=b"a" * 100, advance_peer=False)
    sent = [h.expect_tx(flags=ACK, ack=base)]
    # One batch, one take_output: the range at 100 grows to 300, then four
    # new ranges follow it, each beyond a hole of its own.
    h.deliver(seq=base + 200, payload=b"b" * 100, advance_peer=False)
    for start in (400, 600, 800, 1000):
        h.deliver(seq=base + start, payload=b"c" * 100, advance_peer=False)
    batch = h.tx()
    assert batch and all(seg.flags == ACK and seg.ack == base for seg in batch)
    assert batch[-1].options.sack_blocks == (
        (base + 1000, base + 1100), (base + 800, base + 900),
        (base + 600, base + 700), (base + 400, base + 500))
    held = set(range(100, 300)) | {o for s in (400, 600, 800, 1000) for o in range(s, s + 100)}
    assert held <= _sacked(sent + batch, base)
    assert len(batch) == 2          # only the ACK whose blocks the last one drops is kept
    assert h.stack.counters["acks_coalesced"] == 3


def test_a_higher_ack_supersedes_sack_blocks_only_if_it_covers_them():
    """A cumulative ACK that passes a range covers it; one that does not, and
    whose own blocks leave it out, does not supersede the ACK that reported it."""
    from tcpstack.core.context import StackContext
    from tcpstack.wire.tcp import TcpSegment

    def run(*acks):
        ctx = StackContext("192.0.2.1", default_config(), None)
        for ack, blocks in acks:
            seg = TcpSegment(80, 49152, 1, ack, ACK, 1000,
                             options=TcpOptions(sack_blocks=blocks))
            ctx.emit(("192.0.2.1", 80), ("192.0.2.2", 49152), seg, 0.0)
        return [(seg.ack, seg.options.sack_blocks) for _, _, seg in ctx.take_output()]

    near_wrap = 0xFFFFFF00
    reported = (near_wrap, ((near_wrap + 0x200, 0x100),))      # a block across the wrap
    passed = (0x100, ())                                      # the ACK covers it
    beside = (near_wrap + 0x80, ((0x200, 0x300),))            # neither covers it
    inside = (near_wrap + 0x80, ((0x200, 0x300), (near_wrap + 0x180, 0x180)))
    assert run(reported, passed) == [passed]
    assert run(reported, beside) == [reported, beside]
    assert run(reported, inside) == [inside]


def test_fin_beyond_a_hole_waits_for_the_hole(h, conn):
    base = int(h.peer_nxt)
    h.deliver(seq=base + 10, payload=b"t" * 10, flags=FIN | ACK, advance_peer=False)
    h.expect_tx(flags=ACK, ack=base)
    assert conn.state is State.ESTABLISHED
    h.deliver(seq=base, payload=b"h" * 10, advance_peer=False)
    h.expect_tx(flags=ACK, ack=base + 21)
    assert conn.state is State.CLOSE_WAIT
    assert conn.recv(100, h.now) == b"h" * 10 + b"t" * 10 and conn.at_eof


def test_overlapping_retransmission_is_trimmed(h, conn):
    h.deliver(payload=b"abcdef")
    h.deliver(seq=REMOTE_ISS + 1 + 3, payload=b"defghi", advance_peer=False)
    assert conn.recv(100, h.now) == b"abcdefghi"


def test_unacceptable_segment_gets_ack_and_is_dropped(h, conn):
    h.deliver(seq=REMOTE_ISS - 5000, payload=b"old", advance_peer=False)
    h.expect_tx(flags=ACK, seq=int(conn.snd_nxt), ack=int(h.peer_nxt))
    assert conn.recv_available() == 0
    assert "unacceptable-seq" in h.drops()


def test_peer_keepalive_probe_is_answered(h, conn):
    h.deliver(seq=int(h.peer_nxt) - 1, advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))


def test_data_beyond_window_is_trimmed():
    h = Harness(options=ConnectionOptions(recv_buffer=1000, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    h.deliver(payload=b"w" * 1500, advance_peer=False)
    h.expect_tx(flags=ACK, ack=REMOTE_ISS + 1 + 1000, window=0)
    assert conn.recv_available() == 1000


def test_receiver_sws_avoidance_and_window_update_after_read():
    h = Harness(options=ConnectionOptions(recv_buffer=4 * MSS, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    h.deliver(payload=b"a" * (4 * MSS))
    h.expect_tx(flags=ACK, window=0)
    conn.recv(100, h.now)                 # 100 bytes free: too small to announce
    h.expect_nothing()
    conn.recv(MSS, h.now)                 # now >= min(buffer/2, MSS): window update
    h.expect_tx(flags=ACK, window=MSS + 100)


def test_recv_into_copies_into_the_callers_buffer_and_opens_the_window():
    h = Harness(options=ConnectionOptions(recv_buffer=4 * MSS, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    stream = bytes(range(256)) * 9
    h.deliver(payload=stream[:4 * MSS])
    h.expect_tx(flags=ACK, window=0)
    small = bytearray(100)
    assert conn.recv_into(small, h.now) == 100 and small == stream[:100]
    h.expect_nothing()                    # 100 bytes free: too small to announce
    big = bytearray(8 * MSS)
    view = memoryview(big)
    assert conn.recv_into(view[:MSS], h.now) == MSS
    h.expect_tx(flags=ACK, window=MSS + 100)
    rest = 4 * MSS - 100 - MSS
    assert conn.recv_into(view[MSS:], h.now) == rest
    assert big[:MSS + rest] == stream[100:4 * MSS]
    assert conn.recv_into(view, h.now) == 0 and conn.recv_available() == 0


def test_recv_into_raises_the_error_of_a_reset_connection(h, conn):
    h.deliver(payload=b"lost")
    h.deliver(flags=RST)                  # RFC 9293 §3.10.7.4: queues are flushed
    with pytest.raises(ConnectionResetError):
        conn.recv_into(bytearray(10), h.now)
def test_send_segments_at_mss_and_nagle_holds_the_tail(h, conn):
    assert conn.send(b"q" * (2 * MSS + 10), h.now) == 2 * MSS + 10
    out = h.tx()
    assert [len(s.payload) for s in out] == [MSS, MSS]   # the 10-byte tail waits (Nagle)
    h.deliver(ack=int(conn.snd_una) + 2 * MSS)
    h.expect_tx(payload=b"q" * 10, flags=ACK | PSH)


def test_nodelay_sends_small_segments_immediately():
    h = Harness(options=ConnectionOptions(nodelay=True, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    conn.send(b"1", h.now)
    conn.send(b"2", h.now)
    assert [s.payload for s in h.tx()] == [b"1", b"2"]


def test_send_buffer_is_bounded():
    h = Harness(options=ConnectionOptions(send_buffer=1000, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    assert conn.send(b"x" * 5000, h.now) == 1000
    assert conn.send_space() == 0
    h.tx()
    h.deliver(ack=int(conn.snd_una) + 536)
    assert conn.send_space() == 536


def test_sender_respects_peer_window(h, conn):
    h.deliver(window=2 * MSS)
    conn.send(b"x" * 5000, h.now)
    out = h.tx()
    assert sum(len(s.payload) for s in out) == 2 * MSS


def test_sender_sws_avoidance_waits_for_a_worthwhile_window(h, conn):
    h.deliver(window=MSS + 100)
    conn.send(b"x" * 5000, h.now)
    assert [len(s.payload) for s in h.tx()] == [MSS]   # 100 bytes < MSS and < max window/2
    h.deliver(ack=int(conn.snd_nxt), window=2 * MSS)
    assert [len(s.payload) for s in h.tx()] == [MSS, MSS]


def test_ack_of_unsent_data_is_answered_and_ignored(h, conn):
    conn.send(b"hello", h.now)
    h.tx()
    h.deliver(ack=int(conn.snd_nxt) + 100)
    h.expect_tx(flags=ACK)
    assert conn.snd_una == conn.iss + 1
    assert "ack-of-unsent-data" in h.drops()


def test_duplicate_old_ack_is_ignored(h, conn):
    conn.send(b"x" * 100, h.now)
    h.tx()
    h.deliver(ack=int(conn.snd_nxt))
    h.deliver(ack=int(conn.snd_nxt) - 100)
    h.expect_nothing()
    assert conn.snd_una == conn.snd_nxt


# -- retransmission (RFC 6298) ------------------------------------------------
def test_retransmission_backoff_karn_and_give_up():
    h = Harness(default_config(retries2=3))
    conn = h.open_established()
    conn.send(b"data", h.now)
    first = h.expect_tx(payload=b"data")
    t0 = h.now
    rto = conn.rtt.rto
    assert rto == pytest.approx(0.3)                # SRTT 0.1 + 4 * RTTVAR 0.05
    times = []
    for _ in range(3):
        times.append(h.fire_next() - t0)
        h.expect_tx(payload=b"data", seq=first.seq)
    assert times == pytest.approx([rto, 3 * rto, 7 * rto])  # doubled each time
    h.fire_next()
    h.expect_tx(flags=RST, seq=int(conn.snd_max))
    assert conn.state is State.CLOSED and isinstance(conn.error, TimeoutError)
    with pytest.raises(TimeoutError):
        conn.send(b"more", h.now)


def test_rtt_sample_sets_rto_and_karn_skips_retransmitted(h, conn):
    conn.send(b"a" * 10, h.now)
    h.tx()
    h.deliver(ack=int(conn.snd_nxt), t=h.now + 0.1)
    assert conn.rtt.srtt == pytest.approx(0.1)
    assert conn.rtt.rto == pytest.approx(0.1 + 4 * 0.0375)
    conn.send(b"b" * 10, h.now)
    h.tx()
    h.fire_next()                                     # timeout -> retransmission
    h.tx()
    h.deliver(ack=int(conn.snd_max), t=h.now + 5.0)   # ambiguous: no sample (Karn)
    assert conn.rtt.srtt == pytest.approx(0.1)


def test_after_a_timeout_a_stale_timestamp_echo_gives_no_rtt_sample():
    """Karn's rule for timestamps (RFC 7323 §4.2, RFC 6298 §3): the first copy
    arrived but its ACK was lost; the receiver answers the retransmissions as
    duplicates, echoing the first copy's TSval (RFC 7323 §4.3 keeps TS.Recent for
    an unacceptable segment). That echo would make every backoff part of the
    RTT; only an echo of the latest retransmission is a sample."""
    h = Harness(options=ConnectionOptions(sack=False, window_scale=False))
    conn = h.open_established(TcpOptions(timestamps=(100, 0)))
    conn.send(b"k" * 10, h.now)
    first = h.expect_tx()
    srtt = conn.rtt.srtt
    for _ in range(3):                                # three timeouts: 0.3 + 0.6 + 1.2 s
        h.fire_next()
        latest = h.expect_tx(seq=first.seq)
    stale = TcpOptions(timestamps=(101, first.options.timestamps[0]))
    h.deliver(ack=int(conn.snd_nxt), options=stale, t=h.now + 0.1)
    assert conn.rtt.srtt == srtt                      # not ~2.2 s
    conn.send(b"m" * 10, h.now)                       # and an echo of a retransmission
    h.tx()
    h.fire_next()
    latest = h.expect_tx()
    fresh = TcpOptions(timestamps=(102, latest.options.timestamps[0]))
    h.deliver(ack=int(conn.snd_nxt), options=fresh, t=h.now + 0.05)
    assert conn.rtt.srtt == pytest.approx(srtt * 7 / 8 + 0.05 / 8, abs=0.002)


def test_timestamps_give_rtt_samples_and_paws_drops_old_segments():
    h = Harness(options=ConnectionOptions(sack=False, window_scale=False))
    conn = h.open_established(TcpOptions(timestamps=(100, 0)))
    assert conn.info()["timestamps"]
    conn.send(b"z" * 10, h.now)
    out = h.expect_tx()
    echo = TcpOptions(timestamps=(200, out.options.timestamps[0]))
    h.deliver(ack=int(conn.snd_nxt), options=echo, t=h.now + 0.2)
    assert conn.rtt.srtt == pytest.approx(0.1 * 7 / 8 + 0.2 / 8, abs=0.002)
    # PAWS: an older TSval is dropped with an ACK.
    h.deliver(payload=b"old", options=TcpOptions(timestamps=(150, 0)), advance_peer=False)
    h.expect_tx(flags=ACK)
    assert "paws" in h.drops() and conn.recv_available() == 0


def test_fast_retransmit_on_three_duplicate_acks_and_newreno_recovery():
    h = Harness(options=ConnectionOptions(cc="reno", nodelay=True, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    conn.send(b"d" * (8 * MSS), h.now)
    out = h.tx()
    assert len(out) == 8
    una = int(conn.snd_una)
    for _ in range(2):
        h.deliver(ack=una)
    h.expect_nothing()
    h.deliver(ack=una)
    h.expect_tx(seq=una, payload=out[0].payload)     # fast retransmit
    assert conn.cc.ssthresh == 4 * MSS and h.stack.counters["fast_retransmits"] == 1
    h.deliver(ack=una + 3 * MSS)                      # partial ACK: next hole at once
    h.expect_tx(seq=una + 3 * MSS)
    h.deliver(ack=una + 8 * MSS)                      # full ACK ends recovery
    assert conn.cc.cwnd == conn.cc.ssthresh


# -- RST and SYN validation (RFC 5961) ---------------------------------------
def test_rst_exactly_at_rcv_nxt_resets(h, conn):
    h.deliver(flags=RST, ack=0)
    assert conn.state is State.CLOSED and isinstance(conn.error, ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        conn.recv(10, h.now)


def test_rst_in_window_not_exact_gets_challenge_ack(h, conn):
    h.deliver(flags=RST, seq=int(h.peer_nxt) + 10, advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.state is State.ESTABLISHED
    assert h.stack.counters["challenge_acks"] == 1


def test_rst_outside_window_is_silently_dropped(h, conn):
    h.deliver(flags=RST, seq=int(h.peer_nxt) + 10_000_000, advance_peer=False)
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED


def test_syn_in_established_gets_challenge_ack(h, conn):
    h.deliver(flags=SYN, seq=int(h.peer_nxt) + 5, ack=0, advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.state is State.ESTABLISHED


def test_challenge_acks_are_rate_limited_per_connection():
    """Linux tcp_invalid_ratelimit: one challenge ACK per 500 ms per connection."""
    h = Harness()
    conn = h.open_established()
    for i in range(5):
        h.deliver(flags=RST, seq=int(h.peer_nxt) + 1 + i, advance_peer=False)
    assert len(h.tx()) == 1
    assert h.stack.counters["challenge_acks_rate_limited"] == 4
    h.advance(0.5)
    h.deliver(flags=RST, seq=int(h.peer_nxt) + 1, advance_peer=False)
    assert len(h.tx()) == 1
    assert conn.state is State.ESTABLISHED


def test_the_stack_wide_challenge_ack_budget_is_randomised():
    """RFC 5961 §7 with Linux's CVE-2016-5696 fix: limit/2 plus an unpredictable
    share of the limit each second, so the count leaks nothing exact."""
    h = Harness(default_config(challenge_ack_limit=20, invalid_ack_interval=0.0))
    conn = h.open_established()
    per_second = []
    for second in range(8):
        h.advance_to(float(second + 1))
        for i in range(60):
            h.deliver(flags=RST, seq=int(h.peer_nxt) + 1 + i, advance_peer=False)
        per_second.append(len(h.tx()))
    assert all(10 <= n <= 30 for n in per_second)
    assert len(set(per_second)) > 1
    assert conn.state is State.ESTABLISHED


def test_segment_without_ack_is_dropped(h, conn):
    h.deliver(flags=0, payload=b"noack", advance_peer=False)
    h.expect_nothing()
    assert conn.recv_available() == 0


def test_abort_sends_rst(h, conn):
    conn.abort(h.now)
    h.expect_tx(flags=RST, seq=int(conn.snd_nxt))
    assert conn.state is State.CLOSED and isinstance(conn.error, ConnectionAbortedError)


def test_close_with_unread_data_resets(h, conn):
    h.deliver(payload=b"unread")
    h.tx()
    conn.close(h.now)
    h.expect_tx(flags=RST)
    assert conn.state is State.CLOSED


# -- zero window and persist (RFC 1122 4.2.2.17) -----------------------------
def test_zero_window_probes_back_off_and_never_give_up_while_acked():
    h = Harness(default_config(retries2=3))
    conn = h.open_established()
    h.deliver(window=0)
    conn.send(b"p" * 100, h.now)
    h.expect_nothing()
    t0 = h.now
    rto = conn.rtt.rto
    intervals = []
    for _ in range(10):                      # far more probes than retries2
        t = h.fire_next()
        probe = h.expect_tx(flags=ACK, seq=int(conn.snd_una) - 1, payload=b"")
        assert probe is not None
        intervals.append(t - t0)
        t0 = t
        h.deliver(window=0)                   # the peer answers: still zero
    assert intervals[:4] == pytest.approx([rto, 2 * rto, 4 * rto, 8 * rto])
    assert conn.state is State.ESTABLISHED
    h.deliver(window=1000)                    # window opens: data flows
    h.expect_tx(payload=b"p" * 100)
    assert "persist" not in conn.timers()


def test_zero_window_gives_up_when_probes_go_unanswered():
    h = Harness(default_config(retries2=2))
    conn = h.open_established()
    h.deliver(window=0)
    conn.send(b"p", h.now)
    for _ in range(2):
        h.fire_next()
        h.expect_tx(seq=int(conn.snd_una) - 1)
    h.fire_next()
    h.expect_tx(flags=RST)
    assert isinstance(conn.error, TimeoutError)


def test_sack_recovery_retransmits_every_lost_hole_without_waiting():
    """RFC 6675: with SACK blocks, two holes in one window are both repaired at once."""
    h = Harness(options=ConnectionOptions(cc="reno", nodelay=True, timestamps=False,
                                          window_scale=False))
    conn = h.open_established(TcpOptions(sack_permitted=True))
    conn.send(b"s" * (8 * MSS), h.now)
    out = h.tx()
    assert len(out) == 8
    una = int(conn.snd_una)

    def seg_edge(i):
        return una + i * MSS

    # Segments 0 and 3 are lost; 1, 2, 4, 5, 6, 7 arrive and are SACKed.
    blocks = []
    for i in (1, 2, 4, 5, 6, 7):
        if blocks and blocks[-1][1] == seg_edge(i):
            blocks[-1] = (blocks[-1][0], seg_edge(i + 1))
        else:
            blocks.append((seg_edge(i), seg_edge(i + 1)))
        h.deliver(ack=una, options=TcpOptions(sack_blocks=tuple(reversed(blocks))))
    resent = sorted(s.seq for s in h.tx())
    assert resent == [seg_edge(0), seg_edge(3)]
    assert h.stack.counters["sack_recoveries"] == 1
    h.deliver(ack=seg_edge(8))
    assert conn.snd_una == conn.snd_max and conn.info()["ca_state"] != "recovery"


def test_tso_super_segments_are_whole_mss_multiples():
    h = Harness(default_config(tso_max=65536),
                options=ConnectionOptions(nodelay=True, timestamps=False, sack=False,
                                          window_scale=False))
    conn = h.open_established()
    conn.send(b"t" * (5 * MSS + 100), h.now)
    sizes = [len(s.payload) for s in h.tx()]
    assert sizes == [5 * MSS, 100]
    assert conn.snd_nxt == conn.iss + 1 + 5 * MSS + 100


def test_fin_seen_out_of_order_then_again_in_order_counts_once(h, conn):
    """A FIN queued beyond a hole, then a retransmission covering hole and FIN."""
    base = int(h.peer_nxt)
    h.deliver(seq=base + 10, payload=b"b" * 10, flags=FIN | ACK, advance_peer=False)
    h.expect_tx(flags=ACK, ack=base)
    h.deliver(seq=base, payload=b"a" * 10 + b"b" * 10, flags=FIN | ACK, advance_peer=False)
    h.expect_tx(flags=ACK, ack=base + 21)
    assert conn.rcv_nxt == base + 21 and conn.state is State.CLOSE_WAIT
