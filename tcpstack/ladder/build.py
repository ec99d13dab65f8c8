"""Build a ``Ladder`` from trace events (exact) or from captured segments (inferred).

``ladder_from_trace`` takes the ``TraceEvent``s of one or more tcpstack
stacks: a traced endpoint's states and timers are exact; every endpoint
that appears only as a peer gets inferred states. ``ladder_from_segments``
takes segments seen on a wire (a pcap) and infers every state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from tcpstack.core.events import TIMER_DELAYED_ACK, EventKind, TraceEvent
from tcpstack.core.state import State
from tcpstack.ladder.infer import annotate_segments, infer_states
from tcpstack.ladder.model import Ladder, Lifeline, NoteItem, SegmentItem, StateItem, TimerItem
from tcpstack.wire.tcp import ACK, SYN, TcpSegment

Endpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class WireSegment:
    """A segment seen on a wire: when, from where to where, and whether it arrived."""

    time: float
    src: Endpoint
    dst: Endpoint
    segment: TcpSegment
    dropped: bool = False
    note: str = ""


def _order_endpoints(segments: list[WireSegment], roles: dict[Endpoint, str]) -> list[Endpoint]:
    """Left to right: the first SYN's sender (the client), then its peer, then others."""
    order: list[Endpoint] = []
    first_syn = next((w for w in segments
                      if w.segment.flags & SYN and not w.segment.flags & ACK), None)
    if first_syn is not None:
        order += [first_syn.src, first_syn.dst]
    for w in segments:
        for ep in (w.src, w.dst):
            if ep not in order:
                order.append(ep)
    for ep in roles:
        if ep not in order:
            order.append(ep)
    return order


def _empty_ladder(endpoints: list[Endpoint], segs: list[WireSegment],
                  roles: dict[Endpoint, str], title: str,
                  explanation: str) -> tuple[Ladder, dict[Endpoint, int]]:
    """A ladder with one lifeline per endpoint (those only segments name go
    last) and the endpoint -> lifeline index."""
    for w in segs:
        for ep in (w.src, w.dst):
            if ep not in endpoints:
                endpoints.append(ep)
    index = {ep: i for i, ep in enumerate(endpoints)}
    ladder = Ladder([Lifeline(a, p, roles.get((a, p), "")) for a, p in endpoints],
                    title=title, explanation=explanation)
    return ladder, index


def ladder_from_segments(segments: Iterable[WireSegment], *,
                         roles: dict[Endpoint, str] | None = None,
                         order: list[Endpoint] | None = None,
                         title: str = "", explanation: str = "",
                         notes: Iterable[tuple[float, str, Endpoint]] = ()) -> Ladder:
    """A ladder of captured segments; every endpoint's states are inferred.
    ``notes`` are (time, text, endpoint) to write beside a lifeline (ICMP errors)."""
    segs = sorted(segments, key=lambda w: w.time)
    roles = roles or {}
    endpoints = list(order) if order else _order_endpoints(segs, roles)
    ladder, index = _empty_ladder(endpoints, segs, roles, title, explanation)
    for w in segs:
        ladder.add(SegmentItem(w.time, index[w.src], index[w.dst], w.segment, w.dropped,
                               w.note))
    for time, text, endpoint in notes:
        ladder.add(NoteItem(time, text, index.get(endpoint)))
    ladder.sort()
    annotate_segments(ladder)
    infer_states(ladder, set(range(len(endpoints))))
    return ladder


# What a learner should read for the core's drop reasons (others: "discarded: REASON").
DROP_TEXT = {
    "unacceptable-seq": "not in the window: answered with an ACK",
    "no-socket": "no socket on this port: answered with RST",
    "syn-sent-bad-ack": "ACK is not for our SYN: answered with RST",
    "rst-no-socket": "RST for no socket: ignored",
    "ack-to-listener": "ACK to a listener: answered with RST",
    "syn-received-bad-ack": "bad ACK: answered with RST",
    "rst-out-of-window": "RST out of window: ignored",
    "paws": "old timestamp (PAWS): discarded",
}


def drop_text(reason: str) -> str:
    return DROP_TEXT.get(reason, f"discarded: {reason}")


def ladder_from_trace(events: Iterable[TraceEvent], *,
                      wire: Iterable[WireSegment] | None = None,
                      roles: dict[Endpoint, str] | None = None,
                      order: list[Endpoint] | None = None,
                      title: str = "", explanation: str = "",
                      hide_timers: tuple[str, ...] = (TIMER_DELAYED_ACK,)) -> Ladder:
    """A ladder from tcpstack trace events, states and timers exact.

    Without ``wire``, segments come from the events: a segment is taken from
    its sender's SEGMENT_OUT when the sender is traced, else from the
    receiver's SEGMENT_IN. With ``wire`` (e.g. the simulator's packet
    records), that list is authoritative -- it knows which segments were
    lost and which were injected: each is drawn where its sender's
    SEGMENT_OUT happened, else where its traced receiver's SEGMENT_IN
    happened, else by time.
    Endpoints no stack traced get inferred states. Timers in ``hide_timers``
    (by default the frequent delayed-ACK timer) are left out.
    """
    evs = [e for e in events if not (e.kind is EventKind.TIMER and e.timer in hide_timers)]
    roles = roles or {}
    traced = {e.local for e in evs if e.local is not None}
    # Wire segments waiting for the event that places them: their traced
    # sender's SEGMENT_OUT, else their traced receiver's SEGMENT_IN.
    pending: dict[tuple[Endpoint, Endpoint, TcpSegment], deque[WireSegment]] = {}
    arriving: dict[tuple[Endpoint, Endpoint, TcpSegment], deque[WireSegment]] = {}
    loose: list[WireSegment] = []
    if wire is not None:
        for w in wire:
            if w.src in traced:
                pending.setdefault((w.src, w.dst, w.segment), deque()).append(w)
            elif w.dst in traced and not w.dropped:
                arriving.setdefault((w.src, w.dst, w.segment), deque()).append(w)
            else:
                loose.append(w)
    sequence: list[WireSegment | TraceEvent] = []
    for e in evs:
        if e.kind in (EventKind.SEGMENT_OUT, EventKind.SEGMENT_IN):
            if e.segment is None or not e.local or not e.remote:
                continue
            if wire is not None:
                if e.kind is EventKind.SEGMENT_OUT:
                    queue = pending.get((e.local, e.remote, e.segment))
                    if queue:
                        sequence.append(queue.popleft())
                elif queue := arriving.get((e.remote, e.local, e.segment)):
                    # Drawn when the receiver took it in, on the receiver's clock.
                    sequence.append(replace(queue.popleft(), time=e.time))
            elif e.kind is EventKind.SEGMENT_OUT:
                sequence.append(WireSegment(e.time, e.local, e.remote, e.segment))
            elif e.remote not in traced:
                sequence.append(WireSegment(e.time, e.remote, e.local, e.segment))
        elif e.local and (e.kind is not EventKind.STATE or e.new_state is not None):
            sequence.append(e)
    # Segments no traced SEGMENT_OUT accounts for go in by time.
    loose += [w for waiting in (pending, arriving) for queue in waiting.values() for w in queue]
    for w in sorted(loose, key=lambda w: w.time):
        at = len(sequence)
        while at > 0 and sequence[at - 1].time > w.time:
            at -= 1
        sequence.insert(at, w)
    segs = [x for x in sequence if isinstance(x, WireSegment)]
    endpoints = list(order) if order else _order_endpoints(segs, roles)
    for e in evs:
        if e.local and e.local not in endpoints:
            endpoints.append(e.local)
    ladder, index = _empty_ladder(endpoints, segs, roles, title, explanation)
    # The state a traced lifeline was in before its first transition; a
    # connection born in SYN-RECEIVED was made by a listener: it was LISTEN.
    first_old: dict[int, tuple[float, State]] = {}
    passive: set[int] = set()
    for e in evs:
        if e.kind is EventKind.STATE and e.local and e.old_state is not None:
            who = index[e.local]
            if who not in first_old and e.new_state is State.SYN_RECEIVED:
                passive.add(who)
            first_old.setdefault(who, (e.time, State.LISTEN if who in passive
                                       else e.old_state))
    in_time_wait: dict[int, float] = {}     # lifeline -> when it entered TIME-WAIT
    started: set[int] = set()
    for thing in sequence:
        involved = ((index[thing.src], index[thing.dst]) if isinstance(thing, WireSegment)
                    else (index[thing.local],))  # type: ignore[index]
        for who in involved:
            if who in first_old and who not in started:
                started.add(who)
                ladder.add(StateItem(thing.time, who, first_old[who][1]))
        if isinstance(thing, WireSegment):
            src = index[thing.src]
            ladder.add(SegmentItem(thing.time, src, index[thing.dst],
                                   thing.segment, thing.dropped, thing.note))
            if src in in_time_wait and thing.time > in_time_wait[src]:
                # RFC 9293 §3.10.7.4: a retransmitted FIN in TIME-WAIT is acknowledged
                # and the 2 MSL timeout restarted.
                ladder.add(NoteItem(thing.time, "2MSL timer restarted", src))
            continue
        who = index[thing.local]  # type: ignore[index]
        if thing.kind is EventKind.STATE:
            assert thing.new_state is not None
            new_state = thing.new_state
            if (who in passive and thing.old_state is State.SYN_RECEIVED
                    and new_state is State.CLOSED):
                new_state = State.LISTEN     # RFC 9293 §3.10.7.4: back to LISTEN
            if new_state is State.TIME_WAIT:
                in_time_wait[who] = thing.time
            else:
                in_time_wait.pop(who, None)
            ladder.add(StateItem(thing.time, who, new_state, thing.old_state))
        elif thing.kind is EventKind.TIMER:
            ladder.add(TimerItem(thing.time, who, thing.timer or "", thing.reason))
        elif thing.kind is EventKind.DROP:
            ladder.add(NoteItem(thing.time, drop_text(thing.reason), who))
        elif thing.kind is EventKind.ICMP or thing.kind is EventKind.PMTU:
            ladder.add(NoteItem(thing.time, thing.reason, who))
    annotate_segments(ladder)
    with_states = {e.local for e in evs if e.kind is EventKind.STATE}
    untraced = {i for i, ep in enumerate(endpoints) if ep not in with_states}
    if untraced:
        infer_states(ladder, untraced)
    return ladder
