"""tcpstack as an IP host, with the real kernel's ping and UDP: echo is answered,
a protocol it does not speak draws ICMP protocol unreachable."""

from __future__ import annotations

import asyncio
import errno
import re
import shutil
import socket

import pytest

import tcpstack
from tcpstack.link import netns as ns

from .conftest import STACK_ADDR, Cli, Kernel, echo_handler, run_async

pytestmark = pytest.mark.root


def test_ping_gets_three_replies_while_listen_runs(cli: Cli, kernel: Kernel) -> None:
    if not shutil.which("ping"):
        pytest.skip("capability missing: ping is not installed")
    cli.listen("5003", "--discard")
    result = kernel.run(["ping", "-c", "3", "-i", "0.2", "-W", "5", STACK_ADDR],
                        capture_output=True, text=True, timeout=30)
    print("\n" + result.stdout.strip().splitlines()[-2])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"3 packets transmitted, 3 received", result.stdout), result.stdout


def test_ping_through_a_lossy_link_loses_requests_and_replies(netns_name: str,
                                                              kernel: Kernel) -> None:
    """``fault=`` meets ICMP too, both ways (with the TUN's offloads on, a
    packet that is not TCP meets the faults whole): at 40% loss each way
    about 36% of 30 pings come back, never none and never all."""
    if not shutil.which("ping"):
        pytest.skip("capability missing: ping is not installed")

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, fault="loss=40%,seed=4") as stack:
            assert stack.link.offload is True
            result = await asyncio.to_thread(
                kernel.run, ["ping", "-c", "30", "-i", "0.05", "-W", "1", STACK_ADDR],
                capture_output=True, text=True, timeout=60)
            match = re.search(r"30 packets transmitted, (\d+) received", result.stdout)
            assert match, result.stdout + result.stderr
            assert 0 < int(match.group(1)) < 30, result.stdout
            link = stack.driver.link
            assert link.ingress.counters.dropped > 0 and link.egress.counters.dropped > 0
            replies = stack.counters.get("icmp_echo_replies", 0)
            assert 0 < replies < 30

    run_async(body(), timeout=90)


def test_udp_to_tcpstack_is_answered_with_protocol_unreachable(cli: Cli,
                                                                kernel: Kernel) -> None:
    cli.listen("5004", "--discard")
    sock = ns.run_in_netns(kernel.netns, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    kernel.sockets.append(sock)
    sock.settimeout(5)
    sock.connect((STACK_ADDR, 9))
    sock.send(b"anyone?")
    # Linux reports ICMP protocol unreachable on a connected UDP socket as ENOPROTOOPT.
    with pytest.raises(OSError) as caught:
        sock.recv(100)
    assert caught.value.errno == errno.ENOPROTOOPT


def test_fragmented_ping_is_reassembled_and_answered(cli: Cli, kernel: Kernel) -> None:
    """3000 bytes of echo data: the kernel cuts the request into fragments on the
    1500-byte TUN (RFC 791); tcpstack reassembles it and answers the whole."""
    if not shutil.which("ping"):
        pytest.skip("capability missing: ping is not installed")
    cli.listen("5005", "--discard")
    result = kernel.run(["ping", "-c", "2", "-i", "0.2", "-W", "5", "-s", "3000", "-M", "dont",
                         STACK_ADDR], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 packets transmitted, 2 received" in result.stdout, result.stdout
    assert "3008 bytes from" in result.stdout


def test_a_fragmented_tcp_segment_reaches_the_connection(netns_name: str,
                                                         kernel: Kernel) -> None:
    """A SYN with 2000 bytes of data, in three fragments from a raw socket: the
    listener answers the reassembled SYN; overlapping fragments are dropped."""
    from scapy.layers.inet import IP, TCP, fragment

    async def body() -> dict:
        async with tcpstack.Stack(netns=netns_name) as stack:
            await tcpstack.start_server(echo_handler, 5006)
            raw = kernel.raw_socket()
            syn = IP(src="10.7.0.1", dst=STACK_ADDR, id=77) / TCP(sport=4242, dport=5006,
                                                                   flags="S", seq=1000)
            for piece in fragment(syn / (b"s" * 2000), fragsize=800):
                raw.sendto(bytes(piece), (STACK_ADDR, 0))
            overlapping = [bytes(p) for p in fragment(IP(src="10.7.0.1", dst=STACK_ADDR,
                                                         id=78) / TCP() / (b"o" * 2000),
                                                      fragsize=800)]
            second = IP(overlapping[1])
            second.frag -= 1
            del second.chksum
            for piece in (overlapping[0], bytes(second)):
                raw.sendto(piece, (STACK_ADDR, 0))
            await asyncio.sleep(0.3)
            return dict(stack.counters)

    counters = run_async(body())
    assert counters["frag_reassembled"] == 1
    assert counters["frag_overlap"] == 1
    assert counters["passive_opens"] == 1            # the reassembled SYN made a connection
    assert counters["syn_data_ignored"] == 1
