"""Trace events: what the core did, as data. Ladders, logs and tests read these.

Every state transition, every segment in and out, every timer that fired and
every dropped segment produces one ``TraceEvent`` through the stack's tracer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tcpstack.core.state import State
from tcpstack.wire.tcp import TcpSegment

Endpoint = tuple[str, int]


class EventKind(Enum):
    SEGMENT_IN = "in"
    SEGMENT_OUT = "out"
    STATE = "state"
    TIMER = "timer"
    DROP = "drop"
    ICMP = "icmp"        # an ICMP error about a connection arrived (reason: what it said)
    PMTU = "pmtu"        # the connection's path MTU changed (reason: from, to, why)


# Timer names, as Linux names them (``ss -o`` shows on/keepalive/timewait/persist).
TIMER_RETRANSMIT = "retransmit"
TIMER_PERSIST = "persist"
TIMER_KEEPALIVE = "keepalive"
TIMER_DELAYED_ACK = "delayed-ack"
TIMER_TIME_WAIT = "time-wait"
TIMER_FIN_WAIT_2 = "fin-wait-2"
# RFC 8985 timers (Linux: ICSK_TIME_LOSS_PROBE, ICSK_TIME_REO_TIMEOUT).
TIMER_LOSS_PROBE = "loss-probe"
TIMER_REORDER = "reorder"


@dataclass(frozen=True, slots=True)
class TraceEvent:
    time: float
    kind: EventKind
    local: Endpoint | None
    remote: Endpoint | None
    segment: TcpSegment | None = None   # SEGMENT_IN / SEGMENT_OUT / DROP (if parsed)
    old_state: State | None = None      # STATE
    new_state: State | None = None      # STATE
    timer: str | None = None            # TIMER: one of the TIMER_* names
    reason: str = ""                    # DROP reason, or a note (e.g. "probe 3/9")

    def __str__(self) -> str:
        where = f"{self.local[0]}:{self.local[1]}" if self.local else "-"
        if self.remote:
            where += f" <> {self.remote[0]}:{self.remote[1]}"
        if self.kind is EventKind.STATE:
            what = f"{self.old_state} -> {self.new_state}"
        elif self.kind is EventKind.TIMER:
            what = f"timer {self.timer} fired"
        elif self.segment is not None:
            what = str(self.segment)
        else:
            what = ""
        extra = f" ({self.reason})" if self.reason else ""
        return f"{self.time:12.6f} {where} {self.kind.value:5} {what}{extra}"
