"""Loss recovery when a TSO super-segment is lost in one piece: the sender
should resend that piece only (RFC 6675 §4: IsLost and NextSeg are per
byte; only unSACKed bytes deemed lost are retransmitted).

The send log (core/sentlog.py, SentLog) records a super-segment as one entry;
SACKed parts are cut out of it as they are reported (as Linux splits the skb,
tcp_sacktag_walk / tcp_fragment), so what is marked lost and resent is only
what was not SACKed."""

from __future__ import annotations

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.stack import StackCore
from tcpstack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

CLIENT, SERVER, PORT, LPORT = "10.9.0.1", "10.9.0.2", 5001, 40000
MSS_OPTION = 1000          # the peer's MSS option (the segment size is less: timestamps)
PIECES = 20


def _sender() -> tuple[StackCore, object, int]:
    """An ESTABLISHED connection; returns the stack, the connection and ISS + 1."""
    stack = StackCore(CLIENT, config=StackConfig(isn_secret=b"super-segment secret",
                                                 tso_max=64 * 1024), tracer=None)
    conn = stack.connect(SERVER, PORT, 0.0, local_port=LPORT,
                         options=ConnectionOptions(nodelay=True))
    ((_, _, syn),) = stack.take_output()
    iss = int(syn.seq) + 1
    stack.receive(SERVER, CLIENT, TcpSegment(
        PORT, LPORT, 7000, iss, SYN | ACK, 65535, 0,
        TcpOptions(mss=MSS_OPTION, wscale=7, sack_permitted=True,
                   timestamps=(1, syn.options.timestamps[0]))), 0.05)
    stack.take_output()
    return stack, conn, iss


def _ack(iss: int, mss: int, acked: int, sacked: list[tuple[int, int]],
         tsval: int) -> TcpSegment:
    """An ACK of ``acked`` pieces with SACK blocks given in pieces."""
    blocks = tuple((iss + a * mss, iss + b * mss) for a, b in sacked)
    return TcpSegment(PORT, LPORT, 7001, iss + acked * mss, ACK, 65535, 0,
                      TcpOptions(sack_blocks=blocks, timestamps=(tsval, 1)))


def _resent(stack: StackCore, iss: int, mss: int) -> list[tuple[int, int]]:
    """The data segments sent, as (first piece, pieces)."""
    return [((int(seg.seq) - iss) // mss, len(seg.payload) / mss)
            for _, _, seg in stack.take_output() if seg.payload]


def test_one_lost_piece_of_a_super_segment_is_the_only_retransmission() -> None:
    stack, conn, iss = _sender()
    mss = conn.mss
    conn.cc.cwnd = conn.cc.ssthresh = 4 * PIECES * mss     # room for anything
    conn.send(b"x" * (PIECES * mss), 0.1)
    assert _resent(stack, iss, mss) == [(0, PIECES)]        # one super-segment
    # Pieces 0-2 arrive in order, piece 3 is lost, 4-19 arrive: the peer
    # ACKs up to 3 and SACKs the rest, one duplicate ACK per arrival.
    stack.receive(SERVER, CLIENT, _ack(iss, mss, 3, [], 2), 0.2)
    for k in range(5, PIECES + 1):
        stack.receive(SERVER, CLIENT, _ack(iss, mss, 3, [(4, k)], k), 0.2 + k * 1e-4)
    assert _resent(stack, iss, mss) == [(3, 1)]
    assert conn.retransmits == 1
    # The hole filled: everything is acknowledged, nothing else goes out.
    stack.receive(SERVER, CLIENT, _ack(iss, mss, PIECES, [], 99), 0.3)
    assert conn.info()["send_queue"] == 0
    assert _resent(stack, iss, mss) == []


def test_two_lost_pieces_of_a_super_segment_each_resent_once() -> None:
    stack, conn, iss = _sender()
    mss = conn.mss
    conn.cc.cwnd = conn.cc.ssthresh = 4 * PIECES * mss
    conn.send(b"x" * (PIECES * mss), 0.1)
    stack.take_output()
    # Pieces 3 and 9 lost.
    stack.receive(SERVER, CLIENT, _ack(iss, mss, 3, [], 2), 0.2)
    for k in range(5, 10):
        stack.receive(SERVER, CLIENT, _ack(iss, mss, 3, [(4, k)], k), 0.2 + k * 1e-4)
    for k in range(11, PIECES + 1):
        stack.receive(SERVER, CLIENT, _ack(iss, mss, 3, [(10, k), (4, 9)], k),
                      0.2 + k * 1e-4)
    resent = sorted(_resent(stack, iss, mss))
    assert resent == [(3, 1), (9, 1)]
    assert conn.retransmits == 2
