"""Turn a ``Ladder`` into rows, the common skeleton of every renderer.

One row per segment (an arrow), per group of simultaneous state changes
(labels on the lifelines), per timer and per note. A row carries the time
to print on the left, or None when it repeats the previous row's time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tcpstack.ladder.labels import Numbering, SegmentLabel, segment_label, state_text, timer_text
from tcpstack.ladder.model import Ladder, NoteItem, SegmentItem, StateItem, TimerItem


@dataclass(slots=True)
class Row:
    kind: str                       # "arrow", "states", "timer", "note"
    time: float
    show_time: bool
    item: SegmentItem | TimerItem | NoteItem | None = None
    label: SegmentLabel | None = None
    states: list[StateItem] = field(default_factory=list)
    text: str = ""


def time_decimals(ladder: Ladder) -> int:
    span = (ladder.items[-1].time - ladder.start_time) if ladder.items else 0.0
    return 4 if span < 10 else 3 if span < 1000 else 1


def format_time(t: float, decimals: int) -> str:
    return f"{t:.{decimals}f}"


def build_rows(ladder: Ladder, absolute: bool = False) -> list[Row]:
    numbering = Numbering(ladder, absolute)
    rows: list[Row] = []
    last_time: str | None = None
    t0 = ladder.start_time
    decimals = time_decimals(ladder)
    for item in ladder.items:
        t = item.time - t0
        shown = format_time(t, decimals)
        show = shown != last_time
        if isinstance(item, StateItem):
            prev = rows[-1] if rows else None
            # Merge simultaneous state changes of different lifelines into one row.
            if (prev is not None and prev.kind == "states" and not show
                    and all(s.endpoint != item.endpoint for s in prev.states)):
                prev.states.append(item)
                continue
            rows.append(Row("states", t, show, states=[item]))
        elif isinstance(item, SegmentItem):
            rows.append(Row("arrow", t, show, item=item, label=segment_label(item, numbering)))
        elif isinstance(item, TimerItem):
            rows.append(Row("timer", t, show, item=item, text=timer_text(item.timer, item.note)))
        else:
            rows.append(Row("note", t, show, item=item, text=item.text))
        last_time = shown
    # A time belongs on the arrow it starts with, not on the states written above it.
    for row, nxt in itertools.pairwise(rows):
        if (row.kind == "states" and row.show_time and not nxt.show_time
                and format_time(row.time, decimals) == format_time(nxt.time, decimals)):
            row.show_time, nxt.show_time = False, True
    return rows


__all__ = ["Row", "build_rows", "format_time", "state_text", "time_decimals"]
