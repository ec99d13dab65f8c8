"""The out-of-order queue (core/reassembly.py) against a plain model.

The model holds a bytearray of the stream and the set of offsets held: a
segment fills only the offsets not held yet (the first arrival wins), runs
are the maximal sets of consecutive held offsets, and a run's recency is
that of the last accepted segment inside it (RFC 2018 §4: the run holding
the segment just received first, then the others, most recent first).
"""

from __future__ import annotations

import itertools
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpstack.core.reassembly import Reassembly

SPAN = 64                      # offsets the random tests play in


class Model:
    def __init__(self, max_ranges: int | None = None, max_bytes: int | None = None) -> None:
        self.max_ranges = max_ranges
        self.max_bytes = max_bytes
        self.stream = bytearray(4 * SPAN + 64)
        self.held: set[int] = set()
        self.stamps: list[tuple[int, int, int]] = []   # accepted (start, end, time)
        self.clock = 0
        self.refused_segments = 0
        self.refused_bytes = 0

    def runs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in sorted(self.held):
            if out and out[-1][1] == p:
                out[-1] = (out[-1][0], p + 1)
            else:
                out.append((p, p + 1))
        return out

    def insert(self, start: int, data: bytes) -> bool:
        end = start + len(data)
        if start == end:
            return True
        new = [p for p in range(start, end) if p not in self.held]
        touches = any(p in self.held for p in range(start - 1, end + 1))
        if ((not touches and self.max_ranges is not None
             and len(self.runs()) >= self.max_ranges)
                or (new and self.max_bytes is not None
                    and len(self.held) + len(new) > self.max_bytes)):
            self.refused_segments += 1
            self.refused_bytes += len(data)
            return False
        for p in new:
            self.stream[p] = data[p - start]
            self.held.add(p)
        self.clock += 1
        self.stamps.append((start, end, self.clock))
        return True

    def pop(self, offset: int) -> bytes | None:
        out = None
        for s, e in self.runs():
            if s > offset:
                break
            if e > offset:
                out = bytes(self.stream[offset:e])
            self.held.difference_update(range(s, e))
        return out

    def blocks(self, limit: int) -> list[tuple[int, int]]:
        def recency(run: tuple[int, int]) -> int:
            return max(t for s, e, t in self.stamps if run[0] <= s and e <= run[1])
        return sorted(self.runs(), key=recency, reverse=True)[:max(limit, 0)]

    def clear(self) -> None:
        self.held.clear()


def check(r: Reassembly, m: Model) -> None:
    runs = m.runs()
    assert r.range_count == len(runs)
    assert r.held == len(m.held)
    assert bool(r) == bool(runs)
    assert r.refused_segments == m.refused_segments
    assert r.refused_bytes == m.refused_bytes
    for limit in (0, 1, 3, 4, len(runs) + 1):
        assert r.blocks(limit) == m.blocks(limit)


def fill(tag: int, size: int) -> bytes:
    """Bytes that tell which segment they came from, and where in it."""
    return bytes((tag * 37 + i) & 0xFF for i in range(size))


def drain(r: Reassembly, m: Model, offset: int) -> None:
    got = r.pop_ready(offset)
    want = m.pop(offset)
    assert (None if got is None else bytes(got)) == want
    check(r, m)


# ------------------------------------------------------------ the random walk
insert_op = st.tuples(st.just("insert"), st.integers(0, SPAN), st.integers(0, 12),
                      st.sampled_from(["bytes", "view", "bytearray", "slice"]))
pop_op = st.tuples(st.sampled_from(["pop", "pieces"]), st.integers(0, SPAN + 12),
                   st.just(0), st.just(""))
clear_op = st.tuples(st.just("clear"), st.just(0), st.just(0), st.just(""))
ops = st.lists(st.one_of(insert_op, insert_op, insert_op, pop_op, clear_op), max_size=60)
bounds = st.tuples(st.one_of(st.none(), st.integers(1, 6)),
                   st.one_of(st.none(), st.integers(0, 40)))


def as_kind(data: bytes, kind: str) -> bytes | bytearray | memoryview:
    if kind == "view":
        return memoryview(data)
    if kind == "bytearray":
        return bytearray(data)
    if kind == "slice":                   # a part of a larger payload
        return memoryview(b"<" * 3 + data + b">" * 5)[3:3 + len(data)]
    return data


@settings(max_examples=400, deadline=None)
@given(ops, bounds)
def test_against_the_model(script, limits):
    max_ranges, max_bytes = limits
    r = Reassembly(max_ranges, max_bytes)
    m = Model(max_ranges, max_bytes)
    for tag, (op, offset, size, kind) in enumerate(script):
        if op == "insert":
            data = fill(tag, size)
            arg = as_kind(data, kind)
            assert r.insert(offset, arg) == m.insert(offset, data)
            if kind == "bytearray":
                arg[:] = b"!" * len(arg)  # the sender reuses its buffer: no effect
        elif op == "pop":
            drain(r, m, offset)
        elif op == "pieces":
            got = r.pop_ready_pieces(offset)
            want = m.pop(offset)
            assert (b"".join(got) if got else None) == want
            assert all(type(p) in (bytes, bytearray, memoryview) for p in got)
            assert all(len(p) for p in got)
        else:
            r.clear()
            m.clear()
        check(r, m)
    drain(r, m, 0)
    drain(r, m, 4 * SPAN)
    assert not r and r.held == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 60)), max_size=40),
       st.integers(0, 2**32))
def test_in_order_delivery_rebuilds_the_stream(pieces, seed):
    """As the receiver uses it: pop at the stream offset after each arrival."""
    stream = random.Random(seed).randbytes(400)
    r = Reassembly(max_ranges=None)
    out = bytearray()
    for start, size in [*pieces, (0, 1)]:
        if start <= len(out) < start + size:
            out += stream[len(out):start + size]     # in order: straight to the stream
        elif start > len(out):
            assert r.insert(start, stream[start:start + size])
        while (more := r.pop_ready(len(out))) is not None:
            out += more
    assert out == stream[:len(out)]
    assert not r.range_count or r.blocks(1)[0][0] > len(out)


# ------------------------------------------------------------ every overlap of two and three
def run_all_orders(segments: list[tuple[int, int]], max_bytes: int | None = None) -> None:
    r = Reassembly(max_ranges=None, max_bytes=max_bytes)
    m = Model(max_bytes=max_bytes)
    for tag, (start, size) in enumerate(segments):
        data = fill(tag + 1, size)
        assert r.insert(start, data) == m.insert(start, data)
        check(r, m)
    lowest = min(s for s, _ in segments)
    for offset in (lowest + 1, lowest):
        r2 = Reassembly(max_ranges=None)
        for tag, (start, size) in enumerate(segments):
            r2.insert(start, fill(tag + 1, size))
        m2 = Model()
        for tag, (start, size) in enumerate(segments):
            m2.insert(start, fill(tag + 1, size))
        drain(r2, m2, offset)
    drain(r, m, lowest)
    drain(r, m, lowest + 20)
    assert not r


# Starts 0..6 and lengths 1..4 give every relation of two intervals
# (before, meets, overlaps, starts, during, finishes, equal and their inverses)
# and every gap size 0, 1, 2 between them.
TWO = [(s, n) for s in range(7) for n in range(1, 5)]
THREE = [(s, n) for s in range(6) for n in range(1, 4)]


def test_every_overlap_of_two_segments():
    for a, b in itertools.product(TWO, repeat=2):
        run_all_orders([a, b])
        run_all_orders([a, b], max_bytes=4)


def test_every_overlap_of_three_segments():
    for a, b, c in itertools.product(THREE, repeat=3):
        run_all_orders([a, b, c])
    for a, b, c in itertools.product(THREE[::2], repeat=3):
        run_all_orders([a, b, c], max_bytes=5)


# ------------------------------------------------------------ by hand
def test_first_arrival_wins():
    r = Reassembly()
    r.insert(10, b"aaaa")                     # [10, 14)
    r.insert(20, b"bbbb")                     # [20, 24)
    assert r.insert(8, b"x" * 18)             # [8, 26): fills only the gaps
    assert r.held == 18 and r.range_count == 1
    assert r.pop_ready(8) == b"xxaaaaxxxxxxbbbbxx"


def test_a_repeat_moves_its_block_first():
    r = Reassembly()
    for start in (100, 10, 50, 200):
        r.insert(start, b"12345")
    assert r.blocks(4) == [(200, 205), (50, 55), (10, 15), (100, 105)]
    assert r.insert(11, b"23")                # a duplicate: held already
    assert r.held == 20
    assert r.blocks(3) == [(10, 15), (200, 205), (50, 55)]
    assert r.insert(55, b"6")                 # adjacent: the block grows, comes first
    assert r.blocks(2) == [(50, 56), (10, 15)]
    assert r.insert(15, b"x" * 35)            # bridges [10, 15) and [50, 56)
    assert r.blocks(4) == [(10, 56), (200, 205), (100, 105)]
    assert r.pop_ready(10) == b"12345" + b"x" * 35 + b"123456"
    assert r.blocks(4) == [(200, 205), (100, 105)]


def test_pop_discards_what_is_below_the_offset():
    r = Reassembly()
    r.insert(5, b"abcde")
    r.insert(20, b"0123456789")
    assert r.pop_ready(4) is None and r.held == 15
    assert r.pop_ready(12) is None            # [5, 10) is below: gone
    assert r.held == 10 and r.range_count == 1
    assert r.pop_ready(25) == b"56789"
    assert not r and r.held == 0 and r.blocks(4) == []


def test_range_bound():
    r = Reassembly(max_ranges=2)
    assert r.insert(10, b"a") and r.insert(20, b"b")
    assert not r.insert(30, b"c")
    assert (r.refused_segments, r.refused_bytes) == (1, 1)
    assert r.insert(11, b"x")                 # joining a held range: always possible
    assert r.insert(12, b"y" * 8)             # ... and bridging two
    assert r.range_count == 1
    assert r.insert(30, b"c")


def test_byte_bound():
    r = Reassembly(max_bytes=10)
    assert r.insert(0, b"a" * 6)
    assert not r.insert(10, b"b" * 5)         # 11 > 10: refused whole
    assert r.insert(3, b"c" * 6)              # 3 new bytes of 6: they fit
    assert r.held == 9
    assert r.insert(0, b"d" * 9)              # nothing new: a repeat is never refused
    assert not r.insert(9, b"e" * 2)
    assert (r.refused_segments, r.refused_bytes) == (2, 7)
    assert r.insert(9, b"e")
    assert r.pop_ready(0) == b"aaaaaaccce"
    r.clear()
    assert r.held == 0 and r.refused_segments == 2   # the counts stay
    assert r.insert(0, b"f" * 10)


def test_blocks_limit_and_empty():
    r = Reassembly()
    assert r.blocks(4) == [] and not r
    r.insert(1, b"a")
    assert r.blocks(0) == [] and r.blocks(-1) == []
    assert r.blocks(4) == [(1, 2)]


def test_what_is_kept_by_reference_and_what_is_copied():
    big = bytes(range(256)) * 8               # a 2048-byte payload
    r = Reassembly()
    r.insert(1, big)
    r.insert(1 + len(big), memoryview(big))
    pieces = r.pop_ready_pieces(1)
    assert pieces[0] is big and pieces[1] is big   # a whole immutable payload: no copy

    owned = bytearray(big)
    r.insert(1, owned)                        # mutable: copied on the way in
    owned[:] = bytes(len(owned))
    assert r.pop_ready(1) == big

    r.insert(1, memoryview(big)[:600])        # a small part of a larger payload: copied,
    (piece,) = r.pop_ready_pieces(1)          # so it does not keep the whole alive
    assert bytes(piece) == big[:600]
    assert not (type(piece) is memoryview and piece.obj is big)

    r.insert(1, memoryview(big)[:1500])       # most of it: a view
    (piece,) = r.pop_ready_pieces(1)
    assert type(piece) is memoryview and piece.obj is big


def test_small_pieces_are_gathered():
    r = Reassembly()
    for k in range(1000):
        r.insert(1 + 40 * k, bytes([k & 0xFF]) * 40)
    assert r.range_count == 1 and r.held == 40_000
    r.insert(0, b"h")
    pieces = r.pop_ready_pieces(0)
    assert len(pieces) <= 3                   # not a thousand 40-byte objects
    assert b"".join(pieces) == b"h" + b"".join(bytes([k & 0xFF]) * 40 for k in range(1000))


def test_pop_from_the_middle_of_pieces():
    r = Reassembly()
    a, b, c = b"A" * 1000, b"B" * 300, b"C" * 2000
    r.insert(1000, a)
    r.insert(2000, b)
    r.insert(2300, c)
    assert r.pop_ready(2100) == b"B" * 200 + c
    r.insert(1000, a)
    r.insert(2000, c)
    got = r.pop_ready_pieces(1001)
    assert b"".join(got) == a[1:] + c
    assert type(got[0]) is memoryview and got[1] is c
    payload = b"<" + a + b"D" * 900 + b">"
    r.insert(5000, memoryview(payload)[1:-1])  # most of a payload: held as a view of it
    r.insert(6900, b"E" * 10)
    assert r.pop_ready(5700) == a[700:] + b"D" * 900 + b"E" * 10


# ------------------------------------------------------------ scaling
def test_held_pieces_are_never_copied_again():
    """A 4 MiB window with its head lost: every 1448-byte payload held is the
    object that arrived, whatever the merges (the old code re-copied the whole
    held range on each insert: quadratic)."""
    mss, n = 1448, (4 << 20) // 1448
    payloads = [bytes([k & 0xFF]) * mss for k in range(n)]
    r = Reassembly()
    for k in range(1, n):
        assert r.insert(k * mss, memoryview(payloads[k]))
    assert r.range_count == 1 and r.held == (n - 1) * mss
    assert r.insert(0, payloads[0])
    pieces = r.pop_ready_pieces(0)
    assert len(pieces) == n
    assert all(p is q for p, q in zip(pieces, payloads, strict=True))


def test_adjacent_small_segments_behind_a_hole_scale_linearly():
    """100k adjacent 40-byte segments behind a 1-byte hole, then the hole
    filled: 15.8 s before, about 0.2 s now. The bound is generous (a slow,
    busy VM); it catches quadratic behaviour, not a slowdown."""
    n, size = 100_000, 40
    payloads = [bytes([k & 0xFF]) * size for k in range(n)]
    r = Reassembly()
    began = time.process_time()
    for k in range(n):
        r.insert(1 + k * size, memoryview(payloads[k]))
    r.insert(0, b"h")
    data = r.pop_ready(0)
    spent = time.process_time() - began
    assert len(data) == 1 + n * size and data[1:41] == payloads[0]
    assert not r
    assert spent < 5.0, f"{spent:.2f} s of CPU"


@pytest.mark.parametrize("max_ranges", [256, None])
def test_one_byte_segments_at_every_other_byte(max_ranges):
    """50k one-byte segments with a hole between each: with the default bound
    most are refused, without one they are all held; each costs O(log R)
    comparisons (plus a list memmove of R pointers), not O(R) Python steps."""
    n = 50_000
    r = Reassembly(max_ranges)
    began = time.process_time()
    for k in range(n):
        r.insert(1 + 2 * k, b"x")
        r.blocks(3)
    spent = time.process_time() - began
    held = n if max_ranges is None else max_ranges
    assert r.range_count == held and r.refused_segments == n - held
    assert r.blocks(3) == [(2 * held - 1, 2 * held), (2 * held - 3, 2 * held - 2),
                           (2 * held - 5, 2 * held - 4)]
    assert spent < 5.0, f"{spent:.2f} s of CPU"
