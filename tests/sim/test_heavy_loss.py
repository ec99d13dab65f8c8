"""30% loss each way: every transfer still finishes, in seconds, not minutes.

At this loss rate ACKs of first copies are often lost and the sender times
out with backoff; the receiver answers the retransmissions as duplicates,
echoing the first copy's timestamp. Taken as RTT samples, those echoes once
pushed SRTT to seconds and the RTO to its 120 s cap, so some of these
transfers stalled for minutes (one did not finish in 20 virtual minutes).
Karn's rule for timestamps (only an echo of the latest retransmission is a
sample) keeps SRTT at the path's RTT.
"""

from __future__ import annotations

import random

import pytest
from sim_helpers import A, B, establish, make_sim, pump

from tcpstack.link.fault import FaultSpec

SIZE = 100_000


@pytest.mark.parametrize("seed", range(12))
def test_100_kb_through_30_percent_loss_each_way(seed: int) -> None:
    sim, a, b = make_sim(seed=seed)
    client, server = establish(sim, a, b)
    sim.set_faults_both_ways(A, B, FaultSpec(loss=0.3, delay=0.005, seed=seed))
    data = random.Random(seed).randbytes(SIZE)
    got, unused = bytearray(), bytearray()
    pump(sim, client, data, unused)
    pump(sim, server, b"", got, close_after=False)
    took = sim.run_until(lambda: len(got) == SIZE and server.at_eof, timeout=60)
    assert bytes(got) == data
    assert took < 30                       # 0.4-8.1 s over these seeds
    assert client.rtt.srtt is not None and client.rtt.srtt < 0.5   # path RTT is 10 ms
