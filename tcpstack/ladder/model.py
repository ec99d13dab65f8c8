"""The ladder diagram as data: lifelines (endpoints) and what happened on them, in time order.

A ``Ladder`` is neutral: it is built from trace events (the userspace side,
exact), from captured segments (any side, states inferred), or by hand in
tests, and every renderer (text, SVG, HTML) reads only this model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpstack.core.state import State
from tcpstack.wire.addr import endpoint_text
from tcpstack.wire.tcp import TcpSegment


@dataclass(frozen=True, slots=True)
class Lifeline:
    """One endpoint of the exchange: an address, a port and who it is."""

    addr: str
    port: int
    role: str = ""          # "tcpstack", "kernel", "client"... shown under the address

    @property
    def name(self) -> str:
        return endpoint_text(self.addr, self.port)


@dataclass(frozen=True, slots=True)
class SegmentItem:
    """One segment, drawn as an arrow from lifeline ``src`` to lifeline ``dst``."""

    time: float
    src: int
    dst: int
    segment: TcpSegment
    dropped: bool = False   # lost on the way: the arrow ends in an X
    note: str = ""          # e.g. "retransmission", "keepalive probe"


@dataclass(frozen=True, slots=True)
class StateItem:
    """Lifeline ``endpoint`` entered ``new`` (written on the lifeline).

    ``inferred`` is True when nobody traced that endpoint and its state was
    deduced from the segments it sent and received.
    """

    time: float
    endpoint: int
    new: State
    old: State | None = None
    inferred: bool = False


@dataclass(frozen=True, slots=True)
class TimerItem:
    """A timer of lifeline ``endpoint`` fired (``timer`` is a TIMER_* name)."""

    time: float
    endpoint: int
    timer: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class NoteItem:
    """Free text at a point in time, next to a lifeline or across the diagram."""

    time: float
    text: str
    endpoint: int | None = None


Item = SegmentItem | StateItem | TimerItem | NoteItem


@dataclass(slots=True)
class Ladder:
    """Lifelines plus items in time order (stable for equal times)."""

    lifelines: list[Lifeline]
    items: list[Item] = field(default_factory=list)
    title: str = ""
    explanation: str = ""

    def add(self, item: Item) -> None:
        self.items.append(item)

    def sort(self) -> None:
        """Order by time; equal times keep the order they were added in."""
        self.items.sort(key=lambda it: it.time)

    @property
    def segments(self) -> list[SegmentItem]:
        return [it for it in self.items if isinstance(it, SegmentItem)]

    def states(self, endpoint: int) -> list[State]:
        """The states lifeline ``endpoint`` went through, in order."""
        return [it.new for it in self.items
                if isinstance(it, StateItem) and it.endpoint == endpoint]

    def timers(self, endpoint: int | None = None) -> list[str]:
        return [it.timer for it in self.items if isinstance(it, TimerItem)
                and (endpoint is None or it.endpoint == endpoint)]

    @property
    def start_time(self) -> float:
        return self.items[0].time if self.items else 0.0

    def index_of(self, addr: str, port: int) -> int | None:
        for i, line in enumerate(self.lifelines):
            if line.addr == addr and line.port == port:
                return i
        return None
