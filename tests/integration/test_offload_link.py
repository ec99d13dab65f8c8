"""The virtio-net header a ``TunLink`` writes and reads, checked over a
``SOCK_SEQPACKET`` socket pair (one message per packet, like a TUN fd), with
scapy as the independent oracle for checksums."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP

from tcpstack.link.tun import (
    CSUM_OFFSET,
    CSUM_START,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VNET_HDR,
    VNET_HDR_LEN,
    TunLink,
)
from tcpstack.wire.packet import build_packet, parse_packet
from tcpstack.wire.tcp import ACK, TcpOptions, TcpSegment


@pytest.fixture
def pair() -> Iterator[tuple[TunLink, socket.socket]]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    link = TunLink(ours.detach(), "test0", 1500, offload=True)
    try:
        yield link, kernel
    finally:
        link.close()
        kernel.close()


def _segment(payload: bytes) -> TcpSegment:
    return TcpSegment(src_port=7, dst_port=40000, seq=1000, ack=2000, flags=ACK,
                      window=512, urgent=0, options=TcpOptions(timestamps=(1, 2)),
                      payload=payload)


def test_super_segment_write_carries_gso_header(pair: tuple[TunLink, socket.socket]) -> None:
    link, kernel = pair
    seg = _segment(bytes(range(256)) * 40)            # 10240 bytes: 7 full MSS of 1448 + rest
    packet = build_packet("10.7.0.2", "10.7.0.1", seg, offload=True)
    head_len = len(packet) - len(seg.payload)
    link.send_offload((packet[:head_len], seg.payload), 1448, head_len)
    data = kernel.recv(1 << 17)
    flags, gso_type, hdr_len, gso_size, start, offset = VNET_HDR.unpack_from(data)
    assert (flags, gso_type, hdr_len, gso_size) == (
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 20 + 32, 1448)
    assert (start, offset) == (CSUM_START, CSUM_OFFSET) == (20, 16)
    assert data[VNET_HDR_LEN:] == packet
    assert link.tx_gso_packets == 1 and link.tx_packets == 1


def test_small_write_needs_csum_without_gso(pair: tuple[TunLink, socket.socket]) -> None:
    link, kernel = pair
    seg = _segment(b"hello")
    packet = build_packet("10.7.0.2", "10.7.0.1", seg, offload=True)
    link.send_offload((packet,))
    data = kernel.recv(4096)
    assert VNET_HDR.unpack_from(data)[:2] == (VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                                VIRTIO_NET_HDR_GSO_NONE)
    # The field holds only the pseudo-header sum: not a valid checksum yet.
    with pytest.raises(Exception, match="checksum"):
        parse_packet(data[VNET_HDR_LEN:])
    assert link.tx_gso_packets == 0


def test_plain_send_has_an_empty_header_and_a_full_checksum(
        pair: tuple[TunLink, socket.socket]) -> None:
    link, kernel = pair
    packet = build_packet("10.7.0.2", "10.7.0.1", _segment(b"x" * 100))
    link.send(packet)
    data = kernel.recv(4096)
    assert data[:VNET_HDR_LEN] == bytes(VNET_HDR_LEN)
    parse_packet(data[VNET_HDR_LEN:])                # verifies


def test_partial_checksum_read_is_completed_by_recv(
        pair: tuple[TunLink, socket.socket]) -> None:
    link, kernel = pair
    seg = _segment(b"y" * 3000)                       # a GSO-sized read
    partial = build_packet("10.7.0.1", "10.7.0.2", seg, offload=True)
    header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 52, 1448,
                           CSUM_START, CSUM_OFFSET)
    kernel.send(header + partial)
    kernel.send(header + partial)
    view, verify = link.recv_view()                   # the fast path: do not verify
    assert not verify and bytes(view) == partial
    _ip, parsed = parse_packet(view, verify_checksum=False)
    assert parsed.payload == seg.payload
    completed = link.recv()                           # the Link protocol: a complete packet
    assert completed is not None
    rebuilt = IP(completed)
    del rebuilt[TCP].chksum                           # scapy computes it afresh
    assert IP(bytes(rebuilt))[TCP].chksum == IP(completed)[TCP].chksum
    parse_packet(completed)                           # verifies
    assert link.rx_gso_packets == 2
    assert link.recv() is None                        # drained: EAGAIN


def test_unmarked_read_must_be_verified(pair: tuple[TunLink, socket.socket]) -> None:
    link, kernel = pair
    packet = build_packet("10.7.0.1", "10.7.0.2", _segment(b"z"))
    kernel.send(bytes(VNET_HDR_LEN) + packet)
    view, verify = link.recv_view()
    assert verify and bytes(view) == packet


def test_readable_tells_whether_a_packet_waits_without_reading_it(
        pair: tuple[TunLink, socket.socket]) -> None:
    link, kernel = pair
    assert not link.readable()
    packet = build_packet("10.7.0.1", "10.7.0.2", _segment(b"r"))
    kernel.send(bytes(VNET_HDR_LEN) + packet)
    kernel.send(bytes(VNET_HDR_LEN) + packet)
    assert link.readable() and link.readable()        # asking reads nothing
    assert link.rx_packets == 0
    got = link.recv_view()
    assert got is not None and bytes(got[0]) == packet
    assert link.readable()                            # the second is still there
    assert link.recv_view() is not None
    assert not link.readable()
    assert link.recv_view() is None
