"""tcpstack against the Linux kernel over a real TUN: both directions, Python
sockets and real programs (nc, http.server, curl), in-process asyncio."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import threading

import pytest

import tcpstack
from tcpstack.core.state import State

from .conftest import (
    KERNEL_ADDR,
    STACK_ADDR,
    Kernel,
    echo_handler,
    kernel_echo_client,
    run_async,
)

pytestmark = pytest.mark.root

BIG = 20 * 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_kernel_client_handshake_and_echo(netns_name: str, kernel: Kernel) -> None:
    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            await tcpstack.start_server(echo_handler, 7)
            sock = await asyncio.to_thread(kernel.connect, 7)
            info = stack.connections_info()
            assert [i["state"] for i in info] == ["ESTABLISHED"]
            assert info[0]["remote"] == (KERNEL_ADDR, sock.getsockname()[1])
            await asyncio.to_thread(sock.sendall, b"hello tcpstack")
            assert await asyncio.to_thread(sock.recv, 100) == b"hello tcpstack"
            sock.close()

    run_async(body())


def test_nc_client_against_stack_server(netns_name: str, kernel: Kernel) -> None:
    payload = os.urandom(300_000)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            await tcpstack.start_server(echo_handler, 7)
            result = await asyncio.to_thread(kernel.run, ["nc", "-N", STACK_ADDR, "7"],
                                             input=payload, capture_output=True)
            assert result.returncode == 0, result.stderr
            assert result.stdout == payload

    run_async(body())


def test_stack_client_against_nc_server(netns_name: str, kernel: Kernel) -> None:
    to_kernel = os.urandom(200_000)
    from_kernel = os.urandom(150_000)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            server = kernel.popen(["nc", "-N", "-l", KERNEL_ADDR, "9000"],
                                  stdin=-1, stdout=-1, stderr=-1)
            reader, writer = await _connect_retry(KERNEL_ADDR, 9000)
            feeder = asyncio.create_task(asyncio.to_thread(server.communicate, from_kernel, 30))
            # nc stops reading once its own input is done and the network says
            # EOF, so take its data first, then send ours and FIN (half-close).
            got = await reader.read()
            writer.write(to_kernel)
            writer.write_eof()
            out, _err = await feeder
            await writer.wait_closed()
            assert got == from_kernel
            assert out == to_kernel

    run_async(body())


async def _connect_retry(host: str, port: int, attempts: int = 50):
    """The kernel-side server may need a moment to start listening."""
    for _ in range(attempts - 1):
        try:
            return await tcpstack.open_connection(host, port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
    return await tcpstack.open_connection(host, port)


def test_20mb_each_way_kernel_client(netns_name: str, kernel: Kernel) -> None:
    payload = os.urandom(BIG)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            await tcpstack.start_server(echo_handler, 7)
            echoed = await asyncio.to_thread(kernel_echo_client, kernel, 7, payload)
            assert len(echoed) == len(payload)
            assert sha(echoed) == sha(payload)

    run_async(body(), timeout=120)


@pytest.mark.parametrize("cc", ["reno", "cubic", "bbr"])
def test_congestion_control_selectable_per_connection(netns_name: str, kernel: Kernel,
                                                      cc: str) -> None:
    """``cc=`` picks the controller of each connection; both carry data intact."""
    payload = os.urandom(2_000_000)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, fault="loss=1%,seed=3") as stack:
            await tcpstack.start_server(echo_handler, 7, cc=cc)
            sock = await asyncio.to_thread(kernel.connect, 7)
            [conn] = stack.connections()
            assert conn.cc.name == cc
            sock.close()
            echoed = await asyncio.to_thread(kernel_echo_client, kernel, 7, payload)
            assert sha(echoed) == sha(payload)
            with pytest.raises(tcpstack.errors.UsageError):
                await tcpstack.open_connection(KERNEL_ADDR, 9, cc="vegas")

    run_async(body(), timeout=120)


def test_20mb_each_way_stack_client(netns_name: str, kernel: Kernel) -> None:
    payload = os.urandom(BIG)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            listener = kernel.listen(9000)

            def kernel_echo() -> None:
                conn, _ = listener.accept()
                with conn:
                    while data := conn.recv(1 << 16):
                        conn.sendall(data)

            server = asyncio.create_task(asyncio.to_thread(kernel_echo))
            reader, writer = await tcpstack.open_connection(KERNEL_ADDR, 9000)

            async def send() -> None:
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sending = asyncio.create_task(send())
            digest = hashlib.sha256()
            total = 0
            while data := await reader.read(1 << 16):
                digest.update(data)
                total += len(data)
            await sending
            writer.close()
            await writer.wait_closed()
            await server
            assert total == len(payload)
            assert digest.hexdigest() == sha(payload)

    run_async(body(), timeout=120)


def test_half_close_kernel_first(netns_name: str, kernel: Kernel) -> None:
    """The kernel shuts down its sending side; tcpstack reads EOF and keeps sending."""
    reply = os.urandom(500_000)

    async def handler(reader: asyncio.StreamReader, writer) -> None:
        request = await reader.read()           # to the kernel's FIN
        assert request == b"request"
        assert writer.connection.state is State.CLOSE_WAIT
        writer.write(reply)                     # sending after the peer's FIN
        writer.close()
        await writer.wait_closed()

    def client() -> bytes:
        sock = kernel.connect(7)
        sock.sendall(b"request")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(1 << 16):
            chunks.append(data)
        sock.close()
        return b"".join(chunks)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            await tcpstack.start_server(handler, 7)
            assert await asyncio.to_thread(client) == reply

    run_async(body())


def test_half_close_stack_first(netns_name: str, kernel: Kernel) -> None:
    """tcpstack shuts down its sending side; the kernel reads EOF and keeps sending."""
    reply = os.urandom(500_000)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            listener = kernel.listen(9000)

            def server() -> bytes:
                conn, _ = listener.accept()
                with conn:
                    chunks = []
                    while data := conn.recv(1 << 16):
                        chunks.append(data)
                    conn.sendall(reply)
                return b"".join(chunks)

            serving = asyncio.create_task(asyncio.to_thread(server))
            reader, writer = await tcpstack.open_connection(KERNEL_ADDR, 9000)
            writer.write(b"request")
            writer.write_eof()
            got = await reader.read()
            assert await serving == b"request"
            assert got == reply
            assert writer.connection.state in (State.TIME_WAIT, State.CLOSED)

    run_async(body())


def test_closed_port_gets_rst(netns_name: str, kernel: Kernel) -> None:
    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.to_thread(kernel.connect, 4444)
            assert stack.counters.get("segments_in", 0) >= 1
            # and the other way round: the kernel refuses us
            with pytest.raises(ConnectionRefusedError):
                await tcpstack.open_connection(KERNEL_ADDR, 4444)

    run_async(body())


def test_kernel_reset_mid_transfer(netns_name: str, kernel: Kernel) -> None:
    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            listener = kernel.listen(9000)

            def server() -> None:
                conn, _ = listener.accept()
                conn.recv(100_000)
                # SO_LINGER 0: close() sends RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

            serving = asyncio.create_task(asyncio.to_thread(server))
            reader, writer = await tcpstack.open_connection(KERNEL_ADDR, 9000)
            chunk = os.urandom(65536)
            with pytest.raises(ConnectionResetError):
                for _ in range(2000):
                    writer.write(chunk)
                    await writer.drain()
            await serving
            with pytest.raises(ConnectionResetError):
                await reader.read()

    run_async(body())


def test_http_server_fetched_by_stack_client(netns_name: str, kernel: Kernel,
                                             tmp_path) -> None:
    page = os.urandom(100_000)
    (tmp_path / "blob.bin").write_bytes(page)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            kernel.popen(["python3", "-m", "http.server", "--bind", KERNEL_ADDR,
                          "--directory", str(tmp_path), "8000"], stdout=-3, stderr=-3)
            reader, writer = await _connect_retry(KERNEL_ADDR, 8000, attempts=100)
            writer.write(b"GET /blob.bin HTTP/1.0\r\nHost: test\r\n\r\n")
            await writer.drain()
            response = await reader.read()
            writer.close()
            await writer.wait_closed()
            head, _, content = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200")
            assert content == page

    run_async(body())


def test_curl_fetches_from_stack_server(netns_name: str, kernel: Kernel) -> None:
    body_bytes = b"hello from tcpstack\n" * 1000

    async def http_handler(reader: asyncio.StreamReader, writer) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        assert request.startswith(b"GET /index.txt HTTP/1.1")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body_bytes))
        writer.write(body_bytes)
        writer.close()
        await writer.wait_closed()

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            await tcpstack.start_server(http_handler, 8080)
            result = await asyncio.to_thread(
                kernel.run, ["curl", "-sS", "--max-time", "10",
                             f"http://{STACK_ADDR}:8080/index.txt"], capture_output=True)
            assert result.returncode == 0, result.stderr
            assert result.stdout == body_bytes

    run_async(body())


def test_time_wait_on_both_sides(netns_name: str, kernel: Kernel) -> None:
    async def passive_closer(reader: asyncio.StreamReader, writer) -> None:
        await reader.read()                      # the kernel closes first
        writer.close()
        await writer.wait_closed()

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, msl=2.0) as stack:
            # tcpstack closes first -> TIME-WAIT on tcpstack's side
            listener = kernel.listen(9000)

            def server() -> None:
                conn, _ = listener.accept()
                with conn:
                    while conn.recv(4096):
                        pass

            serving = asyncio.create_task(asyncio.to_thread(server))
            _reader, writer = await tcpstack.open_connection(KERNEL_ADDR, 9000)
            writer.close()
            await writer.wait_closed()
            await serving
            for _ in range(100):
                if writer.connection.state is State.TIME_WAIT:
                    break
                await asyncio.sleep(0.01)
            states = [i["state"] for i in stack.connections_info()]
            assert states == ["TIME-WAIT"]

            # the kernel closes first, tcpstack closes passively -> kernel TIME-WAIT
            await tcpstack.start_server(passive_closer, 7)
            sock = await asyncio.to_thread(kernel.connect, 7)
            port = sock.getsockname()[1]
            sock.shutdown(socket.SHUT_WR)
            assert await asyncio.to_thread(sock.recv, 10) == b""
            sock.close()
            await asyncio.sleep(0.1)
            lines = [ln for ln in kernel.ss().splitlines() if f"{KERNEL_ADDR}:{port}" in ln]
            assert lines and lines[0].split()[0] == "TIME-WAIT", kernel.ss()

    run_async(body())


def test_1000_sequential_connections_do_not_leak(netns_name: str, kernel: Kernel) -> None:
    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            listener = kernel.listen(9000)
            listener.settimeout(0.2)
            stop = threading.Event()

            def server() -> int:
                served = 0
                while not stop.is_set():
                    try:
                        conn, _ = listener.accept()
                    except TimeoutError:
                        continue
                    with conn:
                        conn.sendall(conn.recv(64))
                    served += 1
                return served

            serving = asyncio.create_task(asyncio.to_thread(server))
            for i in range(1000):
                reader, writer = await tcpstack.open_connection(KERNEL_ADDR, 9000)
                message = b"cycle %d" % i
                writer.write(message)
                assert await reader.read() == message
                writer.close()
                await writer.wait_closed()
            stop.set()
            assert await serving == 1000
            states = {i["state"] for i in stack.connections_info()}
            assert states <= {"TIME-WAIT"}
            assert stack.driver is not None
            assert stack.driver._watchers == {}  # the runtime holds nothing either

    run_async(body(), timeout=120)


def test_keepalive_probes_on_the_wire(netns_name: str, kernel: Kernel, tmp_path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    pcap = tmp_path / "keepalive.pcap"

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, pcap=str(pcap)) as stack:
            listener = kernel.listen(9000)
            accepted = asyncio.create_task(asyncio.to_thread(listener.accept))
            _reader, writer = await tcpstack.open_connection(KERNEL_ADDR, 9000,
                                                             keepalive=(0.3, 0.2, 3))
            conn, _ = await accepted
            kernel.sockets.append(conn)
            await asyncio.sleep(1.2)            # idle: probes, each answered
            assert writer.connection.state is State.ESTABLISHED
            assert stack.counters["keepalive_probes"] >= 2
            writer.close()
            await writer.wait_closed()

    run_async(body())
    packets = [p for p in rdpcap(str(pcap)) if p.haslayer(TCP)]
    ours = [p for p in packets if p[IP].src == STACK_ADDR]
    syn = next(p for p in ours if p[TCP].flags.S)
    # A keepalive probe: empty (or one garbage byte) ACK with SEG.SEQ = SND.NXT - 1
    # (RFC 1122 4.2.3.6); the kernel answers each with an ACK.
    probe_seq = (syn[TCP].seq + 1 - 1) & 0xFFFFFFFF
    probes = [p for p in ours if p[TCP].flags == "A" and p[TCP].seq == probe_seq
              and len(p[TCP].payload) <= 1]
    assert len(probes) >= 2, [p.summary() for p in ours]
    replies = [p for p in packets if p[IP].src == KERNEL_ADDR and p[TCP].flags == "A"]
    assert len(replies) >= len(probes) - 1   # the last may cross our close


def test_slow_reader_backpressure_through_the_window(netns_name: str, kernel: Kernel) -> None:
    """A reader that does not read closes the window; nothing is lost or dropped."""
    payload = os.urandom(3 * 1024 * 1024)
    start_reading = asyncio.Event()
    digest = hashlib.sha256()
    received = 0

    async def slow(reader: asyncio.StreamReader, writer) -> None:
        nonlocal received
        await start_reading.wait()
        while data := await reader.read(4096):
            digest.update(data)
            received += len(data)
            if received % (256 * 1024) < 4096:
                await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()

    def client() -> None:
        sock = kernel.connect(7)
        sock.settimeout(30)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
        sock.close()

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            await tcpstack.start_server(slow, 7, recv_buffer=256 * 1024)
            sending = asyncio.create_task(asyncio.to_thread(client))
            for _ in range(300):
                info = stack.connections_info()
                if info and info[0]["rcv_wnd"] == 0:
                    break
                await asyncio.sleep(0.01)
            (info,) = stack.connections_info()
            assert info["rcv_wnd"] == 0                    # the window closed...
            assert info["recv_queue"] <= 256 * 1024        # ...at the buffer size
            assert not sending.done()                      # the kernel is held back
            start_reading.set()
            await sending
            assert received == len(payload)
            assert digest.hexdigest() == sha(payload)
            # The only discards allowed are answered zero-window probes: the kernel
            # probes a closed window with SEQ=SND.UNA-1, unacceptable by design.
            assert {k for k in stack.counters if k.startswith("drop_")} <= {"drop_unacceptable_seq"}

    run_async(body())


def test_connect_to_silent_address_times_out(netns_name: str) -> None:
    """Nobody answers at 10.7.0.9 (the kernel does not forward): SYN retries run out."""
    from tcpstack.core.config import StackConfig

    config = StackConfig(syn_retries=2, initial_rto=0.1)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, config=config) as stack:
            with pytest.raises(TimeoutError) as caught:
                await tcpstack.open_connection("10.7.0.9", 80)
            assert isinstance(caught.value, ConnectionError)
            assert stack.connections_info() == []

    run_async(body())
