"""pcap writing and reading, checked against scapy's reader/writer and tcpdump."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from tcpstack.link.pcap import PcapError, PcapReader, PcapRecord, PcapWriter, read_pcap
from tcpstack.wire.packet import build_packet, parse_packet
from tcpstack.wire.tcp import ACK, FIN, SYN, TcpOptions, TcpSegment

A, B = "10.7.0.1", "10.7.0.2"
T0 = 1_700_000_000.25


def conversation() -> list[tuple[bytes, float]]:
    """A handshake, one data segment and a close, as (packet, timestamp)."""
    segs = [
        (A, B, TcpSegment(40000, 80, 100, 0, SYN, 64240,
                          options=TcpOptions(mss=1460, sack_permitted=True,
                                             timestamps=(1, 0), wscale=7))),
        (B, A, TcpSegment(80, 40000, 900, 101, SYN | ACK, 65160,
                          options=TcpOptions(mss=1460, sack_permitted=True,
                                             timestamps=(5, 1), wscale=7))),
        (A, B, TcpSegment(40000, 80, 101, 901, ACK, 502, options=TcpOptions(timestamps=(2, 5)))),
        (A, B, TcpSegment(40000, 80, 101, 901, ACK, 502, payload=b"GET / HTTP/1.0\r\n\r\n")),
        (B, A, TcpSegment(80, 40000, 901, 119, FIN | ACK, 509)),
    ]
    return [(build_packet(src, dst, seg, ident=i), T0 + i * 0.001)
            for i, (src, dst, seg) in enumerate(segs)]


def test_written_file_reads_back_here_and_in_scapy(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    packets = conversation()
    with PcapWriter(path) as writer:
        for packet, ts in packets:
            writer.write(packet, ts)
    ours = list(read_pcap(path))
    assert [r.data for r in ours] == [p for p, _ in packets]
    assert [r.ts for r in ours] == pytest.approx([ts for _, ts in packets], abs=1e-6)
    assert {r.linktype for r in ours} == {101}
    assert [r.orig_len for r in ours] == [len(p) for p, _ in packets]
    theirs = rdpcap(str(path))
    assert [bytes(p) for p in theirs] == [p for p, _ in packets]
    assert [float(p.time) for p in theirs] == pytest.approx([ts for _, ts in packets], abs=1e-6)


@pytest.mark.parametrize("nanosecond", [False, True])
def test_tcpdump_reads_what_we_write(tmp_path: Path, nanosecond: bool) -> None:
    tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/sbin")
    assert tcpdump, "tcpdump is part of the test dependencies (tools/install --test)"
    path = tmp_path / "out.pcap"
    with PcapWriter(path, nanosecond=nanosecond) as writer:
        for packet, ts in conversation():
            writer.write(packet, ts)
    result = subprocess.run([tcpdump, "-nr", str(path)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert "10.7.0.1.40000 > 10.7.0.2.80: Flags [S]" in lines[0]
    assert "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7" in lines[0]
    assert "Flags [S.]" in lines[1]
    assert "length 18" in lines[3]
    assert "Flags [F.]" in lines[4]
    verbose = subprocess.run([tcpdump, "-vvnr", str(path)], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    assert verbose.count("cksum") == verbose.count("(correct)") == 5   # TCP checksums
    assert "bad cksum" not in verbose                                  # IPv4 header checksums


def test_writer_on_an_open_file_leaves_it_open() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer, snaplen=60)
    writer.write(b"\x45" + b"\x00" * 99, 1.9999999)
    writer.close()
    assert not buffer.closed
    assert struct.unpack_from("<IHHiIII", buffer.getvalue()) == (0xA1B2C3D4, 2, 4, 0, 0, 60, 101)
    assert struct.unpack_from("<IIII", buffer.getvalue(), 24) == (2, 0, 60, 100)  # rounded up
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x", 1.0)
    (record,) = read_pcap(io.BytesIO(buffer.getvalue()))
    assert record == PcapRecord(2.0, 101, b"\x45" + b"\x00" * 59, 100)


def test_writer_refuses_bad_timestamps() -> None:
    writer = PcapWriter(io.BytesIO())
    for ts in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timestamps"):
            writer.write(b"\x45", ts)


def big_endian_pcap(magic: int, linktype: int, records: list[tuple[int, int, bytes]]) -> bytes:
    out = struct.pack(">IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for seconds, fraction, data in records:
        out += struct.pack(">IIII", seconds, fraction, len(data), len(data)) + data
    return out


def test_reads_big_endian_and_nanosecond_files() -> None:
    packet = conversation()[0][0]
    micro = big_endian_pcap(0xA1B2C3D4, 228, [(10, 500_000, packet)])
    nano = big_endian_pcap(0xA1B23C4D, 101, [(10, 500_000_000, packet)])
    for data in (micro, nano):
        (record,) = read_pcap(io.BytesIO(data))
        assert record.data == packet
        assert record.ts == pytest.approx(10.5)


def test_ethernet_capture_from_scapy(tmp_path: Path) -> None:
    path = tmp_path / "ether.pcap"
    tcp_packet = IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="S") / Raw(b"hi")
    wrpcap(str(path), [
        Ether() / tcp_packet,
        Ether() / ARP(),
        Ether() / Dot1Q(vlan=5) / tcp_packet,
        Ether() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / tcp_packet,   # QinQ
        Ether() / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=2, flags="S")
        / Raw(b"hi"),
        Ether(type=0x0800) / Raw(bytes(tcp_packet) + b"\0" * 6),  # padded to the minimum
    ])
    reader = PcapReader(path)
    records = list(reader)
    assert reader.skipped == 1                                     # the ARP frame
    assert len(records) == 5
    for record in records:
        assert record.linktype == 1
        header, seg = parse_packet(record.data)
        assert header.src in (A, "fd00::1")
        assert (seg.dst_port, seg.flags, seg.payload) == (2, SYN, b"hi")


@pytest.mark.parametrize(("layer", "linktype"), [(CookedLinux, 113), (CookedLinuxV2, 276)])
def test_linux_cooked_captures_from_scapy(tmp_path: Path, layer: type, linktype: int) -> None:
    path = tmp_path / "cooked.pcap"
    tcp_packet = IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="A")
    wrpcap(str(path), [layer(proto=0x0800) / tcp_packet, layer(proto=0x86DD) / IPv6(),
                       layer(proto=0x0806) / Raw(b"arp")])
    records = list(read_pcap(path))
    assert [(r.linktype, r.data) for r in records] == [(linktype, bytes(tcp_packet)),
                                                       (linktype, bytes(IPv6()))]


def test_bsd_loopback_captures(tmp_path: Path) -> None:
    path = tmp_path / "lo0.pcap"
    tcp_packet = bytes(IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="A"))
    wrpcap(str(path), [Loopback(type=2) / Raw(tcp_packet), Loopback(type=24) / IPv6(),
                       Loopback(type=7) / Raw(b"other")])
    v6 = bytes(IPv6())
    assert [(r.linktype, r.data) for r in read_pcap(path)] == [(0, tcp_packet), (0, v6)]
    loop = big_endian_pcap(0xA1B2C3D4, 108, [(1, 0, b"\0\0\0\x02" + tcp_packet),
                                             (1, 0, b"\0\0\0\x18" + v6),
                                             (1, 0, b"\0\0\0\x07" + b"other")])
    assert [r.data for r in read_pcap(io.BytesIO(loop))] == [tcp_packet, v6]


def one_line_error(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "bad.pcap"
    path.write_bytes(data)
    with pytest.raises(PcapError) as info:
        list(read_pcap(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert isinstance(info.value, ValueError)
    return message


def test_malformed_files_raise_one_line_pcap_errors(tmp_path: Path) -> None:
    good = big_endian_pcap(0xA1B2C3D4, 101, [(1, 0, conversation()[0][0])])
    pcapng = bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")
    assert "pcapng is not supported; convert with: editcap -F pcap in out" in one_line_error(
        pcapng, tmp_path)
    assert "not a pcap file" in one_line_error(b"GIF89a and more bytes here....", tmp_path)
    assert "too short" in one_line_error(b"\xd4\xc3", tmp_path)
    assert "header is cut short" in one_line_error(good[:20], tmp_path)
    assert "record 1 is cut short" in one_line_error(good[:-1], tmp_path)
    assert "record 2 header is cut short" in one_line_error(good + b"\0" * 5, tmp_path)
    assert "link type 105 is not supported" in one_line_error(
        big_endian_pcap(0xA1B2C3D4, 105, []), tmp_path)
    corrupt = big_endian_pcap(0xA1B2C3D4, 101, []) + struct.pack(">IIII", 0, 0, 1 << 30, 0)
    assert "corrupt" in one_line_error(corrupt, tmp_path)
    with pytest.raises(PcapError, match="cannot read"):
        read_pcap(tmp_path / "missing.pcap")


def test_header_errors_come_from_the_call_not_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    with pytest.raises(PcapError, match="pcapng"):
        read_pcap(path)
