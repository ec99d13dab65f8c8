"""Codec details: checksums, option encoding, offload, limits, fast construction."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from tcpstack.seq import Seq
from tcpstack.wire.checksum import checksum_ok, fold, internet_checksum, ones_sum
from tcpstack.wire.fastinit import fast_constructor
from tcpstack.wire.ipv4 import Ipv4Header, build_ipv4, parse_ipv4
from tcpstack.wire.packet import build_packet, parse_packet
from tcpstack.wire.tcp import (
    ACK,
    NO_OPTIONS,
    PSH,
    SYN,
    TcpOptions,
    TcpSegment,
    build_tcp,
    encode_options,
    options_length,
    parse_tcp,
)

SRC, DST = "192.0.2.1", "198.51.100.7"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), initial=st.integers(0, 0xFFFF))
def test_internet_checksum_matches_scapy(data: bytes, initial: int) -> None:
    prefix = initial.to_bytes(2, "big")
    assert internet_checksum(data, initial) == scapy_checksum(prefix + data)
    assert internet_checksum(memoryview(data)) == scapy_checksum(data)


def test_checksum_edge_cases() -> None:
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(b"\x00\x00") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == 0x0000      # sum is "negative zero"
    assert internet_checksum(b"\x01") == 0xFEFF           # odd length: padded with zero
    assert fold(0) == 0 and fold(0xFFFF) == 0xFFFF and fold(0x1FFFE) == 0xFFFF
    assert checksum_ok(ones_sum(b"\x12\x34\xed\xcb")) and not checksum_ok(0)
    # RFC 1071 §3 worked example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
    assert fold(ones_sum(bytes.fromhex("0001f203f4f5f6f7"))) == 0xDDF2


def test_ipv4_build_matches_scapy_and_parses() -> None:
    payload = bytes(UDP(sport=1, dport=2) / Raw(b"abc"))
    ours = build_ipv4(SRC, DST, payload, protocol=17, ident=9, ttl=3, tos=0x10,
                      dont_fragment=False)
    assert ours == bytes(IP(src=SRC, dst=DST, proto=17, id=9, ttl=3, tos=0x10) / Raw(payload))
    header, view = parse_ipv4(ours)
    assert header == Ipv4Header(SRC, DST, 17, 3, 9, 0x10, False, len(ours), 20)
    assert bytes(view) == payload


def test_build_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        build_packet("10.0.0.256", DST, TcpSegment(1, 2, 3, 4, ACK, 5))
    with pytest.raises(ValueError, match="exceeds 65535"):
        build_packet(SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload=bytes(65516)))
    with pytest.raises(ValueError, match="cannot build TCP"):
        build_packet(SRC, DST, TcpSegment(1, 70000, 3, 4, ACK, 5))
    with pytest.raises(ValueError, match="cannot encode TCP options"):
        encode_options(TcpOptions(mss=1 << 16))
    with pytest.raises(ValueError, match="at most 40 fit"):
        encode_options(TcpOptions(timestamps=(1, 2), sack_blocks=((1, 2),) * 4))


def test_linux_option_layouts() -> None:
    syn = TcpOptions(mss=1460, sack_permitted=True, timestamps=(1, 2), wscale=7)
    assert encode_options(syn).hex() == "020405b4" "0402080a" "00000001" "00000002" "01030307"
    assert encode_options(TcpOptions(mss=536, sack_permitted=True, wscale=0)).hex() == (
        "02040218" "01010402" "01030300")
    assert encode_options(TcpOptions(timestamps=(1, 2), sack_blocks=((5, 9),))).hex() == (
        "0101080a" "00000001" "00000002" "0101050a" "00000005" "00000009")
    assert encode_options(NO_OPTIONS) == b"" == encode_options(TcpOptions())
    assert options_length(TcpOptions(timestamps=(0, 0), sack_blocks=((1, 2),) * 3)) == 40


def test_checksum_choices() -> None:
    seg = TcpSegment(1, 2, 3, 4, ACK | PSH, 5, options=TcpOptions(timestamps=(6, 7)),
                     payload=b"odd length!")
    full = build_packet(SRC, DST, seg)
    unset = build_packet(SRC, DST, seg, checksum=False)
    offload = build_packet(SRC, DST, seg, offload=True)
    assert unset[36:38] == b"\0\0"
    assert full[:36] == unset[:36] == offload[:36] and full[38:] == unset[38:] == offload[38:]
    # What the device does with NEEDS_CSUM: checksum from csum_start (the TCP
    # header) to the end, seeded with the partial sum in the field, stored there.
    device = internet_checksum(offload[20:])
    assert device.to_bytes(2, "big") == full[36:38]
    assert parse_packet(unset, verify_checksum=False)[1] == seg
    assert build_tcp(SRC, DST, seg) == full[20:]
    assert build_tcp(SRC, DST, seg, checksum=False) == unset[20:]


def test_tso_super_segment_and_seq_values() -> None:
    seg = TcpSegment(1, 2, Seq(2**32 - 1), Seq(5), ACK, 5, payload=bytes(range(256)) * 255)
    packet = build_packet(SRC, DST, seg)
    assert len(packet) == 40 + 65280
    header, parsed = parse_packet(packet)
    assert parsed == seg and header.total_length == len(packet)


def test_parse_tcp_bare_segment() -> None:
    seg = TcpSegment(443, 5555, 1, 2, SYN, 29200, options=TcpOptions(mss=1400))
    assert parse_tcp(build_tcp(SRC, DST, seg), SRC, DST) == seg
    assert parse_tcp(memoryview(build_tcp(SRC, DST, seg)), SRC, DST) == seg


def test_parsed_instances_are_ordinary_frozen_dataclasses() -> None:
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(timestamps=(1, 2)), payload=b"z")
    header, parsed = parse_packet(build_packet(SRC, DST, seg))
    for made, normal in ((parsed, seg), (parsed.options, seg.options),
                         (header, Ipv4Header(SRC, DST, total_length=53))):
        assert type(made) is type(normal)
        assert made == normal and hash(made) == hash(normal) and repr(made) == repr(normal)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, dataclasses.fields(made)[0].name, None)
    assert dataclasses.replace(parsed, seq=9).seq == 9


def test_fast_constructor_falls_back_for_classes_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class Fits:
        a: int
        b: str = "x"

    assert fast_constructor(NoSlots) is NoSlots
    assert fast_constructor(PostInit) is PostInit
    made = fast_constructor(Fits)(1, "y")
    assert type(made) is Fits and made == Fits(1, "y")
