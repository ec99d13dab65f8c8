"""``tools/attack``: hostile loads against tcpstack and against the kernel, side by side.

Creates two identical private networks (``topology``), runs every chosen
workload ``--runs`` times against a tcpstack listener and against a kernel
listener, prints a Markdown table (median, min–max, ratio) and optionally
writes JSON. Every load is bounded in count and time; the namespaces and
every program it started are removed on exit, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, NoReturn

from tcpstack.attack import report as rep
from tcpstack.attack import topology as topo
from tcpstack.attack.figures import figures
from tcpstack.attack.settings import DEFAULT, QUICK, Settings, with_overrides
from tcpstack.attack.workloads import (
    GROUPS,
    SIDES,
    WORKLOADS_BY_NAME,
    Attack,
    remove_stale_dirs,
)
from tcpstack.bench.argtypes import positive_float, positive_int, workload_list
from tcpstack.bench.runs import run_workload
from tcpstack.errors import UsageError, UserError, one_line_errors

NAME = "attack"


def _counts(text: str) -> tuple[int, ...]:
    counts = tuple(positive_int(part.strip()) for part in text.split(","))
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"repeated count in {text!r}")
    if max(counts) * 40 + 1 > 8 << 20:
        raise argparse.ArgumentTypeError(f"{max(counts)} segments of 40 bytes do not fit "
                                         f"an 8 MiB window")
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=positive_int, default=3,
                        help="runs of each workload on each side; the median is shown (3)")
    parser.add_argument("--only", type=workload_list(WORKLOADS_BY_NAME, GROUPS),
                        metavar="WORKLOADS",
                        help="comma-separated workloads: " + ", ".join(WORKLOADS_BY_NAME)
                        + "; or groups: " + ", ".join(GROUPS))
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (a smoke run, not a measurement)")
    parser.add_argument("--syns", type=positive_int, metavar="N",
                        help=f"spoofed SYNs of syn-flood ({DEFAULT.flood_syns:,})")
    parser.add_argument("--clients", type=positive_int, metavar="N",
                        help=f"legitimate clients of syn-flood ({DEFAULT.flood_clients})")
    parser.add_argument("--client-timeout", type=positive_float, metavar="SECONDS",
                        help=f"how long a legitimate client tries ({DEFAULT.client_timeout:g})")
    parser.add_argument("--trickle-syns", type=positive_int, metavar="N",
                        help=f"spoofed SYNs of syn-trickle ({DEFAULT.trickle_syns:,})")
    parser.add_argument("--trickle-rate", type=positive_int, metavar="PER_SECOND",
                        help=f"their rate ({DEFAULT.trickle_rate:,}/s)")
    parser.add_argument("--adjacent-counts", type=_counts, metavar="N,N,...",
                        help="segments behind the hole in ooo-adjacent (10000,50000,100000)")
    parser.add_argument("--bomb-count", type=positive_int, metavar="N",
                        help=f"one-byte segments of ooo-bomb ({DEFAULT.bomb_count:,})")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON ('-': stdout, after the table)")


def settings_from(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else DEFAULT
    settings = with_overrides(base, flood_syns=args.syns, flood_clients=args.clients,
                              client_timeout=args.client_timeout,
                              trickle_syns=args.trickle_syns, trickle_rate=args.trickle_rate,
                              adjacent_counts=args.adjacent_counts,
                              bomb_count=args.bomb_count)
    if settings.flood_go_after > settings.flood_syns:
        settings = with_overrides(settings, flood_go_after=settings.flood_syns)
    return settings


def _log(message: str) -> None:
    print(f"{NAME}: {message}", file=sys.stderr, flush=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl-C (clean up), exit 143."""


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise Terminated


def _check_json_path(path: str | None) -> None:
    if path and path != "-":
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise UsageError(f"--json {path}: no directory {directory}")
        if os.path.isdir(path):
            raise UsageError(f"--json {path}: a directory")


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UserError("tools/attack needs root (network namespaces, /dev/net/tun, "
                        "raw packet sockets)")
    _check_json_path(args.json)
    settings = settings_from(args)
    names = args.only or list(WORKLOADS_BY_NAME)
    load_before = os.getloadavg()[0]
    samples: dict[str, dict[str, list[float | None]]] = {}
    errors: list[str] = []
    seconds: dict[str, float] = {}
    for stale in topo.remove_stale():
        _log(f"removed stale namespace {stale}")
    remove_stale_dirs()
    network = topo.AttackNetwork()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    attack = Attack(network, settings)
    try:
        try:
            network.create()
        except (OSError, ValueError) as exc:     # pyroute2's NetlinkError is an OSError
            raise UserError(f"cannot build the attack's network: {exc}") from None
        for name in names:
            started_workload = time.monotonic()
            run_workload(attack, name, WORKLOADS_BY_NAME[name], args.runs, SIDES, samples,
                         errors, _log)
            seconds[name] = time.monotonic() - started_workload
    except KeyboardInterrupt as exc:
        _log("interrupted; cleaning up")
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        attack.close()
        network.remove()
        signal.signal(signal.SIGTERM, previous)
    rows = figures(settings)
    report = {
        "machine": {**rep.machine(), "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2)},
        "config": {"runs": args.runs, "workloads": names, "quick": args.quick,
                   "settings": settings.as_dict(), "topology": topo.describe()},
        "results": rep.summarise(rows, samples),
        "notes": {"seconds": {k: round(v, 1) for k, v in seconds.items()}, **attack.notes},
        "errors": errors,
    }
    sys.stdout.write(rep.markdown(report, rows))
    sys.stdout.flush()
    if args.json:
        rep.write_json(report, args.json)
    return 1 if errors else 0


DESCRIPTION = """\
Hostile loads against a tcpstack listener and against a kernel listener in the
same topology, side by side: a Markdown table of medians (and --json). Needs
root; every packet stays in network namespaces it creates and removes."""
EPILOG = """workloads:
  syn-flood      spoofed SYNs at full speed; legitimate clients start meanwhile
  syn-trickle    spoofed SYNs at a steady rate, then a few legitimate clients
  hol-loss       a full window behind a one-segment hole, against the same window in order
  ooo-adjacent   many 40-byte adjacent segments behind a one-byte hole (CPU per count)
  ooo-bomb       one-byte segments at every other byte of the window
  invalid-storm  out-of-window ACKs, in-window inexact RSTs, blind RSTs and SYNs
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/attack", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    one_line_errors(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        return exc.exit_code
