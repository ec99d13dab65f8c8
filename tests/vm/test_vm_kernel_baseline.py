"""The VM plumbing on its own: the namespace's kernel talks to the guest kernel.

These prove the guest, its nc servers, its checksums and the console
protocol independently of tcpstack, so a failure in test_vm_tcpstack.py
points at tcpstack and not at the VM.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from conftest import VmNetwork
from pcapcheck import Capture, check_handshake_and_close, connection_segments, read_tcp_segments
from vmpeer import SINK_PORT, SOURCE_PORT, pattern, sha256_hex

pytestmark = [pytest.mark.vm, pytest.mark.slow]  # boots a VM (~5 s) per module
SIZE = 5_000_000


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_kernel_sends_5mb_to_guest_sink(vm_network: VmNetwork) -> None:
    before = vm_network.vm.tcp_counters()
    data = pattern(SIZE)
    with vm_network.kernel_socket() as sock:
        sock.settimeout(60)
        sock.connect((vm_network.vm.guest_addr, SINK_PORT))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = _read_all(sock)
    assert reply.decode().split() == [str(SIZE), sha256_hex(data)]
    seen = vm_network.vm.sink_result()
    assert (seen.nbytes, seen.sha256) == (SIZE, sha256_hex(data))
    vm_network.assert_no_resets(before)


def test_kernel_receives_5mb_from_guest_source(vm_network: VmNetwork) -> None:
    before = vm_network.vm.tcp_counters()
    with vm_network.kernel_socket() as sock:
        sock.settimeout(60)
        sock.connect((vm_network.vm.guest_addr, SOURCE_PORT))
        sock.sendall(b"%d\n" % SIZE)
        sock.shutdown(socket.SHUT_WR)
        received = _read_all(sock)
    assert len(received) == SIZE
    assert received == pattern(SIZE)
    assert vm_network.vm.source_done() == SIZE
    vm_network.assert_no_resets(before)


def test_guest_connects_to_kernel_listener(vm_network: VmNetwork, tcpdump_available: None,
                                           tmp_path: Path) -> None:
    """The guest is the client: pattern(1 MB) up, a reply down, both checked; pcap on the TAP."""
    before = vm_network.vm.tcp_counters()
    size, reply = 1_000_000, b"reply from the namespace kernel\n" * 100
    listener = vm_network.kernel_socket()
    listener.bind((vm_network.vm.host_addr, 0))
    listener.listen(1)
    listener.settimeout(60)
    port = listener.getsockname()[1]
    capture = Capture(vm_network.ns.name, vm_network.vm.tap, tmp_path / "tap.pcap")
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received.append(_read_all(conn))
            conn.sendall(reply)

    server = threading.Thread(target=serve)
    server.start()
    try:
        vm_network.vm.start_guest_connect(vm_network.vm.host_addr, port, size)
        result = vm_network.vm.guest_connect_result()
    finally:
        server.join(timeout=60)
        listener.close()
        pcap = capture.stop()
    assert received == [pattern(size)]
    assert (result.rc, result.nbytes, result.sha256) == (0, len(reply), sha256_hex(reply))
    segments = connection_segments(read_tcp_segments(pcap), (vm_network.vm.guest_addr, 0),
                                   (vm_network.vm.host_addr, port))
    check_handshake_and_close(segments, (vm_network.vm.host_addr, port))
    vm_network.assert_no_resets(before)
