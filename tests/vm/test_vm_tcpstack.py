"""tcpstack against a second, separate Linux kernel booted under qemu.

The stack runs as the real CLI (``tcpstack connect`` / ``tcpstack listen``)
on its TUN inside the test namespace; that namespace's kernel forwards to
the guest on the TAP. The guest checks what it receives (sha256 computed
in the guest) and its TCP counters show whether it ever saw or sent a reset.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import VmNetwork
from pcapcheck import check_handshake_and_close, connection_segments, read_tcp_segments
from timed_io import read_pipe
from vmpeer import SINK_PORT, SOURCE_PORT, pattern, sha256_hex

pytestmark = [pytest.mark.vm, pytest.mark.slow]  # boots a VM (~5 s) per module
SIZE = 5_000_000
STACK_ADDR = "10.7.0.2"
STACK_ADDR6 = "fd00:7::2"          # tcpstack's default IPv6 address
TIMEOUT = 90


def tcpstack(net: VmNetwork, *args: str) -> list[str]:
    return [sys.executable, "-m", "tcpstack", *args, "--netns", net.ns.name, "--msl", "1"]


def run_connect(net: VmNetwork, port: int, data: bytes, pcap: Path) -> bytes:
    result = subprocess.run(tcpstack(net, "connect", net.vm.guest_addr, str(port),
                                     "--pcap", str(pcap)),
                            input=data, capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def test_tcpstack_sends_5mb_to_the_guest(vm_network: VmNetwork, tmp_path: Path) -> None:
    before = vm_network.vm.tcp_counters()
    data = pattern(SIZE)
    pcap = tmp_path / "tun.pcap"
    reply = run_connect(vm_network, SINK_PORT, data, pcap)
    # The guest's own count and checksum, sent back over the same connection...
    assert reply.decode().split() == [str(SIZE), sha256_hex(data)]
    # ...and printed on its console.
    seen = vm_network.vm.sink_result()
    assert (seen.nbytes, seen.sha256) == (SIZE, sha256_hex(data))
    segments = connection_segments(read_tcp_segments(pcap), (STACK_ADDR, 0),
                                   (vm_network.vm.guest_addr, SINK_PORT))
    check_handshake_and_close(segments, (vm_network.vm.guest_addr, SINK_PORT))
    vm_network.assert_no_resets(before)


def test_tcpstack_sends_5mb_to_the_guest_over_ipv6(vm_network: VmNetwork) -> None:
    before = vm_network.vm.tcp_counters()
    data = pattern(SIZE)
    result = subprocess.run(tcpstack(vm_network, "connect", vm_network.vm.guest_addr6,
                                     str(SINK_PORT)),
                            input=data, capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.decode().split() == [str(SIZE), sha256_hex(data)]
    seen = vm_network.vm.sink_result()
    assert (seen.nbytes, seen.sha256) == (SIZE, sha256_hex(data))
    vm_network.assert_no_resets(before)


def test_tcpstack_receives_5mb_from_the_guest(vm_network: VmNetwork, tmp_path: Path) -> None:
    before = vm_network.vm.tcp_counters()
    received = run_connect(vm_network, SOURCE_PORT, b"%d\n" % SIZE, tmp_path / "tun.pcap")
    assert len(received) == SIZE
    assert received == pattern(SIZE)
    assert vm_network.vm.source_done() == SIZE
    vm_network.assert_no_resets(before)


def test_guest_connects_to_tcpstack_listen(vm_network: VmNetwork, tmp_path: Path) -> None:
    """The guest kernel is the client: 1 MB up to `tcpstack listen`, a reply down.

    `listen --once` in copy mode ends like `connect` (nc -N): once the peer's
    FIN has come and its own stdin has ended (then it sends its FIN). busybox
    nc in the guest stops sending once the peer has closed, so stdin stays
    open until the guest's whole 1 MB has arrived, and only then ends.
    """
    before = vm_network.vm.tcp_counters()
    size, port = 1_000_000, 7000
    reply = b"tcpstack listen says hello\n" * 1000
    pcap = tmp_path / "tun.pcap"
    with _listening(vm_network, "--once", str(port), "--pcap", str(pcap)) as listen:
        assert listen.stdin is not None and listen.stdout is not None
        listen.stdin.write(reply)
        listen.stdin.flush()
        vm_network.vm.start_guest_connect(STACK_ADDR, port, size)
        received = read_pipe(listen.stdout, size, TIMEOUT)
        listen.stdin.close()                # stdin's end: tcpstack's FIN follows the reply
        received += read_pipe(listen.stdout, None, TIMEOUT)
        result = vm_network.vm.guest_connect_result(TIMEOUT)
        assert listen.wait(TIMEOUT) == 0
    assert received == pattern(size)
    assert (result.rc, result.nbytes, result.sha256) == (0, len(reply), sha256_hex(reply))
    segments = connection_segments(read_tcp_segments(pcap), (vm_network.vm.guest_addr, 0),
                                   (STACK_ADDR, port))
    check_handshake_and_close(segments, (STACK_ADDR, port))
    vm_network.assert_no_resets(before)


@pytest.mark.parametrize(("addr", "port"), [(STACK_ADDR, 7001), (STACK_ADDR6, 7002)],
                         ids=["ipv4", "ipv6"])
def test_guest_data_echoed_by_tcpstack_listen(vm_network: VmNetwork, addr: str,
                                              port: int) -> None:
    """Both directions at once: `tcpstack listen --echo` (no address options)
    returns the guest's 1 MB, over IPv4 and over IPv6 (the guest at fd00:9::2,
    routed by the namespace's kernel to the TUN)."""
    before = vm_network.vm.tcp_counters()
    size = 1_000_000
    with _listening(vm_network, "--echo", "--once", str(port)) as listen:
        vm_network.vm.start_guest_connect(addr, port, size)
        result = vm_network.vm.guest_connect_result(TIMEOUT)
        assert listen.wait(TIMEOUT) == 0
    assert (result.rc, result.nbytes, result.sha256) == (0, size, sha256_hex(pattern(size)))
    vm_network.assert_no_resets(before)


@contextlib.contextmanager
def _listening(net: VmNetwork, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`tcpstack listen ARGS` in the namespace, once it has said 'listening on'; killed after."""
    listen = subprocess.Popen(tcpstack(net, "listen", *args), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert listen.stderr is not None
    try:
        assert _wait_for_line(listen.stderr, b"listening on", 30), \
            "tcpstack listen never said 'listening on'"
        yield listen
    except BaseException:
        if listen.poll() is None:
            listen.kill()
        listen.wait()
        raise
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()
        for stream in (listen.stdin, listen.stdout, listen.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def _wait_for_line(stream: object, marker: bytes, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            return False
        if marker in line:
            return True
    return False
