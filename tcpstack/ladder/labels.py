"""How a segment, a state and a timer are written on a ladder diagram.

Sequence numbers are shown relative to each side's initial sequence number
(the ISN of its first SYN, else its first sequence number seen) unless
``absolute`` is asked for, as Wireshark does. Windows are shown scaled when
both SYNs carried the window scale option (RFC 7323 §2.2: the window field
of a SYN is never scaled).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpstack.core import events
from tcpstack.ladder.model import Ladder, SegmentItem, StateItem
from tcpstack.seq import Seq
from tcpstack.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpSegment

_ORDER = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (URG, "URG"),
          (ECE, "ECE"), (CWR, "CWR"), (ACK, "ACK"))


def flag_word(flags: int) -> str:
    """``SYN``, ``SYN-ACK``, ``ACK``, ``FIN+ACK``, ``PSH+ACK``, ``RST``... (``none``: no flags)."""
    if flags & (SYN | ACK) == SYN | ACK and not flags & ~(SYN | ACK) & 0xFF:
        return "SYN-ACK"
    names = [name for bit, name in _ORDER if flags & bit]
    return "+".join(names) if names else "none"


def arrow_kind(item: SegmentItem) -> str:
    """How an arrow is drawn: ``lost``, ``rst``, ``syn``, ``fin``, ``data`` or ``ack``."""
    flags = item.segment.flags
    if item.dropped:
        return "lost"
    if flags & RST:
        return "rst"
    if flags & SYN:
        return "syn"
    if flags & FIN:
        return "fin"
    return "data" if item.segment.payload else "ack"


TIMER_TEXT = {
    events.TIMER_RETRANSMIT: "retransmission timeout",
    events.TIMER_PERSIST: "persist timer",
    events.TIMER_KEEPALIVE: "keepalive timer",
    events.TIMER_DELAYED_ACK: "delayed-ACK timer",
    events.TIMER_TIME_WAIT: "2MSL expired",
    events.TIMER_FIN_WAIT_2: "FIN-WAIT-2 timeout",
    events.TIMER_LOSS_PROBE: "tail loss probe",
    events.TIMER_REORDER: "RACK reorder timer",
}


def timer_text(timer: str, note: str = "") -> str:
    text = TIMER_TEXT.get(timer, f"{timer} timer")
    return f"{text} ({note})" if note else text


def state_text(item: StateItem) -> str:
    """The state as written on the lifeline; ``~`` marks an inferred one."""
    return f"~{item.new}" if item.inferred else str(item.new)


@dataclass(frozen=True, slots=True)
class SegmentLabel:
    """A segment's label: ``main`` goes on the arrow, ``extra`` below it."""

    main: list[str]
    extra: list[str]

    @property
    def tokens(self) -> list[str]:
        return self.main + self.extra


class Numbering:
    """Per-lifeline bases for relative seq/ack numbers and window scale shifts."""

    def __init__(self, ladder: Ladder, absolute: bool = False) -> None:
        self.absolute = absolute
        self.base: dict[int, int] = {}
        syn_base: dict[int, int] = {}
        wscale: dict[int, int | None] = {}
        for item in ladder.segments:
            seg = item.segment
            self.base.setdefault(item.src, seg.seq)
            if seg.flags & SYN:
                syn_base.setdefault(item.src, seg.seq)
                wscale.setdefault(item.src, seg.options.wscale)
        self.base.update(syn_base)
        both = len(wscale) >= 2 and all(v is not None for v in wscale.values())
        self.shift: dict[int, int] = (
            {k: min(v or 0, 14) for k, v in wscale.items()} if both else {})

    def seq(self, endpoint: int, value: int) -> int:
        if self.absolute or endpoint not in self.base:
            return value
        return int(Seq(value) - Seq(self.base[endpoint]))

    def window(self, item: SegmentItem) -> int:
        if item.segment.flags & SYN:
            return item.segment.window
        return item.segment.window << self.shift.get(item.src, 0)


def segment_label(item: SegmentItem, numbering: Numbering,
                  all_timestamps: bool = False) -> SegmentLabel:
    seg: TcpSegment = item.segment
    main = [flag_word(seg.flags), f"seq={numbering.seq(item.src, seg.seq)}"]
    if seg.flags & ACK:
        main.append(f"ack={numbering.seq(item.dst, seg.ack)}")
    if seg.payload:
        main.append(f"len={len(seg.payload)}")
    main.append(f"win={numbering.window(item)}")
    extra: list[str] = []
    opts = seg.options
    if opts.mss is not None:
        extra.append(f"mss={opts.mss}")
    if opts.wscale is not None:
        extra.append(f"wscale={opts.wscale}")
    if opts.sack_permitted:
        extra.append("sack-ok")
    if opts.sack_blocks:
        blocks = ",".join(f"{numbering.seq(item.dst, left)}-{numbering.seq(item.dst, right)}"
                          for left, right in opts.sack_blocks)
        extra.append(f"sack={blocks}")
    if opts.timestamps is not None and (all_timestamps or seg.flags & SYN):
        # On every segment once negotiated: shown on the SYNs unless asked for.
        extra.append(f"ts={opts.timestamps[0]}/{opts.timestamps[1]}")
    if item.note:
        extra.append(f"({item.note})")
    if item.dropped:
        extra.append("(lost)")
    return SegmentLabel(main, extra)
