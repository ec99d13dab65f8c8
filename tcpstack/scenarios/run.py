"""Run a scenario (kernel or simulator) and get its ladder diagram."""

from __future__ import annotations

import asyncio
import dataclasses
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


class _LinkRecorder:
    """Every packet that passes a fault-injecting link, as the ladder's
    ``WireSegment``s: lost and corrupted ones marked, so the diagram shows
    what the wire did, not only what the stack meant to send."""

    def __init__(self) -> None:
        self.segments: list[Any] = []

    def __call__(self, direction: str, packet: bytes, now: float,
                 deliveries: list[tuple[float, bytes]]) -> None:
        from tcpstack.ladder.build import WireSegment
        from tcpstack.wire.errors import WireError
        from tcpstack.wire.packet import parse_packet

        try:
            ip, seg = parse_packet(packet)
        except WireError:
            return          # not TCP/IPv4: never part of a ladder
        seg = dataclasses.replace(seg, payload=bytes(seg.payload))
        intact = [data for _due, data in deliveries if data == packet]
        note = "corrupted: checksum fails" if deliveries and not intact else ""
        if len(intact) > 1:
            note = "duplicated"
        self.segments.append(WireSegment(now, (str(ip.src), seg.src_port),
                                         (str(ip.dst), seg.dst_port), seg,
                                         dropped=not intact, note=note))


async def run_kernel_async(scenario: Scenario, *, netns: str | None = None,
                           pcap: str | None = None, fault: Any = None,
                           ipv6: bool = False) -> Ladder:
    from tcpstack.api import Stack
    from tcpstack.scenarios.kernel import KERNEL, KernelLab

    events: list[Any] = []
    recorder = _LinkRecorder() if fault is not None else None
    name = netns or f"tcpstack-demo-{os.getpid()}"
    async with Stack(netns=name, tracer=events.append, pcap=pcap, msl=KERNEL_MSL,
                     linger=0.5, fault=fault,
                     # The recorder sees packets: offloaded super-segments would
                     # meet the faults per piece without passing through it.
                     offload=fault is None) as stack:
        if recorder is not None:
            stack.driver.link.observer = recorder
        kernel_addr = stack.network.kernel_addrs[6 if ipv6 else 4]
        lab = KernelLab(stack, name, kernel_addr, events)
        await KERNEL[scenario.name](lab)
    cut = lab.cut if lab.cut is not None else len(events)
    addr = lab.addr
    trace = events[:cut]
    roles: dict[tuple[str, int], str] = {}
    for e in trace:
        for ep in (e.local, e.remote):
            if ep:
                roles[ep] = "tcpstack" if ep[0] == addr else "kernel"
    wire = None
    if recorder is not None:
        end = trace[-1].time if trace else float("inf")
        wire = [w for w in recorder.segments if w.time <= end]
    return ladder_from_trace(trace, wire=wire, roles=roles, title=scenario.title,
                             explanation=scenario.explanation)


def run_kernel(scenario: Scenario, *, netns: str | None = None,
               pcap: str | None = None, fault: Any = None, ipv6: bool = False) -> Ladder:
    """Run on the kernel; Ctrl-C cancels the run and the namespace is removed.
    ``fault`` (a ``FaultSpec`` or its text) impairs tcpstack's link both ways;
    ``ipv6`` runs the scenario between the two ends' IPv6 addresses."""
    try:
        return asyncio.run(run_kernel_async(scenario, netns=netns, pcap=pcap, fault=fault,
                                            ipv6=ipv6))
    except (TimeoutError, ConnectionError, AssertionError) as exc:
        raise UserError(f"scenario {scenario.name} failed against the kernel: "
                        f"{str(exc) or type(exc).__name__}") from None
