"""``tcpstack ladder FILE.pcap``: capture reading, connection choice, errors."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from tcpstack.cli import main
from tcpstack.core.state import State
from tcpstack.errors import UsageError, UserError
from tcpstack.ladder.build import ladder_from_segments
from tcpstack.ladder.capture import read_capture, select_connection

A, B = "192.0.2.1", "192.0.2.2"


def exchange(sport: int, dport: int = 80):
    """A handshake, one request and an abrupt RST, as scapy packets."""
    return [
        IP(src=A, dst=B) / TCP(sport=sport, dport=dport, flags="S", seq=1000,
                               options=[("MSS", 1460), ("SAckOK", b"")]),
        IP(src=B, dst=A) / TCP(sport=dport, dport=sport, flags="SA", seq=7000, ack=1001,
                               options=[("MSS", 1400), ("WScale", 7)]),
        IP(src=A, dst=B) / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=7001),
        IP(src=A, dst=B) / TCP(sport=sport, dport=dport, flags="PA", seq=1001, ack=7001)
        / b"GET /",
        IP(src=B, dst=A) / TCP(sport=dport, dport=sport, flags="R", seq=7001),
    ]


@pytest.fixture
def raw_pcap(tmp_path):
    path = tmp_path / "raw.pcap"
    pkts = exchange(5555)
    for i, p in enumerate(pkts):
        p.time = 100 + i * 0.01
    wrpcap(str(path), pkts, linktype=101)
    return str(path)


@pytest.fixture
def ether_pcap(tmp_path):
    path = tmp_path / "eth.pcap"
    mac = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
    pkts = [Ether(**mac) / p for p in exchange(5555) + exchange(6666)]
    for i, p in enumerate(pkts):
        p.time = 200 + i * 0.01
    wrpcap(str(path), pkts)
    return str(path)


def test_raw_ipv4_capture(raw_pcap):
    cap = read_capture(raw_pcap)
    assert cap.frames == 5 and cap.skipped == 0
    (conn,) = cap.connections
    ladder = ladder_from_segments(conn.segments)
    assert ladder.states(0) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED, State.CLOSED]
    assert ladder.states(1) == [State.LISTEN, State.SYN_RECEIVED, State.ESTABLISHED,
                                State.CLOSED]
    assert ladder.segments[1].segment.options.wscale == 7


def test_ethernet_capture_with_two_connections(ether_pcap):
    cap = read_capture(ether_pcap)
    assert [c.name for c in cap.connections] == [f"{A}:5555-{B}:80", f"{A}:6666-{B}:80"]
    with pytest.raises(UsageError):
        select_connection(cap, None)
    assert select_connection(cap, "2").a == (A, 6666)
    assert select_connection(cap, f"{B}:80-{A}:6666").a == (A, 6666)
    for bad in ("3", "0", "x", f"{A}:1-{B}:2"):
        with pytest.raises(UsageError):
            select_connection(cap, bad)


def test_cli_lists_connections_and_draws_the_chosen_one(ether_pcap, capsys, tmp_path):
    assert main(["ladder", ether_pcap]) == 2
    out, err = capsys.readouterr()
    assert "2 TCP connections" in out and f"{A}:6666 <-> {B}:80" in out
    assert "--conn" in err and "Traceback" not in err
    svg, html = tmp_path / "x.svg", tmp_path / "x.html"
    assert main(["ladder", ether_pcap, "--conn", "2", "--svg", str(svg),
                 "--html", str(html)]) == 0
    out, _ = capsys.readouterr()
    assert "PSH+ACK seq=1 ack=1 len=5" in out and "~SYN-RECEIVED" in out
    assert "\x1b" not in out                       # not a terminal: plain
    assert svg.read_text().startswith("<svg") and "<table>" in html.read_text()
    assert main(["ladder", ether_pcap, "--conn", "1", "--absolute", "--no-color"]) == 0
    assert "SYN seq=1000 " in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (None, "No such file"),
    (b"hello, not a capture at all", "not a pcap file"),
    (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng"),
    (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8), "cut short"),
])
def test_bad_files_give_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "f.pcap"
    if content is not None:
        path.write_bytes(content)
    code = main(["ladder", str(path)])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert message in err and len(err.strip().splitlines()) == 1


def test_capture_without_tcp(tmp_path):
    path = tmp_path / "udp.pcap"
    from scapy.layers.inet import UDP
    wrpcap(str(path), [IP(src=A, dst=B) / UDP()], linktype=101)
    with pytest.raises(UserError, match="no TCP segments"):
        select_connection(read_capture(str(path)), None)


def test_ipv6_capture_ladder_and_bracketed_conn_spec(tmp_path, capsys):
    from scapy.layers.inet6 import ICMPv6ND_RS, IPv6

    path = tmp_path / "v6.pcap"
    a6, b6 = "fd00:7::1", "fd00:7::2"
    v4 = exchange(5555)
    v6 = [IPv6(src=a6 if p[IP].src == A else b6, dst=b6 if p[IP].dst == B else a6) / p[TCP]
          for p in exchange(7777)]
    pkts = [*v4, IPv6(src="fe80::1", dst="ff02::2") / ICMPv6ND_RS(), *v6]
    for i, p in enumerate(pkts):
        p.time = 300 + i * 0.01
    wrpcap(str(path), pkts, linktype=101)
    cap = read_capture(str(path))
    assert cap.frames == 11 and cap.skipped == 1          # the router solicitation
    assert [c.a for c in cap.connections] == [(A, 5555), (a6, 7777)]
    conn = select_connection(cap, f"[{a6}]:7777-[{b6}]:80")
    assert conn.summary().startswith(f"[{a6}]:7777 <-> [{b6}]:80")
    assert conn.name == f"[{a6}]:7777-[{b6}]:80"
    ladder = ladder_from_segments(conn.segments)
    assert ladder.states(0)[:3] == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED]
    assert main(["ladder", str(path), "--conn", "2"]) == 0
    out = capsys.readouterr().out
    assert "fd00:7::2" in out and "SYN" in out


def test_an_icmp_error_is_a_note_on_its_connection(tmp_path, capsys):
    from scapy.layers.inet import ICMP

    pkts = exchange(5556)[:4]
    quoted = bytes(pkts[3])[:28]                     # IPv4 header + 8 bytes, as RFC 792
    pkts.insert(4, IP(src="198.51.100.7", dst=A) / ICMP(type=3, code=4, nexthopmtu=1200)
                / quoted)
    for i, p in enumerate(pkts):
        p.time = 100 + i * 0.01
    path = tmp_path / "icmp.pcap"
    wrpcap(str(path), pkts, linktype=101)
    capture = read_capture(str(path))
    (conn,) = capture.connections
    assert capture.skipped == 0
    assert conn.notes == [(pytest.approx(100.04), "ICMP packet-too-big mtu 1200 from "
                           "198.51.100.7", (A, 5556))]
    assert main(["ladder", str(path)]) == 0
    assert "ICMP packet-too-big mtu 1200 from 198.51.100.7" in capsys.readouterr().out


def test_an_icmpv6_packet_too_big_is_a_note_on_its_connection(tmp_path, capsys):
    from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6

    a6, b6 = "fd00:7::1", "fd00:7::2"
    pkts = [IPv6(src=a6 if p[IP].src == A else b6, dst=b6 if p[IP].dst == B else a6) / p[TCP]
            for p in exchange(7778)[:4]]
    quoted = bytes(pkts[3])                          # as much of the packet as fits
    pkts.insert(4, IPv6(src="2001:db8::7", dst=a6) / ICMPv6PacketTooBig(mtu=1280) / quoted)
    for i, p in enumerate(pkts):
        p.time = 200 + i * 0.01
    path = tmp_path / "icmp6.pcap"
    wrpcap(str(path), pkts, linktype=101)
    capture = read_capture(str(path))
    (conn,) = capture.connections
    assert capture.skipped == 0
    assert conn.notes == [(pytest.approx(200.04), "ICMP packet-too-big mtu 1280 from "
                           "2001:db8::7", (a6, 7778))]
    assert main(["ladder", str(path)]) == 0
    assert "ICMP packet-too-big mtu 1280 from 2001:db8::7" in capsys.readouterr().out
