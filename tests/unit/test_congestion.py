"""Congestion control: RFC 5681 / 6582 NewReno and RFC 9438 CUBIC."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpstack.core.config import ConnectionOptions
from tcpstack.core.congestion import (
    CUBIC_ALPHA,
    CUBIC_BETA,
    CUBIC_C,
    DEFAULT_MIN_SSTHRESH_SEGMENTS,
    INFINITE_SSTHRESH,
    RFC5681_MIN_SSTHRESH_SEGMENTS,
    Cubic,
    Reno,
    initial_window,
    make_congestion_control,
)

MSS = 1460


def one_rtt(cc: Reno, now: float, rtt: float, segs_per_ack: int = 1) -> float:
    """Send a window's worth of full segments and ACK them spread over one RTT."""
    segments = max(1, cc.cwnd // cc.mss)
    sizes = [segs_per_ack] * (segments // segs_per_ack)
    if segments % segs_per_ack:
        sizes.append(segments % segs_per_ack)
    for i, n in enumerate(sizes):
        cc.on_ack(n * cc.mss, now + rtt * (i + 1) / len(sizes), rtt, False)
    return now + rtt


# -- factory and initial state ------------------------------------------------

def test_factory_names_and_error_lists_valid_names() -> None:
    assert make_congestion_control("reno", MSS).name == "reno"
    assert make_congestion_control("cubic", MSS).name == "cubic"
    assert make_congestion_control("bbr", MSS).name == "bbr"
    with pytest.raises(ValueError, match="bbr, cubic, reno"):
        make_congestion_control("vegas", MSS)


def test_initial_window_rfc6928() -> None:
    assert initial_window(1460) == 14600
    assert initial_window(536) == 5360
    assert initial_window(9000) == 18000  # max(2*MSS, 14600) caps it
    assert initial_window(1000) == 10000


@pytest.mark.parametrize("name", ["reno", "cubic"])
def test_initial_state(name: str) -> None:
    cc = make_congestion_control(name, MSS)
    assert cc.cwnd == 10 * MSS
    assert cc.ssthresh == INFINITE_SSTHRESH
    assert cc.mss == MSS


def test_bad_mss_rejected() -> None:
    with pytest.raises(ValueError):
        Reno(0)


# -- slow start -------------------------------------------------------------

@pytest.mark.parametrize("cls", [Reno, Cubic])
@pytest.mark.parametrize("segs_per_ack", [1, 2])
def test_slow_start_doubles_per_rtt(cls: type[Reno], segs_per_ack: int) -> None:
    cc = cls(MSS)
    now = 0.0
    seen = []
    for _ in range(4):
        now = one_rtt(cc, now, 0.05, segs_per_ack)
        seen.append(cc.cwnd // MSS)
    assert seen == [20, 40, 80, 160]


def test_slow_start_byte_counting_limit_is_two_segments() -> None:
    # RFC 3465 §2.2, L = 2*SMSS: a stretch ACK of 10 segments grows by 2.
    cc = Reno(MSS)
    cc.on_ack(10 * MSS, 0.1, 0.05, False)
    assert cc.cwnd == 12 * MSS
    cc.on_ack(100, 0.2, 0.05, False)  # a small ACK counts its bytes
    assert cc.cwnd == 12 * MSS + 100


def test_slow_start_stops_at_ssthresh() -> None:
    cc = Reno(MSS)
    cc.ssthresh = 11 * MSS
    cc.on_ack(2 * MSS, 0.1, 0.05, False)
    assert cc.cwnd == 11 * MSS
    cc.on_ack(2 * MSS, 0.2, 0.05, False)  # now in CA: needs a whole cwnd acked
    assert cc.cwnd == 11 * MSS


def test_zero_or_negative_ack_does_nothing() -> None:
    cc = Reno(MSS)
    cc.on_ack(0, 0.1, 0.05, False)
    cc.on_ack(-5, 0.1, 0.05, False)
    assert cc.cwnd == 10 * MSS


# -- Reno congestion avoidance and recovery ------------------------------------

@pytest.mark.parametrize("segs_per_ack", [1, 2])
def test_reno_congestion_avoidance_one_mss_per_rtt(segs_per_ack: int) -> None:
    cc = Reno(MSS)
    cc.ssthresh = cc.cwnd = 20 * MSS
    now = 0.0
    seen = []
    for _ in range(5):
        now = one_rtt(cc, now, 0.05, segs_per_ack)
        seen.append(cc.cwnd // MSS)
    assert seen == [21, 22, 23, 24, 25]


@pytest.mark.parametrize("cls", [Reno, Cubic])
def test_no_growth_in_recovery(cls: type[Reno]) -> None:
    cc = cls(MSS)
    cc.on_enter_recovery(1.0, 40 * MSS)
    before = cc.cwnd
    for i in range(50):
        cc.on_ack(MSS, 1.0 + i * 0.01, 0.05, True)
    assert cc.cwnd == before


def test_reno_fast_retransmit_halves_flight() -> None:
    # RFC 5681 §3.2 step 2 / RFC 6582 §3.2: ssthresh = max(FlightSize/2, 2*SMSS)
    cc = Reno(MSS)
    cc.cwnd = 40 * MSS
    cc.on_enter_recovery(1.0, 40 * MSS)
    assert cc.ssthresh == 20 * MSS
    assert cc.cwnd == 20 * MSS
    cc.cwnd += 3 * MSS  # the caller's inflation
    cc.on_exit_recovery(1.2)
    assert cc.cwnd == 20 * MSS  # deflated to ssthresh (RFC 6582 step 5)


@pytest.mark.parametrize("cls", [Reno, Cubic])
@pytest.mark.parametrize("floor", [RFC5681_MIN_SSTHRESH_SEGMENTS, 3, DEFAULT_MIN_SSTHRESH_SEGMENTS])
def test_loss_floor(cls: type[Reno], floor: int) -> None:
    # RFC 5681 §3.1 equation (4) floors ssthresh at 2*SMSS; tcpstack's default is 4.
    cc = cls(MSS, min_ssthresh_segments=floor)
    cc.on_enter_recovery(1.0, MSS)
    assert cc.ssthresh == floor * MSS
    cc.on_exit_recovery(1.1)
    assert cc.cwnd == floor * MSS
    cc.on_rto(2.0, MSS)                  # the floor holds after a timeout too
    assert cc.ssthresh == floor * MSS
    assert cc.cwnd == MSS                # but the loss window is still 1 SMSS


def test_default_loss_floor_is_four_segments() -> None:
    assert DEFAULT_MIN_SSTHRESH_SEGMENTS == 4
    assert ConnectionOptions().min_ssthresh == 4
    cc = make_congestion_control("cubic", MSS)
    cc.on_enter_recovery(1.0, 2 * MSS)
    assert cc.ssthresh == 4 * MSS


@pytest.mark.parametrize("cls", [Reno, Cubic])
def test_a_loss_never_raises_cwnd(cls: type[Reno]) -> None:
    # After an RTO the window restarts at 1 SMSS; a loss while it is still
    # below the floor leaves it there (ssthresh takes the floor) instead of
    # raising it, and leaving recovery does not raise it either.
    cc = cls(MSS)
    cc.on_rto(1.0, 20 * MSS)
    cc.on_ack(MSS, 1.1, 0.05, False)
    assert cc.cwnd == 2 * MSS
    cc.on_enter_recovery(1.2, 2 * MSS)
    assert cc.ssthresh == 4 * MSS and cc.cwnd == 2 * MSS
    cc.on_exit_recovery(1.3)
    assert cc.cwnd == 2 * MSS
    cc.on_ack(2 * MSS, 1.4, 0.05, False)          # slow start again, up to ssthresh
    assert cc.cwnd == 4 * MSS


@pytest.mark.parametrize("bad", [0, 1, -3, 2.5, 5, 10, True])
def test_loss_floor_outside_2_to_4_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="min_ssthresh"):
        Reno(MSS, min_ssthresh_segments=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_ssthresh"):
        ConnectionOptions(min_ssthresh=bad)  # type: ignore[arg-type]


def test_reno_rto_goes_to_loss_window() -> None:
    # RFC 5681 §3.1 equation (4) and LW = 1 SMSS
    cc = Reno(MSS)
    cc.cwnd = 30 * MSS
    cc.on_rto(1.0, 30 * MSS)
    assert cc.cwnd == MSS
    assert cc.ssthresh == 15 * MSS
    # The same segment times out again: ssthresh is held constant.
    cc.on_rto(3.0, MSS)
    assert cc.ssthresh == 15 * MSS
    assert cc.cwnd == MSS
    # Slow start back up to ssthresh.
    now = 3.0
    while cc.cwnd < cc.ssthresh:
        now = one_rtt(cc, now, 0.05)
    assert cc.cwnd == 15 * MSS
    # New data was ACKed: a later timeout reduces ssthresh again.
    cc.on_rto(10.0, 16 * MSS)
    assert cc.ssthresh == 8 * MSS


@pytest.mark.parametrize("cls", [Reno, Cubic])
def test_idle_restart_window(cls: type[Reno]) -> None:
    # RFC 5681 §4.1: cwnd = min(IW, cwnd)
    cc = cls(MSS)
    cc.cwnd = 50 * MSS
    cc.on_idle_restart(5.0, 1.0)
    assert cc.cwnd == initial_window(MSS)
    cc.cwnd = 3 * MSS
    cc.on_idle_restart(9.0, 1.0)
    assert cc.cwnd == 3 * MSS


# -- CUBIC --------------------------------------------------------------------

def test_cubic_loss_multiplies_by_beta() -> None:
    # RFC 9438 §4.6
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_enter_recovery(1.0, 100 * MSS)
    assert cc.ssthresh == int(100 * MSS * CUBIC_BETA)
    assert cc.cwnd == cc.ssthresh
    assert cc.w_max == 100 * MSS


def test_cubic_fast_convergence() -> None:
    # RFC 9438 §4.7: loss below the previous W_max lowers W_max further.
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_enter_recovery(1.0, 100 * MSS)
    cc.on_exit_recovery(1.1)
    cc.cwnd = 80 * MSS
    cc.on_enter_recovery(2.0, 80 * MSS)
    assert cc.w_max == pytest.approx(80 * MSS * (1 + CUBIC_BETA) / 2)


def test_cubic_k_and_w_at_k_equals_w_max() -> None:
    # RFC 9438 §4.2 equations (1) and (2)
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_enter_recovery(0.0, 100 * MSS)
    cc.on_exit_recovery(0.1)
    cc.on_ack(MSS, 0.2, 0.1, False)  # first CA ACK starts the epoch
    k = ((100 - 70) / CUBIC_C) ** (1 / 3)
    assert cc.k == pytest.approx(k)
    assert cc.w_cubic(k) == pytest.approx(100 * MSS)
    assert cc.w_cubic(0.0) == pytest.approx(70 * MSS)


def test_cubic_window_regrows_to_w_max_with_cubic_shape() -> None:
    cc = Cubic(MSS)
    rtt = 0.1
    cc.cwnd = 100 * MSS
    cc.on_enter_recovery(0.0, 100 * MSS)
    cc.on_exit_recovery(0.0)
    now = 0.0
    trace: list[tuple[float, int]] = []
    while now < 8.0:
        now = one_rtt(cc, now, rtt)
        trace.append((now, cc.cwnd))
    k = cc.k  # about 4.2 s
    assert 4.0 < k < 4.4

    def cwnd_at(t: float) -> int:
        return min(trace, key=lambda p: abs(p[0] - t))[1]

    # Near t = K the window is back at W_max (within a few segments) ...
    assert abs(cwnd_at(k) - 100 * MSS) < 4 * MSS
    # ... concave before (fast first, slow near the plateau), convex after.
    early = cwnd_at(1.5) - cwnd_at(0.5)
    plateau = cwnd_at(k + 0.5) - cwnd_at(k - 0.5)
    late = cwnd_at(k + 3.5) - cwnd_at(k + 2.5)
    assert early > 3 * plateau
    assert late > 3 * plateau
    # It tracks W_cubic(t) closely once the epoch runs (t measured from its start).
    for t in (2.0, 3.0, 5.0, 6.0):
        assert cwnd_at(t) == pytest.approx(cc.w_cubic(t), rel=0.05)


def test_cubic_tcp_friendly_region_with_short_rtt() -> None:
    # RFC 9438 §4.3: with a small W_max and a short RTT, the Reno estimate
    # grows faster than W_cubic, and cwnd follows W_est.
    cc = Cubic(MSS)
    rtt = 0.002
    cc.cwnd = 20 * MSS
    cc.on_enter_recovery(0.0, 20 * MSS)
    cc.on_exit_recovery(0.0)
    start = cc.cwnd  # 14 segments
    now = 0.0
    for _ in range(10):
        now = one_rtt(cc, now, rtt)
    assert cc.cwnd > cc.w_cubic(now) + MSS
    # About alpha_cubic segments per RTT (Reno-like), not the cubic curve.
    grown = (cc.cwnd - start) / MSS
    assert grown == pytest.approx(10 * CUBIC_ALPHA, abs=1.0)


def test_cubic_rto_resets_epoch_with_k_zero() -> None:
    # RFC 9438 §4.8
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_rto(0.0, 100 * MSS)
    assert cc.cwnd == MSS
    assert cc.ssthresh == int(100 * MSS * CUBIC_BETA)
    now = 0.0
    while cc.cwnd < cc.ssthresh:
        now = one_rtt(cc, now, 0.05)
    cc.on_ack(MSS, now + 0.01, 0.05, False)
    assert cc.k == 0.0
    assert cc.w_max == pytest.approx(cc.ssthresh, abs=2 * MSS)


def test_cubic_slow_start_exit_without_loss_probes_from_cwnd() -> None:
    cc = Cubic(MSS)
    cc.ssthresh = 30 * MSS
    now = 0.0
    for _ in range(5):
        now = one_rtt(cc, now, 0.05)
    assert cc.cwnd > 30 * MSS
    assert cc.k == 0.0


# -- properties ---------------------------------------------------------------

EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(1, 20 * MSS), st.booleans()),
        st.tuples(st.just("enter"), st.integers(0, 200 * MSS), st.booleans()),
        st.tuples(st.just("exit"), st.integers(0, 0), st.booleans()),
        st.tuples(st.just("rto"), st.integers(0, 200 * MSS), st.booleans()),
        st.tuples(st.just("idle"), st.integers(0, 0), st.booleans()),
    ),
    max_size=200,
)


@given(st.sampled_from(["reno", "cubic"]), EVENTS,
       st.one_of(st.none(), st.floats(0.0001, 2.0)))
def test_windows_stay_sane_under_any_event_sequence(
    name: str, events: list[tuple[str, int, bool]], srtt: float | None
) -> None:
    cc = make_congestion_control(name, MSS)
    now = 0.0
    for kind, amount, flag in events:
        now += 0.01
        if kind == "ack":
            cc.on_ack(amount, now, srtt, flag)
        elif kind == "enter":
            before = cc.cwnd
            cc.on_enter_recovery(now, amount)
            assert cc.ssthresh >= 2 * MSS
            # cwnd = ssthresh, except that a loss never raises cwnd (above 2*SMSS).
            assert cc.cwnd == min(cc.ssthresh, max(before, 2 * MSS))
        elif kind == "exit":
            cc.on_exit_recovery(now)
            assert cc.cwnd >= 2 * MSS
        elif kind == "rto":
            cc.on_rto(now, amount)
            assert cc.cwnd == MSS
        else:
            cc.on_idle_restart(now, 1.0)
        assert isinstance(cc.cwnd, int)
        assert isinstance(cc.ssthresh, int)
        assert cc.cwnd >= MSS
        assert cc.ssthresh >= 2 * MSS
