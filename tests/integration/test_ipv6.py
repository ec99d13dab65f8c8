"""IPv6 against the real kernel through the TUN: nc -6, ping -6, curl -g, the
Python API's addresses, a closed port's RST -- with the defaults (both
families) and with addresses given once per family."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from typing import Any

import pytest

import tcpstack
from tcpstack.link import netns as ns
from tcpstack.scenarios import SCENARIOS

from .conftest import (
    _ROOT,
    KERNEL_ADDR6,
    STACK_ADDR,
    STACK_ADDR6,
    Cli,
    Kernel,
    _env,
    echo_handler,
    run_async,
    sha256_of_one_connection,
)

pytestmark = pytest.mark.root

STACK6, KERNEL6 = STACK_ADDR6, KERNEL_ADDR6
BIG = 20 * 1024 * 1024


def test_listen_with_no_options_takes_20mb_from_nc_6(cli: Cli, kernel: Kernel,
                                                      tmp_path) -> None:
    """Done when, line 1: ``tcpstack listen 7001 --once`` in a fresh namespace,
    no address options, 20 MB from ``nc -6 -N fd00:7::2 7001`` byte-exact."""
    data = os.urandom(BIG)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    received = tmp_path / "out.bin"
    with open(received, "wb") as sink:
        listen = cli.listen("7001", "--once", stdout=sink)
    with open(source, "rb") as feed:
        sent = kernel.run(["nc", "-6", "-N", STACK6, "7001"], stdin=feed, timeout=120)
    assert sent.returncode == 0
    assert listen.wait(timeout=60) == 0
    assert hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not ns.netns_exists(cli.netns)           # created by listen, removed at exit


def test_listen_default_is_reachable_over_both_families(cli: Cli, kernel: Kernel) -> None:
    listen = cli.listen("7", "--echo")
    for argv in (["nc", "-N", STACK_ADDR, "7"], ["nc", "-6", "-N", STACK6, "7"]):
        result = kernel.run(argv, input=b"both families", capture_output=True)
        assert result.stdout == b"both families", argv
    listen.terminate()
    listen.wait(timeout=15)


def test_connect_ipv6_literal_sends_20mb_to_nc_6_l(cli: Cli, kernel: Kernel, tmp_path) -> None:
    """``tcpstack connect fd00:8::1 PORT --addr fd00:8::2 --tun-addr fd00:8::1/64``."""
    data = os.urandom(BIG)
    received = tmp_path / "received.bin"
    ns.create_netns(cli.netns)                       # nc listens before the TUN exists
    with open(received, "wb") as sink:
        server = kernel.popen(["nc", "-6", "-N", "-l", "9006"], stdin=subprocess.DEVNULL,
                              stdout=sink)
    argv = cli.argv("connect", "fd00:8::1", "9006", "--addr", "fd00:8::2",
                    "--tun-addr", "fd00:8::1/64", "--netns", cli.netns)
    for _ in range(100):
        result = subprocess.run(argv, input=data, capture_output=True, timeout=120,
                                cwd=_ROOT, env=_env())
        if b"refused" not in result.stderr:       # nc may not be listening yet
            break
    assert result.returncode == 0, result.stderr
    assert server.wait(timeout=30) == 0
    assert hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_closed_ipv6_port_gets_a_rst(cli: Cli, kernel: Kernel) -> None:
    cli.listen("7")
    sock = ns.run_in_netns(cli.netns, socket.socket, socket.AF_INET6, socket.SOCK_STREAM)
    kernel.sockets.append(sock)
    sock.settimeout(10)
    with pytest.raises(ConnectionRefusedError):
        sock.connect((STACK6, 9))


def test_ping_6_is_answered(cli: Cli, kernel: Kernel) -> None:
    cli.listen("7")
    result = kernel.run(["ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", STACK6],
                        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0% packet loss" in result.stdout


def test_bad_addresses_say_which_family_was_expected(cli: Cli) -> None:
    cases = {
        ("connect", "fd00:8::zz", "80"): "expected an IPv4 or IPv6 address",
        ("listen", "7", "--addr", "fd00:8::2", "--tun-addr", "10.7.0.1/24"):
            "needs an IPv6 --tun-addr",
        ("listen", "7", "--addr", "fd00:8::2", "--addr", "fd00:9::2"): "once per family",
        ("listen", "7", "--tun-addr", "fd00:8::1"): "missing /PREFIXLEN",
        ("listen", "7", "--tun-addr", "fd00:8::1/64", "--addr", "10.7.0.2"):
            "needs an IPv4 --tun-addr",
        ("listen", "7", "--tun-addr", "fd00:8::1/64", "--tun-addr", "10.7.0.1/24",
         "--addr", "10.7.0.2"): "has no IPv6 stack address",
        ("connect", "fd00:7::1", "80", "--addr", "10.7.0.2"): "no IPv6 address",
        ("listen", "7", "--addr", "fd00:9::2", "--tun-addr", "fd00:8::1/64"):
            "not in the TUN subnet",
    }
    for args, words in cases.items():
        result = cli.run(*args, "--netns", cli.netns, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr, (args, result.stderr)
    assert not ns.netns_exists(cli.netns)


def test_api_addresses_are_asyncios_both_ways(netns_name: str, kernel: Kernel) -> None:
    """open_connection("fd00:7::1", ...), start_server(host="::"), and the
    peername/sockname shapes asyncio gives: 4-tuples for IPv6."""
    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            server = await tcpstack.start_server(echo_handler, 7, host="::")
            names = sorted(s.getsockname() for s in server.sockets)
            assert names == sorted([(STACK_ADDR, 7), (STACK6, 7, 0, 0)])
            got = await asyncio.to_thread(kernel.run, ["nc", "-6", "-N", STACK6, "7"],
                                          input=b"echo6", capture_output=True)
            assert got.stdout == b"echo6"
            srv = ns.run_in_netns(netns_name, socket.create_server, (KERNEL6, 8000),
                                  family=socket.AF_INET6)
            kernel.sockets.append(srv)
            _reader, writer = await tcpstack.open_connection(KERNEL6, 8000)
            peer, _ = await asyncio.to_thread(srv.accept)
            kernel.sockets.append(peer)
            assert writer.get_extra_info("peername") == (KERNEL6, 8000, 0, 0)
            local = writer.get_extra_info("sockname")
            assert local[0] == STACK6 and len(local) == 4
            assert peer.getpeername()[:2] == local[:2]
            writer.write(b"hello over IPv6")
            await writer.drain()
            assert await asyncio.to_thread(peer.recv, 100) == b"hello over IPv6"
            writer.close()
            await writer.wait_closed()
            assert any(c["state"] for c in stack.connections_info())

    run_async(body())


@pytest.mark.parametrize("direction", ["kernel-server", "stack-server"])
def test_curl_g_over_ipv6(netns_name: str, kernel: Kernel, direction: str, tmp_path) -> None:
    """curl -g 'http://[addr]:8000/' against tcpstack's server, and tcpstack's
    client against the kernel's http.server --bind ::."""
    body_bytes = os.urandom(300_000)

    async def handler(reader: Any, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body_bytes)
                     + body_bytes)
        await writer.drain()
        writer.close()

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name):
            if direction == "stack-server":
                await tcpstack.start_server(handler, 8000, host="::")
                got = await asyncio.to_thread(
                    kernel.run, ["curl", "-sS", "-g", f"http://[{STACK6}]:8000/"],
                    capture_output=True, timeout=60)
                assert got.returncode == 0, got.stderr
                assert got.stdout == body_bytes
                return
            (tmp_path / "f.bin").write_bytes(body_bytes)
            server = kernel.popen([sys.executable, "-m", "http.server", "8000", "--bind",
                                   "::", "--directory", str(tmp_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert server.pid
            for _ in range(200):
                try:
                    reader, writer = await tcpstack.open_connection(KERNEL6, 8000)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.02)
            writer.write(f"GET /f.bin HTTP/1.0\r\nHost: [{KERNEL6}]\r\n\r\n".encode())
            await writer.drain()
            reply = await reader.read(-1)
            assert reply.startswith(b"HTTP/1.0 200")
            assert reply.endswith(body_bytes)
            writer.close()

    run_async(body(), timeout=90)



def test_trace_pcap_stats_and_ladder_show_ipv6(cli: Cli, kernel: Kernel, tmp_path) -> None:
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    pcap = tmp_path / "v6.pcap"
    listen = cli.listen("7", "--echo", "--once", "--trace", "--stats", "--pcap", str(pcap))
    result = kernel.run(["nc", "-6", "-N", STACK6, "7"], input=b"traced", capture_output=True)
    assert result.stdout == b"traced"
    _out, err = listen.communicate(timeout=15)
    assert listen.returncode == 0, err.decode()
    text = err.decode()
    assert f"[{STACK6}]:7 <> [{KERNEL6}]:" in text            # --trace
    assert "tcpstack counters:" in text and "state_established=1" in text   # --stats
    tcp6 = [p for p in rdpcap(str(pcap)) if IPv6 in p and p[IPv6].nh == 6]
    assert {p[IPv6].src for p in tcp6} == {STACK6, KERNEL6}
    ours = [p for p in tcp6 if p[IPv6].src == STACK6]
    assert len({p[IPv6].fl for p in ours}) == 1 and ours[0][IPv6].fl != 0   # RFC 6437
    ladder = cli.run("ladder", str(pcap))
    assert ladder.returncode == 0, ladder.stderr
    assert f"[{STACK6}]:7" in ladder.stdout


KERNEL_SCENARIOS = [s.name for s in SCENARIOS.values() if s.kernel]


@pytest.mark.parametrize("scenario", KERNEL_SCENARIOS)
def test_demo_ipv6(cli: Cli, scenario: str) -> None:
    """Every scenario that runs against the kernel runs over IPv6 too."""
    result = cli.run("demo", scenario, "--ipv6", "--netns", cli.netns, "--no-color",
                     timeout=90)
    assert result.returncode == 0, result.stderr
    assert f"[{STACK6}]:" in result.stdout and "10.7.0" not in result.stdout
    if scenario == "demo":
        assert "mss=1440" in result.stdout
    assert not ns.netns_exists(cli.netns)


def test_fault_link_under_ipv6(cli: Cli, kernel: Kernel, tmp_path) -> None:
    """Loss, reordering and corruption on tcpstack's link, over IPv6: the data
    still arrives byte-exact, and the corrupted packets were caught."""
    data = os.urandom(2_000_000)
    received = tmp_path / "out.bin"
    with open(received, "wb") as sink:
        listen = cli.listen("7001", "--once", "--stats", "--fault",
                            "loss=2%,reorder=2%,corrupt=1%,seed=6", stdout=sink)
    sent = kernel.run(["nc", "-6", "-N", STACK6, "7001"], input=data, timeout=120)
    assert sent.returncode == 0
    _out, err = listen.communicate(timeout=60)
    assert listen.returncode == 0, err.decode()
    assert received.read_bytes() == data
    assert "drop_bad_checksum=" in err.decode()            # corruption caught by TCP


def test_icmpv6_packet_too_big_lowers_the_path_mtu(netns_name: str, kernel: Kernel) -> None:
    """A Packet Too Big (RFC 4443 §3.2) written by the kernel side's raw ICMPv6
    socket, quoting a segment in flight: the runtime maps it onto the core's
    IcmpError, the path MTU falls (RFC 8201) and the transfer still completes."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6

    payload = os.urandom(300_000)

    async def body() -> None:
        # A delayed link keeps segments in flight long enough to quote one.
        async with tcpstack.Stack(netns=netns_name, fault="delay=50ms") as stack:
            sock = kernel.listen(9300, KERNEL6)
            got = asyncio.create_task(asyncio.to_thread(sha256_of_one_connection, sock))
            _reader, writer = await tcpstack.open_connection(KERNEL6, 9300)
            conn = writer.get_extra_info("connection")
            assert conn.mss == 1500 - 60 - 12
            writer.write(payload)
            await asyncio.sleep(0.02)
            assert conn.snd_max != conn.snd_una                  # data in flight
            # The last byte sent: in flight for a round trip (RFC 5927 §4.1 check).
            last = (int(conn.snd_max) - 1) % 2**32
            quoted = bytes(IPv6(src=STACK6, dst=KERNEL6)
                           / TCP(sport=conn.local[1], dport=9300, seq=last, flags="A"))
            raw = ns.run_in_netns(netns_name, socket.socket, socket.AF_INET6, socket.SOCK_RAW,
                                  socket.IPPROTO_ICMPV6)
            kernel.sockets.append(raw)
            raw.sendto(bytes(ICMPv6PacketTooBig(mtu=1300) / quoted), (STACK6, 0))
            for _ in range(100):
                if conn.mss == 1300 - 60 - 12:
                    break
                await asyncio.sleep(0.01)
            assert conn.mss == 1300 - 60 - 12
            assert stack.counters["icmp_packet_too_big"] == 1
            assert stack.counters["pmtu_lowered"] == 1
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            assert await got == hashlib.sha256(payload).hexdigest()

    run_async(body(), timeout=90)


@pytest.mark.parametrize(("icmpv6_type", "kind", "message"), [
    ("no-route", "net-unreachable", "network is unreachable"),
    ("admin-prohibited", "admin-prohibited", "administratively prohibited"),
    ("addr-unreachable", "host-unreachable", "no route to host"),
    ("port-unreachable", "port-unreachable", "connection refused"),
])
def test_icmpv6_unreachable_ends_a_connect_saying_which(cli: Cli, icmpv6_type: str, kind: str,
                                                        message: str) -> None:
    """RFC 4443 §3.1 destination unreachable, from the kernel side's nftables
    (``reject with icmpv6 type ...``): the connect fails at once, in one line."""
    ns.create_netns(cli.netns)
    rules = (f"table ip6 tcps_reject {{\n  chain input {{\n"
             f"    type filter hook input priority 0; policy accept;\n"
             f"    ip6 daddr {KERNEL6} tcp dport 5002 reject with icmpv6 type {icmpv6_type}\n"
             f"  }}\n}}\n")
    loaded = ns.netns_run(cli.netns, ["nft", "-f", "-"], input=rules, capture_output=True,
                          text=True, timeout=20)
    assert loaded.returncode == 0, loaded.stderr
    result = cli.run("connect", KERNEL6, "5002", "--netns", cli.netns,
                     stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"tcpstack: connect to [{KERNEL6}]:5002 failed: {message} (ICMP {kind} from {KERNEL6})"]


def test_udp_over_ipv6_draws_a_parameter_problem(cli: Cli, kernel: Kernel) -> None:
    """RFC 4443 §3.4 code 1: the kernel's connected UDP socket hears EPROTO."""
    import errno

    cli.listen("7")
    sock = ns.run_in_netns(cli.netns, socket.socket, socket.AF_INET6, socket.SOCK_DGRAM)
    kernel.sockets.append(sock)
    sock.settimeout(10)
    sock.connect((STACK6, 9))
    sock.send(b"anyone?")
    with pytest.raises(OSError) as info:
        sock.recv(100)
    assert info.value.errno == errno.EPROTO
