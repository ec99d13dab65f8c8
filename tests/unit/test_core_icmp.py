"""ICMP errors in the core (virtual clock): RFC 5927 §4.1 checks, RFC 1191 path
MTU discovery and its cache, and errors that end a connect or wait for a timeout."""

from __future__ import annotations

import pytest
from core_helpers import LOCAL, REMOTE, Harness, State, TcpOptions, default_config

from tcpstack.core.config import ConnectionOptions
from tcpstack.core.errors import (
    TcpAdminProhibited,
    TcpHostUnreachable,
    TcpNetworkUnreachable,
    TcpPortUnreachable,
    TcpProtocolUnreachable,
    TcpTimeout,
)
from tcpstack.core.events import EventKind
from tcpstack.core.pmtu import plateau_below
from tcpstack.seq import Seq
from tcpstack.wire.icmp import IcmpError, IcmpErrorKind

ROUTER = "198.51.100.1"
PEER_MSS = 1460
PTB = IcmpErrorKind.PACKET_TOO_BIG


def icmp(h: Harness, kind: IcmpErrorKind, seq: int, mtu: int = 0) -> None:
    conn = h.conn
    err = IcmpError(kind, mtu, ROUTER, LOCAL, REMOTE, conn.local[1], conn.remote[1], Seq(seq))
    h.stack.icmp_error(err, h.now)


def established(config=None, **opts) -> Harness:
    h = Harness(config or default_config(),
                ConnectionOptions(sack=False, timestamps=False, window_scale=False, **opts))
    h.open_established(TcpOptions(mss=PEER_MSS))
    assert h.conn.mss == PEER_MSS
    return h


def in_flight(h: Harness, size: int) -> list:
    h.conn.send(b"d" * size, h.now)
    return h.tx()


def test_frag_needed_in_window_cuts_the_mss_and_resends_at_once() -> None:
    h = established()
    conn = h.conn
    una = int(conn.snd_una)
    first = in_flight(h, 10 * PEER_MSS)
    assert [len(s.payload) for s in first] == [PEER_MSS] * 10
    cwnd = conn.cc.cwnd
    icmp(h, PTB, una, mtu=1200)
    assert conn.mss == 1160
    again = h.tx()
    # Go back to SND.UNA at the new size at once, as much as cwnd allows, no RTO.
    assert again[0].seq == una
    assert all(len(s.payload) <= 1160 for s in again)
    assert sum(len(s.payload) for s in again) == cwnd - cwnd % 1160
    assert conn.cc.cwnd == cwnd                      # not a congestion signal
    assert h.stack.counters["pmtu_lowered"] == 1
    assert h.stack.counters["pmtu_retransmits"] == 1
    pmtu = [e.reason for e in h.events if e.kind is EventKind.PMTU]
    assert pmtu == [f"MSS 1460 -> 1160, path MTU 1500 -> 1200: ICMP packet-too-big from "
                    f"{ROUTER}"]
    assert any(e.kind is EventKind.ICMP for e in h.events)
    # A second report of the same MTU (the next dropped segment) changes nothing.
    icmp(h, PTB, una + PEER_MSS, mtu=1200)
    assert h.tx() == []
    assert h.stack.counters["icmp_pmtu_not_lower"] == 1


@pytest.mark.parametrize("where", ["below SND.UNA", "at SND.NXT", "far beyond"])
def test_frag_needed_out_of_window_changes_nothing(where: str) -> None:
    h = established()
    conn = h.conn
    in_flight(h, 3 * PEER_MSS)
    seq = {"below SND.UNA": int(conn.snd_una) - 1, "at SND.NXT": int(conn.snd_max),
           "far beyond": int(conn.snd_una) + 1_000_000}[where]
    icmp(h, PTB, seq, mtu=1200)
    assert conn.mss == PEER_MSS
    assert h.tx() == []
    assert h.stack.counters["icmp_out_of_window"] == 1
    assert "pmtu_lowered" not in h.stack.counters


def test_no_next_hop_mtu_means_the_plateau_below() -> None:
    assert plateau_below(1500) == 1492
    assert plateau_below(1492) == 1006
    assert plateau_below(68) == 68
    h = established()
    in_flight(h, PEER_MSS)
    icmp(h, PTB, int(h.conn.snd_una), mtu=0)
    assert h.conn.mss == 1492 - 40


def test_a_report_below_the_floor_is_raised_to_it() -> None:
    h = established(default_config(min_pmtu=600))
    in_flight(h, PEER_MSS)
    icmp(h, PTB, int(h.conn.snd_una), mtu=200)
    assert h.conn.mss == 600 - 40
    assert h.stack.counters["icmp_pmtu_below_minimum"] == 1


def test_the_mss_leaves_room_for_timestamps() -> None:
    h = Harness(default_config(), ConnectionOptions(sack=False, window_scale=False))
    h.open_established(TcpOptions(mss=PEER_MSS, timestamps=(1, 0)))
    assert h.conn.mss == PEER_MSS - 12
    h.conn.send(b"x" * 4000, h.now)
    h.tx()
    icmp(h, PTB, int(h.conn.snd_una), mtu=1200)
    assert h.conn.mss == 1200 - 40 - 12


def test_super_segments_are_cut_at_the_new_size() -> None:
    h = established(default_config(tso_max=65535 - 80))
    conn = h.conn
    first = in_flight(h, 20 * PEER_MSS)
    assert len(first[0].payload) % PEER_MSS == 0 and len(first[0].payload) > PEER_MSS
    icmp(h, PTB, int(conn.snd_una), mtu=1200)
    again = h.tx()
    assert again and all(len(s.payload) % 1160 == 0 for s in again[:-1])


def test_the_cache_serves_new_connections_and_ages_out() -> None:
    h = established()
    conn = h.conn
    in_flight(h, PEER_MSS)
    icmp(h, PTB, int(conn.snd_una), mtu=1300)
    assert conn.mss == 1260
    h.deliver(ack=int(conn.snd_max))               # everything ACKed
    h.tx()
    # A new connection to the same destination starts with what was learned.
    h.peer_port += 1
    h.peer_nxt = Seq(50_000)
    h.open_established(TcpOptions(mss=PEER_MSS))
    assert h.conn.mss == 1260
    # 10 minutes later (RFC 1191 §6.3, Linux ip_rt_mtu_expires) the estimate
    # ages out: the next send uses the link MTU again.
    h.advance(600.0)
    h.conn.send(b"y" * 3000, h.now)
    out = h.tx()
    assert h.conn.mss == PEER_MSS
    assert len(out[0].payload) == PEER_MSS
    assert h.stack.counters["pmtu_expired"] == 1
    assert h.stack.counters["pmtu_raised"] == 1


@pytest.mark.parametrize(("kind", "error", "text"), [
    (IcmpErrorKind.NET_UNREACHABLE, TcpNetworkUnreachable, "network is unreachable"),
    (IcmpErrorKind.HOST_UNREACHABLE, TcpHostUnreachable, "no route to host"),
    (IcmpErrorKind.PROTOCOL_UNREACHABLE, TcpProtocolUnreachable, "protocol unreachable"),
    (IcmpErrorKind.PORT_UNREACHABLE, TcpPortUnreachable, "connection refused"),
    (IcmpErrorKind.ADMIN_PROHIBITED, TcpAdminProhibited, "administratively prohibited"),
])
def test_unreachable_in_syn_sent_ends_the_connect_at_once(kind, error, text) -> None:
    h = Harness()
    conn = h.open_syn_sent()
    icmp(h, kind, int(conn.iss))
    assert conn.state is State.CLOSED
    assert type(conn.error) is error
    assert str(conn.error) == f"{text} (ICMP {kind.value} from {ROUTER})"
    assert h.stack.counters["icmp_connect_failed"] == 1
    assert h.stack.next_deadline() is None           # no SYN retries left armed


def test_port_unreachable_is_a_refusal_for_the_application() -> None:
    h = Harness()
    conn = h.open_syn_sent()
    icmp(h, IcmpErrorKind.PORT_UNREACHABLE, int(conn.iss))
    assert isinstance(conn.error, ConnectionRefusedError)


def test_in_syn_sent_only_our_syn_may_be_quoted() -> None:
    h = Harness()
    conn = h.open_syn_sent()
    icmp(h, IcmpErrorKind.HOST_UNREACHABLE, int(conn.iss) + 1)
    assert conn.state is State.SYN_SENT
    assert h.stack.counters["icmp_out_of_window"] == 1


def test_soft_errors_in_synchronized_states_wait_for_the_timeout() -> None:
    h = established(default_config(retries2=3))
    conn = h.conn
    in_flight(h, 100)
    icmp(h, IcmpErrorKind.PORT_UNREACHABLE, int(conn.snd_una))   # RFC 5927 §5.2: soft
    icmp(h, IcmpErrorKind.HOST_UNREACHABLE, int(conn.snd_una))
    assert conn.state is State.ESTABLISHED and conn.error is None
    assert h.stack.counters["icmp_soft_errors"] == 2
    h.advance(300.0)                                 # the retransmissions give up
    assert conn.state is State.CLOSED
    assert type(conn.error) is TcpHostUnreachable    # the last soft error
    assert str(conn.error).startswith("connection timed out: no route to host")


def test_a_timeout_without_icmp_is_a_plain_timeout() -> None:
    h = established(default_config(retries2=2))
    in_flight(h, 100)
    h.advance(300.0)
    assert type(h.conn.error) is TcpTimeout


def test_errors_for_no_connection_or_another_address_are_counted() -> None:
    h = established()
    conn = h.conn
    other = IcmpError(IcmpErrorKind.HOST_UNREACHABLE, 0, ROUTER, LOCAL, REMOTE, 1, 2, Seq(0))
    h.stack.icmp_error(other, h.now)
    wrong = IcmpError(IcmpErrorKind.HOST_UNREACHABLE, 0, ROUTER, "203.0.113.9", REMOTE,
                      conn.local[1], conn.remote[1], conn.snd_una)
    h.stack.icmp_error(wrong, h.now)
    c = h.stack.counters
    assert (c["icmp_no_socket"], c["icmp_wrong_address"], c["icmp_errors_in"]) == (1, 1, 2)
    assert c["icmp_host_unreachable"] == 2
