"""The ICMPv4 codec against scapy: errors quoting our segments, echo, and refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.packet import Raw

from tcpstack.wire.errors import BadChecksum, Truncated, WireError
from tcpstack.wire.icmp import (
    IcmpEcho,
    IcmpError,
    IcmpErrorKind,
    IcmpNotTcp,
    IcmpUnsupported,
    build_echo_reply,
    build_icmp_error,
    parse_icmp,
)
from tcpstack.wire.ipv4 import parse_ipv4

US, PEER, ROUTER = "10.7.0.2", "10.8.0.2", "10.7.0.1"


def parse(packet: bytes) -> IcmpError | IcmpEcho:
    ip, payload = parse_ipv4(packet)
    return parse_icmp(ip, payload)


def icmp_about_tcp(icmp: ICMP, seq: int = 12345, sport: int = 40000, dport: int = 80,
                   quote_all: bool = True) -> bytes:
    """What a router sends: the quoted packet is one of ours (IPv4 + TCP)."""
    quoted = bytes(IP(src=US, dst=PEER, flags="DF") / TCP(sport=sport, dport=dport, seq=seq,
                                                           flags="A") / (b"x" * 1400))
    if not quote_all:
        quoted = quoted[:28]                       # RFC 792: IP header + 64 bits
    return bytes(IP(src=ROUTER, dst=US) / icmp / Raw(quoted))


@pytest.mark.parametrize(("icmp_type", "code", "kind"), [
    (3, 0, IcmpErrorKind.NET_UNREACHABLE),
    (3, 1, IcmpErrorKind.HOST_UNREACHABLE),
    (3, 2, IcmpErrorKind.PROTOCOL_UNREACHABLE),
    (3, 3, IcmpErrorKind.PORT_UNREACHABLE),
    (3, 5, IcmpErrorKind.SOURCE_ROUTE_FAILED),
    (3, 6, IcmpErrorKind.NET_UNREACHABLE),
    (3, 7, IcmpErrorKind.HOST_UNREACHABLE),
    (3, 9, IcmpErrorKind.ADMIN_PROHIBITED),
    (3, 10, IcmpErrorKind.ADMIN_PROHIBITED),
    (3, 13, IcmpErrorKind.ADMIN_PROHIBITED),
    (11, 0, IcmpErrorKind.TIME_EXCEEDED),
    (12, 0, IcmpErrorKind.PARAMETER_PROBLEM),
])
def test_errors_map_onto_family_neutral_kinds(icmp_type: int, code: int,
                                              kind: IcmpErrorKind) -> None:
    err = parse(icmp_about_tcp(ICMP(type=icmp_type, code=code)))
    assert err == IcmpError(kind, 0, ROUTER, US, PEER, 40000, 80, 12345)


@given(mtu=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFFFFFF),
       sport=st.integers(1, 0xFFFF), dport=st.integers(1, 0xFFFF), whole=st.booleans())
@settings(max_examples=200, deadline=None)
def test_fragmentation_needed_carries_the_next_hop_mtu(mtu: int, seq: int, sport: int,
                                                       dport: int, whole: bool) -> None:
    packet = icmp_about_tcp(ICMP(type=3, code=4, nexthopmtu=mtu), seq, sport, dport, whole)
    err = parse(packet)
    assert err == IcmpError(IcmpErrorKind.PACKET_TOO_BIG, mtu, ROUTER, US, PEER, sport, dport,
                            seq)


def test_echo_request_parses_and_the_reply_is_what_scapy_builds() -> None:
    data = bytes(range(56))
    request = bytes(IP(src=PEER, dst=US) / ICMP(type=8, id=0x1234, seq=7) / Raw(data))
    echo = parse(request)
    assert echo == IcmpEcho(0x1234, 7, data)
    reply = build_echo_reply(US, PEER, echo, ident=99)
    assert reply == bytes(IP(src=US, dst=PEER, id=99) / ICMP(type=0, id=0x1234, seq=7)
                          / Raw(data))


def test_protocol_unreachable_is_what_scapy_builds() -> None:
    udp = bytes(IP(src=PEER, dst=US) / UDP(sport=5, dport=6) / (b"u" * 900))
    built = build_icmp_error(US, PEER, 3, 2, udp, ident=5)
    assert len(built) == 576                       # RFC 1812 §4.3.2.3
    want = IP(src=US, dst=PEER, id=5) / ICMP(type=3, code=2) / Raw(udp[:548])
    assert built == bytes(want)


@pytest.mark.parametrize(("packet", "error"), [
    (bytes(IP(src=ROUTER, dst=US, proto=1) / Raw(b"\x03\x04\x00")), Truncated),
    (icmp_about_tcp(ICMP(type=3, code=4, chksum=0x1234)), BadChecksum),
    (icmp_about_tcp(ICMP(type=5, code=1)), IcmpUnsupported),          # redirect
    (icmp_about_tcp(ICMP(type=4, code=0)), IcmpUnsupported),          # source quench (RFC 6633)
    (icmp_about_tcp(ICMP(type=3, code=16)), IcmpUnsupported),
    (bytes(IP(src=ROUTER, dst=US) / ICMP(type=3, code=3)
           / IPerror(src=US, dst=PEER) / Raw(b"\x00" * 4)), Truncated),   # < 8 bytes of TCP
    (bytes(IP(src=ROUTER, dst=US) / ICMP(type=3, code=3)
           / IPerror(src=US, dst=PEER) / UDP(sport=1, dport=2)), IcmpNotTcp),
])
def test_malformed_or_unsupported_raise_wire_errors(packet: bytes,
                                                    error: type[WireError]) -> None:
    with pytest.raises(error):
        parse(packet)


@given(st.binary(max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_bytes_give_a_message_or_a_wire_error(payload: bytes) -> None:
    ip, _ = parse_ipv4(bytes(IP(src=ROUTER, dst=US, proto=1) / Raw(payload)))
    try:
        parse_icmp(ip, payload)
    except WireError:
        pass


def test_scapy_quoted_tcp_layer_agrees() -> None:
    packet = icmp_about_tcp(ICMP(type=3, code=4, nexthopmtu=1200), seq=777)
    quoted = IP(packet)[TCPerror]
    err = parse(packet)
    assert (err.src_port, err.dst_port, int(err.seq)) == (quoted.sport, quoted.dport,
                                                          quoted.seq)
