"""The out-of-order queue and the byte queue (send and receive queues)."""

from __future__ import annotations

import array

from hypothesis import given
from hypothesis import strategies as st

from tcpstack.core.bytequeue import ByteQueue
from tcpstack.core.reassembly import Reassembly

STREAM = bytes(range(256)) * 8


def test_reassembly_merges_overlapping_and_adjacent_ranges():
    r = Reassembly()
    r.insert(10, STREAM[10:20])
    r.insert(30, STREAM[30:40])
    assert r.range_count == 2 and r.held == 20
    r.insert(15, STREAM[15:32])           # bridges both
    assert r.range_count == 1 and r.held == 30
    assert r.pop_ready(0) is None
    assert r.pop_ready(10) == STREAM[10:40]
    assert not r


def test_reassembly_pop_discards_what_is_already_delivered():
    r = Reassembly()
    r.insert(5, STREAM[5:10])
    r.insert(20, STREAM[20:30])
    assert r.pop_ready(25) == STREAM[25:30]   # [5, 10) is below the stream: dropped
    assert not r


def test_reassembly_blocks_newest_first_and_limited():
    r = Reassembly()
    for start in (100, 10, 50, 200):
        r.insert(start, STREAM[start:start + 5])
    assert r.blocks(3) == [(200, 205), (50, 55), (10, 15)]   # RFC 2018 §4: most recent first


def test_reassembly_range_count_is_bounded():
    r = Reassembly(max_ranges=2)
    assert r.insert(10, b"a") and r.insert(20, b"b")
    assert not r.insert(30, b"c")
    assert r.insert(11, b"x")              # merging is always possible


@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 100)), max_size=40))
def test_reassembly_yields_the_stream_in_any_arrival_order(pieces):
    r = Reassembly()
    for start, size in pieces:
        r.insert(start, STREAM[start:start + size])
    pos = 0
    out = bytearray()
    while (chunk := r.pop_ready(pos)) is not None:
        out += chunk
        pos += len(chunk)
    assert out == STREAM[:pos]


def test_send_buffer_accepts_up_to_capacity_and_consumes_from_the_front():
    b = ByteQueue(10)
    assert b.append(b"0123456") == 7
    assert b.append(memoryview(b"789abc")) == 3
    assert b.space() == 0 and len(b) == 10
    assert b.peek(2, 4) == b"2345"
    b.consume(4)
    assert b.peek(0, 3) == b"456" and b.space() == 4


def test_send_buffer_keeps_immutable_writes_and_copies_mutable_ones():
    b = ByteQueue(1 << 20)
    mutable = bytearray(b"x" * 5000)
    b.append(mutable)
    mutable[:] = b"y" * 5000               # the caller reuses its buffer
    view = memoryview(bytearray(b"z" * 5000))
    b.append(view)
    view[:] = b"w" * 5000
    assert b.peek(0, 10_000) == b"x" * 5000 + b"z" * 5000
    big = bytes(range(256)) * 64
    b.append(big)
    assert b.peek(10_000, len(big)) == big


def test_send_buffer_takes_views_of_any_format_as_raw_bytes():
    words = array.array("I", [1, 2, 3])
    b = ByteQueue(100)
    assert b.append(memoryview(words)) == 12
    assert b.append(memoryview(words.tobytes()).cast("I")) == 12
    assert b.peek(0, 24) == words.tobytes() * 2


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 9000),
                  st.sampled_from(["bytes", "view", "mutable"])),
        st.tuples(st.just("consume"), st.integers(0, 12000), st.just("")),
        st.tuples(st.just("peek"), st.integers(0, 12000), st.integers(0, 9000)),
        st.tuples(st.just("take"), st.integers(0, 12000), st.just("")),
        st.tuples(st.just("take_into"), st.integers(0, 12000), st.sampled_from(["B", "I"])),
    ),
    max_size=60,
)


@given(capacity=st.integers(1, 40000), ops=_OPS)
def test_byte_queue_behaves_as_one_flat_byte_string(capacity, ops):
    """Chunks, gathering and compaction never show: the same bytes as a flat queue."""
    b = ByteQueue(capacity)
    model = bytearray()
    counter = 0
    for op, x, y in ops:
        if op == "append":
            data = bytes((counter + i) % 251 for i in range(x))
            counter += x
            arg = {"bytes": data, "view": memoryview(data)[0:], "mutable": bytearray(data)}[y]
            taken = b.append(arg)
            assert taken == min(x, max(0, capacity - len(model)))
            model += data[:taken]
        elif op == "consume":
            n = min(x, len(model))
            b.consume(n)
            del model[:n]
        elif op == "take":
            assert b.take(x) == model[:x]
            del model[:x]
        elif op == "take_into":
            out = bytearray(x) if y == "B" else array.array("I", bytes(x - x % 4))
            n = b.take_into(out)
            assert n == min(len(out) * (4 if y == "I" else 1), len(model))
            assert bytes(out)[:n] == model[:n]
            del model[:n]
        else:
            off = min(x, len(model))
            size = min(y, len(model) - off)
            assert b.peek(off, size) == model[off:off + size]
        assert len(b) == len(model) and b.space() == max(0, capacity - len(model))
