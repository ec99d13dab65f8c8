"""ICMPv6 (RFC 4443): the codec against scapy, and the runtime's echo
responder (replies, its rate limit, what it ignores and what it drops)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    UDP,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_RS,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    IPv6,
)
from scapy.packet import Raw

from tcpstack.core.config import StackConfig
from tcpstack.core.stack import StackCore
from tcpstack.runtime.icmp6 import Icmp6Responder
from tcpstack.runtime.iphost import TokenBucket
from tcpstack.wire.errors import WireError
from tcpstack.wire.icmp6 import ECHO_REPLY, build_icmp6, parse_icmp6
from tcpstack.wire.packet import build_packet
from tcpstack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

US, PEER = "fd00:7::2", "fd00:7::1"


def request(seq: int = 1, data: bytes = b"ping", dst: str = US) -> bytes:
    return bytes(IPv6(src=PEER, dst=dst) / ICMPv6EchoRequest(id=0x77, seq=seq, data=data))


@settings(max_examples=100, deadline=None)
@given(ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF), data=st.binary(max_size=200))
def test_echo_reply_is_byte_identical_to_scapys(ident: int, seq: int, data: bytes) -> None:
    body = ident.to_bytes(2, "big") + seq.to_bytes(2, "big") + data
    ours = build_icmp6(US, PEER, ECHO_REPLY, 0, body)
    assert ours == bytes(IPv6(src=US, dst=PEER) / ICMPv6EchoReply(id=ident, seq=seq,
                                                                  data=data))
    msg = parse_icmp6(ours)
    assert (msg.type, msg.code, msg.body) == (ECHO_REPLY, 0, body)


def test_parse_refuses_a_bad_checksum_and_short_messages() -> None:
    good = request()
    for bad in (good[:-1] + bytes([good[-1] ^ 1]), good[:42], good[:20]):
        try:
            parse_icmp6(bad)
        except WireError as exc:
            assert exc.reason
        else:
            raise AssertionError("accepted")


def test_responder_answers_echo_with_the_same_id_seq_and_data() -> None:
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(None, frozenset({US, "10.7.0.2"}), counters)
    reply = responder.handle(request(seq=9, data=b"x" * 100), 0.0)
    assert reply is not None
    answer = IPv6(reply)
    assert (answer.src, answer.dst) == (US, PEER)
    echo = answer[ICMPv6EchoReply]
    assert (echo.id, echo.seq, echo.data) == (0x77, 9, b"x" * 100)
    assert parse_icmp6(reply).type == ECHO_REPLY
    assert counters == Counter(icmp6_in=1, icmp6_echo_requests=1, icmp6_echo_replies=1)


def test_responder_ignores_other_types_and_other_destinations() -> None:
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(None, frozenset({US}), counters)
    assert responder.handle(bytes(IPv6(src="fe80::1", dst="ff02::2") / ICMPv6ND_RS()), 0) is None
    assert responder.handle(request(dst="ff02::1"), 0) is None
    assert responder.handle(request(dst="fd00:7::9"), 0) is None
    bad = bytearray(request())
    bad[-1] ^= 0xFF
    assert responder.handle(bytes(bad), 0) is None
    reply = bytes(IPv6(src=PEER, dst=US) / ICMPv6EchoReply())
    assert responder.handle(reply, 0) is None
    assert counters == Counter(icmp6_ignored=4, icmp6_in=1, drop_bad_checksum=1)


def test_echo_replies_are_rate_limited_like_linux_icmp() -> None:
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(None, frozenset({US}), counters, TokenBucket(1000, 50))
    answered = sum(responder.handle(request(seq=i), 0.0) is not None for i in range(80))
    assert answered == 50                       # the burst
    assert counters["icmp6_rate_limited"] == 30
    # 10 ms later 10 more tokens (1000 per second)
    answered = sum(responder.handle(request(seq=i), 0.010) is not None for i in range(20))
    assert answered == 10
    assert counters["icmp6_echo_requests"] == 100


# ----- errors about our segments: the same IcmpError and core entry point as ICMPv4

def icmp6_error_packet(kind: type, quoted: bytes, reporter: str = "fd00:7::ff",
                       **fields: object) -> bytes:
    return bytes(IPv6(src=reporter, dst=US) / kind(**fields) / Raw(quoted))


def open_v6_connection() -> tuple[StackCore, object, bytes]:
    """A dual stack with one IPv6 connection that has data in flight; the data
    packet as it went on the wire."""
    stack = StackCore(("10.7.0.2", US), StackConfig(isn_secret=b"k" * 16))
    conn = stack.connect(PEER, 80, 0.0)
    (src, dst, syn), = stack.take_output()
    synack = TcpSegment(80, syn.src_port, 5000, (syn.seq + 1) & 0xFFFFFFFF, SYN | ACK, 65535,
                        options=TcpOptions(mss=1440, wscale=7, sack_permitted=True,
                                           timestamps=(1, syn.options.timestamps[0])))
    stack.receive(PEER, US, synack, 0.01)
    stack.take_output()
    conn.send(b"x" * 5000, 0.02)
    out = stack.take_output()
    src, dst, seg = out[0]
    return stack, conn, build_packet(src, dst, seg)


def test_packet_too_big_lowers_the_mss_of_an_ipv6_connection() -> None:
    stack, conn, sent = open_v6_connection()
    assert conn.mss == 1440 - 12
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(stack, frozenset({US}), counters)
    ptb = icmp6_error_packet(ICMPv6PacketTooBig, sent[:1232], mtu=1400)
    assert responder.handle(ptb, 0.03) is None
    assert conn.mss == 1400 - 60 - 12                  # RFC 8201: MTU - IPv6 - TCP - ts
    assert stack.counters["icmp_packet_too_big"] == 1
    # below the IPv6 minimum: 1280 is believed instead (RFC 8201 §4)
    responder.handle(icmp6_error_packet(ICMPv6PacketTooBig, sent[:1232], mtu=600), 0.04)
    assert conn.mss == 1280 - 60 - 12
    assert stack.counters["icmp_pmtu_below_minimum"] == 1


@pytest.mark.parametrize(("code", "error"), [(4, ConnectionRefusedError), (0, OSError),
                                             (3, OSError), (1, OSError)])
def test_unreachable_ends_an_ipv6_connect(code: int, error: type) -> None:
    stack = StackCore(("10.7.0.2", US), StackConfig(isn_secret=b"k" * 16))
    conn = stack.connect(PEER, 80, 0.0)
    (src, dst, syn), = stack.take_output()
    quoted = build_packet(src, dst, syn)
    responder = Icmp6Responder(stack, frozenset({US}), Counter())
    responder.handle(icmp6_error_packet(ICMPv6DestUnreach, quoted, reporter=PEER, code=code),
                     0.01)
    assert isinstance(conn.error, error)
    assert "ICMP" in str(conn.error)


def test_icmp6_errors_that_do_not_quote_our_tcp_are_counted_drops() -> None:
    stack, conn, sent = open_v6_connection()
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(stack, frozenset({US}), counters)
    udp = bytes(IPv6(src=US, dst=PEER) / UDP(sport=1, dport=2))
    for packet in (icmp6_error_packet(ICMPv6DestUnreach, udp),            # not TCP
                   icmp6_error_packet(ICMPv6DestUnreach, sent[:44]),      # TCP header cut
                   icmp6_error_packet(ICMPv6DestUnreach, sent[:60], code=99)):
        assert responder.handle(packet, 0.03) is None
    assert counters == Counter(icmp6_in=3, drop_icmp_not_tcp=1, drop_truncated=1,
                               drop_icmp_unsupported=1)
    assert conn.error is None
    # a forged error outside the window is refused by the core (RFC 5927 §4.1)
    forged = bytearray(sent)
    forged[44:48] = b"\x00\x00\x00\x01"
    responder.handle(icmp6_error_packet(ICMPv6PacketTooBig, bytes(forged[:100]), mtu=1300),
                     0.03)
    assert stack.counters["icmp_out_of_window"] == 1 and conn.mss == 1428


def test_an_unknown_protocol_draws_a_parameter_problem() -> None:
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(None, frozenset({US}), counters, TokenBucket(1000, 2))
    udp = bytes(IPv6(src=PEER, dst=US) / UDP(sport=1, dport=2) / Raw(b"q" * 2000))
    reply = responder.unrecognized_next_header(udp, 0.0)
    assert reply is not None
    answer = IPv6(reply)
    problem = answer[ICMPv6ParamProblem]
    assert (answer.src, answer.dst, problem.code, problem.ptr) == (US, PEER, 1, 6)
    assert len(reply) == 1280                                  # RFC 4443 §2.4 (c)
    assert parse_icmp6(reply).type == 4
    # not for a multicast source, another address, or beyond the rate limit
    assert responder.unrecognized_next_header(
        bytes(IPv6(src="ff02::1", dst=US) / UDP()), 0.0) is None
    assert responder.unrecognized_next_header(
        bytes(IPv6(src=PEER, dst="fd00:7::9") / UDP()), 0.0) is None
    assert responder.unrecognized_next_header(udp, 0.0) is not None
    assert responder.unrecognized_next_header(udp, 0.0) is None
    assert counters == Counter(icmp6_param_problem_sent=2, icmp6_error_suppressed=1,
                               icmp6_rate_limited=1)
