"""How the stack's and the kernel side's addresses combine, per family, before
anything is touched (NetworkSetup.validate needs no root)."""

from __future__ import annotations

import pytest

from tcpstack.errors import UsageError
from tcpstack.link.netns import parse_interface, parse_ip
from tcpstack.runtime.network import NetworkSetup


def test_defaults_are_both_families() -> None:
    setup = NetworkSetup()
    assert setup.addresses() == {4: "10.7.0.2", 6: "fd00:7::2"}
    assert {f: str(i) for f, i in setup.validate().items()} == {4: "10.7.0.1/24",
                                                               6: "fd00:7::1/64"}
    assert setup.kernel_addr == "10.7.0.1"
    assert setup.kernel_addrs == {4: "10.7.0.1", 6: "fd00:7::1"}


def test_given_addresses_choose_the_families() -> None:
    v6 = NetworkSetup(addr=["fd00:8::2"], tun_addr=["fd00:8::1/64"])
    assert v6.addresses() == {6: "fd00:8::2"} and v6.kernel_addr == "fd00:8::1"
    v4 = NetworkSetup(addr="10.7.0.5")                      # the IPv4 default TUN address
    assert v4.addresses() == {4: "10.7.0.5"} and set(v4.validate()) == {4}
    kernel6 = NetworkSetup(tun_addr=["fd00:9::1/64"])       # the stack takes that family's default
    with pytest.raises(UsageError, match="not in the TUN subnet"):
        kernel6.validate()
    both = NetworkSetup(addr=["FD00:8:0::2", "10.8.0.2"], tun_addr=["10.8.0.1/24",
                                                                     "fd00:8::1/64"])
    assert both.addresses() == {4: "10.8.0.2", 6: "fd00:8::2"}   # canonical text


@pytest.mark.parametrize(("addr", "tun_addr", "words"), [
    (["fd00:8::2", "fd00:9::2"], None, "once per family"),
    (None, ["10.7.0.1/24", "10.8.0.1/24"], "once per family"),
    (["fd00:8::2"], ["10.7.0.1/24"], "needs an IPv6 --tun-addr"),
    (["10.7.0.2"], ["10.7.0.1/24", "fd00:7::1/64"], "has no IPv6 stack address"),
    (["fd00:7::1"], None, "kernel's own TUN address"),
    (["fd00:7::zz"], None, "expected an IPv4 or IPv6 address"),
    (None, ["fd00:7::1"], "missing /PREFIXLEN"),
])
def test_bad_combinations_are_one_line_usage_errors(addr, tun_addr, words) -> None:
    with pytest.raises(UsageError, match=words) as info:
        NetworkSetup(addr=addr, tun_addr=tun_addr).validate()
    assert "\n" not in str(info.value)


def test_ipv6_needs_the_minimum_mtu() -> None:
    with pytest.raises(UsageError, match="1280"):
        NetworkSetup(mtu=1000).validate()
    NetworkSetup(addr="10.7.0.2", mtu=1000).validate()      # IPv4 alone is fine


def test_address_parsers_say_which_family_they_expected() -> None:
    assert parse_ip("fd00:7:0:0::2") == "fd00:7::2"
    assert parse_ip("[fd00:7::2]") == "fd00:7::2"
    with pytest.raises(UsageError, match="expected an IPv6 address"):
        parse_ip("10.0.0.1", family=6)
    with pytest.raises(UsageError, match=r"expected an IPv4 address \(dotted quad\)"):
        parse_ip("fd00::1", family=4)
    with pytest.raises(UsageError, match="IPv6 ADDRESS/PREFIXLEN"):
        parse_interface("10.0.0.1/24", family=6)
    assert str(parse_interface("fd00:7::1/64")) == "fd00:7::1/64"
