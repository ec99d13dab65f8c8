"""Scenarios on real packets: tcpstack over a TUN device, a Linux kernel socket as the peer.

Each scenario is an ``async`` function of a ``KernelLab``: a running
``tcpstack.Stack`` in a private namespace plus helpers that open kernel
sockets in that namespace. tcpstack's side is traced (exact states and
timers); the kernel's states are inferred from the segments.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tcpstack.core.state import State
from tcpstack.link import netns as ns

PORT = 7
CLOSED_PORT = 9
WAIT = 5.0                   # no scenario step waits longer than this
SETTLE = 0.02                # pause after the kernel's connect() returns


class KernelLab:
    """The stack, the kernel's address and a way to run kernel sockets in the namespace."""

    def __init__(self, stack: Any, netns: str, kernel_addr: str, events: list[Any]) -> None:
        self.stack = stack
        self.netns = netns
        self.kernel_addr = kernel_addr          # its family is the scenario's
        self.events = events
        self.cut: int | None = None
        self.family = socket.AF_INET6 if ":" in kernel_addr else socket.AF_INET

    @property
    def addr(self) -> str:
        """tcpstack's address of the kernel address's family."""
        ipv6 = self.family == socket.AF_INET6
        return next(a for a in self.stack.addrs if (":" in a) == ipv6)

    def snapshot(self) -> None:
        """The diagram ends here: what follows (cleanup) is not drawn."""
        self.cut = len(self.events)

    def kernel_socket(self, *args: Any, **kwargs: Any) -> socket.socket:
        """A kernel socket created inside the namespace (blocking: call from a thread)."""
        return ns.run_in_netns(self.netns, socket.socket, *args, **kwargs)

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.wait_for(asyncio.to_thread(fn), WAIT)

    def connect(self, port: int = PORT) -> socket.socket:
        """A kernel socket connected to tcpstack (blocking: call from a thread).

        It pauses briefly once connected so the handshake and the first data
        are drawn apart (and tcpstack's server has its handler running).
        """
        sock = ns.run_in_netns(self.netns, socket.create_connection, (self.addr, port), WAIT)
        time.sleep(SETTLE)
        return sock

    async def until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the scenario did not reach its end in time")
            await asyncio.sleep(0.01)

    def all_closed(self) -> bool:
        return all(c.state is State.CLOSED for c in self.stack.connections())

    def states(self) -> list[State]:
        return [c.state for c in self.stack.connections()]


def _recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


async def demo(lab: KernelLab) -> None:
    """The kernel connects, each side sends a line, the kernel closes first."""
    done = asyncio.Event()

    async def handler(reader: Any, writer: Any) -> None:
        await reader.readline()
        writer.write(b"hello, kernel\n")
        await writer.drain()
        await reader.read()                   # until the kernel's FIN
        writer.close()
        await writer.wait_closed()
        done.set()

    await lab.stack.start_server(handler, PORT)

    def kernel() -> None:
        with lab.connect() as sock:
            sock.sendall(b"hello, tcpstack\n")
            sock.recv(100)
        # close(): the kernel's FIN; its TIME-WAIT stays in the kernel.

    await lab.in_thread(kernel)
    await asyncio.wait_for(done.wait(), WAIT)
    await lab.until(lab.all_closed)
    await asyncio.sleep(0.05)
    lab.snapshot()


async def handshake(lab: KernelLab) -> None:
    await lab.stack.start_server(lambda r, w: asyncio.sleep(WAIT), PORT)
    sock = await lab.in_thread(lab.connect)
    await lab.until(lambda: State.ESTABLISHED in lab.states())
    await asyncio.sleep(0.05)
    lab.snapshot()
    sock.close()


async def data(lab: KernelLab) -> None:
    async def echo(reader: Any, writer: Any) -> None:
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        await reader.read()

    await lab.stack.start_server(echo, PORT)

    def kernel() -> socket.socket:
        sock = lab.connect()
        sock.sendall(b"hello, tcpstack\n")
        sock.recv(100)
        return sock

    sock = await lab.in_thread(kernel)
    await asyncio.sleep(0.1)
    lab.snapshot()
    sock.close()


async def active_close(lab: KernelLab) -> None:
    """tcpstack closes first and goes through TIME-WAIT (2 MSL = 2 s here)."""
    async def handler(reader: Any, writer: Any) -> None:
        await reader.readline()
        writer.write(b"bye\n")
        writer.close()

    await lab.stack.start_server(handler, PORT)

    def kernel() -> None:
        with lab.connect() as sock:
            sock.sendall(b"hello\n")
            _recv_all(sock)                   # until tcpstack's FIN, then close

    await lab.in_thread(kernel)
    await lab.until(lab.all_closed)
    await asyncio.sleep(0.05)
    lab.snapshot()


async def passive_close(lab: KernelLab) -> None:
    """The kernel closes first; tcpstack sits in CLOSE-WAIT until its application closes."""
    done = asyncio.Event()

    async def handler(reader: Any, writer: Any) -> None:
        await reader.read()                   # until the kernel's FIN
        await asyncio.sleep(0.3)              # the application takes its time
        writer.close()
        await writer.wait_closed()
        done.set()

    await lab.stack.start_server(handler, PORT)

    def kernel() -> None:
        with lab.connect() as sock:
            sock.sendall(b"hello\n")

    await lab.in_thread(kernel)
    await asyncio.wait_for(done.wait(), WAIT)
    await lab.until(lab.all_closed)
    await asyncio.sleep(0.05)
    lab.snapshot()


async def half_close(lab: KernelLab) -> None:
    """The kernel shuts down its sending side; tcpstack still sends, from CLOSE-WAIT."""
    async def handler(reader: Any, writer: Any) -> None:
        await reader.read()                   # the whole request, up to the FIN
        for line in (b"reply 1\n", b"reply 2\n"):
            writer.write(line)
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    await lab.stack.start_server(handler, PORT)

    def kernel() -> None:
        with lab.connect() as sock:
            sock.sendall(b"request\n")
            sock.shutdown(socket.SHUT_WR)
            _recv_all(sock)

    await lab.in_thread(kernel)
    await lab.until(lab.all_closed)
    await asyncio.sleep(0.05)
    lab.snapshot()


async def refused(lab: KernelLab) -> None:
    """Nothing listens on the port: tcpstack answers the kernel's SYN with RST."""
    def kernel() -> None:
        try:
            lab.connect(CLOSED_PORT).close()
        except ConnectionRefusedError:
            return
        raise AssertionError("the connection was not refused")

    await lab.in_thread(kernel)
    await asyncio.sleep(0.05)
    lab.snapshot()


async def keepalive(lab: KernelLab) -> None:
    """tcpstack keeps an idle connection alive with probes (1 s idle, 1 s interval)."""
    server = await lab.in_thread(
        lambda: ns.run_in_netns(lab.netns, socket.create_server, (lab.kernel_addr, PORT),
                                family=lab.family))
    accepted: list[socket.socket] = []
    task = asyncio.create_task(asyncio.to_thread(lambda: accepted.append(server.accept()[0])))
    _, writer = await lab.stack.open_connection(lab.kernel_addr, PORT, keepalive=(1.0, 1.0, 3))
    await task
    await asyncio.sleep(3.4)                  # three probes, each answered by the kernel
    lab.snapshot()
    writer.close()
    for s in (*accepted, server):
        s.close()


async def zero_window(lab: KernelLab) -> None:
    """tcpstack's application does not read: its window closes, the kernel probes it."""
    got = bytearray()
    done = asyncio.Event()

    async def sleepy(reader: Any, writer: Any) -> None:
        await asyncio.sleep(2.0)              # not reading: the receive buffer fills up
        got.extend(await reader.read())
        writer.close()
        done.set()

    await lab.stack.start_server(sleepy, PORT, recv_buffer=4096, limit=1024)

    def kernel() -> None:
        with lab.connect() as sock:
            sock.sendall(bytes(12000))

    await lab.in_thread(kernel)
    await asyncio.wait_for(done.wait(), WAIT)
    await lab.until(lab.all_closed)
    await asyncio.sleep(0.05)
    lab.snapshot()


KERNEL: dict[str, Callable[[KernelLab], Awaitable[None]]] = {
    "demo": demo,
    "handshake": handshake,
    "data": data,
    "active-close": active_close,
    "passive-close": passive_close,
    "half-close": half_close,
    "refused": refused,
    "keepalive": keepalive,
    "zero-window": zero_window,
}
