"""IPv4 reassembly (RFC 791 §3.2): whole datagrams out of scapy's fragments,
overlaps dropped (RFC 5722's stance), memory and time bounded, all counted."""

from __future__ import annotations

import random
from collections import Counter

from scapy.layers.inet import ICMP, IP, TCP, fragment
from scapy.packet import Raw

from tcpstack.core.stack import StackCore
from tcpstack.runtime.fragments import FragmentReassembler
from tcpstack.runtime.iphost import IpHost
from tcpstack.wire.packet import parse_packet

US, PEER = "10.7.0.2", "10.7.0.1"


def datagram(size: int = 3000, ident: int = 7) -> IP:
    return IP(src=PEER, dst=US, id=ident) / TCP(sport=1234, dport=80, flags="A") / \
        Raw(random.Random(size).randbytes(size))


def pieces(dgram: IP, size: int = 512) -> list[bytes]:
    return [bytes(p) for p in fragment(dgram, fragsize=size)]


def test_fragments_in_any_order_make_the_datagram() -> None:
    whole = datagram()
    frags = pieces(whole)
    assert len(frags) == 6
    random.Random(1).shuffle(frags)
    r = FragmentReassembler(Counter())
    out = [r.add(f, 0.0) for f in frags]
    assert out[:-1] == [None] * 5
    _ip, seg = parse_packet(out[-1])                # checksums verify
    assert bytes(seg.payload) == bytes(whole[Raw])
    assert out[-1] == bytes(IP(bytes(whole)))       # byte for byte what was fragmented
    assert r.counters["frag_reassembled"] == 1 and r.held == 0 and len(r) == 0


def test_an_exact_duplicate_is_ignored_an_overlap_drops_all() -> None:
    r = FragmentReassembler(Counter())
    frags = pieces(datagram())
    r.add(frags[0], 0.0)
    assert r.add(frags[0], 0.0) is None
    assert r.counters["frag_duplicate"] == 1
    # The second piece again, shifted 8 bytes back over the first: an overlap.
    second = IP(frags[1])
    second.frag -= 1
    del second.chksum
    assert r.add(bytes(second), 0.0) is None
    assert r.counters["frag_overlap"] == 1 and len(r) == 0 and r.held == 0
    # What is left of it can never complete.
    assert all(r.add(f, 0.0) is None for f in frags[1:])


def test_incomplete_datagrams_time_out_after_30_seconds() -> None:
    r = FragmentReassembler(Counter())
    frags = pieces(datagram())
    r.add(frags[0], 0.0)
    r.add(pieces(datagram(ident=8))[0], 29.0)
    assert len(r) == 2
    assert r.add(frags[1], 30.0) is None            # ident 7 expired first
    assert r.counters["frag_timeout"] == 1
    assert len(r) == 2                              # 8, and 7 started anew


def test_memory_is_bounded_oldest_evicted() -> None:
    r = FragmentReassembler(Counter(), max_bytes=4000)
    for ident in range(10):
        r.add(pieces(datagram(ident=ident))[0], 0.0)
    assert r.held <= 4000
    assert r.counters["frag_evicted"] == 10 - len(r)


def test_the_ip_host_reassembles_echo_and_answers_whole() -> None:
    core = StackCore(US)
    sent: list[bytes] = []
    host = IpHost(core, US, sent.append, Counter())
    request = IP(src=PEER, dst=US, id=9) / ICMP(type=8, id=1, seq=1) / Raw(b"p" * 3000)
    for frag in pieces(request, 1480):
        host.input(frag, 0.0)
    reply = IP(sent[0])
    assert reply[ICMP].type == 0 and bytes(reply[ICMP].payload) == b"p" * 3000
    assert host.counters["frag_reassembled"] == 1
