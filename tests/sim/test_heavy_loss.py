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

import pytest
from sim_helpers import one_way_transfer

from tcpstack.link.fault import FaultSpec

SIZE = 100_000


@pytest.mark.parametrize("seed", range(12))
def test_100_kb_through_30_percent_loss_each_way(seed: int) -> None:
    _, client, _, took = one_way_transfer(seed, FaultSpec(loss=0.3, delay=0.005), SIZE,
                                          timeout=60)
    assert took < 30                       # 0.4-8.1 s over these seeds
    assert client.rtt.srtt is not None and client.rtt.srtt < 0.5   # path RTT is 10 ms
