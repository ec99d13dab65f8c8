"""tcpstack's side of every benchmark workload, run as its own process.

::

    python -m tcpstack.bench.stackclient send|recv|rr|connect|idle|serve \\
        --netns NS --tun DEV --addr IP --tun-addr IP/LEN --host H --port P ...

It starts a ``tcpstack.Stack`` on a fresh TUN in an existing namespace (the
benchmark owns the namespace), runs one workload against the kernel peer at
``--host:--port`` (``tcpstack.bench.peers``) and prints one JSON object on
the last line of stdout. A process per run keeps the RSS of the idle
workload clean and the two sides off one interpreter lock. ``--profile
FILE`` runs everything under cProfile and writes FILE (pstats format).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import inspect
import json
import os
import signal
import sys
import time
from typing import Any

from tcpstack.bench import payload
from tcpstack.bench.peers import raise_fd_limit, receive_buffer
from tcpstack.bench.stats import latency_summary
from tcpstack.core.config import ConnectionOptions
from tcpstack.core.congestion import ALGORITHMS
from tcpstack.core.state import State
from tcpstack.runtime.streams import TcpStreamReader

READ_CHUNK = 1 << 20
IDLE_BATCH = 256          # connections opened concurrently in the idle workload


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def offload_keywords(no_offload: bool) -> dict[str, Any]:
    """``offload=`` for ``tcpstack.Stack`` when this build accepts it."""
    from tcpstack.api import Stack

    if "offload" in inspect.signature(Stack.__init__).parameters:
        return {"offload": not no_offload}
    return {}


def offload_mode(stack: Any) -> str:
    """``on`` when the link uses virtio-net headers / TSO, else ``off``."""
    link = stack.link
    for name in ("offload", "vnet_hdr", "tso"):
        if getattr(link, name, False):
            return "on"
    return "off"


# -- workloads -----------------------------------------------------------------

async def run_send(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    reader, writer = await stack.open_connection(args.host, args.port)
    sent = 0
    for chunk in payload.chunks(args.bytes, args.seed):
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)
    writer.write_eof()
    await reader.read()                 # the sink closes after our FIN
    writer.close()
    await writer.wait_closed()
    return {"bytes": sent}


async def run_recv(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Into one pre-touched buffer (as the kernel peer's receiver); time first byte -> FIN."""
    total = args.bytes
    buffer = receive_buffer(total)
    view = memoryview(buffer)
    reader, writer = await stack.open_connection(args.host, args.port)
    readinto = getattr(reader, "readinto", None)
    got = 0
    first = first_cpu = 0.0
    while True:
        space = view[got:got + READ_CHUNK]      # never empty: got <= total here
        if readinto is not None:
            n = await readinto(space)
        else:
            data = await reader.read(len(space))
            n = len(data)
            space[:n] = data
        if not n:
            break
        if not got:
            first = time.perf_counter()
            first_cpu = time.process_time()
        got += n
        if got > total:
            break
    end = time.perf_counter()
    cpu = time.process_time() - first_cpu if got else 0.0
    writer.close()
    await writer.wait_closed()
    digest = hashlib.sha256(view[:min(got, total)]).hexdigest()
    return {"bytes": got, "sha256": digest, "seconds": end - first if got else 0.0,
            "cpu_seconds": cpu}


async def run_rr(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    reader, writer = await stack.open_connection(args.host, args.port, nodelay=True)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(args.warmup + args.count):
        start = clock()
        writer.write(b"x")
        if await reader.readexactly(1) != b"x":
            raise RuntimeError("echo server sent something else")
        if i >= args.warmup:
            samples.append(clock() - start)
    writer.close()
    await writer.wait_closed()
    return latency_summary(samples)


async def run_connect(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    writers = []
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(args.count):
        _, writer = await stack.open_connection(args.host, args.port)
        writer.close()
        writers.append(writer)
    open_close = time.perf_counter() - start
    await asyncio.gather(*(w.wait_closed() for w in writers))
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {"count": args.count, "seconds": seconds, "per_second": args.count / seconds,
            "seconds_until_last_close": open_close, "cpu_seconds": cpu}


async def run_idle(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    # One connection first, so code paths and caches are warm before the baseline.
    _, writer = await stack.open_connection(args.host, args.port)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    before = rss_kib()
    streams: list[tuple[TcpStreamReader, Any]] = []
    start = time.perf_counter()
    for offset in range(0, args.count, IDLE_BATCH):
        batch = min(IDLE_BATCH, args.count - offset)
        streams += await asyncio.gather(*(stack.open_connection(args.host, args.port)
                                          for _ in range(batch)))
    open_seconds = time.perf_counter() - start
    after = rss_kib()
    await asyncio.sleep(args.hold)
    verify_start = time.perf_counter()
    echoes: list[Any] = []
    for offset in range(0, len(streams), IDLE_BATCH):   # a burst of 10k would only
        batch = streams[offset:offset + IDLE_BATCH]     # measure queue overflows
        for _, writer in batch:
            writer.write(b"x")
        echoes += await asyncio.gather(*(reader.readexactly(1) for reader, _ in batch),
                                       return_exceptions=True)
    alive = sum(1 for echo in echoes if echo == b"x")
    verify_seconds = time.perf_counter() - verify_start
    established = sum(1 for conn in stack.connections() if conn.state is State.ESTABLISHED)
    return {"count": args.count, "alive": alive, "established": established,
            "open_seconds": open_seconds, "verify_seconds": verify_seconds,
            "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_conn": (after - before) / args.count}


async def run_serve(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    """tcpstack as an echo server (``start_server`` on ``--port``) for kernel
    clients, until SIGTERM: prints ``ready`` once it listens."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    accepted = 0

    async def echo(reader: Any, writer: Any) -> None:
        nonlocal accepted
        accepted += 1
        while data := await reader.read(READ_CHUNK):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await stack.start_server(echo, args.port, backlog=1024)
    print("ready", flush=True)
    cpu = time.process_time()
    await stop.wait()
    cpu = time.process_time() - cpu
    server.close()
    return {"accepted": accepted, "cpu_seconds": cpu}


WORKLOADS = {"send": run_send, "recv": run_recv, "rr": run_rr, "connect": run_connect,
             "idle": run_idle, "serve": run_serve}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from tcpstack.api import Stack

    stack = Stack(netns=args.netns, tun=args.tun, addr=args.addr, tun_addr=args.tun_addr,
                  create_netns=False, fault=args.fault, linger=args.linger,
                  busy_poll=args.busy_poll / 1e6,
                  options=ConnectionOptions(cc=args.cc), **offload_keywords(args.no_offload))
    async with stack:
        mode = offload_mode(stack)
        if args.no_offload and mode == "on":
            raise RuntimeError("--no-offload was asked for but the TUN link uses offloads")
        result = await WORKLOADS[args.workload](stack, args)
        result["offload"] = mode
        result["offload_note"] = getattr(stack, "offload_note", None)
        counters = stack.counters
        result["counters"] = {k: v for k, v in counters.items() if v}
        result["retransmits"] = sum(int(info.get("retransmits", 0) or 0)
                                    for info in stack.connections_info())
        if args.hurry:
            stack.hurry()
        closing = time.perf_counter()
    result["close_seconds"] = time.perf_counter() - closing
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tcpstack.bench.stackclient",
                                     description="tcpstack side of a benchmark workload")
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--netns", required=True)
    parser.add_argument("--tun", required=True)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--tun-addr", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--fault", default=None)
    parser.add_argument("--cc", default="cubic", choices=ALGORITHMS)
    parser.add_argument("--no-offload", action="store_true")
    parser.add_argument("--linger", type=float, default=2.0)
    parser.add_argument("--busy-poll", type=float, default=0.0, metavar="US",
                        help="Stack(busy_poll=): microseconds a waiting read may spin "
                             "on the TUN (0: off)")
    parser.add_argument("--hurry", action="store_true",
                        help="reset what is still open at exit instead of closing it")
    parser.add_argument("--profile", metavar="FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the benchmark stops us by PID
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            result = asyncio.run(main_async(args))
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        result = asyncio.run(main_async(args))
    result["rss_kib"] = rss_kib()
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
