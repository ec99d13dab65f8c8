"""FaultSpec.parse: the --fault syntax, valid and invalid."""

from __future__ import annotations

import pytest

from tcpstack.errors import UsageError
from tcpstack.link.fault import FaultSpec


def test_parse_the_documented_example() -> None:
    spec = FaultSpec.parse(
        "loss=2%,dup=1%,reorder=3%,corrupt=0.5%,delay=20ms,jitter=5ms,rate=10mbit,seed=7")
    assert spec.loss == pytest.approx(0.02)
    assert spec.dup == pytest.approx(0.01)
    assert spec.reorder == pytest.approx(0.03)
    assert spec.corrupt == pytest.approx(0.005)
    assert spec.delay == pytest.approx(0.020)
    assert spec.jitter == pytest.approx(0.005)
    assert spec.rate == pytest.approx(10e6 / 8)
    assert spec.seed == 7


@pytest.mark.parametrize(("text", "field", "value"), [
    ("loss=0.05", "loss", 0.05),
    ("loss=100%", "loss", 1.0),
    ("loss=0%", "loss", 0.0),
    ("duplicate=2%", "dup", 0.02),
    ("drop=1%", "loss", 0.01),
    ("delay=250us", "delay", 250e-6),
    ("delay=1.5s", "delay", 1.5),
    ("jitter=0.5ms", "jitter", 0.0005),
    ("rate=1gbit", "rate", 1e9 / 8),
    ("rate=64kbit", "rate", 8000.0),
    ("rate=2mbps", "rate", 2e6),
    ("rate=800bit", "rate", 100.0),
    ("limit=50", "limit", 50),
    ("reorder_delay=5ms", "reorder_delay", 0.005),
    ("seed=0x10", "seed", 16),
    (" LOSS = 3% ", "loss", 0.03),
])
def test_parse_each_key_and_unit(text: str, field: str, value: float) -> None:
    assert getattr(FaultSpec.parse(text), field) == pytest.approx(value)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty fault spec"),
    ("loss=2%,", "empty item"),
    ("latency=20ms", "unknown fault 'latency'"),
    ("loss", "expected key=value"),
    ("loss=", "expected key=value"),
    ("loss=abc", "not a number"),
    ("loss=101%", "cannot exceed 100%"),
    ("loss=2", "within 0..1"),
    ("loss=2x", "percentage"),
    ("loss=-1%", "not a number"),
    ("delay=20", "needs a time unit"),
    ("delay=20min", "needs a time unit"),
    ("rate=10", "needs a rate unit"),
    ("rate=0mbit", "must be positive"),
    ("seed=seven", "whole number"),
    ("limit=0", "at least 1 packet"),
    ("loss=1%,loss=2%", "given twice"),
])
def test_bad_input_is_one_clear_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        FaultSpec.parse(text)
    text_of_error = str(info.value)
    assert message in text_of_error
    assert "\n" not in text_of_error
    assert info.value.exit_code == 2


def test_str_round_trips_through_parse() -> None:
    spec = FaultSpec(loss=0.025, dup=0.01, reorder=0.5, corrupt=0.001, delay=0.02,
                     jitter=0.003, rate=1.25e6, limit=64, reorder_delay=0.007, seed=42)
    assert FaultSpec.parse(str(spec)) == spec
    assert str(FaultSpec()) == "none"


def test_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        FaultSpec(loss=1.5)
    with pytest.raises(ValueError, match="negative"):
        FaultSpec(delay=-0.1)


def test_null_spec_and_effective_reorder_delay() -> None:
    assert FaultSpec().is_null
    assert not FaultSpec(delay=0.01).is_null
    assert not FaultSpec(rate=1000.0).is_null
    assert FaultSpec().effective_reorder_delay == pytest.approx(0.001)
    assert FaultSpec(delay=0.02).effective_reorder_delay == pytest.approx(0.02)
    assert FaultSpec(reorder_delay=0.005).effective_reorder_delay == pytest.approx(0.005)
    assert FaultSpec(loss=0.1, seed=3).with_seed(9) == FaultSpec(loss=0.1, seed=9)
