"""``tcpstack listen`` and ``tcpstack connect``: netcat over the userspace stack.

listen PORT [--echo | --discard | --source BYTES] [--once] [NET] [TCP]
connect HOST PORT [NET] [TCP]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from tcpstack.cli import common
from tcpstack.cli.stdio import IO_SIZE, StdinSource, StdoutSink
from tcpstack.errors import UserError, one_line_errors
from tcpstack.runtime.streams import TcpStreamReader
from tcpstack.wire.addr import endpoint_text

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * 4096         # --source's fixed pattern (1 MiB), repeated


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

async def copy_stdin_to(stdin: StdinSource, writer: Any) -> None:
    """stdin -> connection, then FIN (like ``nc -N``)."""
    while data := await stdin.read():
        writer.write(data)
        await writer.drain()
    if not writer.is_closing():
        writer.write_eof()


async def copy_to_stdout(reader: TcpStreamReader, stdout: StdoutSink) -> int:
    """The connection -> stdout until the peer's FIN, through stdout's buffers
    (to a pipe one is written while the next fills); all of it is in the
    file on return."""
    total = 0
    try:
        while True:
            buffer = await stdout.buffer()
            n = await reader.readinto(memoryview(buffer))
            if not n:
                break
            stdout.submit(buffer, n)
            total += n
    except ConnectionError:
        await stdout.flush()            # what came before the reset is output
        raise
    await stdout.flush()
    return total


# -- listen ---------------------------------------------------------------------

async def _listen(stack: Any, args: argparse.Namespace) -> int:
    done = asyncio.get_running_loop().create_future()
    copy_lock = asyncio.Lock()
    stdin: StdinSource | None = None
    stdout: StdoutSink | None = None
    if not (args.echo or args.discard or args.source is not None):
        stdin, stdout = StdinSource(), StdoutSink()
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
                assert stdin is not None and stdout is not None
                async with copy_lock:       # one connection at a time, like nc -l
                    await _serve_copy(reader, writer, stdin, stdout)
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

    try:
        server = await stack.start_server(handler, args.port,
                                          **common.connection_options(args))
        where = " and ".join(endpoint_text(a, args.port) for a in stack.addrs)
        print(f"listening on {where}", file=sys.stderr, flush=True)
        if args.once:
            await done
        else:
            await server.serve_forever()
    finally:
        _restore(stdin, stdout)
    return 0


def _restore(*files: StdinSource | StdoutSink | None) -> None:
    """stdin's and stdout's blocking flags as they were (others share them)."""
    for file in files:
        if file is not None:
            file.close()


async def _serve_echo(reader: TcpStreamReader, writer: Any) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _serve_discard(reader: TcpStreamReader, writer: Any) -> None:
    await _drop_until_eof(reader)
    writer.close()
    await writer.wait_closed()


async def _serve_source(reader: TcpStreamReader, writer: Any, count: int) -> None:
    # Read (and drop) whatever the peer sends meanwhile, so our close is a clean
    # FIN and not a reset for unread data.
    drain_peer = asyncio.create_task(_read_all(reader))
    try:
        left = count
        while left > 0:
            # The whole pattern as it is (a bytes object: queued without a copy).
            piece = PATTERN if left >= len(PATTERN) else PATTERN[:left]
            writer.write(piece)
            left -= len(piece)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    finally:
        drain_peer.cancel()


async def _drop_until_eof(reader: TcpStreamReader) -> None:
    """Read (into one reused buffer) and drop until the peer's FIN."""
    view = memoryview(bytearray(IO_SIZE))
    while await reader.readinto(view):
        pass


async def _read_all(reader: TcpStreamReader) -> None:
    try:
        await _drop_until_eof(reader)
    except ConnectionError:
        pass


async def _serve_copy(reader: TcpStreamReader, writer: Any, stdin: StdinSource,
                      stdout: StdoutSink) -> None:
    """Both directions until done, like connect: the peer's FIN ends its data,
    stdin's end sends ours (a later connection gets an immediate FIN)."""
    sending = asyncio.create_task(copy_stdin_to(stdin, writer))
    try:
        await copy_to_stdout(reader, stdout)
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
    stdin, stdout = StdinSource(), StdoutSink()
    sending = asyncio.create_task(copy_stdin_to(stdin, writer))
    try:
        await copy_to_stdout(reader, stdout)
        await sending                       # both directions done, like nc -N
        writer.close()
        await writer.wait_closed()
    except ConnectionError as exc:
        raise UserError(f"{args.host}:{args.port}: "
                        f"{common.describe_connection_error(exc)}") from None
    finally:
        sending.cancel()
        _restore(stdin, stdout)
    return 0
