"""FaultInjector: determinism, observed rates, corruption, delay, reordering, rate limit."""

from __future__ import annotations

import itertools
import math

import pytest

from tcpstack.link.fault import FaultInjector, FaultSpec
from tcpstack.wire.errors import WireError
from tcpstack.wire.packet import build_packet, parse_packet
from tcpstack.wire.tcp import ACK, PSH, TcpSegment

N = 20_000


def packet(i: int, size: int = 100) -> bytes:
    seg = TcpSegment(src_port=40000, dst_port=80, seq=1000 + i * size, ack=1, flags=ACK | PSH,
                     window=65535, payload=bytes([i % 256]) * size)
    return build_packet("10.0.0.1", "10.0.0.2", seg, ident=i & 0xFFFF)


def run(spec: FaultSpec, count: int = N, gap: float = 0.001) -> tuple[FaultInjector, list]:
    injector = FaultInjector(spec)
    out = []
    for i in range(count):
        now = i * gap
        for due, data in injector.process(packet(i % 512), now):
            out.append((now, due, data))
    return injector, out


def within(observed: int, count: int, p: float) -> bool:
    """Within 5 standard deviations of a binomial(count, p) mean."""
    sigma = math.sqrt(count * p * (1 - p))
    return abs(observed - count * p) <= 5 * sigma


def test_no_faults_delivers_everything_at_once_in_order() -> None:
    injector, out = run(FaultSpec(seed=1), count=100)
    assert [data for _, _, data in out] == [packet(i) for i in range(100)]
    assert all(now == due for now, due, _ in out)
    assert injector.counters.delivered == 100
    assert injector.counters.delayed == 0


def test_same_seed_same_faults_other_seed_other_faults() -> None:
    spec = FaultSpec(loss=0.1, dup=0.05, reorder=0.1, corrupt=0.05, delay=0.01, jitter=0.002,
                     seed=1234)
    _, first = run(spec, count=2000)
    _, second = run(spec, count=2000)
    _, other = run(spec.with_seed(4321), count=2000)
    assert first == second
    assert first != other


def test_unseeded_injector_records_its_seed_for_replay() -> None:
    spec = FaultSpec(loss=0.3)
    injector = FaultInjector(spec)
    replay = FaultInjector(spec.with_seed(injector.seed))
    outcome = [bool(injector.process(packet(i), 0.0)) for i in range(300)]
    assert outcome == [bool(replay.process(packet(i), 0.0)) for i in range(300)]


@pytest.mark.parametrize("p", [0.01, 0.05, 0.3])
def test_observed_rates_match_the_spec(p: float) -> None:
    spec = FaultSpec(loss=p, dup=p, reorder=p, corrupt=p, seed=99)
    injector, out = run(spec)
    c = injector.counters
    assert c.packets == N
    assert within(c.dropped, N, p)
    survivors = N - c.dropped
    assert within(c.duplicated, survivors, p)
    assert within(c.reordered, survivors, p)
    assert within(c.corrupted, survivors, p)
    assert c.delivered == survivors + c.duplicated == len(out)


def test_loss_of_everything_and_nothing() -> None:
    injector, out = run(FaultSpec(loss=1.0, seed=5), count=500)
    assert out == [] and injector.counters.dropped == 500
    injector, out = run(FaultSpec(loss=0.0, dup=1.0, seed=5), count=500)
    assert len(out) == 1000 and injector.counters.duplicated == 500


def test_corrupted_packets_fail_the_tcp_checksum() -> None:
    injector, out = run(FaultSpec(corrupt=1.0, seed=8), count=2000)
    assert injector.counters.corrupted == 2000
    for _, _, data in out:
        with pytest.raises(WireError) as info:
            parse_packet(data)
        assert info.value.reason in ("bad-checksum", "bad-header-length", "bad-option",
                                     "bad-total-length", "truncated")


def test_corruption_flips_exactly_one_bit_after_the_ip_header() -> None:
    injector = FaultInjector(FaultSpec(corrupt=1.0, seed=3))
    for i in range(500):
        original = packet(i)
        [(_, damaged)] = injector.process(original, 0.0)
        diff = [j for j in range(len(original)) if original[j] != damaged[j]]
        assert len(diff) == 1 and diff[0] >= 20
        assert bin(original[diff[0]] ^ damaged[diff[0]]).count("1") == 1


def test_delay_and_jitter_bounds_without_reordering() -> None:
    spec = FaultSpec(delay=0.020, jitter=0.005, seed=11)
    injector, out = run(spec, count=5000, gap=0.0001)
    dues = [due for _, due, _ in out]
    assert dues == sorted(dues)  # jitter alone never reorders
    for now, due, _ in out:
        assert due - now >= 0.015 - 1e-9
    # Order preservation can only push a packet behind its predecessor, never
    # beyond the largest delay drawn.
    assert max(due - now for now, due, _ in out) <= 0.025 + 1e-9
    assert injector.counters.delayed == 5000


def test_reordered_packets_arrive_behind_later_ones() -> None:
    spec = FaultSpec(reorder=0.1, delay=0.005, seed=21)
    injector, out = run(spec, count=3000, gap=0.001)
    arrival_order = [data for _, data in sorted(((due, i), data) for i, (_, due, data)
                                                 in enumerate(out))]
    sent_order = [data for _, _, data in out]
    assert arrival_order != sent_order
    overtaken = sum(1 for (_, due_a, _), (_, due_b, _) in itertools.pairwise(out)
                    if due_b < due_a)
    assert overtaken >= injector.counters.reordered * 0.9
    for now, due, _ in out:
        assert due - now in (pytest.approx(0.005), pytest.approx(0.010))


def test_rate_limit_serialises_on_a_virtual_clock() -> None:
    rate = 1_000_000.0  # bytes per second
    injector = FaultInjector(FaultSpec(rate=rate, delay=0.010, seed=0))
    size = len(packet(0))
    deliveries = [injector.process(packet(i), 0.0)[0][0] for i in range(10)]
    expected = [0.010 + (i + 1) * size / rate for i in range(10)]
    assert deliveries == pytest.approx(expected)
    # After the queue drained, a packet only pays its own serialisation time.
    [(due, _)] = injector.process(packet(0), 1.0)
    assert due == pytest.approx(1.0 + size / rate + 0.010)


def test_rate_limit_queue_overflow_is_tail_drop() -> None:
    injector = FaultInjector(FaultSpec(rate=1000.0, limit=5, seed=0))
    delivered = [bool(injector.process(packet(i), 0.0)) for i in range(8)]
    assert delivered == [True] * 5 + [False] * 3
    assert injector.counters.overflowed == 3
    # Once the first packets have left, there is room again.
    first_departure = len(packet(0)) / 1000.0
    assert injector.process(packet(9), first_departure + 1e-9)


def test_ipv6_corruption_flips_one_bit_after_the_ipv6_header() -> None:
    injector = FaultInjector(FaultSpec(corrupt=1.0, seed=4))
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, payload=b"x" * 200)
    original = build_packet("fd00:7::1", "fd00:7::2", seg)
    for _ in range(300):
        [(_, damaged)] = injector.process(original, 0.0)
        diff = [j for j in range(len(original)) if original[j] != damaged[j]]
        assert len(diff) == 1 and diff[0] >= 40
        with pytest.raises(WireError) as info:
            parse_packet(damaged)
        assert info.value.reason in ("bad-checksum", "bad-header-length", "bad-option",
                                     "contradictory-flags")
