"""RFC 6528 ISN generation and RFC 6056 port offsets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpstack.core.isn import ISN_TICKS_PER_SECOND, IsnGenerator, port_offset
from tcpstack.seq import MOD, Seq

SECRET = bytes(range(16))
TUPLE = ("10.7.0.2", 40000, "10.7.0.1", 80)


def test_isn_is_a_seq_and_deterministic() -> None:
    a = IsnGenerator(SECRET).isn(*TUPLE, now=12.5)
    b = IsnGenerator(SECRET).isn(*TUPLE, now=12.5)
    assert isinstance(a, Seq)
    assert a == b


def test_isn_differs_across_4_tuples_and_secrets() -> None:
    gen = IsnGenerator(SECRET)
    base = gen.isn(*TUPLE, now=1.0)
    variants = [
        gen.isn("10.7.0.3", 40000, "10.7.0.1", 80, now=1.0),
        gen.isn("10.7.0.2", 40001, "10.7.0.1", 80, now=1.0),
        gen.isn("10.7.0.2", 40000, "10.7.0.9", 80, now=1.0),
        gen.isn("10.7.0.2", 40000, "10.7.0.1", 81, now=1.0),
        gen.isn("10.7.0.1", 80, "10.7.0.2", 40000, now=1.0),  # swapped ends
        IsnGenerator(b"another secret!!").isn(*TUPLE, now=1.0),
    ]
    assert all(v != base for v in variants)
    assert len(set(variants)) == len(variants)


def test_isn_and_ts_offset_together_match_each_alone() -> None:
    gen = IsnGenerator(SECRET)
    for now in (0.0, 12.5, 99999.25):
        isn, ts_offset = gen.isn_and_ts_offset(*TUPLE, now=now)
        assert isinstance(isn, Seq)
        assert isn == gen.isn(*TUPLE, now=now)
        assert ts_offset == gen.ts_offset(*TUPLE)
    assert gen.ts_offset(*TUPLE) != gen.offset(*TUPLE)   # unrelated to the ISN's hash


def test_isn_advances_250000_per_second() -> None:
    # RFC 6528 §3: M is a 4-microsecond timer.
    gen = IsnGenerator(SECRET)
    a = gen.isn(*TUPLE, now=100.0)
    b = gen.isn(*TUPLE, now=101.0)
    c = gen.isn(*TUPLE, now=100.000004)
    assert b - a == ISN_TICKS_PER_SECOND == 250_000
    assert c - a == 1
    assert b > a


def test_isn_wraps_modulo_2_32() -> None:
    gen = IsnGenerator(SECRET)
    wrap_period = MOD / ISN_TICKS_PER_SECOND  # ~4.77 hours
    a = gen.isn(*TUPLE, now=5.0)
    b = gen.isn(*TUPLE, now=5.0 + wrap_period)
    assert 0 <= int(b) < MOD
    assert abs(b - a) <= 1  # float rounding of the period


def test_long_secret_is_accepted() -> None:
    gen = IsnGenerator(b"x" * 100)
    assert gen.isn(*TUPLE, now=0.0) == IsnGenerator(b"x" * 100).isn(*TUPLE, now=0.0)
    assert gen.isn(*TUPLE, now=0.0) != IsnGenerator(b"x" * 101).isn(*TUPLE, now=0.0)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=16, max_size=32))
def test_isn_roughly_uniform_over_ports(secret: bytes) -> None:
    # 1024 ports at a fixed time: the top 2 bits of the ISN should split
    # roughly evenly (expected 256 each; 6 sigma is ~83).
    gen = IsnGenerator(secret)
    buckets = [0, 0, 0, 0]
    for port in range(1024, 2048):
        buckets[int(gen.isn("10.0.0.1", port, "10.0.0.2", 443, now=0.0)) >> 30] += 1
    assert all(150 < b < 362 for b in buckets), buckets


def test_port_offset_deterministic_and_keyed() -> None:
    a = port_offset(SECRET, "10.7.0.2", "10.7.0.1", 80)
    assert a == port_offset(SECRET, "10.7.0.2", "10.7.0.1", 80)
    assert 0 <= a < MOD
    assert a != port_offset(SECRET, "10.7.0.2", "10.7.0.1", 81)
    assert a != port_offset(SECRET, "10.7.0.2", "10.7.0.3", 80)
    assert a != port_offset(b"other secret....", "10.7.0.2", "10.7.0.1", 80)


def test_port_offset_spreads_over_an_ephemeral_range() -> None:
    # RFC 6056 Algorithm 3 uses offset % num_ephemeral: destinations should
    # start at many different points of the range.
    num_ephemeral = 60999 - 32768 + 1
    starts = {port_offset(SECRET, "10.7.0.2", "10.7.0.1", p) % num_ephemeral
              for p in range(1, 501)}
    assert len(starts) > 490
