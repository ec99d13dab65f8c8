"""ICMPv6 (RFC 4443): the codec against scapy, and the runtime's echo
responder (replies, its rate limit, what it ignores and what it drops)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_RS, IPv6

from tcpstack.runtime.icmp6 import Icmp6Responder
from tcpstack.wire.errors import WireError
from tcpstack.wire.icmp6 import ECHO_REPLY, build_icmp6, parse_icmp6

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
    responder = Icmp6Responder(frozenset({US, "10.7.0.2"}), counters)
    reply = responder.handle(request(seq=9, data=b"x" * 100), 0.0)
    assert reply is not None
    answer = IPv6(reply)
    assert (answer.src, answer.dst) == (US, PEER)
    echo = answer[ICMPv6EchoReply]
    assert (echo.id, echo.seq, echo.data) == (0x77, 9, b"x" * 100)
    assert parse_icmp6(reply).type == ECHO_REPLY
    assert counters == Counter(icmp6_echo_requests=1, icmp6_echo_replies=1)


def test_responder_ignores_other_types_and_other_destinations() -> None:
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(frozenset({US}), counters)
    assert responder.handle(bytes(IPv6(src="fe80::1", dst="ff02::2") / ICMPv6ND_RS()), 0) is None
    assert responder.handle(request(dst="ff02::1"), 0) is None
    assert responder.handle(request(dst="fd00:7::9"), 0) is None
    bad = bytearray(request())
    bad[-1] ^= 0xFF
    assert responder.handle(bytes(bad), 0) is None
    assert counters == Counter(icmp6_ignored=3, drop_bad_checksum=1)


def test_echo_replies_are_rate_limited_like_linux_icmp() -> None:
    counters: Counter[str] = Counter()
    responder = Icmp6Responder(frozenset({US}), counters, rate=1000, burst=50)
    answered = sum(responder.handle(request(seq=i), 0.0) is not None for i in range(80))
    assert answered == 50                       # the burst
    assert counters["icmp6_rate_limited"] == 30
    # 10 ms later 10 more tokens (1000 per second)
    answered = sum(responder.handle(request(seq=i), 0.010) is not None for i in range(20))
    assert answered == 10
    assert counters["icmp6_echo_requests"] == 100
