"""BBR (core/bbr.py): the model, its phases, loss handling -- and, in the
simulator, what it is for: a lossy path kept full where CUBIC backs off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tcpstack.core.bbr import (
    DRAIN,
    FULL_BW_ROUNDS,
    MIN_PIPE_SEGMENTS,
    PROBE_BW,
    PROBE_RTT,
    PROBE_RTT_TIME,
    RTPROP_WINDOW,
    STARTUP,
    TSO_BUDGET_SEGMENTS,
    Bbr,
)
from tcpstack.core.congestion import (
    ALGORITHMS,
    INFINITE_SSTHRESH,
    initial_window,
    make_congestion_control,
)
from tcpstack.link.fault import FaultSpec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sim"))
from sim_helpers import one_way_transfer, options

MSS = 1448
RATE = 10_000_000.0          # bytes per second: the path the tests model
RTT = 0.010


def drive(cc: Bbr, now: float, rounds: int, rate: float = RATE, rtt: float = RTT,
          acks_per_round: int = 10, app_limited: bool = False) -> float:
    """``rounds`` round trips of a path that delivers ``rate`` bytes a second
    (never more than the window holds per RTT) with ``rtt``: ACKs spread over
    each round, the window's worth in flight."""
    for _ in range(rounds):
        per_round = min(rate * rtt, cc.cwnd)
        for _ in range(acks_per_round):
            acked = int(per_round / acks_per_round)
            now += rtt / acks_per_round
            cc.on_ack(acked, now, rtt, False)
            cc.on_delivery(now, 0, cc.cwnd, rtt, app_limited)
    return now


def test_bbr_is_a_congestion_control_by_name() -> None:
    assert "bbr" in ALGORITHMS
    cc = make_congestion_control("bbr", MSS)
    assert isinstance(cc, Bbr) and cc.name == "bbr" and cc.samples_delivery
    assert cc.cwnd == initial_window(MSS) and cc.ssthresh == INFINITE_SSTHRESH
    assert cc.mode == STARTUP
    assert not make_congestion_control("cubic", MSS).samples_delivery
    with pytest.raises(ValueError):
        make_congestion_control("bbr", MSS, min_ssthresh_segments=9)


def test_startup_finds_the_bandwidth_then_drains_to_two_bdp() -> None:
    cc = Bbr(MSS)
    now = drive(cc, 0.0, 40)
    # The rate the path delivers (within the window's quantisation), the RTT it has.
    assert RATE * 0.8 <= cc.btl_bw <= RATE * 1.3
    assert cc.rt_prop == pytest.approx(RTT)
    assert cc.mode == PROBE_BW
    bdp = cc.btl_bw * cc.rt_prop
    assert 2 * bdp <= cc.cwnd <= cc.bdp(2.0)
    assert now > 0


def test_startup_stops_after_three_rounds_without_growth() -> None:
    cc = Bbr(MSS)
    rounds = 0
    while cc.mode == STARTUP and rounds < 30:
        drive(cc, rounds * RTT, 1)
        rounds += 1
    # Some six rounds to grow the window to the path's BDP (each round here is
    # as long as the window it starts with), three without growth, the filter's lag.
    assert cc.mode in (DRAIN, PROBE_BW) and rounds <= 16
    assert cc._full_bw_rounds >= FULL_BW_ROUNDS


def test_a_loss_does_not_shrink_the_model_or_the_window_for_long() -> None:
    cc = Bbr(MSS)
    now = drive(cc, 0.0, 40)
    before, bw = cc.cwnd, cc.btl_bw
    cc.on_enter_recovery(now, flight_size=before // 2)
    assert cc.cwnd == before // 2                 # packet conservation for a round
    now = drive(cc, now, 2)
    cc.on_exit_recovery(now)
    assert cc.cwnd >= before                      # restored
    assert cc.btl_bw == pytest.approx(bw, rel=0.3)


def test_after_a_timeout_one_segment_then_regrowth() -> None:
    cc = Bbr(MSS)
    now = drive(cc, 0.0, 40)
    target = cc.bdp(2.0)
    cc.on_rto(now, cc.cwnd)
    assert cc.cwnd == MSS
    drive(cc, now, 10)
    assert cc.cwnd >= target * 0.7


def test_rt_prop_expires_into_probe_rtt_and_back() -> None:
    cc = Bbr(MSS)
    now = drive(cc, 0.0, 40)
    window = cc.cwnd
    # The path's delay grows: no sample as low as rt_prop for ten seconds.
    now = drive(cc, now, int(RTPROP_WINDOW / (2 * RTT)) + 2, rtt=2 * RTT)
    assert cc.mode == PROBE_RTT
    assert cc.cwnd == MIN_PIPE_SEGMENTS * MSS
    assert cc.rt_prop == pytest.approx(2 * RTT)   # the new, higher estimate
    # Four segments in flight for at least PROBE_RTT_TIME, then back.
    end = now + PROBE_RTT_TIME + 0.05
    while now < end:
        now += RTT
        cc.on_ack(MSS, now, RTT, False)
        cc.on_delivery(now, 0, MIN_PIPE_SEGMENTS * MSS, 2 * RTT, False)
    assert cc.mode == PROBE_BW
    assert cc.cwnd >= window


def test_application_limited_rounds_do_not_lower_the_estimate() -> None:
    cc = Bbr(MSS)
    now = drive(cc, 0.0, 40)
    bw = cc.btl_bw
    drive(cc, now, 30, rate=RATE / 10, app_limited=True)
    assert cc.btl_bw == pytest.approx(bw, rel=0.3)


def test_the_window_has_room_for_three_tso_bursts() -> None:
    cc = Bbr(MSS)
    drive(cc, 0.0, 40)
    burst = min(max(cc.btl_bw * 0.001, 2 * MSS), 65536)
    assert cc.bdp(1.0) >= cc.btl_bw * cc.rt_prop + TSO_BUDGET_SEGMENTS * burst - 1


@pytest.mark.parametrize("loss", [0.01, 0.05])
def test_a_lossy_bottleneck_stays_full_with_bbr_not_with_cubic(loss: float) -> None:
    """1 Gbit/s, 100 µs each way, random loss both ways: CUBIC backs off at each
    loss (RFC 9438 §4.6) and keeps a fraction of the link; BBR's model does not
    change with random loss and keeps it nearly full. Every byte arrives."""
    spec = FaultSpec(loss=loss, delay=100e-6, rate=125e6, limit=200)
    took = {}
    for cc in ("cubic", "bbr"):
        sim, client, _server, took[cc] = one_way_transfer(1, spec, 5_000_000, 600,
                                                          client_options=options(cc=cc))
        if cc == "bbr":
            assert not sim.stacks[client.local[0]].counters.get("timer_retransmit", 0)
    link_time = 5_000_000 / 125e6
    assert took["bbr"] < 1.5 * link_time
    assert took["cubic"] > 3.0 * took["bbr"]


def test_the_connection_shows_its_controller_and_bbrs_model() -> None:
    """``conn.info()`` (``--stats``): the controller by name, and BBR's model as
    ``ss -ti`` shows it; the loss-based controllers add nothing."""
    spec = FaultSpec(loss=0.0, delay=100e-6, rate=125e6, limit=200)
    _sim, client, _server, _took = one_way_transfer(1, spec, 1_000_000, 60,
                                                    client_options=options(cc="bbr"))
    info = client.info()
    assert info["cc"] == "bbr"
    model = info["bbr"]
    assert model["mode"] in (STARTUP, DRAIN, PROBE_BW, PROBE_RTT)
    assert 100e6 < model["btl_bw"] < 130e6           # the 1 Gbit/s link, in bytes/s
    assert model["rt_prop"] == pytest.approx(200e-6, rel=0.2)
    assert model["target"] >= MIN_PIPE_SEGMENTS * MSS
    cubic = make_congestion_control("cubic", MSS)
    assert cubic.info() == {}
