"""Shared pieces of the subcommands that run a stack: the NET and TCP option
groups, argument types, building a ``tcpstack.Stack`` from the parsed
options, and running an async body with clean Ctrl-C/SIGTERM handling.
(One-line argument errors are ``tcpstack.errors.one_line_errors``.)

A subcommand uses them like this::

    def register(subparsers):
        p = subparsers.add_parser("mycmd", help=...)
        one_line_errors(p)      # from tcpstack.errors
        common.add_net_arguments(p)
        common.add_tcp_arguments(p)
        p.set_defaults(func=lambda args: common.run_stack_command(args, body))

    async def body(stack, args) -> int: ...
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from tcpstack.bench.argtypes import positive_int
from tcpstack.core.config import MTU_PROBING
from tcpstack.core.congestion import ALGORITHMS
from tcpstack.core.errors import TcpUnreachable
from tcpstack.errors import UserError
from tcpstack.runtime.network import DEFAULT_ADDR, DEFAULT_NETNS, DEFAULT_TUN, DEFAULT_TUN_ADDR

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


# -- argument types (argparse turns ArgumentTypeError into a one-line error) ----

def port_number(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port {text!r} (a number 1..65535)") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"bad port {text!r} (a number 1..65535)")
    return port


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (seconds)") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (seconds, > 0)")
    return value


def byte_count(text: str) -> int:
    """``1000``, ``64k``, ``20M``, ``1G`` (powers of 1024)."""
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    raw = text.strip().lower().removesuffix("b")
    suffix = raw[-1:] if raw[-1:] in ("k", "m", "g") else ""
    try:
        value = int(raw[: len(raw) - len(suffix)] or "x", 10) * units[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad byte count {text!r} (e.g. 1000, 64k, 20M)") \
            from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"bad byte count {text!r} (>= 0)")
    return value


def keepalive_spec(text: str) -> tuple[float, float, int]:
    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        idle, interval, count = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad keepalive {text!r} (IDLE,INTERVAL,COUNT, e.g. 2,1,3)") from None
    if not (idle > 0 and interval > 0 and count > 0):
        raise argparse.ArgumentTypeError(f"bad keepalive {text!r} (all values > 0)")
    return idle, interval, count


def _bounded_int(text: str, low: int, high: int, what: str, unit: str,
                 note: str = "") -> int:
    """``text`` as a decimal integer in ``low..high``, else a one-line usage error."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad {what} {text!r} ({unit})") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"bad {what} {text!r} ({low}..{high} {unit}{note})")
    return value


def mss_value(text: str) -> int:
    return _bounded_int(text, 88, 65495, "MSS", "bytes")


def min_ssthresh_value(text: str) -> int:
    return _bounded_int(text, 2, 4, "--min-ssthresh", "segments",
                        "; 2 is RFC 5681 §3.1's floor")


def fault_spec(text: str) -> Any:
    from tcpstack.link.fault import FaultSpec

    try:
        return FaultSpec.parse(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad fault spec {text!r}: {exc}") from None


# -- the option groups --------------------------------------------------------

def add_net_arguments(parser: argparse.ArgumentParser, *, traffic: bool = True) -> None:
    """NET: --netns --tun --addr --tun-addr, and unless ``traffic`` is False
    --no-offload --pcap --trace --fault --stats."""
    net = parser.add_argument_group("network (NET)")
    net.add_argument("--netns", default=DEFAULT_NETNS, metavar="NAME",
                     help="run inside this network namespace; created if missing and then "
                          f"deleted at exit (default {DEFAULT_NETNS})")
    net.add_argument("--tun", default=DEFAULT_TUN, metavar="NAME",
                     help=f"TUN interface, created if missing (default {DEFAULT_TUN})")
    net.add_argument("--addr", default=DEFAULT_ADDR, metavar="IP",
                     help=f"the stack's own IPv4 address (default {DEFAULT_ADDR})")
    net.add_argument("--tun-addr", default=DEFAULT_TUN_ADDR, metavar="IP/LEN",
                     help="the kernel side's address on the TUN; left alone if already "
                          f"there (default {DEFAULT_TUN_ADDR})")
    if not traffic:
        return
    net.add_argument("--no-offload", action="store_true",
                     help="plain packets on the TUN: no virtio-net header, checksum offload "
                          "or TSO/GSO super-packets (default: on when the kernel offers them)")
    net.add_argument("--pcap", metavar="FILE",
                     help="write every packet in and out to FILE (classic pcap, raw IPv4)")
    net.add_argument("--trace", action="store_true",
                     help="one line per segment, state change and timer on stderr")
    net.add_argument("--fault", type=fault_spec, metavar="SPEC",
                     help="impair packets both ways, e.g. loss=2%%,delay=20ms,seed=7")
    net.add_argument("--stats", action="store_true",
                     help="print connections (like ss -ti) and counters to stderr at exit")


def add_tcp_arguments(parser: argparse.ArgumentParser) -> None:
    """TCP: --msl --keepalive --mss --nodelay --cc --min-ssthresh --mtu-probing."""
    tcp = parser.add_argument_group("TCP")
    tcp.add_argument("--msl", type=positive_seconds, metavar="SECONDS",
                     help="maximum segment lifetime; TIME-WAIT lasts 2*MSL (default 30)")
    tcp.add_argument("--keepalive", type=keepalive_spec, metavar="IDLE,INTERVAL,COUNT",
                     help="send keepalive probes after IDLE s, every INTERVAL s, "
                          "give up after COUNT")
    tcp.add_argument("--mss", type=mss_value, metavar="BYTES",
                     help="the MSS to advertise (default MTU - 40)")
    tcp.add_argument("--nodelay", action="store_true", help="disable Nagle's algorithm")
    tcp.add_argument("--cc", choices=ALGORITHMS,
                     help="congestion control: cubic (RFC 9438, default) or reno "
                          "(NewReno, RFC 5681/6582)")
    tcp.add_argument("--min-ssthresh", type=min_ssthresh_value, metavar="SEGMENTS",
                     help="least ssthresh after a loss, 2..4 (default 4; 2 is RFC 5681's floor)")
    tcp.add_argument("--mtu-probing", choices=MTU_PROBING,
                     help="RFC 4821 path MTU probing, as Linux tcp_mtu_probing 0/1/2: off; "
                          "blackhole (default: after repeated timeouts drop to 1024-byte "
                          "segments, then probe upward); always (start at 1024, probe upward)")
    limits = parser.add_argument_group("LIMITS (docs/tcp.md lists each with its Linux setting)")
    limits.add_argument("--no-syncookies", action="store_true",
                        help="drop SYNs when a listener's SYN queue is full instead of "
                             "answering with SYN cookies (RFC 4987)")
    limits.add_argument("--max-connections", type=positive_int, metavar="N",
                        help="connections of any state (default 262144)")
    limits.add_argument("--max-time-wait", type=positive_int, metavar="N",
                        help="TIME-WAIT entries; past it connections close without "
                             "TIME-WAIT (Linux tcp_max_tw_buckets; default 262144)")
    limits.add_argument("--rcv-mem-limit", type=byte_count, metavar="BYTES",
                        help="received bytes held across all connections before windows "
                             "stop opening (Linux tcp_mem; default 512M)")
    limits.add_argument("--challenge-ack-limit", type=positive_int, metavar="N",
                        help="RFC 5961 challenge ACKs per second, stack-wide, randomised "
                             "around N (default 1000)")


def stack_limits(args: argparse.Namespace) -> dict[str, Any]:
    """StackConfig fields from the LIMITS options that were given."""
    limits: dict[str, Any] = {}
    if getattr(args, "no_syncookies", False):
        limits["syncookies"] = False
    for name in ("max_connections", "max_time_wait", "rcv_mem_limit", "challenge_ack_limit",
                 "mtu_probing"):
        value = getattr(args, name, None)
        if value is not None:
            limits[name] = value
    return limits


# -- from options to a running stack ------------------------------------------

def trace_to_stderr(event: Any) -> None:
    print(event, file=sys.stderr, flush=True)


def stack_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    """A ``tcpstack.Stack`` configured from the NET and TCP options."""
    from tcpstack.api import Stack

    kwargs: dict[str, Any] = {
        "netns": args.netns, "tun": args.tun, "addr": args.addr, "tun_addr": args.tun_addr,
        "tracer": trace_to_stderr if getattr(args, "trace", False) else None,
        "pcap": getattr(args, "pcap", None),
        "fault": getattr(args, "fault", None),
        "msl": getattr(args, "msl", None),
        "offload": not getattr(args, "no_offload", False),
    }
    limits = stack_limits(args)
    if limits:
        from tcpstack.core.config import StackConfig
        kwargs["config"] = StackConfig(**limits)
    kwargs.update(overrides)
    return Stack(**kwargs)


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """Per-connection keyword arguments for ``open_connection``/``start_server``."""
    return {
        "keepalive": getattr(args, "keepalive", None),
        "mss": getattr(args, "mss", None),
        "nodelay": True if getattr(args, "nodelay", False) else None,
        "cc": getattr(args, "cc", None),
        "min_ssthresh": getattr(args, "min_ssthresh", None),
    }


def describe_connection_error(exc: BaseException) -> str:
    """One line for a connection failure, as a person reads it."""
    if isinstance(exc, TcpUnreachable):
        return str(exc)           # which ICMP error, from whom (core/icmp.py)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, ConnectionAbortedError):
        return "connection aborted"
    if isinstance(exc, BrokenPipeError):
        return "connection closed"
    return str(exc) or type(exc).__name__


def print_stats(stack: Any) -> None:
    link = stack.link
    if link is not None and hasattr(link, "offload"):
        mode = "on (checksum, TSO/GSO)" if link.offload else "off"
        note = f" -- {stack.offload_note}" if stack.offload_note and not link.offload else ""
        print(f"tcpstack offloads: {mode}{note}", file=sys.stderr)
    for info in stack.connections_info():
        fields = " ".join(f"{k}:{v}" for k, v in info.items())
        print(f"tcpstack stats: {fields}", file=sys.stderr)
    counters = " ".join(f"{k}={v}" for k, v in sorted(stack.counters.items()) if v)
    print(f"tcpstack counters: {counters or '(none)'}", file=sys.stderr, flush=True)


Body = Callable[[Any, argparse.Namespace], Awaitable[int]]


def run_stack_command(args: argparse.Namespace, body: Body, *,
                      interrupted_exit: int | None = None, **stack_overrides: Any) -> int:
    """Build the stack, run ``body(stack, args)`` inside it, clean up, return the exit code.

    The first SIGINT/SIGTERM cancels the body and the stack shuts down
    cleanly (connections get their FIN, the TUN and a namespace we created
    are removed); a second one cuts the shutdown short. The exit code is then
    ``interrupted_exit`` or 130/143. A connection error becomes a one-line
    ``UserError`` (exit 1).
    """
    stack = stack_from_args(args, **stack_overrides)  # validates: UsageError before any setup
    require_root()
    return asyncio.run(_run(stack, args, body, interrupted_exit))


async def _run(stack: Any, args: argparse.Namespace, body: Body,
               interrupted_exit: int | None) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    seen: list[int] = []

    def on_signal(signum: int) -> None:
        seen.append(signum)
        if len(seen) == 1:
            task.cancel()
        else:
            stack.hurry()

    for signum in SIGNAL_EXIT:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        try:
            async with stack:
                if stack.offload_note and getattr(args, "trace", False):
                    print(f"tcpstack: {stack.offload_note}", file=sys.stderr, flush=True)
                try:
                    code = await body(stack, args)
                except asyncio.CancelledError:
                    if not seen:
                        raise
                    code = interrupted_exit if interrupted_exit is not None else \
                        SIGNAL_EXIT[signal.Signals(seen[0])]
                except ConnectionError as exc:
                    raise UserError(describe_connection_error(exc)) from None
        except asyncio.CancelledError:
            if not seen:
                raise
            code = interrupted_exit if interrupted_exit is not None else \
                SIGNAL_EXIT[signal.Signals(seen[0])]
        if getattr(args, "stats", False):
            print_stats(stack)
        return code
    finally:
        for signum in SIGNAL_EXIT:
            loop.remove_signal_handler(signum)


def require_root() -> None:
    import os

    if os.geteuid() != 0:
        raise UserError("this needs root (network namespaces and /dev/net/tun); try sudo")

