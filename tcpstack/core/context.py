"""What a connection may use of the stack it lives in (smoltcp's ``cx``).

A ``Connection`` never sees the ``StackCore``: it is handed a
``StackContext`` with the stack's configuration and address, the output
queue, the counters, the tracer, the timer queue, the set of things that
changed for the application, the RFC 5961 §7 challenge-ACK budget, and two
notifications (``connection_established``, ``connection_closed``) that the
stack implements. Everything a connection puts on the wire goes through
``emit``; that is also where pure ACKs that say nothing new are left out
(``coalesce_acks``), so the trace and the wire agree segment for segment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcpstack.core.config import StackConfig
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.core.isn import secret_key
from tcpstack.core.pmtu import PmtuCache
from tcpstack.core.state import State
from tcpstack.core.timers import TimerQueue
from tcpstack.wire.tcp import ACK, RST, TcpSegment

if TYPE_CHECKING:
    from tcpstack.core.connection import Connection

__all__ = ["StackContext", "Tracer"]

Tracer = Callable[[TraceEvent], None]
Endpoint = tuple[str, int]
_MASK = 0xFFFFFFFF
_HALF = 1 << 31
# The counter each state's entry adds to (``state_<name>``), made once: an
# enum member's ``name`` is a descriptor lookup, and every connection passes
# through five or six states.
_STATE_COUNTERS = {state: "state_" + state.name.lower() for state in State}
_TIME_WAIT = State.TIME_WAIT


def _sack_superseded(prev: TcpSegment, seg: TcpSegment) -> bool:
    """Whether the ACK ``seg`` tells the sender everything the ACK ``prev`` of
    the same connection told it about SACKed data: each of ``prev``'s SACK
    blocks (RFC 2018 §3) lies below ``seg``'s ACK number or inside one of
    ``seg``'s blocks.

    The receiver reports only the 3 or 4 most recently changed ranges (RFC 2018
    §4), so when one batch of arriving segments changes more ranges than that
    (a GRO batch spanning several holes), a range reported only by an earlier
    ACK of the batch would otherwise reach the sender in no ACK at all.
    """
    blocks = prev.options.sack_blocks
    if not blocks:
        return True
    ack = seg.ack
    later = seg.options.sack_blocks
    for left, right in blocks:
        if 0 <= ((ack - right) & _MASK) < _HALF:      # right edge at or below the ACK
            continue
        if not any(((left - lo) & _MASK) < _HALF and ((hi - right) & _MASK) < _HALF
                   for lo, hi in later):
            return False
    return True


class StackContext:
    """The stack's side of its connections. Subclassed by the stack for the two
    notifications; everything else is here."""

    __slots__ = (
        "_challenge_budget", "_challenge_second", "_held", "_key", "_last_ack", "_out",
        "_rst_count", "_rst_second", "changed", "coalesce_acks", "config", "counters",
        "local_addr", "local_addr4", "local_addr6", "pmtu", "rcv_mem", "time_wait", "timers",
        "tracer",
    )

    def __init__(self, local_addr: str | tuple[str, ...], config: StackConfig,
                 tracer: Tracer | None) -> None:
        addrs = (local_addr,) if isinstance(local_addr, str) else tuple(local_addr)
        v4 = [a for a in addrs if ":" not in a]
        v6 = [a for a in addrs if ":" in a]
        if not addrs or len(v4) > 1 or len(v6) > 1:
            raise ValueError(f"one address per family, at least one: {addrs!r}")
        self.local_addr = addrs[0]          # the first given: the stack's name for itself
        self.local_addr4: str | None = v4[0] if v4 else None
        self.local_addr6: str | None = v6[0] if v6 else None
        self.config = config
        self.tracer = tracer
        self.counters: dict[str, int] = {}
        self.timers = TimerQueue()
        self.changed: set[Any] = set()         # readable/writable/state/accept for the runtime
        self.coalesce_acks = config.coalesce_acks
        self.rcv_mem = 0          # bytes held for applications, all connections
        self.time_wait = 0        # connections in TIME-WAIT
        # RFC 1191 path MTUs learned per destination (core/pmtu.py).
        self.pmtu = PmtuCache(config.pmtu_expires, self.counters)
        self._out: list[tuple[str, str, TcpSegment] | None] = []
        # Pure ACKs emitted since the last take_output: connection 4-tuple -> index in
        # _out (and, with a tracer, in _held) of the newest one.
        self._last_ack: dict[tuple[int, str, int], tuple[int, int]] = {}
        self._held: list[TraceEvent | None] | None = None   # trace events waiting on _out
        self._key = secret_key(config.isn_secret)
        self._challenge_second = -1
        self._challenge_budget = 0
        self._rst_second = -1
        self._rst_count = 0

    def local_for(self, remote_addr: str) -> str | None:
        """This stack's address of ``remote_addr``'s family (IPv6 text has a
        colon), or None when the stack has none of that family."""
        return self.local_addr6 if ":" in remote_addr else self.local_addr4

    # ---------------------------------------------------------------- counting
    def count(self, name: str, n: int = 1) -> None:
        c = self.counters
        c[name] = c.get(name, 0) + n

    def trace(self, event: TraceEvent) -> None:
        """Hand ``event`` to the tracer (only call when ``tracer`` is set)."""
        held = self._held
        if held is not None:
            held.append(event)
        else:
            self.tracer(event)               # type: ignore[misc]

    def drop(self, local: Endpoint | None, remote: Endpoint | None,
             seg: TcpSegment | None, reason: str, now: float) -> None:
        self.count("drop_" + reason.replace("-", "_"))
        if self.tracer is not None:
            self.trace(TraceEvent(now, EventKind.DROP, local, remote, segment=seg,
                                  reason=reason))

    # ---------------------------------------------------------------- output
    def emit(self, local: Endpoint, remote: Endpoint, seg: TcpSegment, now: float) -> None:
        """Queue ``seg`` for the wire (from ``local`` to ``remote``).

        A pure ACK that a later pure ACK of the same connection emitted before
        the next ``take_output`` supersedes (a strictly higher cumulative ACK;
        its window is at least as far right, RFC 9293 §3.8.6.2.2) is left out
        and counted as ``acks_coalesced``: one batch of arriving segments often
        draws several ACKs and only the newest tells the peer anything new, as
        with a receiver that coalesces (GRO, LRO). Duplicate ACKs (the same ACK
        number: loss signals, RFC 5681 §3.2) are all kept unless both carry SACK
        blocks (Linux compresses SACKs too). Either way an ACK with SACK blocks
        is left out only if the later one still tells everything it told: each
        of its blocks lies below the later ACK number or inside one of the later
        blocks (``_sack_superseded``); and every segment with data or another
        flag is kept.
        """
        out = self._out
        c = self.counters
        c["segments_out"] = c.get("segments_out", 0) + 1
        flags = seg.flags
        if flags & RST:
            self.count("resets_sent")
        tracer = self.tracer
        if flags == ACK and not seg.payload and self.coalesce_acks:
            key = (local[1], remote[0], remote[1])
            last = self._last_ack.get(key)
            held = self._held
            if tracer is not None and held is None:
                held = self._held = []       # trace events wait until take_output
            if last is not None:
                j, k = last
                prev = out[j]
                if prev is not None:
                    newer = (seg.ack - prev[2].ack) & _MASK
                    # A duplicate ACK with SACK blocks is superseded by a later one
                    # with newer blocks (Linux's SACK compression, tcp_sack_compress):
                    # the sender learns from the blocks, and the first block always
                    # names the newest data (RFC 2018 §4). Without SACK each
                    # duplicate ACK counts (RFC 5681 §3.2) and all are kept.
                    # Either way the later ACK must still tell all the earlier one
                    # did: a SACK block left out of every ACK sent is a range the
                    # sender resends needlessly (RFC 6675 §4 IsLost() counts it lost).
                    if ((0 < newer < _HALF or (newer == 0 and seg.options.sack_blocks
                                               and prev[2].options.sack_blocks))
                            and _sack_superseded(prev[2], seg)):
                        out[j] = None
                        if held is not None:
                            held[k] = None
                        c["acks_coalesced"] = c.get("acks_coalesced", 0) + 1
            self._last_ack[key] = (len(out), len(held) if held is not None else 0)
        out.append((local[0], remote[0], seg))
        if tracer is not None:
            self.trace(TraceEvent(now, EventKind.SEGMENT_OUT, local, remote, segment=seg))

    def has_output(self) -> bool:
        """Segments wait for ``take_output`` (or wait no longer: coalesced away)."""
        return bool(self._out)

    def take_output(self) -> list[tuple[str, str, TcpSegment]]:
        out = self._out
        self._out = []
        if self._last_ack:
            self._last_ack = {}
            out = [item for item in out if item is not None]
        held = self._held
        if held is not None:
            self._held = None
            tracer = self.tracer
            for event in held:
                if event is not None:
                    tracer(event)            # type: ignore[misc]
        return out                           # type: ignore[return-value]

    def challenge_ack_allowed(self, now: float) -> bool:
        """RFC 5961 §7: a stack-wide budget of challenge ACKs per second.

        The budget is ``limit/2`` plus an unpredictable share of ``limit`` each
        second (Linux's fix for CVE-2016-5696): with an exact 1,000 an off-path
        attacker counts the challenge ACKs that still come back and learns
        whether a guessed 4-tuple exists. The core has no random source; a keyed
        hash of the second stands in for one.
        """
        second = int(now)
        if second != self._challenge_second:
            self._challenge_second = second
            limit = self.config.challenge_ack_limit
            digest = hashlib.blake2s(second.to_bytes(8, "big", signed=True), digest_size=4,
                                     key=self._key, person=b"tcp-chal").digest()
            self._challenge_budget = limit // 2 + int.from_bytes(digest, "big") % (limit + 1)
        if self._challenge_budget <= 0:
            return False
        self._challenge_budget -= 1
        return True

    def rst_allowed(self, now: float) -> bool:
        """At most ``rst_limit`` RSTs per second for segments that find no socket."""
        second = int(now)
        if second != self._rst_second:
            self._rst_second = second
            self._rst_count = 0
        if self._rst_count >= self.config.rst_limit:
            return False
        self._rst_count += 1
        return True

    # ---------------------------------------------------------------- lifecycle
    def state_changed(self, conn: Connection, old: State, new: State, now: float) -> None:
        if self.tracer is not None:
            self.trace(TraceEvent(now, EventKind.STATE, conn.local, conn.remote,
                                  old_state=old, new_state=new))
        self.changed.add(conn)
        c = self.counters
        name = _STATE_COUNTERS[new]
        c[name] = c.get(name, 0) + 1
        if new is _TIME_WAIT:
            self.time_wait += 1
        elif old is _TIME_WAIT:
            self.time_wait -= 1

    def memory_pressure(self) -> bool:
        """Buffered receive bytes passed ``rcv_mem_limit`` (Linux tcp_mem pressure)."""
        return self.rcv_mem > self.config.rcv_mem_limit

    def connection_established(self, conn: Connection) -> None:
        """``conn`` reached ESTABLISHED (a passive one joins its listener's accept queue)."""

    def connection_closed(self, conn: Connection) -> None:
        """``conn`` entered CLOSED: its TCB is deleted."""
