"""Fixtures for tests against the real Linux kernel.

Every test gets its own network namespace with a unique name
(``tcps-test-<random>``); it is deleted in a ``finally`` whatever happens, and
every process a test starts inside it is killed by PID. Nothing here touches
the root namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from tcpstack.link import netns as ns

KERNEL_ADDR = "10.7.0.1"
STACK_ADDR = "10.7.0.2"
KERNEL_ADDR6 = "fd00:7::1"
STACK_ADDR6 = "fd00:7::2"
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run one test body on a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Kernel:
    """The kernel side of one test namespace: processes and sockets in it."""

    def __init__(self, name: str) -> None:
        self.netns = name
        self.procs: list[subprocess.Popen[Any]] = []
        self.sockets: list[socket.socket] = []

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = ns.netns_popen(self.netns, argv, **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 30.0,
            **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return ns.netns_run(self.netns, argv, timeout=timeout, **kwargs)

    def python(self, script: str, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        return self.popen([sys.executable, "-c", script, *args], **kwargs)

    def connect(self, port: int, addr: str = STACK_ADDR, timeout: float = 10.0) -> socket.socket:
        sock = ns.run_in_netns(self.netns, socket.create_connection, (addr, port), timeout)
        self.sockets.append(sock)
        return sock

    def listen(self, port: int, addr: str = KERNEL_ADDR) -> socket.socket:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        sock = ns.run_in_netns(self.netns, socket.create_server, (addr, port), family=family,
                               backlog=256)
        sock.settimeout(20)
        self.sockets.append(sock)
        return sock

    def raw_socket(self) -> socket.socket:
        sock = ns.run_in_netns(self.netns, socket.socket, socket.AF_INET, socket.SOCK_RAW,
                               socket.IPPROTO_RAW)
        self.sockets.append(sock)
        return sock

    def ss(self) -> str:
        return self.run(["ss", "-tan"], capture_output=True, text=True).stdout

    def cleanup(self) -> None:
        for sock in self.sockets:
            sock.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


async def echo_handler(reader: asyncio.StreamReader, writer: Any) -> None:
    """A tcpstack server handler: echo until the peer's FIN, then close."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def kernel_echo_client(kernel: Kernel, port: int, payload: bytes,
                       timeout: float = 30.0) -> bytes:
    """A kernel client: send ``payload`` (while reading, in two threads), FIN,
    read to EOF, return what came back."""
    sock = kernel.connect(port)
    sock.settimeout(timeout)
    sender = threading.Thread(target=lambda: (sock.sendall(payload),
                                              sock.shutdown(socket.SHUT_WR)))
    sender.start()
    chunks = []
    while data := sock.recv(1 << 16):
        chunks.append(data)
    sender.join()
    sock.close()
    return b"".join(chunks)


def kernel_sender(kernel: Kernel, port: int, payload: bytes,
                  addr: str = KERNEL_ADDR) -> Callable[[], None]:
    """A kernel listener on ``addr``; the returned function (run it on a thread)
    sends ``payload`` to whoever connects, then FIN, and waits for our FIN."""
    sock = kernel.listen(port, addr)

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)

    return serve


def sha256_of_one_connection(sock: socket.socket) -> str:
    """Accept one connection on the kernel listener ``sock``, read it to its
    FIN and return the SHA-256 (hex) of what came (run it on a thread)."""
    conn, _ = sock.accept()
    digest = hashlib.sha256()
    with conn:
        conn.settimeout(30)
        while data := conn.recv(1 << 20):
            digest.update(data)
    return digest.hexdigest()


@pytest.fixture
def netns_name() -> Iterator[str]:
    """A unique namespace name; the namespace (if anyone created it) is removed."""
    name = f"tcps-test-{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        ns.remove_netns(name)


@pytest.fixture
def kernel(netns_name: str) -> Iterator[Kernel]:
    """The kernel side; the namespace itself is created by the stack under test."""
    k = Kernel(netns_name)
    try:
        yield k
    finally:
        k.cleanup()


class Cli:
    """``tcpstack`` subprocesses; killed by PID at the end of the test."""

    def __init__(self, name: str) -> None:
        self.netns = name
        self.procs: list[subprocess.Popen[Any]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tcpstack", *args]

    def run(self, *args: str, timeout: float = 30.0,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=_ROOT, env=_env(), **kwargs)

    def start(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(self.argv(*args), cwd=_ROOT, env=_env(), **kwargs)
        self.procs.append(proc)
        return proc

    def listen(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``tcpstack listen ARGS --netns NAME`` and wait for 'listening on'."""
        proc = self.start("listen", *args, "--netns", self.netns, **kwargs)
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert line.startswith("listening on "), line + proc.stderr.read().decode()
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture
def cli(netns_name: str) -> Iterator[Cli]:
    c = Cli(netns_name)
    try:
        yield c
    finally:
        c.cleanup()
