"""FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT, CLOSING, LAST-ACK and TIME-WAIT (RFC 9293 §3.10.7.4)."""

from __future__ import annotations

import pytest
from core_helpers import ACK, FIN, RST, SYN, Harness, State, TcpOptions, default_config

from tcpstack.core.config import ConnectionOptions
from tcpstack.core.recovery import RecoveryState

PSH = 0x08
TWO_MSL = 60.0


@pytest.fixture
def h() -> Harness:
    return Harness()


# -- ESTABLISHED -> FIN-WAIT-1 ------------------------------------------------
def test_close_sends_fin_after_queued_data(h):
    conn = h.open_established()
    conn.send(b"tail", h.now)
    h.tx()
    conn.close(h.now)
    fin = h.expect_tx(flags=FIN | ACK)
    assert fin.seq == int(conn.iss) + 1 + 4
    assert conn.state is State.FIN_WAIT_1


def test_fin_rides_on_the_last_data_segment():
    h = Harness(options=ConnectionOptions(timestamps=False, sack=False, window_scale=False))
    conn = h.open_established()
    h.deliver(window=0)
    conn.send(b"last words", h.now)
    conn.shutdown(h.now)
    h.expect_nothing()
    h.deliver(window=1000)
    h.expect_tx(flags=ACK | PSH | FIN, payload=b"last words")


def test_send_after_shutdown_raises(h):
    conn = h.open_established()
    conn.shutdown(h.now)
    with pytest.raises(BrokenPipeError):
        conn.send(b"x", h.now)


# -- FIN-WAIT-1 ------------------------------------------------------------------
def test_fin_wait_1_ack_of_fin_goes_to_fin_wait_2(h):
    h.open_fin_wait_2()
    assert h.states()[-2:] == [State.FIN_WAIT_1, State.FIN_WAIT_2]


def test_fin_wait_1_fin_ack_together_goes_to_time_wait(h):
    conn = h.open_fin_wait_1()
    h.deliver(flags=FIN | ACK)                     # acknowledges our FIN and carries theirs
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.state is State.TIME_WAIT
    # §3.10.7.4: the ACK is processed first (-> FIN-WAIT-2), then the FIN.
    assert h.states()[-3:] == [State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT]


def test_simultaneous_close_through_closing(h):
    conn = h.open_closing()
    h.deliver()                                    # ACK of our FIN
    assert conn.state is State.TIME_WAIT
    assert h.states()[-3:] == [State.FIN_WAIT_1, State.CLOSING, State.TIME_WAIT]


def test_fin_wait_1_fin_is_retransmitted(h):
    conn = h.open_fin_wait_1()
    h.fire_next()
    h.expect_tx(flags=FIN | ACK, seq=int(conn.snd_una))


def test_fin_wait_1_data_after_close_resets(h):
    conn = h.open_fin_wait_1()
    h.deliver(payload=b"late")
    h.expect_tx(flags=RST)
    assert conn.state is State.CLOSED and "data-after-close" in h.drops()


def test_fin_wait_1_half_close_still_receives(h):
    conn = h.open_established()
    conn.shutdown(h.now)
    h.tx()
    h.deliver(payload=b"still reading", ack=int(conn.snd_una))   # FIN not yet acked
    assert conn.recv(100, h.now) == b"still reading"
    assert conn.state is State.FIN_WAIT_1


# -- FIN-WAIT-2 ------------------------------------------------------------------
def test_fin_wait_2_receives_data_after_shutdown(h):
    conn = h.open_established()
    conn.shutdown(h.now)
    h.tx()
    h.deliver()
    assert conn.state is State.FIN_WAIT_2
    h.deliver(payload=b"more")
    assert conn.recv(10, h.now) == b"more"
    assert "fin-wait-2" not in conn.timers()       # not orphaned: no timeout


def test_fin_wait_2_fin_goes_to_time_wait(h):
    h.open_time_wait()


def test_orphaned_fin_wait_2_times_out():
    h = Harness(default_config(fin_wait_2_timeout=60.0))
    conn = h.open_fin_wait_2()
    t = conn.timers()["fin-wait-2"]
    assert t == pytest.approx(h.now + 60.0)
    h.advance_to(t - 0.01)
    assert conn.state is State.FIN_WAIT_2
    h.advance_to(t)
    h.expect_tx(flags=RST)
    assert conn.state is State.CLOSED and "fin-wait-2" in h.timers_fired()


# -- CLOSE-WAIT and LAST-ACK -----------------------------------------------------
def test_close_wait_can_still_send(h):
    conn = h.open_close_wait()
    assert conn.at_eof and conn.recv(10, h.now) == b""
    conn.send(b"reply", h.now)
    h.expect_tx(payload=b"reply")


def test_close_wait_retransmitted_fin_is_acked(h):
    conn = h.open_close_wait()
    h.deliver(flags=FIN | ACK, seq=int(h.peer_nxt) - 1, advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.state is State.CLOSE_WAIT


def test_last_ack_ack_closes(h):
    conn = h.open_last_ack()
    h.deliver()
    assert conn.state is State.CLOSED and conn.error is None
    assert list(h.stack.connections()) == []


def test_last_ack_fin_retransmitted_until_acked(h):
    conn = h.open_last_ack()
    h.fire_next()
    h.expect_tx(flags=FIN | ACK)
    h.deliver()
    assert conn.state is State.CLOSED


def test_last_ack_rst_closes(h):
    conn = h.open_last_ack()
    h.deliver(flags=RST)
    assert conn.state is State.CLOSED


def test_closing_rst_closes(h):
    conn = h.open_closing()
    h.deliver(flags=RST)
    assert conn.state is State.CLOSED


# -- TIME-WAIT ---------------------------------------------------------------------
def test_time_wait_lasts_two_msl(h):
    conn = h.open_time_wait()
    assert conn.timers()["time-wait"] == pytest.approx(h.now + TWO_MSL)
    h.advance(TWO_MSL - 0.001)
    assert conn.state is State.TIME_WAIT
    h.advance(0.001)
    assert conn.state is State.CLOSED and "time-wait" in h.timers_fired()
    assert list(h.stack.connections()) == []


def test_time_wait_reacks_retransmitted_fin_and_restarts_timer(h):
    conn = h.open_time_wait()
    h.advance(40.0)
    h.deliver(flags=FIN | ACK, seq=int(h.peer_nxt) - 1, advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.timers()["time-wait"] == pytest.approx(h.now + TWO_MSL)
    h.advance(59.0)
    assert conn.state is State.TIME_WAIT


def test_time_wait_keeps_no_sack_recovery_state():
    # Like Linux's TIME-WAIT minisock: nothing is in flight, so no SACK
    # scoreboard or send log is kept; a retransmitted FIN carrying a SACK
    # block is still ACKed and the snapshot still reads.
    h = Harness(options=ConnectionOptions(window_scale=False))
    conn = h.open_established(TcpOptions(sack_permitted=True, timestamps=(1000, 0)))
    assert type(conn._recovery).__name__ == "SackRecovery"
    conn.close(h.now)
    h.tx()
    h.deliver(flags=FIN | ACK, options=TcpOptions(timestamps=(1001, 0)))
    h.tx()
    assert conn.state is State.TIME_WAIT
    assert type(conn._recovery).__name__ == "RenoRecovery"
    ack = int(conn.snd_max)
    h.deliver(flags=FIN | ACK, seq=int(h.peer_nxt) - 1, advance_peer=False,
              options=TcpOptions(timestamps=(1002, 0), sack_blocks=((ack - 1, ack),)))
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.state is State.TIME_WAIT
    info = conn.info()
    assert info["state"] == "TIME-WAIT" and info["sack"] is True
    assert info["ca_state"] == str(RecoveryState.OPEN)


def test_time_wait_ignores_rst_by_default_rfc1337(h):
    conn = h.open_time_wait()
    h.deliver(flags=RST)
    assert conn.state is State.TIME_WAIT
    assert h.stack.counters["rst_ignored_in_time_wait"] == 1


def test_time_wait_rst_closes_without_rfc1337():
    h = Harness(default_config(rfc1337=False))
    conn = h.open_time_wait()
    h.deliver(flags=RST)
    assert conn.state is State.CLOSED


def test_time_wait_new_syn_with_higher_seq_reopens(h):
    old = h.open_time_wait()
    old_max = int(old.snd_max)
    h.deliver(flags=SYN, seq=int(h.peer_nxt) + 100_000, ack=0, advance_peer=False)
    synack = h.expect_tx(flags=SYN | ACK, ack=int(h.peer_nxt) + 100_001)
    assert old.state is State.CLOSED
    assert (synack.seq - old_max) % (1 << 32) == 65535 + 2
    new = next(iter(h.stack.connections()))
    assert new is not old and new.state is State.SYN_RECEIVED
    assert h.stack.counters["time_wait_reopened"] == 1


def test_time_wait_old_syn_gets_ack_not_reopened(h):
    conn = h.open_time_wait()
    h.deliver(flags=SYN, seq=int(h.peer_nxt) - 10, ack=0, advance_peer=False)
    h.expect_tx(flags=ACK, ack=int(h.peer_nxt))
    assert conn.state is State.TIME_WAIT


def test_time_wait_reopen_by_timestamps():
    h = Harness(options=ConnectionOptions(sack=False, window_scale=False))
    conn = h.open_established(TcpOptions(timestamps=(1000, 0)))
    conn.close(h.now)
    h.tx()
    h.deliver(flags=FIN | ACK, options=TcpOptions(timestamps=(1001, 0)))
    h.tx()
    assert conn.state is State.TIME_WAIT
    # Same sequence number as the old connection but a newer timestamp (RFC 6191).
    h.deliver(flags=SYN, seq=int(h.peer_nxt) - 5, ack=0, advance_peer=False,
              options=TcpOptions(timestamps=(5000, 0)))
    h.expect_tx(flags=SYN | ACK)
    assert conn.state is State.CLOSED


def test_close_all_clears_the_stack(h):
    conn = h.open_established()
    h.stack.close_all(h.now)
    h.expect_tx(flags=RST)
    assert conn.state is State.CLOSED and list(h.stack.connections()) == []
    assert list(h.stack.listeners()) == []


def test_shutdown_pushes_the_nagle_tail_with_the_fin(h):
    conn = h.open_established()
    conn.send(b"x" * 600, h.now)                # one full segment + a 64-byte tail
    assert [len(s.payload) for s in h.tx()] == [536]
    conn.shutdown(h.now)
    h.expect_tx(flags=ACK | PSH | FIN, payload=b"x" * 64)
