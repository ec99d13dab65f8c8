"""The stream reader's direct path against the real kernel, with and without
offloads: ``read(n)`` and ``readinto()`` take bytes straight from the
connection, ``readline``/``readexactly``/``readuntil`` through the reader's
own buffer; mixing them keeps every byte, in order, exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest

import tcpstack

from .conftest import KERNEL_ADDR, Kernel, kernel_sender, run_async

pytestmark = pytest.mark.root

BULK = 6 * 1024 * 1024


def _stream() -> bytes:
    """Lines, a length-prefixed block, then bulk: every reading method gets a turn."""
    block = os.urandom(300_000)
    bulk = os.urandom(BULK)
    return (b"HELLO tcpstack\r\n" + b"x" * 70_000 + b"\n" + len(block).to_bytes(4, "big")
            + block + b"END;" + bulk)


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_mixed_reads_keep_every_byte_in_order(netns_name: str, kernel: Kernel,
                                              offload: bool) -> None:
    payload = _stream()

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name, offload=offload) as stack:
            server = asyncio.ensure_future(asyncio.to_thread(kernel_sender(kernel, 9101, payload)))
            reader, writer = await stack.open_connection(KERNEL_ADDR, 9101,
                                                         limit=128 * 1024)
            got = bytearray()
            got += await reader.readline()
            got += await reader.readline()                  # longer than asyncio's 64 KiB
            size = await reader.readexactly(4)
            got += size
            got += await reader.readexactly(int.from_bytes(size, "big"))
            got += await reader.readuntil(b";")
            got += await reader.read(10)                    # whatever the buffer still has
            buffer = bytearray(1 << 20)
            view = memoryview(buffer)
            while len(got) < len(payload) // 2:
                n = await reader.readinto(view[:len(payload) // 2 - len(got)])
                assert n > 0
                got += view[:n]
            got += await reader.read()                      # to EOF
            assert await reader.read(100) == b""
            assert await reader.readinto(view) == 0
            assert reader.at_eof()
            writer.close()
            await writer.wait_closed()
            await server
            assert len(got) == len(payload)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            # The only discards allowed are answered zero-window probes: the kernel
            # probes a closed window with SEQ=SND.UNA-1, unacceptable by design.
            assert {k for k in stack.counters if k.startswith("drop_")} <= {"drop_unacceptable_seq"}

    run_async(body(), timeout=60)


def test_readinto_waits_and_reports_eof_after_the_last_byte(netns_name: str,
                                                            kernel: Kernel) -> None:
    """A reader blocked in ``readinto`` wakes for data arriving later and for the FIN."""
    def serve(sock: socket.socket, go: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(b"first")
            asyncio.run_coroutine_threadsafe(go.wait(), loop).result(10)
            conn.sendall(b"second")
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            go = asyncio.Event()
            server = asyncio.ensure_future(asyncio.to_thread(
                serve, kernel.listen(9102), go, asyncio.get_running_loop()))
            reader, writer = await stack.open_connection(KERNEL_ADDR, 9102)
            buffer = bytearray(64)
            n = await reader.readinto(buffer)
            assert bytes(buffer[:n]) == b"first"
            waiting = asyncio.ensure_future(reader.readinto(buffer))
            await asyncio.sleep(0.05)
            assert not waiting.done()                       # nothing to read: it waits
            go.set()
            n = await asyncio.wait_for(waiting, 10)
            assert bytes(buffer[:n]) == b"second"
            assert await asyncio.wait_for(reader.readinto(buffer), 10) == 0
            writer.close()
            await writer.wait_closed()
            await server

    run_async(body(), timeout=30)
