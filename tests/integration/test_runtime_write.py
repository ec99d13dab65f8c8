"""The runtime's write path over a real TUN: what an application writes leaves
at once, before the writer awaits anything (as a socket's send would), and
the runtime's passes still see every change."""

from __future__ import annotations

import asyncio

import pytest

import tcpstack

from .conftest import KERNEL_ADDR, Kernel, run_async

pytestmark = pytest.mark.root

PORT = 9300


def test_a_write_is_on_the_link_before_the_writer_awaits(netns_name: str,
                                                         kernel: Kernel) -> None:
    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            server = kernel.listen(PORT)
            reader, writer = await stack.open_connection(KERNEL_ADDR, PORT, nodelay=True)
            peer, _ = await asyncio.to_thread(server.accept)
            for i in range(20):
                sent = stack.counters["link_tx_packets"]
                writer.write(b"%02d" % i)             # no await in between
                assert stack.counters["link_tx_packets"] == sent + 1
                assert await asyncio.to_thread(peer.recv, 10) == b"%02d" % i
                await asyncio.to_thread(peer.sendall, b"ok")
                assert await reader.readexactly(2) == b"ok"
            sent = stack.counters["link_tx_packets"]
            writer.writelines([b"a", b"b", b"c"])
            assert stack.counters["link_tx_packets"] > sent
            got = b""
            while len(got) < 3:
                got += await asyncio.to_thread(peer.recv, 10)
            assert got == b"abc"
            peer.close()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()

    run_async(body())
