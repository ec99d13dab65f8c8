"""The incremental SACK scoreboard and RACK send log (tcpstack.core.sack) against
the implementation they replaced (tests/unit/sack_reference.py, verbatim), and
how their work per ACK grows with what is in flight.

- ``test_same_as_reference``: random sender histories (new data, go-back-N,
  retransmissions of holes and of arbitrary ranges, ACKs with SACK blocks
  that fit the segments or not, D-SACKs, old ACKs, RACK and IsLost marking,
  RTOs, clocks that stand still or, rarely, go back, wrap-around at 2**32,
  a scoreboard that forgets ranges beyond MAX_RANGES, a head retransmission
  reaching past SND.MAX so that new data overlaps it) applied to both; every
  return value and every observable compared after every step.
  A few fixed histories do the same for what random ones reach rarely.
- ``test_connections_same_as_reference``: whole transfers in the simulator
  through loss, reordering and duplication, with SackRecovery built on the
  reference classes and on the new ones: the same packets, at the same
  times, and the same counters; ``test_rto_against_a_closed_window_resends_only_what_was_sent``
  likewise for a peer that shuts its window.
- ``test_work_per_ack_does_not_grow_with_the_flight``: lines of sack.py, sentlog.py and
  recovery.py executed per SACK ACK with 400 and 3,200 segments in flight
  (a count, not a time): flat for the new code, ~8x for the reference.

tools/bench-sack times the same comparison.
"""

from __future__ import annotations

import hashlib
import random
import sys
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import pytest
import sack_reference as ref
from core_helpers import Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcpstack.core.recovery as recovery_mod
import tcpstack.core.sack as sack_mod
import tcpstack.core.sentlog as sentlog_mod
from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.sack import SackScoreboard
from tcpstack.core.sentlog import SentLog
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State
from tcpstack.link.fault import FaultSpec
from tcpstack.seq import MOD, Seq
from tcpstack.sim import SimulationTimeout, Simulator
from tcpstack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

MASK = MOD - 1


# -- the two implementations side by side -----------------------------------------

def observe(sb, log) -> dict:
    """Everything a caller can see of a scoreboard and a send log."""
    return {
        "entries": log.entries(),
        "len": len(log),
        "pipe": log.pipe(),
        "lost_bytes": log.lost_bytes(),
        "has_lost": log.has_lost,
        "has_retransmitted": log.has_retransmitted,
        "first_lost": log.first_lost(),
        "rack": (log.xmit_ts, log.order, log.rtt, log.min_rtt, log.fack, log.reordering_seen),
        "ranges": sb.ranges(),
        "sacked": sb.sacked_bytes,
        "nranges": len(sb),
        "highest": sb.highest_sacked,
        "repr": repr(sb),
    }


def probe(sb, una: int, nxt: int, mss: int, points: list[int], rxt: int) -> list:
    """Scoreboard queries at a few sequence numbers (advance() to ``una`` first, as
    every caller does: pipe and next_seg move the base)."""
    out: list = [sb.pipe(una, nxt, (una + rxt) & MASK, mss),
                 sb.next_seg(una, nxt, (una + rxt) & MASK, mss),
                 sb.next_seg(una, nxt, (una + rxt) & MASK, mss, rule3=True)]
    for p in points:
        seq = (una + p) & MASK
        out.append((sb.is_lost(seq, mss), sb.is_sacked(seq, 1), sb.is_sacked(seq, mss)))
    return out


class Sender:
    """A sender's sequence-space bookkeeping, driving two (scoreboard, log) pairs."""

    def __init__(self, iss: int, mss: int) -> None:
        self.iss = iss
        self.mss = mss
        self.una = 0          # offsets from iss (no wrap here; seq() wraps)
        self.nxt = 0
        self.max = 0
        self.now = 0.0
        self.pairs = [(ref.SackScoreboard(), ref.SentLog()), (SackScoreboard(), SentLog())]

    def seq(self, off: int) -> int:
        return (self.iss + off) & MASK

    def both(self, fn):
        results = [fn(sb, log) for sb, log in self.pairs]
        assert results[0] == results[1]
        return results[0]

    def check(self) -> None:
        old, new = (observe(sb, log) for sb, log in self.pairs)
        for key in old:
            assert old[key] == new[key], key

    # -- operations --------------------------------------------------------------
    def send(self, length: int) -> None:
        """What SendSide._account_sent reports: at SND.NXT, a retransmission below SND.MAX."""
        start = self.nxt
        retrans = start < self.max
        self.both(lambda sb, log: log.on_send(self.seq(start), self.seq(start + length),
                                              self.now, retrans))
        self.nxt = start + length
        self.max = max(self.max, self.nxt)

    def resend(self, start: int, length: int) -> None:
        """_retransmit_range: [start, start + length) again; SND.NXT stays."""
        self.both(lambda sb, log: log.on_send(self.seq(start), self.seq(start + length),
                                              self.now, True))

    def ack(self, advance: int, blocks: list[tuple[int, int]], mode: int) -> None:
        """An ACK: mode 0 the usual (scoreboard, then on_ack), 1 on_ack without a
        scoreboard, 2 the scoreboard only (an old ACK, or one that is neither new
        nor a duplicate)."""
        una = min(self.una + advance, self.max)
        wire = [(self.seq(a), self.seq(b)) for a, b in blocks]

        def run(sb, log):
            if wire:
                added = sb.update(self.seq(una), self.seq(self.max), wire)
            else:
                sb.advance(self.seq(una))
                added = None
            if mode == 0:
                log.on_ack(self.seq(una), sb, self.now)
            elif mode == 1:
                log.on_ack(self.seq(una), None, self.now)
            return added

        if mode == 2:
            una = self.una
        self.both(run)
        self.una = una
        self.nxt = max(self.nxt, una)

    def rto(self) -> None:
        def run(sb, log):
            sb.clear()
            log.clear()
        self.both(run)
        self.nxt = self.una


SIZES = st.integers(1, 25)


@st.composite
def blocks_for(draw, s: Sender) -> list[tuple[int, int]]:
    """SACK blocks: around what was sent (some invalid), or fitting the log's entries."""
    out = []
    entries = s.pairs[1][1].entries()
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 4))
        if kind == 0 or not entries:
            lo = draw(st.integers(s.una - 30, s.max + 10))
            out.append((lo, lo + draw(st.integers(-5, 60))))
        else:
            # one entry, or a run of entries in sequence order, SACKed whole
            ordered = sorted(entries, key=lambda e: int(e[0] - Seq(s.iss)) % MOD)
            i = draw(st.integers(0, len(ordered) - 1))
            j = i + (draw(st.integers(0, 3)) if kind == 3 else
                     draw(st.integers(0, 60)) if kind == 4 else 0)
            j = min(j, len(ordered) - 1)
            lo = (int(ordered[i][0]) - s.iss) % MOD
            hi = (int(ordered[j][1]) - s.iss) % MOD
            if kind == 2:
                hi = max(lo + 1, hi - draw(st.integers(0, 3)))    # not quite all of it
            out.append((lo, hi))
    return out


def drive(data, s: Sender, steps: int) -> None:
    for _ in range(steps):
        op = data.draw(st.integers(0, 14), label="op")
        if op <= 2:
            for _ in range(data.draw(st.sampled_from([1, 1, 1, 5, 40]))):
                s.send(data.draw(SIZES))
        elif op == 3 and s.max > s.una:
            start = data.draw(st.integers(s.una, s.max - 1))
            s.resend(start, data.draw(st.integers(1, s.max - start)))
        elif op == 4:
            lost = s.pairs[1][1].first_lost()
            if lost is not None:
                seq, length = lost
                s.resend((int(seq) - s.iss) % MOD, min(length, s.mss))
        elif op in (5, 6, 7):
            advance = data.draw(st.integers(0, 40)) if op == 5 else 0
            mode = data.draw(st.sampled_from([0, 0, 0, 0, 1, 2]))
            s.ack(advance, data.draw(blocks_for(s)), mode)
        elif op == 8:
            reo = data.draw(st.sampled_from([0.0, 0.001, 0.02, 0.25]))
            s.both(lambda sb, log, reo=reo: log.detect_loss(s.now, reo))
        elif op == 9:
            s.both(lambda sb, log: log.mark_lost_by_sack(sb, s.mss))
        elif op == 10:
            s.both(lambda sb, log: log.mark_head_lost())
        elif op == 11:
            s.now += data.draw(st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.3]))
        elif op == 12:
            if data.draw(st.integers(0, 9)) == 0:
                s.rto()
        elif op == 13 and data.draw(st.integers(0, 19)) == 0:
            s.now -= 0.02                      # a clock that went back (not the core's)
        elif op == 14 and s.max > s.una and data.draw(st.integers(0, 2)) == 0:
            # SendSide._retransmit_head after an RTO against a zero window: a
            # whole MSS from SND.UNA, past SND.MAX (new data sent later overlaps).
            s.resend(s.una, data.draw(st.integers(1, 2 * s.mss)))
        s.check()
    una, nxt = s.seq(s.una), s.seq(s.max)
    points = list(range(-3, s.max - s.una + 3, 5))
    rxt = data.draw(st.integers(-5, s.max - s.una + 5))
    s.both(lambda sb, log: probe(sb, una, nxt, s.mss, points, rxt))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(),
       iss=st.one_of(st.integers(0, MASK), st.integers(MOD - 300, MASK)),
       mss=st.integers(5, 30),
       max_ranges=st.sampled_from([256, 256, 3]),
       max_added=st.sampled_from([64, 64, 1]),
       steps=st.integers(1, 120))
def test_same_as_reference(data, iss: int, mss: int, max_ranges: int, max_added: int,
                           steps: int) -> None:
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(ref, "MAX_RANGES", max_ranges))
        stack.enter_context(mock.patch.object(sack_mod, "MAX_RANGES", max_ranges))
        stack.enter_context(mock.patch.object(sack_mod, "_MAX_ADDED", max_added))
        drive(data, Sender(iss, mss), steps)


def test_a_recovery_episode_by_hand() -> None:
    """Every other segment of 40 lost, SACKed one ACK at a time, holes resent as
    RACK and IsLost find them: the same at every step."""
    s = Sender(MOD - 700, 10)
    for _ in range(40):
        s.send(10)
    s.now += 0.1
    for k in range(1, 40, 2):
        s.ack(0, [(10 * k, 10 * k + 10)], 0)
        s.both(lambda sb, log: log.mark_lost_by_sack(sb, 10))
        s.both(lambda sb, log: log.detect_loss(s.now, 0.0))
        s.check()
        for _ in range(2):
            lost = s.pairs[1][1].first_lost()
            if lost is not None:
                s.resend((int(lost[0]) - s.iss) % MOD, min(lost[1], 10))
        s.now += 0.001
        s.check()
    s.ack(400, [], 0)
    s.check()
    assert len(s.pairs[1][1]) == 0


def test_overlapping_entries_and_back() -> None:
    """A head retransmission past SND.MAX, new data over it (one list, scanned),
    everything ACKed, then the indexes again."""
    s = Sender(MOD - 15, 10)
    for _ in range(2):
        s.send(10)
        s.resend(s.una, 25)                     # reaches 5 bytes past SND.MAX
        s.now += 0.01
        s.ack(10, [], 0)
        s.send(20)                              # over the rest of the resend
        s.check()
        s.ack(0, [(s.una + 15, s.una + 20)], 0)
        s.both(lambda sb, log: log.mark_head_lost())
        s.both(lambda sb, log: log.detect_loss(s.now, 0.0))
        s.check()
        s.ack(s.max - s.una, [], 0)
        s.check()
        assert len(s.pairs[1][1]) == 0
        s.send(10)
        s.send(10)
        s.check()
        s.ack(20, [], 0)
        s.check()


def test_without_a_scoreboard_for_long_then_another_one() -> None:
    """on_ack without a scoreboard while much changes (the log stops keeping track
    and looks at everything next time), then a new scoreboard object."""
    rng = random.Random(7)
    s = Sender(MOD - 100, 10)
    for _ in range(50):
        s.send(rng.randint(1, 20))
    s.now += 0.1
    for step in range(300):
        if s.max > s.una:
            start = rng.randint(s.una, s.max - 1)
            s.resend(start, rng.randint(1, min(30, s.max - start)))
        if step % 7 == 0:
            lo = rng.randint(s.una, s.max)
            s.ack(rng.randint(0, 3), [(lo, lo + rng.randint(1, 40))], rng.choice([1, 2]))
        s.now += 0.001
        s.check()
    s.ack(0, [], 0)
    s.check()
    for i, (sb, _log) in enumerate(s.pairs):
        fresh = (ref.SackScoreboard if i == 0 else SackScoreboard)()
        fresh.update(s.seq(s.una), s.seq(s.max), [(int(a), int(b)) for a, b in sb.ranges()])
        s.pairs[i] = (fresh, _log)
    for _ in range(20):
        lo = rng.randint(s.una, s.max)
        s.ack(rng.randint(0, 5), [(lo, lo + rng.randint(1, 60))], 0)
        s.both(lambda sb, log: log.mark_lost_by_sack(sb, s.mss))
        s.both(lambda sb, log: log.detect_loss(s.now, 0.0))
        s.now += 0.01
        s.check()


# -- whole connections ---------------------------------------------------------------

def transfer(seed: int, spec: FaultSpec, size: int, options: ConnectionOptions,
             tso_max: int) -> tuple[list, dict, dict, dict, int]:
    """``size`` bytes A -> B through ``spec`` both ways: every packet (time, who,
    segment, fate), both stacks' counters, the client's info at the end and the
    bytes B received (within 300 s of virtual time)."""
    sim = Simulator(seed=seed)
    stacks = [sim.add_stack(addr, StackConfig(
        isn_secret=hashlib.sha256(f"{seed}|{addr}".encode()).digest()[:16], tso_max=tso_max))
        for addr in ("10.0.0.1", "10.0.0.2")]
    listener = stacks[1].listen(80, options=options)
    client = stacks[0].connect("10.0.0.2", 80, sim.now, options=options)
    accepted = []

    def established() -> bool:
        if not accepted and (c := listener.accept()) is not None:
            accepted.append(c)
        return bool(accepted) and client.state is State.ESTABLISHED

    sim.run_until(established, timeout=30)
    server = accepted[0]
    sim.set_faults_both_ways("10.0.0.1", "10.0.0.2", spec.with_seed(seed))
    data = random.Random(seed).randbytes(size)
    got = bytearray()
    sent = 0

    def hook(now: float) -> None:
        nonlocal sent
        while sent < size and client.send_space() > 0:
            n = client.send(data[sent:sent + 8192], now)
            if n <= 0:
                break
            sent += n
        while server.recv_available():
            got.extend(server.recv(1 << 20, now))

    sim.every_step(hook)
    hook(sim.now)
    try:
        sim.run_until(lambda: len(got) == size, timeout=300)
    except SimulationTimeout:
        pass            # 30% loss each way can back off for minutes: compare that too
    assert bytes(got) == data[:len(got)]
    packets = [(p.time, p.src, str(p.segment), p.segment.options, p.dropped, tuple(p.arrivals))
               for p in sim.packets]
    info = client.info()
    return packets, dict(stacks[0].counters), dict(stacks[1].counters), info, len(got)


def compare_connections(seed: int, spec: FaultSpec, size: int, options: ConnectionOptions,
                        tso_max: int) -> tuple[dict, int]:
    new = transfer(seed, spec, size, options, tso_max)
    with mock.patch.object(recovery_mod, "SackScoreboard", ref.SackScoreboard), \
            mock.patch.object(recovery_mod, "SentLog", ref.SentLog):
        old = transfer(seed, spec, size, options, tso_max)
    assert len(old[0]) == len(new[0])
    for i, (a, b) in enumerate(zip(old[0], new[0], strict=True)):
        assert a == b, f"packet {i}: {a} != {b}"
    assert old[1:] == new[1:]
    return new[1], new[4]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000),
       loss=st.sampled_from([0.02, 0.05, 0.15, 0.3]),
       reorder=st.sampled_from([0.0, 0.0, 0.1, 0.3]),
       dup=st.sampled_from([0.0, 0.05]),
       nodelay=st.booleans(),
       tso_max=st.sampled_from([0, 0, 8 * 1448]),
       size=st.integers(20_000, 200_000))
def test_connections_same_as_reference(seed: int, loss: float, reorder: float, dup: float,
                                       nodelay: bool, tso_max: int, size: int) -> None:
    spec = FaultSpec(loss=loss, reorder=reorder, dup=dup, delay=0.005, jitter=0.001)
    compare_connections(seed, spec, size, ConnectionOptions(nodelay=nodelay), tso_max)


@pytest.mark.parametrize(("seed", "tso_max"), [(1, 0), (2, 8 * 1448)])
def test_connections_through_heavy_loss_same_as_reference(seed: int, tso_max: int) -> None:
    spec = FaultSpec(loss=0.2, reorder=0.2, dup=0.05, delay=0.005, jitter=0.001)
    counters, received = compare_connections(seed, spec, 300_000, ConnectionOptions(), tso_max)
    assert received == 300_000
    for name in ("retransmitted_segments", "sack_recoveries"):
        assert counters.get(name, 0) > 0, name       # recovery did happen


def zero_window_rto() -> tuple[list, list, dict]:
    """The peer shuts its window with 100 bytes in flight and 1,000 more queued;
    the RTO resends those 100 bytes, and the rest goes once the window opens."""
    h = Harness(options=ConnectionOptions(nodelay=True, timestamps=False, window_scale=False))
    conn = h.open_established(TcpOptions(sack_permitted=True))
    out = []
    conn.send(b"a" * 100, h.now)
    out += h.tx()
    una = int(conn.snd_una)
    h.deliver(ack=una, window=0, t=h.now + 0.01)
    conn.send(b"b" * 1000, h.now)
    h.advance(1.0)
    out += h.tx()
    h.deliver(ack=una + 100, window=65535)          # SND.MAX: the first 100 bytes
    out += h.tx()
    entries = [conn._recovery.rack.entries()]
    h.deliver(ack=una + 100, window=65535, options=TcpOptions(
        sack_blocks=((una + 600, una + 636),)))
    h.deliver(ack=una + 100, window=65535, options=TcpOptions(
        sack_blocks=((una + 700, una + 736), (una + 600, una + 636))))
    out += h.tx()
    h.advance(1.0)
    out += h.tx()
    entries.append(conn._recovery.rack.entries())
    h.deliver(ack=int(conn.snd_max), window=65535)
    h.advance(1.0)
    out += h.tx()
    return out, entries, dict(h.stack.counters)


def test_rto_against_a_closed_window_resends_only_what_was_sent() -> None:
    new = zero_window_rto()
    with mock.patch.object(recovery_mod, "SackScoreboard", ref.SackScoreboard), \
            mock.patch.object(recovery_mod, "SentLog", ref.SentLog):
        old = zero_window_rto()
    assert old == new
    out, entries, _ = new
    # The RTO's retransmission is the 100 bytes in flight, not a whole MSS
    # reaching past SND.MAX; no entry of the send log overlaps another.
    data = [seg for seg in out if seg.payload]
    assert [len(seg.payload) for seg in data[:2]] == [100, 100]
    assert data[0].seq == data[1].seq
    for log in entries:
        starts = [int(e[0]) for e in log]
        assert len(starts) == len(set(starts))


# -- work per ACK ------------------------------------------------------------------

CLIENT, SERVER, PORT = "10.9.0.1", "10.9.0.2", 5001


def sack_every_other(segments: int, acks: int, files: set[str]) -> list[int]:
    """A sender with ``segments`` MSS-sized segments in flight; the peer's ACKs
    SACK the odd ones, one more per ACK (the even ones lost). Returns the lines
    of sack.py, sentlog.py and recovery.py executed for each ACK."""
    stack = StackCore(CLIENT, config=StackConfig(isn_secret=b"sack-scaling secret"),
                      tracer=None)
    conn = stack.connect(SERVER, PORT, 0.0, local_port=40000,
                         options=ConnectionOptions(send_buffer=64 << 20))
    ((_, _, syn),) = stack.take_output()
    iss = syn.seq + 1
    now = 0.05
    stack.receive(SERVER, CLIENT, TcpSegment(
        PORT, 40000, 7000, iss, SYN | ACK, 65535, 0,
        TcpOptions(mss=536, wscale=12, sack_permitted=True,
                   timestamps=(1, syn.options.timestamps[0]))), now)
    stack.receive(SERVER, CLIENT, TcpSegment(PORT, 40000, 7001, iss, ACK, 65535, 0,
                                             TcpOptions(timestamps=(2, 1))), now)
    stack.take_output()
    mss = conn.mss
    conn.cc.cwnd = conn.cc.ssthresh = (segments + 10) * mss   # a flight this big
    conn.send(b"x" * (segments * mss), now)
    assert len(stack.take_output()) == segments

    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename in files:
            if event == "line":
                count += 1
            return tracer
        return None

    lines = []
    blocks: list[tuple[int, int]] = []
    now = 0.1
    for i in range(acks):
        k = 2 * i + 1
        blocks = [((iss + k * mss) & MASK, (iss + (k + 1) * mss) & MASK), *blocks[:2]]
        now += 1e-4
        ack = TcpSegment(PORT, 40000, 7001, iss, ACK, 65535, 0,
                         TcpOptions(sack_blocks=tuple(blocks), timestamps=(3 + i, 1)))
        count = 0
        sys.settrace(tracer)
        try:
            stack.receive(SERVER, CLIENT, ack, now)
        finally:
            sys.settrace(None)
        stack.take_output()
        lines.append(count)
    assert conn._recovery.state is recovery_mod.RECOVERY
    return lines


def per_ack(segments: int, files: set[str]) -> float:
    lines = sack_every_other(segments, 24, files)[8:]      # once recovery has begun
    return sum(lines) / len(lines)


def test_work_per_ack_does_not_grow_with_the_flight() -> None:
    files = {str(Path(recovery_mod.__file__)), str(Path(sack_mod.__file__)),
             str(Path(sentlog_mod.__file__))}
    small, large = per_ack(400, files), per_ack(3200, files)
    assert large < 1.5 * small + 50, (small, large)
    # The measure does tell: the reference's work grows with the flight.
    with mock.patch.object(recovery_mod, "SackScoreboard", ref.SackScoreboard), \
            mock.patch.object(recovery_mod, "SentLog", ref.SentLog):
        files = {str(Path(recovery_mod.__file__)), str(Path(ref.__file__))}
        old_small, old_large = per_ack(400, files), per_ack(3200, files)
    assert old_large > 4 * old_small, (old_small, old_large)


def test_pipe_and_first_lost_are_running_totals() -> None:
    """After a long recovery episode the totals agree with a recount."""
    segments = 1000
    log = SentLog()
    sb = SackScoreboard()
    rng = random.Random(segments)
    for i in range(segments):
        log.on_send(i * 10, i * 10 + 10, 0.0, False)
    now = 1.0
    for i in range(1, segments, 2):
        sb.update(0, segments * 10, [(i * 10, i * 10 + 10)])
        log.on_ack(0, sb, now)
        log.mark_lost_by_sack(sb, 10)
        log.detect_loss(now, 0.0)
        if rng.random() < 0.5 and log.first_lost() is not None:
            seq, length = log.first_lost()
            log.on_send(int(seq), int(seq) + min(length, 10), now, True)
        now += 0.001
    entries = log.entries()
    assert log.pipe() == sum(e - s for s, e, _, _, lost in entries if not lost)
    assert log.lost_bytes() == sum(e - s for s, e, _, _, lost in entries if lost)
    lost = [(s, e - s) for s, e, _, _, lost in entries if lost]
    assert log.first_lost() == min(lost, key=lambda x: int(x[0]))
