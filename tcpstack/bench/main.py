"""``tcpstack bench`` / ``tools/bench``: tcpstack against the kernel, side by side.

Creates its own namespaces (a TUN namespace for tcpstack, two namespaces
joined by a veth pair for the kernel-to-kernel baseline), runs every chosen
workload ``--runs`` times on both, prints a Markdown table (median, min–max,
ratio) and optionally writes JSON. The namespaces and every program it
started are removed on exit, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import os
import pstats
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from tcpstack.bench import report as rep
from tcpstack.bench.argtypes import positive_float, positive_int, workload_list
from tcpstack.bench.processes import ProgramFailed
from tcpstack.bench.runs import run_workload
from tcpstack.bench.topology import BenchNetwork
from tcpstack.bench.workloads import GROUPS, MB, SIDES, WORKLOADS_BY_NAME, Bench, Settings
from tcpstack.core.congestion import ALGORITHMS
from tcpstack.errors import UsageError, UserError, one_line_errors

QUICK = {"bulk_mb": 2.0, "loss_mb": 1.0, "rr_count": 200, "connect_count": 50,
         "idle_conns": 100, "idle_hold": 0.2}
PROFILE_TOP = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=positive_int, default=3,
                        help="runs of each workload on each side; the median is shown (3)")
    parser.add_argument("--only", type=workload_list(WORKLOADS_BY_NAME, GROUPS),
                        metavar="WORKLOADS",
                        help="comma-separated workloads: " + ", ".join(WORKLOADS_BY_NAME)
                        + "; or groups: " + ", ".join(GROUPS))
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (a smoke run, not a measurement)")
    parser.add_argument("--bulk-mb", type=positive_float, metavar="MB",
                        help="bytes per bulk transfer, in MB (200)")
    parser.add_argument("--loss-mb", type=positive_float, metavar="MB",
                        help="bytes per transfer under loss, in MB (20)")
    parser.add_argument("--rr-count", type=positive_int, metavar="N",
                        help="1-byte round trips timed (10000, after 200 unmeasured)")
    parser.add_argument("--connect-count", type=positive_int, metavar="N",
                        help="sequential connect+close cycles (2000)")
    parser.add_argument("--idle-conns", type=positive_int, metavar="N",
                        help="concurrent idle connections (10000)")
    parser.add_argument("--ipv6", action="store_true",
                        help="both sides over IPv6: tcpstack's TUN fd00:7::2 <-> fd00:7::1, "
                        "the kernel baseline fd00:8::1 <-> fd00:8::2 (default IPv4)")
    parser.add_argument("--no-offload", action="store_true",
                        help="run tcpstack's TUN without virtio-net offloads (TSO/checksum)")
    parser.add_argument("--busy-poll", type=positive_float, metavar="US",
                        help="tcpstack's Stack(busy_poll=): a read about to wait spins on the "
                        "TUN for up to US microseconds first, like SO_BUSY_POLL (default off)")
    parser.add_argument("--kernel-cc", metavar="NAME",
                        help="congestion control of the kernel sockets (the baseline and "
                        "tcpstack's peer), set inside the benchmark's namespaces; default: "
                        "the machine's")
    parser.add_argument("--stack-cc", metavar="NAME", choices=ALGORITHMS,
                        help="congestion control of tcpstack's connections: "
                        f"{', '.join(ALGORITHMS)}; default: the kernel baseline's when "
                        "tcpstack has it (like against like), else cubic")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                        help="limit for each program run (default: from the workload size)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': "
                        "stdout, after the table)")
    parser.add_argument("--profile", metavar="DIR",
                        help="afterwards, run each bulk direction (and rr and connect, when "
                        "chosen) once more under cProfile: DIR/bulk-send.pstats, "
                        "DIR/bulk-recv.pstats, DIR/rr.pstats, DIR/connect.pstats; top 20 on "
                        "stderr")


def settings_from(args: argparse.Namespace) -> Settings:
    def pick(name: str, default: float) -> Any:
        given = getattr(args, name)
        if given is not None:
            return given
        return QUICK[name] if args.quick else default

    return Settings(bulk_bytes=int(pick("bulk_mb", 200.0) * MB),
                    loss_bytes=int(pick("loss_mb", 20.0) * MB),
                    rr_count=pick("rr_count", 10000), rr_warmup=20 if args.quick else 200,
                    connect_count=pick("connect_count", 2000),
                    idle_conns=pick("idle_conns", 10000),
                    idle_hold=QUICK["idle_hold"] if args.quick else 2.0,
                    no_offload=args.no_offload, timeout=args.timeout, ipv6=args.ipv6,
                    busy_poll_us=args.busy_poll or 0.0)


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl-C (clean up), exit 143."""


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise Terminated


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UserError("tcpstack bench needs root (network namespaces and /dev/net/tun)")
    if args.profile and not os.path.isdir(args.profile):
        raise UsageError(f"--profile {args.profile}: not a directory")
    settings = settings_from(args)
    load_before = os.getloadavg()[0]
    names = args.only or list(WORKLOADS_BY_NAME)
    samples: dict[str, dict[str, list[float]]] = {}
    errors: list[str] = []
    network = BenchNetwork(ipv6=settings.ipv6)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    bench = Bench(network, settings)
    kernel_cc = "unknown"
    try:
        network.create()
        if args.kernel_cc:
            network.set_kernel_congestion_control(args.kernel_cc)
        kernel_cc = network.kernel_congestion_control()
        stack_cc = args.stack_cc or (kernel_cc if kernel_cc in ALGORITHMS else "cubic")
        bench.settings = settings = dataclasses.replace(settings, stack_cc=stack_cc)
        for name in names:
            run_workload(bench, name, WORKLOADS_BY_NAME[name], args.runs, SIDES, samples,
                         errors, _log)
        if args.profile:
            _profile(bench, args.profile, names, errors)
    except KeyboardInterrupt as exc:
        _log("interrupted; cleaning up")
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        bench.procs.stop_all()
        network.remove()
        signal.signal(signal.SIGTERM, previous)
    report = {
        "machine": {**rep.machine(), "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2)},
        "config": {"runs": args.runs, "workloads": names,
                   "offload": bench.notes["offload"],
                   "no_offload_requested": settings.no_offload, "quick": args.quick,
                   "ip_version": 6 if settings.ipv6 else 4,
                   "busy_poll_us": settings.busy_poll_us,
                   "bulk_mb": settings.bulk_bytes / MB, "loss_mb": settings.loss_bytes / MB,
                   "rr_count": settings.rr_count, "rr_warmup": settings.rr_warmup,
                   "connect_count": settings.connect_count, "idle_conns": settings.idle_conns,
                   "idle_hold_s": settings.idle_hold,
                   "congestion_control": {"tcpstack": settings.stack_cc,
                                          "kernel": kernel_cc}},
        "results": rep.summarise(samples),
        "notes": {k: v for k, v in bench.notes.items() if k != "offload" and v},
        "errors": errors,
    }
    sys.stdout.write(rep.markdown(report))
    sys.stdout.flush()
    if args.json:
        rep.write_json(report, args.json)
    return 1 if errors else 0


def _profile(bench: Bench, directory: str, names: list[str], errors: list[str]) -> None:
    """One more run of each bulk direction (and of rr and connect when chosen) under
    cProfile: DIR/NAME.pstats, the top functions on stderr."""
    runs: list[tuple[str, Callable[..., object]]] = [
        (f"bulk-{direction}", functools.partial(
            bench.bulk, "tcpstack", direction, bench.settings.bulk_bytes, seed=99))
        for direction in ("send", "recv")]
    if "rr" in names:
        runs.append(("rr", functools.partial(bench.rr, "tcpstack")))
    if "connect" in names:
        runs.append(("connect", functools.partial(bench.connect, "tcpstack")))
    for name, run_profiled in runs:
        path = os.path.join(directory, f"{name}.pstats")
        try:
            run_profiled(profile=path)
        except ProgramFailed as exc:
            errors.append(f"profile {name}: {exc}")
            continue
        out = io.StringIO()
        pstats.Stats(path, stream=out).sort_stats("tottime").print_stats(PROFILE_TOP)
        _log(f"cProfile of {name} (tcpstack process, by own time), "
             f"written to {path}:\n{out.getvalue()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/bench", description=__doc__.splitlines()[0])
    one_line_errors(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return exc.exit_code
