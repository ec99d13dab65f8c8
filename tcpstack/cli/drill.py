"""``tcpstack drill SCRIPT.pkt...``: run packetdrill scripts against tcpstack's core
(virtual clock, no root) or against Linux in a private network namespace."""

from __future__ import annotations

import argparse

from tcpstack.errors import UsageError


def _tolerance(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of microseconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _mtu(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if not 576 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be in 576..65535")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "drill", help="run packetdrill scripts (.pkt) against the core or the Linux kernel",
        description="Run Google packetdrill scripts. --target core (default) drives "
        "tcpstack's sans-IO core on a virtual clock: no root, deterministic, milliseconds per "
        "script. --target kernel runs the same script against Linux the way packetdrill does: "
        "a private network namespace with a TUN device (needs root). Directories are searched "
        "for *.pkt. Prints PASS/FAIL/SKIP per script and 'N passed, M failed, K skipped'; "
        "exit 0 without failures, 1 with, 2 for usage errors. See docs/drill.md.")
    p.add_argument("scripts", nargs="+", metavar="SCRIPT.pkt", help="scripts or directories")
    p.add_argument("--target", choices=("core", "kernel"), default="core",
                   help="the stack under test (default: core)")
    p.add_argument("--lenient", action="store_true",
                   help="judge flags, seq, ack, payload length and order only; windows, "
                        "options and times are reported as notes")
    p.add_argument("--tolerance-usecs", type=_tolerance, metavar="N",
                   help="timing tolerance floor in microseconds (a script's own "
                        "--tolerance_usecs counts when larger; default: packetdrill's 4000 on "
                        "the core, 25000 on the kernel target)")
    p.add_argument("--ip_version", "--ip-version", choices=("ipv4", "ipv6"),
                   help="the address family of every script, over the script's own "
                        "--ip_version (packetdrill's flag; ipv6 uses fd3d:a0b:17d6::1 <-> "
                        "fd3d:fa7b:d17d::1 and reads AF_INET as AF_INET6)")
    p.add_argument("--mtu", type=_mtu, metavar="N",
                   help="the link MTU of scripts that set no --mtu (1520 over IPv6 keeps "
                        "an IPv4 script's MSS of 1460, as Linux's selftests run them)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every event")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tcpstack.drill.report import Status
    from tcpstack.drill.runner import find_scripts, run_all

    find_scripts(args.scripts)          # a bad path: one line, exit 2, before anything runs
    if args.target == "kernel":
        import os
        if os.geteuid() != 0:
            raise UsageError("--target kernel needs root (network namespaces, /dev/net/tun)")
    results = run_all(args.scripts, args.target, strict=not args.lenient,
                      verbose=args.verbose, tolerance_usecs=args.tolerance_usecs,
                      ip_version=args.ip_version, mtu=args.mtu)
    return 1 if any(r.status is Status.FAIL for r in results) else 0
