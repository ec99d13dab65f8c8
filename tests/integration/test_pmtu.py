"""Path MTU on real parts: tcpstack's TUN -> a Linux router -> a 1200-byte link ->
a Linux router -> a kernel peer, in namespaces (``tcpstack.link.path``).

Plain Linux forwarding makes the ICMP "fragmentation needed" (RFC 1191 §4);
tcpstack must lower its segment size and move 5 MB byte-exact each way. The
time taken is printed (``-s`` shows it); speed targets live in benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import tcpstack
from tcpstack.link.netns import write_sysctl as _write_sysctl
from tcpstack.link.path import PEER_ADDR, STACK_ADDR, TUN_ADDR, TUN_NAME, NarrowPath

from .conftest import run_async

pytestmark = pytest.mark.root

SIZE = 5_000_000
PORT = 5001


@pytest.fixture
def path() -> Iterator[NarrowPath]:
    with NarrowPath(far_mtu=1200) as p:
        yield p


def stack_on(path: NarrowPath, **kw) -> tcpstack.Stack:
    return tcpstack.Stack(netns=path.router, tun=TUN_NAME, addr=STACK_ADDR,
                          tun_addr=f"{TUN_ADDR}/24", create_netns=False, **kw)


def peer_sink(path: NarrowPath) -> tuple[threading.Thread, dict]:
    """A kernel listener in the peer's namespace that reads to EOF and hashes."""
    server = path.in_peer(socket.create_server, (PEER_ADDR, PORT))
    server.settimeout(30)
    result: dict = {}

    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(60)
                digest, total = hashlib.sha256(), 0
                while data := conn.recv(1 << 16):
                    digest.update(data)
                    total += len(data)
                result.update(sha=digest.hexdigest(), size=total)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def peer_source(path: NarrowPath, payload: bytes) -> threading.Thread:
    """A kernel listener in the peer's namespace that sends ``payload`` and FIN."""
    server = path.in_peer(socket.create_server, (PEER_ADDR, PORT))
    server.settimeout(30)

    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(30)
                conn.recv(1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("offload", [True, False], ids=["tso", "software-gso"])
def test_frag_needed_lowers_the_segment_size_tcpstack_sending(path: NarrowPath,
                                                              offload: bool) -> None:
    payload = os.urandom(SIZE)
    thread, result = peer_sink(path)

    async def body() -> dict:
        async with stack_on(path, offload=offload) as stack:
            _reader, writer = await tcpstack.open_connection(PEER_ADDR, PORT)
            started = time.monotonic()
            writer.write(payload)
            await writer.drain()
            info = writer.get_extra_info("tcpstack")
            writer.close()
            await writer.wait_closed()            # every byte ACKed
            print(f"\n5 MB tcpstack -> kernel through a 1200-byte link: "
                  f"{time.monotonic() - started:.2f} s, mss {info['mss']}")
            return {"mss": info["mss"], "counters": dict(stack.counters)}

    got = run_async(body(), timeout=60)
    thread.join(30)
    assert result == {"sha": hashlib.sha256(payload).hexdigest(), "size": SIZE}
    assert got["mss"] == 1200 - 40 - 12                  # timestamps on every segment
    counters = got["counters"]
    assert counters["icmp_packet_too_big"] >= 1
    assert counters["pmtu_lowered"] == 1
    # What was in flight went again at once at the new size: no timeout needed.
    assert counters.get("timer_retransmit", 0) == 0


def test_kernel_sending_through_the_same_path(path: NarrowPath) -> None:
    _kernel_sends(path, "link")


def _kernel_sends(path: NarrowPath, what: str) -> None:
    """5 MB from the kernel peer to tcpstack through ``path``, byte-exact."""
    payload = os.urandom(SIZE)
    thread = peer_source(path, payload)

    async def body() -> bytes:
        async with stack_on(path):
            reader, writer = await tcpstack.open_connection(PEER_ADDR, PORT)
            started = time.monotonic()
            chunks = []
            while chunk := await reader.read(1 << 16):
                chunks.append(chunk)
            print(f"\n5 MB kernel -> tcpstack through a 1200-byte {what}: "
                  f"{time.monotonic() - started:.2f} s")
            writer.close()
            await writer.wait_closed()
            return b"".join(chunks)

    data = run_async(body(), timeout=60)
    thread.join(30)
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()


# -- a PMTU black hole: the routers' ICMP is dropped (RFC 2923 §2.1) ------------------

@pytest.mark.parametrize("offload", [True, False], ids=["tso", "software-gso"])
def test_black_hole_found_and_worked_around_tcpstack_sending(path: NarrowPath,
                                                             offload: bool) -> None:
    path.black_hole()
    payload = os.urandom(SIZE)
    thread, result = peer_sink(path)

    async def body() -> dict:
        async with stack_on(path, offload=offload) as stack:
            _reader, writer = await tcpstack.open_connection(PEER_ADDR, PORT)
            started = time.monotonic()
            writer.write(payload)
            await writer.drain()
            writer.close()
            await writer.wait_closed()            # every byte ACKed
            info = writer.get_extra_info("tcpstack")
            print(f"\n5 MB tcpstack -> kernel through a 1200-byte black hole: "
                  f"{time.monotonic() - started:.2f} s, mss {info['mss']}")
            return {"mss": info["mss"], "counters": dict(stack.counters)}

    got = run_async(body(), timeout=60)
    thread.join(30)
    assert result == {"sha": hashlib.sha256(payload).hexdigest(), "size": SIZE}
    counters = got["counters"]
    print({k: v for k, v in counters.items() if k.startswith(("mtu_", "pmtu_", "icmp"))})
    assert path.black_hole_drops() >= 1               # the router did try to tell us
    assert "icmp_errors_in" not in counters           # ... and nothing arrived
    assert counters["mtu_blackhole_detected"] == 1
    # Probing upward found what the path carries: above base_mss, at most 1200.
    assert counters["mtu_probes_acked"] >= 1
    assert 1024 < got["mss"] <= 1200 - 40 - 12


def test_black_hole_kernel_sending(path: NarrowPath) -> None:
    """Linux finds the black hole too, with tcp_mtu_probing=1 (its default is 0)."""
    path.black_hole()
    path.in_peer(_write_sysctl, "ipv4/tcp_mtu_probing", "1")
    _kernel_sends(path, "black hole")
