"""Run a scenario (kernel or simulator) and get its ladder diagram."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tcpstack.errors import UserError
from tcpstack.ladder.build import ladder_from_trace
from tcpstack.ladder.model import Ladder
from tcpstack.scenarios import Scenario

# Short timers on kernel runs so every scenario ends within seconds.
KERNEL_MSL = 1.0


def run_simulated(scenario: Scenario, pcap: str | None = None) -> Ladder:
    from tcpstack.scenarios.simulated import SIMULATED

    ladder, packets = SIMULATED[scenario.name]()
    if pcap:
        _write_sim_pcap(pcap, packets)
    ladder.title = scenario.title
    ladder.explanation = scenario.explanation
    return ladder


def _write_sim_pcap(path: str, packets: list[Any]) -> None:
    from tcpstack.link.pcap import PcapWriter
    from tcpstack.wire.packet import build_packet

    try:
        with PcapWriter(path) as writer:
            for n, p in enumerate(packets):
                writer.write(build_packet(p.src, p.dst, p.segment, ident=n & 0xFFFF), p.time)
    except OSError as exc:
        raise UserError(f"cannot write pcap file {path}: {exc.strerror or exc}") from None


async def run_kernel_async(scenario: Scenario, *, netns: str | None = None,
                           pcap: str | None = None) -> Ladder:
    from tcpstack.api import Stack
    from tcpstack.scenarios.kernel import KERNEL, KernelLab

    events: list[Any] = []
    name = netns or f"tcpstack-demo-{os.getpid()}"
    async with Stack(netns=name, tracer=events.append, pcap=pcap, msl=KERNEL_MSL,
                     linger=0.5) as stack:
        kernel_addr = stack.network.kernel_addr
        lab = KernelLab(stack, name, kernel_addr, events)
        await KERNEL[scenario.name](lab)
    cut = lab.cut if lab.cut is not None else len(events)
    addr = str(stack.addr)
    trace = events[:cut]
    roles: dict[tuple[str, int], str] = {}
    for e in trace:
        for ep in (e.local, e.remote):
            if ep:
                roles[ep] = "tcpstack" if ep[0] == addr else "kernel"
    return ladder_from_trace(trace, roles=roles, title=scenario.title,
                             explanation=scenario.explanation)


def run_kernel(scenario: Scenario, *, netns: str | None = None,
               pcap: str | None = None) -> Ladder:
    """Run on the kernel; Ctrl-C cancels the run and the namespace is removed."""
    try:
        return asyncio.run(run_kernel_async(scenario, netns=netns, pcap=pcap))
    except (TimeoutError, ConnectionError, AssertionError) as exc:
        raise UserError(f"scenario {scenario.name} failed against the kernel: "
                        f"{exc or type(exc).__name__}") from None
