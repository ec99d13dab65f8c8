from hypothesis import given
from hypothesis import strategies as st

from tcpstack.seq import MOD, Seq

u32 = st.integers(min_value=0, max_value=MOD - 1)
delta = st.integers(min_value=1, max_value=(1 << 31) - 1)


def test_addition_wraps():
    assert Seq(MOD - 1) + 1 == 0
    assert isinstance(Seq(MOD - 1) + 1, Seq)
    assert int(Seq(MOD - 3) + 10) == 7


def test_difference_is_signed():
    assert Seq(5) - Seq(MOD - 5) == 10
    assert Seq(MOD - 5) - Seq(5) == -10
    assert Seq(5) - 10 == Seq(MOD - 5)


@given(u32, delta)
def test_comparisons_across_wrap(a, d):
    x, y = Seq(a), Seq(a) + d
    assert x < y and x <= y and y > x and y >= x
    assert not (y < x) and not (x > y) and x != y
    assert y - x == d and x - y == -d


@given(u32)
def test_equality_and_hash(a):
    assert Seq(a) == Seq(a + MOD)
    assert hash(Seq(a)) == hash(a)
    assert Seq(a) <= Seq(a) and Seq(a) >= Seq(a)


small = st.integers(min_value=0, max_value=1 << 20)


@given(u32, small, small)
def test_in_window(start, offset, size):
    assert (Seq(start) + offset).in_window(start, size) == (offset < size)


def test_empty_window_contains_nothing():
    assert not Seq(10).in_window(10, 0)
