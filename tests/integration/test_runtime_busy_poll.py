"""Busy polling (``Stack(busy_poll=...)``) over a real TUN: a read that would
wait spins on the link and takes the response in without handing control
back to the event loop; off by default, where the read waits on the loop."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading

import pytest

import tcpstack

from .conftest import KERNEL_ADDR, Kernel, run_async

pytestmark = pytest.mark.root

PORT = 9310


def echo_thread(server: socket.socket) -> threading.Thread:
    """A kernel echo server for one connection, on a thread of its own (it
    must answer while the event loop's thread spins)."""
    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


async def round_trips(stack: tcpstack.Stack, count: int) -> list[bool]:
    """Echo ``count`` requests; for each, whether the loop ran a callback
    scheduled just before the read (i.e. whether the read yielded to it)."""
    reader, writer = await stack.open_connection(KERNEL_ADDR, PORT, nodelay=True)
    loop = asyncio.get_running_loop()
    yielded = []
    for i in range(count):
        ran: list[int] = []
        writer.write(b"%03d" % (i % 1000))
        loop.call_soon(ran.append, 1)
        assert await reader.readexactly(3) == b"%03d" % (i % 1000)
        yielded.append(bool(ran))
    writer.close()
    await writer.wait_closed()
    return yielded


def test_a_busy_polling_read_takes_the_response_without_yielding(
        netns_name: str, kernel: Kernel) -> None:
    async def body() -> list[bool]:
        # A generous bound: the echo answers in microseconds; the test checks
        # where the response was taken in, not how fast.
        async with tcpstack.Stack(netns=netns_name, busy_poll=5.0) as stack:
            thread = echo_thread(kernel.listen(PORT))
            yielded = await round_trips(stack, 20)
            await asyncio.to_thread(thread.join, 10)
            return yielded

    yielded = run_async(body())
    # The first read spins and is answered; later ones too, except that once
    # the loop has not run for BUSY_POLL_YIELD a read waits on it -- never
    # two in a row, since the loop then runs again.
    assert not yielded[0], yielded
    assert not any(a and b for a, b in itertools.pairwise(yielded)), yielded


def test_other_tasks_run_while_a_reader_busy_polls(netns_name: str, kernel: Kernel) -> None:
    async def body() -> tuple[int, list[bool]]:
        async with tcpstack.Stack(netns=netns_name, busy_poll=5.0) as stack:
            thread = echo_thread(kernel.listen(PORT))
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            before = ticks
            yielded = await round_trips(stack, 300)
            ran = ticks - before
            task.cancel()
            await asyncio.to_thread(thread.join, 10)
            return ran, yielded

    ran, yielded = run_async(body())
    # 300 round trips take well over BUSY_POLL_YIELD (1 ms) whatever the
    # machine: the loop got turns in between, and the ticker ran in them.
    assert yielded.count(True) >= 1 and ran >= yielded.count(True), (ran, yielded)


def test_without_busy_polling_a_read_waits_on_the_loop(netns_name: str,
                                                        kernel: Kernel) -> None:
    async def body() -> list[bool]:
        async with tcpstack.Stack(netns=netns_name) as stack:
            assert stack.busy_poll == 0.0
            thread = echo_thread(kernel.listen(PORT))
            yielded = await round_trips(stack, 20)
            await asyncio.to_thread(thread.join, 10)
            return yielded

    assert all(run_async(body()))


def test_busy_poll_must_not_be_negative() -> None:
    with pytest.raises(tcpstack.errors.UsageError):
        tcpstack.Stack(busy_poll=-1.0)
