"""A discrete-event simulator: several ``StackCore``s on one virtual clock.

Every segment a stack emits goes through the real wire codec
(``build_packet`` -> bytes -> fault injector -> ``parse_packet``), so a
corrupted packet is caught by the TCP checksum and counted, exactly as on a
TUN device. Nothing sleeps: the clock jumps to the next packet delivery or
the earliest stack deadline, so two hours of keepalive take milliseconds.

    sim = Simulator(seed=1)
    a = sim.add_stack("10.0.0.1")
    b = sim.add_stack("10.0.0.2")
    sim.set_faults_both_ways("10.0.0.1", "10.0.0.2", FaultSpec(loss=0.05, seed=1))
    listener = b.listen(80)
    conn = a.connect("10.0.0.2", 80, sim.now)
    sim.run_until(lambda: conn.state is State.ESTABLISHED, timeout=10)

``sim.events`` holds every ``TraceEvent`` of every stack in the order they
happened; ``sim.packets`` one ``PacketRecord`` per segment put on the wire
(the ladder-diagram renderer draws from both).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tcpstack.core.config import StackConfig
from tcpstack.core.events import TraceEvent
from tcpstack.core.stack import StackCore
from tcpstack.link.fault import FaultInjector, FaultSpec
from tcpstack.wire.errors import WireError
from tcpstack.wire.packet import build_packet, parse_packet
from tcpstack.wire.tcp import TcpSegment

if TYPE_CHECKING:
    from tcpstack.ladder.build import WireSegment

# Steps allowed without the clock moving before the simulator calls it a livelock
# (a deadline that never clears, or two stacks answering each other forever).
MAX_STEPS_WITHOUT_PROGRESS = 200_000
# How many trace events a timeout message shows.
_TAIL_EVENTS = 40


class SimulationError(RuntimeError):
    """The simulated stacks misbehaved (e.g. a deadline that never clears)."""


class SimulationTimeout(AssertionError):
    """``run_until`` ran out of virtual time; the message ends with the latest events."""


@dataclass(slots=True, eq=False)
class PacketRecord:
    """One segment put on the wire and what became of it.

    ``time`` is when the sender emitted it. ``dropped`` is true when no copy
    left the link (fault-injector loss or queue overflow, or a drop rule;
    ``reason`` says which: ``"loss"``, ``"rule"``). ``arrivals`` are the
    times copies were delivered to the destination stack; ``corrupted``
    counts copies damaged on the way (the checksum drops them, so they have no
    arrival). ``injected`` marks segments crafted by the test (``inject``).
    """

    time: float
    src: str
    dst: str
    segment: TcpSegment
    dropped: bool = False
    reason: str = ""
    injected: bool = False
    corrupted: int = 0
    duplicated: bool = False
    arrivals: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        fate = f" DROPPED({self.reason})" if self.dropped else ""
        return f"{self.time:12.6f} {self.src} > {self.dst} {self.segment}{fate}"


Predicate = Callable[[PacketRecord], bool]


@dataclass(slots=True, eq=False)
class DropRule:
    """Drops the next ``remaining`` packets matching ``predicate`` (``None``: all of them)."""

    predicate: Predicate
    remaining: int | None = 1
    dropped: list[PacketRecord] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.remaining is None or self.remaining > 0


@dataclass(order=True, slots=True)
class _Delivery:
    due: float
    order: int
    dst: str = field(compare=False)
    data: bytes = field(compare=False)
    record: PacketRecord = field(compare=False)


class Simulator:
    """Stacks connected by a virtual wire with optional faults per direction."""

    def __init__(self, seed: int = 0, start_time: float = 0.0, mtu: int = 1500) -> None:
        self.seed = seed
        self.now = start_time
        self.mtu = mtu
        self.stacks: dict[str, StackCore] = {}
        self.events: list[TraceEvent] = []
        self.packets: list[PacketRecord] = []
        self.counters: Counter[str] = Counter()
        self.faults: dict[tuple[str, str], FaultInjector] = {}
        self.rules: list[DropRule] = []
        self._queue: list[_Delivery] = []
        self._order = itertools.count()
        self._ident: Counter[str] = Counter()
        self._hooks: list[Callable[[float], object]] = []
        self._stalled = 0  # steps since the clock last moved

    # Building the world ---------------------------------------------------
    def add_stack(self, addr: str | tuple[str, ...],
                  config: StackConfig | None = None) -> StackCore:
        """A new stack at ``addr`` (or a dual stack at a tuple of an IPv4 and an
        IPv6 address); its ISN secret derives from the simulator's seed."""
        addrs = (addr,) if isinstance(addr, str) else tuple(addr)
        for one in addrs:
            if one in self.stacks:
                raise ValueError(f"a stack already has address {one}")
        if config is None:
            secret = hashlib.sha256(f"tcpstack-sim|{self.seed}|{addrs[0]}".encode()).digest()[:16]
            config = StackConfig(isn_secret=secret, mtu=self.mtu)
        stack = StackCore(local_addr=addr, config=config, tracer=self.events.append)
        for one in addrs:
            self.stacks[one] = stack
        return stack

    def set_faults(self, src: str, dst: str, spec: FaultSpec | None) -> FaultInjector | None:
        """Faults for packets from ``src`` to ``dst`` (``None`` removes them)."""
        if spec is None or spec.is_null:
            self.faults.pop((src, dst), None)
            return None
        if spec.seed is None:
            spec = spec.with_seed(self.seed)
        injector = FaultInjector(spec)
        self.faults[(src, dst)] = injector
        return injector

    def set_faults_both_ways(self, a: str, b: str, spec: FaultSpec) -> None:
        """The same faults both ways, with independent random streams (seed, seed + 1)."""
        seed = self.seed if spec.seed is None else spec.seed
        self.set_faults(a, b, spec.with_seed(seed))
        self.set_faults(b, a, spec.with_seed(seed + 1))

    def drop(self, predicate: Predicate, count: int | None = 1) -> DropRule:
        """Drop the next ``count`` packets for which ``predicate(record)`` is true.

        The predicate sees the ``PacketRecord`` (time, src, dst, segment) before
        any fault applies; with ``count=None`` the rule never expires.
        """
        rule = DropRule(predicate, count)
        self.rules.append(rule)
        return rule

    def inject(self, src: str, dst: str, seg: TcpSegment, delay: float = 0.0) -> PacketRecord:
        """Put a crafted segment on the wire (no faults, no drop rules), due after ``delay``."""
        data = build_packet(src, dst, seg, ident=self._next_ident(src))
        record = PacketRecord(self.now, src, dst, seg, injected=True)
        self.packets.append(record)
        self._push(self.now + delay, dst, data, record)
        return record

    def every_step(self, hook: Callable[[float], object]) -> None:
        """Call ``hook(now)`` after every step: the applications of a scenario."""
        self._hooks.append(hook)

    # Running ---------------------------------------------------------------
    def flush(self) -> None:
        """Put what the stacks have emitted on the wire now (drop rules and faults apply),
        without moving the clock: e.g. after an application call, before ``inject``."""
        self._collect()

    def next_event_time(self) -> float | None:
        """When the next packet is due or the earliest stack deadline falls."""
        self._collect()
        times = [self._queue[0].due] if self._queue else []
        for stack in self.stacks.values():
            deadline = stack.next_deadline()
            if deadline is not None:
                times.append(deadline)
        return min(times) if times else None

    def step(self, limit: float | None = None) -> bool:
        """Process the next event (one delivery, or the stacks' due timers).

        Returns False, without moving the clock, when nothing is pending or the
        next event lies beyond ``limit``.
        """
        when = self.next_event_time()
        if when is None or (limit is not None and when > limit):
            return False
        if when > self.now:
            self.now = when
            self._stalled = 0
        else:
            self._stalled += 1
            if self._stalled > MAX_STEPS_WITHOUT_PROGRESS:
                raise SimulationError(f"no progress at t={self.now}: a deadline never clears "
                                      f"or packets bounce forever\n{self.tail()}")
        queue = self._queue
        if queue and queue[0].due <= self.now:
            delivery = heapq.heappop(queue)
            self._deliver(delivery)
        else:
            for stack in self.stacks.values():
                deadline = stack.next_deadline()
                if deadline is not None and deadline <= self.now:
                    stack.poll(self.now)
        self._collect()
        for hook in self._hooks:
            hook(self.now)
        return True

    def run_for(self, seconds: float) -> None:
        """Run every event within the next ``seconds``, then set the clock to the end."""
        end = self.now + seconds
        while self.step(limit=end):
            pass
        self.now = max(self.now, end)

    def run_until(self, predicate: Callable[[], bool], timeout: float) -> float:
        """Run until ``predicate()`` is true; returns the virtual time it took.

        Raises ``SimulationTimeout`` (with the latest trace events) when it is
        still false after ``timeout`` virtual seconds or when nothing is left to do.
        """
        start = self.now
        end = start + timeout
        while not predicate():
            if not self.step(limit=end):
                idle = self.next_event_time() is None
                self.now = max(self.now, end) if not idle else self.now
                why = "nothing left to happen" if idle else f"{timeout} s of virtual time passed"
                raise SimulationTimeout(f"condition not met at t={self.now:.6f}: {why}\n"
                                        f"{self.tail()}")
        return self.now - start

    def run_until_idle(self, timeout: float) -> None:
        """Run until no packet is in flight and no deadline is left (or ``timeout`` passes)."""
        self.run_until(lambda: self.next_event_time() is None, timeout)

    def wire_segments(self) -> list[WireSegment]:
        """``sim.packets`` as the ladder renderer's ``WireSegment``s (``ladder_from_trace(
        sim.events, wire=sim.wire_segments())``): lost and injected segments included."""
        from tcpstack.ladder.build import WireSegment

        out = []
        for p in self.packets:
            seg = p.segment
            note = ("injected" if p.injected else
                    "corrupted" if p.corrupted and not p.arrivals else
                    "duplicated" if p.duplicated else "")
            out.append(WireSegment(p.time, (p.src, seg.src_port), (p.dst, seg.dst_port), seg,
                                   dropped=p.dropped or (not p.arrivals and p.corrupted > 0),
                                   note=note))
        return out

    def tail(self, count: int = _TAIL_EVENTS) -> str:
        """The latest trace events as text, for failure messages."""
        return "\n".join(str(event) for event in self.events[-count:])

    # Inside ----------------------------------------------------------------
    def _next_ident(self, src: str) -> int:
        self._ident[src] += 1
        return self._ident[src] & 0xFFFF

    def _push(self, due: float, dst: str, data: bytes, record: PacketRecord) -> None:
        heapq.heappush(self._queue, _Delivery(due, next(self._order), dst, data, record))

    def _collect(self) -> None:
        """Move every segment the stacks emitted onto the wire."""
        for stack in dict.fromkeys(self.stacks.values()):   # a dual stack is there twice
            for src, dst, seg in stack.take_output():
                self._transmit(src, dst, seg)
            stack.take_changed()

    def _transmit(self, src: str, dst: str, seg: TcpSegment) -> None:
        now = self.now
        record = PacketRecord(now, src, dst, seg)
        self.packets.append(record)
        self.counters["packets"] += 1
        for rule in self.rules:
            if rule.active and rule.predicate(record):
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.dropped.append(record)
                record.dropped, record.reason = True, "rule"
                self.counters["dropped_by_rule"] += 1
                return
        data = build_packet(src, dst, seg, ident=self._next_ident(src))
        injector = self.faults.get((src, dst))
        if injector is None:
            self._push(now, dst, data, record)
            return
        deliveries = injector.process(data, now)
        if not deliveries:
            record.dropped, record.reason = True, "loss"
            self.counters["dropped_by_fault"] += 1
            return
        record.duplicated = len(deliveries) > 1
        for due, copy in deliveries:
            if copy != data:
                record.corrupted += 1
            self._push(due, dst, copy, record)

    def _deliver(self, delivery: _Delivery) -> None:
        stack = self.stacks.get(delivery.dst)
        if stack is None:
            self.counters["no_route"] += 1
            return
        try:
            ip, seg = parse_packet(delivery.data)
        except WireError as exc:
            self.counters[f"wire_{exc.reason}"] += 1
            return
        delivery.record.arrivals.append(self.now)
        self.counters["delivered"] += 1
        stack.receive(ip.src, ip.dst, seg, self.now)
