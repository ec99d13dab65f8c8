"""TUN offloads against the real kernel: virtio-net headers, checksum offload,
TSO super-segments out and GSO super-packets in -- and the same transfers
without them. Every transfer is checked byte for byte (SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

import tcpstack
from tcpstack.link import netns as ns
from tcpstack.link.tun import open_tun

from .conftest import (
    KERNEL_ADDR,
    KERNEL_ADDR6,
    Cli,
    Kernel,
    kernel_sender,
    run_async,
    sha256_of_one_connection,
)

pytestmark = pytest.mark.root

SIZE = 20 * 1024 * 1024
MTU = 1500


def _payload(size: int) -> bytes:
    return os.urandom(size)


async def _receive_all(stack: tcpstack.Stack, kernel: Kernel, port: int,
                       payload: bytes, addr: str = KERNEL_ADDR) -> bytes:
    serve = kernel_sender(kernel, port, payload, addr)
    server = asyncio.create_task(asyncio.to_thread(serve))
    reader, writer = await stack.open_connection(addr, port)
    chunks = []
    while data := await reader.read(1 << 20):
        chunks.append(data)
    writer.close()
    await writer.wait_closed()
    await server
    return b"".join(chunks)


async def _send_all(stack: tcpstack.Stack, kernel: Kernel, port: int, payload: bytes,
                    addr: str = KERNEL_ADDR) -> str:
    sock = kernel.listen(port, addr)
    got = asyncio.create_task(asyncio.to_thread(sha256_of_one_connection, sock))
    _reader, writer = await stack.open_connection(addr, port)
    view = memoryview(payload)
    for start in range(0, len(payload), 1 << 20):
        writer.write(view[start:start + (1 << 20)])
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    return await got


@pytest.mark.parametrize("addr", [KERNEL_ADDR, KERNEL_ADDR6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_20mb_each_way_byte_exact(netns_name: str, kernel: Kernel, offload: bool,
                                  addr: str) -> None:
    """Both families: TSO4/TSO6 out, GSO in, checksum offload (csum_start 20 or 40)."""
    down = _payload(SIZE)
    up = _payload(SIZE)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, offload=offload) as stack:
            link = stack.link
            assert link.offload is offload and link.tso is offload
            # Super-segments from the core either way: the TUN cuts them
            # (TSO) or, without offloads, the driver does (GSO).
            assert stack.config.tso_max > 0
            received = await _receive_all(stack, kernel, 9001, down, addr)
            assert hashlib.sha256(received).digest() == hashlib.sha256(down).digest()
            if offload:
                # The kernel hands us GSO super-packets: reads larger than the MTU.
                assert link.rx_gso_packets > 0
            else:
                assert link.rx_gso_packets == 0
                # ... and we merge what one wake-up reads (software GRO).
                assert stack.counters["gro_merged"] > 0

            writes_before = link.tx_packets
            digest = await _send_all(stack, kernel, 9002, up, addr)
            assert digest == hashlib.sha256(up).hexdigest()
            writes = link.tx_packets - writes_before
            if offload:
                # The kernel's TCP took every byte although we wrote far fewer
                # packets than MTU-sized segments would need: it accepted
                # our TSO super-segments.
                assert link.tx_gso_packets > 0
                assert writes * MTU < SIZE // 4
            else:
                assert link.tx_gso_packets == 0
                assert writes >= SIZE // MTU
                assert stack.counters["gso_segmented"] > 0

    run_async(body(), timeout=120)


def test_the_tun_queue_holds_a_whole_window(netns_name: str) -> None:
    """Without offloads a 4 MiB window is ~2900 packets: the kernel's queue
    towards us (the TUN's transmit queue) must hold them all, or a kernel
    sender faster than we read loses segments to it. (With the default 500,
    tools/bench saw 5% of a 300 MB transfer resent by the kernel; that needs
    a sender in its own process outrunning the stack for seconds, too slow
    and too machine-dependent for a test.)"""
    from pyroute2 import IPRoute

    from tcpstack.link.tun import TX_QUEUE_LENGTH

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, offload=False) as stack:
            def queue_length() -> int:
                with IPRoute(netns=netns_name) as ipr:
                    (link,) = ipr.get_links(ifname=stack.link.name)
                    return link.get_attr("IFLA_TXQLEN")

            assert await asyncio.to_thread(queue_length) == TX_QUEUE_LENGTH
            assert stack.options.recv_buffer <= TX_QUEUE_LENGTH * (MTU - 52)

    run_async(body(), timeout=30)


def test_persistent_tun_from_either_mode_works_in_the_other(netns_name: str,
                                                            kernel: Kernel) -> None:
    """A lab TUN made without IFF_VNET_HDR serves an offloading stack, and one
    left with offload features serves a stack without them (no GSO packets
    may reach a reader that has no virtio-net header)."""
    ns.create_netns(netns_name)
    payload = _payload(2 * 1024 * 1024)
    for port, made_with, used_with in ((9003, False, True), (9005, True, False)):
        lab = open_tun(netns_name, "tcps0", "10.7.0.1/24", persist=True, offload=made_with)
        assert lab.offload is made_with
        lab.close()

        async def body(port: int = port, used_with: bool = used_with) -> None:
            async with tcpstack.Stack(netns=netns_name, create_netns=False,
                                      offload=used_with) as stack:
                assert stack.link.offload is used_with
                received = await _receive_all(stack, kernel, port, payload)
                assert received == payload
                if not used_with:
                    assert stack.link.rx_gso_packets == 0

        run_async(body(), timeout=60)
    assert ns.netns_exists(netns_name)   # not the stack's: it did not create it


def _kernel_tcp_counter(kernel: Kernel, name: str) -> int:
    """A counter of the kernel's ``Tcp:`` table (/proc/net/snmp) in the namespace."""
    lines = kernel.run(["cat", "/proc/net/snmp"], capture_output=True,
                       text=True).stdout.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("Tcp:"):
            return int(dict(zip(header.split()[1:], values.split()[1:], strict=True))[name])
    raise AssertionError("no Tcp: table in /proc/net/snmp")


@pytest.mark.parametrize("addr", [KERNEL_ADDR, KERNEL_ADDR6], ids=["ipv4", "ipv6"])
def test_faults_keep_the_offloads_and_corrupted_pieces_fail_their_checksum(
        netns_name: str, kernel: Kernel, addr: str) -> None:
    """Corruption over an offloading TUN: what comes in is dropped as a failed
    checksum; what goes out is a complete packet with a real checksum and one
    bit flipped, which the kernel's TCP rejects. Both streams arrive whole."""
    down, up = _payload(1024 * 1024), _payload(1024 * 1024)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, fault="corrupt=2%,seed=5") as stack:
            assert stack.link.offload is True and stack.offload_note is None
            errors_before = _kernel_tcp_counter(kernel, "InCsumErrors")
            assert await _receive_all(stack, kernel, 9004, down, addr) == down
            digest = await _send_all(stack, kernel, 9008, up, addr)
            assert digest == hashlib.sha256(up).hexdigest()
            assert stack.counters.get("drop_bad_checksum", 0) > 0
            corrupted_out = stack.driver.link.egress.counters.corrupted
            assert corrupted_out > 0
            assert _kernel_tcp_counter(kernel, "InCsumErrors") - errors_before == corrupted_out

    run_async(body(), timeout=60)


@pytest.mark.parametrize("addr", [KERNEL_ADDR, KERNEL_ADDR6], ids=["ipv4", "ipv6"])
def test_faults_meet_every_wire_piece_of_the_offloaded_super_segments(
        netns_name: str, kernel: Kernel, addr: str) -> None:
    """1% loss with the offloads on: TSO writes out and GSO packets in, yet the
    injectors decide per wire-sized piece (a 4 MB transfer is some 2,900
    pieces, far more than the link's reads and writes), and what the losses
    broke is repaired: both directions arrive whole."""
    down, up = _payload(4 << 20), _payload(4 << 20)
    pieces = (4 << 20) // 1448

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, fault="loss=1%,seed=11") as stack:
            link = stack.link
            assert link.offload is True and stack.config.tso_max > 0
            received = await _receive_all(stack, kernel, 9005, down, addr)
            assert hashlib.sha256(received).digest() == hashlib.sha256(down).digest()
            digest = await _send_all(stack, kernel, 9006, up, addr)
            assert digest == hashlib.sha256(up).hexdigest()
            egress, ingress = stack.driver.link.egress, stack.driver.link.ingress
            assert link.tx_gso_packets > 0 and link.rx_gso_packets > 0
            assert egress.counters.packets >= pieces > 2 * link.tx_gso_packets
            assert ingress.counters.packets >= pieces > 2 * link.rx_gso_packets
            assert egress.counters.dropped > 0 and ingress.counters.dropped > 0
            assert stack.counters["retransmitted_segments"] > 0   # our losses were repaired

    run_async(body(), timeout=120)


def test_delayed_reordered_and_duplicated_pieces_over_offloads(netns_name: str,
                                                               kernel: Kernel) -> None:
    """Delay, jitter, reordering and duplication per wire piece with the offloads
    on: held pieces wait in the runtime and leave (or arrive) when due, the
    driver wakes for them; both streams arrive whole."""
    down, up = _payload(2 << 20), _payload(2 << 20)
    spec = "delay=2ms,jitter=1ms,reorder=2%,dup=1%,seed=3"

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, fault=spec) as stack:
            assert stack.link.offload is True
            assert await _receive_all(stack, kernel, 9009, down) == down
            assert await _send_all(stack, kernel, 9010, up) == hashlib.sha256(up).hexdigest()
            for injector in (stack.driver.link.egress, stack.driver.link.ingress):
                counters = injector.counters
                assert counters.reordered > 0 and counters.duplicated > 0
                assert counters.delayed == counters.packets        # every piece waited
            assert stack.link.tx_gso_packets > 0 and stack.link.rx_gso_packets > 0
            wire = stack.driver._wire_faults
            assert wire is not None
            await asyncio.sleep(0.05)          # past any piece's delay (at most ~5 ms)
            assert wire.held() == 0            # the driver woke for every held piece

    run_async(body(), timeout=120)


def test_faults_with_a_capture_run_on_wire_sized_packets(netns_name: str, kernel: Kernel,
                                                         tmp_path: object) -> None:
    """With a capture the offloads are off, so the capture shows every wire
    segment the faults met; the core still makes super-segments, the driver
    cuts them (GSO) before the injector and merges what survives after it
    (GRO): every packet the injector sees is wire-sized."""
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    down, up = _payload(4 << 20), _payload(4 << 20)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, fault="loss=1%,seed=11",
                                  pcap=str(tmp_path / "faults.pcap")) as stack:
            assert stack.link.offload is False
            assert "capture" in (stack.offload_note or "")
            seen: list[int] = []
            stack.driver.link.observer = lambda way, packet, now, out: seen.append(len(packet))
            assert stack.config.tso_max > 0
            received = await _receive_all(stack, kernel, 9005, down)
            assert hashlib.sha256(received).digest() == hashlib.sha256(down).digest()
            assert await _send_all(stack, kernel, 9006, up) == hashlib.sha256(up).hexdigest()
            counters = stack.counters
            assert counters["gso_segmented"] > 0 and counters["gro_merged"] > 0
            assert counters["retransmitted_segments"] > 0       # our losses were repaired
            assert seen and max(seen) <= MTU
            injectors = (stack.driver.link.egress, stack.driver.link.ingress)
            assert all(injector.counters.dropped > 0 for injector in injectors)

    run_async(body(), timeout=120)


def test_cli_no_offload_and_stats_report_the_mode(cli: Cli, kernel: Kernel) -> None:
    for extra, expected in (((), b"tcpstack offloads: on"),
                            (("--no-offload",), b"tcpstack offloads: off")):
        listen = cli.listen("7", "--echo", "--once", "--stats", *extra)
        result = kernel.run(["nc", "-N", "10.7.0.2", "7"], input=b"offload?",
                            capture_output=True)
        assert result.stdout == b"offload?"
        _out, err = listen.communicate(timeout=30)
        assert listen.returncode == 0, err.decode()
        assert expected in err, err.decode()


def test_kernel_refusing_offloads_falls_back_to_plain_packets(
        netns_name: str, kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without TUNSETOFFLOAD support (simulated: that one ioctl
    fails with EINVAL): the device is reopened plainly and says why."""
    import errno
    import fcntl

    from tcpstack.link import tun

    real_ioctl = fcntl.ioctl

    def ioctl(fd: int, request: int, arg: object = 0, *rest: object) -> object:
        if request == tun.TUNSETOFFLOAD and arg:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_ioctl(fd, request, arg, *rest)

    monkeypatch.setattr(tun.fcntl, "ioctl", ioctl)
    payload = _payload(1024 * 1024)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            assert stack.link.offload is False and stack.link.tso is False
            assert "refused" in (stack.offload_note or "")
            assert await _receive_all(stack, kernel, 9006, payload) == payload
            assert stack.link.rx_gso_packets == 0
            digest = await _send_all(stack, kernel, 9007, payload)
            assert digest == hashlib.sha256(payload).hexdigest()
            assert stack.link.tx_gso_packets == 0     # cut in software instead

    run_async(body(), timeout=60)
