"""Crafted, hostile segments from the kernel side of the TUN.

scapy builds the packets; a raw socket inside the test namespace sends them
with a spoofed source address in the TUN subnet, so they reach tcpstack as
real packets from the kernel. What tcpstack answers is read from its tracer
(every segment it puts on the wire).
"""

from __future__ import annotations

import asyncio

import pytest

import tcpstack
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.link import netns as ns
from tcpstack.wire.tcp import ACK, RST, SYN

from .conftest import STACK_ADDR, Kernel, run_async

pytestmark = pytest.mark.root

SPOOFED = "10.7.0.5"
SPORT = 40000
PORT = 7
ISS = 1000


async def echo(reader: asyncio.StreamReader, writer) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


class Peer:
    """A fake peer at SPOOFED:SPORT speaking through a raw socket."""

    def __init__(self, kernel: Kernel, events: list[TraceEvent]) -> None:
        self.sock = kernel.raw_socket()
        self.events = events

    def send(self, packet: bytes) -> None:
        self.sock.sendto(packet, (STACK_ADDR, 0))

    def segment(self, flags: str, seq: int, ack: int = 0, payload: bytes = b"",
                **tcp_fields: object) -> bytes:
        from scapy.layers.inet import IP, TCP

        pkt = IP(src=SPOOFED, dst=STACK_ADDR) / TCP(sport=SPORT, dport=PORT, flags=flags,
                                                    seq=seq, ack=ack, window=65535,
                                                    **tcp_fields)
        if payload:
            pkt = pkt / payload
        return bytes(pkt)

    def sent_to_us(self) -> list:
        return [e.segment for e in self.events
                if e.kind is EventKind.SEGMENT_OUT and e.remote == (SPOOFED, SPORT)]

    async def expect(self, count: int, timeout: float = 2.0) -> list:
        for _ in range(int(timeout / 0.01)):
            out = self.sent_to_us()
            if len(out) >= count:
                return out
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} segments to the peer, got {self.sent_to_us()}")


def test_hostile_segments(netns_name: str, kernel: Kernel) -> None:
    events: list[TraceEvent] = []

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, tracer=events.append) as stack:
            await tcpstack.start_server(echo, PORT)
            peer = Peer(kernel, events)

            # A handshake from the spoofed address.
            peer.send(peer.segment("S", ISS, options=[("MSS", 1460)]))
            (synack,) = await peer.expect(1)
            assert synack.flags & (SYN | ACK) == SYN | ACK
            server_iss = synack.seq
            rcv_nxt = ISS + 1
            peer.send(peer.segment("A", rcv_nxt, server_iss + 1))
            for _ in range(200):
                if [i["state"] for i in stack.connections_info()] == ["ESTABLISHED"]:
                    break
                await asyncio.sleep(0.01)
            assert [i["state"] for i in stack.connections_info()] == ["ESTABLISHED"]

            # RST inside the window but not at RCV.NXT -> challenge ACK, connection stays
            # (RFC 5961 §3.2).
            peer.send(peer.segment("R", rcv_nxt + 100))
            out = await peer.expect(2)
            challenge = out[1]
            assert challenge.flags & (ACK | RST) == ACK
            assert challenge.ack == rcv_nxt
            assert stack.counters["challenge_acks"] == 1
            assert [i["state"] for i in stack.connections_info()] == ["ESTABLISHED"]

            # RST far outside the window -> dropped silently (RFC 5961 §3.2, RFC 9293
            # §3.10.7.4), connection stays.
            peer.send(peer.segment("R", rcv_nxt + 50_000_000))
            await asyncio.sleep(0.2)
            assert len(peer.sent_to_us()) == 2
            assert [i["state"] for i in stack.connections_info()] == ["ESTABLISHED"]

            # Bad TCP checksum -> dropped and counted, never ACKed nor delivered.
            peer.send(peer.segment("PA", rcv_nxt, server_iss + 1, b"evil", chksum=0xBAD))
            await asyncio.sleep(0.2)
            assert stack.counters.get("drop_bad_checksum") == 1
            assert len(peer.sent_to_us()) == 2
            assert stack.connections_info()[0]["rcv_nxt"] == rcv_nxt

            # Truncated TCP header (10 of 20 bytes) -> dropped and counted.
            from scapy.layers.inet import IP

            whole = peer.segment("A", rcv_nxt, server_iss + 1)
            peer.send(bytes(IP(src=SPOOFED, dst=STACK_ADDR, proto=6) / whole[20:30]))
            await asyncio.sleep(0.2)
            malformed = {k: v for k, v in stack.counters.items()
                         if k in ("drop_truncated", "drop_bad_header_length")}
            assert sum(malformed.values()) == 1, stack.counters

            # ... and the stack keeps serving: a real kernel client gets its echo.
            result = await asyncio.to_thread(kernel.run, ["nc", "-N", STACK_ADDR, str(PORT)],
                                             input=b"still here", capture_output=True)
            assert result.stdout == b"still here"

            # The exact RST does reset the spoofed connection.
            peer.send(peer.segment("R", rcv_nxt))
            for _ in range(200):
                if not any(i["remote"] == (SPOOFED, SPORT) for i in stack.connections_info()):
                    break
                await asyncio.sleep(0.01)
            assert not any(i["remote"] == (SPOOFED, SPORT) for i in stack.connections_info())

    run_async(body())


def test_non_ipv4_is_ignored_and_non_tcp_answered_and_counted(netns_name: str,
                                                              kernel: Kernel) -> None:
    import socket

    from scapy.layers.inet import IP
    from scapy.layers.inet import UDP as UDP4
    from scapy.layers.inet6 import UDP, IPv6

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            await tcpstack.start_server(echo, PORT)
            # An IPv6 packet written to the TUN through a packet socket on it.
            eth_p_ipv6 = 0x86DD
            packet_sock = ns.run_in_netns(netns_name, socket.socket, socket.AF_PACKET,
                                          socket.SOCK_DGRAM, socket.htons(eth_p_ipv6))
            kernel.sockets.append(packet_sock)
            ipv6 = bytes(IPv6(src="fe80::1", dst="ff02::2") / UDP(sport=1, dport=2))
            packet_sock.sendto(ipv6, ("tcps0", eth_p_ipv6))
            # UDP over IPv4: not TCP.
            kernel.raw_socket().sendto(bytes(IP(src=SPOOFED, dst=STACK_ADDR) /
                                             UDP4(sport=1, dport=2)), (STACK_ADDR, 0))
            await asyncio.sleep(0.1)
            assert stack.counters.get("ignored_not_ipv4") == 1
            # A protocol tcpstack does not speak: counted, answered with ICMP
            # protocol unreachable (RFC 1122 §3.2.2.1).
            assert stack.counters.get("ip_protocol_unsupported") == 1
            assert stack.counters.get("icmp_protocol_unreachable_sent") == 1
            result = await asyncio.to_thread(kernel.run, ["nc", "-N", STACK_ADDR, str(PORT)],
                                             input=b"fine", capture_output=True)
            assert result.stdout == b"fine"

    run_async(body())
