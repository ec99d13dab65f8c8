"""The runtime's IP host: ICMP errors reach the core, echo is answered within a
token bucket, other protocols draw protocol unreachable, junk is counted."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw

from tcpstack.core.stack import StackCore
from tcpstack.runtime.iphost import IpHost, TokenBucket

US, PEER = "10.7.0.2", "10.8.0.2"


def host(rate: float = 1000.0, burst: int = 50) -> tuple[IpHost, list[bytes], StackCore]:
    core = StackCore(US)
    sent: list[bytes] = []
    return IpHost(core, US, sent.append, Counter(), rate, burst), sent, core


def test_echo_is_answered() -> None:
    h, sent, _ = host()
    h.input(bytes(IP(src=PEER, dst=US) / ICMP(type=8, id=3, seq=1) / Raw(b"ping")), 0.0)
    reply = IP(sent[0])
    assert (reply.src, reply.dst, reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == \
        (US, PEER, 0, 3, 1)
    assert bytes(reply[ICMP].payload) == b"ping"
    assert h.counters["icmp_echo_replies"] == 1


def test_echo_replies_are_rate_limited() -> None:
    h, sent, _ = host(rate=10.0, burst=5)
    request = bytes(IP(src=PEER, dst=US) / ICMP(type=8) / Raw(b"x"))
    for _ in range(20):
        h.input(request, 0.0)
    assert len(sent) == 5
    assert h.counters["icmp_rate_limited"] == 15
    h.input(request, 0.1)                          # one token back after 100 ms
    assert len(sent) == 6


def test_token_bucket_refills_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(99.0) is False              # a clock going back gives nothing


def test_udp_draws_protocol_unreachable_and_tcp_never_does() -> None:
    h, sent, _ = host()
    udp = bytes(IP(src=PEER, dst=US) / UDP(sport=1, dport=2) / Raw(b"q"))
    h.input(udp, 0.0)
    answer = IP(sent[0])
    assert (answer[ICMP].type, answer[ICMP].code) == (3, 2)
    assert bytes(answer[ICMP].payload) == udp
    # From a multicast source: no ICMP error (RFC 1122 §3.2.2).
    h.input(bytes(IP(src="224.0.0.5", dst=US) / UDP(sport=1, dport=2)), 0.0)
    assert len(sent) == 1 and h.counters["icmp_error_suppressed"] == 1


def test_icmp_errors_go_to_the_core_and_junk_is_counted() -> None:
    h, sent, core = host()
    quoted = bytes(IP(src=US, dst=PEER) / TCP(sport=40000, dport=80, seq=5))
    h.input(bytes(IP(src="10.7.0.1", dst=US) / ICMP(type=3, code=4, nexthopmtu=1200)
                  / Raw(quoted)), 0.0)
    assert core.counters["icmp_packet_too_big"] == 1
    assert core.counters["icmp_no_socket"] == 1
    h.input(bytes(IP(src="10.7.0.1", dst=US) / ICMP(type=3, code=4, chksum=1) / Raw(quoted)),
            0.0)
    h.input(bytes(IP(src="10.7.0.1", dst=US) / ICMP(type=5, code=0) / Raw(quoted)), 0.0)
    h.input(bytes(IP(src=PEER, dst="10.7.0.9") / ICMP(type=8)), 0.0)
    assert (h.counters["drop_bad_checksum"], h.counters["drop_icmp_unsupported"],
            h.counters["drop_not_for_us"]) == (1, 1, 1)
    assert sent == []


@given(payload=st.binary(max_size=120), proto=st.sampled_from([1, 6, 17]),
       frag=st.integers(0, 0x3FFF), ident=st.integers(0, 3))
@settings(max_examples=400, deadline=None)
def test_hostile_bytes_are_counted_never_raised(payload: bytes, proto: int, frag: int,
                                                ident: int) -> None:
    """Any payload, any fragment bits: the host counts or answers, never raises."""
    h, _sent, _core = HOST
    packet = bytes(IP(src=PEER, dst=US, proto=proto, id=ident, flags=frag >> 13,
                      frag=frag & 0x1FFF) / Raw(payload))
    h.input(packet, 0.0)
    assert h.fragments.held <= h.fragments.max_bytes
    assert all(IP(p)[ICMP].type == 0 or IP(p)[ICMP].payload.proto != 6 for p in _sent)


HOST = host()
