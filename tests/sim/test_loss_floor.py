"""The loss floor on ssthresh keeps the ACK clock alive under heavy random loss.

RFC 5681 §3.1 floors ssthresh at 2 segments; tcpstack's default is 4
(``ConnectionOptions.min_ssthresh``). At 5% loss each way, a window of two
segments is often stalled by one lost retransmission plus one lost ACK, and
only the retransmission timer (>= 200 ms) gets it going again. The same
seeded transfers are run with both floors: byte-exact either way, and the
default needs far fewer timeouts.
"""

from __future__ import annotations

from sim_helpers import one_way_transfer, options, timer_events

from tcpstack.core.events import TIMER_RETRANSMIT
from tcpstack.link.fault import FaultSpec

SIZE = 4_000_000
SEEDS = (0, 1, 2, 3)


def timeouts_for_transfer(seed: int, min_ssthresh: int | None) -> tuple[int, float]:
    """Send SIZE bytes A -> B at 5% loss each way; (sender RTOs, virtual seconds)."""
    client_opts = options(min_ssthresh=min_ssthresh) if min_ssthresh else None
    sim, client, _, took = one_way_transfer(seed, FaultSpec(loss=0.05, delay=30e-6), SIZE,
                                            timeout=600, client_options=client_opts)
    return len(timer_events(sim, client, TIMER_RETRANSMIT)), took


def test_default_floor_avoids_most_timeouts_at_5_percent_loss() -> None:
    default = [timeouts_for_transfer(seed, None) for seed in SEEDS]
    strict = [timeouts_for_transfer(seed, 2) for seed in SEEDS]
    default_rtos = sum(rtos for rtos, _ in default)
    strict_rtos = sum(rtos for rtos, _ in strict)
    assert default_rtos <= 2, default
    assert strict_rtos >= 3 * max(default_rtos, 1), strict
    # Fewer timeouts is what makes the transfer fast (virtual time, no wall clock).
    assert sum(t for _, t in default) * 3 < sum(t for _, t in strict)
