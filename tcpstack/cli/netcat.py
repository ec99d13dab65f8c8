"""``tcpstack listen`` and ``tcpstack connect``: netcat over the userspace stack.

listen PORT [--echo | --discard | --source BYTES] [--once] [NET] [TCP]
connect HOST PORT [NET] [TCP]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sys
import threading
from typing import Any

from tcpstack.cli import common
from tcpstack.errors import UserError, one_line_errors
from tcpstack.runtime.streams import TcpStreamReader
from tcpstack.wire.addr import endpoint_text

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * 256          # --source's fixed 64 KiB pattern


def register(subparsers: Any) -> None:
    listen = subparsers.add_parser(
        "listen", help="accept TCP connections on the userspace stack (like nc -l)",
        description="Listen on PORT at the stack's address. By default copy the peer's "
                    "data to stdout and stdin to the peer (FIN at end of input, like "
                    "nc -N), one connection at a time, until both directions are done "
                    "(the peer's FIN and the end of stdin, in either order); "
                    "--echo/--discard/--source serve connections concurrently. "
                    "Prints 'listening on ADDR:PORT' to stderr once packets are accepted.")
    one_line_errors(listen)
    listen.add_argument("port", type=common.port_number, metavar="PORT")
    mode = listen.add_mutually_exclusive_group()
    mode.add_argument("--echo", action="store_true",
                      help="send back what arrives until the peer's FIN, then close")
    mode.add_argument("--discard", action="store_true",
                      help="read until the peer's FIN, then close")
    mode.add_argument("--source", type=common.byte_count, metavar="BYTES",
                      help="send BYTES of a fixed pattern, then close (an active close)")
    listen.add_argument("--once", action="store_true",
                        help="serve one connection, then exit")
    listen.add_argument("-v", "--verbose", action="store_true",
                        help="report each connection on stderr")
    common.add_net_arguments(listen)
    common.add_tcp_arguments(listen)
    listen.set_defaults(func=lambda args: common.run_stack_command(
        args, _listen, interrupted_exit=0))

    connect = subparsers.add_parser(
        "connect", help="open a TCP connection from the userspace stack (like nc -N)",
        description="Connect to HOST PORT; copy stdin to the connection (FIN at end of "
                    "input) and the connection to stdout; exit when both directions are "
                    "done. Exit 1 with one line if the connection is refused, reset or "
                    "times out.")
    one_line_errors(connect)
    connect.add_argument("host", metavar="HOST")
    connect.add_argument("port", type=common.port_number, metavar="PORT")
    connect.add_argument("-p", "--local-port", type=common.port_number, metavar="PORT",
                         help="local port (default: an ephemeral port)")
    connect.add_argument("-v", "--verbose", action="store_true",
                         help="report the connection on stderr")
    common.add_net_arguments(connect)
    common.add_tcp_arguments(connect)
    connect.set_defaults(func=_connect_command)


# -- stdin / stdout -------------------------------------------------------------

class StdinSource:
    """Reads stdin on a daemon thread, one chunk per request, so that any file
    (terminal, pipe, regular file) works and a cancelled read loses nothing."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._requests: queue.SimpleQueue[asyncio.Future[bytes]] = queue.SimpleQueue()
        self._pending: asyncio.Future[bytes] | None = None
        self.at_eof = False
        threading.Thread(target=self._worker, name="tcpstack-stdin", daemon=True).start()

    def _worker(self) -> None:
        while True:
            future = self._requests.get()
            try:
                data = os.read(self._fd, CHUNK)
            except OSError:
                data = b""
            self._loop.call_soon_threadsafe(_resolve, future, data)
            if not data:
                return

    async def read(self) -> bytes:
        if self.at_eof:
            return b""
        if self._pending is None:
            self._pending = self._loop.create_future()
            self._requests.put(self._pending)
        data = await asyncio.shield(self._pending)
        self._pending = None
        if not data:
            self.at_eof = True
        return data


def _resolve(future: asyncio.Future[bytes], data: bytes) -> None:
    if not future.done():
        future.set_result(data)


def write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


async def copy_stdin_to(stdin: StdinSource, writer: Any) -> None:
    """stdin -> connection, then FIN (like ``nc -N``)."""
    while data := await stdin.read():
        writer.write(data)
        await writer.drain()
    if not writer.is_closing():
        writer.write_eof()


async def copy_to_stdout(reader: TcpStreamReader) -> int:
    total = 0
    while data := await reader.read(CHUNK):
        write_stdout(data)
        total += len(data)
    return total


# -- listen ---------------------------------------------------------------------

async def _listen(stack: Any, args: argparse.Namespace) -> int:
    done = asyncio.get_running_loop().create_future()
    copy_lock = asyncio.Lock()
    stdin: StdinSource | None = None
    if not (args.echo or args.discard or args.source is not None):
        stdin = StdinSource()
    server: Any = None

    async def handler(reader: TcpStreamReader, writer: Any) -> None:
        if args.once:
            server.close()                  # stop accepting: this is the one
        peer = writer.get_extra_info("peername")
        if args.verbose:
            print(f"connection from {endpoint_text(peer[0], peer[1])}", file=sys.stderr, flush=True)
        try:
            if args.echo:
                await _serve_echo(reader, writer)
            elif args.discard:
                await _serve_discard(reader, writer)
            elif args.source is not None:
                await _serve_source(reader, writer, args.source)
            else:
                assert stdin is not None
                async with copy_lock:       # one connection at a time, like nc -l
                    await _serve_copy(reader, writer, stdin)
        except ConnectionError as exc:
            print(f"tcpstack: {endpoint_text(peer[0], peer[1])}: "
                  f"{common.describe_connection_error(exc)}", file=sys.stderr, flush=True)
            writer.abort()
        finally:
            if args.verbose:
                print(f"connection from {endpoint_text(peer[0], peer[1])} closed", file=sys.stderr,
                      flush=True)
            if args.once and not done.done():
                done.set_result(None)

    server = await stack.start_server(handler, args.port, **common.connection_options(args))
    where = " and ".join(endpoint_text(a, args.port) for a in stack.addrs)
    print(f"listening on {where}", file=sys.stderr, flush=True)
    if args.once:
        await done
    else:
        await server.serve_forever()
    return 0


async def _serve_echo(reader: TcpStreamReader, writer: Any) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _serve_discard(reader: TcpStreamReader, writer: Any) -> None:
    while await reader.read(CHUNK):
        pass
    writer.close()
    await writer.wait_closed()


async def _serve_source(reader: TcpStreamReader, writer: Any, count: int) -> None:
    # Read (and drop) whatever the peer sends meanwhile, so our close is a clean
    # FIN and not a reset for unread data.
    drain_peer = asyncio.create_task(_read_all(reader))
    try:
        view = memoryview(PATTERN)
        left = count
        while left > 0:
            piece = view[: min(left, len(view))]
            writer.write(piece)
            left -= len(piece)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    finally:
        drain_peer.cancel()


async def _read_all(reader: TcpStreamReader) -> None:
    try:
        while await reader.read(CHUNK):
            pass
    except ConnectionError:
        pass


async def _serve_copy(reader: TcpStreamReader, writer: Any, stdin: StdinSource) -> None:
    """Both directions until done, like connect: the peer's FIN ends its data,
    stdin's end sends ours (a later connection gets an immediate FIN)."""
    sending = asyncio.create_task(copy_stdin_to(stdin, writer))
    try:
        await copy_to_stdout(reader)
        await sending
    finally:
        sending.cancel()
    writer.close()
    await writer.wait_closed()


# -- connect ----------------------------------------------------------------------

def _connect_command(args: argparse.Namespace) -> int:
    from tcpstack.errors import UsageError
    from tcpstack.link.netns import parse_ip
    from tcpstack.runtime.network import NetworkSetup

    args.host = parse_ip(args.host, "host address")
    family = 6 if ":" in args.host else 4
    ours = NetworkSetup(addr=args.addr, tun_addr=args.tun_addr).addresses()
    if family not in ours:
        raise UsageError(f"cannot reach {args.host}: no IPv{family} address on this stack "
                         f"(it has {', '.join(ours.values())}; give one with --addr)")
    return common.run_stack_command(args, _connect)


async def _connect(stack: Any, args: argparse.Namespace) -> int:
    try:
        reader, writer = await stack.open_connection(
            args.host, args.port, local_port=args.local_port,
            **common.connection_options(args))
    except ConnectionError as exc:
        raise UserError(f"connect to {endpoint_text(args.host, args.port)} failed: "
                        f"{common.describe_connection_error(exc)}") from None
    if args.verbose:
        local = writer.get_extra_info("sockname")
        print(f"connected {endpoint_text(local[0], local[1])} -> "
              f"{endpoint_text(args.host, args.port)}", file=sys.stderr, flush=True)
    stdin = StdinSource()
    sending = asyncio.create_task(copy_stdin_to(stdin, writer))
    try:
        await copy_to_stdout(reader)
        await sending                       # both directions done, like nc -N
        writer.close()
        await writer.wait_closed()
    except ConnectionError as exc:
        raise UserError(f"{args.host}:{args.port}: "
                        f"{common.describe_connection_error(exc)}") from None
    finally:
        sending.cancel()
    return 0
