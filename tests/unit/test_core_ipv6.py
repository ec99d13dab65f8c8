"""One StackCore serves both families: connections, listeners (both families
unless told otherwise), ISNs and ports over IPv6 addresses, TIME-WAIT, the MSS
from the IPv6 MTU -- in the simulator (virtual clock, real wire codec)."""

from __future__ import annotations

import pytest

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.errors import TcpInvalidArgument
from tcpstack.core.isn import IsnGenerator
from tcpstack.core.options import mtu_mss, negotiate, our_offer
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State
from tcpstack.link.fault import FaultSpec
from tcpstack.sim import Simulator
from tcpstack.wire.tcp import RST, SYN, TcpOptions, TcpSegment

SERVER4, SERVER6 = "10.7.0.2", "fd00:7::2"
CLIENT4, CLIENT6 = "10.7.0.1", "fd00:7::1"


def dual_world(seed: int = 1, mtu: int = 1500) -> tuple[Simulator, StackCore, StackCore,
                                                         StackCore]:
    sim = Simulator(seed=seed, mtu=mtu)
    server = sim.add_stack((SERVER4, SERVER6))
    return sim, server, sim.add_stack(CLIENT4), sim.add_stack(CLIENT6)


MSS_SEEN: dict[str, int] = {}


def transfer(sim: Simulator, client: StackCore, server_addr: str, size: int) -> bytes:
    """``size`` bytes from ``client`` to the listener on port 7001; what arrived
    (the accepting connection's send MSS goes to MSS_SEEN by peer address)."""
    server = sim.stacks[server_addr]
    listener = next(iter(server.listeners()))
    conn = client.connect(server_addr, 7001, sim.now)
    sim.run_until(lambda: listener.pending() > 0, 5)
    accepted = listener.accept()
    assert accepted is not None
    data = bytes(range(251)) * (size // 251 + 1)
    data = data[:size]
    sent, got = 0, bytearray()

    def progress() -> bool:
        nonlocal sent
        if sent < len(data):
            sent += conn.send(memoryview(data)[sent:], sim.now)
            if sent == len(data):
                conn.close(sim.now)
        got.extend(accepted.recv(1 << 20, sim.now))
        return accepted.at_eof

    sim.run_until(progress, 120)
    accepted.close(sim.now)
    sim.run_for(1)
    assert accepted.local == (server_addr, 7001)
    assert accepted.remote[0] == conn.local[0]
    MSS_SEEN[conn.local[0]] = accepted.mss
    return bytes(got)


def test_one_listener_takes_both_families_and_the_mss_follows_the_family() -> None:
    sim, server, client4, client6 = dual_world()
    server.listen(7001)
    assert transfer(sim, client6, SERVER6, 300_000) == (bytes(range(251)) * 1200)[:300_000]
    assert transfer(sim, client4, SERVER4, 300_000) == (bytes(range(251)) * 1200)[:300_000]
    assert MSS_SEEN == {CLIENT6: 1500 - 60 - 12, CLIENT4: 1500 - 40 - 12}
    assert sorted(server.local_addrs) == sorted((SERVER4, SERVER6))
    assert all(p.src in (SERVER4, SERVER6, CLIENT4, CLIENT6) for p in sim.packets)
    v6 = [p for p in sim.packets if ":" in p.src]
    assert v6 and all(":" in p.dst for p in v6)     # no packet mixes the families


def test_ipv6_transfer_survives_loss_reordering_and_corruption() -> None:
    sim, server, _client4, client6 = dual_world(seed=5)
    sim.set_faults_both_ways(SERVER6, CLIENT6, FaultSpec.parse(
        "loss=3%,reorder=3%,dup=1%,corrupt=1%,delay=5ms"))
    server.listen(7001)
    assert transfer(sim, client6, SERVER6, 200_000) == (bytes(range(251)) * 800)[:200_000]
    assert sim.counters["wire_bad-checksum"] > 0     # corrupted IPv6 packets were caught


@pytest.mark.parametrize(("family", "served", "refused"), [(4, CLIENT4, CLIENT6),
                                                           (6, CLIENT6, CLIENT4)])
def test_a_listener_for_one_family_resets_the_other(family: int, served: str,
                                                   refused: str) -> None:
    sim, server, client4, client6 = dual_world()
    clients = {CLIENT4: (client4, SERVER4), CLIENT6: (client6, SERVER6)}
    listener = server.listen(7001, family=family)
    assert listener.info()["family"] == family
    stack, addr = clients[served]
    good = stack.connect(addr, 7001, sim.now)
    stack, addr = clients[refused]
    bad = stack.connect(addr, 7001, sim.now)
    sim.run_for(1)
    assert good.state is State.ESTABLISHED
    assert bad.state is State.CLOSED and isinstance(bad.error, ConnectionRefusedError)


def test_closed_ipv6_port_answers_rst_from_the_ipv6_address() -> None:
    sim, server, _client4, client6 = dual_world()
    conn = client6.connect(SERVER6, 9, sim.now)
    sim.run_for(1)
    assert isinstance(conn.error, ConnectionRefusedError)
    rst = [p for p in sim.packets if p.segment.flags & RST]
    assert [(p.src, p.dst) for p in rst] == [(SERVER6, CLIENT6)]
    assert server.counters["drop_no_socket"] == 1


def test_connect_needs_an_address_of_the_peers_family() -> None:
    v4_only = StackCore(SERVER4)
    with pytest.raises(TcpInvalidArgument, match="no IPv6 address"):
        v4_only.connect("fd00:7::1", 80, 0.0)
    v6_only = StackCore(SERVER6)
    with pytest.raises(TcpInvalidArgument, match="no IPv4 address"):
        v6_only.connect("10.0.0.1", 80, 0.0)
    conn = v6_only.connect("fd00:7::1", 80, 0.0)
    assert conn.local[0] == SERVER6
    assert v6_only.connection(conn.local, conn.remote) is conn
    with pytest.raises(ValueError):
        StackCore(("10.0.0.1", "10.0.0.2"))           # one address per family


def test_segments_of_the_wrong_family_or_address_are_dropped() -> None:
    stack = StackCore((SERVER4, SERVER6))
    stack.listen(80)
    syn = TcpSegment(1234, 80, 1, 0, SYN, 65535, options=TcpOptions(mss=1440))
    stack.receive(CLIENT6, SERVER4, syn, 0.0)           # IPv6 source, IPv4 destination
    stack.receive(CLIENT4, "fd00:7::3", syn, 0.0)
    assert stack.counters["drop_wrong_address"] == 2
    assert stack.take_output() == []


def test_same_ports_in_both_families_are_distinct_connections() -> None:
    sim, server, client4, client6 = dual_world()
    listener = server.listen(7001)
    a = client4.connect(SERVER4, 7001, sim.now, local_port=40000)
    b = client6.connect(SERVER6, 7001, sim.now, local_port=40000)
    sim.run_for(1)
    assert a.state is b.state is State.ESTABLISHED
    accepted = [listener.accept(), listener.accept()]
    assert {c.remote for c in accepted if c} == {(CLIENT4, 40000), (CLIENT6, 40000)}
    for conn in accepted:
        conn.close(sim.now)                            # the server closes first ...
    sim.run_for(1)
    a.close(sim.now)
    b.close(sim.now)
    sim.run_for(1)
    # ... so it holds TIME-WAIT, once per family, for the same port numbers
    assert sorted(c.state.name for c in server.connections()) == ["TIME_WAIT"] * 2
    assert server.counters["state_time_wait"] == 2


def test_isns_ports_and_flow_of_ipv6_tuples_are_keyed_hashes() -> None:
    isn = IsnGenerator(b"s" * 16)
    one = isn.offset("fd00::1", 80, "fd00::2", 1000)
    assert one == isn.offset("fd00::1", 80, "fd00::2", 1000)
    assert one != isn.offset("fd00::1", 80, "fd00::3", 1000)
    assert one != isn.offset("fd00::1", 80, "fd00::2:0", 1000)
    stack = StackCore(("10.0.0.1", "fd00::1"), StackConfig(isn_secret=b"x" * 16))
    ports = {stack.connect("fd00::9", 80, 0.0).local[1] for _ in range(50)}
    assert len(ports) == 50


def test_mss_from_the_ipv6_mtu() -> None:
    assert mtu_mss(1500, ipv6=True) == 1440
    assert mtu_mss(1280, ipv6=True) == 1220
    assert mtu_mss(600, ipv6=True) == 1220                 # RFC 8200 §5: 1280 at least
    assert mtu_mss(9000, ipv6=False) == 8960
    opts = ConnectionOptions()
    assert our_offer(opts, 1500, ipv6=True).mss == 1440
    # RFC 9293 §3.7.1: without an MSS option assume 536 over IPv4, 1220 over IPv6
    no_mss = TcpOptions()
    assert negotiate(TcpOptions(mss=1440), no_mss, ipv6=True).mss == 1220
    assert negotiate(TcpOptions(mss=1460), no_mss).mss == 536
