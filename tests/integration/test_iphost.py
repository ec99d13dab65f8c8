"""tcpstack as an IP host, with the real kernel's ping and UDP: echo is answered,
a protocol it does not speak draws ICMP protocol unreachable."""

from __future__ import annotations

import errno
import re
import shutil
import socket

import pytest

from tcpstack.link import netns as ns

from .conftest import STACK_ADDR, Cli, Kernel

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
