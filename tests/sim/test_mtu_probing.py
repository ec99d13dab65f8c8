"""RFC 4821 MTU probing on the virtual clock: a path that silently drops every
packet above 1200 bytes (a PMTU black hole, RFC 2923 §2.1, no ICMP at all)."""

from __future__ import annotations

import random

import pytest
from sim_helpers import A, establish, make_sim, pump

from tcpstack.core.events import EventKind
from tcpstack.sim import PacketRecord, SimulationTimeout

PATH_MTU = 1200
SIZE = 2_000_000


def too_big(record: PacketRecord) -> bool:
    seg = record.segment
    options = 12 if seg.options.timestamps else 0
    return 40 + options + len(seg.payload) > PATH_MTU


def transfer(mode: str, timeout: float):
    sim, a, b = make_sim(seed=4, mtu_probing=mode)
    client, server = establish(sim, a, b)
    rule = sim.drop(too_big, count=None)
    data = random.Random(4).randbytes(SIZE)
    got, unused = bytearray(), bytearray()
    pump(sim, client, data, unused)
    pump(sim, server, b"", got, close_after=False)
    took = sim.run_until(lambda: len(got) == SIZE and server.at_eof, timeout=timeout)
    assert bytes(got) == data
    return sim, a, client, rule, took


def test_blackhole_mode_finds_the_hole_and_probes_up_to_the_path_mtu() -> None:
    sim, a, client, rule, took = transfer("blackhole", timeout=30)
    c = a.counters
    assert c["mtu_blackhole_detected"] == 1
    assert c["timer_retransmit"] == 3            # three timeouts, then base MSS gets through
    assert c["mtu_probes_acked"] >= 1 and c["mtu_probes_lost"] >= 1
    assert PATH_MTU - 52 - 8 <= client.mss <= PATH_MTU - 52   # within tcp_probe_threshold
    assert len(rule.dropped) < 40
    changes = [e.reason for e in sim.events if e.kind is EventKind.PMTU and e.local[0] == A]
    assert changes[0] == "MSS 1448 -> 1024, path MTU 1500 -> 1076: black hole suspected"
    print(f"\n{SIZE} bytes through a black hole in {took:.2f} virtual s; "
          f"{len(changes)} MTU changes, final MSS {client.mss}")


def test_always_mode_starts_at_base_mss_and_needs_no_timeout() -> None:
    _sim, a, client, _rule, _took = transfer("always", timeout=30)
    c = a.counters
    assert "timer_retransmit" not in c and "mtu_blackhole_detected" not in c
    assert 1024 < client.mss <= PATH_MTU - 52


def test_off_mode_stays_in_the_hole() -> None:
    with pytest.raises(SimulationTimeout):
        transfer("off", timeout=20)
