"""Malformed input: each error type from a crafted packet, and fuzzing that
shows nothing but ``WireError`` subclasses ever comes out of the parsers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_RS, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.packet import Raw

from tcpstack.wire.checksum import internet_checksum
from tcpstack.wire.errors import (
    ALL_ERRORS,
    BadChecksum,
    BadHeaderLength,
    BadOption,
    BadTotalLength,
    Contradictory,
    Fragmented,
    NotIPv4,
    NotIPv6,
    NotTcp,
    Truncated,
    WireError,
)
from tcpstack.wire.ipv4 import parse_ipv4
from tcpstack.wire.ipv6 import parse_ipv6
from tcpstack.wire.packet import build_packet, parse_packet
from tcpstack.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, parse_tcp

SRC, DST = "10.7.0.1", "10.7.0.2"
SEGMENT = TcpSegment(src_port=5001, dst_port=40000, seq=1000, ack=2000, flags=ACK | PSH,
                     window=502, options=TcpOptions(timestamps=(7, 8)), payload=b"x" * 100)
GOOD = build_packet(SRC, DST, SEGMENT, ident=77)
SRC6, DST6 = "fd00:7::1", "fd00:7::2"
GOOD6 = build_packet(SRC6, DST6, SEGMENT, flow_label=0x12345)


def with_ip_checksum(packet: bytes | bytearray) -> bytes:
    """``packet`` with its IPv4 header checksum recomputed (so a later check fires)."""
    data = bytearray(packet)
    hlen = (data[0] & 0x0F) * 4 if data else 0
    if 20 <= hlen <= len(data):
        data[10:12] = b"\0\0"
        data[10:12] = internet_checksum(bytes(data[:hlen])).to_bytes(2, "big")
    return bytes(data)


def tcp_raw(tcp_bytes: bytes) -> bytes:
    """A valid IPv4 header around arbitrary TCP bytes (TCP checksum left as is)."""
    return bytes(IP(src=SRC, dst=DST, proto=6) / Raw(tcp_bytes))


def with_options(options: bytes) -> bytes:
    """A packet whose TCP options area is exactly ``options`` (length a multiple of 4)."""
    return bytes(IP(src=SRC, dst=DST) / TCP(sport=1, dport=2, flags="A",
                                            dataofs=5 + len(options) // 4) / Raw(options))


CRAFTED: list[tuple[type[WireError], bytes]] = [
    (Truncated, b""),
    (Truncated, GOOD[:19]),
    (Truncated, tcp_raw(b"\x00" * 19)),
    (NotIPv4, b"\x55" + GOOD[1:]),
    (NotIPv6, b"\x46" + GOOD6[1:]),      # parse_ipv6 only: parse_packet reads it as IPv4
    (Truncated, GOOD6[:39]),
    (Truncated, GOOD6[:4] + (10).to_bytes(2, "big") + GOOD6[6:50]),       # TCP header cut
    (BadTotalLength, GOOD6[:-1]),                                       # payload > received
    (BadTotalLength, GOOD6[:4] + b"\0\0" + GOOD6[6:]),                  # jumbogram
    (BadHeaderLength, bytes(IPv6(src=SRC6, dst=DST6, nh=0, plen=4) / Raw(b"\x06\x00\0\0"))),
    (BadHeaderLength, bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrHopByHop(len=3) / TCP())),
    (BadHeaderLength, bytes(IPv6(src=SRC6, dst=DST6, nh=60) / Raw(b"".join(
        bytes([60, 0]) + b"\0" * 6 for _ in range(9))))),               # chain of 9
    (BadChecksum, GOOD6[:-1] + bytes([GOOD6[-1] ^ 0x01])),
    (Fragmented, bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrFragment(m=1) / TCP())),
    (Fragmented, bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrFragment(offset=8) / TCP())),
    (NotTcp, bytes(IPv6(src="fe80::1", dst="ff02::2") / ICMPv6ND_RS())),
    (Contradictory, bytes(IPv6(src=SRC6, dst=DST6) / TCP(flags="SR"))),
    (BadHeaderLength, with_ip_checksum(b"\x44" + GOOD[1:])),                 # IHL 4
    (BadHeaderLength, with_ip_checksum(b"\x46\x00" + (22).to_bytes(2, "big") + GOOD[4:20]
                                       + b"\x01" * 4)),                 # total 22 < IHL 6*4
    (BadHeaderLength, tcp_raw(bytes(TCP(dataofs=4)))),                   # data offset 4
    (BadHeaderLength, tcp_raw(bytes(TCP(dataofs=15)) + b"\0" * 20)),     # offset past the end
    (BadTotalLength, GOOD[:-1]),                                         # total > received
    (BadTotalLength, with_ip_checksum(GOOD[:2] + (19).to_bytes(2, "big") + GOOD[4:])),
    (BadChecksum, GOOD[:10] + bytes([GOOD[10] ^ 0xFF]) + GOOD[11:]),     # IPv4 header
    (BadChecksum, GOOD[:-1] + bytes([GOOD[-1] ^ 0x01])),                 # TCP payload
    (BadOption, with_options(b"\x02\x00\x00\x00")),                      # length 0
    (BadOption, with_options(b"\x08\x01\x00\x00")),                      # length 1
    (BadOption, with_options(b"\x01\x01\x08\x0a\x00\x00\x00\x00")),      # overflows
    (BadOption, with_options(b"\x01\x01\x01\x02")),                      # no length byte
    (Fragmented, bytes(IP(src=SRC, dst=DST, flags="MF") / TCP())),
    (Fragmented, bytes(IP(src=SRC, dst=DST, frag=100) / TCP())),
    (NotTcp, bytes(IP(src=SRC, dst=DST) / UDP(sport=53, dport=53))),
    (Contradictory, bytes(IP(src=SRC, dst=DST) / TCP(flags="SR"))),
    (Contradictory, bytes(IP(src=SRC, dst=DST) / TCP(flags="SF"))),
]


@pytest.mark.parametrize(("error", "packet"), CRAFTED,
                         ids=[f"{e.__name__}-{i}" for i, (e, _) in enumerate(CRAFTED)])
def test_crafted_packet_raises_its_error(error: type[WireError], packet: bytes) -> None:
    with pytest.raises(error) as info:
        parse_ipv6(packet) if error is NotIPv6 else parse_packet(packet)
    assert type(info.value) is error
    assert str(info.value)            # says what is wrong
    assert error.reason               # counter name


def test_every_error_type_is_crafted_and_named_uniquely() -> None:
    assert {error for error, _ in CRAFTED} == set(ALL_ERRORS)
    reasons = [error.reason for error in ALL_ERRORS]
    assert len(set(reasons)) == len(reasons)
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", reason) for reason in reasons)


def test_bad_tcp_checksum_passes_when_not_verified() -> None:
    broken = GOOD[:36] + bytes([GOOD[36] ^ 0x55]) + GOOD[37:]   # TCP checksum field
    with pytest.raises(BadChecksum):
        parse_packet(broken)
    assert parse_packet(broken, verify_checksum=False)[1] == SEGMENT
    assert parse_tcp(broken[20:], SRC, DST, verify_checksum=False) == SEGMENT


def test_trailing_link_padding_is_ignored() -> None:
    header, seg = parse_packet(GOOD + b"\0" * 6)
    assert seg == SEGMENT
    assert header.total_length == len(GOOD)


def test_parse_ipv4_returns_the_payload_view() -> None:
    header, payload = parse_ipv4(bytes(IP(src=SRC, dst=DST) / UDP() / Raw(b"abc")))
    assert header.protocol == 17
    assert bytes(payload)[8:] == b"abc"


def test_unknown_option_is_skipped_and_bad_known_lengths_ignored() -> None:
    # kind 30 (MPTCP) length 4, then an MSS option with length 3 (ignored like Linux does)
    _, seg = parse_packet(with_options(b"\x1e\x04\xab\xcd\x02\x03\x05\x01\x01\x01\x00\x00"))
    assert seg.options == TcpOptions()


def test_eol_ends_the_option_list() -> None:
    _, seg = parse_packet(with_options(b"\x02\x04\x05\xb4\x00\x03\x03\x07"))
    assert seg.options == TcpOptions(mss=1460)


def test_contradictions_only_for_syn() -> None:
    for flags in (RST | ACK, FIN | ACK, RST | FIN, SYN | ACK, 0):
        seg = TcpSegment(1, 2, 3, 4, flags, 5)
        assert parse_packet(build_packet(SRC, DST, seg))[1].flags == flags


# ----- fuzzing -------------------------------------------------------------------

def parse_all_ways(data: bytes) -> None:
    """Run every parser over ``data``; only codec errors may come out."""
    for parse in (lambda: parse_packet(data), lambda: parse_packet(memoryview(data), False),
                  lambda: parse_packet(bytearray(data)), lambda: parse_ipv4(data),
                  lambda: parse_ipv6(data),
                  lambda: parse_tcp(data, SRC, DST), lambda: parse_tcp(data, SRC, DST, False)):
        try:
            parse()
        except WireError as exc:
            # a specific error, not the safety net around unexpected exceptions
            assert type(exc) in ALL_ERRORS, exc
            assert exc.__cause__ is None, exc


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80) | st.binary(min_size=1, max_size=80).map(lambda b: b"\x45" + b)
       | st.binary(min_size=1, max_size=100).map(lambda b: b"\x60" + b))
def test_random_bytes_raise_only_wire_errors(data: bytes) -> None:
    parse_all_ways(data)


valid_packets = st.sampled_from([
    GOOD,
    build_packet(SRC, DST, TcpSegment(1, 2, 3, 4, SYN, 5, options=TcpOptions(
        mss=1460, wscale=7, sack_permitted=True, timestamps=(1, 2)))),
    build_packet(SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(
        sack_blocks=((1, 2), (3, 4), (5, 6)), timestamps=(1, 2)))),
    bytes(IP(src=SRC, dst=DST, options=[b"\x01\x01\x01\x01"]) / TCP(options=[(99, b"ab")])),
    GOOD6,
    bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / TCP()),
])


@settings(max_examples=400, deadline=None)
@given(packet=valid_packets,
       edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=6),
       cut=st.none() | st.integers(0, 120), tail=st.binary(max_size=8),
       fix_ip_checksum=st.booleans())
def test_mutated_packets_raise_only_wire_errors(packet: bytes, edits: list[tuple[int, int]],
                                                cut: int | None, tail: bytes,
                                                fix_ip_checksum: bool) -> None:
    data = bytearray(packet)
    for index, value in edits:
        if index < len(data):
            data[index] = value
    mutated = bytes(data[:cut]) + tail
    if fix_ip_checksum:
        mutated = with_ip_checksum(mutated)
    parse_all_ways(mutated)
