"""Loss recovery on the virtual clock: limited transmit (RFC 3042), RACK loss
detection (RFC 8985 §6) including lost retransmissions, and the tail loss
probe (RFC 8985 §7). Each test checks the exact segments the sender emits."""

from __future__ import annotations

import pytest
from core_helpers import MSS, RTT, Harness, TcpOptions

from tcpstack.core.config import ConnectionOptions
from tcpstack.core.connection import Connection
from tcpstack.core.events import TIMER_LOSS_PROBE, TIMER_RETRANSMIT


def harness(sack: bool) -> Harness:
    return Harness(options=ConnectionOptions(cc="reno", nodelay=True, timestamps=False,
                                             window_scale=False, sack=sack))


def sack_opts(*blocks: tuple[int, int]) -> TcpOptions:
    return TcpOptions(sack_blocks=tuple(blocks))


def test_limited_transmit_sends_one_new_segment_on_each_of_two_dup_acks():
    h = harness(sack=False)
    conn = h.open_established()
    conn.send(b"L" * (12 * MSS), h.now)
    out = h.tx()
    assert len(out) == 10                          # IW = 10 segments (RFC 6928)
    una = int(conn.snd_una)
    cwnd = conn.cc.cwnd
    h.deliver(ack=una)                             # first duplicate ACK
    h.expect_tx(seq=una + 10 * MSS, payload=b"L" * MSS)
    h.deliver(ack=una)                             # second
    h.expect_tx(seq=una + 11 * MSS, payload=b"L" * MSS)
    assert conn.cc.cwnd == cwnd                    # RFC 3042: cwnd unchanged
    h.deliver(ack=una)                             # third: fast retransmit
    h.expect_tx(seq=una, payload=b"L" * MSS)
    # ssthresh from the FlightSize before limited transmit: 10 segments / 2.
    assert conn.cc.ssthresh == 5 * MSS


def test_limited_transmit_respects_the_peer_window():
    h = harness(sack=False)
    conn = h.open_established()
    conn.send(b"w" * (12 * MSS), h.now)
    assert len(h.tx()) == 10
    una = int(conn.snd_una)
    h.deliver(ack=una, window=10 * MSS)            # a dup ACK whose window is all in flight
    h.expect_nothing()


def test_rack_marks_a_lost_retransmission_lost_again():
    """Segment 0 is lost twice: its retransmission is deemed lost when a segment
    sent after it is SACKed (RFC 8985 §6.2), without waiting for the RTO."""
    h = harness(sack=True)
    conn = h.open_established(TcpOptions(sack_permitted=True))
    una = int(conn.snd_una)

    def edge(i: int) -> int:
        return una + i * MSS

    conn.send(b"r" * (4 * MSS), h.now)
    assert [s.seq for s in h.tx()] == [edge(i) for i in range(4)]
    t = h.now + RTT
    h.deliver(ack=una, options=sack_opts((edge(1), edge(2))), t=t)
    h.expect_nothing()                             # one SACKed segment: wait reo_wnd
    h.deliver(ack=una, options=sack_opts((edge(1), edge(3))), t=t)
    h.expect_nothing()
    h.deliver(ack=una, options=sack_opts((edge(1), edge(4))), t=t)
    h.expect_tx(seq=edge(0))                       # 3 segments SACKed: lost
    assert h.stack.counters["sack_recoveries"] == 1
    conn.send(b"n" * MSS, h.now)                   # new data, sent after the retransmission
    h.expect_tx(seq=edge(4))
    # The retransmission of segment 0 is lost; segment 4 arrives and is SACKed.
    h.deliver(ack=una, options=sack_opts((edge(4), edge(5)), (edge(1), edge(4))),
              t=h.now + RTT)
    h.expect_tx(seq=edge(0))                       # resent again at once
    assert TIMER_RETRANSMIT not in h.timers_fired()
    h.deliver(ack=edge(5), t=h.now + RTT)
    assert conn.snd_una == conn.snd_max and conn.info()["ca_state"] != "recovery"


def test_rack_reorder_timer_resends_a_hole_in_a_small_window():
    """Two segments in flight, the first lost: one SACK is not enough for three
    duplicate ACKs; after RACK.rtt + reo_wnd the reorder timer resends it."""
    h = harness(sack=True)
    conn = h.open_established(TcpOptions(sack_permitted=True))
    una = int(conn.snd_una)
    conn.send(b"s" * (2 * MSS), h.now)
    assert len(h.tx()) == 2
    h.deliver(ack=una, options=sack_opts((una + MSS, una + 2 * MSS)), t=h.now + RTT)
    h.expect_nothing()
    fired = h.fire_next()
    assert h.timers_fired()[-1] == "reorder"
    assert fired - h.stack.connections()[0].created < conn.rtt.rto
    h.expect_tx(seq=una, payload=b"s" * MSS)
    assert TIMER_RETRANSMIT not in h.timers_fired()


def test_tail_loss_probe_sends_new_data_then_the_last_segment():
    h = harness(sack=True)
    conn = h.open_established(TcpOptions(sack_permitted=True))
    una = int(conn.snd_una)
    conn.send(b"t" * (4 * MSS), h.now)
    assert len(h.tx()) == 4
    sent_at = h.now
    # No ACK comes back. PTO = 2*SRTT + 2 ms, well before the RTO.
    fired = h.fire_next()
    assert h.timers_fired()[-1] == TIMER_LOSS_PROBE
    assert fired - sent_at == pytest.approx(conn.rtt.srtt * 2 + 0.002)
    h.expect_tx(seq=una + 3 * MSS, payload=b"t" * MSS)   # nothing new: the last segment
    assert conn.cc.cwnd == 10 * MSS
    # The probe's SACK shows the first three lost: RACK resends them.
    h.deliver(ack=una, options=sack_opts((una + 3 * MSS, una + 4 * MSS)), t=h.now + RTT)
    # cwnd = ssthresh = 4 segments (0.7 * flight is below the floor): all three go.
    assert [s.seq for s in h.tx()] == [una, una + MSS, una + 2 * MSS]
    assert h.stack.counters["loss_probes"] == 1


def test_tail_loss_probe_prefers_new_data():
    h = harness(sack=True)
    conn = h.open_established(TcpOptions(sack_permitted=True))
    una = int(conn.snd_una)
    conn.send(b"p" * (10 * MSS), h.now)
    assert len(h.tx()) == 10
    conn.send(b"q" * MSS, h.now)                   # cwnd is full: waits
    h.expect_nothing()
    h.fire_next()
    h.expect_tx(seq=una + 10 * MSS, payload=b"q" * MSS)


LAN_RTT = 0.001


def enter_recovery_with_a_full_pipe(h: Harness) -> tuple[Connection, int]:
    """Ten segments in flight, the first lost; one stretch ACK SACKs 1-3.

    NewReno's ssthresh is then 5 segments while 6 (4-9) are still in flight,
    so cwnd - pipe leaves no room for anything."""
    conn = h.open_established(TcpOptions(sack_permitted=True))
    for _ in range(24):                            # a LAN: SRTT falls to ~1/20 of the RTO
        conn.send(b"w" * MSS, h.now)
        h.tx()
        h.deliver(ack=int(conn.snd_nxt), t=h.now + LAN_RTT)
    assert 2 * conn.rtt.srtt < conn.rtt.rto / 10
    una = int(conn.snd_una)
    conn.send(b"f" * (10 * MSS), h.now)
    assert len(h.tx()) == 10
    h.deliver(ack=una, options=sack_opts((una + MSS, una + 4 * MSS)), t=h.now + LAN_RTT)
    return conn, una


def test_fast_retransmit_goes_out_even_when_pipe_fills_cwnd():
    """RFC 6675 §5 (4.3): entering recovery retransmits the first lost segment
    whatever cwnd - pipe says (a peer that SACKs several segments per ACK may not
    send another ACK to clock it out)."""
    h = harness(sack=True)
    conn, una = enter_recovery_with_a_full_pipe(h)
    assert conn.info()["ca_state"] == "recovery"
    assert conn.cc.cwnd == 5 * MSS and conn._recovery.rack.pipe() > conn.cc.cwnd
    h.expect_tx(seq=una, payload=b"f" * MSS)
    h.expect_nothing()


def test_recovery_stall_probe_resends_the_first_unacked_segment_once():
    """In recovery with no ACK for a PTO, one probe (the first unacknowledged
    segment) goes out long before the RTO; the RTO stays the backstop."""
    h = harness(sack=True)
    conn, una = enter_recovery_with_a_full_pipe(h)
    h.expect_tx(seq=una)                           # the fast retransmit
    last_ack = h.now
    fired = h.fire_next()
    assert h.timers_fired()[-1] == TIMER_LOSS_PROBE
    assert fired - last_ack < conn.rtt.rto / 4
    h.expect_tx(seq=una, payload=b"f" * MSS)
    h.expect_nothing()
    assert h.stack.counters["recovery_stall_probes"] == 1
    assert conn.info()["ca_state"] == "recovery"
    h.fire_next()                                  # still nothing: the RTO, not a 2nd probe
    assert h.timers_fired()[-1] == TIMER_RETRANSMIT
    assert h.stack.counters["recovery_stall_probes"] == 1
    h.expect_tx(seq=una)


def test_recovery_stall_probe_is_pushed_back_by_a_duplicate_ack():
    """A duplicate ACK (here one SACKing segment 4) shows the ACK clock is
    running: the probe waits a new PTO from then."""
    h = harness(sack=True)
    conn, una = enter_recovery_with_a_full_pipe(h)
    h.tx()
    first_deadline = conn.timers().get("loss-probe")
    assert first_deadline is not None
    h.deliver(ack=una, options=sack_opts((una + MSS, una + 5 * MSS)),
              t=first_deadline - LAN_RTT)
    probe = conn.timers().get("loss-probe")
    assert probe is not None and probe > first_deadline


def test_after_an_rto_neither_forced_retransmit_nor_stall_probe():
    """Go-back-N after a timeout already resends within the loss window: three
    duplicate ACKs without SACK blocks then repair losses (RACK) but add no
    forced fast retransmit beyond cwnd and no probe until new data is ACKed."""
    h = harness(sack=True)
    conn = h.open_established(TcpOptions(sack_permitted=True))
    una = int(conn.snd_una)
    conn.send(b"z" * (10 * MSS), h.now)
    assert len(h.tx()) == 10
    while TIMER_RETRANSMIT not in h.timers_fired():
        h.fire_next()                              # the tail loss probe, then the RTO
        h.tx()
    assert conn.rtt.backoffs == 1 and conn.cc.cwnd == MSS
    for _ in range(3):
        h.deliver(ack=una, t=h.now + 0.001)
    sent = h.tx()
    assert [s.seq for s in sent if s.seq == una] == []   # snd_una was just resent by the RTO
    assert conn.timers().get("loss-probe") is None
    assert h.stack.counters.get("recovery_stall_probes", 0) == 0
