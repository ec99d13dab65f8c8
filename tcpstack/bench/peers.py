"""The kernel's side of every benchmark workload, as a program run inside a namespace.

Servers (the peer of both the tcpstack client and the kernel client)::

    python -m tcpstack.bench.peers serve sink   --port P --bytes N
    python -m tcpstack.bench.peers serve source --port P --bytes N --seed S
    python -m tcpstack.bench.peers serve echo   --port P

Kernel clients (the kernel-to-kernel baseline, over a veth pair)::

    python -m tcpstack.bench.peers client send|recv|rr|connect|idle --host H --port P ...
    python -m tcpstack.bench.peers client pipe-send|pipe-recv --host H --port P

The ends of the ``pipe`` workload's pipes (stdin -> connection, connection
-> stdout: ``client pipe-*`` for the kernel, ``tcpstack connect`` for
tcpstack)::

    python -m tcpstack.bench.peers pipe source --bytes N --seed S   # the stream to stdout
    python -m tcpstack.bench.peers pipe sink --bytes N              # stdin, timed and hashed

A server prints ``ready`` once it listens. Every program ends by printing one
JSON object on the last line of stdout. Plain blocking sockets: this is the
kernel at its best, not another asyncio program.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time
from typing import Any

from tcpstack.bench import payload
from tcpstack.bench.stats import latency_summary

LISTEN_BACKLOG = 4096
NOFILE = 65536
RECV_CHUNK = 1 << 20


def raise_fd_limit(wanted: int = NOFILE) -> int:
    """Raise RLIMIT_NOFILE (root may raise the hard limit too); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


PAGE = 4096


def receive_buffer(total: int) -> bytearray:
    """A buffer for the whole stream plus one byte (to notice a longer stream),
    with every page already faulted in: the timed part measures the transfer,
    not the allocator or first-touch page faults. Both sides of a bulk
    comparison (tcpstack's receiver and the kernel's) use it."""
    buffer = bytearray(total + 1)
    buffer[::PAGE] = bytes(len(range(0, total + 1, PAGE)))   # one write per page
    return buffer


def receive_all(sock: socket.socket, total: int) -> dict[str, Any]:
    """Read until EOF into one pre-touched buffer; time first byte -> FIN; hash after."""
    return _receive(sock.recv_into, total, until_last_byte=False)


def _receive(recv_into: Any, total: int, until_last_byte: bool) -> dict[str, Any]:
    """``recv_into`` until EOF into one pre-touched buffer; time the first byte
    to EOF (or to byte ``total`` when ``until_last_byte``); hash after."""
    buffer = receive_buffer(total)
    view = memoryview(buffer)
    got = 0
    first = end = 0.0
    while True:
        n = recv_into(view[got:] if got <= total else view[total:])
        if n == 0:
            break
        if got == 0:
            first = time.perf_counter()
        got += n
        if got >= total and not end:
            end = time.perf_counter()
        if got > total:
            break
    if not until_last_byte or not end:
        end = time.perf_counter()
    digest = hashlib.sha256(view[:min(got, total)]).hexdigest()
    return {"bytes": got, "sha256": digest, "seconds": end - first if got else 0.0}


# -- the ends of the pipe workload's pipes -------------------------------------

def pipe_source(total: int, seed: int) -> dict[str, Any]:
    """The stream to stdout (a pipe into the program under test)."""
    out = sys.stdout.fileno()
    sent = 0
    for chunk in payload.chunks(total, seed):
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view):]
        sent += len(chunk)
    os.close(out)
    sys.stdout = sys.stderr            # the result goes to stderr: stdout was the stream
    return {"bytes": sent}


def pipe_sink(total: int) -> dict[str, Any]:
    """stdin (a pipe from the program under test) until EOF, timed from its first
    byte to byte ``total`` -- not to EOF, which waits for that program to exit."""
    fd = sys.stdin.fileno()
    return _receive(lambda view: os.readv(fd, [view]), total, until_last_byte=True)


PIPE_SIZE = 1 << 20


def _grow_pipe(fd: int) -> None:
    """A 1 MiB pipe, as ``tcpstack connect`` asks for (F_SETPIPE_SZ)."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except OSError:
        pass


def client_pipe_send(host: str, port: int) -> dict[str, Any]:
    """stdin -> a connection, then FIN (like ``nc -N``), in large reads."""
    fd = sys.stdin.fileno()
    _grow_pipe(fd)
    sent = 0
    with connect(host, port) as sock:
        while data := os.read(fd, RECV_CHUNK):
            sock.sendall(data)
            sent += len(data)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(RECV_CHUNK):
            pass
    return {"bytes": sent}


def client_pipe_recv(host: str, port: int) -> dict[str, Any]:
    """A connection -> stdout until its FIN (stdin is empty: our FIN goes first)."""
    out = sys.stdout.fileno()
    _grow_pipe(out)
    buffer = bytearray(RECV_CHUNK)
    view = memoryview(buffer)
    got = 0
    with connect(host, port) as sock:
        sock.shutdown(socket.SHUT_WR)
        while n := sock.recv_into(view):
            part = view[:n]
            while part:
                part = part[os.write(out, part):]
            got += n
    os.close(out)
    sys.stdout = sys.stderr
    return {"bytes": got}


def send_all(sock: socket.socket, total: int, seed: int) -> int:
    sent = 0
    for chunk in payload.chunks(total, seed):
        sock.sendall(chunk)
        sent += len(chunk)
    return sent


# -- servers -----------------------------------------------------------------

def listen(port: int, host: str = "0.0.0.0") -> socket.socket:
    """A listener on the wildcard of ``host``'s family ("0.0.0.0" or "::"): the
    namespace's address may appear later (TUN)."""
    server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                           socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(LISTEN_BACKLOG)
    print("ready", flush=True)
    return server


def serve_sink(port: int, total: int, host: str) -> dict[str, Any]:
    with listen(port, host) as server:
        conn, _ = server.accept()
    with conn:
        return receive_all(conn, total)


def serve_source(port: int, total: int, seed: int, host: str) -> dict[str, Any]:
    with listen(port, host) as server:
        conn, _ = server.accept()
    with conn:
        sent = send_all(conn, total, seed)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(RECV_CHUNK):     # until the client's FIN
            pass
    return {"bytes": sent}


def serve_echo(port: int, host: str) -> dict[str, Any]:
    """Echo every connection until its FIN; stop on SIGTERM. Counts what it held."""
    raise_fd_limit()
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    accepted = open_now = max_open = 0
    selector = selectors.DefaultSelector()
    server = listen(port, host)
    server.setblocking(False)
    selector.register(server, selectors.EVENT_READ)
    while not stop[0]:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            if sock is server:
                while True:
                    try:
                        conn, _ = server.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    conn.setblocking(True)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(conn, selectors.EVENT_READ)
                    accepted += 1
                    open_now += 1
                    max_open = max(max_open, open_now)
                continue
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
                if data:
                    sock.sendall(data)
                    continue
            except OSError:
                pass
            selector.unregister(sock)
            sock.close()
            open_now -= 1
    return {"accepted": accepted, "max_open": max_open, "open_at_exit": open_now}


# -- kernel clients ------------------------------------------------------------

def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(None)
    return sock


def client_send(host: str, port: int, total: int, seed: int) -> dict[str, Any]:
    with connect(host, port) as sock:
        sent = send_all(sock, total, seed)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(RECV_CHUNK):
            pass
    return {"bytes": sent}


def client_recv(host: str, port: int, total: int) -> dict[str, Any]:
    with connect(host, port) as sock:
        return receive_all(sock, total)


def client_rr(host: str, port: int, count: int, warmup: int) -> dict[str, Any]:
    samples: list[int] = []
    with connect(host, port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clock = time.perf_counter_ns
        for i in range(warmup + count):
            start = clock()
            sock.sendall(b"x")
            if sock.recv(1) != b"x":
                raise RuntimeError("echo server closed the connection")
            if i >= warmup:
                samples.append(clock() - start)
    return latency_summary(samples)


def client_connect(host: str, port: int, count: int) -> dict[str, Any]:
    start = time.perf_counter()
    for _ in range(count):
        connect(host, port).close()
    seconds = time.perf_counter() - start
    return {"count": count, "seconds": seconds, "per_second": count / seconds}


def slab_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def client_idle(host: str, port: int, count: int, hold: float) -> dict[str, Any]:
    """Open ``count`` connections and keep them; then prove each alive with a 1-byte echo.

    The kernel's memory is estimated from the machine-wide Slab growth (both
    ends of every connection live in this kernel: divided by 2 * count)."""
    raise_fd_limit(count + 1024)
    slab_before = slab_kib()
    socks: list[socket.socket] = []
    start = time.perf_counter()
    try:
        for _ in range(count):
            socks.append(connect(host, port))
        open_seconds = time.perf_counter() - start
        slab_after = slab_kib()
        time.sleep(hold)
        for sock in socks:
            sock.settimeout(10)
            sock.sendall(b"x")
        alive = sum(1 for sock in socks if _echoed(sock))
    finally:
        for sock in socks:
            sock.close()
    return {"count": count, "alive": alive, "open_seconds": open_seconds,
            "kib_per_conn": (slab_after - slab_before) / (2 * count)}


def _echoed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b"x"
    except OSError:
        return False


# -- command line --------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tcpstack.bench.peers",
                                     description="kernel-side benchmark peer")
    parser.add_argument("mode", choices=("serve", "client", "pipe"))
    parser.add_argument("role", choices=("sink", "source", "echo", "send", "recv", "rr",
                                         "connect", "idle", "pipe-send", "pipe-recv"))
    parser.add_argument("--host", default="0.0.0.0",
                        help="client: the server; serve: 0.0.0.0 (IPv4) or :: (IPv6)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--hold", type=float, default=0.0)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.mode == "pipe":
        if args.role == "source":
            return pipe_source(args.bytes, args.seed)
        if args.role == "sink":
            return pipe_sink(args.bytes)
    elif args.mode == "serve":
        if args.role == "sink":
            return serve_sink(args.port, args.bytes, args.host)
        if args.role == "source":
            return serve_source(args.port, args.bytes, args.seed, args.host)
        if args.role == "echo":
            return serve_echo(args.port, args.host)
    else:
        if args.role == "send":
            return client_send(args.host, args.port, args.bytes, args.seed)
        if args.role == "recv":
            return client_recv(args.host, args.port, args.bytes)
        if args.role == "rr":
            return client_rr(args.host, args.port, args.count, args.warmup)
        if args.role == "connect":
            return client_connect(args.host, args.port, args.count)
        if args.role == "idle":
            return client_idle(args.host, args.port, args.count, args.hold)
        if args.role == "pipe-send":
            return client_pipe_send(args.host, args.port)
        if args.role == "pipe-recv":
            return client_pipe_recv(args.host, args.port)
    raise SystemExit(f"no {args.mode} role {args.role!r}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the benchmark stops us by PID
    emit(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
