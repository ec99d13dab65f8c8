"""Timers: one table per connection, one queue per stack.

Every timer of a connection is a named entry of ``TIMERS``; a connection
keeps their deadlines in a ``TimerTable`` (absolute times or None, never a
clock) and the stack keeps one ``TimerQueue`` of the earliest deadline of
each table (smoltcp's single ``poll_at()`` per socket, shared by a heap).
``next_deadline()``, ``armed()``, cancel-all and what is due all come from
the table, so adding a timer is one line in ``TIMERS`` plus its handler.

The queue is lazy: a table's entry may be earlier than its real deadline
(most deadlines only move later -- every ACK pushes the retransmission
timer out) and is re-read when it reaches the top. A deadline that moves
earlier is pushed at once by ``TimerTable.arm``; a cancelled one is simply
found missing when its entry comes up.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, NamedTuple

from tcpstack.core.events import (
    TIMER_DELAYED_ACK,
    TIMER_FIN_WAIT_2,
    TIMER_KEEPALIVE,
    TIMER_LOSS_PROBE,
    TIMER_PERSIST,
    TIMER_REORDER,
    TIMER_RETRANSMIT,
    TIMER_TIME_WAIT,
)

__all__ = [
    "DELAYED_ACK", "FIN_WAIT_2", "KEEPALIVE", "LOSS_PROBE", "PERSIST", "REORDER", "RETRANSMIT",
    "TIMERS", "TIME_WAIT", "Timer", "TimerQueue", "TimerTable",
]


class Timer(NamedTuple):
    """One kind of timer: its Linux name and the connection method that handles it."""

    name: str
    handler: str


# The firing order when several are due at once: the ones that end the
# connection first, the loss probe before the retransmission timeout
# (RFC 8985 §7.2: PTO = min(PTO, RTO)), the delayed ACK last (anything
# sent before it carries the ACK).
TIMERS: tuple[Timer, ...] = (
    Timer(TIMER_TIME_WAIT, "_on_time_wait_timer"),      # RFC 9293 §3.10.8 2MSL
    Timer(TIMER_FIN_WAIT_2, "_on_fin_wait_2_timer"),    # Linux tcp_fin_timeout (orphans)
    Timer(TIMER_LOSS_PROBE, "_on_loss_probe_timer"),    # RFC 8985 §7.2 PTO
    Timer(TIMER_REORDER, "_on_reorder_timer"),          # RFC 8985 §6.3
    Timer(TIMER_RETRANSMIT, "_on_retransmit_timer"),    # RFC 6298
    Timer(TIMER_PERSIST, "_on_persist_timer"),          # RFC 1122 4.2.2.17
    Timer(TIMER_KEEPALIVE, "_on_keepalive_timer"),      # RFC 1122 4.2.3.6
    Timer(TIMER_DELAYED_ACK, "_on_delayed_ack_timer"),  # RFC 1122 4.2.3.2
)

# Indexes into TimerTable.at, one per TIMERS entry, in the same order.
(TIME_WAIT, FIN_WAIT_2, LOSS_PROBE, REORDER, RETRANSMIT, PERSIST, KEEPALIVE,
 DELAYED_ACK) = range(len(TIMERS))

_NONE: tuple[None, ...] = (None,) * len(TIMERS)


class TimerTable:
    """The deadlines of one connection's timers, indexed by the constants above.

    Read ``at[T]`` (None when not armed); arm with ``arm(T, deadline)`` so
    the stack's queue learns of an earlier deadline; cancel with ``at[T] =
    None`` or ``cancel_all()``.
    """

    __slots__ = ("_queue", "at", "owner", "queued")

    def __init__(self, queue: TimerQueue, owner: Any) -> None:
        self.at: list[float | None] = list(_NONE)
        self.owner = owner               # the connection, handed back by TimerQueue.take_due
        self.queued: float | None = None  # deadline of this table's live queue entry
        self._queue = queue

    def arm(self, timer: int, deadline: float) -> None:
        self.at[timer] = deadline
        queued = self.queued
        if queued is None or deadline < queued:
            self.queued = deadline
            self._queue.push(deadline, self)

    def cancel_all(self) -> None:
        self.at[:] = _NONE
        self.queued = None               # every queue entry of this table is now stale

    def next_deadline(self) -> float | None:
        best = None
        for t in self.at:
            if t is not None and (best is None or t < best):
                best = t
        return best

    def armed(self) -> dict[str, float]:
        """Armed timers by Linux name -> absolute deadline, in firing order."""
        return {TIMERS[i].name: t for i, t in enumerate(self.at) if t is not None}

    def reschedule(self) -> None:
        """After the due timers ran: make sure the queue holds the next deadline."""
        d = self.next_deadline()
        if d is not None and (self.queued is None or d < self.queued):
            self.queued = d
            self._queue.push(d, self)


class TimerQueue:
    """The stack's heap of (deadline, tiebreak, table), lazily invalidated."""

    __slots__ = ("_compact_at", "_heap", "_tiebreak")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerTable]] = []
        self._tiebreak = itertools.count()
        self._compact_at = 256

    def push(self, deadline: float, table: TimerTable) -> None:
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._tiebreak), table))
        if len(heap) > self._compact_at:
            # Many stale entries (deadlines that kept moving earlier): drop them.
            heap[:] = [e for e in heap if e[0] == e[2].queued]
            heapq.heapify(heap)
            self._compact_at = 2 * len(heap) + 256

    def next_deadline(self) -> float | None:
        """The earliest deadline of any table (None if no timer is armed)."""
        heap = self._heap
        while heap:
            deadline, _, table = heap[0]
            if deadline != table.queued:
                heapq.heappop(heap)          # stale
                continue
            real = table.next_deadline()
            if real == deadline:
                return deadline
            if real is None:
                heapq.heappop(heap)          # every timer of the table went away
                table.queued = None
            else:
                # The deadline moved later: the entry moves with it (one heap operation).
                table.queued = real
                heapq.heapreplace(heap, (real, next(self._tiebreak), table))
        return None

    def take_due(self, now: float) -> list[TimerTable]:
        """The tables with a timer due at ``now``; their entries leave the queue
        (``TimerTable.reschedule`` puts them back once the timers ran)."""
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            deadline, _, table = heapq.heappop(heap)
            if deadline != table.queued:
                continue                     # stale
            table.queued = None
            real = table.next_deadline()
            if real is None:
                continue
            if real > now:
                table.reschedule()           # moved later: not due yet
            else:
                due.append(table)
        return due
