"""The IPv6 codec against scapy's ``IPv6`` (RFC 8200), as test_wire_oracle does for IPv4:
built packets byte-identical to scapy's, scapy-built packets (extension
headers, atomic fragments) parsed to the fields scapy was given."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Raw
from test_wire_oracle import expected_options, option_size, scapy_option, scapy_options, segments

from tcpstack.wire.checksum import internet_checksum
from tcpstack.wire.errors import Contradictory
from tcpstack.wire.ipv6 import flow_label, parse_ipv6, pseudo_header6_sum
from tcpstack.wire.packet import build_packet, parse_packet, segment_packets
from tcpstack.wire.tcp import FIN, RST, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

addresses6 = st.integers(1, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
labels = st.integers(0, 0xFFFFF)
ip6 = ipaddress.IPv6Address
extension = st.sampled_from([IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt,
                             IPv6ExtHdrFragment])


def scapy_packet6(src: str, dst: str, seg: TcpSegment, hops: int, label: int) -> bytes:
    pkt = (IPv6(src=src, dst=dst, hlim=hops, fl=label)
           / TCP(sport=seg.src_port, dport=seg.dst_port, seq=seg.seq, ack=seg.ack,
                 flags=seg.flags, window=seg.window, urgptr=seg.urgent,
                 options=scapy_options(seg.options)))
    if seg.payload:
        pkt = pkt / Raw(seg.payload)
    return bytes(pkt)


@settings(max_examples=150, deadline=None)
@given(seg=segments, src=addresses6, dst=addresses6, hops=st.integers(0, 255), label=labels)
def test_build_is_byte_identical_to_scapy(seg: TcpSegment, src: str, dst: str, hops: int,
                                          label: int) -> None:
    built = build_packet(src, dst, seg, ttl=hops, flow_label=label)
    assert built == scapy_packet6(src, dst, seg, hops, label)
    header, parsed = (None, None)
    if not (seg.flags & SYN and seg.flags & (RST | FIN)):
        header, parsed = parse_packet(built)
        assert parsed == seg
        assert (ip6(header.src), ip6(header.dst), header.hop_limit, header.flow_label) == (
            ip6(src), ip6(dst), hops, label)
    # the offloaded form holds the folded pseudo-header sum (RFC 8200 §8.1)
    partial = build_packet(src, dst, seg, flow_label=label, offload=True)
    tcp_length = len(built) - 40
    assert int.from_bytes(partial[56:58], "big") == (
        pseudo_header6_sum(src, dst, 6, tcp_length) % 0xFFFF or 0xFFFF)


@settings(max_examples=200, deadline=None)
@given(opts=st.lists(scapy_option, max_size=12), src=addresses6, dst=addresses6,
       sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF),
       seq=st.integers(0, 2**32 - 1), flags=st.integers(0, 255), tc=st.integers(0, 255),
       label=labels, hops=st.integers(0, 255), payload=st.binary(max_size=1400),
       extensions=st.lists(extension, max_size=4))
def test_parses_scapy_built_packets(opts: list[tuple[object, object]], src: str, dst: str,
                                    sport: int, dport: int, seq: int, flags: int, tc: int,
                                    label: int, hops: int, payload: bytes,
                                    extensions: list[type]) -> None:
    while opts and sum(map(option_size, opts)) > 40:
        opts = opts[:-1]
    pkt = IPv6(src=src, dst=dst, tc=tc, fl=label, hlim=hops)
    for ext in extensions:
        pkt = pkt / ext()            # a Fragment header here is an atomic fragment
    pkt = pkt / TCP(sport=sport, dport=dport, seq=seq, flags=flags, options=opts) / Raw(payload)
    wire = bytes(pkt)
    if flags & SYN and flags & (RST | FIN):
        try:
            parse_packet(wire)
        except Contradictory:
            return
        raise AssertionError("contradictory control bits were accepted")
    header, seg = parse_packet(wire)
    dissected = IPv6(wire)
    assert (header.traffic_class, header.flow_label, header.hop_limit) == (tc, label, hops)
    assert (ip6(header.src), ip6(header.dst)) == (ip6(src), ip6(dst))
    assert header.payload_length == dissected.plen == len(wire) - 40
    assert header.header_length == len(wire) - len(bytes(dissected[TCP]))
    assert (seg.src_port, seg.dst_port, seg.seq, seg.flags) == (sport, dport, seq, flags)
    assert seg.payload == payload
    assert seg.options == expected_options(opts)
    assert bytes(parse_ipv6(wire)[1]) == bytes(dissected[TCP])


def test_build_tcp_and_parse_tcp_take_ipv6_addresses() -> None:
    seg = TcpSegment(1, 2, 3, 4, 0x10, 5, payload=b"odd")
    raw = build_tcp("fd00::1", "fd00::2", seg)
    theirs = bytes(IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=2, seq=3, ack=4,
                                                           flags=0x10, window=5) / Raw(b"odd"))
    assert raw == theirs[40:]
    assert parse_tcp(raw, "fd00::1", "fd00::2") == seg
    assert internet_checksum(raw, pseudo_header6_sum("fd00::1", "fd00::2", 6, len(raw))) == 0


def test_software_segmentation_makes_ipv6_packets() -> None:
    seg = TcpSegment(1, 2, 100, 4, 0x18, 5, options=TcpOptions(timestamps=(1, 2)),
                     payload=bytes(range(256)) * 10)
    packets = segment_packets("fd00::1", "fd00::2", seg, 1000, flow_label=7)
    assert [len(p) - 72 for p in packets] == [1000, 1000, 560]
    for packet in packets:
        assert IPv6(packet).fl == 7
        assert parse_packet(packet)[1].payload


def test_flow_label_is_a_keyed_hash_of_the_flow() -> None:
    key = b"k" * 16
    one = flow_label(key, "fd00::1", 1, "fd00::2", 2)
    assert one == flow_label(key, "fd00::1", 1, "fd00::2", 2)
    assert 0 < one <= 0xFFFFF
    others = {flow_label(key, "fd00::1", port, "fd00::2", 2) for port in range(3, 40)}
    assert len(others) > 30
    assert flow_label(b"other key", "fd00::1", 1, "fd00::2", 2) != one
