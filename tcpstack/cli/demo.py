"""``tcpstack demo [SCENARIO]``: watch TCP on real packets as a ladder diagram.

With no scenario: a private namespace and TUN, tcpstack listening, a kernel
socket connecting, a little data both ways, a close -- and the diagram.
"""

from __future__ import annotations

import argparse
import os
import sys

from tcpstack.cli.common import fault_spec
from tcpstack.errors import UsageError, UserError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo", help="draw a real TCP exchange (or a named scenario) as a ladder diagram",
        description="Run tcpstack against the Linux kernel in a private network namespace "
        "(needs root) and draw what happened on the wire as a ladder diagram, with the "
        "states of both ends. SCENARIO picks one of the library's situations "
        "(--list shows them); --sim runs it on the simulator instead: two tcpstack "
        "stacks on a virtual clock, no root needed.")
    p.add_argument("scenario", nargs="?", metavar="SCENARIO",
                   help="scenario to run (default: the basic open/talk/close demo)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--sim", action="store_true",
                   help="run on the simulator (virtual time, both ends tcpstack)")
    p.add_argument("--pcap", metavar="FILE", help="save the packets as a pcap file")
    p.add_argument("--ipv6", action="store_true",
                   help="run the scenario over IPv6 (fd00:7::2 <-> fd00:7::1) against the kernel")
    p.add_argument("--svg", metavar="FILE", help="save the diagram as a standalone SVG")
    p.add_argument("--html", metavar="FILE",
                   help="save the diagram as a self-contained HTML page")
    p.add_argument("--absolute", action="store_true",
                   help="raw sequence numbers instead of relative ones")
    p.add_argument("--no-color", action="store_true", help="never colour the output")
    p.add_argument("--fault", type=fault_spec, metavar="SPEC",
                   help="impair tcpstack's link both ways in a kernel run, e.g. "
                        "loss=20%%,seed=3; lost segments are drawn as lost")
    p.add_argument("--netns", metavar="NAME",
                   help="namespace for the kernel run (default: a private one, removed after)")
    p.set_defaults(func=run)


def list_scenarios() -> str:
    from tcpstack.scenarios import SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    lines = ["Scenarios (tcpstack demo NAME; --sim for the simulator):"]
    for s in SCENARIOS.values():
        lines.append(f"  {s.name:{width}}  {s.title}  [{s.where}]")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tcpstack.ladder.output import show
    from tcpstack.scenarios import get

    if args.list:
        print(list_scenarios())
        return 0
    scenario = get(args.scenario or "demo")
    use_sim = args.sim or not scenario.kernel
    if use_sim and not scenario.sim:
        raise UsageError(f"scenario {scenario.name!r} runs only against the kernel "
                         f"(drop --sim)")
    if use_sim and args.ipv6:
        raise UsageError(f"--ipv6 runs against the kernel; scenario {scenario.name!r} "
                         "runs on the simulator")
    if use_sim and args.fault is not None:
        raise UsageError("--fault applies to runs against the kernel; the simulated "
                         "scenarios script their own losses")
    if use_sim:
        from tcpstack.scenarios.run import run_simulated

        if not args.sim:
            print(f"({scenario.name} needs two controllable ends or precise timing: "
                  f"running it on the simulator)", file=sys.stderr)
        ladder = run_simulated(scenario, pcap=args.pcap)
    else:
        from tcpstack.scenarios.run import run_kernel

        if os.geteuid() != 0:
            raise UserError("tcpstack demo needs root to create a network namespace and a "
                            "TUN device (or run: tcpstack demo --sim)")
        ladder = run_kernel(scenario, netns=args.netns, pcap=args.pcap, fault=args.fault,
                            ipv6=args.ipv6)
    if args.pcap:
        print(f"wrote {args.pcap}", file=sys.stderr)
    show(ladder, absolute=args.absolute or scenario.absolute, no_color=args.no_color,
         svg=args.svg, html=args.html, header=True)
    return 0
