"""RFC 6298 retransmission timeout estimator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpstack.core.rtt import ALPHA, BETA, K, RttEstimator


def test_initial_rto_is_one_second_before_any_sample() -> None:
    # RFC 6298 §2.1
    est = RttEstimator()
    assert est.rto == 1.0
    assert est.srtt is None
    assert est.rttvar is None
    assert est.backoffs == 0


def test_first_sample_sets_srtt_rttvar_and_rto() -> None:
    # RFC 6298 §2.2: SRTT=R, RTTVAR=R/2, RTO=SRTT+max(G, 4*RTTVAR)
    est = RttEstimator()
    est.sample(0.5)
    assert est.srtt == 0.5
    assert est.rttvar == 0.25
    assert est.rto == pytest.approx(0.5 + 4 * 0.25)


def test_second_sample_uses_old_srtt_for_rttvar() -> None:
    # RFC 6298 §2.3
    est = RttEstimator()
    est.sample(0.5)
    est.sample(0.1)
    rttvar = (1 - BETA) * 0.25 + BETA * abs(0.5 - 0.1)
    srtt = (1 - ALPHA) * 0.5 + ALPHA * 0.1
    assert est.rttvar == pytest.approx(rttvar)
    assert est.srtt == pytest.approx(srtt)
    assert est.rto == pytest.approx(srtt + K * rttvar)


def test_clock_granularity_bounds_the_variance_term() -> None:
    est = RttEstimator(min_rto=0.0001, granularity=0.01)
    for _ in range(200):
        est.sample(0.05)
    # RTTVAR decays towards 0; the max(G, K*RTTVAR) term keeps G.
    assert est.rto == pytest.approx(0.05 + 0.01, rel=1e-3)


def test_min_rto_clamps_small_estimates() -> None:
    # RFC 6298 §2.4 (Linux default 200 ms; RFC's 1 s selectable)
    est = RttEstimator()
    est.sample(0.001)
    assert est.rto == 0.2
    rfc = RttEstimator(min_rto=1.0)
    rfc.sample(0.001)
    assert rfc.rto == 1.0


def test_backoff_doubles_and_caps_at_max_rto() -> None:
    # RFC 6298 §5.5 and §2.5
    est = RttEstimator(max_rto=60.0)
    est.sample(0.5)  # rto 1.5
    expected = [3.0, 6.0, 12.0, 24.0, 48.0, 60.0, 60.0, 60.0]
    seen = []
    for _ in expected:
        est.backoff()
        seen.append(est.rto)
    assert seen == pytest.approx(expected)
    assert est.backoffs == len(expected)


def test_backoff_count_is_bounded_safe_after_many_retries() -> None:
    est = RttEstimator()
    for _ in range(1000):
        est.backoff()
    assert est.rto == 120.0


def test_sample_and_reset_clear_backoff() -> None:
    est = RttEstimator()
    est.sample(0.3)
    base = est.rto
    est.backoff()
    est.backoff()
    assert est.rto == pytest.approx(4 * base)
    est.reset_backoff()
    assert est.rto == pytest.approx(base)
    est.backoff()
    est.sample(0.3)
    assert est.backoffs == 0


def test_backoff_before_first_sample_from_initial_rto() -> None:
    est = RttEstimator(initial_rto=1.0)
    est.backoff()
    assert est.rto == 2.0


def test_invalid_limits_rejected() -> None:
    with pytest.raises(ValueError):
        RttEstimator(min_rto=2.0, max_rto=1.0)


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=50),
       st.integers(min_value=0, max_value=40))
def test_rto_always_within_limits(samples: list[float], backoffs: int) -> None:
    est = RttEstimator()
    for s in samples:
        est.sample(s)
        assert est.srtt is not None and est.srtt >= 0
        assert est.rttvar is not None and est.rttvar >= 0
    for _ in range(backoffs):
        est.backoff()
    assert est.min_rto <= est.rto <= est.max_rto
