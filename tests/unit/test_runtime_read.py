"""The driver's reads from a TUN-like link: when it asks whether another packet
waits (a ``poll``) and when a packet with PSH lets it skip the question."""

from __future__ import annotations

import pytest

from tcpstack.core.config import StackConfig
from tcpstack.core.stack import StackCore
from tcpstack.runtime.driver import StackDriver, _pushed
from tcpstack.wire.packet import build_packet
from tcpstack.wire.tcp import ACK, PSH, TcpSegment

STACK, PEER = "10.7.0.2", "10.7.0.1"
STACK6, PEER6 = "fd00:7::2", "fd00:7::1"


class FakeTun:
    """What the driver uses of a ``TunLink``: packets handed out by ``recv_view``,
    and ``readable()`` (the poll) counted."""

    mtu = 1500

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = list(packets)
        self.polls = 0
        self.sent: list[bytes] = []

    def recv_view(self) -> tuple[memoryview, bool] | None:
        if not self.packets:
            return None
        return memoryview(self.packets.pop(0)), True

    def readable(self) -> bool:
        self.polls += 1
        return bool(self.packets)

    def recv(self) -> bytes | None:
        return self.packets.pop(0) if self.packets else None

    def send(self, packet: bytes) -> None:
        self.sent.append(packet)

    def fileno(self) -> int:
        return -1


def segment(flags: int, payload: bytes = b"") -> TcpSegment:
    return TcpSegment(9000, 40000, 1, 1, flags, 1000, payload=payload)


def packet(flags: int, payload: bytes = b"", src: str = PEER, dst: str = STACK) -> bytes:
    return build_packet(src, dst, segment(flags, payload))


def drain(packets: list[bytes]) -> FakeTun:
    link = FakeTun(packets)
    core = StackCore(local_addr=(STACK, STACK6), config=StackConfig(isn_secret=b"k" * 16))
    driver = StackDriver(core, link, (STACK, STACK6))
    driver._drain_link(1.0)
    return link


def test_pushed_reads_the_flag_of_either_family() -> None:
    assert _pushed(packet(ACK | PSH, b"x"))
    assert not _pushed(packet(ACK, b"x"))
    assert _pushed(packet(ACK | PSH, b"x", PEER6, STACK6))
    assert not _pushed(packet(ACK, b"", PEER6, STACK6))
    icmp = bytearray(packet(ACK | PSH, b"x"))
    icmp[9] = 1                                   # not TCP: no flags to read
    assert not _pushed(bytes(icmp))


@pytest.mark.parametrize("family", [4, 6])
def test_no_poll_after_a_segment_with_push(family: int) -> None:
    src, dst = (PEER, STACK) if family == 4 else (PEER6, STACK6)
    link = drain([packet(ACK | PSH, b"response", src, dst)])
    assert link.polls == 0 and not link.packets


def test_a_segment_without_push_asks_before_reading_on() -> None:
    link = drain([packet(ACK)])
    assert link.polls == 1


def test_what_follows_a_pushed_segment_waits_for_the_next_wake_up() -> None:
    link = drain([packet(ACK | PSH, b"a"), packet(ACK)])
    assert link.polls == 0 and len(link.packets) == 1


def test_packets_behind_an_unpushed_one_are_all_read() -> None:
    link = drain([packet(ACK, b"a"), packet(ACK, b"b"), packet(ACK | PSH, b"c"), packet(ACK)])
    assert link.polls == 1 and not link.packets


def test_a_pushed_packet_larger_than_the_mtu_still_asks() -> None:
    # A GSO packet from the kernel (up to 64 KB) may have more behind it.
    big = packet(ACK | PSH, b"z" * 4000)
    link = drain([big, packet(ACK)])
    assert link.polls == 1 and not link.packets
