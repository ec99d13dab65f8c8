"""The codec's fast paths against its general paths, which they must equal.

``build_packet``/``packet_headers`` pack both headers in one call and
``parse_packet`` takes IHL-5 packets in one pass; ``_headers_general`` and
``_parse_general`` do the same work step by step through the header
modules. Here both meet random segments (every option layout, SACK blocks,
odd payloads, checksums of 0x0000, refused values) and random or damaged
packets: same bytes, same values, same accept/reject decision and error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_wire_oracle import addresses, segments, tcp_options, u8, u16

from tcpstack.wire import packet6
from tcpstack.wire.checksum import fold, internet_checksum, ones_sum
from tcpstack.wire.packet import (
    _headers,
    _headers_general,
    _parse_general,
    _parse_plain,
    build_packet,
    packet_headers,
    parse_packet,
)
from tcpstack.wire.tcp import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    TS_PREFIX,
    TcpOptions,
    TcpSegment,
    encode_options,
)

SRC, DST = "10.7.0.1", "10.7.0.2"
SRC6, DST6 = "fd00:7::1", "fd00:7::2"
modes = st.sampled_from([(True, False), (False, False), (True, True), (False, True)])
odd_payloads = st.binary(max_size=600) | st.binary(min_size=1400, max_size=1461)


def general_packet(src: str, dst: str, seg: TcpSegment, ident: int = 0, ttl: int = 64,
                   checksum: bool = True, offload: bool = False) -> bytes:
    """What build_packet returned before it had a fast path."""
    return b"".join((_headers_general(src, dst, seg, ident, ttl, checksum, offload),
                     seg.payload))


def outcome(call: Callable[[], object]) -> object:
    """What a call returns, or the type and text of what it raises."""
    try:
        return call()
    except Exception as exc:  # the error itself is what is compared
        return type(exc), str(exc)


# ----- build ---------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(seg=segments, src=addresses, dst=addresses, ident=u16, ttl=u8, mode=modes)
def test_build_fast_path_equals_general_path(seg: TcpSegment, src: str, dst: str, ident: int,
                                             ttl: int, mode: tuple[bool, bool]) -> None:
    checksum, offload = mode
    headers = _headers_general(src, dst, seg, ident, ttl, checksum, offload)
    assert _headers(src, dst, seg, ident, ttl, checksum, offload) == headers
    assert packet_headers(src, dst, seg, ident, ttl, checksum, offload=offload) == headers
    assert build_packet(src, dst, seg, ident, ttl, checksum, offload=offload) == (
        general_packet(src, dst, seg, ident, ttl, checksum, offload))


def negative_zero_sums(opts: TcpOptions, rest: bytes) -> tuple[TcpSegment, int]:
    """A segment and an IPv4 ident whose checksums both come out 0x0000.

    A field set to the checksum computed with the field zero makes the sum
    0xffff, one's complement "negative zero", whose complement is 0x0000
    (RFC 1071 §1). For TCP the field is played by the first two payload
    bytes, so any ``rest`` (odd lengths too) follows at an even offset.
    """
    seg = TcpSegment(40000, 5001, 7, 9, ACK | PSH, 502, options=opts, payload=b"\0\0" + rest)
    seg = TcpSegment(40000, 5001, 7, 9, ACK | PSH, 502, options=opts,
                     payload=general_packet(SRC, DST, seg)[36:38] + rest)
    return seg, int.from_bytes(general_packet(SRC, DST, seg, ident=0)[10:12], "big")


@settings(max_examples=200, deadline=None)
@given(opts=tcp_options(), rest=odd_payloads)
def test_checksums_of_negative_zero_sums(opts: TcpOptions, rest: bytes) -> None:
    seg, ident = negative_zero_sums(opts, rest)
    packet = general_packet(SRC, DST, seg, ident)
    assert packet[10:12] == b"\0\0" and packet[36:38] == b"\0\0"
    assert build_packet(SRC, DST, seg, ident) == packet
    assert packet_headers(SRC, DST, seg, ident) == packet[:len(packet) - len(seg.payload)]
    # 0xffff in a field is the other zero: the sum verifies all the same (RFC 1624 §5).
    for start in (10, 36):
        other = packet[:start] + b"\xff\xff" + packet[start + 2:]
        parse_both_ways(other, True)
        assert parse_packet(other)[1] == seg


def test_timestamps_only_layout_is_encode_options() -> None:
    opts = TcpOptions(timestamps=(1, 2))
    assert encode_options(opts)[:4] == TS_PREFIX.to_bytes(4, "big")
    seg = TcpSegment(1, 2, 3, 4, ACK | PSH, 5, options=opts, payload=b"abc")
    assert build_packet(SRC, DST, seg)[40:52] == encode_options(opts)


GOOD = TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(timestamps=(6, 7)), payload=b"x")
ODD_SEGMENTS = [
    ("10.0.0.256", DST, GOOD),                                                  # address
    (SRC, "x", TcpSegment(1, 70000, 3, 4, ACK, 5)),                             # two problems
    (SRC, DST, GOOD),
    (SRC, DST, TcpSegment(1, 70000, 3, 4, ACK, 5)),                             # port
    (SRC, DST, TcpSegment(1, 2, 1 << 32, 4, ACK, 5)),                           # seq
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload=bytes(65496))),           # too long
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload=bytes(65516))),
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(timestamps=(1 << 32, 0)))),
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(
        timestamps=(1, 2, 3)))),  # type: ignore[arg-type]
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(
        timestamps=[1, 2]))),  # type: ignore[arg-type]
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(
        timestamps=(1, 2), sack_blocks=((1, 2),) * 4))),
    (SRC, DST, TcpSegment(1, 2, 3.5, 4, ACK, 5)),  # type: ignore[arg-type]
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload="text")),  # type: ignore[arg-type]
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload=memoryview(b"odd"))),  # type: ignore
    (SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, options=None)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("src", "dst", "seg"), ODD_SEGMENTS)
@pytest.mark.parametrize(("ident", "ttl"), [(1, 64), (70000, 64), (1, 256), (-1, 64),
                                            (1.0, 64), (True, False)])
@pytest.mark.parametrize("mode", [(True, False), (False, False), (True, True)])
def test_odd_values_give_what_the_general_path_gives(
        src: str, dst: str, seg: TcpSegment, ident: int, ttl: int,
        mode: tuple[bool, bool]) -> None:
    """The same bytes, or the same exception with the same message."""
    checksum, offload = mode
    assert outcome(lambda: build_packet(src, dst, seg, ident, ttl, checksum, offload=offload)) \
        == outcome(lambda: general_packet(src, dst, seg, ident, ttl, checksum, offload))
    assert outcome(lambda: packet_headers(src, dst, seg, ident, ttl, checksum,
                                          offload=offload)) \
        == outcome(lambda: _headers_general(src, dst, seg, ident, ttl, checksum, offload))


# ----- parse ---------------------------------------------------------------------

def parse_both_ways(data: bytes | bytearray | memoryview, verify: bool) -> None:
    """The fast parse gives what the general one does (a result or the same
    error), or declines with None; parse_packet gives what the general one does."""
    if data and data[0] >> 4 == 6:
        general = outcome(lambda: packet6._parse_general(data, verify))
        if len(data) >= 60:
            fast = outcome(lambda: packet6._parse_plain(data, verify))
            assert fast is None or fast == general
        assert outcome(lambda: parse_packet(data, verify)) == general
        return
    general = outcome(lambda: _parse_general(data, verify))
    if len(data) >= 40 and data[0] == 0x45:
        fast = outcome(lambda: _parse_plain(data, verify))
        assert fast is None or fast == general
    assert outcome(lambda: parse_packet(data, verify)) == general


@settings(max_examples=300, deadline=None)
@given(seg=segments, src=addresses, dst=addresses, ident=u16, ttl=u8, verify=st.booleans(),
       padding=st.binary(max_size=12), kind=st.sampled_from([bytes, bytearray, memoryview]))
def test_parse_fast_path_equals_general_path(seg: TcpSegment, src: str, dst: str, ident: int,
                                             ttl: int, verify: bool, padding: bytes,
                                             kind: type) -> None:
    packet = build_packet(src, dst, seg, ident, ttl) + padding
    assert _parse_plain(packet, verify) is not None or (seg.flags & SYN and seg.flags & (RST | FIN))
    parse_both_ways(kind(packet), verify)


@settings(max_examples=500, deadline=None)
@given(seg=segments, edits=st.lists(st.tuples(st.integers(0, 70), u8), min_size=1,
                                    max_size=4),
       fix_ip=st.booleans(), verify=st.booleans(), cut=st.none() | st.integers(0, 80))
def test_parse_damaged_packets_both_ways(seg: TcpSegment, edits: list[tuple[int, int]],
                                         fix_ip: bool, verify: bool, cut: int | None) -> None:
    data = bytearray(build_packet(SRC, DST, seg, 7))
    for index, value in edits:
        if index < len(data):
            data[index] = value
    if cut is not None:
        del data[cut:]
    if fix_ip and len(data) >= 20:
        data[10:12] = b"\0\0"
        data[10:12] = internet_checksum(bytes(data[:20])).to_bytes(2, "big")
    parse_both_ways(bytes(data), verify)


@settings(max_examples=300, deadline=None)
@given(seg=segments, edits=st.lists(st.tuples(st.integers(0, 90), u8), max_size=4),
       verify=st.booleans(), cut=st.none() | st.integers(0, 100), label=st.integers(0, 0xFFFFF),
       offload=st.booleans())
def test_ipv6_fast_paths_equal_general_paths(seg: TcpSegment, edits: list[tuple[int, int]],
                                             verify: bool, cut: int | None, label: int,
                                             offload: bool) -> None:
    fast = outcome(lambda: packet6.headers6(SRC6, DST6, seg, 64, True, offload, label))
    general = outcome(lambda: packet6.headers6_general(SRC6, DST6, seg, 64, True, offload,
                                                       label))
    assert fast == general or isinstance(fast, tuple)   # a refusal goes the general way
    data = bytearray(build_packet(SRC6, DST6, seg, flow_label=label))
    parse_both_ways(bytes(data), verify)
    for index, value in edits:
        if index < len(data):
            data[index] = value
    if cut is not None:
        del data[cut:]
    parse_both_ways(bytes(data), verify)


def test_twelve_option_bytes_that_are_not_timestamps() -> None:
    """The option loop, not the timestamps shortcut, reads them."""
    seg = TcpSegment(1, 2, 3, 4, SYN, 5, options=TcpOptions(mss=536, sack_permitted=True,
                                                            wscale=0), payload=b"xyz")
    packet = build_packet(SRC, DST, seg)
    assert packet[32] >> 4 == 8                        # 12 bytes of options
    assert parse_packet(packet)[1] == seg
    parse_both_ways(packet, True)
    lookalike = bytearray(build_packet(SRC, DST, GOOD))
    lookalike[41] = 0  # NOP EOL: nothing after the end of the option list counts
    parse_both_ways(bytes(lookalike), False)
    assert parse_packet(bytes(lookalike), False)[1].options == TcpOptions()


# ----- checksum ------------------------------------------------------------------

def reference_sum(data: bytes) -> int:
    """RFC 1071 §4.1 word by word, with end-around carry (0 only for all zeros)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000) | st.binary(min_size=500, max_size=530),
       start=st.integers(0, 40), cut=st.integers(0, 40),
       fill=st.sampled_from([None, 0x00, 0xFF]))
def test_ones_sum_of_a_range_matches_rfc_1071(data: bytes, start: int, cut: int,
                                             fill: int | None) -> None:
    if fill is not None:
        data = bytes([fill]) * len(data)
    end = max(start, len(data) - cut)
    assume(start <= len(data))
    expected = reference_sum(data[start:end])
    assert fold(ones_sum(data, start, end)) == expected
    assert fold(ones_sum(memoryview(data), start, end)) == expected
    assert fold(ones_sum(data[start:end])) == expected
    if start == 0:
        assert fold(ones_sum(data, end=end)) == expected


def test_ones_sum_piece_boundaries() -> None:
    for n in range(500, 530):
        data = bytes((i * 37 + 11) & 0xFF for i in range(n))
        assert fold(ones_sum(data)) == reference_sum(data)
        assert fold(ones_sum(data, 2, n)) == reference_sum(data[2:])
        assert fold(ones_sum(b"\xff" * n)) == reference_sum(b"\xff" * n)
        assert ones_sum(bytes(n)) == 0
