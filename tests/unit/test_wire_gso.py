"""Software segmentation (GSO): a super-segment cut as a TSO device would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcpstack.wire.packet import build_packet, parse_packet, segment_packets
from tcpstack.wire.tcp import ACK, CWR, FIN, PSH, TcpOptions, TcpSegment

SRC, DST = "10.7.0.2", "10.7.0.1"


@given(size=st.integers(1, 70000), mss=st.integers(536, 9000),
       flags=st.sampled_from([ACK, ACK | PSH, ACK | PSH | FIN, ACK | CWR | PSH]),
       seq=st.integers(0, 0xFFFFFFFF), ident=st.integers(0, 0xFFFF),
       timestamps=st.booleans())
def test_pieces_are_valid_packets_that_add_up_to_the_super_segment(
        size, mss, flags, seq, ident, timestamps):
    payload = bytes(i % 251 for i in range(size))
    options = TcpOptions(timestamps=(123456, 654321)) if timestamps else TcpOptions()
    seg = TcpSegment(40000, 80, seq, 777, flags, 512, options=options, payload=payload)
    packets = segment_packets(SRC, DST, seg, mss, ident)
    assert len(packets) == -(-size // mss)
    joined = b""
    for i, packet in enumerate(packets):
        ip, piece = parse_packet(packet)          # both checksums verified
        last = i == len(packets) - 1
        assert ip.ident == (ident + i) & 0xFFFF and (ip.src, ip.dst) == (SRC, DST)
        assert piece.seq == (seq + i * mss) & 0xFFFFFFFF
        assert len(piece.payload) == (size - i * mss if last else mss)
        assert piece.flags & (FIN | PSH) == (flags & (FIN | PSH) if last else 0)
        assert piece.flags & CWR == (flags & CWR if i == 0 else 0)
        assert piece.flags & ACK and piece.ack == 777 and piece.window == 512
        assert piece.options == options
        joined += piece.payload
    assert joined == payload


def test_a_segment_within_the_mss_is_one_ordinary_packet():
    seg = TcpSegment(1, 2, 3, 4, ACK | PSH, 5, payload=b"x" * 1000)
    assert segment_packets(SRC, DST, seg, 1460, 9) == [build_packet(SRC, DST, seg, 9)]


def test_a_memoryview_payload_is_cut_like_bytes():
    data = bytes(range(256)) * 40
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, payload=memoryview(data))
    assert segment_packets(SRC, DST, seg, 1000, 0) == segment_packets(
        SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload=data), 1000, 0)
